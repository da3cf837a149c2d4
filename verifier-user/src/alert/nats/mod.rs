//! The NATS JetStream sink: every alert record published to a durable
//! stream that all the fleet's nodes publish to and security teams consume
//! (`verifier alerts tail`, the `nats` CLI, any JetStream client).
//!
//! A record counts as delivered only when the server acknowledged it, that
//! is once the stream has stored it. Submitting never waits on the network:
//! records go to a queue bounded in bytes, which a background task drains,
//! several publishes in flight at once. A publish that fails or is not
//! acknowledged in time (the server is down, restarting, or the stream is
//! missing) goes back to the front of the queue and is tried again with
//! exponential backoff, for as long as the queue has room: while the
//! server is away the queue is the buffer, and what does not fit in it is
//! lost, counted. Only a record the server can never take (larger than its
//! `max_payload`) is given up at once, counted too.
//!
//! A retry can store a record twice: the server may have stored the first
//! try and died before its acknowledgement arrived. Each record therefore
//! carries a `Nats-Msg-Id` derived from its bytes, the same on every try,
//! and JetStream drops a second message with the same id within the
//! stream's duplicate window. The id is not the alert id alone: an alert id
//! names (image, file, verdict), so it is the same on every node running
//! the image and on the alert's updates, and the server would drop those as
//! duplicates. The alert id travels in its own header instead.
//!
//! The agent creates the stream when it is missing (subjects
//! `verifier.alerts.>`, file storage), or with `--alert-nats-no-create`
//! only checks that it exists, for deployments whose streams are managed
//! by their operators.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::ServerAddr;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;

use super::{
    AlertStats,
    sink::{Finishing, Sink},
};

/// The stream the agent creates, and what it takes.
pub(crate) const DEFAULT_STREAM: &str = "VERIFIER_ALERTS";
pub(crate) const SUBJECT_PREFIX: &str = "verifier.alerts";

#[derive(Debug, thiserror::Error)]
pub(crate) enum NatsError {
    #[error(
        "NATS server {url:?}: {reason}; expected nats://host:port (or tls://host:port), several separated by commas"
    )]
    Url { url: String, reason: String },
    #[error(
        "NATS subject {0:?}: expected dot-separated tokens without spaces or wildcards, e.g. verifier.alerts.node1"
    )]
    Subject(String),
    #[error(
        "JetStream stream name {0:?}: expected letters, digits, `-` or `_` (no spaces, dots, `*`, `>`, slashes)"
    )]
    Stream(String),
    #[error(
        "NATS credentials {path}: {source}; give a .creds file (user JWT and nkey seed, as `nsc` writes)"
    )]
    Creds { path: PathBuf, source: std::io::Error },
    #[error("starting the NATS publishing thread: {0}")]
    Runtime(std::io::Error),
}

/// The servers in `urls` (comma-separated).
pub(crate) fn servers(urls: &str) -> Result<Vec<ServerAddr>, NatsError> {
    urls.split(',')
        .map(|u| {
            u.trim()
                .parse::<ServerAddr>()
                .map_err(|e| NatsError::Url { url: u.to_owned(), reason: e.to_string() })
        })
        .collect()
}

/// Connection options shared by the sink and `alerts tail`: reconnect for
/// ever, the client named for the server's monitoring, credentials when
/// given (read now, so a bad file stops the start, not the first publish).
/// `retry_initial`: a server not up yet is waited for (the agent) rather
/// than an error (a reader at a terminal).
pub(crate) fn connect_options(
    name: String,
    creds: Option<&Path>,
    retry_initial: bool,
) -> Result<async_nats::ConnectOptions, NatsError> {
    let opts = match creds {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| NatsError::Creds { path: path.to_owned(), source })?;
            async_nats::ConnectOptions::with_credentials(&text)
                .map_err(|source| NatsError::Creds { path: path.to_owned(), source })?
        }
        None => async_nats::ConnectOptions::new(),
    };
    let opts = opts.name(name).max_reconnects(None).connection_timeout(Duration::from_secs(5));
    Ok(if retry_initial { opts.retry_on_initial_connect() } else { opts })
}

/// `subject` is a literal subject to publish on.
pub(crate) fn check_subject(subject: &str) -> Result<(), NatsError> {
    let ok = !subject.is_empty()
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">" && !t.contains(char::is_whitespace));
    if ok { Ok(()) } else { Err(NatsError::Subject(subject.to_owned())) }
}

pub(crate) fn check_stream(name: &str) -> Result<(), NatsError> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(NatsError::Stream(name.to_owned())) }
}

/// `verifier.alerts.<node>`, the node name made one subject token.
pub(crate) fn default_subject(node: &str) -> String {
    let token: String = node
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    format!("{SUBJECT_PREFIX}.{}", if token.is_empty() { "_" } else { &token })
}

