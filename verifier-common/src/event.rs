//! The ring-buffer records: every record kind number ([`RecordKind`]) and
//! the layouts of the exec, new-cgroup, write-open and executable-mapping
//! records (the throttle record lives with the throttle, in
//! [`crate::throttle`], but its kind number is here with the others).
//!
//! The exec record is what the kernel knows about one `execve` at the
//! moment `sched_process_exec` fires.
//! A record on the ring buffer is an [`ExecHeader`] followed by exactly
//! `filename_len` bytes of the file name (no NUL). Records are variable-sized
//! so that a typical exec costs about 150 bytes of ring buffer rather than a
//! page: the ring holds far more events under a burst, which is what keeps
//! loss at zero.

/// Every record kind on the ring buffer: the first field (`u16`) of every
/// record. One list, so a new kind is added here and the decoder's match
/// (which has no wildcard for known kinds) says what else to write.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// An exec ([`ExecHeader`] + file name + arguments).
    Exec = 1,
    /// A new cgroup ([`CgroupHeader`] + path).
    CgroupMkdir = 2,
    /// A write-open of a verified file ([`WriteRecord`]).
    WriteOpen = 3,
    /// A container went past its exec limit
    /// ([`crate::throttle::ThrottleRecord`]).
    Throttle = 4,
    /// A file mapped executable in a watched container ([`MmapRecord`]).
    MmapExec = 5,
    /// An exec or mapping blocked (or, in dry-run, that would have been) in
    /// an enforced container ([`crate::enforce::BlockRecord`]).
    Block = 6,
}

impl RecordKind {
    /// All kinds, in number order.
    pub const ALL: [RecordKind; 6] = [
        RecordKind::Exec,
        RecordKind::CgroupMkdir,
        RecordKind::WriteOpen,
        RecordKind::Throttle,
        RecordKind::MmapExec,
        RecordKind::Block,
    ];

    /// The kind a record's first field names, if any.
    pub const fn from_u16(kind: u16) -> Option<Self> {
        Some(match kind {
            KIND_EXEC => RecordKind::Exec,
            KIND_CGROUP_MKDIR => RecordKind::CgroupMkdir,
            KIND_WRITE_OPEN => RecordKind::WriteOpen,
            KIND_THROTTLE => RecordKind::Throttle,
            KIND_MMAP_EXEC => RecordKind::MmapExec,
            KIND_BLOCK => RecordKind::Block,
            _ => return None,
        })
    }
}

/// Record kind of an exec event (the first field of every record).
pub const KIND_EXEC: u16 = RecordKind::Exec as u16;
/// Record kind of a new cgroup ([`CgroupHeader`]).
pub const KIND_CGROUP_MKDIR: u16 = RecordKind::CgroupMkdir as u16;
/// Record kind of a write-open of a verified file ([`WriteRecord`]).
pub const KIND_WRITE_OPEN: u16 = RecordKind::WriteOpen as u16;
/// Record kind of a throttle start ([`crate::throttle::ThrottleRecord`]).
pub const KIND_THROTTLE: u16 = RecordKind::Throttle as u16;
/// [`MmapRecord`]: a file mapped executable in a watched container.
pub const KIND_MMAP_EXEC: u16 = RecordKind::MmapExec as u16;
/// [`crate::enforce::BlockRecord`]: a block in an enforced container.
pub const KIND_BLOCK: u16 = RecordKind::Block as u16;

/// Largest file name carried, in bytes, matching the kernel's `PATH_MAX`
/// (4096 including the terminating NUL).
pub const FILENAME_MAX: usize = 4096;

/// `current->mm->exe_file` could not be read: the identity fields are zero.
pub const FLAG_NO_EXE_FILE: u16 = 1 << 0;
/// The file name filled the whole buffer and may have been cut.
pub const FLAG_FILENAME_TRUNCATED: u16 = 1 << 1;
/// The namespace inums could not be read.
pub const FLAG_NO_NAMESPACES: u16 = 1 << 2;
/// The parent's tgid could not be read.
pub const FLAG_NO_PARENT: u16 = 1 << 3;
/// A `#!` script (or binfmt_misc) was run: `exe` is the interpreter and the
/// file name is the script's. Never verified in the kernel's fast path.
pub const FLAG_SCRIPT: u16 = 1 << 4;
/// The executed file had no name at exec time (`i_nlink == 0`): a memfd or
/// a deleted file. Known in the kernel, so it holds even when the process
/// is gone before userspace looks.
pub const FLAG_EXE_UNLINKED: u16 = 1 << 5;
/// The arguments were longer than [`ARGS_MAX`] and were cut.
pub const FLAG_ARGS_TRUNCATED: u16 = 1 << 6;
/// The arguments could not be read.
pub const FLAG_NO_ARGS: u16 = 1 << 7;
/// The file (exec or executable mapping) was opened for writing in a
/// watched container since it was unpacked: its inode is in the kernel's
/// `WRITTEN` map ([`crate::fastpath::MAP_WRITTEN`]). Its identity (ctime
/// included) no longer proves that the bytes that ran are the bytes
/// userspace reads back, so such a file is never answered by the fast path
/// and never judged `ok`.
pub const FLAG_WRITTEN: u16 = 1 << 8;

