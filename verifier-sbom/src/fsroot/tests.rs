//! Opening beneath a root on hostile trees, every test under both
//! resolvers. A decoy file lives outside the root; the root holds a file
//! at the decoy's own absolute path with other contents, so a link that is
//! clamped at the root reaches that copy, and a link that escapes reaches
//! the decoy: each test checks by inode and by contents which one it got.

use std::{
    fs,
    io::Read as _,
    os::{
        fd::AsRawFd as _,
        unix::{
            ffi::OsStrExt as _,
            fs::{MetadataExt as _, symlink},
        },
    },
};

use super::*;

const DECOY: &[u8] = b"host secret";
const INSIDE: &[u8] = b"the root's own copy";
const BOTH: [Resolver; 2] = [Resolver::Openat2, Resolver::Components];

struct Fixture {
    tmp: tempfile::TempDir,
    /// The decoy, outside the root.
    decoy: PathBuf,
}

impl Fixture {
    /// `<tmp>/outside/decoy` (the decoy) and `<tmp>/root` holding
    /// `bin/busybox`, `bin/sh -> busybox`, `usr/lib/libc.so`,
    /// `lib -> usr/lib`, and the copy at `<tmp>/outside/decoy`.
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        let decoy = outside.join("decoy");
        fs::write(&decoy, DECOY).expect("write decoy");
        let r = tmp.path().join("root");
        let copy = r.join(decoy.strip_prefix("/").expect("absolute"));
        fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
        fs::write(&copy, INSIDE).expect("write copy");
        fs::create_dir_all(r.join("bin")).expect("mkdir");
        fs::create_dir_all(r.join("usr/lib")).expect("mkdir");
        fs::write(r.join("bin/busybox"), b"\x7fELF busybox").expect("write");
        fs::write(r.join("usr/lib/libc.so"), b"libc").expect("write");
        symlink("busybox", r.join("bin/sh")).expect("symlink");
        symlink("usr/lib", r.join("lib")).expect("symlink");
        Self { tmp, decoy }
    }

    fn root_path(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// Creates the symlink `name` (relative to the root) -> `target`.
    fn link(&self, name: &[u8], target: &[u8]) {
        symlink(OsStr::from_bytes(target), self.root_path().join(OsStr::from_bytes(name))).expect("symlink");
    }

    fn root(&self, resolver: Resolver) -> RootDir {
        RootDir::open_with(&self.root_path(), resolver).expect("open root")
    }

    fn decoy_bytes(&self) -> Vec<u8> {
        self.decoy.as_os_str().as_bytes().to_vec()
    }

    fn outside_bytes(&self) -> Vec<u8> {
        self.tmp.path().join("outside").as_os_str().as_bytes().to_vec()
    }

    /// Asserts `file` is the root's copy, not the decoy.
    fn assert_inside_copy(&self, file: io::Result<File>, what: &str) {
        let mut file = file.unwrap_or_else(|e| panic!("{what}: {e}"));
        let decoy = fs::metadata(&self.decoy).expect("stat decoy");
        let got = file.metadata().expect("fstat");
        assert!((got.dev(), got.ino()) != (decoy.dev(), decoy.ino()), "{what}: opened the decoy");
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).expect("read");
        assert_eq!(bytes, INSIDE, "{what}");
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn errno<T: std::fmt::Debug>(r: io::Result<T>, what: &str) -> i32 {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e.raw_os_error().unwrap_or_else(|| panic!("{what}: {e} has no errno")),
    }
}

#[test]
fn absolute_links_to_the_host_restart_at_the_root() {
    let fx = Fixture::new();
    fx.link(b"bin/abs-file", &fx.decoy_bytes());
    fx.link(b"bin/abs-dir", &fx.outside_bytes());
    for resolver in BOTH {
        let root = fx.root(resolver);
        let ctx = format!("{resolver:?}");
        fx.assert_inside_copy(root.open_read(b"bin/abs-dir/decoy"), &ctx);
        fx.assert_inside_copy(root.open_read(&fx.decoy_bytes()), &ctx);
        // The last component is a link: refused, not followed.
        assert_eq!(errno(root.open_read(b"bin/abs-file"), &ctx), libc::ELOOP);
        let canon = canonicalize_in_root(&root, b"/bin/abs-file", None).expect("canonicalize");
        assert_eq!(canon, fx.decoy_bytes(), "{ctx}");
        fx.assert_inside_copy(root.open_read(&canon), &ctx);
    }
}

