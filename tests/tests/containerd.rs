//! Root tier, containerd: a real containerd daemon runs a locally built
//! OCI image (busybox, packed with umoci, imported with `ctr`); the agent
//! attributes the container's execs to it, through its overlay root.

use std::os::unix::fs::MetadataExt as _;

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs, final_stats},
    bundle::Bundle,
    containerd::{self, CtrContainer, OciImage},
    exclusive, require_root,
};

#[test]
fn containerd_exec_is_attributed_with_the_overlay_file_identity() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    containerd::ensure_daemon(&dir.path().join("containerd.log")).expect("containerd runs");
    let bundle = Bundle::busybox(&dir.path().join("src"), &["sleep", "60"]).expect("rootfs");
    let image = OciImage::from_rootfs(&bundle.rootfs(), &dir.path().join("oci"), "v1", &["/bin/sleep", "60"])
        .expect("OCI image");
    let reference = image.import("localhost/verifier-test/busybox").expect("import");
    let id = format!("vt-ctrd-{}", std::process::id());
    let agent = Agent::start(&["--stats-interval", "0"]).expect("agent starts");
    let container = CtrContainer::run(&reference, &id, &[]).expect("ctr run");
    container.exec(&["/bin/ls", "/etc"]).expect("ctr exec");
    let pid = container.pid().expect("pid");
    let in_container =
        std::fs::metadata(format!("/proc/{pid}/root/bin/busybox")).expect("stat via the container root");
    let records = agent.stop().expect("agent stops");
    let ls: Vec<&Value> = execs(&records)
        .filter(|r| r["filename"] == "/bin/ls" && r["container"]["id"] == id.as_str())
        .collect();
    assert_eq!(ls.len(), 1, "one /bin/ls in {id}: {records:?}");
    assert_eq!(ls[0]["container"]["runtime"], "containerd");
    assert_eq!(ls[0]["exe"]["ino"].as_u64(), Some(in_container.ino()), "{}", ls[0]);
    assert_eq!(ls[0]["exe"]["st_dev"].as_u64(), Some(in_container.dev()), "the overlay's device: {}", ls[0]);
    let stats = final_stats(&records).expect("stats");
    assert!(stats["user"]["containers_started"].as_u64() >= Some(1), "{stats}");
    drop(container);
}

#[test]
fn containerd_execs_are_verified_against_the_sbom_store_by_image_digest() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    containerd::ensure_daemon(&dir.path().join("containerd.log")).expect("containerd runs");
    let bundle = Bundle::busybox(&dir.path().join("src"), &["sleep", "60"]).expect("rootfs");
    let image =
        OciImage::from_rootfs(&bundle.rootfs(), &dir.path().join("oci"), "drift", &["/bin/sleep", "60"])
            .expect("OCI image");
    let digest = image.manifest_digest().expect("digest");
    let reference = image.import("localhost/verifier-test/drift").expect("import");
    // The store: one SBOM (made from the same rootfs) under the digest.
    let store = dir.path().join("store");
    let slot = store.join(digest.replace(':', "-"));
    std::fs::create_dir_all(&slot).expect("store dir");
    verifier_tests::image::generate_sbom(&bundle, &slot.join("image.cdx.json"), "cyclonedx-json")
        .expect("sbom");
    let store_arg = store.to_str().expect("utf-8").to_owned();
    let agent = Agent::start(&["--stats-interval", "0", "--containers-only", "--sbom-store", &store_arg])
        .expect("agent starts");
    let id = format!("vt-ctrd-drift-{}", std::process::id());
    let container = CtrContainer::run(&reference, &id, &[]).expect("ctr run");
    container.exec(&["/bin/ls", "/"]).expect("image binary");
    container
        .exec(&["sh", "-c", "mkdir -p /tmp/x && cat /bin/busybox > /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true && /tmp/x/true"])
        .expect("dropped binary");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let records = agent.stop().expect("agent stops");
    let verdict = |f: &str| {
        execs(&records)
            .find(|r| r["container"]["id"] == id.as_str() && r["filename"] == f)
            .map(|r| r["verification"].clone())
            .unwrap_or_else(|| panic!("{f} not reported: {records:?}"))
    };
    // The entrypoint is the first sight of busybox: hashed, `ok`, and the
    // exec of `/bin/ls` (the same file) then goes by the kernel fast path.
    let sleep = verdict("/bin/sleep");
    assert_eq!(sleep["verdict"], "ok", "{sleep}");
    assert_eq!(sleep["path"], "/bin/busybox", "{sleep}");
    let stats = final_stats(&records).expect("stats");
    assert!(stats["kernel"]["fast_path"].as_u64() >= Some(1), "{stats}");
    let dropped = verdict("/tmp/x/true");
    assert_eq!(dropped["verdict"], "unknown-binary", "{dropped}");
    // Its alert says the file sits in the container's writable (overlay
    // upper) layer: created in the container, not shipped.
    let alert = records
        .iter()
        .find(|r| r["type"] == "alert" && r["file"]["path"] == "/tmp/x/true")
        .unwrap_or_else(|| panic!("no alert: {records:?}"));
    assert_eq!(alert["file"]["in_writable_layer"], true, "{alert}");
    assert_eq!(alert["image"]["digest"], digest.as_str(), "{alert}");
    assert_eq!(alert["container"]["runtime"], "containerd", "{alert}");
    drop(container);
}
