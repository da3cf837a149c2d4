//! Running the real image's workload under the agent, whatever runs the
//! container (runc in `tests/real_image.rs`, containerd in
//! `tests/real_image_containerd.rs`), and what must hold of the records:
//! one place, so the two runtimes are judged alike.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    agent::{Agent, verifier_bin},
    real_image::{RealImage, Tally},
};

/// A name unique to this run (process id and clock).
pub fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Our SBOM of the image, written by the binary under test (so the
/// measurement follows the generator as it changes).
pub fn our_sbom(image: &RealImage, out: &Path) -> anyhow::Result<PathBuf> {
    let status = std::process::Command::new(verifier_bin())
        .args(["sbom", "generate", "--no-progress", "-o"])
        .arg(out)
        .arg(image.rootfs())
        .status()?;
    anyhow::ensure!(status.success(), "sbom generate of {}: {status}", image.rootfs().display());
    Ok(out.to_path_buf())
}

/// Waits until the agent has written nothing new for half a second.
pub fn settle(agent: &Agent) {
    let started = Instant::now();
    let mut last = (agent.records_so_far().len(), Instant::now());
    while last.1.elapsed() < Duration::from_millis(500) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        let n = agent.records_so_far().len();
        if n != last.0 {
            last = (n, Instant::now());
        }
    }
}

/// What must hold under a package-only SBOM joined with the image's dpkg
/// database: one `sbom-package-only` warning saying so; no high or
/// critical alert; an exec or library not `ok` only as `sbom-gap` (a file
/// of a package the SBOM does not list). One line per failure.
pub fn package_only_findings(name: &str, records: &[Value], tally: &Tally) -> Vec<String> {
    let mut out = Vec::new();
    let warnings: Vec<_> = records.iter().filter(|r| r["type"] == "warning").collect();
    let joined = warnings.iter().any(|w| {
        w["schema"] == "verifier.warning.v1" && w["code"] == "sbom-package-only" && w["database"] == "dpkg"
    });
    if warnings.len() != 1 || !joined {
        out.push(format!("{name}: want one sbom-package-only warning joined with dpkg: {warnings:?}"));
    }
    if !tally.severe.is_empty() {
        out.push(format!("{name}: high/critical alerts: {:#?}", tally.severe));
    }
    let gap_only = |m: &BTreeMap<String, usize>| m.keys().all(|v| v.ends_with("sbom-gap"));
    if !gap_only(&tally.non_ok) || !gap_only(&tally.library_non_ok) {
        out.push(format!(
            "{name}: verdicts other than ok/sbom-gap: execs {:?}, libraries {:?}",
            tally.non_ok, tally.library_non_ok
        ));
    }
    out
}
