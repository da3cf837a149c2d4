//! Kernel struct offsets and program options, passed to the programs as the
//! single global [`crate::GLOBAL_CONFIG`].
//!
//! The values come from `/sys/kernel/btf/vmlinux`, resolved by the agent at
//! start-up: nothing here is hard-coded for one kernel. A zero offset is
//! legitimate (a field at the start of its struct), so the programs never
//! treat zero as "missing"; the agent refuses to load if a field is absent.

/// Byte offsets of the fields the exec program reads, each relative to the
/// start of the struct named in the field's prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.real_parent` (pointer)
    pub task_real_parent: u32,
    /// `task_struct.tgid` (pid_t)
    pub task_tgid: u32,
    /// `task_struct.mm` (pointer)
    pub task_mm: u32,
    /// `task_struct.nsproxy` (pointer)
    pub task_nsproxy: u32,
    /// `task_struct.thread_pid` (pointer to `struct pid`)
    pub task_thread_pid: u32,
    /// `mm_struct.exe_file` (pointer)
    pub mm_exe_file: u32,
    /// `mm_struct.arg_start` / `arg_end` (unsigned long): the new
    /// program's argument strings in its own memory.
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `file.f_inode` (pointer)
    pub file_f_inode: u32,
    /// `inode.i_ino` (unsigned long)
    pub inode_i_ino: u32,
    /// `inode.i_sb` (pointer)
    pub inode_i_sb: u32,
    /// `inode.i_size` (loff_t)
    pub inode_i_size: u32,
    /// `inode.i_nlink` (unsigned int, in an anonymous union)
    pub inode_i_nlink: u32,
    /// `inode.i_mode` (umode_t, 16 bits): the write-open program keeps
    /// regular files only.
    pub inode_i_mode: u32,
    /// seconds of the inode's ctime (`i_ctime_sec`, or `__i_ctime.tv_sec` on
    /// older kernels)
    pub inode_ctime_sec: u32,
    /// nanoseconds of the inode's ctime (read as `u32`)
    pub inode_ctime_nsec: u32,
    /// `super_block.s_dev` (dev_t)
    pub sb_s_dev: u32,
    /// `nsproxy.mnt_ns` (pointer)
    pub nsproxy_mnt_ns: u32,
    /// `mnt_namespace.ns.inum`
    pub mnt_ns_inum: u32,
    /// `pid.level` (unsigned int)
    pub pid_level: u32,
    /// `pid.numbers` (array of `struct upid`)
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`
    pub upid_size: u32,
    /// `upid.nr` (int)
    pub upid_nr: u32,
    /// `upid.ns` (pointer)
    pub upid_ns: u32,
    /// `pid_namespace.ns.inum`
    pub pid_ns_inum: u32,
    /// `linux_binprm.filename` (`const char *`): the path given to exec.
    pub bprm_filename: u32,
    /// `linux_binprm.interp` (`const char *`): the same pointer as
    /// `filename` unless a `#!` script (or binfmt_misc) switched to an
    /// interpreter.
    pub bprm_interp: u32,
    /// `linux_binprm.file` (pointer): the file being executed, as the
    /// `bprm_check_security` LSM hook sees it.
    pub bprm_file: u32,
    /// `task_struct.files` (pointer to `files_struct`)
    pub task_files: u32,
    /// `files_struct.fdt` (pointer to `fdtable`)
    pub files_fdt: u32,
    /// `fdtable.fd` (`struct file **`)
    pub fdtable_fd: u32,
    /// `fdtable.max_fds` (unsigned int)
    pub fdtable_max_fds: u32,
    /// `file.f_mode` (`fmode_t`, 32 bits)
    pub file_f_mode: u32,
    /// `task_struct.fs` (pointer to `fs_struct`)
    pub task_fs: u32,
    /// `fs_struct.root.dentry` (pointer): the task's root directory, which
    /// `chroot` moves.
    pub fs_root_dentry: u32,
    /// `dentry.d_inode` (pointer)
    pub dentry_d_inode: u32,
    /// `fs_struct.root.mnt` (pointer to `vfsmount`): with
    /// [`Self::fs_root_dentry`], where a path walk from a file stops.
    pub fs_root_mnt: u32,
    /// `file.f_path.dentry` (pointer)
    pub file_f_path_dentry: u32,
    /// `file.f_path.mnt` (pointer to `vfsmount`)
    pub file_f_path_mnt: u32,
    /// `dentry.d_parent` (pointer; a root dentry points at itself)
    pub dentry_d_parent: u32,
    /// `dentry.d_name.name` (pointer to the NUL-terminated name)
    pub dentry_d_name_name: u32,
    /// `vfsmount.mnt_root` (pointer to the mount's root dentry)
    pub vfsmount_mnt_root: u32,
    /// `mount.mnt` (the `vfsmount` embedded in `struct mount`): subtracted
    /// from a `vfsmount` pointer to reach its `mount`.
    pub mount_mnt: u32,
    /// `mount.mnt_parent` (pointer; a mount with no parent points at itself)
    pub mount_mnt_parent: u32,
    /// `mount.mnt_mountpoint` (pointer to the dentry it is mounted on)
    pub mount_mnt_mountpoint: u32,
    /// `vm_area_struct.vm_file` (pointer; NULL for anonymous memory)
    pub vma_vm_file: u32,
    /// `vm_area_struct.vm_flags` (`vm_flags_t`, unsigned long)
    pub vma_vm_flags: u32,
    /// `syscall_trace_exit.ret` (long): the syscall's return value in a
    /// `syscalls:sys_exit_*` record.
    pub tp_sys_exit_ret: u32,
    /// `syscall_trace_enter.args` (`unsigned long[]`): the arguments in a
    /// `syscalls:sys_enter_*` record.
    pub tp_sys_enter_args: u32,
    /// `trace_event_raw_cgroup.root` (hierarchy id, int)
    pub tp_cgroup_root: u32,
    /// `trace_event_raw_cgroup.level` (int)
    pub tp_cgroup_level: u32,
    /// `trace_event_raw_cgroup.id` (u64)
    pub tp_cgroup_id: u32,
    /// `trace_event_raw_cgroup.__data_loc_path`
    pub tp_cgroup_path_loc: u32,
}

