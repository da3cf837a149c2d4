//! `cargo xtask kernels`: the kernel matrix. Boots each of Debian's 5.10,
//! 6.1, 6.12, 6.18 and 7.3 kernels in QEMU with an initramfs built here,
//! runs the release agent there against a real runc container, and checks
//! what this machine's own kernel cannot show: that the eBPF programs load
//! and do their job on every kernel the project supports.
//!
//! - `fetch`: QEMU and the kernels from Debian's packages, cached;
//! - `initramfs`: the cpio archive (busybox, agent, runc, image, checks);
//! - `guest`: one boot, its console and the `CHECK` lines;
//! - `report`: the kernel x check table and `target/kernels/matrix.json`.
//!
//! The checks run in the guest (`guest/checks.sh`, one block each); the
//! host only requires that every check in [`REQUIRED`] passed on every
//! kernel and that none failed. docs/kernels.md says what each proves.

mod fetch;
mod guest;
mod initramfs;
mod report;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use verifier_tests::{bundle, image};

use crate::util::{self, root, verifier_bin};

/// Debian kernel series of the matrix, and the suite each comes from.
pub(crate) const KERNELS: &[(&str, &str)] = &[
    ("5.10", "bullseye-security"),
    ("6.1", "bookworm"),
    ("6.12", "bookworm-security"),
    ("6.18", "trixie-backports"),
    ("7.3", "trixie-backports"),
];

/// Checks every kernel must pass (a `skip` of one of these is a failure).
pub(crate) const REQUIRED: &[&str] = &[
    "agent-ready",
    "exec-records",
    "verdict-ok",
    "btf-offsets",
    "verdict-unknown",
    "mmap-hook",
    "write-hook",
    "fast-path",
    "enforce-lsm-write",
];

const INIT: &str = include_str!("guest/init.sh");
const CHECKS: &str = include_str!("guest/checks.sh");
const MAP_EXEC_SOURCE: &str = "xtask/src/kernels/guest/map_exec.rs";

#[derive(clap::Args)]
pub struct KernelsArgs {
    /// Run only these kernel series (repeatable, or comma-separated):
    /// 5.10, 6.1, 6.12, 6.18, 7.3. `0` runs none (CI without the matrix).
    #[arg(long = "kernel", value_name = "SERIES", env = "VERIFIER_KERNELS", value_delimiter = ',')]
    kernels: Vec<String>,
    /// Keep the initramfs (target/kernels/initramfs.cpio) to boot by hand.
    #[arg(long)]
    keep: bool,
    /// Give up on a guest after this many seconds (TCG is slow; a boot and
    /// its checks take one to two minutes).
    #[arg(long, default_value_t = 420, value_name = "SECONDS")]
    timeout: u64,
}

/// Runs the matrix (the release binary must be built).
pub fn run(args: &KernelsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.kernels == ["0"] {
        eprintln!("xtask kernels: skipped (VERIFIER_KERNELS=0)");
        return Ok(());
    }
    let selected: Vec<&str> = if args.kernels.is_empty() {
        KERNELS.iter().map(|(s, _)| *s).collect()
    } else {
        for k in &args.kernels {
            if !KERNELS.iter().any(|(s, _)| s == k) {
                bail!(
                    "unknown kernel series {k}; the matrix has {:?}",
                    KERNELS.iter().map(|(s, _)| s).collect::<Vec<_>>()
                );
            }
        }
        args.kernels.iter().map(String::as_str).collect()
    };
    let out_dir = root().join("target/kernels");
    std::fs::create_dir_all(&out_dir)?;
    let qemu = fetch::qemu()?;
    let kernels: Vec<(&str, fetch::Fetched)> =
        selected.iter().map(|s| Ok((*s, fetch::kernel(s)?))).collect::<anyhow::Result<_>>()?;
    let cpio = out_dir.join("initramfs.cpio");
    let size = build_initramfs(&cpio)?;
    eprintln!("xtask kernels: initramfs {} ({:.1} MiB)", cpio.display(), size as f64 / 1_048_576.0);
    let mut rows = Vec::new();
    for (series, kernel) in kernels {
        eprintln!("xtask kernels: booting {series} ({})", kernel.package);
        let log = out_dir.join(format!("{series}.log"));
        let boot = guest::boot(&qemu, &kernel, &cpio, &log, Duration::from_secs(args.timeout))?;
        let row = report::Row::new(series, &kernel.package, boot, &log);
        eprintln!(
            "xtask kernels: {series}: {} in {:.0} s (console: {})",
            if row.failures.is_empty() {
                "all required checks pass".to_string()
            } else {
                row.failures.join("; ")
            },
            row.boot.total_seconds,
            log.display()
        );
        rows.push(row);
    }
    if !args.keep {
        let _ = std::fs::remove_file(&cpio);
    }
    let total = started.elapsed().as_secs_f64();
    println!("{}", report::table(&rows));
    let json = out_dir.join("matrix.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&report::json(&rows, total))?)?;
    eprintln!("xtask kernels: {} kernel(s) in {total:.0} s; {}", rows.len(), json.display());
    let failed: Vec<&str> =
        rows.iter().filter(|r| !r.failures.is_empty()).map(|r| r.series.as_str()).collect();
    if !failed.is_empty() {
        bail!("the kernel matrix failed on {failed:?}: see target/kernels/<series>.log");
    }
    Ok(())
}

/// Builds the guest's initramfs at `out`; returns its size.
fn build_initramfs(out: &Path) -> anyhow::Result<u64> {
    let work = tempfile::tempdir()?;
    let mut fs = initramfs::Initramfs::default();
    fs.char_device("dev/console", 5, 1);
    fs.file("bin/busybox", Path::new(bundle::HOST_BUSYBOX))?;
    fs.symlink("bin/sh", "busybox");
    fs.bytes("init", INIT.as_bytes().to_vec(), 0o755);
    fs.bytes("checks.sh", CHECKS.as_bytes().to_vec(), 0o644);
    fs.executable("usr/bin/verifier", &verifier_bin())?;
    fs.executable("usr/sbin/runc", &which("runc")?)?;
    // The container's image: busybox plus a marked tool and the mapping
    // helper, its SBOM written by the agent's own generator.
    let image_dir = work.path().join("image");
    std::fs::create_dir_all(&image_dir)?;
    let bundle = image::busybox_with_tool(&image_dir, &["sleep", "600"])?;
    map_exec(&bundle.rootfs().join("bin/map-exec"), work.path())?;
    util::run(
        Command::new(verifier_bin())
            .args(["sbom", "generate", "--format", "spdx-json", "-o"])
            .arg(image_dir.join("sbom.spdx.json"))
            .arg(bundle.rootfs()),
    )?;
    fs.tree("image", &image_dir)?;
    fs.write(out)
}

/// Compiles the static `map-exec` helper (plain rustc, no crates) to `out`.
fn map_exec(out: &Path, tmp: &Path) -> anyhow::Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    util::run(
        Command::new(rustc)
            .args(["--edition", "2024", "-O", "-C", "target-feature=+crt-static", "-C", "strip=symbols"])
            .arg("--out-dir")
            .arg(tmp)
            .arg(root().join(MAP_EXEC_SOURCE))
            .env_remove("RUSTC_WRAPPER"),
    )
    .context("compiling the map-exec helper (needs glibc's static libc.a, from libc6-dev)")?;
    std::fs::copy(tmp.join("map_exec"), out)?;
    Ok(())
}

/// The absolute path of a program on PATH.
fn which(program: &str) -> anyhow::Result<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{program} is not on PATH: run `cargo xtask setup`"))
}
