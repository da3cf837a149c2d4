//! DSSE (Dead Simple Signing Envelope, v1): the envelope cosign, BuildKit
//! and Sigstore bundles put an in-toto statement in.
//!
//! A signature is over the pre-authentication encoding [`pae`], never over
//! the JSON, so re-serialising the envelope cannot change what was signed.
//! The payload and signatures are base64; writers differ (standard or
//! URL-safe alphabet, padded or not), so all four are read. An envelope may
//! carry several signatures: it is accepted when ANY one verifies with a
//! trusted key (the others may be from keys this node does not know, as
//! when an image is signed by both its builder and its publisher).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::keys::SigningKey;

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope as JSON carries it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the payload.
    pub payload: String,
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Signature {
    /// Optional, unauthenticated hint of the key (hex SHA-256 of its
    /// SubjectPublicKeyInfo when we write it). Never used to decide trust.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// Base64 of the signature over [`pae`].
    pub sig: String,
}

/// The pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(
        format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).as_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// Decodes base64 in any of the alphabets writers use.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(s.trim()).ok())
}

impl Envelope {
    /// The decoded payload, or `None` when it is not base64.
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        decode_b64(&self.payload)
    }

    /// Serialises the envelope as one line of JSON.
    pub fn to_json(&self) -> String {
        // Strings and a vector of structs of strings: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Signs `payload` as a DSSE envelope with one signature by `key`; the
/// signature's `keyid` is the key's [`crate::PublicKey::keyid`]. ECDSA
/// signatures are deterministic (RFC 6979), so the same input gives the
/// same envelope.
pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
    let sig = key.sign(&pae(payload_type, payload));
    Envelope {
        payload_type: payload_type.to_owned(),
        payload: STANDARD.encode(payload),
        signatures: vec![Signature { keyid: key.public_key().keyid(), sig: STANDARD.encode(sig) }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn base64_in_every_alphabet() {
        let bytes = [0xfbu8, 0xff, 0xbf, 0x00];
        for e in [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            assert_eq!(decode_b64(&e.encode(bytes)).as_deref(), Some(&bytes[..]));
        }
        assert_eq!(decode_b64("not base64!"), None);
    }
}
