//! Enforcement: which containers are blocked in, their allowed sets, and
//! what the agent says about each block.
//!
//! The kernel decides (`verifier-ebpf/src/enforce.rs`, `lsm.rs`): an exec
//! or executable mapping in an enforced container of a file that is not in
//! its allowed set, was written in a container, or has no name is denied
//! (`bpf-lsm`) or killed (`tracepoint-kill`) before it runs, and a block
//! record comes here. The mechanism is chosen at start (`mechanism.rs`). This module:
//!
//! - chooses the containers ([`Enforcement::enforcement_for`], the one
//!   place the choice is made: today `--enforce` / `--enforce-dry-run`
//!   patterns, later a policy file);
//! - when such a container is resolved, pre-verifies its listed code
//!   files off the event loop (`verify::preverify`), fills the kernel's
//!   `ALLOWED` set, and only then sets its mode. Until then the container
//!   is `pending`: its execs are verified and reported as usual but not
//!   blocked (fail-open, said in an `enforcement` record), because a
//!   half-filled set would kill the workload's own files;
//! - holds each block record until the agent has judged the file that was
//!   blocked (the exec or library record the reporting programs sent for
//!   the same process and file), so the block is reported with the file's
//!   verdict; after [`JUDGE_WAIT`] it is reported without one. A blocked
//!   file judged with a verdict that is not blocked (`relocated-binary`
//!   by default) is allowed from then on: the block was the kernel's
//!   caution, its next run passes.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use verifier_common::enforce::{
    HOOK_MMAP, HOOK_WRITE, MODE_DRY_RUN, MODE_ENFORCE, WRITES_DENY, WRITES_KILL, mechanism_name, reason_names,
};
use verifier_sensor::{events::BlockEvent, maps::EnforceMaps};

use crate::{
    attribution::Attribution,
    baseline::{ImageKeys, rules::glob_match},
    verify::{
        containers::ContainerInfo,
        engine::Decision,
        preverify::{PreVerified, preverify},
        verdict::Verdict,
    },
};

pub(crate) use crate::output::enforce::{EnforceStats, EnforcementJson, ProbeJson};

use super::{policy::Policies, verification::Resolution};

/// Options of `verifier agent` for enforcement.
#[derive(Debug, Clone, clap::Args)]
pub struct EnforceArgs {
    /// Block, in containers whose image name, image digest, container id
    /// or name matches PATTERN (`*` wildcards, as `--sbom`), every exec or
    /// shared library that is not one of the image's own verified files:
    /// denied (EPERM) or killed in the kernel before its first instruction
    /// (see `--enforce-mechanism`), reported as a
    /// `block` record and an alert with `action: blocked`. Repeatable.
    /// Needs an SBOM for the image (`--sbom`, `--sbom-rules` or
    /// `--sbom-store`).
    #[arg(long = "enforce", value_name = "PATTERN")]
    pub enforce: Vec<String>,

    /// As `--enforce`, but nothing is denied or killed: what would have been blocked
    /// is reported with `action: would-block`. `--enforce` wins when both
    /// match.
    #[arg(long = "enforce-dry-run", value_name = "PATTERN")]
    pub dry_run: Vec<String>,

    /// Also deny writes, in enforced containers matching PATTERN (as
    /// `--enforce`): opening for writing one of the image's own verified
    /// files (its allowed set) fails with EPERM under `bpf-lsm`, or kills
    /// the opener before the open returns under `tracepoint-kill` (an
    /// `O_TRUNC` open has already emptied the file by then: see
    /// docs/enforcement.md). Reported as a `block` record with `event:
    /// write`. Repeatable. In dry-run containers, reported as
    /// `would-block`.
    #[arg(long = "enforce-writes", value_name = "PATTERN")]
    pub writes: Vec<String>,

