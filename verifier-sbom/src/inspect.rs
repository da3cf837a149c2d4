//! `verifier sbom inspect`: what an SBOM holds, and whether it is worth
//! anything for runtime verification.
//!
//! Most SBOMs in the wild list packages and nothing else; some list files
//! with only MD5 or SHA-1; a few give every file a SHA-256. Feeding the
//! agent a package-only SBOM makes every exec `unknown-binary`, which looks
//! like the agent's fault. This module says so up front: it counts the
//! files, which digests they carry, what the reader could not use, and
//! gives one verdict ([`Usefulness`]) with what to do about it.
//!
//! It only looks at a [`Manifest`] already read, so it works for every
//! format the readers accept and is tested on real samples.
//!
//! JSON report, schema `verifier.inspect/v1` (docs/schema.md):
//! ```text
//! { "schema": "verifier.inspect/v1",
//!   "inputs": [ { "file": "<path>",
//!                 "error": "<why it could not be read>" | null,
//!                 "format", "spec_version", "envelope": string | null,
//!                 "packages", "files": int,
//!                 "digests": { "sha256", "sha512", "sha384", "sha1", "md5",
//!                              "other", "none", "placeholders": int },
//!                 "strong_files", "weak_only_files": int,
//!                 "warnings": [string],
//!                 "usefulness": "per-file|weak|package-only" | null,
//!                 "advice": string | null } ] }
//! ```

use std::process::ExitCode;

use serde::Serialize;

use crate::{Envelope, FileEntry, HashAlg, Manifest, SbomError, Strength};

pub const SCHEMA: &str = "verifier.inspect/v1";

/// What an SBOM is good for at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usefulness {
    /// Every file with a digest has a strong one (SHA-256/384/512): the
    /// agent and `check` can prove what ran.
    PerFile,
    /// Some files have only MD5 or SHA-1: accidents are caught, a
    /// deliberate collision is not.
    Weak,
    /// No file digest the agent can compare: on its own it verifies nothing.
    PackageOnly,
}

impl Usefulness {
    pub fn name(self) -> &'static str {
        match self {
            Self::PerFile => "per-file",
            Self::Weak => "weak",
            Self::PackageOnly => "package-only",
        }
    }
}

/// Files carrying each algorithm (a file with SHA-256 and SHA-1 counts in
/// both), files with none, and all-zero placeholder digests dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DigestCounts {
    pub sha256: usize,
    pub sha512: usize,
    pub sha384: usize,
    pub sha1: usize,
    pub md5: usize,
    /// SHA-224, SHA-3, BLAKE2b, BLAKE3: kept, but neither the agent nor
    /// `check` computes them.
    pub other: usize,
    /// Files with no usable digest at all.
    pub none: usize,
    /// All-zero digests ("not computed") the reader ignored.
    pub placeholders: usize,
}

/// The inspection of one input.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    pub file: String,
    pub error: Option<String>,
    pub format: Option<String>,
    pub spec_version: Option<String>,
    pub envelope: Option<String>,
    pub packages: usize,
    pub files: usize,
    pub digests: DigestCounts,
    /// Files with a SHA-256, SHA-384 or SHA-512.
    pub strong_files: usize,
    /// Files whose only comparable digests are MD5 / SHA-1.
    pub weak_only_files: usize,
    pub warnings: Vec<String>,
    pub usefulness: Option<Usefulness>,
    pub advice: Option<String>,
}

/// The whole report (the JSON output is this, serialised).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub inputs: Vec<Inspection>,
}

/// Inspects a manifest read from `file`.
pub fn inspect(file: &str, m: &Manifest) -> Inspection {
    let mut d = DigestCounts { placeholders: placeholders(m.warnings()), ..DigestCounts::default() };
    let (mut strong_files, mut weak_only_files) = (0, 0);
    for (_, e) in m.files() {
        count(&mut d, e);
        match best_comparable(e) {
            Some(Strength::Strong) => strong_files += 1,
            Some(Strength::Weak) => weak_only_files += 1,
            None => {}
        }
    }
    let usefulness = if weak_only_files > 0 {
        Usefulness::Weak
    } else if strong_files > 0 {
        Usefulness::PerFile
    } else {
        Usefulness::PackageOnly
    };
    let src = m.source();
    let format = if m.sources().iter().all(|s| s.format == src.format) {
        src.format.name().to_owned()
    } else {
        "mixed".to_owned()
    };
    Inspection {
        file: file.to_owned(),
        error: None,
        format: Some(format),
        spec_version: src.spec_version.clone(),
        envelope: src.envelope.map(|e| envelope_name(e).to_owned()),
        packages: m.packages().len(),
        files: m.len(),
        advice: advice(usefulness, m, weak_only_files, strong_files),
        digests: d,
        strong_files,
        weak_only_files,
        warnings: m.warnings().to_vec(),
        usefulness: Some(usefulness),
    }
}

