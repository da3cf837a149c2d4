//! The scan of running processes: what ran before the agent was watching.
//!
//! The kernel hooks only see execs and mappings that happen while they are
//! attached. A binary dropped and started while the agent was down (a
//! DaemonSet rollout, a restart) would never be judged. So once the hooks
//! are attached (nothing can slip between the scan and them), every
//! process of every container is judged as if it had just been executed:
//! its executable (`/proc/<pid>/exe`, with the identity `stat` gives) and
//! every file it maps executable (`/proc/<pid>/maps`, through
//! `/proc/<pid>/map_files`). A container the agent first learns of later
//! (by a record, not at start-up) is scanned then; one whose cgroup the
//! kernel reported being created needs no scan, its processes all exec
//! under the hooks.
//!
//! The events built here ([`Scanned`]) are handed back to the dispatcher,
//! which sends them through the same verification as the kernel's
//! records, marked as scanned (`"origin": "scan"`). Host
//! processes are not judged. A container's processes are capped
//! ([`MAX_PROCESSES_PER_CONTAINER`]); what is left out, or gone before it
//! could be read, is counted (`user.scan_skipped`).

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use verifier_common::event::FileIdentity;
use verifier_sensor::events::{ExecEvent, LibraryEvent, identity_of, split_args};

use crate::attribution::{Attribution, resolver::find_cgroup2_mount};

use super::{State, now_mono_ns, respond::Origin};

/// One running process's executable or mapping, judged like a record.
pub(crate) struct Scanned {
    pub(crate) origin: Origin,
    pub(crate) event: ExecEvent,
    pub(crate) attribution: Attribution,
}

/// Processes judged per container and scan; the rest are counted.
pub(crate) const MAX_PROCESSES_PER_CONTAINER: usize = 512;

/// Which containers have been scanned, and where to look.
pub(crate) struct Scanner {
    proc_root: PathBuf,
    cgroup2: Option<PathBuf>,
    /// Cgroups whose processes were scanned, or born under the hooks.
    seen: HashSet<u64>,
    /// Off when verification is: nothing to judge against.
    enabled: bool,
}

impl Scanner {
    pub(crate) fn new(enabled: bool) -> Self {
        Self { proc_root: "/proc".into(), cgroup2: find_cgroup2_mount(), seen: HashSet::new(), enabled }
    }

    /// A container cgroup created under the hooks: nothing in it to scan.
    pub(crate) fn born(&mut self, cgroup_id: u64) {
        self.seen.insert(cgroup_id);
    }

    /// Whether a container's record should first scan its processes.
    pub(crate) fn first_sight(&self, cgroup_id: u64) -> bool {
        self.enabled && cgroup_id != 0 && !self.seen.contains(&cgroup_id)
    }
}

/// Judges every process of every container now running (at start-up,
/// after the hooks are attached).
pub(super) fn at_start(state: &mut State) -> Vec<Scanned> {
    let mut found = Vec::new();
    if !state.scan.enabled {
        return found;
    }
    let me = std::process::id();
    let pids: Vec<u32> = fs::read_dir(&state.scan.proc_root)
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let mut per_cgroup: HashMap<u64, Vec<Process>> = HashMap::new();
    for pid in pids.into_iter().filter(|&p| p != me) {
        let Some(p) = read_process(&state.scan.proc_root, state.scan.cgroup2.as_deref(), pid) else {
            continue;
        };
        per_cgroup.entry(p.event.cgroup_id).or_default().push(p);
    }
    for (cgroup_id, processes) in per_cgroup {
        found.extend(judge_all(state, cgroup_id, processes));
    }
    found
}

