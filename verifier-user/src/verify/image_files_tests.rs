//! The package join end to end: a package-only SBOM joined with the
//! dpkg or apk database of an image's read-only content, then files
//! judged against the result.

use std::{path::Path, sync::Arc};

use verifier_sbom::{
    LoadOptions,
    hash::{Algs, BUFFER_SIZE, FileHashes, hash_reader},
    load_bytes,
};

use super::*;
use crate::{
    baseline::join::*,
    verify::verdict::{Verdict, judge},
};

/// A package-only CycloneDX listing `coreutils` only (syft's shape).
const CDX: &str = r#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[
 {"type":"library","name":"coreutils","version":"9.1-1","purl":"pkg:deb/debian/coreutils@9.1-1?arch=amd64&distro=debian-12"}
]}"#;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(hashes(b).md5.expect("md5"))
}

fn hashes(b: &[u8]) -> FileHashes {
    let algs = Algs::SHA256.with(HashAlg::Md5);
    hash_reader(b, algs, &mut vec![0; BUFFER_SIZE]).expect("hash")
}

/// A rootfs with two installed packages: `coreutils` (listed) and `gzip`
/// (not listed), each with one file and its dpkg md5sums.
fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    write(r, "usr/bin/ls", b"ls bytes");
    write(r, "usr/bin/gzip", b"gzip bytes");
    write(r, "tmp/dropped", b"dropped bytes");
    write(
        r,
        "var/lib/dpkg/status",
        b"Package: coreutils\nStatus: install ok installed\nVersion: 9.1-1\n\n\
          Package: gzip\nStatus: install ok installed\nVersion: 1.12-1\n\n\
          Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
    );
    write(
        r,
        "var/lib/dpkg/info/coreutils.md5sums",
        format!("{}  usr/bin/ls\n", md5_hex(b"ls bytes")).as_bytes(),
    );
    write(
        r,
        "var/lib/dpkg/info/gzip:amd64.md5sums",
        format!("{}  usr/bin/gzip\n", md5_hex(b"gzip bytes")).as_bytes(),
    );
    dir
}

fn sbom() -> Arc<Manifest> {
    Arc::new(load_bytes(CDX.as_bytes(), "syft.cdx.json", &LoadOptions::default()).expect("cdx"))
}

#[test]
fn listed_packages_verify_weakly_unlisted_are_gaps_dropped_files_unknown() {
    let dir = rootfs();
    let files: Arc<dyn ImageFiles + Send + Sync> =
        Arc::new(RootFiles::open(dir.path(), None).expect("open root"));
    let j = join(&sbom(), files.as_ref()).expect("joined");
    assert_eq!((j.db, j.matched), ("dpkg", 1));
    assert_eq!(j.unlisted_packages, vec!["gzip".to_string()], "`gone` is not installed");
    assert!(j.missing.is_empty(), "{:?}", j.missing);
    let content = GapContent::new(j.unlisted.clone(), files, None);

    let ls = judge(&j.manifest, Some(&content), Some("/usr/bin/ls"), &hashes(b"ls bytes"), false, false);
    assert_eq!(ls.verdict, Verdict::Ok, "{ls:?}");
    assert!(ls.weak, "MD5 from dpkg is weak");
    assert_eq!(ls.package.as_ref().map(|p| p.name.as_str()), Some("coreutils"));

    let changed = judge(&j.manifest, Some(&content), Some("/usr/bin/ls"), &hashes(b"evil"), false, false);
    assert_eq!(changed.verdict, Verdict::ModifiedBinary);

    let gzip =
        judge(&j.manifest, Some(&content), Some("/usr/bin/gzip"), &hashes(b"gzip bytes"), false, false);
    assert_eq!(gzip.verdict, Verdict::SbomGap, "{gzip:?}");

    let dropped =
        judge(&j.manifest, Some(&content), Some("/tmp/dropped"), &hashes(b"dropped bytes"), false, false);
    assert_eq!(dropped.verdict, Verdict::UnknownBinary, "{dropped:?}");
}

#[test]
fn a_listed_version_that_is_not_installed_does_not_join() {
    let dir = rootfs();
    let files = RootFiles::open(dir.path(), None).expect("open root");
    let other = CDX.replace("9.1-1", "8.0-1");
    let m = load_bytes(other.as_bytes(), "syft.cdx.json", &LoadOptions::default()).expect("cdx");
    let err = join(&m, &files).expect_err("nothing matches");
    assert!(matches!(err, JoinError::NothingMatched { db: "dpkg", listed: 1 }), "{err}");
}

#[test]
fn no_database_is_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "usr/bin/ls", b"ls");
    let files = RootFiles::open(dir.path(), None).expect("open root");
    assert!(matches!(join(&sbom(), &files), Err(JoinError::NoDatabase)));
}

#[test]
fn apk_blocks_of_listed_packages_are_joined() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "lib/apk/db/installed",
        b"C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:busybox\nV:1.36.1-r0\nF:bin\nR:busybox\nZ:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\
          P:musl\nV:1.2.4-r2\nF:lib\nR:ld-musl-x86_64.so.1\nZ:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    );
    let files = RootFiles::open(dir.path(), None).expect("open root");
    let cdx = r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
      {"type":"library","name":"busybox","purl":"pkg:apk/alpine/busybox@1.36.1-r0?arch=x86_64"}]}"#;
    let m = load_bytes(cdx.as_bytes(), "x.cdx.json", &LoadOptions::default()).expect("cdx");
    let j = join(&m, &files).expect("joined");
    assert_eq!((j.db, j.matched), ("apk", 1));
    assert_eq!(j.unlisted_packages, vec!["musl".to_string()]);
}
