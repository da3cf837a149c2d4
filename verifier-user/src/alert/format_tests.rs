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
fn falco_output_has_what_falcosidekick_reads() {
    let v = alert(Format::Falco, &finding(), "id1");
    for k in ["output", "priority", "rule", "time", "hostname", "source"] {
        assert!(v[k].is_string(), "{k}: {v}");
    }
    assert!(v["tags"].is_array());
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
fn ocsf_process_activity_has_its_required_attributes() {
    let v = alert(Format::Ocsf, &finding(), "id1");
    let n = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k}: {v}"));
    assert_eq!((n("class_uid"), n("category_uid"), n("activity_id")), (1007, 1, 1));
    assert_eq!(n("type_uid"), n("class_uid") * 100 + n("activity_id"));
    assert_eq!(n("severity_id"), 4);
    assert!(n("time") > 1_700_000_000_000, "milliseconds");
    assert!(v["metadata"]["version"].is_string() && v["metadata"]["product"]["name"].is_string());
    for k in ["actor", "process", "device"] {
        assert!(v[k].is_object(), "{k} required by class 1007 / system category");
    }
    assert_eq!(v["process"]["file"]["hashes"][0]["algorithm_id"], 3);
    assert_eq!(v["process"]["file"]["name"], "cu\nrl\u{fffd}");
    assert_eq!(v["unmapped"]["verdict"], "modified-binary");
    assert_eq!(v["container"]["image"]["uid"], "sha256:ab");
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
    let mut r = RateLimit::new(1, 1);
    r.admit("fileless", 0);
    r.admit("fileless", 0);
    let s = r.summary(0, true).expect("summary");
    assert_eq!(suppressed(Format::Native, &s, "n")["suppressed"]["fileless"], 1);
    assert_eq!(suppressed(Format::Ocsf, &s, "n")["count"], 1);
    assert_eq!(suppressed(Format::Falco, &s, "n")["output_fields"]["verifier.count"], 1);
}
