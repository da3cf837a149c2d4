//! The trust policy: for which images an SBOM must be signed, by whom, with
//! which predicate types, and what to do when none verifies.
//!
//! ```toml
//! # /etc/verifier/trust.toml; paths are relative to this file.
//! [[image]]
//! pattern = "registry.example/app:*"     # `*` matches any run of characters,
//!                                        # against name, digest, container id or name
//! keys = ["keys/release.pub"]            # PEM public keys (cosign.pub)
//! predicate_types = ["spdx", "cyclonedx"] # families, or exact predicateType URIs
//! require = true                          # an SBOM for this image must be signed
//! on_missing = "unverifiable"             # or "alert": judge as unverifiable / alert only
//! require_tlog = false                    # keyed signatures need log evidence too
//!
//! [[image.keyless]]
//! issuer = "https://token.actions.githubusercontent.com"
//! subject_regex = "^https://github.com/example/app/"   # or subject = "exact"
//! trusted_root = "trusted_root.json"
//! ```
//!
//! The first `[[image]]` whose pattern matches wins. A parse error names
//! the line and column.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use regex::Regex;
use serde::Deserialize;

use crate::error::AttestError;
use crate::keys::PublicKey;
use crate::statement::{COSIGN_CUSTOM, CYCLONEDX_PREFIX, SPDX_PREFIX};
use crate::trust_root::TrustedRoot;

/// What to do with a container whose image requires a verified SBOM and
/// has none (absent or rejected).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissing {
    /// Every exec is judged `unverifiable`: nothing is trusted.
    #[default]
    Unverifiable,
    /// Raise an alert and judge against no SBOM (the image's own package
    /// databases, if any); never against the rejected SBOM.
    Alert,
}

/// A trusted public key and where it came from.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub name: String,
    pub key: PublicKey,
}

/// How a keyless certificate's subject must read.
#[derive(Clone, Debug)]
pub enum SubjectMatch {
    Exact(String),
    Regex(Regex),
}

impl SubjectMatch {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Self::Exact(e) => e == s,
            Self::Regex(r) => r.is_match(s),
        }
    }
}

/// A keyless identity: who may sign, vouched for by whom, under which root.
#[derive(Clone, Debug)]
pub struct Identity {
    pub issuer: String,
    pub subject: SubjectMatch,
    pub root: Arc<TrustedRoot>,
}

/// What an image's attestations are verified against.
#[derive(Clone, Debug)]
pub struct Trust {
    pub keys: Vec<TrustedKey>,
    pub identities: Vec<Identity>,
    /// Exact predicateType URIs or families (`spdx`, `cyclonedx`, `cosign-custom`).
    pub predicate_types: Vec<String>,
    /// Keyed signatures need transparency-log evidence as well.
    pub require_tlog: bool,
}

impl Trust {
    /// Accepting SPDX and CycloneDX, signed by `keys`.
    pub fn with_keys(keys: Vec<TrustedKey>) -> Self {
        Self { keys, identities: Vec::new(), predicate_types: default_types(), require_tlog: false }
    }

    /// Accepting SPDX and CycloneDX, signed by `identities`.
    pub fn with_identities(identities: Vec<Identity>) -> Self {
        Self { keys: Vec::new(), identities, predicate_types: default_types(), require_tlog: false }
    }

    /// Whether `t` is a predicate type this trust accepts.
    pub fn accepts_type(&self, t: &str) -> bool {
        self.predicate_types.iter().any(|p| match p.as_str() {
            "spdx" => t.starts_with(SPDX_PREFIX),
            "cyclonedx" => t.starts_with(CYCLONEDX_PREFIX),
            "cosign-custom" => t == COSIGN_CUSTOM,
            exact => exact == t,
        })
    }
}

fn default_types() -> Vec<String> {
    vec!["spdx".into(), "cyclonedx".into()]
}

/// One `[[image]]` of the policy.
#[derive(Clone, Debug)]
pub struct Rule {
    pub pattern: String,
    pub trust: Trust,
    pub require: bool,
    pub on_missing: OnMissing,
}

/// The whole policy.
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    image: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    pattern: String,
    #[serde(default)]
    keys: Vec<PathBuf>,
    #[serde(default)]
    keyless: Vec<RawIdentity>,
    #[serde(default)]
    predicate_types: Option<Vec<String>>,
    #[serde(default = "yes")]
    require: bool,
    #[serde(default)]
    on_missing: OnMissing,
    #[serde(default)]
    require_tlog: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    issuer: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    subject_regex: Option<String>,
    trusted_root: PathBuf,
}

impl TrustPolicy {
    /// Reads a policy file; keys and trusted roots are loaded now, so a bad
    /// one stops the start, not the first container.
    pub fn load(path: &Path) -> Result<Self, AttestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| AttestError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses policy text; relative paths are resolved beside `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, AttestError> {
        let at = |offset: usize, message: String| {
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rfind('\n').map_or(before.len(), |n| before.len() - n - 1) + 1;
            AttestError::Policy { path: path.to_owned(), line, column, message }
        };
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| at(e.span().map_or(0, |s| s.start), e.message().to_owned()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let span_of = |needle: &str| text.find(needle).unwrap_or(0);
        let mut rules = Vec::new();
        let mut roots: Vec<(PathBuf, Arc<TrustedRoot>)> = Vec::new();
        for r in raw.image {
            let here = span_of(&r.pattern);
            let mut keys = Vec::new();
            for k in &r.keys {
                let p = dir.join(k);
                let pem = std::fs::read_to_string(&p)
                    .map_err(|source| AttestError::Read { path: p.clone(), source })?;
                let key = PublicKey::from_pem(&pem)
                    .map_err(|message| AttestError::Key { path: p.clone(), message })?;
                keys.push(TrustedKey { name: p.display().to_string(), key });
            }
            let mut identities = Vec::new();
            for i in r.keyless {
                let subject = match (i.subject, i.subject_regex) {
                    (Some(s), None) => SubjectMatch::Exact(s),
                    (None, Some(re)) => SubjectMatch::Regex(
                        Regex::new(&re).map_err(|e| at(span_of(&re), format!("subject_regex: {e}")))?,
                    ),
                    _ => {
                        return Err(at(
                            span_of(&i.issuer),
                            "a keyless identity needs exactly one of `subject` and `subject_regex`".into(),
                        ));
                    }
                };
                let p = dir.join(&i.trusted_root);
                let root = match roots.iter().find(|(q, _)| *q == p) {
                    Some((_, r)) => Arc::clone(r),
                    None => {
                        let r = Arc::new(TrustedRoot::load(&p)?);
                        roots.push((p, Arc::clone(&r)));
                        r
                    }
                };
                identities.push(Identity { issuer: i.issuer, subject, root });
            }
            if r.require && keys.is_empty() && identities.is_empty() {
                return Err(at(
                    here,
                    format!(
                        "image `{}` requires a signed SBOM but trusts no key and no keyless identity",
                        r.pattern
                    ),
                ));
            }
            let predicate_types = r.predicate_types.unwrap_or_else(default_types);
            let trust = Trust { keys, identities, predicate_types, require_tlog: r.require_tlog };
            rules.push(Rule { pattern: r.pattern, trust, require: r.require, on_missing: r.on_missing });
        }
        Ok(Self { rules })
    }

    /// The first rule whose pattern `matches` (the caller matches a pattern
    /// against what it knows of the image).
    pub fn rule_for(&self, matches: impl Fn(&str) -> bool) -> Option<&Rule> {
        self.rules.iter().find(|r| matches(&r.pattern))
    }
}
