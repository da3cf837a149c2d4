//! `verifier policy check` and `verifier policy explain`, driven through
//! the real binary on the example policy and on broken files.

use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_verifier");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/policy.example.toml");

fn verifier(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run verifier")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_accepts_the_example_and_summarises_its_rules() {
    let o = verifier(&["policy", "check", EXAMPLE]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    for want in [
        "valid (version 1",
        "1. payments [enforce, enforce after 1d clean]",
        "2. ci-runners [observe]",
        "otherwise: default [alert]",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    let o = verifier(&["policy", "check", "--json", EXAMPLE]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["policy"]["rules"][0]["audit_for"], "1d");
    assert_eq!(v["policy"]["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn check_lists_every_problem_with_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[[rule]]\nname = \"a\"\nmode = \"enforce\"\nblock_verdicts = [\"unknown\"]\n[[rule.exception]]\npath = \"/tmp/*\"\n",
    )
    .expect("write");
    let o = verifier(&["policy", "check", bad.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains("bad.toml:5:19: unknown verdict `unknown`"), "{text}");
    assert!(text.contains("bad.toml:7:8: an exception needs a `reason`"), "{text}");
    let o = verifier(&["policy", "check", "--json", bad.to_str().expect("utf8")]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["at"], serde_json::json!({"line": 5, "column": 19}));
    let o = verifier(&["policy", "check", dir.path().join("absent.toml").to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2), "unreadable");
}

#[test]
fn explain_names_the_rule_the_reasons_and_what_would_block() {
    let o = verifier(&[
        "policy",
        "explain",
        EXAMPLE,
        "--image",
        "registry.example/payments/api:1.4",
        "--namespace",
        "payments",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.contains("rule: payments") && text.contains("mode: enforce (dry run"), "{text}");
    assert!(text.contains("would block unknown-binary, modified-binary, fileless, library-drift"), "{text}");

    let o = verifier(&[
        "policy",
        "explain",
        EXAMPLE,
        "--json",
        "--image",
        "registry.example/payments/api:1.4",
        "--namespace",
        "payments",
        "--clean-for",
        "2d",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!((v["rule"].as_str(), v["dry_run"].as_bool()), (Some("payments"), Some(false)));

    let o = verifier(&[
        "policy",
        "explain",
        EXAMPLE,
        "--json",
        "--label",
        "app.kubernetes.io/component=ci-runner",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!((v["rule"].as_str(), v["mode"].as_str()), (Some("ci-runners"), Some("observe")));
    assert_eq!(v["blocks"], serde_json::json!([]));
    assert!(v["why"][0].as_str().is_some_and(|y| y.contains("image unknown")), "{v}");
}
