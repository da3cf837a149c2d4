//! Which listed file has this identity: the per-container index from a
//! kernel file identity (device, inode) to the path the SBOM lists it at.
//!
//! Why: the kernel reports a mapped library or an executed file by
//! identity, and the agent finds its path through the process
//! (`/proc/<pid>/maps`, `/proc/<pid>/exe`). A short-lived process (a
//! `#!` script that execs `grep`, a tool that maps `libc` and exits in a
//! millisecond) is gone before anyone looks; its files are still in the
//! image. Stat-ing every path the SBOM lists, once, beneath the container's
//! root gives the way back from identity to path that no longer depends on
//! the process.
//!
//! What it proves: nothing by itself. A hit is only a candidate path; the
//! caller opens it beneath the root and compares it with the kernel's
//! full identity (device, inode, ctime, size) before hashing, exactly as
//! for a path the process named. A file changed since the index was built
//! has a new ctime and fails that comparison.
//!
//! Cost and bounds: built lazily, on the first lookup, by the hashing
//! thread that needs it (never on the event loop), one `open(O_PATH)` and
//! `fstat` per listed path beneath the root (symlinks resolved inside the
//! root only, the last component never followed: a listed symlink is not
//! indexed, its target is). One index per container (per baseline and
//! root: every container has its own overlay device), at most
//! [`MAX_INDEXED`] files; past that the rest are left out and a miss says
//! so.

use std::{collections::HashMap, os::unix::fs::MetadataExt as _, sync::OnceLock};

use verifier_common::event::FileIdentity;
use verifier_sbom::{Manifest, fsroot::RootDir};
use verifier_sensor::events::kernel_dev_to_user;

/// Listed files indexed per container at most (about 100 bytes each).
pub(crate) const MAX_INDEXED: usize = 1 << 18;

/// The index of one container, built on first use.
#[derive(Debug, Default)]
pub(crate) struct LazyIndex {
    cell: OnceLock<IdentityIndex>,
}

impl LazyIndex {
    /// The index, built now (blocking) if this is the first call.
    pub(crate) fn get_or_build(&self, root: &RootDir, manifest: &Manifest) -> &IdentityIndex {
        self.cell.get_or_init(|| IdentityIndex::build(root, manifest, MAX_INDEXED))
    }
}

/// (device as `stat` reports it, inode) -> listed path.
#[derive(Debug, Default)]
pub(crate) struct IdentityIndex {
    by_identity: HashMap<(u64, u64), Box<str>>,
    /// Listed paths that were not a regular file beneath the root (missing,
    /// a symlink, a directory): not indexed.
    pub not_files: usize,
    /// Listed paths left out past the cap.
    pub left_out: usize,
}

impl IdentityIndex {
    /// Stats every listed path of `manifest` beneath `root`, keeping at
    /// most `cap` regular files. The first listed path of an inode wins
    /// (a hard link or a merged-/usr alias is the same file).
    pub(crate) fn build(root: &RootDir, manifest: &Manifest, cap: usize) -> Self {
        let mut index = Self::default();
        for (path, _) in manifest.files() {
            if index.by_identity.len() >= cap {
                index.left_out += 1;
                continue;
            }
            let rel = path.strip_prefix('/').unwrap_or(path);
            match root.open_path(rel.as_bytes()).and_then(|f| f.metadata()) {
                Ok(m) if m.is_file() => {
                    index.by_identity.entry((m.dev(), m.ino())).or_insert_with(|| path.into());
                }
                _ => index.not_files += 1,
            }
        }
        index
    }

    /// The listed path whose file has the device and inode of `id` (the
    /// caller still compares ctime and size).
    pub(crate) fn lookup(&self, id: &FileIdentity) -> Option<&str> {
        self.by_identity.get(&(kernel_dev_to_user(id.dev), id.ino)).map(|p| &**p)
    }

    /// Files indexed.
    pub(crate) fn len(&self) -> usize {
        self.by_identity.len()
    }

    /// Why a lookup of `id` found nothing, for the record.
    pub(crate) fn miss(&self, id: &FileIdentity) -> String {
        let mut why = format!(
            "no file the SBOM lists beneath the container root has its identity (device {}:{}, inode {}): \
             not a listed file, or replaced since",
            id.dev >> 20,
            id.dev & 0xf_ffff,
            id.ino
        );
        if self.left_out > 0 {
            why +=
                &format!(" ({} listed files past the first {} were not indexed)", self.left_out, self.len());
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::symlink, path::Path};

    use super::*;
    use crate::verify::test_sbom::listing as manifest;

    fn identity(p: &Path) -> FileIdentity {
        verifier_sensor::events::identity_of(&fs::metadata(p).expect("stat"))
    }

    #[test]
    fn listed_files_are_found_by_identity_through_directory_links_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = &dir.path().join("root");
        fs::create_dir_all(r.join("usr/bin")).expect("mkdir");
        symlink("usr/bin", r.join("bin")).expect("merged /bin");
        fs::write(r.join("usr/bin/ls"), b"ls").expect("write");
        fs::write(r.join("usr/bin/unlisted"), b"x").expect("write");
        symlink("ls", r.join("usr/bin/dir")).expect("link");
        fs::write(dir.path().join("outside"), b"o").expect("write");
        symlink("../../..", r.join("usr/up")).expect("escape link");
        let m = manifest(&["/bin/ls", "/usr/bin/dir", "/usr/up/outside", "/usr/bin/gone"]);
        let root = RootDir::open(r).expect("root");
        let index = IdentityIndex::build(&root, &m, MAX_INDEXED);
        assert_eq!(
            index.lookup(&identity(&r.join("usr/bin/ls"))),
            Some("/bin/ls"),
            "through /bin -> usr/bin"
        );
        assert_eq!(index.len(), 1, "a listed symlink, a path out of the root, a missing file: not indexed");
        assert_eq!(index.not_files, 3);
        let unlisted = identity(&r.join("usr/bin/unlisted"));
        assert_eq!(index.lookup(&unlisted), None);
        assert!(index.miss(&unlisted).contains(&format!("inode {}", unlisted.ino)));
    }

    #[test]
    fn the_cap_bounds_the_index_and_a_miss_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in ["a", "b", "c"] {
            fs::write(dir.path().join(n), n).expect("write");
        }
        let root = RootDir::open(dir.path()).expect("root");
        let index = IdentityIndex::build(&root, &manifest(&["/a", "/b", "/c"]), 2);
        assert_eq!((index.len(), index.left_out), (2, 1));
        assert!(index.miss(&identity(&dir.path().join("c"))).contains("1 listed files past the first 2"));
        let lazy = LazyIndex::default();
        assert_eq!(lazy.get_or_build(&root, &manifest(&["/a"])).len(), 1);
        assert_eq!(lazy.get_or_build(&root, &manifest(&["/a", "/b"])).len(), 1, "built once");
    }
}
