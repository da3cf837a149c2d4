use super::*;

#[test]
fn specs_parse_and_say_what_is_accepted() {
    assert_eq!("dpkg".parse::<HostSpec>(), Ok(HostSpec::Source(HostSource::Dpkg)));
    assert_eq!("off".parse::<HostSpec>(), Ok(HostSpec::Off));
    assert_eq!(
        "sbom:/tmp/host.spdx.json".parse::<HostSpec>(),
        Ok(HostSpec::Source(HostSource::Sbom("/tmp/host.spdx.json".into())))
    );
    let err = "rpm".parse::<HostSpec>().expect_err("not a source");
    assert!(err.contains("sbom:FILE"), "{err}");
    assert!("sbom:".parse::<HostSpec>().is_err());
    let both = [HostSpec::Source(HostSource::Dpkg), HostSpec::Source(HostSource::Sbom("x".into()))];
    assert_eq!(sources_of(&both).len(), 2);
    assert!(sources_of(&[HostSpec::Source(HostSource::Dpkg), HostSpec::Off]).is_empty());
}

/// A host SBOM (here in dpkg's md5sums shape) is read, and read again
/// with a new key only when it changes.
#[test]
fn a_changed_sbom_is_parsed_again_under_a_new_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tools.md5sums");
    std::fs::write(&file, format!("{}  usr/bin/cc\n", "a".repeat(32))).expect("write");
    let mut b = HostBaseline::load(&[HostSource::Sbom(file.clone())]).expect("load");
    assert!(b.manifest.get("/usr/bin/cc").is_some());
    assert!(b.manifest.get("/usr/bin/ld").is_none());
    let first = b.key;
    assert!(!b.refresh().expect("refresh"), "nothing changed");
    assert_eq!(b.key, first);
    std::fs::write(&file, format!("{0}  usr/bin/cc\n{0}  usr/bin/ld\n", "b".repeat(32))).expect("write");
    assert!(b.refresh().expect("refresh"), "size changed");
    assert_ne!(b.key, first);
    assert_eq!(b.reloads, 1);
    assert!(b.manifest.get("/usr/bin/ld").is_some());
    assert_eq!(b.describe()[0].kind, "sbom");
}

#[test]
fn a_missing_sbom_names_the_file() {
    let err = HostBaseline::load(&[HostSource::Sbom("/nonexistent/host.json".into())]).err().expect("error");
    assert!(err.to_string().contains("/nonexistent/host.json"), "{err}");
}

/// The real database of this host, when it has one: its files load and
/// its digests are dpkg's MD5.
#[test]
fn the_hosts_dpkg_database_loads_when_present() {
    if !Path::new(DPKG_STATUS).exists() {
        eprintln!("skipped: this host has no dpkg database at {DPKG_STATUS}");
        return;
    }
    let b = HostBaseline::load(&[HostSource::Dpkg]).expect("dpkg database");
    assert!(b.manifest.len() > 100, "{} files", b.manifest.len());
    // Listed as `bin/dash` by dpkg; found by its usr-merged path too.
    let (_, dash) = b.manifest.get_canonical("/usr/bin/dash").expect("dash is in every Debian");
    assert!(
        dash.sha256().is_none() && dash.digest(verifier_sbom::HashAlg::Md5).is_some(),
        "dpkg knows MD5 only"
    );
}

/// `changed_ns` is the watched file's mtime at the last parse: what a
/// step's written file is compared with.
#[test]
fn changed_ns_is_the_newest_watched_mtime() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("h.md5sums");
    std::fs::write(&file, format!("{}  usr/bin/cc\n", "a".repeat(32))).expect("write");
    let b = HostBaseline::load(&[HostSource::Sbom(file.clone())]).expect("load");
    let m = std::fs::metadata(&file).expect("stat");
    assert_eq!(b.changed_ns(), i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()));
    assert!(b.changed_ns() > 0);
}
