//! A finding: one drift event with everything that explains it, in plain
//! data, independent of how it is written out (`format`) or where (sinks).
//!
//! Bytes that came from the kernel or a file system (paths, argv, comm) are
//! kept exactly; the formats decide how to show bytes that are not UTF-8.
//!
//! Building a finding reads nothing: facts that need the file system (argv
//! of a running process, whether the file is in the writable layer) are
//! gathered by the caller, so this stays cheap and testable on the event
//! loop.

use verifier_sbom::PackageRef;

use crate::{
    attribution::ContainerRef,
    verify::{
        containers::ContainerInfo,
        engine::Decision,
        verdict::{Severity, Verdict, as_library},
    },
};

/// What kind of event the finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// A file was executed.
    Exec,
    /// A file was mapped as code.
    Library,
    /// A verified file was opened for writing.
    Write,
}

impl Subject {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Subject::Exec => "exec",
            Subject::Library => "library",
            Subject::Write => "write",
        }
    }
}

/// The process involved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: Vec<u8>,
    /// Arguments, when known (as the kernel read them at the exec, or from
    /// the process; `None` when it had already exited).
    pub argv: Option<Vec<Vec<u8>>>,
    /// The path as executed (what the kernel was given).
    pub exe_path: Vec<u8>,
}

/// The container, image and pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Workload {
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub runtime: Option<String>,
    pub cgroup_id: u64,
    pub image_name: Option<String>,
    pub image_digest: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
}

/// The file judged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileFacts {
    /// Canonical path inside the container.
    pub path: Vec<u8>,
    /// SHA-256 seen, hex.
    pub sha256: Option<String>,
    /// `alg:hex` the SBOM (or image content) expected.
    pub expected: Option<String>,
    /// Only SHA-1/MD5 was available to compare.
    pub weak_digest: bool,
    pub package: Option<PackageRef>,
    /// The file sits in the container's writable layer (created or changed
    /// in the container); `None` when the layers are unknown.
    pub in_writable_layer: Option<bool>,
    /// `relocated-binary`: SBOM paths with these bytes.
    pub listed_at: Vec<String>,
    /// For a library: the file's own verdict behind `library-drift`.
    pub file_verdict: Option<Verdict>,
    /// The kernel's identity of the file that ran or was mapped, when it
    /// read one: what tells two nameless files (memfd execs) apart.
    pub identity: Option<FileId>,
}

/// A file as the kernel names it: device (as `stat(2)` reports
/// `st_dev`) and inode number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// One drift finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Unix time of the event, nanoseconds.
    pub unix_ns: i128,
    pub node: String,
    pub subject: Subject,
    pub verdict: Verdict,
    pub severity: Severity,
    pub reason: String,
    pub workload: Workload,
    pub process: Process,
    pub file: FileFacts,
    /// The script of a `#!` exec, judged on its own: (path, verdict, sha256).
    pub script: Option<(Vec<u8>, Verdict, Option<String>)>,
    pub sbom_sources: Vec<String>,
    pub sbom_format: Option<String>,
    /// `exec-flood`: new files that ran unjudged in the throttle episode.
    pub unjudged_new: Option<u64>,
    /// The policy rule that judged it and what it did (with `--policy`).
    pub policy: Option<crate::output::policy::PolicyJson>,
    /// What was done about it, when more than reporting: a block.
    pub response: Option<Response>,
}

/// A response to drift beyond the report (enforcement).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    /// `blocked`, or `would-block` in dry-run.
    pub action: &'static str,
    /// How: `tracepoint-kill`.
    pub mechanism: &'static str,
    /// What selected enforcement for this container.
    pub rule: String,
}

