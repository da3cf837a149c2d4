//! `verifier check`, driven through the real binary: an SBOM generated for
//! a busybox rootfs checks clean, then each kind of drift is introduced and
//! must be reported with the right exit code.

use std::{
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::Path,
    process::{Command, Output},
};

use serde_json::{Value, json};
use sha2::Digest as _;

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

fn verifier(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run verifier")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn rootfs(dir: &Path) {
    for d in ["bin", "usr/bin", "usr/lib", "etc"] {
        fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox"))
        .expect("copy /bin/busybox (apt-get install busybox-static)");
    symlink("busybox", dir.join("bin/sh")).expect("symlink");
    symlink("/bin/busybox", dir.join("usr/bin/env")).expect("symlink");
    fs::write(dir.join("usr/lib/libdemo.so.1"), b"\x7fELF demo").expect("write");
    fs::write(dir.join("etc/motd"), "hello\n").expect("write");
}

fn exec(path: &Path, content: &[u8]) {
    fs::write(path, content).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Runs `check --format json`; returns (exit code, report).
fn check_json(root: &Path, sboms: &[&Path], extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", s(root), "--format", "json"];
    for sb in sboms {
        args.extend(["--sbom", s(sb)]);
    }
    args.extend(extra);
    let out = verifier(&args);
    let code = out.status.code().expect("exit code");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("no JSON report ({e}); exit {code}, stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (code, report)
}

fn kinds(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| (f["kind"].as_str().expect("kind").to_owned(), f["path"].as_str().expect("path").to_owned()))
        .collect()
}

fn generated_sbom(root: &Path, out: &Path, format: &str) {
    let o = verifier(&["sbom", "generate", s(root), "--format", format, "-o", s(out)]);
    assert!(o.status.success(), "generate: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn round_trip_clean_then_added_modified_missing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    rootfs(&root);
    let sbom = tmp.path().join("sbom.spdx.json");
    generated_sbom(&root, &sbom, "spdx-json");

    let table = verifier(&["check", s(&root), "--sbom", s(&sbom)]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(
        table.status.code(),
        Some(0),
        "clean rootfs must exit 0: {text}{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(text.contains("result: clean"), "{text}");

    let (code, report) = check_json(&root, &[&sbom], &[]);
    assert_eq!(code, 0);
    assert_eq!(report["schema"], "verifier.check/v1");
    assert_eq!(report["summary"]["drift"], false);
    assert!(report["summary"]["ok"].as_u64().expect("ok") >= 4, "busybox, sh, env, libdemo: {report}");

    exec(&root.join("usr/bin/dropped"), b"#!/bin/sh\necho pwned\n");
    let (code, report) = check_json(&root, &[&sbom], &[]);
    assert_eq!(code, 1);
    assert_eq!(kinds(&report), vec![("added".into(), "/usr/bin/dropped".into())]);
    let added = &report["findings"][0];
    let want = format!("sha256:{}", hex::encode(sha2::Sha256::digest(b"#!/bin/sh\necho pwned\n")));
    assert_eq!(added["actual"], want.as_str());

    exec(&root.join("bin/busybox"), b"not busybox any more");
    fs::remove_file(root.join("usr/lib/libdemo.so.1")).expect("rm");
    fs::remove_file(root.join("usr/bin/dropped")).expect("rm");
    let (code, report) = check_json(&root, &[&sbom], &[]);
    assert_eq!(code, 1);
    let k = kinds(&report);
    assert!(k.contains(&("modified".into(), "/bin/busybox".into())), "{k:?}");
    assert!(
        k.contains(&("modified".into(), "/bin/sh".into())),
        "a link is checked by what it reaches: {k:?}"
    );
    assert!(k.contains(&("missing".into(), "/usr/lib/libdemo.so.1".into())), "{k:?}");
    let modified = report["findings"]
        .as_array()
        .expect("f")
        .iter()
        .find(|f| f["path"] == "/bin/busybox")
        .expect("busybox");
    assert_eq!(modified["weak"], false);
    assert!(modified["compared"].as_str().expect("compared").starts_with("sha256:"));
    assert!(
        modified["expected"]
            .as_array()
            .expect("expected")
            .iter()
            .any(|e| e.as_str().unwrap_or("").starts_with("sha256:"))
    );

    let table = verifier(&["check", s(&root), "--sbom", s(&sbom)]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.status.code(), Some(1));
    assert!(
        text.contains("modified") && text.contains("/bin/busybox") && text.contains("result: DRIFT"),
        "{text}"
    );
}

#[test]
fn cyclonedx_sbom_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    rootfs(&root);
    let sbom = tmp.path().join("sbom.cdx.json");
    generated_sbom(&root, &sbom, "cyclonedx-json");
    let (code, report) = check_json(&root, &[&sbom], &[]);
    assert_eq!(code, 0, "{report}");
    exec(&root.join("bin/new"), b"\x7fELF new");
    let (code, report) = check_json(&root, &[&sbom], &[]);
    assert_eq!((code, kinds(&report)), (1, vec![("added".into(), "/bin/new".into())]));
}

#[test]
fn symlinks_never_leave_the_rootfs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    rootfs(&root);
    let sbom = tmp.path().join("sbom.spdx.json");
    generated_sbom(&root, &sbom, "spdx-json");
    // Re-point /bin/sh far "above" the root: inside the rootfs this is
    // /etc/motd, never the host's file of that name.
    fs::remove_file(root.join("bin/sh")).expect("rm");
    symlink("../../../../../../etc/motd", root.join("bin/sh")).expect("symlink");
    let (code, report) = check_json(&root, &[&sbom], &[]);
    assert_eq!(code, 1);
    let sh = report["findings"]
        .as_array()
        .expect("f")
        .iter()
        .find(|f| f["path"] == "/bin/sh")
        .expect("sh finding");
    assert_eq!(sh["kind"], "modified");
    assert_eq!(sh["symlink_target"], "../../../../../../etc/motd");
    let motd = format!("sha256:{}", hex::encode(sha2::Sha256::digest(b"hello\n")));
    assert_eq!(sh["actual"], motd.as_str(), "hashed the rootfs' /etc/motd");
}

#[test]
fn hostile_names_are_reported_not_altered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    rootfs(&root);
    exec(&root.join("bin/new\nline"), b"\x7fELF newline");
    let sbom = tmp.path().join("sbom.spdx.json");
    generated_sbom(&root, &sbom, "spdx-json");
    let (code, report) = check_json(&root, &[&sbom], &[]);
    assert_eq!(code, 0, "a newline in a name round-trips through the SBOM: {report}");
    // A name SBOM JSON cannot carry is left out by generate, so check finds it.
    let bad = root.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"bin/evil\xff"));
    exec(&bad, b"\x7fELF evil");
    let (code, report) = check_json(&root, &[&sbom], &[]);
    assert_eq!(code, 1);
    let f = &report["findings"][0];
    assert_eq!(
        (f["kind"].as_str(), f["path"].as_str(), f["path_not_utf8"].as_bool()),
        (Some("added"), Some("/bin/evil\\xff"), Some(true))
    );
}

