//! The enforcement records: a container's enforcement state
//! (`verifier.enforcement.v1`), a block (`verifier.block.v1`), the
//! `enforcement` part of the `ready` record and of the stats record.
//! Documented in `docs/enforcement.md`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attribution::ContainerRef;

pub(crate) const SCHEMA_ENFORCEMENT: &str = "verifier.enforcement.v1";
pub(crate) const SCHEMA_BLOCK: &str = "verifier.block.v1";

/// A container's enforcement state changed: the `enforcement` record.
#[derive(Debug, Serialize)]
pub(crate) struct EnforcementJson {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub cgroup_id: u64,
    pub container_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `enforce` or `dry-run`.
    pub mode: &'static str,
    /// `pending` (allowed set being built: nothing blocked yet), `active`,
    /// or `failed` (not enforced; `error` says why).
    pub state: &'static str,
    pub rule: String,
    pub mechanism: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<usize>,
    /// Candidate files kept out, up to 20: (path, verdict).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<(String, &'static str)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preverify_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashed_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counters for the stats record.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct EnforceStats {
    pub containers_active: u64,
    pub containers_pending: u64,
    pub containers_failed: u64,
    pub allowed_files: u64,
    pub blocks_unjudged: u64,
    pub allowed_after_block: u64,
}

/// The `enforcement` part of the `ready` record: which blocking
/// mechanisms this kernel offers, probed at start.
#[derive(Debug, Serialize)]
pub(crate) struct ProbeJson {
    /// `--enforce-mechanism`: `auto`, `bpf-lsm` or `tracepoint-kill`.
    pub requested: &'static str,
    /// The mechanism enforced containers get (`null`: none available).
    pub mechanism: Option<&'static str>,
    pub available: Vec<&'static str>,
    /// Mechanisms not available here, and why.
    pub unavailable: BTreeMap<&'static str, String>,
    /// In-kernel measurement at exec (IMA), on top of `bpf-lsm`.
    pub measure: MeasureJson,
}

/// Whether enforced containers' files are also measured in the kernel at
/// exec and executable mapping (`--enforce-measure` turns it on).
#[derive(Debug, Serialize)]
pub(crate) struct MeasureJson {
    pub active: bool,
    /// The digest compared: `sha256` when active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<&'static str>,
    /// Why not active: what is missing and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `verifier.block.v1`: an exec or library mapping blocked (or, in
/// dry-run, that would have been) in an enforced container.
#[derive(Debug, Serialize)]
pub(crate) struct BlockJson<'a> {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub node: &'a str,
    /// `blocked` or `would-block`.
    pub action: &'static str,
    /// `tracepoint-kill`.
    pub mechanism: &'static str,
    /// What selected enforcement for the container (e.g. `--enforce app*`).
    pub rule: &'a str,
    /// `exec` or `library`.
    pub event: &'static str,
    /// Why the kernel blocked: `not-verified`, `written`, `fileless`,
    /// `no-identity`.
    pub reasons: Vec<&'static str>,
    /// The file's verdict once the agent judged it (`null`: not judged
    /// within 2 s).
    pub verdict: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Path in the container, when the agent found it.
    pub path: Option<String>,
    pub sha256: Option<String>,
    /// The file's identity as the kernel saw it.
    pub dev: String,
    pub ino: u64,
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    /// `bpf_send_signal`'s return (0: the kill was queued).
    pub signal_rc: i32,
    /// The verdict is not one that blocks: the file may run from now on.
    pub allowed_now: bool,
    pub cgroup_id: u64,
    pub container: Option<&'a ContainerRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}
