//! The verification engine on the event loop: from an exec of a known
//! container to a decision, hashing on the pool only when nothing is known.
//!
//! Three levels of memory, cheapest first:
//! - decisions by (image, file identity, executed name): a repeated exec of
//!   a file already judged for this image costs one hash-map lookup;
//! - requests in flight by the same key: a burst of execs of one new file
//!   waits for one job, not one job each;
//! - the hash cache by identity ([`super::hash_cache::HashCache`]): a file shared
//!   by several images is read once.
//!
//! Nothing is cached that was not proven: an unverifiable outcome, a
//! fileless exec, a file deleted after its exec, an exec of a script
//! (whose bytes have no kernel identity), or of a file the kernel saw
//! opened for writing (its identity proves nothing) is worked out again
//! next time, and such an exec is never answered from the decisions either.
//!
//! No downgrade by timing or size: a file that could not be hashed (over
//! the cap, or gone with its process) is judged by its path
//! ([`super::verdict::judge_unhashed`]); a path the SBOM does not list is
//! `unknown-binary` either way. An exec through a descriptor
//! (`/dev/fd/N`, `/proc/self/fd/N`) of a file that still has its name is
//! judged as that file; `fileless` is for memfds and deleted files.

use std::{collections::HashMap, path::Path, sync::Arc};

use verifier_common::event::FileIdentity;

use super::{
    hash_cache::HashCache,
    index::LazyIndex,
    locate::{Job, Listed, Located, Outcome, Unread, Via, is_proc_exe, runs_from_descriptor},
    pool::{Done, Pool},
    root::{ExecRoot, exec_root},
    verdict::{ImageContent, Judgement, Verdict, deleted_after_exec, judge, judge_unhashed},
};
use verifier_sbom::{Manifest, digest, fsroot::RootDir, hash::Algs};
use verifier_sensor::events::ExecEvent;

/// What the engine needs to know about a container's image.
pub(crate) struct Context {
    /// Identifies the baseline (one per image): decisions are shared by
    /// every container with the same key.
    pub key: u64,
    pub root: Arc<RootDir>,
    pub manifest: Arc<Manifest>,
    /// This container's listed files by identity, built on first need by
    /// a hashing thread (one per container: per baseline and root).
    pub index: Arc<LazyIndex>,
    pub content: Option<Arc<dyn ImageContent + Send + Sync>>,
    /// Digests some listed paths are compared by instead of a SHA-256
    /// (SHA-512, dpkg's MD5, apk's SHA-1): computed for every file, since
    /// the path that ran is only known once the file is found
    /// ([`digest::algs_for_any`]).
    pub any_algs: Algs,
}

/// The decision about one executed file.
#[derive(Debug)]
pub(crate) struct Decision {
    pub judgement: Judgement,
    /// Canonical path inside the container (exact bytes).
    pub path: Vec<u8>,
    pub via: Option<Via>,
    pub sha256: Option<[u8; 32]>,
    /// The script, when a `#!` script was run (its own judgement).
    pub script: Option<ScriptDecision>,
    /// Proven `ok` for this file identity: its next execs may be answered
    /// by the kernel fast path.
    pub trusted: bool,
    /// [`ExecRoot::Chroot`]: the process ran in another root and exited
    /// before it could be read; `path` is as the exec named it there.
    pub root: Option<ExecRoot>,
}

#[derive(Debug)]
pub(crate) struct ScriptDecision {
    pub path: Vec<u8>,
    pub sha256: Option<[u8; 32]>,
    pub judgement: Judgement,
}

impl Decision {
    #[cfg(test)]
    /// Whether this needs an alert (the executable's or the script's
    /// verdict is not `ok`).
    pub(crate) fn is_drift(&self) -> bool {
        self.judgement.verdict != Verdict::Ok
            || self.script.as_ref().is_some_and(|s| s.judgement.verdict != Verdict::Ok)
    }
}

