//! Where a manifest came from: the format, any envelope it was wrapped in,
//! the file.

use std::fmt;
use std::path::PathBuf;

/// Which format an SBOM was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SbomFormat {
    /// SPDX 2.2 / 2.3 JSON.
    Spdx2Json,
    /// SPDX 2.x tag-value (`.spdx`).
    Spdx2TagValue,
    /// SPDX 3.0 JSON-LD.
    Spdx3JsonLd,
    /// CycloneDX JSON, 1.2 to 1.7.
    CycloneDxJson,
    /// Syft's own JSON (`syft -o json`).
    SyftJson,
    /// apk installed database (`/lib/apk/db/installed`).
    ApkInstalled,
    /// dpkg `*.md5sums` (`/var/lib/dpkg/info`, distroless `status.d`).
    DpkgMd5sums,
}

impl SbomFormat {
    pub fn name(&self) -> &'static str {
        match self {
            SbomFormat::Spdx2Json => "SPDX 2 JSON",
            SbomFormat::Spdx2TagValue => "SPDX 2 tag-value",
            SbomFormat::Spdx3JsonLd => "SPDX 3 JSON-LD",
            SbomFormat::CycloneDxJson => "CycloneDX JSON",
            SbomFormat::SyftJson => "Syft JSON",
            SbomFormat::ApkInstalled => "apk installed database",
            SbomFormat::DpkgMd5sums => "dpkg md5sums",
        }
    }
}

impl fmt::Display for SbomFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The wrapper an SBOM came in, when it was not a plain file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// An in-toto statement, bare.
    InToto,
    /// An in-toto statement in a DSSE envelope.
    Dsse,
    /// An in-toto statement in a DSSE envelope in a Sigstore bundle.
    SigstoreBundle,
}

/// Where a manifest came from: enough to name the SBOM in an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomSource {
    pub format: SbomFormat,
    /// Spec version as stated (`SPDX-2.3`, `1.6`, ...).
    pub spec_version: Option<String>,
    pub path: Option<PathBuf>,
    pub document_name: Option<String>,
    /// SPDX `documentNamespace` / CycloneDX `serialNumber` / SPDX 3 document id.
    pub namespace: Option<String>,
    pub image_name: Option<String>,
    /// `sha256:<hex>` when the SBOM names the image digest.
    pub image_digest: Option<String>,
    pub envelope: Option<Envelope>,
}

impl SbomSource {
    pub fn new(format: SbomFormat) -> SbomSource {
        SbomSource {
            format,
            spec_version: None,
            path: None,
            document_name: None,
            namespace: None,
            image_name: None,
            image_digest: None,
            envelope: None,
        }
    }
}

/// "manifest.spdx.json (SPDX 2 JSON)" for messages.
pub(crate) fn describe_source(s: &SbomSource) -> String {
    match &s.path {
        Some(p) => format!("{} ({})", p.display(), s.format),
        None => s.format.to_string(),
    }
}
