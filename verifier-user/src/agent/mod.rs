//! `verifier agent`: the event loop.
//!
//! One current-thread tokio runtime: the ring buffer is an `AsyncFd`, woken
//! by the kernel when records arrive, drained completely on each wake-up and
//! written out as one buffered batch. Loading and attaching (BTF parsing,
//! the kernel verifier) run on a blocking thread so the runtime stays
//! responsive. SIGINT, SIGTERM and `--duration` share one shutdown path:
//! drain what is left in the ring buffer, print the final counters, drop the
//! programs (which detaches them).
//!
//! This module only runs the loop. What a record means is decided in
//! `dispatch` (one handler per record kind, attribution once on arrival),
//! files are verified in `drift`, and what is done about an outcome is
//! `respond`'s (report today; enforcement later). What was already running
//! when the hooks were attached is judged once by `scan`.

mod dispatch;
pub(crate) mod enforce;
pub(crate) mod findings;
mod host;
mod measure;
mod mechanism;
mod policy;
mod respond;
mod scan;
mod stdout;
pub(crate) mod throttle;
pub(crate) mod verification;

use std::{
    io::Write as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};
use verifier_sensor::{
    events::Clock,
    loader::{self, LoadOptions},
    map_sizes::MapSizes,
    maps::KernelCounters,
};

use crate::{
    attribution::{
        Resolver, Runtime,
        resolver::{StateRoot, default_state_roots},
    },
    output::{self, HookJson, KernelStats, ReadyJson, StatsJson, UserStats},
};

use dispatch::{drain, on_verified};
use stdout::Ended;

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

    /// Bytes of records held for a slow stdout reader. The agent never
    /// waits on stdout: past this, records are dropped and counted as
    /// `user.stdout_lost`.
    #[arg(long, default_value_t = stdout::DEFAULT_BOUND, value_name = "BYTES")]
    pub stdout_queue_bytes: usize,

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

    /// Policy file (TOML, docs/policy.md): per image, namespace, pod label
    /// or container name, `observe` (record, no alerts), `alert` or
    /// `enforce`, with exceptions and staging. Needs verification (--sbom,
    /// --sbom-rules or --sbom-store). Checked at start (invalid: exit 2),
    /// then re-read when it changes; a broken edit keeps the last good
    /// policy and prints a warning record. Check it first with `verifier
    /// policy check FILE`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    #[command(
        flatten,
        next_help_heading = "Verification against SBOMs (on with --sbom, --sbom-rules or --sbom-store)"
    )]
    pub verification: verification::VerificationArgs,

    #[command(
        flatten,
        next_help_heading = "Enforcement (block drift in the kernel before it runs; docs/enforcement.md)"
    )]
    pub enforce: enforce::EnforceArgs,

    #[command(flatten, next_help_heading = "Alert stream (drift findings)")]
    pub alerts: crate::alert::AlertArgs,

    #[command(flatten, next_help_heading = "Metrics and health")]
    pub metrics: crate::metrics::MetricsArgs,
}

/// Runs the agent until a signal or `--duration`.
pub(crate) fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    // SBOM parsing on the blocking pool would otherwise leave a high-water
    // mark per thread and per large free (see `verifier_sbom::alloc`).
    verifier_sbom::alloc::keep_resident_set_small();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(run_async(args));
    // A blocking task stuck in a read (an SBOM on a hung filesystem) must
    // not keep a stopped agent alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome? {
        Ended { broken: true, .. } => Ok(ExitCode::from(STDOUT_BROKEN)),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// How often the attribution cache is swept of gone cgroups.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Exit code when stdout's reader closed its end under the agent: records
/// were lost (counted in the final stats, written to stderr instead).
pub(crate) const STDOUT_BROKEN: u8 = 3;

struct State {
    node: String,
    clock: Clock,
    resolver: Resolver,
    user: UserStats,
    started: Instant,
    verification: Option<verification::Verification>,
    throttles: throttle::Throttles,
    alerts: Option<crate::alert::Alerts>,
    /// Events with the drift side, and how they arrived.
    in_flight: dispatch::InFlight,
    /// Which containers' running processes have been judged.
    scan: scan::Scanner,
    /// With `--policy`: the rules findings are judged by.
    policy: Option<policy::Policies>,
    /// Blocking in enforced containers (with `--enforce`).
    enforcement: Option<enforce::Enforcement>,
}

