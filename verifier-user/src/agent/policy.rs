//! The policy in the agent (`--policy FILE`): for each drift finding,
//! which rule applies to its container and what that rule does with it;
//! following edits of the file.
//!
//! `observe` records the exec with its verdict and sends no alert; `alert`
//! is the behaviour without a policy; `enforce` alerts and, for a verdict
//! it blocks, says `block` (`would-block` while staged or in dry run):
//! what the rule asks. Blocking itself belongs to the enforcement side
//! (`agent/enforce.rs`), which asks [`Policies::enforcement_for`] when a
//! container is resolved; whether a block happened is its `block` record's
//! to say. An exception that matches makes the finding `observe` with the
//! exception named in the record, and lets the kernel allow the file from
//! then on.
//!
//! Staging (enforce after a clean period) needs to know since when each
//! image has been clean: every checked exec of a container marks its image
//! seen, every finding that would block marks drift. That history is in
//! memory; after a restart the clean period starts again (dry run longer,
//! never enforcement sooner).

use std::{path::Path, time::SystemTime};

use verifier_policy::{Action, Enforcement, Policy, PolicyError, Reload, Reloader, Staging, Workload};

use crate::{
    alert::finding::Finding,
    output::{
        self,
        policy::{ExceptionJson, PolicyJson, PolicyRecordJson, PolicyStats, SCHEMA_POLICY},
        warning::WarningJson,
    },
    verify::containers::ContainerInfo,
};

use super::write_line;

/// What the policy made of one finding.
pub(crate) struct Judged {
    pub policy: PolicyJson,
    pub exception: Option<ExceptionJson>,
    /// Whether the finding goes to the alert stream.
    pub alert: bool,
}

/// The policy in force, its file, and the staging history.
pub(crate) struct Policies {
    reloader: Reloader,
    staging: Staging,
    pub stats: PolicyStats,
}

impl Policies {
    /// Loads `path`: an invalid file here stops the agent.
    pub(crate) fn start(path: &Path) -> Result<Self, PolicyError> {
        Ok(Self {
            reloader: Reloader::start(path)?,
            staging: Staging::default(),
            stats: PolicyStats::default(),
        })
    }

    /// Whether any rule (or the default) enforces: the blocking side is
    /// set up at start only then. A reload that adds the first `enforce`
    /// rule needs a restart (said in docs/policy.md).
    pub(crate) fn may_enforce(&self) -> bool {
        self.policy().may_enforce()
    }

    fn policy(&self) -> &Policy {
        self.reloader.policy()
    }

    /// The `policy` record for the policy in force.
    pub(crate) fn record<'a>(
        &'a self,
        node: &'a str,
        event: &'static str,
        unix_ns: i128,
    ) -> PolicyRecordJson<'a> {
        let p = self.policy();
        PolicyRecordJson {
            schema: SCHEMA_POLICY,
            kind: "policy",
            time: output::rfc3339(unix_ns),
            node,
            event,
            file: self.reloader.path().display().to_string(),
            version: p.version,
            sha256: &p.sha256,
            rules: p.rules.len(),
        }
    }

    /// Follows the file: a good edit prints a `policy` record, a bad one a
    /// warning (and a log line); the last good policy stays in force.
    pub(crate) fn poll(
        &mut self,
        out: &mut impl std::io::Write,
        node: &str,
        unix_ns: i128,
    ) -> anyhow::Result<()> {
        match self.reloader.poll() {
            None => Ok(()),
            Some(Reload::Loaded(_)) => {
                let p = self.policy();
                let (rules, sha) = (p.rules.len(), &p.sha256);
                tracing::info!(
                    "policy {} reloaded: {rules} rules, sha256 {sha}",
                    self.reloader.path().display()
                );
                self.stats.reloads += 1;
                write_line(out, &self.record(node, "reload", unix_ns))
            }
            Some(Reload::Failed(e)) => {
                self.stats.reload_errors += 1;
                let kept = &self.policy().sha256;
                let message = format!(
                    "{e}\nthe last good policy (sha256 {kept}) stays in force; fix the file and it is read again"
                );
                tracing::warn!("{message}");
                let file = self.reloader.path().display().to_string();
                write_line(out, &WarningJson::policy_reload_failed(&file, message))
            }
        }
    }

    /// An exec of this container was checked: its image's clean period
    /// starts (if it has not).
    pub(crate) fn seen(&mut self, info: Option<&ContainerInfo>) {
        if let Some(key) = workload(info).stage_key() {
            self.staging.seen(&key, SystemTime::now());
        }
    }

    /// What the rule for `f`'s container does with it.
    pub(crate) fn judge(&mut self, f: &Finding, info: Option<&ContainerInfo>) -> Judged {
        let now = SystemTime::now();
        let w = workload(info);
        let key = w.stage_key();
        let d = self.policy().decide(&w, key.as_deref().and_then(|k| self.staging.get(k)), now);
        let path = String::from_utf8_lossy(&f.file.path);
        let package = f.file.package.as_ref();
        let facts = verifier_policy::Finding {
            verdict: f.verdict.name(),
            path: Some(&path),
            sha256: f.file.sha256.as_deref(),
            package: package.map(|p| p.name.as_str()),
            purl: package.and_then(|p| p.purl.as_deref()),
        };
        let j = d.judge(&facts);
        let counter = match (j.action, j.exception) {
            (_, Some(_)) => &mut self.stats.excepted,
            (Action::Observe, None) => &mut self.stats.observed,
            (Action::Alert, None) => &mut self.stats.alerted,
            (Action::Block | Action::WouldBlock, None) => &mut self.stats.would_block,
        };
        *counter += 1;
        if matches!(j.action, Action::Block | Action::WouldBlock)
            && let Some(k) = &key
        {
            self.staging.drift(k, now);
        }
        // What the rule asks; whether the kernel blocked it (the container's
        // enforcement active, the mechanism available) is the `block`
        // record's to say.
        let action = j.action;
        Judged {
            policy: PolicyJson { rule: d.rule.clone(), mode: d.mode.name(), action: action.name() },
            exception: j.exception.map(|e| ExceptionJson {
                rule: e.scope.clone(),
                matched: e.describe(),
                reason: e.reason.clone(),
            }),
            alert: action.alerts(),
        }
    }

    /// For the enforcement side: whether the rule for this container
    /// enforces, which verdicts, and whether only as a dry run.
    pub(crate) fn enforcement_for(&self, info: Option<&ContainerInfo>) -> Option<Enforcement> {
        let w = workload(info);
        let history = w.stage_key().and_then(|k| self.staging.get(&k).copied());
        self.policy().enforcement_for(&w, history.as_ref(), SystemTime::now())
    }
}

