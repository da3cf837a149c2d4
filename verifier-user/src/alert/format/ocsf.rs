//! OCSF 1.1 shapes. A drift finding is an OCSF **Detection Finding**
//! (class 2004, category 2 Findings): the verifier judged an event, it did
//! not merely observe one. The process activity behind it (an exec, a
//! mapping, a write-open) is the finding's evidence, so a write is never
//! reported as a process launch. Repeats are the same finding updated
//! (activity 2), a rate-limit summary is a finding with status Suppressed.
//!
//! Records validate strictly against the 1.1 schema (no attribute outside
//! the class and its declared profiles): OCSF has no null, so an unknown
//! value is left out rather than written as `null`, and
//! `metadata.profiles` names every profile whose attributes are used
//! (`host` for `device` and `actor`, `container` for `process.container`).
//! What OCSF has no attribute for stays in `unmapped`.

use serde_json::{Map, Value, json};

use super::{cmdline, split_image, text};
use crate::{
    alert::{
        dedup::Entry,
        finding::{Finding, Subject},
        ratelimit::Suppressed,
    },
    verify::verdict::Severity,
};

const CLASS_UID: u64 = 2004;
const ACTIVITY_CREATE: u64 = 1;
const ACTIVITY_UPDATE: u64 = 2;
const ACTIVITY_OTHER: u64 = 99;

fn severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

fn ms(ns: i128) -> i64 {
    (ns / 1_000_000) as i64
}

/// Drops `null` members and the objects left empty, recursively.
fn prune(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, prune(v)))
                .filter(|(_, v)| !v.is_null() && !v.as_object().is_some_and(Map::is_empty))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune).collect()),
        v => v,
    }
}

fn metadata(uid: Option<&str>, labels: Value, profiles: &[&str]) -> Value {
    json!({
        "version": "1.1.0",
        "uid": uid,
        "product": {"name": "verifier", "vendor_name": "verifier", "version": env!("CARGO_PKG_VERSION")},
        "labels": labels,
        "profiles": profiles,
    })
}

