//! Every real SBOM in `tests/fixtures/sbom-samples` (copied verbatim from
//! `shared/sbom-samples`; provenance and licences in its INDEX.md) goes through
//! the readers: those with per-file digests give the right counts and
//! values, packages-only ones load and say they are no file baseline, and
//! the files that are not SBOMs fail with an error that explains why.

use std::path::{Path, PathBuf};

use verifier_sbom::{Envelope, HashAlg, LoadOptions, Manifest, SbomError, SbomFormat, load_bytes, load_path};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sbom-samples")
}

fn load(rel: &str) -> Manifest {
    let path = samples().join(rel);
    let m = load_path(&path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{rel} should load: {e}"));
    // The in-memory path must agree with the streaming one.
    let bytes = std::fs::read(&path).expect("readable");
    let m2 =
        load_bytes(&bytes, rel, &LoadOptions::default()).unwrap_or_else(|e| panic!("{rel} from memory: {e}"));
    assert_eq!((m.len(), m.packages().len()), (m2.len(), m2.packages().len()), "{rel}");
    m
}

fn hex_of(m: &Manifest, path: &str, alg: HashAlg) -> String {
    let e = m.get(path).unwrap_or_else(|| panic!("{path} missing"));
    hex::encode(e.digest(alg).unwrap_or_else(|| panic!("{path} has no {alg}")))
}

fn says_no_file_digests(m: &Manifest) -> bool {
    m.warnings().iter().any(|w| w.contains("no per-file digests"))
}

#[test]
fn every_sample_is_covered() {
    // A new sample must be added to the expectations below.
    let mut found = Vec::new();
    let mut dirs = vec![samples()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                found.push(p.strip_prefix(samples()).expect("under samples").display().to_string());
            }
        }
    }
    found.sort();
    let mut known: Vec<&str> = WITH_FILE_DIGESTS
        .iter()
        .chain(PACKAGES_ONLY)
        .chain(NOT_SBOMS.iter().map(|(f, _)| f))
        .copied()
        .collect();
    known.sort();
    assert_eq!(found, known);
}

const WITH_FILE_DIGESTS: &[&str] = &[
    "anchore-syft/TestEncodeFullJSONDocument.golden",
    "anchore-syft/alpine-multiple-2/installed",
    "anchore-syft/distroless-deb/libsqlite3-0.md5sums",
    "chainguard-apko/apk-installed-db/wolfi-base",
    "microsoft-sbom-tool/spdx_2.2/manifest.spdx.json",
    "microsoft-sbom-tool/spdx_3.0/manifest.spdx.json",
    "spdx-spec/SPDXJSONExample-v2.3.spdx.json",
    "spdx-spec/SPDXTagExample-v2.3.spdx",
];

const PACKAGES_ONLY: &[&str] = &[
    "anchore-syft/TestCycloneDxImageEncoder.golden",
    "anchore-syft/TestSPDXJSONImageEncoder.golden",
    "aquasecurity-trivy/centos-7-cyclonedx.intoto.jsonl",
    "aquasecurity-trivy/centos-7-cyclonedx.json",
    "aquasecurity-trivy/centos-7-spdx.txt",
    "aquasecurity-trivy/fluentd-multiple-lockfiles.cdx.json.golden",
    "chainguard-apko/golden/sbom-index.spdx.json",
    "chainguard-apko/golden/sbom-x86_64.spdx.json",
    "chainguard-apko/melange-apk-sbom/unbound-1.23.0-r0.spdx.json",
    "cyclonedx-bom-examples/OBOM-Example-1-Standalone/bom.json",
    "cyclonedx-bom-examples/juice-shop-via_npm-bare/bom.1.4.json",
    "cyclonedx-bom-examples/laravel-7.12.0/bom.1.4.json",
    "cyclonedx-bom-examples/proton-bridge/proton-bridge-v1.8.0.bom.json",
    "cyclonedx-specification/valid-evidence-1.6.json",
    "kubernetes-sigs-bom/nginx.spdx",
    "spdx-spec/package_sbom.json",
];

