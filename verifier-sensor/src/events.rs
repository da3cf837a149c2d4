//! The owned events the sensor hands the agent, one type per record kind,
//! with wall-clock times.
//!
//! Decoding itself (bounds, kinds) lives in `verifier_common::decode`, next
//! to the layout it checks, and the one enum over these types in
//! [`crate::records`]; this module adds what only userspace knows: the
//! wall-clock time of a kernel timestamp, and the device number in the
//! encoding `stat(2)` uses.

use verifier_common::{
    decode::{CgroupRecord, ExecRecord, MmapRecordRef, comm_bytes},
    event::{
        FLAG_ARGS_TRUNCATED, FLAG_EXE_UNLINKED, FLAG_FILENAME_TRUNCATED, FLAG_NO_ARGS, FLAG_NO_EXE_FILE,
        FLAG_PATH_OUTSIDE_ROOT, FLAG_SCRIPT, FLAG_WRITTEN, FileIdentity, WriteRecord,
    },
    throttle::ThrottleRecord,
};

/// Converts `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) to Unix time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Realtime minus monotonic, in nanoseconds, taken at start-up.
    offset_ns: i128,
}

impl Clock {
    /// Samples both clocks now.
    pub fn new() -> Self {
        let ns = |id| {
            nix::time::clock_gettime(id)
                .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
                .unwrap_or(0)
        };
        let mono = ns(nix::time::ClockId::CLOCK_MONOTONIC);
        let real = ns(nix::time::ClockId::CLOCK_REALTIME);
        Self { offset_ns: real - mono }
    }

