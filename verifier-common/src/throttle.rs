//! The per-container exec throttle: a flood of execs in one container
//! (a fork bomb, a script looping over `sh -c`) must not drown the ring
//! buffer and, with it, every other container's events.
//!
//! The kernel counts the execs each cgroup sends to userspace in
//! one-second windows. Past `ProgramConfig::exec_limit` in a window, the
//! rest of that window's execs are not sent: each is counted in the
//! per-CPU `Throttled` counter and in the cgroup's per-CPU entry of
//! `THROTTLE_SUPPRESSED` (exact: the BPF target has no atomic add), and
//! the first of an episode sends one [`ThrottleRecord`] (throttle start).
//! The agent reports the episode's end itself, from the map, once a whole
//! window passed without a suppressed exec: only the kernel writes the
//! state, so the agent's reading of it never races a write of its own.
//! Fast-pathed execs (files already verified) are free and never count.
//!
//! A throttle never hides a new file. Past the limit, the first exec of
//! each distinct file per container per window is still sent: the kernel
//! remembers which it sent in `THROTTLE_NEW` ([`ThrottleKey`] -> the
//! window it was sent in), so only repeats are counted away. The identity
//! of a `#!` script exec is its interpreter's, so the key also carries a
//! hash of the executed name: a flood of distinct scripts through one
//! `sh` is not one file. At most [`NEW_PER_WINDOW`] new files are sent
//! this way per container and window (a ring buffer flood by distinct
//! files is bounded too); past that, each further new file is counted in
//! [`Suppressed::unjudged_new`] (as well as suppressed), reported in the
//! throttle stop record and alerted as `exec-flood`.
//!
//! An exec of a file already sent earlier in the same window, before the
//! limit was reached, is sent once more after it: new files are told
//! from repeats only past the limit, where the cost is paid.

/// cgroup id (`u64`) -> [`ThrottleState`], LRU-bounded.
pub const MAP_THROTTLE: &str = "THROTTLE";
/// cgroup id (`u64`) -> [`Suppressed`] (per CPU), LRU-bounded.
pub const MAP_THROTTLE_SUPPRESSED: &str = "THROTTLE_SUPPRESSED";
/// [`ThrottleKey`] -> window start (`u64`) the file was last sent in,
/// LRU-bounded (an evicted entry costs one extra record, never a hidden
/// file).
pub const MAP_THROTTLE_NEW: &str = "THROTTLE_NEW";
/// Files remembered at once across containers in `THROTTLE_NEW`.
pub const THROTTLE_NEW_MAX: u32 = 16_384;
/// New files a throttled container may still send per window; the rest
/// are counted as unjudged (`exec-flood`). 256 keeps a flood of distinct
/// files from filling the ring buffer (256 records of up to 4.7 KiB per
/// container and second) while a real workload's distinct binaries in one
/// second (a build, a package install) stay well under it.
pub const NEW_PER_WINDOW: u64 = 256;
/// Containers tracked at once.
pub const THROTTLE_MAX: u32 = 16_384;
/// Length of a counting window.
pub const WINDOW_NS: u64 = 1_000_000_000;

/// One cgroup's throttle; written only by the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleState {
    /// Start of the current window (`bpf_ktime_get_ns`).
    pub window_start_ns: u64,
    /// Execs sent in the current window (approximate across CPUs).
    pub window_count: u64,
    /// Last suppressed exec; 0 before the first.
    pub last_suppressed_ns: u64,
    /// New files sent past the limit in the current window (approximate
    /// across CPUs: a lost count lets one more through, never fewer).
    pub window_new: u64,
}

/// A cgroup's suppressed execs, per CPU (`THROTTLE_SUPPRESSED`): exact
/// without atomics.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Suppressed {
    /// Execs not sent.
    pub execs: u64,
    /// Of those, first execs of a new file in their window past
    /// [`NEW_PER_WINDOW`]: files that ran unjudged.
    pub unjudged_new: u64,
}

/// One file as the throttle tells new from repeat: the executed file's
/// identity (a rewrite changes ctime) and, for a `#!` script, a hash of the
/// script's name (0 for a binary).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleKey {
    pub cgroup_id: u64,
    pub ino: u64,
    pub ctime_sec: i64,
    pub name_hash: u64,
    pub ctime_nsec: u32,
    /// Kernel encoding, as [`crate::event::FileIdentity::dev`].
    pub dev: u32,
}

/// Throttle start: `cgroup_id` went past `limit` execs in a window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThrottleRecord {
    /// Always [`crate::event::KIND_THROTTLE`].
    pub kind: u16,
    pub flags: u16,
    /// Execs per window allowed (the configured limit).
    pub limit: u32,
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    /// Reserved (0).
    pub _reserved: u64,
    /// The exec that tripped the throttle.
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; 16],
}

/// Size of [`ThrottleRecord`] on the wire.
pub const THROTTLE_RECORD_SIZE: usize = size_of::<ThrottleRecord>();
const _: () = assert!(THROTTLE_RECORD_SIZE == 56);
const _: () = assert!(size_of::<ThrottleState>() == 32);
const _: () = assert!(size_of::<Suppressed>() == 16);
const _: () = assert!(size_of::<ThrottleKey>() == 40);

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid, no padding.
unsafe impl aya::Pod for ThrottleState {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for ThrottleRecord {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for Suppressed {}
