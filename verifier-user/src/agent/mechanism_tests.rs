use super::*;

fn hook(name: &'static str, state: HookState) -> HookOutcome {
    HookOutcome { name, attach: String::new(), required: false, state }
}

#[test]
fn tracepoint_kill_needs_both_hooks_attached() {
    let both = [hook("enforce_exec", HookState::Attached), hook("enforce_mmap", HookState::Attached)];
    assert_eq!(tracepoint_kill(&both), Ok(()));
    let one = [
        hook("enforce_exec", HookState::Attached),
        hook("enforce_mmap", HookState::Skipped("no mmap".into())),
    ];
    let why = tracepoint_kill(&one).expect_err("one hook missing");
    assert!(why.contains("no mmap"), "{why}");
    assert!(tracepoint_kill(&[]).expect_err("none").contains("missing"));
}

#[test]
fn auto_takes_bpf_lsm_where_it_works_else_tracepoint_kill_with_the_reason() {
    let lsm_refused = || Err("the kernel refused LSM program lsm_exec: Operation not permitted".to_owned());
    let c = decide(MechanismChoice::Auto, Ok(()), Ok(()));
    assert_eq!(c.mechanism, Ok("bpf-lsm"));
    let p = c.probe();
    assert_eq!((p.mechanism, p.available.as_slice()), (Some("bpf-lsm"), &["bpf-lsm", "tracepoint-kill"][..]));

    let p = decide(MechanismChoice::Auto, Ok(()), lsm_refused()).probe();
    assert_eq!((p.mechanism, p.requested), (Some("tracepoint-kill"), "auto"));
    assert!(p.unavailable["bpf-lsm"].contains("Operation not permitted"), "{p:?}");

    let p = decide(MechanismChoice::TracepointKill, Ok(()), Err("not tried".into())).probe();
    assert_eq!(p.mechanism, Some("tracepoint-kill"));

    let c = decide(MechanismChoice::BpfLsm, Ok(()), lsm_refused());
    assert!(c.mechanism.expect_err("bpf-lsm asked, refused").contains("refused"));

    let c = decide(MechanismChoice::Auto, Err("hook enforce_exec is not attached".into()), lsm_refused());
    assert_eq!(c.probe().mechanism, None);
    assert!(c.mechanism.expect_err("nothing works").contains("enforce_exec"));
}