fn header(activity: u64, activity_name: &str, ns: i128, s: Severity) -> Map<String, Value> {
    let (sev_id, sev) = severity(s);
    let v = json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity,
        "type_name": format!("Detection Finding: {activity_name}"),
        "time": ms(ns),
        "severity_id": sev_id,
        "severity": sev,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The container of the finding, or `None` on the host.
fn container(f: &Finding) -> Option<Value> {
    let w = &f.workload;
    if w.container_id.is_none() && w.container_name.is_none() {
        return None;
    }
    let (repo, tag) = split_image(w.image_name.as_deref());
    // `image.uid` is required: the image is named only when its digest is
    // known (its name alone stays in `unmapped.image`).
    let image = w.image_digest.as_ref().map(|d| json!({"uid": d, "name": repo, "tag": tag}));
    Some(json!({"uid": w.container_id, "name": w.container_name, "runtime": w.runtime, "image": image}))
}

/// The file judged, as an OCSF file object.
fn file(f: &Finding) -> Value {
    let path = text(&f.file.path).0;
    let name = path.rsplit('/').next().unwrap_or("").to_owned();
    let hashes: Vec<Value> = f
        .file
        .sha256
        .iter()
        .map(|h| json!({"algorithm_id": 3, "algorithm": "SHA-256", "value": h}))
        .collect();
    json!({"path": path, "name": name, "type_id": 1, "type": "Regular File", "hashes": hashes})
}

/// The process activity behind the finding: for an exec the launched
/// process and the file it runs; for a mapping or a write-open the
/// process that did it and, beside it, the file it mapped or opened.
fn evidence(f: &Finding, container: Option<&Value>) -> Value {
    let mut process = json!({
        "pid": f.process.pid,
        "name": text(&f.process.comm).0,
        "cmd_line": cmdline(f),
        "parent_process": {"pid": f.process.ppid},
        "user": {"uid": f.process.uid.to_string()},
        "container": container,
    });
    let mut ev = json!({"actor": {"process": {"pid": f.process.ppid}}, "data": {"event": f.subject.name()}});
    if f.subject == Subject::Exec {
        process["file"] = file(f);
    } else {
        ev["file"] = file(f);
    }
    ev["process"] = process;
    ev
}

fn finding(f: &Finding, id: &str, count: Option<&Entry>) -> Value {
    let w = &f.workload;
    let c = container(f);
    let mut profiles = vec!["host"];
    if c.is_some() {
        profiles.push("container");
    }
    let (activity, name) =
        if count.is_some() { (ACTIVITY_UPDATE, "Update") } else { (ACTIVITY_CREATE, "Create") };
    let mut v = header(activity, name, f.unix_ns, f.severity);
    let more = json!({
        "status_id": 1,
        "status": "New",
        "message": f.reason,
        "metadata": metadata(Some(id), json!(["drift", f.verdict.name()]), &profiles),
        "finding_info": {
            "uid": id,
            "title": format!("Drift: {}", f.verdict.name()),
            "desc": f.reason,
            "types": ["drift", f.verdict.name()],
            "analytic": {"name": format!("verifier {}", f.verdict.name()), "uid": f.verdict.name(), "type_id": 1, "type": "Rule"},
            "data_sources": f.sbom_sources,
            "first_seen_time": count.map(|e| ms(e.first_ns)),
            "last_seen_time": count.map(|e| ms(e.last_ns)),
        },
        "device": {"hostname": f.node, "type_id": 1, "type": "Server"},
        "actor": {"process": {"pid": f.process.ppid}},
        "evidences": [evidence(f, c.as_ref())],
        "count": count.map(|e| e.count),
        "start_time": count.map(|e| ms(e.first_ns)),
        "end_time": count.map(|e| ms(e.last_ns)),
        "unmapped": {
            "verdict": f.verdict.name(),
            "event": f.subject.name(),
            "expected": f.file.expected,
            "weak_digest": f.file.weak_digest,
            "package": f.file.package.as_ref().map(|p| json!({"name": p.name, "version": p.version, "purl": p.purl})),
            "in_writable_layer": f.file.in_writable_layer,
            "listed_at": f.file.listed_at,
            "file_verdict": f.file.file_verdict.map(|v| v.name()),
            "sbom_format": f.sbom_format,
            "image": {"name": w.image_name, "digest": w.image_digest},
            "pod": {"name": w.pod_name, "namespace": w.pod_namespace},
            "cgroup_id": w.cgroup_id,
            "script": f.script.as_ref().map(|(p, v, sha)| json!({"path": text(p).0, "verdict": v.name(), "sha256": sha})),
        },
    });
    if let Value::Object(m) = more {
        v.extend(m);
    }
    prune(Value::Object(v))
}

/// A first occurrence: a new finding.
pub(super) fn alert(f: &Finding, id: &str) -> Value {
    finding(f, id, None)
}

/// Repeats: the finding updated, with OCSF's aggregation attributes.
pub(super) fn update(e: &Entry) -> Value {
    finding(&e.last, &e.id, Some(e))
}

/// Findings held back by the rate limit: one finding, status Suppressed.
pub(super) fn suppressed(s: &Suppressed, node: &str, total: u64, message: &str) -> Value {
    let mut v = header(ACTIVITY_OTHER, "Other", s.to_ns, Severity::Medium);
    let more = json!({
        "status_id": 3,
        "status": "Suppressed",
        "message": message,
        "metadata": metadata(None, json!(["drift", "rate-limit"]), &["host"]),
        "finding_info": {
            "uid": format!("rate-limit-{}-{}", s.from_ns, s.to_ns),
            "title": "Drift findings rate limited",
            "desc": message,
            "types": ["drift", "rate-limit"],
        },
        "device": {"hostname": node, "type_id": 1, "type": "Server"},
        "count": total,
        "start_time": ms(s.from_ns),
        "end_time": ms(s.to_ns),
        "unmapped": {"suppressed": s.by_verdict},
    });
    if let Value::Object(m) = more {
        v.extend(m);
    }
    prune(Value::Object(v))
}
