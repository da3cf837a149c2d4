//! Root tier: a runc container whose SBOM arrives as a signed attestation
//! (`--attestation PATTERN=FILE` with `--trust FILE`). The key is made by
//! openssl, the envelope signed by `verifier_attest::dsse::sign`. A good
//! attestation verifies the image's binaries `ok` and a dropped one
//! `unknown-binary`; a tampered one (the SBOM edited after signing to list
//! the dropped binary) is refused with a record naming the check, and with
//! `require = true` every exec is `unverifiable`, even though a valid
//! unsigned SBOM for the same container is given with `--sbom`.

use std::{fs, process::Command};

use base64::Engine as _;
use serde_json::Value;
use verifier_attest::{SigningKey, dsse};
use verifier_tests::{
    agent::{Agent, execs},
    exclusive,
    image::{self, annotate},
    registry::{sha256, statement},
    require_root,
    runc::Container,
};

const IMAGE: &str = "attest.example/app:1";
const PREDICATE: &str = "https://spdx.dev/Document";
const DROP: &str = "mkdir -p /tmp/x && cat /bin/busybox > /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true && /tmp/x/true";

struct Run {
    records: Vec<Value>,
    id: String,
}

/// Signs the bundle's SBOM for `digest`, optionally tampers with it, runs
/// the container under an agent and returns the records.
fn run(tamper: bool) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let bundle = image::busybox_with_tool(d, &["sleep", "60"]).expect("bundle");
    let sbom = image::generate_sbom(&bundle, &d.join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let digest = sha256(format!("image of {}", std::process::id()).as_bytes());
    let id = format!("vt-attest-{}-{}", std::process::id(), u8::from(tamper));
    annotate(&bundle, &[("io.verifier.image.name", IMAGE), ("io.verifier.image.digest", &digest)])
        .expect("annotate");

    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", "k.pem"])
        .current_dir(d)
        .status()
        .expect("openssl");
    assert!(ok.success());
    let ok = Command::new("openssl")
        .args(["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"])
        .current_dir(d)
        .status()
        .expect("openssl");
    assert!(ok.success());
    let key = SigningKey::from_pem(&fs::read_to_string(d.join("k.pem")).expect("pem")).expect("key");
    let doc: Value = serde_json::from_slice(&fs::read(&sbom).expect("sbom")).expect("json");
    let st = statement(IMAGE, &digest, PREDICATE, doc.clone());
    let mut envelope: Value =
        serde_json::from_str(&dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, &st, &key).to_json()).expect("envelope");
    if tamper {
        // The attacker adds the binary they will drop to the signed SBOM.
        let mut doc = doc;
        let dropped = {
            let mut b = fs::read(bundle.rootfs().join("bin/busybox")).expect("busybox");
            b.push(b'\n');
            sha256(&b)
        };
        doc["files"].as_array_mut().expect("files").push(serde_json::json!({
            "fileName": "./tmp/x/true", "SPDXID": "SPDXRef-File-evil",
            "checksums": [{"algorithm": "SHA256", "checksumValue": dropped.trim_start_matches("sha256:")}]
        }));
        let forged = statement(IMAGE, &digest, PREDICATE, doc);
        envelope["payload"] = base64::engine::general_purpose::STANDARD.encode(forged).into();
    }
    let att = d.join("app.att.json");
    fs::write(&att, serde_json::to_vec(&envelope).expect("json")).expect("write");
    fs::write(
        d.join("trust.toml"),
        "[[image]]\npattern = \"attest.example/app:*\"\nkeys = [\"k.pub\"]\nrequire = true\non_missing = \"unverifiable\"\n",
    )
    .expect("policy");

    let trust = d.join("trust.toml").display().to_string();
    let attestation = format!("attest.example/app:*={}", att.display());
    // A valid but unsigned SBOM for the same container: never to be used.
    let unsigned = format!("{id}={}", sbom.display());
    let agent = Agent::start(&[
        "--stats-interval",
        "0",
        "--containers-only",
        "--trust",
        &trust,
        "--attestation",
        &attestation,
        "--sbom",
        &unsigned,
    ])
    .expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    container.exec(&["/bin/ls", "/"]).expect("image binary");
    container.exec(&["sh", "-c", DROP]).expect("dropped binary");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let records = agent.stop().expect("agent stops");
    drop(container);
    Run { records, id }
}

fn verdict(r: &Run, filename: &str) -> Value {
    execs(&r.records)
        .find(|e| e["container"]["id"] == r.id.as_str() && e["filename"] == filename)
        .map(|e| e["verification"].clone())
        .unwrap_or_else(|| panic!("{filename} not reported: {:?}", r.records))
}

#[test]
fn a_signed_attestation_is_the_baseline() {
    require_root!();
    let _lock = exclusive();
    let r = run(false);
    // The entrypoint is busybox's first exec: hashed and `ok` (the `ls`
    // after it, the same file, then goes by the kernel fast path).
    let sleep = verdict(&r, "/bin/sleep");
    assert_eq!(sleep["verdict"], "ok", "{sleep}");
    let dropped = verdict(&r, "/tmp/x/true");
    assert_eq!(dropped["verdict"], "unknown-binary", "{dropped}");
    // The verified copy of the attested SBOM was the baseline, not --sbom.
    let alert = r
        .records
        .iter()
        .find(|x| x["type"] == "alert" && x["file"]["path"] == "/tmp/x/true")
        .unwrap_or_else(|| panic!("no alert: {:?}", r.records));
    let sources = alert["sbom"]["sources"].to_string();
    assert!(sources.contains("/var/cache/verifier/attested/sha256-"), "{alert}");
    let refused: Vec<&Value> = r.records.iter().filter(|x| x["code"] == "attestation-rejected").collect();
    assert!(refused.is_empty(), "nothing to refuse: {refused:?}");
}

#[test]
fn a_tampered_attestation_is_refused_and_nothing_is_judged_ok() {
    require_root!();
    let _lock = exclusive();
    let r = run(true);
    let rejection = r
        .records
        .iter()
        .find(|x| x["schema"] == "verifier.warning.v1" && x["code"] == "attestation-rejected")
        .unwrap_or_else(|| panic!("no rejection record: {:?}", r.records));
    assert_eq!(rejection["image"], IMAGE, "{rejection}");
    assert_eq!(rejection["check"], "signature", "{rejection}");
    assert_eq!(rejection["action"], "unverifiable", "{rejection}");
    assert!(rejection["attestation"].as_str().is_some_and(|a| a.ends_with("app.att.json")), "{rejection}");
    assert!(rejection["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{rejection}");
    let mine: Vec<&Value> = execs(&r.records).filter(|e| e["container"]["id"] == r.id.as_str()).collect();
    assert!(!mine.is_empty(), "no execs of {}", r.id);
    for e in &mine {
        let v = &e["verification"];
        assert_eq!(v["verdict"], "unverifiable", "never judged against the tampered or unsigned SBOM: {e}");
        assert!(
            v["reason"].as_str().is_some_and(|s| s.contains("app.att.json") && s.contains("signature")),
            "{e}"
        );
    }
    let dropped = verdict(&r, "/tmp/x/true");
    assert_eq!(dropped["verdict"], "unverifiable", "the forged entry must not make it ok: {dropped}");
}
