//! Enforcement on kernels without BPF LSM: kill, from the tracepoint, an
//! exec or executable mapping of a file an enforced container may not run.
//!
//! Two small programs, apart from the reporting ones so that neither grows
//! the exec program (which is near the kernel verifier's budget):
//!
//! - `enforce_exec`, raw tracepoint `sched_process_exec`
//!   (`TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm
//!   *bprm)`, include/trace/events/sched.h). It fires in `exec_binprm()`
//!   after the new image is installed (`current->mm->exe_file` is the file
//!   executed) and before the task returns to user space.
//! - `enforce_mmap`, trace event `syscalls:sys_enter_mmap` (prot is
//!   `args[2]`, flags `args[3]`, fd `args[4]`; see `mmap.rs` for the
//!   format): a file about to be mapped with `PROT_EXEC`.
//!
//! Only cgroups in `ENFORCE` are looked at (one hash lookup for every
//! other exec or mapping on the node). In them, the file is blocked when
//! it has no name (`i_nlink == 0`: memfd or deleted), was opened for
//! writing in a container (`WRITTEN`), or its identity is not in
//! `ALLOWED` for the container's baseline slot (`WATCHED`). Blocking is
//! `bpf_send_signal(SIGKILL)`: the signal is pending on the current task
//! and taken on its way back to user space, so not one instruction of the
//! new image (nor of the mapped library: the `mmap` returns into a task
//! that dies) runs. A `#!` script is decided by its interpreter's
//! identity: the kernel does not name the script's file here (the agent
//! still judges and reports the script). Processes in the host's mount
//! namespace (runc's own `runc init`, which is put into the container's
//! cgroup before it joins the container's namespaces) are never blocked.
//!
//! In dry-run mode ([`MODE_DRY_RUN`]) the same record is sent and nothing
//! is killed.
//!
//! The decision itself ([`enforced_here`], [`judge_file`], [`block`]) is
//! shared with the BPF LSM programs (`lsm.rs`), which deny the same files
//! with `-EPERM` before the exec or mapping happens; the agent attaches
//! one mechanism or the other, never both.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_ktime_get_ns,
        generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_send_signal},
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use verifier_common::{
    counters::Counter,
    enforce::{
        BLOCK_PATH_LEAF_FIRST, BLOCK_PATH_MAX, BLOCK_PATH_TRUNCATED, BLOCK_PATH_UNREAD, BlockMessage,
        BlockRecord, HOOK_EXEC, HOOK_MMAP, MECHANISM_TRACEPOINT_KILL, MODE_ENFORCE, MODE_MASK,
        REASON_FILELESS, REASON_NO_IDENTITY, REASON_NOT_ALLOWED, REASON_WRITTEN,
    },
    event::{FileIdentity, KIND_BLOCK},
    fastpath::VerifiedKey,
    offsets::KernelOffsets,
};

use crate::{
    kernel::{fd_file, file_path, inode_identity, read, read_ptr},
    maps::{ALLOWED, CONFIG, ENFORCE, EVENTS, MMAP_SCRATCH, WATCHED, count, was_written},
};

/// `SIGKILL` (include/uapi/asm-generic/signal.h).
const SIGKILL: u32 = 9;
/// `PROT_EXEC` (include/uapi/asm-generic/mman-common.h).
pub(crate) const PROT_EXEC: u64 = 0x4;
/// `MAP_ANONYMOUS` (include/uapi/asm-generic/mman-common.h).
const MAP_ANONYMOUS: u64 = 0x20;

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn enforce_exec(_ctx: RawTracePointContext) -> i32 {
    match try_enforce_exec() {
        Ok(()) | Err(_) => 0,
    }
}

fn try_enforce_exec() -> Result<(), i64> {
    let Some(here) = enforced_here() else { return Ok(()) };
    let off = &CONFIG.load().offsets;
    // SAFETY: the current task, only read through probe-reads.
    let task = unsafe { bpf_get_current_task() };
    // `current->mm->exe_file`: the file just executed.
    let file = read_ptr(task, off.task_mm).and_then(|mm| read_ptr(mm, off.mm_exe_file));
    let (identity, reasons) = judge_exec(file, &here, off);
    if reasons != 0 {
        block(&here, reasons, HOOK_EXEC, MECHANISM_TRACEPOINT_KILL, identity, -1, 0, 0);
    }
    Ok(())
}

