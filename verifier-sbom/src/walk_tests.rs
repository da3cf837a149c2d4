//! The walker on real trees: raw names, nothing followed, a directory
//! swapped for a link mid-walk refused, `skip_dir` honoured.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    fs,
    os::unix::{ffi::OsStrExt as _, fs::symlink},
    path::Path,
};

use super::*;
use crate::fsroot::Resolver;

/// Entries by path, and what was skipped (path, why).
type Walked = (BTreeMap<Vec<u8>, Kind>, Vec<(Vec<u8>, String)>);

/// Walks `root` with both resolvers (the two walks must agree).
fn walk_all(root: &Path) -> Walked {
    let mut results = [Resolver::Openat2, Resolver::Components].map(|resolver| {
        let root = RootDir::open_with(root, resolver).expect("open root");
        let mut entries = BTreeMap::new();
        let mut skips = Vec::new();
        for event in Walk::new(&root).expect("walk") {
            match event {
                Event::Entry(e) => {
                    assert!(entries.insert(e.rel.clone(), e.kind).is_none(), "twice: {:?}", e.rel);
                }
                Event::Skipped { rel, why } => skips.push((rel, why.to_string())),
            }
        }
        skips.sort();
        (entries, skips)
    });
    assert_eq!(results[0], results[1], "the resolvers disagree");
    std::mem::take(&mut results[0])
}

#[test]
fn yields_raw_names_and_follows_nothing() {
    let outside = tempfile::tempdir().expect("tempdir");
    fs::write(outside.path().join("host-file"), b"x").expect("write");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = tmp.path();
    let odd: &[u8] = b"new\nline\xff";
    fs::create_dir_all(r.join("usr/bin")).expect("mkdir");
    fs::create_dir(r.join(OsStr::from_bytes(odd))).expect("mkdir");
    fs::write(r.join(OsStr::from_bytes(odd)).join("inner"), b"i").expect("write");
    fs::write(r.join("usr/bin/env"), b"e").expect("write");
    symlink("usr/bin", r.join("bin")).expect("symlink");
    symlink(outside.path(), r.join("host")).expect("symlink");
    symlink(OsStr::from_bytes(b"\xfe/x"), r.join("odd-target")).expect("symlink");
    let (entries, skips) = walk_all(r);
    let mut odd_inner = odd.to_vec();
    odd_inner.extend_from_slice(b"/inner");
    let want: BTreeMap<Vec<u8>, Kind> = [
        (b"usr".to_vec(), Kind::Dir),
        (b"usr/bin".to_vec(), Kind::Dir),
        (b"usr/bin/env".to_vec(), Kind::File),
        (odd.to_vec(), Kind::Dir),
        (odd_inner, Kind::File),
        (b"bin".to_vec(), Kind::Symlink { target: b"usr/bin".to_vec() }),
        (b"host".to_vec(), Kind::Symlink { target: outside.path().as_os_str().as_bytes().to_vec() }),
        (b"odd-target".to_vec(), Kind::Symlink { target: b"\xfe/x".to_vec() }),
    ]
    .into_iter()
    .collect();
    assert_eq!(entries, want);
    assert!(skips.is_empty(), "{skips:?}");
}

#[test]
fn a_directory_swapped_for_a_link_mid_walk_is_not_entered() {
    let outside = tempfile::tempdir().expect("tempdir");
    fs::write(outside.path().join("host-file"), b"x").expect("write");
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::create_dir(tmp.path().join("d")).expect("mkdir");
    for resolver in [Resolver::Openat2, Resolver::Components] {
        let root = RootDir::open_with(tmp.path(), resolver).expect("open root");
        let mut walk = Walk::new(&root).expect("walk");
        let Some(Event::Entry(d)) = walk.next() else { panic!("no entry") };
        assert_eq!((d.rel.as_slice(), &d.kind), (&b"d"[..], &Kind::Dir));
        // Listed as a directory, now a link out of the root.
        fs::rename(tmp.path().join("d"), tmp.path().join("d-moved")).expect("rename");
        symlink(outside.path(), tmp.path().join("d")).expect("symlink");
        let rest: Vec<Event> = walk.collect();
        assert!(
            matches!(rest.as_slice(), [Event::Skipped { rel, why: Skip::Unlisted(_) }] if rel == b"d"),
            "{resolver:?}: {rest:?}"
        );
        fs::remove_file(tmp.path().join("d")).expect("rm");
        fs::rename(tmp.path().join("d-moved"), tmp.path().join("d")).expect("rename");
    }
}

#[test]
fn skip_dir_leaves_a_directory_unentered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(tmp.path().join("skip/deep")).expect("mkdir");
    fs::create_dir_all(tmp.path().join("keep/deep")).expect("mkdir");
    let root = RootDir::open(tmp.path()).expect("open root");
    let mut walk = Walk::new(&root).expect("walk");
    let mut seen = Vec::new();
    while let Some(event) = walk.next() {
        let Event::Entry(e) = event else { panic!("skipped: {event:?}") };
        if e.name() == b"skip" {
            walk.skip_dir();
        }
        seen.push(e.rel);
    }
    seen.sort();
    assert_eq!(seen, [&b"keep"[..], b"keep/deep", b"skip"]);
}

/// tracefs mounted at /sys/kernel/tracing stands for a pseudo-filesystem
/// inside a rootfs (mounting one needs root; this one is usually there).
#[test]
fn pseudo_filesystem_mounts_are_reported_not_entered() {
    let mounted = fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.lines().any(|l| l.contains(" /sys/kernel/tracing ") && l.contains(" - tracefs ")));
    if !mounted {
        eprintln!("skipped: no tracefs at /sys/kernel/tracing");
        return;
    }
    let root = RootDir::open(Path::new("/sys/kernel")).expect("open root");
    let mut walk = Walk::new(&root).expect("walk");
    let mut tracing = None;
    while let Some(event) = walk.next() {
        match event {
            Event::Entry(e) if e.rel == b"tracing" => assert_eq!(e.kind, Kind::Dir),
            // Only the tracing directory is entered.
            Event::Entry(e) => {
                assert!(!e.rel.starts_with(b"tracing/"), "entered tracefs: {:?}", e.rel);
                walk.skip_dir();
            }
            Event::Skipped { rel, why } if rel == b"tracing" => tracing = Some(why),
            Event::Skipped { .. } => {}
        }
    }
    assert!(matches!(tracing, Some(Skip::PseudoFs)), "{tracing:?}");
}