/// Identity of the executed file, as the kernel saw it. Userspace compares
/// it with `fstat` of what it opens, so a file replaced after the exec is
/// detected rather than hashed in its place.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Inode number (`inode->i_ino`).
    pub ino: u64,
    /// File size in bytes (`inode->i_size`).
    pub size: i64,
    /// Status-change time, seconds.
    pub ctime_sec: i64,
    /// Status-change time, nanoseconds.
    pub ctime_nsec: u32,
    /// Device in the kernel's internal encoding (`MAJOR << 20 | MINOR`), from
    /// `inode->i_sb->s_dev`. See [`FileIdentity::dev_major`].
    pub dev: u32,
}

impl FileIdentity {
    /// Major number of [`FileIdentity::dev`].
    pub const fn dev_major(&self) -> u32 {
        self.dev >> 20
    }

    /// Minor number of [`FileIdentity::dev`].
    pub const fn dev_minor(&self) -> u32 {
        self.dev & ((1 << 20) - 1)
    }
}

/// Fixed part of an exec record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecHeader {
    /// Always [`KIND_EXEC`].
    pub kind: u16,
    /// `FLAG_*` bits.
    pub flags: u16,
    /// Bytes of file name that follow the header.
    pub filename_len: u16,
    /// Bytes of arguments that follow the file name: the NUL-separated
    /// argv strings as the new program sees them, at most [`ARGS_MAX`].
    pub args_len: u16,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) at the exec.
    pub ktime_ns: u64,
    /// cgroup v2 id of the task (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    /// Thread id in the initial pid namespace.
    pub pid: u32,
    /// Process id in the initial pid namespace.
    pub tgid: u32,
    /// Parent's process id (`real_parent->tgid`).
    pub ppid: u32,
    /// Process id inside the task's own pid namespace.
    pub ns_pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Mount namespace inode number.
    pub mnt_ns: u32,
    /// Pid namespace inode number.
    pub pid_ns: u32,
    /// Identity of `current->mm->exe_file`.
    pub exe: FileIdentity,
    /// `current->comm` after the exec, NUL-padded.
    pub comm: [u8; 16],
    /// Inode number of the task's root directory at the exec
    /// (`current->fs->root.dentry->d_inode`): a `chroot` moves it. The
    /// agent compares it with the container's root to know which root the
    /// executed path was resolved in, even once the process is gone. Zero
    /// when it could not be read (no inode is numbered 0).
    pub root_ino: u64,
    /// Device of that root directory, kernel encoding (as
    /// [`FileIdentity::dev`]).
    pub root_dev: u32,
    pub _pad_root: u32,
}

/// Size of [`ExecHeader`] on the wire.
pub const HEADER_SIZE: usize = size_of::<ExecHeader>();

const _: () = assert!(size_of::<FileIdentity>() == 32);
const _: () = assert!(HEADER_SIZE == 120);
const _: () = assert!(HEADER_SIZE.is_multiple_of(8));

/// Argument bytes carried per exec at most (longer lists are cut and
/// flagged [`FLAG_ARGS_TRUNCATED`]).
pub const ARGS_MAX: usize = 512;

/// Kernel-side scratch: a header, then a buffer for the file name followed
/// by the arguments. Only `HEADER_SIZE + filename_len + args_len` bytes of
/// it go onto the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecScratch {
    pub header: ExecHeader,
    pub filename: [u8; FILENAME_MAX + ARGS_MAX],
}

/// A cgroup was created (`cgroup:cgroup_mkdir`): a container is about to
/// start in it. The agent resolves the container's image from this, before
/// the container's first exec. Followed by `path_len` bytes of the cgroup
/// path relative to its hierarchy's root (no NUL).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CgroupHeader {
    /// Always [`KIND_CGROUP_MKDIR`].
    pub kind: u16,
    /// `FLAG_*` bits ([`FLAG_FILENAME_TRUNCATED`] for a cut path).
    pub flags: u16,
    pub path_len: u16,
    pub _pad0: u16,
    /// `bpf_ktime_get_ns()` at the mkdir.
    pub ktime_ns: u64,
    /// The new cgroup's id (its cgroup2 inode number): what
    /// `bpf_get_current_cgroup_id()` returns for tasks in it.
    pub id: u64,
    /// Hierarchy id (0 is the cgroup v2 unified hierarchy).
    pub root: i32,
    /// Depth below the hierarchy root.
    pub level: i32,
}

