//! SBOM parse benchmark (issue 4, item 6): throughput and memory of reading
//! a generated 200,000-file SPDX 2.3 JSON and CycloneDX 1.6 JSON document
//! into a `Manifest`, against a plain `serde_json::Value` parse of the same
//! file in the same run.
//!
//! Run: `cargo bench -p verifier-user --bench sbom_parse` (set
//! `SBOM_BENCH_FILES` for another size). Prints MB/s, the ratio to the
//! `Value` baseline, the manifest's heap (counted by the allocator below),
//! the peak heap while parsing and the peak RSS of each parse.
//! Targets: >= 300 MB/s into the manifest; manifest <= 40 MiB.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use verifier::sbom::{LoadOptions, Manifest, load_bytes, load_path};

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
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
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
    writeln!(w, "{{\n  \"spdxVersion\": \"SPDX-2.3\",\n  \"dataLicense\": \"CC0-1.0\",\n  \"SPDXID\": \"SPDXRef-DOCUMENT\",")?;
    writeln!(w, "  \"name\": \"bench-image\",\n  \"documentNamespace\": \"https://example.invalid/bench\",")?;
    writeln!(w, "  \"creationInfo\": {{\"created\": \"2026-01-01T00:00:00Z\", \"creators\": [\"Tool: bench\"]}},")?;
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

/// Resets the kernel's peak-RSS counter (VmHWM) for this process.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
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

struct Run {
    best: Duration,
    peak_heap: usize,
    peak_rss: f64,
}

/// Runs `f` `rounds` times (dropping the previous result first) and keeps
/// the fastest time, the peak heap and peak RSS; returns the last result.
fn measure<T>(rounds: usize, mut f: impl FnMut() -> T) -> (Run, T) {
    let mut best = Duration::MAX;
    let mut peak_heap = 0;
    let mut peak_rss: f64 = 0.0;
    let mut last: Option<T> = None;
    for _ in 0..rounds {
        drop(last.take());
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        reset_peak_rss();
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        peak_heap = peak_heap.max(PEAK.load(Ordering::Relaxed) - base);
        peak_rss = peak_rss.max(peak_rss_mib());
        last = Some(v);
    }
    (Run { best, peak_heap, peak_rss }, last.expect("at least one round"))
}

fn bench(label: &str, file: &Path) {
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) as f64;
    let opts = LoadOptions::default();
    let (ours, (manifest_heap, m)) = measure(3, || {
        let before = LIVE.load(Ordering::Relaxed);
        let m: Manifest = load_path(file, &opts).expect("the generated SBOM loads");
        (LIVE.load(Ordering::Relaxed) - before, m)
    });
    let (slice, _) = measure(3, || {
        let bytes = std::fs::read(file).expect("read");
        load_bytes(&bytes, "bench", &opts).expect("the generated SBOM loads")
    });
    let (value, v) = measure(3, || {
        let r = BufReader::with_capacity(256 * 1024, File::open(file).expect("open"));
        serde_json::from_reader::<_, serde_json::Value>(r).expect("valid JSON")
    });
    drop(v);
    let mbps = |d: Duration| size / MIB / d.as_secs_f64();
    println!("{label}: {:.1} MiB, {} files in the manifest ({} with digests)", size / MIB, m.len(), m.len_with_digests());
    println!(
        "  manifest, streamed: {:7.1} ms  {:6.0} MiB/s  peak heap {:6.1} MiB  peak RSS {:6.1} MiB",
        ours.best.as_secs_f64() * 1e3,
        mbps(ours.best),
        ours.peak_heap as f64 / MIB,
        ours.peak_rss
    );
    println!(
        "  manifest, in memory:{:7.1} ms  {:6.0} MiB/s  peak heap {:6.1} MiB  peak RSS {:6.1} MiB  (load_bytes, file read first)",
        slice.best.as_secs_f64() * 1e3,
        mbps(slice.best),
        slice.peak_heap as f64 / MIB,
        slice.peak_rss
    );
    println!(
        "  serde_json::Value:  {:7.1} ms  {:6.0} MiB/s  peak heap {:6.1} MiB  peak RSS {:6.1} MiB",
        value.best.as_secs_f64() * 1e3,
        mbps(value.best),
        value.peak_heap as f64 / MIB,
        value.peak_rss
    );
    println!(
        "  ratio: manifest parse is {:.2}x the speed of a Value parse; manifest heap {:.1} MiB (counted), \
         {:.1} MiB (Manifest::heap_bytes), {:.0} bytes/file",
        value.best.as_secs_f64() / ours.best.as_secs_f64(),
        manifest_heap as f64 / MIB,
        m.heap_bytes() as f64 / MIB,
        manifest_heap as f64 / m.len().max(1) as f64
    );
}

fn main() {
    let n: usize = std::env::var("SBOM_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let spdx = dir.path().join("bench.spdx.json");
    let cdx = dir.path().join("bench.cdx.json");
    write_spdx(&spdx, n).expect("write SPDX");
    write_cdx(&cdx, n).expect("write CycloneDX");
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
