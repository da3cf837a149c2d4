//! Types shared by the kernel programs (`verifier-ebpf`) and the agent
//! (`verifier-user`).
//!
//! Everything that crosses the kernel/user boundary is defined once, here:
//! `#[repr(C)]`, `Copy`, explicit padding, no `bool`, sizes asserted at compile
//! time, so that a change on one side that the other side does not follow
//! fails the build instead of garbling events. Map and global names are
//! constants for the same reason.
//!
//! The crate is `no_std`; the `user` feature adds `aya::Pod` impls and the
//! decoder the agent uses on raw ring buffer records ([`decode`]).
#![cfg_attr(not(test), no_std)]

pub mod counters;
pub mod enforce;
pub mod event;
pub mod fastpath;
pub mod measure;
pub mod offsets;
pub mod throttle;

#[cfg(feature = "user")]
pub mod decode;

/// Ring buffer that carries every record (see [`event::RecordKind`]) to
/// userspace.
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU array of `u64` counters, indexed by [`counters::Counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Per-CPU scratch space used to build a record before it is copied out.
pub const MAP_SCRATCH: &str = "SCRATCH";
/// Global holding [`offsets::ProgramConfig`], written by the loader.
pub const GLOBAL_CONFIG: &str = "CONFIG";
/// Per-CPU scratch for new-cgroup records.
pub const MAP_CGROUP_SCRATCH: &str = "CGROUP_SCRATCH";
/// Per-CPU scratch space for an executable-mapping record and its path.
pub const MAP_MMAP_SCRATCH: &str = "MMAP_SCRATCH";

/// Default ring buffer size. Records are variable-sized (header plus the
/// actual file name, about 150 bytes for a typical exec), so 2 MiB holds
/// over ten thousand execs: seconds of an exec storm if userspace stalls.
/// The kernel maps the data pages twice into the agent, so this costs
/// twice its size in agent RSS.
pub const DEFAULT_RING_BYTES: u32 = 2 << 20;
