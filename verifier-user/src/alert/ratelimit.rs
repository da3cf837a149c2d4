//! Token buckets over the alert stream: a burst of distinct drift (a
//! compromised image unpacking a toolkit) must not bury a SIEM, and one
//! noisy container must not silence another.
//!
//! Each scope (image digest, else image name, else container: what
//! `dedup::scope_of` says) has a bucket of its own, `--alert-rate` per
//! second with a burst of `--alert-burst`; the node as a whole has one
//! [`NODE_FACTOR`] times larger, so many noisy containers together are
//! bounded too. An alert goes out only when its scope and the node both
//! have a token. What is held back is counted by verdict, per scope, and
//! summarized in an `alert-suppressed` record that names the scope and up
//! to [`HELD_NAMED`] of the distinct files it held back (path, SHA-256,
//! verdict), as soon as that scope's alerts flow again, and at shutdown:
//! never dropped without a trace. At most [`MAX_SCOPES`] buckets are kept:
//! idle ones (full, nothing pending) are forgotten first; past that, new
//! scopes share one bucket (`"(other scopes)"`).

use std::collections::{BTreeMap, HashMap};

/// The node's bucket is this many times a scope's (rate and burst).
pub(crate) const NODE_FACTOR: u32 = 20;
/// Distinct held-back files named in one summary.
pub(crate) const HELD_NAMED: usize = 20;
/// Scopes with a bucket of their own.
pub(crate) const MAX_SCOPES: usize = 4096;
/// The scope of alerts past [`MAX_SCOPES`].
const OVERFLOW_SCOPE: &str = "(other scopes)";

/// A file whose alert was held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub path: String,
    pub sha256: Option<String>,
    pub verdict: &'static str,
}

/// A summary of alerts held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Suppressed {
    /// Whose alerts (see the module doc); `None` for a limit of the node.
    pub scope: Option<String>,
    pub by_verdict: BTreeMap<&'static str, u64>,
    /// Up to [`HELD_NAMED`] distinct files held back.
    pub held: Vec<Held>,
    pub from_ns: i128,
    pub to_ns: i128,
}

/// One token bucket and what it held back since its last summary.
struct Bucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last_ns: i128,
    pending: BTreeMap<&'static str, u64>,
    held: Vec<Held>,
    pending_since_ns: Option<i128>,
}

impl Bucket {
    fn new(per_sec: f64, burst: f64) -> Self {
        Self {
            per_sec,
            burst,
            tokens: burst,
            last_ns: 0,
            pending: BTreeMap::new(),
            held: Vec::new(),
            pending_since_ns: None,
        }
    }

    fn refill(&mut self, now_ns: i128) {
        if self.last_ns != 0 {
            let secs = (now_ns - self.last_ns).max(0) as f64 / 1e9;
            self.tokens = (self.tokens + secs * self.per_sec).min(self.burst);
        }
        self.last_ns = now_ns;
    }

    fn has_token(&mut self, now_ns: i128) -> bool {
        self.refill(now_ns);
        self.tokens >= 1.0
    }

    fn hold(&mut self, held: Held, now_ns: i128) {
        *self.pending.entry(held.verdict).or_default() += 1;
        self.pending_since_ns.get_or_insert(now_ns);
        if self.held.len() < HELD_NAMED && !self.held.contains(&held) {
            self.held.push(held);
        }
    }

    /// Idle: nothing pending and a full bucket (forgetting it loses nothing).
    fn idle(&mut self, now_ns: i128) -> bool {
        self.refill(now_ns);
        self.pending.is_empty() && self.tokens >= self.burst
    }

    fn take_summary(&mut self, scope: Option<String>, now_ns: i128) -> Suppressed {
        Suppressed {
            scope,
            by_verdict: std::mem::take(&mut self.pending),
            held: std::mem::take(&mut self.held),
            from_ns: self.pending_since_ns.take().unwrap_or(now_ns),
            to_ns: now_ns,
        }
    }
}

pub(crate) struct RateLimit {
    /// `None`: unlimited.
    limits: Option<(f64, f64)>,
    scopes: HashMap<String, Bucket>,
    node: Bucket,
    pub suppressed_total: u64,
}

impl RateLimit {
    /// `per_sec == 0`: unlimited.
    pub(crate) fn new(per_sec: u32, burst: u32) -> Self {
        let (rate, burst) = (f64::from(per_sec), f64::from(burst.max(1)));
        let factor = f64::from(NODE_FACTOR);
        Self {
            limits: (per_sec > 0).then_some((rate, burst)),
            scopes: HashMap::new(),
            node: Bucket::new(rate * factor, burst * factor),
            suppressed_total: 0,
        }
    }

    /// The key of `scope`'s bucket, made when first needed (see
    /// [`MAX_SCOPES`]).
    fn bucket_key(&mut self, scope: &str, now_ns: i128) -> String {
        let (rate, burst) = self.limits.unwrap_or((0.0, 1.0));
        if !self.scopes.contains_key(scope) && self.scopes.len() >= MAX_SCOPES {
            self.scopes.retain(|_, b| !b.idle(now_ns));
        }
        let key = if self.scopes.contains_key(scope) || self.scopes.len() < MAX_SCOPES {
            scope
        } else {
            OVERFLOW_SCOPE
        };
        self.scopes.entry(key.to_owned()).or_insert_with(|| Bucket::new(rate, burst));
        key.to_owned()
    }

