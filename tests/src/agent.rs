//! The agent as a child process: started, waited for (`ready` record),
//! stopped with SIGTERM, its JSON lines collected and parsed.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The `verifier` binary under test: `$VERIFIER_BIN` (set by `cargo xtask
/// test`), else `target/release/verifier` or `target/debug/verifier` next to
/// the test executable.
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
    lines: mpsc::Receiver<String>,
    pub ready: Value,
}

impl Agent {
    /// Starts `verifier agent <args>` and waits (up to 30 s) for its ready
    /// record.
    pub fn start(args: &[&str]) -> anyhow::Result<Self> {
        let bin = verifier_bin();
        let mut child = Command::new(&bin)
            .arg("agent")
            .args(args)
            .env("VERIFIER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} (build it: `cargo xtask build`)", bin.display()))?;
        let stdout = child.stdout.take().context("agent stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(30))
            .context("the agent printed nothing within 30 s")?;
        let ready: Value = serde_json::from_str(&first).context("first line is not JSON")?;
        if ready["type"] != "ready" {
            bail!("expected a ready record first, got {first}");
        }
        Ok(Self { child, lines, ready })
    }

    /// Pid of the agent process.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        self.lines.iter().map(|l| serde_json::from_str(&l).with_context(|| format!("bad JSON line: {l}"))).collect()
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
    records
        .iter()
        .rev()
        .find(|r| r["type"] == "stats" && r["final"] == true)
        .context("no final stats record")
}
