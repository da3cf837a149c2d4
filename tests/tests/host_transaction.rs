//! The agent with `--host-baseline dpkg` during a package transaction:
//! the database is parsed again off the agent's event loop, and a binary
//! the transaction installed, run right after it, is still judged against
//! the new database (`ok`, no alert), never against the one older than
//! the transaction that wrote it. The same file changed afterwards is
//! `modified-binary`. The package is purged at the end, also when the
//! test fails (a drop guard).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs},
    exclusive, require_root,
};

const PKG: &str = "verifier-test-host-agent";
const BIN: &str = "/usr/bin/verifier-test-host-agent";

/// Purges the test package when dropped.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PKG]).output();
        let _ = std::fs::remove_file(BIN);
    }
}

/// Builds the package: `/usr/bin/true` with bytes appended (so its digest
/// is its own), with its md5sums.
fn build_deb(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN"))?;
    std::fs::create_dir_all(root.join("usr/bin"))?;
    let mut bytes = std::fs::read("/usr/bin/true")?;
    bytes.extend_from_slice(format!("verifier host agent test {}\n", std::process::id()).as_bytes());
    let bin = root.join(BIN.trim_start_matches('/'));
    std::fs::write(&bin, &bytes)?;
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let arch = Command::new("dpkg").arg("--print-architecture").output()?;
    let arch = String::from_utf8(arch.stdout)?.trim().to_owned();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {PKG}\nVersion: 1.0\nArchitecture: {arch}\nMaintainer: verifier tests <root@localhost>\n\
             Description: a binary installed and purged by the verifier's tests\n"
        ),
    )?;
    let sums = Command::new("md5sum").current_dir(&root).arg(BIN.trim_start_matches('/')).output()?;
    anyhow::ensure!(sums.status.success(), "md5sum failed");
    std::fs::write(root.join("DEBIAN/md5sums"), sums.stdout)?;
    let deb = dir.join(format!("{PKG}.deb"));
    let out =
        Command::new("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&root).arg(&deb).output()?;
    anyhow::ensure!(out.status.success(), "dpkg-deb: {}", String::from_utf8_lossy(&out.stderr));
    Ok(deb)
}

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
    let deb = build_deb(dir.path()).expect("build the package");
    let _purge = Purge;
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
