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
use verifier_common::decode::DecodeError;
use verifier_sensor::{
    events::{CgroupEvent, ExecEvent, LibraryEvent, ThrottleEvent, WriteEvent},
    records::Record,
};

use crate::attribution::Attribution;

use super::{
    State,
    drift::Verified,
    respond::{Origin, Outcome, respond},
    throttle,
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
    check(state, out, Origin::Exec, event, attribution)
}

/// Only watched containers send mappings, so without verification (or
/// without a container to verify against) there is nothing to say.
fn on_library(state: &mut State, out: &mut impl Write, library: &LibraryEvent) -> anyhow::Result<()> {
    state.user.library_maps += 1;
    let attribution = state.resolver.attribute(library.cgroup_id, library.tgid, 0);
    if state.drift.is_none() || !matches!(attribution, Attribution::Container(_)) {
        return Ok(());
    }
    check(state, out, Origin::Library, ExecEvent::of_library(library), attribution)
}

fn on_write(state: &mut State, out: &mut impl Write, write: &WriteEvent) -> anyhow::Result<()> {
    state.user.write_opens += 1;
    let Some(d) = state.drift.as_mut() else { return Ok(()) };
    let written = d.write_open(write);
    let attribution = state.resolver.attribute(write.record.cgroup_id, write.record.tgid, 0);
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
        if let Some(d) = state.drift.as_mut() {
            d.container_created(cgroup.id, c);
        }
    }
}

fn on_throttle(state: &mut State, out: &mut impl Write, t: &ThrottleEvent) -> anyhow::Result<()> {
    let Some(change) = state.throttles.started(&t.record) else { return Ok(()) };
    let attribution = state.resolver.attribute(t.record.cgroup_id, t.record.tgid, 0);
    throttle::report(state, out, &change, &attribution)
}

fn on_undecodable(state: &mut State, err: DecodeError) {
    state.user.received += 1;
    state.user.decode_errors += 1;
    tracing::warn!("dropping an undecodable ring buffer record: {err}");
}

/// Verifies a container's exec or mapping, or reports it as it is.
fn check(
    state: &mut State,
    out: &mut impl Write,
    origin: Origin,
    mut event: ExecEvent,
    attribution: Attribution,
) -> anyhow::Result<()> {
    if let (Some(d), Attribution::Container(c)) = (state.drift.as_mut(), &attribution) {
        let container = c.clone();
        event.tag = state.in_flight.enter(origin, attribution);
        let verified = d.exec(event, &container);
        return on_verified(state, out, verified);
    }
    let verified = Verified { event, info: None, decision: None, skipped: None };
    respond(state, out, Outcome::Checked { origin, verified, attribution })
}

/// Reports events the drift side has decided, each with the kind and
/// attribution it arrived with.
pub(super) fn on_verified(
    state: &mut State,
    out: &mut impl Write,
    verified: Vec<Verified>,
) -> anyhow::Result<()> {
    for v in verified {
        let (origin, attribution) = state.in_flight.leave(v.event.tag).unwrap_or_else(|| {
            tracing::warn!("a verified event came back without its arrival (tag {})", v.event.tag);
            let origin = if v.event.library { Origin::Library } else { Origin::Exec };
            (origin, Attribution::Unknown("its attribution at arrival was not kept"))
        });
        respond(state, out, Outcome::Checked { origin, verified: v, attribution })?;
    }
    Ok(())
}

/// Events handed to the drift side and not yet given back: their record
/// kind and attribution at arrival, by the tag they carry.
#[derive(Default)]
pub(super) struct InFlight {
    next: u64,
    by_tag: HashMap<u64, (Origin, Attribution)>,
}

impl InFlight {
    /// Remembers an arrival; returns the tag for its event (never 0).
    fn enter(&mut self, origin: Origin, attribution: Attribution) -> u64 {
        self.next += 1;
        self.by_tag.insert(self.next, (origin, attribution));
        self.next
    }

    fn leave(&mut self, tag: u64) -> Option<(Origin, Attribution)> {
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
        let a = f.enter(Origin::Exec, Attribution::Host);
        let b = f.enter(Origin::Library, c.clone());
        assert_ne!(a, b);
        assert_ne!(a, 0, "0 is the tag of an event never entered");
        assert_eq!(f.by_tag.len(), 2);
        assert_eq!(f.leave(b), Some((Origin::Library, c)));
        assert_eq!(f.leave(a), Some((Origin::Exec, Attribution::Host)));
        assert_eq!(f.leave(a), None, "given back once");
        assert_eq!(f.by_tag.len(), 0);
    }
}
