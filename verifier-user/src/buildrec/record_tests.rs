use super::*;
use crate::verify::verdict::Judgement;

fn empty() -> Manifest {
    Manifest::new(verifier_sbom::SbomSource::new(verifier_sbom::SbomFormat::DpkgMd5sums))
}

fn decision(path: &str, verdict: Verdict, sha: u8) -> Arc<Decision> {
    let mut judgement = Judgement::new(verdict, "because");
    if verdict == Verdict::Ok {
        judgement.expected = Some(format!("md5:{}", "ab".repeat(16)));
        judgement.weak = true;
        judgement.package =
            Some(PackageRef { name: "gcc-12".into(), version: Some("12.2".into()), purl: None });
    }
    Arc::new(Decision {
        judgement,
        path: path.as_bytes().to_vec(),
        via: None,
        sha256: Some([sha; 32]),
        script: None,
        trusted: false,
        root: None,
    })
}

#[test]
fn repeats_are_counted_and_distinct_bytes_are_rows_of_their_own() {
    let mut a = Aggregate::new("/nonexistent-build".into(), 0);
    let cc = decision("/usr/bin/gcc-12", Verdict::Ok, 1);
    a.add(Use::Exec, b"/usr/bin/gcc", &cc, 1_000_000_000, &empty());
    a.add(Use::Exec, b"/usr/bin/gcc", &cc, 2_000_000_000, &empty());
    a.add(Use::Exec, b"/usr/bin/gcc", &decision("/usr/bin/gcc-12", Verdict::ModifiedBinary, 2), 3, &empty());
    a.add(Use::Library, b"", &decision("/usr/lib/libc.so.6", Verdict::Ok, 3), 4, &empty());
    let rows = a.rows();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].verdict, "modified-binary", "drift first");
    let ok = rows.iter().find(|r| r.verdict == "ok" && r.kind == Use::Exec).expect("gcc row");
    assert_eq!(ok.count, 2);
    assert_eq!(ok.path, "/usr/bin/gcc-12", "the canonical path, not the name run");
    assert_eq!(ok.digest_alg.as_deref(), Some("md5"));
    assert!(ok.weak);
    assert_eq!(ok.package.as_ref().map(|p| p.name.as_str()), Some("gcc-12"));
    let s = summary(&a, &rows);
    assert_eq!((s.execs, s.libraries, s.files, s.drift), (3, 1, 3, 1));
}

#[test]
fn the_policy_counts_listed_verdicts_and_build_outputs_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let built = dir.path().join("conftest");
    std::fs::write(&built, b"x").expect("write");
    let mut a = Aggregate::new(dir.path().to_path_buf(), 0);
    let unknown = decision(built.to_str().expect("utf-8"), Verdict::UnknownBinary, 4);
    a.add(Use::Exec, b"", &unknown, 1, &empty());
    a.add(Use::Exec, b"", &decision("/tmp/dropped", Verdict::UnknownBinary, 5), 1, &empty());
    let rows = a.rows();
    let flagged: Vec<_> = rows.iter().filter(|r| r.build_output).map(|r| r.path.clone()).collect();
    assert_eq!(flagged, vec![built.display().to_string()]);
    let p = policy(&["unknown-binary".into()], &rows);
    assert!(p.violated);
    assert_eq!(p.violations.get("unknown-binary"), Some(&1), "the build's own output is not counted");
    let p = policy(&["unknown-binary".into(), BUILD_OUTPUT.into()], &rows);
    assert_eq!(p.violations.get(BUILD_OUTPUT), Some(&1));
    assert!(!policy(&["modified-binary".into()], &rows).violated);
    assert_eq!(summary(&a, &rows).drift, 1);
}

#[test]
fn a_file_older_than_the_step_is_not_a_build_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("prebuilt");
    std::fs::write(&old, b"x").expect("write");
    let mut a = Aggregate::new(dir.path().to_path_buf(), i64::MAX);
    a.add(Use::Exec, b"", &decision(old.to_str().expect("utf-8"), Verdict::UnknownBinary, 6), 1, &empty());
    assert!(!a.rows()[0].build_output);
}
