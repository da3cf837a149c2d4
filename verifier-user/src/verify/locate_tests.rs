//! `locate` against real processes: a running copy of a binary, the same
//! binary swapped after its exec, and a process already gone.

use std::{
    fs,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::Path,
    process::{Child, Command},
};

use sha2::Digest as _;

use super::*;

fn identity_of(path: &Path) -> FileIdentity {
    verifier_sensor::events::identity_of(&fs::metadata(path).expect("stat"))
}

/// A private copy of `sleep`, started; the host root stands in for a
/// container root.
fn start_copy(dir: &Path) -> (Child, std::path::PathBuf, FileIdentity, [u8; 32]) {
    let bin = dir.join("sleeper");
    fs::copy("/bin/sleep", &bin).expect("copy sleep");
    let id = identity_of(&bin);
    let sha: [u8; 32] = sha2::Sha256::digest(fs::read(&bin).expect("read")).into();
    let child = Command::new(&bin).arg("30").spawn().expect("spawn");
    // The exec has happened once /proc/<pid>/exe names the copy.
    for _ in 0..200 {
        if fs::read_link(format!("/proc/{}/exe", child.id())).is_ok_and(|p| p == bin) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (child, bin, id, sha)
}

fn job(pid: u32, filename: &Path, identity: FileIdentity) -> Job {
    Job {
        root: Arc::new(RootDir::open(Path::new("/")).expect("open /")),
        proc_root: Arc::from(Path::new("/proc")),
        tgid: pid,
        filename: filename.as_os_str().as_bytes().to_vec(),
        identity,
        chrooted: false,
        library: false,
        mapped_fd: -1,
        algs: Algs::SHA256,
        max_bytes: 1 << 30,
        script: false,
        listed: None,
    }
}

fn located(o: Outcome) -> Box<Located> {
    match o {
        Outcome::Located(l) => l,
        Outcome::Unverifiable(why) | Outcome::Unread(Unread { why, .. }) => panic!("unverifiable: {why}"),
    }
}

#[test]
fn a_running_binary_is_found_by_path_and_hashed_once_per_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, bin, id, sha) = start_copy(dir.path());
    let cache = HashCache::new(16);
    let mut buf = vec![0; 4096];
    let l = located(locate(&job(child.id(), &bin, id), &cache, &mut buf));
    assert_eq!(l.via, Via::Path);
    assert_eq!(l.path, bin.as_os_str().as_bytes());
    assert_eq!(l.hashes.as_ref().and_then(|h| h.sha256), Some(sha));
    assert!(!l.unlinked);
    let again = located(locate(&job(child.id(), &bin, id), &cache, &mut buf));
    assert_eq!(again.hashes.and_then(|h| h.sha256), Some(sha));
    assert_eq!(cache.hits.load(std::sync::atomic::Ordering::Relaxed), 1, "second lookup from the cache");
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn a_binary_swapped_after_exec_is_hashed_through_proc_exe_never_the_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, bin, id, sha) = start_copy(dir.path());
    // Replace the path with other bytes (rename: the original is unlinked).
    let evil = dir.path().join("evil");
    fs::write(&evil, b"#!/bin/sh\necho replaced\n").expect("write");
    fs::rename(&evil, &bin).expect("rename");
    let cache = HashCache::new(16);
    let l = located(locate(&job(child.id(), &bin, id), &cache, &mut vec![0; 4096]));
    assert_eq!(l.via, Via::ProcExe, "the path now names another file");
    assert_eq!(l.hashes.and_then(|h| h.sha256), Some(sha), "the bytes that ran");
    assert!(l.unlinked, "the executed file has no name any more");
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn swapped_and_exited_is_unverifiable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, bin, id, _) = start_copy(dir.path());
    let pid = child.id();
    child.kill().ok();
    child.wait().ok();
    fs::write(dir.path().join("evil"), b"other bytes").expect("write");
    fs::rename(dir.path().join("evil"), &bin).expect("rename");
    match locate(&job(pid, &bin, id), &HashCache::new(16), &mut vec![0; 4096]) {
        Outcome::Unread(u) => {
            assert!(u.why.contains("another file"), "{}", u.why);
            assert_eq!(u.path, bin.as_os_str().as_bytes(), "judged by the path it was run by");
            assert!(u.gone, "the process had exited");
        }
        Outcome::Unverifiable(why) => panic!("the path is known: {why}"),
        Outcome::Located(l) => panic!("located {:?} via {:?}", String::from_utf8_lossy(&l.path), l.via),
    }
}

