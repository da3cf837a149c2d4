//! Finding, race-free, the file the kernel saw executed.
//!
//! The kernel reports a path (what was passed to `execve`, possibly a
//! symlink such as `/bin/sh -> busybox`, possibly relative) and an identity
//! (device, inode, ctime, size). Userspace must hash *that* file and look up
//! its *canonical* path in the image SBOM, without ever being led outside
//! the container's root:
//!
//! - [`canonicalize_in_root`](verifier_sbom::fsroot::canonicalize_in_root)
//!   (beside [`RootDir`], the one way this project opens beneath a root)
//!   resolves
//!   symlinks one component at a time against the container root, as the
//!   kernel would inside the container: absolute targets restart at the
//!   root, `..` stops at the root, at most 40 links; nothing it does can
//!   escape the root even while the tree changes under it.
//! - [`open_exact`] opens a canonical path beneath the root (no symlink
//!   followed) and compares `fstat` with the kernel's identity: a file
//!   swapped between the exec and the open is a mismatch, never hashed in
//!   place of the original.
//! - [`open_proc_exe`] opens `/proc/<pid>/exe`, the kernel's own reference to
//!   the executed file, for when the path route fails (file renamed or
//!   deleted since, fileless execs) and the process is still alive.

use std::{fs::File, io, os::unix::fs::MetadataExt as _, path::Path};

use verifier_common::event::FileIdentity;
use verifier_sbom::fsroot::RootDir;
use verifier_sensor::events::kernel_dev_to_user;

/// How an opened file compares with the kernel's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Match {
    /// Same device, inode, size and ctime: the file that ran.
    Same,
    /// Same device and inode but a different ctime or size: the file was
    /// changed after the exec.
    Changed,
    /// Another file altogether.
    Other,
}

/// Compares `fstat` of `file` with the kernel's identity.
pub(crate) fn compare(file: &File, id: &FileIdentity) -> io::Result<Match> {
    let m = file.metadata()?;
    Ok(compare_meta(&m, id))
}

/// [`compare`] on metadata already read.
pub(crate) fn compare_meta(m: &std::fs::Metadata, id: &FileIdentity) -> Match {
    if m.dev() != kernel_dev_to_user(id.dev) || m.ino() != id.ino {
        return Match::Other;
    }
    let same_time = m.ctime() == id.ctime_sec && (m.ctime_nsec() as u32) == id.ctime_nsec;
    if same_time && m.size() == id.size as u64 { Match::Same } else { Match::Changed }
}

/// Opens the canonical `path` beneath `root` for reading (no symlink
/// followed anywhere) and compares it with `id`.
pub(crate) fn open_exact(root: &RootDir, path: &[u8], id: &FileIdentity) -> io::Result<(File, Match)> {
    let file = root.open_read(path.strip_prefix(b"/").unwrap_or(path))?;
    let m = compare(&file, id)?;
    Ok((file, m))
}

/// Opens `/proc/<pid>/exe` (under `proc_root`) and compares it with `id`;
/// also returns the link text (the path as the process's namespace sees it,
/// `" (deleted)"` appended by the kernel for unlinked files).
pub(crate) fn open_proc_exe(
    proc_root: &Path,
    pid: u32,
    id: &FileIdentity,
) -> io::Result<(File, Match, Vec<u8>)> {
    let link = proc_root.join(pid.to_string()).join("exe");
    let text = std::os::unix::ffi::OsStringExt::into_vec(std::fs::read_link(&link)?.into_os_string());
    let file = File::open(&link)?;
    let m = compare(&file, id)?;
    Ok((file, m, text))
}

#[cfg(test)]
#[path = "open_tests.rs"]
mod tests;
