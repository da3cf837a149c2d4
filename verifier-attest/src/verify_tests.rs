//! Keyed attestations signed here with fresh keys (P-256, Ed25519, and RSA
//! by the `openssl` CLI, as cosign users make them), and real keyless
//! bundles from the Sigstore public-good instance (tests/data/README.md).

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::*;
use crate::dsse::{IN_TOTO_PAYLOAD_TYPE, sign};
use crate::keys::{PublicKey, SigningKey};
use crate::policy::{SubjectMatch, TrustedKey};
use crate::trust_root::TrustedRoot;

const IMAGE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const INDEX: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const SPDX: &str = r#"{"spdxVersion":"SPDX-2.3","files":[{"fileName":"/bin/sh","checksums":[{"algorithm":"SHA256","checksumValue":"00"}]}]}"#;

fn statement(digest: &str, predicate_type: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    let predicate: Value = serde_json::from_str(SPDX).expect("spdx");
    serde_json::to_vec(&json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "registry.example/app", "digest": {"sha256": hex}}], "predicateType": predicate_type, "predicate": predicate})).expect("json")
}

fn p256() -> SigningKey {
    SigningKey::P256(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
}

fn ed25519() -> SigningKey {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
}

fn trust(keys: &[PublicKey]) -> Trust {
    Trust::with_keys(
        keys.iter()
            .enumerate()
            .map(|(i, k)| TrustedKey { name: format!("key{i}"), key: k.clone() })
            .collect(),
    )
}

fn signed(key: &SigningKey, payload: &[u8]) -> Vec<u8> {
    sign(IN_TOTO_PAYLOAD_TYPE, payload, key).to_json().into_bytes()
}

#[test]
fn keyed_p256_and_ed25519_verify_and_hand_back_the_predicate() {
    for key in [p256(), ed25519()] {
        let env = signed(&key, &statement(IMAGE, "https://spdx.dev/Document"));
        let v = verify(&env, &[IMAGE], &trust(&[key.public_key()])).expect("verifies");
        let doc: Value = serde_json::from_slice(&v.document).expect("document");
        assert_eq!(doc, serde_json::from_str::<Value>(SPDX).expect("spdx"));
        assert_eq!(v.subject, format!("registry.example/app@{IMAGE}"));
        assert_eq!(v.signed_by, SignedBy::Key { name: "key0".into(), keyid: key.public_key().keyid() });
    }
}

#[test]
fn openssl_keys_rsa_and_p256_pem() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl is installed by `cargo xtask setup`");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let payload = statement(IMAGE, "https://cyclonedx.org/bom/v1.5");
    let pae_bytes = pae(IN_TOTO_PAYLOAD_TYPE, &payload);
    std::fs::write(dir.path().join("pae"), &pae_bytes).expect("write");
    // RSA: signed by openssl (PKCS#1 v1.5, SHA-256), verified here.
    run(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem"]);
    run(&["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub"]);
    run(&["dgst", "-sha256", "-sign", "rsa.pem", "-out", "rsa.sig", "pae"]);
    let sig = std::fs::read(dir.path().join("rsa.sig")).expect("sig");
    let env = json!({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": STANDARD.encode(&payload), "signatures": [{"sig": STANDARD.encode(sig)}]});
    let rsa = PublicKey::from_pem(&std::fs::read_to_string(dir.path().join("rsa.pub")).expect("pub"))
        .expect("rsa key");
    let v = verify(env.to_string().as_bytes(), &[IMAGE], &trust(&[rsa])).expect("rsa verifies");
    assert_eq!(v.predicate_type, "https://cyclonedx.org/bom/v1.5");
    // P-256 PKCS#8 from openssl: signed here, the openssl public key verifies.
    run(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.pem"]);
    run(&["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub"]);
    let key = SigningKey::from_pem(&std::fs::read_to_string(dir.path().join("ec.pem")).expect("pem"))
        .expect("ec key");
    let public = PublicKey::from_pem(&std::fs::read_to_string(dir.path().join("ec.pub")).expect("pub"))
        .expect("ec pub");
    assert!(verify(&signed(&key, &payload), &[IMAGE], &trust(&[public])).is_ok());
    // A 1024-bit RSA key is refused when read.
    run(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "small.pem"]);
    run(&["pkey", "-in", "small.pem", "-pubout", "-out", "small.pub"]);
    assert!(
        PublicKey::from_pem(&std::fs::read_to_string(dir.path().join("small.pub")).expect("pub")).is_err()
    );
}

fn rejected(bytes: &[u8], digests: &[&str], t: &Trust) -> Rejection {
    match verify(bytes, digests, t) {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn keyed_negative_cases_name_the_check() {
    let key = p256();
    let t = trust(&[key.public_key()]);
    let good = signed(&key, &statement(IMAGE, "https://spdx.dev/Document"));
    // Wrong key.
    assert_eq!(rejected(&good, &[IMAGE], &trust(&[p256().public_key()])).check, Check::Signature);
    // Subject of another image; the index digest is accepted in its place.
    let other = signed(&key, &statement(INDEX, "https://spdx.dev/Document"));
    assert_eq!(rejected(&other, &[IMAGE], &t).check, Check::SubjectDigest);
    assert!(verify(&other, &[IMAGE, INDEX], &t).is_ok());
    // Tampered predicate: the payload no longer matches the signature.
    let mut env: Value = serde_json::from_slice(&good).expect("env");
    let tampered = String::from_utf8(statement(IMAGE, "https://spdx.dev/Document"))
        .expect("utf8")
        .replace("\"00\"", "\"ff\"");
    env["payload"] = STANDARD.encode(tampered).into();
    assert_eq!(rejected(env.to_string().as_bytes(), &[IMAGE], &t).check, Check::Signature);
    // Unsigned: no signatures, or a bare statement.
    env["signatures"] = json!([]);
    assert_eq!(rejected(env.to_string().as_bytes(), &[IMAGE], &t).check, Check::Unsigned);
    assert_eq!(rejected(&statement(IMAGE, "https://spdx.dev/Document"), &[IMAGE], &t).check, Check::Unsigned);
    // A predicate type the policy does not accept.
    let provenance = signed(&key, &statement(IMAGE, "https://slsa.dev/provenance/v1"));
    assert_eq!(rejected(&provenance, &[IMAGE], &t).check, Check::PredicateType);
    // Malformed.
    assert_eq!(rejected(b"\x00garbage", &[IMAGE], &t).check, Check::Malformed);
    // Keyless bundle material required, policy wants log evidence for keys.
    let mut strict = t.clone();
    strict.require_tlog = true;
    assert_eq!(rejected(&good, &[IMAGE], &strict).check, Check::Tlog);
}

#[test]
fn any_trusted_signature_suffices_and_json_lines_are_read() {
    let (a, b) = (p256(), ed25519());
    let payload = statement(IMAGE, "https://spdx.dev/Document");
    let mut env = sign(IN_TOTO_PAYLOAD_TYPE, &payload, &a);
    env.signatures.extend(sign(IN_TOTO_PAYLOAD_TYPE, &payload, &b).signatures);
    let v = verify(env.to_json().as_bytes(), &[IMAGE], &trust(&[b.public_key()]))
        .expect("second signature trusted");
    assert!(matches!(v.signed_by, SignedBy::Key { ref keyid, .. } if *keyid == b.public_key().keyid()));
    // An .intoto.jsonl: a line for another image, then ours.
    let lines = format!(
        "{}\n{}\n",
        String::from_utf8(signed(&b, &statement(INDEX, "https://spdx.dev/Document"))).expect("utf8"),
        env.to_json()
    );
    assert!(verify(lines.as_bytes(), &[IMAGE], &trust(&[b.public_key()])).is_ok());
    assert_eq!(rejected(lines.as_bytes(), &[IMAGE], &trust(&[p256().public_key()])).check, Check::Signature);
}

// --- keyless: real bundles of the Sigstore public-good instance ---

const KUBEWARDEN: &str = include_str!("../tests/data/kubewarden-controller-v1.34.0.sigstore.json");
const NPM: &str = include_str!("../tests/data/npm-sigstore-5.0.0.sigstore.json");
const ROOT: &str = include_str!("../tests/data/sigstore-public-good.trusted_root.json");
const KW_DIGEST: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const KW_SUBJECT: &str =
    "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

fn keyless(subject: SubjectMatch, issuer: &str) -> Trust {
    let root = Arc::new(TrustedRoot::parse(ROOT.as_bytes()).expect("root"));
    let mut t = Trust::with_identities(vec![Identity { issuer: issuer.into(), subject, root }]);
    t.predicate_types.push("https://sigstore.dev/cosign/sign/v1".into());
    t
}

fn exact() -> Trust {
    keyless(SubjectMatch::Exact(KW_SUBJECT.into()), GITHUB)
}

#[test]
fn real_keyless_bundle_verifies_offline() {
    let v = verify(KUBEWARDEN.as_bytes(), &[KW_DIGEST], &exact()).expect("verifies");
    assert_eq!(v.signed_by, SignedBy::Identity { subject: KW_SUBJECT.into(), issuer: GITHUB.into() });
    assert_eq!(v.tlog_index, Some(1_261_105_807));
    assert_eq!(v.signed_time, Some(1_775_719_409));
    let re = keyless(
        SubjectMatch::Regex(regex::Regex::new("^https://github.com/kubewarden/").expect("re")),
        GITHUB,
    );
    assert!(verify(KUBEWARDEN.as_bytes(), &[KW_DIGEST], &re).is_ok());
}

#[test]
fn real_keyless_bundle_negative_cases() {
    let re = |s: &str| SubjectMatch::Regex(regex::Regex::new(s).expect("re"));
    // Wrong identity: subject, issuer.
    let t = keyless(re("^https://github.com/other/"), GITHUB);
    assert_eq!(rejected(KUBEWARDEN.as_bytes(), &[KW_DIGEST], &t).check, Check::Identity);
    let t = keyless(SubjectMatch::Exact(KW_SUBJECT.into()), "https://accounts.google.com");
    assert_eq!(rejected(KUBEWARDEN.as_bytes(), &[KW_DIGEST], &t).check, Check::Identity);
    // Another image.
    assert_eq!(rejected(KUBEWARDEN.as_bytes(), &[IMAGE], &exact()).check, Check::SubjectDigest);
    // Keyed trust only: a keyless bundle names no trusted identity.
    assert_eq!(
        rejected(KUBEWARDEN.as_bytes(), &[KW_DIGEST], &trust(&[p256().public_key()])).check,
        Check::Identity
    );

    let edit = |f: &dyn Fn(&mut Value)| {
        let mut b: Value = serde_json::from_str(KUBEWARDEN).expect("bundle");
        f(&mut b);
        rejected(b.to_string().as_bytes(), &[KW_DIGEST], &exact())
    };
    // Tampered payload (one subject digest changed).
    let r = edit(&|b| {
        let p = STANDARD.decode(b["dsseEnvelope"]["payload"].as_str().expect("payload")).expect("b64");
        let p = String::from_utf8(p).expect("utf8").replace("c811d58d", "c811d58e");
        b["dsseEnvelope"]["payload"] = STANDARD.encode(p).into();
    });
    assert_eq!(r.check, Check::Signature);
    // Transparency evidence: absent, promise tampered, proof removed (v0.3 requires it).
    assert_eq!(edit(&|b| b["verificationMaterial"]["tlogEntries"] = json!([])).check, Check::Tlog);
    let r = edit(&|b| b["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1775719410".into());
    assert_eq!(r.check, Check::Tlog, "{r}");
    assert_eq!(
        edit(&|b| b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"] = Value::Null).check,
        Check::Tlog
    );
    let r = edit(&|b| {
        b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0] =
            STANDARD.encode([0u8; 32]).into()
    });
    assert_eq!(r.check, Check::Tlog);
    // Without a promise there is no signed time for the certificate.
    assert_eq!(
        edit(&|b| b["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"] = Value::Null).check,
        Check::Tlog
    );
    // A trusted root without the Fulcio CAs.
    let mut root: Value = serde_json::from_str(ROOT).expect("root");
    root["certificateAuthorities"] = json!([]);
    let mut t = exact();
    t.identities[0].root = Arc::new(TrustedRoot::parse(root.to_string().as_bytes()).expect("root"));
    assert_eq!(rejected(KUBEWARDEN.as_bytes(), &[KW_DIGEST], &t).check, Check::Signature);
}

#[test]
fn certificate_outside_its_validity_is_expired() {
    let b: Value = serde_json::from_str(KUBEWARDEN).expect("bundle");
    let der = STANDARD
        .decode(b["verificationMaterial"]["certificate"]["rawBytes"].as_str().expect("cert"))
        .expect("b64");
    let leaf = Leaf::parse(&der).expect("leaf");
    let root = TrustedRoot::parse(ROOT.as_bytes()).expect("root");
    assert!(leaf.verify_chain(&root, 1_775_719_409).is_ok());
    assert_eq!(leaf.verify_chain(&root, leaf.not_after + 1).expect_err("after").check, Check::Expired);
    assert_eq!(leaf.verify_chain(&root, leaf.not_before - 1).expect_err("before").check, Check::Expired);
}

#[test]
fn real_npm_bundle_passes_signature_log_and_chain_then_fails_on_its_sha512_subject() {
    let npm = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main";
    let t = keyless(SubjectMatch::Exact(npm.into()), GITHUB);
    let r = rejected(NPM.as_bytes(), &[IMAGE], &t);
    assert_eq!(r.check, Check::SubjectDigest, "{r}");
}
