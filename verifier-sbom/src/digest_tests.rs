//! The comparison policy on entries built directly in the model (so that
//! all-zero placeholders, which the readers drop, can be tested too), with
//! digests computed by the real hash engine.

use super::*;
use crate::model::DigestBuf;
use crate::{SbomFormat, SbomSource};

/// One manifest entry at `/f` with `digests` (raw values).
fn entry(digests: &[(HashAlg, Vec<u8>)], symlink: bool) -> Manifest {
    let mut m = Manifest::new(SbomSource::new(SbomFormat::Spdx2Json));
    let mut buf = DigestBuf::default();
    for (alg, value) in digests {
        buf.push(*alg, value);
    }
    m.add_normalized("/f", &buf, None, symlink).expect("add");
    m
}

fn hashes(bytes: &[u8], algs: Algs) -> FileHashes {
    hash::hash_reader(bytes, algs, &mut [0u8; 64]).expect("hash")
}

const ALL: Algs = Algs { sha256: true, sha1: true, sha384: true, sha512: true, md5: true };

fn digest(bytes: &[u8], alg: HashAlg) -> Vec<u8> {
    hashes(bytes, ALL).digest(alg).expect("computed").to_vec()
}

fn get(m: &Manifest) -> &FileEntry {
    m.get("/f").expect("entry")
}

#[test]
fn the_strongest_stated_algorithm_is_chosen_and_computed() {
    let m = entry(
        &[(HashAlg::Md5, digest(b"x", HashAlg::Md5)), (HashAlg::Sha512, digest(b"x", HashAlg::Sha512))],
        false,
    );
    assert_eq!(chosen_alg(get(&m)), Some(HashAlg::Sha512));
    assert_eq!(algs_for(Some(get(&m))), Algs { sha512: true, ..Algs::SHA256 });
    assert_eq!(algs_for(None), Algs::SHA256);
    assert_eq!(algs_for_any(&m), Algs { sha512: true, ..Algs::SHA256 });
    assert_eq!(
        compare(get(&m), &hashes(b"x", algs_for(Some(get(&m))))),
        Comparison::Match { alg: HashAlg::Sha512, weak: false }
    );
}

#[test]
fn a_weaker_digest_never_overrules_a_stronger_one() {
    // SHA-256 of other bytes, MD5 of these: the SHA-256 decides.
    let m = entry(
        &[(HashAlg::Sha256, digest(b"y", HashAlg::Sha256)), (HashAlg::Md5, digest(b"x", HashAlg::Md5))],
        false,
    );
    let c = compare(get(&m), &hashes(b"x", ALL));
    let Comparison::Mismatch { alg, weak, expected, actual } = c else { panic!("{c:?}") };
    assert_eq!((alg, weak), (HashAlg::Sha256, false));
    assert_eq!(&*expected.value, digest(b"y", HashAlg::Sha256).as_slice());
    assert_eq!(&*actual.value, digest(b"x", HashAlg::Sha256).as_slice());
}

#[test]
fn sha1_and_md5_only_matches_are_weak() {
    for alg in [HashAlg::Sha1, HashAlg::Md5] {
        let m = entry(&[(alg, digest(b"x", alg))], false);
        let e = get(&m);
        assert_eq!(compare(e, &hashes(b"x", algs_for(Some(e)))), Comparison::Match { alg, weak: true });
        assert!(matches!(
            compare(e, &hashes(b"z", algs_for(Some(e)))),
            Comparison::Mismatch { weak: true, .. }
        ));
    }
}

#[test]
fn all_zero_placeholders_are_no_digest_never_a_mismatch() {
    let m = entry(&[(HashAlg::Sha256, vec![0; 32])], false);
    assert_eq!(chosen_alg(get(&m)), None);
    assert_eq!(compare(get(&m), &hashes(b"x", ALL)), Comparison::NoUsableDigest);
    // A placeholder beside a real weak digest: the weak one is used.
    let m = entry(&[(HashAlg::Sha256, vec![0; 32]), (HashAlg::Sha1, digest(b"x", HashAlg::Sha1))], false);
    assert_eq!(compare(get(&m), &hashes(b"x", ALL)), Comparison::Match { alg: HashAlg::Sha1, weak: true });
    assert_eq!(algs_for_any(&m), Algs { sha1: true, ..Algs::SHA256 });
}

#[test]
fn no_computable_digest_is_said_not_guessed() {
    let m = entry(&[(HashAlg::Sha3_256, digest(b"x", HashAlg::Sha256))], false);
    assert_eq!(compare(get(&m), &hashes(b"x", ALL)), Comparison::NoUsableDigest);
    assert_eq!(algs_for_any(&m), Algs::SHA256);
    let m = entry(&[(HashAlg::Sha384, digest(b"x", HashAlg::Sha384))], false);
    assert_eq!(
        compare(get(&m), &hashes(b"x", Algs::SHA256)),
        Comparison::NotComputed { alg: HashAlg::Sha384 }
    );
}

#[test]
fn conflicting_values_either_matches() {
    let m = entry(
        &[(HashAlg::Sha256, digest(b"a", HashAlg::Sha256)), (HashAlg::Sha256, digest(b"b", HashAlg::Sha256))],
        false,
    );
    assert!(compare(get(&m), &hashes(b"a", Algs::SHA256)).is_match());
    assert!(compare(get(&m), &hashes(b"b", Algs::SHA256)).is_match());
    assert!(!compare(get(&m), &hashes(b"c", Algs::SHA256)).is_match());
}

#[test]
fn link_text_hashes_match_only_for_symlink_entries() {
    let text = b"../lib/libc.so.6";
    let by_text = [(HashAlg::Sha1, digest(text, HashAlg::Sha1))];
    let target = hashes(b"the library", ALL);
    let link = entry(&by_text, true);
    assert_eq!(compare_link(get(&link), &target, text), Comparison::Match { alg: HashAlg::Sha1, weak: true });
    // Not marked as a symlink: the target is all that counts.
    let plain = entry(&by_text, false);
    let c = compare_link(get(&plain), &target, text);
    let Comparison::Mismatch { actual, .. } = c else { panic!("{c:?}") };
    assert_eq!(&*actual.value, target.digest(HashAlg::Sha1).expect("sha1"));
    // Another text: still the target's mismatch.
    assert!(matches!(compare_link(get(&link), &target, b"elsewhere"), Comparison::Mismatch { .. }));
}
