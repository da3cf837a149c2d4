//! One result line per fault scenario, for `cargo xtask faults`: the root
//! fault tests print what they observed (the counters they assert on)
//! before asserting, so the table shows the numbers of a failed scenario
//! too. The line is `fault-result: {json}`; the test's own pass or fail,
//! from the test harness, decides the verdict.

use serde_json::{Value, json};

/// The prefix `cargo xtask faults` looks for in the test output.
pub const PREFIX: &str = "fault-result: ";

/// Prints the result line of the running test: `scenario` (short name),
/// `expected` (the documented behaviour, one sentence) and `observed`
/// (counters and facts as JSON). The test is named by its thread, which
/// the harness names after the test.
pub fn report(scenario: &str, expected: &str, observed: Value) {
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let line = json!({"test": test, "scenario": scenario, "expected": expected, "observed": observed});
    println!("{PREFIX}{line}");
}

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::fd::OwnedFd,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::agent::verifier_bin;

/// A loopback port nobody listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

/// Status code of GET `path`, or an error if no answer within `limit`.
pub fn http_status(port: u16, path: &str, limit: Duration) -> Result<u16, String> {
    http_get(port, path, limit).map(|(code, _)| code)
}

/// Status code and body of GET `path`, or an error if no answer within
/// `limit`.
pub fn http_get(port: u16, path: &str, limit: Duration) -> Result<(u16, String), String> {
    let mut s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), limit)
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("read: {e}"))?;
    let code = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| out.clone())?;
    Ok((code, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

/// The value of an unlabelled sample in a Prometheus exposition.
pub fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The agent with stdout on a pipe (its read end returned) and stderr in
/// `stderr`, after its ready record was read.
pub fn start_piped(args: &[&str], stderr: &Path) -> (Child, BufReader<std::fs::File>) {
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

/// SIGTERM, then waits up to `limit` for the exit (kills and panics after).
pub fn sigterm_and_wait(child: &mut Child, limit: Duration) -> ExitStatus {
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

/// The final stats record among JSON lines (other lines skipped).
pub fn final_stats_in(text: &str) -> Value {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["type"] == "stats" && r["final"] == true)
        .unwrap_or_else(|| panic!("no final stats in: {text}"))
}
