//! One parsed manifest per set of SBOM files, shared by every container
//! that uses it and parsed again when a file's size or mtime changes. A
//! broken SBOM is an error for the containers that need it, remembered
//! until the file changes (not parsed again at every new container).
//!
//! Each parse gets a key of its own from a counter that only goes up: the
//! kernel's fast path remembers verified files per key, so a key must
//! never come to mean another manifest (a memory address can: it is
//! reused once the old manifest is freed).

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use verifier_sbom::{LoadOptions, Manifest, SbomError, load_path};

/// Why a set of SBOM files gave no manifest.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum BaselineError {
    #[error("SBOM {file}: {error}")]
    Sbom { file: PathBuf, error: Arc<SbomError> },
    #[error("no SBOM file could be read")]
    Empty,
}

type Signature = Vec<(PathBuf, u64, i64)>;

/// The next manifest key; never reused for the agent's life.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A key no other manifest (parsed or joined) ever had or will have.
pub(crate) fn next_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

struct Parsed {
    /// This parse's key (see the module doc).
    key: u64,
    signature: Signature,
    result: Result<Arc<Manifest>, BaselineError>,
}

/// Parsed manifests by the list of files they were made from.
#[derive(Default)]
pub(crate) struct ManifestCache {
    parsed: Mutex<HashMap<Vec<PathBuf>, Arc<Parsed>>>,
}

impl ManifestCache {
    /// The merged manifest of `files`, parsed once per content signature,
    /// with its key: the same for as long as the files do not change, never
    /// another manifest's. Blocking: call off the event loop.
    pub(crate) fn keyed_manifest(&self, files: &[PathBuf]) -> Result<(u64, Arc<Manifest>), BaselineError> {
        let signature: Signature = files
            .iter()
            .map(|f| {
                let m = std::fs::metadata(f).ok();
                (
                    f.clone(),
                    m.as_ref().map_or(0, |m| m.size()),
                    m.map_or(0, |m| m.mtime_nsec() + m.mtime() * 1_000_000_000),
                )
            })
            .collect();
        if let Some(p) = self.parsed.lock().unwrap_or_else(|e| e.into_inner()).get(files)
            && p.signature == signature
        {
            return p.result.clone().map(|m| (p.key, m));
        }
        let result = parse_all(files);
        let key = next_key();
        let parsed = Arc::new(Parsed { key, signature, result: result.clone() });
        self.parsed.lock().unwrap_or_else(|e| e.into_inner()).insert(files.to_vec(), parsed);
        // Parsing churns through buffers many times the manifest's size on
        // this (blocking-pool) thread's malloc arena; hand the freed pages
        // back so a node with many images does not keep that high-water mark.
        // SAFETY: malloc_trim only releases free memory; no pointer is touched.
        unsafe { libc::malloc_trim(0) };
        result.map(|m| (key, m))
    }
}

fn parse_all(files: &[PathBuf]) -> Result<Arc<Manifest>, BaselineError> {
    let mut merged: Option<Manifest> = None;
    for f in files {
        let m = load_path(f, &LoadOptions::default())
            .map_err(|e| BaselineError::Sbom { file: f.clone(), error: Arc::new(e) })?;
        match merged.as_mut() {
            Some(all) => all.merge(m),
            None => merged = Some(m),
        }
    }
    let mut m = merged.ok_or(BaselineError::Empty)?;
    m.keep_sha256_where_present();
    m.shrink_to_fit();
    Ok(Arc::new(m))
}
