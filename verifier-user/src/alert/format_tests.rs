//! Shapes checked by parsing, not against golden files: every field the
//! consumers of each format rely on is present and typed right.

use super::*;
use verifier_sbom::PackageRef;

use crate::{
    alert::{
        dedup::{Dedup, Seen},
        finding::{FileFacts, Process, Workload},
        ratelimit::RateLimit,
    },
    verify::verdict::Verdict,
};

fn finding() -> Finding {
    Finding {
        unix_ns: 1_795_000_000_123_456_789,
        node: "node-1".into(),
        subject: Subject::Exec,
        verdict: Verdict::ModifiedBinary,
        severity: Verdict::ModifiedBinary.severity(),
        reason: "the SBOM lists this path with another SHA-256".into(),
        workload: Workload {
            container_id: Some("c0ffee".into()),
            container_name: Some("web".into()),
            runtime: Some("containerd".into()),
            cgroup_id: 42,
            image_name: Some("registry.example:5000/team/app:1.4".into()),
            image_digest: Some("sha256:ab".into()),
            pod_name: Some("web-7d9".into()),
            pod_namespace: Some("prod".into()),
        },
        process: Process {
            pid: 10,
            ppid: 9,
            uid: 1000,
            gid: 1000,
            comm: b"curl".to_vec(),
            argv: Some(vec![b"/usr/bin/curl".to_vec(), b"-o\n\xff".to_vec()]),
            exe_path: b"/usr/bin/curl".to_vec(),
        },
        file: FileFacts {
            path: b"/usr/bin/cu\nrl\xff".to_vec(),
            sha256: Some("11".repeat(32)),
            expected: Some(format!("sha256:{}", "22".repeat(32))),
            weak_digest: false,
            package: Some(PackageRef {
                name: "curl".into(),
                version: Some("8.5.0".into()),
                purl: Some("pkg:deb/debian/curl@8.5.0".into()),
            }),
            in_writable_layer: Some(true),
            listed_at: Vec::new(),
            file_verdict: None,
            identity: None,
        },
        script: None,
        sbom_sources: vec!["/sboms/app.spdx.json".into()],
        sbom_format: Some("spdx-json".into()),
        unjudged_new: None,
        policy: None,
        response: None,
    }
}

#[test]
fn native_alerts_carry_every_field_and_exact_bytes() {
    let v = alert(Format::Native, &finding(), "id1");
    assert_eq!(v["schema"], SCHEMA_ALERT);
    assert_eq!(
        (v["type"].as_str(), v["verdict"].as_str(), v["severity"].as_str()),
        (Some("alert"), Some("modified-binary"), Some("high"))
    );
    for (k, want) in [("id", "c0ffee"), ("name", "web"), ("runtime", "containerd")] {
        assert_eq!(v["container"][k], want);
    }
    assert_eq!(v["image"]["digest"], "sha256:ab");
    assert_eq!(v["pod"]["namespace"], "prod");
    assert_eq!(v["process"]["argv"][1], "-o\n\u{fffd}", "newline kept, escaped by JSON");
    assert_eq!(v["process"]["argv_hex"][1], "2d6f0aff");
    assert_eq!(v["file"]["path_hex"], hex::encode(b"/usr/bin/cu\nrl\xff"));
    assert_eq!(v["file"]["sha256"], "11".repeat(32));
    assert_eq!(v["file"]["expected"], format!("sha256:{}", "22".repeat(32)));
    assert_eq!(v["file"]["package"]["purl"], "pkg:deb/debian/curl@8.5.0");
    assert_eq!(v["file"]["in_writable_layer"], true);
    assert_eq!(v["sbom"]["sources"][0], "/sboms/app.spdx.json");
    assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains(".123456789")));
    let line = serde_json::to_string(&v).expect("json");
    assert!(!line.contains('\n'), "one line per alert");
}

