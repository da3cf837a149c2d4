//! The kernel fast path: files already verified `ok` for a container's
//! image are recognised in the kernel, so their execs cost one map lookup
//! and no userspace work.
//!
//! Two maps, both written only by the agent:
//! - `WATCHED`: cgroup id -> baseline slot (one per image SBOM): the
//!   containers whose execs are verified;
//! - `VERIFIED`: (file identity, slot) -> 1, LRU-bounded: files judged
//!   `ok` against that baseline.
//!
//! The identity holds the inode's ctime, which the kernel moves on every
//! write, truncate, rename or chmod and which no user can set: a modified
//! or replaced file no longer matches and goes to userspace again. Scripts
//! never take the fast path (the kernel cannot name the script's file at
//! exec time, only its interpreter's).

use crate::event::FileIdentity;

/// cgroup id (`u64`) -> baseline slot (`u32`).
pub const MAP_WATCHED: &str = "WATCHED";
/// [`VerifiedKey`] -> `u32` (always 1).
pub const MAP_VERIFIED: &str = "VERIFIED";
/// [`InodeKey`] -> `u32` (always 1): the inodes of verified files, without
/// ctime, so that a write-open with `O_TRUNC` (which moves ctime before
/// the program sees the file) is still recognised.
pub const MAP_VERIFIED_INODES: &str = "VERIFIED_INODES";
/// Containers watched at once.
pub const WATCHED_MAX: u32 = 16_384;
/// Verified files remembered (least recently used go first).
pub const VERIFIED_MAX: u32 = 65_536;

/// Key of the `VERIFIED` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VerifiedKey {
    pub identity: FileIdentity,
    pub slot: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<VerifiedKey>() == 40);

/// Key of the `VERIFIED_INODES` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub ino: u64,
    /// Kernel encoding, as [`FileIdentity::dev`].
    pub dev: u32,
    pub slot: u32,
}

const _: () = assert!(size_of::<InodeKey>() == 16);

#[cfg(feature = "user")]
// SAFETY: repr(C) plain-old-data, no padding, any bit pattern valid.
unsafe impl aya::Pod for InodeKey {}

#[cfg(feature = "user")]
// SAFETY: repr(C) plain-old-data, explicit padding, any bit pattern valid.
unsafe impl aya::Pod for VerifiedKey {}
