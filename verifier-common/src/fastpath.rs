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
//! A third, `WRITTEN`, is written only by the kernel: the inodes opened
//! for writing in watched containers (see [`MAP_WRITTEN`]).
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
/// [`WrittenKey`] -> `u64` (cgroup id of the last writer): every regular
/// file opened for writing in a watched container, whatever its
/// verification state. An exec or executable mapping of such a file is
/// flagged [`crate::event::FLAG_WRITTEN`] and never fast-pathed: a
/// payload written over a file and the original written back within one
/// timestamp tick leave dev, inode, size and ctime as they were, so only
/// the write-open itself tells. Keyed without ctime (an `O_TRUNC` open
/// moves it before the program runs) and without container (a file on a
/// shared volume is written in one container and run in another).
pub const MAP_WRITTEN: &str = "WRITTEN";
/// Written inodes remembered (least recently written go first). Evicting
/// an entry between the payload's write and its exec takes this many
/// write-opens of other files inside one timestamp tick (4 ms at 250 Hz).
/// An entry outlives its container: a later container whose overlay gets
/// the same anonymous device and inode has its execs of that file judged
/// as written until the entry ages out (a false alarm, never a miss).
pub const WRITTEN_MAX: u32 = 65_536;
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

/// Key of the `WRITTEN` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WrittenKey {
    pub ino: u64,
    /// Kernel encoding, as [`FileIdentity::dev`].
    pub dev: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<WrittenKey>() == 16);

#[cfg(feature = "user")]
// SAFETY: repr(C) plain-old-data, no padding, any bit pattern valid.
unsafe impl aya::Pod for InodeKey {}

#[cfg(feature = "user")]
// SAFETY: repr(C) plain-old-data, explicit padding, any bit pattern valid.
unsafe impl aya::Pod for WrittenKey {}

#[cfg(feature = "user")]
// SAFETY: repr(C) plain-old-data, explicit padding, any bit pattern valid.
unsafe impl aya::Pod for VerifiedKey {}