#[test]
fn files_over_the_cap_are_found_but_not_hashed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, bin, id, _) = start_copy(dir.path());
    let mut j = job(child.id(), &bin, id);
    j.max_bytes = 16;
    let l = located(locate(&j, &HashCache::new(16), &mut vec![0; 4096]));
    assert!(l.hashes.is_none());
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn overlay_files_of_one_layer_share_a_cache_key_across_mounts() {
    use nix::mount::{MsFlags, mount, umount};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for sub in ["lower", "u1", "w1", "m1", "u2", "w2", "m2"] {
        fs::create_dir(d.join(sub)).expect("mkdir");
    }
    fs::write(d.join("lower/tool"), b"shipped bytes").expect("write");
    for i in ["1", "2"] {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            d.join("lower").display(),
            d.join(format!("u{i}")).display(),
            d.join(format!("w{i}")).display()
        );
        if let Err(e) = mount(
            Some("overlay"),
            &d.join(format!("m{i}")),
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        ) {
            eprintln!("skipped: cannot mount overlayfs here ({e}); needs root and the overlay module");
            return;
        }
    }
    let key = |p: &Path| {
        let f = File::open(p).expect("open");
        cache_key(&f, &identity_of(p))
    };
    let (k1, k2) = (key(&d.join("m1/tool")), key(&d.join("m2/tool")));
    let dev = |p: &Path| fs::metadata(p).expect("stat").dev();
    assert_ne!(dev(&d.join("m1/tool")), dev(&d.join("m2/tool")), "each overlay mount is its own device");
    assert_eq!(k1, k2, "one layer file, one cache key");
    // Written in one container: copied up, a new file with its own key.
    fs::write(d.join("m2/tool"), b"changed").expect("write through overlay");
    assert_ne!(key(&d.join("m2/tool")), k1);
    // A plain file keeps its device in the key.
    let plain = d.join("lower/tool");
    assert_eq!(key(&plain), identity_of(&plain));
    umount(&d.join("m1")).ok();
    umount(&d.join("m2")).ok();
}

#[test]
fn mapped_paths_come_from_the_maps_line_of_the_inode() {
    let maps = b"55d0-55d1 r--p 00000000 fe:00 111 /usr/bin/python3\n\
7f00-7f01 r-xp 00000000 00:2a 4242                       /lib/with space/lib\\012x.so\n\
7f02-7f03 rw-p 00000000 00:00 0 \n\
7f04-7f05 r-xp 00000000 00:2a 4243                       /memfd:x (deleted)\n";
    assert_eq!(mapped_path(maps, 4242).as_deref(), Some(&b"/lib/with space/lib\nx.so"[..]));
    assert_eq!(mapped_path(maps, 111).as_deref(), Some(&b"/usr/bin/python3"[..]));
    assert_eq!(mapped_path(maps, 0), None, "anonymous mappings have no path");
    assert_eq!(mapped_path(maps, 9), None);
    // A memfd's "path" is a name, not a file beneath the root: opening it
    // fails and the mapping is unverifiable, never ok.
    assert_eq!(mapped_path(maps, 4243).as_deref(), Some(&b"/memfd:x (deleted)"[..]));
}

/// A container root with a merged /usr (`/bin -> usr/bin`, `/lib ->
/// usr/lib`), `sh -> dash`, a `#!/bin/sh` script, a tool and a library; a
/// `/proc` where every process has exited.
struct Gone {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    proc_root: std::path::PathBuf,
}

const SCRIPT: &[u8] = b"#!/bin/sh\nexec grep -E \"$@\"\n";

fn gone_root() -> Gone {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let proc_root = dir.path().join("proc");
    for d in ["usr/bin", "usr/lib", "opt"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::create_dir_all(&proc_root).expect("mkdir");
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("bin");
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).expect("lib");
    fs::write(root.join("usr/bin/dash"), b"the shell").expect("write");
    std::os::unix::fs::symlink("dash", root.join("usr/bin/sh")).expect("sh");
    fs::write(root.join("usr/bin/egrep"), SCRIPT).expect("write");
    fs::write(root.join("usr/bin/tool"), b"a tool").expect("write");
    fs::write(root.join("usr/lib/libc.so.6"), b"libc").expect("write");
    fs::write(root.join("opt/unlisted.so"), b"not shipped").expect("write");
    Gone { _dir: dir, root, proc_root }
}

/// An SBOM listing `paths` (digests do not matter to locating).
fn listed(paths: &[&str]) -> Listed {
    Listed { manifest: Arc::new(super::super::test_sbom::listing(paths)), index: Arc::default() }
}

fn gone_job(g: &Gone, filename: &str, identity_of_file: &str) -> Job {
    Job {
        root: Arc::new(RootDir::open(&g.root).expect("root")),
        proc_root: Arc::from(g.proc_root.as_path()),
        tgid: 4242,
        filename: filename.as_bytes().to_vec(),
        identity: identity_of(&g.root.join(identity_of_file)),
        chrooted: false,
        library: false,
        mapped_fd: -1,
        algs: Algs::SHA256.with(verifier_sbom::HashAlg::Md5),
        max_bytes: 1 << 30,
        script: false,
        listed: None,
    }
}

