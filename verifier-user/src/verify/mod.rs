//! Verification of executed files: find the file that ran inside
//! the container, prove it is the same file the kernel saw, hash it, and
//! judge it against the image's SBOM.
//!
//! - [`containers`]: per-container baselines, execs waiting (bounded) for
//!   their container to be resolved;
//! - [`engine`]: the event-loop side: decisions cached per image, jobs
//!   coalesced, nothing cached that was not proven;
//! - [`layers`]: a container's overlay layers (what the image shipped, what
//!   it wrote);
//! - [`open`]: race-free resolution beneath a container root;
//! - [`locate`]: one exec on a worker thread (find, prove, hash);
//! - [`pool`]: the bounded hashing threads;
//! - [`preverify`]: an enforced container's code files, judged before
//!   they run;
//! - [`script`]: a `#!` script's bytes and interpreter;
//! - [`hash_cache`]: digests already computed, by file identity;
//! - [`index`]: a container's listed files by identity (for processes
//!   already gone);
//! - [`root`]: whether an exec ran in the container's root or a
//!   `chroot` inside it;
//! - [`source`]: container -> runtime state -> image -> SBOM manifest;
//! - [`stats`]: the verification counters of the stats record;
//! - [`verdict`]: the policy from digests and SBOM to a verdict.

pub(crate) mod containers;
pub(crate) mod engine;
pub(crate) mod hash_cache;
pub(crate) mod image_files;
pub(crate) mod index;
pub(crate) mod layers;
pub(crate) mod locate;
pub(crate) mod mtree;
pub(crate) mod open;
pub(crate) mod pool;
pub(crate) mod preverify;
pub(crate) mod root;
pub(crate) mod script;
pub(crate) mod source;
pub(crate) mod stats;
#[cfg(test)]
mod test_sbom;
pub mod verdict;
