//! One alert per (image, file, verdict): the first occurrence goes out at
//! once; repeats are counted and summarized in `alert-update` records
//! (first seen, last seen, count) on an interval and at shutdown. A busy
//! node re-running the same dropped binary gives one alert and a counter,
//! not a flood. Memory is bounded: past `capacity` keys, the least recently
//! seen are flushed (their pending repeats reported) and forgotten.
//!
//! "The same file" needs something that names it: the path and SHA-256,
//! the path alone (not hashed), or the SHA-256 alone (no path). A finding
//! with neither (a memfd exec that could not be hashed, a mapping whose
//! path was not found) names no file, so it cannot be proven a repeat of
//! anything: it is always its own alert, never merged (no hiding in a
//! crowd; the rate limit, which counts what it holds back, bounds a flood of
//! them). The path of a `fileless` finding (`/proc/self/fd/3`,
//! `/memfd:x (deleted)`) names a descriptor, not a file, and does not count.

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

use super::finding::Finding;
use crate::verify::verdict::Verdict;

/// Image digest, else image name, else container id: what a finding's
/// drift belongs to (the drift of an image is the same drift in all its
/// containers). Dedup and the rate limit both key on it.
pub(crate) fn scope_of(f: &Finding) -> String {
    let w = &f.workload;
    w.image_digest
        .clone()
        .or_else(|| w.image_name.clone())
        .or_else(|| w.container_id.clone())
        .unwrap_or_else(|| format!("cgroup:{}", w.cgroup_id))
}

/// What a key says about the file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FileKey {
    /// The same bytes at the same path.
    PathAndDigest(Vec<u8>, String),
    /// A path that was not hashed.
    Path(Vec<u8>),
    /// Bytes with no path.
    Digest(String),
}

/// What identifies "the same" drift.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// Image digest, else image name, else container id: drift of an
    /// image is the same drift in all its containers.
    pub scope: String,
    pub file: FileKey,
    pub verdict: &'static str,
    /// A block is its own alert, apart from the drift report of the same
    /// file.
    pub action: Option<&'static str>,
}

impl Key {
    /// The key of `f`, or `None` when `f` names no file (see the module
    /// doc): such a finding is never a repeat.
    pub(crate) fn of(f: &Finding) -> Option<Self> {
        let scope = scope_of(f);
        let names_a_file = !f.file.path.is_empty() && f.verdict != Verdict::Fileless;
        let path = names_a_file.then(|| f.file.path.clone());
        let file = match (path, f.file.sha256.clone()) {
            (Some(p), Some(d)) => FileKey::PathAndDigest(p, d),
            (Some(p), None) => FileKey::Path(p),
            (None, Some(d)) => FileKey::Digest(d),
            (None, None) => return None,
        };
        Some(Self { scope, file, verdict: f.verdict.name(), action: f.response.as_ref().map(|r| r.action) })
    }

