//! The Sigstore bundle (v0.1, v0.2, v0.3): a DSSE envelope with the
//! material to verify it offline: a key hint, the signing certificate (or a
//! chain whose first element is the leaf), transparency-log entries and
//! timestamps.
//!
//! Only the fields verification reads are named. A bundle around a plain
//! message signature (not an envelope) carries no statement and is refused.

use serde::Deserialize;

use crate::dsse::{Envelope, decode_b64};
use crate::error::{Check, Rejection};
use crate::tlog;

/// The bundle versions this reader knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V01,
    V02,
    V03,
}

impl Version {
    /// From the media type: `application/vnd.dev.sigstore.bundle+json;version=0.x`
    /// or `application/vnd.dev.sigstore.bundle.v0.3+json`.
    pub fn from_media_type(m: &str) -> Option<Self> {
        let v = m.strip_prefix("application/vnd.dev.sigstore.bundle+json;version=").or_else(|| {
            m.strip_prefix("application/vnd.dev.sigstore.bundle.v").and_then(|r| r.strip_suffix("+json"))
        })?;
        match v {
            "0.1" => Some(Self::V01),
            "0.2" => Some(Self::V02),
            "0.3" => Some(Self::V03),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Bundle {
    pub media_type: String,
    pub verification_material: Material,
    #[serde(default)]
    pub dsse_envelope: Option<Envelope>,
    #[serde(default)]
    pub message_signature: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Material {
    #[serde(default)]
    pub public_key: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub x509_certificate_chain: Option<Chain>,
    #[serde(default)]
    pub certificate: Option<RawCert>,
    #[serde(default)]
    pub tlog_entries: Vec<tlog::Entry>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Chain {
    pub certificates: Vec<RawCert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawCert {
    pub raw_bytes: String,
}

/// How the bundle says it was signed.
pub(crate) enum Signer {
    /// A key the verifier must already trust (the hint is not trusted).
    Key,
    /// A short-lived certificate (keyless), DER.
    Certificate(Vec<u8>),
}

impl Bundle {
    pub(crate) fn version(&self) -> Result<Version, Rejection> {
        Version::from_media_type(&self.media_type).ok_or_else(|| {
            Rejection::new(
                Check::Malformed,
                format!("bundle media type `{}` is not a Sigstore bundle v0.1-v0.3", self.media_type),
            )
        })
    }

    pub(crate) fn envelope(&self) -> Result<&Envelope, Rejection> {
        match (&self.dsse_envelope, &self.message_signature) {
            (Some(e), _) => Ok(e),
            (None, Some(_)) => Err(Rejection::new(
                Check::Malformed,
                "the bundle signs a blob (messageSignature), not an attestation (dsseEnvelope)",
            )),
            (None, None) => Err(Rejection::new(Check::Malformed, "the bundle carries no DSSE envelope")),
        }
    }

    pub(crate) fn signer(&self) -> Result<Signer, Rejection> {
        let m = &self.verification_material;
        let leaf = m
            .certificate
            .as_ref()
            .or_else(|| m.x509_certificate_chain.as_ref().and_then(|c| c.certificates.first()));
        match (leaf, &m.public_key) {
            (Some(c), _) => decode_b64(&c.raw_bytes)
                .map(Signer::Certificate)
                .ok_or_else(|| Rejection::new(Check::Malformed, "the bundle's certificate is not base64")),
            (None, Some(_)) => Ok(Signer::Key),
            (None, None) => Err(Rejection::new(
                Check::Malformed,
                "the bundle names neither a certificate nor a public key",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_of_each_version() {
        assert_eq!(
            Version::from_media_type("application/vnd.dev.sigstore.bundle+json;version=0.1"),
            Some(Version::V01)
        );
        assert_eq!(
            Version::from_media_type("application/vnd.dev.sigstore.bundle+json;version=0.2"),
            Some(Version::V02)
        );
        assert_eq!(
            Version::from_media_type("application/vnd.dev.sigstore.bundle+json;version=0.3"),
            Some(Version::V03)
        );
        assert_eq!(
            Version::from_media_type("application/vnd.dev.sigstore.bundle.v0.3+json"),
            Some(Version::V03)
        );
        assert_eq!(Version::from_media_type("application/vnd.dev.sigstore.bundle.v0.4+json"), None);
        assert_eq!(Version::from_media_type("application/json"), None);
    }
}
