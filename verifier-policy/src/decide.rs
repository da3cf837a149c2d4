//! Which rule applies to a container, and what it means for one finding.
//!
//! **First match wins.** Rules are tried in the order of the file and the
//! first whose every condition holds decides; none: `[defaults]`. Chosen
//! over "most specific wins" because an operator can read the answer off
//! the file top to bottom, as with firewall rules, and no two rules can
//! tie; put narrow rules first. `check` rejects a rule placed after a rule
//! that matches everything.
//!
//! **Unknown facts never match.** A condition on a fact the runtime did not
//! give (no pod namespace for a plain runc container, no pod labels: see
//! docs/policy.md for which runtimes give them) does not hold, so the rule
//! is passed over and `why` says so. A policy can then not be dodged by a
//! container that hides its labels: narrow rules should loosen, not tighten.

use std::{collections::BTreeMap, time::SystemTime};

use serde::Serialize;

use crate::{
    duration,
    policy::{DEFAULT_RULE, Exception, ExceptionMatch, Matcher, Mode, Policy},
    staging::CleanSince,
};

/// What is known about a container when a policy is applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    pub image_name: Option<String>,
    pub image_digest: Option<String>,
    /// Kubernetes namespace of the pod.
    pub namespace: Option<String>,
    /// Pod labels; `None` when the runtime does not say (not "no labels").
    pub labels: Option<BTreeMap<String, String>>,
    pub container: Option<String>,
}

impl Workload {
    /// The key staging history is kept under: the image digest, else its
    /// name, else the container name.
    pub fn stage_key(&self) -> Option<String> {
        self.image_digest.clone().or_else(|| self.image_name.clone()).or_else(|| self.container.clone())
    }
}

/// The rule that applies to a container, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// The rule's name, `default` when none matched.
    pub rule: String,
    pub mode: Mode,
    pub block_verdicts: Vec<String>,
    /// Writes to the image's verified files are blocked too (`enforce`).
    pub deny_writes: bool,
    /// `enforce` that only reports `would-block` (staging not yet clean).
    pub dry_run: bool,
    #[serde(serialize_with = "exceptions_json")]
    pub exceptions: Vec<Exception>,
    pub why: Vec<String>,
}

/// What to do about one finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Recorded, no alert (observe mode, or excepted).
    Observe,
    Alert,
    /// Alert and block.
    Block,
    /// Alert; would have been blocked (dry run, staging).
    WouldBlock,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Observe => "observe",
            Action::Alert => "alert",
            Action::Block => "block",
            Action::WouldBlock => "would-block",
        }
    }

    /// Whether the finding goes to the alert stream.
    pub fn alerts(self) -> bool {
        self != Action::Observe
    }
}

/// The facts of one finding that a policy looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Finding<'a> {
    /// Verdict name (`unknown-binary`, ...).
    pub verdict: &'a str,
    pub path: Option<&'a str>,
    /// SHA-256 seen, hex.
    pub sha256: Option<&'a str>,
    /// Package name and purl the SBOM lists the file in.
    pub package: Option<&'a str>,
    pub purl: Option<&'a str>,
}

/// The action for a finding, and the exception that made it `observe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement<'d> {
    pub action: Action,
    pub exception: Option<&'d Exception>,
}

impl Policy {
    /// The rule for `w`. `history`: how long its image has been clean
    /// (staging); `None` when unknown, which keeps a staged rule in dry run.
    pub fn decide(&self, w: &Workload, history: Option<&CleanSince>, now: SystemTime) -> Decision {
        let mut why = Vec::new();
        for rule in &self.rules {
            match unmet(&rule.matcher, w) {
                Some(reason) => why.push(format!("rule {}: {reason}", rule.name)),
                None => {
                    why.push(format!("rule {} matches: {}", rule.name, describe(&rule.matcher)));
                    let mut dry_run = false;
                    if let (Mode::Enforce, Some(audit)) = (rule.mode, rule.audit_for) {
                        let clean = history.map(|h| h.clean_for(now));
                        dry_run = clean.is_none_or(|c| c < audit);
                        why.push(match clean {
                            None => format!(
                                "staged: enforce after {} clean; no history yet, so dry run",
                                duration::format(audit)
                            ),
                            Some(c) if dry_run => format!(
                                "staged: clean for {} of {}, so dry run",
                                duration::format(c),
                                duration::format(audit)
                            ),
                            Some(c) => format!(
                                "staged: clean for {} (>= {}), so enforcing",
                                duration::format(c),
                                duration::format(audit)
                            ),
                        });
                    }
                    return Decision {
                        rule: rule.name.clone(),
                        mode: rule.mode,
                        block_verdicts: rule.block_verdicts.clone(),
                        deny_writes: rule.deny_writes,
                        dry_run,
                        exceptions: rule.exceptions.iter().chain(&self.exceptions).cloned().collect(),
                        why,
                    };
                }
            }
        }
        why.push(format!("no rule matches: [defaults] mode {}", self.default_mode.name()));
        Decision {
            rule: DEFAULT_RULE.to_owned(),
            mode: self.default_mode,
            block_verdicts: self.default_block.clone(),
            deny_writes: false,
            dry_run: false,
            exceptions: self.exceptions.clone(),
            why,
        }
    }
}

