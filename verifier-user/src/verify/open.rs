//! Finding, race-free, the file the kernel saw executed.
//!
//! The kernel reports a path (what was passed to `execve`, possibly a
//! symlink such as `/bin/sh -> busybox`, possibly relative) and an identity
//! (device, inode, ctime, size). Userspace must hash *that* file and look up
//! its *canonical* path in the image SBOM, without ever being led outside
//! the container's root:
//!
//! - [`canonicalize_in_root`] resolves symlinks one component at a time
//!   against the container root, as the kernel would inside the container:
//!   absolute targets restart at the root, `..` stops at the root, at most
//!   40 links. It reads links with `O_PATH | O_NOFOLLOW` opens made by
//!   `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so nothing it does
//!   can escape the root even while the tree changes under it.
//! - [`open_exact`] opens a canonical path the same way and compares `fstat`
//!   with the kernel's identity: a file swapped between the exec and the
//!   open is a mismatch, never hashed in place of the original.
//! - [`open_proc_exe`] opens `/proc/<pid>/exe`, the kernel's own reference to
//!   the executed file, for when the path route fails (file renamed or
//!   deleted since, fileless execs) and the process is still alive.

use std::{
    ffi::OsStr,
    fs::File,
    io,
    os::{
        fd::{AsFd, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    },
    path::{Path, PathBuf},
};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use verifier_common::event::FileIdentity;

use verifier_sensor::events::kernel_dev_to_user;

/// Symlinks followed before giving up, as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// A container root directory, held open so paths resolve beneath it even
/// after the process that revealed it has exited.
#[derive(Debug)]
pub struct RootDir {
    /// Where it was opened from (for messages).
    pub origin: PathBuf,
    fd: OwnedFd,
}

impl RootDir {
    /// Opens `dir` (a rootfs path, or `/proc/<pid>/root`).
    pub fn open(dir: &Path) -> io::Result<Self> {
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        Ok(Self { origin: dir.to_owned(), fd })
    }

    /// Opens the canonical relative path `rel` for reading (no symlink
    /// followed, nothing outside the root reachable).
    pub fn open_read(&self, rel: &[u8]) -> io::Result<File> {
        Ok(File::from(self.open_beneath(rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?))
    }

    /// Opens `rel` without following its last component (`O_PATH`): for
    /// `fstat` of what is there, whatever it is.
    pub fn open_path(&self, rel: &[u8]) -> io::Result<File> {
        Ok(File::from(self.open_beneath(rel, OFlag::O_PATH)?))
    }

    fn open_beneath(&self, rel: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let rel = if rel.is_empty() { b".".as_slice() } else { rel };
        Ok(openat2(self.fd.as_fd(), OsStr::from_bytes(rel), how)?)
    }
}

/// Resolves `path` inside `root` to a canonical absolute path (no symlinks,
/// no `.`/`..`). `cwd` (absolute, inside the container) anchors a relative
/// path. Fails with `ELOOP` past 40 links, `ENOENT` when a component is
/// missing, `ENOTDIR` when a non-directory is traversed.
pub fn canonicalize_in_root(root: &RootDir, path: &[u8], cwd: Option<&[u8]>) -> io::Result<Vec<u8>> {
    let mut pending: Vec<Vec<u8>> = Vec::new();
    if !path.starts_with(b"/") {
        let Some(cwd) = cwd else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "relative path and no working directory",
            ));
        };
        push_components(&mut pending, path);
        push_components(&mut pending, cwd);
    } else {
        push_components(&mut pending, path);
    }
    // `pending` is a stack of components still to walk (last = next).
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut links = 0usize;
    while let Some(comp) = pending.pop() {
        match comp.as_slice() {
            b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(comp);
        let rel = join(&done);
        let fd = root.open_beneath(&rel, OFlag::O_PATH)?;
        let meta = File::from(fd).metadata()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = read_link_beneath(root, &rel)?;
            done.pop();
            if target.starts_with(b"/") {
                done.clear();
            }
            push_components(&mut pending, &target);
        } else if !pending.is_empty() && !meta.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
    }
    let mut out = b"/".to_vec();
    out.extend_from_slice(&join(&done));
    Ok(out)
}

/// Pushes `path`'s components so that the first component is popped first.
fn push_components(stack: &mut Vec<Vec<u8>>, path: &[u8]) {
    for c in path.split(|&b| b == b'/').filter(|c| !c.is_empty()).rev() {
        stack.push(c.to_vec());
    }
}

fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.join(&b'/')
}

/// Reads the symlink at `rel` (relative to the root, every earlier component
/// already resolved) without following anything.
fn read_link_beneath(root: &RootDir, rel: &[u8]) -> io::Result<Vec<u8>> {
    let fd = root.open_beneath(rel, OFlag::O_PATH)?;
    // readlinkat(fd, "") reads the link an O_PATH|O_NOFOLLOW fd refers to.
    let target = nix::fcntl::readlinkat(fd.as_fd(), "")?;
    Ok(target.as_bytes().to_vec())
}

/// How an opened file compares with the kernel's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// Same device, inode, size and ctime: the file that ran.
    Same,
    /// Same device and inode but a different ctime or size: the file was
    /// changed after the exec.
    Changed,
    /// Another file altogether.
    Other,
}

/// Compares `fstat` of `file` with the kernel's identity.
pub fn compare(file: &File, id: &FileIdentity) -> io::Result<Match> {
    let m = file.metadata()?;
    Ok(compare_meta(&m, id))
}

/// [`compare`] on metadata already read.
pub fn compare_meta(m: &std::fs::Metadata, id: &FileIdentity) -> Match {
    if m.dev() != kernel_dev_to_user(id.dev) || m.ino() != id.ino {
        return Match::Other;
    }
    let same_time = m.ctime() == id.ctime_sec && (m.ctime_nsec() as u32) == id.ctime_nsec;
    if same_time && m.size() == id.size as u64 { Match::Same } else { Match::Changed }
}

/// Opens the canonical `path` beneath `root` for reading (no symlink
/// followed anywhere) and compares it with `id`.
pub fn open_exact(root: &RootDir, path: &[u8], id: &FileIdentity) -> io::Result<(File, Match)> {
    let file = root.open_read(path.strip_prefix(b"/").unwrap_or(path))?;
    let m = compare(&file, id)?;
    Ok((file, m))
}

/// Opens `/proc/<pid>/exe` (under `proc_root`) and compares it with `id`;
/// also returns the link text (the path as the process's namespace sees it,
/// `" (deleted)"` appended by the kernel for unlinked files).
pub fn open_proc_exe(proc_root: &Path, pid: u32, id: &FileIdentity) -> io::Result<(File, Match, Vec<u8>)> {
    let link = proc_root.join(pid.to_string()).join("exe");
    let text = std::os::unix::ffi::OsStringExt::into_vec(std::fs::read_link(&link)?.into_os_string());
    let file = File::open(&link)?;
    let m = compare(&file, id)?;
    Ok((file, m, text))
}

#[cfg(test)]
#[path = "open_tests.rs"]
mod tests;