/// Judges the processes of a container the agent has just learnt of,
/// except `skip` (the process whose record taught it).
pub(super) fn container(state: &mut State, cgroup_id: u64, skip: u32) -> Vec<Scanned> {
    let Some(path) = cgroup_dir(state.scan.cgroup2.as_deref(), &state.scan.proc_root, skip) else {
        state.scan.seen.insert(cgroup_id);
        return Vec::new();
    };
    let pids: Vec<u32> = fs::read_to_string(path.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default();
    let processes = pids
        .into_iter()
        .filter(|&p| p != skip)
        .filter_map(|p| read_process(&state.scan.proc_root, state.scan.cgroup2.as_deref(), p))
        .filter(|p| p.event.cgroup_id == cgroup_id)
        .collect();
    judge_all(state, cgroup_id, processes)
}

/// One cgroup's processes as events to verify, each attributed as a
/// record of it would be; host processes are left alone.
fn judge_all(state: &mut State, cgroup_id: u64, processes: Vec<Process>) -> Vec<Scanned> {
    let mut found = Vec::new();
    state.scan.seen.insert(cgroup_id);
    let mut libraries: HashSet<(u32, u64)> = HashSet::new();
    let mut judged = 0;
    for p in processes {
        let attribution = state.resolver.attribute(p.event.cgroup_id, p.event.tgid, p.event.mnt_ns);
        if !matches!(attribution, Attribution::Container(_)) {
            continue;
        }
        if judged >= MAX_PROCESSES_PER_CONTAINER {
            state.user.scan_skipped += 1;
            continue;
        }
        judged += 1;
        state.user.scanned_processes += 1;
        let maps =
            fs::read(state.scan.proc_root.join(p.event.tgid.to_string()).join("maps")).unwrap_or_default();
        let exe = p.event.exe;
        let (tgid, comm, unix_ns) = (p.event.tgid, p.event.comm.clone(), p.event.unix_ns);
        found.push(Scanned { origin: Origin::Exec, event: p.event, attribution: attribution.clone() });
        for identity in exec_mappings(&state.scan.proc_root, tgid, &maps) {
            if exe.is_some_and(|e| e.ino == identity.ino && e.dev == identity.dev)
                || !libraries.insert((identity.dev, identity.ino))
            {
                continue;
            }
            let library = LibraryEvent {
                written: false,
                unix_ns,
                pid: tgid,
                tgid,
                cgroup_id,
                comm: comm.clone(),
                identity,
                // Found in `/proc/<pid>/maps` by the engine, with the
                // process alive.
                path: None,
                root: None,
                fd: -1,
                slot: 0,
            };
            state.user.scanned_mappings += 1;
            found.push(Scanned {
                origin: Origin::Library,
                event: ExecEvent::of_library(&library),
                attribution: attribution.clone(),
            });
        }
    }
    found
}

/// A running process as an exec event.
struct Process {
    event: ExecEvent,
}

/// Reads a process as the kernel would have reported its exec; `None`
/// for kernel threads and processes gone meanwhile.
fn read_process(proc_root: &Path, cgroup2: Option<&Path>, pid: u32) -> Option<Process> {
    let dir = proc_root.join(pid.to_string());
    let exe_meta = fs::metadata(dir.join("exe")).ok()?;
    let link = fs::read_link(dir.join("exe")).ok()?;
    let mut filename = std::os::unix::ffi::OsStringExt::into_vec(link.into_os_string());
    let unlinked = exe_meta.nlink() == 0;
    if let Some(stripped) = filename.strip_suffix(b" (deleted)") {
        filename = stripped.to_vec();
    }
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let s = Status::parse(&status);
    let comm = fs::read(dir.join("comm")).ok().map(|mut c| {
        c.pop_if(|b| *b == b'\n');
        c
    });
    let ns = |name: &str| fs::metadata(dir.join("ns").join(name)).map_or(0, |m| m.ino() as u32);
    let cgroup_id =
        cgroup_dir(cgroup2, proc_root, pid).and_then(|p| fs::metadata(p).ok()).map_or(0, |m| m.ino());
    Some(Process {
        event: ExecEvent {
            unix_ns: wall_now_ns(),
            pid,
            tgid: pid,
            ppid: s.ppid,
            ns_pid: s.ns_pid.unwrap_or(pid),
            uid: s.uid,
            gid: s.gid,
            cgroup_id,
            mnt_ns: ns("mnt"),
            pid_ns: ns("pid"),
            comm: comm.unwrap_or_default(),
            filename,
            filename_truncated: false,
            script: false,
            exe_unlinked: unlinked,
            exe: Some(identity_of(&exe_meta)),
            root: None,
            argv: fs::read(dir.join("cmdline")).ok().map(|raw| split_args(&raw)),
            argv_truncated: false,
            library: false,
            mapped_fd: None,
            // The kernel's record of write-opens starts with the agent: a
            // file swapped before it started is judged by its bytes now.
            written: false,
            tag: 0,
        },
    })
}

fn wall_now_ns() -> i128 {
    verifier_sensor::events::Clock::new().unix_ns(0) + now_mono_ns()
}

/// The cgroup2 directory of a process (`None` without cgroup2 or once the
/// process is gone).
fn cgroup_dir(cgroup2: Option<&Path>, proc_root: &Path, pid: u32) -> Option<PathBuf> {
    let text = fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    let rel = unified_path(&text)?;
    Some(cgroup2?.join(rel.trim_start_matches('/')))
}

/// The cgroup2 path in a `/proc/<pid>/cgroup` text (its `0::` line).
fn unified_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The mapped files of a process that are executable, with the identity
/// of each (read through `/proc/<pid>/map_files`, the mapping itself).
fn exec_mappings(proc_root: &Path, pid: u32, maps: &[u8]) -> Vec<FileIdentity> {
    let files = proc_root.join(pid.to_string()).join("map_files");
    executable_ranges(maps)
        .into_iter()
        .filter_map(|range| Some(identity_of(&fs::metadata(files.join(range)).ok()?)))
        .collect()
}

/// `start-end` of each executable file mapping in a `/proc/<pid>/maps`
/// text (`start-end perms offset dev inode   path`): `x` in the
/// permissions, a non-zero inode and an absolute path (not `[vdso]`).
fn executable_ranges(maps: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(maps);
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let (range, perms, _, _, inode) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            let path = f.next()?;
            (perms.contains('x') && inode != "0" && path.starts_with('/')).then(|| range.to_owned())
        })
        .collect()
}

