//! Verification inside the agent: exec events of containers go to
//! the container's baseline (image -> SBOM), the engine decides, drift
//! becomes an alert, and files proven good enter the kernel fast path.
//!
//! Everything here runs on the agent's single event-loop thread except the
//! blocking parts: container resolution (runtime state, SBOM parsing) on
//! tokio's blocking pool, hashing on the engine's own threads. Their results
//! come back over channels that the event loop selects on
//! ([`Verification::next`]).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use verifier_common::event::FileIdentity;
use verifier_sensor::{events::ExecEvent, maps::FastPath};

use crate::{
    attribution::ContainerRef,
    verify::{
        containers::{Admit, ContainerInfo, Containers, Resolved},
        engine::{Decision, Engine, EngineConfig, Key},
        locate::Outcome,
        source::Source,
        stats::VerificationStats,
    },
};

#[path = "verification_args.rs"]
mod args;
#[path = "verification_written.rs"]
mod written;

pub(crate) use args::VerificationArgs;
pub(crate) use args::source;
pub(crate) use written::{Written, WrittenJson};

/// An exec with what was decided about it.
pub(crate) struct Verified {
    pub event: ExecEvent,
    pub info: Option<Arc<ContainerInfo>>,
    pub decision: Option<Arc<Decision>>,
    /// The container was not verified, and why (no SBOM, not resolved).
    pub skipped: Option<String>,
}

/// Something for the event loop to act on.
pub(crate) enum Wake {
    Hashed(Key, Outcome),
    Resolved(u64, Resolved, ContainerRef),
    HostParsed(super::host::Parsed),
}

type ResolvedMsg = (u64, Resolved, ContainerRef);

/// A container resolved against a baseline, for enforcement to consider.
pub(crate) struct Resolution {
    pub cgroup_id: u64,
    pub slot: u32,
    pub ctx: Arc<crate::verify::engine::Context>,
    pub info: Arc<ContainerInfo>,
    pub container: ContainerRef,
}

/// (dev, ino, slot) -> (path, SHA-256) of the files in the fast path.
type TrustedFiles = HashMap<(u32, u64, u32), (Vec<u8>, Option<[u8; 32]>)>;

/// The verification side of the agent.
pub(crate) struct Verification {
    source: Arc<Source>,
    containers: Containers,
    engine: Engine,
    done_rx: UnboundedReceiver<(Key, Outcome)>,
    resolved_tx: UnboundedSender<ResolvedMsg>,
    resolved_rx: UnboundedReceiver<ResolvedMsg>,
    fast_path: Option<FastPath>,
    slots: HashMap<u64, u32>,
    cgroup_slots: HashMap<u64, u32>,
    infos: HashMap<u64, Arc<ContainerInfo>>,
    wait: Duration,
    /// Files in the fast path, by (dev, ino, slot): what a write-open names.
    trusted: TrustedFiles,
    /// Containers resolved since the last [`Verification::take_resolutions`].
    resolutions: Vec<Resolution>,
    pub fast_path_inserted: u64,
    pub fast_path_errors: u64,
    /// Host processes judged against the host baseline, when asked.
    host: Option<super::host::HostJudge>,
}

impl Verification {
    pub(crate) fn new(
        args: &VerificationArgs,
        source: Arc<Source>,
        fast_path: FastPath,
    ) -> std::io::Result<Self> {
        let (done_tx, done_rx) = unbounded_channel();
        let (resolved_tx, resolved_rx) = unbounded_channel();
        let cfg = EngineConfig {
            workers: args.hash_workers,
            queue: args.hash_queue,
            max_bytes: args.max_hash_bytes,
            proc_root: "/proc".into(),
            hash_cache: 65_536,
            decisions: 65_536,
        };
        let wait = Duration::from_millis(args.resolve_wait_ms);
        Ok(Self {
            source,
            containers: Containers::new(wait, 4096),
            engine: Engine::new(&cfg, done_tx)?,
            done_rx,
            resolved_tx,
            resolved_rx,
            fast_path: (!args.no_fast_path).then_some(fast_path),
            slots: HashMap::new(),
            cgroup_slots: HashMap::new(),
            infos: HashMap::new(),
            wait,
            trusted: HashMap::new(),
            resolutions: Vec::new(),
            fast_path_inserted: 0,
            fast_path_errors: 0,
            host: None,
        })
    }

