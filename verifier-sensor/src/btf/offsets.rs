//! The programs' [`KernelOffsets`], resolved from BTF.
//!
//! Where kernels differ, each known layout is tried in turn (newest first)
//! and the first that this kernel has wins; if none fits, start-up fails
//! with the field's name rather than the program reading the wrong bytes.

use verifier_common::offsets::KernelOffsets;

use super::{Btf, BtfError};

/// Resolves every offset the exec program needs.
pub fn resolve(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    let off = |s: &str, m: &str| btf.member_offset(s, m);
    // Missing structs first, so the error names the most basic thing absent.
    for strukt in
        ["task_struct", "mm_struct", "file", "inode", "super_block", "nsproxy", "pid", "linux_binprm"]
    {
        btf.struct_size(strukt)?;
    }
    let (ctime_sec, ctime_nsec) = inode_ctime(btf)?;
    Ok(KernelOffsets {
        task_real_parent: off("task_struct", "real_parent")?,
        task_tgid: off("task_struct", "tgid")?,
        task_mm: off("task_struct", "mm")?,
        task_nsproxy: off("task_struct", "nsproxy")?,
        task_thread_pid: off("task_struct", "thread_pid")?,
        mm_exe_file: off("mm_struct", "exe_file")?,
        mm_arg_start: off("mm_struct", "arg_start")?,
        mm_arg_end: off("mm_struct", "arg_end")?,
        file_f_inode: off("file", "f_inode")?,
        inode_i_ino: off("inode", "i_ino")?,
        inode_i_sb: off("inode", "i_sb")?,
        inode_i_size: off("inode", "i_size")?,
        inode_i_nlink: off("inode", "i_nlink")?,
        inode_i_mode: off("inode", "i_mode")?,
        inode_ctime_sec: ctime_sec,
        inode_ctime_nsec: ctime_nsec,
        sb_s_dev: off("super_block", "s_dev")?,
        nsproxy_mnt_ns: off("nsproxy", "mnt_ns")?,
        mnt_ns_inum: off("mnt_namespace", "ns.inum")?,
        pid_level: off("pid", "level")?,
        pid_numbers: off("pid", "numbers")?,
        upid_size: btf.struct_size("upid")?,
        upid_nr: off("upid", "nr")?,
        upid_ns: off("upid", "ns")?,
        pid_ns_inum: off("pid_namespace", "ns.inum")?,
        bprm_filename: off("linux_binprm", "filename")?,
        bprm_interp: off("linux_binprm", "interp")?,
        bprm_file: off("linux_binprm", "file")?,
        task_files: off("task_struct", "files")?,
        files_fdt: off("files_struct", "fdt")?,
        fdtable_fd: off("fdtable", "fd")?,
        fdtable_max_fds: off("fdtable", "max_fds")?,
        file_f_mode: off("file", "f_mode")?,
        task_fs: off("task_struct", "fs")?,
        fs_root_dentry: off("fs_struct", "root.dentry")?,
        dentry_d_inode: off("dentry", "d_inode")?,
        fs_root_mnt: off("fs_struct", "root.mnt")?,
        file_f_path_dentry: off("file", "f_path.dentry")?,
        file_f_path_mnt: off("file", "f_path.mnt")?,
        dentry_d_parent: off("dentry", "d_parent")?,
        dentry_d_name_name: off("dentry", "d_name.name")?,
        vfsmount_mnt_root: off("vfsmount", "mnt_root")?,
        mount_mnt: off("mount", "mnt")?,
        mount_mnt_parent: off("mount", "mnt_parent")?,
        mount_mnt_mountpoint: off("mount", "mnt_mountpoint")?,
        vma_vm_file: off("vm_area_struct", "vm_file")?,
        vma_vm_flags: off("vm_area_struct", "vm_flags")?,
        tp_sys_exit_ret: off("syscall_trace_exit", "ret")?,
        tp_sys_enter_args: off("syscall_trace_enter", "args")?,
        tp_cgroup_root: off("trace_event_raw_cgroup", "root")?,
        tp_cgroup_level: off("trace_event_raw_cgroup", "level")?,
        tp_cgroup_id: off("trace_event_raw_cgroup", "id")?,
        tp_cgroup_path_loc: off("trace_event_raw_cgroup", "__data_loc_path")?,
    })
}

/// The inode's change time. Linux 6.11+ has `i_ctime_sec` / `i_ctime_nsec`;
/// 6.6 to 6.10 a `timespec64 __i_ctime`; older kernels `timespec64 i_ctime`.
fn inode_ctime(btf: &Btf) -> Result<(u32, u32), BtfError> {
    if let (Ok(sec), Ok(nsec)) =
        (btf.member_offset("inode", "i_ctime_sec"), btf.member_offset("inode", "i_ctime_nsec"))
    {
        return Ok((sec, nsec));
    }
    for name in ["__i_ctime", "i_ctime"] {
        if let Ok(base) = btf.member_offset("inode", name) {
            let sec = btf.member_offset("timespec64", "tv_sec")?;
            let nsec = btf.member_offset("timespec64", "tv_nsec")?;
            return Ok((base + sec, base + nsec));
        }
    }
    Err(BtfError::NoMember { strukt: "inode".into(), member: "i_ctime_sec (or __i_ctime / i_ctime)".into() })
}