    /// Verdicts that keep a file out of an enforced container's allowed
    /// set (comma-separated). A listed file whose verdict is not here (for
    /// example `unverifiable`, listed without a usable digest) may run.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "VERDICTS",
        default_value = "unknown-binary,modified-binary,fileless,library-drift",
        value_parser = parse_verdict
    )]
    pub block_verdicts: Vec<Verdict>,

    /// How the kernel blocks: `bpf-lsm` denies the exec or mapping with
    /// EPERM before anything of the file runs (kernels booted with
    /// `lsm=...,bpf`); `tracepoint-kill` kills the task before the new
    /// image's first instruction (every kernel); `auto` takes `bpf-lsm`
    /// where the kernel runs it. The `ready` record says which was chosen
    /// and why the other was not.
    #[arg(long = "enforce-mechanism", value_enum, default_value = "auto", value_name = "MECHANISM")]
    pub mechanism: MechanismChoice,

    #[command(flatten)]
    pub measure: super::measure::MeasureArgs,
}

/// `--enforce-mechanism`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MechanismChoice {
    /// `bpf-lsm` where the kernel runs BPF LSM programs, else
    /// `tracepoint-kill`.
    #[default]
    Auto,
    /// Deny with `EPERM` from BPF LSM programs; the agent does not start
    /// where the kernel refuses them.
    BpfLsm,
    /// Kill from the tracepoints, even where BPF LSM is available.
    TracepointKill,
}

impl MechanismChoice {
    pub(super) fn name(self) -> &'static str {
        match self {
            MechanismChoice::Auto => "auto",
            MechanismChoice::BpfLsm => "bpf-lsm",
            MechanismChoice::TracepointKill => "tracepoint-kill",
        }
    }
}

fn parse_verdict(s: &str) -> Result<Verdict, String> {
    // A file's verdicts: `ok` never blocks, `exec-flood` names no file.
    let blockable = || Verdict::ALL.into_iter().filter(|v| !matches!(v, Verdict::Ok | Verdict::ExecFlood));
    blockable().find(|v| v.name() == s).ok_or_else(|| {
        format!(
            "unknown verdict {s:?}; one of: {}",
            blockable().map(Verdict::name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Enforcement cannot start as asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnforceError {
    #[error(
        "--enforce and --enforce-dry-run need the image's SBOM: add --sbom PATTERN=FILE, --sbom-rules or --sbom-store"
    )]
    NoBaseline,
    #[error("--enforce needs the kernel fast path (WATCHED map): drop --no-fast-path")]
    NoFastPath,
    #[error(
        "--enforce-mechanism bpf-lsm: {0}; use --enforce-mechanism auto (or tracepoint-kill) to kill from the tracepoints instead"
    )]
    LsmRefused(String),
}

/// How a container is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    DryRun,
    Enforce,
}

impl Mode {
    fn kernel(self) -> u32 {
        match self {
            Mode::DryRun => MODE_DRY_RUN,
            Mode::Enforce => MODE_ENFORCE,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Enforce => "enforce",
        }
    }
}

/// How long a block waits for the blocked file's verdict.
pub(crate) const JUDGE_WAIT: Duration = Duration::from_secs(2);

/// A block the kernel reported, with what is known of it.
pub(crate) struct Block {
    pub event: BlockEvent,
    pub attribution: Attribution,
    pub rule: String,
    pub decision: Option<Arc<Decision>>,
    pub info: Option<Arc<ContainerInfo>>,
    /// The file was judged with a verdict that is not blocked, and is now
    /// allowed.
    pub allowed_now: bool,
}

impl Block {
    /// `blocked`, or `would-block` in dry-run.
    pub(crate) fn action(&self) -> &'static str {
        if self.event.record.mode == MODE_ENFORCE { "blocked" } else { "would-block" }
    }

    pub(crate) fn mechanism(&self) -> &'static str {
        mechanism_name(self.event.record.mechanism)
    }

    pub(crate) fn is_library(&self) -> bool {
        self.event.record.hook == HOOK_MMAP
    }

    /// An open for writing of an image file, not an exec or mapping.
    pub(crate) fn is_write(&self) -> bool {
        self.event.record.hook == HOOK_WRITE
    }

    /// `exec`, `library` or `write`.
    pub(crate) fn event_name(&self) -> &'static str {
        match self.event.record.hook {
            HOOK_MMAP => "library",
            HOOK_WRITE => "write",
            _ => "exec",
        }
    }

    /// The verdict reported: the file's, once judged; else what the
    /// kernel's reasons say for certain (fileless, written), else none.
    pub(crate) fn verdict(&self) -> Option<Verdict> {
        if self.is_write() {
            return Some(Verdict::ImageFileWritten);
        }
        let judged = self.decision.as_ref().map(|d| d.judgement.verdict);
        let reasons = self.event.record.reasons;
        let file = match judged {
            Some(v) => v,
            None if reasons & verifier_common::enforce::REASON_FILELESS != 0 => Verdict::Fileless,
            None if reasons & verifier_common::enforce::REASON_WRITTEN != 0 => Verdict::ModifiedBinary,
            None if reasons & verifier_common::enforce::REASON_DIGEST != 0 => Verdict::ModifiedBinary,
            None => return None,
        };
        Some(if self.is_library() && file != Verdict::Ok { Verdict::LibraryDrift } else { file })
    }

    /// The kernel's reasons, by name.
    pub(crate) fn reasons(&self) -> Vec<&'static str> {
        reason_names(self.event.record.reasons).collect()
    }
}

