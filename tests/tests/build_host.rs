//! `verifier exec` over real builds with Debian's gcc and make: a clean
//! build is all `ok` against the host's dpkg database; a planted step
//! that runs a binary no package shipped, and a step whose compiler was
//! replaced (a modified `cc1` bind-mounted over the real one in a private
//! mount namespace: the host's toolchain is never touched) are caught in
//! the record and the exit status; the record validates against its
//! schema.

use std::path::Path;

use verifier_tests::{
    build::{self, c_project, exec, rows},
    exclusive, require_root,
};

fn have_toolchain() -> bool {
    let ok = Path::new("/usr/bin/gcc").exists() && Path::new("/usr/bin/make").exists();
    if !ok {
        eprintln!("skipped: gcc and make are not installed (cargo xtask setup installs them)");
    }
    ok
}

#[test]
fn a_clean_build_is_all_ok_with_owning_packages_and_exits_zero() {
    require_root!();
    if !have_toolchain() {
        return;
    }
    let _x = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    c_project(dir.path(), 3, "").expect("project");
    let statement = dir.path().join("statement.json");
    let st = statement.to_str().expect("utf-8");
    let run = exec(dir.path(), &["--statement", st, "--subject", "app"], &["make"]).expect("exec");
    assert_eq!(run.status, 0, "{}\n{}", run.stderr, run.record);
    let r = &run.record;
    assert_eq!(r["summary"]["drift"], 0, "{r}");
    assert_eq!(r["complete"], true);
    for (tool, pkg) in
        [("/make", "make"), ("/cc1", "cpp-"), ("-as", "binutils"), ("-gcc-12", "gcc-"), ("/collect2", "gcc-")]
    {
        let found = rows(r, tool);
        let row = found.iter().find(|f| f["kind"] == "exec").unwrap_or_else(|| panic!("{tool} in {r}"));
        assert_eq!(row["verdict"], "ok", "{row}");
        assert!(row["package"]["name"].as_str().is_some_and(|n| n.starts_with(pkg)), "{row}");
        assert_eq!(row["digest_alg"], "md5", "{row}");
        assert_eq!(row["weak"], true, "dpkg's MD5 is said to be weak: {row}");
        assert_eq!(row["sha256"].as_str().map(str::len), Some(64), "SHA-256 of what ran: {row}");
    }
    let cc1 = rows(r, "/cc1");
    assert_eq!(cc1[0]["count"], 4, "cc1 ran once per translation unit (3 + main): {r}");
    assert!(rows(r, "/libc.so.6").iter().any(|f| f["kind"] == "library" && f["verdict"] == "ok"), "{r}");
    build::validate(&dir.path().join("record.json"), "build-record.schema.json").expect("schema");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&statement).expect("statement")).expect("json");
    assert_eq!(s["predicateType"], "https://verifier.dev/build-record/v1");
    let app = std::fs::read(dir.path().join("app")).expect("app");
    let want = sha2_hex(&app);
    assert_eq!(s["subject"][0]["digest"]["sha256"], want.as_str());
    assert_eq!(s["predicate"]["summary"], r["summary"]);
}

#[test]
fn a_planted_binary_outside_the_build_is_unknown_and_fails_the_step() {
    require_root!();
    if !have_toolchain() {
        return;
    }
    let _x = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let planted = tempfile::tempdir().expect("tempdir");
    let payload = planted.path().join("payload");
    // A genuinely new binary: compiled by the step, written outside the
    // build directory, then run.
    let step = format!(
        "\tprintf 'int main(void){{return 0;}}' > {p}.c\n\tgcc -o {p} {p}.c\n\t{p}\n",
        p = payload.display()
    );
    c_project(dir.path(), 1, &step).expect("project");
    let run = exec(dir.path(), &[], &["make"]).expect("exec");
    let r = &run.record;
    let found = rows(r, "/payload");
    let row = found.iter().find(|f| f["kind"] == "exec").unwrap_or_else(|| panic!("payload in {r}"));
    assert_eq!(row["verdict"], "unknown-binary", "{row}");
    assert_eq!(row["build_output"], false, "{row}");
    assert_eq!(run.status, 3, "policy failure: {}", run.stderr);
    assert_eq!(r["policy"]["violations"]["unknown-binary"], 1, "{r}");
    build::validate(&dir.path().join("record.json"), "build-record.schema.json").expect("schema");
}

#[test]
fn a_binary_the_build_made_and_ran_in_its_own_directory_is_a_build_output() {
    require_root!();
    if !have_toolchain() {
        return;
    }
    let _x = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    // configure-style: compile a test program in the build dir and run it.
    let step =
        "\tprintf 'int main(void){return 0;}' > conftest.c\n\tgcc -o conftest conftest.c\n\t./conftest\n";
    c_project(dir.path(), 1, step).expect("project");
    let run = exec(dir.path(), &[], &["make"]).expect("exec");
    let found = rows(&run.record, "/conftest");
    let row = found.first().unwrap_or_else(|| panic!("conftest in {}", run.record));
    assert_eq!(row["verdict"], "unknown-binary");
    assert_eq!(row["build_output"], true, "{row}");
    assert_eq!(run.status, 0, "build outputs pass the default policy: {}", run.stderr);
    let strict =
        exec(dir.path(), &["--fail-on", "build-output"], &["sh", "-c", "make clean && make"]).expect("exec");
    assert_eq!(strict.status, 3, "{}", strict.stderr);
}

#[test]
fn a_replaced_compiler_is_modified_binary_and_fails_the_step() {
    require_root!();
    if !have_toolchain() {
        return;
    }
    let _x = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    c_project(dir.path(), 1, "").expect("project");
    let real = build::cc1().expect("cc1");
    // A copy with one byte appended: it still runs, its digest differs.
    let evil = dir.path().join("evil-cc1");
    let mut bytes = std::fs::read(&real).expect("cc1");
    bytes.push(0);
    std::fs::write(&evil, bytes).expect("write");
    std::fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let script = format!("mount --bind {} {} && make", evil.display(), real.display());
    let run = exec(dir.path(), &[], &["unshare", "-m", "--propagation", "private", "sh", "-c", &script])
        .expect("exec");
    let r = &run.record;
    let found = rows(r, "/cc1");
    let row = found.iter().find(|f| f["verdict"] == "modified-binary").unwrap_or_else(|| panic!("{r}"));
    assert!(row["expected"].as_str().is_some_and(|e| e.starts_with("md5:")), "{row}");
    assert!(row["package"]["name"].as_str().is_some_and(|n| n.starts_with("cpp-")), "{row}");
    assert_eq!(run.status, 3, "{}", run.stderr);
    assert!(
        std::fs::read(&real).expect("cc1").last() != Some(&0) || real.metadata().is_ok(),
        "host cc1 untouched"
    );
}

#[test]
fn the_commands_own_failure_is_the_exit_status_and_a_missing_command_is_127() {
    require_root!();
    let _x = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = exec(dir.path(), &[], &["sh", "-c", "exit 7"]).expect("exec");
    assert_eq!(run.status, 7, "{}", run.stderr);
    assert_eq!(run.record["exit"]["code"], 7);
    let run = exec(dir.path(), &[], &["/nonexistent/tool"]).expect("exec");
    assert_eq!(run.status, 127, "{}", run.stderr);
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