    /// Unix time in nanoseconds of a monotonic kernel timestamp.
    pub fn unix_ns(&self, ktime_ns: u64) -> i128 {
        i128::from(ktime_ns) + self.offset_ns
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// `dev_t` as `stat(2)` reports it (glibc `makedev`) from the kernel's
/// internal `MAJOR << 20 | MINOR` encoding.
pub fn kernel_dev_to_user(dev: u32) -> u64 {
    let major = u64::from(dev >> 20);
    let minor = u64::from(dev & 0xf_ffff);
    ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
}

/// The identity the kernel reports for a file (device in the kernel's
/// `major << 20 | minor` form), from its `stat`: what a file found by
/// userspace is compared with.
pub fn identity_of(m: &std::fs::Metadata) -> FileIdentity {
    use std::os::unix::fs::MetadataExt as _;
    FileIdentity {
        ino: m.ino(),
        size: m.size() as i64,
        ctime_sec: m.ctime(),
        ctime_nsec: m.ctime_nsec() as u32,
        dev: libc::major(m.dev()) << 20 | libc::minor(m.dev()),
    }
}

/// A directory as `stat(2)` names it: device (in `stat`'s encoding) and
/// inode number. What the kernel reports of a task's root directory, to be
/// compared with the `stat` of a container's root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DirIdentity {
    pub dev: u64,
    pub ino: u64,
}

impl DirIdentity {
    /// From `stat` of the directory.
    pub fn of(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self { dev: m.dev(), ino: m.ino() }
    }
}

/// One exec, owned, ready for attribution and output.
#[derive(Clone, Debug)]
pub struct ExecEvent {
    pub unix_ns: i128,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub ns_pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub mnt_ns: u32,
    pub pid_ns: u32,
    pub comm: Vec<u8>,
    /// Exactly the bytes the kernel had (may be non-UTF-8).
    pub filename: Vec<u8>,
    pub filename_truncated: bool,
    /// A `#!` script was run: `filename` is the script, `exe` its
    /// interpreter.
    pub script: bool,
    /// The executed file had no name at exec time (memfd, deleted file).
    pub exe_unlinked: bool,
    /// The executed (or mapped) file was opened for writing in a watched
    /// container since it was unpacked: its identity does not prove what
    /// ran, so it is never judged `ok`.
    pub written: bool,
    /// `None` when the kernel could not read `mm->exe_file`.
    pub exe: Option<FileIdentity>,
    /// The task's root directory at the exec (`None`: not read): where
    /// the executed path was resolved. A `chroot` moves it.
    pub root: Option<DirIdentity>,
    /// The arguments as the kernel read them at the exec (`None`: not
    /// read); exact bytes.
    pub argv: Option<Vec<Vec<u8>>>,
    /// The argument list was longer than the kernel carries.
    pub argv_truncated: bool,
    /// Not an exec: a verification job standing for a [`LibraryEvent`]
    /// (built by [`ExecEvent::of_library`]); `exe` is the mapped file,
    /// `filename` the path the kernel walked (empty when it had none; the
    /// engine also looks in `/proc/<pid>/maps`). The
    /// record kind itself is [`LibraryEvent`]'s, never this flag.
    pub library: bool,
    /// For a library job, the descriptor the kernel saw being mapped
    /// (`None`: unknown, as for mappings found by a scan). Reported at
    /// `sys_enter_mmap`, so the agent may look before the mapping exists:
    /// the descriptor is then the way to the file.
    pub mapped_fd: Option<i32>,
    /// The consumer's own number for this event (0 as decoded): the agent
    /// sets it on arrival to find what it knows about the event (its record
    /// kind, its attribution) when the verification engine hands it back.
    pub tag: u64,
}

impl ExecEvent {
    /// From a record already decoded.
    pub fn from_record(r: &ExecRecord<'_>, clock: &Clock) -> Self {
        let h = &r.header;
        Self {
            unix_ns: clock.unix_ns(h.ktime_ns),
            pid: h.pid,
            tgid: h.tgid,
            ppid: h.ppid,
            ns_pid: h.ns_pid,
            uid: h.uid,
            gid: h.gid,
            cgroup_id: h.cgroup_id,
            mnt_ns: h.mnt_ns,
            pid_ns: h.pid_ns,
            comm: comm_bytes(&h.comm).to_vec(),
            filename: r.filename.to_vec(),
            filename_truncated: h.flags & FLAG_FILENAME_TRUNCATED != 0,
            script: h.flags & FLAG_SCRIPT != 0,
            exe_unlinked: h.flags & FLAG_EXE_UNLINKED != 0,
            written: h.flags & FLAG_WRITTEN != 0,
            exe: (h.flags & FLAG_NO_EXE_FILE == 0).then_some(h.exe),
            root: (h.root_ino != 0)
                .then(|| DirIdentity { dev: kernel_dev_to_user(h.root_dev), ino: h.root_ino }),
            argv: (h.flags & FLAG_NO_ARGS == 0).then(|| split_args(r.args)),
            argv_truncated: h.flags & FLAG_ARGS_TRUNCATED != 0,
            library: false,
            mapped_fd: None,
            tag: 0,
        }
    }

    /// The verification job for a library mapping: the engine verifies a
    /// mapped file as it verifies an executed one.
    pub fn of_library(l: &LibraryEvent) -> Self {
        Self {
            unix_ns: l.unix_ns,
            pid: l.pid,
            tgid: l.tgid,
            ppid: 0,
            ns_pid: 0,
            uid: 0,
            gid: 0,
            cgroup_id: l.cgroup_id,
            mnt_ns: 0,
            pid_ns: 0,
            comm: l.comm.clone(),
            filename: l.path.clone().unwrap_or_default(),
            filename_truncated: false,
            script: false,
            exe_unlinked: false,
            written: l.written,
            exe: Some(l.identity),
            root: l.root,
            argv: None,
            argv_truncated: false,
            library: true,
            mapped_fd: (l.fd >= 0).then_some(l.fd),
            tag: 0,
        }
    }