fn spdx_with(files: Value) -> Value {
    json!({"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": "t",
        "documentNamespace": "https://example.invalid/t", "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: t"]},
        "files": files})
}

#[test]
fn weak_digests_prefixes_and_unusable_hashes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    rootfs(&root);
    let bb = fs::read(root.join("bin/busybox")).expect("read");
    // SHA-1 only, paths under the directory that was scanned.
    let sbom = tmp.path().join("weak.spdx.json");
    let doc = spdx_with(json!([
        {"fileName": "/scan/root/bin/busybox", "SPDXID": "SPDXRef-F1", "checksums": [{"algorithm": "SHA1", "checksumValue": hex::encode(sha1::Sha1::digest(&bb))}]},
        {"fileName": "/scan/root/usr/lib/libdemo.so.1", "SPDXID": "SPDXRef-F2", "checksums": [{"algorithm": "SHA1", "checksumValue": hex::encode(sha1::Sha1::digest(b"other"))}]},
        {"fileName": "/scan/root/etc/motd", "SPDXID": "SPDXRef-F3", "checksums": [{"algorithm": "SHA1", "checksumValue": "0000000000000000000000000000000000000000"}]}
    ]));
    fs::write(&sbom, serde_json::to_vec(&doc).expect("json")).expect("write");
    exec(&root.join("etc/motd"), b"now executable\n");
    let (code, report) = check_json(&root, &[&sbom], &["--root-prefix", "/scan/root"]);
    assert_eq!(code, 1, "{report}");
    let f = |p: &str| {
        report["findings"].as_array().expect("f").iter().find(|f| f["path"] == p).cloned().expect(p)
    };
    assert_eq!(report["summary"]["ok_weak"], 1, "busybox verified by SHA-1 only: {report}");
    let lib = f("/usr/lib/libdemo.so.1");
    assert_eq!((lib["kind"].as_str(), lib["weak"].as_bool()), (Some("modified"), Some(true)));
    assert!(lib["compared"].as_str().expect("compared").starts_with("sha1:"));
    assert_eq!(f("/etc/motd")["kind"], "no-hash", "an all-zero placeholder is no hash, never a pass");
}

