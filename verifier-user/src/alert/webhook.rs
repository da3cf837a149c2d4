//! The HTTP webhook sink: alerts POSTed in the body shape the receiver
//! decodes ([`Body`]): one JSON object per request for Falco receivers
//! (falcosidekick and Falco's own HTTP output decode exactly one event and
//! answer 400 to an array), JSON arrays batched by count and time for the
//! others. A batch goes out at most `batch_interval` after its *first*
//! alert, however many follow, so a steady trickle cannot hold it back.
//! Retried with exponential backoff on connection errors, 5xx, 408 and 429
//! (honouring `Retry-After`), behind a bounded queue. Submitting never
//! waits on the network; what cannot be delivered (queue full, another
//! 4xx, retries exhausted, shutdown deadline) is counted as lost, refusals
//! by HTTP status.
//!
//! Plain HTTP/1.1 on a tokio socket, one connection per batch: alert
//! volume after dedup and rate limiting is low, and a small client has no
//! TLS or pooling to go wrong. For https, run a local relay (an ingress
//! sidecar, stunnel) and point `--webhook-url` at it.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::mpsc,
    time::Instant,
};

use super::{
    AlertStats,
    sink::{Finishing, LastRecord, Sink},
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    #[error("webhook URL {0:?}: only http://host[:port][/path] is supported (for https, run a local relay)")]
    Url(String),
}

/// What one request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// A JSON array of up to `batch_max` records.
    Array,
    /// Exactly one JSON object (Falco's HTTP output; what falcosidekick
    /// decodes): `batch_max` is ignored.
    Single,
}

/// Where and how to deliver.
#[derive(Clone, Debug)]
pub(crate) struct WebhookConfig {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub body: Body,
    pub batch_max: usize,
    /// A batch leaves at most this long after its first record.
    pub batch_interval: Duration,
    pub queue_cap: usize,
    pub retries: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub timeout: Duration,
    /// Extra headers (`Authorization: ...`), never logged.
    pub headers: Vec<(String, String)>,
}

impl WebhookConfig {
    /// Defaults for `url`.
    pub(crate) fn new(url: &str) -> Result<Self, WebhookError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| WebhookError::Url(url.into()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| WebhookError::Url(url.into()))?),
            None => (authority, 80),
        };
        if host.is_empty() || path.contains(char::is_whitespace) {
            return Err(WebhookError::Url(url.into()));
        }
        Ok(Self {
            host: host.into(),
            port,
            path: path.into(),
            body: Body::Array,
            batch_max: 100,
            batch_interval: Duration::from_secs(1),
            queue_cap: 10_000,
            retries: 5,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            headers: Vec::new(),
        })
    }

    /// Records per request at most.
    fn per_request(&self) -> usize {
        match self.body {
            Body::Array => self.batch_max.max(1),
            Body::Single => 1,
        }
    }
}

/// Delivery counters.
#[derive(Debug, Default)]
pub(crate) struct WebhookStats {
    pub sent: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    pub failed_batches: AtomicU64,
    pub lost: AtomicU64,
    /// Records lost to a refusal, by HTTP status.
    pub refused: Mutex<BTreeMap<u16, u64>>,
}

/// The running sink.
pub(crate) struct Webhook {
    /// `None` once shut down: what is written then is lost (counted).
    tx: Option<mpsc::Sender<Vec<u8>>>,
    stats: Arc<WebhookStats>,
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<tokio::sync::Notify>,
    /// For the one request after shutdown ([`Sink::last_record`]).
    cfg: WebhookConfig,
}

impl Webhook {
    /// Spawns the delivery task on the current runtime.
    pub(crate) fn start(cfg: WebhookConfig) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue_cap.max(1));
        let stats = Arc::new(WebhookStats::default());
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(deliver(cfg.clone(), rx, stats.clone(), stop.clone()));
        Self { tx: Some(tx), stats, task: Some(task), stop, cfg }
    }

    /// Queues one JSON object; a full queue loses it (counted).
    pub(crate) fn send(&self, line: Vec<u8>) {
        if self.tx.as_ref().is_none_or(|tx| tx.try_send(line).is_err()) {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Delivers what is queued within `deadline`; the rest is lost
    /// (counted), and so is anything sent afterwards.
    pub(crate) async fn shutdown(&mut self, deadline: Duration) {
        self.tx = None;
        let Some(mut task) = self.task.take() else { return };
        if tokio::time::timeout(deadline, &mut task).await.is_err() {
            // Interrupt the delivery in progress; the task counts what it
            // still holds as lost and ends.
            self.stop.notify_one();
            let _ = task.await;
        }
    }
}

impl Sink for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn write(&mut self, lines: &[Vec<u8>], _stdout: &mut dyn std::io::Write) -> std::io::Result<()> {
        for l in lines {
            self.send(l.clone());
        }
        Ok(())
    }

    fn finish(&mut self, deadline: Duration) -> Finishing<'_> {
        Box::pin(self.shutdown(deadline))
    }

    /// One POST in the configured body shape, not retried: the agent is
    /// stopping and `deadline` bounds the wait.
    fn last_record(&mut self, line: &[u8], deadline: Duration) -> LastRecord<'_> {
        let body = body(self.cfg.body, &[line.to_vec()]);
        Box::pin(async move {
            let sent = tokio::time::timeout(deadline, post(&self.cfg, &body)).await;
            matches!(sent, Ok(Ok((status, _))) if classify(status) == Outcome::Delivered)
        })
    }

    fn add_stats(&self, stats: &mut AlertStats) {
        stats.webhook_sent += self.stats.sent.load(Ordering::Relaxed);
        stats.webhook_retries += self.stats.retries.load(Ordering::Relaxed);
        stats.webhook_lost += self.stats.lost.load(Ordering::Relaxed);
        for (status, n) in self.stats.refused.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            *stats.webhook_refused.entry(status.to_string()).or_default() += n;
        }
    }
}

