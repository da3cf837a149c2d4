//! The agent with `--host-baseline dpkg`: the host's own processes are
//! judged against the host's package database with the verdicts and
//! alerts a container gets against its image's SBOM. A binary dropped in
//! /tmp and run on the host is `unknown-binary` with one alert; a
//! packaged binary is `ok`, without an alert.

use std::{process::Command, time::Duration};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs},
    exclusive, require_root,
};

/// Runs `path` on the host, returns its pid.
fn run(path: &str) -> u32 {
    let mut c = Command::new(path).spawn().unwrap_or_else(|e| panic!("{path}: {e}"));
    let pid = c.id();
    assert!(c.wait().expect("wait").success(), "{path}");
    pid
}

fn verdict_of<'a>(records: &'a [Value], pid: u32, path: &str) -> Option<&'a Value> {
    execs(records)
        .find(|r| r["pid"].as_u64() == Some(u64::from(pid)) && r["filename"] == path)
        .map(|r| &r["verification"])
}

#[test]
fn a_dropped_host_binary_is_unknown_and_a_packaged_one_is_ok() {
    require_root!();
    if !std::path::Path::new("/var/lib/dpkg/status").exists() {
        eprintln!("skipped: no dpkg database on this host");
        return;
    }
    let _x = exclusive();
    let dir = tempfile::Builder::new().prefix("vt-host-").tempdir_in("/tmp").expect("tempdir");
    let dropped = dir.path().join("mytrue");
    std::fs::copy("/usr/bin/true", &dropped).expect("copy");
    let dropped = dropped.to_str().expect("utf-8").to_owned();
    let agent = Agent::start(&["--stats-interval", "0", "--host-baseline", "dpkg"]).expect("agent starts");
    let packaged = run("/usr/bin/true");
    let planted = run(&dropped);
    std::thread::sleep(Duration::from_millis(1500));
    let records = agent.stop().expect("agent stops");

    let ok = verdict_of(&records, packaged, "/usr/bin/true").unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(ok["verdict"], "ok", "{ok}");
    let bad = verdict_of(&records, planted, &dropped).unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(bad["verdict"], "unknown-binary", "{bad}");

    let alerts: Vec<&Value> =
        records.iter().filter(|r| r["schema"] == "verifier.alert.v1" && r["type"] == "alert").collect();
    let mine: Vec<&&Value> = alerts.iter().filter(|a| a["file"]["path"] == dropped.as_str()).collect();
    assert_eq!(mine.len(), 1, "one alert for the dropped binary: {alerts:?}");
    assert_eq!(mine[0]["verdict"], "unknown-binary");
    assert!(mine[0]["container"].is_null() || mine[0]["container"]["id"].is_null(), "{}", mine[0]);
    assert!(
        !alerts.iter().any(|a| a["file"]["path"] == "/usr/bin/true" && a["process"]["pid"] == packaged),
        "no alert for a packaged binary: {alerts:?}"
    );
}
