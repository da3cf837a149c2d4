//! Public and private keys in the forms cosign and openssl write them: PEM
//! SubjectPublicKeyInfo for verification (ECDSA P-256/P-384, Ed25519, RSA),
//! PKCS#8 (or SEC1 for EC) PEM for signing (ECDSA P-256, Ed25519).
//!
//! All arithmetic is RustCrypto's (`p256`, `p384`, `ed25519-dalek`, `rsa`);
//! this module only picks the algorithm from the key's OID and the digest
//! from the signature algorithm. ECDSA signatures are accepted DER-encoded
//! (what cosign writes) or as raw `r||s`. RSA keys below 2048 bits are
//! refused; RSA signatures are PKCS#1 v1.5 (cosign's) or PSS, SHA-256.

use sha2::{Digest as _, Sha256, Sha384, Sha512};
use signature::hazmat::PrehashVerifier as _;
use spki::{DecodePublicKey as _, ObjectIdentifier, SubjectPublicKeyInfoRef};

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The digest a signature was made over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub(crate) fn digest(self, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(msg).to_vec(),
            Self::Sha384 => Sha384::digest(msg).to_vec(),
            Self::Sha512 => Sha512::digest(msg).to_vec(),
        }
    }
}

/// A key that can verify signatures.
#[derive(Clone, Debug)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let (label, der) =
            der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
        if label != "PUBLIC KEY" {
            return Err(format!("PEM block is `{label}`, expected `PUBLIC KEY`"));
        }
        Self::from_spki_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo, choosing the algorithm by its OID.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, String> {
        let info =
            SubjectPublicKeyInfoRef::try_from(der).map_err(|e| format!("not a SubjectPublicKeyInfo: {e}"))?;
        let oid = info.algorithm.oid;
        if oid == EC_PUBLIC_KEY {
            let curve =
                info.algorithm.parameters_oid().map_err(|e| format!("EC key without a named curve: {e}"))?;
            if curve == SECP256R1 {
                return p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(Self::P256)
                    .map_err(|e| e.to_string());
            }
            if curve == SECP384R1 {
                return p384::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(Self::P384)
                    .map_err(|e| e.to_string());
            }
            return Err(format!("EC curve {curve} is not supported (P-256 and P-384 are)"));
        }
        if oid == ED25519 {
            return ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(Self::Ed25519)
                .map_err(|e| e.to_string());
        }
        if oid == RSA {
            let key = rsa::RsaPublicKey::from_public_key_der(der).map_err(|e| e.to_string())?;
            if rsa::traits::PublicKeyParts::size(&key) < 256 {
                return Err("RSA keys shorter than 2048 bits are refused".into());
            }
            return Ok(Self::Rsa(key));
        }
        Err(format!("key algorithm {oid} is not supported"))
    }

    /// The DER SubjectPublicKeyInfo of this key.
    pub fn spki_der(&self) -> Vec<u8> {
        use spki::EncodePublicKey as _;
        let doc = match self {
            Self::P256(k) => k.to_public_key_der(),
            Self::P384(k) => k.to_public_key_der(),
            Self::Ed25519(k) => k.to_public_key_der(),
            Self::Rsa(k) => k.to_public_key_der(),
        };
        doc.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// The key id cosign and Sigstore use: hex SHA-256 of the DER
    /// SubjectPublicKeyInfo.
    pub fn keyid(&self) -> String {
        hex::encode(Sha256::digest(self.spki_der()))
    }

    /// What kind of key this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::P256(_) => "ecdsa-p256",
            Self::P384(_) => "ecdsa-p384",
            Self::Ed25519(_) => "ed25519",
            Self::Rsa(_) => "rsa",
        }
    }

    /// Verifies `sig` over `msg` with the digest usual for the key (SHA-256
    /// for P-256 and RSA, SHA-384 for P-384; Ed25519 signs the message).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let alg = match self {
            Self::P384(_) => HashAlg::Sha384,
            _ => HashAlg::Sha256,
        };
        self.verify_with(alg, msg, sig)
    }

    /// Verifies `sig` over `msg` hashed with `alg` (ignored for Ed25519).
    pub(crate) fn verify_with(&self, alg: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            Self::P256(k) => {
                let s = p256::ecdsa::Signature::from_der(sig)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(sig));
                let Ok(s) = s else { return false };
                k.verify_prehash(&alg.digest(msg), &s).is_ok()
            }
            Self::P384(k) => {
                let s = p384::ecdsa::Signature::from_der(sig)
                    .or_else(|_| p384::ecdsa::Signature::from_slice(sig));
                let Ok(s) = s else { return false };
                k.verify_prehash(&alg.digest(msg), &s).is_ok()
            }
            Self::Ed25519(k) => {
                let Ok(s) = ed25519_dalek::Signature::from_slice(sig) else { return false };
                k.verify_strict(msg, &s).is_ok()
            }
            Self::Rsa(k) => rsa_verify(k, alg, msg, sig),
        }
    }
}

fn rsa_verify(key: &rsa::RsaPublicKey, alg: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
    use rsa::signature::Verifier as _;
    let Ok(s) = rsa::pkcs1v15::Signature::try_from(sig) else { return false };
    let pkcs1 = match alg {
        HashAlg::Sha256 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone()).verify(msg, &s).is_ok(),
        HashAlg::Sha384 => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key.clone()).verify(msg, &s).is_ok(),
        HashAlg::Sha512 => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(key.clone()).verify(msg, &s).is_ok(),
    };
    if pkcs1 {
        return true;
    }
    let Ok(p) = rsa::pss::Signature::try_from(sig) else { return false };
    match alg {
        HashAlg::Sha256 => rsa::pss::VerifyingKey::<Sha256>::new(key.clone()).verify(msg, &p).is_ok(),
        HashAlg::Sha384 => rsa::pss::VerifyingKey::<Sha384>::new(key.clone()).verify(msg, &p).is_ok(),
        HashAlg::Sha512 => rsa::pss::VerifyingKey::<Sha512>::new(key.clone()).verify(msg, &p).is_ok(),
    }
}

/// A key that can sign DSSE envelopes.
pub enum SigningKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl SigningKey {
    /// Reads an unencrypted PEM private key: PKCS#8 (`PRIVATE KEY`, P-256
    /// or Ed25519) or SEC1 (`EC PRIVATE KEY`, P-256).
    pub fn from_pem(pem: &str) -> Result<Self, crate::AttestError> {
        use p256::pkcs8::DecodePrivateKey as _;
        let fail = |message: String| crate::AttestError::SigningKey { message };
        if pem.contains("ENCRYPTED") {
            return Err(fail(
                "encrypted keys are not read; decrypt it first (`openssl pkcs8 -in k.pem -out plain.pem`)"
                    .into(),
            ));
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::P256(k));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::Ed25519(k));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
            return Ok(Self::P256(k.into()));
        }
        Err(fail("not a PKCS#8 or SEC1 PEM key of a supported algorithm".into()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::P256(k) => PublicKey::P256(*k.verifying_key()),
            Self::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// Signs `msg`: ECDSA P-256 with SHA-256 (deterministic, RFC 6979, DER
    /// encoded as cosign writes it) or Ed25519.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use signature::Signer as _;
        match self {
            Self::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_der().to_bytes().to_vec()
            }
            Self::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        }
    }
}