#[test]
fn dotdot_chains_stop_at_the_root() {
    let fx = Fixture::new();
    fx.link(b"bin/up", b"../../../../../../../../..");
    // From <tmp>/root/bin, `../../outside/decoy` is the decoy on the host.
    fx.link(b"bin/rel-file", b"../../outside/decoy");
    let decoy = fx.decoy_bytes();
    for resolver in BOTH {
        let root = fx.root(resolver);
        let ctx = format!("{resolver:?}");
        fx.assert_inside_copy(root.open_read(&cat(&[b"../../../..", &decoy])), &ctx);
        fx.assert_inside_copy(root.open_read(&cat(&[b"bin/up", &decoy])), &ctx);
        fx.assert_inside_copy(root.open_read(&cat(&[b"bin/../../bin/up/..", &decoy])), &ctx);
        let canon = canonicalize_in_root(&root, b"/bin/rel-file", None);
        assert_eq!(errno(canon, &ctx), libc::ENOENT);
        let canon = canonicalize_in_root(&root, &cat(&[b"/bin/up/../..", &decoy]), None).expect("canon");
        assert_eq!(canon, decoy, "{ctx}");
    }
}

#[test]
fn a_symlinked_directory_pointing_out_stays_inside() {
    let fx = Fixture::new();
    fx.link(b"bin/rel-dir", b"../../outside");
    fx.link(b"etc", b"../outside");
    for resolver in BOTH {
        let root = fx.root(resolver);
        let ctx = format!("{resolver:?}");
        // Clamped: <root>/outside does not exist.
        for rel in [&b"bin/rel-dir/decoy"[..], b"etc/decoy"] {
            assert_eq!(errno(root.open_read(rel), &ctx), libc::ENOENT, "{ctx} {rel:?}");
            assert_eq!(errno(root.open_path(rel), &ctx), libc::ENOENT, "{ctx} {rel:?}");
        }
        assert_eq!(errno(root.open_dir(b"bin/rel-dir/"), &ctx), libc::ENOENT);
        assert_eq!(errno(canonicalize_in_root(&root, b"/etc/decoy", None), &ctx), libc::ENOENT);
    }
}

#[test]
fn link_loops_end_with_eloop_after_40_links() {
    let fx = Fixture::new();
    fx.link(b"bin/a", b"b");
    fx.link(b"bin/b", b"/bin/a");
    fx.link(b"bin/self", b"self");
    // d0 -> d1 -> ... -> d40 -> /usr/lib: 41 links from d0, 40 from d1.
    for i in 0..=40 {
        let target = if i == 40 { b"/usr/lib".to_vec() } else { format!("d{}", i + 1).into_bytes() };
        fx.link(format!("bin/d{i}").as_bytes(), &target);
    }
    for resolver in BOTH {
        let root = fx.root(resolver);
        let ctx = format!("{resolver:?}");
        for rel in [&b"bin/a/x"[..], b"bin/self/x", b"bin/d0/libc.so"] {
            assert_eq!(errno(root.open_read(rel), &ctx), libc::ELOOP, "{ctx} {rel:?}");
        }
        assert_eq!(errno(canonicalize_in_root(&root, b"/bin/a", None), &ctx), libc::ELOOP);
        let mut libc_so = root.open_read(b"bin/d1/libc.so").expect("40 links are allowed");
        let mut bytes = Vec::new();
        libc_so.read_to_end(&mut bytes).expect("read");
        assert_eq!(bytes, b"libc", "{ctx}");
        assert_eq!(canonicalize_in_root(&root, b"/bin/d1", None).expect("canon"), b"/usr/lib");
    }
}

/// `/proc` as the root: `self/fd/<n>` and `self/root` are magic links that
/// jump straight to the decoy or the host root when followed by the kernel.
#[test]
fn proc_magic_links_are_never_jumped_through() {
    let fx = Fixture::new();
    let decoy = File::open(&fx.decoy).expect("open decoy");
    let outside = File::open(fx.tmp.path().join("outside")).expect("open outside");
    let fd_link = format!("self/fd/{}", decoy.as_raw_fd()).into_bytes();
    let dir_link = format!("self/fd/{}/decoy", outside.as_raw_fd()).into_bytes();
    let via_root = cat(&[b"self/root", &fx.decoy_bytes()]);
    for resolver in BOTH {
        let root = RootDir::open_with(Path::new("/proc"), resolver).expect("open /proc");
        let ctx = format!("{resolver:?}");
        assert_eq!(errno(root.open_read(&fd_link), &ctx), libc::ELOOP);
        let link = root.open_path(&fd_link).expect("the link itself");
        assert!(link.metadata().expect("fstat").file_type().is_symlink(), "{ctx}");
        for rel in [&dir_link, &via_root] {
            let e = errno(root.open_read(rel), &ctx);
            // openat2 refuses magic links; the component walk reads them as
            // text, which names nothing beneath /proc.
            let want = if resolver == Resolver::Openat2 { libc::ELOOP } else { libc::ENOENT };
            assert_eq!(e, want, "{ctx} {}", String::from_utf8_lossy(rel));
        }
        let canon = canonicalize_in_root(&root, &cat(&[b"/", &via_root]), None);
        assert_eq!(errno(canon, &ctx), libc::ENOENT);
    }
}

