//! Opening files beneath a root directory (a rootfs, a container's
//! `/proc/<pid>/root`, an image layer) without ever being led outside it.
//!
//! Everything that reads a file inside a root goes through [`RootDir`]: the
//! `sbom generate` and `check` hashing, the agent's lookup of an executed
//! file, the image layer reads. Paths are chroot-relative byte strings;
//! symlinks resolve as they would for a process chrooted there (absolute
//! targets restart at the root, `..` stops at the root, at most 40 links,
//! then `ELOOP`), and the last component is never followed (`O_NOFOLLOW`),
//! so a file swapped for a symlink after a walk or an exec is refused, not
//! followed.
//!
//! Two resolvers give the same answers:
//! - [`Resolver::Openat2`]: one `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)` call; the kernel does the walk (Linux 5.6+).
//! - [`Resolver::Components`]: the same walk in userspace, one `openat(...,
//!   O_PATH | O_NOFOLLOW)` per component from the directory fd reached so
//!   far, links read with `readlinkat` and resolved as text. No call ever
//!   gets a path with a `/` or a `..` in it, so no call can leave the root;
//!   a `/proc` magic link is read as its text, never jumped through.
//!
//! [`Resolver::detect`] probes once per process and picks `openat2` where
//! the kernel (and any seccomp filter) allows it; [`RootDir::open_with`]
//! forces one, which is how the tests hold the two to the same results.
//! [`canonicalize_in_root`] is the component walk that follows every link
//! and returns the names it went through.
//!
//! Errors are plain [`io::Error`]s carrying the errno the kernel would give
//! (`ELOOP`, `ENOENT`, `ENOTDIR`): callers branch on them, and each wraps
//! them with the path it was opening.

mod components;

use std::{
    ffi::OsStr,
    fs::File,
    io,
    os::{
        fd::{AsFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
    sync::OnceLock,
};

use nix::{
    errno::Errno,
    fcntl::{OFlag, OpenHow, ResolveFlag, openat2},
};

/// Symlinks followed before giving up, as the kernel's `MAXSYMLINKS`.
pub const MAX_LINKS: usize = 40;

/// How a path beneath a root is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: Linux 5.6+.
    Openat2,
    /// One `openat(O_PATH | O_NOFOLLOW)` per component, links read and
    /// resolved in userspace: for kernels without `openat2`.
    Components,
}

impl Resolver {
    /// The resolver this kernel allows, probed on first use.
    pub fn detect() -> Self {
        static DETECTED: OnceLock<Resolver> = OnceLock::new();
        *DETECTED.get_or_init(Self::probe)
    }

    fn probe() -> Self {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match openat2(nix::fcntl::AT_FDCWD, "/", how) {
            // ENOSYS: before 5.6; EPERM: a seccomp filter that refuses it.
            Err(Errno::ENOSYS | Errno::EPERM) => Self::Components,
            _ => Self::Openat2,
        }
    }
}

/// `openat2` reports `EAGAIN` when a rename or mount raced the lookup; it is
/// tried this many times before the component walk takes over.
const EAGAIN_TRIES: usize = 3;

/// A root directory, held open so paths resolve beneath it even after the
/// process that revealed it (`/proc/<pid>/root`) has exited.
#[derive(Debug)]
pub struct RootDir {
    /// Where it was opened from (for messages).
    pub origin: PathBuf,
    fd: OwnedFd,
    resolver: Resolver,
    /// `(st_dev, st_ino)` of the directory, taken on first need.
    identity: OnceLock<Option<(u64, u64)>>,
}

impl RootDir {
    /// Opens `dir` (a rootfs path, or `/proc/<pid>/root`), resolving with
    /// [`Resolver::detect`].
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::open_with(dir, Resolver::detect())
    }

    /// Opens `dir`, resolving paths beneath it with `resolver`.
    pub fn open_with(dir: &Path, resolver: Resolver) -> io::Result<Self> {
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        Ok(Self { origin: dir.to_owned(), fd, resolver, identity: OnceLock::new() })
    }

    /// The directory's `(st_dev, st_ino)`, from `fstat` of the descriptor
    /// held (once; `None` if that failed): what tells this root from
    /// another, such as the root a `chroot`ed process ran in.
    pub fn identity(&self) -> Option<(u64, u64)> {
        *self.identity.get_or_init(|| nix::sys::stat::fstat(&self.fd).ok().map(|st| (st.st_dev, st.st_ino)))
    }

    /// The resolver in use.
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// Opens `rel` for reading. `O_NONBLOCK`, so a FIFO planted where a
    /// file was cannot hang the reader.
    pub fn open_read(&self, rel: &[u8]) -> io::Result<File> {
        Ok(File::from(self.open_beneath(rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?))
    }

    /// Opens `rel` without following its last component (`O_PATH`): for
    /// `fstat` of what is there, whatever it is.
    pub fn open_path(&self, rel: &[u8]) -> io::Result<File> {
        Ok(File::from(self.open_beneath(rel, OFlag::O_PATH)?))
    }

    /// Opens the directory `rel` for listing (`ENOTDIR` for anything else,
    /// `ELOOP` for a symlink).
    pub fn open_dir(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        self.open_beneath(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
    }

    /// Opens `rel` (relative to the root; a leading `/` is the root too)
    /// with `flags`, never following the last component.
    fn open_beneath(&self, rel: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if self.resolver == Resolver::Openat2 {
            let rel = if rel.is_empty() { b".".as_slice() } else { rel };
            let how = OpenHow::new()
                .flags(flags)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            for _ in 0..EAGAIN_TRIES {
                match openat2(self.fd.as_fd(), OsStr::from_bytes(rel), how) {
                    Err(Errno::EAGAIN) => continue,
                    // Refused after the probe (a seccomp filter installed
                    // later): the component walk gives the same answer.
                    Err(Errno::ENOSYS) => break,
                    other => return Ok(other?),
                }
            }
        }
        components::open(self.fd.as_fd(), rel, flags)
    }
}

/// Resolves `path` inside `root` to a canonical absolute path (no symlinks,
/// no `.`/`..`), following every link, the last one too. `cwd` (absolute,
/// inside the root) anchors a relative path. Fails with `ELOOP` past 40
/// links, `ENOENT` when a component is missing, `ENOTDIR` when a
/// non-directory is traversed.
///
/// Built on the component walk whatever the root's resolver: it needs each
/// name it went through, which `openat2` does not report.
pub fn canonicalize_in_root(root: &RootDir, path: &[u8], cwd: Option<&[u8]>) -> io::Result<Vec<u8>> {
    let mut full = Vec::new();
    if !path.starts_with(b"/") {
        let Some(cwd) = cwd else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "relative path and no working directory",
            ));
        };
        full.extend_from_slice(cwd);
        full.push(b'/');
    }
    full.extend_from_slice(path);
    let names = components::canonical(root.fd.as_fd(), &full)?;
    let mut out = b"/".to_vec();
    out.extend_from_slice(&names.join(&b'/'));
    Ok(out)
}

#[cfg(test)]
mod tests;
