//! The policy file as written: TOML, `version = 1`, every table closed to
//! unknown keys (a misspelt key is an error, never a silently ignored
//! line). Values that are checked later (patterns, verdict names, modes,
//! durations) keep their place in the file (`Spanned`) so that an error
//! points at the line and column to fix.
//!
//! `docs/policy.md` describes every key; `deploy/policy.example.toml` is a
//! complete example that the tests load.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub version: Spanned<i64>,
    #[serde(default)]
    pub defaults: Option<Defaults>,
    /// Exceptions for every rule (and for containers no rule matches).
    #[serde(default, rename = "exception")]
    pub exceptions: Vec<Exception>,
    /// Rules, tried in file order: the first that matches decides.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

/// What applies when no rule matches, and what rules inherit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defaults {
    pub mode: Option<Spanned<String>>,
    pub block_verdicts: Option<Vec<Spanned<String>>>,
}

/// `[[rule]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rule {
    pub name: Spanned<String>,
    pub mode: Spanned<String>,
    #[serde(default, rename = "match")]
    pub matcher: Option<Match>,
    pub block_verdicts: Option<Vec<Spanned<String>>>,
    /// Deny writes to the image's verified files too (`mode = "enforce"`
    /// only).
    pub deny_writes: Option<Spanned<bool>>,
    pub stage: Option<Stage>,
    #[serde(default, rename = "exception")]
    pub exceptions: Vec<Exception>,
}

/// `[rule.match]`: every key given must match (and); within a list, any
/// entry (or). No key: the rule matches every container.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Match {
    #[serde(default)]
    pub images: Vec<Spanned<String>>,
    #[serde(default)]
    pub digests: Vec<Spanned<String>>,
    #[serde(default)]
    pub namespaces: Vec<Spanned<String>>,
    #[serde(default)]
    pub containers: Vec<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
}

/// `[rule.stage]`: audit-then-enforce.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stage {
    pub audit_for: Spanned<String>,
}

/// `[[exception]]` / `[[rule.exception]]`: exactly one of `path`,
/// `sha256`, `package`, and a `reason`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Exception {
    pub path: Option<Spanned<String>>,
    pub sha256: Option<Spanned<String>>,
    pub package: Option<Spanned<String>>,
    pub reason: Option<Spanned<String>>,
}
