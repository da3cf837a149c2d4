//! Prometheus `/metrics` and `/healthz`, for the platform team running the
//! agent as a DaemonSet (scrape it; use `/healthz` as the liveness probe).
//!
//! The metrics are the agent's stats record, flattened: every number in
//! it becomes a sample (`kernel.seen` -> `verifier_kernel_seen_total`,
//! maps such as `alerts.emitted` a label named after the map's key kind),
//! so the two never disagree and a new counter is exported without a
//! second list to keep. Exposition rules `promtool check metrics` enforces
//! are kept here: base units (a field in another unit is renamed and
//! scaled, see [`UNITS`]), HELP naming the field a sample comes from, and
//! no series that duplicates another (the stats record's per-CPU copies of
//! the kernel counters are left out: their sums are the totals). A
//! `verifier_build_info{version}` gauge says which agent is scraped. The
//! event loop renders a snapshot every second; the server only serves it. `/healthz`
//! is 200 while snapshots are fresh, 503 with the reason otherwise (the
//! event loop stalled, or the agent is stopping). `/readyz`, the readiness
//! probe, answers the same: the first snapshot is published by the event
//! loop once the programs are attached, and a fresh one means the ring
//! buffer is being drained; before that, and once stopping, the pod takes
//! no traffic (its metrics are not scraped as healthy).
//!
//! A small HTTP/1.1 server on the agent's runtime: one request per
//! connection, an 8 KiB request cap, 2 s to send the request and 5 s in
//! all. At most 64 connections at once; when a new one arrives at the cap
//! the oldest still sending its request is dropped for it. A liveness
//! probe sends its request at once, so a crowd of idle or slow clients
//! (anyone who can reach the port) can delay it by no more than an accept,
//! and cannot get the pod restarted; refusing newcomers instead would let
//! the crowd starve every probe.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::Notify,
};

/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request.
const READ_DEADLINE: Duration = Duration::from_secs(2);
/// Time a connection may last in all.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);

/// `--metrics-addr`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on `/metrics` and a liveness probe on
    /// `/healthz` at this address (localhost by default; use
    /// `0.0.0.0:9477` for a scrape from another pod).
    #[arg(long, default_value = "127.0.0.1:9477", value_name = "ADDR")]
    pub metrics_addr: SocketAddr,

    /// Do not serve metrics.
    #[arg(long)]
    pub no_metrics: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum MetricsError {
    #[error(
        "cannot serve metrics on {addr}: {source} (another agent running? choose --metrics-addr or --no-metrics)"
    )]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Fields that are levels, not totals.
const GAUGES: &[&str] =
    &["uptime_sec", "max_rss_kib", "user_cgroups_cached", "user_throttle_active", "verify_in_flight"];

/// Fields not in base units: (field, metric name, factor to base units).
const UNITS: &[(&str, &str, f64)] =
    &[("uptime_sec", "uptime_seconds", 1.0), ("max_rss_kib", "max_rss_bytes", 1024.0)];

/// One sample: metric name (without `verifier_`), labels, value, and the
/// stats-record field it comes from.
struct Sample {
    name: String,
    labels: String,
    value: f64,
    field: String,
}

/// The latest rendering, shared with the server.
#[derive(Default)]
struct Snapshot {
    text: String,
    at: Option<Instant>,
    stopping: bool,
}

/// What the event loop updates and the server reads.
#[derive(Clone, Default)]
pub(crate) struct Shared(Arc<Mutex<Snapshot>>);

impl Shared {
    /// Publishes the stats record (a `verifier.stats.v1` value).
    pub(crate) fn publish(&self, stats: &Value) {
        let text = render(stats);
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.text = text;
        s.at = Some(Instant::now());
    }

    /// The agent is shutting down: health goes 503.
    pub(crate) fn stopping(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).stopping = true;
    }

    fn health(&self) -> Result<(), String> {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match s.at {
            _ if s.stopping => Err("the agent is stopping".into()),
            None => Err("starting: no stats yet".into()),
            Some(t) if t.elapsed() > Duration::from_secs(10) => {
                Err(format!("the event loop has not reported for {} s", t.elapsed().as_secs()))
            }
            Some(_) => Ok(()),
        }
    }
}

