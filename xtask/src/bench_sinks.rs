//! `cargo xtask bench-drift --sinks`: what the NATS JetStream alert sink
//! costs the node against the alert file, measured in the same session on
//! the same container, runs alternating (in turn first) so drift over the
//! session does not land on one sink.
//!
//! Two storms per run: the steady state (a listed binary, answered in the
//! kernel fast path: the sink only idles beside it) and first sight (every
//! exec a new unlisted binary, so every exec is an alert the sink carries).
//! The NATS server is Debian's `nats-server` on loopback with file storage,
//! started here, on the same two cores: in a fleet it runs elsewhere.
//!
//! Exec rates on this shared VM swing by 10-20% a round, so each storm is
//! also measured in CPU time ([`crate::cpu`]): the container's cgroup (the
//! execs, the eBPF programs in them) plus the agent's threads is the
//! node's cost per exec; nats-server's CPU is printed apart (on this node
//! only because the benchmark runs it here). The NATS-file difference is
//! taken per round, between the two runs of that round, and shown as the
//! median and the range over rounds, beside the same for the exec rates,
//! so the reader sees which measure is tighter. Nothing here asserts.

use std::time::Duration;

use anyhow::Context as _;
use verifier_tests::{
    agent::{Agent, final_stats},
    nats::{NatsServer, free_port},
    runc::Container,
};

use crate::{
    cpu::{CgroupCpu, Meter, Usage, Workload, spread},
    storms::{storm, storm_new},
    util::verifier_bin,
};

/// Which sink a run uses.
#[derive(Clone, Copy)]
enum Sink {
    File,
    Nats,
}

/// One run of one sink: rates and CPU of its steady and first-sight storms.
#[derive(Default)]
struct Run {
    steady: f64,
    first: f64,
    steady_cpu: Usage,
    first_cpu: Usage,
}

/// `verify`: the verifying agent's arguments; each run takes a fresh set
/// of `new` unlisted binaries, `/opt/new<first_set>` onwards.
pub fn run(
    container: &Container,
    dir: &std::path::Path,
    verify: &[&str],
    rounds: u32,
    execs: u32,
    new: u32,
    first_set: u32,
) -> anyhow::Result<()> {
    let server = NatsServer::start(free_port()?, &dir.join("nats")).context("the benchmark's nats-server")?;
    let url = server.url();
    let file = dir.join("alerts.jsonl");
    let file_arg = file.to_str().context("utf-8 path")?.to_owned();
    let workload = Workload::Cgroup(CgroupCpu::of(container.pid()?)?);
    println!(
        "alert sinks: file against NATS JetStream ({url}), {execs} steady execs, {new} new binaries per run; \
         CPU = container + agent, us per exec; server apart"
    );
    println!(
        "{:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8}",
        "round",
        "sink",
        "steady/s",
        "first/s",
        "steady us",
        "first us",
        "server us",
        "alerts",
        "sent",
        "lost"
    );
    // [round][file, nats]
    let mut runs: Vec<[Run; 2]> = Vec::new();
    let mut set = first_set;
    for round in 0..rounds {
        let order = if round % 2 == 0 { [Sink::File, Sink::Nats] } else { [Sink::Nats, Sink::File] };
        let mut pair = [Run::default(), Run::default()];
        for sink in order {
            let _ = std::fs::remove_file(&file);
            let mut args: Vec<&str> = verify.to_vec();
            args.push("--no-alert-stdout");
            match sink {
                Sink::File => args.extend(["--alert-file", &file_arg]),
                Sink::Nats => args.extend(["--alert-nats", &url]),
            }
            let agent = Agent::start_bin(&verifier_bin(), &args)?;
            let meter =
                Meter { workload: workload.clone(), agent: Some(agent.pid()), server: Some(server.pid()) };
            storm(container, "/opt/bin/tiny", 1)?; // verified once, then the fast path
            std::thread::sleep(Duration::from_millis(300));
            let (steady, steady_cpu) = meter.measure(|| storm(container, "/opt/bin/tiny", execs))?;
            let (first, first_cpu) = meter.measure(|| {
                let rate = storm_new(container, set, new)?;
                // Let the alerts out before stopping (shutdown is not
                // measured), their CPU included.
                std::thread::sleep(Duration::from_millis(500));
                Ok(rate)
            })?;
            set += 1;
            let records = agent.stop()?;
            let s = &final_stats(&records)?["alerts"];
            let emitted: u64 =
                s["emitted"].as_object().map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
            let (name, sent, lost, i) = match sink {
                Sink::File => ("file", emitted, s["file_errors"].as_u64().unwrap_or(0), 0),
                Sink::Nats => {
                    ("nats", s["nats_sent"].as_u64().unwrap_or(0), s["nats_lost"].as_u64().unwrap_or(0), 1)
                }
            };
            println!(
                "{:>5} {name:>6} {steady:>9.0} {first:>9.0} {:>9.1} {:>9.1} {:>10.1} {emitted:>8} {sent:>8} {lost:>8}",
                round + 1,
                steady_cpu.us_per_exec(execs),
                first_cpu.us_per_exec(new),
                (steady_cpu.server + first_cpu.server) as f64 / 1000.0 / f64::from(execs + new),
            );
            pair[i] = Run { steady, first, steady_cpu, first_cpu };
        }
        runs.push(pair);
    }
    summary(&runs, execs, new);
    drop(server);
    Ok(())
}

