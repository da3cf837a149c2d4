//! The sensor: everything between the kernel programs and the agent.
//!
//! - [`btf`]: kernel struct offsets read from `/sys/kernel/btf/vmlinux` at
//!   start-up, handed to the programs as one global (never hard-coded);
//! - [`hooks`]: the table of hooks (program, attach point, required or
//!   optional, kernel probe) the loader walks;
//! - [`loader`]: loads the object and attaches the hooks, mounts tracefs;
//! - [`maps`]: typed handles to the kernel maps (fast path, counters,
//!   throttle);
//! - [`records`]: ring-buffer bytes decoded into the one enum of records
//!   the agent handles; [`events`]: their owned types and the clock.
//!
//! It knows nothing of containers, SBOMs or alerts: the agent gives it
//! cgroup ids and file identities, and gets records back.

pub mod btf;
pub mod events;
pub mod hooks;
pub mod loader;
pub mod lsm;
pub mod map_sizes;
pub mod maps;
pub mod measure;
pub mod records;

/// The compiled kernel programs (empty when built without the eBPF
/// toolchain; see build.rs).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/verifier"));
