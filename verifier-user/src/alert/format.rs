//! Alert records in three shapes: `native` (`verifier.alert.v1`, every
//! field, see docs/alerts.md), `falco` (the JSON Falco writes with
//! `json_output: true`, so falcosidekick and Falco tooling route it), and
//! `ocsf` (OCSF 1.1 Process Activity, class 1007, for SIEMs and data
//! lakes that normalize on OCSF).

use serde_json::{Value, json};

use super::{
    dedup::Entry,
    finding::{Finding, Subject},
    ratelimit::Suppressed,
};
use crate::verify::verdict::Severity;

/// Output format of the alert stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Native,
    Falco,
    Ocsf,
}

/// The schema name and major version of native alert records.
pub const SCHEMA_ALERT: &str = "verifier.alert.v1";

/// Exact bytes as text: lossy UTF-8, plus the hex of the bytes when lossy.
fn text(b: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (String::from_utf8_lossy(b).into_owned(), Some(hex::encode(b))),
    }
}

/// Inserts `key` (and `key_hex` when the bytes are not UTF-8).
fn put_bytes(obj: &mut serde_json::Map<String, Value>, key: &str, b: &[u8]) {
    let (s, h) = text(b);
    obj.insert(key.to_owned(), Value::String(s));
    if let Some(h) = h {
        obj.insert(format!("{key}_hex"), Value::String(h));
    }
}

fn argv_value(f: &Finding) -> Value {
    match &f.process.argv {
        None => Value::Null,
        Some(args) => Value::Array(args.iter().map(|a| Value::String(text(a).0)).collect()),
    }
}

/// `argv` joined for display, or the executed path when unknown.
fn cmdline(f: &Finding) -> String {
    match &f.process.argv {
        Some(a) if !a.is_empty() => a.iter().map(|x| text(x).0).collect::<Vec<_>>().join(" "),
        _ => text(&f.process.exe_path).0,
    }
}

fn native_alert(f: &Finding, id: &str) -> Value {
    let mut process = serde_json::Map::new();
    process.insert("pid".into(), json!(f.process.pid));
    process.insert("ppid".into(), json!(f.process.ppid));
    process.insert("uid".into(), json!(f.process.uid));
    process.insert("gid".into(), json!(f.process.gid));
    put_bytes(&mut process, "comm", &f.process.comm);
    process.insert("argv".into(), argv_value(f));
    if let Some(args) = &f.process.argv
        && args.iter().any(|a| std::str::from_utf8(a).is_err())
    {
        process.insert("argv_hex".into(), Value::Array(args.iter().map(|a| json!(hex::encode(a))).collect()));
    }
    put_bytes(&mut process, "exe_path", &f.process.exe_path);
    let mut file = serde_json::Map::new();
    put_bytes(&mut file, "path", &f.file.path);
    file.insert("sha256".into(), json!(f.file.sha256));
    file.insert("expected".into(), json!(f.file.expected));
    file.insert("weak_digest".into(), json!(f.file.weak_digest));
    file.insert(
        "package".into(),
        f.file
            .package
            .as_ref()
            .map_or(Value::Null, |p| json!({"name": p.name, "version": p.version, "purl": p.purl})),
    );
    file.insert("in_writable_layer".into(), json!(f.file.in_writable_layer));
    file.insert("listed_at".into(), json!(f.file.listed_at));
    if let Some(v) = f.file.file_verdict {
        file.insert("file_verdict".into(), json!(v.name()));
    }
    let w = &f.workload;
    json!({
        "schema": SCHEMA_ALERT,
        "type": "alert",
        "alert_id": id,
        "time": f.time(),
        "node": f.node,
        "event": f.subject.name(),
        "verdict": f.verdict.name(),
        "severity": f.severity.name(),
        "reason": f.reason,
        "container": {"id": w.container_id, "name": w.container_name, "runtime": w.runtime, "cgroup_id": w.cgroup_id},
        "image": {"name": w.image_name, "digest": w.image_digest},
        "pod": {"name": w.pod_name, "namespace": w.pod_namespace},
        "process": process,
        "file": file,
        "script": f.script.as_ref().map(|(p, v, sha)| {
            let (path, path_hex) = text(p);
            json!({"path": path, "path_hex": path_hex, "verdict": v.name(), "sha256": sha})
        }),
        "sbom": {"sources": f.sbom_sources, "format": f.sbom_format},
    })
}

fn falco_priority(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "Error",
        Severity::Medium => "Warning",
        Severity::Low => "Notice",
        Severity::Info => "Informational",
    }
}

fn falco_rule(f: &Finding) -> String {
    match f.subject {
        Subject::Exec => format!("Verifier drift: {}", f.verdict.name()),
        Subject::Library => "Verifier drift: library-drift".into(),
        Subject::Write => "Verifier drift: image-file-written".into(),
    }
}

