//! One exec, on a worker thread: find the file that ran, prove it is the
//! same file, hash it.
//!
//! Order of attempts (each compared with the kernel's identity, see
//! [`super::open`]):
//! 1. the executed path, canonicalized beneath the container root (the
//!    working directory anchors a relative path);
//! 2. `/proc/<pid>/exe` read as a link: the path as the process sees it,
//!    opened beneath the root (covers a path that changed meaning since);
//! 3. `/proc/<pid>/exe` opened directly: the kernel's own reference, the
//!    only way to reach a deleted file or a memfd.
//!
//! If none is the same file, the exec is unverifiable: nothing is hashed in
//! its place. When the executed path is a `#!` script, the interpreter is
//! what the kernel reports as the executable, so the script is hashed too
//! (there is no kernel identity for it: what is hashed is what the
//! interpreter is reading).

use std::{fs::File, io::Read as _, os::unix::fs::MetadataExt as _, path::Path, sync::Arc};

use verifier_common::event::FileIdentity;

use super::{
    hash_cache::HashCache,
    open::{Match, open_exact, open_proc_exe},
};
use verifier_sbom::{
    fsroot::{RootDir, canonicalize_in_root},
    hash::{Algs, FileHashes, hash_reader},
};

/// What a worker needs for one exec.
#[derive(Debug)]
pub struct Job {
    pub root: Arc<RootDir>,
    pub proc_root: Arc<Path>,
    pub tgid: u32,
    pub filename: Vec<u8>,
    pub identity: FileIdentity,
    pub algs: Algs,
    /// Files larger than this are not hashed (reported as skipped).
    pub max_bytes: u64,
    /// A file mapped executable, not an exec: found by inode in
    /// `/proc/<pid>/maps`, never through `/proc/<pid>/exe`.
    pub library: bool,
}

/// How the executed file was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The executed path (after resolving symlinks) beneath the root.
    Path,
    /// The process's `/proc/<pid>/exe` link text, beneath the root.
    ExeLink,
    /// `/proc/<pid>/exe` itself (deleted file, memfd, renamed).
    ProcExe,
}

/// The file that ran, found and proven.
#[derive(Debug)]
pub struct Located {
    /// Canonical path inside the container (as `/proc/<pid>/exe` shows it
    /// for `Via::ProcExe`, without the kernel's `" (deleted)"` suffix).
    pub path: Vec<u8>,
    pub via: Via,
    /// No directory entry links to it any more (deleted, or a memfd).
    pub unlinked: bool,
    /// `None`: larger than the size cap, not hashed.
    pub hashes: Option<Arc<FileHashes>>,
    /// The script, when the executed path was a `#!` script.
    pub script: Option<Script>,
}

/// A `#!` script run through an interpreter.
#[derive(Debug)]
pub struct Script {
    pub path: Vec<u8>,
    pub hashes: Option<FileHashes>,
}

/// Outcome of a job.
#[derive(Debug)]
pub enum Outcome {
    Located(Box<Located>),
    /// The file could not be proven to be the one that ran; the reason says
    /// what was tried.
    Unverifiable(String),
}

/// Runs a job (blocking).
pub fn locate(job: &Job, cache: &HashCache, buf: &mut [u8]) -> Outcome {
    let proc_dir = job.proc_root.join(job.tgid.to_string());
    if job.library {
        return locate_mapped(job, &proc_dir, cache, buf);
    }
    let cwd = std::fs::read_link(proc_dir.join("cwd")).ok().map(path_bytes);
    let exe_link = std::fs::read_link(proc_dir.join("exe")).ok().map(path_bytes);
    let mut tried = Vec::new();
    let mut script_path = None;

    match canonicalize_in_root(&job.root, &job.filename, cwd.as_deref()) {
        Ok(path) => match open_exact(&job.root, &path, &job.identity) {
            Ok((file, Match::Same)) => return hashed(job, cache, file, path, Via::Path, None, buf),
            Ok((mut file, m)) => {
                if starts_with_shebang(&mut file) {
                    script_path = Some(path);
                } else {
                    tried.push(format!("the executed path is now {}", describe(m)));
                }
            }
            Err(e) => tried.push(format!("the executed path: {e}")),
        },
        Err(e) => tried.push(format!("resolving the executed path: {e}")),
    }
    let script = script_path.map(|path| hash_script(&job.root, path, job.max_bytes, buf));

    if let Some(link) = exe_link.as_deref().filter(|l| !l.ends_with(b" (deleted)") && l.starts_with(b"/")) {
        match open_exact(&job.root, link, &job.identity) {
            Ok((file, Match::Same)) => {
                return hashed(job, cache, file, link.to_vec(), Via::ExeLink, script, buf);
            }
            Ok((_, m)) => tried.push(format!("the exe link target is {}", describe(m))),
            Err(e) => tried.push(format!("the exe link target: {e}")),
        }
    }
    match open_proc_exe(&job.proc_root, job.tgid, &job.identity) {
        Ok((file, Match::Same, text)) => {
            let path = text.strip_suffix(b" (deleted)").map(<[u8]>::to_vec).unwrap_or(text);
            hashed(job, cache, file, path, Via::ProcExe, script, buf)
        }
        // Unlinking a file moves its ctime, so a binary deleted after its
        // exec no longer matches: it is still the kernel's own reference to
        // what runs (same device and inode), reported as fileless, with
        // the digest of its bytes now, never cached or trusted as `ok`.
        Ok((file, Match::Changed, text)) if file.metadata().is_ok_and(|m| m.nlink() == 0) => {
            let path = text.strip_suffix(b" (deleted)").map(<[u8]>::to_vec).unwrap_or(text);
            let hashes = file
                .metadata()
                .is_ok_and(|m| m.size() <= job.max_bytes)
                .then(|| hash_reader(&file, job.algs, buf).ok().map(Arc::new))
                .flatten();
            Outcome::Located(Box::new(Located { path, via: Via::ProcExe, unlinked: true, hashes, script }))
        }
        Ok((_, m, _)) => {
            tried.push(format!("/proc/{}/exe is {}", job.tgid, describe(m)));
            Outcome::Unverifiable(tried.join("; "))
        }
        Err(e) => {
            tried.push(format!("/proc/{}/exe: {e} (the process has exited)", job.tgid));
            Outcome::Unverifiable(tried.join("; "))
        }
    }
}

