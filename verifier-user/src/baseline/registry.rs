//! `--registry-attestations` with `--trust FILE`: the SBOM comes from the
//! image's own registry, as a signed attestation, and is used only after it
//! verifies for the image digest the runtime reports.
//!
//! `verifier_registry::Fetcher` finds the attestations (referrers, cosign
//! tags, BuildKit) and keeps them in its disk cache, so a node asks the
//! registry once per image and keeps working offline; each one is checked
//! with the same [`verified_sbom`] as `--attestation` files, against the
//! reported digest and the index / platform manifest digests the fetcher
//! derived from it by content. The first that verifies gives the SBOM; an
//! unsigned SBOM (cosign `.sbom`, a plain SPDX referrer) never does.
//!
//! This runs where the container is resolved, on a blocking thread off the
//! event loop (as the containerd lookup does), bounded by the fetcher's
//! timeouts: the exec path never waits on a registry.

use std::path::PathBuf;

use verifier_attest::TrustPolicy;
use verifier_registry::Fetcher;

use super::attested::{verified_sbom, write_cached};
use super::required::{Answer, Rejected};
use super::{BaselineSource, ImageKeys};

/// Attested SBOMs from the image's registry.
pub(crate) struct RegistryAttestations {
    fetcher: Fetcher,
    handle: tokio::runtime::Handle,
    policy: TrustPolicy,
    cache: PathBuf,
}

impl RegistryAttestations {
    pub(crate) fn new(
        fetcher: Fetcher,
        handle: tokio::runtime::Handle,
        policy: TrustPolicy,
        cache: PathBuf,
    ) -> Self {
        Self { fetcher, handle, policy, cache }
    }
}

impl BaselineSource for RegistryAttestations {
    fn sbom_files(&self, keys: &ImageKeys<'_>) -> Vec<PathBuf> {
        self.answer(keys).files
    }

    fn answer(&self, keys: &ImageKeys<'_>) -> Answer {
        // A registry is only reachable through a name, and only a digest binds.
        let (Some(name), Some(digest)) = (keys.image_name, keys.image_digest) else {
            return Answer::default();
        };
        let fetched = match self.handle.block_on(self.fetcher.lookup(name, digest)) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(image = name, digest, error = %e, "no attestations from the registry");
                let rejected = Rejected {
                    attestation: format!("registry {name}"),
                    attestation_digest: None,
                    check: "missing",
                    detail: format!("the registry's attestations could not be fetched: {e}"),
                };
                return Answer { files: Vec::new(), rejected: vec![rejected] };
            }
        };
        let mut digests = vec![digest];
        digests.extend(fetched.subjects.iter().map(|s| s.digest.as_str()).filter(|d| *d != digest));
        let mut rejected = Vec::new();
        for a in &fetched.attestations {
            match verified_sbom(&a.bytes, &digests, &self.policy, keys) {
                Ok(v) => match write_cached(&self.cache, &v.document) {
                    Ok(path) => return Answer { files: vec![path], rejected },
                    Err(e) => tracing::warn!(image = name, error = %e, "verified, but cannot keep the SBOM"),
                },
                Err(r) => rejected.push(Rejected {
                    attestation: format!("{} of {name}", a.source.as_str()),
                    attestation_digest: Some(a.digest.to_string()),
                    check: r.check.as_str(),
                    detail: r.detail,
                }),
            }
        }
        if !rejected.is_empty() {
            tracing::warn!(image = name, digest, rejected = ?rejected, "no registry attestation verified: its SBOM is not used");
        }
        Answer { files: Vec::new(), rejected }
    }

    fn attested(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
