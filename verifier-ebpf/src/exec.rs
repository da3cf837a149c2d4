//! `sched_process_exec`, as a raw tracepoint: one record per successful
//! exec, unless the kernel fast path already knows the file is good.
//!
//! Checked against the tracepoint prototype of Linux 6.x
//! (`include/trace/events/sched.h`, `btf_trace_sched_process_exec`):
//!
//! ```text
//! TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
//! ```
//!
//! A raw tracepoint rather than the `sched:sched_process_exec` trace event
//! because only `bprm` tells a `#!` script from a binary: for a script,
//! `bprm->interp` points at the interpreter's name while `bprm->filename`
//! stays the script's, and `current->mm->exe_file` is the interpreter. A
//! script must never be answered by the fast path from its interpreter's
//! identity. The program runs after the new image is installed, so
//! `current->mm->exe_file` is the file that was executed. Field offsets
//! (`linux_binprm`, `task_struct`, ...) come from BTF via `CONFIG`.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_current_uid_gid, bpf_ktime_get_ns,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use verifier_common::{
    counters::Counter,
    event::{
        ARGS_MAX, ExecHeader, FILENAME_MAX, FLAG_ARGS_TRUNCATED, FLAG_EXE_UNLINKED, FLAG_FILENAME_TRUNCATED,
        FLAG_NO_ARGS, FLAG_NO_EXE_FILE, FLAG_NO_NAMESPACES, FLAG_NO_PARENT, FLAG_SCRIPT, FLAG_WRITTEN,
        FileIdentity, HEADER_SIZE, KIND_EXEC,
    },
    fastpath::VerifiedKey,
    offsets::KernelOffsets,
};

use crate::{
    kernel::{inode_identity, read, read_ptr, root_dir},
    maps::{CONFIG, EVENTS, SCRATCH, VERIFIED, WATCHED, count, was_written},
    throttle::{ExecFile, throttled},
};

