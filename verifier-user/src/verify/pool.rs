//! The bounded pool of hashing threads (their cache is [`super::hash_cache`]).
//!
//! Hashing is blocking I/O plus CPU: it runs on a few std threads, never on
//! the async event loop. The queue in front of them is bounded: when it is
//! full the exec is not silently passed, the caller gets the job back and
//! reports it as skipped. Results go back to the event loop over a tokio
//! channel.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
    thread,
};

use super::{
    hash_cache::HashCache,
    locate::{Job, Outcome, locate},
};
use verifier_sbom::hash::BUFFER_SIZE;

/// What comes back for a submitted job.
pub(crate) type Done<T> = (T, Outcome);

/// A fixed set of hashing threads behind a bounded queue.
pub(crate) struct Pool<T: Send + 'static> {
    tx: SyncSender<(T, Job)>,
    pub queued: Arc<AtomicU64>,
}

impl<T: Send + 'static> Pool<T> {
    /// Starts `workers` threads; at most `queue` jobs wait. Each outcome is
    /// sent on `done` with the caller's token.
    pub(crate) fn new(
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
    pub(crate) fn try_submit(&self, token: T, job: Job) -> Result<(), (T, Job)> {
        match self.tx.try_send((token, job)) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => Err(back),
        }
    }
}
