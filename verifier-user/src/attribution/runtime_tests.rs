//! runc state and bundles, read from real files.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::*;

/// A runc state root with one container whose bundle has `annotations`
/// and, optionally, a `umoci.json`.
pub(crate) fn runc_state(
    dir: &Path,
    id: &str,
    annotations: serde_json::Value,
    umoci_digest: Option<&str>,
) -> PathBuf {
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
fn pod_labels_leave_out_what_kubelet_and_containerd_add() {
    let sandbox: std::collections::HashMap<String, String> = [
        ("app", "web"),
        ("tier", "front"),
        ("io.kubernetes.pod.name", "web-1"),
        ("io.kubernetes.pod.namespace", "shop"),
        ("io.cri-containerd.kind", "sandbox"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let labels = pod_labels(&sandbox);
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        [("app".into(), "web".into()), ("tier".into(), "front".into())]
    );
}

#[test]
fn cri_bundles_name_their_sandbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state =
        runc_state(dir.path(), "c2", serde_json::json!({"io.kubernetes.cri.sandbox-id": "sb1"}), None);
    let meta = runc_meta(&fs::read(state.join("c2/state.json")).expect("read")).expect("meta");
    assert_eq!(meta.sandbox_id.as_deref(), Some("sb1"));
    assert_eq!(meta.pod_labels, None, "runc alone does not know pod labels");
}
