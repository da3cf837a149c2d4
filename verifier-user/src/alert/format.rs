//! Alert records in three shapes: `native` (`verifier.alert.v1`, every
//! field, see docs/alerts.md), `falco` (the JSON Falco writes with
//! `json_output: true`, so falcosidekick and Falco tooling route it), and
//! `ocsf` (OCSF 1.1 Detection Finding, class 2004, for SIEMs and data
//! lakes that normalize on OCSF; see `ocsf`).

mod ocsf;

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
pub(crate) const SCHEMA_ALERT: &str = "verifier.alert.v1";

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
    let mut alert = json!({
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
    });
    if let Some(n) = f.unjudged_new {
        alert["unjudged_new"] = json!(n);
    }
    if let Some(p) = &f.policy {
        alert["policy"] = json!(p);
    }
    if let Some(r) = &f.response {
        alert["action"] = json!(r.action);
        alert["mechanism"] = json!(r.mechanism);
        alert["rule"] = json!(r.rule);
    }
    alert
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

/// A first occurrence.
pub(crate) fn alert(format: Format, f: &Finding, id: &str) -> Value {
    match format {
        Format::Native => native_alert(f, id),
        Format::Falco => falco_alert(f, id, None),
        Format::Ocsf => ocsf::alert(f, id),
    }
}

/// Repeats of an alert since its last update.
pub(crate) fn update(format: Format, e: &Entry, now_ns: i128) -> Value {
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
        Format::Ocsf => ocsf::update(e),
    }
}

/// Alerts held back by the rate limit.
pub(crate) fn suppressed(format: Format, s: &Suppressed, node: &str) -> Value {
    let total: u64 = s.by_verdict.values().sum();
    let scope = s.scope.as_deref().unwrap_or("the node");
    let named: Vec<&str> = s.held.iter().map(|h| h.path.as_str()).collect();
    let message = format!(
        "{total} drift alerts of {scope} were rate limited between {} and {} (files: {}{})",
        crate::output::rfc3339(s.from_ns),
        crate::output::rfc3339(s.to_ns),
        named.join(", "),
        if (named.len() as u64) < total { ", ..." } else { "" }
    );
    let held: Vec<Value> =
        s.held.iter().map(|h| json!({"path": h.path, "sha256": h.sha256, "verdict": h.verdict})).collect();
    match format {
        Format::Native => json!({
            "schema": SCHEMA_ALERT,
            "type": "alert-suppressed",
            "time": crate::output::rfc3339(s.to_ns),
            "node": node,
            "from": crate::output::rfc3339(s.from_ns),
            "to": crate::output::rfc3339(s.to_ns),
            "scope": s.scope,
            "total": total,
            "suppressed": s.by_verdict,
            "held_back": held,
        }),
        Format::Falco => json!({
            "hostname": node,
            "output": message,
            "output_fields": {
                "evt.time": s.to_ns as i64,
                "verifier.suppressed": s.by_verdict,
                "verifier.count": total,
                "verifier.scope": s.scope,
                "verifier.held_back": held,
            },
            "priority": "Warning",
            "rule": "Verifier alerts rate limited",
            "source": "syscall",
            "tags": ["verifier", "rate-limit"],
            "time": crate::output::rfc3339(s.to_ns),
        }),
        Format::Ocsf => ocsf::suppressed(s, node, total, &message),
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
