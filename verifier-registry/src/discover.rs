//! Finding an image's SBOM attestations in its registry, every way they
//! are published today:
//!
//! 1. **referrers**: `GET /v2/<repo>/referrers/<digest>` (OCI 1.1), the
//!    artifacts whose `subject` is the image, filtered by artifact type;
//! 2. **tag-fallback**: when that API is absent (404), the same list kept
//!    as an index under the tag `sha256-<hex>` (the OCI 1.1 tag schema);
//! 3. **cosign-att** / **cosign-sbom**: cosign's `sha256-<hex>.att` (DSSE
//!    envelopes as layers) and `sha256-<hex>.sbom` (the SBOM as a layer);
//! 4. **buildkit**: attestation manifests inside the image index
//!    (`vnd.docker.reference.type: attestation-manifest`), whose layers
//!    carry `in-toto.io/predicate-type`.
//!
//! An image is known by the digest the runtime reports, which may be the
//! index or the platform manifest, and attestations may be attached to
//! either. So when the digest is an index its linux platform manifest is a
//! subject too; when it is a manifest and the reference has a tag, the
//! tag's index is looked at (when it lists this manifest) for BuildKit
//! attestations and as a subject. Nothing here is verified beyond digests:
//! signatures and trust are the verifier's.

use serde::{Deserialize, Serialize};

use crate::{
    client::{Client, RegistryError},
    manifest::{self, Manifest},
    reference::{Digest, ImageRef},
};

/// Where an attestation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Referrers,
    TagFallback,
    CosignAtt,
    CosignSbom,
    Buildkit,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Referrers => "referrers",
            Self::TagFallback => "tag-fallback",
            Self::CosignAtt => "cosign-att",
            Self::CosignSbom => "cosign-sbom",
            Self::Buildkit => "buildkit",
        }
    }
}

/// One attestation blob as the registry holds it (not verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    pub source: Source,
    /// The blob's media type (`application/vnd.dsse.envelope.v1+json`,
    /// `application/vnd.in-toto+json`, `application/spdx+json`, ...).
    pub media_type: String,
    /// The artifact type of the manifest that carried it, when it has one.
    pub artifact_type: Option<String>,
    /// `in-toto.io/predicate-type` (or cosign's `predicateType`) annotation.
    pub predicate_type: Option<String>,
    /// The blob's digest (checked).
    pub digest: Digest,
    /// The image manifest or index it is about.
    pub subject_digest: Digest,
    pub bytes: Vec<u8>,
}

/// What a subject digest is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub digest: Digest,
    /// `index` or `manifest`.
    pub kind: String,
}

/// Everything discovery found for one image digest.
#[derive(Debug, Clone, Default)]
pub(crate) struct Discovery {
    /// The digests attestations were looked for (image first).
    pub(crate) subjects: Vec<Subject>,
    pub(crate) attestations: Vec<Attestation>,
}

impl Discovery {
    fn push(&mut self, a: Attestation) {
        if !self.attestations.iter().any(|x| x.digest == a.digest && x.subject_digest == a.subject_digest) {
            self.attestations.push(a);
        }
    }
}

fn kind(m: &Manifest) -> String {
    if m.is_index() { "index" } else { "manifest" }.to_owned()
}

fn predicate(annotations: &std::collections::BTreeMap<String, String>) -> Option<String> {
    annotations.get(manifest::INTOTO_PREDICATE).or_else(|| annotations.get("predicateType")).cloned()
}

pub(crate) async fn discover(
    client: &Client,
    image: &ImageRef,
    digest: &Digest,
) -> Result<Discovery, RegistryError> {
    let (top, _, _) =
        client.manifest(image, digest.as_str()).await?.ok_or_else(|| RegistryError::Status {
            url: format!("{image}@{digest}"),
            status: 404,
            body: "image manifest not found in its registry".into(),
        })?;
    let mut out = Discovery {
        subjects: vec![Subject { digest: digest.clone(), kind: kind(&top) }],
        ..Default::default()
    };
    let mut index = None;
    if top.is_index() {
        if let Some(p) = top
            .platform(
                "linux",
                std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64").as_str(),
            )
            .or_else(|| top.platform("linux", "amd64"))
            && let Ok(d) = Digest::parse(&p.digest)
        {
            out.subjects.push(Subject { digest: d, kind: "manifest".into() });
        }
        index = Some(top);
    } else if let Some(tag) = &image.tag
        && let Some((m, _, d)) = client.manifest(image, tag).await?
        && m.is_index()
        && m.manifests.iter().any(|x| x.digest == digest.as_str())
    {
        out.subjects.push(Subject { digest: d, kind: "index".into() });
        index = Some(m);
    }
    for s in out.subjects.clone() {
        // Independent probes, asked together: against a remote registry a
        // subject costs a few round trips, not one per probe.
        let (mut r, mut att, mut sbom) = (Vec::new(), Vec::new(), Vec::new());
        let (a, b, c) = tokio::join!(
            referrers(client, image, &s.digest, &mut r),
            cosign(client, image, &s.digest, ("att", Source::CosignAtt), &mut att),
            cosign(client, image, &s.digest, ("sbom", Source::CosignSbom), &mut sbom),
        );
        a?;
        b?;
        c?;
        r.into_iter().chain(att).chain(sbom).for_each(|x| out.push(x));
    }
    if let Some(index) = index {
        let mut found = Vec::new();
        buildkit(client, image, &index, &out.subjects.clone(), &mut found).await?;
        found.into_iter().for_each(|x| out.push(x));
    }
    Ok(out)
}

