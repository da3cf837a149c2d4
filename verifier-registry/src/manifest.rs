//! The parts of OCI / Docker manifests and indexes that discovery reads,
//! and the media types that mark an SBOM attestation.
//!
//! One struct reads both a manifest and an index: absent fields default, so
//! a registry's slightly different JSON (Docker schema 2, OCI 1.0, OCI 1.1
//! with `subject` and `artifactType`) all parse.

use std::collections::BTreeMap;

use serde::Deserialize;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Every manifest type we ask for.
pub(crate) const ACCEPT: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// BuildKit marks an attestation manifest in the index with these.
pub(crate) const BUILDKIT_REF_TYPE: &str = "vnd.docker.reference.type";
pub(crate) const BUILDKIT_REF_DIGEST: &str = "vnd.docker.reference.digest";
pub(crate) const BUILDKIT_ATTESTATION: &str = "attestation-manifest";
pub(crate) const INTOTO_PREDICATE: &str = "in-toto.io/predicate-type";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    #[serde(default)]
    pub(crate) media_type: Option<String>,
    #[serde(default)]
    pub(crate) artifact_type: Option<String>,
    #[serde(default)]
    pub(crate) config: Option<Descriptor>,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

impl Manifest {
    pub(crate) fn is_index(&self) -> bool {
        matches!(self.media_type.as_deref(), Some(OCI_INDEX | DOCKER_LIST))
            || (self.media_type.is_none() && !self.manifests.is_empty())
    }

    /// The artifact type of an OCI 1.1 artifact: `artifactType`, else the
    /// config's media type (the 1.1 rule for referrers).
    pub(crate) fn artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref().or(self.config.as_ref().map(|c| c.media_type.as_str()))
    }

    /// The platform manifest for `os/arch` in an index (attestation
    /// manifests have platform `unknown/unknown` and never match).
    pub(crate) fn platform(&self, os: &str, arch: &str) -> Option<&Descriptor> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.os == os && p.architecture == arch))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(crate) media_type: String,
    pub(crate) digest: String,
    #[serde(default)]
    pub(crate) artifact_type: Option<String>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Platform {
    pub(crate) architecture: String,
    pub(crate) os: String,
}

/// Whether a media or artifact type is an SBOM or an attestation about one:
/// in-toto statements, DSSE envelopes, Sigstore bundles, SPDX, CycloneDX.
/// Cosign signatures (`simplesigning`) and plain image layers are not.
pub(crate) fn is_attestation_type(t: &str) -> bool {
    let t = t.to_ascii_lowercase();
    ["in-toto", "dsse", "sigstore.bundle", "spdx", "cyclonedx", "syft"].iter().any(|k| t.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_platform_and_types() {
        let idx: Manifest = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,"platform":{"architecture":"amd64","os":"linux"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,"platform":{"architecture":"unknown","os":"unknown"},
               "annotations":{"vnd.docker.reference.type":"attestation-manifest","vnd.docker.reference.digest":"sha256:a"}}]}"#,
        )
        .expect("manifest JSON parses");
        assert!(idx.is_index());
        assert_eq!(idx.platform("linux", "amd64").map(|d| d.digest.as_str()), Some("sha256:a"));
        assert!(idx.platform("linux", "arm64").is_none());
        let art: Manifest = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/spdx+json","digest":"sha256:c","size":2},"layers":[]}"#,
        )
        .expect("manifest JSON parses");
        assert!(!art.is_index());
        assert_eq!(art.artifact_type(), Some("application/spdx+json"));
        assert!(is_attestation_type("application/vnd.dev.sigstore.bundle.v0.3+json"));
        assert!(is_attestation_type("application/vnd.dsse.envelope.v1+json"));
        assert!(!is_attestation_type("application/vnd.dev.cosign.simplesigning.v1+json"));
        assert!(!is_attestation_type("application/vnd.oci.image.layer.v1.tar+gzip"));
    }
}
