//! Dispatch: every record taken off the ring buffer goes to the one
//! handler of its kind.
//!
//! Each handler attributes its record once, on arrival (cgroup -> container)
//! and hands record and attribution on together: to the response stage
//! ([`super::respond`]) when there is nothing to wait for, or to the drift
//! side when the file must be verified first. The verification engine
//! gives events back later, possibly out of order; [`InFlight`] keeps, per
//! event, the record kind and attribution it arrived with, so what is
//! reported is what was received, never attributed a second time.

use std::{collections::HashMap, io::Write};

use aya::maps::{MapData, RingBuf};
use verifier_common::{decode::DecodeError, enforce::HOOK_EXEC};
use verifier_sensor::{
    events::{BlockEvent, CgroupEvent, ExecEvent, LibraryEvent, ThrottleEvent, WriteEvent},
    records::Record,
};

use crate::attribution::Attribution;

use super::{
    State,
    respond::{Origin, Outcome, respond},
    throttle,
    verification::Verified,
};

/// Takes every record currently in the ring buffer; returns whether there
/// were any.
pub(super) fn drain(
    ring: &mut RingBuf<MapData>,
    state: &mut State,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let mut any = false;
    while let Some(item) = ring.next() {
        any = true;
        let record = Record::from_bytes(&item, &state.clock);
        drop(item);
        match record {
            Ok(Record::Exec(e)) => on_exec(state, out, e)?,
            Ok(Record::Library(l)) => on_library(state, out, &l)?,
            Ok(Record::Write(w)) => on_write(state, out, &w)?,
            Ok(Record::Cgroup(c)) => on_cgroup(state, &c),
            Ok(Record::Throttle(t)) => on_throttle(state, out, &t)?,
            Ok(Record::Block(b)) => on_block(state, out, b)?,
            Err(err) => on_undecodable(state, err),
        }
    }
    Ok(any)
}

fn on_exec(state: &mut State, out: &mut impl Write, event: ExecEvent) -> anyhow::Result<()> {
    state.user.received += 1;
    let attribution = state.resolver.attribute(event.cgroup_id, event.tgid, event.mnt_ns);
    if matches!(attribution, Attribution::Unknown(_)) {
        state.user.unattributed += 1;
    }
    if matches!(attribution, Attribution::Container(_)) && state.scan.first_sight(event.cgroup_id) {
        let found = super::scan::container(state, event.cgroup_id, event.tgid);
        check_all_scanned(state, out, found)?;
    }
    check(state, out, Origin::Exec, event, attribution, false)
}

/// Only watched containers send mappings, so without verification (or
/// without a container to verify against) there is nothing to say.
fn on_library(state: &mut State, out: &mut impl Write, library: &LibraryEvent) -> anyhow::Result<()> {
    state.user.library_maps += 1;
    let attribution = state.resolver.attribute(library.cgroup_id, library.tgid, 0);
    let host = matches!(attribution, Attribution::Host)
        && state.verification.as_ref().is_some_and(|v| v.judges_host());
    if state.verification.is_none() || !(host || matches!(attribution, Attribution::Container(_))) {
        return Ok(());
    }
    if !host && state.scan.first_sight(library.cgroup_id) {
        let found = super::scan::container(state, library.cgroup_id, library.tgid);
        check_all_scanned(state, out, found)?;
    }
    check(state, out, Origin::Library, ExecEvent::of_library(library), attribution, false)
}

fn on_write(state: &mut State, out: &mut impl Write, write: &WriteEvent) -> anyhow::Result<()> {
    state.user.write_opens += 1;
    let Some(d) = state.verification.as_mut() else { return Ok(()) };
    let written = d.write_open(write);
    let attribution = state.resolver.attribute(write.record.cgroup_id, write.record.tgid, 0);
    // A host file rewritten is a package transaction or drift its next
    // exec shows (judged again: the kernel flags it written); there is no
    // image whose file was written.
    if matches!(attribution, Attribution::Host) {
        return Ok(());
    }
    respond(state, out, Outcome::Written { written, attribution })
}

