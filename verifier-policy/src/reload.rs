//! Following a policy file while the agent runs.
//!
//! The file is polled (the agent calls [`Reloader::poll`] once a second):
//! a change of device, inode, size or modification time means a new file.
//! Polling rather than inotify because the usual ways a policy changes
//! (an editor's rename over it, a Kubernetes ConfigMap's symlink swap)
//! replace the file, and a stat of the path sees both with no watch to
//! re-arm. A change that does not parse or check keeps the last good
//! policy and is reported once per change; a change that leaves the
//! content as it was (a `touch`) is no reload.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use crate::{Policy, PolicyError};

/// What identifies one version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    // Follows symlinks: a ConfigMap mount's `..data` swap changes the target.
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// What a poll found.
#[derive(Debug)]
pub enum Reload<'a> {
    /// A new, valid policy is in force.
    Loaded(&'a Policy),
    /// The file changed but is not valid (or is gone): the last good
    /// policy stays in force.
    Failed(PolicyError),
}

/// The policy in force and the file it came from.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    seen: Option<Stamp>,
    current: Policy,
}

impl Reloader {
    /// Loads `path`; an invalid file at start is an error.
    pub fn start(path: &Path) -> Result<Self, PolicyError> {
        let seen = stamp(path);
        let current = Policy::load(path)?;
        Ok(Self { path: path.to_owned(), seen, current })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.current
    }

    /// Checks the file; `None` when nothing (that matters) changed.
    pub fn poll(&mut self) -> Option<Reload<'_>> {
        let now = stamp(&self.path);
        if now == self.seen {
            return None;
        }
        self.seen = now;
        match Policy::load(&self.path) {
            Ok(p) if p.sha256 == self.current.sha256 => None,
            Ok(p) => {
                self.current = p;
                Some(Reload::Loaded(&self.current))
            }
            Err(e) => Some(Reload::Failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_edit_keeps_the_last_good_policy_and_a_fix_applies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "version = 1\n[defaults]\nmode = \"observe\"\n").expect("write");
        let mut r = Reloader::start(&path).expect("valid");
        assert!(r.poll().is_none(), "unchanged");
        let first = r.policy().sha256.clone();

        // A rename over the file, as editors do: a new inode.
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, "version = 1\n[defaults]\nmode = \"enforced\"\n").expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        match r.poll() {
            Some(Reload::Failed(e)) => assert!(e.to_string().contains("3:8"), "{e}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(r.policy().sha256, first, "last good kept");
        assert!(r.poll().is_none(), "reported once per change");

        std::fs::write(&tmp, "version = 1\n[defaults]\nmode = \"alert\"\n").expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        match r.poll() {
            Some(Reload::Loaded(p)) => assert_eq!(p.default_mode, crate::Mode::Alert),
            other => panic!("expected a reload, got {other:?}"),
        }
        std::fs::remove_file(&path).expect("rm");
        assert!(matches!(r.poll(), Some(Reload::Failed(PolicyError::Read { .. }))));
        assert_eq!(r.policy().default_mode, crate::Mode::Alert);
    }
}
