//! `cargo xtask bench-drift`: what verification costs an exec-heavy
//! container, and how fast drift is reported.
//!
//! One runc container (busybox image plus a tiny static ELF that exits at
//! once, listed in the SBOM). An exec storm inside it, a busybox `sh` loop,
//! runs alternately with no agent, with the observe-only agent, and with
//! the verifying agent (steady state: the file is verified once, then
//! answered in the kernel fast path). Then a first-sight storm: every exec
//! is a new, unlisted binary (each hashed and reported `unknown-binary`),
//! with the report latency of each (exec to record, p50/p99). Ratios are
//! against the no-agent rate of the same round. Nothing here asserts.

use std::{os::unix::fs::PermissionsExt as _, process::Command};

use anyhow::bail;
use verifier_tests::{
    agent::{Agent, execs, final_stats},
    bundle::Bundle,
    runc::Container,
    storm::tiny_elf,
};

use crate::{
    storms::{storm, storm_new},
    util::{root, verifier_bin},
};

#[derive(clap::Args)]
pub struct BenchDriftArgs {
    /// Execs per steady-state measurement.
    #[arg(long, default_value_t = 3000)]
    execs: u32,
    /// New binaries in the first-sight storm.
    #[arg(long, default_value_t = 500)]
    new: u32,
    /// Alternating rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Images (containers, each with its own SBOM) for the memory
    /// measurement (0: skip).
    #[arg(long, default_value_t = 50)]
    images: u32,
    /// Files in each image's SBOM.
    #[arg(long, default_value_t = 5000)]
    files: u32,
    /// Also compare the alert sinks: NATS JetStream (a local nats-server)
    /// against the alert file, same storms, alternating.
    #[arg(long)]
    sinks: bool,
}