/// Files in the samples that are not SBOMs, and what the error must say.
const NOT_SBOMS: &[(&str, &str)] = &[
    ("INDEX.md", "starts with \"# SBOM samples\""),
    ("microsoft-sbom-tool/spdx_2.2/manifest.spdx.json.sha256", "not an SBOM format"),
    // A Sigstore bundle whose in-toto predicate is a cosign attestation.
    (
        "sigstore-cosign/oci-attestation.sigstore.json",
        "predicate (https://cosign.sigstore.dev/attestation/v1) is not an SBOM",
    ),
];

#[test]
fn alpine_installed_db() {
    let m = load("anchore-syft/alpine-multiple-2/installed");
    assert_eq!(m.source().format, SbomFormat::ApkInstalled);
    assert_eq!((m.len(), m.len_with_digests()), (105, 105));
    assert!(m.files().all(|(_, e)| e.digests().all(|d| d.alg == HashAlg::Sha1)));
    // Z:Q11Q7hNe8QpDS531guqCdrXBzoA/o= under F:etc / R:fstab.
    assert_eq!(hex_of(&m, "/etc/fstab", HashAlg::Sha1), "d50ee135ef10a434b9df582ea8276b5c1ce803fa");
    let fstab = m.get("/etc/fstab").expect("fstab");
    assert_eq!(fstab.package(&m).map(|p| p.name.as_str()), Some("alpine-baselayout-data"));
    // R:libc.musl-x86_64.so.1 with a:0:0:777 is the musl loader symlink.
    assert!(m.get("/lib/libc.musl-x86_64.so.1").expect("musl link").is_symlink());
    assert!(!m.get("/lib/ld-musl-x86_64.so.1").expect("musl").is_symlink());
    assert!(m.warnings().is_empty(), "{:?}", m.warnings());
}

#[test]
fn wolfi_installed_db() {
    let m = load("chainguard-apko/apk-installed-db/wolfi-base");
    assert_eq!((m.len(), m.len_with_digests()), (91, 91));
    assert_eq!(
        m.get("/etc/group").and_then(|e| e.package(&m)).map(|p| p.name.as_str()),
        Some("wolfi-baselayout")
    );
    assert_eq!(hex_of(&m, "/etc/group", HashAlg::Sha1), "c3b8fac9c89336635be93d39c805fe04f852b800");
    // `R:lib64` with mode 0777 under F:usr (a symlink, listed twice in the
    // database: once by wolfi-baselayout, once by another package).
    assert!(m.get("/usr/lib64").expect("usr/lib64").is_symlink());
}

#[test]
fn distroless_md5sums() {
    let m = load("anchore-syft/distroless-deb/libsqlite3-0.md5sums");
    assert_eq!(m.source().format, SbomFormat::DpkgMd5sums);
    assert_eq!(m.len(), 6);
    let lib = "/usr/lib/aarch64-linux-gnu/libsqlite3.so.0.8.6";
    assert_eq!(hex_of(&m, lib, HashAlg::Md5), "e11d70c96979a1328ae4e7e50542782b");
    assert_eq!(m.get(lib).and_then(|e| e.package(&m)).map(|p| p.name.as_str()), Some("libsqlite3-0"));
}

