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

/// FNV-1a over the name's length and its last [`NAME_HASH_WORDS`] 8-byte
/// words (words before the name's start count as 0). A bounded tail, not
/// the whole name: hashing all 512 words of a 4 KiB name in every
/// verifier state that reaches here went past the instruction budget.
/// Scripts whose names differ only further from the end and have the same
/// length count as one file (one is judged; the others' execs are counted
/// as suppressed). The caller zeroes the bytes after the name's NUL in its
/// last word. Not collision-resistant.
#[inline(always)]
fn name_hash((name, len): (&[u8; NAME_BUF], usize)) -> u64 {
    let end = (len + 7) & !7;
    let start = if end > NAME_HASH_WORDS * 8 { end - NAME_HASH_WORDS * 8 } else { 0 };
    // The mask is for the kernel's verifier: LLVM knows `start` is in range
    // and drops a plain mask, and 6.18's verifier then could not bound the
    // read ("invalid access to map value ... off=8279", kernel matrix).
    // `black_box` hides `start` from LLVM, so the mask stays.
    let start = core::hint::black_box(start) & (FILENAME_MAX - 1) & !7;
    let words = name.as_ptr().cast::<u64>();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ len as u64;
    for i in 0..NAME_HASH_WORDS {
        let at = start + i * 8;
        // SAFETY: `at < FILENAME_MAX + NAME_HASH_WORDS * 8 <= NAME_BUF`,
        // 8-byte aligned, and the buffer sits at an aligned offset of its
        // map value.
        let w = unsafe { words.add(at / 8).read() };
        // All ones while the word starts inside the name (both < 4096).
        let keep = ((at as i64 - len as i64) >> 63) as u64;
        h = (h ^ (w & keep)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Words of a script's name the throttle hashes (the last 64 bytes).
const NAME_HASH_WORDS: usize = 8;