/// Records waiting to be posted, and when they must leave: the first
/// record sets the deadline, later ones never move it.
#[derive(Default)]
struct Pending {
    lines: Vec<Vec<u8>>,
    due: Option<Instant>,
}

impl Pending {
    fn push(&mut self, line: Vec<u8>, now: Instant, interval: Duration) {
        if self.lines.is_empty() {
            self.due = Some(now + interval);
        }
        self.lines.push(line);
    }

    /// Whether the batch must go now: full, or its deadline passed.
    fn ready(&self, now: Instant, max: usize) -> bool {
        !self.lines.is_empty() && (self.lines.len() >= max || self.due.is_some_and(|d| now >= d))
    }

    fn take(&mut self) -> Vec<Vec<u8>> {
        self.due = None;
        std::mem::take(&mut self.lines)
    }
}

async fn deliver(
    cfg: WebhookConfig,
    mut rx: mpsc::Receiver<Vec<u8>>,
    stats: Arc<WebhookStats>,
    stop: Arc<tokio::sync::Notify>,
) {
    let max = cfg.per_request();
    let mut pending = Pending::default();
    let mut open = true;
    let mut stopping = false;
    while open || !pending.lines.is_empty() {
        if open && !pending.ready(Instant::now(), max) {
            let due = pending.due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                got = rx.recv() => match got {
                    Some(line) => pending.push(line, Instant::now(), cfg.batch_interval),
                    None => open = false,
                },
                () = tokio::time::sleep_until(due) => {}
            }
            if open && !pending.ready(Instant::now(), max) {
                continue;
            }
            if pending.lines.is_empty() {
                continue;
            }
        }
        let batch = pending.take();
        let n = batch.len() as u64;
        let outcome = tokio::select! {
            o = post_with_retries(&cfg, &batch, &stats) => o,
            () = stop.notified() => { stopping = true; Outcome::Retry }
        };
        match outcome {
            Outcome::Delivered => {
                stats.sent.fetch_add(n, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Refused(status) => {
                *stats.refused.lock().unwrap_or_else(|e| e.into_inner()).entry(status).or_default() += n;
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                stats.lost.fetch_add(n, Ordering::Relaxed);
            }
            Outcome::Retry => {
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                stats.lost.fetch_add(n, Ordering::Relaxed);
            }
        }
        if stopping {
            // The shutdown deadline passed: what is still queued is lost.
            stats.lost.fetch_add(pending.take().len() as u64, Ordering::Relaxed);
            rx.close();
            while rx.recv().await.is_some() {
                stats.lost.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    }
}

/// What an answer means for the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// Worth another try (or, as the final result, retries exhausted).
    Retry,
    /// Refused for good: the same request would be refused again.
    Refused(u16),
}

/// 2xx delivered; 408 (timeout), 429 (slow down) and 5xx retried; any
/// other status refused (a 4xx means this body will never be accepted).
fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry,
        s => Outcome::Refused(s),
    }
}

/// The request body for `batch`.
fn body(shape: Body, batch: &[Vec<u8>]) -> Vec<u8> {
    if shape == Body::Single
        && let [one] = batch
    {
        return one.clone();
    }
    let mut body = Vec::with_capacity(batch.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, l) in batch.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(l);
    }
    body.push(b']');
    body
}

async fn post_with_retries(cfg: &WebhookConfig, batch: &[Vec<u8>], stats: &WebhookStats) -> Outcome {
    let body = body(cfg.body, batch);
    let mut backoff = cfg.backoff_initial;
    for attempt in 0..=cfg.retries {
        if attempt > 0 {
            stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        let wait = match tokio::time::timeout(cfg.timeout, post(cfg, &body)).await {
            Ok(Ok((status, retry_after))) => match classify(status) {
                Outcome::Delivered => return Outcome::Delivered,
                Outcome::Refused(s) => {
                    tracing::warn!("webhook refused {} alerts with HTTP {s}: not retried", batch.len());
                    return Outcome::Refused(s);
                }
                Outcome::Retry => {
                    tracing::debug!("webhook answered {status}; retrying");
                    retry_after.map(|s| Duration::from_secs(s).min(cfg.backoff_max)).unwrap_or(backoff)
                }
            },
            Ok(Err(e)) => {
                tracing::debug!("webhook: {e}; retrying");
                backoff
            }
            Err(_) => backoff,
        };
        if attempt < cfg.retries {
            // Jitter: up to a quarter more, so many nodes do not retry in step.
            let jitter =
                Duration::from_nanos(u64::from(std::process::id()) % (wait.as_nanos() as u64 / 4 + 1));
            tokio::time::sleep(wait + jitter).await;
            backoff = (backoff * 2).min(cfg.backoff_max);
        }
    }
    tracing::warn!("webhook: {} alerts were not delivered after {} tries", batch.len(), cfg.retries + 1);
    Outcome::Retry
}

/// One POST; returns the status and `Retry-After` seconds.
async fn post(cfg: &WebhookConfig, body: &[u8]) -> std::io::Result<(u16, Option<u64>)> {
    let mut stream = TcpStream::connect((cfg.host.as_str(), cfg.port)).await?;
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: verifier/{}\r\nConnection: close\r\n",
        cfg.path,
        cfg.host,
        cfg.port,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in &cfg.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return Err(std::io::Error::other("response head over 4 KiB"));
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line in the response"))?;
    let retry_after = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("retry-after").then(|| v.trim().parse().ok())?
    });
    Ok((status, retry_after))
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
