//! The agent as a child process: started, waited for (`ready` record),
//! stopped with SIGTERM, its JSON lines parsed afterwards.
//!
//! The agent's stdout goes to a file, as it would to a log shipper's spool:
//! the harness reads nothing while a test or benchmark runs, so it takes no
//! CPU from the workload being measured.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The `verifier` binary under test: `$VERIFIER_BIN` (set by `cargo xtask
/// test`), else `verifier` in the target directory of the test executable.
pub fn verifier_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VERIFIER_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> -> target/<profile>/verifier
    exe.parent().and_then(|d| d.parent()).map(|d| d.join("verifier")).unwrap_or_default()
}

/// A running agent.
pub struct Agent {
    child: Child,
    _dir: tempfile::TempDir,
    out: PathBuf,
    pub ready: Value,
}

impl Agent {
    /// Starts `verifier agent <args>` and waits (up to 30 s) for its ready
    /// record.
    pub fn start(args: &[&str]) -> anyhow::Result<Self> {
        Self::start_bin(&verifier_bin(), args)
    }

    /// As [`Agent::start`], with an explicit binary.
    pub fn start_bin(bin: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("agent.jsonl");
        let file = std::fs::File::create(&out)?;
        // Agents of tests that run side by side must not contend for the
        // default metrics port: an unused one unless the test chose.
        let metrics: &[&str] = if args.iter().any(|a| a.starts_with("--metrics-addr") || *a == "--no-metrics")
        {
            &[]
        } else {
            &["--metrics-addr", "127.0.0.1:0"]
        };
        let mut child = Command::new(bin)
            .arg("agent")
            .args(args)
            .args(metrics)
            .env("VERIFIER_LOG", "error")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} (build it: `cargo xtask build`)", bin.display()))?;
        let started = Instant::now();
        let ready = loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some((first, _)) = text.split_once('\n') {
                break serde_json::from_str::<Value>(first)
                    .with_context(|| format!("first line is not JSON: {first}"))?;
            }
            if let Some(status) = child.try_wait()? {
                bail!("the agent exited before it was ready: {status}");
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the agent printed nothing within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if ready["type"] != "ready" {
            bail!("expected a ready record first, got {ready}");
        }
        Ok(Self { child, _dir: dir, out, ready })
    }

    /// Pid of the agent process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Records written so far (while the agent runs), after `ready`.
    pub fn records_so_far(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        // The last line may be half-written: only complete lines count.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().skip(1).filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Sends SIGTERM, waits for exit, returns every record after `ready`.
    pub fn stop(mut self) -> anyhow::Result<Vec<Value>> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("agent exited with {status}");
        }
        let text = std::fs::read_to_string(&self.out)?;
        text.lines()
            .skip(1)
            .map(|l| serde_json::from_str(l).with_context(|| format!("bad JSON line: {l}")))
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Exec records only.
pub fn execs(records: &[Value]) -> impl Iterator<Item = &Value> {
    records.iter().filter(|r| r["type"] == "exec")
}

/// The final stats record.
pub fn final_stats(records: &[Value]) -> anyhow::Result<&Value> {
    records.iter().rev().find(|r| r["type"] == "stats" && r["final"] == true).context("no final stats record")
}
