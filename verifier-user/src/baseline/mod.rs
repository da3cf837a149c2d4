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
//! Signed attestations (`--attestation`, the registry) are asked first;
//! for an image the trust policy requires a signed SBOM for, they are the
//! only sources asked ([`required`]). [`cache::ManifestCache`] parses a set of files once, shares
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
pub(crate) mod required;
pub(crate) mod rules;
pub(crate) mod rules_file;
pub(crate) mod store;

use std::path::PathBuf;

pub(crate) use required::Refusal;
use required::{Answer, Found};

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

    /// The SBOM files and the attestations refused on the way.
    fn answer(&self, keys: &ImageKeys<'_>) -> Answer {
        Answer { files: self.sbom_files(keys), rejected: Vec::new() }
    }

    /// Whether its SBOMs are verified signed attestations (the only ones
    /// used for an image whose trust rule requires a signed SBOM).
    fn attested(&self) -> bool {
        false
    }
}

/// The sources in order of precedence: the first non-empty answer wins.
#[derive(Default)]
pub(crate) struct Baselines {
    sources: Vec<Box<dyn BaselineSource>>,
    policy: Option<verifier_attest::TrustPolicy>,
}

impl Baselines {
    pub(crate) fn new(sources: Vec<Box<dyn BaselineSource>>) -> Self {
        Self { sources, policy: None }
    }

    /// The trust policy whose `require` and `on_missing` apply.
    pub(crate) fn with_policy(mut self, policy: verifier_attest::TrustPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The first source's answer, or the trust policy's refusal, with the
    /// attestations rejected on the way.
    pub(crate) fn lookup(&self, keys: &ImageKeys<'_>) -> Found {
        required::lookup(&self.sources, self.policy.as_ref(), keys)
    }
}

/// Something about an image's SBOMs that makes verdicts weaker than the
/// user may think, found when its baseline is built (today: an SBOM that
/// lists packages and no file digests; a signed attestation that did not
/// verify). The agent reports each once as a
/// `verifier.warning.v1` record.
#[derive(Clone, Debug)]
pub(crate) struct Warning {
    /// Stable, for filtering: `sbom-package-only`, `attestation-rejected`,
    /// `attestation-missing`.
    pub code: &'static str,
    /// The SBOM files concerned.
    pub sbom: Vec<String>,
    /// The image (name, else digest, else the container it was seen for).
    pub image: String,
    /// The package database joined with the SBOM (`dpkg`, `apk`), if any.
    pub database: Option<&'static str>,
    /// What it means and what to do.
    pub message: String,
    /// For `attestation-*`: the attestation, the check, what was done.
    pub rejection: Option<Refusal>,
}
