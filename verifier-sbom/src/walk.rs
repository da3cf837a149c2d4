//! The one walk over a root filesystem directory, shared by `sbom generate`
//! and `check`.
//!
//! Why one: the two used to walk separately and disagreed on names that are
//! not UTF-8. Here a name is what the kernel holds, raw bytes; what to do
//! with one that is not UTF-8 is each caller's documented policy (generate
//! skips it with a counted warning, since SBOM JSON cannot carry it; check
//! reports it escaped, flagged `path_not_utf8`).
//!
//! Nothing is followed. Each directory is opened beneath the root through
//! [`RootDir::open_dir`] (never following its last component), listed with
//! `getdents`, and its entries examined with `fstatat(AT_SYMLINK_NOFOLLOW)`
//! and `readlinkat` relative to that directory's fd: a directory swapped
//! for a symlink to `/` mid-walk is refused, not listed. Directories where
//! a kernel pseudo-filesystem is mounted (`/proc/<pid>/root` of a running
//! container) are reported and not entered. Entries come depth first, in
//! directory order; callers that need an order sort.

use std::{collections::VecDeque, io, os::fd::OwnedFd};

use nix::{
    dir::Dir,
    fcntl::{AtFlags, readlinkat},
    sys::stat::{FileStat, SFlag, fstat, fstatat},
};

use crate::fsroot::RootDir;

/// What the walk found.
#[derive(Debug)]
pub enum Event {
    Entry(Entry),
    /// Something at `rel` that could not be examined or entered.
    Skipped {
        rel: Vec<u8>,
        why: Skip,
    },
}

/// Why part of the tree was not walked.
#[derive(Debug, thiserror::Error)]
pub enum Skip {
    #[error("the directory cannot be listed: {0}")]
    Unlisted(io::Error),
    #[error("listing failed part-way: {0}")]
    ListingBroken(io::Error),
    #[error("cannot stat it: {0}")]
    Stat(io::Error),
    #[error("cannot read the symlink: {0}")]
    ReadLink(io::Error),
    #[error("a kernel pseudo-filesystem is mounted there")]
    PseudoFs,
}

/// One directory entry.
#[derive(Debug)]
pub struct Entry {
    /// Path from the root, raw bytes, no leading `/` (`usr/bin/env`).
    pub rel: Vec<u8>,
    pub kind: Kind,
    pub stat: Stat,
}

impl Entry {
    /// The entry's own name (last component of [`Entry::rel`]).
    pub fn name(&self) -> &[u8] {
        self.rel.rsplit(|&b| b == b'/').next().unwrap_or(&self.rel)
    }
}

/// What an entry is (its symlinks not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink { target: Vec<u8> },
    Other,
}

/// The parts of `lstat` the callers use.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    pub size: u64,
}

impl From<&FileStat> for Stat {
    fn from(st: &FileStat) -> Self {
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            mode: st.st_mode,
            size: u64::try_from(st.st_size).unwrap_or(0),
        }
    }
}

/// A walk in progress: an iterator of [`Event`]s.
pub struct Walk<'r> {
    root: &'r RootDir,
    root_dev: u64,
    /// Directories still to list.
    stack: Vec<Vec<u8>>,
    /// Events of the directory listed last, not yet handed out.
    queue: VecDeque<Event>,
    /// The directory just handed out, entered unless [`Walk::skip_dir`].
    enter: Option<Vec<u8>>,
}

impl<'r> Walk<'r> {
    /// Starts at the root, which is listed now: a root that cannot be
    /// listed is an error, not an event.
    pub fn new(root: &'r RootDir) -> io::Result<Self> {
        let fd = root.open_dir(b"")?;
        let root_dev = fstat(&fd)?.st_dev;
        let mut walk = Self { root, root_dev, stack: Vec::new(), queue: VecDeque::new(), enter: None };
        walk.list(Vec::new(), fd);
        Ok(walk)
    }

    /// Do not enter the directory the last [`Event::Entry`] was.
    pub fn skip_dir(&mut self) {
        self.enter = None;
    }

