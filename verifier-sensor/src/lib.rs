//! The sensor: everything between the kernel programs and the agent.
//!
//! - [`btf`]: kernel struct offsets read from `/sys/kernel/btf/vmlinux` at
//!   start-up, handed to the programs as one global (never hard-coded);
//! - [`loader`]: loads and attaches the programs, mounts tracefs;
//! - [`maps`]: typed handles to the kernel maps (fast path, counters,
//!   throttle);
//! - [`events`]: ring-buffer records decoded into what the agent handles.
//!
//! It knows nothing of containers, SBOMs or alerts: the agent gives it
//! cgroup ids and file identities, and gets records back.

pub mod btf;
pub mod events;
pub mod loader;
pub mod maps;

/// The compiled kernel programs (empty when built without the eBPF
/// toolchain; see build.rs).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/verifier"));
