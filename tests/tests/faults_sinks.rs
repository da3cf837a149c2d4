//! The alert sinks under the faults of a real node, against the real
//! agent: the alert file deleted under it, its filesystem full (a 1 MiB
//! tmpfs), a webhook receiver that never answers, and stdout gone at
//! shutdown with the final stats still written where they can be. Each test prints its counters for `cargo xtask
//! faults` before asserting the documented behaviour (docs/alerts.md).

use std::{
    io::Write as _,
    net::TcpListener,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use verifier_tests::{
    agent::{Agent, final_stats},
    bundle::Bundle,
    exclusive,
    fault::{final_stats_in, report, sigterm_and_wait, start_piped},
    image, require_root,
    runc::Container,
};

/// A container of the busybox image under an agent that alerts to `file`
/// (plus `extra` options).
fn agent_with_alert_file(dir: &Path, file: &Path, extra: &[&str]) -> (Agent, Container, Bundle) {
    let bundle = image::busybox_with_tool(dir, &["sleep", "120"]).expect("bundle");
    let sbom = image::generate_sbom(&bundle, &dir.join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let id = format!("vt-faultsink-{}", std::process::id());
    let rule = format!("{id}={}", sbom.display());
    let file_arg = file.to_str().expect("utf-8");
    let mut args = vec!["--stats-interval", "0", "--containers-only", "--no-metrics", "--sbom", &rule];
    args.extend(["--alert-file", file_arg]);
    args.extend(extra);
    let agent = Agent::start(&args).expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    (agent, container, bundle)
}

/// Drops and runs `/tmp/<name>/true` for each name: busybox plus the name,
/// so each is a new file with its own digest (one `unknown-binary` alert).
fn drop_and_run(c: &Container, names: &[&str]) {
    let script: String = names
        .iter()
        .map(|n| {
            let f = format!("/tmp/{n}/true");
            format!("mkdir -p /tmp/{n} && cat /bin/busybox > {f} && echo {n} >> {f} && chmod +x {f} && {f}; ")
        })
        .collect();
    c.exec(&["sh", "-c", &script]).expect("drop and run");
}

/// Waits up to 20 s for alerts on stdout naming each of `names`.
fn wait_alerts(agent: &Agent, names: &[&str]) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let records = agent.records_so_far();
        let seen = |n: &&str| {
            records
                .iter()
                .any(|r| r["type"] == "alert" && r["file"]["path"] == format!("/tmp/{n}/true").as_str())
        };
        if names.iter().all(seen) {
            return;
        }
        assert!(Instant::now() < until, "no alert for every one of {names:?} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every line of the alert file, each of which must be whole JSON.
fn file_records(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "the file ends inside a line: {text:?}");
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line in the alert file ({e}): {l:?}"))
        })
        .collect()
}

fn paths(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["type"] == "alert")
        .filter_map(|r| r["file"]["path"].as_str())
        .map(String::from)
        .collect()
}

#[test]
fn a_deleted_alert_file_is_opened_anew_and_counted() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("alerts.jsonl");
    let (agent, container, _bundle) = agent_with_alert_file(dir.path(), &file, &[]);
    drop_and_run(&container, &["before"]);
    wait_alerts(&agent, &["before"]);
    assert_eq!(paths(&file_records(&file)), ["/tmp/before/true"]);
    std::fs::remove_file(&file).expect("delete the alert file");
    drop_and_run(&container, &["after"]);
    wait_alerts(&agent, &["after"]);
    let records = agent.stop().expect("agent stops");
    drop(container);
    let stats = final_stats(&records).expect("stats")["alerts"].clone();
    let in_file = paths(&file_records(&file));
    let mode = std::fs::metadata(&file).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    report(
        "alert file deleted",
        "the path is opened anew (created 0600) for the next alert, alerts.file_reopens counts it, nothing lost",
        json!({"file_reopens": stats["file_reopens"], "file_errors": stats["file_errors"],
               "alerts_in_new_file": in_file, "mode": format!("{mode:o}")}),
    );
    assert_eq!(in_file, ["/tmp/after/true"], "the new file holds the later alert");
    assert_eq!(mode, 0o600);
    assert_eq!(
        (stats["file_reopens"].as_u64(), stats["file_errors"].as_u64()),
        (Some(1), Some(0)),
        "{stats}"
    );
}

/// A tmpfs of `size` mounted at `dir` for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -t tmpfs at {}", dir.display());
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with `filler`, then frees one page: the
/// next few kilobytes fit, what follows does not.
fn fill_but_a_page(filler: &Path) {
    let mut f = std::fs::File::create(filler).expect("filler");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let len = f.metadata().expect("filler size").len();
    f.set_len(len.saturating_sub(4096)).expect("free a page");
}

