//! Loads and attaches the kernel programs.
//!
//! Order matters and each step fails with what to do: tracefs must be
//! mounted (a tracepoint's attach looks up the event id there, and the
//! hooks' probes look for their events; a fresh node may not have it; the
//! exec hook is a raw tracepoint and needs none), offsets must resolve from
//! BTF, then the object is loaded with those offsets as its one global and
//! the hooks are attached by walking the table in [`crate::hooks`]: no
//! program is named here. Dropping [`Loaded`] detaches everything, which is
//! the agent's clean shutdown.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{RawTracePoint, TracePoint},
};
use verifier_common::{
    GLOBAL_CONFIG, MAP_COUNTERS, MAP_EVENTS,
    enforce::{MAP_ALLOWED, MAP_ENFORCE},
    fastpath::{MAP_VERIFIED, MAP_VERIFIED_INODES, MAP_WATCHED, MAP_WRITTEN},
    offsets::ProgramConfig,
    throttle::{MAP_THROTTLE, MAP_THROTTLE_SUPPRESSED},
};

use crate::btf::{self, Btf, BtfError};
use crate::hooks::{Attach, HOOKS, Hook, HookOutcome, HookState, Need};
use crate::map_sizes::MapSizes;
use crate::maps::{EnforceMaps, FastPath, KernelCounters, MapError, ThrottleMaps};

/// Where tracefs is mounted when the agent has to mount it.
pub const TRACEFS: &str = "/sys/kernel/tracing";

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(
        "this verifier binary was built without its eBPF programs (bpf-linker or the nightly \
         toolchain was missing at build time); run `cargo xtask setup` and rebuild"
    )]
    NoObject,
    #[error(
        "tracefs is not mounted and mounting it at {TRACEFS} failed; mount it with `mount -t tracefs nodev {TRACEFS}` or run the agent as root"
    )]
    Tracefs(#[source] nix::Error),
    #[error(
        "cannot {what} at {}: permission denied; the agent needs root or \
         CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN to read tracefs and load its eBPF programs (run it with sudo, \
         or grant those capabilities)", path.display()
    )]
    Privilege { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error("ring buffer size {0} must be a power of two and a multiple of the page size (e.g. 4194304)")]
    RingSize(u32),
    #[error("loading the eBPF object failed (are you root, with CAP_BPF and CAP_PERFMON?)")]
    Load(#[source] aya::EbpfError),
    #[error(
        "required hook {hook} ({attach}) could not be attached: {why}; the agent cannot run without it \
         (check the kernel has this tracepoint and that the agent runs as root with CAP_BPF and CAP_PERFMON)"
    )]
    Hook { hook: &'static str, attach: String, why: String },
    #[error(transparent)]
    Map(#[from] MapError),
    #[error("eBPF map {0} is missing from the object")]
    MissingMap(&'static str),
}

/// Default wake-up batch: about 400 typical records.
pub const DEFAULT_WAKEUP_BYTES: u32 = 64 << 10;

/// How to load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Skip (and count as filtered) execs in the host mount namespace.
    pub containers_only: bool,
    /// Ring buffer size in bytes.
    pub ring_bytes: u32,
    /// BTF file to read offsets from.
    pub btf_path: PathBuf,
    /// Wake the agent once this many bytes wait in the ring (0: every record).
    pub wakeup_bytes: u32,
    /// Execs per second a container may send before the rest of that
    /// second is throttled in the kernel (0: never).
    pub exec_limit: u32,
    /// Which optional features' maps are created full-size.
    pub maps: MapSizes,
}

/// Default per-container exec limit: far above what any real workload
/// starts per second (a busy CI job runs a few hundred), low enough that a
/// fork-and-exec loop cannot fill the ring buffer for everyone else.
pub const DEFAULT_EXEC_LIMIT: u32 = 5_000;

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            containers_only: false,
            ring_bytes: verifier_common::DEFAULT_RING_BYTES,
            btf_path: btf::VMLINUX_BTF.into(),
            wakeup_bytes: DEFAULT_WAKEUP_BYTES,
            exec_limit: DEFAULT_EXEC_LIMIT,
            maps: MapSizes::FULL,
        }
    }
}

