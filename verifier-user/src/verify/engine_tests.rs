//! The engine on real processes: first sight goes to the pool, repeats
//! come from the decision cache, a burst of one new file is one job.

use std::{fs, os::unix::ffi::OsStrExt as _, path::Path, process::Command};

use sha2::Digest as _;

use super::*;
use crate::verify::test_sbom;

fn manifest_with(path: &str, sha256: &[u8]) -> Manifest {
    test_sbom::manifest(&[(path, &hex::encode(sha256))])
}

/// An SBOM listing (path, SHA-256 hex).
fn manifest_of(files: &[(&str, String)]) -> Manifest {
    test_sbom::manifest(&files.iter().map(|(p, s)| (*p, s.as_str())).collect::<Vec<_>>())
}

fn event_for(pid: u32, bin: &Path) -> ExecEvent {
    let m = fs::metadata(bin).expect("stat");
    ExecEvent {
        unix_ns: 0,
        pid,
        tgid: pid,
        ppid: 1,
        ns_pid: pid,
        uid: 0,
        gid: 0,
        cgroup_id: 1,
        mnt_ns: 1,
        pid_ns: 1,
        comm: b"sleeper".to_vec(),
        filename: bin.as_os_str().as_bytes().to_vec(),
        filename_truncated: false,
        script: false,
        exe_unlinked: false,
        written: false,
        library: false,
        mapped_fd: None,
        tag: 0,
        argv: None,
        argv_truncated: false,
        exe: Some(verifier_sensor::events::identity_of(&m)),
        root: None,
    }
}

fn engine() -> (Engine, tokio::sync::mpsc::UnboundedReceiver<Done<Key>>) {
    engine_with_proc(Path::new("/proc"))
}

fn engine_with_proc(proc_root: &Path) -> (Engine, tokio::sync::mpsc::UnboundedReceiver<Done<Key>>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let cfg = EngineConfig {
        workers: 1,
        queue: 8,
        max_bytes: 1 << 30,
        proc_root: proc_root.to_path_buf(),
        hash_cache: 64,
        decisions: 64,
    };
    (Engine::new(&cfg, tx).expect("pool"), rx)
}

fn judge_running(listed_sha: Option<&[u8]>) -> (Verdict, VerifyStats) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("sleeper");
    fs::copy("/bin/sleep", &bin).expect("copy");
    let real: [u8; 32] = sha2::Sha256::digest(fs::read(&bin).expect("read")).into();
    let mut child = Command::new(&bin).arg("30").spawn().expect("spawn");
    while fs::read_link(format!("/proc/{}/exe", child.id())).map_or(true, |p| p != bin) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let path = bin.to_str().expect("utf-8 temp path");
    let ctx = Arc::new(Context {
        any_algs: Algs::NONE,
        key: 1,
        root: Arc::new(RootDir::open(Path::new("/")).expect("root")),
        index: Arc::default(),
        manifest: Arc::new(manifest_with(path, listed_sha.unwrap_or(&real))),
        content: None,
    });
    let (mut engine, mut rx) = engine();
    // A burst of three execs of the same new file: one job.
    for _ in 0..3 {
        assert!(engine.submit(&ctx, event_for(child.id(), &bin)).is_none(), "first sight is queued");
    }
    assert_eq!(engine.in_flight(), 3);
    let (key, outcome) = rx.blocking_recv().expect("outcome");
    let decided = engine.complete(key, outcome);
    assert_eq!(decided.len(), 3, "every waiting exec gets the decision");
    let verdict = decided[0].1.judgement.verdict;
    assert_eq!(decided[0].1.trusted, verdict == Verdict::Ok, "only a proven ok may enter the fast path");
    assert_eq!(decided[0].1.sha256, Some(real));
    // Seen again: answered at once from the decision cache.
    let again = engine.submit(&ctx, event_for(child.id(), &bin)).expect("cached");
    assert_eq!(again.1.judgement.verdict, verdict);
    let stats = engine.stats.clone();
    // The kernel saw the file opened for writing since: the same identity
    // proves nothing, so no cached decision answers it, and it is not ok.
    let mut written = event_for(child.id(), &bin);
    written.written = true;
    assert!(engine.submit(&ctx, written).is_none(), "a written file is judged again");
    let (key, outcome) = rx.blocking_recv().expect("outcome");
    let decided = engine.complete(key, outcome);
    assert_eq!(decided[0].1.judgement.verdict, Verdict::ModifiedBinary, "{:?}", decided[0].1);
    assert!(!decided[0].1.trusted, "never into the fast path");
    child.kill().ok();
    child.wait().ok();
    (verdict, stats)
}

