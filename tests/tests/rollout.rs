//! A DaemonSet rollout on one node: the old agent stops (SIGTERM), the new
//! one starts, both appending to the same alert file (the hostPath). What
//! a consumer sees, asserted here and written down in docs/deploy.md:
//! - the old agent's alert stays in the file; the new agent appends, never
//!   truncates;
//! - a drifted process still running is reported again by the new agent's
//!   start-up scan (`origin: scan`), with the same `alert_id` (it is
//!   derived from image, path, digest and verdict, not from the agent), so
//!   consumers can join the two;
//! - a drifted binary that ran and exited while no agent ran is not seen
//!   (the gap is the restart time), and its next run is alerted as new.
//!
//! The two agents are two copies of the binary under test (the new one at
//! another path, as an upgraded package puts it); nothing persists between
//! them but the alert file: dedup, the hash cache and the kernel's
//! verified-file map live and die with each agent.

use std::time::Duration;

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, verifier_bin},
    dropped::{Image, unique, wait_for, write_dropped},
    exclusive, require_root,
    runc::Container,
};

const LONG: &str = "/opt/drop/sleep";
const GAP: &str = "/opt/drop/true";

fn alert_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|a| a["type"] == "alert")
        .collect()
}

#[test]
fn a_rollout_keeps_alerts_and_reports_running_drift_again_under_the_same_id() {
    require_root!();
    let _lock = exclusive();
    let image = Image::new(&["/bin/sleep", "120"]).expect("image");
    write_dropped(&image.bundle.rootfs(), LONG, 0).expect("drop");
    write_dropped(&image.bundle.rootfs(), GAP, 7).expect("drop");
    let id = unique("vt-rollout");
    let c = Container::run(&image.bundle.dir, &id).expect("runc run");
    let dir = tempfile::tempdir().expect("tempdir");
    let alerts = dir.path().join("alerts.jsonl");
    let next = dir.path().join("verifier-next");
    std::fs::copy(verifier_bin(), &next).expect("the next version's binary");
    let rule = format!("{id}={}", image.sbom.display());
    let args = [
        "--stats-interval",
        "0",
        "--containers-only",
        "--sbom",
        &rule,
        "--alert-file",
        alerts.to_str().expect("utf-8"),
    ];
    let judged = |f: &'static str| {
        let id = id.clone();
        move |r: &Value| {
            r["type"] == "exec"
                && r["container"]["id"] == id.as_str()
                && r["filename"] == f
                && r["verification"]["verdict"].is_string()
        }
    };

    let old = Agent::start(&args).expect("old agent");
    c.exec(&["sh", "-c", &format!("{LONG} 120 >/dev/null 2>&1 &")]).expect("long-running drift");
    wait_for(&old, Duration::from_secs(10), judged(LONG)).expect("old agent judges it");
    std::thread::sleep(Duration::from_millis(300));
    old.stop().expect("old agent stops on SIGTERM");
    let before = alert_lines(&alerts);
    assert_eq!(before.len(), 1, "{before:#?}");

    // The gap: no agent runs.
    c.exec(&[GAP]).expect("drift while no agent runs");

    let new = Agent::start_bin(&next, &args).expect("new agent");
    let rescanned =
        wait_for(&new, Duration::from_secs(10), judged(LONG)).expect("new agent rescans the running drift");
    assert_eq!(rescanned["origin"], "scan", "{rescanned}");
    c.exec(&[GAP]).expect("the gap's binary again");
    wait_for(&new, Duration::from_secs(10), judged(GAP)).expect("new agent judges it");
    std::thread::sleep(Duration::from_millis(300));
    let records = new.stop().expect("new agent stops");
    drop(c);

    let after = alert_lines(&alerts);
    assert_eq!(after[0], before[0], "the old agent's alert is kept as written");
    let long: Vec<&Value> = after.iter().filter(|a| a["file"]["path"] == LONG).collect();
    assert_eq!(long.len(), 2, "one alert per agent for the running drift: {after:#?}");
    assert_eq!(long[0]["alert_id"], long[1]["alert_id"], "the same finding keeps its id across agents");
    let gap: Vec<&Value> = after.iter().filter(|a| a["file"]["path"] == GAP).collect();
    assert_eq!(gap.len(), 1, "the gap's run is not seen, its next run is: {after:#?}");
    let gap_execs = records.iter().filter(|r| judged(GAP)(r)).count();
    assert_eq!(gap_execs, 1, "the new agent saw only the run after it started");
}
