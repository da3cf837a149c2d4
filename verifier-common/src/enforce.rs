//! Enforcement: which containers the kernel blocks in, which files they
//! may run, and the record a block (or a dry-run "would block") sends.
//!
//! Two maps, both written only by the agent:
//! - `ENFORCE`: cgroup id -> mode ([`MODE_DRY_RUN`], [`MODE_ENFORCE`]).
//!   Only containers the operator chose to enforce are in it, and only
//!   once their allowed set is filled: the host and every other container
//!   are never looked at beyond one failed hash lookup.
//! - `ALLOWED`: ([`crate::fastpath::VerifiedKey`], the container's
//!   baseline slot from `WATCHED`) -> 1: the identities of the files the
//!   container may run or map as code, filled by the agent's
//!   pre-verification of the container's listed executables and
//!   libraries before its mode is set.
//!
//! An exec (or executable mapping) in an enforced container whose file is
//! not in `ALLOWED`, was opened for writing in a container (`WRITTEN`), or
//! has no name (memfd, deleted) is killed with `bpf_send_signal(SIGKILL)`
//! from the tracepoint, before the new image returns to user space, and a
//! [`BlockRecord`] goes to the agent.

use crate::event::FileIdentity;

/// cgroup id (`u64`) -> mode (`u32`).
pub const MAP_ENFORCE: &str = "ENFORCE";
/// [`crate::fastpath::VerifiedKey`] -> `u32` (always 1).
pub const MAP_ALLOWED: &str = "ALLOWED";
/// Enforced containers at once.
pub const ENFORCE_MAX: u32 = 4_096;
/// Allowed files remembered, over all enforced containers (least recently
/// used go first: an evicted file of a running container is blocked once,
/// judged by the agent and allowed again).
pub const ALLOWED_MAX: u32 = 131_072;

/// Mode: report what would have been blocked, block nothing.
pub const MODE_DRY_RUN: u32 = 1;
/// Mode: block.
pub const MODE_ENFORCE: u32 = 2;
/// The mode's bits of an `ENFORCE` value (the rest are `WRITES_*` flags).
pub const MODE_MASK: u32 = 0xff;
/// `ENFORCE` value flag: a write-open of a file in the container's allowed
/// set is denied by the BPF LSM `file_open` program (`-EPERM`).
pub const WRITES_DENY: u32 = 1 << 8;
/// `ENFORCE` value flag: a write-open of a file in the container's allowed
/// set kills the opener from the write-open tracepoint (no LSM).
pub const WRITES_KILL: u32 = 1 << 9;

/// Reason bit: the file's identity is not in the container's allowed set.
pub const REASON_NOT_ALLOWED: u16 = 1 << 0;
/// Reason bit: the file was opened for writing in a container.
pub const REASON_WRITTEN: u16 = 1 << 1;
/// Reason bit: the file has no name (memfd, deleted): fileless.
pub const REASON_FILELESS: u16 = 1 << 2;
/// Reason bit: the executed file's identity could not be read.
pub const REASON_NO_IDENTITY: u16 = 1 << 3;
/// Reason bit: a file of the container's allowed set (an image file) was
/// opened for writing.
pub const REASON_IMAGE_FILE: u16 = 1 << 4;
/// Reason bit: the file's SHA-256, measured in the kernel, is not one the
/// container may run (`crate::measure`).
pub const REASON_DIGEST: u16 = 1 << 5;

/// Where the block happened.
pub const HOOK_EXEC: u16 = 1;
/// An executable mapping (`mmap` with `PROT_EXEC`).
pub const HOOK_MMAP: u16 = 2;
/// An open for writing (`file_open` with `FMODE_WRITE`, or the
/// write-open tracepoint).
pub const HOOK_WRITE: u16 = 3;

/// Mechanism: `bpf_send_signal(SIGKILL)` from a tracepoint.
pub const MECHANISM_TRACEPOINT_KILL: u16 = 1;
/// Mechanism: a BPF LSM program denied the exec or mapping (`-EPERM`).
pub const MECHANISM_BPF_LSM: u16 = 2;