/// One enforced container.
struct Enforced {
    rule: String,
    slot: u32,
    /// Verdicts that keep a file out of its allowed set: the policy rule's,
    /// or `--block-verdicts`.
    block_verdicts: Vec<Verdict>,
}

/// How one container is enforced: its mode, the rule that chose it and the
/// verdicts that rule blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    pub mode: Mode,
    pub rule: String,
    pub block_verdicts: Vec<Verdict>,
    /// Writes to the image's verified files are denied too.
    pub writes: bool,
}

/// The enforcement side of the agent.
pub(crate) struct Enforcement {
    args: EnforceArgs,
    maps: EnforceMaps,
    /// The mechanism blocking here (`bpf-lsm`, `tracepoint-kill`), or why
    /// there is none.
    available: Result<&'static str, String>,
    max_bytes: u64,
    containers: HashMap<u64, Enforced>,
    pending: HashMap<u64, (Choice, u32, Arc<ContainerInfo>, String)>,
    done_tx: UnboundedSender<(u64, PreVerified)>,
    done_rx: UnboundedReceiver<(u64, PreVerified)>,
    /// Blocks waiting for their file's verdict, by (pid, inode, device).
    waiting: HashMap<(u32, u64, u32), (Block, Instant)>,
    /// `mechanism=..,verdict=..,action=..` -> blocks.
    pub blocks: BTreeMap<String, u64>,
    pub stats: EnforceStats,
}

impl Enforcement {
    /// `None` when no container is to be enforced.
    pub(crate) fn new(
        args: &EnforceArgs,
        maps: EnforceMaps,
        mechanism: Result<&'static str, String>,
        verification: bool,
        fast_path: bool,
        max_bytes: u64,
        policy_enforces: bool,
    ) -> Result<Option<Self>, EnforceError> {
        if args.enforce.is_empty() && args.dry_run.is_empty() && !policy_enforces {
            return Ok(None);
        }
        if !verification {
            return Err(EnforceError::NoBaseline);
        }
        if !fast_path {
            return Err(EnforceError::NoFastPath);
        }
        let (done_tx, done_rx) = unbounded_channel();
        Ok(Some(Self {
            args: args.clone(),
            maps,
            available: mechanism,
            max_bytes,
            containers: HashMap::new(),
            pending: HashMap::new(),
            done_tx,
            done_rx,
            waiting: HashMap::new(),
            blocks: BTreeMap::new(),
            stats: EnforceStats::default(),
        }))
    }

    /// How a container is enforced, and the rule that says so; `None`: not
    /// enforced. The one place the choice is made: the `--enforce` and
    /// `--enforce-dry-run` flags first (an operator's explicit override),
    /// then the policy file's rule for the container.
    pub(crate) fn enforcement_for(
        &self,
        keys: &ImageKeys<'_>,
        info: &ContainerInfo,
        policy: Option<&Policies>,
    ) -> Option<Choice> {
        let writes = self.args.writes.iter().any(|p| keys.all().any(|k| glob_match(p, k)));
        if let Some((mode, rule)) = enforcement_for(&self.args, keys) {
            return Some(Choice { mode, rule, block_verdicts: self.args.block_verdicts.clone(), writes });
        }
        let e = policy?.enforcement_for(Some(info))?;
        Some(Choice {
            mode: if e.dry_run { Mode::DryRun } else { Mode::Enforce },
            rule: format!("policy rule {}", e.rule),
            block_verdicts: e.block_verdicts.iter().filter_map(|v| parse_verdict(v).ok()).collect(),
            writes: writes || e.deny_writes,
        })
    }

