//! A package transaction inside a watched build step: `dpkg -i` of a
//! small package the test builds (`dpkg-deb --build`), then its binary
//! runs. The database is read again before that exec is judged, so the
//! installed binary is `ok` (no drift, exit 0) even though the step wrote
//! it; the same file changed after the transaction is `modified-binary`.
//! The package is purged from the host at the end, also when the test
//! fails (a drop guard).

use std::{path::Path, process::Command};

use verifier_tests::{
    build::{exec, rows},
    exclusive, require_root,
};

const PKG: &str = "verifier-test-hello";
const BIN: &str = "/usr/bin/verifier-test-hello";

/// Purges the test package when dropped.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PKG]).output();
        let _ = std::fs::remove_file(BIN);
    }
}

/// Builds the package: `/usr/bin/true` with bytes appended (so its
/// digest is its own), with its md5sums.
fn build_deb(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let root = dir.join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN"))?;
    std::fs::create_dir_all(root.join("usr/bin"))?;
    let mut bytes = std::fs::read("/usr/bin/true")?;
    bytes.extend_from_slice(format!("verifier test package {}\n", std::process::id()).as_bytes());
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
    // md5sums as debhelper writes it (paths relative to the root).
    let sums = Command::new("md5sum").current_dir(&root).arg(BIN.trim_start_matches('/')).output()?;
    anyhow::ensure!(sums.status.success(), "md5sum failed");
    std::fs::write(root.join("DEBIAN/md5sums"), sums.stdout)?;
    let deb = dir.join(format!("{PKG}.deb"));
    let out =
        Command::new("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&root).arg(&deb).output()?;
    anyhow::ensure!(out.status.success(), "dpkg-deb: {}", String::from_utf8_lossy(&out.stderr));
    Ok(deb)
}

#[test]
fn a_package_installed_by_the_step_is_ok_and_its_file_changed_afterwards_is_modified() {
    require_root!();
    if !Path::new("/usr/bin/dpkg-deb").exists() {
        eprintln!("skipped: dpkg-deb is not installed (not a Debian host)");
        return;
    }
    let _x = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let deb = build_deb(dir.path()).expect("build the package");
    let _purge = Purge;
    let install = format!("dpkg -i {} && {BIN}", deb.display());
    let run = exec(dir.path(), &[], &["sh", "-c", &install]).expect("exec");
    let r = &run.record;
    assert_eq!(run.status, 0, "{}\n{r}", run.stderr);
    let hello = rows(r, BIN);
    let row = hello.iter().find(|f| f["kind"] == "exec").unwrap_or_else(|| panic!("{BIN} in {r}"));
    assert_eq!(row["verdict"], "ok", "{row}");
    assert_eq!(row["package"]["name"], PKG, "{row}");
    assert!(r["baseline"]["reloads"].as_u64().is_some_and(|n| n >= 1), "{r}");
    assert_eq!(r["summary"]["drift"], 0, "{r}");

    // Changed after the transaction, inside a step: the database still
    // says the packaged bytes.
    let change = format!("printf 'x' >> {BIN} && {BIN}");
    let run = exec(dir.path(), &[], &["sh", "-c", &change]).expect("exec");
    let r = &run.record;
    let hello = rows(r, BIN);
    let row = hello.iter().find(|f| f["kind"] == "exec").unwrap_or_else(|| panic!("{BIN} in {r}"));
    assert_eq!(row["verdict"], "modified-binary", "{row}");
    assert_eq!(run.status, 3, "{}", run.stderr);
}
