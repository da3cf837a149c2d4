//! The roots of the step's private mount namespaces, held for the whole
//! step.
//!
//! A step may run in a mount namespace of its own (`unshare -m`, a build
//! sandbox) where bind mounts change what a path names: a `cc1` mounted
//! over the packaged one is what the compiler driver runs there. Its files
//! are opened beneath that namespace's root. Two things go wrong with a
//! root taken late, from whatever process is at hand when a record is
//! read:
//! - the processes are short-lived: by the time `cc1`'s record is hashed,
//!   `cc1`, `gcc` and sometimes the whole namespace are gone;
//! - a namespace whose last process exited is torn down (its mounts are
//!   detached): a root directory fd kept from it then resolves to the
//!   file *under* the bind mount, the identity check refuses it, and the
//!   replaced compiler comes out `unverifiable` instead of
//!   `modified-binary`.
//!
//! So the first time a namespace is seen (its first exec: the process is
//! alive at least until its record was written, and most often still is),
//! its root and its `ns/mnt` file are opened through one `/proc/<pid>`
//! directory fd (no pid reuse between the two opens), the namespace is
//! checked to be the one the kernel reported, and both are kept until the
//! step ends: the `ns/mnt` fd keeps the namespace, and with it its mount
//! tree, alive.

use std::{collections::HashMap, fs::File, os::unix::fs::MetadataExt as _, path::Path, sync::Arc};

use verifier_sbom::fsroot::RootDir;

/// At most this many namespaces are held (a step that makes more is
/// judged in the later ones from the process at hand, as before).
const MAX_HELD: usize = 256;

/// One namespace, held.
struct Held {
    _ns: File,
    root: Arc<RootDir>,
}

/// The step's mount namespaces other than the host's, by inode number.
#[derive(Default)]
pub(crate) struct Namespaces {
    held: HashMap<u32, Held>,
}

impl Namespaces {
    /// The root of mount namespace `mnt_ns`: held from an earlier exec, or
    /// taken now from the first of `pids` that is alive and still in it.
    /// `None` when none is (the namespace is then not held: a later exec
    /// of it may still be).
    pub(crate) fn root(&mut self, mnt_ns: u32, pids: &[u32]) -> Option<Arc<RootDir>> {
        if let Some(h) = self.held.get(&mnt_ns) {
            return Some(h.root.clone());
        }
        let held = pids.iter().filter(|p| **p != 0).find_map(|p| hold(Path::new("/proc"), *p, mnt_ns))?;
        let root = held.root.clone();
        if self.held.len() < MAX_HELD {
            self.held.insert(mnt_ns, held);
        }
        Some(root)
    }
}

/// `pid`'s root and mount namespace, when that namespace is `mnt_ns`.
fn hold(proc: &Path, pid: u32, mnt_ns: u32) -> Option<Held> {
    use std::os::fd::AsRawFd as _;
    let dir = File::open(proc.join(pid.to_string())).ok()?;
    // Both opens go through the same /proc/<pid> directory: if the pid
    // was reused in between, the second open fails (ESRCH), it does not
    // reach another process.
    let base = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string());
    let ns = File::open(base.join("ns/mnt")).ok()?;
    if u32::try_from(ns.metadata().ok()?.ino()).ok()? != mnt_ns {
        return None;
    }
    let root = RootDir::open(&base.join("root")).ok()?;
    Some(Held { _ns: ns, root: Arc::new(root) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_mnt_ns() -> u32 {
        let m = std::fs::metadata("/proc/self/ns/mnt").expect("ns");
        u32::try_from(m.ino()).expect("ino")
    }

    #[test]
    fn a_namespace_is_held_from_a_living_member_and_reused() {
        let ns = own_mnt_ns();
        let me = std::process::id();
        let mut n = Namespaces::default();
        let root = n.root(ns, &[0, me]).expect("our own namespace");
        assert_eq!(n.held.len(), 1);
        // Held: no pid needed any more.
        let again = n.root(ns, &[]).expect("held");
        assert!(Arc::ptr_eq(&root, &again));
    }

    #[test]
    fn a_process_in_another_namespace_does_not_lend_its_root() {
        let me = std::process::id();
        let mut n = Namespaces::default();
        assert!(n.root(own_mnt_ns().wrapping_add(1), &[me]).is_none());
        assert_eq!(n.held.len(), 0);
        // A pid that does not exist.
        assert!(n.root(own_mnt_ns(), &[u32::MAX - 1]).is_none());
    }
}
