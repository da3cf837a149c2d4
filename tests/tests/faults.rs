//! The agent under the faults an operator meets on a real node: a stalled
//! or closed stdout reader, a SIGSTOP. Each test drives the real binary
//! and checks it stays answerable, stops when told, and counts what it lost.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::fd::OwnedFd,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use verifier_tests::{agent::verifier_bin, exclusive, require_root};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

/// Status code of GET `path`, or an error if no answer within `limit`.
fn http_status(port: u16, path: &str, limit: Duration) -> Result<u16, String> {
    let mut s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), limit)
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("read: {e}"))?;
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or(out)
}

/// The agent with stdout on a pipe (its read end returned) and stderr in a
/// file, after its ready record was read.
fn start(args: &[&str], stderr: &std::path::Path) -> (Child, BufReader<std::fs::File>) {
    // Close-on-exec: a read end inherited by the agent would keep the pipe open.
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let child = Command::new(verifier_bin())
        .arg("agent")
        .args(args)
        .env("VERIFIER_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(std::fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("agent starts");
    let mut reader = BufReader::new(std::fs::File::from(read));
    let mut ready = String::new();
    reader.read_line(&mut ready).expect("ready line");
    assert!(ready.contains("\"ready\""), "first record is ready: {ready:?}");
    (child, reader)
}

fn execs(n: usize) {
    for _ in 0..n {
        Command::new("/bin/true").status().expect("exec /bin/true");
    }
}

fn sigterm_and_wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let sent = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if sent.elapsed() > limit {
            let _ = child.kill();
            panic!("the agent did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn final_stats_in(text: &str) -> Value {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["type"] == "stats" && r["final"] == true)
        .unwrap_or_else(|| panic!("no final stats on stderr: {text}"))
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
    let status = sigterm_and_wait(&mut child, Duration::from_secs(5));
    drop(reader);
    assert!(status.success(), "a stalled reader is not an error: {status}");
    let text = std::fs::read_to_string(&stderr).expect("stderr");
    let stats = final_stats_in(&text);
    let lost = stats["user"]["stdout_lost"].as_u64().unwrap_or(0);
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
    assert_eq!(status.code(), Some(3), "exit code 3 for a closed stdout: {text}");
    assert!(text.contains("stdout is closed"), "{text}");
    let stats = final_stats_in(&text);
    assert!(stats["user"]["stdout_lost"].as_u64().unwrap_or(0) > 0, "{stats}");
}

#[test]
fn a_missing_or_fifo_sbom_is_an_error_at_start() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("sbom.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let missing = dir.path().join("typo.spdx.json");
    for (file, says) in [(&fifo, "FIFO"), (&missing, "must exist")] {
        let rule = format!("app*={}", file.display());
        let started = Instant::now();
        let out = Command::new(verifier_bin())
            .args(["agent", "--no-metrics", "--sbom", &rule])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&file.display().to_string()) && err.contains(says), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    }
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
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN"), "{err}");
    assert!(!err.contains("not mounted"), "tracefs is mounted: {err}");
}
