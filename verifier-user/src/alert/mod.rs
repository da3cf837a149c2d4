//! The alert stream: drift findings, deduplicated, rate limited, formatted
//! (`native`, `falco`, `ocsf`) and written to the sinks security teams
//! consume: stdout (next to the agent's other records), a rotated file,
//! an HTTP webhook, a NATS JetStream stream, each a `sink::Sink` that
//! [`Alerts`] only knows by that trait. Every alert that is not written is counted: dedup repeats
//! end up in `alert-update` records, rate-limited ones in
//! `alert-suppressed` records, and sink failures in the stats.
//!
//! Runs on the agent's event loop: [`Alerts::submit`] formats and writes
//! synchronously (stdout is buffered, the file appended to, the webhook
//! only queues), so an alert is out as soon as its verdict is.

pub(crate) mod dedup;
pub(crate) mod file;
pub(crate) mod finding;
pub(crate) mod format;
pub(crate) mod nats;
pub(crate) mod ratelimit;
pub(crate) mod sink;
pub(crate) mod webhook;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

pub(crate) use finding::Finding;
pub(crate) use format::Format;
use sink::Sink;

/// Options of `verifier agent` for the alert stream.
#[derive(Debug, Clone, clap::Args)]
pub struct AlertArgs {
    /// Shape of alert records: `native` (`verifier.alert.v1`, see
    /// docs/alerts.md), `falco` (Falco's JSON output, for falcosidekick),
    /// `ocsf` (OCSF 1.1 Detection Finding).
    #[arg(long, value_enum, default_value = "native", value_name = "FORMAT")]
    pub alert_format: Format,

    /// Also append alerts to FILE (JSON lines), rotated by size.
    #[arg(long, value_name = "FILE")]
    pub alert_file: Option<PathBuf>,

    /// Rotate the alert file past this size (0: never).
    #[arg(long, default_value_t = 100 << 20, value_name = "BYTES")]
    pub alert_file_max_bytes: u64,

    /// Rotated alert files kept (FILE.1 .. FILE.N).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub alert_file_keep: u32,

    /// Do not write alerts on stdout (by default they go there too, as
    /// `type: "alert"` lines among the exec records).
    #[arg(long)]
    pub no_alert_stdout: bool,

    /// POST alerts to this http:// URL (retried, bounded queue;
    /// undelivered alerts are counted in the stats). `falco`: one event
    /// per request, as Falco posts and falcosidekick decodes; `native`,
    /// `ocsf`: JSON arrays of up to `--webhook-batch` alerts.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,

    /// Alerts per webhook request at most (`native`, `ocsf`; `falco`
    /// always sends one).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub webhook_batch: usize,

    /// A webhook batch leaves at most this many milliseconds after its
    /// first alert, whatever arrives later.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub webhook_flush_ms: u64,

    /// Alerts waiting for the webhook at most; past this they are lost
    /// (counted).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub webhook_queue: usize,

    /// Extra webhook header NAME whose value is read from environment
    /// variable VAR (e.g. `Authorization=WEBHOOK_TOKEN`), so secrets stay
    /// out of the command line. Repeatable.
    #[arg(long = "webhook-header-env", value_name = "NAME=VAR")]
    pub webhook_headers: Vec<String>,

    /// Publish alerts to NATS JetStream at this server (`nats://host:4222`,
    /// `tls://...`; several separated by commas). Each record is counted
    /// sent once the server acknowledged storing it; retried with backoff
    /// while the server is away, behind a queue of
    /// `--alert-nats-queue-bytes`; what does not fit is lost (counted in
    /// the stats). docs/alerts.md.
    #[arg(long, value_name = "URL")]
    pub alert_nats: Option<String>,

    /// Subject to publish on [default: verifier.alerts.<node name>].
    #[arg(long, value_name = "SUBJECT", requires = "alert_nats")]
    pub alert_nats_subject: Option<String>,

    /// JetStream stream that stores the alerts; created when missing, with
    /// subjects `verifier.alerts.>` and file storage.
    #[arg(long, default_value = nats::DEFAULT_STREAM, value_name = "NAME", requires = "alert_nats")]
    pub alert_nats_stream: String,

    /// Do not create the stream: only check that it exists and takes the
    /// subject (streams managed by their operators).
    #[arg(long, requires = "alert_nats")]
    pub alert_nats_no_create: bool,

    /// NATS credentials file (`.creds`: user JWT and nkey seed).
    #[arg(long, value_name = "FILE", requires = "alert_nats")]
    pub alert_nats_creds: Option<PathBuf>,

    /// Bytes of alert records waiting for the NATS server at most; past
    /// this they are lost (counted).
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub alert_nats_queue_bytes: usize,

    /// Seconds between `alert-update` records for repeated alerts.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub alert_update_interval: u64,

