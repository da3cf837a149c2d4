//! Per-container exec throttle (see `verifier_common::throttle`): called
//! for every exec about to be sent to userspace.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::map,
    maps::{LruHashMap, LruPerCpuHashMap},
};
use verifier_common::{
    counters::Counter,
    event::{ARGS_MAX, FILENAME_MAX, FileIdentity, KIND_THROTTLE},
    throttle::{
        NEW_PER_WINDOW, Suppressed, THROTTLE_MAX, THROTTLE_NEW_MAX, ThrottleKey, ThrottleRecord,
        ThrottleState, WINDOW_NS,
    },
};

use crate::maps::{EVENTS, count};

/// cgroup id -> its throttle state (`MAP_THROTTLE`).
#[map]
pub static THROTTLE: LruHashMap<u64, ThrottleState> = LruHashMap::with_max_entries(THROTTLE_MAX, 0);

/// cgroup id -> execs suppressed, per CPU (`MAP_THROTTLE_SUPPRESSED`):
/// exact without atomics, which this target lacks.
#[map]
pub static THROTTLE_SUPPRESSED: LruPerCpuHashMap<u64, Suppressed> =
    LruPerCpuHashMap::with_max_entries(THROTTLE_MAX, 0);

/// File of a throttled exec -> the window it was sent in
/// (`MAP_THROTTLE_NEW`): tells a new file from a repeat.
#[map]
pub static THROTTLE_NEW: LruHashMap<ThrottleKey, u64> = LruHashMap::with_max_entries(THROTTLE_NEW_MAX, 0);

/// The file an exec ran, as the throttle tells new files from repeats:
/// `name_hash` is 0 for a binary, a hash of the executed name for a `#!`
/// script (whose identity is its interpreter's).
pub struct ExecFile<'a> {
    pub exe: &'a FileIdentity,
    /// The script's name: the record buffer and the name's length in it.
    pub script_name: Option<(&'a [u8; NAME_BUF], usize)>,
}

/// The record buffer the name is read into (name, then arguments).
pub const NAME_BUF: usize = FILENAME_MAX + ARGS_MAX;

/// `BPF_NOEXIST`: insert only when the key is absent.
const BPF_NOEXIST: u64 = 1;

/// True when this exec must not be sent: `cgroup_id` is past `limit`
/// execs in the current window and `file` was already sent in it (or the
/// window's [`NEW_PER_WINDOW`] new files are used up). Counts what it
/// suppresses; the first suppressed exec of an episode sends a
/// throttle-start record.
#[inline(always)]
pub fn throttled(cgroup_id: u64, now: u64, limit: u32, file: &ExecFile) -> bool {
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
        state.window_new = 0;
    }
    state.window_count += 1;
    if state.window_count <= u64::from(limit) {
        return false;
    }
    // Past the limit only repeats are counted away: the first exec of a
    // file in this window is sent, up to NEW_PER_WINDOW of them.
    let key = ThrottleKey {
        cgroup_id,
        ino: file.exe.ino,
        ctime_sec: file.exe.ctime_sec,
        name_hash: file.script_name.map_or(0, name_hash),
        ctime_nsec: file.exe.ctime_nsec,
        dev: file.exe.dev,
    };
    // SAFETY: the value is copied out at once.
    let repeat = unsafe { THROTTLE_NEW.get(&key) }.is_some_and(|&w| w == state.window_start_ns);
    let mut unjudged = 0;
    if !repeat {
        let _ = THROTTLE_NEW.insert(&key, &state.window_start_ns, 0);
        if state.window_new < NEW_PER_WINDOW {
            state.window_new += 1;
            return false;
        }
        unjudged = 1;
    }
    let episode_starts =
        state.last_suppressed_ns == 0 || now.wrapping_sub(state.last_suppressed_ns) >= WINDOW_NS;
    state.last_suppressed_ns = now;
    let _ = THROTTLE_SUPPRESSED.insert(&cgroup_id, &Suppressed::default(), BPF_NOEXIST);
    if let Some(n) = THROTTLE_SUPPRESSED.get_ptr_mut(&cgroup_id) {
        // SAFETY: this CPU's slot of the map value; programs do not migrate.
        unsafe {
            (*n).execs += 1;
            (*n).unjudged_new += unjudged;
        }
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

/// FNV-1a over the first `len` bytes of `name` in 8-byte words (the last
/// one masked to the name), bounded so the verifier sees a finite loop.
/// Not collision-resistant: it tells apart names a workload uses, not
/// names built to collide.
#[inline(always)]
fn name_hash((name, len): (&[u8; NAME_BUF], usize)) -> u64 {
    const WORDS: usize = FILENAME_MAX / 8;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0usize;
    while i < WORDS && i * 8 < len {
        let at = i * 8;
        // SAFETY: `at + 8 <= FILENAME_MAX <= NAME_BUF`: inside the buffer.
        let mut w = unsafe { core::ptr::read_unaligned(name.as_ptr().add(at).cast::<u64>()) };
        let left = len - at;
        if left < 8 {
            w &= (1u64 << (left * 8)) - 1;
        }
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h ^ len as u64
}
