#![warn(unreachable_pub)]
//! The verifier agent and CLI as a library, so that the integration tests
//! and benchmarks drive the same code the `verifier` binary runs.
//!
//! The kernel side (BTF offsets, loader, map handles, records) is the
//! `verifier_sensor` crate; SBOMs (readers, generator, hash engine, offline
//! check) are `verifier_sbom`. This crate joins them. Modules by capability:
//! - [`attribution`]: which container (and runtime, image, pod) a process
//!   belongs to; containerd's API;
//! - [`baseline`]: which SBOMs describe an image (rules, rules file, store),
//!   parsed once per set of files;
//! - [`output`]: the versioned JSON records the agent prints;
//! - [`verify`]: exec -> file in the container root -> digest -> verdict;
//! - [`alert`]: drift findings, dedup, rate limit, formats and sinks;
//! - [`metrics`]: Prometheus `/metrics` and `/healthz`;
//! - [`agent`]: the event loop tying these together;
//! - `buildrec`: `verifier exec`, a build step under watch and its record;
//! - [`cli`]: command-line interface.

pub(crate) mod agent;
pub(crate) mod alert;
pub mod attribution;
pub(crate) mod baseline;
pub(crate) mod buildrec;
pub mod cli;
pub(crate) mod metrics;
pub(crate) mod output;
pub mod verify;