/// `bpf_ringbuf_query` / `bpf_ringbuf_output` flags (include/uapi/linux/bpf.h).
const BPF_RB_AVAIL_DATA: u64 = 0;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    match try_sched_process_exec(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_sched_process_exec(ctx: &RawTracePointContext) -> Result<(), i64> {
    count(Counter::Seen);
    let config = CONFIG.load();
    let off = &config.offsets;
    // SAFETY: returns the current task pointer; only ever read through
    // bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() };

    let mut flags = 0u16;
    let (mnt_ns, pid_ns, ns_pid) = match namespaces(task, off) {
        Ok(ns) => ns,
        Err(_) => {
            flags |= FLAG_NO_NAMESPACES;
            (0, 0, 0)
        }
    };
    if config.containers_only != 0 && mnt_ns == config.host_mnt_ns && mnt_ns != 0 {
        count(Counter::Filtered);
        return Ok(());
    }

    let scratch = SCRATCH.get_ptr_mut(0).ok_or(-1i64)?;
    // SAFETY: map value pointer for this CPU, valid for the program's run.
    let scratch = unsafe { &mut *scratch };

    let bprm: u64 = ctx.arg(2);
    let name_ptr = read_ptr(bprm, off.bprm_filename)?;
    if read_ptr(bprm, off.bprm_interp)? != name_ptr {
        flags |= FLAG_SCRIPT;
    }
    let exe = match exe_identity(task, off) {
        Ok((id, nlink)) => {
            if nlink == 0 {
                flags |= FLAG_EXE_UNLINKED;
            }
            id
        }
        Err(_) => {
            flags |= FLAG_NO_EXE_FILE;
            count(Counter::IdentityErrors);
            FileIdentity::default()
        }
    };
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // Fast path: a file already verified for this container's image, and
    // not opened for writing in a container since (its identity may then
    // be the same while other bytes ran).
    if flags & (FLAG_NO_EXE_FILE | FLAG_SCRIPT | FLAG_EXE_UNLINKED) == 0
        // SAFETY: the value is copied out at once; the agent only inserts
        // and deletes whole entries.
        && let Some(&slot) = unsafe { WATCHED.get(&cgroup_id) }
    {
        if was_written(exe.ino, exe.dev) {
            flags |= FLAG_WRITTEN;
        // SAFETY: as above.
        } else if unsafe { VERIFIED.get(&VerifiedKey { identity: exe, slot, _pad: 0 }) }.is_some() {
            count(Counter::FastPath);
            return Ok(());
        }
    }
    // SAFETY: the helper bounds the copy by the buffer length and validates
    // the source address.
    let copied = unsafe {
        bpf_probe_read_kernel_str(
            scratch.filename.as_mut_ptr().cast(),
            FILENAME_MAX as u32,
            name_ptr as *const _,
        )
    };
    // `copied` counts the NUL; a failed read leaves an empty name.
    let mut name_len = if copied > 0 { (copied - 1) as usize } else { 0 };
    if name_len >= FILENAME_MAX - 1 {
        flags |= FLAG_FILENAME_TRUNCATED;
    }
    if name_len > FILENAME_MAX - 1 {
        name_len = FILENAME_MAX - 1;
    }
    // The throttle hashes a script's name by 8-byte words: clear what a
    // previous record left after the NUL (the arguments overwrite it).
    // SAFETY: `name_len < FILENAME_MAX`, so the 8 bytes are in the buffer.
    unsafe { core::ptr::write_unaligned(scratch.filename.as_mut_ptr().add(name_len).cast::<u64>(), 0) };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let file = ExecFile {
        exe: &exe,
        script_name: (flags & FLAG_SCRIPT != 0).then_some((&scratch.filename, name_len)),
    };
    if mnt_ns != config.host_mnt_ns && throttled(cgroup_id, now, config.exec_limit, &file) {
        return Ok(());
    }
    let ppid = match read_ptr(task, off.task_real_parent).and_then(|p| read::<u32>(p, off.task_tgid)) {
        Ok(ppid) => ppid,
        Err(_) => {
            flags |= FLAG_NO_PARENT;
            0
        }
    };

    // The arguments, right after the name: the new program's argv strings
    // in its own memory (`mm->arg_start..arg_end`), cut at ARGS_MAX.
    let mut args_len = 0usize;
    match read_ptr(task, off.task_mm)
        .and_then(|mm| Ok((read::<u64>(mm, off.mm_arg_start)?, read::<u64>(mm, off.mm_arg_end)?)))
    {
        Ok((start, end)) if end > start => {
            let mut n = (end - start) as usize;
            if n > ARGS_MAX {
                n = ARGS_MAX;
                flags |= FLAG_ARGS_TRUNCATED;
            }
            // SAFETY: `name_len < FILENAME_MAX` and `n <= ARGS_MAX`, so the
            // copy stays inside the buffer; the helper validates `start`.
            let rc = unsafe {
                bpf_probe_read_user(
                    scratch.filename.as_mut_ptr().add(name_len).cast(),
                    n as u32,
                    start as *const _,
                )
            };
            if rc == 0 {
                args_len = n;
            } else {
                flags |= FLAG_NO_ARGS;
            }
        }
        _ => flags |= FLAG_NO_ARGS,
    }

    // The root the executed path was resolved in: a `chroot` moves it, and
    // once the process is gone only this says so. Zeros when unreadable.
    let (root_ino, root_dev) = root_dir(task, off);

    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    scratch.header = ExecHeader {
        kind: KIND_EXEC,
        flags,
        filename_len: name_len as u16,
        args_len: args_len as u16,
        ktime_ns: now,
        cgroup_id,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        ppid,
        ns_pid,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        mnt_ns,
        pid_ns,
        exe,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        root_ino,
        root_dev,
        _pad_root: 0,
    };

    // The clamp is for the kernel's verifier, which must see the size
    // bounded where the helper takes it. LLVM knows the sum is in range and
    // drops a plain clamp; 6.1's verifier loses the bounds of the two
    // lengths on the way and refused the program ("R3 min value is
    // negative", kernel matrix). `black_box` hides the sum from LLVM, so
    // the comparison stays in the program.
    let total = core::hint::black_box(HEADER_SIZE + name_len + args_len);
    let total = if total > HEADER_SIZE + FILENAME_MAX + ARGS_MAX {
        HEADER_SIZE + FILENAME_MAX + ARGS_MAX
    } else {
        total
    };
    // SAFETY: `total` is bounded by the scratch value's size.
    let bytes = unsafe { core::slice::from_raw_parts((scratch as *const _) as *const u8, total) };
    // Batch wake-ups: waking the agent costs more than the record itself
    // (a cross-CPU interrupt per exec), so only wake it once a batch is
    // waiting; it also drains on a timer.
    let flags = if config.wakeup_bytes == 0 {
        0
    } else if EVENTS.query(BPF_RB_AVAIL_DATA) + total as u64 >= u64::from(config.wakeup_bytes) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    match EVENTS.output::<[u8]>(bytes, flags) {
        Ok(()) => count(Counter::Sent),
        Err(_) => count(Counter::Dropped),
    }
    Ok(())
}

/// `current->mm->exe_file->f_inode`: inode number, device, size, ctime,
/// and its link count.
#[inline(always)]
fn exe_identity(task: u64, off: &KernelOffsets) -> Result<(FileIdentity, u32), i64> {
    let mm = read_ptr(task, off.task_mm)?;
    let file = read_ptr(mm, off.mm_exe_file)?;
    let inode = read_ptr(file, off.file_f_inode)?;
    Ok((inode_identity(inode, off)?, read::<u32>(inode, off.inode_i_nlink)?))
}

/// Mount namespace inum, pid namespace inum and the pid inside it.
#[inline(always)]
fn namespaces(task: u64, off: &KernelOffsets) -> Result<(u32, u32, u32), i64> {
    let nsproxy = read_ptr(task, off.task_nsproxy)?;
    let mnt_ns = read_ptr(nsproxy, off.nsproxy_mnt_ns)?;
    let mnt_inum = read::<u32>(mnt_ns, off.mnt_ns_inum)?;

    // The task's own pid namespace is that of thread_pid->numbers[level].
    let pid = read_ptr(task, off.task_thread_pid)?;
    let level = read::<u32>(pid, off.pid_level)?;
    let upid = u64::from(off.pid_numbers) + u64::from(level & 0x3f) * u64::from(off.upid_size);
    let ns_pid = read::<u32>(pid + upid, off.upid_nr)?;
    let pid_ns = read_ptr(pid + upid, off.upid_ns)?;
    let pid_inum = read::<u32>(pid_ns, off.pid_ns_inum)?;
    Ok((mnt_inum, pid_inum, ns_pid))
}
