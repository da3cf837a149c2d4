//! The hashing engine of `sbom generate` (and of `check`): one read of each
//! file feeds every digest asked for, and a bounded pool of std threads
//! hashes many files at once.
//!
//! Why this shape: SHA-256 with SHA-NI runs at about 1.4 GB/s per core, so
//! the engine must add next to nothing around the compression function.
//! Each worker owns one 128 KiB buffer (large enough to amortise the
//! syscall, small enough to stay in L2 while several digests read it) and
//! no allocation happens per block. Jobs are either a path beneath a root
//! (rootfs input: opened through [`RootDir`], so a file or directory
//! swapped for a symlink after the walk can never lead outside the rootfs) or bytes already read from a layer tar; bytes in
//! flight are bounded by a budget so a layer full of large files cannot
//! exhaust memory.

use std::{
    fs::File,
    io::{self, Read},
    os::unix::{ffi::OsStrExt as _, fs::OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, mpsc},
    thread,
};

use sha1::Digest as _;

use crate::{HashAlg, fsroot::RootDir};

/// Which digests to compute for a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Algs {
    pub sha256: bool,
    pub sha1: bool,
    pub sha384: bool,
    pub sha512: bool,
    pub md5: bool,
}

impl Algs {
    /// SHA-256 only: what CycloneDX output and most checks need.
    pub const SHA256: Self = Self { sha256: true, sha1: false, sha384: false, sha512: false, md5: false };
    /// SHA-256 and SHA-1: SPDX 2.3 requires a SHA-1 for every file.
    pub const SHA256_SHA1: Self = Self { sha1: true, ..Self::SHA256 };
    /// Nothing: the start of a union.
    pub const NONE: Self = Self { sha256: false, sha1: false, sha384: false, sha512: false, md5: false };

    /// These digests and the one of `alg` (an algorithm the engine cannot
    /// compute adds nothing).
    #[must_use]
    pub fn with(mut self, alg: HashAlg) -> Self {
        match alg {
            HashAlg::Sha256 => self.sha256 = true,
            HashAlg::Sha512 => self.sha512 = true,
            HashAlg::Sha384 => self.sha384 = true,
            HashAlg::Sha1 => self.sha1 = true,
            HashAlg::Md5 => self.md5 = true,
            _ => {}
        }
        self
    }

    /// Every digest either asks for.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self {
            sha256: self.sha256 || other.sha256,
            sha1: self.sha1 || other.sha1,
            sha384: self.sha384 || other.sha384,
            sha512: self.sha512 || other.sha512,
            md5: self.md5 || other.md5,
        }
    }

    /// Whether every algorithm the engine can compute is asked for.
    pub fn is_all(self) -> bool {
        self.sha256 && self.sha1 && self.sha384 && self.sha512 && self.md5
    }
}

/// The digests of one file, plus what the first bytes said about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileHashes {
    pub size: u64,
    /// Starts with the ELF magic.
    pub elf: bool,
    pub sha256: Option<[u8; 32]>,
    pub sha1: Option<[u8; 20]>,
    pub sha384: Option<Box<[u8]>>,
    pub sha512: Option<Box<[u8]>>,
    pub md5: Option<[u8; 16]>,
}

impl FileHashes {
    /// The computed digest of `alg`, raw bytes; `None` when it was not
    /// asked for or the engine cannot compute it.
    pub fn digest(&self, alg: HashAlg) -> Option<&[u8]> {
        match alg {
            HashAlg::Sha256 => self.sha256.as_ref().map(|d| &d[..]),
            HashAlg::Sha512 => self.sha512.as_deref(),
            HashAlg::Sha384 => self.sha384.as_deref(),
            HashAlg::Sha1 => self.sha1.as_ref().map(|d| &d[..]),
            HashAlg::Md5 => self.md5.as_ref().map(|d| &d[..]),
            _ => None,
        }
    }
}

