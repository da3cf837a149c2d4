use std::path::{Path, PathBuf};

use super::*;
use crate::{LoadOptions, load_path, load_reader};

fn sample(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sbom-samples").join(rel)
}

fn of(rel: &str) -> Inspection {
    let m = load_path(&sample(rel), &LoadOptions::default()).unwrap_or_else(|e| panic!("{rel}: {e}"));
    inspect(rel, &m)
}

#[test]
fn syft_json_with_sha256_is_per_file() {
    let i = of("anchore-syft/TestEncodeFullJSONDocument.golden");
    assert_eq!(i.format.as_deref(), Some("Syft JSON"));
    // Two regular files with SHA-256, one symlink listed without a digest.
    assert_eq!((i.files, i.digests.sha256, i.digests.none, i.strong_files), (3, 2, 1, 2));
    assert_eq!(i.usefulness, Some(Usefulness::PerFile));
    assert_eq!(i.advice, None);
}

#[test]
fn microsoft_spdx_with_sha256_and_sha1_counts_both() {
    let i = of("microsoft-sbom-tool/spdx_2.2/manifest.spdx.json");
    assert_eq!((i.files, i.packages), (1, 267));
    assert_eq!((i.digests.sha256, i.digests.sha1, i.weak_only_files), (1, 1, 0));
    assert_eq!(i.usefulness, Some(Usefulness::PerFile));
}

#[test]
fn package_only_sboms_say_so_and_what_to_do() {
    for rel in [
        "anchore-syft/TestSPDXJSONImageEncoder.golden",
        "aquasecurity-trivy/centos-7-cyclonedx.json",
        "aquasecurity-trivy/centos-7-cyclonedx.intoto.jsonl",
    ] {
        let i = of(rel);
        assert!(i.packages > 0, "{rel}");
        assert_eq!((i.strong_files, i.weak_only_files), (0, 0), "{rel}");
        assert_eq!(i.usefulness, Some(Usefulness::PackageOnly), "{rel}");
        let advice = i.advice.unwrap_or_default();
        assert!(advice.contains("verifier sbom generate"), "{rel}: {advice}");
        assert!(!i.warnings.is_empty(), "{rel}: the reader's warning is passed on");
    }
    let dsse = of("aquasecurity-trivy/centos-7-cyclonedx.intoto.jsonl");
    assert_eq!(dsse.format.as_deref(), Some("CycloneDX JSON"));
    assert_eq!(dsse.envelope.as_deref(), Some("dsse"));
}

#[test]
fn package_databases_are_weak() {
    let dpkg = of("anchore-syft/distroless-deb/libsqlite3-0.md5sums");
    assert_eq!((dpkg.files, dpkg.digests.md5, dpkg.weak_only_files), (6, 6, 6));
    assert_eq!(dpkg.usefulness, Some(Usefulness::Weak));
    let apk = of("anchore-syft/alpine-multiple-2/installed");
    assert_eq!((apk.files, apk.digests.sha1, apk.digests.sha256), (105, 105, 0));
    assert_eq!(apk.usefulness, Some(Usefulness::Weak));
    assert!(apk.advice.unwrap_or_default().contains("105 file(s) have only MD5/SHA-1"));
}

#[test]
fn spdx_example_with_sha1_and_md5_is_weak() {
    let i = of("spdx-spec/SPDXJSONExample-v2.3.spdx.json");
    assert_eq!((i.files, i.digests.sha1, i.digests.md5), (5, 5, 1));
    assert_eq!(i.usefulness, Some(Usefulness::Weak));
}

#[test]
fn placeholders_are_counted_from_the_reader() {
    let text = "00000000000000000000000000000000  usr/bin/a\n\
                00000000000000000000000000000000  usr/bin/b\n\
                e11d70c96979a1328ae4e7e50542782b  usr/bin/c\n";
    let m = load_reader(text.as_bytes(), "x.md5sums", &LoadOptions::default()).expect("loads");
    let i = inspect("x.md5sums", &m);
    assert_eq!((i.digests.placeholders, i.digests.none, i.digests.md5), (2, 2, 1));
    // After a merge the warning is prefixed with its source.
    let mut all = Manifest::new(crate::SbomSource::new(crate::SbomFormat::Spdx2Json));
    all.merge(m);
    assert_eq!(inspect("merged", &all).digests.placeholders, 2);
}

#[test]
fn exit_code_is_the_worst_input() {
    let good = of("anchore-syft/TestEncodeFullJSONDocument.golden");
    let weak = of("anchore-syft/distroless-deb/libsqlite3-0.md5sums");
    let err = SbomError::UnknownFormat { file: "x".into(), reason: "r".into() };
    let bad = failed("x", &err);
    let status = |v: Vec<Inspection>| exit_status(&Report { schema: SCHEMA, inputs: v });
    assert_eq!(status(vec![good.clone()]), 0);
    assert_eq!(status(vec![good.clone(), weak.clone()]), 1);
    assert_eq!(status(vec![weak, bad.clone(), good]), 2);
    assert_eq!(bad.error.as_deref(), Some(err.to_string().as_str()));
}
