//! Policy as code for the verifier: which containers are only observed,
//! which alert on drift, which are enforced, with exceptions and an
//! audit-then-enforce stage; and why a given container gets what it gets.
//!
//! A plain library (no aya, no tokio, no network): `verifier policy check`
//! and `explain` use it offline, the agent asks it per finding. The file
//! format is TOML (`version = 1`), chosen over YAML because it has one
//! way to write each value (no `no` that means `false`, no indentation
//! rules), it is what Rust users already write in `Cargo.toml`, and its
//! parser gives exact line and column for every value, which the checks
//! report. The keys: `docs/policy.md`; an example: `deploy/policy.example.toml`.
//!
//! - [`Policy::load`] / [`Policy::parse`]: syntax, unknown keys, values.
//! - [`Policy::decide`]: the rule for a [`Workload`] (first match wins).
//! - [`Decision::judge`]: the [`Action`] for one finding, exceptions first.
//! - [`Policy::enforcement_for`]: the one question the blocking side asks.
//! - [`Reloader`]: follow the file while running; [`Staging`]: clean time.

mod compile;
mod decide;
mod duration;
mod error;
mod glob;
mod policy;
mod reload;
mod schema;
mod staging;

use std::time::SystemTime;

pub use decide::{Action, Decision, Finding, Judgement, Workload};
pub use duration::{format as format_duration, parse_duration};
pub use error::{PolicyError, Position, Problem};
pub use glob::{Glob, Kind as GlobKind};
pub use policy::{
    DEFAULT_BLOCK_VERDICTS, DEFAULT_RULE, DRIFT_VERDICTS, Exception, ExceptionMatch, Matcher, Mode, Policy,
    Rule, VERSION,
};
pub use reload::{Reload, Reloader};
pub use staging::{CleanSince, Staging};

/// How the blocking side should treat a container's blocking verdicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enforcement {
    /// The rule that enforces.
    pub rule: String,
    /// Report `would-block` only (staging, or not yet clean long enough).
    pub dry_run: bool,
    pub block_verdicts: Vec<String>,
    /// Writes to the image's verified files are blocked too.
    pub deny_writes: bool,
}

impl Policy {
    /// Whether any rule, or the default, has mode `enforce`.
    pub fn may_enforce(&self) -> bool {
        self.default_mode == Mode::Enforce || self.rules.iter().any(|r| r.mode == Mode::Enforce)
    }

    /// `Some` when the rule for `w` is `enforce`: the verdicts to block and
    /// whether only as a dry run. `None`: nothing is blocked.
    pub fn enforcement_for(
        &self,
        w: &Workload,
        history: Option<&CleanSince>,
        now: SystemTime,
    ) -> Option<Enforcement> {
        let d = self.decide(w, history, now);
        (d.mode == Mode::Enforce).then_some(Enforcement {
            rule: d.rule,
            dry_run: d.dry_run,
            block_verdicts: d.block_verdicts,
            deny_writes: d.deny_writes,
        })
    }
}