fn unverifiable(o: Outcome) -> String {
    match o {
        Outcome::Unverifiable(why) | Outcome::Unread(Unread { why, .. }) => why,
        Outcome::Located(l) => panic!("located {:?} via {:?}", String::from_utf8_lossy(&l.path), l.via),
    }
}

#[test]
fn an_exited_script_is_run_by_the_interpreter_its_shebang_names_proven_by_identity() {
    let g = gone_root();
    let mut j = gone_job(&g, "/bin/egrep", "usr/bin/dash");
    j.script = true;
    let l = located(locate(&j, &HashCache::new(16), &mut vec![0; 4096]));
    assert_eq!((l.via, l.path.as_slice()), (Via::Shebang, &b"/usr/bin/dash"[..]), "/bin/sh -> dash");
    assert_eq!(l.hashes.and_then(|h| h.sha256), Some(sha2::Sha256::digest(b"the shell").into()));
    let s = l.script.expect("the script");
    assert_eq!(s.path, b"/usr/bin/egrep", "canonical");
    let h = s.hashes.expect("hashed");
    assert_eq!(h.sha256, Some(sha2::Sha256::digest(SCRIPT).into()));
    assert!(h.digest(verifier_sbom::HashAlg::Md5).is_some(), "with the SBOM's algorithms");
}

#[test]
fn a_shebang_naming_another_file_than_the_one_that_ran_is_unverifiable() {
    let g = gone_root();
    // The kernel ran `tool` (a rewritten #! line, say): the named /bin/sh
    // is not it, and nothing is hashed in its place.
    let mut j = gone_job(&g, "/bin/egrep", "usr/bin/tool");
    j.script = true;
    let why = unverifiable(locate(&j, &HashCache::new(16), &mut vec![0; 4096]));
    assert!(why.contains("interpreter /bin/sh is another file"), "{why}");
    assert!(why.contains("the process has exited"), "{why}");
    // With the index, the file that ran is found by its identity instead.
    j.listed = Some(listed(&["/usr/bin/tool", "/usr/bin/dash"]));
    let l = located(locate(&j, &HashCache::new(16), &mut vec![0; 4096]));
    assert_eq!((l.via, l.path.as_slice()), (Via::Index, &b"/usr/bin/tool"[..]));
    assert!(l.script.is_some(), "still judged with its script");
}

#[test]
fn an_exited_exec_whose_path_is_gone_is_found_by_its_listed_identity() {
    let g = gone_root();
    let mut j = gone_job(&g, "/opt/renamed-away", "usr/bin/tool");
    assert!(unverifiable(locate(&j, &HashCache::new(16), &mut vec![0; 4096])).contains("No such file"));
    j.listed = Some(listed(&["/bin/tool"]));
    let l = located(locate(&j, &HashCache::new(16), &mut vec![0; 4096]));
    assert_eq!((l.via, l.path.as_slice()), (Via::Index, &b"/usr/bin/tool"[..]), "canonical, not as listed");
    assert_eq!(l.hashes.and_then(|h| h.sha256), Some(sha2::Sha256::digest(b"a tool").into()));
}

#[test]
fn a_library_of_an_exited_process_is_found_by_identity_or_said_precisely_why_not() {
    let g = gone_root();
    let mut j = gone_job(&g, "", "usr/lib/libc.so.6");
    j.library = true;
    j.listed = Some(listed(&["/lib/libc.so.6", "/usr/bin/tool"]));
    let l = located(locate(&j, &HashCache::new(16), &mut vec![0; 4096]));
    assert_eq!((l.via, l.path.as_slice()), (Via::Index, &b"/usr/lib/libc.so.6"[..]));
    // Not a listed file: unverifiable, saying both what failed and why.
    let mut other = gone_job(&g, "", "opt/unlisted.so");
    other.library = true;
    other.listed = j.listed.clone();
    let why = unverifiable(locate(&other, &HashCache::new(16), &mut vec![0; 4096]));
    assert!(why.contains("/proc/4242/maps") && why.contains("the process has exited"), "{why}");
    assert!(why.contains("no file the SBOM lists"), "{why}");
    // Listed, but changed since the mapping: same inode, new ctime and size.
    fs::write(g.root.join("usr/lib/libc.so.6"), b"libc, rewritten").expect("write");
    let why = unverifiable(locate(&j, &HashCache::new(16), &mut vec![0; 4096]));
    assert!(why.contains("changed since"), "{why}");
}

