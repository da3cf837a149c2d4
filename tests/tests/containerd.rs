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
