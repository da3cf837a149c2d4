//! `verifier exec`: one build step run under watch, and the build record
//! it leaves.
//!
//! On a build host the toolchain is the supply chain. The step runs in a
//! cgroup of its own ([`cgroup`]); every exec and executable mapping of it
//! and of its descendants ([`member`]) is judged against the host's
//! baseline (`baseline::host`: the package database, a host SBOM) by the
//! agent's verification engine ([`session`]); the distinct files, their
//! verdicts and counts make the record ([`record`]), written as JSON and
//! as an in-toto statement over the build's outputs ([`statement`]). The
//! exit status is the step's own when it failed, else the policy's
//! (`--fail-on`), so the command is a CI gate.
//!
//! What the record proves and what it cannot: `docs/build-hosts.md`.

mod cgroup;
mod member;
mod mntns;
pub(crate) mod record;
mod session;
pub(crate) mod statement;

use std::{
    ffi::OsString,
    io::Write as _,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::baseline::host::{HostSource, SourceInfo};
use record::{FileRow, PolicyJson, SummaryJson};

/// Exit status when the step succeeded but the policy failed (a verdict
/// listed in `--fail-on` occurred, or records were lost).
pub(crate) const EXIT_POLICY: u8 = 3;
/// Exit status when the verifier could not run the step at all.
pub(crate) const EXIT_SETUP: u8 = 125;

/// What `verifier exec` was asked to do (the CLI fills it).
pub(crate) struct ExecConfig {
    pub command: Vec<OsString>,
    pub host: Vec<HostSource>,
    pub record: Option<PathBuf>,
    pub statement: Option<PathBuf>,
    pub subjects: Vec<PathBuf>,
    pub sign_key: Option<PathBuf>,
    pub fail_on: Vec<String>,
    pub build_dir: PathBuf,
    pub btf: PathBuf,
    pub ring_bytes: u32,
    pub hash_workers: usize,
    pub max_hash_bytes: u64,
}

/// The build record (`verifier.build-record.v1`).
#[derive(serde::Serialize)]
pub(crate) struct BuildRecord {
    pub schema: &'static str,
    pub command: Vec<String>,
    pub cwd: String,
    pub node: String,
    pub started: String,
    pub ended: String,
    pub duration_sec: f64,
    pub exit: ExitJson,
    /// The verifier's own exit status (see `docs/build-hosts.md`).
    pub status: u8,
    pub baseline: BaselineJson,
    pub policy: PolicyJson,
    /// False when the kernel dropped records: the list may miss files.
    pub complete: bool,
    pub dropped_records: u64,
    pub summary: SummaryJson,
    /// Peak resident set of the verifier, KiB (baseline included).
    pub max_rss_kib: u64,
    pub files: Vec<FileRow>,
}

#[derive(serde::Serialize)]
pub(crate) struct ExitJson {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Why the command could not be started, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(serde::Serialize)]
pub(crate) struct BaselineJson {
    pub sources: Vec<SourceInfo>,
    pub files: usize,
    pub packages: usize,
    /// Times it was parsed again after a package transaction.
    pub reloads: u64,
}

/// Runs the step, writes the record, returns the exit status.
pub(crate) fn run(cfg: &ExecConfig) -> anyhow::Result<u8> {
    verifier_sbom::alloc::keep_resident_set_small();
    if cfg.command.is_empty() {
        anyhow::bail!("no command given: `verifier exec [OPTIONS] -- COMMAND [ARGS...]`");
    }
    // Refuse a key that cannot sign before the build runs, not after.
    let signer = cfg.sign_key.as_deref().map(statement::signing_key).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let ended = runtime.block_on(session::run(cfg));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let ended = ended?;
    let (exit, step_failed) = match &ended.status {
        Ok(s) => (
            ExitJson { code: s.code(), signal: s.signal(), error: None },
            s.code().map(|c| c.clamp(0, 255) as u8).or(s.signal().map(|n| (128 + n).clamp(0, 255) as u8)),
        ),
        Err(e) => (
            ExitJson { code: None, signal: None, error: Some(format!("{e}")) },
            Some(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 }),
        ),
    };
    let rows = ended.agg.rows();
    let mut policy = record::policy(&cfg.fail_on, &rows);
    let complete = ended.dropped == 0;
    if !complete && !cfg.fail_on.is_empty() {
        policy.violated = true;
        policy.violations.insert("incomplete".into(), ended.dropped);
    }
    let status = match step_failed {
        Some(0) | None if policy.violated => EXIT_POLICY,
        Some(0) | None => 0,
        Some(code) => code,
    };
    let m = &ended.baseline.manifest;
    let rec = BuildRecord {
        schema: record::SCHEMA,
        command: cfg.command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        cwd: std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        node: nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        started: crate::output::rfc3339(ended.started_ns),
        ended: crate::output::rfc3339(ended.ended_ns),
        duration_sec: (ended.ended_ns - ended.started_ns) as f64 / 1e9,
        exit,
        status,
        baseline: BaselineJson {
            sources: ended.baseline.describe(),
            files: m.len(),
            packages: m.packages().len(),
            reloads: ended.baseline.reloads,
        },
        summary: record::summary(&ended.agg, &rows),
        policy,
        complete,
        dropped_records: ended.dropped,
        max_rss_kib: crate::agent::peak_rss_kib(),
        files: rows,
    };
    if let Some(path) = &cfg.record {
        write_json(path, &rec)?;
    }
    if let Some(path) = &cfg.statement {
        let subjects = cfg.subjects.iter().map(|s| statement::subject(s)).collect::<Result<Vec<_>, _>>()?;
        let st = statement::statement(subjects, &rec);
        match &signer {
            Some(key) => {
                let payload = serde_json::to_vec(&st).context("encoding the statement")?;
                std::fs::write(path, statement::sign(&payload, key))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            None => write_json(path, &st)?,
        }
    }
    let s = &rec.summary;
    let _ = writeln!(
        std::io::stderr(),
        "verifier exec: {} execs, {} mappings, {} distinct files, {} drift{}; exit {}",
        s.execs,
        s.libraries,
        s.files,
        s.drift,
        if rec.policy.violated { format!(" (policy: {:?})", rec.policy.violations) } else { String::new() },
        status
    );
    Ok(status)
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_vec_pretty(value).context("encoding the record")?;
    text.push(b'\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
