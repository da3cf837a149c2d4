//! From "this file, with these digests, at this path" to a verdict, against
//! the image's SBOM and, when known, the image's actual content.
//!
//! The order matters and is the whole policy:
//! 1. unlinked (deleted file, memfd) or run through a `/proc/*/fd` or
//!    `/dev/fd` path: `fileless`, whatever its bytes;
//! 2. the canonical path is in the SBOM (or its merged-/usr alias: `/bin/ls`
//!    for `/usr/bin/ls`): digests agree -> `ok`, else
//!    `modified-binary`; a listed path with no usable digest cannot be
//!    checked -> `unverifiable` (the SBOM is the gap, and says so); a
//!    listed file the kernel saw opened for writing in the container is
//!    `modified-binary` whatever its digest now (what ran may have been
//!    other bytes, written back within one ctime tick);
//! 3. not listed, but its SHA-256 is listed at another path ->
//!    `relocated-binary` (a copy of a shipped tool: lower severity);
//! 4. not listed, but the image's own content has it with these bytes ->
//!    `sbom-gap` (an SBOM-quality finding, not an attack); with other bytes,
//!    or opened for writing -> `modified-binary` against the image content;
//! 5. otherwise `unknown-binary`.
//!
//! Digests are compared exactly as the offline `check` compares them
//! ([`verifier_sbom::digest`]): by the strongest algorithm the SBOM states
//! for the path (SHA-256, SHA-512, SHA-384, then SHA-1, then MD5); a match
//! by SHA-1 or MD5 alone (apk, dpkg) is recorded as weak. Relocation (3)
//! takes only strong matches: a weak digest is not proof enough to lower
//! an unknown binary's severity.
//!
//! A file mapped as code is judged the same way, then [`as_library`] turns
//! anything but `ok` into `library-drift`, keeping the file's own verdict.

use verifier_sbom::digest::{self, Comparison};
use verifier_sbom::hash::FileHashes;
use verifier_sbom::{HashAlg, Manifest, PackageRef};

/// What was decided about one executed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    UnknownBinary,
    ModifiedBinary,
    Fileless,
    Unverifiable,
    RelocatedBinary,
    SbomGap,
    /// A file the image shipped (verified `ok` before) was opened for writing.
    ImageFileWritten,
    /// A file not in the SBOM was mapped executable (a shared library).
    LibraryDrift,
    /// A container's exec flood ran more new files in one throttle window
    /// than the kernel sends: some ran unjudged (counted, not named).
    ExecFlood,
}

impl Verdict {
    /// Every verdict, in declaration order.
    pub const ALL: [Verdict; 10] = [
        Verdict::Ok,
        Verdict::UnknownBinary,
        Verdict::ModifiedBinary,
        Verdict::Fileless,
        Verdict::Unverifiable,
        Verdict::RelocatedBinary,
        Verdict::SbomGap,
        Verdict::ImageFileWritten,
        Verdict::LibraryDrift,
        Verdict::ExecFlood,
    ];
}

/// How much a verdict matters to whoever reads the alert stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The name used in records.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl Verdict {
    /// The name used in records and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::UnknownBinary => "unknown-binary",
            Verdict::ModifiedBinary => "modified-binary",
            Verdict::Fileless => "fileless",
            Verdict::Unverifiable => "unverifiable",
            Verdict::RelocatedBinary => "relocated-binary",
            Verdict::SbomGap => "sbom-gap",
            Verdict::ImageFileWritten => "image-file-written",
            Verdict::LibraryDrift => "library-drift",
            Verdict::ExecFlood => "exec-flood",
        }
    }

    /// Whether this verdict is drift (goes on the alert stream).
    pub fn is_drift(self) -> bool {
        self != Verdict::Ok
    }

    /// The default severity: running what the image never shipped, or
    /// shipped bytes changed, is high; fileless is critical (nothing on disk
    /// to inspect); files that ran unjudged in an exec flood are high (any
    /// of them may be drift); a copy of a shipped tool or an SBOM gap is
    /// low; a file that could not be checked is medium (policy decides).
    pub fn severity(self) -> Severity {
        match self {
            Verdict::Ok => Severity::Info,
            Verdict::SbomGap => Severity::Low,
            Verdict::RelocatedBinary => Severity::Low,
            Verdict::Unverifiable => Severity::Medium,
            Verdict::ImageFileWritten => Severity::Medium,
            Verdict::UnknownBinary => Severity::High,
            Verdict::ModifiedBinary => Severity::High,
            // Without the file's own verdict (see `as_library`, which
            // gives a library that one's severity): as an unknown binary.
            Verdict::LibraryDrift => Severity::High,
            Verdict::ExecFlood => Severity::High,
            Verdict::Fileless => Severity::Critical,
        }
    }
}

