//! From what the agent decided to alert findings: the exec (or mapping)
//! with its verdict and container, or a write-open of a shipped file.
//!
//! The facts a finding needs from the file system are read here, not in
//! `alert`: argv from `/proc` when the kernel did not carry it (mappings,
//! write-opens), and whether the file is in the container's writable layer.

use std::path::Path;

use crate::{
    alert::finding::{FileFacts, FileId, Finding, Process, Response, Subject, Workload},
    attribution::Attribution,
    verify::verdict::Verdict,
};

use super::{
    enforce::Block,
    verification::{Verified, Written},
};

/// The finding for a verified exec or mapping (`subject`), if it is drift.
pub(crate) fn of_verified(
    subject: Subject,
    v: &Verified,
    attribution: &Attribution,
    node: &str,
) -> Option<Finding> {
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
    let info = v.info.as_deref();
    let workload = Workload::of(container, e.cgroup_id, info);
    let mut f = Finding::from_decision(subject, d, process, workload, info, e.unix_ns, node)?;
    f.file.identity =
        e.exe.map(|x| FileId { dev: verifier_sensor::events::kernel_dev_to_user(x.dev), ino: x.ino });
    let writable = info.and_then(|i| i.writable_layer.as_deref());
    f.file.in_writable_layer = writable.map(|w| in_layer(w, &d.path));
    Some(f)
}

/// The finding for a write-open of a file the image shipped.
pub(crate) fn of_written(w: &Written, attribution: &Attribution, node: &str) -> Finding {
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
        unjudged_new: None,
        policy: None,
        response: None,
    }
}

/// The finding for a block (or a dry-run's would-block): the blocked
/// file's verdict when it was judged, else `unverifiable` ("blocked before
/// it could be judged"), with the action, mechanism and rule.
pub(crate) fn of_block(b: &Block, node: &str) -> Finding {
    let container = match &b.attribution {
        Attribution::Container(c) => Some(c),
        _ => None,
    };
    let r = &b.event.record;
    let d = b.decision.as_deref();
    let verdict = b.verdict().unwrap_or(Verdict::Unverifiable);
    let reason = match d {
        Some(d) => format!("{} ({}: {})", d.judgement.reason, b.action(), b.reasons().join(", ")),
        None => format!("{} before the agent judged the file: {}", b.action(), b.reasons().join(", ")),
    };
    Finding {
        unix_ns: b.event.unix_ns,
        node: node.to_owned(),
        subject: match b.event_name() {
            "library" => Subject::Library,
            "write" => Subject::Write,
            _ => Subject::Exec,
        },
        verdict,
        severity: verdict.severity(),
        reason,
        workload: Workload::of(container, r.cgroup_id, b.info.as_deref()),
        process: Process {
            pid: r.tgid,
            comm: verifier_common::decode::comm_bytes(&r.comm).to_vec(),
            ..Process::default()
        },
        file: FileFacts {
            path: d.map(|d| d.path.clone()).unwrap_or_default(),
            sha256: d.and_then(|d| d.sha256).map(hex::encode),
            file_verdict: d.map(|d| d.judgement.verdict).filter(|&v| v != verdict),
            identity: Some(FileId {
                dev: verifier_sensor::events::kernel_dev_to_user(r.identity.dev),
                ino: r.identity.ino,
            }),
            ..FileFacts::default()
        },
        script: None,
        sbom_sources: b.info.as_ref().map(|i| i.sbom_sources.clone()).unwrap_or_default(),
        sbom_format: b.info.as_ref().and_then(|i| i.sbom_format.clone()),
        unjudged_new: None,
        policy: None,
        response: Some(Response { action: b.action(), mechanism: b.mechanism(), rule: b.rule.clone() }),
    }
}

/// Whether `path` (inside the container) exists in the writable layer
/// `upper` (a host directory): created, copied up or changed in the
/// container. A whiteout or an absent entry is not.
fn in_layer(upper: &Path, path: &[u8]) -> bool {
    // Resolved beneath the layer: a symlinked directory planted in the
    // layer cannot make the agent look at the host's files.
    let Ok(layer) = verifier_sbom::fsroot::RootDir::open(upper) else { return false };
    layer
        .open_path(path.strip_prefix(b"/").unwrap_or(path))
        .and_then(|f| f.metadata())
        .is_ok_and(|m| !m.file_type().is_dir())
}

/// Arguments of a running process (`/proc/<pid>/cmdline`), `None` once
/// it has exited.
fn read_argv(proc_root: &Path, pid: u32) -> Option<Vec<Vec<u8>>> {
    let raw = std::fs::read(proc_root.join(pid.to_string()).join("cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    let trimmed = raw.strip_suffix(b"\0").unwrap_or(&raw);
    Some(trimmed.split(|&b| b == 0).map(<[u8]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_of_this_process_and_of_none() {
        let argv = read_argv(Path::new("/proc"), std::process::id()).expect("this process runs");
        let first = std::env::args_os().next().expect("argv[0]");
        assert_eq!(argv[0], std::os::unix::ffi::OsStrExt::as_bytes(first.as_os_str()));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("7")).expect("pid dir");
        std::fs::write(dir.path().join("7/cmdline"), b"").expect("cmdline");
        assert_eq!(read_argv(dir.path(), 7), None, "a zombie has an empty cmdline");
        assert_eq!(read_argv(dir.path(), 8), None, "gone");
    }

    #[test]
    fn only_files_in_the_upper_layer_count() {
        let upper = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(upper.path().join("usr/bin")).expect("dirs");
        std::fs::write(upper.path().join("usr/bin/dropped"), b"x").expect("file");
        assert!(in_layer(upper.path(), b"/usr/bin/dropped"));
        assert!(!in_layer(upper.path(), b"/usr/bin/shipped"), "absent");
        assert!(!in_layer(upper.path(), b"/usr/bin"), "a directory copied up is not the file");
    }
}
