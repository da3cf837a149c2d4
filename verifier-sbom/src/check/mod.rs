//! `verifier check <rootfs> --sbom FILE...`: offline drift report of the
//! executables and shared libraries of a root filesystem against the
//! SBOMs of the image it came from.
//!
//! Why offline: build hosts and CI want the same verdicts the agent gives
//! at run time, before anything runs. The check looks only at what can be
//! executed or mapped: regular files with any exec bit, ELF files, and
//! `*.so` / `*.so.*` names (plus any path the SBOM lists under a `bin`,
//! `sbin` or `libexec` directory or with a library name, so that a shipped
//! binary whose exec bit was removed is still checked).
//!
//! Findings (kinds are stable, used in the JSON report):
//! - `added`: in the rootfs, not in any SBOM;
//! - `modified`: the content differs from the SBOM's digest;
//! - `missing`: the SBOM lists an executable-looking path the rootfs lacks
//!   (SBOMs rarely carry file modes, so "executable" is judged by the path
//!   as above);
//! - `no-hash`: the SBOM lists the file without a digest this tool can
//!   compute (none, all-zero placeholders, or only SHA3/BLAKE): it cannot be
//!   verified, so it is reported, never passed;
//! - `unreadable`: the file could not be read; the check is incomplete.
//!
//! Each file is compared with the strongest digest the SBOM states
//! (SHA-256, SHA-512, SHA-384, then SHA-1, then MD5); a comparison that
//! could only use SHA-1 or MD5 is marked `weak`. Symlinks are never
//! followed outside the rootfs: they are resolved inside it (as a chroot
//! would), a symlink the SBOM lists is checked by hashing what it points to
//! inside the rootfs, and files are opened with `openat2(RESOLVE_IN_ROOT)`
//! so that a path changed during the check cannot escape either.
//!
//! Exit codes: 0 clean, 1 drift (`added`, `modified`, `missing`,
//! `no-hash`), 2 error (an SBOM or the rootfs could not be read, or a file
//! was `unreadable`).
//!
//! JSON report, schema `verifier.check/v1`:
//! ```text
//! { "schema": "verifier.check/v1",
//!   "rootfs": "<path>",
//!   "sboms": [ { "path", "format", "files", "files_with_digests" } ],
//!   "warnings": [ "<what an SBOM or the scan could not use>" ],
//!   "summary": { "checked", "ok", "ok_weak", "added", "modified",
//!                "missing", "no_hash", "unreadable", "drift": bool },
//!   "findings": [ { "kind": "added|modified|missing|no-hash|unreadable",
//!                   "path": "/usr/bin/x",   // non-UTF-8 bytes as \xNN
//!                   "path_not_utf8": bool,
//!                   "expected": ["sha256:<hex>", ...],  // SBOM digests
//!                   "actual": "sha256:<hex>" | null,     // of the rootfs file
//!                   "compared": "<alg>:<hex>" | null,    // digest of the alg compared
//!                   "weak": bool,
//!                   "symlink_target": "<target>" | null,
//!                   "package": { "name", "version", "purl" } | null,
//!                   "detail": "<text>" | null } ] }
//! ```
//! Findings are sorted by path, then kind.

mod report;
mod scan;

