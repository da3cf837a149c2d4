//! Maps and globals shared by the programs. Names match the constants in
//! `verifier_common` so the agent finds them.

use aya_ebpf::{
    Global,
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use verifier_common::{
    DEFAULT_RING_BYTES,
    counters::{COUNTER_COUNT, Counter},
    enforce::{ALLOWED_MAX, ENFORCE_MAX},
    event::{CgroupScratch, ExecScratch, MmapScratch},
    fastpath::{InodeKey, VERIFIED_MAX, VerifiedKey, WATCHED_MAX, WRITTEN_MAX, WrittenKey},
    offsets::ProgramConfig,
};

/// Offsets and options; overridden by the loader (`GLOBAL_CONFIG`).
#[unsafe(no_mangle)]
pub static CONFIG: Global<ProgramConfig> = Global::new(ProgramConfig::zeroed());

/// Exec records to userspace (`MAP_EVENTS`); the loader may resize it.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Per-CPU counters (`MAP_COUNTERS`).
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

/// Per-CPU record under construction (`MAP_SCRATCH`): too large for the
/// 512-byte BPF stack.
#[map]
pub static SCRATCH: PerCpuArray<ExecScratch> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU new-cgroup record under construction (`MAP_CGROUP_SCRATCH`).
#[map]
pub static CGROUP_SCRATCH: PerCpuArray<CgroupScratch> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU executable-mapping record under construction
/// (`MAP_MMAP_SCRATCH`): the record and its path.
#[map]
pub static MMAP_SCRATCH: PerCpuArray<MmapScratch> = PerCpuArray::with_max_entries(1, 0);

/// Containers whose execs are verified: cgroup id -> baseline slot
/// (`MAP_WATCHED`). Written by the agent.
#[map]
pub static WATCHED: HashMap<u64, u32> = HashMap::with_max_entries(WATCHED_MAX, 0);

/// Files verified `ok` per baseline (`MAP_VERIFIED`). Written by the agent.
#[map]
pub static VERIFIED: LruHashMap<VerifiedKey, u32> = LruHashMap::with_max_entries(VERIFIED_MAX, 0);

/// Inodes of verified files per baseline (`MAP_VERIFIED_INODES`): what a
/// write-open is checked against. Written by the agent, entries removed by
/// the write-open programs.
#[map]
pub static VERIFIED_INODES: LruHashMap<InodeKey, u32> = LruHashMap::with_max_entries(VERIFIED_MAX, 0);

/// Inodes opened for writing in watched containers (`MAP_WRITTEN`): (dev,
/// ino) -> the writer's cgroup id. Written by the write-open programs,
/// read by exec and mmap, which never fast-path a file found here.
#[map]
pub static WRITTEN: LruHashMap<WrittenKey, u64> = LruHashMap::with_max_entries(WRITTEN_MAX, 0);

/// Enforced containers: cgroup id -> mode (`MAP_ENFORCE`). Written by the
/// agent once the container's allowed set is filled.
#[map]
pub static ENFORCE: HashMap<u64, u32> = HashMap::with_max_entries(ENFORCE_MAX, 0);

/// Files an enforced container may run or map as code, per baseline slot
/// (`MAP_ALLOWED`). Written by the agent.
#[map]
pub static ALLOWED: LruHashMap<VerifiedKey, u32> = LruHashMap::with_max_entries(ALLOWED_MAX, 0);

/// True when the file (dev, ino) was opened for writing in a watched
/// container (it is in [`WRITTEN`]).
#[inline(always)]
pub fn was_written(ino: u64, dev: u32) -> bool {
    // SAFETY: lookup only; the value is not read.
    unsafe { WRITTEN.get(&WrittenKey { ino, dev, _pad: 0 }) }.is_some()
}

/// Adds one to a per-CPU counter. Tracepoint programs do not migrate while
/// they run, so a plain add on this CPU's slot is exact.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the pointer comes from the map lookup and is this CPU's slot.
        unsafe { *slot += 1 };
    }
}
