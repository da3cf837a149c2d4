//! Hashing throughput of `sbom generate` against OpenSSL and coreutils, on
//! the same files, in the same run (`cargo bench -p verifier-sbom --bench
//! sbom_hash`). Not a timed test: it prints figures and ratios.
//!
//! Target: our SHA-256 at >= 90% of `openssl dgst -sha256`'s
//! single-core throughput, per core used. The files are written once and
//! read once before timing, so every contender hashes from the page cache.
//! `SBOM_HASH_BENCH_FILES` (default 2000) and `SBOM_HASH_BENCH_KIB`
//! (default 512) size the data set.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Instant,
};

use verifier_sbom::hash::{Algs, HashPool, Source, default_threads};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn make_files(dir: &Path, count: usize, size: usize) -> Vec<PathBuf> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = vec![0u8; size];
    (0..count)
        .map(|i| {
            for chunk in buf.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            let path = dir.join(format!("f{i:05}"));
            let mut f = fs::File::create(&path).expect("create bench file");
            f.write_all(&buf).expect("write bench file");
            path
        })
        .collect()
}

/// Runs `cmd` over the files in batches (one process per batch, as a user
/// would); returns seconds, or `None` when the tool is missing.
fn external(cmd: &[&str], files: &[PathBuf]) -> Option<f64> {
    let start = Instant::now();
    for batch in files.chunks(250) {
        let out = Command::new(cmd[0]).args(&cmd[1..]).args(batch).output().ok()?;
        if !out.status.success() {
            eprintln!("{} failed: {}", cmd[0], String::from_utf8_lossy(&out.stderr));
            return None;
        }
    }
    Some(start.elapsed().as_secs_f64())
}

fn ours(files: &[PathBuf], threads: usize, algs: Algs) -> f64 {
    let start = Instant::now();
    let mut pool = HashPool::new(threads, Arc::new(|_| {}));
    for f in files {
        pool.submit(Source::Path(f.clone()), algs);
    }
    let results = pool.finish();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(results.iter().all(Result::is_ok), "hashing failed");
    elapsed
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful: run a tiny set then, so the bench still builds and runs.
    let quick = !std::env::args().any(|a| a == "--bench");
    let count = env_usize("SBOM_HASH_BENCH_FILES", if quick { 20 } else { 2000 });
    let kib = env_usize("SBOM_HASH_BENCH_KIB", if quick { 64 } else { 512 });
    let dir = tempfile::tempdir().expect("tempdir");
    let files = make_files(dir.path(), count, kib * 1024);
    let bytes = (count * kib * 1024) as f64;
    println!("sbom_hash: {count} files x {kib} KiB = {:.2} GB", bytes / 1e9);
    ours(&files, 1, Algs::SHA256); // warm the page cache
    let all = default_threads(None);
    let gbps = |secs: f64| bytes / secs / 1e9;

    let openssl = external(&["openssl", "dgst", "-sha256"], &files);
    let sha256sum = external(&["sha256sum"], &files);
    let one = ours(&files, 1, Algs::SHA256);
    let one_spdx = ours(&files, 1, Algs::SHA256_SHA1);
    let many = ours(&files, all, Algs::SHA256);
    let many_spdx = ours(&files, all, Algs::SHA256_SHA1);

    let show = |name: &str, secs: Option<f64>| match secs {
        Some(s) => println!("  {name:<44} {:>6.3} GB/s  ({s:.2} s)", gbps(s)),
        None => println!("  {name:<44} not available"),
    };
    show("openssl dgst -sha256 (1 process)", openssl);
    show("sha256sum (1 process)", sha256sum);
    show("ours, SHA-256, 1 thread", Some(one));
    show("ours, SHA-256 + SHA-1 (SPDX), 1 thread", Some(one_spdx));
    show(&format!("ours, SHA-256, {all} threads"), Some(many));
    show(&format!("ours, SHA-256 + SHA-1 (SPDX), {all} threads"), Some(many_spdx));
    if let Some(o) = openssl {
        let base = gbps(o);
        let ratio = |secs: f64, cores: usize| gbps(secs) / cores as f64 / base;
        println!(
            "  ratio ours/openssl per core: SHA-256 1 thread {:.2}, {all} threads {:.2}",
            ratio(one, 1),
            ratio(many, all)
        );
        println!(
            "  ratio ours/openssl per core, SPDX mode (two digests per byte): 1 thread {:.2}, {all} threads {:.2}",
            ratio(one_spdx, 1),
            ratio(many_spdx, all)
        );
        println!(
            "  target: >= 0.90 per core (SHA-256): {}",
            if ratio(one, 1) >= 0.9 { "met" } else { "NOT met" }
        );
    }
}
