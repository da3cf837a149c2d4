//! Container -> context on real files: a rule gives one shared manifest
//! and a root, the store by digest, a broken SBOM, runtime state not there yet.

use std::{collections::HashSet, fs};

use super::*;
use crate::{
    attribution::{Runtime, resolver::StateRoot, runtime::tests::runc_state},
    baseline::{
        BaselineSource,
        rules::{Rules, SbomRule},
        store::Store,
    },
};

fn spdx(path_in_image: &str) -> String {
    crate::verify::test_sbom::spdx_text(&[(path_in_image, &"ab".repeat(32))])
}

fn container(id: &str, runtime: Runtime) -> ContainerRef {
    ContainerRef { id: id.into(), runtime, pod_uid: None, cgroup: format!("/{id}") }
}

fn source(dir: &Path, rules: Vec<SbomRule>, store: Option<PathBuf>) -> Source {
    let mut sources: Vec<Box<dyn BaselineSource>> = vec![Box::new(Rules(rules))];
    sources.extend(store.map(|s| Box::new(Store(s)) as Box<dyn BaselineSource>));
    Source::new(SourceConfig {
        runtimes: Runtimes {
            state_roots: vec![StateRoot {
                dir: dir.join("state"),
                runtime: Runtime::Runc,
                namespaced: false,
            }],
            containerd: None,
            containerd_state: dir.join("no-containerd"),
        },
        baselines: Baselines::new(sources),
        proc_root: "/proc".into(),
    })
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
        Resolved::NoBaseline(_, why) | Resolved::Refused(_, why) | Resolved::Failed(why) => panic!("{why}"),
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

#[test]
fn a_manifest_key_is_never_reused_for_another_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    runc_state(dir.path(), "c1", serde_json::json!({"io.verifier.image.name": "demo:1"}), None);
    let sbom = dir.path().join("demo.spdx.json");
    let src = source(dir.path(), vec![SbomRule { pattern: "demo:*".into(), sbom: sbom.clone() }], None);
    let mut keys = HashSet::new();
    for i in 0..40 {
        // Each version of the SBOM is another manifest; the old one is freed
        // as soon as its context is dropped, and its key must not come back.
        fs::write(&sbom, spdx(&format!("/bin/tool-{i}"))).expect("sbom");
        let filetime = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i);
        fs::File::options().write(true).open(&sbom).and_then(|f| f.set_modified(filetime)).expect("mtime");
        match src.resolve(&container("c1", Runtime::Runc), None).expect("resolved") {
            Resolved::Verify(ctx, _) => {
                assert!(keys.insert(ctx.key), "key {} reused at version {i}", ctx.key)
            }
            Resolved::NoBaseline(_, why) | Resolved::Refused(_, why) | Resolved::Failed(why) => {
                panic!("{why}")
            }
        }
    }
}
