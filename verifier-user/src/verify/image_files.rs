//! The image's read-only content when the container root is not an
//! overlay (a runc bundle), and the `sbom-gap` evidence a joined package
//! database gives.
//!
//! A package database read from a container's root is only the image's if
//! nothing in the container can have written it. For a runc bundle that
//! holds in two cases, and only there is a join made:
//!
//! - the bundle's `config.json` mounts the root read-only
//!   (`root.readonly: true`): the runtime itself keeps the container's
//!   processes from writing any of it, so what is there is what the bundle
//!   was created with. The files are read from the bundle's rootfs on the
//!   host, beneath it, so a mount the container made over a database
//!   directory is not what is read;
//! - umoci unpacked it and its mtree manifest ([`super::mtree`]) gives the
//!   file's SHA-256: a database file is used only when its bytes match.
//!
//! [`GapContent`] turns the files of installed packages the SBOM does not
//! list into image content: such a file is `sbom-gap` when the bytes that
//! ran are those the database records (by its own, weak, digest).

use std::{
    collections::HashMap,
    io::Read as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use verifier_sbom::digest::{self, Comparison};
use verifier_sbom::fsroot::RootDir;
use verifier_sbom::hash::{Algs, BUFFER_SIZE, hash_reader};
use verifier_sbom::{HashAlg, Manifest};

use super::{layers::list_dir, mtree::Mtree, verdict::ImageContent};
use crate::baseline::join::ImageFiles;

/// Why a runc root cannot be read as the image's content.
pub(crate) fn readonly_root(bundle: &Path, rootfs: &Path) -> Result<(), String> {
    let config = bundle.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", config.display()))?;
    if json["root"]["readonly"] != serde_json::Value::Bool(true) {
        return Err(format!(
            "the container's root is writable ({} has no root.readonly) and no umoci manifest vouches for its package database",
            config.display()
        ));
    }
    let root = json["root"]["path"].as_str().map(|p| bundle.join(p));
    let same = root.as_deref().and_then(|p| p.canonicalize().ok()) == rootfs.canonicalize().ok();
    if !same {
        return Err(format!("{} names another root than {}", config.display(), rootfs.display()));
    }
    Ok(())
}

/// A runc root read as image content: read-only, or vouched file by file
/// by umoci's manifest.
pub(crate) struct RootFiles {
    root: RootDir,
    path: PathBuf,
    /// `Some`: only files whose SHA-256 this manifest gives are read.
    mtree: Option<Arc<Mtree>>,
}

impl RootFiles {
    pub(crate) fn open(path: &Path, mtree: Option<Arc<Mtree>>) -> Option<Self> {
        Some(Self { root: RootDir::open(path).ok()?, path: path.to_owned(), mtree })
    }
}

impl ImageFiles for RootFiles {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let rel = path.trim_start_matches('/').as_bytes();
        let mut out = Vec::new();
        self.root.open_read(rel).ok()?.read_to_end(&mut out).ok()?;
        if let Some(m) = &self.mtree {
            let want = m.sha256_of(path)?;
            let got = hash_reader(out.as_slice(), Algs::SHA256, &mut vec![0; BUFFER_SIZE]).ok()?.sha256;
            if got != Some(want) {
                return None;
            }
        }
        Some(out)
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = list_dir(&self.root, dir.trim_start_matches('/').as_bytes())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        names
    }

    fn key(&self) -> String {
        format!("root:{}", self.path.display())
    }
}

/// Image content from the database: files of installed packages the SBOM
/// does not list, read from the image's read-only content and kept only
/// where the database's digest matches; then whatever content was known
/// before (layers, umoci manifest).
pub(crate) struct GapContent {
    pub(crate) unlisted: Arc<Manifest>,
    pub(crate) files: Arc<dyn ImageFiles + Send + Sync>,
    pub(crate) inner: Option<Arc<dyn ImageContent + Send + Sync>>,
    digests: Mutex<HashMap<String, Option<[u8; 32]>>>,
}

impl GapContent {
    pub(crate) fn new(
        unlisted: Arc<Manifest>,
        files: Arc<dyn ImageFiles + Send + Sync>,
        inner: Option<Arc<dyn ImageContent + Send + Sync>>,
    ) -> Self {
        Self { unlisted, files, inner, digests: Mutex::new(HashMap::new()) }
    }

    fn shipped_by_database(&self, path: &str) -> Option<[u8; 32]> {
        let (listed, entry) = self.unlisted.get_canonical(path)?;
        let bytes = self.files.read(listed).or_else(|| self.files.read(path))?;
        let algs = [HashAlg::Md5, HashAlg::Sha1].into_iter().fold(Algs::SHA256, Algs::with);
        let hashes = hash_reader(bytes.as_slice(), algs, &mut vec![0; BUFFER_SIZE]).ok()?;
        matches!(digest::compare(entry, &hashes), Comparison::Match { .. }).then_some(hashes.sha256).flatten()
    }
}

impl ImageContent for GapContent {
    fn sha256_of(&self, path: &str) -> Option<[u8; 32]> {
        if let Some(d) = self.inner.as_ref().and_then(|c| c.sha256_of(path)) {
            return Some(d);
        }
        if let Some(hit) = self.digests.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
            return *hit;
        }
        let found = self.shipped_by_database(path);
        let mut cache = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 65_536 {
            cache.clear();
        }
        cache.insert(path.to_owned(), found);
        found
    }
}

#[cfg(test)]
#[path = "image_files_tests.rs"]
mod tests;
