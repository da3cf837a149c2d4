use super::*;

#[test]
fn only_a_matching_sha256_measurement_counts() {
    let digest = [9u8; 32];
    let sha256 = Measured { algo: HASH_ALGO_SHA256, digest };
    assert_eq!(check(&sha256, Some(digest)), Ok(()));
    let other = check(&sha256, Some([1; 32])).expect_err("a different digest");
    assert!(other.contains("differs"), "{other}");
    assert!(check(&sha256, None).is_err(), "nothing to compare with");
    let sha1 = check(&Measured { algo: 2, digest }, Some(digest)).expect_err("sha1");
    assert!(sha1.contains("sha1") && sha1.contains("ima_hash=sha256"), "{sha1}");
    let failed = check(&Measured { algo: -95, digest }, Some(digest)).expect_err("errno");
    assert!(failed.contains("bpf_ima_file_hash failed"), "{failed}");
}

#[test]
fn refusals_are_explained() {
    assert!(hint("invalid func unknown#193").contains("5.18"));
    assert!(hint("Verifier output: unknown func bpf_ima_file_hash#193").contains("5.18"));
    assert!(
        hint("Only fentry/fexit/fmod_ret, lsm, iter, uprobe, and struct_ops programs can be sleepable")
            .contains("sleepable")
    );
    assert!(hint("Sleepable programs can only use array, hash, and ringbuf maps").contains("maps"));
    let log =
        "a\n\nb\nc\nd\nverification time 3685 usec\nstack depth 0+0\nprocessed 0 insns (limit 1000000)\n";
    assert_eq!(verifier_words(log), "b | c | d");
}
