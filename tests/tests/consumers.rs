//! Root tier: the agent's output as the tools that consume it read it.
//! Every record of a run that produces each kind (ready, exec, library,
//! write, throttle, stats, alert, alert-update, alert-suppressed) against
//! docs/schemas/; a real `/metrics` scrape through `promtool check
//! metrics`; falco alerts posted to a receiver that decodes like
//! falcosidekick (one object per request, 400 otherwise); OCSF alerts
//! through the strict OCSF 1.1 schema.

use std::{
    collections::BTreeSet,
    io::{Read as _, Write as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, final_stats},
    exclusive,
    image::{self, TOOL},
    require_root,
    runc::Container,
};

const DROP: &str = "mkdir -p /tmp/new && cat /bin/busybox > /tmp/new/true && echo >> /tmp/new/true && chmod +x /tmp/new/true";

fn validators() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("validators")
}

fn write_lines(path: &Path, records: &[&Value]) {
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).expect("write records");
}

/// Runs a validator script; panics with its output unless it passes.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(validators().join(script))
        .args(args)
        .output()
        .expect("python3 (run `cargo xtask setup`)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(2), "{script}: a library is missing: run `cargo xtask setup`\n{text}");
    assert!(out.status.success(), "{script} rejects records:\n{text}");
    text
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}

fn wait_for(agent: &Agent, what: &str, found: impl Fn(&Value) -> bool) {
    let t = Instant::now();
    while !agent.records_so_far().iter().any(&found) {
        assert!(t.elapsed() < Duration::from_secs(10), "no {what} record");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_record_matches_its_schema_and_metrics_pass_promtool() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = image::busybox_with_tool(dir.path(), &["sleep", "120"]).expect("bundle");
    let sbom = image::generate_sbom(&bundle, &dir.path().join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let id = format!("vt-consumers-{}", std::process::id());
    let rule = format!("{id}={}", sbom.display());
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    // A low exec limit (throttle records), a rate limit of one alert
    // (alert-suppressed), updates every second (alert-update).
    let agent = Agent::start(&[
        "--stats-interval",
        "1",
        "--containers-only",
        "--sbom",
        &rule,
        "--exec-limit",
        "20",
        "--alert-rate",
        "1",
        "--alert-burst",
        "1",
        "--alert-update-interval",
        "1",
        "--metrics-addr",
        &metrics_addr,
    ])
    .expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    container.exec(&["sh", "-c", &format!("{DROP} && /tmp/new/true")]).expect("drift");
    container.exec(&[TOOL]).expect("tool");
    wait_for(&agent, "ok verdict of the tool", |r| {
        r["filename"] == TOOL && r["verification"]["verdict"] == "ok"
    });
    container.exec(&["sh", "-c", &format!(": >> {TOOL}")]).expect("write-open the tool");
    container
        .exec(&[
            "sh",
            "-c",
            "mkdir -p /tmp/lib && cat /bin/busybox > /tmp/lib/evil.so && echo >> /tmp/lib/evil.so",
        ])
        .expect("drop a library");
    let pid = container.pid().expect("pid");
    image::mmap_exec_in(pid, &["/tmp/lib/evil.so"], 500).expect("map as code");
    container
        .exec(&["sh", "-c", "i=0; while [ $i -lt 100 ]; do /tmp/new/true; i=$((i+1)); done"])
        .expect("exec flood");
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = scrape(metrics_port);
    // The harness keeps the ready record apart from the rest.
    let ready = agent.ready.clone();
    let mut records = agent.stop().expect("agent stops");
    records.insert(0, ready);
    drop(container);

    // promtool reads the exposition on stdin.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian `prometheus`; run `cargo xtask setup`)");
    promtool.stdin.take().expect("stdin").write_all(metrics.as_bytes()).expect("feed promtool");
    let out = promtool.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{metrics}");
    assert!(metrics.contains("verifier_build_info{version=\""), "{metrics}");
    assert!(metrics.contains("\nverifier_uptime_seconds ") && metrics.contains("\nverifier_max_rss_bytes "));

    let kinds: BTreeSet<&str> = records.iter().filter_map(|r| r["type"].as_str()).collect();
    for want in [
        "ready",
        "exec",
        "library",
        "write",
        "throttle",
        "stats",
        "alert",
        "alert-update",
        "alert-suppressed",
    ] {
        assert!(kinds.contains(want), "no {want} record in the run: {kinds:?}");
    }
    let file = dir.path().join("records.jsonl");
    write_lines(&file, &records.iter().collect::<Vec<_>>());
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas");
    let said = python(
        "validate_records.py",
        &["--schemas", schemas.to_str().expect("utf-8"), file.to_str().expect("utf-8")],
    );
    assert!(said.contains(&format!("{} records, 0 errors", records.len())), "{said}");
}

/// A webhook receiver that decodes like falcosidekick: exactly one JSON
/// object per request with `output`, `priority`, `rule`, `time`,
/// `output_fields` (non-empty), `source`, `tags`, `hostname`; anything else
/// is answered 400.
struct Sidekick {
    port: u16,
    /// Every accepted event, in order.
    accepted: Arc<Mutex<Vec<Value>>>,
    /// Requests answered 400.
    refused: Arc<Mutex<u32>>,
}

fn falcosidekick() -> Sidekick {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (got, refused) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(0)));
    let (store, bad) = (got.clone(), refused.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some(body) = verifier_tests::http::read_body(&mut conn) else { continue };
            let event = serde_json::from_slice::<Value>(&body).ok().filter(|v| {
                ["output", "priority", "rule", "time", "source", "hostname"]
                    .iter()
                    .all(|k| v[k].as_str().is_some_and(|s| !s.is_empty()))
                    && v["tags"].is_array()
                    && v["output_fields"].as_object().is_some_and(|o| !o.is_empty())
            });
            let answer: &[u8] = match event {
                Some(e) => {
                    store.lock().expect("lock").push(e);
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                }
                None => {
                    *bad.lock().expect("lock") += 1;
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 32\r\n\r\nPlease send a valid request body"
                }
            };
            let _ = conn.write_all(answer);
        }
    });
    Sidekick { port, accepted: got, refused }
}