    /// A container's cgroup appeared: start resolving it now.
    pub(crate) fn container_created(&mut self, cgroup_id: u64, container: ContainerRef) {
        if self.containers.created(cgroup_id) {
            self.spawn_resolve(cgroup_id, container, None);
        }
    }

    /// An exec in a container. Returns what can be said now (possibly
    /// several: nothing is reordered within a container).
    pub(crate) fn exec(&mut self, event: ExecEvent, container: &ContainerRef) -> Vec<Verified> {
        let (cgroup_id, pid) = (event.cgroup_id, event.tgid);
        match self.containers.admit(event) {
            Admit::Now(event, r) => self.with_resolution(*event, &r),
            Admit::Wait { start } => {
                if start {
                    self.spawn_resolve(cgroup_id, container.clone(), Some(pid));
                }
                Vec::new()
            }
        }
    }

    /// Judges host processes against `judge` from now on.
    pub(crate) fn set_host(&mut self, judge: super::host::HostJudge) {
        self.host = Some(judge);
    }

    /// Whether host processes are judged.
    pub(crate) fn judges_host(&self) -> bool {
        self.host.is_some()
    }

    /// An exec (or mapping) of a host process, judged against the host
    /// baseline; its cgroup is watched from its first one on.
    pub(crate) fn host_exec(&mut self, event: ExecEvent, now_ns: i128) -> Vec<Verified> {
        match self.host.as_mut().and_then(|h| h.admit(event, now_ns)) {
            Some(event) => self.judge_host(event),
            None => Vec::new(),
        }
    }

    /// Judges an admitted host exec against the host baseline in use.
    fn judge_host(&mut self, event: ExecEvent) -> Vec<Verified> {
        let Some(h) = self.host.as_mut() else { return Vec::new() };
        let ctx = h.context().clone();
        if h.first_sight(event.cgroup_id) {
            let slot = slot_for(&mut self.slots, ctx.key);
            self.cgroup_slots.insert(event.cgroup_id, slot);
            if let Some(fp) = self.fast_path.as_mut()
                && fp.watch(event.cgroup_id, slot).is_err()
            {
                self.fast_path_errors += 1;
            }
        }
        match self.engine.submit(&ctx, event) {
            Some((e, d)) => vec![self.decided(e, d)],
            None => Vec::new(),
        }
    }

    /// A host baseline parse finished: the host cgroups move to the new
    /// baseline's fast-path slot and the execs held for it are judged.
    fn host_parsed(&mut self, parsed: super::host::Parsed) -> Vec<Verified> {
        let Some(h) = self.host.as_mut() else { return Vec::new() };
        let (changed, held) = h.install(parsed);
        if changed {
            self.rewatch_host();
        }
        held.into_iter().flat_map(|event| self.judge_host(event)).collect()
    }

    /// Reads the host baseline again after a package transaction; the
    /// host cgroups move to the new baseline's fast-path slot.
    /// (Parsed off the event loop: see `host.rs`.)
    pub(crate) fn host_refresh(&mut self) {
        if let Some(h) = self.host.as_mut() {
            h.refresh();
        }
    }

    /// The host cgroups under the current host baseline's fast-path slot.
    fn rewatch_host(&mut self) {
        let Some(h) = self.host.as_ref() else { return };
        let slot = slot_for(&mut self.slots, h.context().key);
        for cgroup in h.cgroups() {
            self.cgroup_slots.insert(cgroup, slot);
            if let Some(fp) = self.fast_path.as_mut()
                && fp.watch(cgroup, slot).is_err()
            {
                self.fast_path_errors += 1;
            }
        }
    }