/// Prometheus text exposition (format 0.0.4) of a stats record.
pub(crate) fn render(stats: &Value) -> String {
    let mut samples: Vec<Sample> = Vec::new();
    flatten(stats, "", "", &mut samples);
    samples.sort_by(|a, b| a.name.cmp(&b.name).then(a.labels.cmp(&b.labels)));
    let mut out = String::new();
    let _ = writeln!(out, "# HELP verifier_build_info The agent's version; always 1.");
    let _ = writeln!(out, "# TYPE verifier_build_info gauge");
    let _ = writeln!(out, "verifier_build_info{{version=\"{}\"}} 1", escape(env!("CARGO_PKG_VERSION")));
    let mut last = String::new();
    for s in samples {
        let gauge = GAUGES.contains(&s.name.as_str());
        let (base, factor) = UNITS
            .iter()
            .find(|(field, _, _)| *field == s.name)
            .map_or((s.name.as_str(), 1.0), |(_, name, factor)| (*name, *factor));
        let full = if gauge { format!("verifier_{base}") } else { format!("verifier_{base}_total") };
        if full != last {
            let kind = if gauge { "gauge" } else { "counter" };
            let scaled = if factor == 1.0 { String::new() } else { format!(" times {factor}") };
            let _ = writeln!(
                out,
                "# HELP {full} `{}`{scaled} in the agent's stats record (docs/schema.md).",
                s.field
            );
            let _ = writeln!(out, "# TYPE {full} {kind}");
            last.clone_from(&full);
        }
        let _ = writeln!(out, "{full}{} {}", s.labels, s.value * factor);
    }
    out
}

/// Numbers in `v` as samples; `prefix` is the metric name so far, `path`
/// the field's dotted path.
fn flatten(v: &Value, prefix: &str, path: &str, out: &mut Vec<Sample>) {
    let Value::Object(map) = v else { return };
    for (k, child) in map {
        let name = sanitize(if prefix.is_empty() { k.clone() } else { format!("{prefix}_{k}") });
        let field = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        match child {
            Value::Number(n) => {
                if let Some(value) = n.as_f64() {
                    out.push(Sample { name, labels: String::new(), value, field });
                }
            }
            // Per-CPU copies of counters whose totals are exported.
            Value::Object(_) if k == "per_cpu" => {}
            Value::Object(inner) if inner.values().all(Value::is_number) && !inner.is_empty() => {
                if k == "blocks" {
                    // Keys are label lists already: `mechanism=..,verdict=..,action=..`.
                    for (key, n) in inner {
                        if let Some(value) = n.as_f64() {
                            let pairs: Vec<String> = key
                                .split(',')
                                .filter_map(|kv| kv.split_once('='))
                                .map(|(l, v)| format!("{}=\"{}\"", sanitize(l.to_owned()), escape(v)))
                                .collect();
                            let labels = format!("{{{}}}", pairs.join(","));
                            out.push(Sample { name: name.clone(), labels, value, field: field.clone() });
                        }
                    }
                } else if let Some(label) = label_of(k) {
                    for (key, n) in inner {
                        if let Some(value) = n.as_f64() {
                            let labels = format!("{{{label}=\"{}\"}}", escape(key));
                            out.push(Sample { name: name.clone(), labels, value, field: field.clone() });
                        }
                    }
                } else {
                    flatten(child, &name, &field, out);
                }
            }
            Value::Object(_) => flatten(child, &name, &field, out),
            _ => {}
        }
    }
}

/// Maps whose keys are values (verdicts, HTTP statuses), not field names:
/// the label their keys become.
fn label_of(k: &str) -> Option<&'static str> {
    match k {
        "emitted" => Some("verdict"),
        "webhook_refused" => Some("status"),
        _ => None,
    }
}

fn sanitize(s: String) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Connections being served, oldest first; those still sending their
/// request can be evicted.
#[derive(Default)]
struct Conns {
    next: u64,
    open: BTreeMap<u64, Conn>,
}

