//! Which execs belong to the build step.
//!
//! The kernel sends every exec on the host (the build step is not a
//! container, and what it starts may be); this decides, per record, in
//! this order:
//!
//! 1. **cgroup**: the step's cgroup or one created below it (a cgroup
//!    record whose path starts with the step's). Every process the step
//!    forks inherits its cgroup, so this alone covers a plain build.
//! 2. **parent chain**: a container runtime the step starts (runc, crun,
//!    podman's conmon, buildah) moves the container's processes to a
//!    cgroup of its own, elsewhere in the hierarchy. They are still the
//!    step's descendants: the exec's parent is a known member, or walking
//!    `/proc/<pid>/stat` parents from it reaches one. The verifier makes
//!    itself a child subreaper, so a daemonizing runtime (conmon's double
//!    fork) is reparented to the verifier, not to pid 1, and the chain
//!    still ends at a member. Once found, a process's cgroup joins the
//!    set, so later execs there are members by (1).
//!
//! Bounds: a process whose whole parent chain exited before its exec
//! record was read, and whose cgroup and parent are not yet known, is
//! missed; execs of a container started through a daemon the step only
//! talks to (dockerd, containerd over a socket) are the daemon's children,
//! not the step's, and are not the build's.

use std::collections::HashSet;

/// The build's cgroups and processes, as far as they are known.
pub(crate) struct Members {
    /// Path below the cgroup2 root of the step's cgroup.
    root_rel: String,
    /// The step's cgroup and those created below it.
    step: HashSet<u64>,
    /// Other cgroups members were found in (containers the step started).
    other: HashSet<u64>,
    pids: HashSet<u32>,
    proc_root: std::path::PathBuf,
}

impl Members {
    /// `verifier_pid` is the subreaper the step's orphans end up under;
    /// `child` the step itself.
    pub(crate) fn new(root_rel: String, cgroup_id: u64, verifier_pid: u32) -> Self {
        Self {
            root_rel,
            step: HashSet::from([cgroup_id]),
            other: HashSet::new(),
            pids: HashSet::from([verifier_pid]),
            proc_root: "/proc".into(),
        }
    }

    /// The step's process.
    pub(crate) fn add_pid(&mut self, pid: u32) {
        self.pids.insert(pid);
    }

    /// A cgroup was created: a member when it is below the step's.
    pub(crate) fn cgroup_created(&mut self, id: u64, path: &[u8]) -> bool {
        let below = path.strip_prefix(self.root_rel.as_bytes()).is_some_and(|r| r.is_empty() || r[0] == b'/');
        if below {
            self.step.insert(id);
        }
        below
    }

    /// Whether the exec of `tgid` (parent `ppid`) in `cgroup_id` is the
    /// build's; remembers it (and its cgroup) when it is.
    pub(crate) fn admit(&mut self, cgroup_id: u64, tgid: u32, ppid: u32) -> bool {
        let member = self.step.contains(&cgroup_id)
            || self.other.contains(&cgroup_id)
            || self.pids.contains(&tgid)
            || self.pids.contains(&ppid)
            || self.chain_reaches_member(ppid);
        if member {
            self.pids.insert(tgid);
            if !self.step.contains(&cgroup_id) {
                self.other.insert(cgroup_id);
            }
        }
        member
    }

    /// The step's cgroup or one below it (not a container's elsewhere).
    pub(crate) fn in_step_cgroup(&self, cgroup_id: u64) -> bool {
        self.step.contains(&cgroup_id)
    }

    /// Walks parents from `pid` through `/proc/<pid>/stat` (at most 64).
    fn chain_reaches_member(&self, mut pid: u32) -> bool {
        for _ in 0..64 {
            if pid <= 1 {
                return false;
            }
            if self.pids.contains(&pid) {
                return true;
            }
            match parent_of(&self.proc_root, pid) {
                Some(p) => pid = p,
                None => return false,
            }
        }
        false
    }
}

/// The parent pid in `/proc/<pid>/stat` (field 4, after the `(comm)`
/// which may itself hold spaces and parentheses).
fn parent_of(proc_root: &std::path::Path, pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_ppid(&stat)
}

fn parse_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_read_past_a_comm_with_spaces_and_parens() {
        assert_eq!(parse_ppid("42 (a b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn cgroups_below_the_steps_are_members_and_siblings_are_not() {
        let mut m = Members::new("/verifier.exec/1".into(), 10, 1000);
        assert!(m.cgroup_created(11, b"/verifier.exec/1/sub"));
        assert!(!m.cgroup_created(12, b"/verifier.exec/10"), "a sibling sharing a prefix");
        assert!(m.admit(11, 5000, 4999));
        assert!(!m.admit(12, 6000, 5_999_000), "unknown cgroup and parent");
    }

    #[test]
    fn a_child_of_a_member_elsewhere_is_a_member_and_brings_its_cgroup() {
        let mut m = Members::new("/verifier.exec/1".into(), 10, 1000);
        m.add_pid(2000);
        // runc's init, in the container's cgroup, child of the step's runc.
        assert!(m.admit(77, 2100, 2000));
        // The container's next exec: its cgroup is now known.
        assert!(m.admit(77, 2200, 1));
        assert!(!m.in_step_cgroup(77) && m.in_step_cgroup(10));
    }

    /// This test process's own parent chain reaches its parent.
    #[test]
    fn the_parent_chain_is_walked_through_proc() {
        let me = std::process::id();
        let parent = parent_of(std::path::Path::new("/proc"), me).expect("own stat");
        let m = Members::new("/x".into(), 10, parent);
        assert!(m.chain_reaches_member(me));
        let stranger = Members::new("/x".into(), 10, u32::MAX - 1);
        assert!(!stranger.chain_reaches_member(me));
    }
}
