//! Every branch of the verdict policy, on a real SPDX document read by the
//! real reader.

use sha2::Digest as _;

use super::*;
use verifier_sbom::{LoadOptions, load_bytes};

fn sha256(b: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(b).into()
}

fn sha1(b: &[u8]) -> [u8; 20] {
    sha1::Sha1::digest(b).into()
}

fn sha512(b: &[u8]) -> [u8; 64] {
    sha2::Sha512::digest(b).into()
}

fn manifest() -> Manifest {
    let doc = serde_json::json!({
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "test",
        "dataLicense": "CC0-1.0",
        "documentNamespace": "https://example.com/test",
        "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: test"]},
        "packages": [{
            "SPDXID": "SPDXRef-busybox", "name": "busybox", "versionInfo": "1.36",
            "downloadLocation": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": "pkg:apk/alpine/busybox@1.36"}],
            "hasFiles": ["SPDXRef-bb"]
        }],
        "files": [
            {"SPDXID": "SPDXRef-bb", "fileName": "./bin/busybox",
             "checksums": [{"algorithm": "SHA256", "checksumValue": hex::encode(sha256(b"busybox"))}]},
            {"SPDXID": "SPDXRef-old", "fileName": "./usr/bin/old",
             "checksums": [{"algorithm": "SHA1", "checksumValue": hex::encode(sha1(b"old tool"))}]},
            {"SPDXID": "SPDXRef-none", "fileName": "./usr/bin/nohash", "checksums": []},
            {"SPDXID": "SPDXRef-big", "fileName": "./usr/bin/big",
             "checksums": [{"algorithm": "SHA512", "checksumValue": hex::encode(sha512(b"big tool"))}]}
        ]
    });
    load_bytes(doc.to_string().as_bytes(), "test.spdx.json", &LoadOptions::default()).expect("valid SPDX")
}

fn hashes(bytes: &[u8]) -> FileHashes {
    FileHashes {
        size: bytes.len() as u64,
        sha256: Some(sha256(bytes)),
        sha1: Some(sha1(bytes)),
        sha512: Some(Box::new(sha512(bytes))),
        ..FileHashes::default()
    }
}

