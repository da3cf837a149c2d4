//! `cargo xtask`: everything around the build that a fresh machine or CI
//! needs, so that the README's two commands are all a user runs.
//!
//! - `setup`: install what building and testing need, idempotently (a
//!   second run is a no-op in well under a second);
//! - `demo`: build, then watch a real runc container's execs;
//! - `test`: setup, build, then unit and root integration tests;
//! - `faults`: the fault suite, with a table of expected and observed;
//! - `bench`: exec-storm slowdown with and without the agent.

mod bench;
mod bench_build;
mod bench_drift;
mod bench_enforce;
mod bench_images;
mod bench_sinks;
mod cpu;
mod deb;
mod demo;
mod faults;
mod image;
mod kernels;
mod real_image;
mod setup;
mod storms;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, demo, test and benchmark tasks for the verifier")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the toolchain pieces and packages the build and tests need.
    Setup,
    /// Build the release binary (after setup): target/release/verifier.
    Build,
    /// Build a busybox image, run it with runc under the agent, show its execs.
    Demo(demo::DemoArgs),
    /// Run every test: unit, SBOM samples, root integration, then brief fuzzing.
    Test {
        /// Extra arguments passed to `cargo test`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the fault suite (root tests `tests/tests/faults*.rs`) and print
    /// a table: scenario, expected behaviour, observed counters, pass/fail.
    Faults,
    /// Exec-storm benchmark: slowdown with the agent against none, in one run.
    Bench(bench::BenchArgs),
    /// Drift benchmark: exec storms in a container, steady state and first
    /// sight, with report latency.
    BenchDrift(bench_drift::BenchDriftArgs),
    /// The agent's OCI image (layout and oci-archive), reproducible, with its SBOM.
    Image(image::ImageArgs),
    /// The agent as a .deb with its hardened systemd unit, for build hosts.
    Deb(deb::DebArgs),
    /// Enforcement benchmark: enforced against observe-only and verifying
    /// storms in one run; start delay of an enforced real image.
    BenchEnforce(bench_enforce::BenchEnforceArgs),
    /// Kernel matrix: boot Debian's 5.10-7.3 kernels in QEMU, run the agent
    /// and a runc container in each, print a kernel x check table.
    Kernels(kernels::KernelsArgs),
    /// Build benchmark: a generated C code base built with and without
    /// `verifier exec`, alternating; time ratio and the verifier's memory.
    BenchBuild(bench_build::BenchBuildArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Setup => setup::run(),
        Cmd::Build => {
            setup::run()?;
            util::build_release()
        }
        Cmd::Demo(args) => {
            setup::run()?;
            util::build_release()?;
            demo::run(&args)
        }
        Cmd::Test { args } => {
            setup::run()?;
            util::test(&args)
        }
        Cmd::Faults => {
            setup::run()?;
            util::build_release()?;
            faults::run()
        }
        Cmd::Bench(args) => {
            setup::run()?;
            util::build_release()?;
            bench::run(&args)
        }
        Cmd::BenchDrift(args) => {
            setup::run()?;
            util::build_release()?;
            bench_drift::run(&args)
        }
        Cmd::Image(args) => {
            if args.bin.is_none() {
                util::build_release()?;
            }
            image::run(&args)
        }
        Cmd::Deb(args) => {
            if args.bin.is_none() {
                util::build_release()?;
            }
            deb::run(&args)
        }
        Cmd::BenchEnforce(args) => {
            setup::run()?;
            util::build_release()?;
            bench_enforce::run(&args)
        }
        Cmd::Kernels(args) => {
            setup::run()?;
            util::build_release()?;
            kernels::run(&args)
        }
        Cmd::BenchBuild(args) => {
            setup::run()?;
            util::build_release()?;
            bench_build::run(&args)
        }
    }
}
