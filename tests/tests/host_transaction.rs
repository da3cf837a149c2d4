//! The agent with `--host-baseline dpkg` during a package transaction:
//! the database is parsed again off the agent's event loop, and a binary
//! the transaction installed, run right after it, is still judged against
//! the new database (`ok`, no alert), never against the one older than
//! the transaction that wrote it. The same file changed afterwards is
//! `modified-binary`. The package is purged at the end, also when the
//! test fails (a drop guard).

use std::{path::Path, process::Command, time::Duration};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs},
    exclusive, require_root,
};

const PKG: &str = "verifier-test-host-agent";
const BIN: &str = "/usr/bin/verifier-test-host-agent";

fn sh(script: &str) {
    let out = Command::new("sh").args(["-c", script]).output().expect("sh");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

fn verdicts_of(records: &[Value]) -> Vec<&Value> {
    execs(records).filter(|r| r["filename"] == BIN).map(|r| &r["verification"]).collect()
}

#[test]
fn a_binary_run_right_after_its_package_is_installed_is_ok_and_changed_afterwards_is_modified() {
    require_root!();
    if !Path::new("/usr/bin/dpkg-deb").exists() {
        eprintln!("skipped: dpkg-deb is not installed (not a Debian host)");
        return;
    }
    let _x = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let deb = verifier_tests::deb::small_package(dir.path(), PKG, BIN, "verifier host agent test")
        .expect("build the package");
    let _purge = verifier_tests::deb::Purge { package: PKG, binary: BIN };
    let agent = Agent::start(&["--stats-interval", "0", "--host-baseline", "dpkg"]).expect("agent starts");
    sh(&format!("dpkg -i {} >/dev/null && {BIN}", deb.display()));
    // Wait for the new baseline before the file is changed: the change
    // must be judged against the database that lists the packaged bytes.
    std::thread::sleep(Duration::from_millis(1500));
    sh(&format!("printf x >> {BIN} && {BIN}"));
    std::thread::sleep(Duration::from_millis(1500));
    let records = agent.stop().expect("agent stops");

    let verdicts = verdicts_of(&records);
    assert_eq!(verdicts.len(), 2, "both runs of {BIN} reported: {verdicts:?}");
    assert_eq!(verdicts[0]["verdict"], "ok", "installed by the transaction: {}", verdicts[0]);
    assert_eq!(verdicts[1]["verdict"], "modified-binary", "changed after it: {}", verdicts[1]);
    let alerts: Vec<&Value> = records
        .iter()
        .filter(|r| r["schema"] == "verifier.alert.v1" && r["type"] == "alert" && r["file"]["path"] == BIN)
        .collect();
    assert_eq!(alerts.len(), 1, "one alert, for the changed file only: {alerts:?}");
}
