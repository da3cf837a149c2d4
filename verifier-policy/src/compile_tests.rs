use super::*;

fn problems(text: &str) -> Vec<String> {
    compile(text).err().unwrap_or_default().iter().map(ToString::to_string).collect()
}

#[test]
fn the_example_policy_is_valid() {
    let p = compile(include_str!("../../deploy/policy.example.toml")).expect("example checks");
    assert_eq!(
        p.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["payments", "ci-runners", "legacy-batch"]
    );
    assert_eq!(p.rules[0].audit_for, Some(std::time::Duration::from_secs(86_400)));
    assert_eq!(p.rules[2].block_verdicts, ["unknown-binary", "fileless"]);
    assert_eq!(p.rules[1].block_verdicts, DEFAULT_BLOCK_VERDICTS, "inherited");
    assert_eq!(p.rules.iter().map(|r| r.deny_writes).collect::<Vec<_>>(), [true, false, false]);
    assert_eq!(p.exceptions.len(), 1);
}

#[test]
fn deny_writes_is_for_enforce_rules_only() {
    let rule =
        |mode: &str| format!("version = 1\n[[rule]]\nname = \"x\"\nmode = \"{mode}\"\ndeny_writes = true\n");
    assert!(compile(&rule("enforce")).expect("valid").rules[0].deny_writes);
    let e = problems(&rule("alert"));
    assert!(e.len() == 1 && e[0].starts_with("5:") && e[0].contains("deny_writes"), "{e:?}");
    let e = problems("version = 1\n[[rule]]\nname = \"x\"\nmode = \"enforce\"\ndeny_writes = \"yes\"\n");
    assert!(e.len() == 1 && e[0].contains("bool"), "{e:?}");
}

#[test]
fn a_minimal_policy_alerts_as_before() {
    let p = compile("version = 1\n").expect("valid");
    assert_eq!(p.default_mode, Mode::Alert);
    assert!(p.rules.is_empty());
}

#[test]
fn syntax_and_unknown_keys_point_at_the_line() {
    let e = problems("version = 1\n[defaults]\nmode = \"alert\"\nblock = []\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("4:1: ") && e[0].contains("unknown field `block`"), "{e:?}");
    let e =
        problems("version = 1\n[[rule]]\nname = \"x\"\nmode = \"alert\"\n[rule.match]\nimage = [\"a\"]\n");
    assert!(e[0].starts_with("6:1: ") && e[0].contains("image"), "{e:?}");
    let e = problems("version = 1\nrule = [\n");
    assert!(e[0].starts_with("2:") || e[0].starts_with("3:"), "{e:?}");
}

#[test]
fn values_are_checked_and_every_problem_is_listed() {
    let text = r#"version = 2
[defaults]
mode = "block"
block_verdicts = ["unknown-binary", "drifted", "ok"]
[[rule]]
name = "a"
mode = "alert"
stage = { audit_for = "24h" }
[rule.match]
images = [""]
digests = ["md5:abc"]
[[rule]]
name = "a"
mode = "enforce"
stage = { audit_for = "soon" }
[[rule.exception]]
path = "tmp/x"
[[rule.exception]]
sha256 = "abc"
reason = "  "
[[exception]]
reason = "nothing named"
[[exception]]
path = "/a"
package = "curl"
reason = "two things"
"#;
    let e = problems(text);
    let expect = [
        ("1:11", "unsupported version 2"),
        ("3:8", "unknown mode `block`"),
        ("4:37", "unknown verdict `drifted`"),
        ("4:48", "`ok` cannot be blocked"),
        ("8:23", "only applies to mode = \"enforce\""),
        ("10:11", "image pattern"),
        ("11:12", "is not `sha256:<hex>`"),
        ("13:8", "used twice"),
        ("15:23", "not a duration"),
        ("17:8", "needs a `reason`"),
        ("17:8", "not absolute"),
        ("19:10", "64 hex digits"),
        ("20:10", "reason is empty"),
        ("22:10", "names nothing"),
        ("24:8", "names one thing"),
    ];
    for (at, what) in expect {
        assert!(e.iter().any(|p| p.starts_with(at) && p.contains(what)), "no `{what}` at {at} in {e:#?}");
    }
    assert_eq!(e.len(), expect.len(), "{e:#?}");
}

#[test]
fn a_rule_after_a_catch_all_is_refused() {
    let e = problems(
        "version = 1\n[[rule]]\nname = \"all\"\nmode = \"observe\"\n[[rule]]\nname = \"late\"\nmode = \"alert\"\n[rule.match]\nnamespaces = [\"x\"]\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("6:8") && e[0].contains("rule `all` before it matches every container"),
        "{e:?}"
    );
}