impl Finding {
    /// The finding for an exec or mapping decision, or `None` when it is
    /// not drift (the file and, for a script, the script are `ok`).
    /// `file.in_writable_layer` is left `None` for the caller to fill.
    pub(crate) fn from_decision(
        subject: Subject,
        d: &Decision,
        process: Process,
        workload: Workload,
        info: Option<&ContainerInfo>,
        unix_ns: i128,
        node: &str,
    ) -> Option<Self> {
        let script_drift = d.script.as_ref().is_some_and(|s| s.judgement.verdict.is_drift());
        if !d.judgement.verdict.is_drift() && !script_drift {
            return None;
        }
        let (mut verdict, mut reason) = (d.judgement.verdict, d.judgement.reason.clone());
        if !verdict.is_drift()
            && let Some(s) = &d.script
        {
            // The interpreter is fine; the script is what drifted.
            verdict = s.judgement.verdict;
            reason = format!("script: {}", s.judgement.reason);
        }
        let (mut file_verdict, mut severity) = (None, verdict.severity());
        if subject == Subject::Library {
            let lib = as_library(verdict, &reason);
            (verdict, file_verdict, reason, severity) =
                (lib.verdict, lib.file_verdict, lib.reason, lib.severity);
        }
        Some(Self {
            unix_ns,
            node: node.to_owned(),
            subject,
            verdict,
            severity,
            reason,
            workload,
            process,
            file: FileFacts {
                in_writable_layer: None,
                path: d.path.clone(),
                sha256: d.sha256.map(hex::encode),
                expected: d.judgement.expected.clone(),
                weak_digest: d.judgement.weak,
                package: d.judgement.package.clone(),
                listed_at: d.judgement.listed_at.clone(),
                file_verdict,
                identity: None,
            },
            script: d
                .script
                .as_ref()
                .map(|s| (s.path.clone(), s.judgement.verdict, s.sha256.map(hex::encode))),
            sbom_sources: info.map(|i| i.sbom_sources.clone()).unwrap_or_default(),
            sbom_format: info.and_then(|i| i.sbom_format.clone()),
            unjudged_new: None,
            policy: None,
            response: None,
        })
    }

    /// `exec-flood`: a throttle episode in `workload`'s container ran
    /// `unjudged` new files past the kernel's per-window bound; they were
    /// neither sent nor judged. Names no file, so it is never merged with
    /// another alert (see `dedup`).
    pub(crate) fn exec_flood(
        workload: Workload,
        info: Option<&ContainerInfo>,
        unjudged: u64,
        unix_ns: i128,
        node: &str,
    ) -> Self {
        let verdict = Verdict::ExecFlood;
        Self {
            unix_ns,
            node: node.to_owned(),
            subject: Subject::Exec,
            verdict,
            severity: verdict.severity(),
            reason: format!(
                "{unjudged} new files ran unjudged during an exec flood: more distinct files in one second than \
                 the throttle sends ({} per window)",
                verifier_common::throttle::NEW_PER_WINDOW
            ),
            workload,
            process: Process::default(),
            file: FileFacts::default(),
            script: None,
            sbom_sources: info.map(|i| i.sbom_sources.clone()).unwrap_or_default(),
            sbom_format: info.and_then(|i| i.sbom_format.clone()),
            unjudged_new: Some(unjudged),
            policy: None,
            response: None,
        }
    }

    /// An image the trust policy requires a signed SBOM for has none that
    /// verifies, and its `on_missing` is `alert`: said once per rejection,
    /// naming no file (never merged with another alert).
    pub(crate) fn attestation_refused(w: &crate::baseline::Warning, unix_ns: i128, node: &str) -> Self {
        let verdict = Verdict::Unverifiable;
        Self {
            unix_ns,
            node: node.to_owned(),
            subject: Subject::Exec,
            verdict,
            severity: Severity::High,
            reason: w.message.clone(),
            workload: Workload {
                image_name: Some(w.image.clone()),
                image_digest: w.rejection.as_ref().and_then(|r| r.digest.clone()),
                ..Workload::default()
            },
            process: Process::default(),
            file: FileFacts::default(),
            script: None,
            sbom_sources: Vec::new(),
            sbom_format: None,
            unjudged_new: None,
            policy: None,
            response: None,
        }
    }

    /// The time as RFC 3339.
    pub(crate) fn time(&self) -> String {
        crate::output::rfc3339(self.unix_ns)
    }
}

impl Workload {
    pub(crate) fn of(container: Option<&ContainerRef>, cgroup_id: u64, info: Option<&ContainerInfo>) -> Self {
        Self {
            container_id: container.map(|c| c.id.clone()),
            container_name: info.and_then(|i| i.name.clone()),
            runtime: container.map(|c| c.runtime.name().to_owned()),
            cgroup_id,
            image_name: info.and_then(|i| i.image_name.clone()),
            image_digest: info.and_then(|i| i.image_digest.clone()),
            pod_name: info.and_then(|i| i.pod_name.clone()),
            pod_namespace: info.and_then(|i| i.pod_namespace.clone()),
        }
    }
}
