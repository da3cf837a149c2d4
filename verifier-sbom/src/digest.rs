//! The one comparison of a file's computed digests with what an SBOM entry
//! states, shared by the offline `check` and the agent's verdicts.
//!
//! Why one: the two used to pick algorithms differently (the agent knew
//! only SHA-256, SHA-1 and MD5; `check` also SHA-512/384 and apk link
//! hashes), so the same file of the same SBOM could be `ok` offline and
//! `unverifiable` at run time. Now both ask this module which digests to
//! compute ([`algs_for`]) and what the result means ([`compare`]).
//!
//! The policy:
//! - the entry is compared by the strongest algorithm it states that the
//!   hash engine computes: SHA-256, SHA-512, SHA-384, then SHA-1, then MD5.
//!   Only that one: a weaker digest never overrules a stronger one;
//! - a match by SHA-1 or MD5 alone is `weak` (collisions are practical);
//! - all-zero digests are placeholders ("not computed"), never a mismatch;
//!   an entry with nothing else has no usable digest, and says so;
//! - with conflicting SBOMs (two values of one algorithm) either value
//!   matches: both sources were trusted by whoever loaded them;
//! - a path the SBOM marks as a symlink may carry the hash of the link text
//!   itself (apk): [`compare_link`] accepts that when the target differs.

use crate::hash::{self, Algs, FileHashes};
use crate::{Digest, FileEntry, HashAlg, Manifest, Strength};

/// Algorithms an entry can be compared by, strongest first.
const ORDER: [HashAlg; 5] = [HashAlg::Sha256, HashAlg::Sha512, HashAlg::Sha384, HashAlg::Sha1, HashAlg::Md5];

/// What comparing a file with its SBOM entry found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// The file has the bytes the SBOM states, by `alg`.
    Match { alg: HashAlg, weak: bool },
    /// The file's `actual` digest differs from the `expected` one.
    Mismatch { alg: HashAlg, weak: bool, expected: Digest, actual: Digest },
    /// The entry states no digest the engine computes (none, only all-zero
    /// placeholders, or only SHA3/BLAKE/SHA-224): it cannot be verified.
    NoUsableDigest,
    /// The entry is compared by `alg`, which the caller did not compute
    /// (its algorithms did not come from [`algs_for`]).
    NotComputed { alg: HashAlg },
}

impl Comparison {
    /// Whether the file matched.
    pub fn is_match(&self) -> bool {
        matches!(self, Self::Match { .. })
    }
}

/// An all-zero digest: a placeholder meaning "not computed".
fn is_placeholder(value: &[u8]) -> bool {
    value.iter().all(|&b| b == 0)
}

/// The usable digests of `alg` stated for `entry`.
fn stated(entry: &FileEntry, alg: HashAlg) -> impl Iterator<Item = &[u8]> {
    entry.digests().filter(move |d| d.alg == alg && !is_placeholder(d.value)).map(|d| d.value)
}

/// The algorithm `entry` is compared by: the strongest it states (with a
/// real value) that the hash engine computes.
pub fn chosen_alg(entry: &FileEntry) -> Option<HashAlg> {
    ORDER.into_iter().find(|&alg| stated(entry, alg).next().is_some())
}

/// The digests to compute for a file judged against `entry` (`None`: the
/// SBOM does not list it): SHA-256 always (it names the file in reports,
/// caches and relocation lookups), plus the one [`compare`] will use.
pub fn algs_for(entry: Option<&FileEntry>) -> Algs {
    match entry.and_then(chosen_alg) {
        Some(alg) => Algs::SHA256.with(alg),
        None => Algs::SHA256,
    }
}

/// The digests to compute when the entry a file will be judged against is
/// not known before it is hashed (the agent learns the canonical path
/// only when the file is found): SHA-256 plus every algorithm some entry
/// without a SHA-256 is compared by.
pub fn algs_for_any(m: &Manifest) -> Algs {
    let mut algs = Algs::SHA256;
    for (_, e) in m.files() {
        if let Some(alg) = chosen_alg(e) {
            algs = algs.with(alg);
            if algs.is_all() {
                break;
            }
        }
    }
    algs
}

/// Compares the `computed` digests of a file with `entry`.
pub fn compare(entry: &FileEntry, computed: &FileHashes) -> Comparison {
    let Some(alg) = chosen_alg(entry) else {
        return Comparison::NoUsableDigest;
    };
    let Some(actual) = computed.digest(alg) else {
        return Comparison::NotComputed { alg };
    };
    let weak = alg.strength() == Strength::Weak;
    if stated(entry, alg).any(|want| want == actual) {
        return Comparison::Match { alg, weak };
    }
    let expected = stated(entry, alg).next().unwrap_or_default();
    Comparison::Mismatch {
        alg,
        weak,
        expected: Digest { alg, value: expected.into() },
        actual: Digest { alg, value: actual.into() },
    }
}

/// Compares a path that is a symlink in the rootfs: `target` holds the
/// digests of the file it resolves to, `link_text` is the link's own text.
/// The target is what counts; when it differs and the SBOM marks the path
/// as a symlink, a digest of the link text (what apk records) matches too.
/// A mismatch reports the target's digest.
pub fn compare_link(entry: &FileEntry, target: &FileHashes, link_text: &[u8]) -> Comparison {
    let by_target = compare(entry, target);
    if !matches!(by_target, Comparison::Mismatch { .. }) || !entry.is_symlink() {
        return by_target;
    }
    let mut buf = [0u8; 4096];
    match hash::hash_reader(link_text, algs_for(Some(entry)), &mut buf) {
        Ok(text) => match compare(entry, &text) {
            found @ Comparison::Match { .. } => found,
            _ => by_target,
        },
        Err(_) => by_target,
    }
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
