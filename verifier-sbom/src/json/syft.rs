//! Syft's own JSON (`syft -o json`): `files[]` with `location.path` and
//! `digests`, `artifacts[]` (packages), `artifactRelationships[]` with
//! `contains` from a package to a file, `source` naming the image.

use serde::Deserialize;

use super::super::links::note_image;
use super::super::model::PackageRef;
use super::{Ctx, Fail, check_len};
use crate::de::{Alg, Hex, nullable};

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Location {
    pub path: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Digest {
    pub algorithm: Alg,
    pub value: Hex,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct FileMetadata {
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `descriptor` (`{"name": "syft"}`) or `schema` (`{"url": ".../syft/..."}`).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Descriptor {
    name: Option<String>,
    url: Option<String>,
}

impl Descriptor {
    pub fn is_syft(&self) -> bool {
        self.name.as_deref() == Some("syft") || self.url.as_deref().is_some_and(|u| u.contains("syft"))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Artifact {
    id: Option<String>,
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
}

pub(crate) fn artifact(ctx: &mut Ctx, a: Artifact) -> Result<(), Fail> {
    check_len("package name", a.name.as_ref())?;
    check_len("package version", a.version.as_ref())?;
    check_len("purl", a.purl.as_ref())?;
    check_len("id", a.id.as_ref())?;
    let index = ctx.sink.m.add_package(PackageRef {
        name: a.name.unwrap_or_default(),
        version: a.version,
        purl: a.purl,
    });
    if let Some(id) = a.id {
        ctx.links.package(&id, index);
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Relationship {
    parent: Option<String>,
    child: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub(crate) fn relationship(ctx: &mut Ctx, r: Relationship) -> Result<(), Fail> {
    if let (Some(p), Some(c), Some("contains")) = (r.parent, r.child, r.kind.as_deref()) {
        ctx.links.contains(&p, &c);
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SourceMetadata {
    #[serde(rename = "userInput")]
    user_input: Option<String>,
    #[serde(rename = "manifestDigest")]
    manifest_digest: Option<String>,
}

/// `source`: what Syft scanned.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Source {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(deserialize_with = "nullable")]
    metadata: Option<SourceMetadata>,
}

pub(crate) fn source(ctx: &mut Ctx, s: Source) {
    if s.kind.as_deref() != Some("image") {
        return;
    }
    if let Some(m) = s.metadata
        && let Some(name) = m.user_input
        && name.len() <= 4096
    {
        note_image(ctx.sink.m.source_mut(), &name, None, m.manifest_digest);
    }
}
