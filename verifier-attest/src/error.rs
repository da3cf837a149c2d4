//! What can go wrong: a [`Rejection`] when an attestation is refused (the
//! check that failed and why, for the record the agent writes), an
//! [`AttestError`] when the verifier's own inputs (keys, policy, trusted
//! root) cannot be read: that is the operator's to fix before anything can
//! be judged.

use std::fmt;
use std::path::PathBuf;

/// The check an attestation failed. The names are stable: they appear in
/// records and alerts, so tools can filter on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// No signature verifies with a trusted key or certificate.
    Signature,
    /// The certificate verifies but names an issuer or subject the policy
    /// does not trust for this image.
    Identity,
    /// The statement is about another image.
    SubjectDigest,
    /// The predicate is not an SBOM type the policy accepts.
    PredicateType,
    /// Transparency-log evidence is absent, or does not verify.
    Tlog,
    /// A certificate was not valid at the time the log recorded.
    Expired,
    /// The envelope carries no signature at all.
    Unsigned,
    /// The bytes are not an envelope, bundle or statement we can read.
    Malformed,
}

impl Check {
    /// The stable name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Identity => "identity",
            Self::SubjectDigest => "subject-digest",
            Self::PredicateType => "predicate-type",
            Self::Tlog => "tlog",
            Self::Expired => "expired",
            Self::Unsigned => "unsigned",
            Self::Malformed => "malformed",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An attestation refused: the check that failed and what was seen. The
/// SBOM it carried must not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("attestation rejected: {check}: {detail}")]
pub struct Rejection {
    pub check: Check,
    pub detail: String,
}

impl Rejection {
    pub(crate) fn new(check: Check, detail: impl Into<String>) -> Self {
        Self { check, detail: detail.into() }
    }
}

/// The verifier's own inputs could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: not a usable key: {message} (give a PEM public key: ECDSA P-256/P-384, Ed25519 or RSA >= 2048 bits, as `cosign public-key` or `openssl pkey -pubout` writes it)"
    )]
    Key { path: PathBuf, message: String },
    #[error(
        "not a usable signing key: {message} (give an unencrypted PKCS#8 PEM private key, ECDSA P-256 or Ed25519: `openssl genpkey -algorithm ed25519`)"
    )]
    SigningKey { message: String },
    #[error("{path}:{line}:{column}: {message}")]
    Policy { path: PathBuf, line: usize, column: usize, message: String },
    #[error(
        "{path}: not a usable Sigstore trusted root: {message} (give the trusted_root.json of the Sigstore instance that signed, as `cosign trusted-root create` or the TUF repository's targets/trusted_root.json)"
    )]
    TrustRoot { path: PathBuf, message: String },
}