/// What the scan takes from `/proc/<pid>/status`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Status {
    ppid: u32,
    uid: u32,
    gid: u32,
    /// The pid in the process's own (innermost) namespace.
    ns_pid: Option<u32>,
}

impl Status {
    fn parse(text: &str) -> Self {
        let mut s = Status::default();
        let first = |v: &str| v.split_ascii_whitespace().next().and_then(|x| x.parse().ok());
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            match key {
                "PPid" => s.ppid = first(value).unwrap_or(0),
                "Uid" => s.uid = first(value).unwrap_or(0),
                "Gid" => s.gid = first(value).unwrap_or(0),
                "NSpid" => s.ns_pid = value.split_ascii_whitespace().last().and_then(|x| x.parse().ok()),
                _ => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_parent_ids_and_the_innermost_pid() {
        let s = Status::parse(
            "Name:\tsleep\nPPid:\t41\nUid:\t1000\t1000\t1000\t1000\nGid:\t7\t7\t7\t7\nNSpid:\t812\t5\n",
        );
        assert_eq!(s, Status { ppid: 41, uid: 1000, gid: 7, ns_pid: Some(5) });
    }

    #[test]
    fn only_executable_file_mappings_are_taken() {
        let maps = b"55d0-55d1 r--p 00000000 00:2a 123 /bin/busybox\n\
55d1-55d2 r-xp 00001000 00:2a 123 /bin/busybox\n\
7f00-7f01 r-xp 00000000 00:2a 456 /lib/ld-musl-x86_64.so.1\n\
7ffc-7ffd r-xp 00000000 00:00 0 [vdso]\n\
7ffe-7fff rw-p 00000000 00:00 0 [stack]\n";
        assert_eq!(executable_ranges(maps), vec!["55d1-55d2".to_owned(), "7f00-7f01".to_owned()]);
    }

    #[test]
    fn the_unified_cgroup_line_is_found() {
        assert_eq!(unified_path("12:pids:/x\n0::/system.slice/abc\n"), Some("/system.slice/abc"));
        assert_eq!(unified_path("12:pids:/x\n"), None);
    }

    #[test]
    fn this_process_reads_as_its_own_exec() {
        let me = std::process::id();
        let p = read_process(Path::new("/proc"), find_cgroup2_mount().as_deref(), me).expect("readable");
        let exe = fs::metadata("/proc/self/exe").expect("stat");
        assert_eq!(p.event.exe.map(|i| i.ino), Some(exe.ino()));
        assert_eq!(
            p.event.filename,
            fs::read_link("/proc/self/exe").expect("link").as_os_str().as_encoded_bytes()
        );
        assert!(p.event.argv.is_some_and(|a| !a.is_empty()));
        let ranges = exec_mappings(Path::new("/proc"), me, &fs::read("/proc/self/maps").expect("maps"));
        assert!(ranges.iter().any(|id| id.ino == exe.ino()), "its own code is mapped executable");
    }
}