#[test]
fn a_final_symlink_is_not_followed() {
    let fx = Fixture::new();
    fx.link(b"bin/usr", b"/usr");
    for resolver in BOTH {
        let root = fx.root(resolver);
        let ctx = format!("{resolver:?}");
        assert_eq!(errno(root.open_read(b"bin/sh"), &ctx), libc::ELOOP);
        // O_DIRECTORY | O_NOFOLLOW on a link: the kernel says ENOTDIR.
        assert_eq!(errno(root.open_dir(b"bin/usr"), &ctx), libc::ENOTDIR);
        let link = root.open_path(b"/bin/sh").expect("open_path");
        assert!(link.metadata().expect("fstat").file_type().is_symlink(), "{ctx}");
        // Through a link on the way is fine.
        assert!(root.open_dir(b"bin/usr/lib").is_ok(), "{ctx}");
        assert!(root.open_read(b"lib/libc.so").is_ok(), "{ctx}");
    }
}

#[test]
fn names_with_newlines_and_invalid_utf8_resolve_exactly() {
    let fx = Fixture::new();
    let odd: &[u8] = b"we\nird\xff\x01name";
    fs::write(fx.root_path().join("bin").join(OsStr::from_bytes(odd)), INSIDE).expect("write");
    fx.link(b"bin/esc\n\xfe", &fx.decoy_bytes());
    fx.link(b"bin/dir\n\xfe", b"../../..");
    let odd_path = cat(&[b"/bin/", odd]);
    for resolver in BOTH {
        let root = fx.root(resolver);
        let ctx = format!("{resolver:?}");
        fx.assert_inside_copy(root.open_read(&odd_path), &ctx);
        assert_eq!(canonicalize_in_root(&root, &odd_path, None).expect("canon"), odd_path, "{ctx}");
        assert_eq!(errno(root.open_read(b"bin/esc\n\xfe"), &ctx), libc::ELOOP);
        let through = cat(&[b"bin/dir\n\xfe", &fx.decoy_bytes()]);
        fx.assert_inside_copy(root.open_read(&through), &ctx);
    }
}

/// The two resolvers give the same answer (same file, or same errno) on
/// ordinary and odd paths alike.
#[test]
fn both_resolvers_agree() {
    let fx = Fixture::new();
    fx.link(b"bin/abs", b"/bin/sh");
    fs::write(fx.root_path().join("file"), b"f").expect("write");
    let paths: [&[u8]; 18] = [
        b"",
        b"/",
        b".",
        b"..",
        b"bin",
        b"bin/",
        b"bin/.",
        b"bin/..",
        b"lib/",
        b"lib/libc.so",
        b"lib/../bin/sh",
        b"bin/abs",
        b"bin/missing",
        b"file/",
        b"file/x",
        b"file/..",
        b"bin/sh/",
        b"//bin//busybox",
    ];
    let outcome = |root: &RootDir, rel: &[u8], flags: u8| -> Result<(u64, u64), i32> {
        let r = match flags {
            0 => root.open_read(rel),
            1 => root.open_path(rel),
            _ => root.open_dir(rel).map(File::from),
        };
        r.and_then(|f| f.metadata()).map(|m| (m.dev(), m.ino())).map_err(|e| e.raw_os_error().unwrap_or(0))
    };
    let kernel = fx.root(Resolver::Openat2);
    let ours = fx.root(Resolver::Components);
    for rel in paths {
        for flags in 0..3 {
            assert_eq!(
                outcome(&kernel, rel, flags),
                outcome(&ours, rel, flags),
                "{:?} opened as {flags}",
                String::from_utf8_lossy(rel)
            );
        }
    }
}

#[test]
fn canonical_paths_resolve_like_the_kernel_inside_the_root() {
    let fx = Fixture::new();
    fx.link(b"bin/env", b"../usr/../bin/sh");
    for resolver in BOTH {
        let root = fx.root(resolver);
        let canon = |p: &[u8], cwd: Option<&[u8]>| canonicalize_in_root(&root, p, cwd);
        assert_eq!(canon(b"/bin/sh", None).expect("sh"), b"/bin/busybox");
        assert_eq!(canon(b"/bin/env", None).expect("env"), b"/bin/busybox");
        assert_eq!(canon(b"/lib/libc.so", None).expect("libc"), b"/usr/lib/libc.so");
        assert_eq!(canon(b"//bin/./../bin//busybox", None).expect("dots"), b"/bin/busybox");
        assert_eq!(canon(b"sh", Some(b"/bin")).expect("relative"), b"/bin/busybox");
        assert_eq!(canon(b"../bin/sh", Some(b"/usr")).expect("relative"), b"/bin/busybox");
        assert!(canon(b"sh", None).is_err());
        assert_eq!(errno(canon(b"/bin/busybox/x", None), "file as dir"), libc::ENOTDIR);
    }
}

#[test]
fn a_root_is_told_from_another_directory_by_its_identity() {
    let fx = Fixture::new();
    let root = fx.root(Resolver::detect());
    let meta = fs::metadata(fx.root_path()).expect("stat root");
    assert_eq!(root.identity(), Some((meta.dev(), meta.ino())));
    let bin = RootDir::open(&fx.root_path().join("bin")).expect("open bin");
    assert_ne!(bin.identity(), root.identity(), "a directory inside the root is another root");
}
