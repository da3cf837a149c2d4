//! SBOM parse benchmark: how fast, and in how much memory, a generated
//! 200,000-file SPDX 2.3 JSON and CycloneDX 1.6 JSON document are read into
//! a `Manifest`, streamed from the file (`load_path`) and from memory
//! (`load_bytes`), against a plain `serde_json::Value` parse of the same
//! file in the same run.
//!
//! Run: `cargo bench -p verifier-sbom --bench sbom_parse` (set
//! `SBOM_BENCH_FILES` for another size, `SBOM_BENCH_DIR` to keep the
//! generated files there and reuse them). Prints MB/s, the ratio to the
//! `Value` baseline, the manifest's heap (counted by the allocator below),
//! the peak heap while parsing and the peak RSS of each parse (each
//! measurement runs in a child process of its own). Throughput is given in
//! wall time and in CPU time: on a shared machine the second is the one to
//! compare across runs.
//! Targets: >= 300 MB/s into the manifest; peak heap <= 40 MiB.
//!
//! Profiling one parse: `SBOM_BENCH_DIR=/tmp/d sbom_parse --child stream
//! /tmp/d/bench-200000.spdx.json` under `perf record`, or
//! `SBOM_BENCH_PROFILE=spdx|cdx` for ten parses in a row.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use verifier_sbom::{LoadOptions, Manifest, load_bytes, load_path};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now =
                    LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MIB: f64 = 1024.0 * 1024.0;

/// A path like the ones in a real image (about 55 bytes on average).
fn path(i: usize) -> String {
    const DIRS: [&str; 6] = [
        "/usr/lib/python3.12/site-packages",
        "/usr/share/locale/de/LC_MESSAGES",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/bin",
        "/usr/share/doc",
        "/opt/app/node_modules",
    ];
    format!("{}/pkg{}/file_{i:06}.dat", DIRS[i % DIRS.len()], i % 997)
}

fn digest_hex(i: usize, len: usize, salt: u8) -> String {
    (0..len).map(|j| format!("{:02x}", (i.wrapping_mul(31).wrapping_add(j * 7) as u8) ^ salt)).collect()
}

fn write_spdx(p: &Path, n: usize) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(p)?);
    writeln!(
        w,
        "{{\n  \"spdxVersion\": \"SPDX-2.3\",\n  \"dataLicense\": \"CC0-1.0\",\n  \"SPDXID\": \"SPDXRef-DOCUMENT\","
    )?;
    writeln!(w, "  \"name\": \"bench-image\",\n  \"documentNamespace\": \"https://example.invalid/bench\",")?;
    writeln!(
        w,
        "  \"creationInfo\": {{\"created\": \"2026-01-01T00:00:00Z\", \"creators\": [\"Tool: bench\"]}},"
    )?;
    let packages = n / 100;
    writeln!(w, "  \"packages\": [")?;
    for p in 0..packages {
        let sep = if p + 1 < packages { "," } else { "" };
        writeln!(
            w,
            "    {{\"SPDXID\": \"SPDXRef-Package-{p}\", \"name\": \"pkg{p}\", \"versionInfo\": \"1.{p}.0-r0\", \
             \"downloadLocation\": \"NOASSERTION\", \"filesAnalyzed\": false, \"licenseConcluded\": \"NOASSERTION\", \
             \"externalRefs\": [{{\"referenceCategory\": \"PACKAGE-MANAGER\", \"referenceType\": \"purl\", \
             \"referenceLocator\": \"pkg:apk/wolfi/pkg{p}@1.{p}.0-r0?arch=x86_64\"}}]}}{sep}"
        )?;
    }
    writeln!(w, "  ],\n  \"files\": [")?;
    for i in 0..n {
        let sep = if i + 1 < n { "," } else { "" };
        writeln!(
            w,
            "    {{\"SPDXID\": \"SPDXRef-File-{i}\", \"fileName\": \"{}\", \"checksums\": [{{\"algorithm\": \"SHA1\", \
             \"checksumValue\": \"{}\"}}, {{\"algorithm\": \"SHA256\", \"checksumValue\": \"{}\"}}], \
             \"licenseConcluded\": \"NOASSERTION\", \"copyrightText\": \"NOASSERTION\", \"fileTypes\": [\"BINARY\"]}}{sep}",
            path(i),
            digest_hex(i, 20, 0x5a),
            digest_hex(i, 32, 0xa5)
        )?;
    }
    writeln!(w, "  ],\n  \"relationships\": [")?;
    for i in 0..n {
        let sep = if i + 1 < n { "," } else { "" };
        writeln!(
            w,
            "    {{\"spdxElementId\": \"SPDXRef-Package-{}\", \"relationshipType\": \"CONTAINS\", \
             \"relatedSpdxElement\": \"SPDXRef-File-{i}\"}}{sep}",
            i % packages.max(1)
        )?;
    }
    writeln!(w, "  ]\n}}")?;
    w.flush()
}

