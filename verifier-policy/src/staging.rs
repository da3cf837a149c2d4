//! Audit-then-enforce: a rule `mode = "enforce"` with
//! `stage = { audit_for = "24h" }` only reports `would-block` until its
//! image has run that long without drift that would have been blocked.
//!
//! The agent keeps one [`CleanSince`] per image (digest, else name) in a
//! [`Staging`] table: first seen when a container of it is first judged,
//! last drift when a blocking verdict is found. It lives in memory: after
//! a restart the clock starts again, which errs on the side of dry run.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

/// How long an image has been clean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanSince {
    pub first_seen: SystemTime,
    pub last_drift: Option<SystemTime>,
}

impl CleanSince {
    /// Time since the later of first seen and last drift.
    pub fn clean_for(&self, now: SystemTime) -> Duration {
        let since = self.last_drift.map_or(self.first_seen, |d| d.max(self.first_seen));
        now.duration_since(since).unwrap_or_default()
    }
}

/// Per-image history, keyed by [`crate::Workload::stage_key`].
#[derive(Debug, Default)]
pub struct Staging {
    by_key: HashMap<String, CleanSince>,
}

impl Staging {
    /// The history of `key`, if it was seen.
    pub fn get(&self, key: &str) -> Option<&CleanSince> {
        self.by_key.get(key)
    }

    /// `key` was seen now (the first call starts its clock).
    pub fn seen(&mut self, key: &str, now: SystemTime) {
        if !self.by_key.contains_key(key) {
            self.by_key.insert(key.to_owned(), CleanSince { first_seen: now, last_drift: None });
        }
    }

    /// Drift that would have been blocked was found for `key`: the clean
    /// period starts again.
    pub fn drift(&mut self, key: &str, now: SystemTime) {
        self.seen(key, now);
        if let Some(h) = self.by_key.get_mut(key) {
            h.last_drift = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_restarts_the_clean_period() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut s = Staging::default();
        assert!(s.get("img").is_none());
        s.seen("img", t0);
        s.seen("img", t0 + Duration::from_secs(50));
        let h = s.get("img").copied().expect("seen");
        assert_eq!(
            h.clean_for(t0 + Duration::from_secs(100)),
            Duration::from_secs(100),
            "first sight counts"
        );
        s.drift("img", t0 + Duration::from_secs(100));
        let h = s.get("img").copied().expect("seen");
        assert_eq!(h.clean_for(t0 + Duration::from_secs(130)), Duration::from_secs(30));
        assert_eq!(h.clean_for(t0), Duration::ZERO, "a clock going back is not clean time");
    }
}
