//! `syscalls:sys_exit_{openat,openat2,open,creat}`: regular files opened
//! for writing in a watched container.
//!
//! Checked against the format of these trace events on Linux 6.x
//! (`/sys/kernel/tracing/events/syscalls/sys_exit_openat/format`):
//!
//! ```text
//! field:int __syscall_nr; offset:8;  size:4;
//! field:long ret;         offset:16; size:8;
//! ```
//!
//! (`struct syscall_trace_exit`; the offset of `ret` comes from BTF.) At
//! the syscall's exit the descriptor is installed, so the program reads
//! `current->files->fdt->fd[ret]`, keeps it only if opened with
//! `FMODE_WRITE`. Every such regular file goes into `WRITTEN` (dev, ino),
//! whatever its verification state: a write that leaves the identity as
//! it was (payload and original written within one ctime tick) is still
//! seen by the exec and mmap programs, which never fast-path it and flag
//! its record. The inode is then looked up in `VERIFIED_INODES` for the
//! container's baseline slot: a hit is evicted from the fast path and
//! reported. Unwatched containers and the host cost one map lookup.
//!
//! Where writes to image files are enforced without BPF LSM (the
//! container's `ENFORCE` value has `WRITES_KILL`), a write-open of a file
//! in its allowed set kills the opener (`bpf_send_signal(SIGKILL)`, taken
//! before the syscall returns to user space: no `write` of this task runs)
//! and sends a block record; the file is then not marked written (its
//! bytes are as they were). What this does not prevent: `O_TRUNC` has
//! already emptied the file when the open returns (the identity no longer
//! matches the allowed set, so such an open is not even blocked: it is
//! reported as a write and the file's next exec is blocked as `written`),
//! and another thread of the same process may write through the new
//! descriptor before the kill reaches it. BPF LSM's `file_open` has
//! neither gap.

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
    event::{KIND_WRITE_OPEN, WriteRecord},
    fastpath::{InodeKey, VerifiedKey, WrittenKey},
};

use verifier_common::enforce::{HOOK_WRITE, MECHANISM_TRACEPOINT_KILL, REASON_IMAGE_FILE, WRITES_KILL};

use crate::{
    enforce::{block, enforced_here, judge_write},
    kernel::{fd_file, inode_identity, read, read_ptr},
    maps::{CONFIG, EVENTS, VERIFIED, VERIFIED_INODES, WATCHED, WRITTEN, count},
};

/// `FMODE_WRITE` (include/linux/fs.h): the file was opened for writing.
pub(crate) const FMODE_WRITE: u32 = 1 << 1;
/// `S_IFMT` / `S_IFREG` (include/uapi/linux/stat.h).
const S_IFMT: u16 = 0o170_000;
const S_IFREG: u16 = 0o100_000;

#[tracepoint(category = "syscalls", name = "sys_exit_openat")]
pub fn sys_exit_openat(ctx: TracePointContext) -> u32 {
    write_open(&ctx)
}

#[tracepoint(category = "syscalls", name = "sys_exit_openat2")]
pub fn sys_exit_openat2(ctx: TracePointContext) -> u32 {
    write_open(&ctx)
}

#[tracepoint(category = "syscalls", name = "sys_exit_open")]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    write_open(&ctx)
}

#[tracepoint(category = "syscalls", name = "sys_exit_creat")]
pub fn sys_exit_creat(ctx: TracePointContext) -> u32 {
    write_open(&ctx)
}

#[inline(always)]
fn write_open(ctx: &TracePointContext) -> u32 {
    match try_write_open(ctx) {
        Ok(()) | Err(_) => 0,
    }
}

#[inline(always)]
fn try_write_open(ctx: &TracePointContext) -> Result<(), i64> {
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out at once.
    let Some(&slot) = (unsafe { WATCHED.get(&cgroup_id) }) else {
        return Ok(());
    };
    let off = &CONFIG.load().offsets;
    // SAFETY: probe-read of the tracepoint record at a BTF offset.
    let ret: i64 = unsafe { ctx.read_at(off.tp_sys_exit_ret as usize) }.map_err(i64::from)?;
    if ret < 0 {
        return Ok(());
    }
    // SAFETY: the current task pointer, only read through probe-reads.
    let task = unsafe { bpf_get_current_task() };
    let file = fd_file(task, ret as u64, off)?;
    if read::<u32>(file, off.file_f_mode)? & FMODE_WRITE == 0 {
        return Ok(());
    }
    // Without O_TRUNC nothing has changed yet: the exact identity leaves
    // the fast path too (with O_TRUNC the ctime already moved, and the old
    // identity can never match again).
    let inode = read_ptr(file, off.file_f_inode)?;
    if read::<u16>(inode, off.inode_i_mode)? & S_IFMT != S_IFREG {
        return Ok(());
    }
    let identity = inode_identity(inode, off)?;
    if let Some(here) = enforced_here().filter(|h| h.writes & WRITES_KILL != 0)
        && let Ok(Some(identity)) = judge_write(file, here.slot, off)
        && block(
            &here,
            REASON_IMAGE_FILE,
            HOOK_WRITE,
            MECHANISM_TRACEPOINT_KILL,
            identity,
            ret as i32,
            0,
            file,
        )
    {
        return Ok(());
    }
    let written = WrittenKey { ino: identity.ino, dev: identity.dev, _pad: 0 };
    // Whatever its verification state; a full map evicts the least
    // recently written.
    let _ = WRITTEN.insert(&written, &cgroup_id, 0);
    let key = InodeKey { ino: identity.ino, dev: identity.dev, slot };
    // SAFETY: lookup only; the agent inserts whole entries.
    if unsafe { VERIFIED_INODES.get(&key) }.is_none() {
        return Ok(());
    }
    let _ = VERIFIED_INODES.remove(&key);
    let _ = VERIFIED.remove(&VerifiedKey { identity, slot, _pad: 0 });
    let pid_tgid = bpf_get_current_pid_tgid();
    let record = WriteRecord {
        kind: KIND_WRITE_OPEN,
        flags: 0,
        fd: ret as i32,
        // SAFETY: helper without arguments.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        ino: key.ino,
        dev: key.dev,
        slot,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    match EVENTS.output::<WriteRecord>(&record, 0) {
        Ok(()) => count(Counter::WriteSent),
        Err(_) => count(Counter::WriteDropped),
    }
    Ok(())
}
