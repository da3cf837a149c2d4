use super::super::{HashAlg, LoadOptions, load_path, load_reader};
use super::package_name;

#[test]
fn reads_relative_paths_and_package_from_name() {
    let text = "e11d70c96979a1328ae4e7e50542782b  usr/lib/x/libsqlite3.so.0.8.6\n\
                00000000000000000000000000000000  usr/share/doc/placeholder\n\
                9d8facc2fa9d2df52f1c7cb4e5fa4741 *usr/share/doc/README\n";
    let m = load_reader(text.as_bytes(), "/x/libsqlite3-0:arm64.md5sums", &LoadOptions::default())
        .expect("loads");
    assert_eq!(m.len(), 3);
    let e = m.get("/usr/lib/x/libsqlite3.so.0.8.6").expect("lib");
    assert_eq!(e.digest(HashAlg::Md5).map(hex::encode).as_deref(), Some("e11d70c96979a1328ae4e7e50542782b"));
    assert_eq!(e.package(&m).map(|p| p.name.as_str()), Some("libsqlite3-0"));
    assert!(m.get("/usr/share/doc/README").expect("readme").has_digests());
    assert!(!m.get("/usr/share/doc/placeholder").expect("placeholder").has_digests());
    assert_eq!(package_name("a/b/libc6:amd64.md5sums"), Some("libc6"));
    assert_eq!(package_name("nope.txt"), None);
}

#[test]
fn a_directory_of_md5sums_is_one_manifest() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("libc6:amd64.md5sums"),
        "e11d70c96979a1328ae4e7e50542782b  lib/libc.so.6\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("bash.md5sums"), "9d8facc2fa9d2df52f1c7cb4e5fa4741  bin/bash\n")
        .expect("write");
    std::fs::write(dir.path().join("bash.list"), "/bin/bash\n").expect("write");
    let m = load_path(dir.path(), &LoadOptions::default()).expect("loads");
    assert_eq!(m.len(), 2);
    assert_eq!(m.sources().len(), 2);
    assert_eq!(m.get("/bin/bash").and_then(|e| e.package(&m)).map(|p| p.name.as_str()), Some("bash"));
    assert_eq!(m.get("/lib/libc.so.6").and_then(|e| e.package(&m)).map(|p| p.name.as_str()), Some("libc6"));
    let empty = tempfile::tempdir().expect("temp dir");
    let err = load_path(empty.path(), &LoadOptions::default()).expect_err("no md5sums");
    assert!(err.to_string().contains("no *.md5sums"), "{err}");
}

#[test]
fn rejects_a_bad_line_by_number() {
    let text = "e11d70c96979a1328ae4e7e50542782b  usr/bin/a\nnot a sum\n";
    let err = load_reader(text.as_bytes(), "p.md5sums", &LoadOptions::default()).expect_err("bad");
    assert!(err.to_string().starts_with("p.md5sums: line 2"), "{err}");
}

/// A status database as Debian bookworm writes it (trimmed): an installed
/// package with conffiles (one obsolete, one not hashed yet, one removed
/// on upgrade), a package removed but for its config files, a package
/// with conffiles and no md5sums, and one with neither.
const STATUS: &str = "\
Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u5
Replaces: base, dpkg (<= 1.15.0), miscutils
Provides: base
Conffiles:
 /etc/debian_version 5e2a1b2c3d4e5f60718293a4b5c6d7e8
 /etc/host.conf 4eb63731c9f5e30903ac4fc07a7fe3d6
 /etc/old.conf 0123456789abcdef0123456789abcdef obsolete
 /etc/update-motd.d/10-uname 9f3d0d2c4e5b6a7980a1b2c3d4e5f607 remove-on-upgrade
 /etc/new thing.conf newconffile
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system,
 /etc/host.conf 00000000000000000000000000000000
 .
 and the text of several common licenses in use on Debian systems.

Package: oldtool
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Conffiles:
 /etc/oldtool.conf 11111111111111111111111111111111

Package: netbase
Status: install ok installed
Architecture: all
Version: 6.4
Conffiles:
 /etc/protocols bb9c019d6524e913fd72441d58b68216
 /etc/services 3975f0d8c4e1ecb25f035edfb1ba27ac

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u7
Description: GNU C Library: Shared libraries
";

fn md5_of(m: &crate::Manifest, path: &str) -> Option<String> {
    m.get(path).and_then(|e| e.digest(HashAlg::Md5)).map(hex::encode)
}

fn package_of(m: &crate::Manifest, path: &str) -> Option<(String, Option<String>)> {
    let p = m.get(path).and_then(|e| e.package(m))?;
    Some((p.name.clone(), p.version.clone()))
}