impl Decision {
    /// What to do about `f`: an exception that matches makes it `observe`;
    /// otherwise the mode, and for `enforce` whether its verdict blocks.
    pub fn judge(&self, f: &Finding<'_>) -> Judgement<'_> {
        if let Some(e) = self.exceptions.iter().find(|e| excepts(e, f)) {
            return Judgement { action: Action::Observe, exception: Some(e) };
        }
        let action = match self.mode {
            Mode::Observe => Action::Observe,
            Mode::Alert => Action::Alert,
            Mode::Enforce if !self.block_verdicts.iter().any(|v| v == f.verdict) => Action::Alert,
            Mode::Enforce if self.dry_run => Action::WouldBlock,
            Mode::Enforce => Action::Block,
        };
        Judgement { action, exception: None }
    }
}

fn excepts(e: &Exception, f: &Finding<'_>) -> bool {
    match &e.matches {
        ExceptionMatch::Path(g) => f.path.is_some_and(|p| g.matches(p)),
        ExceptionMatch::Sha256(h) => f.sha256.is_some_and(|s| s.eq_ignore_ascii_case(h)),
        ExceptionMatch::Package(p) if p.starts_with("pkg:") => f.purl.is_some_and(|u| {
            // Without `@version` the exception holds for every version.
            u == p || (!p.contains('@') && u.split(['@', '?', '#']).next() == Some(p.as_str()))
        }),
        ExceptionMatch::Package(p) => f.package == Some(p.as_str()),
    }
}

/// `None` when every condition holds, else the first that does not.
fn unmet(m: &Matcher, w: &Workload) -> Option<String> {
    let any = |list: &[crate::glob::Glob], value: Option<&str>, what: &str| -> Option<String> {
        if list.is_empty() {
            return None;
        }
        let pats = list.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ");
        match value {
            None => Some(format!("{what} unknown, does not match [{pats}]")),
            Some(v) if what == "image" && list.iter().any(|g| image_matches(g, v)) => None,
            Some(v) if list.iter().any(|g| g.matches(v)) => None,
            Some(v) => Some(format!("{what} {v} not in [{pats}]")),
        }
    };
    let digest = w.image_digest.as_deref().map(str::to_ascii_lowercase);
    any(&m.images, w.image_name.as_deref(), "image")
        .or_else(|| any(&m.digests, digest.as_deref(), "digest"))
        .or_else(|| any(&m.namespaces, w.namespace.as_deref(), "namespace"))
        .or_else(|| any(&m.containers, w.container.as_deref(), "container"))
        .or_else(|| {
            m.labels.iter().find_map(|(k, g)| match w.labels.as_ref().map(|l| l.get(k)) {
                None => Some(format!("pod labels unknown, does not match {k}={}", g.as_str())),
                Some(None) => Some(format!("pod has no label {k}")),
                Some(Some(v)) if g.matches(v) => None,
                Some(Some(v)) => Some(format!("label {k}={v} does not match {}", g.as_str())),
            })
        })
}

/// An image pattern matches the reference as given, or without its tag
/// and digest (`registry.example/app` matches `registry.example/app:1.2`).
fn image_matches(g: &crate::glob::Glob, reference: &str) -> bool {
    let name = reference.split('@').next().unwrap_or(reference);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let untagged = match name[last_slash..].find(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    g.matches(reference) || g.matches(name) || g.matches(untagged)
}

impl Matcher {
    /// `image a|b, namespace x, label k=v`, or `every container`.
    pub fn describe(&self) -> String {
        describe(self)
    }
}

fn describe(m: &Matcher) -> String {
    let mut parts = Vec::new();
    let list = |l: &[crate::glob::Glob]| l.iter().map(|g| g.as_str()).collect::<Vec<_>>().join("|");
    for (what, l) in [
        ("image", &m.images),
        ("digest", &m.digests),
        ("namespace", &m.namespaces),
        ("container", &m.containers),
    ] {
        if !l.is_empty() {
            parts.push(format!("{what} {}", list(l)));
        }
    }
    parts.extend(m.labels.iter().map(|(k, g)| format!("label {k}={}", g.as_str())));
    if parts.is_empty() { "every container".into() } else { parts.join(", ") }
}

fn exceptions_json<S: serde::Serializer>(list: &[Exception], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq as _;
    let mut seq = s.serialize_seq(Some(list.len()))?;
    for e in list {
        let mut m = BTreeMap::new();
        m.insert("rule", e.scope.clone());
        m.insert("match", e.describe());
        m.insert("reason", e.reason.clone());
        seq.serialize_element(&m)?;
    }
    seq.end()
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