async fn run_async(args: AgentArgs) -> anyhow::Result<Ended> {
    let node = match &args.node_name {
        Some(n) => n.clone(),
        None => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into()),
    };
    // A policy that does not load stops the agent before anything is attached.
    let policies = match &args.policy {
        Some(_) if !args.verification.enabled() => anyhow::bail!(
            "--policy judges verification findings: give --sbom, --sbom-rules or --sbom-store with it"
        ),
        Some(path) => Some(policy::Policies::start(path)?),
        None => None,
    };
    let policy_enforces = policies.as_ref().is_some_and(policy::Policies::may_enforce);
    let opts = LoadOptions {
        containers_only: args.containers_only,
        ring_bytes: args.ring_bytes,
        btf_path: args.btf.clone(),
        wakeup_bytes: args.wakeup_bytes,
        exec_limit: args.exec_limit,
        // The maps of features off for this run are created with one entry
        // (see `verifier_sensor::map_sizes`).
        maps: MapSizes {
            verification: args.verification.enabled(),
            enforcement: mechanism::wanted(&args.enforce) || policy_enforces,
            measurement: args.enforce.measure.enforce_measure,
        },
    };
    let loaded = tokio::task::spawn_blocking(move || loader::load(verifier_sensor::EBPF_OBJECT, &opts))
        .await
        .context("loader thread")??;
    let loader::Loaded {
        mut ebpf,
        events,
        counters,
        config,
        fast_path,
        throttle,
        enforce: mut enforce_maps,
        mut hooks,
    } = loaded;
    let mut mechanism = mechanism::choose(&args.enforce, policy_enforces, &mut ebpf, &mut hooks, &args.btf)?;
    if args.verification.enabled() {
        hooks.push(verifier_sensor::lsm::attach_observer(&mut ebpf, &args.btf));
    }
    enforce_maps.digests = mechanism.digests.take();
    let enforcement = enforce::Enforcement::new(
        &args.enforce,
        enforce_maps,
        mechanism.mechanism.clone(),
        args.verification.enabled(),
        !args.verification.no_fast_path,
        args.verification.max_hash_bytes,
        policy_enforces,
    )?;

    let mut roots = default_state_roots();
    roots.extend(args.runc_roots.iter().map(|dir| StateRoot {
        dir: dir.clone(),
        runtime: Runtime::Runc,
        namespaced: false,
    }));
    let mut verification = if args.verification.enabled() {
        let source = verification::source(&args.verification, roots.clone()).map_err(anyhow::Error::msg)?;
        Some(
            verification::Verification::new(&args.verification, source, fast_path)
                .context("starting the hashing threads")?,
        )
    } else {
        None
    };
    if let Some(v) = verification.as_mut()
        && args.verification.judges_host()
    {
        let sources = crate::baseline::host::sources_of(&args.verification.host_baseline);
        let judge = tokio::task::spawn_blocking(move || host::HostJudge::load(&sources))
            .await
            .context("host baseline thread")??;
        v.set_host(judge);
    }
    let alerts = if args.verification.enabled() {
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
        verification,
        throttles: throttle::Throttles::new(throttle, args.exec_limit),
        alerts,
        in_flight: dispatch::InFlight::default(),
        scan: scan::Scanner::new(args.verification.enabled()),
        policy: policies,
        enforcement,
    };
    let mut out = stdout::Stdout::process(args.stdout_queue_bytes).context("starting the stdout writer")?;
    let ready = ReadyJson {
        schema: output::SCHEMA_READY,
        kind: "ready",
        time: output::rfc3339(state.clock.unix_ns(0) + now_mono_ns()),
        node: &state.node,
        version: env!("CARGO_PKG_VERSION"),
        containers_only: args.containers_only,
        ring_bytes: args.ring_bytes,
        host_mnt_ns: config.host_mnt_ns,
        hooks: hooks.iter().map(HookJson::from).collect(),
        enforcement: mechanism.probe(),
    };
    write_line(&mut out, &ready)?;
    if let Some(p) = &state.policy {
        write_line(&mut out, &p.record(&state.node, "start", state.clock.unix_ns(0) + now_mono_ns()))?;
    }
    out.flush()?;
    let attached: Vec<_> =
        ready.hooks.iter().filter(|h| h.state == "attached").map(|h| h.attach.as_str()).collect();
    tracing::info!("attached to {}; printing execs", attached.join(", "));
    // The hooks are attached: what runs from now on is seen, so judging
    // what already runs leaves no gap.
    let found = scan::at_start(&mut state);
    dispatch::check_all_scanned(&mut state, &mut out, found)?;
    out.flush()?;

    // SAFETY: the ring buffer owns its map fd; it stays open and the same
    // for as long as the AsyncFd owns the ring buffer.
    let mut ring = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the ring buffer fd: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let stats_every = Duration::from_secs(args.stats_interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + stats_every, stats_every);
    // After a stop (SIGSTOP, a frozen cgroup, a suspended VM) one record
    // says so; the missed ticks are not replayed as a burst of copies.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
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
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Attribution entries of containers that are gone are forgotten.
    let mut sweep = tokio::time::interval_at(tokio::time::Instant::now() + SWEEP_EVERY, SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                let expired = state.verification.as_mut().map(verification::Verification::tick).unwrap_or_default();
                on_verified(&mut state, &mut out, expired)?;
                dispatch::enforcement_tick(&mut state, &mut out, false)?;
                if drain(ring.get_mut(), &mut state, &mut out)? {
                    out.flush()?;
                }
            }
            Some(wake) = next_verification(&mut state.verification) => {
                let done = state.verification.as_mut().map(|d| d.wake(wake)).unwrap_or_default();
                for w in state.verification.as_ref().map(verification::Verification::take_warnings).unwrap_or_default() {
                    write_line(&mut out, &output::warning::WarningJson::new(&w))?;
                    if let (Some(a), Some("alert")) = (state.alerts.as_mut(), w.rejection.as_ref().map(|r| r.action)) {
                        let now = state.clock.unix_ns(0) + now_mono_ns();
                        a.submit(&crate::alert::Finding::attestation_refused(&w, now, &state.node), &mut out)?;
                    }
                }
                on_verified(&mut state, &mut out, done)?;
                dispatch::on_resolutions(&mut state, &mut out)?;
                out.flush()?;
            }
            Some((cgroup_id, result)) = next_preverified(&mut state.enforcement) => {
                dispatch::on_preverified(&mut state, &mut out, cgroup_id, result)?;
                out.flush()?;
            }
            _ = throttle_tick.tick() => {
                throttle::sweep(&counters, &mut state, &mut out, false)?;
            }
            _ = second.tick() => {
                if let Some(v) = state.verification.as_mut() {
                    v.host_refresh();
                }
                let now = state.clock.unix_ns(0) + now_mono_ns();
                if let Some(a) = state.alerts.as_mut() {
                    a.tick(now, &mut out)?;
                    out.flush()?;
                }
                if let Some(p) = state.policy.as_mut() {
                    p.poll(&mut out, &state.node, now)?;
                    out.flush()?;
                }
                state.user.stdout_lost = out.lost();
                let record = stats(&counters, &mut state, false)?;
                metrics.publish(&serde_json::to_value(&record).context("stats as JSON")?);
            }
            _ = sweep.tick() => {
                state.resolver.sweep();
            }
            _ = ticker.tick(), if args.stats_interval > 0 => {
                state.user.stdout_lost = out.lost();
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
    finish_verification(&mut state, &mut out, false).await?;
    out.flush()?;
    drop(ebpf);
    drain(ring.get_mut(), &mut state, &mut out)?;
    finish_verification(&mut state, &mut out, true).await?;
    throttle::sweep(&counters, &mut state, &mut out, true)?;
    dispatch::enforcement_tick(&mut state, &mut out, true)?;
    metrics.stopping();
    if let Some(mut a) = state.alerts.take() {
        let now = state.clock.unix_ns(0) + now_mono_ns();
        a.finish(now, &mut out, Duration::from_secs(5)).await?;
        state.alerts = Some(a);
    }
    state.user.stdout_lost = out.lost();
    write_line(&mut out, &stats(&counters, &mut state, true)?)?;
    let ended = out.close(Duration::from_secs(2));
    if !ended.drained {
        // The reader never took the final stats: say them where they can
        // be (the alert file, the webhook, and stderr in any case).
        state.user.stdout_lost = ended.lost;
        let line = serde_json::to_vec(&stats(&counters, &mut state, true)?).context("encoding the stats")?;
        let took = match state.alerts.as_mut() {
            Some(a) => a.last_record(&line, Duration::from_secs(1)).await,
            None => Vec::new(),
        };
        let mut err = std::io::stderr().lock();
        writeln!(err, "{}", stdout::lost_summary(ended.lost, &took)).context("writing to stderr")?;
        err.write_all(&line)
            .and_then(|()| err.write_all(b"\n"))
            .context("writing the final stats to stderr")?;
        err.flush().context("writing the final stats to stderr")?;
    }
    Ok(ended)
}

