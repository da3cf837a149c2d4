//! Per-container exec throttle (see `verifier_common::throttle`): called
//! for every exec about to be sent to userspace.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::map,
    maps::{LruHashMap, LruPerCpuHashMap},
};
use verifier_common::{
    counters::Counter,
    event::KIND_THROTTLE,
    throttle::{THROTTLE_MAX, ThrottleRecord, ThrottleState, WINDOW_NS},
};

use crate::maps::{EVENTS, count};

/// cgroup id -> its throttle state (`MAP_THROTTLE`).
#[map]
pub static THROTTLE: LruHashMap<u64, ThrottleState> = LruHashMap::with_max_entries(THROTTLE_MAX, 0);

/// cgroup id -> execs suppressed, per CPU (`MAP_THROTTLE_SUPPRESSED`):
/// exact without atomics, which this target lacks.
#[map]
pub static THROTTLE_SUPPRESSED: LruPerCpuHashMap<u64, u64> =
    LruPerCpuHashMap::with_max_entries(THROTTLE_MAX, 0);

/// `BPF_NOEXIST`: insert only when the key is absent.
const BPF_NOEXIST: u64 = 1;

/// True when this exec must not be sent: `cgroup_id` is past `limit`
/// execs in the current window. Counts what it suppresses; the first
/// suppressed exec of an episode sends a throttle-start record.
#[inline(always)]
pub fn throttled(cgroup_id: u64, now: u64, limit: u32) -> bool {
    if limit == 0 {
        return false;
    }
    let fresh = ThrottleState { window_start_ns: now, ..ThrottleState::default() };
    // Concurrent inserts race harmlessly: one wins, NOEXIST fails the other.
    let _ = THROTTLE.insert(&cgroup_id, &fresh, BPF_NOEXIST);
    let Some(state) = THROTTLE.get_ptr_mut(&cgroup_id) else {
        return false;
    };
    // SAFETY: a map value pointer, valid for this program run; the fields
    // are plain u64s (racing CPUs may lose a window count, never memory).
    let state = unsafe { &mut *state };
    if now.wrapping_sub(state.window_start_ns) >= WINDOW_NS {
        state.window_start_ns = now;
        state.window_count = 0;
    }
    state.window_count += 1;
    if state.window_count <= u64::from(limit) {
        return false;
    }
    let episode_starts =
        state.last_suppressed_ns == 0 || now.wrapping_sub(state.last_suppressed_ns) >= WINDOW_NS;
    state.last_suppressed_ns = now;
    let _ = THROTTLE_SUPPRESSED.insert(&cgroup_id, &0, BPF_NOEXIST);
    if let Some(n) = THROTTLE_SUPPRESSED.get_ptr_mut(&cgroup_id) {
        // SAFETY: this CPU's slot of the map value; programs do not migrate.
        unsafe { *n += 1 };
    }
    count(Counter::Throttled);
    if episode_starts {
        let pid_tgid = bpf_get_current_pid_tgid();
        let record = ThrottleRecord {
            kind: KIND_THROTTLE,
            flags: 0,
            limit,
            ktime_ns: now,
            cgroup_id,
            _reserved: 0,
            pid: pid_tgid as u32,
            tgid: (pid_tgid >> 32) as u32,
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
        };
        // A lost start record is not lost information: the agent also
        // finds episodes by reading this map when `Throttled` moves.
        let _ = EVENTS.output::<ThrottleRecord>(&record, 0);
    }
    true
}