    /// A container was resolved: if it is to be enforced, start building
    /// its allowed set (on a blocking thread) and say it is pending.
    pub(crate) fn resolved(&mut self, r: Resolution, policy: Option<&Policies>) -> Option<EnforcementJson> {
        if self.containers.contains_key(&r.cgroup_id) || self.pending.contains_key(&r.cgroup_id) {
            return None;
        }
        let keys = ImageKeys {
            image_name: r.info.image_name.as_deref(),
            image_digest: r.info.image_digest.as_deref(),
            container_id: &r.container.id,
            container_name: r.info.name.as_deref(),
        };
        let choice = self.enforcement_for(&keys, &r.info, policy)?;
        let mut record =
            self.record(r.cgroup_id, &r.container.id, &r.info, choice.mode, &choice.rule, "pending");
        if let Err(why) = &self.available {
            record.state = "failed";
            record.error = Some(why.clone());
            self.stats.containers_failed += 1;
            return Some(record);
        }
        let blocked = choice.block_verdicts.clone();
        self.pending.insert(r.cgroup_id, (choice, r.slot, r.info.clone(), r.container.id.clone()));
        self.stats.containers_pending += 1;
        let (tx, max_bytes, ctx, cgroup_id) = (self.done_tx.clone(), self.max_bytes, r.ctx, r.cgroup_id);
        tokio::task::spawn_blocking(move || {
            let result = preverify(&ctx, &|v| blocked.contains(&v), max_bytes);
            let _ = tx.send((cgroup_id, result));
        });
        Some(record)
    }

    /// The baseline slot of a container being pre-verified.
    pub(crate) fn pending_slot(&self, cgroup_id: u64) -> Option<u32> {
        self.pending.get(&cgroup_id).map(|p| p.1)
    }

    /// Waits for the next finished pre-verification.
    pub(crate) async fn next(&mut self) -> Option<(u64, PreVerified)> {
        self.done_rx.recv().await
    }

    /// A container's allowed set is ready: fill the kernel's, then set its
    /// mode. Returns the `enforcement` record.
    pub(crate) fn preverified(&mut self, cgroup_id: u64, p: &PreVerified) -> Option<EnforcementJson> {
        let (Choice { mode, rule, block_verdicts, writes }, slot, info, id) =
            self.pending.remove(&cgroup_id)?;
        // The write flag for the mechanism in use: the LSM program or the
        // write-open tracepoint acts, never both.
        let writes = match (writes, &self.available) {
            (true, Ok("bpf-lsm")) => WRITES_DENY,
            (true, Ok(_)) => WRITES_KILL,
            _ => 0,
        };
        self.stats.containers_pending = self.stats.containers_pending.saturating_sub(1);
        let mut record = self.record(cgroup_id, &id, &info, mode, &rule, "active");
        let filled = p.allowed.iter().try_for_each(|id| {
            self.maps.forget_stale_write(id.ino, id.dev, cgroup_id);
            self.maps.allow(*id, slot)
        });
        super::measure::fill(&mut self.maps, slot, &p.digests);
        let set = filled.and_then(|()| self.maps.set_mode(cgroup_id, mode.kernel() | writes));
        record.listed = Some(p.listed);
        record.allowed = Some(p.allowed.len());
        record.refused_total = Some(p.refused.len());
        record.refused = p.refused.iter().take(20).map(|(path, v, _)| (path.clone(), v.name())).collect();
        record.preverify_ms = Some(p.elapsed.as_secs_f64() * 1000.0);
        record.hashed_bytes = Some(p.bytes);
        match set {
            Ok(()) => {
                self.stats.containers_active += 1;
                self.stats.allowed_files += p.allowed.len() as u64;
                self.containers.insert(cgroup_id, Enforced { rule, slot, block_verdicts });
            }
            Err(e) => {
                self.maps.clear(cgroup_id);
                self.stats.containers_failed += 1;
                record.state = "failed";
                record.error =
                    Some(format!("{e}: the container is not enforced (its execs are still reported)"));
            }
        }
        Some(record)
    }

