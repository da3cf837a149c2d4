//! Root tier, end to end: drift in a real runc container becomes alerts on
//! every sink: stdout, the rotated file, an HTTP webhook (a real local
//! server that fails at first), deduplicated with counts; metrics and
//! health are served. The falco and OCSF shapes, and every record's
//! schema, are tested as their consumers read them in `consumers.rs`.

use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, final_stats},
    exclusive,
    image::{self},
    require_root,
    runc::Container,
};

/// A webhook receiver: answers 503 to the first `fail` requests, then 200;
/// keeps every accepted body.
fn receiver(fail: usize) -> (u16, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    std::thread::spawn(move || {
        let mut seen = 0;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some(body) = verifier_tests::http::read_body(&mut conn) else { continue };
            seen += 1;
            if seen <= fail {
                let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
                continue;
            }
            if let Ok(Value::Array(items)) = serde_json::from_slice(&body) {
                store.lock().expect("lock").extend(items);
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (port, got)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let code = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
    (code, out)
}

const DROP: &str = "mkdir -p /tmp/new && cat /bin/busybox > /tmp/new/true && echo >> /tmp/new/true && chmod +x /tmp/new/true";

#[test]
fn drift_alerts_are_deduplicated_and_reach_every_sink() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = image::busybox_with_tool(dir.path(), &["sleep", "120"]).expect("bundle");
    let sbom =
        image::generate_sbom(&bundle, &dir.path().join("sbom.cdx.json"), "cyclonedx-json").expect("sbom");
    let id = format!("vt-alerts-{}", std::process::id());
    let rule = format!("{id}={}", sbom.display());
    let (hook_port, delivered) = receiver(2);
    let hook = format!("http://127.0.0.1:{hook_port}/hook");
    let file = dir.path().join("alerts.jsonl");
    let file_arg = file.to_str().expect("utf-8").to_owned();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let agent = Agent::start(&[
        "--stats-interval",
        "0",
        "--containers-only",
        "--sbom",
        &rule,
        "--alert-file",
        &file_arg,
        "--webhook-url",
        &hook,
        "--metrics-addr",
        &metrics_addr,
        "--alert-update-interval",
        "1",
    ])
    .expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    container.exec(&["sh", "-c", DROP]).expect("drop");
    container
        .exec(&[
            "sh",
            "-c",
            r#"i=0; while [ $i -lt 30 ]; do /tmp/new/true first "$(printf 'a\nb')"; i=$((i+1)); done"#,
        ])
        .expect("run it 30 times");
    std::thread::sleep(Duration::from_millis(1500));
    let (code, body) = http_get(metrics_port, "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("verifier_alerts_emitted_total{verdict=\"unknown-binary\"} 1"), "{body}");
    assert!(body.contains("# TYPE verifier_kernel_seen_total counter"), "{body}");
    assert_eq!(http_get(metrics_port, "/healthz").0, 200);
    let records = agent.stop().expect("agent stops");
    drop(container);

    let alerts: Vec<&Value> = records.iter().filter(|r| r["schema"] == "verifier.alert.v1").collect();
    let first: Vec<&&Value> = alerts.iter().filter(|r| r["type"] == "alert").collect();
    assert_eq!(first.len(), 1, "one alert for 30 runs of the same file: {alerts:?}");
    let a = first[0];
    assert_eq!(
        (a["verdict"].as_str(), a["severity"].as_str(), a["event"].as_str()),
        (Some("unknown-binary"), Some("high"), Some("exec"))
    );
    assert_eq!(a["container"]["id"], id.as_str());
    assert_eq!(a["file"]["path"], "/tmp/new/true");
    assert!(a["file"]["sha256"].as_str().is_some_and(|h| h.len() == 64), "{a}");
    assert_eq!(a["sbom"]["sources"][0], sbom.to_str().expect("utf-8"), "{a}");
    assert_eq!(a["sbom"]["format"], "CycloneDX JSON", "{a}");
    assert!(
        a["process"]["pid"].as_u64().is_some_and(|p| p > 0) && a["process"]["exe_path"] == "/tmp/new/true",
        "{a}"
    );
    // argv as the kernel read it at the exec (the process is long gone).
    assert_eq!(a["process"]["argv"], serde_json::json!(["/tmp/new/true", "first", "a\nb"]), "{a}");
    let updates: Vec<&&Value> = alerts.iter().filter(|r| r["type"] == "alert-update").collect();
    let repeats: u64 = updates.iter().map(|u| u["repeats"].as_u64().expect("repeats")).sum();
    assert_eq!(repeats, 29, "every repeat counted: {updates:?}");
    assert_eq!(updates.last().map(|u| u["count"].clone()), Some(Value::from(30)));
    assert!(updates.iter().all(|u| u["alert_id"] == a["alert_id"]));

    // The file holds the same alert records as stdout.
    let in_file: Vec<Value> = std::fs::read_to_string(&file)
        .expect("alert file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(in_file.iter().collect::<Vec<_>>(), alerts, "file and stdout agree");
    // The webhook got them all, once each and in order, after two 503s.
    let hooked = delivered.lock().expect("lock").clone();
    assert_eq!(hooked.iter().collect::<Vec<_>>(), alerts, "webhook delivered every alert once, in order");
    let stats = final_stats(&records).expect("stats");
    let s = &stats["alerts"];
    assert!(s["webhook_retries"].as_u64() >= Some(2), "{s}");
    assert_eq!(
        (s["webhook_lost"].as_u64(), s["webhook_sent"].as_u64()),
        (Some(0), Some(alerts.len() as u64)),
        "{s}"
    );
    assert_eq!(s["repeats"], 29, "{s}");
}
