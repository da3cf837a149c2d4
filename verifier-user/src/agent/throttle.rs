//! Throttle episodes: start from the kernel's record, stop from the
//! kernel's map (see `verifier_common::throttle`).
//!
//! The kernel sends one record when a container goes past its exec limit.
//! The agent then watches that container's map entry and reports the
//! episode's end once a whole window passed without a suppressed exec,
//! with the exact number of execs that were not sent. A start record lost
//! to a full ring buffer is found all the same: whenever the kernel's
//! `throttled` counter moves and no episode explains it, the agent scans
//! the map for entries with unreported suppressions.
//!
//! The stop record also says how many new files ran unjudged (past the
//! kernel's per-window bound of new files it still sends); when any did,
//! the container gets an `exec-flood` alert with that count.

use std::collections::HashMap;

use anyhow::Context as _;
use verifier_common::{
    counters::Counter,
    throttle::{Suppressed, ThrottleRecord, WINDOW_NS},
};
use verifier_sensor::maps::{KernelCounters, ThrottleMaps};

use crate::{
    alert::finding::{Finding, Workload},
    attribution::Attribution,
};

use super::{State, now_mono_ns, write_line};

/// A throttle episode in progress.
#[derive(Clone, Debug)]
struct Episode {
    started_ns: u64,
    /// The cgroup's suppressed totals when the episode began.
    base: Suppressed,
}

/// One start or stop, for the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub cgroup_id: u64,
    pub started: bool,
    /// Monotonic (`bpf_ktime_get_ns`) time of the change.
    pub ktime_ns: u64,
    /// For a stop: execs not sent during the episode.
    pub suppressed: u64,
    /// For a stop: of those, first execs of new files past the kernel's
    /// bound: files that ran unjudged.
    pub unjudged_new: u64,
    /// For a stop: how long the episode lasted.
    pub duration_ns: u64,
    /// For a start: the exec that tripped it, when the kernel said.
    pub pid: Option<u32>,
    pub comm: Option<[u8; 16]>,
}

/// The agent's view of the throttle.
pub(crate) struct Throttles {
    maps: ThrottleMaps,
    pub limit: u32,
    active: HashMap<u64, Episode>,
    /// Suppressions already reported, per cgroup.
    reported: HashMap<u64, Suppressed>,
    /// The `throttled` counter total at the last sweep.
    counter_seen: u64,
    /// Episodes ended, and execs suppressed in them (for stats).
    pub episodes: u64,
    pub suppressed_reported: u64,
}

impl Throttles {
    pub(crate) fn new(maps: ThrottleMaps, limit: u32) -> Self {
        Self {
            maps,
            limit,
            active: HashMap::new(),
            reported: HashMap::new(),
            counter_seen: 0,
            episodes: 0,
            suppressed_reported: 0,
        }
    }

    /// The kernel's start record.
    pub(crate) fn started(&mut self, rec: &ThrottleRecord) -> Option<Change> {
        if self.active.contains_key(&rec.cgroup_id) {
            return None;
        }
        // Suppressions before the one that sent this record are another
        // episode's, already reported (or about to be found by a sweep).
        let base = self.reported.get(&rec.cgroup_id).copied().unwrap_or_default();
        self.active.insert(rec.cgroup_id, Episode { started_ns: rec.ktime_ns, base });
        Some(Change {
            cgroup_id: rec.cgroup_id,
            started: true,
            ktime_ns: rec.ktime_ns,
            suppressed: 0,
            unjudged_new: 0,
            duration_ns: 0,
            pid: Some(rec.tgid),
            comm: Some(rec.comm),
        })
    }

    /// Ends quiet episodes and finds unannounced ones. `now_ns` is
    /// `CLOCK_MONOTONIC` (what `bpf_ktime_get_ns` reads); `counter` the
    /// kernel's `throttled` total.
    pub(crate) fn sweep(&mut self, now_ns: u64, counter: u64, all: bool) -> Vec<Change> {
        let mut out = Vec::new();
        if counter > self.counter_seen && counter > self.suppressed_reported + self.in_active() {
            // Suppressions no start record told of: scan the map.
            let found: Vec<u64> = self.maps.suppressed.keys().flatten().collect();
            for cgroup_id in found {
                let reported = self.reported.get(&cgroup_id).copied().unwrap_or_default();
                if self.maps.suppressed(cgroup_id) > reported.execs && !self.active.contains_key(&cgroup_id) {
                    let started_ns = self.maps.last_suppressed_ns(cgroup_id).unwrap_or(now_ns);
                    self.active.insert(cgroup_id, Episode { started_ns, base: reported });
                    out.push(Change {
                        cgroup_id,
                        started: true,
                        ktime_ns: started_ns,
                        suppressed: 0,
                        unjudged_new: 0,
                        duration_ns: 0,
                        pid: None,
                        comm: None,
                    });
                }
            }
        }
        self.counter_seen = counter;
        let ids: Vec<u64> = self.active.keys().copied().collect();
        for cgroup_id in ids {
            let last = self.maps.last_suppressed_ns(cgroup_id);
            let quiet = last.is_none_or(|l| now_ns.saturating_sub(l) >= WINDOW_NS);
            if !(quiet || all) {
                continue;
            }
            let Some(ep) = self.active.remove(&cgroup_id) else { continue };
            let now = self.maps.totals(cgroup_id);
            let total = Suppressed {
                execs: now.execs.max(ep.base.execs),
                unjudged_new: now.unjudged_new.max(ep.base.unjudged_new),
            };
            let suppressed = total.execs - ep.base.execs;
            let unjudged_new = total.unjudged_new - ep.base.unjudged_new;
            self.reported.insert(cgroup_id, total);
            self.episodes += 1;
            self.suppressed_reported += suppressed;
            let last = last.unwrap_or(now_ns);
            out.push(Change {
                cgroup_id,
                started: false,
                ktime_ns: now_ns,
                suppressed,
                unjudged_new,
                duration_ns: last.saturating_sub(ep.started_ns),
                pid: None,
                comm: None,
            });
        }
        out
    }