/// Largest path a block carries ([`BlockMessage::path`]), in bytes: the
/// kernel's `PATH_MAX`, so a name the exec accepted is never cut.
pub const BLOCK_PATH_MAX: usize = crate::event::FILENAME_MAX;
/// [`BlockRecord::path_flags`]: the path filled the buffer and may be cut.
pub const BLOCK_PATH_TRUNCATED: u16 = 1 << 0;
/// [`BlockRecord::path_flags`]: the kernel string could not be read.
pub const BLOCK_PATH_UNREAD: u16 = 1 << 1;
/// [`BlockRecord::path_flags`]: the path is the file's names walked up to
/// the task's root, leaf first, each NUL-terminated (the encoding of
/// [`crate::event::MAPPED_PATH_MAX`]): a denied write names its file.
pub const BLOCK_PATH_LEAF_FIRST: u16 = 1 << 2;

/// A block (or, in dry-run mode, a block that would have happened): the
/// fixed part of a [`BlockMessage`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockRecord {
    /// Always [`crate::event::KIND_BLOCK`].
    pub kind: u16,
    /// `REASON_*` bits.
    pub reasons: u16,
    /// [`HOOK_EXEC`], [`HOOK_MMAP`] or [`HOOK_WRITE`].
    pub hook: u16,
    /// `MECHANISM_*`.
    pub mechanism: u16,
    /// The container's mode when it happened (without `WRITES_*` flags).
    pub mode: u32,
    /// `bpf_send_signal`'s return (0: queued); 0 in dry-run and for
    /// [`MECHANISM_BPF_LSM`] (the operation was denied, nothing killed).
    pub signal_rc: i32,
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    /// The file that was to run (for a mapping: the mapped file).
    pub identity: FileIdentity,
    /// The container's baseline slot.
    pub slot: u32,
    /// The descriptor mapped (mmap) or opened (write, tracepoint), else -1.
    pub fd: i32,
    pub comm: [u8; 16],
    /// Bytes of [`BlockMessage::path`] in use (no NUL); 0: no path.
    pub path_len: u16,
    /// `BLOCK_PATH_*` bits.
    pub path_flags: u16,
    pub _pad: u32,
}

/// Size of [`BlockRecord`], the part of a block record always present.
pub const BLOCK_RECORD_SIZE: usize = size_of::<BlockRecord>();
const _: () = assert!(BLOCK_RECORD_SIZE == 104);

/// A block record as the kernel sends it, one fixed size: the record, then
/// the name of the file that was to run where the hook knows it (a BPF LSM
/// exec denial: the exec never completes, so no exec record names the
/// file). Bytes past [`BlockRecord::path_len`] are not meaningful.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockMessage {
    pub record: BlockRecord,
    pub path: [u8; BLOCK_PATH_MAX],
}

/// Size of a [`BlockMessage`] on the wire.
pub const BLOCK_MESSAGE_SIZE: usize = size_of::<BlockMessage>();
const _: () = assert!(BLOCK_MESSAGE_SIZE == BLOCK_RECORD_SIZE + BLOCK_PATH_MAX);

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid, explicit padding.
unsafe impl aya::Pod for BlockRecord {}

/// The stable names of the reason bits set in `reasons`.
pub fn reason_names(reasons: u16) -> impl Iterator<Item = &'static str> {
    [
        (REASON_NOT_ALLOWED, "not-verified"),
        (REASON_WRITTEN, "written"),
        (REASON_FILELESS, "fileless"),
        (REASON_NO_IDENTITY, "no-identity"),
        (REASON_IMAGE_FILE, "image-file"),
        (REASON_DIGEST, "digest"),
    ]
    .into_iter()
    .filter(move |(bit, _)| reasons & bit != 0)
    .map(|(_, name)| name)
}

/// The stable name of a mechanism number.
pub const fn mechanism_name(mechanism: u16) -> &'static str {
    match mechanism {
        MECHANISM_TRACEPOINT_KILL => "tracepoint-kill",
        MECHANISM_BPF_LSM => "bpf-lsm",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_named_in_bit_order() {
        let names: Vec<_> = reason_names(REASON_FILELESS | REASON_NOT_ALLOWED).collect();
        assert_eq!(names, ["not-verified", "fileless"]);
        assert_eq!(reason_names(REASON_IMAGE_FILE).collect::<Vec<_>>(), ["image-file"]);
        assert_eq!(reason_names(0).count(), 0);
        assert_eq!(mechanism_name(MECHANISM_TRACEPOINT_KILL), "tracepoint-kill");
        assert_eq!(mechanism_name(MECHANISM_BPF_LSM), "bpf-lsm");
        assert_eq!(mechanism_name(9), "unknown");
    }
}
