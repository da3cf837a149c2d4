//! Finds the cgroup path for an event and remembers the answer.
//!
//! A cgroup id (the cgroup2 directory's inode number) never changes meaning
//! while the cgroup exists, so the first answer for an id is cached and
//! every later exec in that container costs one hash lookup. The first
//! lookup reads `/proc/<pid>/cgroup`; if the process has already exited (a
//! short-lived exec), it searches the cgroup2 filesystem for the directory
//! whose inode is the id.
//!
//! On a pure cgroup v1 host every task reports the root cgroup2 id, so the
//! cache key falls back to the mount namespace.
//!
//! A node runs containers by the thousand over its life, so the cache must
//! forget the gone ones: [`Resolver::sweep`] (called periodically by the
//! agent) drops every cgroup entry whose directory is no longer there, or
//! is there with another inode (removed and made again).

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::{Attribution, Runtime, container_from_cgroup_path, container_from_proc_cgroup};

/// A directory where a runtime keeps one entry per live container.
#[derive(Clone, Debug)]
pub struct StateRoot {
    pub dir: PathBuf,
    pub runtime: Runtime,
    /// Entries sit one level down (`<dir>/<namespace>/<id>`), as containerd's.
    pub namespaced: bool,
}

/// Default state directories of the runtimes on a node.
pub fn default_state_roots() -> Vec<StateRoot> {
    vec![
        StateRoot { dir: "/run/runc".into(), runtime: Runtime::Runc, namespaced: false },
        StateRoot { dir: "/run/crun".into(), runtime: Runtime::Crun, namespaced: false },
        StateRoot { dir: "/run/containerd/runc".into(), runtime: Runtime::Containerd, namespaced: true },
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Cgroup(u64),
    MntNs(u32),
}

/// Attribution with a per-cgroup cache.
#[derive(Debug)]
pub struct Resolver {
    proc_root: PathBuf,
    cgroup2: Option<PathBuf>,
    cgroup2_root_id: u64,
    host_mnt_ns: u32,
    state_roots: Vec<StateRoot>,
    cache: HashMap<Key, Attribution>,
}

impl Resolver {
    /// A resolver for this host: finds the cgroup2 mount; `host_mnt_ns` is
    /// the mount namespace of host processes.
    pub fn new(state_roots: Vec<StateRoot>, host_mnt_ns: u32) -> Self {
        let cgroup2 = find_cgroup2_mount();
        let cgroup2_root_id = cgroup2.as_deref().and_then(|p| fs::metadata(p).ok()).map_or(1, |m| m.ino());
        Self {
            proc_root: "/proc".into(),
            cgroup2,
            cgroup2_root_id,
            host_mnt_ns,
            state_roots,
            cache: HashMap::new(),
        }
    }

    /// A resolver reading `proc_root` and `cgroup2` instead of the host's
    /// (tests, or an agent whose host /proc is mounted elsewhere).
    pub fn with_roots(
        state_roots: Vec<StateRoot>,
        host_mnt_ns: u32,
        proc_root: PathBuf,
        cgroup2: Option<PathBuf>,
    ) -> Self {
        let cgroup2_root_id = cgroup2.as_deref().and_then(|p| fs::metadata(p).ok()).map_or(1, |m| m.ino());
        Self { proc_root, cgroup2, cgroup2_root_id, host_mnt_ns, state_roots, cache: HashMap::new() }
    }

    /// The host's mount namespace inum.
    pub fn host_mnt_ns(&self) -> u32 {
        self.host_mnt_ns
    }

    /// Number of cached cgroups.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Forgets cgroups that no longer exist; returns how many. A
    /// container's entry is checked at its own path (one `stat`); any other
    /// cgroup entry (host or unknown, rare) is dropped and looked up again
    /// if it is seen again. Without a cgroup2 mount nothing can be checked.
    pub fn sweep(&mut self) -> usize {
        let Some(root) = self.cgroup2.clone() else { return 0 };
        let before = self.cache.len();
        self.cache.retain(|key, found| match (key, found) {
            (Key::Cgroup(id), Attribution::Container(c)) => {
                fs::metadata(root.join(c.cgroup.trim_start_matches('/'))).is_ok_and(|m| m.ino() == *id)
            }
            (Key::Cgroup(_), _) => false,
            (Key::MntNs(_), _) => true,
        });
        before - self.cache.len()
    }

    /// A cgroup was just created (the kernel's `cgroup_mkdir` record):
    /// when its path names a container, remember it now, so the
    /// container's first exec needs no lookup and races no exit. `path` is
    /// relative to the cgroup2 root. Returns the container.
    pub fn cgroup_created(&mut self, id: u64, path: &str) -> Option<super::ContainerRef> {
        let container = container_from_cgroup_path(path, |leaf| self.runtime_of(leaf))?;
        self.cache.insert(Key::Cgroup(id), Attribution::Container(container.clone()));
        Some(container)
    }

    /// Attributes an event to a container, the host, or neither.
    ///
    /// The mount namespace decides first, before any cgroup: a process in
    /// the host's mount namespace sees the host's files, so what it runs is
    /// the host's, whatever cgroup it already sits in. A runtime starting a
    /// container (runc or crun re-executing itself from a memfd as the
    /// container's init) joins the container's cgroup before it leaves the
    /// host's mount namespace; its exec is not the container's behaviour.
    /// `mnt_ns` 0 means unknown (records without it) and decides nothing.
    pub fn attribute(&mut self, cgroup_id: u64, tgid: u32, mnt_ns: u32) -> Attribution {
        if self.is_host_mnt_ns(mnt_ns) {
            return Attribution::Host;
        }
        let key = if cgroup_id != self.cgroup2_root_id && cgroup_id != 0 {
            Key::Cgroup(cgroup_id)
        } else {
            Key::MntNs(mnt_ns)
        };
        if let Some(hit) = self.cache.get(&key) {
            return hit.clone();
        }
        let Some(found) = self.lookup(key, cgroup_id, tgid, mnt_ns) else {
            // Not cached: the process is gone and the cgroup not found; a
            // later event may do better.
            return Attribution::Unknown("process exited before its cgroup could be read");
        };
        self.cache.insert(key, found.clone());
        found
    }

    fn lookup(&self, key: Key, cgroup_id: u64, tgid: u32, mnt_ns: u32) -> Option<Attribution> {
        let runtime_of = |leaf: &str| self.runtime_of(leaf);
        let proc_cgroup = self.proc_root.join(tgid.to_string()).join("cgroup");
        let container = match fs::read_to_string(&proc_cgroup) {
            Ok(content) => container_from_proc_cgroup(&content, runtime_of),
            Err(_) => {
                let Key::Cgroup(_) = key else { return None };
                let path = self.cgroup_path_by_id(cgroup_id)?;
                container_from_cgroup_path(&path, runtime_of)
            }
        };
        Some(match container {
            Some(c) => Attribution::Container(c),
            None if mnt_ns == 0 => Attribution::Host,
            None => Attribution::Unknown("own mount namespace but no container cgroup"),
        })
    }

    /// Every runtime gives a container its own mount namespace, so a
    /// process in the host's is a host process: no I/O needed, and no race
    /// with a short-lived process that is already gone.
    fn is_host_mnt_ns(&self, mnt_ns: u32) -> bool {
        mnt_ns != 0 && mnt_ns == self.host_mnt_ns
    }

    fn runtime_of(&self, leaf: &str) -> Option<Runtime> {
        if leaf.is_empty() || leaf.contains('/') || leaf.starts_with('.') {
            return None;
        }
        self.state_roots.iter().find_map(|root| {
            let found = if root.namespaced {
                fs::read_dir(&root.dir).ok()?.flatten().any(|ns| ns.path().join(leaf).is_dir())
            } else {
                root.dir.join(leaf).is_dir()
            };
            found.then_some(root.runtime)
        })
    }

    /// Path (relative to the cgroup2 root, starting with '/') of the cgroup
    /// whose directory inode is `id`.
    fn cgroup_path_by_id(&self, id: u64) -> Option<String> {
        let root = self.cgroup2.as_deref()?;
        find_dir_by_ino(root, id, 0).map(|abs| {
            let rel = abs.strip_prefix(root).unwrap_or(&abs);
            format!("/{}", rel.display())
        })
    }
}

fn find_dir_by_ino(dir: &Path, ino: u64, depth: usize) -> Option<PathBuf> {
    if depth > 16 {
        return None;
    }
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        if entry.metadata().is_ok_and(|m| m.ino() == ino) {
            return Some(entry.path());
        }
        if let Some(found) = find_dir_by_ino(&entry.path(), ino, depth + 1) {
            return Some(found);
        }
    }
    None
}

