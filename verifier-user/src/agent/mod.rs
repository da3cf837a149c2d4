//! `verifier agent`: the event loop.
//!
//! One current-thread tokio runtime: the ring buffer is an `AsyncFd`, woken
//! by the kernel when records arrive, drained completely on each wake-up and
//! written out as one buffered batch. Loading and attaching (BTF parsing,
//! the kernel verifier) run on a blocking thread so the runtime stays
//! responsive. SIGINT, SIGTERM and `--duration` share one shutdown path:
//! drain what is left in the ring buffer, print the final counters, drop the
//! programs (which detaches them).

pub mod drift;
pub mod findings;
pub mod throttle;

use std::{
    io::{BufWriter, Write as _},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};
use verifier_common::{
    counters::Counter,
    decode::{Record, decode_any},
};

use verifier_sensor::{
    events::{Clock, ExecEvent},
    loader::{self, LoadOptions},
    maps::KernelCounters,
};

use crate::{
    attribution::{
        Attribution, Resolver, Runtime,
        resolver::{StateRoot, default_state_roots},
    },
    output::{self, ExecJson, KernelStats, ReadyJson, StatsJson, UserStats, verification::VerificationJson},
};

/// Options of `verifier agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Report only execs inside containers (host processes are filtered in
    /// the kernel and counted as `filtered`).
    #[arg(long)]
    pub containers_only: bool,

    /// Ring buffer size in bytes (power of two, multiple of 4096). Larger
    /// absorbs longer bursts; it is locked kernel memory.
    #[arg(long, default_value_t = verifier_common::DEFAULT_RING_BYTES, value_name = "BYTES")]
    pub ring_bytes: u32,

    /// Wake the agent only once this many bytes of records wait in the ring
    /// buffer (0: on every exec). Fewer wake-ups cost the node far less CPU
    /// under exec storms; `--poll-ms` bounds the added latency.
    #[arg(long, default_value_t = loader::DEFAULT_WAKEUP_BYTES, value_name = "BYTES")]
    pub wakeup_bytes: u32,

    /// Drain the ring buffer at least this often, in milliseconds: the most
    /// a record waits when fewer than `--wakeup-bytes` are pending.
    #[arg(long, default_value_t = 20, value_name = "MS")]
    pub poll_ms: u64,

    /// Seconds between stats records (0: only the final one).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub stats_interval: u64,

    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Node name put in every record (default: hostname; in a DaemonSet set
    /// NODE_NAME from the downward API).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// Extra runc-style state directory (one entry per container), e.g. a
    /// `runc --root` in use. Repeatable. /run/runc, /run/crun and
    /// /run/containerd/runc are always searched.
    #[arg(long = "runc-root", value_name = "DIR")]
    pub runc_roots: Vec<PathBuf>,

    /// Execs per second one container may send before the kernel throttles
    /// the rest of that second (0: never). Throttled execs are counted and
    /// reported as throttle start/stop records with how many were not
    /// verified; fast-pathed execs of verified files never count.
    #[arg(long, default_value_t = loader::DEFAULT_EXEC_LIMIT, value_name = "PER_SEC")]
    pub exec_limit: u32,

    /// Kernel BTF to take struct offsets from.
    #[arg(long, default_value = verifier_sensor::btf::VMLINUX_BTF, value_name = "FILE")]
    pub btf: PathBuf,

    #[command(flatten, next_help_heading = "Drift verification (on with --sbom or --sbom-store)")]
    pub drift: drift::DriftArgs,

    #[command(flatten, next_help_heading = "Alert stream (drift findings)")]
    pub alerts: crate::alert::AlertArgs,

    #[command(flatten, next_help_heading = "Metrics and health")]
    pub metrics: crate::metrics::MetricsArgs,
}

/// Runs the agent until a signal or `--duration`.
pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    // glibc gives each thread that allocates its own arena; SBOM parsing on
    // the blocking pool would leave one high-water mark per thread. Two
    // arenas keep the agent's footprint that of its data.
    // SAFETY: mallopt only sets an allocator tunable, before other threads.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))?;
    Ok(ExitCode::SUCCESS)
}

struct State {
    node: String,
    clock: Clock,
    resolver: Resolver,
    user: UserStats,
    started: Instant,
    drift: Option<drift::Drift>,
    throttles: throttle::Throttles,
    alerts: Option<crate::alert::Alerts>,
}