/// A new cgroup: attribute (and start resolving) its container before its
/// first exec.
fn on_cgroup(state: &mut State, cgroup: &CgroupEvent) {
    state.user.cgroups_created += 1;
    if let Ok(path) = std::str::from_utf8(&cgroup.path)
        && let Some(c) = state.resolver.cgroup_created(cgroup.id, path)
    {
        state.user.containers_started += 1;
        // Born under the hooks: every exec in it will be seen.
        state.scan.born(cgroup.id);
        if let Some(d) = state.verification.as_mut() {
            d.container_created(cgroup.id, c);
        }
    }
}

fn on_throttle(state: &mut State, out: &mut impl Write, t: &ThrottleEvent) -> anyhow::Result<()> {
    let Some(change) = state.throttles.started(&t.record) else { return Ok(()) };
    let attribution = state.resolver.attribute(t.record.cgroup_id, t.record.tgid, 0);
    throttle::report(state, out, &change, &attribution)
}

/// A block in an enforced container: held by enforcement until the
/// blocked file's own record is judged (it comes from the reporting
/// programs, separately), then reported with that verdict. An exec the
/// kernel denied (BPF LSM) has no record of its own: the block carries the
/// file's name, and the file is judged here as that exec would have been.
fn on_block(state: &mut State, out: &mut impl Write, block: BlockEvent) -> anyhow::Result<()> {
    state.user.blocks += 1;
    let attribution = state.resolver.attribute(block.record.cgroup_id, block.record.tgid, 0);
    let info = state.verification.as_ref().and_then(|d| d.info(block.record.cgroup_id));
    let denied = (block.record.hook == HOOK_EXEC && !block.path.is_empty())
        .then(|| (ExecEvent::of_denied_exec(&block), attribution.clone()));
    let Some(e) = state.enforcement.as_mut() else { return Ok(()) };
    if let Some(write) = e.blocked(block, attribution, info) {
        return respond(state, out, Outcome::Blocked(write));
    }
    match denied {
        Some((event, attribution)) => check(state, out, Origin::Denied, event, attribution, false),
        None => Ok(()),
    }
}

/// Containers the drift side resolved since the last call: enforcement
/// starts on those it enforces (an `enforcement` record each).
pub(super) fn on_resolutions(state: &mut State, out: &mut impl Write) -> anyhow::Result<()> {
    let (Some(d), Some(e)) = (state.verification.as_mut(), state.enforcement.as_mut()) else { return Ok(()) };
    for r in d.take_resolutions() {
        if let Some(record) = e.resolved(r, state.policy.as_ref()) {
            super::write_line(out, &record)?;
        }
    }
    Ok(())
}

/// A container's allowed set is in the kernel: it is enforced now.
pub(super) fn on_preverified(
    state: &mut State,
    out: &mut impl Write,
    cgroup_id: u64,
    result: crate::verify::preverify::PreVerified,
) -> anyhow::Result<()> {
    // The files judged ok enter the fast path too: their first exec costs
    // what a verified file's does.
    if let (Some(d), Some(slot)) =
        (state.verification.as_mut(), state.enforcement.as_ref().and_then(|e| e.pending_slot(cgroup_id)))
    {
        d.trust_preverified(slot, &result.ok);
    }
    if let Some(record) = state.enforcement.as_mut().and_then(|e| e.preverified(cgroup_id, &result)) {
        super::write_line(out, &record)?;
    }
    Ok(())
}

/// Blocks whose file was not judged in time (all of them, at shutdown)
/// are reported without a verdict.
pub(super) fn enforcement_tick(state: &mut State, out: &mut impl Write, all: bool) -> anyhow::Result<()> {
    let expired = state.enforcement.as_mut().map(|e| e.expired(all)).unwrap_or_default();
    for b in expired {
        respond(state, out, Outcome::Blocked(b))?;
    }
    Ok(())
}

fn on_undecodable(state: &mut State, err: DecodeError) {
    state.user.received += 1;
    state.user.decode_errors += 1;
    tracing::warn!("dropping an undecodable ring buffer record: {err}");
}