struct Layers(Vec<(&'static str, [u8; 32])>);

impl ImageContent for Layers {
    fn sha256_of(&self, path: &str) -> Option<[u8; 32]> {
        self.0.iter().find(|(p, _)| *p == path).map(|(_, d)| *d)
    }
}

#[test]
fn listed_and_matching_is_ok_with_its_package() {
    let m = manifest();
    let j = judge(&m, None, Some("/bin/busybox"), &hashes(b"busybox"), false, false);
    assert_eq!(j.verdict, Verdict::Ok, "{j:?}");
    assert!(!j.weak);
    assert_eq!(j.package.as_ref().and_then(|p| p.purl.as_deref()), Some("pkg:apk/alpine/busybox@1.36"));
}

#[test]
fn listed_with_other_bytes_is_modified_and_says_what_was_expected() {
    let m = manifest();
    let j = judge(&m, None, Some("/bin/busybox"), &hashes(b"trojan"), false, false);
    assert_eq!(j.verdict, Verdict::ModifiedBinary);
    assert_eq!(j.expected, Some(format!("sha256:{}", hex::encode(sha256(b"busybox")))));
    assert_eq!(j.package.map(|p| p.name), Some("busybox".into()));
}

#[test]
fn weak_only_digests_are_compared_and_marked_weak() {
    let m = manifest();
    let algs = digest::algs_for(m.get("/usr/bin/old"));
    assert!(algs.sha256 && algs.sha1 && !algs.md5);
    let ok = judge(&m, None, Some("/usr/bin/old"), &hashes(b"old tool"), false, false);
    assert_eq!((ok.verdict, ok.weak), (Verdict::Ok, true));
    let bad = judge(&m, None, Some("/usr/bin/old"), &hashes(b"new tool"), false, false);
    assert_eq!((bad.verdict, bad.weak), (Verdict::ModifiedBinary, true));
    assert!(bad.expected.is_some_and(|e| e.starts_with("sha1:")));
}

#[test]
fn a_listed_path_without_digest_is_unverifiable_not_ok() {
    let m = manifest();
    let j = judge(&m, None, Some("/usr/bin/nohash"), &hashes(b"anything"), false, false);
    assert_eq!(j.verdict, Verdict::Unverifiable);
}

#[test]
fn shipped_bytes_at_another_path_are_relocated() {
    let m = manifest();
    let j = judge(&m, None, Some("/tmp/bb"), &hashes(b"busybox"), false, false);
    assert_eq!(j.verdict, Verdict::RelocatedBinary);
    assert_eq!(j.listed_at, vec!["/bin/busybox".to_string()]);
    assert_eq!(j.package.map(|p| p.name), Some("busybox".into()));
}

#[test]
fn image_content_tells_sbom_gaps_from_drift() {
    let m = manifest();
    let layers = Layers(vec![("/usr/bin/extra", sha256(b"extra")), ("/usr/bin/swapped", sha256(b"orig"))]);
    let gap = judge(&m, Some(&layers), Some("/usr/bin/extra"), &hashes(b"extra"), false, false);
    assert_eq!(gap.verdict, Verdict::SbomGap);
    let swapped = judge(&m, Some(&layers), Some("/usr/bin/swapped"), &hashes(b"evil"), false, false);
    assert_eq!(swapped.verdict, Verdict::ModifiedBinary);
    let unknown = judge(&m, Some(&layers), Some("/tmp/dropped"), &hashes(b"dropped"), false, false);
    assert_eq!(unknown.verdict, Verdict::UnknownBinary);
}

#[test]
fn fileless_wins_even_over_matching_bytes() {
    let m = manifest();
    let j = judge(&m, None, Some("/bin/busybox"), &hashes(b"busybox"), true, false);
    assert_eq!(j.verdict, Verdict::Fileless);
}

#[test]
fn non_utf8_paths_are_never_ok() {
    let m = manifest();
    let j = judge(&m, None, None, &hashes(b"dropped"), false, false);
    assert_eq!(j.verdict, Verdict::UnknownBinary);
}

#[test]
fn sha512_only_entries_are_compared_like_check_does() {
    let m = manifest();
    let algs = digest::algs_for(m.get("/usr/bin/big"));
    assert!(algs.sha256 && algs.sha512 && !algs.sha1);
    assert!(digest::algs_for_any(&m).sha512);
    let ok = judge(&m, None, Some("/usr/bin/big"), &hashes(b"big tool"), false, false);
    assert_eq!((ok.verdict, ok.weak), (Verdict::Ok, false), "{ok:?}");
    let bad = judge(&m, None, Some("/usr/bin/big"), &hashes(b"other"), false, false);
    assert_eq!(bad.verdict, Verdict::ModifiedBinary);
    assert_eq!(bad.expected, Some(format!("sha512:{}", hex::encode(sha512(b"big tool")))));
    // Without the SHA-512 computed, the agent says it could not compare.
    let short = FileHashes { sha512: None, ..hashes(b"big tool") };
    assert_eq!(judge(&m, None, Some("/usr/bin/big"), &short, false, false).verdict, Verdict::Unverifiable);
}

#[test]
fn relocation_is_found_by_any_strong_digest_never_a_weak_one() {
    let m = manifest();
    let by_sha512 = judge(&m, None, Some("/tmp/big"), &hashes(b"big tool"), false, false);
    assert_eq!(by_sha512.verdict, Verdict::RelocatedBinary);
    assert_eq!(by_sha512.listed_at, vec!["/usr/bin/big".to_string()]);
    // `/usr/bin/old` is listed by SHA-1 only: a copy is not vouched for.
    let by_sha1 = judge(&m, None, Some("/tmp/old"), &hashes(b"old tool"), false, false);
    assert_eq!(by_sha1.verdict, Verdict::UnknownBinary);
}

#[test]
fn library_verdicts_keep_the_file_verdict_behind_library_drift() {
    let ok = as_library(Verdict::Ok, "SHA-256 matches the SBOM");
    assert_eq!((ok.verdict, ok.file_verdict), (Verdict::Ok, None));
    assert_eq!(ok.reason, "SHA-256 matches the SBOM");
    let drift = as_library(Verdict::UnknownBinary, "not in the image's SBOM");
    assert_eq!((drift.verdict, drift.file_verdict), (Verdict::LibraryDrift, Some(Verdict::UnknownBinary)));
    assert_eq!(drift.reason, "mapped as code: not in the image's SBOM");
}

/// One severity table: a mapped file is as severe as the same verdict for
/// an executed one, whatever `library-drift` says of it by itself.
#[test]
fn a_library_has_the_severity_of_its_file_verdict() {
    for file in [
        Verdict::Ok,
        Verdict::SbomGap,
        Verdict::RelocatedBinary,
        Verdict::Unverifiable,
        Verdict::UnknownBinary,
        Verdict::ModifiedBinary,
        Verdict::Fileless,
    ] {
        assert_eq!(as_library(file, "why").severity, file.severity(), "{file:?}");
    }
    assert_eq!(as_library(Verdict::SbomGap, "gap").severity, Severity::Low);
    assert_eq!(as_library(Verdict::UnknownBinary, "dropped").severity, Severity::High);
}

/// dpkg lists a usrmerged package's files under their pre-merge names.
#[test]
fn a_merged_usr_path_is_judged_by_the_entry_of_its_pre_merge_name() {
    use verifier_sbom::{
        HashAlg,
        hash::{Algs, hash_reader},
    };
    let md5 = |b: &[u8]| {
        let h = hash_reader(b, Algs::SHA256.with(HashAlg::Md5), &mut [0; 64]).expect("hash");
        (hex::encode(h.digest(HashAlg::Md5).expect("md5")), h)
    };
    let (ls_md5, ls) = md5(b"ls bytes");
    let (_, other) = md5(b"other bytes");
    let text = format!("{ls_md5}  bin/ls\n{ls_md5}  usr/lib/x86_64-linux-gnu/libc.so.6\n");
    let m = load_bytes(text.as_bytes(), "coreutils.md5sums", &LoadOptions::default()).expect("md5sums");
    let j = judge(&m, None, Some("/usr/bin/ls"), &ls, false, false);
    assert_eq!((j.verdict, j.weak), (Verdict::Ok, true), "{j:?}");
    assert!(j.reason.contains("listed as /bin/ls"), "{}", j.reason);
    let j = judge(&m, None, Some("/usr/bin/ls"), &other, false, false);
    assert_eq!(j.verdict, Verdict::ModifiedBinary, "the alias's digest is the one compared: {j:?}");
    let j = judge(&m, None, Some("/usr/lib/x86_64-linux-gnu/libc.so.6"), &ls, false, false);
    assert!(j.verdict == Verdict::Ok && !j.reason.contains("listed as"), "listed by its own name: {j:?}");
    assert_eq!(judge(&m, None, Some("/usr/local/bin/ls"), &ls, false, false).verdict, Verdict::UnknownBinary);
    // A package-only SBOM joined with the image's database: the reason
    // names whose digest matched.
    let mut joined = m.clone();
    joined.set_digests_from("the image's dpkg database (for a package the SBOM lists)");
    let j = judge(&joined, None, Some("/usr/bin/ls"), &ls, false, false);
    assert!(j.reason.starts_with("MD5 matches the image's dpkg database"), "{}", j.reason);
    let j = judge(&joined, None, Some("/usr/bin/ls"), &other, false, false);
    assert!(
        j.reason.starts_with("the image's dpkg database (for a package the SBOM lists) lists"),
        "{}",
        j.reason
    );
}

#[test]
fn a_written_file_is_never_ok_whatever_its_digest_now() {
    let m = manifest();
    // The shipped bytes are back, but the kernel saw the file opened for
    // writing: what ran need not be what was hashed.
    let j = judge(&m, None, Some("/bin/busybox"), &hashes(b"busybox"), false, true);
    assert_eq!(j.verdict, Verdict::ModifiedBinary);
    assert_eq!(j.verdict.severity(), Severity::High);
    assert!(j.reason.contains("opened for writing in the container"), "{}", j.reason);
    assert_eq!(j.package.as_ref().map(|p| p.name.as_str()), Some("busybox"));
    // Other bytes as well: both reasons.
    let j = judge(&m, None, Some("/bin/busybox"), &hashes(b"trojan"), false, true);
    assert_eq!(j.verdict, Verdict::ModifiedBinary);
    assert!(j.reason.contains("another SHA-256") && j.reason.contains("opened for writing"), "{}", j.reason);
    // Listed without a digest: still modified, not merely unverifiable.
    let j = judge(&m, None, Some("/usr/bin/nohash"), &hashes(b"anything"), false, true);
    assert_eq!(j.verdict, Verdict::ModifiedBinary);
    // Shipped in the layers (not the SBOM) with these bytes, but written.
    let layers = Layers(vec![("/usr/bin/extra", sha256(b"extra"))]);
    let j = judge(&m, Some(&layers), Some("/usr/bin/extra"), &hashes(b"extra"), false, true);
    assert_eq!(j.verdict, Verdict::ModifiedBinary, "{}", j.reason);
    // Not listed and not shipped: written or not, what it was.
    let j = judge(&m, None, Some("/tmp/dropped"), &hashes(b"dropped"), false, true);
    assert_eq!(j.verdict, Verdict::UnknownBinary);
}

#[test]
fn a_written_listed_file_that_could_not_be_hashed_is_still_modified() {
    let m = manifest();
    let none = FileHashes::default();
    assert_eq!(judge(&m, None, Some("/bin/busybox"), &none, false, true).verdict, Verdict::ModifiedBinary);
    assert_eq!(judge(&m, None, Some("/bin/busybox"), &none, false, false).verdict, Verdict::Unverifiable);
    assert_eq!(judge(&m, None, Some("/tmp/x"), &none, false, true).verdict, Verdict::Unverifiable);
}

#[test]
fn unhashed_files_are_judged_by_their_path() {
    let m = manifest();
    let j = judge_unhashed(&m, None, Some("/tmp/x"), "9 bytes, over --max-hash-bytes", false);
    assert_eq!(j.verdict, Verdict::UnknownBinary);
    assert!(j.reason.contains("not hashed: 9 bytes"), "{}", j.reason);
    let listed = judge_unhashed(&m, None, Some("/bin/busybox"), "gone", false);
    assert_eq!(listed.verdict, Verdict::Unverifiable, "it might be the listed file");
    assert_eq!(listed.package.map(|p| p.name), Some("busybox".to_owned()));
    assert_eq!(
        judge_unhashed(&m, None, None, "gone", false).verdict,
        Verdict::UnknownBinary,
        "no SBOM lists it"
    );
    let written = judge_unhashed(&m, None, Some("/bin/busybox"), "gone", true);
    assert_eq!(written.verdict, Verdict::ModifiedBinary, "written since the image was unpacked: {written:?}");
    assert_eq!(
        judge_unhashed(&m, None, Some("/tmp/x"), "gone", true).verdict,
        Verdict::UnknownBinary,
        "not shipped, written or not"
    );
}

#[test]
fn a_file_deleted_after_its_exec_is_never_ok() {
    let ok = Judgement::new(Verdict::Ok, "SHA-256 matches the SBOM");
    assert_eq!(deleted_after_exec(ok).verdict, Verdict::Unverifiable);
    let unknown = deleted_after_exec(Judgement::new(Verdict::UnknownBinary, "not in the image's SBOM"));
    assert_eq!(unknown.verdict, Verdict::UnknownBinary);
    assert!(unknown.reason.contains("deleted after the exec"));
}