#[tracepoint(category = "syscalls", name = "sys_enter_mmap")]
pub fn enforce_mmap(ctx: TracePointContext) -> u32 {
    match try_enforce_mmap(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_enforce_mmap(ctx: &TracePointContext) -> Result<(), i64> {
    let Some(here) = enforced_here() else { return Ok(()) };
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
    // SAFETY: the current task, only read through probe-reads.
    let task = unsafe { bpf_get_current_task() };
    // A descriptor that names no open file fails the mmap itself.
    let (identity, reasons) = judge_file(fd_file(task, fd, off)?, here.slot, off)?;
    if reasons != 0 {
        block(&here, reasons, HOOK_MMAP, MECHANISM_TRACEPOINT_KILL, identity, fd as i32, 0, 0);
    }
    Ok(())
}

/// The current task's container, when it is enforced and the task is not
/// in the host's mount namespace.
pub(crate) struct Here {
    /// `MODE_*`, without the `WRITES_*` flags.
    pub mode: u32,
    /// The `WRITES_*` flags of the container's `ENFORCE` value.
    pub writes: u32,
    pub slot: u32,
    pub cgroup_id: u64,
}

/// Whether the current task is to be judged at all: its cgroup is in
/// `ENFORCE` (one hash lookup for everyone else) and it is not in the
/// host's mount namespace.
#[inline(always)]
pub(crate) fn enforced_here() -> Option<Here> {
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: values copied out at once; the agent inserts whole entries.
    let value = *unsafe { ENFORCE.get(&cgroup_id) }?;
    // SAFETY: as above.
    let slot = *unsafe { WATCHED.get(&cgroup_id) }?;
    let config = CONFIG.load();
    // SAFETY: the current task, only read through probe-reads.
    let task = unsafe { bpf_get_current_task() };
    if in_host_mnt_ns(task, &config.offsets, config.host_mnt_ns) {
        return None;
    }
    Some(Here { mode: value & MODE_MASK, writes: value & !MODE_MASK, slot, cgroup_id })
}

/// An executed file: its identity and why it may not run; a file that
/// cannot be read is blocked (`no-identity`).
#[inline(always)]
pub(crate) fn judge_exec(file: Result<u64, i64>, here: &Here, off: &KernelOffsets) -> (FileIdentity, u16) {
    match file.and_then(|f| judge_file(f, here.slot, off)) {
        Ok(judged) => judged,
        Err(_) => (FileIdentity::default(), REASON_NO_IDENTITY),
    }
}

/// A file (`struct file *`) about to run in the container with this
/// baseline slot: its identity and why it may not (`REASON_*` bits; 0: it
/// may). The one decision both mechanisms make.
#[inline(always)]
pub(crate) fn judge_file(file: u64, slot: u32, off: &KernelOffsets) -> Result<(FileIdentity, u16), i64> {
    let inode = read_ptr(file, off.file_f_inode)?;
    let identity = inode_identity(inode, off)?;
    let nlink = read::<u32>(inode, off.inode_i_nlink)?;
    let mut reasons = 0;
    if nlink == 0 {
        reasons |= REASON_FILELESS;
    }
    if was_written(identity.ino, identity.dev) {
        reasons |= REASON_WRITTEN;
    }
    // SAFETY: lookup only.
    if unsafe { ALLOWED.get(&VerifiedKey { identity, slot, _pad: 0 }) }.is_none() {
        reasons |= REASON_NOT_ALLOWED;
    }
    Ok((identity, reasons))
}

/// A file opened for writing (`struct file *`, `FMODE_WRITE` already
/// checked) whose identity is in the container's allowed set: the image's
/// own verified code, which writes may not change. `None`: not one.
#[inline(always)]
pub(crate) fn judge_write(file: u64, slot: u32, off: &KernelOffsets) -> Result<Option<FileIdentity>, i64> {
    let inode = read_ptr(file, off.file_f_inode)?;
    let identity = inode_identity(inode, off)?;
    // SAFETY: lookup only.
    let allowed = unsafe { ALLOWED.get(&VerifiedKey { identity, slot, _pad: 0 }) }.is_some();
    Ok(allowed.then_some(identity))
}

/// Counts and reports a block; with [`MECHANISM_TRACEPOINT_KILL`] in
/// enforce mode, also kills the current task. Returns true when the
/// caller must deny (enforce mode). `path`: a kernel string naming the
/// file (0: none), carried in the record for the agent to judge the file
/// by when no exec record will name it.
#[expect(clippy::too_many_arguments, reason = "one record's fields, each from the hook that blocked")]
#[inline(always)]
pub(crate) fn block(
    here: &Here,
    reasons: u16,
    hook: u16,
    mechanism: u16,
    identity: FileIdentity,
    fd: i32,
    path: u64,
    file: u64,
) -> bool {
    let deny = here.mode == MODE_ENFORCE;
    let signal_rc = if deny {
        count(Counter::Blocked);
        if mechanism == MECHANISM_TRACEPOINT_KILL {
            // SAFETY: signals the current task; no pointer arguments.
            unsafe { bpf_send_signal(SIGKILL) as i32 }
        } else {
            0
        }
    } else {
        count(Counter::WouldBlock);
        0
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let record = BlockRecord {
        kind: KIND_BLOCK,
        reasons,
        hook,
        mechanism,
        mode: here.mode,
        signal_rc,
        // SAFETY: helper without arguments.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id: here.cgroup_id,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        identity,
        slot: here.slot,
        fd,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        path_len: 0,
        path_flags: 0,
        _pad: 0,
    };
    // Reserved in the ring buffer and filled in place: a path buffer does
    // not fit on the BPF stack.
    let Some(mut entry) = EVENTS.reserve::<BlockMessage>(0) else {
        count(Counter::BlockDropped);
        return deny;
    };
    let message = entry.as_mut_ptr();
    // SAFETY: `message` is the reserved entry, sized for a BlockMessage;
    // fields are written through raw pointers, never read uninitialized.
    unsafe {
        core::ptr::addr_of_mut!((*message).record).write(record);
        if path != 0 {
            let copied = bpf_probe_read_kernel_str(
                core::ptr::addr_of_mut!((*message).path).cast(),
                BLOCK_PATH_MAX as u32,
                path as *const _,
            );
            // `copied` counts the NUL.
            let (len, flags) = if copied <= 0 {
                (0, BLOCK_PATH_UNREAD)
            } else if copied as usize >= BLOCK_PATH_MAX {
                ((BLOCK_PATH_MAX - 1) as u16, BLOCK_PATH_TRUNCATED)
            } else {
                ((copied - 1) as u16, 0)
            };
            core::ptr::addr_of_mut!((*message).record.path_len).write(len);
            core::ptr::addr_of_mut!((*message).record.path_flags).write(flags);
        }
    }
    if path == 0 && file != 0 {
        file_names(message, file);
    }
    entry.submit(0);
    deny
}

/// Fills a block message's path with `file`'s names, walked in the kernel
/// ([`file_path`], in this CPU's mapping scratch, then copied): a denied
/// write has no exec or mapping record to name its file.
#[inline(always)]
fn file_names(message: *mut BlockMessage, file: u64) {
    let Some(scratch) = MMAP_SCRATCH.get_ptr_mut(0) else { return };
    // SAFETY: map value pointer for this CPU, valid for the program's run.
    let scratch = unsafe { &mut *scratch };
    // SAFETY: the current task pointer, only read through probe-reads.
    let task = unsafe { bpf_get_current_task() };
    let walked = file_path(task, file, &CONFIG.load().offsets, scratch);
    // SAFETY: a plain load from this CPU's map value.
    let len =
        usize::from(unsafe { core::ptr::read_volatile(&scratch.header.path_len) }) & (BLOCK_PATH_MAX - 1);
    let flags = if walked == 0 { BLOCK_PATH_LEAF_FIRST } else { BLOCK_PATH_UNREAD };
    // SAFETY: `message` is the reserved entry; `len < BLOCK_PATH_MAX`, the
    // size of its path; the source is this CPU's scratch.
    unsafe {
        if walked == 0
            && bpf_probe_read_kernel(
                core::ptr::addr_of_mut!((*message).path).cast(),
                len as u32,
                scratch.path.as_ptr().cast(),
            ) == 0
        {
            core::ptr::addr_of_mut!((*message).record.path_len).write(len as u16);
        }
        core::ptr::addr_of_mut!((*message).record.path_flags).write(flags);
    }
}

/// True when the task is in the host's mount namespace
/// (`task->nsproxy->mnt_ns->ns.inum`).
#[inline(always)]
fn in_host_mnt_ns(task: u64, off: &KernelOffsets, host: u32) -> bool {
    let inum = read_ptr(task, off.task_nsproxy)
        .and_then(|ns| read_ptr(ns, off.nsproxy_mnt_ns))
        .and_then(|mnt| read::<u32>(mnt, off.mnt_ns_inum));
    matches!(inum, Ok(i) if i == host && host != 0)
}