async fn run_async(args: AgentArgs) -> anyhow::Result<()> {
    let node = match &args.node_name {
        Some(n) => n.clone(),
        None => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into()),
    };
    let opts = LoadOptions {
        containers_only: args.containers_only,
        ring_bytes: args.ring_bytes,
        btf_path: args.btf.clone(),
        wakeup_bytes: args.wakeup_bytes,
        exec_limit: args.exec_limit,
    };
    let loaded = tokio::task::spawn_blocking(move || loader::load(verifier_sensor::EBPF_OBJECT, &opts))
        .await
        .context("loader thread")??;
    let loader::Loaded { ebpf, events, counters, config, fast_path, throttle } = loaded;

    let mut roots = default_state_roots();
    roots.extend(args.runc_roots.iter().map(|dir| StateRoot {
        dir: dir.clone(),
        runtime: Runtime::Runc,
        namespaced: false,
    }));
    let drift = if args.drift.enabled() {
        let source = drift::source(&args.drift, roots.clone()).map_err(anyhow::Error::msg)?;
        Some(drift::Drift::new(&args.drift, source, fast_path).context("starting the hashing threads")?)
    } else {
        None
    };
    let alerts = if args.drift.enabled() {
        Some(crate::alert::Alerts::new(&args.alerts, &node).context("opening the alert sinks")?)
    } else {
        None
    };
    let metrics = crate::metrics::Shared::default();
    if !args.metrics.no_metrics {
        let addr = crate::metrics::serve(args.metrics.metrics_addr, metrics.clone()).await?;
        tracing::info!("metrics on http://{addr}/metrics, health on http://{addr}/healthz");
    }
    let mut state = State {
        node,
        clock: Clock::new(),
        resolver: Resolver::new(roots, config.host_mnt_ns),
        user: UserStats::default(),
        started: Instant::now(),
        drift,
        throttles: throttle::Throttles::new(throttle, args.exec_limit),
        alerts,
    };
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let ready = ReadyJson {
        schema: output::SCHEMA_READY,
        kind: "ready",
        time: output::rfc3339(state.clock.unix_ns(0) + now_mono_ns()),
        node: &state.node,
        version: env!("CARGO_PKG_VERSION"),
        containers_only: args.containers_only,
        ring_bytes: args.ring_bytes,
        host_mnt_ns: config.host_mnt_ns,
    };
    write_line(&mut out, &ready)?;
    out.flush()?;
    tracing::info!("attached to sched_process_exec and cgroup/cgroup_mkdir; printing execs");

    // SAFETY: the ring buffer owns its map fd; it stays open and the same
    // for as long as the AsyncFd owns the ring buffer.
    let mut ring = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the ring buffer fd: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let stats_every = Duration::from_secs(args.stats_interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + stats_every, stats_every);
    let deadline = args.duration.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    let mut poll = tokio::time::interval(Duration::from_millis(args.poll_ms.max(1)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let mut throttle_tick = tokio::time::interval(Duration::from_millis(250));
    throttle_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting on the ring buffer")?;
                drain(guard.get_inner_mut(), &mut state, &mut out)?;
                guard.clear_ready();
                out.flush()?;
            }
            _ = poll.tick() => {
                let expired = state.drift.as_mut().map(drift::Drift::tick).unwrap_or_default();
                emit_verified(&mut state, &mut out, expired)?;
                if drain(ring.get_mut(), &mut state, &mut out)? {
                    out.flush()?;
                }
            }
            Some(wake) = next_drift(&mut state.drift) => {
                let done = state.drift.as_mut().map(|d| d.wake(wake)).unwrap_or_default();
                emit_verified(&mut state, &mut out, done)?;
                out.flush()?;
            }
            _ = throttle_tick.tick() => {
                sweep_throttles(&counters, &mut state, &mut out, false)?;
            }
            _ = second.tick() => {
                let now = state.clock.unix_ns(0) + now_mono_ns();
                if let Some(a) = state.alerts.as_mut() {
                    a.tick(now, &mut out)?;
                    out.flush()?;
                }
                let record = stats(&counters, &mut state, false)?;
                metrics.publish(&serde_json::to_value(&record).context("stats as JSON")?);
            }
            _ = ticker.tick(), if args.stats_interval > 0 => {
                write_line(&mut out, &stats(&counters, &mut state, false)?)?;
                out.flush()?;
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            () = &mut until_deadline => break,
        }
    }
    // Shutdown: drain what is waiting (detaching takes an RCU grace period
    // per program, hundreds of ms in all: records already here should not
    // wait for it), detach so no new records arrive, drain the rest, then
    // let verifications in flight finish (bounded): nothing received goes
    // unreported.
    drain(ring.get_mut(), &mut state, &mut out)?;
    finish_drift(&mut state, &mut out, false).await?;
    out.flush()?;
    drop(ebpf);
    drain(ring.get_mut(), &mut state, &mut out)?;
    finish_drift(&mut state, &mut out, true).await?;
    sweep_throttles(&counters, &mut state, &mut out, true)?;
    metrics.stopping();
    if let Some(mut a) = state.alerts.take() {
        let now = state.clock.unix_ns(0) + now_mono_ns();
        a.finish(now, &mut out, Duration::from_secs(5)).await?;
        state.alerts = Some(a);
    }
    write_line(&mut out, &stats(&counters, &mut state, true)?)?;
    out.flush()?;
    Ok(())
}