    /// Whether an alert of `scope` may go out now; if not, it is counted
    /// and `held` is remembered for the summary.
    pub(crate) fn admit(&mut self, scope: &str, held: Held, now_ns: i128) -> bool {
        if self.limits.is_none() {
            return true;
        }
        let node_ok = self.node.has_token(now_ns);
        let key = self.bucket_key(scope, now_ns);
        let Some(bucket) = self.scopes.get_mut(&key) else { return true };
        if bucket.has_token(now_ns) && node_ok {
            bucket.tokens -= 1.0;
            self.node.tokens -= 1.0;
            return true;
        }
        bucket.hold(held, now_ns);
        self.suppressed_total += 1;
        false
    }

    /// The summaries to emit: of every scope whose alerts may flow again
    /// (or all, with `force`, at shutdown). Emitting one costs no token.
    pub(crate) fn summaries(&mut self, now_ns: i128, force: bool) -> Vec<Suppressed> {
        let node_ok = force || self.node.has_token(now_ns);
        let mut out: Vec<Suppressed> = self
            .scopes
            .iter_mut()
            .filter(|(_, b)| !b.pending.is_empty())
            .filter_map(|(scope, b)| {
                (force || (node_ok && b.has_token(now_ns)))
                    .then(|| b.take_summary(Some(scope.clone()), now_ns))
            })
            .collect();
        out.sort_by(|a, b| a.from_ns.cmp(&b.from_ns).then(a.scope.cmp(&b.scope)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    fn held(path: &str, verdict: &'static str) -> Held {
        Held { path: path.into(), sha256: Some("ab".repeat(32)), verdict }
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_the_rest_is_summarized() {
        let mut r = RateLimit::new(10, 5);
        let t0 = 100 * S;
        let passed = (0..50)
            .filter(|i| {
                let v = if i % 2 == 0 { "unknown-binary" } else { "fileless" };
                r.admit("img", held(&format!("/x{i}"), v), t0)
            })
            .count();
        assert_eq!(passed, 5, "the burst");
        assert!(r.summaries(t0, false).is_empty(), "no token yet: the summary waits");
        let s = r.summaries(t0 + S, false).pop().expect("a second later");
        assert_eq!(s.scope.as_deref(), Some("img"));
        assert_eq!(s.by_verdict.values().sum::<u64>(), 45);
        assert_eq!(
            (s.by_verdict["unknown-binary"], s.by_verdict["fileless"]),
            (22, 23),
            "after 3 and 2 passed"
        );
        assert_eq!(s.held.len(), HELD_NAMED, "the first distinct files held back are named");
        assert_eq!(s.held[0].path, "/x5");
        assert_eq!((s.from_ns, s.to_ns), (t0, t0 + S));
        assert_eq!(r.suppressed_total, 45);
        // A second at 10/s refills the bucket, up to its burst of 5.
        let passed =
            (0..20).filter(|i| r.admit("img", held(&format!("/y{i}"), "unknown-binary"), t0 + S)).count();
        assert_eq!(passed, 5);
        let forced = r.summaries(t0 + S, true);
        assert_eq!(forced.first().map(|s| s.by_verdict["unknown-binary"]), Some(15), "forced at shutdown");
    }

    #[test]
    fn one_noisy_scope_does_not_silence_another() {
        let mut r = RateLimit::new(1, 3);
        let t0 = 10 * S;
        let noisy =
            (0..100).filter(|i| r.admit("noisy", held(&format!("/n{i}"), "unknown-binary"), t0)).count();
        assert_eq!(noisy, 3);
        assert!(
            r.admit("quiet", held("/payload", "unknown-binary"), t0),
            "another image's first alert goes out"
        );
        let s = r.summaries(t0, true);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].scope.as_deref(), s[0].by_verdict["unknown-binary"]), (Some("noisy"), 97));
    }

    #[test]
    fn the_node_bucket_bounds_many_scopes_together() {
        let mut r = RateLimit::new(1, 1);
        let t0 = 10 * S;
        let passed = (0..100).filter(|i| r.admit(&format!("c{i}"), held("/x", "unknown-binary"), t0)).count();
        assert_eq!(passed, NODE_FACTOR as usize, "one each, up to the node's burst");
        assert_eq!(r.suppressed_total, 100 - u64::from(NODE_FACTOR));
        assert_eq!(
            r.summaries(t0, true).len(),
            100 - NODE_FACTOR as usize,
            "each held-back scope summarized"
        );
    }

    #[test]
    fn the_same_file_is_named_once() {
        let mut r = RateLimit::new(1, 1);
        assert!(r.admit("img", held("/x", "unknown-binary"), S));
        for _ in 0..5 {
            assert!(!r.admit("img", held("/x", "unknown-binary"), S));
        }
        let s = r.summaries(S, true).pop().expect("summary");
        assert_eq!((s.held.len(), s.by_verdict["unknown-binary"]), (1, 5));
    }

    #[test]
    fn zero_means_unlimited() {
        let mut r = RateLimit::new(0, 1);
        assert!((0..10_000).all(|i| r.admit(&format!("s{i}"), held("/x", "x"), 0)));
        assert!(r.summaries(0, true).is_empty());
    }
}