#[test]
fn status_stanzas_give_conffiles_of_installed_packages() {
    let stanzas = super::status::parse(STATUS);
    let names: Vec<_> = stanzas.iter().map(|s| s.package.as_str()).collect();
    assert_eq!(names, ["base-files", "netbase", "libc6"], "config-files only is not installed");
    let base = &stanzas[0];
    assert_eq!(base.version.as_deref(), Some("12.4+deb12u5"));
    let shipped: Vec<_> = base.shipped().map(|c| (c.path.as_str(), c.md5.is_some())).collect();
    assert_eq!(
        shipped,
        [
            ("/etc/debian_version", true),
            ("/etc/host.conf", true),
            ("/etc/update-motd.d/10-uname", true),
            ("/etc/new thing.conf", false),
        ],
        "obsolete left out, a path with a space kept, the description's lines are not conffiles"
    );
    assert_eq!(base.conffiles.len(), 5);
    assert!(stanzas[2].conffiles.is_empty());
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[test]
fn an_info_directory_reads_the_status_next_to_it() {
    let root = tempfile::tempdir().expect("temp dir");
    let dpkg = root.path().join("var/lib/dpkg");
    write(&dpkg.join("status"), STATUS);
    write(
        &dpkg.join("info/libc6:amd64.md5sums"),
        "e11d70c96979a1328ae4e7e50542782b  lib/x86_64-linux-gnu/libc.so.6\n",
    );
    write(
        &dpkg.join("info/base-files.md5sums"),
        "9d8facc2fa9d2df52f1c7cb4e5fa4741  usr/share/base-files/motd\n",
    );
    let m = load_path(&dpkg.join("info"), &LoadOptions::default()).expect("loads");
    assert_eq!(md5_of(&m, "/etc/host.conf").as_deref(), Some("4eb63731c9f5e30903ac4fc07a7fe3d6"));
    assert_eq!(
        package_of(&m, "/etc/host.conf"),
        Some(("base-files".into(), Some("12.4+deb12u5".into()))),
        "the conffile is under the package of the md5sums, with its version"
    );
    assert_eq!(
        package_of(&m, "/lib/x86_64-linux-gnu/libc.so.6").and_then(|p| p.1).as_deref(),
        Some("2.36-9+deb12u7")
    );
    assert_eq!(
        package_of(&m, "/etc/services").map(|p| p.0).as_deref(),
        Some("netbase"),
        "no md5sums of its own"
    );
    assert!(m.get("/etc/old.conf").is_none(), "obsolete");
    assert!(m.get("/etc/oldtool.conf").is_none(), "package removed");
    assert!(!m.get("/etc/new thing.conf").expect("newconffile listed").has_digests());
    assert!(m.warnings().iter().any(|w| w.contains("newconffile")), "{:?}", m.warnings());
    assert_eq!(m.len(), 8);
    let names: Vec<_> = m.packages().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["base-files", "libc6", "netbase"], "each package once");
    assert!(m.sources().iter().any(|s| s.path.as_deref() == Some(&*dpkg.join("info/../status"))));
}

#[test]
fn a_distroless_status_d_reads_its_package_files() {
    let root = tempfile::tempdir().expect("temp dir");
    let sd = root.path().join("status.d");
    let mut stanzas = STATUS.split("\n\n");
    write(&sd.join("base-files"), stanzas.next().expect("base-files"));
    write(&sd.join("base-files.md5sums"), "9d8facc2fa9d2df52f1c7cb4e5fa4741  usr/share/base-files/motd\n");
    write(&sd.join("netbase"), stanzas.nth(1).expect("netbase"));
    write(
        &sd.join("python3.11"),
        "Package: python3.11\nStatus: install ok installed\nVersion: 3.11.2-6\nConffiles:\n \
         /etc/python3.11/sitecustomize.py 4a1e2c5d8ef4a0c1b2d3e4f5a6b7c8d9\n",
    );
    let m = load_path(&sd, &LoadOptions::default()).expect("loads");
    assert_eq!(md5_of(&m, "/etc/debian_version").as_deref(), Some("5e2a1b2c3d4e5f60718293a4b5c6d7e8"));
    assert_eq!(package_of(&m, "/etc/protocols").map(|p| p.0).as_deref(), Some("netbase"));
    assert_eq!(
        package_of(&m, "/etc/python3.11/sitecustomize.py"),
        Some(("python3.11".into(), Some("3.11.2-6".into())))
    );
    assert!(m.get("/usr/share/base-files/motd").is_some());
    // A status.d with package files only (no md5sums) still gives the conffiles.
    std::fs::remove_file(sd.join("base-files.md5sums")).expect("rm");
    let m = load_path(&sd, &LoadOptions::default()).expect("conffiles alone");
    assert_eq!(m.len_with_digests(), 6);
}
