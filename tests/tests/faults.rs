//! The agent under the faults an operator meets on a real node: a stalled
//! or closed stdout reader, a SIGSTOP. Each test drives the real binary
//! and checks it stays answerable, stops when told, and counts what it lost.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::json;
use verifier_tests::{
    agent::verifier_bin,
    exclusive,
    fault::{final_stats_in, free_port, http_status, report, sigterm_and_wait, start_piped as start},
    require_root,
};

fn execs(n: usize) {
    for _ in 0..n {
        Command::new("/bin/true").status().expect("exec /bin/true");
    }
}

#[test]
fn a_stalled_stdout_reader_loses_counted_records_not_health_or_sigterm() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = dir.path().join("stderr");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (mut child, reader) =
        start(&["--metrics-addr", &addr, "--stdout-queue-bytes", "65536", "--stats-interval", "1"], &stderr);
    // Nobody reads on: a 64 KiB pipe and a 64 KiB queue hold a few hundred
    // exec records; 1,500 execs overflow both.
    execs(1500);
    let asked = Instant::now();
    let health = http_status(port, "/healthz", Duration::from_secs(1));
    assert_eq!(health, Ok(200), "/healthz while stdout is stalled");
    assert!(asked.elapsed() < Duration::from_secs(1), "/healthz took {:?}", asked.elapsed());
    let health_ms = asked.elapsed().as_millis();
    let stopping = Instant::now();
    let status = sigterm_and_wait(&mut child, Duration::from_secs(5));
    let stop_ms = stopping.elapsed().as_millis();
    drop(reader);
    let text = std::fs::read_to_string(&stderr).expect("stderr");
    let stats = final_stats_in(&text);
    let lost = stats["user"]["stdout_lost"].as_u64().unwrap_or(0);
    report(
        "stalled stdout",
        "/healthz 200 within 1 s, exit 0 within 5 s of SIGTERM, loss in user.stdout_lost",
        json!({"healthz_ms": health_ms, "stop_ms": stop_ms, "exit": status.code(), "stdout_lost": lost}),
    );
    assert!(status.success(), "a stalled reader is not an error: {status}");
    assert!(lost > 0, "stdout_lost counted: {stats}");
}

#[test]
fn a_closed_stdout_is_said_on_stderr_and_in_the_exit_code() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = dir.path().join("stderr");
    let (mut child, reader) = start(&["--no-metrics", "--stats-interval", "1"], &stderr);
    drop(reader);
    execs(50);
    std::thread::sleep(Duration::from_millis(1500));
    let status = sigterm_and_wait(&mut child, Duration::from_secs(5));
    let text = std::fs::read_to_string(&stderr).expect("stderr");
    let stats = final_stats_in(&text);
    report(
        "closed stdout",
        "exit 3, said on stderr, final stats on stderr with user.stdout_lost",
        json!({"exit": status.code(), "stdout_lost": stats["user"]["stdout_lost"]}),
    );
    assert_eq!(status.code(), Some(3), "exit code 3 for a closed stdout: {text}");
    assert!(text.contains("stdout is closed"), "{text}");
    assert!(stats["user"]["stdout_lost"].as_u64().unwrap_or(0) > 0, "{stats}");
}

#[test]
fn a_missing_fifo_or_device_sbom_is_an_error_at_start_and_in_check() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("sbom.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let missing = dir.path().join("typo.spdx.json");
    let device = std::path::PathBuf::from("/dev/zero");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).expect("mkdir");
    let mut observed = Vec::new();
    // The agent refuses at once (exit 2) what can never be an SBOM. A
    // directory is a dpkg database directory to it: accepted at start,
    // read when an image needs it.
    let kinds = [(&fifo, "fifo"), (&missing, "missing"), (&device, "device"), (&empty, "directory")];
    let kind = |f: &std::path::Path| kinds.iter().find(|(k, _)| k.as_path() == f).map_or("?", |(_, n)| *n);
    for (file, says) in [(&fifo, "FIFO"), (&missing, "must exist"), (&device, "character device")] {
        let rule = format!("app*={}", file.display());
        let started = Instant::now();
        let out = Command::new(verifier_bin())
            .args(["agent", "--no-metrics", "--sbom", &rule])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let ms = started.elapsed().as_millis();
        observed.push(json!({"agent": kind(file), "exit": out.status.code(), "ms": ms}));
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&file.display().to_string()) && err.contains(says), "{err}");
        assert!(ms < 10_000, "took {ms} ms");
    }
    // `verifier check` reads every SBOM first: each of these is an error
    // naming the file and what it is, never a hang on the FIFO.
    for (file, says) in
        [(&fifo, "FIFO"), (&missing, "No such file"), (&device, "character device"), (&empty, "directory")]
    {
        let started = Instant::now();
        let mut child = Command::new(verifier_bin())
            .args(["check", "--sbom"])
            .arg(file)
            .arg(&rootfs)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        while child.try_wait().expect("wait").is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("verifier check --sbom {} still runs after 10 s", file.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        observed.push(
            json!({"check": kind(file), "exit": out.status.code(), "ms": started.elapsed().as_millis()}),
        );
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&file.display().to_string()) && err.contains(says), "{}: {err}", file.display());
    }
    report(
        "FIFO / device / directory / missing --sbom",
        "agent and check exit 2 at once naming the file and its type (agent: a directory is a dpkg database)",
        json!(observed),
    );
}

#[test]
fn after_a_sigstop_missed_stats_ticks_are_not_replayed() {
    require_root!();
    let _lock = exclusive();
    let agent = verifier_tests::agent::Agent::start(&["--containers-only", "--stats-interval", "1"])
        .expect("agent starts");
    let stats =
        |a: &verifier_tests::agent::Agent| a.records_so_far().iter().filter(|r| r["type"] == "stats").count();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = nix::unistd::Pid::from_raw(agent.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    std::thread::sleep(Duration::from_secs(3));
    let before = stats(&agent);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    std::thread::sleep(Duration::from_secs(1));
    let after = stats(&agent);
    report(
        "SIGSTOP / SIGCONT",
        "at most 2 stats records in the second after SIGCONT (missed ticks not replayed)",
        json!({"stats_after_sigcont": after - before}),
    );
    assert!(after - before <= 2, "{} stats records in the second after SIGCONT", after - before);
    agent.stop().expect("agent stops");
}

#[test]
fn without_privilege_the_agent_says_privilege_is_missing_not_tracefs() {
    require_root!();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(verifier_bin())
        .args(["agent", "--no-metrics"])
        .output()
        .expect("setpriv runs");
    let err = String::from_utf8_lossy(&out.stderr);
    report(
        "no privilege",
        "exit 2 saying root or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN is needed",
        json!({"exit": out.status.code()}),
    );
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN"), "{err}");
    assert!(!err.contains("not mounted"), "tracefs is mounted: {err}");
}
