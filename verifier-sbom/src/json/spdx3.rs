//! SPDX 3.0 JSON-LD `@graph` elements: `software_File` with `verifiedUsing`
//! hashes, `software_Package`, `Relationship` (`contains`), `SpdxDocument`.
//!
//! Accepts the compacted names of the official context (`type`, `spdxId`)
//! and the raw JSON-LD ones (`@type`, `@id`), and relationship types in
//! any case (sbom-tool writes `DEPENDS_ON`). sbom-tool also types file hashes
//! `PackageVerificationCode`; they are read as hashes and counted for a
//! warning.

use serde::Deserialize;

use super::super::links::{is_image_purl, note_image};
use super::super::model::PackageRef;
use super::{Ctx, Fail, check_len};
use crate::de::{Alg, Hex, nullable, one_or_many};

#[derive(Deserialize, Default)]
#[serde(default)]
struct IntegrityMethod {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "@type")]
    ld_kind: Option<String>,
    algorithm: Alg,
    #[serde(rename = "hashValue")]
    value: Hex,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Element {
    // Compacted (`type`, `spdxId`) and raw JSON-LD (`@type`, `@id`) names;
    // sbom-tool writes both `@id` and `spdxId` on one element.
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "@type")]
    ld_kind: Option<String>,
    #[serde(rename = "spdxId")]
    id: Option<String>,
    #[serde(rename = "@id")]
    ld_id: Option<String>,
    name: Option<String>,
    #[serde(rename = "verifiedUsing", deserialize_with = "nullable")]
    verified_using: Vec<IntegrityMethod>,
    #[serde(rename = "software_packageVersion")]
    package_version: Option<String>,
    #[serde(rename = "software_packageUrl")]
    package_url: Option<String>,
    #[serde(rename = "software_primaryPurpose")]
    primary_purpose: Option<String>,
    #[serde(rename = "software_fileKind")]
    file_kind: Option<String>,
    from: Option<String>,
    #[serde(deserialize_with = "one_or_many")]
    to: Vec<String>,
    #[serde(rename = "relationshipType")]
    relationship_type: Option<String>,
}

/// `software_File`, `spdx:software_File`, `File`... -> `File`.
fn short_type(t: &str) -> &str {
    let t = t.rsplit([':', '/', '#']).next().unwrap_or(t);
    t.strip_prefix("software_").unwrap_or(t)
}

pub(crate) fn element(ctx: &mut Ctx, mut e: Element) -> Result<(), Fail> {
    e.kind = e.kind.or(e.ld_kind.take());
    e.id = e.id.or(e.ld_id.take());
    check_len("spdxId", e.id.as_ref())?;
    check_len("name", e.name.as_ref())?;
    let Some(kind) = e.kind.as_deref() else {
        return Ok(());
    };
    match short_type(kind) {
        "File" => {
            if e.file_kind.as_deref() == Some("directory") {
                return Ok(());
            }
            let path = e.name.unwrap_or_default();
            ctx.digests.clear();
            for h in &e.verified_using {
                match h.kind.as_deref().or(h.ld_kind.as_deref()).map(short_type) {
                    Some("Hash") | None => {}
                    Some("PackageVerificationCode") => ctx.pvc_quirk += 1,
                    // Signatures and other methods are not digests.
                    Some(_) => continue,
                }
                ctx.sink.push_decoded(&mut ctx.digests, &h.algorithm, &h.value, &path);
            }
            let index = ctx.sink.add_file(&path, &ctx.digests, None, false)?;
            if let (Some(i), Some(id)) = (index, e.id) {
                ctx.links.file(&id, i);
            }
        }
        "Package" => {
            check_len("package version", e.package_version.as_ref())?;
            check_len("purl", e.package_url.as_ref())?;
            let name = e.name.unwrap_or_default();
            let purl = e.package_url;
            let is_image = e.primary_purpose.as_deref() == Some("container")
                || purl.as_deref().is_some_and(is_image_purl);
            if is_image {
                note_image(ctx.sink.m.source_mut(), &name, purl.as_deref(), None);
            }
            let index = ctx.sink.m.add_package(PackageRef { name, version: e.package_version, purl });
            if let Some(id) = e.id {
                ctx.links.package(&id, index);
            }
        }
        "Relationship" => {
            let contains = e.relationship_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("contains"));
            if let (true, Some(from)) = (contains, e.from) {
                for to in &e.to {
                    ctx.links.contains(&from, to);
                }
            }
        }
        "SpdxDocument" => {
            let src = ctx.sink.m.source_mut();
            src.document_name = src.document_name.take().or(e.name);
            src.namespace = src.namespace.take().or(e.id);
        }
        _ => {}
    }
    Ok(())
}