fn falco_alert(f: &Finding, id: &str, count: Option<(&Entry, u64)>) -> Value {
    let w = &f.workload;
    let (repo, tag) = split_image(w.image_name.as_deref());
    let path = text(&f.file.path).0;
    let mut output = format!(
        "{} {} {} (path={} sha256={} expected={} container={} image={} proc={} cmdline={})",
        crate::output::rfc3339(f.unix_ns),
        falco_priority(f.severity),
        f.reason,
        path,
        f.file.sha256.as_deref().unwrap_or("-"),
        f.file.expected.as_deref().unwrap_or("-"),
        w.container_id.as_deref().unwrap_or("host"),
        w.image_name.as_deref().or(w.image_digest.as_deref()).unwrap_or("-"),
        text(&f.process.comm).0,
        cmdline(f),
    );
    if let Some((e, repeats)) = count {
        output.push_str(&format!(" repeated {repeats} more times (count={})", e.count));
    }
    let fields = json!({
        "evt.time": f.unix_ns as i64,
        "evt.type": if f.subject == Subject::Library { "mmap" } else if f.subject == Subject::Write { "openat" } else { "execve" },
        "container.id": w.container_id,
        "container.name": w.container_name,
        "container.image.repository": repo,
        "container.image.tag": tag,
        "container.image.digest": w.image_digest,
        "k8s.pod.name": w.pod_name,
        "k8s.ns.name": w.pod_namespace,
        "proc.pid": f.process.pid,
        "proc.ppid": f.process.ppid,
        "proc.name": text(&f.process.comm).0,
        "proc.cmdline": cmdline(f),
        "proc.exepath": text(&f.process.exe_path).0,
        "user.uid": f.process.uid,
        "fd.name": path,
        "verifier.alert_id": id,
        "verifier.verdict": f.verdict.name(),
        "verifier.sha256": f.file.sha256,
        "verifier.expected": f.file.expected,
        "verifier.package": f.file.package.as_ref().map(|p| p.name.clone()),
        "verifier.purl": f.file.package.as_ref().and_then(|p| p.purl.clone()),
        "verifier.in_writable_layer": f.file.in_writable_layer,
        "verifier.sbom": f.sbom_sources.join(","),
        "verifier.count": count.map(|(e, _)| e.count),
    });
    json!({
        "hostname": f.node,
        "output": output,
        "output_fields": fields,
        "priority": falco_priority(f.severity),
        "rule": falco_rule(f),
        "source": "syscall",
        "tags": ["container", "drift", "verifier", f.verdict.name()],
        "time": f.time(),
    })
}

/// `registry/app:1.2` -> (`registry/app`, `1.2`); a digest reference
/// keeps no tag.
fn split_image(name: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(name) = name else { return (None, None) };
    let name = name.split('@').next().unwrap_or(name);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (Some(repo.to_owned()), Some(tag.to_owned())),
        _ => (Some(name.to_owned()), None),
    }
}

fn ocsf_severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

fn ocsf_alert(f: &Finding, id: &str, count: Option<&Entry>) -> Value {
    let w = &f.workload;
    let (sev_id, sev) = ocsf_severity(f.severity);
    let path = text(&f.file.path).0;
    let name = path.rsplit('/').next().unwrap_or("").to_owned();
    let (repo, tag) = split_image(w.image_name.as_deref());
    let ms = (f.unix_ns / 1_000_000) as i64;
    let mut v = json!({
        "class_uid": 1007,
        "class_name": "Process Activity",
        "category_uid": 1,
        "category_name": "System Activity",
        "activity_id": 1,
        "activity_name": "Launch",
        "type_uid": 100701,
        "type_name": "Process Activity: Launch",
        "time": ms,
        "severity_id": sev_id,
        "severity": sev,
        "status_id": 1,
        "status": "Success",
        "message": f.reason,
        "metadata": {
            "version": "1.1.0",
            "uid": id,
            "product": {"name": "verifier", "vendor_name": "verifier", "version": env!("CARGO_PKG_VERSION")},
            "labels": ["drift", f.verdict.name()],
        },
        "device": {"hostname": f.node, "type_id": 1, "type": "Server"},
        "process": {
            "pid": f.process.pid,
            "name": text(&f.process.comm).0,
            "cmd_line": cmdline(f),
            "file": {
                "path": path,
                "name": name,
                "type_id": 1,
                "type": "Regular File",
                "hashes": f.file.sha256.as_ref().map(|h| vec![json!({"algorithm_id": 3, "algorithm": "SHA-256", "value": h})]).unwrap_or_default(),
            },
            "parent_process": {"pid": f.process.ppid},
            "user": {"uid": f.process.uid.to_string()},
            "container": {"uid": w.container_id, "name": w.container_name},
        },
        "actor": {"process": {"pid": f.process.ppid}},
        "container": {
            "uid": w.container_id,
            "name": w.container_name,
            "runtime": w.runtime,
            "image": {"name": repo, "tag": tag, "uid": w.image_digest},
        },
        "unmapped": {
            "verdict": f.verdict.name(),
            "event": f.subject.name(),
            "expected": f.file.expected,
            "weak_digest": f.file.weak_digest,
            "package": f.file.package.as_ref().map(|p| json!({"name": p.name, "version": p.version, "purl": p.purl})),
            "in_writable_layer": f.file.in_writable_layer,
            "listed_at": f.file.listed_at,
            "sbom_sources": f.sbom_sources,
            "sbom_format": f.sbom_format,
            "pod": {"name": w.pod_name, "namespace": w.pod_namespace},
            "cgroup_id": w.cgroup_id,
        },
    });
    if let Some(e) = count {
        v["count"] = json!(e.count);
        v["start_time"] = json!((e.first_ns / 1_000_000) as i64);
        v["end_time"] = json!((e.last_ns / 1_000_000) as i64);
    }
    v
}

