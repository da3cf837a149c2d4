//! Reading kernel memory at offsets resolved from BTF.

use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_probe_read_kernel_str};
use verifier_common::event::{
    FLAG_FILENAME_TRUNCATED, FLAG_PATH_OUTSIDE_ROOT, MAPPED_NAME_MAX, MAPPED_PATH_DEPTH, MAPPED_PATH_MAX,
};

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Result<T, i64> {
    if base == 0 {
        return Err(-14); // -EFAULT: never dereference NULL
    }
    // SAFETY: bpf_probe_read_kernel validates the address; a bad one is an
    // error, not a fault.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T) }.map_err(i64::from)
}

/// Reads a `T` at `base + offset`, or zeros: the helper zeroes its
/// destination when the read fails (a NULL `base` included: nothing is
/// mapped at a small address), and the result is not looked at. No branch
/// for the kernel's verifier to follow, so a chain of these adds no states
/// downstream (5.10's verifier walks every state of the exec program, and
/// a fallible chain there took it past its 1M-instruction limit).
#[inline(always)]
pub fn read_or_zero<T>(base: u64, offset: u32) -> T {
    let mut v = core::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: the helper writes at most `size_of::<T>()` bytes into `v`
    // and validates the source address; on failure it writes zeros.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            v.as_mut_ptr().cast(),
            size_of::<T>() as u32,
            (base + u64::from(offset)) as *const core::ffi::c_void,
        );
        v.assume_init()
    }
}

/// Reads a pointer-sized field at `base + offset`.
#[inline(always)]
pub fn read_ptr(base: u64, offset: u32) -> Result<u64, i64> {
    read::<u64>(base, offset)
}

/// `current->files->fdt->fd[fd]`: the open file behind a descriptor of the
/// current task, or an error when `fd` is out of range or empty.
#[inline(always)]
pub fn fd_file(task: u64, fd: u64, off: &verifier_common::offsets::KernelOffsets) -> Result<u64, i64> {
    let fdt = read_ptr(read_ptr(task, off.task_files)?, off.files_fdt)?;
    if fd >= u64::from(read::<u32>(fdt, off.fdtable_max_fds)?) {
        return Err(-9); // -EBADF
    }
    read_ptr(read_ptr(fdt, off.fdtable_fd)? + fd * 8, 0)
}

/// The identity (inode number, size, ctime, device) of an inode.
#[inline(always)]
pub fn inode_identity(
    inode: u64,
    off: &verifier_common::offsets::KernelOffsets,
) -> Result<verifier_common::event::FileIdentity, i64> {
    Ok(verifier_common::event::FileIdentity {
        ino: read::<u64>(inode, off.inode_i_ino)?,
        size: read::<i64>(inode, off.inode_i_size)?,
        ctime_sec: read::<i64>(inode, off.inode_ctime_sec)?,
        // Bit 31 of i_ctime_nsec is I_CTIME_QUERIED on 6.13+ (multigrain
        // timestamps), not part of the time; valid nanoseconds never set it.
        ctime_nsec: read::<u32>(inode, off.inode_ctime_nsec)? & 0x7fff_ffff,
        dev: read::<u32>(read_ptr(inode, off.inode_i_sb)?, off.sb_s_dev)?,
    })
}