    /// Distinct alerts remembered for dedup (the least recently seen go
    /// first, their repeats reported).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub alert_dedup_capacity: usize,

    /// New alerts per second after the burst (0: unlimited); the rest are
    /// summarized in `alert-suppressed` records.
    #[arg(long, default_value_t = 100, value_name = "PER_SEC")]
    pub alert_rate: u32,

    /// Alerts allowed at once before the rate applies.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub alert_burst: u32,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AlertError {
    #[error(transparent)]
    File(#[from] file::FileSinkError),
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
    #[error("--alert-nats: {0}")]
    Nats(#[from] nats::NatsError),
    #[error("--webhook-header-env {0:?}: expected NAME=VAR with VAR set in the environment")]
    Header(String),
}

/// What the alert stream did (in the stats record).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct AlertStats {
    /// Alerts emitted, by verdict.
    pub emitted: BTreeMap<&'static str, u64>,
    /// Repeats folded into existing alerts.
    pub repeats: u64,
    pub updates: u64,
    /// Held back by the rate limit (summarized, by verdict, in
    /// `alert-suppressed` records).
    pub suppressed: u64,
    pub dedup_evicted: u64,
    pub file_errors: u64,
    pub file_rotations: u64,
    /// The alert file was deleted or replaced under the agent: opened anew.
    pub file_reopens: u64,
    pub webhook_sent: u64,
    pub webhook_retries: u64,
    pub webhook_lost: u64,
    /// Of `webhook_lost`: alerts the receiver refused for good, by HTTP
    /// status (a 4xx other than 408 and 429 is not retried).
    pub webhook_refused: BTreeMap<String, u64>,
    /// Alert records the NATS server acknowledged (stored; duplicates
    /// included).
    pub nats_sent: u64,
    /// Of `nats_sent`: acknowledged as a duplicate of an earlier try (the
    /// server had stored it, its acknowledgement was lost).
    pub nats_duplicates: u64,
    /// Publishes tried again (server away, no acknowledgement in time).
    pub nats_retries: u64,
    /// Records never acknowledged: queue full, over the server's
    /// `max_payload`, or still queued at the shutdown deadline.
    pub nats_lost: u64,
}

/// The alert pipeline.
pub(crate) struct Alerts {
    format: Format,
    dedup: dedup::Dedup,
    rate: ratelimit::RateLimit,
    sinks: Vec<Box<dyn Sink>>,
    interval_ns: i128,
    last_update_ns: i128,
    node: String,
    /// The pipeline's own counters; the sinks add theirs in [`Self::stats`].
    stats: AlertStats,
}

impl Alerts {
    /// Opens the sinks (call on the agent's runtime: the webhook spawns).
    pub(crate) fn new(args: &AlertArgs, node: &str) -> Result<Self, AlertError> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if !args.no_alert_stdout {
            sinks.push(Box::new(sink::Stdout));
        }
        if let Some(p) = &args.alert_file {
            sinks.push(Box::new(file::FileSink::open(p, args.alert_file_max_bytes, args.alert_file_keep)?));
        }
        if let Some(url) = &args.webhook_url {
            let mut cfg = webhook::WebhookConfig::new(url)?;
            cfg.batch_max = args.webhook_batch.max(1);
            cfg.batch_interval = Duration::from_millis(args.webhook_flush_ms);
            if args.alert_format == Format::Falco {
                cfg.body = webhook::Body::Single;
            }
            cfg.queue_cap = args.webhook_queue.max(1);
            for h in &args.webhook_headers {
                let (name, var) = h.split_once('=').ok_or_else(|| AlertError::Header(h.clone()))?;
                let value = std::env::var(var).map_err(|_| AlertError::Header(h.clone()))?;
                cfg.headers.push((name.to_owned(), value));
            }
            sinks.push(Box::new(webhook::Webhook::start(cfg)));
        }
        if let Some(url) = &args.alert_nats {
            let mut cfg = nats::NatsConfig::new(url, node)?;
            if let Some(s) = &args.alert_nats_subject {
                nats::check_subject(s)?;
                cfg.subject = s.clone();
            }
            nats::check_stream(&args.alert_nats_stream)?;
            cfg.stream = args.alert_nats_stream.clone();
            cfg.create = !args.alert_nats_no_create;
            cfg.creds = args.alert_nats_creds.clone();
            cfg.queue_bytes = args.alert_nats_queue_bytes;
            sinks.push(Box::new(nats::Nats::start(cfg)?));
        }
        Ok(Self {
            format: args.alert_format,
            dedup: dedup::Dedup::new(args.alert_dedup_capacity),
            rate: ratelimit::RateLimit::new(args.alert_rate, args.alert_burst),
            sinks,
            interval_ns: i128::from(args.alert_update_interval.max(1)) * 1_000_000_000,
            last_update_ns: 0,
            node: node.to_owned(),
            stats: AlertStats::default(),
        })
    }

