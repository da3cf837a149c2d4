//! The path walk beneath a root done in userspace, one component at a
//! time: what `openat2(RESOLVE_IN_ROOT)` does in the kernel, for kernels
//! without it, and for [`super::canonicalize_in_root`], which needs the
//! names it went through.
//!
//! Each step is `openat(dir, name, O_PATH | O_NOFOLLOW)` where `dir` is a
//! directory fd already reached from the root and `name` holds no `/` and
//! is not `..`: a step can only reach a child of `dir`. `..` pops the stack
//! of directory fds walked (never past the root); a symlink is read with
//! `readlinkat` and its text pushed back as components, an absolute one
//! restarting at the root fd. A `/proc` magic link is therefore text like
//! any other link, resolved beneath the root, never jumped through.

use std::{
    io,
    os::{
        fd::{AsFd as _, BorrowedFd, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
};

use nix::{
    fcntl::{OFlag, openat, readlinkat},
    sys::stat::{Mode, SFlag, fstat},
};

use super::MAX_LINKS;

/// Opens `rel` beneath `root` with `flags` (which hold `O_NOFOLLOW`: the
/// last component is opened as it is, a symlink included).
pub(super) fn open(root: BorrowedFd<'_>, rel: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
    let mut walk = Walk::new(root, rel);
    while let Some(name) = walk.next_name() {
        if walk.pending.is_empty() {
            return Ok(openat(walk.here(), name.as_slice(), flags, Mode::empty())?);
        }
        walk.step(name)?;
    }
    // The path ended at a directory (empty, `.`, `..`, a trailing `/`).
    Ok(openat(walk.here(), ".", flags, Mode::empty())?)
}

/// The names, from the root, of what `path` leads to with every symlink
/// followed (the last one too).
pub(super) fn canonical(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let mut walk = Walk::new(root, path);
    while let Some(name) = walk.next_name() {
        walk.step(name)?;
    }
    Ok(walk.names)
}

/// A walk in progress.
struct Walk<'r> {
    root: BorrowedFd<'r>,
    /// Names walked from the root, each a directory but maybe the last.
    names: Vec<Vec<u8>>,
    /// The fd of each of `names`, opened `O_PATH | O_NOFOLLOW`.
    fds: Vec<OwnedFd>,
    /// Components still to walk, next last.
    pending: Vec<Vec<u8>>,
    links: usize,
}

impl<'r> Walk<'r> {
    fn new(root: BorrowedFd<'r>, path: &[u8]) -> Self {
        let mut pending = Vec::new();
        // A trailing `/` asks for a directory: the last name is followed.
        if path.ends_with(b"/") {
            pending.push(b".".to_vec());
        }
        push_components(&mut pending, path);
        Self { root, names: Vec::new(), fds: Vec::new(), pending, links: 0 }
    }

    /// The directory reached so far.
    fn here(&self) -> BorrowedFd<'_> {
        self.fds.last().map_or(self.root, |fd| fd.as_fd())
    }

    /// The next name to walk; `.` and `..` are dealt with here (`..` at the
    /// root stays at the root). The name is the last component when
    /// `pending` is empty afterwards: in `a/.` or `a/..`, `a` is not, and is
    /// walked through (followed) like any directory on the way.
    fn next_name(&mut self) -> Option<Vec<u8>> {
        while let Some(name) = self.pending.pop() {
            match name.as_slice() {
                b"." => {}
                b".." => {
                    self.names.pop();
                    self.fds.pop();
                }
                _ => return Some(name),
            }
        }
        None
    }

    /// Walks into `name`: a directory is entered, a symlink replaced by its
    /// target, anything else accepted only as the last component.
    fn step(&mut self, name: Vec<u8>) -> io::Result<()> {
        let fd = openat(
            self.here(),
            name.as_slice(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let kind = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            self.links += 1;
            if self.links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            // readlinkat(fd, "") reads the link an O_PATH fd refers to.
            let target = readlinkat(&fd, "")?;
            let target = target.as_bytes();
            if target.starts_with(b"/") {
                self.names.clear();
                self.fds.clear();
            }
            push_components(&mut self.pending, target);
            return Ok(());
        }
        if kind != SFlag::S_IFDIR && !self.pending.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        self.names.push(name);
        self.fds.push(fd);
        Ok(())
    }
}

/// Pushes `path`'s components so that the first is popped first.
fn push_components(stack: &mut Vec<Vec<u8>>, path: &[u8]) {
    for c in path.split(|&b| b == b'/').filter(|c| !c.is_empty()).rev() {
        stack.push(c.to_vec());
    }
}
