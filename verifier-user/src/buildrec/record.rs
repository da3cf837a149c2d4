//! The build record: every distinct file that ran (or was mapped as code)
//! during a build step, with what it was judged, how often it ran, and the
//! policy's outcome. Schema: `docs/schemas/build-record.schema.json`,
//! described in `docs/build-hosts.md`.
//!
//! Files are told apart by (kind, path, SHA-256, verdict): the same path
//! with other bytes is another row, and a file judged again after a
//! package transaction changed its verdict keeps both rows, so nothing
//! seen is folded into something else.
//!
//! **Binaries the build made itself.** A build runs what it compiles
//! (configure's test programs, code generators, test suites). A file
//! judged `unknown-binary` whose path is below `--build-dir` and whose
//! inode changed after the step started is marked `build_output: true`:
//! it stays `unknown-binary` in the record (the host never shipped it),
//! and counts against the policy only when `build-output` is listed in
//! `--fail-on`. The same binary written anywhere else (`/tmp`, `$HOME`) is
//! an unknown binary like any other.

use std::{
    collections::{BTreeMap, HashMap},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use verifier_sbom::{Manifest, PackageRef};

use crate::verify::{
    engine::Decision,
    verdict::{Judgement, Verdict},
};

/// The record's schema name (and version).
pub(crate) const SCHEMA: &str = "verifier.build-record.v1";

/// The pseudo-verdict `--fail-on` takes for binaries the build made.
pub(crate) const BUILD_OUTPUT: &str = "build-output";

/// What kind of use of a file a row counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Use {
    Exec,
    Library,
    Script,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RowKey {
    kind: Use,
    path: Vec<u8>,
    sha256: Option<[u8; 32]>,
    verdict: Verdict,
}

/// One distinct file in the record.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct FileRow {
    pub kind: Use,
    pub path: String,
    /// The exact bytes of a path that is not UTF-8, in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// SHA-256 of what ran (always computed, whatever the baseline's
    /// algorithm), when the file could be read.
    pub sha256: Option<String>,
    pub verdict: &'static str,
    pub severity: &'static str,
    pub reason: String,
    /// The package (or SBOM entry's package) that owns the path.
    pub package: Option<Package>,
    /// The digest the baseline expected, `alg:hex`.
    pub expected: Option<String>,
    /// The algorithm the file was verified by (`sha256`, `md5`, ...).
    pub digest_alg: Option<String>,
    /// Verified by MD5 or SHA-1 only (dpkg, apk): not proof against a
    /// deliberate collision.
    pub weak: bool,
    /// An unknown binary the build made itself (see the module doc).
    pub build_output: bool,
    /// Ran in a container the build started, not on the host.
    pub in_container: bool,
    pub count: u64,
    pub first_seen: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Package {
    pub name: String,
    pub version: Option<String>,
}

impl From<&PackageRef> for Package {
    fn from(p: &PackageRef) -> Self {
        Self { name: p.name.clone(), version: p.version.clone() }
    }
}

/// Distinct files as they are judged.
pub(crate) struct Aggregate {
    rows: HashMap<RowKey, FileRow>,
    build_dir: PathBuf,
    started_unix: i64,
    pub execs: u64,
    pub libraries: u64,
}

impl Aggregate {
    /// `build_dir`: where the build's own outputs are; `started_unix`:
    /// when the step started (seconds).
    pub(crate) fn new(build_dir: PathBuf, started_unix: i64) -> Self {
        Self { rows: HashMap::new(), build_dir, started_unix, execs: 0, libraries: 0 }
    }

    /// One exec or mapping and its decision against `baseline`.
    pub(crate) fn add(
        &mut self,
        kind: Use,
        filename: &[u8],
        d: &Arc<Decision>,
        unix_ns: i128,
        baseline: &Manifest,
    ) {
        match kind {
            Use::Library => self.libraries += 1,
            _ => self.execs += 1,
        }
        let path = if d.path.is_empty() { filename } else { &d.path };
        self.add_judged(kind, path, d.sha256, &d.judgement, unix_ns, false);
        if let Some(s) = &d.script {
            self.add_judged(Use::Script, &s.path, s.sha256, &s.judgement, unix_ns, false);
        }
        // The algorithm the path was compared by, when the verdict itself
        // does not carry the expected digest (an `ok`).
        let key = RowKey { kind, path: path.to_vec(), sha256: d.sha256, verdict: d.judgement.verdict };
        if let Some(row) = self.rows.get_mut(&key)
            && row.digest_alg.is_none()
            && let Some((_, entry)) = std::str::from_utf8(path).ok().and_then(|p| baseline.get_canonical(p))
        {
            row.digest_alg = entry.best_digest().map(|b| b.alg.name().to_ascii_lowercase());
        }
    }

    /// An exec that was not judged against the host baseline (a
    /// container's), with why.
    pub(crate) fn add_unjudged(&mut self, filename: &[u8], why: &str, unix_ns: i128) {
        self.execs += 1;
        self.add_judged(
            Use::Exec,
            filename,
            None,
            &Judgement::new(Verdict::Unverifiable, why),
            unix_ns,
            true,
        );
    }

    fn add_judged(
        &mut self,
        kind: Use,
        path: &[u8],
        sha256: Option<[u8; 32]>,
        j: &Judgement,
        unix_ns: i128,
        in_container: bool,
    ) {
        let key = RowKey { kind, path: path.to_vec(), sha256, verdict: j.verdict };
        if let Some(row) = self.rows.get_mut(&key) {
            row.count += 1;
            return;
        }
        let text = String::from_utf8_lossy(path);
        let exact = matches!(text, std::borrow::Cow::Borrowed(_));
        let build_output = j.verdict == Verdict::UnknownBinary && !in_container && self.made_by_build(path);
        let row = FileRow {
            kind,
            path: text.into_owned(),
            path_hex: (!exact).then(|| hex::encode(path)),
            sha256: sha256.map(hex::encode),
            verdict: j.verdict.name(),
            severity: j.verdict.severity().name(),
            reason: j.reason.clone(),
            package: j.package.as_ref().map(Package::from),
            digest_alg: j.expected.as_deref().and_then(|e| e.split_once(':')).map(|(a, _)| a.to_owned()),
            expected: j.expected.clone(),
            weak: j.weak,
            build_output,
            in_container,
            count: 1,
            first_seen: crate::output::rfc3339(unix_ns),
        };
        self.rows.insert(key, row);
    }

    /// Below the build directory and changed since the step started.
    fn made_by_build(&self, path: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt as _;
        let p = Path::new(std::ffi::OsStr::from_bytes(path));
        p.starts_with(&self.build_dir) && std::fs::metadata(p).is_ok_and(|m| m.ctime() >= self.started_unix)
    }

    /// The rows, drift first, then by path.
    pub(crate) fn rows(&self) -> Vec<FileRow> {
        let mut rows: Vec<FileRow> = self.rows.values().cloned().collect();
        rows.sort_by(|a, b| (a.verdict == "ok", &a.path, a.kind).cmp(&(b.verdict == "ok", &b.path, b.kind)));
        rows
    }
}

/// What `--fail-on` found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct PolicyJson {
    pub fail_on: Vec<String>,
    pub violated: bool,
    /// Distinct files per listed verdict that occurred.
    pub violations: BTreeMap<String, u64>,
}

