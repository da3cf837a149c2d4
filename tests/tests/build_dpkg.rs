//! A package transaction inside a watched build step: `dpkg -i` of a
//! small package the test builds (`dpkg-deb --build`), then its binary
//! runs. The database is read again before that exec is judged, so the
//! installed binary is `ok` (no drift, exit 0) even though the step wrote
//! it; the same file changed after the transaction is `modified-binary`.
//! The package is purged from the host at the end, also when the test
//! fails (a drop guard).

use std::path::Path;

use verifier_tests::{
    build::{exec, rows},
    exclusive, require_root,
};

const PKG: &str = "verifier-test-hello";
const BIN: &str = "/usr/bin/verifier-test-hello";

#[test]
fn a_package_installed_by_the_step_is_ok_and_its_file_changed_afterwards_is_modified() {
    require_root!();
    if !Path::new("/usr/bin/dpkg-deb").exists() {
        eprintln!("skipped: dpkg-deb is not installed (not a Debian host)");
        return;
    }
    let _x = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let deb = verifier_tests::deb::small_package(dir.path(), PKG, BIN, "verifier test package")
        .expect("build the package");
    let _purge = verifier_tests::deb::Purge { package: PKG, binary: BIN };
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
