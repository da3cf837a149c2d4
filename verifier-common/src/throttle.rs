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

/// cgroup id (`u64`) -> [`ThrottleState`], LRU-bounded.
pub const MAP_THROTTLE: &str = "THROTTLE";
/// cgroup id (`u64`) -> execs suppressed (`u64`, per CPU), LRU-bounded.
pub const MAP_THROTTLE_SUPPRESSED: &str = "THROTTLE_SUPPRESSED";
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
    pub _reserved: u64,
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

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid, no padding.
unsafe impl aya::Pod for ThrottleState {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for ThrottleRecord {}
