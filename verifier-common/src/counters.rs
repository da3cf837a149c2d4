//! Kernel-side counters. Each is a per-CPU `u64`; userspace sums them.
//!
//! The invariant the tests hold the kernel to: every exec the program runs
//! for is counted in `Seen`, and each seen exec is either `Filtered` (host
//! process while only containers are watched), `FastPath` (a file already
//! verified for its container), `Sent` (a record reached the ring buffer) or
//! `Dropped` (the ring buffer was full). Nothing is lost
//! without a count. New-cgroup records have their own sent/dropped pair.

/// Index of a counter in the `COUNTERS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// The program ran for an exec.
    Seen = 0,
    /// A record was written to the ring buffer.
    Sent = 1,
    /// The ring buffer had no room: the record was lost (and counted here).
    Dropped = 2,
    /// Skipped by the in-kernel filter (host process, containers-only mode).
    Filtered = 3,
    /// The executed file's identity could not be read; the record is still
    /// sent, with [`crate::event::FLAG_NO_EXE_FILE`] set.
    IdentityErrors = 4,
    /// A new-cgroup record was written to the ring buffer.
    CgroupSent = 5,
    /// A new-cgroup record was lost (ring buffer full).
    CgroupDropped = 6,
    /// Verified in the kernel: a file already judged `ok` for the exec's
    /// container (the `VERIFIED` map), so no record was sent.
    FastPath = 7,
    /// A verified file was opened for writing in its container: evicted
    /// from the fast path, record sent.
    WriteSent = 8,
    /// As above, but the record was lost (ring buffer full).
    WriteDropped = 9,
    /// Not sent: the exec's container was past its exec limit in this
    /// window (counted per container in the `THROTTLE` map too).
    Throttled = 10,
    /// A file mapped executable in a watched container was already verified
    /// (fast path): nothing sent.
    MmapFastPath = 11,
    /// An unverified executable mapping was reported.
    MmapSent = 12,
    /// As above, but the record was lost (ring buffer full).
    MmapDropped = 13,
    /// An exec or executable mapping in an enforced container was killed
    /// (`bpf_send_signal(SIGKILL)`).
    Blocked = 14,
    /// As above in a dry-run container: reported, not killed.
    WouldBlock = 15,
    /// A block record was lost (ring buffer full); the block itself
    /// happened.
    BlockDropped = 16,
}

/// Number of counters (the `COUNTERS` map's `max_entries`).
pub const COUNTER_COUNT: u32 = 17;

impl Counter {
    /// All counters, in index order.
    pub const ALL: [Counter; COUNTER_COUNT as usize] = [
        Counter::Seen,
        Counter::Sent,
        Counter::Dropped,
        Counter::Filtered,
        Counter::IdentityErrors,
        Counter::CgroupSent,
        Counter::CgroupDropped,
        Counter::FastPath,
        Counter::WriteSent,
        Counter::WriteDropped,
        Counter::Throttled,
        Counter::MmapFastPath,
        Counter::MmapSent,
        Counter::MmapDropped,
        Counter::Blocked,
        Counter::WouldBlock,
        Counter::BlockDropped,
    ];

    /// A record the kernel meant to send was lost (ring buffer full): these
    /// add up to the stats record's `lost`.
    pub const fn is_loss(self) -> bool {
        matches!(
            self,
            Counter::Dropped
                | Counter::CgroupDropped
                | Counter::WriteDropped
                | Counter::MmapDropped
                | Counter::BlockDropped
        )
    }

    /// Stable name used in JSON stats records and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Seen => "seen",
            Counter::Sent => "sent",
            Counter::Dropped => "dropped",
            Counter::Filtered => "filtered",
            Counter::IdentityErrors => "identity_errors",
            Counter::CgroupSent => "cgroup_sent",
            Counter::CgroupDropped => "cgroup_dropped",
            Counter::FastPath => "fast_path",
            Counter::WriteSent => "write_sent",
            Counter::WriteDropped => "write_dropped",
            Counter::Throttled => "throttled",
            Counter::MmapFastPath => "mmap_fast_path",
            Counter::MmapSent => "mmap_sent",
            Counter::MmapDropped => "mmap_dropped",
            Counter::Blocked => "blocked",
            Counter::WouldBlock => "would_block",
            Counter::BlockDropped => "block_dropped",
        }
    }
}