/// Every layer of `m` whose type marks an attestation, fetched.
async fn layers(
    client: &Client,
    image: &ImageRef,
    m: &Manifest,
    source: Source,
    subject: &Digest,
    artifact_type: Option<&str>,
    out: &mut Vec<Attestation>,
) -> Result<(), RegistryError> {
    for l in &m.layers {
        let wanted = manifest::is_attestation_type(&l.media_type)
            || artifact_type.is_some_and(manifest::is_attestation_type)
            || l.annotations.contains_key(manifest::INTOTO_PREDICATE);
        let Ok(d) = Digest::parse(&l.digest) else { continue };
        if !wanted {
            continue;
        }
        let bytes = client.blob(image, &d).await?;
        out.push(Attestation {
            source,
            media_type: l.media_type.clone(),
            artifact_type: artifact_type.map(str::to_owned),
            predicate_type: predicate(&l.annotations),
            digest: d,
            subject_digest: subject.clone(),
            bytes,
        });
    }
    Ok(())
}

async fn referrers(
    client: &Client,
    image: &ImageRef,
    subject: &Digest,
    out: &mut Vec<Attestation>,
) -> Result<(), RegistryError> {
    let (list, source) = match client.referrers(image, subject).await? {
        Some(list) => (list, Source::Referrers),
        None => match client.manifest(image, &subject.tag()).await? {
            Some((list, _, _)) if list.is_index() => (list, Source::TagFallback),
            _ => return Ok(()),
        },
    };
    for r in &list.manifests {
        let Ok(d) = Digest::parse(&r.digest) else { continue };
        let listed = r.artifact_type.as_deref();
        if listed.is_some_and(|t| !manifest::is_attestation_type(t)) {
            continue;
        }
        let Some((m, _, _)) = client.manifest(image, d.as_str()).await? else { continue };
        let Some(t) = listed.or(m.artifact_type()).filter(|t| manifest::is_attestation_type(t)) else {
            continue;
        };
        layers(client, image, &m, source, subject, Some(t), out).await?;
    }
    Ok(())
}

/// cosign's `.att` (DSSE envelopes as layers) or `.sbom` (the SBOM itself
/// as the layer) tag of `subject`.
async fn cosign(
    client: &Client,
    image: &ImageRef,
    subject: &Digest,
    (suffix, source): (&str, Source),
    out: &mut Vec<Attestation>,
) -> Result<(), RegistryError> {
    let tag = format!("{}.{suffix}", subject.tag());
    if let Some((m, _, _)) = client.manifest(image, &tag).await? {
        layers(client, image, &m, source, subject, None, out).await?;
    }
    Ok(())
}

async fn buildkit(
    client: &Client,
    image: &ImageRef,
    index: &Manifest,
    subjects: &[Subject],
    out: &mut Vec<Attestation>,
) -> Result<(), RegistryError> {
    for d in &index.manifests {
        if d.annotations.get(manifest::BUILDKIT_REF_TYPE).map(String::as_str)
            != Some(manifest::BUILDKIT_ATTESTATION)
        {
            continue;
        }
        let Some(about) =
            d.annotations.get(manifest::BUILDKIT_REF_DIGEST).and_then(|s| Digest::parse(s).ok())
        else {
            continue;
        };
        if !subjects.iter().any(|s| s.digest == about) {
            continue;
        }
        let Ok(md) = Digest::parse(&d.digest) else { continue };
        if let Some((m, _, _)) = client.manifest(image, md.as_str()).await? {
            layers(client, image, &m, Source::Buildkit, &about, None, out).await?;
        }
    }
    Ok(())
}