#[test]
fn a_full_disk_loses_counted_alerts_never_a_torn_line_and_recovers() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = Tmpfs::mount(&dir.path().join("small"), "1m");
    let file = mount.0.join("alerts.jsonl");
    let filler = mount.0.join("filler");
    let (agent, container, _bundle) = agent_with_alert_file(dir.path(), &file, &[]);
    fill_but_a_page(&filler);
    // About three alerts fit in the page left; the rest find the disk full.
    let full: Vec<String> = (0..8).map(|i| format!("full{i}")).collect();
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    drop_and_run(&container, &full);
    wait_alerts(&agent, &full);
    let during = file_records(&file).len();
    std::fs::remove_file(&filler).expect("space returns");
    drop_and_run(&container, &["room"]);
    wait_alerts(&agent, &["room"]);
    let records = agent.stop().expect("agent stops");
    drop(container);
    let stats = final_stats(&records).expect("stats")["alerts"].clone();
    let in_file = file_records(&file);
    let on_stdout = records.iter().filter(|r| r["schema"] == "verifier.alert.v1").count();
    let errors = stats["file_errors"].as_u64().unwrap_or(0);
    report(
        "alert file on a full disk",
        "whole lines or none, lines not written counted in alerts.file_errors, writing resumes when space returns",
        json!({"file_errors": errors, "lines_while_full": during, "lines_at_end": in_file.len(),
               "alert_records_on_stdout": on_stdout}),
    );
    assert!(errors > 0 && during < full.len(), "the disk was full: {stats}");
    assert!(paths(&in_file).contains(&"/tmp/room/true".to_owned()), "recovered: {in_file:?}");
    assert_eq!(in_file.len() as u64 + errors, on_stdout as u64, "every alert line written or counted");
}

/// A webhook receiver that accepts everything and keeps each record.
fn receiver() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some(body) = verifier_tests::http::read_body(&mut conn) else { continue };
            if let Ok(Value::Array(items)) = serde_json::from_slice(&body) {
                store.lock().expect("lock").extend(items);
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (port, got)
}

#[test]
fn with_stdout_closed_the_final_stats_reach_the_alert_file_webhook_and_stderr() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    // An SBOM no container matches: verification (and so the alert sinks)
    // is on, and nothing is ever read from it.
    let sbom = dir.path().join("sbom.cdx.json");
    std::fs::write(&sbom, r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#).expect("sbom");
    let rule = format!("vt-no-such-container-*={}", sbom.display());
    let file = dir.path().join("alerts.jsonl");
    let (port, hooked) = receiver();
    let hook = format!("http://127.0.0.1:{port}/");
    let stderr = dir.path().join("stderr");
    let args = ["--no-metrics", "--stats-interval", "1", "--sbom", &rule, "--webhook-url", &hook];
    let file_arg = file.to_str().expect("utf-8");
    let (mut child, reader) = start_piped(&[&args[..], &["--alert-file", file_arg]].concat(), &stderr);
    drop(reader);
    for _ in 0..50 {
        Command::new("/bin/true").status().expect("exec /bin/true");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let stopping = Instant::now();
    let status = sigterm_and_wait(&mut child, Duration::from_secs(10));
    let stop_ms = stopping.elapsed().as_millis();
    let text = std::fs::read_to_string(&stderr).expect("stderr");
    let in_stderr = final_stats_in(&text);
    let in_file = file_records(&file);
    let in_file = in_file.iter().find(|r| r["type"] == "stats" && r["final"] == true);
    let hooked = hooked.lock().expect("lock").clone();
    let in_hook = hooked.iter().find(|r| r["type"] == "stats" && r["final"] == true);
    let summary = text.lines().find(|l| l.contains("did not take the final stats")).unwrap_or_default();
    report(
        "stdout closed at shutdown",
        "exit 3; the final stats on stderr (after a one-line summary), in the alert file and to the webhook",
        json!({"exit": status.code(), "stop_ms": stop_ms, "stdout_lost": in_stderr["user"]["stdout_lost"],
               "in_alert_file": in_file.is_some(), "to_webhook": in_hook.is_some(), "summary": summary}),
    );
    assert_eq!(status.code(), Some(3), "{text}");
    assert!(summary.ends_with("written here and to the alert file and the alert webhook"), "{text}");
    assert!(in_stderr["user"]["stdout_lost"].as_u64() > Some(0), "{in_stderr}");
    assert_eq!(in_file, Some(&in_stderr), "the alert file has the same final stats");
    assert_eq!(in_hook, Some(&in_stderr), "the webhook got the same final stats: {hooked:?}");
}

#[test]
fn a_webhook_that_never_answers_costs_shutdown_at_most_its_deadline_and_is_counted() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    // Accepts every connection and never reads or answers: each POST hangs
    // until the agent's own timeout.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let hook = format!("http://127.0.0.1:{port}/");
    let file = dir.path().join("alerts.jsonl");
    let (agent, container, _bundle) =
        agent_with_alert_file(dir.path(), &file, &["--webhook-url", &hook, "--webhook-flush-ms", "100"]);
    let names = ["hung1", "hung2", "hung3"];
    drop_and_run(&container, &names);
    wait_alerts(&agent, &names);
    let stopping = Instant::now();
    let records = agent.stop().expect("agent stops");
    let stop_ms = stopping.elapsed().as_millis();
    drop(container);
    let stats = final_stats(&records).expect("stats")["alerts"].clone();
    let alerts = records.iter().filter(|r| r["schema"] == "verifier.alert.v1").count() as u64;
    report(
        "webhook receiver that never answers",
        "SIGTERM still ends the agent (5 s webhook deadline); undelivered alerts in alerts.webhook_lost; the file has them all",
        json!({"stop_ms": stop_ms, "alerts": alerts, "webhook_sent": stats["webhook_sent"],
               "webhook_lost": stats["webhook_lost"], "in_file": file_records(&file).len()}),
    );
    assert!(stop_ms < 8_000, "stopped after {stop_ms} ms");
    assert_eq!(
        (stats["webhook_sent"].as_u64(), stats["webhook_lost"].as_u64()),
        (Some(0), Some(alerts)),
        "{stats}"
    );
    assert_eq!(file_records(&file).len() as u64, alerts, "the file sink is not held back by the webhook");
}