/// A mapped file: its path from the process's own memory map (the
/// mapping outlives the descriptor the loader closed), opened beneath the
/// root and proven to be the mapped file.
fn locate_mapped(job: &Job, proc_dir: &Path, cache: &HashCache, buf: &mut [u8]) -> Outcome {
    let maps = match std::fs::read(proc_dir.join("maps")) {
        Ok(m) => m,
        Err(e) => {
            return Outcome::Unverifiable(format!("/proc/{}/maps: {e} (the process has exited)", job.tgid));
        }
    };
    let Some(path) = mapped_path(&maps, job.identity.ino) else {
        return Outcome::Unverifiable(format!(
            "inode {} is no longer mapped by {}",
            job.identity.ino, job.tgid
        ));
    };
    match open_exact(&job.root, &path, &job.identity) {
        Ok((file, Match::Same)) => hashed(job, cache, file, path, Via::Path, None, buf),
        Ok((_, m)) => Outcome::Unverifiable(format!("the mapped path is now {}", describe(m))),
        Err(e) => Outcome::Unverifiable(format!("the mapped path: {e}")),
    }
}

/// The path of the first mapping of inode `ino` in a `/proc/<pid>/maps`
/// text (`start-end perms offset dev inode   path`). Paths are the last
/// field and may hold spaces; a newline in a name is shown as `\012`.
pub fn mapped_path(maps: &[u8], ino: u64) -> Option<Vec<u8>> {
    maps.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.splitn(6, |&b| b == b' ');
        let (_, _, _, _) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        let inode: u64 = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
        let path = fields.next()?.trim_ascii_start();
        (inode == ino && path.starts_with(b"/")).then(|| unescape_maps(path))
    })
}

/// Undoes the kernel's `\ooo` escaping of `\n` in maps paths.
fn unescape_maps(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'\\' && p.len() >= i + 4 && p[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((p[i + 1] - b'0') * 64 + (p[i + 2] - b'0') * 8 + (p[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(p[i]);
            i += 1;
        }
    }
    out
}

fn describe(m: Match) -> &'static str {
    match m {
        Match::Same => "the same file",
        Match::Changed => "the same inode, changed since the exec",
        Match::Other => "another file (replaced since the exec)",
    }
}

fn hashed(
    job: &Job,
    cache: &HashCache,
    file: File,
    path: Vec<u8>,
    via: Via,
    script: Option<Script>,
    buf: &mut [u8],
) -> Outcome {
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Outcome::Unverifiable(format!("fstat: {e}")),
    };
    let unlinked = meta.nlink() == 0;
    let hashes = if meta.size() > job.max_bytes {
        None
    } else if let Some(h) = cache.get(&cache_key(&file, &job.identity), job.algs) {
        Some(h)
    } else {
        let h = match hash_reader(&file, job.algs, buf) {
            Ok(h) => Arc::new(h),
            Err(e) => return Outcome::Unverifiable(format!("reading the file: {e}")),
        };
        // Changed while being read: the bytes hashed may not be those that
        // ran, and must not be cached under the identity.
        match super::open::compare(&file, &job.identity) {
            Ok(Match::Same) => {}
            Ok(_) => return Outcome::Unverifiable("the file changed while it was being hashed".into()),
            Err(e) => return Outcome::Unverifiable(format!("fstat after hashing: {e}")),
        }
        cache.put(cache_key(&file, &job.identity), h.clone());
        Some(h)
    };
    Outcome::Located(Box::new(Located { path, via, unlinked, hashes, script }))
}

/// Device number standing for "some overlay mount" in cache keys.
const ANY_OVERLAY: u32 = u32::MAX;

/// The hash cache key of a proven file. Every container gets its own
/// overlay mount, hence its own device number, over the same image layers:
/// keyed by the overlay's device, an image's files would be hashed again in
/// each container. A file on overlayfs reports the inode number and ctime
/// of the underlying layer file, so it is keyed without the device: two
/// different files would need the same inode number, size and ctime to the
/// nanosecond (which the kernel sets, not the user) to share a key.
fn cache_key(file: &File, id: &FileIdentity) -> FileIdentity {
    let on_overlay = nix::sys::statfs::fstatfs(file)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC);
    if on_overlay { FileIdentity { dev: ANY_OVERLAY, ..*id } } else { *id }
}

fn starts_with_shebang(file: &mut File) -> bool {
    let mut head = [0u8; 2];
    file.read_exact(&mut head).is_ok() && head == *b"#!"
}

fn hash_script(root: &RootDir, path: Vec<u8>, max: u64, buf: &mut [u8]) -> Script {
    let rel = path.strip_prefix(b"/").unwrap_or(&path).to_vec();
    let hashes = root
        .open_read(&rel)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file() && m.size() <= max))
        .and_then(|f| hash_reader(&f, Algs::SHA256, buf).ok());
    Script { path, hashes }
}

fn path_bytes(p: std::path::PathBuf) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt as _;
    p.into_os_string().into_vec()
}

#[cfg(test)]
#[path = "locate_tests.rs"]
mod tests;
