//! The exec storms the drift benchmarks run inside a container (a busybox
//! `sh` loop), shared by `bench-drift` and its sink comparison.
//!
//! The loop is timed inside the container: busybox `adjtimex` prints the
//! clock (us) just before and just after it, so the start-up and teardown
//! of `runc exec` (tens of ms, and noisy) stay out of the rate. Busybox
//! `date` has no `%N`, and `/proc/uptime` counts in 10 ms. If the two
//! readings are missing, the `runc exec` wall time is used, and said once.

use std::{sync::Once, time::Instant};

use anyhow::Context as _;
use verifier_tests::runc::Container;

/// Runs `program` `n` times in a loop; returns execs per second.
pub(crate) fn storm(container: &Container, program: &str, n: u32) -> anyhow::Result<f64> {
    let script = format!("i=0; while [ $i -lt {n} ]; do {program}; i=$((i+1)); done");
    Ok(f64::from(n) / timed(container, &script)?)
}

/// Runs each of the `n` unlisted binaries of `set` once; returns execs per
/// second.
pub(crate) fn storm_new(container: &Container, set: u32, n: u32) -> anyhow::Result<f64> {
    let script = format!("i=0; while [ $i -lt {n} ]; do /opt/new{set}/n$i; i=$((i+1)); done");
    Ok(f64::from(n) / timed(container, &script).context("first-sight storm")?)
}

/// Seconds `script` took inside the container.
fn timed(container: &Container, script: &str) -> anyhow::Result<f64> {
    let clock = "busybox adjtimex";
    let started = Instant::now();
    let out = container.exec(&["sh", "-c", &format!("{clock}; {script}; {clock}")])?;
    let wall = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    match clock_readings(&text).as_slice() {
        [start, end] if end > start => Ok(end - start),
        _ => {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                eprintln!("note: no adjtimex clock in the container; timing the whole runc exec")
            });
            Ok(wall)
        }
    }
}

/// The `time.tv_sec` / `time.tv_usec` pairs `adjtimex` printed, in seconds.
fn clock_readings(text: &str) -> Vec<f64> {
    let field = |l: &str, key: &str| l.trim().strip_prefix(key).and_then(|v| v.trim().parse::<u64>().ok());
    let mut readings = Vec::new();
    let mut sec = None;
    for line in text.lines() {
        if let Some(s) = field(line, "time.tv_sec:") {
            sec = Some(s);
        } else if let (Some(us), Some(s)) = (field(line, "time.tv_usec:"), sec.take()) {
            readings.push(s as f64 + us as f64 / 1e6);
        }
    }
    readings
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_two_adjtimex_clocks() {
        let one = |s: u64, us: u64| {
            format!("    mode: 0\n    time.tv_sec:  {s}\n    time.tv_usec: {us}\n    return value: 5\n")
        };
        let text = one(100, 250_000) + &one(102, 750_000);
        assert_eq!(super::clock_readings(&text), vec![100.25, 102.75]);
        assert!(super::clock_readings("nothing").is_empty());
    }
}
