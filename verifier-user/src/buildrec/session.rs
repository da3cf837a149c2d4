//! One watched build step, from loading the programs to the record.
//!
//! The same pieces as the agent, in a smaller loop: the sensor's programs
//! (`verifier_sensor::loader`), the verification engine with one context
//! per mount namespace over the host baseline (`baseline::host`), and no
//! container resolution, alert stream or stdout records: what the step
//! ran is aggregated into the build record instead ([`super::record`]).
//!
//! Order matters for "watched from its first instruction": the programs
//! are attached and the step's cgroup is in the kernel's `WATCHED` map
//! before the child is spawned, and the child joins the cgroup before it
//! execs the command. `WATCHED` (with no file ever put in the fast path)
//! makes the kernel send the step's executable mappings and record its
//! write-opens (`WRITTEN`), and leaves every exec to userspace, so the
//! record's counts are exact; repeats cost one decision-cache lookup.

use std::{
    collections::HashMap,
    process::ExitStatus,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    sync::mpsc::{UnboundedReceiver, unbounded_channel},
};
use verifier_sbom::{digest, fsroot::RootDir};
use verifier_sensor::{
    events::{Clock, ExecEvent},
    loader::{self, LoadOptions},
    map_sizes::MapSizes,
    records::Record,
};

use crate::{
    baseline::host::HostBaseline,
    verify::{
        engine::{Context, Decision, Engine, EngineConfig, Key},
        locate::Outcome,
        pool::Done,
    },
};

use super::{
    ExecConfig,
    cgroup::BuildCgroup,
    member::Members,
    mntns::Namespaces,
    record::{Aggregate, Use},
};

/// The baseline slot of the step's cgroups in the kernel's maps.
const HOST_SLOT: u32 = 1;

/// What a session leaves for the record.
pub(crate) struct Ended {
    pub status: std::io::Result<ExitStatus>,
    pub agg: Aggregate,
    pub baseline: HostBaseline,
    /// Records the kernel could not send (ring buffer full).
    pub dropped: u64,
    pub started_ns: i128,
    pub ended_ns: i128,
}

struct Loop {
    clock: Clock,
    members: Members,
    engine: Engine,
    done_rx: UnboundedReceiver<Done<Key>>,
    baseline: HostBaseline,
    contexts: HashMap<u32, Arc<Context>>,
    namespaces: Namespaces,
    /// When the host baseline was last checked for a transaction (Unix ns).
    checked_ns: i128,
    host_mnt_ns: u32,
    agg: Aggregate,
    fast_path: verifier_sensor::maps::FastPath,
}