struct Conn {
    reading: bool,
    evict: Arc<Notify>,
}

type SharedConns = Arc<Mutex<Conns>>;

fn lock(conns: &SharedConns) -> std::sync::MutexGuard<'_, Conns> {
    conns.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes a slot for a new connection, evicting the oldest one still
/// sending its request when all are taken; `None` if all are answering.
fn admit(conns: &SharedConns) -> Option<(u64, Arc<Notify>)> {
    let mut c = lock(conns);
    if c.open.len() >= MAX_CONNECTIONS {
        let oldest = c.open.iter().find(|(_, conn)| conn.reading).map(|(id, _)| *id)?;
        if let Some(gone) = c.open.remove(&oldest) {
            gone.evict.notify_one();
        }
    }
    let id = c.next;
    c.next += 1;
    let evict = Arc::new(Notify::new());
    c.open.insert(id, Conn { reading: true, evict: Arc::clone(&evict) });
    Some((id, evict))
}

/// Gives the slot back when the connection ends, however it ends.
struct Slot {
    id: u64,
    conns: SharedConns,
}

impl Slot {
    /// The request is in: this connection is no longer evictable.
    fn answering(&self) {
        if let Some(c) = lock(&self.conns).open.get_mut(&self.id) {
            c.reading = false;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.conns).open.remove(&self.id);
    }
}

/// Binds `addr` now (so a bad address fails start-up) and serves in the
/// background on the current runtime.
pub(crate) async fn serve(addr: SocketAddr, shared: Shared) -> Result<SocketAddr, MetricsError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
    let conns = SharedConns::default();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            let Some((id, evict)) = admit(&conns) else {
                drop(conn); // every slot is answering: refuse rather than queue
                continue;
            };
            let slot = Slot { id, conns: Arc::clone(&conns) };
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::timeout(CONNECTION_DEADLINE, handle(&mut conn, &shared, &slot)) => {}
                    () = evict.notified() => {}
                }
                drop(slot);
            });
        }
    });
    Ok(local)
}

async fn handle(conn: &mut tokio::net::TcpStream, shared: &Shared, slot: &Slot) -> std::io::Result<()> {
    let Ok(head) = tokio::time::timeout(READ_DEADLINE, read_head(conn)).await else {
        return Ok(()); // too slow: dropped
    };
    slot.answering();
    let head = match head? {
        Head::Closed => return Ok(()),
        Head::TooLarge => return respond(conn, 431, "text/plain", "request header too large\n").await,
        Head::Request(head) => head,
    };
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = match (first.next(), first.next(), first.next()) {
        (Some(m), Some(p), Some(v)) if v.starts_with("HTTP/1.") => (m, p),
        _ => return respond(conn, 400, "text/plain", "bad request\n").await,
    };
    let path = path.split('?').next().unwrap_or(path);
    match (method, path) {
        ("GET", "/metrics") => {
            let text = shared.0.lock().unwrap_or_else(|e| e.into_inner()).text.clone();
            respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", &text).await
        }
        ("GET", "/healthz" | "/readyz") => match shared.health() {
            Ok(()) => respond(conn, 200, "text/plain", "ok\n").await,
            Err(why) => respond(conn, 503, "text/plain", &format!("{why}\n")).await,
        },
        (_, "/metrics" | "/healthz" | "/readyz") => respond(conn, 405, "text/plain", "only GET\n").await,
        _ => respond(conn, 404, "text/plain", "try /metrics, /healthz or /readyz\n").await,
    }
}

enum Head {
    Request(String),
    TooLarge,
    Closed,
}

/// The request line and headers, up to the blank line.
async fn read_head(conn: &mut tokio::net::TcpStream) -> std::io::Result<Head> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return Ok(Head::TooLarge);
        }
        let n = conn.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        len += n;
    }
    Ok(Head::Request(String::from_utf8_lossy(&buf[..len]).into_owned()))
}

async fn respond(
    conn: &mut tokio::net::TcpStream,
    status: u16,
    ctype: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
