//! The host's own processes judged like a container's (`--host-baseline`).
//!
//! A standalone agent on a build host, or a node agent that should also
//! watch the node itself, judges every exec outside a container against
//! the host baseline (`baseline::host`: the dpkg database and/or a host
//! SBOM) with the same engine, verdicts, fast path and alerts a
//! container's exec gets against its image's SBOM.
//!
//! Executable mappings are sent by the kernel only for watched cgroups, so
//! each host cgroup is put in the kernel's `WATCHED` map the first time
//! one of its execs is seen (under the host baseline's fast-path slot):
//! from then on its libraries are judged too, and files proven `ok` are
//! answered in the kernel. A process that was already running in a cgroup
//! before its first exec there has its earlier mappings unjudged.
//!
//! A package transaction (dpkg rewrites its status file) makes the
//! baseline be parsed again under a new key ([`HostJudge::refresh`], once
//! a second and before judging an exec newer than the last check):
//! nothing decided against the old database is reused, and the host
//! cgroups are watched again under the new slot. The files it wrote are
//! judged by their bytes ([`HostJudge::admit`]).

use std::{collections::HashSet, sync::Arc};

use verifier_sbom::{digest, fsroot::RootDir};

use crate::{
    baseline::host::{HostBaseline, HostBaselineError, HostSource},
    verify::engine::Context,
};

/// The host baseline and the host cgroups watched under it.
pub(crate) struct HostJudge {
    baseline: HostBaseline,
    ctx: Arc<Context>,
    cgroups: HashSet<u64>,
    /// When the database was last checked for a transaction (Unix ns).
    checked_ns: i128,
}

/// Why host judging could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostJudgeError {
    #[error("--host-baseline: {0}")]
    Baseline(#[from] HostBaselineError),
    #[error("--host-baseline: the host's root directory could not be opened: {0} (run the agent as root)")]
    Root(std::io::Error),
}

impl HostJudge {
    /// Reads the baseline (blocking: parse it off the event loop).
    pub(crate) fn load(sources: &[HostSource]) -> Result<Self, HostJudgeError> {
        let baseline = HostBaseline::load(sources)?;
        let ctx = context(&baseline)?;
        Ok(Self { baseline, ctx, cgroups: HashSet::new(), checked_ns: 0 })
    }

    /// What host execs are judged against now.
    pub(crate) fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Whether `cgroup_id` is seen for the first time (it is then to be
    /// watched).
    pub(crate) fn first_sight(&mut self, cgroup_id: u64) -> bool {
        self.cgroups.len() < 4096 && self.cgroups.insert(cgroup_id)
    }

    /// The host cgroups seen so far.
    pub(crate) fn cgroups(&self) -> impl Iterator<Item = u64> + '_ {
        self.cgroups.iter().copied()
    }

    /// Prepares a host exec for judging. A binary a transaction just
    /// installed may run before the once-a-second check: the database is
    /// checked for every exec newer than the last check (one `stat`).
    /// Files a transaction wrote are flagged `written` by the kernel (host
    /// cgroups are watched); one written no later than the database was
    /// is judged by its bytes (`HostBaseline::written_by_transaction`).
    /// Returns whether the baseline changed.
    pub(crate) fn admit(&mut self, event: &mut verifier_sensor::events::ExecEvent, now_ns: i128) -> bool {
        let changed = if event.unix_ns > self.checked_ns {
            self.checked_ns = now_ns;
            self.refresh()
        } else {
            false
        };
        if event.written && event.exe.is_some_and(|x| self.baseline.written_by_transaction(&x)) {
            event.written = false;
        }
        changed
    }

    /// Parses the baseline again when the database changed; `true` when
    /// it did (the context has a new key).
    pub(crate) fn refresh(&mut self) -> bool {
        match self.baseline.refresh() {
            Ok(true) => match context(&self.baseline) {
                Ok(ctx) => {
                    tracing::info!("host baseline changed (a package transaction); parsed again");
                    self.ctx = ctx;
                    true
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    false
                }
            },
            Ok(false) => false,
            Err(e) => {
                tracing::warn!("host baseline changed but could not be read again: {e}");
                false
            }
        }
    }
}