/// The image's content, known independently of its SBOM (OCI layers,
/// snapshots): normalized path -> SHA-256.
pub trait ImageContent {
    fn sha256_of(&self, path: &str) -> Option<[u8; 32]>;
}

/// A verdict with what explains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// One sentence for people.
    pub reason: String,
    /// Hex digest the SBOM (or image content) expected, as `alg:hex`.
    pub expected: Option<String>,
    /// The only digest available for the path was SHA-1 or MD5.
    pub weak: bool,
    pub package: Option<PackageRef>,
    /// For `relocated-binary`: the SBOM paths with these bytes.
    pub listed_at: Vec<String>,
}

impl Judgement {
    /// A verdict with its reason and nothing else known.
    pub fn new(verdict: Verdict, reason: impl Into<String>) -> Self {
        Self {
            verdict,
            reason: reason.into(),
            expected: None,
            weak: false,
            package: None,
            listed_at: Vec::new(),
        }
    }
}

/// A verdict as a file mapped as code (a shared library): anything but
/// `ok` is `library-drift` (code the image's SBOM does not vouch for),
/// with the severity of the file's own verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryVerdict {
    pub verdict: Verdict,
    /// The file's own verdict behind `library-drift` (`None` when `ok`).
    pub file_verdict: Option<Verdict>,
    pub reason: String,
    /// The file's own verdict's severity: one table whether a file was
    /// executed or mapped (an `sbom-gap` library is low, as its exec is).
    pub severity: Severity,
}

/// Turns the verdict of a file that was mapped as code, and its reason,
/// into the library's verdict.
pub fn as_library(file: Verdict, reason: &str) -> LibraryVerdict {
    if file == Verdict::Ok {
        return LibraryVerdict {
            verdict: file,
            file_verdict: None,
            reason: reason.to_owned(),
            severity: file.severity(),
        };
    }
    LibraryVerdict {
        verdict: Verdict::LibraryDrift,
        file_verdict: Some(file),
        reason: format!("mapped as code: {reason}"),
        severity: file.severity(),
    }
}

/// How an algorithm is named in reasons.
fn label(alg: HashAlg) -> &'static str {
    match alg {
        HashAlg::Sha256 => "SHA-256",
        HashAlg::Sha512 => "SHA-512",
        HashAlg::Sha384 => "SHA-384",
        HashAlg::Sha1 => "SHA-1",
        HashAlg::Md5 => "MD5",
        other => other.name(),
    }
}

/// The verdict for a path the SBOM lists, from the one digest comparison.
fn judge_listed(entry: &verifier_sbom::FileEntry, hashes: &FileHashes, from: &str) -> Judgement {
    match digest::compare(entry, hashes) {
        Comparison::Match { alg, weak: false } => {
            Judgement::new(Verdict::Ok, format!("{} matches {from}", label(alg)))
        }
        Comparison::Match { alg, weak: true } => {
            let mut j = Judgement::new(
                Verdict::Ok,
                format!("{} matches {from} (the only digest it gives: weak)", label(alg)),
            );
            j.weak = true;
            j
        }
        Comparison::Mismatch { alg, weak, expected, .. } => {
            let mut j = Judgement::new(
                Verdict::ModifiedBinary,
                format!("{from} lists this path with another {}", label(alg)),
            );
            j.expected = Some(expected.to_string());
            j.weak = weak;
            j
        }
        Comparison::NoUsableDigest => Judgement::new(
            Verdict::Unverifiable,
            "the SBOM lists this path without a digest this agent can compare",
        ),
        Comparison::NotComputed { alg } => Judgement::new(
            Verdict::Unverifiable,
            format!("the SBOM gives this path a {} digest, which was not computed", label(alg)),
        ),
    }
}

/// The verdict for `path` when the SBOM lists it under its own name or,
/// on a merged-/usr image, under its pre-merge alias (`/usr/bin/ls` listed
/// as `bin/ls` by dpkg; [`Manifest::get_canonical`]); `None` when it lists
/// neither. The reason names the listed path when it is the alias.
fn judge_at_listed_name(m: &Manifest, path: &str, hashes: &FileHashes) -> Option<Judgement> {
    let (listed, e) = m.get_canonical(path)?;
    let mut j = judge_listed(e, hashes, m.digests_from());
    j.package = e.package(m).cloned();
    if listed != path {
        j.reason = format!("{} (listed as {listed})", j.reason);
    }
    Some(j)
}

/// Why a written file is not judged by its digest.
const WRITTEN_REASON: &str = "opened for writing in the container since the image was unpacked: \
     the bytes hashed need not be the bytes that ran";