#[test]
fn an_exec_flood_alert_carries_its_count_and_no_file() {
    let w = finding().workload;
    let f = Finding::exec_flood(w, None, 44, 1_700_000_000_000_000_000, "node-a");
    let v = alert(Format::Native, &f, "id2");
    assert_eq!(
        (v["verdict"].as_str(), v["severity"].as_str(), v["event"].as_str()),
        (Some("exec-flood"), Some("high"), Some("exec"))
    );
    assert_eq!(v["unjudged_new"], 44);
    assert!(v["reason"].as_str().is_some_and(|r| r.starts_with("44 new files")), "{v}");
    assert_eq!(v["container"]["id"], "c0ffee");
    assert_eq!((v["file"]["path"].as_str(), &v["file"]["sha256"]), (Some(""), &Value::Null));
    let plain = alert(Format::Native, &finding(), "id1");
    assert!(plain.get("unjudged_new").is_none(), "only exec-flood has the count: {plain}");
    assert!(plain.get("action").is_none(), "a report has no action: {plain}");
    let mut blocked = finding();
    blocked.response = Some(crate::alert::finding::Response {
        action: "blocked",
        mechanism: "tracepoint-kill",
        rule: "--enforce app*".into(),
    });
    let b = alert(Format::Native, &blocked, "id3");
    assert_eq!(
        (b["action"].as_str(), b["mechanism"].as_str()),
        (Some("blocked"), Some("tracepoint-kill")),
        "{b}"
    );
    assert_eq!(b["rule"], "--enforce app*");
    let mut d = Dedup::new(16);
    assert!(matches!(d.see(&finding()).0, Seen::New(_)));
    assert!(
        matches!(d.see(&blocked).0, Seen::New(_)),
        "a block is its own alert beside the report of its file"
    );
    let mut dedup = Dedup::new(16);
    assert!(matches!(dedup.see(&f).0, Seen::New(_)), "names no file: never a repeat");
    assert!(matches!(dedup.see(&f).0, Seen::New(_)), "names no file: never a repeat");
}

#[test]
fn falco_output_has_what_falcosidekick_reads() {
    let v = alert(Format::Falco, &finding(), "id1");
    for k in ["output", "priority", "rule", "time", "hostname", "source"] {
        assert!(v[k].as_str().is_some_and(|s| !s.is_empty()), "{k}: {v}");
    }
    assert!(v["tags"].is_array() && v["output_fields"].is_object());
    let time = v["time"].as_str().expect("time");
    assert!(time.len() > 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z'), "RFC 3339: {time}");
    let priorities =
        ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];
    assert!(priorities.contains(&v["priority"].as_str().expect("priority")));
    let o = &v["output_fields"];
    assert!(o["evt.time"].is_i64(), "evt.time is integer nanoseconds");
    assert_eq!(o["container.image.repository"], "registry.example:5000/team/app");
    assert_eq!(o["container.image.tag"], "1.4");
    assert_eq!(o["k8s.ns.name"], "prod");
    assert_eq!(o["proc.cmdline"], "/usr/bin/curl -o\n\u{fffd}");
    assert_eq!(o["verifier.verdict"], "modified-binary");
    assert!(v["output"].as_str().is_some_and(|s| s.contains("sha256=1111")));
}

#[test]
fn ocsf_drift_is_a_detection_finding_with_the_process_as_evidence() {
    let v = alert(Format::Ocsf, &finding(), "id1");
    let n = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k}: {v}"));
    assert_eq!((n("class_uid"), n("category_uid"), n("activity_id")), (2004, 2, 1));
    assert_eq!(n("type_uid"), n("class_uid") * 100 + n("activity_id"));
    assert_eq!(n("severity_id"), 4);
    assert!(n("time") > 1_700_000_000_000, "milliseconds");
    assert_eq!(v["finding_info"]["uid"], "id1");
    assert_eq!(v["metadata"]["profiles"], serde_json::json!(["host", "container"]));
    let ev = &v["evidences"][0];
    assert_eq!(ev["process"]["file"]["hashes"][0]["algorithm_id"], 3);
    assert_eq!(ev["process"]["file"]["name"], "cu\nrl\u{fffd}");
    assert_eq!(ev["process"]["container"]["image"]["uid"], "sha256:ab");
    assert_eq!(v["unmapped"]["verdict"], "modified-binary");
    assert!(v.get("container").is_none(), "not a class attribute");
    assert!(!serde_json::to_string(&v).expect("json").contains("null"), "OCSF has no null: {v}");
}