/// Everything the exec program is configured with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramConfig {
    pub offsets: KernelOffsets,
    /// Non-zero: skip (and count as filtered) execs in `host_mnt_ns`.
    pub containers_only: u32,
    /// The host's mount namespace inum (that of pid 1 as the agent sees it).
    pub host_mnt_ns: u32,
    /// Wake userspace only once this many bytes are waiting in the ring
    /// buffer (0: on every record). Between wake-ups the agent drains on a
    /// short timer, so a quiet node still sees events within that period.
    pub wakeup_bytes: u32,
    /// Execs a container may send per window before the rest of the window
    /// is throttled (0: no throttle). See [`crate::throttle`].
    pub exec_limit: u32,
}

const _: () = assert!(size_of::<KernelOffsets>() == 53 * 4);
const _: () = assert!(size_of::<ProgramConfig>() == 57 * 4);

impl ProgramConfig {
    /// All-zero configuration: the program's compiled-in default, replaced
    /// by the loader before the program is loaded.
    pub const fn zeroed() -> Self {
        Self {
            offsets: KernelOffsets {
                task_real_parent: 0,
                task_tgid: 0,
                task_mm: 0,
                task_nsproxy: 0,
                task_thread_pid: 0,
                mm_exe_file: 0,
                mm_arg_start: 0,
                mm_arg_end: 0,
                file_f_inode: 0,
                inode_i_ino: 0,
                inode_i_sb: 0,
                inode_i_size: 0,
                inode_i_nlink: 0,
                inode_i_mode: 0,
                inode_ctime_sec: 0,
                inode_ctime_nsec: 0,
                sb_s_dev: 0,
                nsproxy_mnt_ns: 0,
                mnt_ns_inum: 0,
                pid_level: 0,
                pid_numbers: 0,
                upid_size: 0,
                upid_nr: 0,
                upid_ns: 0,
                pid_ns_inum: 0,
                bprm_filename: 0,
                bprm_interp: 0,
                bprm_file: 0,
                task_files: 0,
                files_fdt: 0,
                fdtable_fd: 0,
                fdtable_max_fds: 0,
                file_f_mode: 0,
                task_fs: 0,
                fs_root_dentry: 0,
                dentry_d_inode: 0,
                fs_root_mnt: 0,
                file_f_path_dentry: 0,
                file_f_path_mnt: 0,
                dentry_d_parent: 0,
                dentry_d_name_name: 0,
                vfsmount_mnt_root: 0,
                mount_mnt: 0,
                mount_mnt_parent: 0,
                mount_mnt_mountpoint: 0,
                vma_vm_file: 0,
                vma_vm_flags: 0,
                tp_sys_exit_ret: 0,
                tp_sys_enter_args: 0,
                tp_cgroup_root: 0,
                tp_cgroup_level: 0,
                tp_cgroup_id: 0,
                tp_cgroup_path_loc: 0,
            },
            containers_only: 0,
            host_mnt_ns: 0,
            wakeup_bytes: 0,
            exec_limit: 0,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C) plain-old-data of u32s, no padding.
unsafe impl aya::Pod for ProgramConfig {}
