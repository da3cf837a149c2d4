//! The hash cache shared by the hashing threads.
//!
//! Keyed by file identity (device, inode, ctime, size), never by path: a
//! path can name another file a moment later, an identity cannot (ctime
//! moves on every write, rename or chmod). A file shared by every container
//! of an image (same inode in the image's layer) is hashed once for all of
//! them.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use verifier_common::event::FileIdentity;
use verifier_sbom::hash::{Algs, FileHashes};

/// Digests already computed, by file identity.
#[derive(Debug, Default)]
pub(crate) struct HashCache {
    map: Mutex<HashMap<FileIdentity, Arc<FileHashes>>>,
    cap: usize,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl HashCache {
    /// A cache holding at most `cap` files (cleared wholesale when full: the
    /// common case, images' binaries, refills in one round of execs).
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, ..Self::default() }
    }

    /// The digests of `id` if they include every one `algs` asks for.
    pub(crate) fn get(&self, id: &FileIdentity, algs: Algs) -> Option<Arc<FileHashes>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let found = map.get(id).filter(|h| covers(h, algs)).cloned();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn put(&self, id: FileIdentity, hashes: Arc<FileHashes>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.cap {
            map.clear();
        }
        map.insert(id, hashes);
    }
}

fn covers(h: &FileHashes, algs: Algs) -> bool {
    (!algs.sha256 || h.sha256.is_some()) && (!algs.sha1 || h.sha1.is_some()) && (!algs.md5 || h.md5.is_some())
}
