//! Rules, globs, runc state and bundles, the SBOM store, and one shared
//! manifest per SBOM, on real files.

use std::fs;

use super::*;

fn spdx(path_in_image: &str) -> String {
    serde_json::json!({
        "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "t", "dataLicense": "CC0-1.0",
        "documentNamespace": "https://example.com/t",
        "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: test"]},
        "files": [{"SPDXID": "SPDXRef-f", "fileName": path_in_image,
                   "checksums": [{"algorithm": "SHA256", "checksumValue": "ab".repeat(32)}]}]
    })
    .to_string()
}

fn container(id: &str, runtime: Runtime) -> ContainerRef {
    ContainerRef { id: id.into(), runtime, pod_uid: None, cgroup: format!("/{id}") }
}

/// A runc state root with one container whose bundle has `annotations`
/// and, optionally, a `umoci.json`.
fn runc_state(dir: &Path, id: &str, annotations: serde_json::Value, umoci_digest: Option<&str>) -> PathBuf {
    let bundle = dir.join("bundle");
    fs::create_dir_all(bundle.join("rootfs/bin")).expect("mkdir");
    fs::write(bundle.join("config.json"), serde_json::json!({"annotations": annotations}).to_string())
        .expect("config");
    if let Some(d) = umoci_digest {
        fs::write(bundle.join("umoci.json"), serde_json::json!({"manifest": {"digest": d}}).to_string())
            .expect("umoci");
    }
    let state = dir.join("state").join(id);
    fs::create_dir_all(&state).expect("mkdir");
    let json = serde_json::json!({"id": id, "init_process_pid": 4242, "config": {
        "rootfs": bundle.join("rootfs"), "labels": [format!("bundle={}", bundle.display())]}});
    fs::write(state.join("state.json"), json.to_string()).expect("state");
    dir.join("state")
}

fn source(dir: &Path, rules: Vec<SbomRule>, store: Option<PathBuf>) -> Source {
    Source::new(SourceConfig {
        rules,
        rules_file: None,
        store,
        state_roots: vec![StateRoot { dir: dir.join("state"), runtime: Runtime::Runc, namespaced: false }],
        proc_root: "/proc".into(),
        containerd: None,
        containerd_state: dir.join("no-containerd"),
    })
}

#[test]
fn rules_parse_and_say_what_is_wrong() {
    let r: SbomRule = "registry.example/app:*=sboms/app.json".parse().expect("rule");
    assert_eq!(
        (r.pattern.as_str(), r.sbom.as_path()),
        ("registry.example/app:*", Path::new("sboms/app.json"))
    );
    assert!("no-equals".parse::<SbomRule>().expect_err("invalid").contains("PATTERN=SBOM-FILE"));
    assert!("=x".parse::<SbomRule>().is_err());
}

#[test]
fn globs_match_like_a_shell_star() {
    assert!(glob_match("app:*", "app:1.2"));
    assert!(glob_match("*", ""));
    assert!(glob_match("a*b*c", "aXXbYYc"));
    assert!(glob_match("exact", "exact"));
    assert!(!glob_match("exact", "exact2"));
    assert!(!glob_match("a*b", "ab-not"));
    assert!(!glob_match("ab*ba", "aba"), "the two ends must not overlap");
}

#[test]
fn runc_bundles_name_their_image_by_annotation_or_umoci() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = runc_state(
        dir.path(),
        "c1",
        serde_json::json!({"io.verifier.image.name": "demo:1"}),
        Some("sha256:aa"),
    );
    let meta = runc_meta(&fs::read(state.join("c1/state.json")).expect("read")).expect("meta");
    assert_eq!(meta.image_name.as_deref(), Some("demo:1"));
    assert_eq!(meta.image_digest.as_deref(), Some("sha256:aa"), "from umoci.json");
    assert_eq!(meta.rootfs, Some(dir.path().join("bundle/rootfs")));
    assert_eq!(meta.init_pid, Some(4242), "the init pid keeps the root reachable after a short exec");
    assert!(runc_meta(b"{not json").expect_err("bad").contains("state.json"));
}

#[test]
fn a_rule_gives_a_shared_manifest_and_a_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    runc_state(dir.path(), "c1", serde_json::json!({"io.verifier.image.name": "demo:1"}), None);
    let sbom = dir.path().join("demo.spdx.json");
    fs::write(&sbom, spdx("/bin/busybox")).expect("sbom");
    let src = source(dir.path(), vec![SbomRule { pattern: "demo:*".into(), sbom: sbom.clone() }], None);
    let key = |r: Resolved| match r {
        Resolved::Verify(ctx, info) => {
            assert_eq!(info.sbom_sources, vec![sbom.display().to_string()]);
            assert_eq!(ctx.manifest.len(), 1);
            ctx.key
        }
        Resolved::NoBaseline(_, why) | Resolved::Failed(why) => panic!("{why}"),
    };
    let first = key(src.resolve(&container("c1", Runtime::Runc), None).expect("resolved"));
    let again = key(src.resolve(&container("c1", Runtime::Runc), None).expect("resolved"));
    assert_eq!(first, again, "one parsed manifest for every container of the image");
    // Rewritten: parsed again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(&sbom, spdx("/bin/other")).expect("rewrite");
    assert_ne!(key(src.resolve(&container("c1", Runtime::Runc), None).expect("resolved")), first);
}

#[test]
fn the_store_is_keyed_by_digest_and_unknown_images_say_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    runc_state(dir.path(), "c1", serde_json::json!({"io.verifier.image.digest": "sha256:beef"}), None);
    let store = dir.path().join("store");
    fs::create_dir_all(store.join("sha256-beef")).expect("mkdir");
    fs::write(store.join("sha256-beef/a.spdx.json"), spdx("/bin/a")).expect("a");
    fs::write(store.join("sha256-beef/b.spdx.json"), spdx("/bin/b")).expect("b");
    let src = source(dir.path(), Vec::new(), Some(store.clone()));
    match src.resolve(&container("c1", Runtime::Runc), None).expect("resolved") {
        Resolved::Verify(ctx, _) => {
            assert!(ctx.manifest.get("/bin/a").is_some() && ctx.manifest.get("/bin/b").is_some(), "merged");
        }
        _ => panic!("store not used"),
    }
    fs::remove_dir_all(store.join("sha256-beef")).expect("rm");
    match src.resolve(&container("c1", Runtime::Runc), None).expect("resolved") {
        Resolved::NoBaseline(_, why) => assert!(why.contains("--sbom"), "{why}"),
        _ => panic!("expected no baseline"),
    }
}

#[test]
fn a_broken_sbom_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    runc_state(dir.path(), "c1", serde_json::json!({}), None);
    let sbom = dir.path().join("broken.json");
    fs::write(&sbom, "{\"spdxVersion\": ").expect("write");
    let src = source(dir.path(), vec![SbomRule { pattern: "c1".into(), sbom: sbom.clone() }], None);
    match src.resolve(&container("c1", Runtime::Runc), None).expect("resolved") {
        Resolved::Failed(why) => assert!(why.contains("broken.json"), "{why}"),
        _ => panic!("a broken SBOM must not verify"),
    }
}

#[test]
fn missing_runtime_state_is_not_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), Vec::new(), None);
    let err = src.resolve(&container("ghost", Runtime::Runc), None).err().expect("not yet");
    assert!(err.0.contains("ghost"));
}
