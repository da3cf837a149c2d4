//! `syscalls:sys_enter_mmap`: code mapped from a file in a watched
//! container (library drift).
//!
//! Checked against the format of this trace event on Linux 6.x
//! (`/sys/kernel/tracing/events/syscalls/sys_enter_mmap/format`):
//!
//! ```text
//! field:int __syscall_nr;      offset:8;  size:4;
//! field:unsigned long addr;    offset:16; size:8;
//! field:unsigned long len;     offset:24; size:8;
//! field:unsigned long prot;    offset:32; size:8;
//! field:unsigned long flags;   offset:40; size:8;
//! field:unsigned long fd;      offset:48; size:8;
//! field:unsigned long off;     offset:56; size:8;
//! ```
//!
//! (`struct syscall_trace_enter`: `args[]` starts at the BTF offset of
//! `args`; prot is `args[2]`, fd `args[4]`.) The dynamic loader maps each
//! shared library's code with `PROT_EXEC` from an open descriptor, before
//! any of it runs. A file whose identity is in `VERIFIED` for the
//! container's baseline is known good (one lookup, nothing sent), unless
//! it was opened for writing in a container (`WRITTEN`: sent, flagged);
//! any other is sent to the agent, which verifies it like an executable.
//! Entry, not exit: the descriptor is certainly open here. A mapping that
//! then fails is still reported (harmless: the file was offered as code).
//! `mprotect(PROT_EXEC)` of an existing file mapping is seen by the BPF LSM
//! `file_mprotect` program where the kernel runs BPF LSM (`mprotect.rs`).

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_ktime_get_ns,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use verifier_common::{
    counters::Counter,
    event::{FLAG_WRITTEN, KIND_MMAP_EXEC, MAPPED_PATH_MAX, MMAP_RECORD_SIZE, MmapRecord, MmapScratch},
    fastpath::VerifiedKey,
};

use crate::{
    kernel::{fd_file, file_path, inode_identity, read_ptr, root_dir},
    maps::{CONFIG, EVENTS, MMAP_SCRATCH, VERIFIED, WATCHED, count, was_written},
};

/// `PROT_EXEC` (include/uapi/asm-generic/mman-common.h).
const PROT_EXEC: u64 = 0x4;
/// `MAP_ANONYMOUS` (include/uapi/asm-generic/mman-common.h).
const MAP_ANONYMOUS: u64 = 0x20;

#[tracepoint(category = "syscalls", name = "sys_enter_mmap")]
pub fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    match try_mmap(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

#[inline(always)]
fn try_mmap(ctx: &TracePointContext) -> Result<(), i64> {
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out at once.
    let Some(&slot) = (unsafe { WATCHED.get(&cgroup_id) }) else {
        return Ok(());
    };
    let off = &CONFIG.load().offsets;
    let args = off.tp_sys_enter_args as usize;
    // SAFETY: probe-reads of the tracepoint record at BTF offsets.
    let prot: u64 = unsafe { ctx.read_at(args + 2 * 8) }.map_err(i64::from)?;
    // SAFETY: as above.
    let flags: u64 = unsafe { ctx.read_at(args + 3 * 8) }.map_err(i64::from)?;
    // SAFETY: as above.
    let fd: u64 = unsafe { ctx.read_at(args + 4 * 8) }.map_err(i64::from)?;
    if prot & PROT_EXEC == 0 || flags & MAP_ANONYMOUS != 0 || fd > i32::MAX as u64 {
        return Ok(());
    }
    // SAFETY: the current task pointer, only read through probe-reads.
    let task = unsafe { bpf_get_current_task() };
    let file = fd_file(task, fd, off)?;
    report_mapping(task, file, fd as i32, cgroup_id, slot)
}

/// Reports `file`, being mapped as code by the current task in the watched
/// cgroup `cgroup_id` (baseline `slot`), unless it is known good: one
/// `VERIFIED` lookup, nothing sent (a file opened for writing in a
/// container is always sent, flagged). The record carries the file's path
/// walked in the kernel and the task's root. Shared with the
/// `mprotect(PROT_EXEC)` hook (`mprotect.rs`).
#[inline(always)]
pub fn report_mapping(task: u64, file: u64, fd: i32, cgroup_id: u64, slot: u32) -> Result<(), i64> {
    let off = &CONFIG.load().offsets;
    let identity = inode_identity(read_ptr(file, off.file_f_inode)?, off)?;
    let flags = if was_written(identity.ino, identity.dev) {
        FLAG_WRITTEN
    // SAFETY: lookup only; the agent inserts whole entries.
    } else if unsafe { VERIFIED.get(&VerifiedKey { identity, slot, _pad: 0 }) }.is_some() {
        count(Counter::MmapFastPath);
        return Ok(());
    } else {
        0
    };
    let scratch = MMAP_SCRATCH.get_ptr_mut(0).ok_or(-1i64)?;
    // SAFETY: map value pointer for this CPU, valid for the program's run.
    let scratch = unsafe { &mut *scratch };
    // The file's path as this task sees it, so the agent can name (and
    // open) the file when the process is gone before it looks.
    let path_flags = file_path(task, file, off, scratch);
    // SAFETY: a plain load from this CPU's map value.
    let path_len = usize::from(unsafe { core::ptr::read_volatile(&scratch.header.path_len) });
    let (root_ino, root_dev) = root_dir(task, off);
    let pid_tgid = bpf_get_current_pid_tgid();
    scratch.header = MmapRecord {
        kind: KIND_MMAP_EXEC,
        flags: flags | path_flags,
        fd,
        // SAFETY: helper without arguments.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        identity,
        slot,
        path_len: path_len as u16,
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        root_ino,
        root_dev,
        _pad_root: 0,
    };
    // Bounded where the helper takes it, hidden from LLVM so the
    // comparison stays for the kernel's verifier (see the exec program).
    let total = core::hint::black_box(MMAP_RECORD_SIZE + path_len);
    let total =
        if total > MMAP_RECORD_SIZE + MAPPED_PATH_MAX { MMAP_RECORD_SIZE + MAPPED_PATH_MAX } else { total };
    // SAFETY: `total` is bounded by the scratch value's size.
    let bytes = unsafe { core::slice::from_raw_parts((scratch as *const MmapScratch).cast::<u8>(), total) };
    match EVENTS.output::<[u8]>(bytes, 0) {
        Ok(()) => count(Counter::MmapSent),
        Err(_) => count(Counter::MmapDropped),
    }
    Ok(())
}
