//! The build record as an in-toto Statement (v1): the record is the
//! predicate (type [`PREDICATE_TYPE`]), the subjects are the build's
//! outputs named with `--subject FILE` (SHA-256 of each, read after the
//! step ended). Whoever verifies the statement learns "these outputs were
//! built by a step whose executables and libraries were these, judged
//! so", bound to the outputs' digests.
//!
//! Signing is one seam, [`sign`]: DSSE over the statement with the key
//! given as `--sign-key PEM` (payload type `application/vnd.in-toto+json`). The DSSE implementation lives in the
//! attestation crate the trusted-SBOM verification uses; until it is
//! wired here, asking for a signature is an error (never an unsigned
//! file that looks signed).

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
    #[error(
        "--sign-key {key}: this build of the verifier has no DSSE signer wired in yet; \
         write the statement unsigned (drop --sign-key) and sign it with your signing tool"
    )]
    NoSigner { key: String },
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

/// Signs `payload` (the statement's bytes) as a DSSE envelope with the
/// PEM key at `key`. The one place a signer plugs in.
pub(crate) fn sign(_payload: &[u8], key: &Path) -> Result<Vec<u8>, StatementError> {
    Err(StatementError::NoSigner { key: key.display().to_string() })
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
    fn asking_for_a_signature_without_a_signer_is_an_error_not_a_silent_skip() {
        let err = sign(b"{}", Path::new("/k.pem")).expect_err("no signer yet");
        assert!(err.to_string().contains("--sign-key /k.pem"), "{err}");
    }
}
