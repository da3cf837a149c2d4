//! Root tier, end to end: the policy file decides what drift in real runc
//! containers leads to. An `observe` container's dropped binary gives an
//! exec record with the verdict and no alert; an `alert` container's gives
//! an alert carrying the rule; a dropped file excepted by its digest is
//! recorded as excepted and not alerted on. Then the file is edited while
//! the agent runs: a broken edit gives a warning and keeps the last good
//! policy; the fix gives a `policy` record and its new mode applies. Every
//! record of the run matches its schema in docs/schemas/.

use std::{
    io::{Read as _, Write as _},
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;
use sha2::Digest as _;
use verifier_tests::{
    agent::{Agent, final_stats},
    bundle::Bundle,
    exclusive, image, require_root,
    runc::Container,
};

/// Drops `/tmp/<name>/true` (busybox plus a marker line, so each has its
/// own digest; named like an applet so busybox runs it) in the container
/// and runs it.
fn drop_and_run(c: &Container, name: &str) {
    let f = dropped(name);
    let script = format!(
        "mkdir -p /tmp/{name} && cat /bin/busybox > {f} && echo {name} >> {f} && chmod +x {f} && {f}"
    );
    c.exec(&["sh", "-c", &script]).expect("drop and run");
}

/// The SHA-256 [`drop_and_run`] gives `name` in `bundle`.
fn dropped_sha(bundle: &Bundle, name: &str) -> String {
    let mut bytes = std::fs::read(bundle.rootfs().join("bin/busybox")).expect("busybox");
    bytes.extend_from_slice(format!("{name}\n").as_bytes());
    hex_of(&sha2::Sha256::digest(&bytes))
}

fn dropped(name: &str) -> String {
    format!("/tmp/{name}/true")
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Replaces the policy as an editor does (write aside, rename over).
fn write_policy(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write policy");
    std::fs::rename(&tmp, path).expect("rename policy");
}

fn policy(quiet_mode: &str, excused_sha: &str) -> String {
    format!(
        r#"version = 1
[[rule]]
name = "quiet"
mode = "{quiet_mode}"
[rule.match]
containers = ["observed"]

[[rule]]
name = "loud"
mode = "alert"
[rule.match]
containers = ["alerted"]

[[rule]]
name = "excused"
mode = "alert"
[rule.match]
containers = ["excused"]
[[rule.exception]]
sha256 = "{excused_sha}"
reason = "the test's known tool"
"#
    )
}

/// Waits up to 10 s for a record `pred` accepts.
fn wait_for(agent: &Agent, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = agent.records_so_far().into_iter().find(|r| pred(r)) {
            return r;
        }
        assert!(Instant::now() < until, "no {what} within 10 s: {:#?}", agent.records_so_far());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exec_of<'a>(records: &'a [Value], path: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["type"] == "exec" && r["filename"] == path)
        .unwrap_or_else(|| panic!("no exec record of {path}"))
}

fn alerts_for<'a>(records: &'a [Value], path: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == "alert" && r["file"]["path"] == path).collect()
}

fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn the_policy_decides_alerts_and_follows_edits() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = std::process::id();
    let mut bundles = Vec::new();
    for name in ["observed", "alerted", "excused"] {
        let b = image::busybox_with_tool(&dir.path().join(name), &["sleep", "120"]).expect("bundle");
        image::annotate(&b, &[("io.verifier.container.name", name)]).expect("annotate");
        bundles.push(b);
    }
    let sbom =
        image::generate_sbom(&bundles[0], &dir.path().join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let rule = format!("vt-policy-{pid}-*={}", sbom.display());
    let excused_sha = dropped_sha(&bundles[2], "known");
    let policy_path = dir.path().join("policy.toml");
    write_policy(&policy_path, &policy("observe", &excused_sha));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let agent = Agent::start(&[
        "--stats-interval",
        "0",
        "--containers-only",
        "--sbom",
        &rule,
        "--policy",
        policy_path.to_str().expect("utf-8"),
        "--metrics-addr",
        &addr,
    ])
    .expect("agent starts");
    let start = wait_for(&agent, "policy record", |r| r["type"] == "policy");
    assert_eq!((start["event"].as_str(), start["rules"].as_u64()), (Some("start"), Some(3)), "{start}");

    let containers: Vec<Container> = ["observed", "alerted", "excused"]
        .iter()
        .zip(&bundles)
        .map(|(n, b)| Container::run(&b.dir, &format!("vt-policy-{pid}-{n}")).expect("runc run"))
        .collect();
    drop_and_run(&containers[0], "one");
    drop_and_run(&containers[1], "two");
    drop_and_run(&containers[2], "known");
    wait_for(&agent, "the excepted exec", |r| {
        r["type"] == "exec" && r["filename"] == dropped("known").as_str()
    });

    // A broken edit: a warning, the last good policy stays (observe).
    write_policy(&policy_path, &policy("observed-ish", &excused_sha));
    let warning = wait_for(&agent, "reload warning", |r| r["code"] == "policy-reload-failed");
    assert!(
        warning["message"].as_str().is_some_and(|m| m.contains("4:8") && m.contains("last good policy")),
        "{warning}"
    );
    drop_and_run(&containers[0], "three");
    wait_for(&agent, "exec under the kept policy", |r| {
        r["type"] == "exec" && r["filename"] == dropped("three").as_str()
    });
    assert!(metrics(port).contains("verifier_policy_reload_errors_total 1"), "{}", metrics(port));

    // The fix: a `policy` record, and its mode applies.
    write_policy(&policy_path, &policy("alert", &excused_sha));
    let reload = wait_for(&agent, "reload record", |r| r["type"] == "policy" && r["event"] == "reload");
    assert_ne!(reload["sha256"], start["sha256"]);
    drop_and_run(&containers[0], "four");
    wait_for(&agent, "alert after the fix", |r| {
        r["type"] == "alert" && r["file"]["path"] == dropped("four").as_str()
    });
    let records = agent.stop().expect("agent stops");
    drop(containers);

    let observed = exec_of(&records, &dropped("one"));
    assert_eq!(observed["verification"]["verdict"], "unknown-binary", "{observed}");
    assert_eq!(
        observed["policy"],
        serde_json::json!({"rule": "quiet", "mode": "observe", "action": "observe"})
    );
    assert!(alerts_for(&records, &dropped("one")).is_empty(), "observe: no alert");
    assert!(alerts_for(&records, &dropped("three")).is_empty(), "the broken edit kept observe");
    assert_eq!(exec_of(&records, &dropped("three"))["policy"]["rule"], "quiet");

    let alerted = alerts_for(&records, &dropped("two"));
    assert_eq!(alerted.len(), 1, "alert mode: {alerted:?}");
    assert_eq!(alerted[0]["policy"], serde_json::json!({"rule": "loud", "mode": "alert", "action": "alert"}));

    let excused = exec_of(&records, &dropped("known"));
    assert_eq!(excused["verification"]["sha256"], excused_sha.as_str(), "{excused}");
    assert_eq!(excused["exception"]["rule"], "excused", "{excused}");
    assert_eq!(excused["exception"]["reason"], "the test's known tool");
    assert_eq!(excused["policy"]["action"], "observe");
    assert!(alerts_for(&records, &dropped("known")).is_empty(), "excepted: no alert");

    let four = alerts_for(&records, &dropped("four"));
    assert_eq!(four.first().map(|a| a["policy"]["rule"].clone()), Some("quiet".into()));
    // Every record of the run matches its schema: the policy records, the
    // reload warning (with `file`), exec records and alerts with `policy`
    // and `exception`, the stats' `policy` counters.
    let said = verifier_tests::schemas::validate(&records.iter().collect::<Vec<_>>(), dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(said.contains("checked policy: 2") && said.contains("checked warning: 1"), "{said}");
    let stats = &final_stats(&records).expect("stats")["policy"];
    assert_eq!((stats["reloads"].as_u64(), stats["reload_errors"].as_u64()), (Some(1), Some(1)), "{stats}");
    assert_eq!((stats["observed"].as_u64(), stats["excepted"].as_u64()), (Some(2), Some(1)), "{stats}");
}