#[test]
fn first_sight_hashes_once_then_the_cache_answers() {
    let (verdict, stats) = judge_running(None);
    assert_eq!(verdict, Verdict::Ok);
    assert_eq!((stats.execs, stats.jobs, stats.coalesced, stats.decision_hits), (4, 1, 2, 1), "{stats:?}");
}

#[test]
fn a_proc_self_exe_rerun_waits_for_the_file_being_hashed_then_knows_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("sleeper");
    fs::copy("/bin/sleep", &bin).expect("copy");
    let real: [u8; 32] = sha2::Sha256::digest(fs::read(&bin).expect("read")).into();
    let mut child = Command::new(&bin).arg("30").spawn().expect("spawn");
    while fs::read_link(format!("/proc/{}/exe", child.id())).map_or(true, |p| p != bin) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let ctx = Arc::new(Context {
        any_algs: Algs::NONE,
        key: 1,
        root: Arc::new(RootDir::open(Path::new("/")).expect("root")),
        index: Arc::default(),
        manifest: Arc::new(manifest_with(bin.to_str().expect("utf-8"), &real)),
        content: None,
    });
    let (mut engine, mut rx) = engine();
    assert!(engine.submit(&ctx, event_for(child.id(), &bin)).is_none());
    // The same file re-run through /proc/self/exe (a process that has
    // exited by the time anyone looks): joins the job in flight.
    let mut rerun = event_for(999_999_999, Path::new("/proc/self/exe"));
    rerun.exe = event_for(child.id(), &bin).exe;
    assert!(engine.submit(&ctx, rerun.clone()).is_none(), "waits for the job");
    let (key, outcome) = rx.blocking_recv().expect("outcome");
    let decided = engine.complete(key, outcome);
    assert_eq!(decided.len(), 2);
    assert!(decided.iter().all(|(_, d)| d.judgement.verdict == Verdict::Ok), "{decided:?}");
    // Later re-runs open the path the identity was proven at.
    rerun.filename = b"/proc/1234/exe".to_vec();
    assert!(engine.submit(&ctx, rerun).is_none(), "a job at the proven path");
    let (key, outcome) = rx.blocking_recv().expect("outcome");
    assert_eq!(engine.complete(key, outcome)[0].1.judgement.verdict, Verdict::Ok);
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn a_listed_path_with_other_bytes_is_modified() {
    let (verdict, _) = judge_running(Some(&[7u8; 32]));
    assert_eq!(verdict, Verdict::ModifiedBinary);
}

#[test]
fn no_kernel_identity_is_unverifiable_at_once() {
    let ctx = Arc::new(Context {
        any_algs: Algs::NONE,
        key: 1,
        root: Arc::new(RootDir::open(Path::new("/")).expect("root")),
        index: Arc::default(),
        manifest: Arc::new(manifest_with("/bin/x", &[0u8; 32])),
        content: None,
    });
    let (mut engine, _rx) = engine();
    let mut ev = event_for(std::process::id(), Path::new("/proc/self/exe"));
    ev.exe = None;
    let (_, d) = engine.submit(&ctx, ev).expect("immediate");
    assert_eq!(d.judgement.verdict, Verdict::Unverifiable);
    assert!(d.is_drift());
}

#[test]
fn descriptor_paths_are_fileless_names() {
    for yes in [&b"/dev/fd/3"[..], b"/proc/self/fd/7", b"/proc/1234/fd/0"] {
        assert!(runs_from_descriptor(yes), "{}", String::from_utf8_lossy(yes));
    }
    for no in [&b"/bin/sh"[..], b"/proc/self/exe", b"/proc/x/fd/1", b"/dev/fdx"] {
        assert!(!runs_from_descriptor(no), "{}", String::from_utf8_lossy(no));
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// A script run in a container root and gone before it is judged: the
/// script's verdict against `listed` (the interpreter being listed).
fn judge_exited_script(script_listed: Option<&[u8]>) -> Arc<Decision> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, proc_root) = (dir.path().join("root"), dir.path().join("proc"));
    fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
    fs::create_dir_all(&proc_root).expect("mkdir");
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("bin");
    fs::write(root.join("usr/bin/dash"), b"the shell").expect("write");
    std::os::unix::fs::symlink("dash", root.join("usr/bin/sh")).expect("sh");
    let script = b"#!/bin/sh\nexec grep -E \"$@\"\n";
    fs::write(root.join("usr/bin/egrep"), script).expect("write");
    let mut files = vec![("/usr/bin/dash", sha256_hex(b"the shell"))];
    if let Some(listed) = script_listed {
        files.push(("/bin/egrep", sha256_hex(listed)));
    }
    let ctx = Arc::new(Context {
        any_algs: Algs::NONE,
        key: 1,
        root: Arc::new(RootDir::open(&root).expect("root")),
        index: Arc::default(),
        manifest: Arc::new(manifest_of(&files)),
        content: None,
    });
    let (mut engine, mut rx) = engine_with_proc(&proc_root);
    let mut ev = event_for(4242, &root.join("usr/bin/dash"));
    ev.filename = b"/bin/egrep".to_vec();
    ev.script = true;
    assert!(engine.submit(&ctx, ev.clone()).is_none(), "queued");
    let (key, outcome) = rx.blocking_recv().expect("outcome");
    let d = engine.complete(key, outcome).remove(0).1;
    assert_eq!(d.judgement.verdict, Verdict::Ok, "the interpreter: {d:?}");
    assert_eq!(d.via, Some(Via::Shebang));
    assert!(!d.trusted, "a script's decision never enters the fast path");
    assert!(engine.submit(&ctx, ev).is_none(), "nor is it cached: judged again");
    d
}