/// Counters for the stats record and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct VerifyStats {
    /// Execs given to the engine.
    pub execs: u64,
    /// Answered from the decision cache.
    pub decision_hits: u64,
    /// Jobs sent to the hashing pool.
    pub jobs: u64,
    /// Execs that waited on a job already in flight for the same file.
    pub coalesced: u64,
    /// Execs not verified because the hashing queue was full (reported
    /// as `unverifiable`, never passed).
    pub queue_full: u64,
    /// Files over the size cap (judged by their path alone).
    pub too_large: u64,
}

/// (baseline key, file identity, executed name).
pub(crate) type Key = (u64, FileIdentity, Vec<u8>);

struct Waiting {
    ctx: Arc<Context>,
    events: Vec<ExecEvent>,
}

/// The engine. Lives on the event loop; hashing happens on the pool.
pub(crate) struct Engine {
    pool: Pool<Key>,
    decisions: HashMap<Key, Arc<Decision>>,
    max_decisions: usize,
    inflight: HashMap<Key, Waiting>,
    proc_root: Arc<Path>,
    max_bytes: u64,
    /// Where each proven file identity was found (bounded): what an exec
    /// of `/proc/self/exe` (busybox running its own applets, a runtime
    /// re-exec) ran, since that link cannot be followed once it exits.
    known_paths: HashMap<FileIdentity, Vec<u8>>,
    pub stats: VerifyStats,
}

/// Engine settings.
#[derive(Clone, Debug)]
pub(crate) struct EngineConfig {
    pub workers: usize,
    pub queue: usize,
    pub max_bytes: u64,
    pub proc_root: std::path::PathBuf,
    /// Files whose digests are remembered.
    pub hash_cache: usize,
    /// Decisions remembered.
    pub decisions: usize,
}

impl Engine {
    /// Starts the pool; outcomes come back on `done` and go to
    /// [`Engine::complete`].
    pub(crate) fn new(
        cfg: &EngineConfig,
        done: tokio::sync::mpsc::UnboundedSender<Done<(u64, FileIdentity, Vec<u8>)>>,
    ) -> std::io::Result<Self> {
        let cache = Arc::new(HashCache::new(cfg.hash_cache));
        Ok(Self {
            pool: Pool::new(cfg.workers, cfg.queue, cache, done)?,
            decisions: HashMap::new(),
            max_decisions: cfg.decisions,
            inflight: HashMap::new(),
            proc_root: Arc::from(cfg.proc_root.as_path()),
            max_bytes: cfg.max_bytes,
            known_paths: HashMap::new(),
            stats: VerifyStats::default(),
        })
    }

    /// Takes an exec of a container whose baseline is `ctx`. Returns the
    /// decision now when it is known (or when the exec cannot be verified
    /// at all); otherwise queues the work and returns `None`: the decision
    /// comes out of [`Engine::complete`].
    pub(crate) fn submit(
        &mut self,
        ctx: &Arc<Context>,
        event: ExecEvent,
    ) -> Option<(ExecEvent, Arc<Decision>)> {
        self.stats.execs += 1;
        let Some(identity) = event.exe else {
            let d = unverifiable(&event.filename, "the kernel could not read the executed file's identity");
            return Some((event, d));
        };
        let key: Key = (ctx.key, identity, event.filename.clone());
        if !event.written
            && let Some(d) = self.decisions.get(&key)
        {
            self.stats.decision_hits += 1;
            return Some((event, d.clone()));
        }
        if let Some(w) = self.inflight.get_mut(&key) {
            self.stats.coalesced += 1;
            w.events.push(event);
            return None;
        }
        // `/proc/self/exe` re-runs the very file (same identity) the process
        // ran: if that file is still being hashed under the name it was run
        // by (busybox `sh` spawning an applet), wait for that job.
        if is_proc_exe(&event.filename)
            && !self.known_paths.contains_key(&identity)
            && let Some(w) =
                self.inflight.iter_mut().find(|(k, _)| k.0 == ctx.key && k.1 == identity).map(|(_, w)| w)
        {
            self.stats.coalesced += 1;
            w.events.push(event);
            return None;
        }
        let path_guess = std::str::from_utf8(&event.filename).ok();
        let job = Job {
            root: ctx.root.clone(),
            proc_root: self.proc_root.clone(),
            tgid: event.tgid,
            // `/proc/self/exe` re-runs the file the process ran: if that
            // identity was proven at a path before, open that path (the
            // identity check still decides).
            filename: if is_proc_exe(&event.filename)
                && let Some(p) = self.known_paths.get(&identity)
            {
                p.clone()
            } else {
                event.filename.clone()
            },
            identity,
            chrooted: exec_root(event.root, ctx.root.identity()) == ExecRoot::Chroot,
            algs: digest::algs_for(path_guess.and_then(|p| ctx.manifest.get(p))).union(ctx.any_algs),
            max_bytes: self.max_bytes,
            library: event.library,
            mapped_fd: event.mapped_fd.unwrap_or(-1),
            script: event.script,
            listed: Some(Listed { manifest: ctx.manifest.clone(), index: ctx.index.clone() }),
        };
        match self.pool.try_submit(key.clone(), job) {
            Ok(()) => {
                self.stats.jobs += 1;
                self.inflight.insert(key, Waiting { ctx: ctx.clone(), events: vec![event] });
                None
            }
            Err(_) => {
                self.stats.queue_full += 1;
                let d = unverifiable(&event.filename, "the hashing queue was full (see --hash-queue)");
                Some((event, d))
            }
        }
    }

