use std::time::{Duration, SystemTime};

use super::*;
use crate::staging::Staging;

fn example() -> Policy {
    Policy::parse(include_str!("../../deploy/policy.example.toml")).expect("example checks")
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)
}

fn payments() -> Workload {
    Workload {
        image_name: Some("registry.example/payments/api:1.4".into()),
        image_digest: Some("sha256:aa".into()),
        namespace: Some("payments".into()),
        labels: None,
        container: Some("api".into()),
    }
}

#[test]
fn first_match_wins_and_says_why() {
    let p = example();
    let d = p.decide(&payments(), None, now());
    assert_eq!((d.rule.as_str(), d.mode), ("payments", Mode::Enforce));
    assert!(d.why[0].contains("rule payments matches"), "{:?}", d.why);

    // Matches both ci-runners (label) and legacy-batch (name): the first.
    let w = Workload {
        labels: Some([("app.kubernetes.io/component".to_owned(), "ci-runner".to_owned())].into()),
        container: Some("batch-7".into()),
        ..Workload::default()
    };
    let d = p.decide(&w, None, now());
    assert_eq!((d.rule.as_str(), d.mode), ("ci-runners", Mode::Observe));
    assert!(d.why[0].contains("rule payments: image unknown"), "{:?}", d.why);

    let w = Workload { container: Some("batch-7".into()), ..Workload::default() };
    let d = p.decide(&w, None, now());
    assert_eq!(d.rule, "legacy-batch");
    assert!(d.why.iter().any(|y| y.contains("rule ci-runners: pod labels unknown")), "{:?}", d.why);

    let d = p.decide(&Workload { container: Some("web".into()), ..Workload::default() }, None, now());
    assert_eq!((d.rule.as_str(), d.mode), (DEFAULT_RULE, Mode::Alert));
    assert!(d.why.last().is_some_and(|y| y.contains("no rule matches")));
}

#[test]
fn every_condition_must_hold() {
    let p = example();
    let w = Workload { namespace: Some("default".into()), ..payments() };
    let d = p.decide(&w, None, now());
    assert_eq!(d.rule, DEFAULT_RULE);
    assert!(d.why[0].contains("namespace default not in [payments]"), "{:?}", d.why);
    let w = Workload { image_name: Some("registry.example/other/api".into()), ..payments() };
    assert_eq!(p.decide(&w, None, now()).rule, DEFAULT_RULE);
}

#[test]
fn images_match_without_tag_or_digest() {
    let p = Policy::parse(
        "version = 1\n[[rule]]\nname = \"a\"\nmode = \"observe\"\n[rule.match]\nimages = [\"docker.io/library/alpine\"]\n",
    )
    .expect("valid");
    for r in
        ["docker.io/library/alpine:3.20", "docker.io/library/alpine@sha256:ab", "docker.io/library/alpine"]
    {
        let w = Workload { image_name: Some(r.into()), ..Workload::default() };
        assert_eq!(p.decide(&w, None, now()).rule, "a", "{r}");
    }
    let w = Workload { image_name: Some("docker.io/library/alpine-extra:1".into()), ..Workload::default() };
    assert_eq!(p.decide(&w, None, now()).rule, DEFAULT_RULE);
}

#[test]
fn staging_is_dry_run_until_clean_long_enough() {
    let p = example();
    let w = payments();
    let key = w.stage_key().expect("digest");
    let mut s = Staging::default();
    let d = p.decide(&w, s.get(&key), now());
    assert!(d.dry_run, "no history: dry run");
    s.seen(&key, now());
    let later = now() + Duration::from_secs(23 * 3600);
    assert!(p.decide(&w, s.get(&key), later).dry_run);
    let day = now() + Duration::from_secs(24 * 3600);
    let d = p.decide(&w, s.get(&key), day);
    assert!(!d.dry_run, "{:?}", d.why);
    let f = Finding { verdict: "unknown-binary", path: Some("/tmp/x"), ..Finding::default() };
    assert_eq!(d.judge(&f).action, Action::Block);
    s.drift(&key, day);
    let d = p.decide(&w, s.get(&key), day + Duration::from_secs(60));
    assert!(d.dry_run && d.why.iter().any(|y| y.contains("clean for 1m of 1d")), "{:?}", d.why);
    assert_eq!(d.judge(&f).action, Action::WouldBlock);
    let e = p.enforcement_for(&w, s.get(&key), day).expect("enforce");
    assert!(e.dry_run && e.rule == "payments");
    assert_eq!(p.enforcement_for(&Workload::default(), None, now()), None, "alert mode blocks nothing");
}

#[test]
fn modes_and_block_verdicts_decide_the_action() {
    let p = example();
    let f = |verdict| Finding { verdict, path: Some("/tmp/x"), ..Finding::default() };
    let batch = p.decide(&Workload { container: Some("batch-1".into()), ..Workload::default() }, None, now());
    assert_eq!(batch.judge(&f("modified-binary")).action, Action::Alert);
    let ci = Workload {
        labels: Some([("app.kubernetes.io/component".into(), "ci-runner".into())].into()),
        ..Workload::default()
    };
    assert_eq!(p.decide(&ci, None, now()).judge(&f("unknown-binary")).action, Action::Observe);
    let mut s = Staging::default();
    s.seen("sha256:aa", now());
    let pay = p.decide(&payments(), s.get("sha256:aa"), now() + Duration::from_secs(86_400));
    assert_eq!(pay.judge(&f("unknown-binary")).action, Action::Block);
    assert_eq!(pay.judge(&f("sbom-gap")).action, Action::Alert, "not a blocking verdict");
}

#[test]
fn exceptions_by_path_digest_and_package() {
    let p = example();
    let pay = p.decide(&payments(), None, now());
    let health =
        Finding { verdict: "unknown-binary", path: Some("/usr/local/bin/healthcheck"), ..Finding::default() };
    let j = pay.judge(&health);
    assert_eq!(j.action, Action::Observe);
    assert_eq!(j.exception.map(|e| e.scope.as_str()), Some("global"));
    let tz = Finding {
        verdict: "modified-binary",
        path: Some("/usr/sbin/tzconfig"),
        package: Some("tzdata"),
        purl: Some("pkg:deb/debian/tzdata@2024a?arch=all"),
        ..Finding::default()
    };
    let j = pay.judge(&tz);
    assert_eq!(
        j.exception.map(|e| (e.scope.as_str(), e.reason.contains("sidecar"))),
        Some(("payments", true))
    );
    let curl = Finding { purl: Some("pkg:deb/debian/curl@8"), package: Some("curl"), ..tz };
    assert!(pay.judge(&curl).exception.is_none());

    let batch = p.decide(&Workload { container: Some("batch-1".into()), ..Workload::default() }, None, now());
    let empty = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    let j = batch.judge(&Finding { verdict: "unknown-binary", sha256: Some(empty), ..Finding::default() });
    assert_eq!((j.action, j.exception.map(|e| e.scope.as_str())), (Action::Observe, Some("legacy-batch")));
    // Another rule's exception does not hold here.
    let web = p.decide(&Workload { container: Some("web".into()), ..Workload::default() }, None, now());
    assert_eq!(
        web.judge(&Finding { verdict: "unknown-binary", sha256: Some(empty), ..Finding::default() }).action,
        Action::Alert
    );
}
