use std::time::{Duration, Instant};

use verifier_common::event::FileIdentity;

use super::*;

fn event(identity: Option<FileIdentity>, written: bool) -> ExecEvent {
    ExecEvent {
        unix_ns: 1,
        pid: 1,
        tgid: 1,
        ppid: 1,
        ns_pid: 1,
        uid: 0,
        gid: 0,
        cgroup_id: 1,
        mnt_ns: 1,
        pid_ns: 1,
        comm: b"tool".to_vec(),
        filename: b"/usr/bin/tool".to_vec(),
        filename_truncated: false,
        script: false,
        exe_unlinked: false,
        written,
        library: false,
        mapped_fd: None,
        tag: 0,
        argv: None,
        argv_truncated: false,
        exe: identity,
        root: None,
    }
}

fn identity_of(path: &std::path::Path) -> FileIdentity {
    verifier_sensor::events::identity_of(&std::fs::metadata(path).expect("stat"))
}

/// A file `tool` and, written after it, a host SBOM listing it.
fn host(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let tool = dir.join("tool");
    std::fs::write(&tool, b"v1").expect("write");
    let file = dir.join("host.md5sums");
    std::fs::write(&file, format!("{}  usr/bin/tool\n", "a".repeat(32))).expect("write");
    (tool, file)
}

#[tokio::test]
async fn each_host_cgroup_is_watched_once_and_a_changed_baseline_gets_a_new_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("host.md5sums");
    std::fs::write(&file, format!("{}  usr/bin/cc\n", "a".repeat(32))).expect("write");
    let mut h = HostJudge::load(&[HostSource::Sbom(file.clone())]).expect("load");
    assert!(h.context().manifest.get("/usr/bin/cc").is_some());
    assert!(h.first_sight(7));
    assert!(!h.first_sight(7), "a cgroup is watched once");
    assert!(h.first_sight(8));
    let first = h.context().key;
    h.refresh();
    assert!(!h.parsing, "nothing changed: no parse");
    std::fs::write(&file, format!("{0}  usr/bin/cc\n{0}  usr/bin/ld\n", "b".repeat(32))).expect("write");
    h.refresh();
    assert!(h.parsing, "the file changed: parsed on the blocking pool");
    assert_eq!(h.context().key, first, "the old baseline judges until the new one is ready");
    let parsed = h.parsed().await;
    let (changed, held) = h.install(parsed);
    assert!(changed && held.is_empty());
    assert_ne!(h.context().key, first, "nothing decided against the old baseline is reused");
    assert!(h.context().manifest.get("/usr/bin/ld").is_some());
    let mut seen: Vec<u64> = h.cgroups().collect();
    seen.sort_unstable();
    assert_eq!(seen, [7, 8], "watched again under the new slot");
}

/// A file changed no later than the database is a transaction's and is
/// judged by its bytes; one changed after it keeps the written flag.
#[tokio::test]
async fn only_a_file_written_before_the_database_changed_loses_the_written_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tool, file) = host(dir.path());
    let mut h = HostJudge::load(&[HostSource::Sbom(file)]).expect("load");
    let before = identity_of(&tool);
    let e = h.admit(event(Some(before), true), 2).expect("nothing is being parsed: judged now");
    assert!(!e.written, "written before the database: a transaction's file");
    let mut later = before;
    later.ctime_sec += 3600;
    let e = h.admit(event(Some(later), true), 3).expect("judged now");
    assert!(e.written, "changed after the last transaction: still flagged");
}

/// While the database is parsed again, execs of files the old database
/// already knew go on; a file changed since (maybe the transaction's), a
/// script or a file without identity waits for the new baseline, and is
/// judged by its bytes if the new database is newer than it.
#[tokio::test]
async fn during_a_parse_only_execs_that_may_be_the_transactions_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tool, file) = host(dir.path());
    let mut h = HostJudge::load(&[HostSource::Sbom(file.clone())]).expect("load");
    let old = h.context().key;
    let known = identity_of(&tool);
    // A transaction: the tool is rewritten, then the database.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&tool, b"v2").expect("write");
    let installed = identity_of(&tool);
    std::fs::write(&file, format!("{}  usr/bin/tool\n", "b".repeat(32))).expect("write");

    let mut new_file = event(Some(installed), true);
    new_file.unix_ns = 10;
    assert!(h.admit(new_file, 11).is_none(), "newer than the old database: held");
    assert!(h.parsing, "an exec newer than the last check found the change");
    let old_file = h.admit(event(Some(known), false), 12).expect("known to the old database: goes on");
    assert_eq!(old_file.exe, Some(known));
    assert_eq!(h.context().key, old, "judged against the old baseline meanwhile");
    let mut script = event(Some(known), false);
    script.script = true;
    assert!(h.admit(script, 13).is_none(), "a script's own file is not known by identity: held");
    assert!(h.admit(event(None, false), 14).is_none(), "no identity: held");
    assert_eq!(h.held(), 3);

    let parsed = h.parsed().await;
    let (changed, held) = h.install(parsed);
    assert!(changed);
    assert_ne!(h.context().key, old);
    assert_eq!(held.len(), 3, "released once the new baseline is ready");
    assert!(!held[0].written, "written before the new database: judged by its bytes");
    assert_eq!(h.held(), 0);
}

#[tokio::test]
async fn a_parse_that_fails_releases_the_held_execs_to_the_old_baseline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, file) = host(dir.path());
    let mut h = HostJudge::load(&[HostSource::Sbom(file.clone())]).expect("load");
    let old = h.context().key;
    std::fs::remove_file(&file).expect("remove");
    let mut e = event(None, false);
    e.unix_ns = 10;
    assert!(h.admit(e, 11).is_none());
    let parsed = h.parsed().await;
    let (changed, held) = h.install(parsed);
    assert!(!changed, "the old baseline stays");
    assert_eq!(h.context().key, old);
    assert_eq!(held.len(), 1, "not held forever");
    assert!(!h.parsing, "the next check tries again");
}

/// The host's own dpkg database, parsed again as after a transaction:
/// prints how long the parse takes and checks the event loop ran
/// meanwhile.
#[tokio::test]
async fn the_hosts_dpkg_database_is_parsed_off_the_event_loop() {
    if !std::path::Path::new(crate::baseline::host::DPKG_STATUS).exists() {
        eprintln!("skipped: this host has no dpkg database");
        return;
    }
    let mut h = HostJudge::load(&[HostSource::Dpkg]).expect("load the host's dpkg database");
    // As if a transaction had rewritten the status file.
    h.baseline.forget_stamps();
    let started = Instant::now();
    h.refresh();
    assert!(h.parsing);
    let mut ticks = 0u32;
    let parsed = loop {
        tokio::select! {
            p = h.parsed() => break p,
            () = tokio::time::sleep(Duration::from_millis(1)) => ticks += 1,
        }
    };
    let took = started.elapsed();
    let (changed, _) = h.install(parsed);
    assert!(changed);
    let files = h.context().manifest.len();
    println!(
        "dpkg database ({files} files) parsed in {} ms; event loop ran {ticks} times meanwhile",
        took.as_millis()
    );
    assert!(files > 0);
    assert!(ticks > 0 || took < Duration::from_millis(5), "the loop was blocked for {took:?}");
}

#[test]
fn a_baseline_that_cannot_be_read_says_which_option() {
    let err = HostJudge::load(&[HostSource::Sbom("/nonexistent/h.json".into())]).err().expect("error");
    assert!(err.to_string().starts_with("--host-baseline"), "{err}");
    assert!(err.to_string().contains("/nonexistent/h.json"), "{err}");
}