use std::{
    fs, io,
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde::Serialize;

use crate::{LoadOptions, Manifest, SbomError};

/// Errors that stop a check (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("rootfs {path} cannot be read: {error}; pass the directory of an unpacked image")]
    Rootfs { path: PathBuf, error: io::Error },
    #[error("rootfs {path} is not a directory; pass the directory of an unpacked image")]
    NotADirectory { path: PathBuf },
    #[error(transparent)]
    Sbom(#[from] SbomError),
    #[error("writing the report failed")]
    Write(#[source] io::Error),
}

/// What kind of drift a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Added,
    Modified,
    Missing,
    NoHash,
    Unreadable,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Modified => "modified",
            Self::Missing => "missing",
            Self::NoHash => "no-hash",
            Self::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PackageInfo {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub path: String,
    pub path_not_utf8: bool,
    pub expected: Vec<String>,
    pub actual: Option<String>,
    pub compared: Option<String>,
    pub weak: bool,
    pub symlink_target: Option<String>,
    pub package: Option<PackageInfo>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub checked: usize,
    pub ok: usize,
    pub ok_weak: usize,
    pub added: usize,
    pub modified: usize,
    pub missing: usize,
    pub no_hash: usize,
    pub unreadable: usize,
    pub drift: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SbomInfo {
    pub path: String,
    pub format: String,
    pub files: usize,
    pub files_with_digests: usize,
}

/// The whole report (the JSON output is this, serialised).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub rootfs: String,
    pub sboms: Vec<SbomInfo>,
    pub warnings: Vec<String>,
    pub summary: Summary,
    pub findings: Vec<Finding>,
}

pub const SCHEMA: &str = "verifier.check/v1";

/// What to check, as plain values (the command line fills this in).
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The unpacked image to check.
    pub rootfs: PathBuf,
    /// SBOMs of the image; merged into one manifest.
    pub sboms: Vec<PathBuf>,
    /// The directory the SBOMs' paths were made from, stripped from each.
    pub root_prefix: Option<String>,
    /// Hashing threads (default: one per core).
    pub threads: Option<usize>,
}

/// Runs a whole check: the rootfs is checked first (a typo there should not
/// wait for a large SBOM to load), then the SBOMs are loaded and compared.
pub fn run(opts: &CheckOptions) -> Result<Report, CheckError> {
    check_rootfs(&opts.rootfs)?;
    let (manifest, infos) = load_sboms(&opts.sboms, opts.root_prefix.as_deref())?;
    check(&opts.rootfs, &manifest, infos, opts.threads)
}

/// Writes the report as a table for people.
pub fn write_table(report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    report::table(report, out)
}

/// Loads every SBOM (merged into one manifest).
pub fn load_sboms(
    paths: &[PathBuf],
    root_prefix: Option<&str>,
) -> Result<(Manifest, Vec<SbomInfo>), CheckError> {
    let opts = LoadOptions { root_prefix: root_prefix.map(str::to_owned), ..LoadOptions::default() };
    let mut merged: Option<Manifest> = None;
    let mut infos = Vec::new();
    for path in paths {
        let m = crate::load_path(path, &opts)?;
        infos.push(SbomInfo {
            path: path.display().to_string(),
            format: m.source().format.name().to_owned(),
            files: m.len(),
            files_with_digests: m.len_with_digests(),
        });
        match merged.as_mut() {
            Some(all) => all.merge(m),
            None => merged = Some(m),
        }
    }
    let manifest = merged.ok_or_else(|| SbomError::Io {
        file: "(none)".into(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "no SBOM given; pass --sbom FILE"),
    })?;
    Ok((manifest, infos))
}

/// Checks `rootfs` against `manifest`.
pub fn check(
    rootfs: &Path,
    manifest: &Manifest,
    sboms: Vec<SbomInfo>,
    threads: Option<usize>,
) -> Result<Report, CheckError> {
    check_rootfs(rootfs)?;
    let (mut findings, mut summary, mut warnings) = scan::run(rootfs, manifest, threads)?;
    findings.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(&b.kind)));
    for f in &findings {
        match f.kind {
            Kind::Added => summary.added += 1,
            Kind::Modified => summary.modified += 1,
            Kind::Missing => summary.missing += 1,
            Kind::NoHash => summary.no_hash += 1,
            Kind::Unreadable => summary.unreadable += 1,
        }
    }
    summary.drift = summary.added + summary.modified + summary.missing + summary.no_hash > 0;
    warnings.splice(0..0, manifest.warnings().iter().cloned());
    Ok(Report { schema: SCHEMA, rootfs: rootfs.display().to_string(), sboms, warnings, summary, findings })
}

/// Fails unless `rootfs` is a readable directory.
pub fn check_rootfs(rootfs: &Path) -> Result<(), CheckError> {
    let meta = fs::metadata(rootfs).map_err(|error| CheckError::Rootfs { path: rootfs.to_owned(), error })?;
    if !meta.is_dir() {
        return Err(CheckError::NotADirectory { path: rootfs.to_owned() });
    }
    Ok(())
}

pub fn exit_code(s: &Summary) -> ExitCode {
    if s.unreadable > 0 {
        ExitCode::from(2)
    } else if s.drift {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