fn write_cdx(p: &Path, n: usize) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(p)?);
    writeln!(w, "{{\n  \"bomFormat\": \"CycloneDX\",\n  \"specVersion\": \"1.6\",")?;
    writeln!(w, "  \"serialNumber\": \"urn:uuid:00000000-0000-4000-8000-000000000000\",\n  \"version\": 1,")?;
    writeln!(
        w,
        "  \"metadata\": {{\"timestamp\": \"2026-01-01T00:00:00Z\", \"component\": {{\"bom-ref\": \"img\", \
         \"type\": \"container\", \"name\": \"bench-image\", \"version\": \"sha256:{}\"}}}},",
        digest_hex(1, 32, 0)
    )?;
    writeln!(w, "  \"components\": [")?;
    let packages = n / 100;
    for p in 0..packages {
        writeln!(
            w,
            "    {{\"bom-ref\": \"pkg:apk/wolfi/pkg{p}@1.0\", \"type\": \"library\", \"name\": \"pkg{p}\", \
             \"version\": \"1.{p}.0-r0\", \"purl\": \"pkg:apk/wolfi/pkg{p}@1.{p}.0-r0?arch=x86_64\", \
             \"properties\": [{{\"name\": \"syft:package:type\", \"value\": \"apk\"}}]}},"
        )?;
    }
    for i in 0..n {
        let sep = if i + 1 < n { "," } else { "" };
        writeln!(
            w,
            "    {{\"bom-ref\": \"file-{i:x}\", \"type\": \"file\", \"name\": \"{}\", \"hashes\": [{{\"alg\": \"SHA-1\", \
             \"content\": \"{}\"}}, {{\"alg\": \"SHA-256\", \"content\": \"{}\"}}]}}{sep}",
            path(i),
            digest_hex(i, 20, 0x5a),
            digest_hex(i, 32, 0xa5)
        )?;
    }
    writeln!(w, "  ]\n}}")?;
    w.flush()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// CPU time this process has used: on a busy machine, wall time measures
