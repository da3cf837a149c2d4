//! `--attestation PATTERN=FILE` with `--trust FILE`: an SBOM that is used
//! only after its signed attestation verifies for the container's image.
//!
//! The attestation is checked by `verifier_attest::verify` against the
//! policy rule matching the image, with the image digest the runtime
//! reports; the verified document is written, content-addressed, under
//! the cache directory and handed on as an SBOM file like any other
//! source's. A rejected attestation gives no file, and a rejection naming
//! the image, the attestation and the failed check: its SBOM is never read.
//! A registry of attestations will call [`verified_sbom`] the same way.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use verifier_attest::{Check, Rejection, TrustPolicy, VerifiedSbom};

use super::required::{Answer, Rejected};
use super::rules::glob_match;
use super::{BaselineSource, ImageKeys};

/// Where verified SBOM documents are kept.
pub(crate) const CACHE_DIR: &str = "/var/cache/verifier/attested";

/// One `--attestation PATTERN=FILE`.
#[derive(Clone, Debug)]
pub struct AttestationRule {
    pub pattern: String,
    pub file: PathBuf,
}

impl FromStr for AttestationRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (pattern, file) = s.split_once('=').filter(|(p, f)| !p.is_empty() && !f.is_empty()).ok_or_else(|| {
            format!("{s:?}: expected PATTERN=ATTESTATION-FILE, e.g. 'registry.example/app:*=app.sigstore.json'")
        })?;
        Ok(Self { pattern: pattern.into(), file: file.into() })
    }
}

/// The attested SBOMs of the images the rules name.
pub(crate) struct Attested {
    rules: Vec<AttestationRule>,
    policy: TrustPolicy,
    cache: PathBuf,
}

impl Attested {
    pub(crate) fn new(rules: Vec<AttestationRule>, policy: TrustPolicy, cache: PathBuf) -> Self {
        Self { rules, policy, cache }
    }

    fn verified_file(&self, keys: &ImageKeys<'_>, rule: &AttestationRule) -> Result<PathBuf, Rejection> {
        let bytes = std::fs::read(&rule.file).map_err(|e| Rejection {
            check: Check::Malformed,
            detail: format!("cannot read the attestation: {e}"),
        })?;
        let digests: Vec<&str> = keys.image_digest.into_iter().collect();
        let v = verified_sbom(&bytes, &digests, &self.policy, keys)?;
        write_cached(&self.cache, &v.document).map_err(|e| Rejection {
            check: Check::Malformed,
            detail: format!("verified, but cannot keep it: {e}"),
        })
    }
}

impl BaselineSource for Attested {
    fn sbom_files(&self, keys: &ImageKeys<'_>) -> Vec<PathBuf> {
        self.answer(keys).files
    }

    fn answer(&self, keys: &ImageKeys<'_>) -> Answer {
        let Some(rule) = self.rules.iter().find(|r| keys.all().any(|k| glob_match(&r.pattern, k))) else {
            return Answer::default();
        };
        match self.verified_file(keys, rule) {
            Ok(path) => Answer { files: vec![path], rejected: Vec::new() },
            Err(r) => {
                let image = keys.image_name.or(keys.image_digest).unwrap_or(keys.container_id);
                tracing::warn!(
                    image,
                    attestation = %rule.file.display(),
                    check = r.check.as_str(),
                    detail = %r.detail,
                    "attestation rejected: its SBOM is not used"
                );
                let rejected = Rejected {
                    attestation: rule.file.display().to_string(),
                    attestation_digest: None,
                    check: r.check.as_str(),
                    detail: r.detail,
                };
                Answer { files: Vec::new(), rejected: vec![rejected] }
            }
        }
    }

    fn attested(&self) -> bool {
        true
    }
}

/// Verifies attestation bytes for an image known by `digests` (manifest
/// and/or index digest) under the policy rule matching `keys`.
pub(crate) fn verified_sbom(
    bytes: &[u8],
    digests: &[&str],
    policy: &TrustPolicy,
    keys: &ImageKeys<'_>,
) -> Result<VerifiedSbom, Rejection> {
    if digests.is_empty() {
        return Err(Rejection {
            check: Check::SubjectDigest,
            detail: "the runtime reports no image digest to bind the attestation to".into(),
        });
    }
    let rule = policy
        .rule_for(|p| keys.all().chain(digests.iter().copied()).any(|k| glob_match(p, k)))
        .ok_or_else(|| Rejection {
            check: Check::Identity,
            detail: "no rule of the trust policy matches this image: nothing is trusted for it".into(),
        })?;
    verifier_attest::verify(bytes, digests, &rule.trust)
}

pub(crate) fn write_cached(dir: &Path, doc: &[u8]) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("sha256-{}.json", hex::encode(Sha256::digest(doc))));
    if !path.is_file() {
        let tmp = dir.join(format!(".tmp-{}", std::process::id()));
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        std::io::Write::write_all(&mut f, doc)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use verifier_attest::SigningKey;
    use verifier_attest::dsse::{IN_TOTO_PAYLOAD_TYPE, sign};

    const DIGEST: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    #[test]
    fn verified_sbom_is_kept_and_a_tampered_one_gives_no_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out", "k.pem"])
            .current_dir(dir.path())
            .status()
            .expect("openssl");
        assert!(out.success());
        let key = SigningKey::from_pem(&std::fs::read_to_string(dir.path().join("k.pem")).expect("pem"))
            .expect("key");
        let pubpem = der_pem(&key.public_key().spki_der());
        std::fs::write(dir.path().join("k.pub"), pubpem).expect("pub");
        std::fs::write(
            dir.path().join("trust.toml"),
            "[[image]]\npattern = \"demo:*\"\nkeys = [\"k.pub\"]\n",
        )
        .expect("policy");
        let policy = TrustPolicy::load(&dir.path().join("trust.toml")).expect("policy");
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"demo","digest":{{"sha256":"{}"}}}}],"predicateType":"https://spdx.dev/Document","predicate":{{"spdxVersion":"SPDX-2.3"}}}}"#,
            DIGEST.trim_start_matches("sha256:")
        );
        let env = sign(IN_TOTO_PAYLOAD_TYPE, statement.as_bytes(), &key).to_json();
        std::fs::write(dir.path().join("good.json"), &env).expect("write");
        let tampered = env.replacen("\"payload\":\"", "\"payload\":\"eyJ", 1);
        std::fs::write(dir.path().join("bad.json"), tampered).expect("write");
        let rules = vec![
            AttestationRule::from_str(&format!("demo:1={}", dir.path().join("good.json").display()))
                .expect("rule"),
            AttestationRule::from_str(&format!("demo:2={}", dir.path().join("bad.json").display()))
                .expect("rule"),
        ];
        let src = Attested::new(rules, policy, dir.path().join("cache"));
        let keys = |name| ImageKeys {
            image_name: Some(name),
            image_digest: Some(DIGEST),
            container_id: "c1",
            container_name: None,
        };
        let files = src.sbom_files(&keys("demo:1"));
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::read_to_string(&files[0]).expect("doc"), r#"{"spdxVersion":"SPDX-2.3"}"#);
        assert!(src.sbom_files(&keys("demo:2")).is_empty(), "a tampered attestation must give no SBOM");
        let other = ImageKeys { image_digest: Some("sha256:44"), ..keys("demo:1") };
        assert!(src.sbom_files(&other).is_empty(), "an attestation for another digest must give no SBOM");
    }

    fn der_pem(der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }
}
