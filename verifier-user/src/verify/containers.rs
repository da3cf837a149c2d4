//! Per-container state on the event loop: which baseline a container's
//! execs are checked against, and the execs that wait while it is found.
//!
//! A container is keyed by its cgroup id. Resolution (runtime state, image,
//! SBOM: blocking file reads) starts when its cgroup appears or, failing
//! that, at its first exec, and runs on a blocking thread. Execs that
//! arrive meanwhile wait, in order, up to a deadline and a count; past
//! either they are released as unverifiable with the reason, never as
//! "unknown container" and never silently.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use super::engine::Context;
use verifier_sensor::events::ExecEvent;

/// What the alert stream says about a container.
#[derive(Clone, Debug, Default)]
pub(crate) struct ContainerInfo {
    pub name: Option<String>,
    pub image_name: Option<String>,
    pub image_digest: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    /// Pod labels when the runtime gives them (`None`: unknown).
    pub pod_labels: Option<std::collections::BTreeMap<String, String>>,
    /// SBOM files the baseline was read from.
    pub sbom_sources: Vec<String>,
    pub sbom_format: Option<String>,
    /// Host path of the container's writable layer (overlay upperdir).
    pub writable_layer: Option<PathBuf>,
}

/// The result of resolving a container.
pub(crate) enum Resolved {
    /// A baseline to verify against.
    Verify(Arc<Context>, Arc<ContainerInfo>),
    /// Known container, no SBOM configured for its image: execs are
    /// reported as observed, not verified (said once per container).
    NoBaseline(Arc<ContainerInfo>, String),
    /// Could not be resolved; the reason is given with each exec.
    Failed(String),
    /// The image requires a signed SBOM and none verified: every exec is
    /// `unverifiable` with this reason (kept, like a baseline).
    Refused(Arc<ContainerInfo>, String),
}

enum State {
    Resolving { since: Instant, waiting: Vec<ExecEvent> },
    Done(Arc<Resolved>),
}

/// Counters for the stats record.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ContainerStats {
    pub resolutions: u64,
    pub resolve_failures: u64,
    pub without_baseline: u64,
    /// Execs that waited for their container to be resolved.
    pub waited: u64,
    /// Execs released unresolved (deadline or queue cap).
    pub wait_expired: u64,
}

/// What to do with an exec now.
pub(crate) enum Admit {
    /// Resolved: handle it with this.
    Now(Box<ExecEvent>, Arc<Resolved>),
    /// Waiting; `start` is true when the caller must start resolving.
    Wait { start: bool },
}

/// Per-cgroup states.
pub(crate) struct Containers {
    states: HashMap<u64, State>,
    wait_for: Duration,
    max_waiting: usize,
    pub stats: ContainerStats,
}

impl Containers {
    /// Execs wait at most `wait_for`, and at most `max_waiting` per
    /// container.
    pub(crate) fn new(wait_for: Duration, max_waiting: usize) -> Self {
        Self { states: HashMap::new(), wait_for, max_waiting, stats: ContainerStats::default() }
    }

    /// A container's cgroup appeared: returns true when the caller should
    /// start resolving it.
    pub(crate) fn created(&mut self, cgroup_id: u64) -> bool {
        if self.states.contains_key(&cgroup_id) {
            return false;
        }
        self.states.insert(cgroup_id, State::Resolving { since: Instant::now(), waiting: Vec::new() });
        true
    }

    /// An exec in a container.
    pub(crate) fn admit(&mut self, event: ExecEvent) -> Admit {
        match self.states.get_mut(&event.cgroup_id) {
            Some(State::Done(r)) => Admit::Now(Box::new(event), r.clone()),
            Some(State::Resolving { waiting, .. }) => {
                if waiting.len() >= self.max_waiting {
                    self.stats.wait_expired += 1;
                    let why = "too many execs waiting for this container to be resolved (--max-waiting)";
                    return Admit::Now(Box::new(event), Arc::new(Resolved::Failed(why.into())));
                }
                self.stats.waited += 1;
                waiting.push(event);
                Admit::Wait { start: false }
            }
            None => {
                self.stats.waited += 1;
                let id = event.cgroup_id;
                self.states.insert(id, State::Resolving { since: Instant::now(), waiting: vec![event] });
                Admit::Wait { start: true }
            }
        }
    }