    /// Waits for the next hashing or resolution result.
    pub(crate) async fn next(&mut self) -> Option<Wake> {
        tokio::select! {
            Some((key, outcome)) = self.done_rx.recv() => Some(Wake::Hashed(key, outcome)),
            Some((id, r, c)) = self.resolved_rx.recv() => Some(Wake::Resolved(id, r, c)),
            parsed = host_parsed(&mut self.host) => Some(Wake::HostParsed(parsed)),
            else => None,
        }
    }

    /// Acts on a result from [`Verification::next`].
    pub(crate) fn wake(&mut self, wake: Wake) -> Vec<Verified> {
        match wake {
            Wake::HostParsed(parsed) => self.host_parsed(parsed),
            Wake::Hashed(key, outcome) => {
                let decided = self.engine.complete(key, outcome);
                decided.into_iter().map(|(e, d)| self.decided(e, d)).collect()
            }
            Wake::Resolved(cgroup_id, r, container) => {
                if let Resolved::Verify(ctx, info) = &r {
                    let slot = slot_for(&mut self.slots, ctx.key);
                    self.cgroup_slots.insert(cgroup_id, slot);
                    if let Some(fp) = self.fast_path.as_mut()
                        && fp.watch(cgroup_id, slot).is_err()
                    {
                        self.fast_path_errors += 1;
                    }
                    self.resolutions.push(Resolution {
                        cgroup_id,
                        slot,
                        ctx: ctx.clone(),
                        info: info.clone(),
                        container,
                    });
                }
                let (r, waiting) = self.containers.resolved(cgroup_id, r);
                let mut out = Vec::new();
                for e in waiting {
                    out.extend(self.with_resolution(e, &r));
                }
                out
            }
        }
    }

    /// Execs whose container took too long to resolve.
    pub(crate) fn tick(&mut self) -> Vec<Verified> {
        let why = format!("the container's image was not resolved within {} ms", self.wait.as_millis());
        self.containers
            .expire(Instant::now())
            .into_iter()
            .map(|event| Verified { event, info: None, decision: Some(unresolved(&why)), skipped: None })
            .collect()
    }

    fn with_resolution(&mut self, event: ExecEvent, r: &Resolved) -> Vec<Verified> {
        match r {
            Resolved::Verify(ctx, info) => {
                self.infos.entry(event.cgroup_id).or_insert_with(|| info.clone());
                match self.engine.submit(ctx, event) {
                    Some((e, d)) => vec![self.decided(e, d)],
                    None => Vec::new(),
                }
            }
            Resolved::NoBaseline(info, why) => {
                vec![Verified { event, info: Some(info.clone()), decision: None, skipped: Some(why.clone()) }]
            }
            Resolved::Refused(info, why) => {
                self.infos.entry(event.cgroup_id).or_insert_with(|| info.clone());
                vec![Verified {
                    event,
                    info: Some(info.clone()),
                    decision: Some(unresolved(why)),
                    skipped: None,
                }]
            }
            Resolved::Failed(why) => vec![Verified {
                event,
                info: None,
                decision: Some(unresolved(&format!("the container could not be resolved: {why}"))),
                skipped: None,
            }],
        }
    }

    fn decided(&mut self, event: ExecEvent, d: Arc<Decision>) -> Verified {
        if d.trusted
            && !event.script
            && let (Some(fp), Some(identity)) = (self.fast_path.as_mut(), event.exe)
        {
            // The slot of the baseline this container is verified against.
            if let Some(&slot) = self.cgroup_slots.get(&event.cgroup_id) {
                match fp.verified(identity, slot) {
                    Ok(()) => {
                        self.fast_path_inserted += 1;
                        if self.trusted.len() >= 65_536 {
                            self.trusted.clear();
                        }
                        self.trusted.insert((identity.dev, identity.ino, slot), (d.path.clone(), d.sha256));
                    }
                    Err(_) => self.fast_path_errors += 1,
                }
            }
        }
        let info = self.infos.get(&event.cgroup_id).cloned();
        Verified { event, info, decision: Some(d), skipped: None }
    }

