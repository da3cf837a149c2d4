//! The host's own processes judged like a container's (`--host-baseline`).
//!
//! A standalone agent on a build host, or a node agent that should also
//! watch the node itself, judges every exec outside a container against
//! the host baseline (`baseline::host`: the dpkg database and/or a host
//! SBOM) with the same engine, verdicts, fast path and alerts a
//! container's exec gets against its image's SBOM.
//!
//! Executable mappings are sent by the kernel only for watched cgroups, so
//! each host cgroup is put in the kernel's `WATCHED` map the first time
//! one of its execs is seen (under the host baseline's fast-path slot):
//! from then on its libraries are judged too, and files proven `ok` are
//! answered in the kernel. A process that was already running in a cgroup
//! before its first exec there has its earlier mappings unjudged.
//!
//! A package transaction (dpkg rewrites its status file) makes the
//! baseline be parsed again under a new key: nothing decided against the
//! old database is reused, and the host cgroups are watched again under
//! the new slot. The files it wrote are judged by their bytes
//! ([`HostJudge::admit`]).
//!
//! The parse (the whole dpkg database: 92-191 ms for 743 packages and
//! 93,000 files on a busy 2-core VM, release build) runs on the blocking pool, never on the
//! agent's event loop, which goes on judging execs against the old
//! baseline meanwhile. The database is checked (one `stat`) once a second
//! and for every exec newer than the last check: a binary a transaction
//! just installed may run before the once-a-second check. While a parse is
//! under way, an exec whose file may be the transaction's (changed after
//! the old database was, a script, or without an identity) is held, not
//! judged against a database older than the transaction that wrote it;
//! held execs are judged against the new baseline as soon as it is ready
//! (or against the old one if the new one could not be read). Other host
//! execs go on: a held exec's record may come after later ones.

