//! Resolution beneath a root on real directory trees, including hostile
//! ones: links out of the root, loops, `..` past the root, odd bytes.

use std::{
    fs,
    os::unix::{ffi::OsStrExt as _, fs::symlink},
    path::Path,
};

use super::*;

fn identity_of(path: &Path) -> FileIdentity {
    let m = fs::symlink_metadata(path).expect("stat");
    let dev = libc::major(m.dev()) << 20 | libc::minor(m.dev());
    FileIdentity {
        ino: m.ino(),
        size: m.size() as i64,
        ctime_sec: m.ctime(),
        ctime_nsec: m.ctime_nsec() as u32,
        dev,
    }
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

fn canon(root: &RootDir, p: &[u8]) -> io::Result<Vec<u8>> {
    canonicalize_in_root(root, p, None)
}

#[test]
fn resolves_symlinks_like_the_kernel_inside_the_root() {
    let (_d, root) = rootfs();
    assert_eq!(canon(&root, b"/bin/sh").expect("test fixture"), b"/bin/busybox");
    assert_eq!(canon(&root, b"/usr/bin/env").expect("test fixture"), b"/bin/busybox");
    assert_eq!(canon(&root, b"/etc/abs").expect("test fixture"), b"/bin/busybox");
    assert_eq!(canon(&root, b"/lib/libc.so").expect("test fixture"), b"/usr/lib/libc.so");
    assert_eq!(canon(&root, b"//bin/./../bin//busybox").expect("test fixture"), b"/bin/busybox");
}

#[test]
fn relative_paths_need_and_use_the_working_directory() {
    let (_d, root) = rootfs();
    assert!(canonicalize_in_root(&root, b"sh", None).is_err());
    assert_eq!(canonicalize_in_root(&root, b"sh", Some(b"/bin")).expect("test fixture"), b"/bin/busybox");
    assert_eq!(
        canonicalize_in_root(&root, b"../bin/sh", Some(b"/usr")).expect("test fixture"),
        b"/bin/busybox"
    );
}

#[test]
fn dotdot_and_absolute_links_never_leave_the_root() {
    let (d, root) = rootfs();
    // A host file next to the root that a naive resolver would reach.
    let outside = d.path().parent().expect("test fixture").join(format!("outside-{}", std::process::id()));
    fs::write(&outside, b"host secret").expect("test fixture");
    let name = outside.file_name().expect("test fixture").as_bytes().to_vec();
    let mut up = b"../../../../".to_vec();
    up.extend_from_slice(&name);
    symlink(OsStr::from_bytes(&up), d.path().join("bin/escape")).expect("test fixture");
    symlink(&outside, d.path().join("bin/escape-abs")).expect("test fixture");
    for link in [&b"/bin/escape"[..], b"/bin/escape-abs"] {
        match canon(&root, link) {
            // Clamped at the root: resolves to a path inside it, which
            // does not exist there.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}"),
            Ok(p) => panic!("{} resolved to {}", String::from_utf8_lossy(link), String::from_utf8_lossy(&p)),
        }
    }
    // Opening the link's clamped target inside the root fails too.
    let id = identity_of(&outside);
    let mut inside = b"/".to_vec();
    inside.extend_from_slice(&name);
    assert!(open_exact(&root, &inside, &id).is_err());
    fs::remove_file(&outside).expect("test fixture");
}

#[test]
fn symlink_loops_end_with_eloop() {
    let (d, root) = rootfs();
    symlink("b", d.path().join("bin/a")).expect("test fixture");
    symlink("a", d.path().join("bin/b")).expect("test fixture");
    let err = canon(&root, b"/bin/a").expect_err("should fail");
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
}

#[test]
fn traversing_a_file_is_enotdir() {
    let (_d, root) = rootfs();
    let err = canon(&root, b"/bin/busybox/x").expect_err("should fail");
    assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
}

#[test]
fn hostile_bytes_in_names_resolve_exactly() {
    let (d, root) = rootfs();
    let name: &[u8] = b"we\nird\xff\x01name";
    fs::write(d.path().join("bin").join(OsStr::from_bytes(name)), b"x").expect("test fixture");
    let mut p = b"/bin/".to_vec();
    p.extend_from_slice(name);
    assert_eq!(canon(&root, &p).expect("test fixture"), p);
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