    /// Turns a finished job into decisions for every exec that waited on it.
    pub(crate) fn complete(&mut self, key: Key, outcome: Outcome) -> Vec<(ExecEvent, Arc<Decision>)> {
        let Some(waiting) = self.inflight.remove(&key) else { return Vec::new() };
        // The kernel saw no name for the file (memfd, deleted): fileless,
        // whether or not it can still be hashed. Run from a descriptor, it
        // is fileless unless it is found as a file with a name.
        let unnamed = waiting.events.iter().any(|e| e.exe_unlinked);
        let descriptor = runs_from_descriptor(&key.2);
        let written = waiting.events.iter().any(|e| e.written);
        let (decision, cacheable) = match outcome {
            Outcome::Unverifiable(why) | Outcome::Unread(Unread { why, .. }) if unnamed || descriptor => {
                let reason = format!("executed from memory or a deleted file (not hashed: {why})");
                (unhashed(&key.2, Judgement::new(Verdict::Fileless, reason)), false)
            }
            // Written and no longer the file that ran: a listed path is
            // still a modified image file.
            Outcome::Unverifiable(why) if written => {
                let path = std::str::from_utf8(&key.2).ok();
                let mut j = judge(&waiting.ctx.manifest, None, path, &Default::default(), false, true);
                if j.verdict == Verdict::Unverifiable {
                    j.reason = why;
                } else {
                    j.reason = format!("{} (not hashed: {why})", j.reason);
                }
                (unhashed(&key.2, j), false)
            }
            Outcome::Unverifiable(why) => (unverifiable(&key.2, &why), false),
            Outcome::Unread(u) => (self.judge_unread(&waiting.ctx, u, written), false),
            Outcome::Located(l) => {
                self.remember(key.1, &l);
                self.decide(&waiting.ctx, *l, unnamed, descriptor, key.1.size, written)
            }
        };
        if cacheable {
            if self.decisions.len() >= self.max_decisions {
                self.decisions.clear();
            }
            self.decisions.insert(key, decision.clone());
        }
        waiting.events.into_iter().map(|e| (e, decision.clone())).collect()
    }

    /// Gives up on every job in flight (shutdown): their execs, to be
    /// reported unverifiable.
    pub(crate) fn abandon(&mut self) -> Vec<ExecEvent> {
        self.inflight.drain().flat_map(|(_, w)| w.events).collect()
    }

    /// Execs waiting for a job.
    pub(crate) fn in_flight(&self) -> usize {
        self.inflight.values().map(|w| w.events.len()).sum()
    }