    /// A verification job standing for an exec the kernel denied before
    /// it happened (a block that carries the file's name): the file is
    /// `b.path` as the exec named it, proven by the identity the hook
    /// read; the process is still the one that called `execve`, so its
    /// root and working directory resolve the name as the exec did.
    pub fn of_denied_exec(b: &BlockEvent) -> Self {
        let r = &b.record;
        Self {
            unix_ns: b.unix_ns,
            pid: r.pid,
            tgid: r.tgid,
            ppid: 0,
            ns_pid: 0,
            uid: 0,
            gid: 0,
            cgroup_id: r.cgroup_id,
            mnt_ns: 0,
            pid_ns: 0,
            comm: comm_bytes(&r.comm).to_vec(),
            filename: b.path.clone(),
            filename_truncated: b.path_truncated,
            script: false,
            exe_unlinked: r.reasons & verifier_common::enforce::REASON_FILELESS != 0,
            written: r.reasons & verifier_common::enforce::REASON_WRITTEN != 0,
            exe: (r.reasons & verifier_common::enforce::REASON_NO_IDENTITY == 0).then_some(r.identity),
            // The caller is alive: its own root resolves the name.
            root: None,
            argv: None,
            argv_truncated: false,
            library: false,
            mapped_fd: None,
            tag: 0,
        }
    }
}

/// A file mapped executable (`sys_enter_mmap` with `PROT_EXEC`) in a
/// watched container and not in the kernel fast path: a shared library.
#[derive(Clone, Debug)]
pub struct LibraryEvent {
    pub unix_ns: i128,
    pub pid: u32,
    pub tgid: u32,
    pub cgroup_id: u64,
    pub comm: Vec<u8>,
    /// The mapped file as the kernel had it.
    pub identity: FileIdentity,
    /// Its path in the mapping task's root, as the kernel walked it up from
    /// the file (`None`: the walk was cut, or ended outside that root: a
    /// memfd, an internal mount). A name, not a proof: the agent opens it
    /// and compares the identity, as for an exec's path.
    pub path: Option<Vec<u8>>,
    /// The mapping task's root directory (`None`: not read): where `path`
    /// is relative to. A `chroot` moves it.
    pub root: Option<DirIdentity>,
    /// The descriptor being mapped.
    pub fd: i32,
    /// Baseline slot of the container.
    pub slot: u32,
    /// Opened for writing in a watched container since it was unpacked
    /// (as [`ExecEvent::written`]).
    pub written: bool,
}

impl LibraryEvent {
    pub fn from_record(rec: &MmapRecordRef<'_>, clock: &Clock) -> Self {
        let r = &rec.record;
        let walked = r.flags & (FLAG_FILENAME_TRUNCATED | FLAG_PATH_OUTSIDE_ROOT) == 0;
        Self {
            unix_ns: clock.unix_ns(r.ktime_ns),
            pid: r.pid,
            tgid: r.tgid,
            cgroup_id: r.cgroup_id,
            comm: comm_bytes(&r.comm).to_vec(),
            identity: r.identity,
            path: if walked { path_from_leaf_first(rec.names) } else { None },
            root: (r.root_ino != 0)
                .then(|| DirIdentity { dev: kernel_dev_to_user(r.root_dev), ino: r.root_ino }),
            fd: r.fd,
            slot: r.slot,
            written: r.flags & FLAG_WRITTEN != 0,
        }
    }
}

/// A path from the kernel's leaf-first names (each NUL-terminated, see
/// `verifier_common::event::MAPPED_PATH_MAX`): absolute, joined by `/`.
/// `None` for no names (the root itself) or a name that is empty, `.` or
/// `..` (never written by the walk: the bytes are not a path).
pub fn path_from_leaf_first(names: &[u8]) -> Option<Vec<u8>> {
    let names = names.strip_suffix(b"\0")?;
    let mut path = Vec::with_capacity(names.len() + 1);
    for name in names.rsplit(|&b| b == 0) {
        if name.is_empty() || name == b"." || name == b".." {
            return None;
        }
        path.push(b'/');
        path.extend_from_slice(name);
    }
    Some(path)
}

/// A file verified `ok` was opened for writing in its container.
#[derive(Clone, Copy, Debug)]
pub struct WriteEvent {
    pub unix_ns: i128,
    pub record: WriteRecord,
}

/// A cgroup was created: a container may be starting in it.
#[derive(Clone, Debug)]
pub struct CgroupEvent {
    pub unix_ns: i128,
    /// The cgroup's id (what `bpf_get_current_cgroup_id` returns in it).
    pub id: u64,
    /// Its path below the hierarchy's root, exact bytes.
    pub path: Vec<u8>,
    pub path_truncated: bool,
}

impl CgroupEvent {
    pub fn from_record(r: &CgroupRecord<'_>, clock: &Clock) -> Self {
        Self {
            unix_ns: clock.unix_ns(r.header.ktime_ns),
            id: r.header.id,
            path: r.path.to_vec(),
            path_truncated: r.header.flags & FLAG_FILENAME_TRUNCATED != 0,
        }
    }
}

/// A container went past its exec limit (throttle start).
#[derive(Clone, Copy, Debug)]
pub struct ThrottleEvent {
    pub unix_ns: i128,
    pub record: ThrottleRecord,
}

/// An exec or mapping blocked in an enforced container (or that would
/// have been, in dry-run).
#[derive(Clone, Debug)]
pub struct BlockEvent {
    pub unix_ns: i128,
    pub record: verifier_common::enforce::BlockRecord,
    /// The name the exec was given (exact bytes), where the hook carries
    /// it: a BPF LSM exec denial, whose exec record never comes; for a
    /// denied write, the file's path in the writer's root, walked in the
    /// kernel. Empty otherwise.
    pub path: Vec<u8>,
    /// `path` filled the kernel's buffer and may be cut.
    pub path_truncated: bool,
}

impl BlockEvent {
    pub fn from_record(r: &verifier_common::decode::BlockRecordRef<'_>, clock: &Clock) -> Self {
        Self {
            unix_ns: clock.unix_ns(r.record.ktime_ns),
            record: r.record,
            // A denied write's file names, walked in the kernel leaf first.
            path: if r.record.path_flags & verifier_common::enforce::BLOCK_PATH_LEAF_FIRST != 0 {
                path_from_leaf_first(r.path).unwrap_or_default()
            } else {
                r.path.to_vec()
            },
            path_truncated: r.record.path_flags & verifier_common::enforce::BLOCK_PATH_TRUNCATED != 0,
        }
    }
}

/// NUL-separated argument strings (the last may be cut, without its NUL).
pub fn split_args(raw: &[u8]) -> Vec<Vec<u8>> {
    if raw.is_empty() {
        return Vec::new();
    }
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use verifier_common::event::MmapRecord;

    use super::*;

    #[test]
    fn arguments_split_on_nul_and_keep_empty_ones() {
        assert_eq!(
            split_args(b"ls\0-l\0\0x\0"),
            vec![b"ls".to_vec(), b"-l".to_vec(), Vec::new(), b"x".to_vec()]
        );
        assert_eq!(split_args(b"sh\0-c\0ech"), vec![b"sh".to_vec(), b"-c".to_vec(), b"ech".to_vec()], "cut");
        assert!(split_args(b"").is_empty());
    }

    #[test]
    fn the_kernels_leaf_first_names_make_a_path() {
        assert_eq!(
            path_from_leaf_first(b"libc.so.6\0x86_64-linux-gnu\0lib\0usr\0").as_deref(),
            Some(&b"/usr/lib/x86_64-linux-gnu/libc.so.6"[..])
        );
        assert_eq!(
            path_from_leaf_first(b"a b\xff\n\0tmp\0").as_deref(),
            Some(&b"/tmp/a b\xff\n"[..]),
            "exact bytes"
        );
        assert_eq!(path_from_leaf_first(b""), None, "no names");
        assert_eq!(path_from_leaf_first(b"x\0\0tmp\0"), None, "an empty name is no path");
        assert_eq!(path_from_leaf_first(b"x\0..\0"), None);
        assert_eq!(path_from_leaf_first(b"lib.so"), None, "cut inside a name");
    }

    #[test]
    fn a_mapping_record_carries_its_path_unless_the_walk_was_cut_or_left_the_root() {
        let clock = Clock::new();
        let names = b"evil.so\0tmp\0";
        for (flags, want) in
            [(0, Some(&b"/tmp/evil.so"[..])), (FLAG_FILENAME_TRUNCATED, None), (FLAG_PATH_OUTSIDE_ROOT, None)]
        {
            let record = MmapRecord { flags, root_ino: 2, root_dev: 1 << 20 | 5, ..MmapRecord::default() };
            let lib = LibraryEvent::from_record(&MmapRecordRef { record, names }, &clock);
            assert_eq!(lib.path.as_deref(), want);
            assert_eq!(lib.root, Some(DirIdentity { dev: libc::makedev(1, 5), ino: 2 }));
            let job = ExecEvent::of_library(&lib);
            assert_eq!(job.filename, want.unwrap_or_default());
            assert_eq!(job.root, lib.root, "the job keeps the root the path is relative to");
        }
    }

    #[test]
    fn a_denied_writes_walked_names_become_its_path() {
        use verifier_common::{
            decode::BlockRecordRef,
            enforce::{BLOCK_PATH_LEAF_FIRST, BlockRecord},
        };
        let clock = Clock::new();
        let record = BlockRecord { path_flags: BLOCK_PATH_LEAF_FIRST, ..BlockRecord::default() };
        let block = BlockEvent::from_record(&BlockRecordRef { record, path: b"tool\0bin\0" }, &clock);
        assert_eq!(block.path, b"/bin/tool");
        let record = BlockRecord::default();
        let block = BlockEvent::from_record(&BlockRecordRef { record, path: b"/tmp/x" }, &clock);
        assert_eq!(block.path, b"/tmp/x", "an exec's name is kept as the kernel had it");
    }

    #[test]
    fn the_written_flag_reaches_exec_and_library_events() {
        use verifier_common::event::ExecHeader;
        let clock = Clock::new();
        for flags in [0, FLAG_WRITTEN] {
            let header = ExecHeader { flags, ..ExecHeader::default() };
            let exec = ExecEvent::from_record(&ExecRecord { header, filename: b"/x", args: b"" }, &clock);
            assert_eq!(exec.written, flags != 0);
            let record = MmapRecord { flags, ..MmapRecord::default() };
            let lib = LibraryEvent::from_record(&MmapRecordRef { record, names: b"" }, &clock);
            assert_eq!(lib.written, flags != 0);
            assert_eq!(ExecEvent::of_library(&lib).written, flags != 0, "the library's job keeps it");
        }
    }

    #[test]
    fn the_root_directory_reaches_the_exec_event_in_stat_encoding() {
        use verifier_common::event::ExecHeader;
        let clock = Clock::new();
        let header = ExecHeader { root_ino: 77, root_dev: 8 << 20 | 3, ..ExecHeader::default() };
        let exec = ExecEvent::from_record(&ExecRecord { header, filename: b"/x", args: b"" }, &clock);
        assert_eq!(exec.root, Some(DirIdentity { dev: libc::makedev(8, 3), ino: 77 }));
        let header = ExecHeader { root_dev: 8 << 20 | 3, ..ExecHeader::default() };
        let exec = ExecEvent::from_record(&ExecRecord { header, filename: b"/x", args: b"" }, &clock);
        assert_eq!(exec.root, None, "not read: unknown, never a zero identity");
    }

    #[test]
    fn dev_encoding_matches_libc_makedev() {
        for (major, minor) in [(8u32, 1u32), (253, 0), (0, 35), (259, 3), (4095, 1_048_575), (300, 256)] {
            let kernel = major << 20 | minor;
            assert_eq!(kernel_dev_to_user(kernel), libc::makedev(major, minor), "{major}:{minor}");
        }
    }

    #[test]
    fn dev_of_a_real_file_round_trips() {
        let m = std::fs::metadata("/proc/self/exe").expect("stat");
        let (major, minor) = (libc::major(m.dev()), libc::minor(m.dev()));
        assert_eq!(kernel_dev_to_user(major << 20 | minor), m.dev());
    }

    #[test]
    fn clock_maps_now_to_now() {
        let clock = Clock::new();
        let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
        let mono_ns = mono.tv_sec() as u64 * 1_000_000_000 + mono.tv_nsec() as u64;
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after epoch")
            .as_nanos() as i128;
        assert!((clock.unix_ns(mono_ns) - real).abs() < 50_000_000, "within 50 ms");
    }
}
