//! The trust gate over stub sources: a required image is never judged
//! against an unsigned source's SBOM, and the refusal names what failed.

use std::path::{Path, PathBuf};

use super::*;

struct Stub {
    attested: bool,
    files: Vec<PathBuf>,
    rejected: Vec<Rejected>,
}

impl BaselineSource for Stub {
    fn sbom_files(&self, _: &ImageKeys<'_>) -> Vec<PathBuf> {
        self.files.clone()
    }
    fn answer(&self, _: &ImageKeys<'_>) -> Answer {
        Answer { files: self.files.clone(), rejected: self.rejected.clone() }
    }
    fn attested(&self) -> bool {
        self.attested
    }
}

fn policy(dir: &Path, require: bool, on_missing: &str) -> TrustPolicy {
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", "k.pem"])
        .current_dir(dir)
        .status()
        .expect("openssl");
    assert!(out.success());
    let pubkey = std::process::Command::new("openssl")
        .args(["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"])
        .current_dir(dir)
        .status()
        .expect("openssl");
    assert!(pubkey.success());
    let toml = format!(
        "[[image]]\npattern = \"demo:*\"\nkeys = [\"k.pub\"]\nrequire = {require}\non_missing = \"{on_missing}\"\n"
    );
    std::fs::write(dir.join("trust.toml"), toml).expect("policy");
    TrustPolicy::load(&dir.join("trust.toml")).expect("policy")
}

fn sources(attested_rejects: bool) -> Vec<Box<dyn BaselineSource>> {
    let rejected = if attested_rejects {
        vec![Rejected {
            attestation: "/a/demo.json".into(),
            attestation_digest: None,
            check: "signature",
            detail: "no trusted key verifies it".into(),
        }]
    } else {
        Vec::new()
    };
    vec![
        Box::new(Stub { attested: true, files: Vec::new(), rejected }),
        Box::new(Stub { attested: false, files: vec!["/sboms/unsigned.json".into()], rejected: Vec::new() }),
    ]
}

const KEYS: ImageKeys<'static> = ImageKeys {
    image_name: Some("demo:1"),
    image_digest: Some("sha256:11"),
    container_id: "c",
    container_name: None,
};

#[test]
fn a_required_image_is_refused_rather_than_judged_against_an_unsigned_sbom() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path(), true, "unverifiable");
    let found = lookup(&sources(true), Some(&p), &KEYS);
    match &found.lookup {
        Lookup::Refused { on_missing, why } => {
            assert_eq!(*on_missing, OnMissing::Unverifiable);
            assert!(why.contains("/a/demo.json") && why.contains("signature"), "{why}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!((found.rejected.len(), found.action), (1, "unverifiable"));

    // Nothing found at all: still refused, as `missing`.
    let found = lookup(&sources(false), Some(&p), &KEYS);
    assert!(matches!(found.lookup, Lookup::Refused { .. }));
    assert_eq!(found.rejected[0].check, "missing");

    // Another image is not covered by the rule: the unsigned SBOM is used.
    let other = ImageKeys { image_name: Some("other:1"), ..KEYS };
    let found = lookup(&sources(true), Some(&p), &other);
    assert!(matches!(&found.lookup, Lookup::Files(f) if f == &[PathBuf::from("/sboms/unsigned.json")]));
    assert_eq!(found.action, "not-used");
}

#[test]
fn alert_and_not_required_rules_say_what_was_done() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path(), true, "alert");
    let found = lookup(&sources(true), Some(&p), &KEYS);
    assert!(matches!(found.lookup, Lookup::Refused { on_missing: OnMissing::Alert, .. }));
    assert_eq!(found.action, "alert");

    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path(), false, "unverifiable");
    let found = lookup(&sources(true), Some(&p), &KEYS);
    assert!(
        matches!(&found.lookup, Lookup::Files(f) if f.len() == 1),
        "not required: the next source answers"
    );
    assert_eq!((found.rejected.len(), found.action), (1, "not-used"));
}
