//! Writes an [`Inventory`] as SPDX 2.3 JSON.
//!
//! Shape (checked with `pyspdxtools`): one root package for the image or
//! rootfs (`SPDXRef-Root`, purl `pkg:oci/...` and the manifest SHA-256 for
//! images), one package per apk/dpkg package with its purl, and one file per
//! regular file with SHA-1 (required by SPDX 2.3) and SHA-256. The document
//! DESCRIBES the root; the root CONTAINS every package and the files no
//! package owns; each package CONTAINS its files. Packages that own files
//! carry a package verification code (so `filesAnalyzed` is true, as
//! SPDX requires for a package that contains files). File names are
//! `./`-relative as the spec recommends. Skipped entries are counted in
//! `creationInfo.comment`.
//!
//! NTIA's minimum elements (checked with `ntia-checker`): every package
//! has a name, a version (the root: the image digest, or `content-<hex>`
//! for a rootfs), a purl and SPDX id, and a supplier (a package: its
//! database's maintainer; the root: `--supplier`, else the distribution's
//! os-release `NAME`); the tool is the author, `created` the timestamp,
//! DESCRIBES and CONTAINS the relationships.

use std::io::{self, Write};

use serde::Serialize;
use sha1::Digest as _;

use super::{GenerateError, Inventory, content_id, packages::purl_encode};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo<'a>,
    packages: Vec<Package<'a>>,
    files: Vec<File>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
struct CreationInfo<'a> {
    created: &'a str,
    creators: Vec<String>,
    comment: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package<'a> {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: &'a str,
    version_info: &'a str,
    supplier: String,
    download_location: &'static str,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_verification_code: Option<VerificationCode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    license_concluded: &'static str,
    license_declared: &'static str,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationCode {
    package_verification_code_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    file_name: String,
    checksums: Vec<Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_types: Option<[&'static str; 1]>,
    license_concluded: &'static str,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

const ROOT: &str = "SPDXRef-Root";
const NOASSERTION: &str = "NOASSERTION";

fn rel(from: &str, kind: &'static str, to: &str) -> Relationship {
    Relationship {
        spdx_element_id: from.to_owned(),
        relationship_type: kind,
        related_spdx_element: to.to_owned(),
    }
}

/// `pkg:oci/<name>@sha256%3A<hex>?repository_url=..&tag=..&arch=..`.
pub fn oci_purl(inv: &Inventory) -> Option<String> {
    let s = &inv.subject;
    let digest = s.manifest_digest.as_deref().or(s.config_digest.as_deref())?;
    let (repo, tag) = match s.name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (s.name.as_str(), None),
    };
    let short = repo.rsplit('/').next().unwrap_or(repo).to_ascii_lowercase();
    let mut q = Vec::new();
    if repo.contains('/') {
        q.push(format!("repository_url={}", purl_encode(repo)));
    }
    if let Some(t) = tag {
        q.push(format!("tag={}", purl_encode(t)));
    }
    if let Some(arch) = s.platform.as_deref().and_then(|p| p.split('/').nth(1)) {
        q.push(format!("arch={}", purl_encode(arch)));
    }
    let query = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
    Some(format!("pkg:oci/{}@{}{query}", purl_encode(&short), purl_encode(digest)))
}

/// The skipped-entry counts, for document comments.
pub fn skipped_summary(inv: &Inventory) -> String {
    let s = &inv.stats;
    format!(
        "Per-file SBOM by verifier: {} files. Left out: {} names that are not UTF-8, {} dangling or looping symlinks, \
         {} unreadable files, {} device/FIFO/socket nodes. Symlinks to files carry their target's digests.",
        inv.files.len(),
        s.non_utf8_names,
        s.dangling_symlinks,
        s.hash_errors,
        s.special_files
    )
}

