//! `cargo xtask bench`: what the agent costs an exec-heavy workload.
//!
//! An exec storm (workers forking and exec'ing a copy of /bin/true) runs
//! alternately without and with the agent attached, in the same run, so
//! machine noise hits both sides. For each worker count it prints the rates,
//! the slowdown ratio (rate without / rate with), the events the agent lost
//! and its peak RSS. Nothing here asserts: the numbers are for people.

use std::time::Duration;

use verifier_tests::{
    agent::{Agent, execs, final_stats},
    storm,
};

use crate::util::verifier_bin;

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
    println!(
        "exec storm, {} s per run, {} alternating rounds; ratio = rate without agent / rate with",
        args.seconds, args.rounds
    );
    println!(
        "{:>7} {:>5} {:>12} {:>12} {:>7} {:>9} {:>8} {:>9}",
        "workers", "round", "base exec/s", "agent exec/s", "ratio", "events", "lost", "rss KiB"
    );
    for &workers in &args.workers {
        let (mut base_total, mut agent_total, mut lost_total, mut rss_max) = (0.0, 0.0, 0u64, 0u64);
        for round in 1..=args.rounds {
            let (n, t) = storm::by_time(&marker, secs, workers);
            let base = n as f64 / t.as_secs_f64();
            let agent = Agent::start_bin(&verifier_bin(), &["--stats-interval", "0"])?;
            let (n, t) = storm::by_time(&marker, secs, workers);
            let with = n as f64 / t.as_secs_f64();
            let records = agent.stop()?;
            let stats = final_stats(&records)?;
            let lost = stats["lost"].as_u64().unwrap_or(u64::MAX);
            let rss = stats["max_rss_kib"].as_u64().unwrap_or(0);
            let events = execs(&records).filter(|r| r["filename"] == name.as_str()).count();
            println!(
                "{workers:>7} {round:>5} {base:>12.0} {with:>12.0} {:>7.3} {events:>9} {lost:>8} {rss:>9}",
                base / with
            );
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
    }
    Ok(())
}