/// Whether the subject filter `pattern` (with `*` and `>`) takes `subject`.
pub(crate) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for p in pattern.split('.') {
        match (p, s.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}

/// What the agent creates: `verifier.alerts.>` for subjects under it (the
/// whole fleet in one stream), else the subject alone.
fn stream_subjects(subject: &str) -> Vec<String> {
    let fleet = format!("{SUBJECT_PREFIX}.>");
    vec![if subject_matches(&fleet, subject) { fleet } else { subject.to_owned() }]
}

/// Where and how to publish.
#[derive(Clone, Debug)]
pub(crate) struct NatsConfig {
    pub servers: Vec<ServerAddr>,
    pub subject: String,
    pub stream: String,
    /// Create the stream when missing (else only check it exists).
    pub create: bool,
    pub creds: Option<PathBuf>,
    pub node: String,
    /// Bytes of records waiting (in flight included) at most.
    pub queue_bytes: usize,
    /// Publishes awaiting their acknowledgement at once.
    pub in_flight: usize,
    pub ack_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl NatsConfig {
    pub(crate) fn new(urls: &str, node: &str) -> Result<Self, NatsError> {
        Ok(Self {
            servers: servers(urls)?,
            subject: default_subject(node),
            stream: DEFAULT_STREAM.to_owned(),
            create: true,
            creds: None,
            node: node.to_owned(),
            queue_bytes: 64 << 20,
            in_flight: 64,
            ack_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
        })
    }
}

/// Delivery counters.
#[derive(Debug, Default)]
pub(crate) struct NatsStats {
    /// Acknowledged by the server (stored, or dropped there as a duplicate).
    pub sent: AtomicU64,
    /// Of `sent`: acknowledged as a duplicate of an earlier try.
    pub duplicates: AtomicU64,
    /// Publishes tried again.
    pub retries: AtomicU64,
    pub lost: AtomicU64,
}

/// One record and its message id (the same on every try).
struct Record {
    payload: Bytes,
    id: String,
    alert_id: Option<String>,
}

impl Record {
    fn new(line: &[u8]) -> Self {
        let id = hex::encode(&Sha256::digest(line)[..16]);
        Self { payload: Bytes::copy_from_slice(line), id, alert_id: alert_id(line) }
    }
}

/// The alert id in a record of any format, for the `Verifier-Alert-Id`
/// header: native `alert_id`, Falco `output_fields["verifier.alert_id"]`,
/// OCSF `finding_info.uid`.
fn alert_id(line: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    [&v["alert_id"], &v["output_fields"]["verifier.alert_id"], &v["finding_info"]["uid"]]
        .into_iter()
        .find_map(|x| x.as_str().map(str::to_owned))
}

#[derive(Default)]
struct Queue {
    records: VecDeque<Record>,
    /// Bytes queued plus in flight.
    bytes: usize,
    /// Records taken by the task and not yet acknowledged, given up or
    /// put back.
    in_flight: usize,
    closed: bool,
}

/// What the sink and its task share.
struct Shared {
    queue: Mutex<Queue>,
    /// A record was queued or the queue closed.
    wake: Notify,
    /// The shutdown deadline passed: stop now.
    stop: Notify,
    stats: NatsStats,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lose(&self, n: usize) {
        self.stats.lost.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The running sink.
pub(crate) struct Nats {
    shared: Arc<Shared>,
    cap: usize,
    /// Fires when the publishing thread has finished.
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Nats {
    /// Starts the publishing task on a thread of its own, with its own
    /// runtime: the client's reading, writing and acknowledgement work
    /// (and the TLS, when used) then never takes the event loop's thread,
    /// which an alert burst would otherwise share with it (measured: a
    /// first-sight storm, every exec an alert, ran 31% slower with the
    /// task on the event loop). It connects (and reconnects) on its own, so
    /// a server that is not up yet only delays delivery.
    pub(crate) fn start(cfg: NatsConfig) -> Result<Self, NatsError> {
        let opts = connect_options(format!("verifier {}", cfg.node), cfg.creds.as_deref(), true)?;
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Notify::new(),
            stop: Notify::new(),
            stats: NatsStats::default(),
        });
        let cap = cfg.queue_bytes.max(1);
        let (tx, done) = tokio::sync::oneshot::channel();
        let theirs = shared.clone();
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(NatsError::Runtime)?;
        std::thread::Builder::new()
            .name("nats".into())
            .spawn(move || {
                runtime.block_on(publisher::run(cfg, opts, theirs));
                let _ = tx.send(());
            })
            .map_err(NatsError::Runtime)?;
        Ok(Self { shared, cap, done: Some(done) })
    }

    /// Queues one record; past the byte bound, or after shutdown, it is
    /// lost (counted).
    pub(crate) fn send(&self, line: &[u8]) {
        let mut q = self.shared.queue();
        if q.closed || q.bytes + line.len() > self.cap {
            drop(q);
            self.shared.lose(1);
            return;
        }
        q.bytes += line.len();
        q.records.push_back(Record::new(line));
        drop(q);
        self.shared.wake.notify_one();
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> &NatsStats {
        &self.shared.stats
    }

    /// Delivers what is queued within `deadline`; the rest is lost
    /// (counted), and so is anything sent afterwards.
    pub(crate) async fn shutdown(&mut self, deadline: Duration) {
        self.shared.queue().closed = true;
        self.shared.wake.notify_one();
        let Some(mut done) = self.done.take() else { return };
        if tokio::time::timeout(deadline, &mut done).await.is_err() {
            self.shared.stop.notify_one();
            let _ = done.await;
        }
    }
}

impl Sink for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn write(&mut self, lines: &[Vec<u8>], _stdout: &mut dyn std::io::Write) -> std::io::Result<()> {
        for l in lines {
            self.send(l);
        }
        Ok(())
    }

    fn finish(&mut self, deadline: Duration) -> Finishing<'_> {
        Box::pin(self.shutdown(deadline))
    }

    fn add_stats(&self, stats: &mut AlertStats) {
        let s = &self.shared.stats;
        stats.nats_sent += s.sent.load(Ordering::Relaxed);
        stats.nats_duplicates += s.duplicates.load(Ordering::Relaxed);
        stats.nats_retries += s.retries.load(Ordering::Relaxed);
        stats.nats_lost += s.lost.load(Ordering::Relaxed);
    }
}

mod publisher;

#[cfg(test)]
mod tests;