fn context(baseline: &HostBaseline) -> Result<Arc<Context>, HostJudgeError> {
    let root = RootDir::open(std::path::Path::new("/")).map_err(HostJudgeError::Root)?;
    let manifest = baseline.manifest.clone();
    Ok(Arc::new(Context {
        key: baseline.key,
        root: Arc::new(root),
        index: Arc::default(),
        any_algs: digest::algs_for_any(&manifest),
        manifest,
        content: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_cgroup_is_watched_once_and_a_changed_baseline_gets_a_new_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("host.md5sums");
        std::fs::write(&file, format!("{}  usr/bin/cc\n", "a".repeat(32))).expect("write");
        let mut h = HostJudge::load(&[HostSource::Sbom(file.clone())]).expect("load");
        assert!(h.context().manifest.get("/usr/bin/cc").is_some());
        assert!(h.first_sight(7));
        assert!(!h.first_sight(7), "a cgroup is watched once");
        assert!(h.first_sight(8));
        let first = h.context().key;
        assert!(!h.refresh(), "nothing changed");
        std::fs::write(&file, format!("{0}  usr/bin/cc\n{0}  usr/bin/ld\n", "b".repeat(32))).expect("write");
        assert!(h.refresh(), "the file changed");
        assert_ne!(h.context().key, first, "nothing decided against the old baseline is reused");
        assert!(h.context().manifest.get("/usr/bin/ld").is_some());
        let mut seen: Vec<u64> = h.cgroups().collect();
        seen.sort_unstable();
        assert_eq!(seen, [7, 8], "watched again under the new slot");
    }

    fn written_event(identity: verifier_common::event::FileIdentity) -> verifier_sensor::events::ExecEvent {
        verifier_sensor::events::ExecEvent {
            unix_ns: 1,
            pid: 1,
            tgid: 1,
            ppid: 1,
            ns_pid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 1,
            mnt_ns: 1,
            pid_ns: 1,
            comm: b"tool".to_vec(),
            filename: b"/usr/bin/tool".to_vec(),
            filename_truncated: false,
            script: false,
            exe_unlinked: false,
            written: true,
            library: false,
            mapped_fd: None,
            tag: 0,
            argv: None,
            argv_truncated: false,
            exe: Some(identity),
            root: None,
        }
    }

    /// A file changed no later than the database is a transaction's and is
    /// judged by its bytes; one changed after it keeps the written flag.
    #[test]
    fn only_a_file_written_before_the_database_changed_loses_the_written_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tool = dir.path().join("tool");
        std::fs::write(&tool, b"v1").expect("write");
        let file = dir.path().join("host.md5sums");
        std::fs::write(&file, format!("{}  usr/bin/tool\n", "a".repeat(32))).expect("write");
        let mut h = HostJudge::load(&[HostSource::Sbom(file)]).expect("load");
        let before = verifier_sensor::events::identity_of(&std::fs::metadata(&tool).expect("stat"));
        let mut e = written_event(before);
        h.admit(&mut e, 2);
        assert!(!e.written, "written before the database: a transaction's file");
        let mut later = before;
        later.ctime_sec += 3600;
        let mut e = written_event(later);
        h.admit(&mut e, 3);
        assert!(e.written, "changed after the last transaction: still flagged");
    }

    #[test]
    fn a_baseline_that_cannot_be_read_says_which_option() {
        let err = HostJudge::load(&[HostSource::Sbom("/nonexistent/h.json".into())]).err().expect("error");
        assert!(err.to_string().starts_with("--host-baseline"), "{err}");
        assert!(err.to_string().contains("/nonexistent/h.json"), "{err}");
    }
}
