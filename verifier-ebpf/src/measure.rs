//! In-kernel measurement at exec and executable mapping: the SHA-256 of
//! the file about to run, computed by IMA (`bpf_ima_file_hash`, Linux
//! 5.18+, sleepable BPF LSM programs only), must be one the container may
//! run (`ALLOWED_DIGESTS`, filled by the agent's pre-verification). See
//! `verifier_common::measure` for why identity alone is not enough.
//!
//! - `measure_exec`, `bprm_check_security(struct linux_binprm *bprm)`
//!   (sleepable): `bprm->file`, loaded directly from the BTF-typed
//!   argument so that the verifier types it `struct file *` (the helper
//!   takes nothing else). The offset comes from `CONFIG`, which lives in
//!   frozen `.rodata`: the verifier sees it as a constant.
//! - `measure_mmap`, `mmap_file(struct file *file, unsigned long reqprot,
//!   unsigned long prot, unsigned long flags)` (sleepable): a file mapped
//!   with `PROT_EXEC`. It also answers the agent's start-up probe
//!   (`MEASURE_PROBE`): the agent's own executable, mapped by the agent.
//!
//! They run beside `lsm.rs`'s programs on the same hooks, for the same
//! tasks ([`enforced_here`]). A denial carries the identity reasons too
//! ([`judge_file`]) plus `REASON_DIGEST`, so the record reads the same
//! whichever program the kernel ran first. A file IMA cannot hash with
//! SHA-256 is denied: what runs in an enforced container is measured.
//! IMA keeps the digest per inode only when its policy measures the file
//! (else every call hashes the whole file; see docs/enforcement.md).

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_ima_file_hash},
    macros::{lsm, map},
    maps::{Array, HashMap},
    programs::LsmContext,
};
use verifier_common::{
    enforce::{HOOK_EXEC, HOOK_MMAP, MECHANISM_BPF_LSM, REASON_DIGEST},
    measure::{ALLOWED_DIGESTS_MAX, DigestKey, HASH_ALGO_SHA256, MeasureProbe},
};

use crate::{
    enforce::{Here, PROT_EXEC, block, enforced_here, judge_file},
    kernel::read_ptr,
    maps::CONFIG,
};

/// `EPERM` (include/uapi/asm-generic/errno-base.h).
const EPERM: i32 = 1;

/// Digests an enforced container may run, per baseline slot
/// (`MAP_ALLOWED_DIGESTS`). Written by the agent.
#[map]
pub static ALLOWED_DIGESTS: HashMap<DigestKey, u32> = HashMap::with_max_entries(ALLOWED_DIGESTS_MAX, 0);

/// The agent's start-up probe (`MAP_MEASURE_PROBE`).
#[map]
pub static MEASURE_PROBE: Array<MeasureProbe> = Array::with_max_entries(1, 0);

#[lsm(hook = "bprm_check_security", sleepable)]
pub fn measure_exec(ctx: LsmContext) -> i32 {
    let Some(here) = enforced_here() else { return 0 };
    let off = &CONFIG.load().offsets;
    let bprm: u64 = ctx.arg(0);
    if bprm == 0 {
        return 0;
    }
    // SAFETY: a direct load from the BTF-typed `struct linux_binprm *` at a
    // constant offset; the verifier checks it against the kernel's BTF.
    let file = unsafe { core::ptr::read((bprm + u64::from(off.bprm_file)) as *const u64) };
    // The file's name, for the block record (as `lsm_exec` carries it):
    // the most recently attached program on a hook runs first and a denial
    // ends the chain, so this block may be the exec's only record.
    let name = read_ptr(bprm, off.bprm_interp).unwrap_or(0);
    measure(file, &here, HOOK_EXEC, name)
}

#[lsm(hook = "mmap_file", sleepable)]
pub fn measure_mmap(ctx: LsmContext) -> i32 {
    let file: u64 = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    if file == 0 || prot & PROT_EXEC == 0 {
        return 0;
    }
    answer_probe(file);
    let Some(here) = enforced_here() else { return 0 };
    measure(file, &here, HOOK_MMAP, 0)
}

/// Measures `file` for the enforced container `here`; `-EPERM` when its
/// SHA-256 is not one the container may run (enforce mode).
#[inline(always)]
fn measure(file: u64, here: &Here, hook: u16, name: u64) -> i32 {
    if file == 0 {
        return 0;
    }
    let mut key = DigestKey { sha256: [0; 32], slot: here.slot };
    // SAFETY: `file` is the kernel's `struct file *` (BTF-typed), `dst` a
    // 32-byte stack buffer.
    let algo = unsafe { bpf_ima_file_hash(file as *mut _, key.sha256.as_mut_ptr().cast(), 32) };
    // SAFETY: lookup only.
    if algo == HASH_ALGO_SHA256 && unsafe { ALLOWED_DIGESTS.get(&key) }.is_some() {
        return 0;
    }
    let off = &CONFIG.load().offsets;
    let (identity, reasons) = judge_file(file, here.slot, off).unwrap_or_default();
    if block(here, reasons | REASON_DIGEST, hook, MECHANISM_BPF_LSM, identity, -1, name, 0) {
        -EPERM
    } else {
        0
    }
}

/// When the current process is the one the agent's probe names, records
/// what IMA returns for `file` (the agent's own executable).
#[inline(always)]
fn answer_probe(file: u64) {
    let Some(probe) = MEASURE_PROBE.get_ptr_mut(0) else { return };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the map's one value; only the probing agent writes it.
    let probe = unsafe { &mut *probe };
    if probe.tgid == 0 || probe.tgid != tgid || probe.done != 0 {
        return;
    }
    // SAFETY: as in `measure`; `dst` is the map value's 32-byte array.
    probe.algo = unsafe { bpf_ima_file_hash(file as *mut _, probe.digest.as_mut_ptr().cast(), 32) };
    probe.done = 1;
}
