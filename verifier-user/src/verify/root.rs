//! Which root an exec's path was resolved in.
//!
//! A path means something only beneath a root. The agent resolves an
//! executed path beneath the process's own root (`/proc/<pid>/root`), which
//! a `chroot` inside the container moves; once the process has exited that
//! link is gone, and the container's root is all that is left. Resolving
//! there is right only if the process ran in it: a chrooted payload that
//! exits at once would otherwise have its path read in the wrong tree,
//! where the same name may be a listed file of the image.
//!
//! The kernel reports the task's root directory at the exec (inode and
//! device of `current->fs->root`, see `ExecHeader::root_ino`); it is
//! compared here, on the event loop when a job is made, with the
//! container's root as the agent opened it (one `fstat` per container,
//! kept with the root). Only a difference both can vouch for
//! counts: a root the kernel could not read, or a container root that
//! could not be `stat`ed, leaves things as they were.

use verifier_sensor::events::DirIdentity;

/// Where an exec's path was resolved, as far as the agent can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ExecRoot {
    /// The container's own root.
    Container,
    /// Another directory: the process was `chroot`ed (or `pivot_root`ed)
    /// inside the container.
    Chroot,
    /// Either side could not be read.
    Unknown,
}

/// Compares the root the kernel saw at the exec with the container's root
/// (`(st_dev, st_ino)`).
pub(crate) fn exec_root(kernel: Option<DirIdentity>, container: Option<(u64, u64)>) -> ExecRoot {
    match (kernel, container) {
        (Some(k), Some((dev, ino))) if k.dev == dev && k.ino == ino => ExecRoot::Container,
        (Some(_), Some(_)) => ExecRoot::Chroot,
        _ => ExecRoot::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: DirIdentity = DirIdentity { dev: 0x2a, ino: 2 };

    #[test]
    fn the_same_directory_is_the_container_root() {
        assert_eq!(exec_root(Some(ROOT), Some((0x2a, 2))), ExecRoot::Container);
    }

    #[test]
    fn another_inode_or_another_device_is_another_root() {
        assert_eq!(exec_root(Some(ROOT), Some((0x2a, 3))), ExecRoot::Chroot, "a directory inside");
        assert_eq!(exec_root(Some(ROOT), Some((0x2b, 2))), ExecRoot::Chroot, "root of another mount");
    }

    #[test]
    fn a_side_that_could_not_be_read_decides_nothing() {
        assert_eq!(exec_root(None, Some((0x2a, 2))), ExecRoot::Unknown);
        assert_eq!(exec_root(Some(ROOT), None), ExecRoot::Unknown);
        assert_eq!(exec_root(None, None), ExecRoot::Unknown);
    }

    #[test]
    fn a_real_directory_compares_equal_to_its_own_stat_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("jail")).expect("mkdir");
        let root = verifier_sbom::fsroot::RootDir::open(dir.path()).expect("open");
        let of = |p: &std::path::Path| Some(DirIdentity::of(&std::fs::metadata(p).expect("stat")));
        assert_eq!(exec_root(of(dir.path()), root.identity()), ExecRoot::Container);
        assert_eq!(exec_root(of(&dir.path().join("jail")), root.identity()), ExecRoot::Chroot);
    }
}