/// Errors of the hashing engine.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot open {path} for hashing: {error}; check it exists and is readable")]
    Open { path: PathBuf, error: io::Error },
    #[error("{path} is not a regular file any more (it changed while being hashed)")]
    NotRegular { path: PathBuf },
    #[error("reading {what} failed while hashing: {error}")]
    Read { what: String, error: io::Error },
}

/// Size of each worker's read buffer.
pub const BUFFER_SIZE: usize = 128 * 1024;

/// Hashes everything `reader` yields with the digests `algs` asks for.
pub fn hash_reader<R: Read>(mut reader: R, algs: Algs, buf: &mut [u8]) -> io::Result<FileHashes> {
    let mut s256 = algs.sha256.then(sha2::Sha256::new);
    let mut s1 = algs.sha1.then(sha1::Sha1::new);
    let mut s384 = algs.sha384.then(sha2::Sha384::new);
    let mut s512 = algs.sha512.then(sha2::Sha512::new);
    let mut m5 = algs.md5.then(md5::Md5::new);
    let mut out = FileHashes::default();
    let mut head = [0u8; 4];
    let mut head_len = 0usize;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        if head_len < 4 {
            let take = (4 - head_len).min(n);
            head[head_len..head_len + take].copy_from_slice(&chunk[..take]);
            head_len += take;
        }
        out.size += n as u64;
        if let Some(h) = s256.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = s1.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = s384.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = s512.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = m5.as_mut() {
            h.update(chunk);
        }
    }
    out.elf = head_len == 4 && head == *b"\x7fELF";
    out.sha256 = s256.map(|h| h.finalize().into());
    out.sha1 = s1.map(|h| h.finalize().into());
    out.sha384 = s384.map(|h| h.finalize().to_vec().into_boxed_slice());
    out.sha512 = s512.map(|h| h.finalize().to_vec().into_boxed_slice());
    out.md5 = m5.map(|h| h.finalize().into());
    Ok(out)
}

/// Opens `path` without following a final symlink and hashes it.
pub fn hash_path(path: &Path, algs: Algs, buf: &mut [u8]) -> Result<FileHashes, HashError> {
    let file = File::options()
        .read(true)
        // O_NONBLOCK: a FIFO swapped in after the walk must not hang us.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| HashError::Open { path: path.to_owned(), error })?;
    let meta = file.metadata().map_err(|error| HashError::Open { path: path.to_owned(), error })?;
    if !meta.is_file() {
        return Err(HashError::NotRegular { path: path.to_owned() });
    }
    hash_reader(file, algs, buf).map_err(|error| HashError::Read { what: path.display().to_string(), error })
}

/// What a job hashes.
#[derive(Debug)]
pub enum Source {
    Path(PathBuf),
    /// A path inside a root directory, opened so that no component (even
    /// one swapped for a symlink after the walk) can lead outside it.
    InRoot(Arc<RootDir>, PathBuf),
    Bytes(Vec<u8>),
}

/// Hashes `rel` beneath `root` (see [`RootDir::open_read`]).
pub fn hash_in_root(root: &RootDir, rel: &Path, algs: Algs, buf: &mut [u8]) -> Result<FileHashes, HashError> {
    let path = root.origin.join(rel);
    let file = root
        .open_read(rel.as_os_str().as_bytes())
        .map_err(|error| HashError::Open { path: path.clone(), error })?;
    let meta = file.metadata().map_err(|error| HashError::Open { path: path.clone(), error })?;
    if !meta.is_file() {
        return Err(HashError::NotRegular { path });
    }
    hash_reader(file, algs, buf).map_err(|error| HashError::Read { what: path.display().to_string(), error })
}

/// Index of a job in [`HashPool::finish`]'s result vector.
pub type JobId = usize;

type JobResult = Result<FileHashes, HashError>;

/// Bounds the bytes held by queued [`Source::Bytes`] jobs.
#[derive(Debug)]
struct Budget {
    in_flight: Mutex<u64>,
    freed: Condvar,
    limit: u64,
}

