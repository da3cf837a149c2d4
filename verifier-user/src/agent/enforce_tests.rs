use verifier_common::enforce::{BlockRecord, HOOK_EXEC, REASON_FILELESS, REASON_NOT_ALLOWED, REASON_WRITTEN};

use super::*;

fn args(enforce: &[&str], dry_run: &[&str]) -> EnforceArgs {
    EnforceArgs {
        enforce: enforce.iter().map(|s| (*s).to_owned()).collect(),
        dry_run: dry_run.iter().map(|s| (*s).to_owned()).collect(),
        writes: Vec::new(),
        block_verdicts: Vec::new(),
        mechanism: MechanismChoice::Auto,
        measure: crate::agent::measure::MeasureArgs::default(),
    }
}

fn keys<'a>(image: &'a str, id: &'a str) -> ImageKeys<'a> {
    ImageKeys { image_name: Some(image), image_digest: None, container_id: id, container_name: None }
}

#[test]
fn enforce_wins_over_dry_run_and_unmatched_containers_are_left_alone() {
    let a = args(&["registry/app:*"], &["registry/*", "ctr-7"]);
    assert_eq!(
        enforcement_for(&a, &keys("registry/app:1", "c1")),
        Some((Mode::Enforce, "--enforce registry/app:*".into()))
    );
    assert_eq!(
        enforcement_for(&a, &keys("registry/db:2", "c2")),
        Some((Mode::DryRun, "--enforce-dry-run registry/*".into()))
    );
    assert_eq!(enforcement_for(&a, &keys("other/x", "ctr-7")).map(|m| m.0), Some(Mode::DryRun), "by id");
    assert_eq!(enforcement_for(&a, &keys("other/x", "c3")), None);
}

#[test]
fn verdict_names_parse_and_typos_list_the_choices() {
    assert_eq!(parse_verdict("library-drift"), Ok(Verdict::LibraryDrift));
    let err = parse_verdict("unknown").expect_err("not a verdict");
    assert!(err.contains("unknown-binary") && err.contains("fileless"), "{err}");
    assert!(parse_verdict("ok").is_err(), "ok can never block");
}

fn block(reasons: u16, hook: u16, mode: u32) -> Block {
    Block {
        event: BlockEvent {
            unix_ns: 0,
            record: BlockRecord { reasons, hook, mode, mechanism: 1, ..Default::default() },
            path: Vec::new(),
            path_truncated: false,
        },
        attribution: Attribution::Host,
        rule: "--enforce x".into(),
        decision: None,
        info: None,
        allowed_now: false,
    }
}

#[test]
fn a_block_says_what_the_kernel_knew_until_the_file_is_judged() {
    assert_eq!(block(REASON_NOT_ALLOWED, HOOK_EXEC, MODE_ENFORCE).verdict(), None, "not judged yet");
    assert_eq!(
        block(REASON_NOT_ALLOWED | REASON_FILELESS, HOOK_EXEC, MODE_ENFORCE).verdict(),
        Some(Verdict::Fileless)
    );
    assert_eq!(block(REASON_WRITTEN, HOOK_EXEC, MODE_ENFORCE).verdict(), Some(Verdict::ModifiedBinary));
    assert_eq!(block(REASON_WRITTEN, HOOK_MMAP, MODE_ENFORCE).verdict(), Some(Verdict::LibraryDrift));
    let b = block(REASON_NOT_ALLOWED | REASON_WRITTEN, HOOK_EXEC, MODE_DRY_RUN);
    assert_eq!((b.action(), b.mechanism()), ("would-block", "tracepoint-kill"));
    assert_eq!(b.reasons(), ["not-verified", "written"]);
    assert_eq!(block(REASON_NOT_ALLOWED, HOOK_EXEC, MODE_ENFORCE).action(), "blocked");
}

#[test]
fn a_denied_write_is_its_own_event_with_the_written_verdict() {
    use verifier_common::enforce::{HOOK_MMAP, HOOK_WRITE, REASON_IMAGE_FILE};
    let w = block(REASON_IMAGE_FILE, HOOK_WRITE, MODE_ENFORCE);
    assert_eq!((w.event_name(), w.verdict()), ("write", Some(Verdict::ImageFileWritten)));
    assert_eq!(w.reasons(), ["image-file"]);
    assert_eq!(block(REASON_NOT_ALLOWED, HOOK_MMAP, MODE_ENFORCE).event_name(), "library");
    assert_eq!(block(REASON_NOT_ALLOWED, HOOK_EXEC, MODE_ENFORCE).event_name(), "exec");
}
