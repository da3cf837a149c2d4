//! The sink's background task: connect, make sure the stream is there,
//! then drain the queue a batch at a time, each batch published at once
//! (up to `in_flight` publishes awaiting their acknowledgements) and its
//! acknowledgements read in order. What is not acknowledged goes back to
//! the front of the queue, and the task waits (backoff doubling up to
//! `backoff_max`, with jitter so a fleet coming back does not retry in
//! step) before the next batch.
//!
//! Bookkeeping for loss: a record is counted in `Queue::in_flight` from
//! the moment it leaves the queue until it is acknowledged, given up, or
//! put back; so when the shutdown deadline interrupts the task, what is
//! lost is exactly what is queued plus what is in flight.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};

use super::{NatsConfig, Record, Shared, stream_subjects, subject_matches};

pub(super) async fn run(cfg: NatsConfig, opts: async_nats::ConnectOptions, shared: Arc<Shared>) {
    tokio::select! {
        () = drain(&cfg, opts, &shared) => {}
        () = shared.stop.notified() => {
            tracing::warn!("NATS: shutdown deadline passed with alerts undelivered");
        }
    }
    let mut q = shared.queue();
    q.closed = true;
    let left = q.records.len() + q.in_flight;
    q.records.clear();
    q.in_flight = 0;
    q.bytes = 0;
    drop(q);
    shared.lose(left);
}

/// Publishes until the queue is closed and empty.
async fn drain(cfg: &NatsConfig, opts: async_nats::ConnectOptions, shared: &Shared) {
    let mut backoff = Backoff::new(cfg);
    let client = loop {
        match opts.clone().connect(cfg.servers.as_slice()).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!("NATS: connecting to {:?}: {e}; trying again", cfg.servers);
                backoff.wait().await;
            }
        }
    };
    let mut js = jetstream::new(client);
    js.set_timeout(cfg.ack_timeout);
    let mut ready = false;
    let mut failing = false;
    while let Some(batch) = next_batch(shared, cfg.in_flight).await {
        if !ready {
            match ensure_stream(&js, cfg).await {
                Ok(()) => ready = true,
                Err(e) => {
                    if !failing {
                        tracing::warn!("NATS: {e}; alerts are queued and tried again");
                    }
                    failing = true;
                    put_back(shared, batch, false);
                    backoff.wait().await;
                    continue;
                }
            }
        }
        let (failed, missing) = publish(&js, cfg, batch, shared).await;
        if failed.is_empty() {
            if failing {
                tracing::info!("NATS: delivering alerts again");
            }
            failing = false;
            backoff.reset();
            continue;
        }
        if !failing {
            tracing::warn!("NATS: {} alerts not acknowledged; retrying with backoff", failed.len());
        }
        failing = true;
        // A stream deleted under the agent is looked up (or created) again.
        ready &= !missing;
        put_back(shared, failed, true);
        backoff.wait().await;
    }
}

/// The next records to publish, once there are some; `None` when the
/// queue is closed and empty.
async fn next_batch(shared: &Shared, max: usize) -> Option<Vec<Record>> {
    loop {
        {
            let mut q = shared.queue();
            if !q.records.is_empty() {
                let n = q.records.len().min(max.max(1));
                let batch: Vec<Record> = q.records.drain(..n).collect();
                q.in_flight += n;
                return Some(batch);
            }
            if q.closed {
                return None;
            }
        }
        shared.wake.notified().await;
    }
}

/// Records not delivered go back to the front, in their order.
fn put_back(shared: &Shared, records: Vec<Record>, retried: bool) {
    let n = records.len();
    if retried {
        shared.stats.retries.fetch_add(n as u64, Ordering::Relaxed);
    }
    let mut q = shared.queue();
    q.in_flight -= n;
    for r in records.into_iter().rev() {
        q.records.push_front(r);
    }
}

/// A record is done with: acknowledged or given up.
fn done(shared: &Shared, r: &Record) {
    let mut q = shared.queue();
    q.in_flight -= 1;
    q.bytes -= r.payload.len();
}

/// Publishes `batch`; returns what was not acknowledged and whether the
/// server said there is no stream for the subject.
async fn publish(
    js: &jetstream::Context,
    cfg: &NatsConfig,
    batch: Vec<Record>,
    shared: &Shared,
) -> (Vec<Record>, bool) {
    let mut pending = Vec::with_capacity(batch.len());
    for r in &batch {
        let mut msg = PublishMessage::build()
            .payload(r.payload.clone())
            .message_id(&r.id)
            .header("Verifier-Node", cfg.node.as_str());
        if let Some(a) = &r.alert_id {
            msg = msg.header("Verifier-Alert-Id", a.as_str());
        }
        let sent = tokio::time::timeout(cfg.ack_timeout, js.send_publish(cfg.subject.clone(), msg)).await;
        pending.push(sent);
    }
    let mut failed = Vec::new();
    let mut missing = false;
    for (r, sent) in batch.into_iter().zip(pending) {
        let outcome = match sent {
            Ok(Ok(ack)) => ack.await.map_err(|e| e.kind()),
            Ok(Err(e)) => Err(e.kind()),
            Err(_) => Err(PublishErrorKind::TimedOut),
        };
        match outcome {
            Ok(ack) => {
                shared.stats.sent.fetch_add(1, Ordering::Relaxed);
                if ack.duplicate {
                    shared.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                done(shared, &r);
            }
            Err(PublishErrorKind::MaxPayloadExceeded) => {
                tracing::warn!(
                    "NATS: an alert record of {} bytes is over the server's max_payload: dropped (raise max_payload)",
                    r.payload.len()
                );
                shared.lose(1);
                done(shared, &r);
            }
            Err(kind) => {
                tracing::debug!("NATS: publish not acknowledged: {kind}");
                missing |= kind == PublishErrorKind::StreamNotFound;
                failed.push(r);
            }
        }
    }
    (failed, missing)
}

/// Creates the stream when missing (or only looks it up), and checks that
/// it takes the subject: otherwise every publish would be refused.
async fn ensure_stream(js: &jetstream::Context, cfg: &NatsConfig) -> Result<(), String> {
    let stream = if cfg.create {
        let config = stream::Config {
            name: cfg.stream.clone(),
            subjects: stream_subjects(&cfg.subject),
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            description: Some("container runtime verifier: drift alerts of the fleet".into()),
            ..Default::default()
        };
        js.get_or_create_stream(config).await.map_err(|e| format!("creating stream {}: {e}", cfg.stream))?
    } else {
        js.get_stream(&cfg.stream).await.map_err(|e| {
            format!("stream {}: {e} (--alert-nats-no-create: create it, or drop that flag)", cfg.stream)
        })?
    };
    let subjects = &stream.cached_info().config.subjects;
    if !subjects.iter().any(|p| subject_matches(p, &cfg.subject)) {
        return Err(format!(
            "stream {} does not take subject {} (its subjects: {subjects:?}): add it to the stream, or choose --alert-nats-subject among them",
            cfg.stream, cfg.subject
        ));
    }
    Ok(())
}

/// Exponential backoff with jitter.
struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    fn new(cfg: &NatsConfig) -> Self {
        Self { next: cfg.backoff_initial, initial: cfg.backoff_initial, max: cfg.backoff_max }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    async fn wait(&mut self) {
        // Up to a quarter more, so many nodes do not retry in step.
        let jitter =
            Duration::from_nanos(u64::from(std::process::id()) % (self.next.as_nanos() as u64 / 4 + 1));
        tokio::time::sleep(self.next + jitter).await;
        self.next = (self.next * 2).min(self.max);
    }
}
