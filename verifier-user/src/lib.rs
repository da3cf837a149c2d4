//! The verifier agent and CLI as a library, so that the integration tests
//! and benchmarks drive the same code the `verifier` binary runs.
//!
//! Modules by capability:
//! - [`btf`]: kernel struct offsets from `/sys/kernel/btf/vmlinux`;
//! - [`loader`]: load and attach the kernel programs, mount tracefs;
//! - [`events`]: ring buffer records to [`events::ExecEvent`];
//! - [`container`]: which container (and runtime) a process belongs to;
//! - [`containerd`]: containerd's API (container -> image -> digest);
//! - [`output`]: the versioned JSON records the agent prints;
//! - [`verify`]: exec -> file in the container root -> digest -> verdict;
//! - [`alert`]: drift findings, dedup, rate limit, formats and sinks;
//! - [`metrics`]: Prometheus `/metrics` and `/healthz`;
//! - [`agent`]: the event loop tying these together;
//! - [`sbom`]: SBOM readers, the manifest model and `sbom generate`;
//! - [`check`]: offline drift check of a rootfs against SBOMs;
//! - [`cli`]: command-line interface.

pub mod agent;
pub mod alert;
pub mod btf;
pub mod check;
pub mod cli;
pub mod container;
pub mod containerd;
pub mod events;
pub mod loader;
pub mod metrics;
pub mod output;
pub mod sbom;
pub mod verify;

/// The compiled kernel programs (empty when built without the eBPF
/// toolchain; see build.rs).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/verifier"));