use std::{collections::HashSet, sync::Arc, time::Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use verifier_sbom::{digest, fsroot::RootDir};
use verifier_sensor::events::ExecEvent;

use crate::{
    baseline::host::{HostBaseline, HostBaselineError, HostSource, Reparsed},
    verify::engine::Context,
};

/// The host baseline and the host cgroups watched under it.
pub(crate) struct HostJudge {
    baseline: HostBaseline,
    ctx: Arc<Context>,
    cgroups: HashSet<u64>,
    /// When the database was last checked for a transaction (Unix ns).
    checked_ns: i128,
    /// A parse is under way on the blocking pool.
    parsing: bool,
    /// Execs waiting for that parse.
    held: Vec<ExecEvent>,
    parsed_tx: UnboundedSender<Parsed>,
    parsed_rx: UnboundedReceiver<Parsed>,
}

/// A parse done off the event loop, ready for [`HostJudge::install`].
pub(crate) struct Parsed(Result<(Reparsed, Arc<Context>), String>);

/// Why host judging could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostJudgeError {
    #[error("--host-baseline: {0}")]
    Baseline(#[from] HostBaselineError),
    #[error("--host-baseline: the host's root directory could not be opened: {0} (run the agent as root)")]
    Root(std::io::Error),
}

impl HostJudge {
    /// Reads the baseline (blocking: parse it off the event loop).
    pub(crate) fn load(sources: &[HostSource]) -> Result<Self, HostJudgeError> {
        let baseline = HostBaseline::load(sources)?;
        let ctx = context(baseline.key, &baseline.manifest)?;
        let (parsed_tx, parsed_rx) = unbounded_channel();
        Ok(Self {
            baseline,
            ctx,
            cgroups: HashSet::new(),
            checked_ns: 0,
            parsing: false,
            held: Vec::new(),
            parsed_tx,
            parsed_rx,
        })
    }

    /// What host execs are judged against now.
    pub(crate) fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Whether `cgroup_id` is seen for the first time (it is then to be
    /// watched).
    pub(crate) fn first_sight(&mut self, cgroup_id: u64) -> bool {
        self.cgroups.len() < 4096 && self.cgroups.insert(cgroup_id)
    }

    /// The host cgroups seen so far.
    pub(crate) fn cgroups(&self) -> impl Iterator<Item = u64> + '_ {
        self.cgroups.iter().copied()
    }

    /// Prepares a host exec for judging against [`HostJudge::context`];
    /// `None` when it is held for the parse under way (it comes back from
    /// [`HostJudge::install`]). The database is checked for every exec
    /// newer than the last check (one `stat`). Files a transaction wrote
    /// are flagged `written` by the kernel (host cgroups are watched); one
    /// written no later than the database was is judged by its bytes
    /// (`HostBaseline::written_by_transaction`).
    pub(crate) fn admit(&mut self, mut event: ExecEvent, now_ns: i128) -> Option<ExecEvent> {
        if event.unix_ns > self.checked_ns {
            self.checked_ns = now_ns;
            self.refresh();
        }
        if self.parsing && self.may_be_new(&event) {
            self.held.push(event);
            return None;
        }
        self.unflag_transaction_write(&mut event);
        Some(event)
    }

    /// Whether `event`'s file may have been written after the database in
    /// use: changed since then, or not known by identity (a script's own
    /// file, no identity).
    fn may_be_new(&self, event: &ExecEvent) -> bool {
        event.script || event.exe.is_none_or(|x| !self.baseline.written_by_transaction(&x))
    }

    fn unflag_transaction_write(&self, event: &mut ExecEvent) {
        if event.written && event.exe.is_some_and(|x| self.baseline.written_by_transaction(&x)) {
            event.written = false;
        }
    }

    /// Starts parsing the baseline again on the blocking pool when the
    /// database changed and no parse is under way; the result comes from
    /// [`HostJudge::parsed`].
    pub(crate) fn refresh(&mut self) {
        if self.parsing {
            return;
        }
        let Some(job) = self.baseline.stale() else { return };
        self.parsing = true;
        let tx = self.parsed_tx.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let parsed = job
                .run()
                .map_err(|e| format!("host baseline changed but could not be read again: {e}"))
                .and_then(|r| match context(r.key, &r.manifest) {
                    Ok(ctx) => Ok((r, ctx)),
                    Err(e) => Err(e.to_string()),
                });
            tracing::debug!(ms = started.elapsed().as_millis(), "host baseline parsed off the event loop");
            let _ = tx.send(Parsed(parsed));
        });
    }

    /// The next parse started by [`HostJudge::refresh`] (pending while none
    /// is under way).
    pub(crate) async fn parsed(&mut self) -> Parsed {
        match self.parsed_rx.recv().await {
            Some(p) => p,
            // The judge holds a sender: never closed while it lives.
            None => std::future::pending().await,
        }
    }

    /// Takes a finished parse: the new baseline when it was read (then
    /// `true`: the context has a new key), else the old one stays and the
    /// next check tries again. Returns the held execs, ready for judging
    /// against [`HostJudge::context`].
    pub(crate) fn install(&mut self, parsed: Parsed) -> (bool, Vec<ExecEvent>) {
        self.parsing = false;
        let changed = match parsed.0 {
            Ok((reparsed, ctx)) => {
                tracing::info!("host baseline changed (a package transaction); parsed again");
                self.baseline.install(reparsed);
                self.ctx = ctx;
                true
            }
            Err(why) => {
                tracing::warn!("{why}");
                false
            }
        };
        let mut held = std::mem::take(&mut self.held);
        for event in &mut held {
            self.unflag_transaction_write(event);
        }
        (changed, held)
    }

    /// How many execs are held for the parse under way.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// The held execs, taken out (the agent is stopping).
    pub(crate) fn take_held(&mut self) -> Vec<ExecEvent> {
        std::mem::take(&mut self.held)
    }
}

fn context(key: u64, manifest: &Arc<verifier_sbom::Manifest>) -> Result<Arc<Context>, HostJudgeError> {
    let root = RootDir::open(std::path::Path::new("/")).map_err(HostJudgeError::Root)?;
    let manifest = manifest.clone();
    Ok(Arc::new(Context {
        key,
        root: Arc::new(root),
        index: Arc::default(),
        any_algs: digest::algs_for_any(&manifest),
        manifest,
        content: None,
    }))
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
