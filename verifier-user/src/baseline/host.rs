//! The host's own baseline: what the host's package manager says it
//! installed (dpkg's database today), and/or an SBOM of the host given on
//! the command line, as one manifest in the same model containers use.
//!
//! On a build host the toolchain is the supply chain: a replaced compiler
//! or a binary a post-install hook dropped is judged against this, with
//! the same verdicts as a container's exec against its image's SBOM.
//!
//! dpkg records an MD5 per file (`info/*.md5sums`, conffiles in `status`):
//! files are verified by it and every verdict says it was weak
//! (`Judgement::weak`); the SHA-256 of what ran is still computed and
//! reported. Usr-merge aliases (`/bin/sh` for `/usr/bin/sh`) are the
//! model's (`Manifest::get_canonical`).
//!
//! **Package-manager transactions are not drift.** A package upgrade
//! rewrites files and then the database; [`HostBaseline::refresh`] parses
//! the database again when `/var/lib/dpkg/status` (or an SBOM file)
//! changes, and the new manifest gets a new key, so nothing decided
//! against the old one is reused: a file judged during the upgrade is
//! judged again on its next exec, and once the database records the new
//! file it is `ok`. A file written outside a transaction is never in the
//! database: `unknown-binary` (new path) or `modified-binary` (listed
//! path, other bytes).

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
};

use verifier_sbom::{LoadOptions, Manifest, SbomError, load_path};

/// Where dpkg keeps its per-package file lists and digests.
pub(crate) const DPKG_INFO: &str = "/var/lib/dpkg/info";
/// dpkg's status database: rewritten at the end of every transaction step.
pub(crate) const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// One source of the host baseline, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSource {
    /// The host's dpkg database (`/var/lib/dpkg`).
    Dpkg,
    /// An SBOM of the host (any format `verifier sbom` reads).
    Sbom(PathBuf),
}

/// `--host-baseline` values: `dpkg`, `sbom:FILE`, or `off`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSpec {
    Off,
    Source(HostSource),
}

impl FromStr for HostSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "dpkg" => Ok(Self::Source(HostSource::Dpkg)),
            _ => match s.strip_prefix("sbom:") {
                Some(f) if !f.is_empty() => Ok(Self::Source(HostSource::Sbom(PathBuf::from(f)))),
                _ => Err(format!(
                    "{s:?} is not a host baseline: give `dpkg` (the host's package database), \
                     `sbom:FILE` (an SBOM of the host) or `off`"
                )),
            },
        }
    }
}

/// The sources of a list of `--host-baseline` values (`off` wins).
pub(crate) fn sources_of(specs: &[HostSpec]) -> Vec<HostSource> {
    if specs.contains(&HostSpec::Off) {
        return Vec::new();
    }
    specs
        .iter()
        .filter_map(|s| match s {
            HostSpec::Source(src) => Some(src.clone()),
            HostSpec::Off => None,
        })
        .collect()
}

/// Why the host baseline could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostBaselineError {
    #[error(
        "the host's dpkg database {dir}: {error} (on a host without dpkg, give \
         --host-baseline sbom:FILE with an SBOM of the host, e.g. from `verifier sbom generate /`)"
    )]
    Dpkg { dir: PathBuf, error: Box<SbomError> },
    #[error("host SBOM {file}: {error} (give an SBOM file `verifier sbom` reads)")]
    Sbom { file: PathBuf, error: Box<SbomError> },
    #[error("no host baseline source was given (use dpkg or sbom:FILE)")]
    Empty,
}

/// What a baseline was made from, for records.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct SourceInfo {
    /// `dpkg` or `sbom`.
    pub kind: &'static str,
    pub path: String,
}

/// The host's baseline: one merged manifest, its key, and what it was
/// read from (to notice when it changes).
pub(crate) struct HostBaseline {
    sources: Vec<HostSource>,
    /// (file watched, size, mtime in ns) at the last parse.
    stamps: Vec<(PathBuf, u64, i128)>,
    pub manifest: Arc<Manifest>,
    /// Unique per parse (`cache::next_key`): decisions are per key.
    pub key: u64,
    /// Parses since the first (package transactions seen).
    pub reloads: u64,
}

impl HostBaseline {
    /// Reads every source (blocking: the full Debian database is
    /// thousands of files).
    pub(crate) fn load(sources: &[HostSource]) -> Result<Self, HostBaselineError> {
        let stamps = stamps_of(sources);
        let manifest = parse(sources)?;
        Ok(Self {
            sources: sources.to_vec(),
            stamps,
            manifest: Arc::new(manifest),
            key: super::cache::next_key(),
            reloads: 0,
        })
    }

