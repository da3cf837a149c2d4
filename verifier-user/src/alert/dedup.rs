//! One alert per (image, path, SHA-256, verdict): the first occurrence goes
//! out at once; repeats are counted and summarized in `alert-update`
//! records (first seen, last seen, count) on an interval and at shutdown.
//! A busy node re-running the same dropped binary gives one alert and a
//! counter, not a flood. Memory is bounded: past `capacity` keys, the
//! least recently seen are flushed (their pending repeats reported) and
//! forgotten.

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

use super::finding::Finding;

/// What identifies "the same" drift.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Image digest, else image name, else container id: drift of an
    /// image is the same drift in all its containers.
    pub scope: String,
    pub path: Vec<u8>,
    pub sha256: Option<String>,
    pub verdict: &'static str,
}

impl Key {
    pub fn of(f: &Finding) -> Self {
        let w = &f.workload;
        let scope = w
            .image_digest
            .clone()
            .or_else(|| w.image_name.clone())
            .or_else(|| w.container_id.clone())
            .unwrap_or_else(|| format!("cgroup:{}", w.cgroup_id));
        Self { scope, path: f.file.path.clone(), sha256: f.file.sha256.clone(), verdict: f.verdict.name() }
    }

    /// Stable id for consumers to join updates to their alert.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        for part in [self.scope.as_bytes(), &self.path, self.sha256.as_deref().unwrap_or("").as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(self.verdict.as_bytes());
        hex::encode(&h.finalize()[..12])
    }
}

/// A key's counts.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: String,
    pub first_ns: i128,
    pub last_ns: i128,
    /// Occurrences in all, the first included.
    pub count: u64,
    /// Repeats since the last update was emitted.
    pub pending: u64,
    /// The last occurrence (what an update shows).
    pub last: Finding,
}

/// Dedup decision for one finding.
pub enum Seen {
    /// First occurrence: emit it (with this id).
    New(String),
    /// A repeat: counted.
    Repeat,
}

pub struct Dedup {
    entries: HashMap<Key, Entry>,
    capacity: usize,
    pub evicted: u64,
}

impl Dedup {
    pub fn new(capacity: usize) -> Self {
        Self { entries: HashMap::new(), capacity: capacity.max(1), evicted: 0 }
    }

    /// Records `f`. When the table is full, the least recently seen tenth
    /// is dropped first; their pending repeats are returned for emitting.
    pub fn see(&mut self, f: &Finding) -> (Seen, Vec<Entry>) {
        if self.repeat(f) {
            return (Seen::Repeat, Vec::new());
        }
        let (id, flushed) = self.insert(f);
        (Seen::New(id), flushed)
    }

    /// Counts `f` if its alert was already emitted; false if it is new.
    pub fn repeat(&mut self, f: &Finding) -> bool {
        let Some(e) = self.entries.get_mut(&Key::of(f)) else { return false };
        e.count += 1;
        e.pending += 1;
        e.last_ns = f.unix_ns;
        e.last = f.clone();
        true
    }

    /// Remembers a new alert about to be emitted; returns its id and the
    /// pending repeats of entries evicted to make room.
    pub fn insert(&mut self, f: &Finding) -> (String, Vec<Entry>) {
        let key = Key::of(f);
        let flushed = if self.entries.len() >= self.capacity { self.evict() } else { Vec::new() };
        let id = key.id();
        self.entries.insert(
            key,
            Entry {
                id: id.clone(),
                first_ns: f.unix_ns,
                last_ns: f.unix_ns,
                count: 1,
                pending: 0,
                last: f.clone(),
            },
        );
        (id, flushed)
    }

    fn evict(&mut self) -> Vec<Entry> {
        let mut by_age: Vec<(i128, Key)> = self.entries.iter().map(|(k, e)| (e.last_ns, k.clone())).collect();
        by_age.sort_by_key(|(t, _)| *t);
        let n = (self.capacity / 10).max(1);
        let mut out = Vec::new();
        for (_, k) in by_age.into_iter().take(n) {
            if let Some(e) = self.entries.remove(&k) {
                self.evicted += 1;
                if e.pending > 0 {
                    out.push(e);
                }
            }
        }
        out
    }

    /// Entries with repeats since their last update; marks them reported.
    pub fn updates(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        for e in self.entries.values_mut().filter(|e| e.pending > 0) {
            out.push(e.clone());
            e.pending = 0;
        }
        out.sort_by_key(|e| e.first_ns);
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::finding::{FileFacts, Finding, Process, Subject, Workload};
    use crate::verify::verdict::Verdict;

    pub(crate) fn finding(path: &str, sha: &str, t: i128) -> Finding {
        Finding {
            unix_ns: t,
            node: "n".into(),
            subject: Subject::Exec,
            verdict: Verdict::UnknownBinary,
            severity: Verdict::UnknownBinary.severity(),
            reason: "r".into(),
            workload: Workload { image_digest: Some("sha256:aa".into()), ..Workload::default() },
            process: Process::default(),
            file: FileFacts { path: path.into(), sha256: Some(sha.into()), ..FileFacts::default() },
            script: None,
            sbom_sources: Vec::new(),
            sbom_format: None,
        }
    }

    #[test]
    fn repeats_are_counted_and_reported_once_per_interval() {
        let mut d = Dedup::new(100);
        let Seen::New(id) = d.see(&finding("/x", "01", 1)).0 else { panic!("first is new") };
        for t in 2..=1000 {
            assert!(matches!(d.see(&finding("/x", "01", t)).0, Seen::Repeat));
        }
        assert!(matches!(d.see(&finding("/x", "02", 5)).0, Seen::New(_)), "other bytes: other alert");
        let u = d.updates();
        assert_eq!(u.len(), 1);
        assert_eq!(
            (u[0].id.as_str(), u[0].count, u[0].pending, u[0].first_ns, u[0].last_ns),
            (id.as_str(), 1000, 999, 1, 1000)
        );
        assert!(d.updates().is_empty(), "nothing new since");
    }

    #[test]
    fn a_full_table_flushes_pending_repeats_before_forgetting() {
        let mut d = Dedup::new(10);
        for i in 0..10 {
            d.see(&finding(&format!("/f{i}"), "aa", i));
        }
        d.see(&finding("/f0", "aa", 20)); // /f0 repeated, now most recent
        d.see(&finding("/f1", "aa", 21)); // /f1 repeated
        let (_, flushed) = d.see(&finding("/new", "aa", 30));
        assert_eq!(d.evicted, 1, "the least recently seen tenth");
        assert!(flushed.is_empty(), "/f2 had no repeats: {flushed:?}");
        assert_eq!(d.len(), 10);
        assert!(d.updates().iter().all(|e| e.pending == 1));
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = Key::of(&finding("/x", "01", 1));
        assert_eq!(a.id(), Key::of(&finding("/x", "01", 99)).id());
        assert_ne!(a.id(), Key::of(&finding("/y", "01", 1)).id());
        assert_eq!(a.id().len(), 24);
    }
}