    /// Opens `rel` and queues its entries, or why it was not listed.
    fn open_and_list(&mut self, rel: Vec<u8>) {
        let fd = match self.root.open_dir(&rel) {
            Ok(fd) => fd,
            Err(e) => return self.queue.push_back(Event::Skipped { rel, why: Skip::Unlisted(e) }),
        };
        // Only a mount point can be on another device; only then is the
        // filesystem type asked for.
        let other_dev = fstat(&fd).is_ok_and(|st| st.st_dev != self.root_dev);
        if other_dev && is_pseudo_fs(&fd) {
            return self.queue.push_back(Event::Skipped { rel, why: Skip::PseudoFs });
        }
        self.list(rel, fd);
    }

    fn list(&mut self, rel: Vec<u8>, fd: OwnedFd) {
        let mut dir = match Dir::from_fd(fd) {
            Ok(dir) => dir,
            Err(e) => return self.queue.push_back(Event::Skipped { rel, why: Skip::Unlisted(e.into()) }),
        };
        let names = match read_names(&mut dir) {
            Ok(names) => names,
            Err((names, e)) => {
                self.queue.push_back(Event::Skipped { rel: rel.clone(), why: Skip::ListingBroken(e) });
                names
            }
        };
        for name in names {
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(&name);
            let st = match fstatat(&dir, name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(e) => {
                    self.queue.push_back(Event::Skipped { rel: child, why: Skip::Stat(e.into()) });
                    continue;
                }
            };
            let kind = match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFDIR => Kind::Dir,
                SFlag::S_IFREG => Kind::File,
                SFlag::S_IFLNK => match readlinkat(&dir, name.as_slice()) {
                    Ok(t) => Kind::Symlink { target: std::os::unix::ffi::OsStringExt::into_vec(t) },
                    Err(e) => {
                        self.queue.push_back(Event::Skipped { rel: child, why: Skip::ReadLink(e.into()) });
                        continue;
                    }
                },
                _ => Kind::Other,
            };
            self.queue.push_back(Event::Entry(Entry { rel: child, kind, stat: Stat::from(&st) }));
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if let Some(dir) = self.enter.take() {
            self.stack.push(dir);
        }
        loop {
            if let Some(event) = self.queue.pop_front() {
                if let Event::Entry(Entry { rel, kind: Kind::Dir, .. }) = &event {
                    self.enter = Some(rel.clone());
                }
                return Some(event);
            }
            let dir = self.stack.pop()?;
            self.open_and_list(dir);
        }
    }
}

/// Names in one directory, raw bytes.
type Names = Vec<Vec<u8>>;

/// The names in `dir` (without `.` and `..`); on an error part-way, the
/// names read so far with it.
fn read_names(dir: &mut Dir) -> Result<Names, (Names, io::Error)> {
    let mut names = Vec::new();
    for entry in dir.iter() {
        match entry {
            Ok(entry) => {
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." {
                    names.push(name.to_vec());
                }
            }
            Err(e) => return Err((names, e.into())),
        }
    }
    Ok(names)
}

/// Kernel pseudo-filesystems (proc, sysfs, cgroup, debugfs, tracefs,
/// securityfs, bpf, devpts) mounted inside a rootfs: their files are not
/// image content, and some (`/proc/kcore`) are huge or block.
fn is_pseudo_fs(fd: &OwnedFd) -> bool {
    use nix::sys::statfs as sfs;
    const PSEUDO: [sfs::FsType; 9] = [
        sfs::PROC_SUPER_MAGIC,
        sfs::SYSFS_MAGIC,
        sfs::CGROUP_SUPER_MAGIC,
        sfs::CGROUP2_SUPER_MAGIC,
        sfs::DEBUGFS_MAGIC,
        sfs::TRACEFS_MAGIC,
        sfs::SECURITYFS_MAGIC,
        sfs::BPF_FS_MAGIC,
        sfs::DEVPTS_SUPER_MAGIC,
    ];
    sfs::fstatfs(fd).is_ok_and(|st| PSEUDO.contains(&st.filesystem_type()))
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