#[test]
fn spdx_23_json_example() {
    let m = load("spdx-spec/SPDXJSONExample-v2.3.spdx.json");
    assert_eq!(m.source().format, SbomFormat::Spdx2Json);
    assert_eq!(m.source().spec_version.as_deref(), Some("SPDX-2.3"));
    assert_eq!(m.source().document_name.as_deref(), Some("SPDX-Tools-v2.0"));
    assert_eq!(
        m.source().namespace.as_deref(),
        Some("http://spdx.org/spdxdocs/spdx-example-444504E0-4F89-41D3-9A0C-0305E82C3301")
    );
    assert_eq!((m.len(), m.len_with_digests()), (5, 5));
    assert_eq!(
        hex_of(&m, "/src/org/spdx/parser/DOAPProject.java", HashAlg::Sha1),
        "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"
    );
    // ./package/foo.c carries SHA1 and MD5.
    let foo = m.get("/package/foo.c").expect("foo.c");
    assert_eq!(foo.digests().count(), 2);
    assert_eq!(hex::encode(foo.digest(HashAlg::Md5).expect("md5")), "624c1abb3664f4b35547e7c73864ad24");
    // hasFiles of SPDXRef-Package (glibc) names DoapSource.
    let doap = m.get("/src/org/spdx/parser/DOAPProject.java").and_then(|e| e.package(&m));
    assert_eq!(doap.map(|p| p.name.as_str()), Some("glibc"));
    assert!(m.get("/package/foo.c").expect("foo.c").package(&m).is_none());
    // Jena's purl comes from externalRefs.
    assert!(
        m.packages()
            .iter()
            .any(|p| p.purl.as_deref() == Some("pkg:maven/org.apache.jena/apache-jena@3.12.0"))
    );
}

