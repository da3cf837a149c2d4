//! `file_mprotect` (BPF LSM): a file mapping made executable after it was
//! mapped, `mprotect(PROT_EXEC)`, the way around the `sys_enter_mmap` hook
//! (map a dropped library readable, then make it code).
//!
//! `security_file_mprotect(struct vm_area_struct *vma, unsigned long
//! reqprot, unsigned long prot)` runs in `mprotect_fixup`'s caller for each
//! VMA the call changes, before the change. A VMA with a file
//! (`vma->vm_file`) that was not executable (`vm_flags` without `VM_EXEC`)
//! and becomes so is reported exactly as a mapping with `PROT_EXEC` is
//! ([`crate::mmap::report_mapping`]: fast path, path walked in the kernel)
//! in a watched container; in a container whose enforcement runs on BPF
//! LSM, a file not in its allowed set is also denied (`EPERM`), as
//! `lsm_mmap` denies the mapping.
//!
//! An LSM program: it loads only where the kernel runs BPF LSM (an active
//! `bpf` LSM); elsewhere the agent reports the hook as unavailable and
//! this remains a blind spot (docs/design.md). Anonymous memory made
//! executable (JIT, copied code) has no file to judge.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_task},
    macros::lsm,
    programs::LsmContext,
};
use verifier_common::enforce::{HOOK_MMAP, MECHANISM_BPF_LSM};

use crate::{
    enforce::{PROT_EXEC, block, enforced_here, judge_file},
    kernel::{read, read_ptr},
    maps::{CONFIG, WATCHED},
    mmap::report_mapping,
};

/// `VM_EXEC` (include/linux/mm.h).
const VM_EXEC: u64 = 0x4;
/// `EPERM` (include/uapi/asm-generic/errno-base.h).
const EPERM: i32 = 1;

#[lsm(hook = "file_mprotect")]
pub fn lsm_mprotect(ctx: LsmContext) -> i32 {
    let vma: u64 = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    if prot & PROT_EXEC == 0 {
        return 0;
    }
    let off = &CONFIG.load().offsets;
    let Ok(file) = read_ptr(vma, off.vma_vm_file) else { return 0 };
    if file == 0 || matches!(read::<u64>(vma, off.vma_vm_flags), Ok(f) if f & VM_EXEC != 0) {
        return 0;
    }
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out at once.
    if let Some(&slot) = unsafe { WATCHED.get(&cgroup_id) } {
        // SAFETY: the current task pointer, only read through probe-reads.
        let task = unsafe { bpf_get_current_task() };
        let _ = report_mapping(task, file, -1, cgroup_id, slot);
    }
    let Some(here) = enforced_here() else { return 0 };
    match judge_file(file, here.slot, off) {
        Ok((identity, reasons)) if reasons != 0 => {
            if block(&here, reasons, HOOK_MMAP, MECHANISM_BPF_LSM, identity, -1, 0, 0) { -EPERM } else { 0 }
        }
        _ => 0,
    }
}