/// Where cgroup2 is mounted (`/sys/fs/cgroup` on v2 hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones), from `/proc/self/mountinfo`.
pub fn find_cgroup2_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    struct Fixture {
        _dir: tempfile::TempDir,
        proc_root: PathBuf,
        cgroup2: PathBuf,
        runc_state: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc_root = dir.path().join("proc");
        let cgroup2 = dir.path().join("cgroup");
        let runc_state = dir.path().join("runc");
        for d in [&proc_root, &cgroup2, &runc_state] {
            fs::create_dir_all(d).expect("mkdir");
        }
        Fixture { proc_root, cgroup2, runc_state, _dir: dir }
    }

    fn resolver(f: &Fixture) -> Resolver {
        let roots = vec![StateRoot { dir: f.runc_state.clone(), runtime: Runtime::Runc, namespaced: false }];
        Resolver::with_roots(roots, 1000, f.proc_root.clone(), Some(f.cgroup2.clone()))
    }

    #[test]
    fn exited_process_is_found_by_cgroup_inode() {
        let f = fixture();
        let scope = f.cgroup2.join("system.slice").join(format!("docker-{ID}.scope"));
        fs::create_dir_all(&scope).expect("mkdir");
        let cgroup_id = fs::metadata(&scope).expect("stat").ino();
        // No /proc/<pid> at all: the process is gone.
        let got = resolver(&f).attribute(cgroup_id, 4242, 2000);
        let Attribution::Container(c) = got else { panic!("expected a container, got {got:?}") };
        assert_eq!((c.id.as_str(), c.runtime), (ID, Runtime::Docker));
        assert_eq!(c.cgroup, format!("/system.slice/docker-{ID}.scope"));
    }

    #[test]
    fn proc_cgroup_is_read_and_cached_by_cgroup_id() {
        let f = fixture();
        fs::create_dir_all(f.runc_state.join("web")).expect("mkdir");
        fs::create_dir_all(f.proc_root.join("77")).expect("mkdir");
        fs::write(f.proc_root.join("77/cgroup"), "0::/web\n").expect("write");
        let mut r = resolver(&f);
        let first = r.attribute(555, 77, 2000);
        assert!(
            matches!(&first, Attribution::Container(c) if c.id == "web" && c.runtime == Runtime::Runc),
            "{first:?}"
        );
        // The process leaves; the cache still answers for its cgroup.
        fs::remove_dir_all(f.proc_root.join("77")).expect("rm");
        assert_eq!(r.attribute(555, 78, 2000), first);
        assert_eq!(r.cached(), 1);
    }

    #[test]
    fn host_namespace_needs_no_io_and_unknown_is_not_cached() {
        let f = fixture();
        let mut r = resolver(&f);
        assert_eq!(r.attribute(1, 1, 1000), Attribution::Host);
        // Own mount namespace, process gone, cgroup id unknown: not guessed.
        assert!(matches!(r.attribute(999_999, 5, 2000), Attribution::Unknown(_)));
        assert_eq!(r.cached(), 0, "neither is cached: the host needs no lookup, unknown may change");
    }

    #[test]
    fn the_host_mount_namespace_is_the_host_even_in_a_container_cgroup() {
        let f = fixture();
        fs::create_dir_all(f.runc_state.join("web")).expect("mkdir");
        let scope = f.cgroup2.join("web");
        fs::create_dir_all(&scope).expect("mkdir");
        let cgroup_id = fs::metadata(&scope).expect("stat").ino();
        let mut r = resolver(&f);
        // The runtime moves its init into the new cgroup while still in the
        // host's mount namespace; it runs first, before any container exec.
        assert_eq!(r.attribute(cgroup_id, 4242, 1000), Attribution::Host, "a runtime's own exec");
        assert_eq!(r.cached(), 0, "nothing cached for the cgroup from it");
        let container = r.attribute(cgroup_id, 4243, 2000);
        assert!(matches!(&container, Attribution::Container(c) if c.id == "web"), "{container:?}");
        // Once the cgroup is known as the container's, the host's mount
        // namespace still says host.
        assert_eq!(r.attribute(cgroup_id, 4244, 1000), Attribution::Host);
        assert_eq!(r.attribute(cgroup_id, 4245, 2000), container);
        // Unknown namespace (0): the cgroup decides.
        assert_eq!(r.attribute(cgroup_id, 4246, 0), container);
    }

    #[test]
    fn a_sweep_forgets_removed_cgroups_and_keeps_live_ones() {
        let f = fixture();
        let mut r = resolver(&f);
        let mut ids = Vec::new();
        for i in 0..150 {
            let name = format!("ctr-{i}");
            fs::create_dir_all(f.runc_state.join(&name)).expect("state");
            let dir = f.cgroup2.join(&name);
            fs::create_dir_all(&dir).expect("cgroup");
            let id = fs::metadata(&dir).expect("stat").ino();
            assert!(r.cgroup_created(id, &format!("/{name}")).is_some());
            ids.push((dir, id));
        }
        assert_eq!(r.cached(), 150);
        assert_eq!(r.sweep(), 0, "all alive");
        // 149 containers end; one stays.
        for (dir, _) in &ids[1..] {
            fs::remove_dir(dir).expect("rmdir");
        }
        assert_eq!(r.sweep(), 149);
        assert_eq!(r.cached(), 1);
        let live = r.attribute(ids[0].1, 1, 2000);
        assert!(matches!(&live, Attribution::Container(c) if c.id == "ctr-0"), "{live:?}");
    }

    #[test]
    fn own_namespace_without_container_cgroup_is_unknown() {
        let f = fixture();
        fs::create_dir_all(f.proc_root.join("9")).expect("mkdir");
        fs::write(f.proc_root.join("9/cgroup"), "0::/user.slice/session-1.scope\n").expect("write");
        let got = resolver(&f).attribute(321, 9, 2000);
        assert!(matches!(got, Attribution::Unknown(why) if why.contains("mount namespace")), "{got:?}");
    }
}