    fn spawn_resolve(&self, cgroup_id: u64, container: ContainerRef, pid: Option<u32>) {
        let source = self.source.clone();
        let tx = self.resolved_tx.clone();
        let deadline = Instant::now() + self.wait;
        tokio::task::spawn_blocking(move || {
            let r = resolve(&source, &container, pid, deadline);
            let _ = tx.send((cgroup_id, r, container));
        });
    }
}

/// Waits for a host baseline parse, if host processes are judged.
async fn host_parsed(host: &mut Option<super::host::HostJudge>) -> super::host::Parsed {
    match host {
        Some(h) => h.parsed().await,
        None => std::future::pending().await,
    }
}

fn slot_for(slots: &mut HashMap<u64, u32>, key: u64) -> u32 {
    let next = slots.len() as u32 + 1;
    *slots.entry(key).or_insert(next)
}

fn unresolved(why: &str) -> Arc<Decision> {
    use crate::verify::verdict::{Judgement, Verdict};
    Arc::new(Decision {
        judgement: Judgement::new(Verdict::Unverifiable, why),
        path: Vec::new(),
        via: None,
        sha256: None,
        script: None,
        trusted: false,
        root: None,
    })
}

/// Resolves a container (blocking), retrying until `deadline` while the
/// runtime has not written its state yet.
fn resolve(source: &Source, container: &ContainerRef, pid: Option<u32>, deadline: Instant) -> Resolved {
    loop {
        match source.resolve(container, pid) {
            Ok(r) => return r,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("container {} not resolved yet: {}", container.id, e.0);
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => return Resolved::Failed(e.0),
        }
    }
}

impl Verification {
    /// What is known of the container in `cgroup_id`, once one of its
    /// execs was resolved.
    pub(crate) fn info(&self, cgroup_id: u64) -> Option<Arc<ContainerInfo>> {
        self.infos.get(&cgroup_id).cloned()
    }

    /// Files pre-verified `ok` for baseline `slot` (an enforced
    /// container's, hashed at its start): into the kernel fast path, as
    /// if each had been executed and judged.
    pub(crate) fn trust_preverified(
        &mut self,
        slot: u32,
        files: &[(FileIdentity, String, Option<[u8; 32]>)],
    ) {
        let Some(fp) = self.fast_path.as_mut() else { return };
        for (identity, path, sha256) in files {
            match fp.verified(*identity, slot) {
                Ok(()) => {
                    self.fast_path_inserted += 1;
                    if self.trusted.len() >= 65_536 {
                        self.trusted.clear();
                    }
                    self.trusted
                        .insert((identity.dev, identity.ino, slot), (path.clone().into_bytes(), *sha256));
                }
                Err(_) => self.fast_path_errors += 1,
            }
        }
    }

    /// Containers resolved against a baseline since the last call.
    pub(crate) fn take_resolutions(&mut self) -> Vec<Resolution> {
        std::mem::take(&mut self.resolutions)
    }

    /// Warnings about the baselines found since the last call.
    pub(crate) fn take_warnings(&self) -> Vec<crate::baseline::Warning> {
        self.source.take_warnings()
    }

    pub(crate) fn pending(&self) -> usize {
        self.engine.in_flight() + self.containers.waiting() + self.host.as_ref().map_or(0, |h| h.held())
    }

    /// Everything still waiting, released as unverifiable with `why`.
    pub(crate) fn abandon(&mut self, why: &str) -> Vec<Verified> {
        let mut events = self.containers.expire_all();
        events.extend(self.engine.abandon());
        events.extend(self.host.as_mut().map(super::host::HostJudge::take_held).unwrap_or_default());
        events
            .into_iter()
            .map(|event| Verified { event, info: None, decision: Some(unresolved(why)), skipped: None })
            .collect()
    }

    /// Counters for the stats record.
    pub(crate) fn stats(&self) -> VerificationStats {
        VerificationStats {
            engine: self.engine.stats.clone(),
            containers: self.containers.stats.clone(),
            in_flight: self.engine.in_flight() as u64,
            fast_path_inserted: self.fast_path_inserted,
            fast_path_errors: self.fast_path_errors,
        }
    }
}