    /// Parses again if a watched file changed (a package transaction, a
    /// new host SBOM). Returns whether the manifest changed. A parse that
    /// fails (the database caught half-written) keeps the old manifest and
    /// tries again on the next call.
    pub(crate) fn refresh(&mut self) -> Result<bool, HostBaselineError> {
        let Some(job) = self.stale() else { return Ok(false) };
        self.install(job.run()?);
        Ok(true)
    }

    /// Whether a watched file changed since the last parse (one `stat` per
    /// source); if so, the parse to run, on any thread, and hand to
    /// [`HostBaseline::install`].
    pub(crate) fn stale(&self) -> Option<Reparse> {
        let stamps = stamps_of(&self.sources);
        (stamps != self.stamps).then(|| Reparse { sources: self.sources.clone(), stamps })
    }

    /// Makes the next check see a change (tests).
    #[cfg(test)]
    pub(crate) fn forget_stamps(&mut self) {
        self.stamps.clear();
    }

    /// Takes a new parse's manifest under a new key.
    pub(crate) fn install(&mut self, parsed: Reparsed) {
        self.stamps = parsed.stamps;
        self.manifest = parsed.manifest;
        self.key = parsed.key;
        self.reloads += 1;
    }

    /// When the newest watched file (dpkg's status, an SBOM) was last
    /// changed, as of the last parse (Unix ns): a package transaction
    /// the manifest records ended then.
    pub(crate) fn changed_ns(&self) -> i128 {
        self.stamps.iter().map(|s| s.2).max().unwrap_or(0)
    }

    /// Whether a file the kernel saw written (`written`) was written by a
    /// package transaction this manifest records: it was last changed
    /// (ctime of `identity`) no later than the database was. A package
    /// manager is how host files are written, so such a file is judged
    /// by its bytes; one changed after the last transaction is not.
    pub(crate) fn written_by_transaction(&self, identity: &verifier_common::event::FileIdentity) -> bool {
        i128::from(identity.ctime_sec) * 1_000_000_000 + i128::from(identity.ctime_nsec) <= self.changed_ns()
    }

    /// What the baseline was read from.
    pub(crate) fn describe(&self) -> Vec<SourceInfo> {
        self.sources
            .iter()
            .map(|s| match s {
                HostSource::Dpkg => SourceInfo { kind: "dpkg", path: DPKG_INFO.into() },
                HostSource::Sbom(p) => SourceInfo { kind: "sbom", path: p.display().to_string() },
            })
            .collect()
    }
}

/// A parse of the baseline again, as of the stamps taken when a change was
/// seen (a later change is seen by the next check).
pub(crate) struct Reparse {
    sources: Vec<HostSource>,
    stamps: Vec<(PathBuf, u64, i128)>,
}

/// What [`Reparse::run`] read, under its new key.
pub(crate) struct Reparsed {
    stamps: Vec<(PathBuf, u64, i128)>,
    pub manifest: Arc<Manifest>,
    pub key: u64,
}

impl Reparse {
    /// Parses (blocking: the whole database).
    pub(crate) fn run(self) -> Result<Reparsed, HostBaselineError> {
        let manifest = Arc::new(parse(&self.sources)?);
        Ok(Reparsed { manifest, stamps: self.stamps, key: super::cache::next_key() })
    }
}

fn parse(sources: &[HostSource]) -> Result<Manifest, HostBaselineError> {
    let mut merged: Option<Manifest> = None;
    for s in sources {
        let m = match s {
            HostSource::Dpkg => load_path(Path::new(DPKG_INFO), &LoadOptions::default())
                .map_err(|error| HostBaselineError::Dpkg { dir: DPKG_INFO.into(), error: Box::new(error) })?,
            HostSource::Sbom(file) => load_path(file, &LoadOptions::default())
                .map_err(|error| HostBaselineError::Sbom { file: file.clone(), error: Box::new(error) })?,
        };
        match merged.as_mut() {
            Some(all) => all.merge(m),
            None => merged = Some(m),
        }
    }
    let mut m = merged.ok_or(HostBaselineError::Empty)?;
    m.keep_sha256_where_present();
    m.shrink_to_fit();
    Ok(m)
}

/// The files whose change means "parse again": dpkg's status (written at
/// the end of each transaction step) and each SBOM file.
fn stamps_of(sources: &[HostSource]) -> Vec<(PathBuf, u64, i128)> {
    sources
        .iter()
        .map(|s| match s {
            HostSource::Dpkg => PathBuf::from(DPKG_STATUS),
            HostSource::Sbom(p) => p.clone(),
        })
        .map(|p| {
            let (size, mtime) = std::fs::metadata(&p)
                .map(|m| (m.size(), i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())))
                .unwrap_or((0, 0));
            (p, size, mtime)
        })
        .collect()
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