/// Runs the step under watch until it exits.
pub(crate) async fn run(cfg: &ExecConfig) -> anyhow::Result<Ended> {
    // Orphans of the step (daemonizing runtimes) come back to us, so the
    // parent chain of their children still reaches a member.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let opts = LoadOptions {
        containers_only: false,
        ring_bytes: cfg.ring_bytes,
        btf_path: cfg.btf.clone(),
        wakeup_bytes: loader::DEFAULT_WAKEUP_BYTES,
        exec_limit: 0,
        // Builds are verified, never enforced.
        maps: MapSizes { verification: true, enforcement: false, measurement: false },
    };
    let sources = cfg.host.clone();
    let baseline = tokio::task::spawn_blocking(move || HostBaseline::load(&sources));
    let loaded = tokio::task::spawn_blocking(move || loader::load(verifier_sensor::EBPF_OBJECT, &opts));
    let baseline = baseline.await.context("baseline thread")??;
    let loader::Loaded { ebpf, events, counters, config, mut fast_path, .. } =
        loaded.await.context("loader thread")??;
    let clock = Clock::new();
    let name = format!("{}-{}", std::process::id(), clock.unix_ns(0) + crate::agent::now_mono_ns());
    let cgroup = BuildCgroup::create(&name)?;
    fast_path.watch(cgroup.id, HOST_SLOT).context("watching the build cgroup in the kernel")?;
    let (done_tx, done_rx) = unbounded_channel();
    let engine = Engine::new(
        &EngineConfig {
            workers: cfg.hash_workers,
            queue: 8192,
            max_bytes: cfg.max_hash_bytes,
            proc_root: "/proc".into(),
            hash_cache: 65_536,
            decisions: 65_536,
        },
        done_tx,
    )
    .context("starting the hashing threads")?;
    let started_ns = clock.unix_ns(0) + crate::agent::now_mono_ns();
    let started_unix = i64::try_from(started_ns / 1_000_000_000).unwrap_or(0);
    let mut lp = Loop {
        members: Members::new(cgroup.rel.clone(), cgroup.id, std::process::id()),
        clock,
        engine,
        done_rx,
        baseline,
        contexts: HashMap::new(),
        namespaces: Namespaces::default(),
        checked_ns: 0,
        host_mnt_ns: config.host_mnt_ns,
        agg: Aggregate::new(cfg.build_dir.clone(), started_unix),
        fast_path,
    };
    let dropped_before = dropped(&counters);

    let mut cmd = std::process::Command::new(&cfg.command[0]);
    cmd.args(&cfg.command[1..]);
    cgroup.join_on_spawn(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let ended_ns = lp.clock.unix_ns(0) + crate::agent::now_mono_ns();
            return Ok(Ended {
                status: Err(e),
                agg: lp.agg,
                baseline: lp.baseline,
                dropped: 0,
                started_ns,
                ended_ns,
            });
        }
    };
    let child_pid = child.id();
    lp.members.add_pid(child_pid);
    let mut waiter = tokio::task::spawn_blocking(move || child.wait());

    // SAFETY: the ring buffer owns its map fd for as long as the AsyncFd
    // owns the ring buffer.
    let mut ring = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the ring buffer fd: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let status = loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting on the ring buffer")?;
                lp.drain(guard.get_inner_mut());
                guard.clear_ready();
            }
            _ = poll.tick() => lp.drain(ring.get_mut()),
            Some((key, outcome)) = lp.done_rx.recv() => lp.completed(key, outcome),
            _ = second.tick() => lp.refresh(),
            status = &mut waiter => break status.context("waiting for the build step")?,
            // The terminal's SIGINT reaches the step itself (same process
            // group); a SIGTERM to the verifier is passed on.
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child_pid as i32), nix::sys::signal::Signal::SIGTERM);
            }
        }
    };
    // The step is done: what it ran is in the ring buffer or being hashed.
    lp.drain(ring.get_mut());
    lp.finish(Duration::from_secs(10)).await;
    drop(ebpf);
    lp.drain(ring.get_mut());
    lp.finish(Duration::from_secs(2)).await;
    for (event, d) in lp.engine.abandon().into_iter().map(|e| {
        let d = abandoned(&e);
        (e, d)
    }) {
        lp.add(&event, &d);
    }
    let ended_ns = lp.clock.unix_ns(0) + crate::agent::now_mono_ns();
    let dropped = dropped(&counters).saturating_sub(dropped_before);
    drop(cgroup);
    Ok(Ended { status, agg: lp.agg, baseline: lp.baseline, dropped, started_ns, ended_ns })
}

impl Loop {
    fn drain(&mut self, ring: &mut RingBuf<MapData>) {
        while let Some(item) = ring.next() {
            let record = Record::from_bytes(&item, &self.clock);
            drop(item);
            match record {
                Ok(Record::Exec(e)) => {
                    if self.members.admit(e.cgroup_id, e.tgid, e.ppid) {
                        self.exec(e);
                    }
                }
                Ok(Record::Library(l)) => {
                    if self.members.admit(l.cgroup_id, l.tgid, 0) {
                        let mut e = ExecEvent::of_library(&l);
                        e.mnt_ns = mnt_ns_of(l.tgid).unwrap_or(self.host_mnt_ns);
                        self.exec(e);
                    }
                }
                Ok(Record::Cgroup(c)) => {
                    if self.members.cgroup_created(c.id, &c.path) {
                        let _ = self.fast_path.watch(c.id, HOST_SLOT);
                    }
                }
                // `verifier exec` never enforces: blocks cannot come from its programs.
                Ok(Record::Write(_) | Record::Throttle(_) | Record::Block(_)) => {}
                Err(err) => tracing::warn!("dropping an undecodable ring buffer record: {err}"),
            }
        }
    }

    /// Judges a member's exec (or mapping) against the host baseline in
    /// its own mount namespace; a container's is recorded unjudged.
    fn exec(&mut self, mut e: ExecEvent) {
        if e.mnt_ns != self.host_mnt_ns && !self.members.in_step_cgroup(e.cgroup_id) {
            self.agg.add_unjudged(
                &e.filename,
                "ran in a container the build started: containers are not judged against the host baseline",
                e.unix_ns,
            );
            return;
        }
        absolute_name(&mut e);
        self.transaction_ended(&mut e);
        let ctx = match self.context(e.mnt_ns, e.tgid, e.ppid) {
            Ok(c) => c,
            Err(why) => return self.agg.add_unjudged(&e.filename, &why, e.unix_ns),
        };
        if let Some((e, d)) = self.engine.submit(&ctx, e) {
            self.add(&e, &d);
        }
    }