/// What the policy matches on, from what the runtime said.
fn workload(info: Option<&ContainerInfo>) -> Workload {
    let Some(i) = info else { return Workload::default() };
    Workload {
        image_name: i.image_name.clone(),
        image_digest: i.image_digest.clone(),
        namespace: i.pod_namespace.clone(),
        labels: i.pod_labels.clone(),
        container: i.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{alert::finding::Workload as Seen, verify::verdict::Verdict};

    /// Every drift verdict the agent gives can be named in a policy.
    #[test]
    fn the_policy_knows_every_drift_verdict() {
        use Verdict::*;
        for v in Verdict::ALL {
            // Exhaustive: a new verdict fails to compile here until listed.
            let drift = match v {
                Ok => false,
                UnknownBinary | ModifiedBinary | Fileless | Unverifiable | RelocatedBinary | SbomGap
                | ImageFileWritten | LibraryDrift | ExecFlood => true,
            };
            assert_eq!(verifier_policy::DRIFT_VERDICTS.contains(&v.name()), drift, "{}", v.name());
        }
        assert_eq!(verifier_policy::DRIFT_VERDICTS.len(), Verdict::ALL.len() - 1);
    }

    fn finding(verdict: Verdict, path: &str) -> Finding {
        let mut f = Finding::exec_flood(Seen::default(), None, 1, 0, "node");
        f.verdict = verdict;
        f.file.path = path.as_bytes().to_vec();
        f.file.sha256 = Some("ab".repeat(32));
        f
    }

    fn info(image: &str, container: &str) -> ContainerInfo {
        ContainerInfo {
            image_name: Some(image.into()),
            name: Some(container.into()),
            ..ContainerInfo::default()
        }
    }

    #[test]
    fn modes_exceptions_and_staging_decide_records_and_alerts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.toml");
        let text = format!(
            r#"version = 1
[[rule]]
name = "quiet"
mode = "observe"
[rule.match]
containers = ["quiet"]
[[rule]]
name = "strict"
mode = "enforce"
stage = {{ audit_for = "1h" }}
[rule.match]
images = ["strict/*"]
[[exception]]
sha256 = "{}"
reason = "known tool"
"#,
            "cd".repeat(32)
        );
        std::fs::write(&path, text).expect("write");
        let mut p = Policies::start(&path).expect("valid");

        let j = p.judge(&finding(Verdict::UnknownBinary, "/tmp/x"), Some(&info("any", "quiet")));
        assert_eq!((j.policy.rule.as_str(), j.policy.action, j.alert), ("quiet", "observe", false));
        let j = p.judge(&finding(Verdict::UnknownBinary, "/tmp/x"), Some(&info("other", "web")));
        assert_eq!((j.policy.rule.as_str(), j.policy.action, j.alert), ("default", "alert", true));

        let strict = info("strict/app:1", "s");
        p.seen(Some(&strict));
        let j = p.judge(&finding(Verdict::ModifiedBinary, "/bin/x"), Some(&strict));
        assert_eq!((j.policy.mode, j.policy.action, j.alert), ("enforce", "would-block", true));
        let j = p.judge(&finding(Verdict::SbomGap, "/bin/x"), Some(&strict));
        assert_eq!(j.policy.action, "alert", "not a blocking verdict");

        let mut excused = finding(Verdict::UnknownBinary, "/tmp/tool");
        excused.file.sha256 = Some("CD".repeat(32));
        let j = p.judge(&excused, Some(&strict));
        assert!(!j.alert);
        let e = j.exception.expect("excepted");
        assert_eq!((e.rule.as_str(), e.reason.as_str()), ("global", "known tool"));
        assert_eq!(
            p.stats,
            PolicyStats { observed: 1, alerted: 2, would_block: 1, excepted: 1, ..PolicyStats::default() }
        );
    }
}
