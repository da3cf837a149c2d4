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
//!    only way to reach a deleted file or a memfd;
//! 4. for a `#!` script, the interpreter its first line names, beneath
//!    the root (the script may have exited, or exec'd another program, by
//!    the time anyone looks: `egrep` is `exec grep -E "$@"`);
//! 5. the container's listed files by identity ([`super::index`]): a
//!    process already gone, whose path no longer leads to the file.
//!
//! Paths are resolved beneath the process's own root (`/proc/<pid>/root`:
//! a `chroot` inside the container moves it), falling back to the
//! container's root once the process is gone, but only when the kernel saw
//! the exec in that root ([`super::root`]). A process that ran in another
//! root and exited before it was looked at has no path the agent can
//! resolve: its file is found by identity among the listed files or not at
//! all ([`Unread::other_root`]), never by its name in the container's
//! root, where the same name may be a listed file.
//!
//! If none is the same file, the exec is unverifiable: nothing is hashed in
//! its place. The path it was run by is still known, and returned with the
//! reason ([`Outcome::Unread`]): a path the SBOM does not list is judged
//! unknown whether or not its bytes could be read.
//!
//! A file mapped as code is found in `/proc/<pid>/maps`, then through the
//! descriptor being mapped, then at the path the kernel walked up from the
//! file at the mapping ([`Job::filename`]), then by the index; if none is
//! the file, it is judged by that path (a library mapped by a process that
//! exited at once is still named, and unknown when the SBOM does not list
//! it). For a script the kernel reports the interpreter as what ran
//! ([`Job::script`]), so the interpreter is the file proven by identity and
//! the script itself is found and hashed by its path ([`super::script`]).

use std::{fs::File, os::unix::fs::MetadataExt as _, path::Path, sync::Arc};

use verifier_common::event::FileIdentity;

use super::{
    hash_cache::HashCache,
    index::LazyIndex,
    open::{Match, open_exact, open_proc_exe},
    script::read_script,
};
use verifier_sbom::{
    Manifest,
    fsroot::{RootDir, canonicalize_in_root},
    hash::{Algs, FileHashes, hash_reader},
};

pub(crate) use super::script::Script;

/// What a worker needs for one exec.
#[derive(Debug)]
pub(crate) struct Job {
    pub root: Arc<RootDir>,
    pub proc_root: Arc<Path>,
    pub tgid: u32,
    /// The executed path as the exec named it; for a library, the path the
    /// kernel walked from the mapped file (empty: none).
    pub filename: Vec<u8>,
    pub identity: FileIdentity,
    /// The kernel saw the exec in a root other than the container's
    /// ([`super::root::ExecRoot::Chroot`]): once the process is gone, its
    /// path is never resolved in the container's root.
    pub chrooted: bool,
    pub algs: Algs,
    /// Files larger than this are not hashed (reported as skipped).
    pub max_bytes: u64,
    /// A file mapped executable, not an exec: found by inode in
    /// `/proc/<pid>/maps`, never through `/proc/<pid>/exe`.
    pub library: bool,
    /// For a library: the descriptor being mapped (-1: unknown; a plain
    /// number keeps the job within the queue's size budget).
    pub mapped_fd: i32,
    /// The kernel flagged a `#!` script: `filename` is the script,
    /// `identity` its interpreter's.
    pub script: bool,
    /// The container's listed files, for finding a file by identity
    /// when its process is gone (`None`: not tried).
    pub listed: Option<Listed>,
}

/// The SBOM of a container and its index of listed files by identity.
#[derive(Clone, Debug)]
pub(crate) struct Listed {
    pub manifest: Arc<Manifest>,
    pub index: Arc<LazyIndex>,
}

/// How the executed file was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Via {
    /// The executed path (after resolving symlinks) beneath the root.
    Path,
    /// The process's `/proc/<pid>/exe` link text, beneath the root.
    ExeLink,
    /// `/proc/<pid>/exe` itself (deleted file, memfd, renamed).
    ProcExe,
    /// The interpreter named by the script's `#!` line, beneath the root.
    Shebang,
    /// A listed file with the kernel's identity ([`super::index`]).
    Index,
    /// `/proc/<pid>/fd/<n>` itself: the descriptor a library was being
    /// mapped from, its path no longer naming it.
    Descriptor,
}

/// The file that ran, found and proven.
#[derive(Debug)]
pub(crate) struct Located {
    /// Canonical path inside the container (as `/proc/<pid>/exe` shows it
    /// for `Via::ProcExe`, without the kernel's `" (deleted)"` suffix).
    pub path: Vec<u8>,
    pub via: Via,
    /// No directory entry links to it any more (deleted, or a memfd).
    pub unlinked: bool,
    /// It had a name when it was run and was deleted since (its ctime
    /// moved with the unlink): the kernel's reference to a file the image
    /// may or may not have held, judged by the path it was run from.
    pub deleted_after_exec: bool,
    /// `None`: larger than the size cap, not hashed.
    pub hashes: Option<Arc<FileHashes>>,
    /// The script, when the executed path was a `#!` script.
    pub script: Option<Script>,
}

