//! SPDX 2.2 / 2.3 JSON elements (and Syft JSON `files`, whose elements share
//! the `files` key and are told apart by their fields).

use std::borrow::Cow;

use serde::Deserialize;

use super::super::links::{is_image_purl, note_image};
use super::super::model::PackageRef;
use super::{Ctx, Fail, check_len, syft};
use crate::de::{Alg, Hex, nullable};

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Checksum {
    algorithm: Alg,
    #[serde(rename = "checksumValue")]
    value: Hex,
}

/// One element of `files`: SPDX 2 (`fileName`, `checksums`) or Syft
/// (`location.path`, `digests`).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct File<'a> {
    // Borrowed from the input when there is no escape in them.
    #[serde(rename = "SPDXID", borrow)]
    spdx_id: Option<Cow<'a, str>>,
    #[serde(rename = "fileName", borrow)]
    file_name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "nullable")]
    checksums: Vec<Checksum>,
    // Syft JSON:
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    location: Option<syft::Location>,
    #[serde(deserialize_with = "nullable")]
    digests: Vec<syft::Digest>,
    metadata: Option<syft::FileMetadata>,
}

pub(crate) fn file(ctx: &mut Ctx, f: File<'_>) -> Result<(), Fail> {
    let kind = f.metadata.as_ref().and_then(|m| m.kind.as_deref());
    if kind == Some("Directory") {
        return Ok(());
    }
    let symlink = kind == Some("SymbolicLink");
    let path = f.file_name.or_else(|| f.location.and_then(|l| l.path).map(Cow::Owned)).unwrap_or_default();
    ctx.digests.clear();
    for c in &f.checksums {
        ctx.sink.push_decoded(&mut ctx.digests, &c.algorithm, &c.value, &path);
    }
    for d in &f.digests {
        ctx.sink.push_decoded(&mut ctx.digests, &d.algorithm, &d.value, &path);
    }
    let index = ctx.sink.add_file(&path, &ctx.digests, None, symlink)?;
    if let (Some(i), Some(id)) = (index, f.spdx_id.or(f.id)) {
        ctx.links.file(&id, i);
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExternalRef {
    #[serde(rename = "referenceType")]
    kind: Option<String>,
    #[serde(rename = "referenceLocator")]
    locator: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: Option<String>,
    name: Option<String>,
    #[serde(rename = "versionInfo")]
    version: Option<String>,
    #[serde(rename = "externalRefs", deserialize_with = "nullable")]
    external_refs: Vec<ExternalRef>,
    #[serde(rename = "hasFiles", deserialize_with = "nullable")]
    has_files: Vec<String>,
    #[serde(rename = "primaryPackagePurpose")]
    purpose: Option<String>,
    #[serde(deserialize_with = "nullable")]
    checksums: Vec<Checksum>,
}

pub(crate) fn package(ctx: &mut Ctx, p: Package) -> Result<(), Fail> {
    check_len("package name", p.name.as_ref())?;
    check_len("package version", p.version.as_ref())?;
    let purl = p
        .external_refs
        .into_iter()
        .find(|r| r.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("purl")))
        .and_then(|r| r.locator);
    check_len("purl", purl.as_ref())?;
    let name = p.name.unwrap_or_default();
    let is_image = p.purpose.as_deref() == Some("CONTAINER") || purl.as_deref().is_some_and(is_image_purl);
    if is_image {
        let digest = p.checksums.iter().find_map(|c| match (&c.algorithm, c.value.value()) {
            (Alg::Known(super::super::HashAlg::Sha256), Ok(v)) => Some(format!("sha256:{}", hex::encode(v))),
            _ => None,
        });
        note_image(ctx.sink.m.source_mut(), &name, purl.as_deref(), digest);
    }
    let index = ctx.sink.m.add_package(PackageRef { name, version: p.version, purl });
    if let Some(id) = p.spdx_id {
        check_len("SPDXID", Some(&id))?;
        ctx.links.package(&id, index);
        for f in &p.has_files {
            ctx.links.contains(&id, f);
        }
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Relationship<'a> {
    #[serde(rename = "spdxElementId", borrow)]
    from: Option<Cow<'a, str>>,
    #[serde(rename = "relationshipType", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "relatedSpdxElement", borrow)]
    to: Option<Cow<'a, str>>,
}

pub(crate) fn relationship(ctx: &mut Ctx, r: Relationship<'_>) -> Result<(), Fail> {
    contains(ctx, r.from.as_deref(), r.kind.as_deref(), r.to.as_deref());
    Ok(())
}

/// Notes a `CONTAINS` / `CONTAINED_BY` relationship; others are not used.
pub(crate) fn contains(ctx: &mut Ctx, from: Option<&str>, kind: Option<&str>, to: Option<&str>) {
    let (Some(from), Some(kind), Some(to)) = (from, kind, to) else {
        return;
    };
    if kind.eq_ignore_ascii_case("CONTAINS") {
        ctx.links.contains(from, to);
    } else if kind.eq_ignore_ascii_case("CONTAINED_BY") {
        ctx.links.contains(to, from);
    }
}