#[test]
fn an_exited_script_listed_and_unchanged_is_ok() {
    let d = judge_exited_script(Some(b"#!/bin/sh\nexec grep -E \"$@\"\n"));
    let s = d.script.as_ref().expect("script");
    assert_eq!((s.path.as_slice(), s.judgement.verdict), (&b"/usr/bin/egrep"[..], Verdict::Ok), "{s:?}");
    assert!(!d.is_drift());
}

#[test]
fn an_exited_script_changed_or_dropped_is_drift() {
    let changed = judge_exited_script(Some(b"#!/bin/sh\nexec grep -F \"$@\"\n"));
    assert_eq!(changed.script.as_ref().map(|s| s.judgement.verdict), Some(Verdict::ModifiedBinary));
    assert!(changed.is_drift());
    let dropped = judge_exited_script(None);
    assert_eq!(dropped.script.as_ref().map(|s| s.judgement.verdict), Some(Verdict::UnknownBinary));
    assert!(dropped.is_drift());
}

/// Runs a copy of `sleep` and judges one exec of it named `filename`
/// against an SBOM listing `listed` (with the file's own digest), with a
/// hashing cap of `max_bytes`.
fn judge_named(filename: Option<&str>, listed: &str, max_bytes: u64) -> Arc<Decision> {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("sleeper");
    fs::copy("/bin/sleep", &bin).expect("copy");
    let real: [u8; 32] = sha2::Sha256::digest(fs::read(&bin).expect("read")).into();
    let mut child = Command::new(&bin).arg("30").spawn().expect("spawn");
    while fs::read_link(format!("/proc/{}/exe", child.id())).map_or(true, |p| p != bin) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let listed = if listed.is_empty() { bin.to_str().expect("utf-8").to_owned() } else { listed.to_owned() };
    let ctx = Arc::new(Context {
        any_algs: Algs::NONE,
        key: 1,
        root: Arc::new(RootDir::open(Path::new("/")).expect("root")),
        index: Arc::default(),
        manifest: Arc::new(manifest_with(&listed, &real)),
        content: None,
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cfg = EngineConfig {
        workers: 1,
        queue: 8,
        max_bytes,
        proc_root: "/proc".into(),
        hash_cache: 64,
        decisions: 64,
    };
    let mut engine = Engine::new(&cfg, tx).expect("pool");
    let mut ev = event_for(child.id(), &bin);
    if let Some(f) = filename {
        ev.filename = f.as_bytes().to_vec();
    }
    assert!(engine.submit(&ctx, ev).is_none(), "first sight is queued");
    let (key, outcome) = rx.blocking_recv().expect("outcome");
    let decided = engine.complete(key, outcome);
    child.kill().ok();
    child.wait().ok();
    decided[0].1.clone()
}

#[test]
fn a_descriptor_exec_of_a_listed_unchanged_file_is_that_file() {
    let d = judge_named(Some("/proc/self/fd/3"), "", 1 << 30);
    assert_eq!(d.judgement.verdict, Verdict::Ok, "{d:?}");
    assert!(d.path.ends_with(b"/sleeper"), "judged at its own path: {d:?}");
    // Listed elsewhere: what the file is (a copy), not fileless (it has a
    // name).
    let d = judge_named(Some("/dev/fd/4"), "/opt/elsewhere", 1 << 30);
    assert_eq!(d.judgement.verdict, Verdict::RelocatedBinary, "{d:?}");
}

#[test]
fn over_the_size_cap_an_unlisted_path_is_unknown_and_a_listed_one_unverifiable() {
    let d = judge_named(None, "/opt/elsewhere", 16);
    assert_eq!(d.judgement.verdict, Verdict::UnknownBinary, "{d:?}");
    assert!(
        d.judgement.reason.contains("not hashed") && d.judgement.reason.contains("over --max-hash-bytes")
    );
    assert_eq!(d.sha256, None);
    let d = judge_named(None, "", 16);
    assert_eq!(d.judgement.verdict, Verdict::Unverifiable, "it might be the listed file: {d:?}");
}

#[test]
fn an_exited_exec_of_a_vanished_unlisted_path_is_unknown() {
    let ctx = Arc::new(Context {
        any_algs: Algs::NONE,
        key: 1,
        root: Arc::new(RootDir::open(Path::new("/")).expect("root")),
        index: Arc::default(),
        manifest: Arc::new(manifest_with("/bin/listed-here", &[0u8; 32])),
        content: None,
    });
    let (mut engine, mut rx) = engine();
    for (name, verdict) in
        [("/nonexistent/dropped", Verdict::UnknownBinary), ("/bin/listed-here", Verdict::Unverifiable)]
    {
        let mut ev = event_for(std::process::id(), Path::new("/proc/self/exe"));
        ev.filename = name.as_bytes().to_vec();
        ev.tgid = 999_999_999;
        assert!(engine.submit(&ctx, ev).is_none());
        let (key, outcome) = rx.blocking_recv().expect("outcome");
        let d = engine.complete(key, outcome)[0].1.clone();
        assert_eq!(d.judgement.verdict, verdict, "{name}: {d:?}");
        assert_eq!(d.path, name.as_bytes());
        if verdict == Verdict::UnknownBinary {
            assert!(d.judgement.reason.contains("the process exited and the file is gone"), "{d:?}");
        }
    }
}

/// A container root listing `/usr/bin/true` (`/bin -> usr/bin`), with a
/// jail at `/tmp/jail` holding other bytes at `/bin/true`; `/proc` empty
/// (every process has exited). Judges one exec named `/bin/true` of the
/// file at `ran` (relative to the root) from the root directory `exec_root`.
fn judge_exited_in(ran: &str, exec_root: &str) -> Arc<Decision> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, proc_root) = (dir.path().join("root"), dir.path().join("proc"));
    for d in ["usr/bin", "tmp/jail/bin"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::create_dir_all(&proc_root).expect("mkdir");
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("bin");
    fs::write(root.join("usr/bin/true"), b"the real true").expect("write");
    fs::write(root.join("tmp/jail/bin/true"), b"the real true, and a payload").expect("write");
    let ctx = Arc::new(Context {
        any_algs: Algs::NONE,
        key: 1,
        root: Arc::new(RootDir::open(&root).expect("root")),
        index: Arc::default(),
        manifest: Arc::new(manifest_of(&[("/usr/bin/true", sha256_hex(b"the real true"))])),
        content: None,
    });
    let (mut engine, mut rx) = engine_with_proc(&proc_root);
    let mut ev = event_for(4242, &root.join(ran));
    ev.filename = b"/bin/true".to_vec();
    ev.root =
        Some(verifier_sensor::events::DirIdentity::of(&fs::metadata(root.join(exec_root)).expect("stat")));
    assert!(engine.submit(&ctx, ev).is_none(), "queued");
    let (key, outcome) = rx.blocking_recv().expect("outcome");
    engine.complete(key, outcome).remove(0).1
}

#[test]
fn an_exited_chrooted_exec_is_never_judged_by_its_name_in_the_container_root() {
    let d = judge_exited_in("tmp/jail/bin/true", "tmp/jail");
    assert_eq!(d.judgement.verdict, Verdict::UnknownBinary, "{d:?}");
    assert_eq!(d.root, Some(ExecRoot::Chroot));
    assert_eq!(d.path, b"/bin/true", "the path as the exec named it in its root");
    assert!(d.judgement.reason.contains("ran from another root and exited"), "{d:?}");
    assert!(d.judgement.reason.contains("no file the SBOM lists"), "the index was asked: {d:?}");
}

#[test]
fn an_exited_chrooted_exec_of_a_listed_file_is_found_by_identity() {
    // A hard link of the image's own file in the jail: the same identity.
    let d = judge_exited_in("usr/bin/true", "tmp/jail");
    assert_eq!(d.judgement.verdict, Verdict::Ok, "{d:?}");
    assert_eq!((d.via, d.path.as_slice()), (Some(Via::Index), &b"/usr/bin/true"[..]));
}

#[test]
fn an_exited_exec_in_the_container_root_is_resolved_there_as_before() {
    // Same root: the name leads to the listed file, which is not the one
    // that ran, so the exec is judged by its (listed) name: not ok.
    let d = judge_exited_in("tmp/jail/bin/true", ".");
    assert_eq!(d.judgement.verdict, Verdict::Unverifiable, "{d:?}");
    assert_eq!((d.root, d.path.as_slice()), (None, &b"/usr/bin/true"[..]));
}
