//! What the policy (`verifier agent --policy FILE`, docs/policy.md) adds to
//! the records: which rule judged a finding and what it did, the exception
//! that excused one, and the `policy` record saying which policy is in
//! force (at start and after each good edit).

use serde::Serialize;

pub(crate) const SCHEMA_POLICY: &str = "verifier.policy.v1";

/// `policy` in an exec/library record and an alert: the rule that applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct PolicyJson {
    pub rule: String,
    /// `observe`, `alert`, `enforce`.
    pub mode: &'static str,
    /// `observe` (recorded, no alert), `alert`, `would-block` (enforce in
    /// dry run or staging, or while the agent cannot block), `block`.
    pub action: &'static str,
}

/// `exception` in an exec/library record: the finding is excused, never
/// alerted on or blocked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ExceptionJson {
    /// The rule the exception belongs to (`global` for `[[exception]]`).
    pub rule: String,
    /// What it matched: `path=...`, `sha256=...`, `package=...`.
    #[serde(rename = "match")]
    pub matched: String,
    pub reason: String,
}

/// `verifier.policy.v1`: the policy now in force.
#[derive(Debug, Serialize)]
pub(crate) struct PolicyRecordJson<'a> {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub node: &'a str,
    /// `start` or `reload`.
    pub event: &'static str,
    pub file: String,
    pub version: i64,
    pub sha256: &'a str,
    pub rules: usize,
}

/// Counters for the stats record (`policy.*`, and so the metrics
/// `verifier_policy_reload_errors_total`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct PolicyStats {
    /// Good edits taken into force.
    pub reloads: u64,
    /// Edits that did not load (the last good policy stayed).
    pub reload_errors: u64,
    /// Findings per action: recorded only (observe mode), alerted,
    /// would have been blocked, excused by an exception.
    pub observed: u64,
    pub alerted: u64,
    pub would_block: u64,
    pub excepted: u64,
}