#[test]
fn an_ocsf_write_is_not_a_launch() {
    let mut f = finding();
    f.subject = Subject::Write;
    f.verdict = Verdict::ImageFileWritten;
    let v = alert(Format::Ocsf, &f, "id2");
    let ev = &v["evidences"][0];
    assert_eq!(ev["data"]["event"], "write");
    assert!(ev["process"].get("file").is_none(), "the writer is not launching the file: {v}");
    assert_eq!(ev["file"]["path"], "/usr/bin/cu\nrl\u{fffd}");
    assert_ne!(v["type_name"], "Process Activity: Launch");
}

/// Every OCSF shape (exec, library, write, host, update, rate limit) through
/// the strict OCSF 1.1 schema (tests/validators/validate_ocsf.py).
#[test]
fn every_ocsf_shape_validates_strictly_against_ocsf_1_1() {
    let mut records = vec![alert(Format::Ocsf, &finding(), "id1")];
    for (subject, verdict) in
        [(Subject::Library, Verdict::LibraryDrift), (Subject::Write, Verdict::ImageFileWritten)]
    {
        let mut f = finding();
        (f.subject, f.verdict) = (subject, verdict);
        records.push(alert(Format::Ocsf, &f, "id2"));
    }
    let mut host = finding();
    host.workload = Workload::default();
    host.file.sha256 = None;
    host.process.argv = None;
    records.push(alert(Format::Ocsf, &host, "id3"));
    let mut d = Dedup::new(10);
    d.see(&host);
    d.see(&host);
    let e = d.updates().pop().expect("update");
    records.push(update(Format::Ocsf, &e, host.unix_ns + 1));
    let mut r = RateLimit::new(1, 1);
    r.admit("img", held(), 0);
    r.admit("img", held(), 0);
    records.push(suppressed(Format::Ocsf, &r.summaries(0, true).pop().expect("summary"), "n"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ocsf.jsonl");
    let lines: Vec<String> = records.iter().map(|v| serde_json::to_string(v).expect("json")).collect();
    std::fs::write(&file, lines.join("\n")).expect("write records");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/validators/validate_ocsf.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 (cargo xtask setup)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(2), "validator missing: run `cargo xtask setup`\n{text}");
    assert!(out.status.success(), "OCSF 1.1 rejects records:\n{text}");
    assert!(text.contains("6 OCSF 1.1.0 records, 0 errors"), "{text}");
}

#[test]
fn updates_and_suppressions_have_counts_in_every_format() {
    let mut d = Dedup::new(10);
    let f = finding();
    assert!(matches!(d.see(&f).0, Seen::New(_)));
    d.see(&f);
    let e = d.updates().pop().expect("update");
    let now = f.unix_ns + 1;
    assert_eq!(update(Format::Native, &e, now)["count"], 2);
    assert_eq!(update(Format::Native, &e, now)["type"], "alert-update");
    assert_eq!(update(Format::Falco, &e, now)["output_fields"]["verifier.count"], 2);
    assert_eq!(update(Format::Ocsf, &e, now)["count"], 2);
    assert_eq!(update(Format::Ocsf, &e, now)["activity_id"], 2, "the finding updated");
    let mut r = RateLimit::new(1, 1);
    r.admit("img", held(), 0);
    r.admit("img", held(), 0);
    let s = r.summaries(0, true).pop().expect("summary");
    assert_eq!(suppressed(Format::Native, &s, "n")["suppressed"]["fileless"], 1);
    assert_eq!(suppressed(Format::Native, &s, "n")["scope"], "img");
    assert_eq!(suppressed(Format::Native, &s, "n")["held_back"][0]["path"], "/memfd:x (deleted)");
    assert_eq!(suppressed(Format::Falco, &s, "n")["output_fields"]["verifier.scope"], "img");
    assert_eq!(suppressed(Format::Ocsf, &s, "n")["count"], 1);
    assert_eq!(suppressed(Format::Falco, &s, "n")["output_fields"]["verifier.count"], 1);
}

fn held() -> crate::alert::ratelimit::Held {
    crate::alert::ratelimit::Held { path: "/memfd:x (deleted)".into(), sha256: None, verdict: "fileless" }
}
