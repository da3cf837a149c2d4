//! Typed handles to the kernel maps the agent reads or writes: the fast
//! path (which containers are watched, which files were found good), the
//! per-CPU counters, and the per-container throttle state.
//!
//! Map names and layouts live in `verifier_common`; these wrappers are the
//! only place that touches them, so a layout change is one file here.

use aya::maps::{HashMap, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap};
use verifier_common::{
    MAP_COUNTERS,
    counters::{COUNTER_COUNT, Counter},
    enforce::{MAP_ALLOWED, MAP_ENFORCE},
    event::FileIdentity,
    fastpath::{InodeKey, MAP_VERIFIED, MAP_VERIFIED_INODES, MAP_WATCHED, VerifiedKey},
    throttle::{Suppressed, ThrottleState},
};

/// A map read or write the kernel refused.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("eBPF map {name}")]
    Read { name: &'static str, source: aya::maps::MapError },
    #[error("updating eBPF map {name}")]
    Write { name: &'static str, source: aya::maps::MapError },
}

/// The agent's side of the kernel fast path (see
/// `verifier_common::fastpath`): which containers are verified against
/// which baseline, and which files were found good.
pub struct FastPath {
    pub(crate) watched: HashMap<MapData, u64, u32>,
    pub(crate) verified: HashMap<MapData, VerifiedKey, u32>,
    pub(crate) inodes: HashMap<MapData, InodeKey, u32>,
}

impl FastPath {
    /// Execs in `cgroup_id` are verified against baseline `slot`.
    pub fn watch(&mut self, cgroup_id: u64, slot: u32) -> Result<(), MapError> {
        self.watched
            .insert(cgroup_id, slot, 0)
            .map_err(|source| MapError::Write { name: MAP_WATCHED, source })
    }

    /// Stops watching a container (its cgroup is gone).
    pub fn unwatch(&mut self, cgroup_id: u64) {
        let _ = self.watched.remove(&cgroup_id);
    }

    /// The file `identity` is good for baseline `slot`: its next execs in
    /// watched containers of that baseline stay in the kernel.
    pub fn verified(&mut self, identity: FileIdentity, slot: u32) -> Result<(), MapError> {
        self.inodes
            .insert(InodeKey { ino: identity.ino, dev: identity.dev, slot }, 1, 0)
            .map_err(|source| MapError::Write { name: MAP_VERIFIED_INODES, source })?;
        self.verified
            .insert(VerifiedKey { identity, slot, _pad: 0 }, 1, 0)
            .map_err(|source| MapError::Write { name: MAP_VERIFIED, source })
    }

    /// Forgets a verified file (a baseline changed).
    pub fn forget(&mut self, identity: FileIdentity, slot: u32) {
        let _ = self.verified.remove(&VerifiedKey { identity, slot, _pad: 0 });
    }
}

/// The agent's side of enforcement (see `verifier_common::enforce`):
/// which containers are blocked in, and what they may run.
pub struct EnforceMaps {
    pub(crate) modes: HashMap<MapData, u64, u32>,
    pub(crate) allowed: HashMap<MapData, VerifiedKey, u32>,
    pub(crate) written: HashMap<MapData, verifier_common::fastpath::WrittenKey, u64>,
    /// Allowed SHA-256 digests, once in-kernel measurement is active.
    pub digests: Option<DigestMap>,
}

impl EnforceMaps {
    /// Sets the container's mode (`MODE_*`): from now on its execs and
    /// executable mappings are decided in the kernel.
    pub fn set_mode(&mut self, cgroup_id: u64, mode: u32) -> Result<(), MapError> {
        self.modes.insert(cgroup_id, mode, 0).map_err(|source| MapError::Write { name: MAP_ENFORCE, source })
    }

    /// Stops enforcing in a container.
    pub fn clear(&mut self, cgroup_id: u64) {
        let _ = self.modes.remove(&cgroup_id);
    }

    /// The mode set for a container, if any.
    pub fn mode(&self, cgroup_id: u64) -> Option<u32> {
        self.modes.get(&cgroup_id, 0).ok()
    }

    /// The file `identity` may run in enforced containers of baseline `slot`.
    pub fn allow(&mut self, identity: FileIdentity, slot: u32) -> Result<(), MapError> {
        self.allowed
            .insert(VerifiedKey { identity, slot, _pad: 0 }, 1, 0)
            .map_err(|source| MapError::Write { name: MAP_ALLOWED, source })
    }

    /// Forgets a write-open of (dev, ino) made by another container than
    /// `cgroup_id`: the entry is from a file that was deleted and whose
    /// inode number the new container's file now has (the writer's cgroup
    /// ids are never reused). A write made by the container itself stays.
    /// Returns whether an entry was removed.
    pub fn forget_stale_write(&mut self, ino: u64, dev: u32, cgroup_id: u64) -> bool {
        let key = verifier_common::fastpath::WrittenKey { ino, dev, _pad: 0 };
        match self.written.get(&key, 0) {
            Ok(writer) if writer != cgroup_id => self.written.remove(&key).is_ok(),
            _ => false,
        }
    }
}

/// The agent's side of `ALLOWED_DIGESTS` (see `verifier_common::measure`):
/// the SHA-256 digests enforced containers may run, once in-kernel
/// measurement is active.
pub struct DigestMap(pub(crate) HashMap<MapData, verifier_common::measure::DigestKey, u32>);

impl std::fmt::Debug for DigestMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(verifier_common::measure::MAP_ALLOWED_DIGESTS)
    }
}

