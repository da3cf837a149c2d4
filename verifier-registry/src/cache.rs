//! The on-disk attestation cache: a node fetches each image's attestations
//! once, and a restart (or a registry outage) reuses them.
//!
//! ```text
//! <dir>/images/sha256-<hex>.json   what was found for that image digest
//! <dir>/blobs/sha256/<hex>         the attestation blobs, content-addressed
//! ```
//!
//! Image digests and blobs are immutable, so a positive entry never
//! expires; an image with nothing found is cached too, and looked up again
//! after the negative TTL (an attestation may be attached after the push).
//! Every write is a temporary file renamed into place, so a crash leaves
//! the old entry or the new one, never half of one; every blob is checked
//! against its sha256 when read, and a mismatch is treated as a miss.
//! There is no size bound or eviction: attestations are kilobytes per
//! image, and an operator can delete the directory at any time.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use crate::{
    discover::{Attestation, Discovery, Source, Subject},
    reference::Digest,
};

/// Default cache directory.
pub const DEFAULT_DIR: &str = "/var/lib/verifier/sbom-cache";
const SCHEMA: &str = "verifier.sbom-cache.v1";

/// Errors from the cache directory.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "attestation cache {path}: {source} (is the directory writable? choose another with --cache DIR)"
    )]
    Io { path: String, source: std::io::Error },
    #[error("attestation cache entry {path}: {why} (delete it to refetch)")]
    Parse { path: String, why: String },
}

#[derive(Serialize, Deserialize)]
struct Entry {
    schema: String,
    image: String,
    fetched_at: u64,
    subjects: Vec<Subject>,
    attestations: Vec<Item>,
}

#[derive(Serialize, Deserialize)]
struct Item {
    source: Source,
    media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    predicate_type: Option<String>,
    digest: Digest,
    subject_digest: Digest,
}

/// What the cache holds for one image.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) discovery: Discovery,
    pub(crate) age: Duration,
}

pub(crate) struct Cache {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.display().to_string(), source }
}

impl Cache {
    pub(crate) fn open(dir: &Path) -> Result<Self, CacheError> {
        for sub in ["images", "blobs/sha256"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(Self { dir: dir.to_owned() })
    }

    fn entry_path(&self, image: &Digest) -> PathBuf {
        self.dir.join("images").join(format!("{}.json", image.tag()))
    }

    fn blob_path(&self, blob: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(blob.hex())
    }

    /// The cached discovery of `image`, or `None` (not cached, or a blob
    /// went missing or bad: refetch).
    pub(crate) fn load(&self, image: &Digest) -> Result<Option<Cached>, CacheError> {
        let path = self.entry_path(image);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let parse = |why: String| CacheError::Parse { path: path.display().to_string(), why };
        let entry: Entry = serde_json::from_slice(&text).map_err(|e| parse(e.to_string()))?;
        if entry.schema != SCHEMA {
            return Ok(None);
        }
        let mut discovery = Discovery { subjects: entry.subjects, attestations: Vec::new() };
        for it in entry.attestations {
            let bp = self.blob_path(&it.digest);
            let bytes = match fs::read(&bp) {
                Ok(b) if Digest::of(&b) == it.digest => b,
                Ok(_) => {
                    tracing::warn!(blob = %bp.display(), "cached attestation blob does not match its digest; refetching");
                    let _ = fs::remove_file(&bp);
                    return Ok(None);
                }
                Err(_) => return Ok(None),
            };
            discovery.attestations.push(Attestation {
                source: it.source,
                media_type: it.media_type,
                artifact_type: it.artifact_type,
                predicate_type: it.predicate_type,
                digest: it.digest,
                subject_digest: it.subject_digest,
                bytes,
            });
        }
        let fetched = UNIX_EPOCH + Duration::from_secs(entry.fetched_at);
        let age = SystemTime::now().duration_since(fetched).unwrap_or_default();
        Ok(Some(Cached { discovery, age }))
    }

    /// Records what was found for `image` (blobs first, then the entry
    /// that names them).
    pub(crate) fn store(&self, image_ref: &str, image: &Digest, d: &Discovery) -> Result<(), CacheError> {
        for a in &d.attestations {
            let bp = self.blob_path(&a.digest);
            if !bp.exists() {
                self.write_atomic(&bp, &a.bytes)?;
            }
        }
        let entry = Entry {
            schema: SCHEMA.to_owned(),
            image: image_ref.to_owned(),
            fetched_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            subjects: d.subjects.clone(),
            attestations: d
                .attestations
                .iter()
                .map(|a| Item {
                    source: a.source,
                    media_type: a.media_type.clone(),
                    artifact_type: a.artifact_type.clone(),
                    predicate_type: a.predicate_type.clone(),
                    digest: a.digest.clone(),
                    subject_digest: a.subject_digest.clone(),
                })
                .collect(),
        };
        let path = self.entry_path(image);
        let json = serde_json::to_vec_pretty(&entry)
            .map_err(|e| CacheError::Parse { path: path.display().to_string(), why: e.to_string() })?;
        self.write_atomic(&path, &json)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        let dir = path.parent().unwrap_or(&self.dir);
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
        tmp.write_all(bytes).map_err(io(path))?;
        tmp.as_file().sync_all().map_err(io(path))?;
        tmp.persist(path).map_err(|e| io(path)(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery() -> Discovery {
        let bytes = br#"{"payloadType":"application/vnd.in-toto+json"}"#.to_vec();
        let image = Digest::of(b"image");
        Discovery {
            subjects: vec![Subject { digest: image.clone(), kind: "manifest".into() }],
            attestations: vec![Attestation {
                source: Source::CosignAtt,
                media_type: "application/vnd.dsse.envelope.v1+json".into(),
                artifact_type: None,
                predicate_type: Some("https://spdx.dev/Document".into()),
                digest: Digest::of(&bytes),
                subject_digest: image,
                bytes,
            }],
        }
    }

    #[test]
    fn round_trip_and_corruption_is_a_miss() {
        let dir = tempfile::tempdir().expect("cache test step");
        let cache = Cache::open(dir.path()).expect("cache test step");
        let image = Digest::of(b"image");
        assert!(cache.load(&image).expect("cache test step").is_none());
        let d = discovery();
        cache.store("reg/app", &image, &d).expect("cache test step");
        // A second handle (a restart) sees the same thing.
        let again = Cache::open(dir.path())
            .expect("cache test step")
            .load(&image)
            .expect("cache test step")
            .expect("cache test step");
        assert_eq!(again.discovery.attestations, d.attestations);
        assert_eq!(again.discovery.subjects, d.subjects);
        assert!(again.age < Duration::from_secs(60));
        // A flipped blob is never handed out.
        fs::write(cache.blob_path(&d.attestations[0].digest), b"tampered").expect("cache test step");
        assert!(cache.load(&image).expect("cache test step").is_none());
        fs::write(cache.entry_path(&image), b"{not json").expect("cache test step");
        assert!(matches!(cache.load(&image), Err(CacheError::Parse { .. })));
    }
}