/// The loaded, attached programs and the maps userspace reads.
pub struct Loaded {
    /// Owns the programs and their links: dropping it detaches.
    pub ebpf: Ebpf,
    pub events: RingBuf<MapData>,
    pub counters: KernelCounters,
    pub config: ProgramConfig,
    pub fast_path: FastPath,
    /// Per-container throttle state (read-only for the agent).
    pub throttle: ThrottleMaps,
    /// Enforcement modes and allowed sets (written by the agent).
    pub enforce: EnforceMaps,
    /// Every row of [`HOOKS`] and what became of it.
    pub hooks: Vec<HookOutcome>,
}

/// Mounts tracefs at [`TRACEFS`] unless it (or the debugfs copy) is there;
/// returns where it is.
pub fn ensure_tracefs() -> Result<PathBuf, LoaderError> {
    for dir in [TRACEFS, "/sys/kernel/debug/tracing"] {
        match std::fs::metadata(Path::new(dir).join("events")) {
            Ok(m) if m.is_dir() => return Ok(dir.into()),
            // Mounted but closed to this user (tracefs is root's, 0700):
            // privilege is what is missing, not the mount.
            Err(source) if source.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(LoaderError::Privilege { what: "read tracefs", path: dir.into(), source });
            }
            _ => {}
        }
    }
    tracing::info!("tracefs not mounted; mounting it at {TRACEFS}");
    nix::mount::mount(Some("nodev"), TRACEFS, Some("tracefs"), nix::mount::MsFlags::empty(), None::<&str>)
        .map_err(|e| match e {
            nix::Error::EPERM | nix::Error::EACCES => {
                LoaderError::Privilege { what: "mount tracefs", path: TRACEFS.into(), source: e.into() }
            }
            e => LoaderError::Tracefs(e),
        })?;
    Ok(TRACEFS.into())
}

/// The host mount namespace's inum: pid 1's (in a DaemonSet the agent runs
/// with `hostPID`), or, where pid 1 cannot be inspected (a sandbox that
/// hides it, pid 1 in an outer user namespace), the parent's, with a
/// warning: an agent in a container is the child of its runtime's shim,
/// which runs in the host's namespace, and an agent started on the host
/// shares its parent's. Its own only when neither can be read.
pub fn host_mnt_ns() -> u32 {
    if let Ok(m) = std::fs::metadata("/proc/1/ns/mnt") {
        return m.ino() as u32;
    }
    let parent = std::os::unix::process::parent_id();
    if let Ok(m) = std::fs::metadata(format!("/proc/{parent}/ns/mnt")) {
        tracing::warn!(
            "cannot read /proc/1/ns/mnt; taking the parent's (pid {parent}) mount namespace as the host's"
        );
        return m.ino() as u32;
    }
    tracing::warn!("cannot read /proc/1/ns/mnt; taking the agent's own mount namespace as the host's");
    std::fs::metadata("/proc/self/ns/mnt").map_or(0, |m| m.ino() as u32)
}

/// An `EbpfLoader` that has not parsed the kernel's BTF.
///
/// aya 0.14's `EbpfLoader::new()` parses all of `/sys/kernel/btf/vmlinux`
/// eagerly (over 20 MiB of peak heap), even when `.btf(None)` follows: that
/// alone would double the agent's peak RSS. So the loader is created on a
/// short-lived thread that first moves into a private mount namespace and
/// hides `/sys/kernel/btf` there; nothing else sees that namespace, and the
/// thread ends right after. Where that is not possible (no CAP_SYS_ADMIN),
/// the plain constructor is used.
fn loader_without_kernel_btf() -> EbpfLoader<'static> {
    let private = std::thread::spawn(|| -> Option<EbpfLoader<'static>> {
        use nix::mount::{MsFlags, mount};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).ok()?;
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).ok()?;
        mount(Some("none"), "/sys/kernel/btf", Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>).ok()?;
        Some(EbpfLoader::new())
    })
    .join()
    .ok()
    .flatten();
    let mut loader = private.unwrap_or_else(|| {
        tracing::debug!("could not hide kernel BTF from aya; using the plain loader");
        EbpfLoader::new()
    });
    loader.btf(None);
    loader
}