/// Applies `fail_on` (verdict names, and `build-output`) to the rows.
pub(crate) fn policy(fail_on: &[String], rows: &[FileRow]) -> PolicyJson {
    let mut violations = BTreeMap::new();
    for r in rows {
        let name = if r.build_output { BUILD_OUTPUT } else { r.verdict };
        if fail_on.iter().any(|f| f == name) {
            *violations.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    PolicyJson { fail_on: fail_on.to_vec(), violated: !violations.is_empty(), violations }
}

/// Counts over the rows.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct SummaryJson {
    pub execs: u64,
    pub libraries: u64,
    pub files: usize,
    /// Distinct files that are not `ok` (build outputs excluded).
    pub drift: usize,
    pub build_outputs: usize,
    pub by_verdict: BTreeMap<&'static str, usize>,
}

pub(crate) fn summary(agg: &Aggregate, rows: &[FileRow]) -> SummaryJson {
    let mut by_verdict = BTreeMap::new();
    for r in rows {
        *by_verdict.entry(r.verdict).or_insert(0) += 1;
    }
    SummaryJson {
        execs: agg.execs,
        libraries: agg.libraries,
        files: rows.len(),
        drift: rows.iter().filter(|r| r.verdict != "ok" && !r.build_output).count(),
        build_outputs: rows.iter().filter(|r| r.build_output).count(),
        by_verdict,
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