/// Outcome of a job.
#[derive(Debug)]
pub(crate) enum Outcome {
    Located(Box<Located>),
    /// The file could not be proven to be the one that ran; the reason says
    /// what was tried.
    Unverifiable(String),
    /// An exec whose file could not be read back, with the path it was run
    /// by: judged by that path alone.
    Unread(Unread),
}

/// An exec whose bytes could not be proven, but whose path is known.
#[derive(Debug)]
pub(crate) struct Unread {
    /// What was tried, and why each failed.
    pub why: String,
    /// The executed path inside the container: canonical when it still
    /// resolves, else as the exec named it (made absolute by the working
    /// directory, `.` and `..` folded).
    pub path: Vec<u8>,
    /// The process had exited and no file with its identity was found.
    pub gone: bool,
    /// The process ran in a root other than the container's and had
    /// exited: `path` is as the exec named it there, never resolved in the
    /// container's root.
    pub other_root: bool,
}

/// Runs a job (blocking).
pub(crate) fn locate(job: &Job, cache: &HashCache, buf: &mut [u8]) -> Outcome {
    let proc_dir = job.proc_root.join(job.tgid.to_string());
    // The process's own root: a `chroot` inside the container moves it.
    let own_root = RootDir::open(&proc_dir.join("root")).ok();
    if own_root.is_none() && job.chrooted {
        return from_other_root(job, cache, buf);
    }
    let root = own_root.as_ref().unwrap_or(&job.root);
    if job.library {
        return locate_mapped(job, root, &proc_dir, cache, buf);
    }
    let cwd = std::fs::read_link(proc_dir.join("cwd")).ok().map(path_bytes);
    let exe_link = std::fs::read_link(proc_dir.join("exe")).ok().map(path_bytes);
    let mut tried = Vec::new();
    let mut gone = false;

    let resolved = canonicalize_in_root(root, &job.filename, cwd.as_deref());
    // The path the exec named, for judging it when its bytes cannot be read.
    let named = match &resolved {
        Ok(p) => Some(p.clone()),
        Err(_) => lexical_path(&job.filename, cwd.as_deref()),
    };
    let (script, interpreter) = if job.script {
        // The script is never the kernel's identity (its interpreter is).
        let path = match resolved {
            Ok(p) => p,
            Err(e) => {
                tried.push(format!("resolving the script's path: {e}"));
                job.filename.clone()
            }
        };
        let (s, interpreter) = read_script(root, path, job.algs, job.max_bytes, buf);
        (Some(s), interpreter)
    } else {
        match resolved {
            Ok(path) => match open_exact(root, &path, &job.identity) {
                Ok((file, Match::Same)) => return hashed(job, cache, file, path, Via::Path, None, buf),
                Ok((_, m)) => tried.push(format!("the executed path is now {}", describe(m))),
                Err(e) => tried.push(format!("the executed path: {e}")),
            },
            Err(e) => tried.push(format!("resolving the executed path: {e}")),
        }
        (None, None)
    };

    if let Some(link) = exe_link.as_deref().filter(|l| !l.ends_with(b" (deleted)") && l.starts_with(b"/")) {
        match open_exact(root, link, &job.identity) {
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
            return hashed(job, cache, file, path, Via::ProcExe, script, buf);
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
            return Outcome::Located(Box::new(Located {
                path,
                via: Via::ProcExe,
                unlinked: true,
                deleted_after_exec: true,
                hashes,
                script,
            }));
        }
        Ok((_, m, _)) => tried.push(format!("/proc/{}/exe is {}", job.tgid, describe(m))),
        Err(e) => {
            gone = true;
            tried.push(format!("/proc/{}/exe: {e} (the process has exited)", job.tgid));
        }
    }
    if let Some(interpreter) = interpreter {
        match canonicalize_in_root(root, &interpreter, cwd.as_deref())
            .and_then(|p| open_exact(root, &p, &job.identity).map(|(f, m)| (f, m, p)))
        {
            Ok((file, Match::Same, path)) => {
                return hashed(job, cache, file, path, Via::Shebang, script, buf);
            }
            Ok((_, m, _)) => tried.push(format!(
                "the script's interpreter {} is {}",
                String::from_utf8_lossy(&interpreter),
                describe(m)
            )),
            Err(e) => {
                tried.push(format!("the script's interpreter {}: {e}", String::from_utf8_lossy(&interpreter)))
            }
        }
    }
    match by_index(job) {
        Some(Ok((file, path))) => return hashed(job, cache, file, path, Via::Index, script, buf),
        Some(Err(why)) => tried.push(why),
        None => {}
    }
    let why = tried.join("; ");
    // A script's own bytes are judged apart; `/proc/self/exe` names no
    // path of the image.
    match named.filter(|_| !job.script && !is_proc_exe(&job.filename)) {
        Some(path) => Outcome::Unread(Unread { why, path, gone, other_root: false }),
        None => Outcome::Unverifiable(why),
    }
}

