//! Small helpers: running commands with clear errors, paths.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// The workspace root (xtask's parent directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| ".".into(), Path::to_path_buf)
}

/// Runs a command to completion; fails with the command line on error.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout (trimmed).
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `~/.cargo/bin` (or `$CARGO_HOME/bin`).
pub fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| "/root/.cargo".into())
        .join("bin")
}

/// PATH with cargo's bin directory first (where bpf-linker is installed).
pub fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut paths = vec![cargo_bin()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// `cargo` with PATH including the bpf-linker install directory.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).env("PATH", path_with_cargo_bin());
    cmd
}

/// Builds the release agent binary.
pub fn build_release() -> anyhow::Result<()> {
    eprintln!("xtask: building target/release/verifier");
    run(cargo().args(["build", "--release", "-p", "verifier-user", "--bin", "verifier"]))
}

/// Path of the release binary.
pub fn verifier_bin() -> PathBuf {
    root().join("target/release/verifier")
}

/// Builds, then runs the workspace tests with the release binary for the
/// integration tier.
/// Then, unless extra arguments narrow the run, fuzzes every SBOM reader
/// briefly (`VERIFIER_FUZZ_SECONDS` per target, default 5; 0 skips).
pub fn test(extra: &[String]) -> anyhow::Result<()> {
    build_release()?;
    run(cargo().args(["test", "--workspace", "--release"]).args(extra).env("VERIFIER_BIN", verifier_bin()))?;
    let secs = std::env::var("VERIFIER_FUZZ_SECONDS").unwrap_or_else(|_| "5".into());
    if !extra.is_empty() || secs == "0" {
        eprintln!("xtask: SBOM fuzz targets skipped (set VERIFIER_FUZZ_SECONDS>0 with no extra args)");
        return Ok(());
    }
    eprintln!("xtask: fuzzing each SBOM reader for {secs}s (fuzz/run.sh)");
    run(Command::new(root().join("fuzz/run.sh"))
        .arg(&secs)
        .env("PATH", path_with_cargo_bin())
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN"))
}