    /// A package transaction inside the step (`dpkg -i`, `apt-get
    /// install`) is not drift. What it installed may run right after it:
    /// the database is checked for every exec that happened after the
    /// last check (one `stat`, not a timer), so the exec is judged
    /// against the database that records it. Its files were written by
    /// the step, and the kernel flags them (`written`, which in a
    /// container makes a listed file `modified-binary`); against a host
    /// baseline a file last changed before the database was (its ctime
    /// not after the status file's mtime) was written by a transaction
    /// the database now records, and is judged by its bytes. One written
    /// after that keeps the flag.
    fn transaction_ended(&mut self, e: &mut ExecEvent) {
        if e.unix_ns > self.checked_ns {
            self.checked_ns = self.clock.unix_ns(0) + crate::agent::now_mono_ns();
            self.refresh();
        }
        if e.written && e.exe.is_some_and(|x| self.baseline.written_by_transaction(&x)) {
            e.written = false;
        }
    }

    fn completed(&mut self, key: Key, outcome: Outcome) {
        for (e, d) in self.engine.complete(key, outcome) {
            self.add(&e, &d);
        }
    }

    fn add(&mut self, e: &ExecEvent, d: &Arc<Decision>) {
        let kind = if e.library { Use::Library } else { Use::Exec };
        self.agg.add(kind, &e.filename, d, e.unix_ns, &self.baseline.manifest);
    }

    /// The host baseline as seen from mount namespace `mnt_ns` (its own
    /// root, when it is not the host's: a step in a private mount
    /// namespace sees its own bind mounts).
    fn context(&mut self, mnt_ns: u32, pid: u32, ppid: u32) -> Result<Arc<Context>, String> {
        if let Some(c) = self.contexts.get(&mnt_ns) {
            return Ok(c.clone());
        }
        // Another namespace's root is held from its first exec on
        // (`super::mntns`); failing that, the host's root serves this one
        // exec and is not remembered for the namespace (the identity
        // check still decides what was read).
        let (root, keep) = if mnt_ns == self.host_mnt_ns {
            (RootDir::open(std::path::Path::new("/")).map(Arc::new), true)
        } else {
            match self.namespaces.root(mnt_ns, &[pid, ppid]) {
                Some(r) => (Ok(r), true),
                None => (RootDir::open(std::path::Path::new("/")).map(Arc::new), false),
            }
        };
        let root = root.map_err(|e| format!("the host's root directory could not be opened: {e}"))?;
        let manifest = self.baseline.manifest.clone();
        let ctx = Arc::new(Context {
            key: self.baseline.key,
            root,
            index: Arc::default(),
            any_algs: digest::algs_for_any(&manifest),
            manifest,
            content: None,
        });
        if keep && self.contexts.len() < 256 {
            self.contexts.insert(mnt_ns, ctx.clone());
        }
        Ok(ctx)
    }

    /// A package transaction changed the database: judge against the new
    /// one from now on (decisions are per baseline key).
    fn refresh(&mut self) {
        match self.baseline.refresh() {
            Ok(true) => {
                tracing::info!("host baseline changed (a package transaction); parsed again");
                self.contexts.clear();
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("host baseline changed but could not be read again: {e}"),
        }
    }

    /// Lets hashing in flight finish, for at most `limit`.
    async fn finish(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.engine.in_flight() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.done_rx.recv()).await {
                Ok(Some((key, outcome))) => self.completed(key, outcome),
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// A relative executed name (`./conftest`, make running what it just
/// built) made absolute with the process's working directory, else its
/// parent's (where it was forked from), else the step's own (the
/// verifier's): short-lived processes are often gone before their record
/// is read. The engine still proves the file by its
/// identity, so a wrong guess is `unverifiable`, never `ok`.
fn absolute_name(e: &mut ExecEvent) {
    if e.filename.first() == Some(&b'/') || e.filename.is_empty() {
        return;
    }
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    let cwd = [e.tgid, e.ppid]
        .into_iter()
        .find_map(|p| std::fs::read_link(format!("/proc/{p}/cwd")).ok())
        .or_else(|| std::env::current_dir().ok());
    if let Some(cwd) = cwd {
        let joined = cwd.join(std::ffi::OsStr::from_bytes(&e.filename));
        e.filename = joined.into_os_string().into_vec();
    }
}

fn abandoned(e: &ExecEvent) -> Arc<Decision> {
    use crate::verify::verdict::{Judgement, Verdict};
    Arc::new(Decision {
        judgement: Judgement::new(Verdict::Unverifiable, "still being hashed when the verifier stopped"),
        path: e.filename.clone(),
        via: None,
        sha256: None,
        script: None,
        trusted: false,
        root: None,
    })
}

/// Records the kernel dropped (ring buffer full), summed over CPUs.
fn dropped(counters: &verifier_sensor::maps::KernelCounters) -> u64 {
    counters.total(verifier_common::counters::Counter::Dropped).unwrap_or(0)
}

/// The inode number of `pid`'s mount namespace.
fn mnt_ns_of(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok().and_then(|m| u32::try_from(m.ino()).ok())
}
