//! `cargo xtask bench-enforce`: what enforcement costs an exec-heavy
//! container, against observe-only and verify-only in the same run, and
//! how long an enforced container waits for its allowed set.
//!
//! One runc container (busybox plus a tiny static ELF, and sets of tiny
//! ELFs never run before, all listed in the SBOM). Each round runs, in a
//! rotating order, the agent observing only (no SBOM), verifying (SBOM),
//! and enforcing (SBOM and `--enforce` on the container):
//! - steady state: a `sh` loop exec'ing the tiny ELF (verified once, then
//!   answered in the kernel);
//! - first sight: every exec a listed binary never run before (a fresh
//!   set per run): the verifying agent hashes each in userspace; the
//!   enforcing one pre-verified them when the container was resolved.
//!
//! Then the real Debian image (when `cargo xtask setup` built it): time
//! from `runc run` to enforcement `active`, and the agent's own
//! pre-verification time. Ratios are against observe-only of the same
//! round. Nothing here asserts but that nothing legitimate was blocked.

use std::{
    os::unix::fs::PermissionsExt as _,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use verifier_tests::{
    agent::{Agent, final_stats},
    bundle::Bundle,
    enforce::wait_active,
    real_image::RealImage,
    runc::Container,
    storm::tiny_elf,
};

use crate::util::{root, verifier_bin};

#[derive(clap::Args)]
pub struct BenchEnforceArgs {
    /// Execs per steady-state measurement.
    #[arg(long, default_value_t = 3000)]
    execs: u32,
    /// Listed binaries never run before, per first-sight run.
    #[arg(long, default_value_t = 300)]
    new: u32,
    /// Rounds (each runs all three agents).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

fn storm(container: &Container, script: &str, n: u32) -> anyhow::Result<f64> {
    let started = Instant::now();
    container.exec(&["sh", "-c", script])?;
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}

fn steady(container: &Container, n: u32) -> anyhow::Result<f64> {
    storm(container, &format!("i=0; while [ $i -lt {n} ]; do /opt/bin/tiny; i=$((i+1)); done"), n)
}

fn first_sight(container: &Container, set: u32, n: u32) -> anyhow::Result<f64> {
    storm(container, &format!("i=0; while [ $i -lt {n} ]; do /opt/first{set}/n$i; i=$((i+1)); done"), n)
}

pub fn run(args: &BenchEnforceArgs) -> anyhow::Result<()> {
    if !cfg!(target_arch = "x86_64") {
        bail!("bench-enforce uses a hand-made x86-64 ELF; run it on x86-64");
    }
    let dir = root().join("target/bench-enforce");
    let _ = std::fs::remove_dir_all(&dir);
    let bundle = Bundle::busybox(&dir.join("bundle"), &["sleep", "3600"])?;
    let rootfs = bundle.rootfs();
    let sets = args.rounds * 3;
    for (path, body) in
        std::iter::once(("opt/bin/tiny".to_owned(), "listed".to_owned())).chain((0..sets).flat_map(|s| {
            (0..args.new).map(move |i| (format!("opt/first{s}/n{i}"), format!("first {s} {i}")))
        }))
    {
        let p = rootfs.join(&path);
        std::fs::create_dir_all(p.parent().context("parent")?)?;
        std::fs::write(&p, tiny_elf(body.as_bytes()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    let sbom = dir.join("image.spdx.json");
    let ok =
        Command::new(verifier_bin()).args(["sbom", "generate", "-o"]).arg(&sbom).arg(&rootfs).status()?;
    if !ok.success() {
        bail!("sbom generate failed");
    }
    let id = format!("verifier-bench-enforce-{}", std::process::id());
    let container = Container::run(&bundle.dir, &id)?;
    let rule = format!("{id}={}", sbom.display());
    let observe: Vec<&str> = vec!["--containers-only", "--stats-interval", "0"];
    let mut verify = observe.clone();
    verify.extend(["--sbom", rule.as_str()]);
    let mut enforce = verify.clone();
    enforce.extend(["--enforce", id.as_str()]);

    println!(
        "exec storm in a runc container: {} execs steady, {} listed binaries first seen, {} rounds",
        args.execs, args.new, args.rounds
    );
    println!(
        "{:>5} {:>9} {:>9} {:>9} {:>7} {:>7} | {:>8} {:>8} {:>8} {:>7} {:>7} | {:>7} {:>6}",
        "round",
        "obs/s",
        "ver/s",
        "enf/s",
        "ver x",
        "enf x",
        "1st obs",
        "1st ver",
        "1st enf",
        "ver x",
        "enf x",
        "act ms",
        "blocks"
    );
    let mut totals = [[0.0f64; 3]; 2];
    let mut set = 0;
    for round in 0..args.rounds {
        let mut rate = [[0.0f64; 3]; 2];
        let (mut active_ms, mut blocked) = (0.0, 0u64);
        for step in 0..3 {
            let which = (step + round as usize) % 3;
            let agent_args = [&observe, &verify, &enforce][which];
            let agent = Agent::start_bin(&verifier_bin(), agent_args)?;
            let t = Instant::now();
            if which == 2 {
                wait_active(&agent, &id)?;
                active_ms = t.elapsed().as_secs_f64() * 1000.0;
            }
            steady(&container, 1)?; // first sight of the storm's file: verified, enters the fast path
            std::thread::sleep(Duration::from_millis(300));
            rate[0][which] = steady(&container, args.execs)?;
            rate[1][which] = first_sight(&container, set, args.new)?;
            set += 1;
            std::thread::sleep(Duration::from_millis(300));
            let records = agent.stop()?;
            if which == 2 {
                blocked = final_stats(&records)?["kernel"]["blocked"].as_u64().unwrap_or(u64::MAX);
            }
        }
        println!(
            "{:>5} {:>9.0} {:>9.0} {:>9.0} {:>7.3} {:>7.3} | {:>8.0} {:>8.0} {:>8.0} {:>7.3} {:>7.3} | {active_ms:>7.0} {blocked:>6}",
            round + 1,
            rate[0][0],
            rate[0][1],
            rate[0][2],
            rate[0][0] / rate[0][1],
            rate[0][0] / rate[0][2],
            rate[1][0],
            rate[1][1],
            rate[1][2],
            rate[1][0] / rate[1][1],
            rate[1][0] / rate[1][2],
        );
        for (t, r) in totals.iter_mut().zip(rate) {
            for (a, b) in t.iter_mut().zip(r) {
                *a += b;
            }
        }
    }
    for (name, t) in ["steady state", "first sight"].iter().zip(totals) {
        println!(
            "{name}: slowdown against observe-only {:.3}x verifying, {:.3}x enforcing ({:+.1}% enforcing vs observe-only, {:+.1}% vs verifying)",
            t[0] / t[1],
            t[0] / t[2],
            (t[0] / t[2] - 1.0) * 100.0,
            (t[1] / t[2] - 1.0) * 100.0
        );
    }
    drop(container);
    real_image_start(&dir)
}

/// The real image: how long from `runc run` until its enforcement is
/// active, and the agent's pre-verification time.
fn real_image_start(dir: &std::path::Path) -> anyhow::Result<()> {
    let Ok(image) = RealImage::find() else {
        println!("real image: not built (run `cargo xtask setup`); start delay not measured");
        return Ok(());
    };
    let sbom = image
        .sources()
        .into_iter()
        .find(|(n, _)| *n == "verifier-spdx")
        .context("the real image has no verifier-spdx SBOM")?
        .1;
    let id = format!("verifier-bench-enforce-real-{}", std::process::id());
    let rule = format!("{id}={}", sbom.display());
    let agent = Agent::start_bin(
        &verifier_bin(),
        &["--containers-only", "--stats-interval", "0", "--sbom", &rule, "--enforce", &id],
    )?;
    std::fs::create_dir_all(dir.join("real"))?;
    let bundle = image.bundle(&dir.join("real"), &["sleep", "300"])?;
    let t = Instant::now();
    let container = Container::run(&bundle.dir, &id)?;
    let active = wait_active(&agent, &id)?;
    let waited = t.elapsed();
    println!(
        "real image: {} files listed, {} allowed ({} refused); pre-verification {:.0} ms ({:.1} MB hashed); runc run -> active {:.0} ms",
        active["listed"],
        active["allowed"],
        active["refused_total"],
        active["preverify_ms"].as_f64().unwrap_or(0.0),
        active["hashed_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        waited.as_secs_f64() * 1000.0
    );
    drop(container);
    agent.stop()?;
    Ok(())
}
