//! `cargo xtask bench`: what the agent costs an exec-heavy workload.
//!
//! An exec storm (workers forking and exec'ing a copy of /bin/true) runs
//! alternately without and with the agent attached, in the same run, so
//! machine noise hits both sides. For each worker count it prints the rates,
//! the slowdown ratio (rate without / rate with), the events the agent lost
//! and its peak RSS. Nothing here asserts: the numbers are for people.
//!
//! Rates swing by 10-20% a round on a shared VM, so each storm is also
//! measured in CPU time ([`crate::cpu`]): the storm's own (this process
//! and its reaped children, where the eBPF programs ran) plus the agent's
//! threads, per exec; and the agent's programs' run time from the
//! kernel's BPF statistics. The wall and CPU ratios are printed with their
//! spread over rounds, so the reader sees which is tighter.

use std::time::Duration;

use verifier_tests::{
    agent::{Agent, execs, final_stats},
    storm,
};

use crate::{
    cpu::{BpfStatsOn, Meter, Usage, Workload, bpf_per_exec, spread},
    util::verifier_bin,
};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Alternating baseline/agent pairs per worker count.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Storm worker counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<u64>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let marker = storm::marker_program(dir.path(), "bench-storm-true")?;
    let name = marker.to_string_lossy().into_owned();
    let secs = Duration::from_secs_f64(args.seconds);
    let _bpf_stats = BpfStatsOn::enable()?;
    let base_meter = Meter { workload: Workload::SelfAndChildren, agent: None, server: None };
    println!(
        "exec storm, {} s per run, {} alternating rounds; ratio = rate without agent / rate with",
        args.seconds, args.rounds
    );
    println!(
        "{:>7} {:>5} {:>12} {:>12} {:>7} {:>8} {:>8} {:>7} {:>7} {:>9} {:>8} {:>9}",
        "workers",
        "round",
        "base exec/s",
        "agent exec/s",
        "ratio",
        "base us",
        "agent us",
        "cpu x",
        "bpf ns",
        "events",
        "lost",
        "rss KiB"
    );
    for &workers in &args.workers {
        let (mut base_total, mut agent_total, mut lost_total, mut rss_max) = (0.0, 0.0, 0u64, 0u64);
        let (mut wall_x, mut cpu_x, mut added, mut with_usage) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 1..=args.rounds {
            let ((n, t), base_cpu) = base_meter.measure(|| Ok(storm::by_time(&marker, secs, workers)))?;
            let base = n as f64 / t.as_secs_f64();
            let base_us = base_cpu.us_per_exec(n);
            let agent = Agent::start_bin(&verifier_bin(), &["--stats-interval", "0"])?;
            let meter = Meter { agent: Some(agent.pid()), ..base_meter.clone() };
            let ((n, t), with_cpu) = meter.measure(|| Ok(storm::by_time(&marker, secs, workers)))?;
            let with = n as f64 / t.as_secs_f64();
            let with_us = with_cpu.us_per_exec(n);
            let bpf_ns = with_cpu.bpf.total_ns() as f64 / n.max(1) as f64;
            let records = agent.stop()?;
            let stats = final_stats(&records)?;
            let lost = stats["lost"].as_u64().unwrap_or(u64::MAX);
            let rss = stats["max_rss_kib"].as_u64().unwrap_or(0);
            let events = execs(&records).filter(|r| r["filename"] == name.as_str()).count();
            println!(
                "{workers:>7} {round:>5} {base:>12.0} {with:>12.0} {:>7.3} {base_us:>8.1} {with_us:>8.1} {:>7.3} {bpf_ns:>7.0} {events:>9} {lost:>8} {rss:>9}",
                base / with,
                with_us / base_us
            );
            wall_x.push(base / with);
            cpu_x.push(with_us / base_us);
            added.push((bpf_ns + with_cpu.agent as f64 / n.max(1) as f64) / 1000.0 / base_us * 100.0);
            with_usage.push((with_cpu, n));
            base_total += base;
            agent_total += with;
            lost_total += lost;
            rss_max = rss_max.max(rss);
        }
        let rounds = f64::from(args.rounds);
        println!(
            "workers {workers}: mean {:.0} exec/s without, {:.0} with; slowdown {:.3}x; lost {lost_total}; peak agent RSS {rss_max} KiB ({:.1} MiB)",
            base_total / rounds,
            agent_total / rounds,
            base_total / agent_total,
            rss_max as f64 / 1024.0
        );
        summary(workers, &wall_x, &cpu_x, &added, &with_usage);
    }
    Ok(())
}

/// Wall and CPU ratios with their spread over rounds, the attributed cost
/// (eBPF run time + agent CPU, in % of the storm's CPU per exec without
/// the agent) and the programs' run time per exec.
fn summary(workers: u64, wall_x: &[f64], cpu_x: &[f64], added: &[f64], with: &[(Usage, u64)]) {
    let show = |v: &[f64], d: usize| {
        let (med, lo, hi) = spread(v);
        format!("median {med:.d$} ({lo:.d$}..{hi:.d$}, spread {:.d$})", hi - lo)
    };
    println!(
        "workers {workers}: ratio with/without per round: wall {}, CPU per exec {}; attributed cost (eBPF + agent) {} % of the storm's CPU per exec",
        show(wall_x, 3),
        show(cpu_x, 3),
        show(added, 2)
    );
    println!("workers {workers}: eBPF per exec {}", bpf_per_exec(with.iter().map(|(u, n)| (u, *n))));
}
