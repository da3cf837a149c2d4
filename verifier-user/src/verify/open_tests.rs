//! Identity checks on real files. Resolution beneath a root, hostile trees
//! included, is tested with `verifier_sbom::fsroot`.

use std::{
    fs,
    os::unix::{ffi::OsStrExt as _, fs::symlink},
    path::Path,
};

use super::*;

fn identity_of(path: &Path) -> FileIdentity {
    verifier_sensor::events::identity_of(&fs::symlink_metadata(path).expect("stat"))
}

/// A small rootfs: /bin/busybox, /bin/sh -> busybox, /usr/bin/env ->
/// ../../bin/busybox, /lib -> usr/lib (absolute-less), /etc/abs -> /bin/sh.
fn rootfs() -> (tempfile::TempDir, RootDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    fs::create_dir_all(r.join("bin")).expect("test fixture");
    fs::create_dir_all(r.join("usr/bin")).expect("test fixture");
    fs::create_dir_all(r.join("usr/lib")).expect("test fixture");
    fs::create_dir_all(r.join("etc")).expect("test fixture");
    fs::write(r.join("bin/busybox"), b"\x7fELF busybox").expect("test fixture");
    symlink("busybox", r.join("bin/sh")).expect("test fixture");
    symlink("../../bin/busybox", r.join("usr/bin/env")).expect("test fixture");
    symlink("usr/lib", r.join("lib")).expect("test fixture");
    fs::write(r.join("usr/lib/libc.so"), b"libc").expect("test fixture");
    symlink("/bin/sh", r.join("etc/abs")).expect("test fixture");
    let root = RootDir::open(r).expect("open root");
    (dir, root)
}

#[test]
fn open_exact_never_reaches_a_host_file() {
    let (d, root) = rootfs();
    // A host file next to the root that a naive open would reach.
    let outside = d.path().parent().expect("test fixture").join(format!("outside-{}", std::process::id()));
    fs::write(&outside, b"host secret").expect("test fixture");
    let id = identity_of(&outside);
    let name = outside.file_name().expect("test fixture").as_bytes();
    symlink(&outside, d.path().join("bin/escape-abs")).expect("test fixture");
    for path in [[&b"/../../../"[..], name].concat(), [&b"/"[..], name].concat(), b"/bin/escape-abs".to_vec()]
    {
        assert!(open_exact(&root, &path, &id).is_err(), "{}", String::from_utf8_lossy(&path));
    }
    fs::remove_file(&outside).expect("test fixture");
}

#[test]
fn open_exact_tells_same_changed_and_other() {
    let (d, root) = rootfs();
    let bb = d.path().join("bin/busybox");
    let id = identity_of(&bb);
    let (_, m) = open_exact(&root, b"/bin/busybox", &id).expect("test fixture");
    assert_eq!(m, Match::Same);
    // Modified in place: same inode, new ctime/size.
    std::thread::sleep(std::time::Duration::from_millis(10));
    fs::write(&bb, b"\x7fELF busybox, patched").expect("test fixture");
    let (_, m) = open_exact(&root, b"/bin/busybox", &id).expect("test fixture");
    assert_eq!(m, Match::Changed);
    // Swapped for another file by rename.
    fs::write(d.path().join("bin/new"), b"other").expect("test fixture");
    fs::rename(d.path().join("bin/new"), &bb).expect("test fixture");
    let (_, m) = open_exact(&root, b"/bin/busybox", &id).expect("test fixture");
    assert_eq!(m, Match::Other);
}

#[test]
fn open_exact_refuses_a_final_symlink() {
    let (d, root) = rootfs();
    let id = identity_of(&d.path().join("bin/busybox"));
    let err = open_exact(&root, b"/bin/sh", &id).expect_err("should fail");
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
}

#[test]
fn proc_exe_of_this_process_is_the_same_file() {
    let me = fs::read_link("/proc/self/exe").expect("test fixture");
    let id = identity_of(&me);
    let (_, m, text) = open_proc_exe(Path::new("/proc"), std::process::id(), &id).expect("test fixture");
    assert_eq!(m, Match::Same);
    assert_eq!(text, me.as_os_str().as_bytes());
}
