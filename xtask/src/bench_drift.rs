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
//!
//! Each storm is timed inside the container (see [`crate::storms`]), and
//! also measured in CPU time ([`crate::cpu`]), because on a shared 2-core
//! VM the exec rate of one round swings by 10-20%, ten times the 2% the
//! steady-state target asks to resolve. Per mode and round it reads the
//! container cgroup's CPU (the execs, with the eBPF programs that run in
//! them), the agent's threads' CPU, and its programs' run time
//! (`kernel.bpf_stats_enabled`, on for the run, restored after). It
//! prints the CPU per exec and its ratio to no agent, the verify-observe
//! difference paired within each round (median and range over rounds)
//! for both the CPU and the rate, and the attributed cost (eBPF run time
//! plus agent CPU): the part of the overhead the kernel charges to the
//! agent by name, free of the workload's own drift, though blind to
//! indirect costs such as cache pollution, which only the whole-CPU and
//! wall figures hold.

use std::{os::unix::fs::PermissionsExt as _, process::Command};

use anyhow::bail;
use verifier_tests::{
    agent::{Agent, execs, final_stats},
    bundle::Bundle,
    runc::Container,
    storm::tiny_elf,
};

use crate::{
    cpu::{BpfStatsOn, CgroupCpu, Meter, Usage, Workload, bpf_per_exec, spread},
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
    /// Alternating rounds (each storm is short: more rounds, a better
    /// median).
    #[arg(long, default_value_t = 12)]
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
    let _bpf_stats = BpfStatsOn::enable()?;
    let none_meter =
        Meter { workload: Workload::Cgroup(CgroupCpu::of(container.pid()?)?), agent: None, server: None };
    let rule = format!("{id}={}", sbom.display());
    let observe = ["--containers-only", "--stats-interval", "0"];
    let verify = ["--containers-only", "--stats-interval", "0", "--sbom", rule.as_str()];

    // The fixed cost in the container's CPU of one storm (the `runc exec`
    // helper and the two clock readings), which dilutes every ratio a bit.
    let ((), fixed) = none_meter.measure(|| storm(&container, "true", 0).map(drop))?;
    println!(
        "exec storm inside a runc container, {} execs per run, {} rounds; CPU = container cgroup + agent, us per exec \
         (each storm also carries {:.1} ms of fixed runc exec CPU)",
        args.execs,
        args.rounds,
        fixed.container as f64 / 1e6
    );
    println!(
        "{:>5} {:>8} {:>9} {:>8} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>4} {:>7}",
        "round",
        "none/s",
        "observe/s",
        "verify/s",
        "obs x",
        "ver x",
        "none us",
        "obs us",
        "ver us",
        "v-o %",
        "obs bpf",
        "ver bpf",
        "fast_path",
        "lost",
        "rss KiB"
    );
    let mut steady = Vec::new();
    for round in 1..=args.rounds {
        // The three runs in a rotating order: a drift over the session
        // (page cache, pid numbers, CPU frequency) must not always land on
        // the same one.
        let mut r = [Mode::default(), Mode::default(), Mode::default()];
        let (mut obs_records, mut records) = (Vec::new(), Vec::new());
        for step in 0..3 {
            match (step + round) % 3 {
                0 => r[0] = Mode::run(&none_meter, &container, "/opt/bin/tiny", args.execs)?,
                1 => {
                    let agent = Agent::start_bin(&verifier_bin(), &observe)?;
                    let meter = Meter { agent: Some(agent.pid()), ..none_meter.clone() };
                    r[1] = Mode::run(&meter, &container, "/opt/bin/tiny", args.execs)?;
                    obs_records = agent.stop()?;
                }
                _ => {
                    let agent = Agent::start_bin(&verifier_bin(), &verify)?;
                    storm(&container, "/opt/bin/tiny", 1)?; // first sight: verified, enters the fast path
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    let meter = Meter { agent: Some(agent.pid()), ..none_meter.clone() };
                    r[2] = Mode::run(&meter, &container, "/opt/bin/tiny", args.execs)?;
                    records = agent.stop()?;
                }
            }
        }
        let stats = final_stats(&records)?;
        let lost = stats["lost"].as_u64().unwrap_or(u64::MAX)
            + final_stats(&obs_records)?["lost"].as_u64().unwrap_or(u64::MAX);
        let [none, obs, ver] = &r;
        let us = r.each_ref().map(|m| m.usage.us_per_exec(args.execs));
        println!(
            "{round:>5} {:>8.0} {:>9.0} {:>8.0} {:>6.3} {:>6.3} {:>7.1} {:>7.1} {:>7.1} {:>+7.2} {:>7.0} {:>7.0} {:>9} {lost:>4} {:>7}",
            none.rate,
            obs.rate,
            ver.rate,
            none.rate / obs.rate,
            none.rate / ver.rate,
            us[0],
            us[1],
            us[2],
            (us[2] / us[1] - 1.0) * 100.0,
            obs.usage.bpf.total_ns() as f64 / f64::from(args.execs),
            ver.usage.bpf.total_ns() as f64 / f64::from(args.execs),
            stats["kernel"]["fast_path"],
            stats["max_rss_kib"]
        );
        steady.push(r);
    }
    steady_summary(&steady, args.execs);

    // First sight: every exec a new binary; alternating with and without
    // the agent (in turn first), a fresh set of binaries each run.
    println!("first sight: {} new binaries per run, {} rounds", args.new, args.rounds);
    println!(
        "{:>5} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>6} {:>8}",
        "round",
        "none/s",
        "verify/s",
        "ver x",
        "none us",
        "ver us",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "rss KiB"
    );
    let (mut none_t, mut with_t) = (0.0, 0.0);
    let (mut with_x, mut cpu_x, mut cpu_t) = (Vec::new(), Vec::new(), [0.0; 2]);
    let mut none_cpu = Usage::default();
    let mut all = Vec::new();
    for round in 0..args.rounds {
        let mut none = 0.0;
        if round % 2 == 0 {
            (none, none_cpu) = none_meter.measure(|| storm_new(&container, round * 2, args.new))?;
        }
        let agent = Agent::start_bin(&verifier_bin(), &verify)?;
        storm(&container, "/bin/true", 1)?; // resolve the container first
        std::thread::sleep(std::time::Duration::from_millis(300));
        let meter = Meter { agent: Some(agent.pid()), ..none_meter.clone() };
        let (with, with_cpu) = meter.measure(|| {
            let rate = storm_new(&container, round * 2 + 1, args.new)?;
            // Let the last reports out before stopping (shutdown is not
            // what is measured), the agent's CPU for them included.
            std::thread::sleep(std::time::Duration::from_millis(300));
            Ok(rate)
        })?;
        let records = agent.stop()?;
        if round % 2 == 1 {
            (none, none_cpu) = none_meter.measure(|| storm_new(&container, round * 2, args.new))?;
        }
        let us = [none_cpu.us_per_exec(args.new), with_cpu.us_per_exec(args.new)];
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
            "{:>5} {none:>10.0} {with:>10.0} {:>8.3} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>6} {:>8}{}",
            round + 1,
            none / with,
            us[0],
            us[1],
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
        cpu_x.push(us[1] / us[0]);
        cpu_t[0] += us[0];
        cpu_t[1] += us[1];
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
    let (med, lo, hi) = spread(&with_x);
    let (cmed, clo, chi) = spread(&cpu_x);
    println!(
        "first sight CPU per exec: none {:.1} us, verifying {:.1} us ({:.3}x); ratio per round: wall median {med:.3} ({lo:.3}..{hi:.3}), CPU median {cmed:.3} ({clo:.3}..{chi:.3})",
        cpu_t[0] / f64::from(args.rounds.max(1)),
        cpu_t[1] / f64::from(args.rounds.max(1)),
        cpu_t[1] / cpu_t[0].max(f64::MIN_POSITIVE)
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

/// One storm of one mode: its rate (execs per second of the loop) and
/// the CPU it used.
#[derive(Default)]
struct Mode {
    rate: f64,
    usage: Usage,
}

impl Mode {
    fn run(meter: &Meter, container: &Container, program: &str, n: u32) -> anyhow::Result<Self> {
        let (rate, usage) = meter.measure(|| storm(container, program, n))?;
        Ok(Self { rate, usage })
    }
}

/// The steady-state summary over rounds of [none, observe, verify]: wall
/// and CPU ratios with their spread, the paired verify-observe difference
/// per round, and the eBPF programs' run time per exec.
fn steady_summary(rounds: &[[Mode; 3]], execs: u32) {
    let us = |m: &Mode| m.usage.us_per_exec(execs);
    let col = |f: &dyn Fn(&[Mode; 3]) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    let show = |v: &[f64], digits: usize| {
        let (med, lo, hi) = spread(v);
        format!("median {med:.digits$} ({lo:.digits$}..{hi:.digits$}, spread {:.digits$})", hi - lo)
    };
    let mean = |f: &dyn Fn(&Mode) -> f64, i: usize| {
        rounds.iter().map(|r| f(&r[i])).sum::<f64>() / rounds.len().max(1) as f64
    };
    let agent_us = |m: &Mode| m.usage.agent as f64 / 1000.0 / f64::from(execs.max(1));
    let rate = |i: usize| rounds.iter().map(|r| r[i].rate).sum::<f64>();
    println!(
        "steady state: slowdown {:.3}x observe-only, {:.3}x verifying ({:+.1}% vs observe-only); per-round medians {:.3}x and {:.3}x",
        rate(0) / rate(1),
        rate(0) / rate(2),
        (rate(1) / rate(2) - 1.0) * 100.0,
        spread(&col(&|r| r[0].rate / r[1].rate)).0,
        spread(&col(&|r| r[0].rate / r[2].rate)).0
    );
    let (none, obs, ver) = (mean(&us, 0), mean(&us, 1), mean(&us, 2));
    println!(
        "steady state CPU per exec (container + agent): none {none:.1} us, observe-only {obs:.1} us ({:.3}x), \
         verifying {ver:.1} us ({:.3}x); of which agent: observe {:.1} us, verify {:.1} us",
        obs / none,
        ver / none,
        mean(&agent_us, 1),
        mean(&agent_us, 2),
    );
    println!(
        "steady state verify - observe, paired per round, % of observe: CPU {}; wall {}",
        show(&col(&|r| (us(&r[2]) / us(&r[1]) - 1.0) * 100.0), 2),
        show(&col(&|r| (r[1].rate / r[2].rate - 1.0) * 100.0), 2)
    );
    println!(
        "steady state ratios to none: observe wall {} / CPU {}; verify wall {} / CPU {}",
        show(&col(&|r| r[0].rate / r[1].rate), 3),
        show(&col(&|r| us(&r[1]) / us(&r[0])), 3),
        show(&col(&|r| r[0].rate / r[2].rate), 3),
        show(&col(&|r| us(&r[2]) / us(&r[0])), 3)
    );
    // The part of the CPU the agent adds that is charged to it by name:
    // its programs' run time (in the exec'ing tasks) plus its own threads.
    // Indirect costs (cache pollution, the hook dispatch itself) are not in
    // it; the whole-CPU lines above hold them, with the machine's noise.
    let added = |m: &Mode| (m.usage.bpf.total_ns() + m.usage.agent) as f64 / 1000.0 / f64::from(execs.max(1));
    println!(
        "steady state attributed cost (eBPF run time + agent CPU) per exec, % of none's CPU per exec in the same round: \
         observe {}, verify {}; verify - observe in % of observe's CPU per exec: {} (in us: {})",
        show(&col(&|r| added(&r[1]) / us(&r[0]) * 100.0), 2),
        show(&col(&|r| added(&r[2]) / us(&r[0]) * 100.0), 2),
        show(&col(&|r| (added(&r[2]) - added(&r[1])) / us(&r[1]) * 100.0), 2),
        show(&col(&|r| added(&r[2]) - added(&r[1])), 2)
    );
    for (name, i) in [("observe", 1), ("verify", 2)] {
        println!(
            "steady state eBPF per exec, {name}: {}",
            bpf_per_exec(rounds.iter().map(|r| (&r[i].usage, u64::from(execs))))
        );
    }
    let others: u64 = rounds.iter().flatten().map(|m| m.usage.bpf.others_ns).sum();
    if others > 0 {
        println!(
            "note: other eBPF programs on this machine ran {:.1} ms during the storms (their cost is in the container's CPU too)",
            others as f64 / 1e6
        );
    }
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
