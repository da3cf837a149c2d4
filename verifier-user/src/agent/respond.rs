//! The response stage: what the agent does once it knows what a record
//! means.
//!
//! Every outcome (an exec or a library mapping with its verification, a
//! write to a verified file) comes here with the attribution it was given
//! when its record arrived, and is reported: one stdout record and, for
//! drift, one alert finding. Reporting is the only response today; this is
//! the one place where enforcement plugs in: a block the kernel made
//! (`enforce`) is reported here too, as a `block` record and an alert
//! with its action, once the blocked file is judged.

use std::io::Write;

use crate::{
    alert::finding::Subject,
    attribution::Attribution,
    output::{self, ExecJson, verification::VerificationJson},
    verify::verdict::Verdict,
};

use super::{
    State,
    enforce::Block,
    findings, now_mono_ns,
    verification::{self, Verified, Written},
    write_line,
};

/// Which record an exec-shaped outcome came from: the verification engine
/// takes both as the same kind of job, but they are reported as what they
/// were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Exec,
    Library,
    /// An exec the kernel denied (BPF LSM) before it happened, judged only
    /// for its block: no exec record is reported, since nothing ran.
    Denied,
}

/// Something the agent decided, ready to be acted on.
pub(crate) enum Outcome {
    /// An exec or a library mapping with what verification said (nothing,
    /// when verification is off or the process is not a container's).
    /// `scanned`: found running by the agent's scan, not by a hook.
    Checked { origin: Origin, verified: Verified, attribution: Attribution, scanned: bool },
    /// A file the image shipped was opened for writing in its container.
    Written { written: Written, attribution: Attribution },
    /// An exec or mapping blocked in an enforced container.
    Blocked(Block),
}

/// Acts on an outcome: reports it.
pub(crate) fn respond(state: &mut State, out: &mut impl Write, outcome: Outcome) -> anyhow::Result<()> {
    match outcome {
        Outcome::Checked { origin, verified, attribution, scanned } => {
            let excepted = match origin {
                Origin::Denied => denied_excepted(state, &verified, &attribution),
                _ => report_checked(state, out, origin, &verified, &attribution, scanned)?,
            };
            // A block waiting for this file's verdict is reported with it.
            let v = &verified;
            match state
                .enforcement
                .as_mut()
                .and_then(|e| e.judged(v.event.tgid, v.event.exe, v.decision.as_ref(), excepted))
            {
                Some(block) => report_block(state, out, &block),
                None => Ok(()),
            }
        }
        Outcome::Written { written, attribution } => report_written(state, out, &written, &attribution),
        Outcome::Blocked(block) => report_block(state, out, &block),
    }
}

/// A block: one `block` record on stdout, one alert with its action,
/// counted for `verifier_blocks_total`.
fn report_block(state: &mut State, out: &mut impl Write, b: &Block) -> anyhow::Result<()> {
    let r = &b.event.record;
    let d = b.decision.as_deref();
    // The file as found and proven; else the name the kernel carried (a
    // denied exec whose file was not judged in time).
    let path = d
        .map(|d| &d.path)
        .filter(|p| !p.is_empty())
        .or(Some(&b.event.path).filter(|p| !p.is_empty()))
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let container = match &b.attribution {
        Attribution::Container(c) => Some(c),
        _ => None,
    };
    let record = output::enforce::BlockJson {
        schema: output::enforce::SCHEMA_BLOCK,
        kind: "block",
        time: output::rfc3339(b.event.unix_ns),
        node: &state.node,
        action: b.action(),
        mechanism: b.mechanism(),
        rule: &b.rule,
        event: b.event_name(),
        reasons: b.reasons(),
        verdict: b.verdict().map(Verdict::name),
        reason: d.map(|d| d.judgement.reason.clone()),
        path: path.clone(),
        sha256: d.and_then(|d| d.sha256).map(hex::encode),
        dev: format!("{}:{}", r.identity.dev >> 20, r.identity.dev & 0xf_ffff),
        ino: r.identity.ino,
        pid: r.pid,
        tgid: r.tgid,
        comm: String::from_utf8_lossy(verifier_common::decode::comm_bytes(&r.comm)).into_owned(),
        signal_rc: r.signal_rc,
        allowed_now: b.allowed_now,
        cgroup_id: r.cgroup_id,
        container,
        image: b.info.as_ref().and_then(|i| i.image_name.clone().or(i.image_digest.clone())),
    };
    write_line(out, &record)?;
    state.user.printed += 1;
    if let Some(e) = state.enforcement.as_mut() {
        e.count(b);
    }
    if let Some(a) = state.alerts.as_mut() {
        a.submit(&findings::of_block(b, &state.node), out)?;
    }
    Ok(())
}

