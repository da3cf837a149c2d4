//! A checked policy: the file's rules compiled into patterns, in the order
//! they are tried, with the file's version and SHA-256 so a record can say
//! which policy decided.

use std::{path::Path, time::Duration};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::{
    compile,
    error::{PolicyError, Problem},
    glob::Glob,
};

/// What the agent does about a container's drift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Verify and record (exec records carry the verdict); no alerts.
    Observe,
    /// Today's behaviour: drift becomes an alert.
    Alert,
    /// Alerts, and drift with a verdict in `block_verdicts` is blocked
    /// (reported `would-block` while in dry run or staging).
    Enforce,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Alert => "alert",
            Mode::Enforce => "enforce",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Mode::Observe, Mode::Alert, Mode::Enforce].into_iter().find(|m| m.name() == s)
    }
}

/// Verdict names a policy may list: every drift verdict the agent gives
/// (`ok` is never blocked). verifier-user's tests check this list against
/// its verdicts.
pub const DRIFT_VERDICTS: &[&str] = &[
    "unknown-binary",
    "modified-binary",
    "fileless",
    "unverifiable",
    "relocated-binary",
    "sbom-gap",
    "image-file-written",
    "library-drift",
    "exec-flood",
];

/// `block_verdicts` when neither the rule nor `[defaults]` says.
pub const DEFAULT_BLOCK_VERDICTS: &[&str] =
    &["unknown-binary", "modified-binary", "fileless", "library-drift"];

/// The only schema version so far.
pub const VERSION: i64 = 1;

/// The name of what applies when no rule matches.
pub const DEFAULT_RULE: &str = "default";

/// A loaded, valid policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub version: i64,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    pub default_mode: Mode,
    pub default_block: Vec<String>,
    /// Exceptions that hold under every rule.
    pub exceptions: Vec<Exception>,
    pub rules: Vec<Rule>,
}

/// One `[[rule]]`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub mode: Mode,
    pub matcher: Matcher,
    pub block_verdicts: Vec<String>,
    /// `deny_writes`: opening one of the image's verified files for
    /// writing is blocked too.
    pub deny_writes: bool,
    /// `stage.audit_for`: enforce only once clean this long.
    pub audit_for: Option<Duration>,
    pub exceptions: Vec<Exception>,
}

/// A rule's `[rule.match]`: each list empty = not a condition.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    pub images: Vec<Glob>,
    pub digests: Vec<Glob>,
    pub namespaces: Vec<Glob>,
    pub containers: Vec<Glob>,
    pub labels: Vec<(String, Glob)>,
}

impl Matcher {
    /// No condition: matches every container.
    pub fn is_catch_all(&self) -> bool {
        self.images.is_empty()
            && self.digests.is_empty()
            && self.namespaces.is_empty()
            && self.containers.is_empty()
            && self.labels.is_empty()
    }
}

/// What an exception matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExceptionMatch {
    /// The file's path inside the container.
    Path(Glob),
    /// The file's SHA-256 (hex, lower case).
    Sha256(String),
    /// The package the SBOM lists the file in: its name or its purl
    /// (a purl pattern without `@version` matches every version).
    Package(String),
}

/// An exception: a finding it matches is recorded as excepted, never
/// alerted on or blocked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The rule it belongs to, or `global` for `[[exception]]`.
    pub scope: String,
    pub matches: ExceptionMatch,
    pub reason: String,
}

impl Exception {
    /// `path=/x`, `sha256=ab..`, `package=curl`: for messages.
    pub fn describe(&self) -> String {
        match &self.matches {
            ExceptionMatch::Path(g) => format!("path={}", g.as_str()),
            ExceptionMatch::Sha256(h) => format!("sha256={h}"),
            ExceptionMatch::Package(p) => format!("package={p}"),
        }
    }
}

impl Policy {
    /// Parses and checks `text`; every problem found, each with its place.
    pub fn parse(text: &str) -> Result<Self, Vec<Problem>> {
        let mut policy = compile::compile(text)?;
        policy.sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        Ok(policy)
    }

    /// Reads and checks the policy file at `path`.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let bytes =
            std::fs::read(path).map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
        let text = String::from_utf8(bytes).map_err(|_| PolicyError::NotText { path: path.to_owned() })?;
        Self::parse(&text).map_err(|problems| PolicyError::Invalid { path: path.to_owned(), problems })
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}
