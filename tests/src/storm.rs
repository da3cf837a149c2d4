//! An exec storm: workers that fork and exec a tiny program as fast as they
//! can, for a count or a duration.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Runs `program` `count` times across `workers` threads. Returns the
/// number of successful execs and the wall time.
pub fn by_count(program: &Path, count: u64, workers: u64) -> (u64, Duration) {
    let started = Instant::now();
    let per = count / workers;
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let program = program.to_path_buf();
            let n = if w == workers - 1 { count - per * (workers - 1) } else { per };
            std::thread::spawn(move || (0..n).filter(|_| spawn_one(&program)).count() as u64)
        })
        .collect();
    let done = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    (done, started.elapsed())
}

/// Runs `program` for `duration` across `workers` threads; returns execs
/// completed and the exact elapsed time.
pub fn by_time(program: &Path, duration: Duration, workers: u64) -> (u64, Duration) {
    let started = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let program = program.to_path_buf();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while started.elapsed() < duration {
                    if spawn_one(&program) {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let done = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    (done, started.elapsed())
}

fn spawn_one(program: &Path) -> bool {
    Command::new(program)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Copies a tiny program (`/bin/true`) to a unique path in `dir`, so its
/// execs can be told apart from everything else on the machine.
pub fn marker_program(dir: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::copy("/bin/true", &path)?;
    Ok(path)
}