    /// Suppressions inside episodes not yet ended (not yet in `reported`).
    fn in_active(&self) -> u64 {
        self.active.iter().map(|(id, ep)| self.maps.suppressed(*id).saturating_sub(ep.base.execs)).sum()
    }

    /// Episodes in progress.
    pub(crate) fn active(&self) -> usize {
        self.active.len()
    }
}

/// Reports throttle episodes that ended (all of them when `all`).
pub(super) fn sweep(
    counters: &KernelCounters,
    state: &mut State,
    out: &mut impl std::io::Write,
    all: bool,
) -> anyhow::Result<()> {
    let throttled = counters.total(Counter::Throttled).context("reading kernel counters")?;
    let now = u64::try_from(now_mono_ns()).unwrap_or(0);
    let changes = state.throttles.sweep(now, throttled, all);
    for c in &changes {
        // A stop (or a start found in the map) has no record of its own:
        // the container is attributed now.
        let attribution = state.resolver.attribute(c.cgroup_id, c.pid.unwrap_or(0), 0);
        report(state, out, c, &attribution)?;
        if c.unjudged_new > 0 {
            flood_alert(state, out, c, &attribution)?;
        }
    }
    if !changes.is_empty() {
        out.flush()?;
    }
    Ok(())
}

/// A throttle start or stop on stdout.
pub(super) fn report(
    state: &State,
    out: &mut impl std::io::Write,
    c: &Change,
    attribution: &Attribution,
) -> anyhow::Result<()> {
    let unix_ns = state.clock.unix_ns(c.ktime_ns);
    write_line(out, &ThrottleJson::new(c, unix_ns, state.throttles.limit, &state.node, attribution))
}

/// `exec-flood`: new files ran unjudged in the episode `c` ended.
fn flood_alert(
    state: &mut State,
    out: &mut impl std::io::Write,
    c: &Change,
    attribution: &Attribution,
) -> anyhow::Result<()> {
    let Some(alerts) = state.alerts.as_mut() else { return Ok(()) };
    let info = state.verification.as_ref().and_then(|v| v.info(c.cgroup_id));
    let container = match attribution {
        Attribution::Container(c) => Some(c),
        _ => None,
    };
    let workload = Workload::of(container, c.cgroup_id, info.as_deref());
    let unix_ns = state.clock.unix_ns(c.ktime_ns);
    let f = Finding::exec_flood(workload, info.as_deref(), c.unjudged_new, unix_ns, &state.node);
    alerts.submit(&f, out)?;
    Ok(())
}

/// A `verifier.throttle.v1` record.
#[derive(serde::Serialize)]
pub(crate) struct ThrottleJson<'a> {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub node: &'a str,
    /// `start` or `stop`.
    pub state: &'static str,
    pub cgroup_id: u64,
    pub container: Option<&'a crate::attribution::ContainerRef>,
    /// Execs per second the container may send.
    pub limit_per_sec: u32,
    /// Start: the exec that went past the limit (when the kernel said).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Stop: execs of the episode that were neither reported nor verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Stop: of the suppressed execs, new files that ran unjudged (past
    /// the kernel's bound of new files sent per window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unjudged_new: Option<u64>,
}

impl<'a> ThrottleJson<'a> {
    pub(crate) fn new(
        c: &Change,
        unix_ns: i128,
        limit: u32,
        node: &'a str,
        attribution: &'a Attribution,
    ) -> Self {
        Self {
            schema: "verifier.throttle.v1",
            kind: "throttle",
            time: crate::output::rfc3339(unix_ns),
            node,
            state: if c.started { "start" } else { "stop" },
            cgroup_id: c.cgroup_id,
            container: match attribution {
                Attribution::Container(c) => Some(c),
                _ => None,
            },
            limit_per_sec: limit,
            pid: c.pid,
            comm: c
                .comm
                .map(|b| String::from_utf8_lossy(verifier_common::decode::comm_bytes(&b)).into_owned()),
            suppressed: (!c.started).then_some(c.suppressed),
            duration_ms: (!c.started).then_some(c.duration_ns / 1_000_000),
            unjudged_new: (!c.started).then_some(c.unjudged_new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(started: bool, unjudged_new: u64) -> Change {
        Change {
            cgroup_id: 7,
            started,
            ktime_ns: 0,
            suppressed: 900,
            unjudged_new,
            duration_ns: 2_000_000_000,
            pid: started.then_some(42),
            comm: started.then_some(*b"true\0\0\0\0\0\0\0\0\0\0\0\0"),
        }
    }

    #[test]
    fn a_stop_says_how_many_new_files_ran_unjudged_and_a_start_does_not() {
        let host = Attribution::Host;
        let stop =
            serde_json::to_value(ThrottleJson::new(&change(false, 44), 0, 50, "n", &host)).expect("json");
        assert_eq!((stop["state"].as_str(), &stop["suppressed"]), (Some("stop"), &serde_json::json!(900)));
        assert_eq!(stop["unjudged_new"], 44);
        let quiet =
            serde_json::to_value(ThrottleJson::new(&change(false, 0), 0, 50, "n", &host)).expect("json");
        assert_eq!(quiet["unjudged_new"], 0, "always on a stop, 0 included");
        let start =
            serde_json::to_value(ThrottleJson::new(&change(true, 0), 0, 50, "n", &host)).expect("json");
        assert!(start.get("unjudged_new").is_none() && start.get("suppressed").is_none(), "{start}");
        assert_eq!(start["comm"], "true");
    }
}
