//! Fulcio certificates for keyless signing: the leaf's key, its identity
//! (OIDC issuer and subject), and the chain from it to a CA of the trusted
//! root, valid at the time the transparency log recorded the signature.
//!
//! Parsing is `x509-cert`'s (RustCrypto `der`); signatures are checked with
//! the same RustCrypto keys as everything else. Only the trusted root's
//! chains are used as issuers: a chain the bundle carries is not trusted,
//! only its leaf is read. The checks are those of a Sigstore verifier, not
//! of a TLS stack: issuer name and signature at each step, every
//! certificate valid at the signing time, CA basic constraints on the
//! issuers, the code-signing extended key usage on the leaf.

use der::{Decode as _, Encode as _};
use spki::ObjectIdentifier;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};

use crate::error::{Check, Rejection};
use crate::keys::{HashAlg, PublicKey};
use crate::trust_root::TrustedRoot;

const SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// Fulcio's OIDC issuer, as raw bytes (deprecated, still written).
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer, as a DER UTF8String.
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");

/// The signing certificate of a keyless signature.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub der: Vec<u8>,
    pub key: PublicKey,
    pub not_before: i64,
    pub not_after: i64,
    /// Subject alternative names (email, URI), as written.
    pub subjects: Vec<String>,
    /// The OIDC issuer that vouched for the subject.
    pub issuer: Option<String>,
    cert: Certificate,
}

impl Leaf {
    /// Parses a DER certificate.
    pub fn parse(der: &[u8]) -> Result<Self, Rejection> {
        let bad = |e: String| {
            Rejection::new(Check::Malformed, format!("the signing certificate cannot be read: {e}"))
        };
        let cert = Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| bad(e.to_string()))?;
        let key = PublicKey::from_spki_der(&spki).map_err(bad)?;
        let v = &cert.tbs_certificate.validity;
        let not_before = secs(v.not_before.to_unix_duration());
        let not_after = secs(v.not_after.to_unix_duration());
        let mut subjects = Vec::new();
        let mut issuer = None;
        for ext in cert.tbs_certificate.extensions.iter().flatten() {
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == SAN {
                let san = SubjectAltName::from_der(value)
                    .map_err(|e| bad(format!("subject alternative name: {e}")))?;
                for name in san.0 {
                    match name {
                        GeneralName::Rfc822Name(s) => subjects.push(s.to_string()),
                        GeneralName::UniformResourceIdentifier(s) => subjects.push(s.to_string()),
                        GeneralName::OtherName(o) => {
                            if let Ok(s) = o.value.decode_as::<der::asn1::Utf8StringRef<'_>>() {
                                subjects.push(s.to_string());
                            }
                        }
                        _ => {}
                    }
                }
            } else if ext.extn_id == ISSUER_V2 {
                if let Ok(s) = der::asn1::Utf8StringRef::from_der(value) {
                    issuer = Some(s.to_string());
                }
            } else if ext.extn_id == ISSUER_V1 && issuer.is_none() {
                issuer = std::str::from_utf8(value).ok().map(str::to_owned);
            }
        }
        Ok(Self { der: der.to_vec(), key, not_before, not_after, subjects, issuer, cert })
    }

    /// Checks the chain to a CA of `root` and the validity of every
    /// certificate at `at` (Unix seconds, the log's integrated time).
    pub fn verify_chain(&self, root: &TrustedRoot, at: i64) -> Result<(), Rejection> {
        if at < self.not_before || at > self.not_after {
            return Err(Rejection::new(
                Check::Expired,
                format!(
                    "the signing certificate was valid from {} to {}, the log recorded the signature at {at}",
                    self.not_before, self.not_after
                ),
            ));
        }
        if !has_code_signing(&self.cert) {
            return Err(Rejection::new(
                Check::Signature,
                "the signing certificate is not for code signing (extended key usage)",
            ));
        }
        if root.cas.is_empty() {
            return Err(Rejection::new(
                Check::Signature,
                "the trusted root names no certificate authority: keyless signatures cannot be verified with it",
            ));
        }
        let mut why = Vec::new();
        for ca in &root.cas {
            if !ca.valid.contains(at) {
                why.push(format!("{}: not valid at {at}", ca.uri));
                continue;
            }
            match chain_ok(&self.cert, &ca.chain, at) {
                Ok(()) => return Ok(()),
                Err(e) => why.push(format!("{}: {e}", ca.uri)),
            }
        }
        Err(Rejection::new(
            Check::Signature,
            format!("the signing certificate does not chain to the trusted root ({})", why.join("; ")),
        ))
    }
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn has_code_signing(cert: &Certificate) -> bool {
    cert.tbs_certificate.extensions.iter().flatten().any(|e| {
        e.extn_id == EKU
            && ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).is_ok_and(|u| u.0.contains(&CODE_SIGNING))
    })
}

fn is_ca(cert: &Certificate) -> bool {
    cert.tbs_certificate.extensions.iter().flatten().any(|e| {
        e.extn_id == BASIC_CONSTRAINTS
            && BasicConstraints::from_der(e.extn_value.as_bytes()).is_ok_and(|b| b.ca)
    })
}

/// `leaf` <- chain[0] <- chain[1] ... <- last (the anchor).
fn chain_ok(leaf: &Certificate, chain: &[Vec<u8>], at: i64) -> Result<(), String> {
    let certs = chain
        .iter()
        .map(|d| Certificate::from_der(d).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err("empty chain".into());
    }
    let mut child = leaf;
    // The last certificate is the trust anchor: trusted because the root
    // lists it, so its self-signature is not checked.
    for issuer in &certs {
        let v = &issuer.tbs_certificate.validity;
        if at < secs(v.not_before.to_unix_duration()) || at > secs(v.not_after.to_unix_duration()) {
            return Err(format!("{} was not valid at {at}", issuer.tbs_certificate.subject));
        }
        if !is_ca(issuer) {
            return Err(format!("{} is not a CA", issuer.tbs_certificate.subject));
        }
        signed_by(child, issuer)?;
        child = issuer;
    }
    Ok(())
}

fn signed_by(child: &Certificate, issuer: &Certificate) -> Result<(), String> {
    if child.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(format!(
            "issued by {}, not by {}",
            child.tbs_certificate.issuer, issuer.tbs_certificate.subject
        ));
    }
    let spki = issuer.tbs_certificate.subject_public_key_info.to_der().map_err(|e| e.to_string())?;
    let key = PublicKey::from_spki_der(&spki)?;
    let alg = match child.signature_algorithm.oid.to_string().as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" | "1.3.101.112" => HashAlg::Sha256,
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => HashAlg::Sha384,
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => HashAlg::Sha512,
        other => return Err(format!("signature algorithm {other} is not supported")),
    };
    let tbs = child.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let sig = child.signature.as_bytes().ok_or("the signature has unused bits")?;
    if key.verify_with(alg, &tbs, sig) {
        Ok(())
    } else {
        Err(format!("the signature of {} does not verify", issuer.tbs_certificate.subject))
    }
}
