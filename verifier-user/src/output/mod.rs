//! The JSON records the agent prints, one per line on stdout.
//!
//! The schema is versioned by a `schema` field in every record
//! (`verifier.exec.v1`, `verifier.stats.v1`, `verifier.ready.v1`) and
//! documented in `docs/schema.md`. Additive changes keep the version; a
//! renamed or retyped field bumps it. Consumers should ignore fields they do
//! not know.
//!
//! Bytes from the kernel are never silently altered: file names that are
//! not UTF-8 are printed lossily in `filename` *and* exactly, hex-encoded,
//! in `filename_hex`; JSON escaping takes care of newlines and quotes.

pub(crate) mod enforce;
pub(crate) mod policy;
pub(crate) mod verification;
pub(crate) mod warning;

use serde::Serialize;

use verifier_common::counters::Counter;
use verifier_sensor::{
    events::{ExecEvent, kernel_dev_to_user},
    hooks::{HookOutcome, HookState},
};

use crate::attribution::{Attribution, ContainerRef};

pub(crate) const SCHEMA_EXEC: &str = "verifier.exec.v1";
pub(crate) const SCHEMA_STATS: &str = "verifier.stats.v1";
/// A file mapped executable in a verified container (same fields as an exec).
pub(crate) const SCHEMA_LIBRARY: &str = "verifier.library.v1";
pub(crate) const SCHEMA_READY: &str = "verifier.ready.v1";

/// RFC 3339 UTC timestamp with nanoseconds, from Unix nanoseconds (the
/// one formatter, shared with SBOM headers).
pub(crate) use verifier_sbom::time::rfc3339_ns as rfc3339;

/// Identity of the executed file.
#[derive(Debug, Serialize)]
pub(crate) struct ExeJson {
    /// `major:minor`.
    pub dev: String,
    /// `st_dev` as `stat(2)` reports it.
    pub st_dev: u64,
    pub ino: u64,
    pub size: i64,
    pub ctime_sec: i64,
    pub ctime_nsec: u32,
}

/// `verifier.exec.v1`
#[derive(Debug, Serialize)]
pub(crate) struct ExecJson<'a> {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub node: &'a str,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub ns_pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    pub filename: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename_hex: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub filename_truncated: bool,
    /// The arguments (lossy UTF-8; exact bytes in `argv_hex` when any is
    /// not UTF-8); absent when the kernel could not read them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv_hex: Option<Vec<String>>,
    /// The argument list was cut (the kernel carries 512 bytes).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub argv_truncated: bool,
    /// A `#!` script: `filename` is the script, `exe` the interpreter.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub script: bool,
    /// The file was opened for writing in a watched container since it
    /// was unpacked (the kernel's `WRITTEN` map): never judged `ok`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub written: bool,
    pub exe: Option<ExeJson>,
    pub cgroup_id: u64,
    pub mnt_ns: u32,
    pub pid_ns: u32,
    pub host: bool,
    pub container: Option<&'a ContainerRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution_error: Option<&'static str>,
    /// With drift verification on: the decision about the executed file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<verification::VerificationJson>,
    /// `"scan"`: not seen at its exec but found running by the agent's
    /// scan of a container (at start-up, or when it first learns of the
    /// container). Absent for records of the kernel's hooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<&'static str>,
    /// With `--policy`, for drift: the rule that applied and what it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<policy::PolicyJson>,
    /// With `--policy`: the exception that excused this drift (no alert).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<policy::ExceptionJson>,
}

impl<'a> ExecJson<'a> {
    pub(crate) fn new(ev: &ExecEvent, node: &'a str, attribution: &'a Attribution) -> Self {
        let filename = String::from_utf8_lossy(&ev.filename);
        let exact = matches!(filename, std::borrow::Cow::Borrowed(_));
        Self {
            schema: SCHEMA_EXEC,
            kind: "exec",
            time: rfc3339(ev.unix_ns),
            node,
            pid: ev.pid,
            tgid: ev.tgid,
            ppid: ev.ppid,
            ns_pid: ev.ns_pid,
            uid: ev.uid,
            gid: ev.gid,
            comm: String::from_utf8_lossy(&ev.comm).into_owned(),
            filename: filename.into_owned(),
            filename_hex: (!exact).then(|| hex::encode(&ev.filename)),
            filename_truncated: ev.filename_truncated,
            argv: ev
                .argv
                .as_ref()
                .map(|a| a.iter().map(|x| String::from_utf8_lossy(x).into_owned()).collect()),
            argv_hex: ev
                .argv
                .as_ref()
                .filter(|a| a.iter().any(|x| std::str::from_utf8(x).is_err()))
                .map(|a| a.iter().map(hex::encode).collect()),
            argv_truncated: ev.argv_truncated,
            script: ev.script,
            written: ev.written,
            exe: ev.exe.map(|id| ExeJson {
                dev: format!("{}:{}", id.dev_major(), id.dev_minor()),
                st_dev: kernel_dev_to_user(id.dev),
                ino: id.ino,
                size: id.size,
                ctime_sec: id.ctime_sec,
                ctime_nsec: id.ctime_nsec,
            }),
            cgroup_id: ev.cgroup_id,
            mnt_ns: ev.mnt_ns,
            pid_ns: ev.pid_ns,
            host: matches!(attribution, Attribution::Host),
            container: match attribution {
                Attribution::Container(c) => Some(c),
                _ => None,
            },
            attribution_error: match attribution {
                Attribution::Unknown(why) => Some(why),
                _ => None,
            },
            verification: None,
            origin: None,
            policy: None,
            exception: None,
        }
    }
}