/// Resolves offsets, loads the object and attaches every hook of
/// [`HOOKS`].
pub fn load(object: &[u8], opts: &LoadOptions) -> Result<Loaded, LoaderError> {
    if object.is_empty() {
        return Err(LoaderError::NoObject);
    }
    let page = 4096;
    if !opts.ring_bytes.is_power_of_two() || opts.ring_bytes < page {
        return Err(LoaderError::RingSize(opts.ring_bytes));
    }
    let tracefs = ensure_tracefs()?;
    let kernel_btf = Btf::from_file(&opts.btf_path)?;
    let config = ProgramConfig {
        offsets: btf::offsets::resolve(&kernel_btf)?,
        containers_only: u32::from(opts.containers_only),
        host_mnt_ns: host_mnt_ns(),
        // Never wait for more than a quarter of the ring.
        wakeup_bytes: opts.wakeup_bytes.min(opts.ring_bytes / 4),
        exec_limit: opts.exec_limit,
    };
    drop(kernel_btf);
    tracing::debug!(?config, "kernel offsets from BTF");

    // The programs use no CO-RE relocations (offsets come in CONFIG), so
    // aya needs no kernel BTF; see `loader_without_kernel_btf`.
    let mut loader = loader_without_kernel_btf();
    loader.override_global(GLOBAL_CONFIG, &config, true).map_max_entries(MAP_EVENTS, opts.ring_bytes);
    for (map, max_entries) in opts.maps.max_entries(opts.exec_limit) {
        loader.map_max_entries(map, max_entries);
    }
    tracing::debug!(sizes = ?opts.maps, "optional maps sized");
    let mut ebpf = loader.load(object).map_err(LoaderError::Load)?;

    let hooks = attach_all(&mut ebpf, &tracefs, opts.maps.verification)?;

    let events = ebpf.take_map(MAP_EVENTS).ok_or(LoaderError::MissingMap(MAP_EVENTS))?;
    let events = RingBuf::try_from(events)
        .map_err(|source| LoaderError::Map(MapError::Read { name: MAP_EVENTS, source }))?;
    let counters = ebpf.take_map(MAP_COUNTERS).ok_or(LoaderError::MissingMap(MAP_COUNTERS))?;
    let counters = PerCpuArray::try_from(counters)
        .map_err(|source| LoaderError::Map(MapError::Read { name: MAP_COUNTERS, source }))?;
    let take_hash =
        |ebpf: &mut Ebpf, name: &'static str| ebpf.take_map(name).ok_or(LoaderError::MissingMap(name));
    let watched = HashMap::try_from(take_hash(&mut ebpf, MAP_WATCHED)?)
        .map_err(|source| LoaderError::Map(MapError::Read { name: MAP_WATCHED, source }))?;
    let verified = HashMap::try_from(take_hash(&mut ebpf, MAP_VERIFIED)?)
        .map_err(|source| LoaderError::Map(MapError::Read { name: MAP_VERIFIED, source }))?;
    let inodes = HashMap::try_from(take_hash(&mut ebpf, MAP_VERIFIED_INODES)?)
        .map_err(|source| LoaderError::Map(MapError::Read { name: MAP_VERIFIED_INODES, source }))?;
    let throttle = ThrottleMaps {
        state: HashMap::try_from(take_hash(&mut ebpf, MAP_THROTTLE)?)
            .map_err(|source| LoaderError::Map(MapError::Read { name: MAP_THROTTLE, source }))?,
        suppressed: PerCpuHashMap::try_from(take_hash(&mut ebpf, MAP_THROTTLE_SUPPRESSED)?)
            .map_err(|source| LoaderError::Map(MapError::Read { name: MAP_THROTTLE_SUPPRESSED, source }))?,
    };
    let enforce = EnforceMaps {
        modes: hash(&mut ebpf, MAP_ENFORCE)?,
        allowed: hash(&mut ebpf, MAP_ALLOWED)?,
        written: hash(&mut ebpf, MAP_WRITTEN)?,
        digests: None,
    };
    Ok(Loaded {
        ebpf,
        enforce,
        events,
        counters: KernelCounters(counters),
        config,
        fast_path: FastPath { watched, verified, inodes },
        throttle,
        hooks,
    })
}