#[test]
fn an_executed_path_is_made_absolute_without_the_file_system() {
    let p = |f: &str, cwd: Option<&str>| {
        lexical_path(f.as_bytes(), cwd.map(str::as_bytes)).map(|v| String::from_utf8(v).expect("utf-8"))
    };
    assert_eq!(p("/tmp/x", None).as_deref(), Some("/tmp/x"));
    assert_eq!(p("./x", Some("/tmp/d")).as_deref(), Some("/tmp/d/x"));
    assert_eq!(p("../../../x", Some("/a")).as_deref(), Some("/x"), "never above /");
    assert_eq!(p("//usr/./bin//x", None).as_deref(), Some("/usr/bin/x"));
    assert_eq!(p("x", None), None, "relative, with no working directory");
}

#[test]
fn an_exited_exec_of_a_deleted_file_keeps_the_path_it_was_run_by() {
    let g = gone_root();
    let j = gone_job(&g, "/tmp/dropped", "usr/bin/tool");
    match locate(&j, &HashCache::new(16), &mut vec![0; 4096]) {
        Outcome::Unread(u) => {
            assert_eq!(u.path, b"/tmp/dropped");
            assert!(u.gone, "{}", u.why);
        }
        other => panic!("{other:?}"),
    }
    // `/proc/self/exe` is no path of the image: nothing to judge it by.
    let j = gone_job(&g, "/proc/self/exe", "usr/bin/tool");
    assert!(matches!(locate(&j, &HashCache::new(16), &mut vec![0; 4096]), Outcome::Unverifiable(_)));
}

/// Reported on entry to `mmap`: looked at before the mapping exists, the
/// library is found through the descriptor being mapped (this test's own
/// process holds it open and maps nothing); once the descriptor is gone
/// too, the record says both.
#[test]
fn a_library_not_yet_mapped_is_found_through_its_descriptor() {
    use std::os::fd::AsRawFd as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = dir.path().join("evil.so");
    fs::write(&lib, b"\x7fELF not really a library").expect("write");
    let open = File::open(&lib).expect("open");
    let mut j = job(std::process::id(), Path::new(""), identity_of(&lib));
    j.library = true;
    j.mapped_fd = open.as_raw_fd();
    let l = located(locate(&j, &HashCache::new(16), &mut vec![0; 4096]));
    assert_eq!((l.via, l.path.as_slice()), (Via::Path, lib.as_os_str().as_bytes()));
    assert_eq!(
        l.hashes.and_then(|h| h.sha256),
        Some(sha2::Sha256::digest(b"\x7fELF not really a library").into())
    );
    // A file that never had a name (`O_TMPFILE`, as a memfd): the
    // descriptor itself, still proven by identity.
    let anon: File = nix::fcntl::open(
        dir.path(),
        nix::fcntl::OFlag::O_TMPFILE | nix::fcntl::OFlag::O_RDWR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("O_TMPFILE")
    .into();
    std::io::Write::write_all(&mut &anon, b"code with no name").expect("write");
    let mut a = job(
        std::process::id(),
        Path::new(""),
        verifier_sensor::events::identity_of(&anon.metadata().expect("fstat")),
    );
    a.library = true;
    a.mapped_fd = anon.as_raw_fd();
    let l = located(locate(&a, &HashCache::new(16), &mut vec![0; 4096]));
    assert_eq!(l.via, Via::Descriptor);
    assert!(l.unlinked);
    assert_eq!(l.hashes.and_then(|h| h.sha256), Some(sha2::Sha256::digest(b"code with no name").into()));
    drop(anon);
    // The number reused for another file is refused.
    let other = dir.path().join("other.so");
    fs::write(&other, b"another file").expect("write");
    drop(open);
    let reused = File::open(&other).expect("open");
    assert_eq!(reused.as_raw_fd(), j.mapped_fd, "the lowest free number is reused");
    let why = unverifiable(locate(&j, &HashCache::new(16), &mut vec![0; 4096]));
    assert!(why.contains("is not mapped by") && why.contains("another file"), "{why}");
}

#[test]
fn an_exited_script_from_another_root_is_not_read_in_the_container_root() {
    let g = gone_root();
    let mut j = gone_job(&g, "/bin/egrep", "usr/bin/dash");
    j.script = true;
    j.listed = Some(listed(&["/usr/bin/dash", "/usr/bin/egrep"]));
    j.chrooted = true;
    match locate(&j, &HashCache::new(16), &mut vec![0; 4096]) {
        Outcome::Unread(u) => {
            assert!(u.other_root && u.gone, "{}", u.why);
            assert_eq!(u.path, b"/bin/egrep", "as named, not resolved in the container's root");
        }
        other => panic!("the container's /bin/egrep is not the script that ran: {other:?}"),
    }
}
