//! `verifier sbom inspect`, driven through the real binary on real SBOM
//! samples: the verdict per file, the JSON schema, and the exit code that
//! is the worst of the files.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

fn sample(rel: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sbom-samples").join(rel);
    p.to_str().expect("utf8 path").to_owned()
}

fn inspect(args: &[&str]) -> (i32, Output) {
    let out = std::process::Command::new(BIN).arg("sbom").arg("inspect").args(args).output().expect("run");
    (out.status.code().expect("exit code"), out)
}

fn json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--format", "json"];
    all.extend(args);
    let (code, out) = inspect(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("no JSON ({e}); exit {code}, stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (code, v)
}

#[test]
fn a_per_file_sbom_exits_0() {
    let syft = sample("anchore-syft/TestEncodeFullJSONDocument.golden");
    let (code, v) = json(&[&syft]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["schema"], "verifier.inspect/v1");
    let i = &v["inputs"][0];
    assert_eq!((i["usefulness"].as_str(), i["digests"]["sha256"].as_u64()), (Some("per-file"), Some(2)));
    assert_eq!(i["format"], "Syft JSON");
}

#[test]
fn weak_and_package_only_exit_1_with_advice() {
    let dpkg_dir = sample("anchore-syft/distroless-deb");
    let trivy = sample("aquasecurity-trivy/centos-7-cyclonedx.json");
    let (code, v) = json(&[&dpkg_dir, &trivy]);
    assert_eq!(code, 1, "{v}");
    let verdicts: Vec<_> =
        v["inputs"].as_array().expect("inputs").iter().map(|i| i["usefulness"].clone()).collect();
    assert_eq!(verdicts, ["weak", "package-only"]);
    assert!(v["inputs"][1]["advice"].as_str().unwrap_or_default().contains("verifier sbom generate"));
    // The table says the same.
    let (code, out) = inspect(&[&trivy]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code, 1);
    assert!(table.contains("package-only") && table.contains("advice:"), "{table}");
}

#[test]
fn an_unreadable_file_is_named_and_exits_2() {
    let syft = sample("anchore-syft/TestEncodeFullJSONDocument.golden");
    let dir = tempfile::tempdir().expect("temp dir");
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "hello world\n").expect("write");
    let junk = junk.to_str().expect("utf8");
    let (code, out) = inspect(&[&syft, junk]);
    assert_eq!(code, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(junk), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("unreadable"));
    let (code, v) = json(&[junk, &syft]);
    assert_eq!(code, 2);
    assert!(v["inputs"][0]["error"].as_str().is_some_and(|e| e.contains(junk)), "{v}");
    assert_eq!(v["inputs"][1]["usefulness"], "per-file", "the other file is still inspected");
}
