//! The offline `check` and the agent must give the same answer for the same
//! file of the same SBOM. Each case writes one executable into a temporary
//! rootfs and one SPDX document to a file, runs the real check on them,
//! hashes the file the way the agent's engine does and judges it with the
//! agent's `judge`, then compares the two outcomes.

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path};

use serde_json::{Value, json};
use sha2::Digest as _;
use verifier::verify::verdict::{Verdict, judge};
use verifier_sbom::{
    check::{self, CheckOptions, Kind},
    digest,
    hash::{self, BUFFER_SIZE},
};

const PATH: &str = "/usr/bin/tool";
const CONTENT: &[u8] = b"\x7fELF the shipped tool";

/// What either side concluded about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    OkWeak,
    Modified,
    NoUsableDigest,
}

/// One SPDX 2.3 document listing [`PATH`] with `checksums`.
fn spdx(checksums: Value) -> Value {
    json!({
        "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "agreement",
        "dataLicense": "CC0-1.0", "documentNamespace": "https://example.com/agreement",
        "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: test"]},
        "files": [{"SPDXID": "SPDXRef-tool", "fileName": format!(".{PATH}"), "checksums": checksums}]
    })
}

fn sum(alg: &str, value: impl AsRef<[u8]>) -> Value {
    json!({"algorithm": alg, "checksumValue": hex::encode(value)})
}

/// The offline check's outcome for [`PATH`].
fn by_check(rootfs: &Path, sbom: &Path) -> Outcome {
    let opts = CheckOptions {
        rootfs: rootfs.to_owned(),
        sboms: vec![sbom.to_owned()],
        root_prefix: None,
        threads: Some(1),
    };
    let report = check::run(&opts).expect("check runs");
    let kinds: Vec<Kind> = report.findings.iter().filter(|f| f.path == PATH).map(|f| f.kind).collect();
    assert_eq!(report.summary.checked, 1, "{report:?}");
    match kinds.as_slice() {
        [] if report.summary.ok_weak == 1 => Outcome::OkWeak,
        [] if report.summary.ok == 1 => Outcome::Ok,
        [Kind::Modified] => Outcome::Modified,
        [Kind::NoHash] => Outcome::NoUsableDigest,
        other => panic!("unexpected check findings {other:?} in {report:?}"),
    }
}

/// The agent's outcome for [`PATH`]: the manifest loaded and trimmed as
/// the agent's baseline does, the file hashed with the digests the engine
/// asks for, then judged.
fn by_agent(rootfs: &Path, sbom: &Path) -> Outcome {
    let (mut m, _) = check::load_sboms(&[sbom.to_owned()], None).expect("SBOM loads");
    m.keep_sha256_where_present();
    let algs = digest::algs_for(m.get(PATH)).union(digest::algs_for_any(&m));
    let file = rootfs.join(PATH.trim_start_matches('/'));
    let hashes = hash::hash_path(&file, algs, &mut vec![0u8; BUFFER_SIZE]).expect("hash");
    let j = judge(&m, None, Some(PATH), &hashes, false, false);
    match (j.verdict, j.weak) {
        (Verdict::Ok, false) => Outcome::Ok,
        (Verdict::Ok, true) => Outcome::OkWeak,
        (Verdict::ModifiedBinary, _) => Outcome::Modified,
        (Verdict::Unverifiable, _) => Outcome::NoUsableDigest,
        _ => panic!("unexpected judgement {j:?}"),
    }
}

#[test]
fn check_and_the_agent_agree_on_every_kind_of_digest() {
    let other = b"other bytes";
    let cases: [(&str, Value, Outcome); 8] = [
        ("SHA-256 match", json!([sum("SHA256", sha2::Sha256::digest(CONTENT))]), Outcome::Ok),
        ("SHA-256 mismatch", json!([sum("SHA256", sha2::Sha256::digest(other))]), Outcome::Modified),
        ("SHA-512 only", json!([sum("SHA512", sha2::Sha512::digest(CONTENT))]), Outcome::Ok),
        ("SHA-512 only, mismatch", json!([sum("SHA512", sha2::Sha512::digest(other))]), Outcome::Modified),
        ("SHA-1 only", json!([sum("SHA1", sha1::Sha1::digest(CONTENT))]), Outcome::OkWeak),
        ("MD5 only", json!([sum("MD5", md5::Md5::digest(CONTENT))]), Outcome::OkWeak),
        (
            "all-zero placeholder",
            json!([sum("SHA256", [0u8; 32]), sum("SHA1", [0u8; 20])]),
            Outcome::NoUsableDigest,
        ),
        ("no digest", json!([]), Outcome::NoUsableDigest),
    ];
    for (name, checksums, want) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rootfs = tmp.path().join("rootfs");
        let file = rootfs.join(PATH.trim_start_matches('/'));
        fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        fs::write(&file, CONTENT).expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).expect("chmod");
        let sbom = tmp.path().join("sbom.spdx.json");
        fs::write(&sbom, spdx(checksums).to_string()).expect("write SBOM");
        let (check, agent) = (by_check(&rootfs, &sbom), by_agent(&rootfs, &sbom));
        assert_eq!(check, agent, "{name}: check and the agent disagree");
        assert_eq!(check, want, "{name}");
    }
}
