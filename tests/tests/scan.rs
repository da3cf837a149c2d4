//! Root tier: processes that were running before the agent started are
//! judged when it starts. A runc container runs a binary dropped into its
//! root filesystem (not in the SBOM) next to image binaries; the agent,
//! started afterwards, reports the dropped one `unknown-binary` (high)
//! with its path and SHA-256, and the image's binaries raise nothing.

use std::time::Duration;

use verifier_tests::{
    dropped::{Image, alerts, unique, wait_for, write_dropped},
    exclusive, require_root,
    runc::Container,
};

const DROPPED: &str = "/opt/drop/sleep";

#[test]
fn a_dropped_binary_running_before_the_agent_started_is_reported() {
    require_root!();
    let _lock = exclusive();
    let image = Image::new(&["sh", "-c", &format!("{DROPPED} 120 & exec /bin/sleep 120")]).expect("image");
    // Dropped after the SBOM was made: the image never listed it.
    let sha = write_dropped(&image.bundle.rootfs(), DROPPED, 0).expect("drop");
    let id = unique("vt-scan");
    let c = Container::run(&image.bundle.dir, &id).expect("runc run");
    let init = c.pid().expect("pid");
    // Both processes run before the agent exists.
    let t = std::time::Instant::now();
    while !std::fs::read_dir("/proc").expect("proc").flatten().any(|e| {
        std::fs::read_link(e.path().join("exe")).is_ok_and(|l| l.as_os_str() == DROPPED)
            && std::fs::read_to_string(e.path().join("status"))
                .is_ok_and(|s| s.contains(&format!("PPid:\t{init}\n")))
    }) {
        assert!(t.elapsed() < Duration::from_secs(10), "the dropped binary never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let agent = image.agent(&id, &[]).expect("agent");
    let id2 = id.clone();
    let record = wait_for(&agent, Duration::from_secs(10), move |r| {
        r["type"] == "exec"
            && r["container"]["id"] == id2.as_str()
            && r["filename"] == DROPPED
            && r["verification"]["verdict"].is_string()
    })
    .expect("the dropped binary is judged");
    // Give the image's own processes their verdicts too.
    let id3 = id.clone();
    let ok = wait_for(&agent, Duration::from_secs(10), move |r| {
        r["type"] == "exec" && r["container"]["id"] == id3.as_str() && r["verification"]["verdict"] == "ok"
    })
    .expect("an image binary is judged");
    let records = agent.stop().expect("agent stops");
    assert_eq!(record["origin"], "scan", "{record}");
    assert_eq!(ok["origin"], "scan", "{ok}");
    assert_eq!(ok["verification"]["path"], "/bin/busybox", "{ok}");
    let v = &record["verification"];
    assert_eq!(v["verdict"], "unknown-binary", "{record}");
    assert_eq!(v["path"], DROPPED, "{record}");
    assert_eq!(v["sha256"], sha.as_str(), "{record}");
    let raised = alerts(&records, &id);
    assert_eq!(raised.len(), 1, "only the dropped binary raises: {raised:#?}");
    let a = raised[0];
    assert_eq!(
        (a["verdict"].as_str(), a["severity"].as_str()),
        (Some("unknown-binary"), Some("high")),
        "{a}"
    );
    assert_eq!(
        (a["file"]["path"].as_str(), a["file"]["sha256"].as_str()),
        (Some(DROPPED), Some(sha.as_str()))
    );
    let stats = verifier_tests::agent::final_stats(&records).expect("stats");
    assert!(stats["user"]["scanned_processes"].as_u64().is_some_and(|n| n >= 2), "{stats}");
    assert_eq!(stats["user"]["scan_skipped"], 0, "{stats}");
}