/// Size of [`CgroupHeader`] on the wire.
pub const CGROUP_HEADER_SIZE: usize = size_of::<CgroupHeader>();
const _: () = assert!(CGROUP_HEADER_SIZE == 32);

/// Kernel-side scratch for a cgroup record.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CgroupScratch {
    pub header: CgroupHeader,
    pub path: [u8; FILENAME_MAX],
}

/// A file verified `ok` for a watched container was opened for writing
/// there (`syscalls:sys_exit_open*`): the kernel dropped it from the fast
/// path and tells the agent, which reports `image-file-written`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteRecord {
    /// Always [`KIND_WRITE_OPEN`].
    pub kind: u16,
    pub flags: u16,
    /// The descriptor the open returned.
    pub fd: i32,
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    /// Inode number and device (kernel encoding) of the opened file.
    pub ino: u64,
    pub dev: u32,
    /// Baseline slot the file was verified for.
    pub slot: u32,
    pub comm: [u8; 16],
}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid, explicit padding.
unsafe impl aya::Pod for WriteRecord {}

/// Size of [`WriteRecord`] on the wire.
pub const WRITE_RECORD_SIZE: usize = size_of::<WriteRecord>();
const _: () = assert!(WRITE_RECORD_SIZE == 64);

/// A file was mapped with `PROT_EXEC` (`syscalls:sys_enter_mmap`) in a
/// watched container and is not in the kernel fast path: a shared library
/// (or any code) the agent has not verified for this container's image.
/// Followed by `path_len` bytes: the mapped file's path as the mapping
/// task saw it, walked up from the file in the kernel (see
/// [`MAPPED_PATH_MAX`] for the encoding), so the file can be named after
/// the process is gone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MmapRecord {
    /// Always [`KIND_MMAP_EXEC`].
    pub kind: u16,
    /// `FLAG_*` bits: [`FLAG_WRITTEN`], [`FLAG_FILENAME_TRUNCATED`] (the
    /// path was cut: deeper or longer than the kernel walks),
    /// [`FLAG_PATH_OUTSIDE_ROOT`].
    pub flags: u16,
    /// The descriptor being mapped.
    pub fd: i32,
    pub ktime_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    /// The mapped file, as the kernel had it.
    pub identity: FileIdentity,
    /// Baseline slot of the container.
    pub slot: u32,
    /// Bytes of path components after the record.
    pub path_len: u16,
    pub _pad: u16,
    pub comm: [u8; 16],
    /// The mapping task's root directory (`fs->root`: inode number and
    /// device, kernel encoding; zeros when unreadable): the path is
    /// relative to it, and a `chroot` moves it.
    pub root_ino: u64,
    pub root_dev: u32,
    pub _pad_root: u32,
}

/// Size of [`MmapRecord`] on the wire (without its path).
pub const MMAP_RECORD_SIZE: usize = size_of::<MmapRecord>();
const _: () = assert!(MMAP_RECORD_SIZE == 104);

/// Largest path carried after an [`MmapRecord`]. The kernel walks from the
/// mapped file's dentry up to the task's root (crossing mounts as `d_path`
/// does) and writes each name as it meets it: leaf first, each followed by
/// a NUL (`lib.so\0x86_64-linux-gnu\0lib\0usr\0` is
/// `/usr/lib/x86_64-linux-gnu/lib.so`). A power of two: the kernel masks
/// its write offset with it.
pub const MAPPED_PATH_MAX: usize = 4096;
/// Room for one more name (`NAME_MAX` + NUL) past [`MAPPED_PATH_MAX`].
pub const MAPPED_NAME_MAX: usize = 256;
/// At most this many names and mount crossings are walked.
pub const MAPPED_PATH_DEPTH: usize = 40;

/// The walk from a mapped file ended at a mount with no parent before the
/// task's root (a memfd, an internal mount, a file opened outside a
/// `chroot`): its names do not form a path in the task's root.
pub const FLAG_PATH_OUTSIDE_ROOT: u16 = 1 << 9;

/// Kernel-side scratch for a mapping record.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MmapScratch {
    pub header: MmapRecord,
    pub path: [u8; MAPPED_PATH_MAX + MAPPED_NAME_MAX],
}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid, explicit padding.
unsafe impl aya::Pod for MmapRecord {}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid, explicit padding.
unsafe impl aya::Pod for FileIdentity {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for ExecHeader {}
