//! Writes an [`Inventory`] as CycloneDX 1.6 JSON.
//!
//! Shape (checked with cyclonedx-python-lib's strict 1.6 schema validator):
//! `metadata.component` is the image (type `container`, purl `pkg:oci/...`,
//! manifest SHA-256) or the rootfs (type `operating-system`); each apk/dpkg
//! package is a `library` component with its purl and, nested inside it,
//! the `file` components it owns; files no package owns are top-level
//! `file` components. A file component's `name` is its absolute path, its
//! `hashes` hold SHA-256 (and SHA-1 when computed); properties in the
//! `verifier:` namespace say when it is a symlink (`verifier:symlink-target`,
//! the digests are then the target's) and which layer it came from
//! (`verifier:layer`). Serial number and bom-refs derive from the content,
//! so the same input gives the same document.
//!
//! NTIA's minimum elements: each package component has its supplier (its
//! database's maintainer), name, version and purl; the subject has a
//! supplier (`--supplier`, else os-release `NAME`) and a version (the
//! image digest, or `content-<hex>` for a rootfs); `metadata` has the
//! tool and timestamp; `dependencies` has the subject depending on every
//! package.

use std::io::{self, Write};

use serde::Serialize;

use super::{FileRecord, GenerateError, Inventory, content_id, spdx};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata<'a>,
    components: Vec<Component<'a>>,
    dependencies: Vec<Dependency>,
}

/// The root depends on every package (what NTIA calls the dependency
/// relationship; files are nested in their package instead).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    bom_ref: String,
    depends_on: Vec<String>,
}

#[derive(Serialize)]
struct Supplier<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Metadata<'a> {
    timestamp: &'a str,
    tools: Tools,
    component: Component<'a>,
    properties: Vec<Property<'a>>,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<ToolComponent>,
}

#[derive(Serialize)]
struct ToolComponent {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Component<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    supplier: Option<Supplier<'a>>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component<'a>>,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Serialize)]
struct Property<'a> {
    name: &'static str,
    value: std::borrow::Cow<'a, str>,
}

fn prop<'a>(name: &'static str, value: impl Into<std::borrow::Cow<'a, str>>) -> Property<'a> {
    Property { name, value: value.into() }
}

/// A UUID-shaped serial number from the content identity (version 5
/// layout bits, so it matches the schema's `urn:uuid:` pattern).
fn serial(id: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&id[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("urn:uuid:{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn file_component<'a>(i: usize, f: &'a FileRecord, inv: &'a Inventory) -> Component<'a> {
    let mut hashes = Vec::new();
    if let Some(h) = f.hashes.sha256 {
        hashes.push(Hash { alg: "SHA-256", content: hex::encode(h) });
    }
    if let Some(h) = f.hashes.sha1 {
        hashes.push(Hash { alg: "SHA-1", content: hex::encode(h) });
    }
    let mut properties = Vec::new();
    if let Some(t) = &f.symlink_target {
        properties.push(prop("verifier:symlink-target", t.as_str()));
    }
    if let Some(layer) = f.layer.and_then(|l| inv.subject.layers.get(l)) {
        properties.push(prop("verifier:layer", layer.as_str()));
    }
    if f.hashes.elf {
        properties.push(prop("verifier:elf", "true"));
    }
    Component {
        kind: "file",
        bom_ref: format!("file-{i}"),
        supplier: None,
        name: &f.path,
        version: None,
        purl: None,
        hashes,
        properties,
        components: Vec::new(),
    }
}

pub fn write<W: Write>(inv: &Inventory, created: &str, out: W) -> Result<(), GenerateError> {
    let subject = &inv.subject;
    let id = content_id(inv);
    let version = subject.version(&id);
    let dependencies = vec![Dependency {
        bom_ref: "subject".into(),
        depends_on: (0..inv.packages.len()).map(|i| format!("package-{i}")).collect(),
    }];
    let mut packages: Vec<Component<'_>> = inv
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| Component {
            kind: "library",
            bom_ref: format!("package-{i}"),
            supplier: p.supplier.as_deref().map(|name| Supplier { name }),
            name: &p.name,
            version: Some(&p.version),
            purl: Some(p.purl.clone()),
            hashes: Vec::new(),
            properties: vec![prop("verifier:package-type", p.kind)],
            components: Vec::new(),
        })
        .collect();
    let mut loose = Vec::new();
    for (i, f) in inv.files.iter().enumerate() {
        let c = file_component(i, f, inv);
        match f.package.and_then(|p| packages.get_mut(p)) {
            Some(pkg) => pkg.components.push(c),
            None => loose.push(c),
        }
    }
    packages.extend(loose);
    let mut subject_props = Vec::new();
    if let Some(p) = &subject.platform {
        subject_props.push(prop("verifier:platform", p.as_str()));
    }
    if let Some(c) = &subject.config_digest {
        subject_props.push(prop("verifier:config-digest", c.as_str()));
    }
    for l in &subject.layers {
        subject_props.push(prop("verifier:layer-digest", l.as_str()));
    }
    if let Some(d) = &subject.distro {
        subject_props.push(prop("verifier:distro", d.pretty_name.as_deref().unwrap_or(&d.id)));
    }
    let root = Component {
        kind: if subject.is_image { "container" } else { "operating-system" },
        bom_ref: "subject".into(),
        supplier: subject.supplier().map(|name| Supplier { name }),
        name: &subject.name,
        version: Some(&version),
        purl: spdx::oci_purl(inv),
        hashes: subject
            .manifest_digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
            .map(|h| Hash { alg: "SHA-256", content: h.to_owned() })
            .into_iter()
            .collect(),
        properties: subject_props,
        components: Vec::new(),
    };
    let bom = Bom {
        schema: "http://cyclonedx.org/schema/bom-1.6.schema.json",
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: serial(&id),
        version: 1,
        metadata: Metadata {
            timestamp: created,
            tools: Tools {
                components: vec![ToolComponent {
                    kind: "application",
                    name: "verifier",
                    version: env!("CARGO_PKG_VERSION"),
                }],
            },
            component: root,
            properties: vec![prop("verifier:summary", spdx::skipped_summary(inv))],
        },
        components: packages,
        dependencies,
    };
    let mut out = io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, &bom).map_err(|e| GenerateError::Write(e.into()))?;
    out.write_all(b"\n").and_then(|()| out.flush()).map_err(GenerateError::Write)
}