    /// Remembers where a proven identity was found by path.
    fn remember(&mut self, identity: FileIdentity, l: &Located) {
        if !l.unlinked && !matches!(l.via, Via::ProcExe | Via::Descriptor) && l.hashes.is_some() {
            if self.known_paths.len() >= 65_536 {
                self.known_paths.clear();
            }
            self.known_paths.insert(identity, l.path.clone());
        }
    }

    /// An exec whose bytes could not be read back: judged by its path.
    fn judge_unread(&self, ctx: &Context, u: Unread, written: bool) -> Arc<Decision> {
        // Its name was a name in another tree: what the container's root
        // (and its SBOM) holds there says nothing about what ran.
        if u.other_root {
            let reason = format!("ran from another root and exited before it could be read ({})", u.why);
            return Arc::new(Decision {
                judgement: Judgement::new(Verdict::UnknownBinary, reason),
                path: u.path,
                via: None,
                sha256: None,
                script: None,
                trusted: false,
                root: Some(ExecRoot::Chroot),
            });
        }
        let why = if u.gone { "the process exited and the file is gone".to_owned() } else { u.why };
        let content = ctx.content.as_deref().map(|c| c as &dyn ImageContent);
        let judgement =
            judge_unhashed(&ctx.manifest, content, std::str::from_utf8(&u.path).ok(), &why, written);
        unhashed(&u.path, judgement)
    }

    fn decide(
        &mut self,
        ctx: &Context,
        l: Located,
        unnamed: bool,
        descriptor: bool,
        size: i64,
        written: bool,
    ) -> (Arc<Decision>, bool) {
        let path = std::str::from_utf8(&l.path).ok();
        // A descriptor exec of a file that still has its name is that file.
        let fileless = unnamed || (descriptor && l.unlinked) || l.path.starts_with(b"/memfd:");
        let deleted = l.deleted_after_exec && !fileless;
        let fileless = fileless || (l.unlinked && !deleted);
        let judgement = match &l.hashes {
            Some(h) => judge(
                &ctx.manifest,
                ctx.content.as_deref().map(|c| c as &dyn ImageContent),
                path,
                h,
                fileless,
                written,
            ),
            None if fileless => judge(&ctx.manifest, None, path, &Default::default(), true, written),
            None => {
                self.stats.too_large += 1;
                let why = format!("{size} bytes, over --max-hash-bytes ({})", self.max_bytes);
                judge_unhashed(
                    &ctx.manifest,
                    ctx.content.as_deref().map(|c| c as &dyn ImageContent),
                    path,
                    &why,
                    written,
                )
            }
        };
        let judgement = if deleted { deleted_after_exec(judgement) } else { judgement };
        let script = l.script.map(|s| {
            let sp = std::str::from_utf8(&s.path).ok();
            let judgement = match &s.hashes {
                Some(h) => judge(
                    &ctx.manifest,
                    ctx.content.as_deref().map(|c| c as &dyn ImageContent),
                    sp,
                    h,
                    false,
                    false,
                ),
                None => Judgement::new(Verdict::Unverifiable, "the script could not be read back"),
            };
            ScriptDecision { path: s.path, sha256: s.hashes.and_then(|h| h.sha256), judgement }
        });
        let cacheable = !fileless && !deleted && !written && script.is_none() && l.hashes.is_some();
        let sha256 = l.hashes.as_ref().and_then(|h| h.sha256);
        let trusted = cacheable && judgement.verdict == Verdict::Ok;
        let decision =
            Decision { judgement, path: l.path, via: Some(l.via), sha256, script, trusted, root: None };
        (Arc::new(decision), cacheable)
    }
}

fn unverifiable(filename: &[u8], why: &str) -> Arc<Decision> {
    unhashed(filename, Judgement::new(Verdict::Unverifiable, why))
}

/// A decision about a file whose bytes were not read: never trusted.
fn unhashed(path: &[u8], judgement: Judgement) -> Arc<Decision> {
    Arc::new(Decision {
        judgement,
        path: path.to_vec(),
        via: None,
        sha256: None,
        script: None,
        trusted: false,
        root: None,
    })
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