fn now_mono_ns() -> i128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
        .unwrap_or(0)
}

fn write_line(out: &mut impl std::io::Write, record: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, record).context("encoding a record")?;
    out.write_all(b"\n").context("writing to stdout")?;
    Ok(())
}

/// Takes every record currently in the ring buffer; returns whether there
/// were any.
fn drain(
    ring: &mut RingBuf<MapData>,
    state: &mut State,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let before = (state.user.received, state.user.cgroups_created);
    while let Some(item) = ring.next() {
        let event = match decode_any(&item) {
            Ok(Record::Exec(rec)) => {
                state.user.received += 1;
                ExecEvent::from_record(&rec, &state.clock)
            }
            Ok(Record::CgroupMkdir(rec)) => {
                state.user.cgroups_created += 1;
                if let Ok(path) = std::str::from_utf8(rec.path)
                    && let Some(c) = state.resolver.cgroup_created(rec.header.id, path)
                {
                    state.user.containers_started += 1;
                    if let Some(d) = state.drift.as_mut() {
                        d.container_created(rec.header.id, c);
                    }
                }
                continue;
            }
            Ok(Record::WriteOpen(rec)) => {
                state.user.write_opens += 1;
                if let Some(d) = state.drift.as_mut() {
                    let written = d.write_open(&rec, &state.clock);
                    let attribution = state.resolver.attribute(rec.cgroup_id, rec.tgid, 0);
                    write_line(out, &drift::WrittenJson::new(&written, &state.node, &attribution))?;
                    if let Some(a) = state.alerts.as_mut() {
                        a.submit(&findings::of_written(&written, &attribution, &state.node), out)?;
                    }
                }
                continue;
            }
            Ok(Record::MmapExec(rec)) => {
                state.user.library_maps += 1;
                let event = ExecEvent::from_mmap(&rec, &state.clock);
                let attribution = state.resolver.attribute(event.cgroup_id, event.tgid, 0);
                if let (Some(d), Attribution::Container(c)) = (state.drift.as_mut(), &attribution) {
                    let verified = d.exec(event, c);
                    emit_verified(state, out, verified)?;
                }
                continue;
            }
            Ok(Record::Throttle(rec)) => {
                if let Some(change) = state.throttles.started(&rec) {
                    emit_throttle(state, out, &change)?;
                }
                continue;
            }
            Err(err) => {
                state.user.received += 1;
                state.user.decode_errors += 1;
                tracing::warn!("dropping an undecodable ring buffer record: {err}");
                continue;
            }
        };
        drop(item);
        let attribution = state.resolver.attribute(event.cgroup_id, event.tgid, event.mnt_ns);
        if matches!(attribution, Attribution::Unknown(_)) {
            state.user.unattributed += 1;
        }
        if let (Some(d), Attribution::Container(c)) = (state.drift.as_mut(), &attribution) {
            let verified = d.exec(event, c);
            emit_verified(state, out, verified)?;
            continue;
        }
        write_line(out, &ExecJson::new(&event, &state.node, &attribution))?;
        state.user.printed += 1;
    }
    Ok((state.user.received, state.user.cgroups_created) != before)
}

/// Reports throttle episodes that ended (all of them when `all`).
fn sweep_throttles(
    counters: &KernelCounters,
    state: &mut State,
    out: &mut impl std::io::Write,
    all: bool,
) -> anyhow::Result<()> {
    let per_cpu = counters.read().context("reading kernel counters")?;
    let throttled = per_cpu[Counter::Throttled as usize].iter().sum::<u64>();
    let now = u64::try_from(now_mono_ns()).unwrap_or(0);
    let changes = state.throttles.sweep(now, throttled, all);
    for c in &changes {
        emit_throttle(state, out, c)?;
    }
    if !changes.is_empty() {
        out.flush()?;
    }
    Ok(())
}

fn emit_throttle(
    state: &mut State,
    out: &mut impl std::io::Write,
    c: &throttle::Change,
) -> anyhow::Result<()> {
    let attribution = state.resolver.attribute(c.cgroup_id, c.pid.unwrap_or(0), 0);
    let unix_ns = state.clock.unix_ns(c.ktime_ns);
    let record = throttle::ThrottleJson::new(c, unix_ns, state.throttles.limit, &state.node, &attribution);
    write_line(out, &record)
}