/// the neighbours too.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One measurement, in a child process of its own so that its peak RSS
/// (VmHWM) is its own: `--child <stream|bytes|value> <file>`. Prints
/// `best_ms best_cpu_ms peak_heap_bytes peak_rss_mib manifest_heap_bytes files`.
fn child(mode: &str, file: &Path) {
    // The agent's allocator settings: this measures what the agent pays.
    verifier_sbom::alloc::keep_resident_set_small();
    let opts = LoadOptions::default();
    let mut best = Duration::MAX;
    let mut best_cpu = Duration::MAX;
    let mut peak_heap = 0;
    let (mut manifest_heap, mut files) = (0, 0);
    for _ in 0..3 {
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let cpu = cpu_time();
        let t = Instant::now();
        match mode {
            "stream" => {
                let m: Manifest = load_path(file, &opts).expect("the generated SBOM loads");
                best = best.min(t.elapsed());
                best_cpu = best_cpu.min(cpu_time() - cpu);
                manifest_heap = LIVE.load(Ordering::Relaxed) - base;
                files = m.len();
                assert_eq!(
                    m.heap_bytes() / 1024,
                    manifest_heap / 1024,
                    "heap_bytes agrees with the allocator"
                );
            }
            "bytes" => {
                let bytes = std::fs::read(file).expect("read");
                let m = load_bytes(&bytes, "bench", &opts).expect("the generated SBOM loads");
                best = best.min(t.elapsed());
                best_cpu = best_cpu.min(cpu_time() - cpu);
                files = m.len();
            }
            _ => {
                let r = BufReader::with_capacity(256 * 1024, File::open(file).expect("open"));
                let v: serde_json::Value = serde_json::from_reader(r).expect("valid JSON");
                best = best.min(t.elapsed());
                best_cpu = best_cpu.min(cpu_time() - cpu);
                drop(v);
            }
        }
        peak_heap = peak_heap.max(PEAK.load(Ordering::Relaxed) - base);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("{} {} {peak_heap} {} {manifest_heap} {files}", ms(best), ms(best_cpu), peak_rss_mib());
}

struct Run {
    ms: f64,
    cpu_ms: f64,
    peak_heap: f64,
    peak_rss: f64,
    manifest_heap: f64,
    files: usize,
}

fn run_child(mode: &str, file: &Path) -> Run {
    let exe = std::env::current_exe().expect("own path");
    let out = std::process::Command::new(exe).arg("--child").arg(mode).arg(file).output().expect("run child");
    assert!(out.status.success(), "child {mode} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    assert_eq!(v.len(), 6, "child output: {text}");
    Run {
        ms: v[0],
        cpu_ms: v[1],
        peak_heap: v[2] / MIB,
        peak_rss: v[3],
        manifest_heap: v[4] / MIB,
        files: v[5] as usize,
    }
}

fn bench(label: &str, file: &Path) {
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) as f64 / MIB;
    let stream = run_child("stream", file);
    let bytes = run_child("bytes", file);
    let value = run_child("value", file);
    println!("{label}: {size:.1} MiB, {} files in the manifest", stream.files);
    for (name, r) in [
        ("manifest, streamed (load_path)        ", &stream),
        ("manifest, in memory (read + load_bytes)", &bytes),
        ("serde_json::Value (from_reader)       ", &value),
    ] {
        println!(
            "  {name} {:7.1} ms {:6.0} MiB/s (CPU time: {:6.0} MiB/s)   peak heap {:6.1} MiB   peak RSS {:6.1} MiB",
            r.ms,
            size / (r.ms / 1e3),
            size / (r.cpu_ms / 1e3),
            r.peak_heap,
            r.peak_rss
        );
    }
    println!(
        "  streamed manifest parse: {:.2}x the speed of the Value parse ({:.2}x in CPU time); manifest heap {:.1} MiB, \
         {:.0} bytes/file",
        value.ms / stream.ms,
        value.cpu_ms / stream.cpu_ms,
        stream.manifest_heap,
        stream.manifest_heap * MIB / stream.files.max(1) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, mode, file] = args.as_slice()
        && flag == "--child"
    {
        child(mode, Path::new(file));
        return;
    }
    let n: usize = std::env::var("SBOM_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    // `SBOM_BENCH_DIR` keeps the generated files there (reused when present)
    // for profiling one parse: `sbom_parse --child stream <file>`.
    let dir = std::env::var_os("SBOM_BENCH_DIR").map_or_else(|| tmp.path().to_owned(), Into::into);
    let spdx = dir.join(format!("bench-{n}.spdx.json"));
    let cdx = dir.join(format!("bench-{n}.cdx.json"));
    if !spdx.exists() {
        write_spdx(&spdx, n).expect("write SPDX");
    }
    if !cdx.exists() {
        write_cdx(&cdx, n).expect("write CycloneDX");
    }
    // For profiling: only the manifest parse, repeated (`perf record`).
    if let Ok(which) = std::env::var("SBOM_BENCH_PROFILE") {
        let file = if which == "cdx" { &cdx } else { &spdx };
        for _ in 0..10 {
            load_path(file, &LoadOptions::default()).expect("loads");
        }
        return;
    }
    bench(&format!("SPDX 2.3 JSON, {n} files"), &spdx);
    bench(&format!("CycloneDX 1.6 JSON, {n} files"), &cdx);
}
