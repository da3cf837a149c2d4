//! Enforcement where the kernel runs BPF LSM programs (booted with
//! `lsm=...,bpf`): deny, with `-EPERM`, an exec or executable mapping of a
//! file an enforced container may not run. Nothing of it runs: the exec
//! fails before the old image is torn down (the caller sees `EPERM` and
//! goes on), the `mmap` fails before anything is mapped.
//!
//! - `lsm_exec`, `bprm_check_security(struct linux_binprm *bprm)`: called
//!   from `exec_binprm()` → `search_binary_handler()` once the file is
//!   open, before any binary handler loads it. The file is `bprm->file`;
//!   for a `#!` script the hook runs again for the interpreter, so both
//!   the script and its interpreter are judged (the script, not being an
//!   image binary in the allowed set unless the SBOM lists it executable,
//!   is then blocked like any other file).
//! - `lsm_mmap`, `mmap_file(struct file *file, unsigned long reqprot,
//!   unsigned long prot, unsigned long flags)`: `prot` with `PROT_EXEC`
//!   and a file (anonymous mappings have none).
//! - `lsm_file_open`, `file_open(struct file *file)`: in a container whose
//!   `ENFORCE` value has [`WRITES_DENY`], an open with `FMODE_WRITE` of a
//!   file in its allowed set fails with `EPERM`. `file_open` rather than
//!   `file_permission`: it runs once per open (in `do_dentry_open()`,
//!   before `O_TRUNC` truncates anything), not on every `read`/`write` of
//!   every file on the node, and the caller gets no descriptor at all.
//!   A descriptor opened before the container was enforced is not seen.
//!
//! The decision is the tracepoint programs' (`enforce.rs`: [`enforced_here`],
//! [`judge_file`], [`block`]) and so is the record, with mechanism
//! `bpf-lsm`; in dry-run mode the record is sent and nothing is denied.
//! Each program returns only 0 or `-EPERM` (newer kernels' verifiers check
//! an LSM program's return range); the hook's trailing `retval` argument
//! is not read: a BPF LSM program that denied before this one stops the
//! chain, so it would always be 0 here, and the other LSMs' denials are
//! the kernel's to combine.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use verifier_common::enforce::{
    HOOK_EXEC, HOOK_MMAP, HOOK_WRITE, MECHANISM_BPF_LSM, REASON_IMAGE_FILE, WRITES_DENY,
};

use crate::{
    enforce::{PROT_EXEC, block, enforced_here, judge_exec, judge_file, judge_write},
    kernel::{read, read_ptr},
    maps::CONFIG,
    write::FMODE_WRITE,
};

/// `EPERM` (include/uapi/asm-generic/errno-base.h).
const EPERM: i32 = 1;

#[lsm(hook = "bprm_check_security")]
pub fn lsm_exec(ctx: LsmContext) -> i32 {
    let Some(here) = enforced_here() else { return 0 };
    let off = &CONFIG.load().offsets;
    let bprm: u64 = ctx.arg(0);
    let (identity, reasons) = judge_exec(read_ptr(bprm, off.bprm_file), &here, off);
    // The name of `bprm->file`: `bprm->interp` (the executed name on the
    // first pass, the interpreter's once a `#!` handler substituted it;
    // `bprm->filename` stays the script's).
    let name = read_ptr(bprm, off.bprm_interp).unwrap_or(0);
    if reasons != 0 && block(&here, reasons, HOOK_EXEC, MECHANISM_BPF_LSM, identity, -1, name, 0) {
        return -EPERM;
    }
    0
}

#[lsm(hook = "mmap_file")]
pub fn lsm_mmap(ctx: LsmContext) -> i32 {
    let file: u64 = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    if file == 0 || prot & PROT_EXEC == 0 {
        return 0;
    }
    let Some(here) = enforced_here() else { return 0 };
    let off = &CONFIG.load().offsets;
    match judge_file(file, here.slot, off) {
        Ok((identity, reasons)) if reasons != 0 => {
            if block(&here, reasons, HOOK_MMAP, MECHANISM_BPF_LSM, identity, -1, 0, 0) { -EPERM } else { 0 }
        }
        _ => 0,
    }
}

#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    let file: u64 = ctx.arg(0);
    let Some(here) = enforced_here() else { return 0 };
    if here.writes & WRITES_DENY == 0 {
        return 0;
    }
    let off = &CONFIG.load().offsets;
    if !matches!(read::<u32>(file, off.file_f_mode), Ok(mode) if mode & FMODE_WRITE != 0) {
        return 0;
    }
    match judge_write(file, here.slot, off) {
        Ok(Some(identity)) => {
            if block(&here, REASON_IMAGE_FILE, HOOK_WRITE, MECHANISM_BPF_LSM, identity, -1, 0, file) {
                -EPERM
            } else {
                0
            }
        }
        _ => 0,
    }
}