pub fn run(args: &BenchDriftArgs) -> anyhow::Result<()> {
    if !cfg!(target_arch = "x86_64") {
        bail!("bench-drift uses a hand-made x86-64 ELF; run it on x86-64");
    }
    let dir = root().join("target/bench-drift");
    let _ = std::fs::remove_dir_all(&dir);
    let bundle = Bundle::busybox(&dir.join("bundle"), &["sleep", "3600"])?;
    let rootfs = bundle.rootfs();
    std::fs::create_dir_all(rootfs.join("opt/bin"))?;
    std::fs::write(rootfs.join("opt/bin/tiny"), tiny_elf(b"listed"))?;
    std::fs::set_permissions(rootfs.join("opt/bin/tiny"), std::fs::Permissions::from_mode(0o755))?;
    let sbom = dir.join("image.spdx.json");
    let ok =
        Command::new(verifier_bin()).args(["sbom", "generate", "-o"]).arg(&sbom).arg(&rootfs).status()?;
    if !ok.success() {
        bail!("sbom generate failed");
    }
    // Unlisted binaries for the first-sight storms, added after the SBOM: a
    // fresh set for every run (a binary seen once is no longer new).
    let sets = args.rounds.max(1) * if args.sinks { 4 } else { 2 };
    for set in 0..sets {
        std::fs::create_dir_all(rootfs.join(format!("opt/new{set}")))?;
        for i in 0..args.new {
            let p = rootfs.join(format!("opt/new{set}/n{i}"));
            std::fs::write(&p, tiny_elf(format!("new {set} {i}").as_bytes()))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let id = format!("verifier-bench-{}", std::process::id());
    let container = Container::run(&bundle.dir, &id)?;
    let rule = format!("{id}={}", sbom.display());
    let observe = ["--containers-only", "--stats-interval", "0"];
    let verify = ["--containers-only", "--stats-interval", "0", "--sbom", rule.as_str()];

    println!("exec storm inside a runc container, {} execs per run, {} rounds", args.execs, args.rounds);
    println!(
        "{:>5} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>6} {:>8}",
        "round", "none/s", "observe/s", "verify/s", "obs x", "ver x", "fast_path", "lost", "rss KiB"
    );
    let (mut none_t, mut obs_t, mut ver_t) = (0.0, 0.0, 0.0);
    let (mut obs_x, mut ver_x) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        // The three runs in a rotating order: a drift over the session
        // (page cache, pid numbers, CPU frequency) must not always land on
        // the same one.
        let (mut none, mut obs, mut ver) = (0.0, 0.0, 0.0);
        let (mut obs_records, mut records) = (Vec::new(), Vec::new());
        for step in 0..3 {
            match (step + round) % 3 {
                0 => none = storm(&container, "/opt/bin/tiny", args.execs)?,
                1 => {
                    let agent = Agent::start_bin(&verifier_bin(), &observe)?;
                    obs = storm(&container, "/opt/bin/tiny", args.execs)?;
                    obs_records = agent.stop()?;
                }
                _ => {
                    let agent = Agent::start_bin(&verifier_bin(), &verify)?;
                    storm(&container, "/opt/bin/tiny", 1)?; // first sight: verified, enters the fast path
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    ver = storm(&container, "/opt/bin/tiny", args.execs)?;
                    records = agent.stop()?;
                }
            }
        }
        let stats = final_stats(&records)?;
        let lost = stats["lost"].as_u64().unwrap_or(u64::MAX)
            + final_stats(&obs_records)?["lost"].as_u64().unwrap_or(u64::MAX);
        println!(
            "{round:>5} {none:>10.0} {obs:>10.0} {ver:>10.0} {:>8.3} {:>8.3} {:>10} {lost:>6} {:>8}",
            none / obs,
            none / ver,
            stats["kernel"]["fast_path"],
            stats["max_rss_kib"]
        );
        none_t += none;
        obs_t += obs;
        ver_t += ver;
        obs_x.push(none / obs);
        ver_x.push(none / ver);
    }
    println!(
        "steady state: slowdown {:.3}x observe-only, {:.3}x verifying ({:+.1}% vs observe-only); per-round medians {:.3}x and {:.3}x",
        none_t / obs_t,
        none_t / ver_t,
        (obs_t / ver_t - 1.0) * 100.0,
        median(&mut obs_x),
        median(&mut ver_x)
    );

    // First sight: every exec a new binary; alternating with and without
    // the agent (in turn first), a fresh set of binaries each run.
    println!("first sight: {} new binaries per run, {} rounds", args.new, args.rounds);
    println!(
        "{:>5} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>6} {:>8}",
        "round", "none/s", "verify/s", "ver x", "p50 ms", "p99 ms", "max ms", "lost", "rss KiB"
    );
    let (mut none_t, mut with_t) = (0.0, 0.0);
    let mut with_x = Vec::new();
    let mut all = Vec::new();
    for round in 0..args.rounds {
        let mut none = 0.0;
        if round % 2 == 0 {
            none = storm_new(&container, round * 2, args.new)?;
        }
        let agent = Agent::start_bin(&verifier_bin(), &verify)?;
        storm(&container, "/bin/true", 1)?; // resolve the container first
        std::thread::sleep(std::time::Duration::from_millis(300));
        let with = storm_new(&container, round * 2 + 1, args.new)?;
        // Let the last reports out before stopping (shutdown is not what
        // is measured).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let records = agent.stop()?;
        if round % 2 == 1 {
            none = storm_new(&container, round * 2, args.new)?;
        }
        let stats = final_stats(&records)?;
        let mut latencies: Vec<u64> = execs(&records)
            .filter(|r| r["verification"]["verdict"] == "unknown-binary")
            .filter_map(|r| r["verification"]["latency_us"].as_u64())
            .collect();
        if std::env::var_os("BENCH_DRIFT_TRACE").is_some() {
            let series: Vec<u64> = latencies.iter().map(|l| l / 1000).collect();
            eprintln!("latency ms in exec order: {series:?}");
        }
        latencies.sort_unstable();
        let reported = latencies.len();
        println!(
            "{:>5} {none:>10.0} {with:>10.0} {:>8.3} {:>9.1} {:>9.1} {:>9.1} {:>6} {:>8}{}",
            round + 1,
            none / with,
            pct(&latencies, 0.5) as f64 / 1000.0,
            pct(&latencies, 0.99) as f64 / 1000.0,
            latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
            stats["lost"],
            stats["max_rss_kib"],
            if reported == args.new as usize { String::new() } else { format!("  ({reported} reported!)") }
        );
        all.extend(latencies);
        none_t += none;
        with_t += with;
        with_x.push(none / with);
    }
    all.sort_unstable();
    println!(
        "first sight: slowdown {:.3}x (per-round median {:.3}x); report latency p50 {:.1} ms, p99 {:.1} ms over {} unknown-binary reports",
        none_t / with_t,
        median(&mut with_x),
        pct(&all, 0.5) as f64 / 1000.0,
        pct(&all, 0.99) as f64 / 1000.0,
        all.len()
    );
    if args.sinks {
        let first_set = args.rounds.max(1) * 2;
        crate::bench_sinks::run(&container, &dir, &verify, args.rounds, args.execs, args.new, first_set)?;
    }
    drop(container);
    if args.images > 0 {
        crate::bench_images::run(&dir.join("images"), args.images, args.files)?;
    }
    Ok(())
}

/// The median (0 for none).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The `p` quantile of sorted values.
fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
}
