//! A real `nats-server` with JetStream for the fleet tests and the
//! benchmark (Debian's package, installed by `cargo xtask setup`), on a
//! free loopback port, storing in a directory the caller keeps, so a
//! stopped server can be started again on the same storage; and the
//! consumer side, `verifier alerts tail`, as a child process.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::agent::verifier_bin;

/// `nats-server`, where Debian installs it (or on PATH).
pub fn server_bin() -> Option<PathBuf> {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A port nothing listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running server; killed when dropped.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    pub store: PathBuf,
}

impl NatsServer {
    /// Starts `nats-server -js` on 127.0.0.1:`port`, storing in `store`,
    /// and waits (up to 10 s) until it accepts connections.
    pub fn start(port: u16, store: &Path) -> anyhow::Result<Self> {
        let bin = server_bin().context("nats-server is not installed: run `cargo xtask setup`")?;
        let mut child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("nats-server exited at start: {status}");
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("nats-server did not listen on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, port, store: store.to_owned() })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server (as a crash would: no goodbye to its clients).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `verifier alerts tail --nats URL --from-start --count N --timeout S`
/// plus `extra`: the records it printed, and whether it reached N.
pub fn tail(
    url: &str,
    count: usize,
    timeout: Duration,
    extra: &[&str],
) -> anyhow::Result<(Vec<Value>, bool)> {
    let out = Command::new(verifier_bin())
        .args(["alerts", "tail", "--nats", url, "--from-start", "--count"])
        .arg(count.to_string())
        .arg("--timeout")
        .arg(timeout.as_secs().max(1).to_string())
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running verifier alerts tail")?;
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect::<anyhow::Result<Vec<Value>>>()?;
    match out.status.code() {
        Some(0) => Ok((records, true)),
        Some(1) => Ok((records, false)),
        _ => bail!("verifier alerts tail failed: {}", out.status),
    }
}
