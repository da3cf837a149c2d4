//! Root tier: the kernel's per-container exec throttle. A container that
//! execs far past `--exec-limit` is throttled in the kernel; the agent says
//! so (start, then stop once the flood ends) and every exec is accounted
//! for: reported, or counted as suppressed in the stop record.

use std::time::{Duration, Instant};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs, final_stats},
    exclusive,
    image::{self, TOOL},
    require_root,
    runc::Container,
};

const LIMIT: u64 = 50;
const EXECS: u64 = 400;

fn throttles<'a>(records: &'a [Value], state: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == "throttle" && r["state"] == state).collect()
}

#[test]
fn an_exec_flood_is_throttled_and_every_exec_is_accounted_for() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = image::busybox_with_tool(dir.path(), &["sleep", "120"]).expect("bundle");
    let id = format!("vt-throttle-{}", std::process::id());
    let limit = LIMIT.to_string();
    let agent = Agent::start(&["--stats-interval", "0", "--containers-only", "--exec-limit", &limit])
        .expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    let script = format!("i=0; while [ $i -lt {EXECS} ]; do {TOOL}; i=$((i+1)); done");
    let t0 = Instant::now();
    container.exec(&["sh", "-c", &script]).expect("exec flood");
    let flood = t0.elapsed();
    // The stop comes from the agent's sweep once a quiet second passed,
    // not only at shutdown.
    let stopped = loop {
        let so_far = agent.records_so_far();
        if let Some(stop) = throttles(&so_far, "stop").into_iter().find(|r| r["container"]["id"] == id) {
            break stop.clone();
        }
        assert!(t0.elapsed() < flood + Duration::from_secs(5), "no throttle stop record: {so_far:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let records = agent.stop().expect("agent stops");
    drop(container);

    let starts: Vec<_> =
        throttles(&records, "start").into_iter().filter(|r| r["container"]["id"] == id).collect();
    assert!(!starts.is_empty(), "a throttle start for the container: {records:?}");
    assert_eq!(starts[0]["limit_per_sec"], LIMIT, "{}", starts[0]);
    assert_eq!(starts[0]["comm"], "true", "the exec that tripped it: {}", starts[0]);
    let stops: Vec<_> =
        throttles(&records, "stop").into_iter().filter(|r| r["container"]["id"] == id).collect();
    assert_eq!(starts.len(), stops.len(), "every episode ends: {starts:?} {stops:?}");
    assert!(stopped["duration_ms"].as_u64().is_some(), "{stopped}");
    let suppressed: u64 = stops.iter().map(|r| r["suppressed"].as_u64().expect("suppressed")).sum();

    let reported =
        execs(&records).filter(|r| r["container"]["id"] == id && r["filename"] == TOOL).count() as u64;
    // The first window's budget also covers the container's own `sh`.
    assert!(reported >= LIMIT - 2, "the first {LIMIT} of a window go through: {reported}");
    assert!(suppressed > 0, "a {EXECS}-exec flood in {flood:?} went past {LIMIT}/s");
    assert_eq!(reported + suppressed, EXECS, "each exec reported or counted as suppressed");

    let stats = final_stats(&records).expect("stats");
    let k = &stats["kernel"];
    let n = |x: &Value| x.as_u64().expect("number");
    assert_eq!(n(&k["throttled"]), suppressed, "kernel counter and stop records agree: {stats}");
    assert_eq!(
        n(&k["seen"]),
        n(&k["sent"]) + n(&k["dropped"]) + n(&k["filtered"]) + n(&k["fast_path"]) + n(&k["throttled"]),
        "{stats}"
    );
    assert_eq!(stats["user"]["throttle_active"], 0, "{stats}");
}
