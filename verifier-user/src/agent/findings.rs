//! From what the agent decided to alert findings: the exec (or mapping)
//! with its verdict and container, or a write-open of a shipped file.

use std::path::Path;

use crate::{
    alert::finding::{FileFacts, Finding, Process, Subject, Workload, read_argv},
    container::Attribution,
    verify::verdict::Verdict,
};

use super::drift::{Verified, Written};

/// The finding for a verified exec or mapping (`subject`), if it is drift.
pub fn of_verified(subject: Subject, v: &Verified, attribution: &Attribution, node: &str) -> Option<Finding> {
    let d = v.decision.as_ref()?;
    let container = match attribution {
        Attribution::Container(c) => Some(c),
        _ => None,
    };
    let e = &v.event;
    let process = Process {
        pid: e.tgid,
        ppid: e.ppid,
        uid: e.uid,
        gid: e.gid,
        comm: e.comm.clone(),
        // As the kernel read them at the exec; for a mapping, from the
        // process now (gone: `argv: null`).
        argv: e.argv.clone().or_else(|| read_argv(Path::new("/proc"), e.tgid)),
        exe_path: e.filename.clone(),
    };
    let workload = Workload::of(container, e.cgroup_id, v.info.as_deref());
    Finding::from_decision(subject, d, process, workload, v.info.as_deref(), e.unix_ns, node)
}

/// The finding for a write-open of a file the image shipped.
pub fn of_written(w: &Written, attribution: &Attribution, node: &str) -> Finding {
    let container = match attribution {
        Attribution::Container(c) => Some(c),
        _ => None,
    };
    let verdict = Verdict::ImageFileWritten;
    Finding {
        unix_ns: w.unix_ns,
        node: node.to_owned(),
        subject: Subject::Write,
        verdict,
        severity: verdict.severity(),
        reason: "a file the image shipped (verified ok) was opened for writing in the container".into(),
        workload: Workload::of(container, w.record.cgroup_id, w.info.as_deref()),
        process: Process {
            pid: w.record.tgid,
            comm: verifier_common::decode::comm_bytes(&w.record.comm).to_vec(),
            argv: read_argv(Path::new("/proc"), w.record.tgid),
            ..Process::default()
        },
        file: FileFacts {
            path: w.path.clone().unwrap_or_default(),
            sha256: w.sha256.map(hex::encode),
            ..FileFacts::default()
        },
        script: None,
        sbom_sources: w.info.as_ref().map(|i| i.sbom_sources.clone()).unwrap_or_default(),
        sbom_format: w.info.as_ref().and_then(|i| i.sbom_format.clone()),
    }
}
