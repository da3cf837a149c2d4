//! A token bucket over the alert stream: a burst of distinct drift (a
//! compromised image unpacking a toolkit) must not bury a SIEM. What is
//! held back is counted by verdict and summarized in an `alert-suppressed`
//! record as soon as alerts flow again, and at shutdown: never dropped
//! without a trace.

use std::collections::BTreeMap;

pub(crate) struct RateLimit {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last_ns: i128,
    /// Suppressed since the last summary, by verdict.
    pending: BTreeMap<&'static str, u64>,
    pending_since_ns: Option<i128>,
    pub suppressed_total: u64,
}

/// A summary of alerts held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Suppressed {
    pub by_verdict: BTreeMap<&'static str, u64>,
    pub from_ns: i128,
    pub to_ns: i128,
}

impl RateLimit {
    /// `per_sec == 0`: unlimited.
    pub(crate) fn new(per_sec: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_sec: f64::from(per_sec),
            burst,
            tokens: burst,
            last_ns: 0,
            pending: BTreeMap::new(),
            pending_since_ns: None,
            suppressed_total: 0,
        }
    }

    fn refill(&mut self, now_ns: i128) {
        if self.last_ns != 0 {
            let secs = (now_ns - self.last_ns).max(0) as f64 / 1e9;
            self.tokens = (self.tokens + secs * self.per_sec).min(self.burst);
        }
        self.last_ns = now_ns;
    }

    /// Whether an alert may go out now; if not, it is counted.
    pub(crate) fn admit(&mut self, verdict: &'static str, now_ns: i128) -> bool {
        if self.per_sec == 0.0 {
            return true;
        }
        self.refill(now_ns);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        *self.pending.entry(verdict).or_default() += 1;
        self.pending_since_ns.get_or_insert(now_ns);
        self.suppressed_total += 1;
        false
    }

    /// The summary to emit, once alerts may flow again (or `force`, at
    /// shutdown). Emitting it costs no token.
    pub(crate) fn summary(&mut self, now_ns: i128, force: bool) -> Option<Suppressed> {
        if self.pending.is_empty() {
            return None;
        }
        self.refill(now_ns);
        if !force && self.tokens < 1.0 {
            return None;
        }
        let from_ns = self.pending_since_ns.take().unwrap_or(now_ns);
        Some(Suppressed { by_verdict: std::mem::take(&mut self.pending), from_ns, to_ns: now_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_the_rest_is_summarized() {
        let mut r = RateLimit::new(10, 5);
        let t0 = 100 * S;
        let passed =
            (0..50).filter(|i| r.admit(if i % 2 == 0 { "unknown-binary" } else { "fileless" }, t0)).count();
        assert_eq!(passed, 5, "the burst");
        assert_eq!(r.summary(t0, false), None, "no token yet: the summary waits");
        let s = r.summary(t0 + S, false).expect("a second later");
        assert_eq!(s.by_verdict.values().sum::<u64>(), 45);
        assert_eq!(
            (s.by_verdict["unknown-binary"], s.by_verdict["fileless"]),
            (22, 23),
            "after 3 and 2 passed"
        );
        assert_eq!((s.from_ns, s.to_ns), (t0, t0 + S));
        assert_eq!(r.suppressed_total, 45);
        // A second at 10/s refills the bucket, up to its burst of 5.
        let passed = (0..20).filter(|_| r.admit("unknown-binary", t0 + S)).count();
        assert_eq!(passed, 5);
        assert_eq!(
            r.summary(t0 + S, true).map(|s| s.by_verdict["unknown-binary"]),
            Some(15),
            "forced at shutdown"
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let mut r = RateLimit::new(0, 1);
        assert!((0..10_000).all(|_| r.admit("x", 0)));
        assert_eq!(r.summary(0, true), None);
    }
}