/// A first occurrence.
pub fn alert(format: Format, f: &Finding, id: &str) -> Value {
    match format {
        Format::Native => native_alert(f, id),
        Format::Falco => falco_alert(f, id, None),
        Format::Ocsf => ocsf_alert(f, id, None),
    }
}

/// Repeats of an alert since its last update.
pub fn update(format: Format, e: &Entry, now_ns: i128) -> Value {
    match format {
        Format::Native => {
            let f = &e.last;
            let (path, path_hex) = text(&f.file.path);
            json!({
                "schema": SCHEMA_ALERT,
                "type": "alert-update",
                "alert_id": e.id,
                "time": crate::output::rfc3339(now_ns),
                "node": f.node,
                "verdict": f.verdict.name(),
                "severity": f.severity.name(),
                "first_seen": crate::output::rfc3339(e.first_ns),
                "last_seen": crate::output::rfc3339(e.last_ns),
                "count": e.count,
                "repeats": e.pending,
                "container": {"id": f.workload.container_id, "cgroup_id": f.workload.cgroup_id},
                "image": {"name": f.workload.image_name, "digest": f.workload.image_digest},
                "file": {"path": path, "path_hex": path_hex, "sha256": f.file.sha256},
            })
        }
        Format::Falco => falco_alert(&e.last, &e.id, Some((e, e.pending))),
        Format::Ocsf => ocsf_alert(&e.last, &e.id, Some(e)),
    }
}

/// Alerts held back by the rate limit.
pub fn suppressed(format: Format, s: &Suppressed, node: &str) -> Value {
    let total: u64 = s.by_verdict.values().sum();
    let message = format!(
        "{total} drift alerts were rate limited between {} and {}",
        crate::output::rfc3339(s.from_ns),
        crate::output::rfc3339(s.to_ns)
    );
    match format {
        Format::Native => json!({
            "schema": SCHEMA_ALERT,
            "type": "alert-suppressed",
            "time": crate::output::rfc3339(s.to_ns),
            "node": node,
            "from": crate::output::rfc3339(s.from_ns),
            "to": crate::output::rfc3339(s.to_ns),
            "total": total,
            "suppressed": s.by_verdict,
        }),
        Format::Falco => json!({
            "hostname": node,
            "output": message,
            "output_fields": {"evt.time": s.to_ns as i64, "verifier.suppressed": s.by_verdict, "verifier.count": total},
            "priority": "Warning",
            "rule": "Verifier alerts rate limited",
            "source": "syscall",
            "tags": ["verifier", "rate-limit"],
            "time": crate::output::rfc3339(s.to_ns),
        }),
        Format::Ocsf => json!({
            "class_uid": 1007,
            "category_uid": 1,
            "activity_id": 99,
            "activity_name": "Other",
            "type_uid": 100799,
            "time": (s.to_ns / 1_000_000) as i64,
            "start_time": (s.from_ns / 1_000_000) as i64,
            "end_time": (s.to_ns / 1_000_000) as i64,
            "count": total,
            "severity_id": 3,
            "severity": "Medium",
            "message": message,
            "metadata": {"version": "1.1.0", "product": {"name": "verifier", "vendor_name": "verifier", "version": env!("CARGO_PKG_VERSION")}},
            "device": {"hostname": node, "type_id": 1},
            "process": {},
            "actor": {},
            "unmapped": {"suppressed": s.by_verdict},
        }),
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