/// An exec (or mapping) record on stdout, with its verification and how
/// long that took; drift becomes an alert. Returns whether a policy
/// exception covers the finding.
fn report_checked(
    state: &mut State,
    out: &mut impl Write,
    origin: Origin,
    v: &Verified,
    attribution: &Attribution,
    scanned: bool,
) -> anyhow::Result<bool> {
    let mut record = ExecJson::new(&v.event, &state.node, attribution);
    record.origin = scanned.then_some("scan");
    record.verification = match (&v.decision, &v.skipped) {
        (Some(d), _) => Some(VerificationJson::from_decision(d)),
        (None, Some(why)) => Some(VerificationJson::skipped(why)),
        (None, None) => None,
    };
    if origin == Origin::Library {
        record.schema = output::SCHEMA_LIBRARY;
        record.kind = "library";
        if let Some(j) = record.verification.as_mut() {
            j.as_library();
        }
    }
    if let Some(j) = record.verification.as_mut() {
        let now = state.clock.unix_ns(0) + now_mono_ns();
        j.latency_us = u64::try_from((now - v.event.unix_ns) / 1000).ok();
    }
    let subject = match origin {
        Origin::Exec | Origin::Denied => Subject::Exec,
        Origin::Library => Subject::Library,
    };
    let mut finding = match state.alerts {
        Some(_) => findings::of_verified(subject, v, attribution, &state.node),
        None => None,
    };
    // The policy decides what a finding leads to; the record says so.
    let mut alert = true;
    if let Some(p) = state.policy.as_mut() {
        if v.decision.is_some() {
            p.seen(v.info.as_deref());
        }
        if let Some(f) = finding.as_mut() {
            let judged = p.judge(f, v.info.as_deref());
            alert = judged.alert;
            f.policy = Some(judged.policy.clone());
            (record.policy, record.exception) = (Some(judged.policy), judged.exception);
        }
    }
    let excepted = record.exception.is_some();
    write_line(out, &record)?;
    state.user.printed += 1;
    if let Some(a) = state.alerts.as_mut()
        && let Some(f) = finding.filter(|_| alert)
    {
        a.submit(&f, out)?;
    }
    Ok(excepted)
}

/// Whether a policy exception covers the finding a denied exec's file
/// would have raised (it is then allowed from now on, as a killed one
/// is). Nothing is reported here: the block record says it all.
fn denied_excepted(state: &mut State, v: &Verified, attribution: &Attribution) -> bool {
    let (Some(p), Some(f)) =
        (state.policy.as_mut(), findings::of_verified(Subject::Exec, v, attribution, &state.node))
    else {
        return false;
    };
    p.judge(&f, v.info.as_deref()).exception.is_some()
}

/// `image-file-written`: a record on stdout and an alert.
fn report_written(
    state: &mut State,
    out: &mut impl Write,
    written: &Written,
    attribution: &Attribution,
) -> anyhow::Result<()> {
    write_line(out, &verification::WrittenJson::new(written, &state.node, attribution))?;
    let mut f = findings::of_written(written, attribution, &state.node);
    if let Some(p) = state.policy.as_mut() {
        let judged = p.judge(&f, written.info.as_deref());
        if !judged.alert {
            return Ok(());
        }
        f.policy = Some(judged.policy);
    }
    if let Some(a) = state.alerts.as_mut() {
        a.submit(&f, out)?;
    }
    Ok(())
}