#[test]
fn falco_reaches_falcosidekick_and_ocsf_validates_strictly() {
    require_root!();
    let _lock = exclusive();
    for format in ["falco", "ocsf"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = image::busybox_with_tool(dir.path(), &["sleep", "120"]).expect("bundle");
        let sbom =
            image::generate_sbom(&bundle, &dir.path().join("sbom.spdx.json"), "spdx-json").expect("sbom");
        let id = format!("vt-{format}-{}", std::process::id());
        let rule = format!("{id}={}", sbom.display());
        let sidekick = falcosidekick();
        let hook = format!("http://127.0.0.1:{}/", sidekick.port);
        let mut args = vec!["--stats-interval", "0", "--containers-only", "--sbom", &rule];
        args.extend(["--alert-format", format, "--no-metrics", "--alert-update-interval", "1"]);
        if format == "falco" {
            args.extend(["--webhook-url", &hook]);
        }
        let agent = Agent::start(&args).expect("agent starts");
        let container = Container::run(&bundle.dir, &id).expect("runc run");
        // Three findings (unknown, relocated, image file written) and repeats.
        container.exec(&["sh", "-c", &format!("{DROP} && /tmp/new/true && /tmp/new/true")]).expect("drift");
        container
            .exec(&["sh", "-c", "mkdir -p /tmp/c && cp /bin/busybox /tmp/c/true && /tmp/c/true"])
            .expect("copy");
        container.exec(&[TOOL]).expect("tool");
        std::thread::sleep(Duration::from_millis(500));
        container.exec(&["sh", "-c", &format!(": >> {TOOL}")]).expect("write-open");
        std::thread::sleep(Duration::from_millis(1500));
        let records = agent.stop().expect("agent stops");
        drop(container);
        let stats = final_stats(&records).expect("stats");
        let file = dir.path().join("alerts.jsonl");
        if format == "falco" {
            let alerts: Vec<&Value> = records.iter().filter(|r| r["rule"].is_string()).collect();
            assert!(alerts.len() >= 3, "{alerts:?}");
            assert!(alerts.iter().any(|a| a["output_fields"]["fd.name"] == "/tmp/new/true"), "{alerts:?}");
            let got = sidekick.accepted.lock().expect("lock").clone();
            assert_eq!(*sidekick.refused.lock().expect("lock"), 0, "falcosidekick refused requests");
            assert_eq!(got.iter().collect::<Vec<_>>(), alerts, "every alert delivered once, in order");
            let s = &stats["alerts"];
            assert_eq!(
                (s["webhook_sent"].as_u64(), s["webhook_lost"].as_u64()),
                (Some(alerts.len() as u64), Some(0)),
                "{s}"
            );
            write_lines(&file, &alerts);
            let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas");
            python(
                "validate_records.py",
                &["--falco", "--schemas", schemas.to_str().expect("utf-8"), file.to_str().expect("utf-8")],
            );
        } else {
            let events: Vec<&Value> = records.iter().filter(|r| r["class_uid"].is_number()).collect();
            let a = events
                .iter()
                .find(|r| r["evidences"][0]["process"]["file"]["path"] == "/tmp/new/true")
                .unwrap_or_else(|| panic!("no OCSF finding: {events:?}"));
            assert_eq!((a["class_uid"].as_u64(), a["type_uid"].as_u64()), (Some(2004), Some(200401)), "{a}");
            assert_eq!(a["evidences"][0]["process"]["container"]["uid"], id.as_str(), "{a}");
            assert_eq!(a["unmapped"]["verdict"], "unknown-binary", "{a}");
            let write = events
                .iter()
                .find(|r| r["unmapped"]["verdict"] == "image-file-written")
                .unwrap_or_else(|| panic!("no write finding: {events:?}"));
            assert_eq!(write["evidences"][0]["file"]["path"], TOOL, "{write}");
            write_lines(&file, &events);
            let said = python("validate_ocsf.py", &[file.to_str().expect("utf-8")]);
            assert!(said.contains(&format!("{} OCSF 1.1.0 records, 0 errors", events.len())), "{said}");
        }
    }
}