    /// Stable id for consumers to join updates to their alert.
    pub(crate) fn id(&self) -> String {
        let (path, sha256): (&[u8], &str) = match &self.file {
            FileKey::PathAndDigest(p, d) => (p, d),
            FileKey::Path(p) => (p, ""),
            FileKey::Digest(d) => (b"", d),
        };
        let mut h = Sha256::new();
        for part in [self.scope.as_bytes(), path, sha256.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(self.verdict.as_bytes());
        // Unchanged for reports (no action), so their ids stay stable.
        if let Some(action) = self.action {
            h.update(b"\0");
            h.update(action.as_bytes());
        }
        hex::encode(&h.finalize()[..12])
    }
}

/// The id of a finding that names no file: unique to this occurrence
/// (time, process, the kernel's file identity when known, and a sequence
/// number, so two such findings in the same nanosecond still differ).
fn unique_id(f: &Finding, seq: u64) -> String {
    let mut h = Sha256::new();
    h.update(b"unique\0");
    h.update(f.unix_ns.to_le_bytes());
    h.update(f.process.pid.to_le_bytes());
    if let Some(id) = f.file.identity {
        h.update(id.dev.to_le_bytes());
        h.update(id.ino.to_le_bytes());
    }
    h.update(seq.to_le_bytes());
    h.update(f.verdict.name().as_bytes());
    hex::encode(&h.finalize()[..12])
}

/// A key's counts.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
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

/// Dedup decision for one finding (the tests' view of repeat + insert).
#[cfg(test)]
pub(crate) enum Seen {
    /// First occurrence: emit it (with this id).
    New(String),
    /// A repeat: counted.
    Repeat,
}

pub(crate) struct Dedup {
    entries: HashMap<Key, Entry>,
    capacity: usize,
    pub evicted: u64,
    /// Findings that named no file, each its own alert.
    unique: u64,
}

impl Dedup {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: HashMap::new(), capacity: capacity.max(1), evicted: 0, unique: 0 }
    }

    #[cfg(test)]
    /// Records `f`. When the table is full, the least recently seen tenth
    /// is dropped first; their pending repeats are returned for emitting.
    pub(crate) fn see(&mut self, f: &Finding) -> (Seen, Vec<Entry>) {
        if self.repeat(f) {
            return (Seen::Repeat, Vec::new());
        }
        let (id, flushed) = self.insert(f);
        (Seen::New(id), flushed)
    }

    /// Counts `f` if its alert was already emitted; false if it is new.
    pub(crate) fn repeat(&mut self, f: &Finding) -> bool {
        let Some(e) = Key::of(f).and_then(|k| self.entries.get_mut(&k)) else { return false };
        e.count += 1;
        e.pending += 1;
        e.last_ns = f.unix_ns;
        e.last = f.clone();
        true
    }

    /// Remembers a new alert about to be emitted; returns its id and the
    /// pending repeats of entries evicted to make room. A finding that
    /// names no file is not remembered (it can never repeat).
    pub(crate) fn insert(&mut self, f: &Finding) -> (String, Vec<Entry>) {
        let Some(key) = Key::of(f) else {
            self.unique += 1;
            return (unique_id(f, self.unique), Vec::new());
        };
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
    pub(crate) fn updates(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        for e in self.entries.values_mut().filter(|e| e.pending > 0) {
            out.push(e.clone());
            e.pending = 0;
        }
        out.sort_by_key(|e| e.first_ns);
        out
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::finding::{FileFacts, FileId, Finding, Process, Subject, Workload};

    /// A finding with no path and no digest: a memfd exec that could not
    /// be hashed, or a mapping whose path was not found.
    fn nameless(subject: Subject, verdict: Verdict, pid: u32, ino: Option<u64>, t: i128) -> Finding {
        let mut f = finding("", "", t);
        (f.subject, f.verdict, f.process.pid) = (subject, verdict, pid);
        f.file.sha256 = None;
        f.file.identity = ino.map(|ino| FileId { dev: 1, ino });
        f
    }

    fn is_new(d: &mut Dedup, f: &Finding) -> Option<String> {
        match d.see(f).0 {
            Seen::New(id) => Some(id),
            Seen::Repeat => None,
        }
    }

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
            unjudged_new: None,
            policy: None,
            response: None,
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
        let id = |f: &Finding| Key::of(f).expect("names a file").id();
        let a = id(&finding("/x", "01", 1));
        assert_eq!(a, id(&finding("/x", "01", 99)));
        assert_ne!(a, id(&finding("/y", "01", 1)));
        assert_eq!(a.len(), 24);
        // The id of (path, sha256) is what it was before keys had kinds.
        let mut h = Sha256::new();
        for part in [&b"sha256:aa"[..], b"/x", b"01"] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(b"unknown-binary");
        assert_eq!(a, hex::encode(&h.finalize()[..12]));
    }

    #[test]
    fn memfd_execs_with_no_path_and_no_digest_are_each_an_alert() {
        let mut d = Dedup::new(100);
        let a = is_new(&mut d, &nameless(Subject::Exec, Verdict::Fileless, 10, Some(7), 1));
        let b = is_new(&mut d, &nameless(Subject::Exec, Verdict::Fileless, 11, Some(8), 2));
        let (a, b) = (a.expect("first is new"), b.expect("another payload is another alert"));
        assert_ne!(a, b);
        // Even the same identity in the same process cannot be proven the
        // same bytes (a memfd can be rewritten): its own alert again.
        assert!(is_new(&mut d, &nameless(Subject::Exec, Verdict::Fileless, 10, Some(7), 1)).is_some());
        assert!(d.is_empty(), "nothing to remember for findings that can never repeat");
    }

    #[test]
    fn libraries_with_an_empty_path_are_each_an_alert() {
        let mut d = Dedup::new(100);
        let lib = |pid| nameless(Subject::Library, Verdict::LibraryDrift, pid, None, 5);
        let a = is_new(&mut d, &lib(20)).expect("first is new");
        let b = is_new(&mut d, &lib(20)).expect("second is new too");
        assert_ne!(a, b, "ids differ even at the same time, pid and (absent) identity");
    }

    #[test]
    fn a_fileless_path_names_a_descriptor_not_a_file() {
        let mut d = Dedup::new(100);
        let fd = |t| {
            let mut f = nameless(Subject::Exec, Verdict::Fileless, 30, None, t);
            f.file.path = b"/proc/self/fd/3".to_vec();
            f
        };
        assert!(is_new(&mut d, &fd(1)).is_some());
        assert!(is_new(&mut d, &fd(2)).is_some(), "not merged on the descriptor path");
        // Hashed, the same payload through a descriptor is a repeat.
        let mut hashed = fd(3);
        hashed.file.sha256 = Some("ab".into());
        assert!(is_new(&mut d, &hashed).is_some());
        hashed.unix_ns = 4;
        assert!(is_new(&mut d, &hashed).is_none());
    }

    #[test]
    fn a_path_alone_or_a_digest_alone_still_folds_repeats() {
        let mut d = Dedup::new(100);
        let mut path_only = finding("/usr/bin/big", "", 1);
        path_only.file.sha256 = None;
        assert!(is_new(&mut d, &path_only).is_some());
        assert!(is_new(&mut d, &path_only).is_none(), "same path, not hashed: a repeat");
        let digest_only = finding("", "cd", 2);
        assert!(is_new(&mut d, &digest_only).is_some());
        assert!(is_new(&mut d, &digest_only).is_none(), "same bytes, no path: a repeat");
        assert!(is_new(&mut d, &finding("", "ef", 3)).is_some(), "other bytes: other alert");
        assert_eq!(d.len(), 3);
    }
}
