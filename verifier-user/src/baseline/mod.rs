//! Where an image's baseline comes from: the SBOM files that describe it,
//! and one parsed manifest per set of files.
//!
//! A [`BaselineSource`] answers "which SBOM files describe this image?"
//! from what is known of the container ([`ImageKeys`]). The sources are
//! asked in order and the first answer wins:
//!
//! - [`rules::Rules`]: `--sbom PATTERN=FILE` given on the command line;
//! - [`rules_file::RulesFile`]: `--sbom-rules FILE`, re-read when it
//!   changes (a mounted ConfigMap);
//! - [`store::Store`]: `--sbom-store DIR`, keyed by image digest.
//!
//! A registry of signed attestations is one more implementation of the
//! same trait. [`cache::ManifestCache`] parses a set of files once, shares
//! the manifest by every container of the image, and parses it again when
//! a file changes.
//!
//! This layer knows SBOM files and manifests only: the container's runtime
//! state is `attribution`'s, the verdicts are `verify`'s.

pub(crate) mod attested;
pub(crate) mod cache;
pub(crate) mod host;
pub(crate) mod join;
pub(crate) mod registry;
pub(crate) mod rules;
pub(crate) mod rules_file;
pub(crate) mod store;

use std::path::PathBuf;

/// What identifies a container's image, as far as it is known.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ImageKeys<'a> {
    pub image_name: Option<&'a str>,
    pub image_digest: Option<&'a str>,
    pub container_id: &'a str,
    pub container_name: Option<&'a str>,
}

impl<'a> ImageKeys<'a> {
    /// Every key a rule pattern is matched against, most specific last.
    pub(crate) fn all(&self) -> impl Iterator<Item = &'a str> {
        [self.image_name, self.image_digest, Some(self.container_id), self.container_name]
            .into_iter()
            .flatten()
    }
}

/// One way of finding the SBOM files of an image.
pub(crate) trait BaselineSource: Send + Sync {
    /// The SBOM files for `keys`, or none when this source has no answer.
    fn sbom_files(&self, keys: &ImageKeys<'_>) -> Vec<PathBuf>;
}

/// The sources in order of precedence: the first non-empty answer wins.
#[derive(Default)]
pub(crate) struct Baselines {
    sources: Vec<Box<dyn BaselineSource>>,
}

impl Baselines {
    pub(crate) fn new(sources: Vec<Box<dyn BaselineSource>>) -> Self {
        Self { sources }
    }

    /// The SBOM files of the first source that knows the image.
    pub(crate) fn sbom_files(&self, keys: &ImageKeys<'_>) -> Vec<PathBuf> {
        self.sources.iter().map(|s| s.sbom_files(keys)).find(|f| !f.is_empty()).unwrap_or_default()
    }
}

/// Something about an image's SBOMs that makes verdicts weaker than the
/// user may think, found when its baseline is built (today: an SBOM that
/// lists packages and no file digests). The agent reports each once as a
/// `verifier.warning.v1` record.
#[derive(Clone, Debug)]
pub(crate) struct Warning {
    /// Stable, for filtering: `sbom-package-only`.
    pub code: &'static str,
    /// The SBOM files concerned.
    pub sbom: Vec<String>,
    /// The image (name, else digest, else the container it was seen for).
    pub image: String,
    /// The package database joined with the SBOM (`dpkg`, `apk`), if any.
    pub database: Option<&'static str>,
    /// What it means and what to do.
    pub message: String,
}
