//! The HTTP webhook sink: alerts POSTed as JSON arrays, batched by count
//! and time, retried with exponential backoff on connection errors, 5xx
//! and 429 (honouring `Retry-After`), behind a bounded queue. Submitting
//! never waits on the network; what cannot be delivered (queue full, a 4xx,
//! retries exhausted, shutdown deadline) is counted as lost and reported.
//!
//! Plain HTTP/1.1 on a tokio socket, one connection per batch: alert
//! volume after dedup and rate limiting is low, and a small client has no
//! TLS or pooling to go wrong. For https, run a local relay (an ingress
//! sidecar, stunnel) and point `--webhook-url` at it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::mpsc,
};

use super::{
    AlertStats,
    sink::{Finishing, Sink},
};

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook URL {0:?}: only http://host[:port][/path] is supported (for https, run a local relay)")]
    Url(String),
}

/// Where and how to deliver.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub batch_max: usize,
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
    pub fn new(url: &str) -> Result<Self, WebhookError> {
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
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub sent: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    pub failed_batches: AtomicU64,
    pub lost: AtomicU64,
}

/// The running sink.
pub struct Webhook {
    /// `None` once shut down: what is written then is lost (counted).
    tx: Option<mpsc::Sender<Vec<u8>>>,
    stats: Arc<WebhookStats>,
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<tokio::sync::Notify>,
}

impl Webhook {
    /// Spawns the delivery task on the current runtime.
    pub fn start(cfg: WebhookConfig) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue_cap.max(1));
        let stats = Arc::new(WebhookStats::default());
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(deliver(cfg, rx, stats.clone(), stop.clone()));
        Self { tx: Some(tx), stats, task: Some(task), stop }
    }

    /// Queues one JSON object; a full queue loses it (counted).
    pub fn send(&self, line: Vec<u8>) {
        if self.tx.as_ref().is_none_or(|tx| tx.try_send(line).is_err()) {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Delivers what is queued within `deadline`; the rest is lost
    /// (counted), and so is anything sent afterwards.
    pub async fn shutdown(&mut self, deadline: Duration) {
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

    fn add_stats(&self, stats: &mut AlertStats) {
        stats.webhook_sent += self.stats.sent.load(Ordering::Relaxed);
        stats.webhook_retries += self.stats.retries.load(Ordering::Relaxed);
        stats.webhook_lost += self.stats.lost.load(Ordering::Relaxed);
    }
}

async fn deliver(
    cfg: WebhookConfig,
    mut rx: mpsc::Receiver<Vec<u8>>,
    stats: Arc<WebhookStats>,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut open = true;
    let mut stopping = false;
    while open || !batch.is_empty() {
        if open && batch.len() < cfg.batch_max {
            let wait = if batch.is_empty() { Duration::from_secs(3600) } else { cfg.batch_interval };
            tokio::select! {
                got = rx.recv() => match got {
                    Some(line) => { batch.push(line); continue; }
                    None => open = false,
                },
                () = tokio::time::sleep(wait) => {}
            }
            if batch.is_empty() {
                continue;
            }
        }
        let n = batch.len() as u64;
        let delivered = tokio::select! {
            ok = post_with_retries(&cfg, &batch, &stats) => ok,
            () = stop.notified() => { stopping = true; false }
        };
        batch.clear();
        if delivered {
            stats.sent.fetch_add(n, Ordering::Relaxed);
            stats.batches.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            stats.lost.fetch_add(n, Ordering::Relaxed);
        }
        if stopping {
            // The shutdown deadline passed: what is still queued is lost.
            rx.close();
            while rx.recv().await.is_some() {
                stats.lost.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    }
}

/// Whether the batch was delivered.
async fn post_with_retries(cfg: &WebhookConfig, batch: &[Vec<u8>], stats: &WebhookStats) -> bool {
    let mut body = Vec::with_capacity(batch.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, l) in batch.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(l);
    }
    body.push(b']');
    let mut backoff = cfg.backoff_initial;
    for attempt in 0..=cfg.retries {
        if attempt > 0 {
            stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        let wait = match tokio::time::timeout(cfg.timeout, post(cfg, &body)).await {
            Ok(Ok((status, _))) if (200..300).contains(&status) => return true,
            Ok(Ok((status, retry_after))) if status == 429 || status >= 500 => {
                tracing::debug!("webhook answered {status}; retrying");
                retry_after.map(|s| Duration::from_secs(s).min(cfg.backoff_max)).unwrap_or(backoff)
            }
            Ok(Ok((status, _))) => {
                tracing::warn!(
                    "webhook refused a batch of {} alerts with HTTP {status}: not retried",
                    batch.len()
                );
                return false;
            }
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
    tracing::warn!(
        "webhook: a batch of {} alerts was not delivered after {} tries",
        batch.len(),
        cfg.retries + 1
    );
    false
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
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_what_is_supported() {
        let c = WebhookConfig::new("http://collector.local:8080/alerts?x=1").expect("url");
        assert_eq!((c.host.as_str(), c.port, c.path.as_str()), ("collector.local", 8080, "/alerts?x=1"));
        let c = WebhookConfig::new("http://10.0.0.1").expect("url");
        assert_eq!((c.port, c.path.as_str()), (80, "/"));
        for bad in ["https://x/", "ftp://x", "http://:80/", "http://x:notaport/"] {
            assert!(WebhookConfig::new(bad).expect_err(bad).to_string().contains("relay"), "{bad}");
        }
    }
}