/// Takes a hash map out of the object, typed.
fn hash<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<HashMap<MapData, K, V>, LoaderError> {
    let map = ebpf.take_map(name).ok_or(LoaderError::MissingMap(name))?;
    HashMap::try_from(map).map_err(|source| LoaderError::Map(MapError::Read { name, source }))
}

/// Walks [`HOOKS`]: probes, loads and attaches each program. A required
/// hook that fails stops here; an optional one is skipped, with a warning
/// and its reason in the outcome. Without `verification` the hooks that act
/// only in watched containers ([`crate::lsm::WATCHED_ONLY`]) are not loaded
/// at all: no container is ever watched, and each would still cost every
/// `open*`/`mmap` call on the node a tracepoint (and unloading them later
/// would cost the start-up RCU grace periods).
fn attach_all(ebpf: &mut Ebpf, tracefs: &Path, verification: bool) -> Result<Vec<HookOutcome>, LoaderError> {
    let mut outcomes = Vec::with_capacity(HOOKS.len());
    for hook in HOOKS {
        if !verification && crate::lsm::WATCHED_ONLY.contains(&hook.name) {
            outcomes.push(HookOutcome {
                name: hook.name,
                attach: hook.attach.to_string(),
                required: false,
                state: HookState::Skipped(crate::lsm::NOT_WATCHING.into()),
            });
            continue;
        }
        let state = match hook.probe(tracefs).and_then(|()| attach(ebpf, hook)) {
            Ok(()) => HookState::Attached,
            Err(why) => match hook.need {
                Need::Required => {
                    return Err(LoaderError::Hook { hook: hook.name, attach: hook.attach.to_string(), why });
                }
                Need::Optional { what_is_lost } => {
                    tracing::warn!("hook {} ({}) skipped: {why}; {what_is_lost}", hook.name, hook.attach);
                    HookState::Skipped(why)
                }
            },
        };
        outcomes.push(HookOutcome {
            name: hook.name,
            attach: hook.attach.to_string(),
            required: hook.need == Need::Required,
            state,
        });
    }
    Ok(outcomes)
}

/// Loads one hook's program into the kernel and attaches it; `Err` says
/// which step failed and the kernel's answer.
fn attach(ebpf: &mut Ebpf, hook: &Hook) -> Result<(), String> {
    let program = ebpf.program_mut(hook.program).ok_or_else(|| {
        format!("program {} is missing from the eBPF object (rebuild the agent)", hook.program)
    })?;
    let not_that_kind =
        |e: aya::programs::ProgramError| format!("program {} is not a {}: {e}", hook.program, hook.attach);
    let rejected =
        |e: aya::programs::ProgramError| format!("the kernel's verifier rejected {}: {e}", hook.program);
    let failed = |e: aya::programs::ProgramError| format!("attaching to {} failed: {e}", hook.attach);
    match hook.attach {
        Attach::RawTracepoint(name) => {
            let program: &mut RawTracePoint = program.try_into().map_err(not_that_kind)?;
            program.load().map_err(rejected)?;
            program.attach(name).map(drop).map_err(failed)
        }
        Attach::Tracepoint { category, name } => {
            let program: &mut TracePoint = program.try_into().map_err(not_that_kind)?;
            program.load().map_err(rejected)?;
            program.attach(category, name).map(drop).map_err(failed)
        }
    }
}