/// Verifies what a scan of running processes found, as if each had just
/// been executed (or mapped), marked as scanned.
pub(super) fn check_all_scanned(
    state: &mut State,
    out: &mut impl Write,
    found: Vec<super::scan::Scanned>,
) -> anyhow::Result<()> {
    for s in found {
        check(state, out, s.origin, s.event, s.attribution, true)?;
    }
    Ok(())
}

/// Verifies a container's exec or mapping, or reports it as it is.
fn check(
    state: &mut State,
    out: &mut impl Write,
    origin: Origin,
    mut event: ExecEvent,
    attribution: Attribution,
    scanned: bool,
) -> anyhow::Result<()> {
    if let (Some(d), Attribution::Container(c)) = (state.verification.as_mut(), &attribution) {
        let container = c.clone();
        event.tag = state.in_flight.enter(Arrival { origin, attribution, scanned });
        let verified = d.exec(event, &container);
        return on_verified(state, out, verified);
    }
    if let (Some(d), Attribution::Host) = (state.verification.as_mut(), &attribution)
        && d.judges_host()
    {
        event.tag = state.in_flight.enter(Arrival { origin, attribution, scanned });
        let now = state.clock.unix_ns(0) + super::now_mono_ns();
        let verified = d.host_exec(event, now);
        return on_verified(state, out, verified);
    }
    let verified = Verified { event, info: None, decision: None, skipped: None };
    respond(state, out, Outcome::Checked { origin, verified, attribution, scanned })
}

/// Reports events the drift side has decided, each with the kind and
/// attribution it arrived with.
pub(super) fn on_verified(
    state: &mut State,
    out: &mut impl Write,
    verified: Vec<Verified>,
) -> anyhow::Result<()> {
    for v in verified {
        let Arrival { origin, attribution, scanned } =
            state.in_flight.leave(v.event.tag).unwrap_or_else(|| {
                tracing::warn!("a verified event came back without its arrival (tag {})", v.event.tag);
                let origin = if v.event.library { Origin::Library } else { Origin::Exec };
                let attribution = Attribution::Unknown("its attribution at arrival was not kept");
                Arrival { origin, attribution, scanned: false }
            });
        respond(state, out, Outcome::Checked { origin, verified: v, attribution, scanned })?;
    }
    Ok(())
}

/// How an event arrived: its record kind, its attribution, and whether
/// the scan found it rather than a kernel hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Arrival {
    origin: Origin,
    attribution: Attribution,
    scanned: bool,
}

/// Events handed to the drift side and not yet given back: how each
/// arrived, by the tag it carries.
#[derive(Default)]
pub(super) struct InFlight {
    next: u64,
    by_tag: HashMap<u64, Arrival>,
}

impl InFlight {
    /// Remembers an arrival; returns the tag for its event (never 0).
    fn enter(&mut self, arrival: Arrival) -> u64 {
        self.next += 1;
        self.by_tag.insert(self.next, arrival);
        self.next
    }

    fn leave(&mut self, tag: u64) -> Option<Arrival> {
        self.by_tag.remove(&tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::{ContainerRef, Runtime};

    #[test]
    fn each_event_gets_back_its_own_kind_and_attribution_once() {
        let mut f = InFlight::default();
        let c = Attribution::Container(ContainerRef {
            id: "abc".into(),
            runtime: Runtime::Runc,
            pod_uid: None,
            cgroup: "/abc".into(),
        });
        let host = Arrival { origin: Origin::Exec, attribution: Attribution::Host, scanned: false };
        let scanned = Arrival { origin: Origin::Library, attribution: c, scanned: true };
        let a = f.enter(host.clone());
        let b = f.enter(scanned.clone());
        assert_ne!(a, b);
        assert_ne!(a, 0, "0 is the tag of an event never entered");
        assert_eq!(f.by_tag.len(), 2);
        assert_eq!(f.leave(b), Some(scanned));
        assert_eq!(f.leave(a), Some(host));
        assert_eq!(f.leave(a), None, "given back once");
        assert_eq!(f.by_tag.len(), 0);
    }
}