/// A process that ran in another root (a `chroot` inside the container)
/// and is gone: its path named a file in a tree the agent can no longer
/// reach, so it is found by identity among the listed files, or not at
/// all. A script's own bytes lived in that tree too: never read in the
/// container's root in their place.
fn from_other_root(job: &Job, cache: &HashCache, buf: &mut [u8]) -> Outcome {
    let mut why = format!(
        "the process ran in a root other than the container's (chroot) and exited before /proc/{}/root \
         could be read",
        job.tgid
    );
    if !job.script {
        match by_index(job) {
            Some(Ok((file, path))) => return hashed(job, cache, file, path, Via::Index, None, buf),
            Some(Err(miss)) => why = format!("{why}; {miss}"),
            None => {}
        }
    }
    let path = lexical_path(&job.filename, None).unwrap_or_else(|| job.filename.clone());
    Outcome::Unread(Unread { why, path, gone: true, other_root: true })
}

/// An executed path made absolute without touching the file system: the
/// working directory anchors a relative one, `.` and empty names are
/// dropped, `..` goes up (never above `/`). `None` for a relative path
/// without a working directory.
pub(crate) fn lexical_path(filename: &[u8], cwd: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut full = Vec::new();
    if !filename.starts_with(b"/") {
        full.extend_from_slice(cwd?);
        full.push(b'/');
    }
    full.extend_from_slice(filename);
    let mut names: Vec<&[u8]> = Vec::new();
    for name in full.split(|&b| b == b'/') {
        match name {
            b"" | b"." => {}
            b".." => {
                names.pop();
            }
            n => names.push(n),
        }
    }
    let mut out = Vec::with_capacity(full.len());
    for n in names {
        out.push(b'/');
        out.extend_from_slice(n);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

/// The listed file with the kernel's identity, opened and proven (`None`
/// when the job has no index).
fn by_index(job: &Job) -> Option<Result<(File, Vec<u8>), String>> {
    let listed = job.listed.as_ref()?;
    let index = listed.index.get_or_build(&job.root, &listed.manifest);
    let Some(path) = index.lookup(&job.identity) else { return Some(Err(index.miss(&job.identity))) };
    let found = canonicalize_in_root(&job.root, path.as_bytes(), None).and_then(|canonical| {
        let (file, m) = open_exact(&job.root, &canonical, &job.identity)?;
        Ok((file, m, canonical))
    });
    Some(match found {
        Ok((file, Match::Same, canonical)) => Ok((file, canonical)),
        Ok((_, m, _)) => Err(format!("the listed file {path} with its device and inode is {}", describe(m))),
        Err(e) => Err(format!("the listed file {path} with its identity: {e}")),
    })
}

/// A mapped file: its path from the process's own memory map (the
/// mapping outlives the descriptor the loader closed), opened beneath the
/// root and proven to be the mapped file; when the process is gone, or no
/// longer maps it, the listed file with its identity.
///
/// The kernel reports the mapping on entry to `mmap`, so the agent can
/// look before the mapping exists (on one CPU the wake-up preempts the
/// mapper): the descriptor being mapped is then still open and leads to
/// the file. The loader closes it once `mmap` returns, by which time the
/// map holds it, so the map is read once more after the descriptor: at
/// every instant while the process lives one of the two names the file.
fn locate_mapped(job: &Job, root: &RootDir, proc_dir: &Path, cache: &HashCache, buf: &mut [u8]) -> Outcome {
    let mut why = match from_maps(job, root, proc_dir) {
        Ok((file, path)) => return hashed(job, cache, file, path, Via::Path, None, buf),
        Err(why) => why,
    };
    if let fd @ 0.. = job.mapped_fd {
        match from_descriptor(job, root, proc_dir, fd) {
            Ok((file, path, via)) => return hashed(job, cache, file, path, via, None, buf),
            Err(e) => why = format!("{why}; {e}"),
        }
        if let Ok((file, path)) = from_maps(job, root, proc_dir) {
            return hashed(job, cache, file, path, Via::Path, None, buf);
        }
    }
    // The path the kernel walked from the mapped file: what names it once
    // the process (and its maps and descriptors) are gone.
    let kernel_path = (!job.filename.is_empty()).then_some(job.filename.as_slice());
    if let Some(path) = kernel_path {
        match open_exact(root, path, &job.identity) {
            Ok((file, Match::Same)) => return hashed(job, cache, file, path.to_vec(), Via::Path, None, buf),
            Ok((_, m)) => why = format!("{why}; the mapped path is now {}", describe(m)),
            Err(e) => why = format!("{why}; the mapped path: {e}"),
        }
    }
    match by_index(job) {
        Some(Ok((file, path))) => return hashed(job, cache, file, path, Via::Index, None, buf),
        Some(Err(miss)) => why = format!("{why}; {miss}"),
        None => {}
    }
    // Judged by the path it was mapped from, as an exec whose file cannot
    // be read back is: never `ok`, and unknown when the SBOM does not list
    // it.
    match kernel_path {
        Some(path) => {
            let gone = !proc_dir.exists();
            Outcome::Unread(Unread { why, path: path.to_vec(), gone, other_root: false })
        }
        None => Outcome::Unverifiable(why),
    }
}

/// The mapped file by its path in `/proc/<pid>/maps`, proven.
fn from_maps(job: &Job, root: &RootDir, proc_dir: &Path) -> Result<(File, Vec<u8>), String> {
    let maps = std::fs::read(proc_dir.join("maps"))
        .map_err(|e| format!("/proc/{}/maps: {e} (the process has exited)", job.tgid))?;
    let path = mapped_path(&maps, job.identity.ino)
        .ok_or_else(|| format!("inode {} is not mapped by {}", job.identity.ino, job.tgid))?;
    match open_exact(root, &path, &job.identity) {
        Ok((file, Match::Same)) => Ok((file, path)),
        Ok((_, m)) => Err(format!("the mapped path is now {}", describe(m))),
        Err(e) => Err(format!("the mapped path: {e}")),
    }
}

/// The descriptor being mapped (`/proc/<pid>/fd/<fd>`): its link text is
/// the path as the process sees it, opened beneath the root and proven;
/// failing that (renamed, unlinked) the descriptor itself, proven the
/// same way, so a number reused for another file is refused.
fn from_descriptor(
    job: &Job,
    root: &RootDir,
    proc_dir: &Path,
    fd: i32,
) -> Result<(File, Vec<u8>, Via), String> {
    let link = proc_dir.join("fd").join(fd.to_string());
    let text = std::fs::read_link(&link)
        .map(path_bytes)
        .map_err(|e| format!("/proc/{}/fd/{fd}: {e} (closed since the mapping)", job.tgid))?;
    let path = text.strip_suffix(b" (deleted)").unwrap_or(&text).to_vec();
    if path.starts_with(b"/")
        && let Ok((file, Match::Same)) = open_exact(root, &path, &job.identity)
    {
        return Ok((file, path, Via::Path));
    }
    let file = File::open(&link).map_err(|e| format!("/proc/{}/fd/{fd}: {e}", job.tgid))?;
    match super::open::compare(&file, &job.identity) {
        Ok(Match::Same) => Ok((file, path, Via::Descriptor)),
        Ok(m) => Err(format!("/proc/{}/fd/{fd} is now {}", job.tgid, describe(m))),
        Err(e) => Err(format!("/proc/{}/fd/{fd}: {e}", job.tgid)),
    }
}

/// The path of the first mapping of inode `ino` in a `/proc/<pid>/maps`
/// text (`start-end perms offset dev inode   path`). Paths are the last
/// field and may hold spaces; a newline in a name is shown as `\012`.
pub(crate) fn mapped_path(maps: &[u8], ino: u64) -> Option<Vec<u8>> {
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
    Outcome::Located(Box::new(Located { path, via, unlinked, deleted_after_exec: false, hashes, script }))
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

fn path_bytes(p: std::path::PathBuf) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt as _;
    p.into_os_string().into_vec()
}

/// `/proc/self/exe`, `/proc/thread-self/exe` or `/proc/<pid>/exe`: the
/// process re-running its own executable (busybox applets).
pub(crate) fn is_proc_exe(filename: &[u8]) -> bool {
    let Some(rest) = filename.strip_prefix(b"/proc/") else { return false };
    let Some(who) = rest.strip_suffix(b"/exe") else { return false };
    who == b"self" || who == b"thread-self" || (!who.is_empty() && who.iter().all(u8::is_ascii_digit))
}

/// `execveat(fd, "", AT_EMPTY_PATH)` and `fexecve` name the file
/// `/dev/fd/N`; `/proc/<pid>/fd/N` is the explicit spelling. Either way the
/// file was run from a descriptor, not a path of the image.
pub(crate) fn runs_from_descriptor(filename: &[u8]) -> bool {
    if filename.starts_with(b"/dev/fd/") || filename.starts_with(b"/proc/self/fd/") {
        return true;
    }
    let Some(rest) = filename.strip_prefix(b"/proc/") else { return false };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest[digits..].starts_with(b"/fd/")
}

#[cfg(test)]
#[path = "locate_tests.rs"]
mod tests;