/// The entry for an input that could not be read.
pub fn failed(file: &str, err: &SbomError) -> Inspection {
    Inspection {
        file: file.to_owned(),
        error: Some(err.to_string()),
        format: None,
        spec_version: None,
        envelope: None,
        packages: 0,
        files: 0,
        digests: DigestCounts::default(),
        strong_files: 0,
        weak_only_files: 0,
        warnings: Vec::new(),
        usefulness: None,
        advice: None,
    }
}

/// 0 when every input is `per-file`, 1 when any is `weak` or
/// `package-only`, 2 when any could not be read.
pub fn exit_code(report: &Report) -> ExitCode {
    ExitCode::from(exit_status(report))
}

fn exit_status(report: &Report) -> u8 {
    if report.inputs.iter().any(|i| i.error.is_some()) {
        2
    } else if report.inputs.iter().all(|i| i.usefulness == Some(Usefulness::PerFile)) {
        0
    } else {
        1
    }
}

fn envelope_name(e: Envelope) -> &'static str {
    match e {
        Envelope::InToto => "in-toto",
        Envelope::Dsse => "dsse",
        Envelope::SigstoreBundle => "sigstore-bundle",
    }
}

fn count(d: &mut DigestCounts, e: &FileEntry) {
    if !e.has_digests() {
        d.none += 1;
        return;
    }
    let has = |a| e.digest(a).is_some();
    d.sha256 += usize::from(has(HashAlg::Sha256));
    d.sha512 += usize::from(has(HashAlg::Sha512));
    d.sha384 += usize::from(has(HashAlg::Sha384));
    d.sha1 += usize::from(has(HashAlg::Sha1));
    d.md5 += usize::from(has(HashAlg::Md5));
    d.other += usize::from(e.digests().any(|x| !is_comparable(x.alg)));
}

/// Algorithms the agent or `check` can compute and compare.
fn is_comparable(a: HashAlg) -> bool {
    matches!(a, HashAlg::Sha256 | HashAlg::Sha512 | HashAlg::Sha384 | HashAlg::Sha1 | HashAlg::Md5)
}

fn best_comparable(e: &FileEntry) -> Option<Strength> {
    e.digests().filter(|d| is_comparable(d.alg)).map(|d| d.alg.strength()).max()
}

/// All-zero placeholders, as the readers count them in their warning
/// (`"<n> all-zero digest(s) are placeholders ..."`, prefixed with the
/// source after a merge).
fn placeholders(warnings: &[String]) -> usize {
    const MARK: &str = " all-zero digest(s) are placeholders";
    warnings
        .iter()
        .filter_map(|w| {
            let head = &w[..w.find(MARK)?];
            let digits = head.rsplit(|c: char| !c.is_ascii_digit()).next()?;
            digits.parse::<usize>().ok()
        })
        .sum()
}

fn advice(u: Usefulness, m: &Manifest, weak: usize, strong: usize) -> Option<String> {
    let what_to_do = "run `verifier sbom generate` on the image (SHA-256 for every file) and give that to \
                      the agent, or give it the image's package database (dpkg info/status.d directory, apk \
                      installed) as a weak baseline";
    match u {
        Usefulness::PerFile => None,
        Usefulness::Weak => Some(format!(
            "{weak} file(s) have only MD5/SHA-1 ({strong} with a strong digest): drift by accident is caught, \
             a crafted collision is not; for proof, run `verifier sbom generate` on the image"
        )),
        Usefulness::PackageOnly if m.is_empty() && m.packages().is_empty() => Some(format!(
            "lists no packages and no files: the agent cannot verify anything with it; {what_to_do}"
        )),
        Usefulness::PackageOnly => Some(format!(
            "no file digest the agent can compare ({} package(s), {} file(s)): with it alone every exec is \
             `unknown-binary` or `unverifiable`; {what_to_do}",
            m.packages().len(),
            m.len()
        )),
    }
}

#[cfg(test)]
#[path = "inspect_tests.rs"]
mod tests;
