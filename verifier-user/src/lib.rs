//! The verifier agent and CLI as a library, so that the integration tests
//! and benchmarks drive the same code the `verifier` binary runs.
//!
//! The kernel side (BTF offsets, loader, map handles, records) is the
//! `verifier_sensor` crate; SBOMs (readers, generator, hash engine, offline
//! check) are `verifier_sbom`. This crate joins them. Modules by capability:
//! - [`container`]: which container (and runtime) a process belongs to;
//! - [`containerd`]: containerd's API (container -> image -> digest);
//! - [`output`]: the versioned JSON records the agent prints;
//! - [`verify`]: exec -> file in the container root -> digest -> verdict;
//! - [`alert`]: drift findings, dedup, rate limit, formats and sinks;
//! - [`metrics`]: Prometheus `/metrics` and `/healthz`;
//! - [`agent`]: the event loop tying these together;
//! - [`cli`]: command-line interface.

pub mod agent;
pub mod alert;
pub mod cli;
pub mod container;
pub mod containerd;
pub mod metrics;
pub mod output;
pub mod verify;
