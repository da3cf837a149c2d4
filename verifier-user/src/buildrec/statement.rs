//! The build record as an in-toto Statement (v1): the record is the
//! predicate (type [`PREDICATE_TYPE`]), the subjects are the build's
//! outputs named with `--subject FILE` (SHA-256 of each, read after the
//! step ended). Whoever verifies the statement learns "these outputs were
//! built by a step whose executables and libraries were these, judged
//! so", bound to the outputs' digests.
//!
//! Signing: with `--sign-key PEM` the statement file is a DSSE envelope
//! (payload type `application/vnd.in-toto+json`) signed by that key, made
//! by the same `verifier-attest` code that verifies image attestations, so
//! `verifier sbom verify --key PUB.pem` (or any DSSE verifier) checks it.
//! The key is read before the build runs: a key that cannot sign fails
//! the step up front, never after an hour of compiling, and never as an
//! unsigned file that looks signed.

use std::{io::Read as _, path::Path};

use sha2::{Digest as _, Sha256};

/// in-toto's statement type.
pub(crate) const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of a build record.
pub(crate) const PREDICATE_TYPE: &str = "https://verifier.dev/build-record/v1";

/// Why the statement could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatementError {
    #[error("subject {path}: {source} (give files the build produced with --subject)")]
    Subject { path: String, source: std::io::Error },
    #[error("--sign-key {key}: {source} (give an unencrypted PKCS#8 or SEC1 PEM key, P-256 or Ed25519)")]
    Key { key: String, source: verifier_attest::AttestError },
    #[error("--sign-key {key}: cannot read it: {source}")]
    ReadKey { key: String, source: std::io::Error },
}

#[derive(serde::Serialize)]
pub(crate) struct Subject {
    pub name: String,
    pub digest: std::collections::BTreeMap<&'static str, String>,
}

/// The subject for one output file: its name as given, its SHA-256.
pub(crate) fn subject(path: &Path) -> Result<Subject, StatementError> {
    let err = |source| StatementError::Subject { path: path.display().to_string(), source };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let digest = [("sha256", hex::encode(h.finalize()))].into_iter().collect();
    Ok(Subject { name: path.display().to_string(), digest })
}

/// The statement around `predicate`.
pub(crate) fn statement(subjects: Vec<Subject>, predicate: &impl serde::Serialize) -> serde_json::Value {
    serde_json::json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    })
}

/// Reads the PEM private key at `key` (before the build runs).
pub(crate) fn signing_key(key: &Path) -> Result<verifier_attest::SigningKey, StatementError> {
    let name = || key.display().to_string();
    let pem =
        std::fs::read_to_string(key).map_err(|source| StatementError::ReadKey { key: name(), source })?;
    verifier_attest::SigningKey::from_pem(&pem).map_err(|source| StatementError::Key { key: name(), source })
}

/// Signs `payload` (the statement's bytes) as a DSSE envelope: one line
/// of JSON with one signature whose `keyid` is the hex SHA-256 of the
/// public key's SubjectPublicKeyInfo.
pub(crate) fn sign(payload: &[u8], key: &verifier_attest::SigningKey) -> Vec<u8> {
    use verifier_attest::dsse;
    let mut out = dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, payload, key).to_json().into_bytes();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_carries_the_files_sha256() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("out.bin");
        std::fs::write(&f, b"abc").expect("write");
        let s = subject(&f).expect("subject");
        assert_eq!(s.digest["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let st = statement(vec![s], &serde_json::json!({"schema": "x"}));
        assert_eq!(st["_type"], STATEMENT_TYPE);
        assert_eq!(st["predicateType"], PREDICATE_TYPE);
        assert_eq!(st["subject"][0]["name"], f.display().to_string());
        assert!(subject(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_key_that_cannot_sign_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = signing_key(&dir.path().join("missing.pem")).err().expect("no file");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .expect("write");
        let err = signing_key(&bad).err().expect("not a key");
        assert!(err.to_string().contains("PKCS#8"), "{err}");
    }

    /// A test key as an operator would give it: a PKCS#8 PEM file.
    fn key_file(dir: &Path) -> std::path::PathBuf {
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        let k = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let pem = k.to_pkcs8_pem(LineEnding::LF).expect("pem");
        let path = dir.join("sign.pem");
        std::fs::write(&path, pem.as_bytes()).expect("write key");
        path
    }

    /// What `verifier sbom verify --key` does with a trusted key, with the
    /// build record's predicate type accepted.
    fn verify_with(
        bytes: &[u8],
        key: verifier_attest::PublicKey,
        digest: &str,
    ) -> Result<verifier_attest::VerifiedSbom, verifier_attest::Rejection> {
        let mut trust = verifier_attest::Trust::with_keys(vec![verifier_attest::policy::TrustedKey {
            name: "build-host".into(),
            key,
        }]);
        trust.predicate_types = vec![PREDICATE_TYPE.into()];
        verifier_attest::verify(bytes, &[digest], &trust)
    }

    #[test]
    fn the_signed_statement_verifies_with_the_public_key_and_a_tampered_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = signing_key(&key_file(dir.path())).expect("key");
        let out = dir.path().join("app");
        std::fs::write(&out, b"built").expect("write");
        let s = subject(&out).expect("subject");
        let digest = format!("sha256:{}", s.digest["sha256"]);
        let st = statement(vec![s], &serde_json::json!({"schema": "verifier.build-record.v1", "status": 0}));
        let payload = serde_json::to_vec(&st).expect("json");
        let env = sign(&payload, &key);

        let ok = verify_with(&env, key.public_key(), &digest).expect("verifies");
        assert_eq!(ok.predicate_type, PREDICATE_TYPE);
        assert!(ok.subject.ends_with(&digest), "{}", ok.subject);

        // Another key: rejected.
        let other = signing_key(&key_file(tempfile::tempdir().expect("tempdir").path())).expect("key");
        assert!(verify_with(&env, other.public_key(), &digest).is_err());

        // The payload changed after signing (a status rewritten): rejected.
        let mut e: verifier_attest::dsse::Envelope = serde_json::from_slice(&env).expect("envelope");
        let tampered = String::from_utf8(payload).expect("utf8").replace("\"status\":0", "\"status\":3");
        assert_ne!(tampered.as_bytes(), st.to_string().as_bytes());
        {
            use base64::Engine as _;
            e.payload = base64::engine::general_purpose::STANDARD.encode(tampered.as_bytes());
        }
        let err = verify_with(e.to_json().as_bytes(), key.public_key(), &digest).expect_err("tampered");
        assert_eq!(err.check, verifier_attest::Check::Signature, "{err}");

        // A statement for another output: rejected by subject.
        let wrong = format!("sha256:{}", "0".repeat(64));
        assert!(verify_with(&env, key.public_key(), &wrong).is_err());
    }
}