impl DigestMap {
    /// Containers of baseline `slot` may run files with this SHA-256.
    pub fn allow(&mut self, slot: u32, sha256: [u8; 32]) -> Result<(), MapError> {
        self.0
            .insert(verifier_common::measure::DigestKey { sha256, slot }, 1, 0)
            .map_err(|source| MapError::Write { name: verifier_common::measure::MAP_ALLOWED_DIGESTS, source })
    }
}

/// Reads the per-CPU counters.
pub struct KernelCounters(pub(crate) PerCpuArray<MapData, u64>);

impl KernelCounters {
    /// Per counter (index order of [`Counter::ALL`]): per-CPU values.
    pub fn read(&self) -> Result<Vec<Vec<u64>>, MapError> {
        (0..COUNTER_COUNT)
            .map(|i| {
                self.0
                    .get(&i, 0)
                    .map(|v| v.iter().copied().collect())
                    .map_err(|source| MapError::Read { name: MAP_COUNTERS, source })
            })
            .collect()
    }

    /// Sum over CPUs of one counter.
    pub fn total(&self, counter: Counter) -> Result<u64, MapError> {
        Ok(self.read()?[counter as usize].iter().sum())
    }
}

/// The kernel's throttle maps, read-only for the agent.
pub struct ThrottleMaps {
    pub state: BpfHashMap<MapData, u64, ThrottleState>,
    pub suppressed: PerCpuHashMap<MapData, u64, Suppressed>,
}

impl ThrottleMaps {
    /// Execs suppressed in `cgroup_id`, summed over CPUs.
    pub fn suppressed(&self, cgroup_id: u64) -> u64 {
        self.totals(cgroup_id).execs
    }

    /// Execs suppressed and new files among them that went unjudged in
    /// `cgroup_id`, summed over CPUs.
    pub fn totals(&self, cgroup_id: u64) -> Suppressed {
        self.suppressed.get(&cgroup_id, 0).map_or(Suppressed::default(), |v| {
            v.iter().fold(Suppressed::default(), |a, s| Suppressed {
                execs: a.execs + s.execs,
                unjudged_new: a.unjudged_new + s.unjudged_new,
            })
        })
    }

    pub fn last_suppressed_ns(&self, cgroup_id: u64) -> Option<u64> {
        self.state.get(&cgroup_id, 0).ok().map(|s| s.last_suppressed_ns)
    }
}
