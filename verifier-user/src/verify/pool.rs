//! The bounded pool of hashing threads, and the hash cache they share.
//!
//! Hashing is blocking I/O plus CPU: it runs on a few std threads, never on
//! the async event loop. The queue in front of them is bounded: when it is
//! full the exec is not silently passed, the caller gets the job back and
//! reports it as skipped. Results go back to the event loop over a tokio
//! channel.
//!
//! The cache is keyed by file identity (device, inode, ctime, size), never
//! by path: a path can name another file a moment later, an identity
//! cannot (ctime moves on every write, rename or chmod). A file shared by
//! every container of an image (same inode in the image's layer) is hashed
//! once for all of them.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
    thread,
};

use verifier_common::event::FileIdentity;

use super::locate::{Job, Outcome, locate};
use verifier_sbom::hash::{Algs, BUFFER_SIZE, FileHashes};

/// Digests already computed, by file identity.
#[derive(Debug, Default)]
pub struct HashCache {
    map: Mutex<HashMap<FileIdentity, Arc<FileHashes>>>,
    cap: usize,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl HashCache {
    /// A cache holding at most `cap` files (cleared wholesale when full: the
    /// common case, images' binaries, refills in one round of execs).
    pub fn new(cap: usize) -> Self {
        Self { cap, ..Self::default() }
    }

    /// The digests of `id` if they include every one `algs` asks for.
    pub fn get(&self, id: &FileIdentity, algs: Algs) -> Option<Arc<FileHashes>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let found = map.get(id).filter(|h| covers(h, algs)).cloned();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn put(&self, id: FileIdentity, hashes: Arc<FileHashes>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.cap {
            map.clear();
        }
        map.insert(id, hashes);
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn covers(h: &FileHashes, algs: Algs) -> bool {
    (!algs.sha256 || h.sha256.is_some()) && (!algs.sha1 || h.sha1.is_some()) && (!algs.md5 || h.md5.is_some())
}

/// What comes back for a submitted job.
pub type Done<T> = (T, Outcome);

/// A fixed set of hashing threads behind a bounded queue.
pub struct Pool<T: Send + 'static> {
    tx: SyncSender<(T, Job)>,
    pub queued: Arc<AtomicU64>,
}

impl<T: Send + 'static> Pool<T> {
    /// Starts `workers` threads; at most `queue` jobs wait. Each outcome is
    /// sent on `done` with the caller's token.
    pub fn new(
        workers: usize,
        queue: usize,
        cache: Arc<HashCache>,
        done: tokio::sync::mpsc::UnboundedSender<Done<T>>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<(T, Job)>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicU64::new(0));
        for i in 0..workers.max(1) {
            let (rx, done, cache, queued) = (rx.clone(), done.clone(), cache.clone(), queued.clone());
            thread::Builder::new().name(format!("hash-{i}")).spawn(move || {
                let mut buf = vec![0u8; BUFFER_SIZE];
                loop {
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((token, job)) = next else { return };
                    queued.fetch_sub(1, Ordering::Relaxed);
                    let outcome = locate(&job, &cache, &mut buf);
                    if done.send((token, outcome)).is_err() {
                        return;
                    }
                }
            })?;
        }
        Ok(Self { tx, queued })
    }

    /// Queues a job; gives it back when the queue is full.
    pub fn try_submit(&self, token: T, job: Job) -> Result<(), (T, Job)> {
        match self.tx.try_send((token, job)) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => Err(back),
        }
    }
}