#[test]
fn several_sboms_are_merged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    rootfs(&root);
    let full = tmp.path().join("full.spdx.json");
    generated_sbom(&root, &full, "spdx-json");
    exec(&root.join("usr/bin/tool"), b"\x7fELF tool");
    let extra = tmp.path().join("extra.spdx.json");
    let doc = spdx_with(json!([{"fileName": "./usr/bin/tool", "SPDXID": "SPDXRef-T", "checksums": [
        {"algorithm": "SHA256", "checksumValue": hex::encode(sha2::Sha256::digest(b"\x7fELF tool"))}]}]));
    fs::write(&extra, serde_json::to_vec(&doc).expect("json")).expect("write");
    let (code, _) = check_json(&root, &[&full], &[]);
    assert_eq!(code, 1);
    let (code, report) = check_json(&root, &[&full, &extra], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["sboms"].as_array().expect("sboms").len(), 2);
}

#[test]
fn errors_exit_2_and_name_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    rootfs(&root);
    let sbom = tmp.path().join("sbom.spdx.json");
    generated_sbom(&root, &sbom, "spdx-json");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![tmp.path().join("nope").display().to_string(), "--sbom".into(), s(&sbom).into()], "nope"),
        (
            vec![s(&root).into(), "--sbom".into(), tmp.path().join("missing.json").display().to_string()],
            "missing.json",
        ),
        (vec![s(&sbom).into(), "--sbom".into(), s(&sbom).into()], "not a directory"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["check".to_owned()];
        all.extend(args);
        let out = Command::new(BIN).args(&all).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(stderr.contains(needle), "{all:?}: stderr lacks {needle:?}: {stderr}");
    }
    let broken = tmp.path().join("broken.json");
    let text = fs::read_to_string(&sbom).expect("read");
    fs::write(&broken, &text[..text.len() / 2]).expect("write");
    let out = verifier(&["check", s(&root), "--sbom", s(&broken)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.json"));
}

#[test]
fn pre_merge_paths_of_a_dpkg_database_match_a_merged_usr_rootfs_and_only_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tool = b"#!/bin/sh\necho tool\n";
    let md5 = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(tool))
    };
    let sums = tmp.path().join("tool.md5sums");
    fs::write(&sums, format!("{md5}  bin/tool\n")).expect("write");
    // Merged: /bin -> usr/bin, so the listed /bin/tool is /usr/bin/tool.
    let merged = tmp.path().join("merged");
    fs::create_dir_all(merged.join("usr/bin")).expect("mkdir");
    symlink("usr/bin", merged.join("bin")).expect("symlink");
    exec(&merged.join("usr/bin/tool"), tool);
    let (code, report) = check_json(&merged, &[&sums], &[]);
    assert_eq!((code, kinds(&report)), (0, vec![]), "{report}");
    // Not merged: /bin is a directory without the tool; /usr/bin/tool is
    // another file, never taken for the listed one on its name alone.
    let split = tmp.path().join("split");
    fs::create_dir_all(split.join("usr/bin")).expect("mkdir");
    fs::create_dir_all(split.join("bin")).expect("mkdir");
    exec(&split.join("usr/bin/tool"), tool);
    let (code, report) = check_json(&split, &[&sums], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        kinds(&report),
        [("missing".to_owned(), "/bin/tool".to_owned()), ("added".to_owned(), "/usr/bin/tool".to_owned())]
    );
}