pub(crate) fn now_mono_ns() -> i128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
        .unwrap_or(0)
}

pub(crate) fn write_line(
    out: &mut impl std::io::Write,
    record: &impl serde::Serialize,
) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, record).context("encoding a record")?;
    out.write_all(b"\n").context("writing to stdout")?;
    Ok(())
}

/// At shutdown: up to 3 s for hashing and resolutions in flight; on the
/// `last` pass, execs still waiting after that are reported unverifiable.
async fn finish_verification(
    state: &mut State,
    out: &mut impl std::io::Write,
    last: bool,
) -> anyhow::Result<()> {
    let Some(mut d) = state.verification.take() else { return Ok(()) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while d.pending() > 0 {
        match tokio::time::timeout_at(deadline, d.next()).await {
            Ok(Some(wake)) => {
                let done = d.wake(wake);
                on_verified(state, out, done)?;
            }
            Ok(None) | Err(_) => break,
        }
    }
    if last {
        let rest = d.abandon("the agent stopped before this exec could be verified");
        on_verified(state, out, rest)?;
    }
    state.verification = Some(d);
    Ok(())
}

/// Waits for a finished pre-verification, if enforcing.
async fn next_preverified(
    e: &mut Option<enforce::Enforcement>,
) -> Option<(u64, crate::verify::preverify::PreVerified)> {
    match e {
        Some(e) => e.next().await,
        None => std::future::pending().await,
    }
}

/// Waits for the drift side, if there is one.
async fn next_verification(d: &mut Option<verification::Verification>) -> Option<verification::Wake> {
    match d {
        Some(d) => d.next().await,
        None => std::future::pending().await,
    }
}

fn stats<'a>(
    counters: &KernelCounters,
    state: &'a mut State,
    is_final: bool,
) -> anyhow::Result<StatsJson<'a, crate::alert::AlertStats>> {
    let kernel = KernelStats::from_per_cpu(&counters.read().context("reading kernel counters")?);
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
        lost: kernel.lost() + state.user.decode_errors,
        verify: state.verification.as_ref().map(verification::Verification::stats),
        alerts: state.alerts.as_mut().map(crate::alert::Alerts::stats),
        policy: state.policy.as_ref().map(|p| p.stats.clone()),
        enforcement: state.enforcement.as_ref().map(|e| e.stats.clone()),
        blocks: state.enforcement.as_ref().map(|e| e.blocks.clone()),
        kernel,
        user: state.user.clone(),
        max_rss_kib,
    })
}

/// Peak resident set of this process since it was exec'd, in KiB: `VmHWM`
/// of `/proc/self/status`. Not `getrusage().ru_maxrss`, which Linux carries
/// across `execve` and so reports the parent's size at fork when that was
/// larger (a 60 MiB test harness made the agent look 60 MiB).
pub(crate) fn peak_rss_kib() -> u64 {
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