    /// A block record from the kernel: held until its file is judged; a
    /// denied write (nothing to judge: the file is one of the image's own
    /// verified files) is returned to report at once.
    pub(crate) fn blocked(
        &mut self,
        event: BlockEvent,
        attribution: Attribution,
        info: Option<Arc<ContainerInfo>>,
    ) -> Option<Block> {
        let r = &event.record;
        let rule = self.containers.get(&r.cgroup_id).map_or_else(|| "unknown".to_owned(), |c| c.rule.clone());
        let key = (r.tgid, r.identity.ino, r.identity.dev);
        let block = Block { event, attribution, rule, decision: None, info, allowed_now: false };
        if block.is_write() {
            return Some(block);
        }
        self.waiting.insert(key, (block, Instant::now()));
        None
    }

    /// The agent judged an exec or mapping: the block it explains, if any,
    /// ready to report. A verdict that is not blocked, or a finding a
    /// policy exception covers (`excepted`), allows the file: it was killed
    /// once, before it could be judged, and runs from then on.
    pub(crate) fn judged(
        &mut self,
        tgid: u32,
        identity: Option<verifier_common::event::FileIdentity>,
        decision: Option<&Arc<Decision>>,
        excepted: bool,
    ) -> Option<Block> {
        let id = identity?;
        let (mut block, _) = self.waiting.remove(&(tgid, id.ino, id.dev))?;
        block.decision = decision.cloned();
        if let Some(v) = block.verdict()
            && block.event.record.reasons & verifier_common::enforce::REASON_FILELESS == 0
            && let Some(c) = self.containers.get(&block.event.record.cgroup_id)
            && (excepted || !c.block_verdicts.contains(&v))
            && self.maps.allow(id, c.slot).is_ok()
        {
            super::measure::fill(
                &mut self.maps,
                c.slot,
                block.decision.as_ref().and_then(|d| d.sha256).as_slice(),
            );
            block.allowed_now = true;
            self.stats.allowed_after_block += 1;
        }
        Some(block)
    }

    /// Blocks whose file was not judged within [`JUDGE_WAIT`] (or all, at
    /// shutdown), to report without a verdict.
    pub(crate) fn expired(&mut self, all: bool) -> Vec<Block> {
        let now = Instant::now();
        let keys: Vec<_> = self
            .waiting
            .iter()
            .filter(|(_, (_, since))| all || now.duration_since(*since) >= JUDGE_WAIT)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.waiting.remove(&k))
            .map(|(b, _)| {
                self.stats.blocks_unjudged += 1;
                b
            })
            .collect()
    }

    /// Counts a reported block for `verifier_blocks_total`.
    pub(crate) fn count(&mut self, b: &Block) {
        let verdict = b.verdict().map_or("unjudged", Verdict::name);
        let key = format!("mechanism={},verdict={verdict},action={}", b.mechanism(), b.action());
        *self.blocks.entry(key).or_default() += 1;
    }

    fn record(
        &self,
        cgroup_id: u64,
        id: &str,
        info: &ContainerInfo,
        mode: Mode,
        rule: &str,
        state: &'static str,
    ) -> EnforcementJson {
        EnforcementJson {
            schema: crate::output::enforce::SCHEMA_ENFORCEMENT,
            kind: "enforcement",
            cgroup_id,
            container_id: id.to_owned(),
            image: info.image_name.clone().or_else(|| info.image_digest.clone()),
            mode: mode.name(),
            state,
            rule: rule.to_owned(),
            mechanism: self.available.as_ref().map_or("none", |m| m),
            listed: None,
            allowed: None,
            refused: Vec::new(),
            refused_total: None,
            preverify_ms: None,
            hashed_bytes: None,
            error: None,
        }
    }
}

/// How the options enforce a container with these keys: `--enforce`
/// patterns first, then `--enforce-dry-run`; the rule names the flag.
fn enforcement_for(args: &EnforceArgs, keys: &ImageKeys<'_>) -> Option<(Mode, String)> {
    let hit = |patterns: &[String]| patterns.iter().find(|p| keys.all().any(|k| glob_match(p, k))).cloned();
    hit(&args.enforce)
        .map(|p| (Mode::Enforce, format!("--enforce {p}")))
        .or_else(|| hit(&args.dry_run).map(|p| (Mode::DryRun, format!("--enforce-dry-run {p}"))))
}

#[cfg(test)]
#[path = "enforce_tests.rs"]
mod tests;