#[test]
fn spdx_23_tag_value_example_matches_the_json_one() {
    let tv = load("spdx-spec/SPDXTagExample-v2.3.spdx");
    let js = load("spdx-spec/SPDXJSONExample-v2.3.spdx.json");
    assert_eq!(tv.source().format, SbomFormat::Spdx2TagValue);
    assert_eq!(tv.len(), 5);
    let mut a: Vec<_> = tv
        .files()
        .map(|(p, e)| (p.to_owned(), e.digests().map(|d| d.to_string()).collect::<Vec<_>>()))
        .collect();
    let mut b: Vec<_> = js
        .files()
        .map(|(p, e)| (p.to_owned(), e.digests().map(|d| d.to_string()).collect::<Vec<_>>()))
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn microsoft_sbom_tool_spdx_22_and_30() {
    let m2 = load("microsoft-sbom-tool/spdx_2.2/manifest.spdx.json");
    let m3 = load("microsoft-sbom-tool/spdx_3.0/manifest.spdx.json");
    assert_eq!(m2.source().format, SbomFormat::Spdx2Json);
    assert_eq!(m3.source().format, SbomFormat::Spdx3JsonLd);
    for m in [&m2, &m3] {
        assert_eq!(m.len(), 1);
        assert_eq!(m.packages().len(), 267);
        let exe = m.get("/sbom-tool-win-x64.exe").expect("exe");
        assert_eq!(
            hex::encode(exe.sha256().expect("sha256")),
            "2dba00b048555bd12d5527d4b16d2ca110a129f5c719d8505f23dc9d87ef7640"
        );
        assert_eq!(
            hex_of(m, "/sbom-tool-win-x64.exe", HashAlg::Sha1),
            "a097f77be3b9e1586fd2a2176a247bd3e7c83a3e"
        );
    }
    assert!(m3.warnings().iter().any(|w| w.contains("PackageVerificationCode")), "{:?}", m3.warnings());
    assert_eq!(m3.source().document_name.as_deref(), Some("sbom-tool sample 4.0.3"));
}

#[test]
fn syft_json() {
    let m = load("anchore-syft/TestEncodeFullJSONDocument.golden");
    assert_eq!(m.source().format, SbomFormat::SyftJson);
    // Two regular files with SHA-256, one symlink (no digest); the
    // directory is skipped.
    assert_eq!((m.len(), m.len_with_digests()), (3, 2));
    assert_eq!(
        hex_of(&m, "/a/place/a", HashAlg::Sha256),
        "366a3f5653e34673b875891b021647440d0127c2ef041e3b1a22da2a7d4f3703"
    );
    assert!(m.get("/b").expect("link").is_symlink());
    assert!(m.get("/a/place").is_none());
    assert_eq!(m.source().image_name.as_deref(), Some("user-image-input"));
    assert_eq!(
        m.source().image_digest.as_deref(),
        Some("sha256:2731251dc34951c0e50fcc643b4c5f74922dad1a5d98f302b504cf46cd5d9368")
    );
}

#[test]
fn packages_only_sboms_load_and_say_so() {
    for rel in PACKAGES_ONLY {
        let m = load(rel);
        assert_eq!(m.len_with_digests(), 0, "{rel}");
        assert!(says_no_file_digests(&m), "{rel}: {:?}", m.warnings());
        assert!(!m.packages().is_empty(), "{rel}");
    }
    // A few specific counts and identities.
    assert_eq!(load("kubernetes-sigs-bom/nginx.spdx").packages().len(), 1185);
    assert_eq!(load("cyclonedx-bom-examples/OBOM-Example-1-Standalone/bom.json").packages().len(), 904);
    let juice = load("cyclonedx-bom-examples/juice-shop-via_npm-bare/bom.1.4.json");
    assert_eq!(juice.source().spec_version.as_deref(), Some("1.4"));
    assert!(juice.packages().len() > 278, "nested components are packages too");
    let proton = load("cyclonedx-bom-examples/proton-bridge/proton-bridge-v1.8.0.bom.json");
    assert_eq!(
        (proton.source().format, proton.source().spec_version.as_deref()),
        (SbomFormat::CycloneDxJson, Some("1.2"))
    );
    let apko = load("chainguard-apko/golden/sbom-x86_64.spdx.json");
    assert_eq!(
        apko.source().image_digest.as_deref(),
        Some("sha256:69f0237c7f8cf0b8a329d1bf1d6870c870c4ec323e39d3a6da59596632d0f2f4")
    );
    let spdx3 = load("spdx-spec/package_sbom.json");
    assert_eq!(spdx3.source().format, SbomFormat::Spdx3JsonLd);
    assert_eq!(
        spdx3.get("/myprogram").and_then(|e| e.package(&spdx3)).map(|p| p.name.as_str()),
        Some("my-package")
    );
}

#[test]
fn dsse_jsonl_unwraps_the_cyclonedx_predicate() {
    let m = load("aquasecurity-trivy/centos-7-cyclonedx.intoto.jsonl");
    let plain = load("aquasecurity-trivy/centos-7-cyclonedx.json");
    assert_eq!(m.source().format, SbomFormat::CycloneDxJson);
    assert_eq!(m.source().envelope, Some(Envelope::Dsse));
    assert!(m.warnings().iter().any(|w| w.contains("signatures were not checked")), "{:?}", m.warnings());
    let names = |m: &Manifest| m.packages().iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&m), names(&plain));
    assert_eq!(m.source().image_name.as_deref(), plain.source().image_name.as_deref());
}

#[test]
fn non_sboms_fail_with_an_explanation() {
    for (rel, expect) in NOT_SBOMS {
        let err = load_path(&samples().join(rel), &LoadOptions::default()).expect_err(rel);
        assert!(matches!(err, SbomError::UnknownFormat { .. }), "{rel}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(expect) && msg.contains(rel.rsplit('/').next().unwrap_or(rel)), "{rel}: {msg}");
    }
}

#[test]
fn several_sboms_merge_into_one_manifest() {
    let mut m = load("anchore-syft/alpine-multiple-2/installed");
    m.merge(load("anchore-syft/distroless-deb/libsqlite3-0.md5sums"));
    assert_eq!(m.len(), 111);
    assert_eq!(m.sources().len(), 2);
    assert_eq!(
        m.get("/usr/lib/aarch64-linux-gnu/libsqlite3.so.0.8.6")
            .and_then(|e| e.package(&m))
            .map(|p| p.name.as_str()),
        Some("libsqlite3-0")
    );
    assert_eq!(
        m.get("/etc/fstab").and_then(|e| e.package(&m)).map(|p| p.name.as_str()),
        Some("alpine-baselayout-data")
    );
}