/// The path of `file` as `task` sees it, walked up from the file's dentry
/// to the task's root (`fs->root`), crossing mounts as the kernel's
/// `d_path` does: each name is written into `scratch.path` as it is met,
/// leaf first, NUL-terminated (the encoding of
/// [`verifier_common::event::MAPPED_PATH_MAX`]). Sets
/// `scratch.header.path_len` to the bytes written and returns the flags
/// that qualify them: [`FLAG_FILENAME_TRUNCATED`] when the walk ran out of
/// depth or room, [`FLAG_PATH_OUTSIDE_ROOT`] when it ended at a mount with
/// no parent without meeting the root (a memfd, an internal mount, a file
/// opened outside a `chroot`) or could not read a link. Unlocked, like
/// `d_path` under RCU without the seqlock retry: a rename racing the walk
/// may give a mixed path, which the agent only ever uses after proving
/// the file at it by identity.
///
/// For the kernel's verifier: every read is branch-free
/// ([`read_or_zero`]), and the write offset lives in the map value, not
/// in a register: reloaded and masked into `0..MAPPED_PATH_MAX` at every
/// step, it has the same bounds on every path, so the verifier's states
/// at each step are alike and prune (kept in a register, its exact value
/// on each path took the verifier past 1M instructions).
#[inline(always)]
pub fn file_path(
    task: u64,
    file: u64,
    off: &verifier_common::offsets::KernelOffsets,
    scratch: &mut verifier_common::event::MmapScratch,
) -> u16 {
    let fs: u64 = read_or_zero(task, off.task_fs);
    let root_dentry: u64 = read_or_zero(fs, off.fs_root_dentry);
    let root_mnt: u64 = read_or_zero(fs, off.fs_root_mnt);
    let mut dentry: u64 = read_or_zero(file, off.file_f_path_dentry);
    let mut vfsmnt: u64 = read_or_zero(file, off.file_f_path_mnt);
    // SAFETY: a plain store into this CPU's map value.
    unsafe { core::ptr::write_volatile(&mut scratch.header.path_len, 0) };
    for _ in 0..MAPPED_PATH_DEPTH {
        if dentry == root_dentry && vfsmnt == root_mnt {
            return 0;
        }
        let mnt_root: u64 = read_or_zero(vfsmnt, off.vfsmount_mnt_root);
        let parent: u64 = read_or_zero(dentry, off.dentry_d_parent);
        if dentry == mnt_root || dentry == parent {
            // The top of this mount: continue from where it is mounted.
            let mount = vfsmnt.wrapping_sub(u64::from(off.mount_mnt));
            let up: u64 = read_or_zero(mount, off.mount_mnt_parent);
            if dentry != mnt_root || up == mount || up == 0 {
                return FLAG_PATH_OUTSIDE_ROOT;
            }
            dentry = read_or_zero(mount, off.mount_mnt_mountpoint);
            vfsmnt = up + u64::from(off.mount_mnt);
            continue;
        }
        let name: u64 = read_or_zero(dentry, off.dentry_d_name_name);
        // SAFETY: a plain load from this CPU's map value.
        let at = usize::from(unsafe { core::ptr::read_volatile(&scratch.header.path_len) })
            & (MAPPED_PATH_MAX - 1);
        // SAFETY: `at < MAPPED_PATH_MAX` and at most MAPPED_NAME_MAX bytes
        // are written, so the copy stays in the buffer; the helper
        // validates the source address.
        let rc = unsafe {
            bpf_probe_read_kernel_str(
                scratch.path.as_mut_ptr().add(at).cast(),
                MAPPED_NAME_MAX as u32,
                name as *const core::ffi::c_void,
            )
        };
        if rc <= 0 {
            return FLAG_PATH_OUTSIDE_ROOT;
        }
        let end = at + (rc as usize & (MAPPED_NAME_MAX * 2 - 1));
        if end >= MAPPED_PATH_MAX {
            return FLAG_FILENAME_TRUNCATED;
        }
        // SAFETY: a plain store into this CPU's map value.
        unsafe { core::ptr::write_volatile(&mut scratch.header.path_len, end as u16) };
        dentry = parent;
    }
    FLAG_FILENAME_TRUNCATED
}

/// `current->fs->root.dentry->d_inode`: inode number and device (kernel
/// encoding) of the task's root directory, zeros when a link of the chain
/// cannot be read (read without branches: see [`read_or_zero`]). `fs->root`
/// is read without `fs->lock`: a concurrent `chroot` by another thread
/// sharing `fs` may be seen either side, as it would be a moment later.
#[inline(always)]
pub fn root_dir(task: u64, off: &verifier_common::offsets::KernelOffsets) -> (u64, u32) {
    let fs: u64 = read_or_zero(task, off.task_fs);
    let dentry: u64 = read_or_zero(fs, off.fs_root_dentry);
    let inode: u64 = read_or_zero(dentry, off.dentry_d_inode);
    let sb: u64 = read_or_zero(inode, off.inode_i_sb);
    (read_or_zero(inode, off.inode_i_ino), read_or_zero(sb, off.sb_s_dev))
}
