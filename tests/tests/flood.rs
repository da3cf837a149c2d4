//! Root tier: an exec flood never hides a new file. A container past
//! `--exec-limit` has its repeats counted away in the kernel, but the first
//! exec of every distinct file in a window is still sent and judged; past
//! the kernel's bound of new files per window, the rest are counted and
//! alerted as `exec-flood`, with the same count as the throttle stop record.
//!
//! The flood is of a dropped copy of busybox, not of `/bin/true`: an image
//! binary verified `ok` is answered by the kernel fast path, which never
//! counts toward the limit.

use std::time::{Duration, Instant};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs, final_stats},
    exclusive,
    image::{self},
    require_root,
    runc::Container,
};

const LIMIT: &str = "50";

/// A verifying agent at `--exec-limit 50` and a running container.
struct Setup {
    _dir: tempfile::TempDir,
    agent: Agent,
    container: Container,
    id: String,
}

fn setup(name: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = image::busybox_with_tool(dir.path(), &["sleep", "120"]).expect("bundle");
    let sbom = image::generate_sbom(&bundle, &dir.path().join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let id = format!("vt-flood-{name}-{}", std::process::id());
    let rule = format!("{id}={}", sbom.display());
    let agent =
        Agent::start(&["--stats-interval", "0", "--containers-only", "--sbom", &rule, "--exec-limit", LIMIT])
            .expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    Setup { _dir: dir, agent, container, id }
}

fn of<'a>(records: &'a [Value], id: &'a str) -> impl Iterator<Item = &'a Value> {
    records.iter().filter(move |r| r["container"]["id"] == id)
}

/// Waits for the container's throttle stop record (a quiet second after
/// the flood).
fn wait_for_stop(agent: &Agent, id: &str, since: Instant) -> Value {
    loop {
        let so_far = agent.records_so_far();
        if let Some(stop) = of(&so_far, id).find(|r| r["type"] == "throttle" && r["state"] == "stop") {
            return stop.clone();
        }
        assert!(since.elapsed() < Duration::from_secs(60), "no throttle stop record");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_every_exec_accounted_for(records: &[Value]) {
    let stats = final_stats(records).expect("stats");
    let k = &stats["kernel"];
    let n = |x: &Value| x.as_u64().expect("number");
    assert_eq!(
        n(&k["seen"]),
        n(&k["sent"]) + n(&k["dropped"]) + n(&k["filtered"]) + n(&k["fast_path"]) + n(&k["throttled"]),
        "{stats}"
    );
    assert_eq!(n(&k["dropped"]), 0, "{stats}");
}

#[test]
fn distinct_payloads_run_during_a_flood_are_each_judged_and_alerted() {
    require_root!();
    let _lock = exclusive();
    let s = setup("payloads");
    const PAYLOADS: usize = 20;
    const EXECS: usize = 1500;
    // Payload i: busybox with its own bytes appended, named like an applet.
    s.container
        .exec(&[
            "sh",
            "-c",
            &format!(
                "mkdir -p /tmp/loop && cp /bin/busybox /tmp/loop/true; i=0; while [ $i -lt {PAYLOADS} ]; do \
                 mkdir -p /tmp/p/$i && cat /bin/busybox > /tmp/p/$i/true && echo $i >> /tmp/p/$i/true && \
                 chmod +x /tmp/p/$i/true; i=$((i+1)); done"
            ),
        ])
        .expect("payloads");
    let every = EXECS / PAYLOADS;
    let script = format!(
        "i=0; while [ $i -lt {EXECS} ]; do /tmp/loop/true; \
         if [ $((i % {every})) -eq 0 ]; then /tmp/p/$((i / {every}))/true; fi; i=$((i+1)); done"
    );
    let t0 = Instant::now();
    s.container.exec(&["sh", "-c", &script]).expect("flood");
    let flood = t0.elapsed();
    let stop = wait_for_stop(&s.agent, &s.id, t0);
    let payload = |i: usize| format!("/tmp/p/{i}/true");
    // Each payload's record and alert, once verification caught up.
    let judged = |records: &[Value]| {
        (0..PAYLOADS)
            .filter(|&i| {
                of(records, &s.id).any(|r| {
                    r["type"] == "exec"
                        && r["filename"] == payload(i).as_str()
                        && r["verification"]["verdict"] == "unknown-binary"
                })
            })
            .count()
    };
    let t = Instant::now();
    while judged(&s.agent.records_so_far()) < PAYLOADS && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let records = s.agent.stop().expect("agent stops");
    println!("flood of {EXECS} execs in {flood:?}; stop record: {stop}");

    let suppressed = stop["suppressed"].as_u64().expect("suppressed");
    assert!(suppressed > 0, "the flood was throttled: {stop}");
    assert_eq!(stop["unjudged_new"], 0, "20 new files are within the bound: {stop}");
    let missing: Vec<String> = (0..PAYLOADS)
        .map(payload)
        .filter(|p| {
            !of(&records, &s.id).any(|r| {
                r["type"] == "exec"
                    && r["filename"] == p.as_str()
                    && r["verification"]["verdict"] == "unknown-binary"
            })
        })
        .collect();
    assert!(missing.is_empty(), "payloads without an unknown-binary exec record: {missing:?}");
    let unalerted: Vec<String> = (0..PAYLOADS)
        .map(payload)
        .filter(|p| {
            !of(&records, &s.id).any(|r| {
                r["schema"] == "verifier.alert.v1"
                    && r["type"] == "alert"
                    && r["verdict"] == "unknown-binary"
                    && r["file"]["path"] == p.as_str()
            })
        })
        .collect();
    assert!(unalerted.is_empty(), "payloads without an alert: {unalerted:?}");
    assert!(
        !of(&records, &s.id).any(|r| r["verdict"] == "exec-flood"),
        "no exec-flood alert when no file went unjudged"
    );
    // Every exec of the flood binary is reported or counted as suppressed.
    let loop_records =
        execs(&records).filter(|r| r["container"]["id"] == s.id && r["filename"] == "/tmp/loop/true").count();
    assert_eq!(loop_records as u64 + suppressed, EXECS as u64, "{stop}");
    assert_every_exec_accounted_for(&records);
}

#[test]
fn more_new_files_than_the_bound_in_a_window_raise_an_exec_flood_alert() {
    require_root!();
    let _lock = exclusive();
    let s = setup("bound");
    // Distinct `#!` scripts: one interpreter, so only their names tell
    // them apart in the kernel. Run all at once so that more than the
    // bound (256) plus the limit land in one window.
    const SCRIPTS: usize = 400;
    s.container
        .exec(&[
            "sh",
            "-c",
            &format!(
                "mkdir -p /tmp/s; i=0; while [ $i -lt {SCRIPTS} ]; do printf '#!/bin/sh\\ntrue\\n' > /tmp/s/$i; \
                 chmod +x /tmp/s/$i; i=$((i+1)); done"
            ),
        ])
        .expect("scripts");
    let t0 = Instant::now();
    s.container
        .exec(&[
            "sh",
            "-c",
            &format!("i=0; while [ $i -lt {SCRIPTS} ]; do /tmp/s/$i & i=$((i+1)); done; wait"),
        ])
        .expect("flood of new files");
    let flood = t0.elapsed();
    let stop = wait_for_stop(&s.agent, &s.id, t0);
    let t = Instant::now();
    let alert = loop {
        let so_far = s.agent.records_so_far();
        if let Some(a) = of(&so_far, &s.id).find(|r| r["type"] == "alert" && r["verdict"] == "exec-flood") {
            break a.clone();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no exec-flood alert; stop record: {stop}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let records = s.agent.stop().expect("agent stops");
    println!("{SCRIPTS} scripts in {flood:?}; stop record: {stop}; alert: {alert}");

    let unjudged = stop["unjudged_new"].as_u64().expect("unjudged_new");
    assert!(unjudged > 0, "more than 256 new files in a window: {stop}");
    assert_eq!(alert["unjudged_new"], unjudged, "alert and stop record agree: {alert}");
    assert_eq!(alert["severity"], "high", "{alert}");
    assert!(alert["reason"].as_str().is_some_and(|r| r.contains(&unjudged.to_string())), "{alert}");
    let alerts = of(&records, &s.id).filter(|r| r["type"] == "alert" && r["verdict"] == "exec-flood").count();
    assert_eq!(alerts, 1, "one exec-flood alert per episode");
    // Each script ran once: reported, or counted as unjudged.
    let reported = execs(&records)
        .filter(|r| {
            r["container"]["id"] == s.id && r["filename"].as_str().is_some_and(|f| f.starts_with("/tmp/s/"))
        })
        .count() as u64;
    assert_eq!(reported + unjudged, SCRIPTS as u64, "each new file judged or counted: {stop}");
    assert_every_exec_accounted_for(&records);
}