/// At shutdown: up to 3 s for hashing and resolutions in flight; on the
/// `last` pass, execs still waiting after that are reported unverifiable.
async fn finish_drift(state: &mut State, out: &mut impl std::io::Write, last: bool) -> anyhow::Result<()> {
    let Some(mut d) = state.drift.take() else { return Ok(()) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while d.pending() > 0 {
        match tokio::time::timeout_at(deadline, d.next()).await {
            Ok(Some(wake)) => {
                let done = d.wake(wake);
                emit_verified(state, out, done)?;
            }
            Ok(None) | Err(_) => break,
        }
    }
    if last {
        let rest = d.abandon("the agent stopped before this exec could be verified");
        emit_verified(state, out, rest)?;
    }
    state.drift = Some(d);
    Ok(())
}

/// Waits for the drift side, if there is one.
async fn next_drift(d: &mut Option<drift::Drift>) -> Option<drift::Wake> {
    match d {
        Some(d) => d.next().await,
        None => std::future::pending().await,
    }
}

/// Prints exec records with their verification.
fn emit_verified(
    state: &mut State,
    out: &mut impl std::io::Write,
    verified: Vec<drift::Verified>,
) -> anyhow::Result<()> {
    for v in verified {
        let attribution = state.resolver.attribute(v.event.cgroup_id, v.event.tgid, v.event.mnt_ns);
        let mut record = ExecJson::new(&v.event, &state.node, &attribution);
        record.verification = match (&v.decision, &v.skipped) {
            (Some(d), _) => Some(VerificationJson::from_decision(d)),
            (None, Some(why)) => Some(VerificationJson::skipped(why)),
            (None, None) => None,
        };
        if v.event.library {
            record.schema = output::SCHEMA_LIBRARY;
            record.kind = "library";
            if let Some(j) = record.verification.as_mut() {
                j.as_library();
            }
        }
        if let Some(j) = record.verification.as_mut() {
            let now = state.clock.unix_ns(0) + now_mono_ns();
            j.latency_us = u64::try_from((now - v.event.unix_ns) / 1000).ok();
        }
        write_line(out, &record)?;
        state.user.printed += 1;
        if let Some(a) = state.alerts.as_mut()
            && let Some(f) = findings::of_verified(&v, &attribution, &state.node)
        {
            a.submit(&f, out)?;
        }
    }
    Ok(())
}

fn stats<'a>(
    counters: &KernelCounters,
    state: &'a mut State,
    is_final: bool,
) -> anyhow::Result<StatsJson<'a, crate::alert::AlertStats>> {
    let per_cpu = counters.read().context("reading kernel counters")?;
    let sum = |c: Counter| per_cpu[c as usize].iter().sum::<u64>();
    let kernel = KernelStats {
        seen: sum(Counter::Seen),
        sent: sum(Counter::Sent),
        dropped: sum(Counter::Dropped),
        filtered: sum(Counter::Filtered),
        identity_errors: sum(Counter::IdentityErrors),
        cgroup_sent: sum(Counter::CgroupSent),
        cgroup_dropped: sum(Counter::CgroupDropped),
        fast_path: sum(Counter::FastPath),
        write_sent: sum(Counter::WriteSent),
        write_dropped: sum(Counter::WriteDropped),
        throttled: sum(Counter::Throttled),
        mmap_fast_path: sum(Counter::MmapFastPath),
        mmap_sent: sum(Counter::MmapSent),
        mmap_dropped: sum(Counter::MmapDropped),
        per_cpu: Counter::ALL.iter().map(|&c| (c.name(), per_cpu[c as usize].clone())).collect(),
    };
    state.user.cgroups_cached = state.resolver.cached() as u64;
    state.user.throttle_episodes = state.throttles.episodes;
    state.user.throttle_active = state.throttles.active() as u64;
    let max_rss_kib = peak_rss_kib();
    Ok(StatsJson {
        schema: output::SCHEMA_STATS,
        kind: "stats",
        time: output::rfc3339(state.clock.unix_ns(0) + now_mono_ns()),
        node: &state.node,
        is_final,
        uptime_sec: state.started.elapsed().as_secs_f64(),
        lost: kernel.dropped
            + kernel.cgroup_dropped
            + kernel.write_dropped
            + kernel.mmap_dropped
            + state.user.decode_errors,
        verify: state.drift.as_ref().map(drift::Drift::stats),
        alerts: state.alerts.as_mut().map(crate::alert::Alerts::stats),
        kernel,
        user: state.user.clone(),
        max_rss_kib,
    })
}

/// Peak resident set of this process since it was exec'd, in KiB: `VmHWM`
/// of `/proc/self/status`. Not `getrusage().ru_maxrss`, which Linux carries
/// across `execve` and so reports the parent's size at fork when that was
/// larger (a 60 MiB test harness made the agent look 60 MiB).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_this_process_and_at_least_the_current_rss() {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let rss: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        let peak = super::peak_rss_kib();
        assert!(peak >= rss && rss > 0, "peak {peak} KiB, current {rss} KiB");
    }
}