impl Budget {
    fn acquire(&self, n: u64) {
        let mut used = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        // A job larger than the whole budget still runs, alone.
        while *used > 0 && *used + n > self.limit {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += n;
    }

    fn release(&self, n: u64) {
        let mut used = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(n);
        self.freed.notify_all();
    }
}

/// A fixed set of worker threads hashing submitted jobs.
pub struct HashPool {
    jobs: Option<mpsc::SyncSender<(JobId, Source, Algs)>>,
    results: mpsc::Receiver<(JobId, JobResult)>,
    result_tx: mpsc::Sender<(JobId, JobResult)>,
    workers: Vec<thread::JoinHandle<()>>,
    budget: Arc<Budget>,
    next: JobId,
    buf: Vec<u8>,
}

impl HashPool {
    /// Starts `threads` workers (at least one). `on_bytes` is told how many
    /// bytes each finished job hashed (progress reporting).
    pub fn new(threads: usize, on_bytes: Arc<dyn Fn(u64) + Send + Sync>) -> Self {
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::sync_channel::<(JobId, Source, Algs)>(threads * 16);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, results) = mpsc::channel();
        let budget = Arc::new(Budget { in_flight: Mutex::new(0), freed: Condvar::new(), limit: 256 << 20 });
        let workers = (0..threads)
            .map(|_| {
                let job_rx = Arc::clone(&job_rx);
                let result_tx = result_tx.clone();
                let budget = Arc::clone(&budget);
                let on_bytes = Arc::clone(&on_bytes);
                thread::spawn(move || {
                    let mut buf = vec![0u8; BUFFER_SIZE];
                    loop {
                        let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((id, source, algs)) = job else { break };
                        let result = match source {
                            Source::Path(path) => hash_path(&path, algs, &mut buf),
                            Source::InRoot(root, rel) => hash_in_root(&root, &rel, algs, &mut buf),
                            Source::Bytes(bytes) => {
                                let r = hash_reader(bytes.as_slice(), algs, &mut buf)
                                    .map_err(|error| HashError::Read { what: "layer entry".into(), error });
                                budget.release(bytes.len() as u64);
                                r
                            }
                        };
                        if let Ok(h) = &result {
                            on_bytes(h.size);
                        }
                        if result_tx.send((id, result)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Self { jobs: Some(job_tx), results, result_tx, workers, budget, next: 0, buf: Vec::new() }
    }

    /// Queues a job; blocks while the queue (or the byte budget) is full.
    pub fn submit(&mut self, source: Source, algs: Algs) -> JobId {
        let id = self.next;
        self.next += 1;
        if let Source::Bytes(bytes) = &source {
            self.budget.acquire(bytes.len() as u64);
        }
        match self.jobs.as_ref().map(|tx| tx.send((id, source, algs))) {
            Some(Ok(())) => {}
            // Workers gone (they only stop when the pool is dropped): record it.
            _ => {
                let _ = self.result_tx.send((
                    id,
                    Err(HashError::Read {
                        what: "hash worker".into(),
                        error: io::Error::other("worker stopped"),
                    }),
                ));
            }
        }
        id
    }

    /// Hashes `reader` on the calling thread (for entries too large to
    /// buffer) and records the result as a job.
    /// A read error is returned (the stream is broken), not recorded.
    pub fn hash_inline<R: Read>(&mut self, reader: R, algs: Algs) -> io::Result<JobId> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; BUFFER_SIZE];
        }
        let hashes = hash_reader(reader, algs, &mut self.buf)?;
        let id = self.next;
        self.next += 1;
        let _ = self.result_tx.send((id, Ok(hashes)));
        Ok(id)
    }

    /// The id the next submitted job will get.
    pub fn next_id(&self) -> JobId {
        self.next
    }

    /// Waits for every job; returns the results indexed by [`JobId`].
    pub fn finish(mut self) -> Vec<JobResult> {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        drop(self.result_tx);
        let mut out: Vec<Option<JobResult>> = (0..self.next).map(|_| None).collect();
        for (id, result) in self.results.iter() {
            if let Some(slot) = out.get_mut(id) {
                *slot = Some(result);
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(HashError::Read {
                        what: "hash worker".into(),
                        error: io::Error::other("job lost (worker panicked)"),
                    })
                })
            })
            .collect()
    }
}

/// Worker threads to use: `requested`, or one per available core.
pub fn default_threads(requested: Option<usize>) -> usize {
    requested.filter(|&n| n > 0).unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut buf = vec![0u8; 7]; // tiny buffer: exercises the multi-read path
        let all = Algs { sha256: true, sha1: true, sha384: true, sha512: true, md5: true };
        let h = hash_reader(&b"abc"[..], all, &mut buf).expect("hash");
        assert_eq!(
            hex::encode(h.sha256.expect("sha256")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex::encode(h.sha1.expect("sha1")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex::encode(h.md5.expect("md5")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex::encode(h.digest(HashAlg::Sha384).expect("sha384")),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(
            hex::encode(h.digest(HashAlg::Sha512).expect("sha512")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        assert_eq!(h.digest(HashAlg::Sha3_256), None);
        assert_eq!(h.size, 3);
        assert!(!h.elf);
        let h = hash_reader(&b"\x7fELF\x02\x01"[..], Algs::SHA256, &mut buf).expect("hash");
        assert!(h.elf && h.sha1.is_none());
    }

    #[test]
    fn algs_are_built_by_algorithm() {
        let algs = Algs::NONE.with(HashAlg::Sha512).with(HashAlg::Blake3);
        assert_eq!(algs, Algs { sha512: true, ..Algs::NONE });
        assert_eq!(Algs::SHA256.union(algs), Algs { sha512: true, ..Algs::SHA256 });
        assert!(!Algs::SHA256_SHA1.is_all());
        let all = [HashAlg::Sha256, HashAlg::Sha512, HashAlg::Sha384, HashAlg::Sha1, HashAlg::Md5];
        assert!(all.into_iter().fold(Algs::NONE, Algs::with).is_all());
    }

    #[test]
    fn hashing_in_a_root_opens_beneath_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("inside"), b"in").expect("write");
        std::os::unix::fs::symlink("/", tmp.path().join("up")).expect("symlink");
        std::os::unix::fs::symlink("/inside", tmp.path().join("link")).expect("symlink");
        let root = RootDir::open(tmp.path()).expect("root");
        let mut buf = vec![0u8; 64];
        let hash = |rel: &str, buf: &mut [u8]| hash_in_root(&root, Path::new(rel), Algs::SHA256, buf);
        assert_eq!(hash("up/inside", &mut buf).expect("inside").size, 2);
        // `/up/etc/passwd` is the root's own /etc/passwd, which does not exist.
        assert!(matches!(hash("up/etc/passwd", &mut buf), Err(HashError::Open { .. })));
        // The last component is never followed.
        assert!(matches!(hash("link", &mut buf), Err(HashError::Open { .. })));
        assert!(matches!(hash("up", &mut buf), Err(HashError::Open { .. })));
        assert!(matches!(hash(".", &mut buf), Err(HashError::NotRegular { .. })));
    }

    #[test]
    fn pool_returns_results_in_job_order() {
        let mut pool = HashPool::new(2, Arc::new(|_| {}));
        let ids: Vec<_> = (0..50u8)
            .map(|i| pool.submit(Source::Bytes(vec![i; 1000 + usize::from(i)]), Algs::SHA256))
            .collect();
        let results = pool.finish();
        assert_eq!(results.len(), 50);
        for (i, id) in ids.into_iter().enumerate() {
            assert_eq!(results[id].as_ref().expect("ok").size, 1000 + i as u64);
        }
    }
}