/// Totals, and the paired per-round NATS-file differences in CPU and in
/// rate, with their spread.
fn summary(runs: &[[Run; 2]], execs: u32, new: u32) {
    let n = runs.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Run) -> f64, i: usize| runs.iter().map(|r| f(&r[i])).sum::<f64>() / n;
    let show = |f: &dyn Fn(&[Run; 2]) -> f64| {
        let (med, lo, hi) = spread(&runs.iter().map(f).collect::<Vec<f64>>());
        format!("median {med:+.2}% ({lo:+.2}..{hi:+.2}, spread {:.2})", hi - lo)
    };
    let steady_us = |r: &Run| r.steady_cpu.us_per_exec(execs);
    let first_us = |r: &Run| r.first_cpu.us_per_exec(new);
    let agent_first = |r: &Run| r.first_cpu.agent as f64 / 1e6 / f64::from(new.max(1));
    let rate_total = |f: &dyn Fn(&Run) -> f64, i: usize| runs.iter().map(|r| f(&r[i])).sum::<f64>();
    println!(
        "alert sinks: NATS against file: steady state {:+.2}% exec rate, first sight {:+.2}% exec rate",
        (rate_total(&|r| r.steady, 1) / rate_total(&|r| r.steady, 0) - 1.0) * 100.0,
        (rate_total(&|r| r.first, 1) / rate_total(&|r| r.first, 0) - 1.0) * 100.0
    );
    println!(
        "alert sinks: CPU per exec (container + agent): steady file {:.1} us, nats {:.1} us; first sight file {:.1} us, nats {:.1} us; \
         nats-server {:.1} us per alert (on this node only because the benchmark runs it here)",
        mean(&steady_us, 0),
        mean(&steady_us, 1),
        mean(&first_us, 0),
        mean(&first_us, 1),
        runs.iter().map(|r| r[1].first_cpu.server as f64 / 1000.0).sum::<f64>() / (n * f64::from(new.max(1)))
    );
    println!(
        "alert sinks: nats - file, paired per round, % of file: steady CPU {}, wall {}; first sight CPU {}, wall {}",
        show(&|r| (steady_us(&r[1]) / steady_us(&r[0]) - 1.0) * 100.0),
        show(&|r| (r[0].steady / r[1].steady - 1.0) * 100.0),
        show(&|r| (first_us(&r[1]) / first_us(&r[0]) - 1.0) * 100.0),
        show(&|r| (r[0].first / r[1].first - 1.0) * 100.0)
    );
    // The sink lives in the agent: its cost to the node is in the agent's
    // CPU (and the eBPF run time, the same for both sinks), measured
    // without the container's much larger, noisier share.
    let added = |u: &Usage, n: u32| (u.bpf.total_ns() + u.agent) as f64 / 1000.0 / f64::from(n.max(1));
    println!(
        "alert sinks: nats - file attributed cost (eBPF run time + agent CPU), paired per round, % of file's CPU per exec: steady {}, first sight {}",
        show(
            &|r| (added(&r[1].steady_cpu, execs) - added(&r[0].steady_cpu, execs)) / steady_us(&r[0]) * 100.0
        ),
        show(&|r| (added(&r[1].first_cpu, new) - added(&r[0].first_cpu, new)) / first_us(&r[0]) * 100.0)
    );
    println!(
        "alert sinks: first-sight CPU per alert: agent {:.3} ms with the file, {:.3} ms with NATS ({:+.2}%)",
        mean(&agent_first, 0),
        mean(&agent_first, 1),
        (mean(&agent_first, 1) / mean(&agent_first, 0).max(f64::MIN_POSITIVE) - 1.0) * 100.0
    );
}
