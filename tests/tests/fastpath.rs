//! Root tier: the kernel fast path and the write-open hook, in the real
//! kernel, driven through the loader's map handles.
//!
//! The test moves itself into a fresh cgroup v2 so that only its own
//! processes are "watched"; it then marks a private copy of `true` as
//! verified and checks that its execs stay in the kernel, that a `#!`
//! script run through it does not, that a write-open evicts it and is
//! reported, and that the next exec reaches userspace again.

use std::{
    fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use verifier_common::{
    counters::Counter,
    decode::{Record, decode_any},
    event::FileIdentity,
};
use verifier_sensor::{
    loader::{self, LoadOptions},
    maps::KernelCounters,
};
use verifier_tests::{exclusive, require_root};

/// A child cgroup of the unified hierarchy holding this process.
struct OwnCgroup {
    dir: PathBuf,
    parent_procs: PathBuf,
}

impl OwnCgroup {
    fn enter() -> Option<Self> {
        let rel = fs::read_to_string("/proc/self/cgroup")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_owned))?;
        let mount = verifier::attribution::resolver::find_cgroup2_mount()?;
        let parent = mount.join(rel.trim_start_matches('/'));
        let dir = parent.join(format!("verifier-fastpath-{}", std::process::id()));
        fs::create_dir(&dir).ok()?;
        fs::write(dir.join("cgroup.procs"), std::process::id().to_string()).ok()?;
        Some(Self { dir, parent_procs: parent.join("cgroup.procs") })
    }

    fn id(&self) -> u64 {
        fs::metadata(&self.dir).map(|m| m.ino()).unwrap_or(0)
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        let _ = fs::write(&self.parent_procs, std::process::id().to_string());
        let _ = fs::remove_dir(&self.dir);
    }
}

fn identity_of(p: &Path) -> FileIdentity {
    verifier_sensor::events::identity_of(&fs::metadata(p).expect("stat"))
}

/// Exec records for `name` and write-open records for `ino`, read until
/// quiet.
fn drain(ring: &mut RingBuf<MapData>, name: &[u8], ino: u64) -> (usize, Vec<i32>) {
    let (mut execs, mut writes) = (0, Vec::new());
    let quiet_for = Duration::from_millis(300);
    let mut last = Instant::now();
    while last.elapsed() < quiet_for {
        match ring.next() {
            Some(item) => {
                last = Instant::now();
                match decode_any(&item) {
                    Ok(Record::Exec(r)) if r.filename == name => execs += 1,
                    Ok(Record::WriteOpen(w)) if w.ino == ino => writes.push(w.fd),
                    _ => {}
                }
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    (execs, writes)
}

fn fast_path_count(c: &KernelCounters) -> u64 {
    c.total(Counter::FastPath).expect("counters")
}

#[test]
fn verified_files_stay_in_the_kernel_until_written() {
    require_root!();
    let _lock = exclusive();
    let Some(cgroup) = OwnCgroup::enter() else {
        eprintln!("skipped: cannot create a cgroup v2 child here (no cgroup2 mount?)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("verified-true");
    fs::copy("/bin/true", &bin).expect("copy true");
    let script = dir.path().join("script");
    fs::write(&script, format!("#!{}\n", bin.display())).expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let name = bin.as_os_str().as_encoded_bytes().to_vec();
    let id = identity_of(&bin);

    let opts = LoadOptions { wakeup_bytes: 0, ..LoadOptions::default() };
    let loaded = loader::load(verifier_sensor::EBPF_OBJECT, &opts).expect("programs load");
    let loader::Loaded { ebpf, mut events, counters, mut fast_path, .. } = loaded;
    fast_path.watch(cgroup.id(), 7).expect("watch");
    fast_path.verified(id, 7).expect("verified");

    let before = fast_path_count(&counters);
    for _ in 0..5 {
        assert!(Command::new(&bin).status().expect("run").success());
    }
    let (execs, _) = drain(&mut events, &name, id.ino);
    assert_eq!(execs, 0, "verified execs send nothing");
    assert_eq!(fast_path_count(&counters) - before, 5, "each counted as fast_path");

    // A script whose interpreter is the verified file still goes out.
    assert!(Command::new(&script).status().expect("run script").success());
    let script_name = script.as_os_str().as_encoded_bytes().to_vec();
    let (script_execs, _) = drain(&mut events, &script_name, id.ino);
    assert_eq!(script_execs, 1, "a script is never answered from its interpreter's identity");

    // Opened for writing in the watched cgroup: evicted and reported.
    let file = fs::OpenOptions::new().write(true).open(&bin).expect("open for write");
    let (_, writes) = drain(&mut events, &name, id.ino);
    drop(file);
    assert_eq!(writes.len(), 1, "one write-open report: {writes:?}");
    assert!(writes[0] >= 0);
    assert!(Command::new(&bin).status().expect("run").success());
    let (execs, _) = drain(&mut events, &name, id.ino);
    assert_eq!(execs, 1, "after the write-open the file is verified in userspace again");
    drop(ebpf);
    drop(cgroup);
}