    /// Resolution finished: the waiting execs, in order, with the result.
    pub(crate) fn resolved(&mut self, cgroup_id: u64, r: Resolved) -> (Arc<Resolved>, Vec<ExecEvent>) {
        self.stats.resolutions += 1;
        match &r {
            Resolved::Failed(_) => self.stats.resolve_failures += 1,
            Resolved::NoBaseline(..) | Resolved::Refused(..) => self.stats.without_baseline += 1,
            Resolved::Verify(..) => {}
        }
        let r = Arc::new(r);
        // A failure is not remembered: the next exec tries again (the
        // runtime may not have written its state yet).
        let keep = !matches!(*r, Resolved::Failed(_));
        let waiting = match self.states.remove(&cgroup_id) {
            Some(State::Resolving { waiting, .. }) => waiting,
            _ => Vec::new(),
        };
        if keep {
            self.states.insert(cgroup_id, State::Done(r.clone()));
        }
        (r, waiting)
    }

    /// Execs that waited past the deadline, released as unresolved. The
    /// resolution keeps going; later execs still wait for it.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        for state in self.states.values_mut() {
            if let State::Resolving { since, waiting } = state
                && now.duration_since(*since) >= self.wait_for
                && !waiting.is_empty()
            {
                out.append(waiting);
                *since = now;
            }
        }
        self.stats.wait_expired += out.len() as u64;
        out
    }

    /// Execs waiting for their container to be resolved.
    pub(crate) fn waiting(&self) -> usize {
        self.states
            .values()
            .map(|s| match s {
                State::Resolving { waiting, .. } => waiting.len(),
                State::Done(_) => 0,
            })
            .sum()
    }

    /// Every waiting exec, released (shutdown).
    pub(crate) fn expire_all(&mut self) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        for state in self.states.values_mut() {
            if let State::Resolving { waiting, .. } = state {
                out.append(waiting);
            }
        }
        self.stats.wait_expired += out.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(cgroup_id: u64, pid: u32) -> ExecEvent {
        ExecEvent {
            unix_ns: 0,
            pid,
            tgid: pid,
            ppid: 1,
            ns_pid: 1,
            uid: 0,
            gid: 0,
            cgroup_id,
            mnt_ns: 2,
            pid_ns: 2,
            comm: Vec::new(),
            filename: b"/bin/true".to_vec(),
            filename_truncated: false,
            script: false,
            exe_unlinked: false,
            written: false,
            library: false,
            mapped_fd: None,
            tag: 0,
            argv: None,
            argv_truncated: false,
            exe: None,
            root: None,
        }
    }

    #[test]
    fn execs_wait_in_order_for_resolution() {
        let mut c = Containers::new(Duration::from_secs(5), 10);
        assert!(matches!(c.admit(ev(7, 1)), Admit::Wait { start: true }));
        assert!(matches!(c.admit(ev(7, 2)), Admit::Wait { start: false }));
        let (r, waiting) = c.resolved(7, Resolved::NoBaseline(Arc::default(), "no SBOM".into()));
        assert!(matches!(*r, Resolved::NoBaseline(..)));
        assert_eq!(waiting.iter().map(|e| e.pid).collect::<Vec<_>>(), vec![1, 2]);
        assert!(matches!(c.admit(ev(7, 3)), Admit::Now(e, _) if e.pid == 3));
    }

    #[test]
    fn a_cgroup_seen_first_starts_resolution_once() {
        let mut c = Containers::new(Duration::from_secs(5), 10);
        assert!(c.created(9));
        assert!(!c.created(9));
        assert!(matches!(c.admit(ev(9, 1)), Admit::Wait { start: false }), "already resolving");
    }

    #[test]
    fn deadline_and_cap_release_execs_with_a_count() {
        let mut c = Containers::new(Duration::from_millis(0), 2);
        let _ = c.admit(ev(1, 1));
        let _ = c.admit(ev(1, 2));
        assert!(matches!(c.admit(ev(1, 3)), Admit::Now(_, r) if matches!(*r, Resolved::Failed(_))));
        let expired = c.expire(Instant::now());
        assert_eq!(expired.len(), 2);
        assert_eq!(c.stats.wait_expired, 3);
    }

    #[test]
    fn failures_are_retried_on_the_next_exec() {
        let mut c = Containers::new(Duration::from_secs(5), 10);
        let _ = c.admit(ev(4, 1));
        let (_, waiting) = c.resolved(4, Resolved::Failed("state not written yet".into()));
        assert_eq!(waiting.len(), 1);
        assert!(matches!(c.admit(ev(4, 2)), Admit::Wait { start: true }));
        assert_eq!(c.stats.resolve_failures, 1);
    }
}
