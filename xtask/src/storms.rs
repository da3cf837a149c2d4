//! The exec storms the drift benchmarks run inside a container (a busybox
//! `sh` loop), shared by `bench-drift` and its sink comparison.

use std::time::Instant;

use anyhow::Context as _;
use verifier_tests::runc::Container;

/// Runs `program` `n` times in a loop; returns execs per second.
pub(crate) fn storm(container: &Container, program: &str, n: u32) -> anyhow::Result<f64> {
    let script = format!("i=0; while [ $i -lt {n} ]; do {program}; i=$((i+1)); done");
    let started = Instant::now();
    container.exec(&["sh", "-c", &script])?;
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}

/// Runs each of the `n` unlisted binaries of `set` once.
pub(crate) fn storm_new(container: &Container, set: u32, n: u32) -> anyhow::Result<f64> {
    let script = format!("i=0; while [ $i -lt {n} ]; do /opt/new{set}/n$i; i=$((i+1)); done");
    let started = Instant::now();
    container.exec(&["sh", "-c", &script]).context("first-sight storm")?;
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}