/// Kernel counters summed over CPUs, and per CPU: every counter of
/// `Counter::ALL` under its name, so a new kernel counter reaches this
/// record (and `/metrics`, built from it) with no edit here.
#[derive(Debug, Default, Serialize, Clone, PartialEq, Eq)]
pub(crate) struct KernelStats {
    /// Counter name -> sum over CPUs (`seen`, `sent`, `dropped`, ...).
    #[serde(flatten)]
    pub totals: std::collections::BTreeMap<&'static str, u64>,
    /// Same counters per CPU (index = CPU).
    pub per_cpu: std::collections::BTreeMap<&'static str, Vec<u64>>,
}

impl KernelStats {
    /// From the counters map as read: per counter (index order of
    /// `Counter::ALL`), per CPU.
    pub(crate) fn from_per_cpu(per_cpu: &[Vec<u64>]) -> Self {
        let of = |c: Counter| per_cpu.get(c as usize).map_or(&[][..], Vec::as_slice);
        Self {
            totals: Counter::ALL.iter().map(|&c| (c.name(), of(c).iter().sum())).collect(),
            per_cpu: Counter::ALL.iter().map(|&c| (c.name(), of(c).to_vec())).collect(),
        }
    }

    /// Sum over CPUs of one counter.
    pub(crate) fn total(&self, c: Counter) -> u64 {
        self.totals.get(c.name()).copied().unwrap_or(0)
    }

    /// Records the kernel lost (every loss counter).
    pub(crate) fn lost(&self) -> u64 {
        Counter::ALL.iter().filter(|c| c.is_loss()).map(|&c| self.total(c)).sum()
    }
}

/// What userspace itself counted.
#[derive(Debug, Default, Serialize, Clone, PartialEq, Eq)]
pub(crate) struct UserStats {
    /// Exec records (and undecodable records) taken off the ring buffer.
    pub received: u64,
    /// Records that failed to decode (counted, not printed).
    pub decode_errors: u64,
    /// Exec records printed.
    pub printed: u64,
    /// Events that could not be attributed.
    pub unattributed: u64,
    /// Distinct cgroups in the attribution cache.
    pub cgroups_cached: u64,
    /// New cgroups the kernel reported (`cgroup_mkdir`).
    pub cgroups_created: u64,
    /// Of those, cgroups recognised as a container's, attributed before
    /// their first exec.
    pub containers_started: u64,
    /// Write-opens of verified files the kernel reported.
    pub write_opens: u64,
    /// Throttle episodes that ended (a `throttle` stop record each).
    pub throttle_episodes: u64,
    /// Containers being throttled now.
    pub throttle_active: u64,
    /// Executable-mapping records received (library verification).
    pub library_maps: u64,
    /// Block records received from the kernel (enforcement).
    pub blocks: u64,
    /// Running processes of containers judged by the agent's scan (at
    /// start-up, or when it first learns of a container).
    pub scanned_processes: u64,
    /// Executable mappings of those processes judged.
    pub scanned_mappings: u64,
    /// Processes the scan did not judge: over the per-container cap, or
    /// gone before they could be read.
    pub scan_skipped: u64,
    /// Records (lines) never written to stdout: its reader stalled past the
    /// agent's queue, or closed its end.
    pub stdout_lost: u64,
}

/// `verifier.stats.v1`: periodic and final. `A` is the alert stream's
/// counters (`alert::AlertStats`): a type parameter because the alert layer
/// sits above this one and reports through it.
#[derive(Debug, Serialize)]
pub(crate) struct StatsJson<'a, A> {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub node: &'a str,
    /// `true` on the record printed at shutdown.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub uptime_sec: f64,
    pub kernel: KernelStats,
    pub user: UserStats,
    /// `kernel.dropped` plus userspace decode errors: events that were lost.
    pub lost: u64,
    /// Peak resident set size of the agent, KiB.
    pub max_rss_kib: u64,
    /// Verification counters (with verification on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::stats::VerificationStats>,
    /// Alert stream counters (with verification on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<A>,
    /// Policy counters (with `--policy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<policy::PolicyStats>,
    /// Enforcement counters (with `--enforce` or `--enforce-dry-run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<enforce::EnforceStats>,
    /// Blocks reported, by `mechanism=..,verdict=..,action=..` (metric
    /// `verifier_blocks_total` with those labels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<std::collections::BTreeMap<String, u64>>,
}

