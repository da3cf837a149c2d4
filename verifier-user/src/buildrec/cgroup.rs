//! The build step's own cgroup: `<cgroup2>/verifier.exec/<id>`, joined by
//! the child between `fork` and `execve`, so the step's first instruction
//! already runs in it, and every process it forks inherits it.
//!
//! The parent `verifier.exec` belongs to the verifier; nothing runs in it
//! (no controllers are enabled either, so cgroup v2's "no internal
//! processes" rule never bites). On a hybrid host the cgroup2 hierarchy
//! is the one mounted at `/sys/fs/cgroup/unified`: it is the one whose
//! ids the kernel programs see (`bpf_get_current_cgroup_id`).

use std::{
    io::Write as _,
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
};

/// The verifier's parent cgroup for build steps.
pub(crate) const PARENT: &str = "verifier.exec";

/// Why the build cgroup could not be made or joined.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    #[error(
        "no cgroup2 hierarchy is mounted (see /proc/self/mountinfo): `verifier exec` needs one \
         (mount -t cgroup2 none /sys/fs/cgroup/unified)"
    )]
    NoCgroup2,
    #[error("creating the build cgroup {path}: {source} (run as root)")]
    Create { path: PathBuf, source: std::io::Error },
}

/// A cgroup made for one build step; removed on drop when empty.
pub(crate) struct BuildCgroup {
    pub path: PathBuf,
    /// Its path below the cgroup2 root, `/verifier.exec/<id>`.
    pub rel: String,
    /// Its inode: the id the kernel programs report for tasks in it.
    pub id: u64,
}

impl BuildCgroup {
    /// Creates `<cgroup2>/verifier.exec/<name>`.
    pub(crate) fn create(name: &str) -> Result<Self, CgroupError> {
        let root = crate::attribution::resolver::find_cgroup2_mount().ok_or(CgroupError::NoCgroup2)?;
        Self::create_under(&root, name)
    }

    fn create_under(root: &Path, name: &str) -> Result<Self, CgroupError> {
        let parent = root.join(PARENT);
        let path = parent.join(name);
        let err = |source| CgroupError::Create { path: path.clone(), source };
        std::fs::create_dir_all(&path).map_err(err)?;
        let id = std::fs::metadata(&path).map_err(err)?.ino();
        Ok(Self { rel: format!("/{PARENT}/{name}"), path, id })
    }

    /// Makes `cmd`'s child join this cgroup before it execs: the child
    /// writes its own pid (`0`) to `cgroup.procs` from a `pre_exec` hook.
    pub(crate) fn join_on_spawn(&self, cmd: &mut Command) {
        let procs = self.path.join("cgroup.procs");
        let procs = std::ffi::CString::new(procs.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: the hook runs in the forked child before execve; it only
        // opens and writes a file (async-signal-safe system calls) and
        // allocates nothing beyond what was prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(e);
                }
                Ok(())
            });
        }
    }

    /// Pids still in the cgroup (daemons the step left running).
    pub(crate) fn remaining(&self) -> Vec<u32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}

impl Drop for BuildCgroup {
    fn drop(&mut self) {
        // Fails while processes remain: the cgroup is then left for them.
        if std::fs::remove_dir(&self.path).is_err() {
            let _ = writeln!(
                std::io::stderr(),
                "verifier exec: {} still holds processes {:?}; left in place",
                self.path.display(),
                self.remaining()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_is_made_under_the_verifier_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = BuildCgroup::create_under(dir.path(), "abc").expect("create");
        assert_eq!(c.rel, "/verifier.exec/abc");
        assert!(c.path.starts_with(dir.path().join(PARENT)));
        assert_eq!(c.id, std::fs::metadata(&c.path).expect("stat").ino());
        assert!(c.remaining().is_empty());
        drop(c);
        assert!(!dir.path().join(PARENT).join("abc").exists(), "removed when empty");
    }
}