    /// One more destination, after those built from the options.
    #[cfg(test)]
    pub(crate) fn add_sink(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// One finding. `out` is the agent's stdout.
    pub(crate) fn submit(&mut self, f: &Finding, out: &mut impl std::io::Write) -> std::io::Result<()> {
        // A repeat of an alert already out is only counted. A new one must
        // pass the rate limit before dedup remembers it: an alert held back
        // is counted in `alert-suppressed` (each occurrence) and never gets
        // updates naming an alert nobody received.
        if self.dedup.repeat(f) {
            self.stats.repeats += 1;
            return Ok(());
        }
        let mut values: Vec<_> = self
            .rate
            .summaries(f.unix_ns, false)
            .iter()
            .map(|s| format::suppressed(self.format, s, &self.node))
            .collect();
        let held = ratelimit::Held {
            path: String::from_utf8_lossy(&f.file.path).into_owned(),
            sha256: f.file.sha256.clone(),
            verdict: f.verdict.name(),
        };
        if self.rate.admit(&dedup::scope_of(f), held, f.unix_ns) {
            let (id, flushed) = self.dedup.insert(f);
            for e in &flushed {
                values.push(format::update(self.format, e, f.unix_ns));
                self.stats.updates += 1;
            }
            values.push(format::alert(self.format, f, &id));
            *self.stats.emitted.entry(f.verdict.name()).or_default() += 1;
        } else {
            self.stats.suppressed += 1;
        }
        self.write(&values, out)
    }

    /// Periodic: updates for repeated alerts, the rate-limit summary, and
    /// the sinks flushed.
    pub(crate) fn tick(&mut self, now_ns: i128, out: &mut impl std::io::Write) -> std::io::Result<()> {
        self.pending(now_ns, out)?;
        self.sinks.iter_mut().try_for_each(|s| s.flush(out))
    }

    /// Updates and the rate-limit summary that are due.
    fn pending(&mut self, now_ns: i128, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut values = Vec::new();
        if self.last_update_ns == 0 {
            // The first interval starts now, not at the epoch.
            self.last_update_ns = now_ns;
        }
        if now_ns - self.last_update_ns >= self.interval_ns {
            self.last_update_ns = now_ns;
            for e in self.dedup.updates() {
                values.push(format::update(self.format, &e, now_ns));
                self.stats.updates += 1;
            }
        }
        for s in self.rate.summaries(now_ns, false) {
            values.push(format::suppressed(self.format, &s, &self.node));
        }
        self.write(&values, out)
    }

    /// Shutdown: every pending update and summary, then each sink gets up
    /// to `deadline` to deliver (one after another: only the webhook waits).
    pub(crate) async fn finish(
        &mut self,
        now_ns: i128,
        out: &mut impl std::io::Write,
        deadline: Duration,
    ) -> std::io::Result<()> {
        self.last_update_ns = now_ns;
        self.interval_ns = 0;
        self.pending(now_ns, out)?;
        let held: Vec<_> = self
            .rate
            .summaries(now_ns, true)
            .iter()
            .map(|s| format::suppressed(self.format, s, &self.node))
            .collect();
        self.write(&held, out)?;
        for s in &mut self.sinks {
            s.flush(out)?;
            s.finish(deadline).await;
        }
        Ok(())
    }

    /// Shutdown, after [`Self::finish`], when stdout did not take the final
    /// stats record: each sink that still can delivers it (the file at
    /// once, the webhook within `deadline`). Only for `native` alerts,
    /// whose consumers tell records apart by `schema`/`type`; a Falco or
    /// OCSF consumer would take a stats record for a malformed event.
    /// Returns the names of the sinks that took it.
    pub(crate) async fn last_record(&mut self, line: &[u8], deadline: Duration) -> Vec<&'static str> {
        let mut took = Vec::new();
        if self.format != Format::Native {
            return took;
        }
        for s in &mut self.sinks {
            if s.last_record(line, deadline).await {
                took.push(s.name());
            }
        }
        took
    }

    /// Counters so far: the pipeline's, plus each sink's.
    pub(crate) fn stats(&mut self) -> AlertStats {
        let mut stats = self.stats.clone();
        stats.dedup_evicted = self.dedup.evicted;
        for s in &self.sinks {
            s.add_stats(&mut stats);
        }
        stats
    }

    fn write(&mut self, values: &[serde_json::Value], out: &mut dyn std::io::Write) -> std::io::Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let lines: Vec<Vec<u8>> = values.iter().filter_map(|v| serde_json::to_vec(v).ok()).collect();
        for s in &mut self.sinks {
            s.write(&lines, out)
                .map_err(|e| std::io::Error::new(e.kind(), format!("writing alerts to {}: {e}", s.name())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