/// Judges the file that ran. `path` is its canonical path in the container
/// (`None` when not valid UTF-8, which no SBOM can list); `fileless` says it
/// was unlinked or run from a descriptor; `written` that the kernel saw it
/// opened for writing in a watched container.
pub fn judge(
    m: &Manifest,
    content: Option<&dyn ImageContent>,
    path: Option<&str>,
    hashes: &FileHashes,
    fileless: bool,
    written: bool,
) -> Judgement {
    if fileless {
        return Judgement::new(
            Verdict::Fileless,
            "executed from memory or a deleted file: no path in the image holds it",
        );
    }
    // A written file is judged by its path even when it could not be hashed.
    if let Some(p) = path
        && (hashes.sha256.is_some() || written)
        && let Some(mut j) = judge_at_listed_name(m, p, hashes)
    {
        if written {
            j.reason = match j.verdict {
                Verdict::ModifiedBinary => format!("{}; {WRITTEN_REASON}", j.reason),
                _ => WRITTEN_REASON.to_owned(),
            };
            j.verdict = Verdict::ModifiedBinary;
        }
        return j;
    }
    let Some(sha256) = hashes.sha256 else {
        return Judgement::new(Verdict::Unverifiable, "no SHA-256 was computed");
    };
    // Where else the SBOM lists these bytes, by the same comparison.
    let listed_at: Vec<String> = m
        .files()
        .filter(|(_, e)| matches!(digest::compare(e, hashes), Comparison::Match { weak: false, .. }))
        .map(|(p, _)| p.to_owned())
        .collect();
    if !listed_at.is_empty() {
        let mut j = Judgement::new(
            Verdict::RelocatedBinary,
            "not listed at this path, but the SBOM lists these bytes elsewhere",
        );
        j.package = listed_at.first().and_then(|p| m.get(p)).and_then(|e| e.package(m)).cloned();
        j.listed_at = listed_at;
        return j;
    }
    if let (Some(p), Some(c)) = (path, content)
        && let Some(shipped) = c.sha256_of(p)
    {
        if shipped == sha256 && !written {
            return Judgement::new(
                Verdict::SbomGap,
                "shipped in the image's layers, but the SBOM does not list it",
            );
        }
        let mut j = Judgement::new(
            Verdict::ModifiedBinary,
            if shipped == sha256 {
                WRITTEN_REASON
            } else {
                "the image's layers hold other bytes at this path (not in the SBOM)"
            },
        );
        j.expected = Some(format!("sha256:{}", hex::encode(shipped)));
        return j;
    }
    Judgement::new(Verdict::UnknownBinary, "not in the image's SBOM")
}

/// Judges an executed file whose bytes were not hashed (over the size cap,
/// or no longer readable as the file that ran) by its path alone; `why`
/// says what kept it from being hashed. No downgrade by timing or size: a
/// path the SBOM does not list, nor the image's layers hold, was never
/// shipped, and is `unknown-binary` whatever its bytes. A listed path (or
/// one the layers hold) might be the shipped file: `unverifiable`, unless
/// the kernel saw it opened for `written` in the container: then it is a
/// modified image file whatever it holds.
pub fn judge_unhashed(
    m: &Manifest,
    content: Option<&dyn ImageContent>,
    path: Option<&str>,
    why: &str,
    written: bool,
) -> Judgement {
    let shipped = |mut j: Judgement| {
        if written {
            j.verdict = Verdict::ModifiedBinary;
            j.reason = format!("{WRITTEN_REASON} (not hashed: {why})");
        }
        j
    };
    if let Some(p) = path {
        if let Some((listed, e)) = m.get_canonical(p) {
            let mut j = Judgement::new(
                Verdict::Unverifiable,
                format!("the SBOM lists {listed}, but the file that ran was not hashed: {why}"),
            );
            j.package = e.package(m).cloned();
            return shipped(j);
        }
        if content.is_some_and(|c| c.sha256_of(p).is_some()) {
            return shipped(Judgement::new(
                Verdict::Unverifiable,
                format!("the image's layers hold this path (not in the SBOM), but it was not hashed: {why}"),
            ));
        }
    }
    Judgement::new(Verdict::UnknownBinary, format!("not in the image's SBOM (not hashed: {why})"))
}

/// A file that had a name when it ran and was deleted since, judged by the
/// path it ran from with the bytes read through the process: `ok` is not
/// proof (its ctime moved, so nothing shows the bytes are those that ran)
/// and becomes `unverifiable`; any other verdict stands, saying so.
pub fn deleted_after_exec(j: Judgement) -> Judgement {
    if j.verdict == Verdict::Ok {
        let mut u = Judgement::new(
            Verdict::Unverifiable,
            format!(
                "deleted after the exec: {}, but that cannot prove these are the bytes that ran",
                j.reason
            ),
        );
        u.package = j.package;
        return u;
    }
    Judgement { reason: format!("{} (deleted after the exec)", j.reason), ..j }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
