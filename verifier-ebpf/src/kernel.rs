//! Reading kernel memory at offsets resolved from BTF.

use aya_ebpf::helpers::bpf_probe_read_kernel;

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