pub fn write<W: Write>(inv: &Inventory, created: &str, out: W) -> Result<(), GenerateError> {
    let id = hex::encode(&content_id(inv)[..16]);
    let subject = &inv.subject;
    let mut relationships = vec![rel("SPDXRef-DOCUMENT", "DESCRIBES", ROOT)];
    relationships
        .extend((0..inv.packages.len()).map(|i| rel(ROOT, "CONTAINS", &format!("SPDXRef-Package-{i}"))));
    let mut pkg_sha1s: Vec<Vec<String>> = vec![Vec::new(); inv.packages.len()];
    let mut root_sha1s = Vec::new();
    let mut files = Vec::with_capacity(inv.files.len());
    for (i, f) in inv.files.iter().enumerate() {
        let spdx_id = format!("SPDXRef-File-{i}");
        let mut checksums = Vec::new();
        let sha1 = f.hashes.sha1.map(hex::encode);
        if let Some(h) = &sha1 {
            checksums.push(Checksum { algorithm: "SHA1", checksum_value: h.clone() });
        }
        if let Some(h) = f.hashes.sha256 {
            checksums.push(Checksum { algorithm: "SHA256", checksum_value: hex::encode(h) });
        }
        let owner = match f.package {
            Some(p) => {
                pkg_sha1s[p].extend(sha1);
                format!("SPDXRef-Package-{p}")
            }
            None => {
                root_sha1s.extend(sha1);
                ROOT.to_owned()
            }
        };
        relationships.push(rel(&owner, "CONTAINS", &spdx_id));
        files.push(File {
            spdx_id,
            file_name: format!(".{}", f.path),
            checksums,
            file_types: f.hashes.elf.then_some(["BINARY"]),
            license_concluded: NOASSERTION,
            copyright_text: NOASSERTION,
            comment: f.symlink_target.as_ref().map(|t| format!("symlink to {t}")),
        });
    }
    let mut packages = Vec::with_capacity(inv.packages.len() + 1);
    let root_version = subject.version(&content_id(inv));
    let mut root_comment = Vec::new();
    if let Some(p) = &subject.platform {
        root_comment.push(format!("platform {p}"));
    }
    if subject.manifest_digest.is_none() && subject.config_digest.is_some() {
        root_comment
            .push("version is the image config digest (image ID); the archive has no manifest digest".into());
    }
    if !subject.layers.is_empty() {
        root_comment.push(format!("layers: {}", subject.layers.join(", ")));
    }
    if let Some(d) = &subject.distro {
        root_comment.push(format!("distro {}", d.pretty_name.as_deref().unwrap_or(&d.id)));
    }
    packages.push(Package {
        spdx_id: ROOT.to_owned(),
        name: &subject.name,
        version_info: &root_version,
        supplier: supplier(subject.supplier()),
        download_location: NOASSERTION,
        files_analyzed: !root_sha1s.is_empty(),
        package_verification_code: verification_code(root_sha1s),
        checksums: subject
            .manifest_digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
            .map(|h| Checksum { algorithm: "SHA256", checksum_value: h.to_owned() })
            .into_iter()
            .collect(),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION,
        copyright_text: NOASSERTION,
        primary_package_purpose: Some(if subject.is_image { "CONTAINER" } else { "OPERATING-SYSTEM" }),
        external_refs: oci_purl(inv).map(purl_ref).into_iter().collect(),
        comment: (!root_comment.is_empty()).then(|| root_comment.join("; ")),
    });
    for (i, (p, sha1s)) in inv.packages.iter().zip(pkg_sha1s).enumerate() {
        let spdx_id = format!("SPDXRef-Package-{i}");
        packages.push(Package {
            spdx_id,
            name: &p.name,
            version_info: &p.version,
            supplier: supplier(p.supplier.as_deref()),
            download_location: NOASSERTION,
            files_analyzed: !sha1s.is_empty(),
            package_verification_code: verification_code(sha1s),
            checksums: Vec::new(),
            license_concluded: NOASSERTION,
            license_declared: NOASSERTION,
            copyright_text: NOASSERTION,
            primary_package_purpose: Some("LIBRARY"),
            external_refs: vec![purl_ref(p.purl.clone())],
            comment: Some(format!("{} package; its database lists {} paths", p.kind, p.listed_files)),
        });
    }
    let safe_name: String = subject
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-._".contains(c) { c } else { '-' })
        .collect();
    let doc = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: subject.name.clone(),
        document_namespace: format!("https://spdx.org/spdxdocs/verifier/{safe_name}-{id}"),
        creation_info: CreationInfo {
            created,
            creators: vec![format!("Tool: verifier-{}", env!("CARGO_PKG_VERSION"))],
            comment: skipped_summary(inv),
        },
        packages,
        files,
        relationships,
    };
    let mut out = io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, &doc).map_err(|e| GenerateError::Write(e.into()))?;
    out.write_all(b"\n").and_then(|()| out.flush()).map_err(GenerateError::Write)
}

/// SPDX 2.3 section 7.5: `Organization: name (email)` from a maintainer
/// field's `Name <email>` (a maintainer is as often a team as a person),
/// `NOASSERTION` when unknown.
pub(super) fn supplier(who: Option<&str>) -> String {
    let Some(who) = who.map(str::trim).filter(|w| !w.is_empty()) else { return NOASSERTION.to_owned() };
    match who.rsplit_once('<') {
        Some((name, email)) if email.ends_with('>') => {
            format!("Organization: {} ({})", name.trim(), email.trim_end_matches('>').trim())
        }
        _ => format!("Organization: {who}"),
    }
}

fn purl_ref(locator: String) -> ExternalRef {
    ExternalRef { reference_category: "PACKAGE-MANAGER", reference_type: "purl", reference_locator: locator }
}

/// SPDX 2.3 section 7.9: SHA-1 over the sorted, concatenated lowercase hex
/// SHA-1s of the package's files.
fn verification_code(mut sha1s: Vec<String>) -> Option<VerificationCode> {
    if sha1s.is_empty() {
        return None;
    }
    sha1s.sort();
    let mut h = sha1::Sha1::new();
    for s in &sha1s {
        h.update(s.as_bytes());
    }
    Some(VerificationCode { package_verification_code_value: hex::encode(h.finalize()) })
}