/// `verifier.ready.v1`: printed once the programs are attached.
#[derive(Debug, Serialize)]
pub(crate) struct ReadyJson<'a> {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub node: &'a str,
    pub version: &'static str,
    pub containers_only: bool,
    pub ring_bytes: u32,
    pub host_mnt_ns: u32,
    /// Every kernel hook and what became of it on this kernel.
    pub hooks: Vec<HookJson>,
    /// Blocking mechanisms this kernel offers (probed at start).
    pub enforcement: enforce::ProbeJson,
}

/// One hook in the `ready` record.
#[derive(Debug, Serialize)]
pub(crate) struct HookJson {
    pub name: &'static str,
    /// `raw_tracepoint/<event>` or `tracepoint/<category>/<name>`.
    pub attach: String,
    pub required: bool,
    /// `attached` or `skipped`.
    pub state: &'static str,
    /// Why a skipped hook was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&HookOutcome> for HookJson {
    fn from(h: &HookOutcome) -> Self {
        let (state, reason) = match &h.state {
            HookState::Attached => ("attached", None),
            HookState::Skipped(why) => ("skipped", Some(why.clone())),
        };
        Self { name: h.name, attach: h.attach.clone(), required: h.required, state, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &[u8]) -> ExecEvent {
        ExecEvent {
            unix_ns: 0,
            pid: 1,
            tgid: 1,
            ppid: 0,
            ns_pid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 7,
            mnt_ns: 1,
            pid_ns: 2,
            comm: b"sh".to_vec(),
            filename: name.to_vec(),
            filename_truncated: false,
            script: false,
            exe_unlinked: false,
            written: false,
            library: false,
            mapped_fd: None,
            tag: 0,
            argv: None,
            argv_truncated: false,
            exe: None,
            root: None,
        }
    }

    #[test]
    fn hostile_names_are_escaped_and_kept_exactly() {
        let ev = event(b"/tmp/a\nb\"\xff");
        let line = serde_json::to_string(&ExecJson::new(&ev, "n", &Attribution::Host)).expect("json");
        assert!(!line.contains('\n'), "one record per line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["filename"], "/tmp/a\nb\"\u{fffd}");
        assert_eq!(
            hex::decode(v["filename_hex"].as_str().expect("hex present")).expect("hex"),
            b"/tmp/a\nb\"\xff"
        );
        assert_eq!(v["host"], true);
        assert!(v["exe"].is_null());
    }

    #[test]
    fn kernel_stats_carry_every_counter_and_sum_the_losses() {
        // Counter i on CPU j holds 10 * i + j.
        let per_cpu: Vec<Vec<u64>> =
            Counter::ALL.iter().map(|&c| (0..3).map(|cpu| 10 * c as u64 + cpu).collect()).collect();
        let stats = KernelStats::from_per_cpu(&per_cpu);
        let v = serde_json::to_value(&stats).expect("json");
        for c in Counter::ALL {
            assert_eq!(v[c.name()], 30 * c as u64 + 3, "{}", c.name());
            assert_eq!(v["per_cpu"][c.name()].as_array().map(Vec::len), Some(3), "{}", c.name());
        }
        let lost: u64 = Counter::ALL.iter().filter(|c| c.is_loss()).map(|&c| 30 * c as u64 + 3).sum();
        assert_eq!(stats.lost(), lost);
        assert!(stats.lost() >= stats.total(Counter::Dropped) + stats.total(Counter::MmapDropped));
    }

    #[test]
    fn hooks_say_whether_they_were_attached_and_why_not() {
        let skipped = HookOutcome {
            name: "write_creat",
            attach: "tracepoint/syscalls/sys_exit_creat".into(),
            required: false,
            state: HookState::Skipped("no such tracepoint".into()),
        };
        let v = serde_json::to_value(HookJson::from(&skipped)).expect("json");
        assert_eq!(
            (v["state"].as_str(), v["reason"].as_str()),
            (Some("skipped"), Some("no such tracepoint"))
        );
        let attached = HookOutcome { state: HookState::Attached, ..skipped };
        let v = serde_json::to_value(HookJson::from(&attached)).expect("json");
        assert_eq!(v["state"], "attached");
        assert!(v.get("reason").is_none());
    }

    #[test]
    fn utf8_names_have_no_hex_copy() {
        let ev = event("/usr/bin/été".as_bytes());
        let v = serde_json::to_value(ExecJson::new(&ev, "n", &Attribution::Unknown("x"))).expect("json");
        assert_eq!(v["filename"], "/usr/bin/été");
        assert!(v.get("filename_hex").is_none());
        assert_eq!(v["attribution_error"], "x");
        assert_eq!(v["schema"], SCHEMA_EXEC);
    }
}
