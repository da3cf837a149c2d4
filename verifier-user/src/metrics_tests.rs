//! The exposition parsed line by line, and the server over a real socket.

use std::io::{Read as _, Write as _};

use serde_json::json;

use super::*;

fn stats(seen: u64) -> Value {
    json!({
        "schema": "verifier.stats.v1", "type": "stats", "final": false, "uptime_sec": 1.5, "max_rss_kib": 12000,
        "kernel": {"seen": seen, "dropped": 0, "per_cpu": {"seen": [seen - 1, 1]}},
        "user": {"received": 5, "throttle_active": 0},
        "alerts": {"emitted": {"unknown-binary": 2, "fileless": 1}, "suppressed": 0, "webhook_refused": {"400": 3}},
        "lost": 0,
        "blocks": {"mechanism=tracepoint-kill,verdict=unknown-binary,action=blocked": 2}
    })
}

#[test]
fn the_exposition_is_well_formed_and_complete() {
    let text = render(&stats(10));
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample");
        value.parse::<f64>().unwrap_or_else(|_| panic!("value of {line}"));
        let name = series.split('{').next().expect("name");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        assert!(typed.contains(name), "TYPE before samples: {line}");
    }
    assert!(text.contains("verifier_kernel_seen_total 10\n"), "{text}");
    assert!(!text.contains("per_cpu"), "per-CPU copies duplicate the totals: {text}");
    assert!(text.contains("verifier_alerts_emitted_total{verdict=\"fileless\"} 1\n"), "{text}");
    assert!(text.contains("verifier_alerts_webhook_refused_total{status=\"400\"} 3\n"), "{text}");
    assert!(text.contains("verifier_lost_total 0\n"));
    assert!(
        text.contains(
            "verifier_blocks_total{mechanism=\"tracepoint-kill\",verdict=\"unknown-binary\",action=\"blocked\"} 2\n"
        ),
        "{text}"
    );
    assert!(text.contains(&format!("verifier_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn levels_are_in_base_units_and_help_names_the_real_field() {
    let text = render(&stats(10));
    assert!(
        text.contains("# TYPE verifier_max_rss_bytes gauge\nverifier_max_rss_bytes 12288000\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE verifier_uptime_seconds gauge\nverifier_uptime_seconds 1.5\n"), "{text}");
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(samples.iter().all(|l| !l.contains("_kib") && !l.contains("_sec ")), "{text}");
    for line in text.lines().filter(|l| l.starts_with("# HELP verifier_") && !l.contains("build_info")) {
        let field = line.split('`').nth(1).unwrap_or_else(|| panic!("no field in {line}"));
        // The named field exists in the record.
        let mut v = &stats(10);
        for part in field.split('.') {
            v = &v[part];
        }
        assert!(!v.is_null(), "HELP names a field that is not in the record: {line}");
    }
}

fn get(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(request.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

#[test]
fn serves_metrics_and_health_and_survives_bad_clients() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let shared = Shared::default();
    let addr = rt.block_on(serve("127.0.0.1:0".parse().expect("addr"), shared.clone())).expect("bind");
    // Drive the runtime on a thread while the test plays the client.
    let handle =
        std::thread::spawn(move || rt.block_on(async { tokio::time::sleep(Duration::from_secs(4)).await }));
    let (code, body) = get(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((code, body.trim()), (503, "starting: no stats yet"));
    assert_eq!(get(addr, "GET /readyz HTTP/1.1\r\n\r\n").0, 503, "not ready before the first stats");
    shared.publish(&stats(10));
    assert_eq!(get(addr, "GET /healthz HTTP/1.1\r\n\r\n").0, 200);
    assert_eq!(get(addr, "GET /readyz HTTP/1.1\r\n\r\n").0, 200);
    // A client that connects and says nothing does not hold others up.
    let _slow = std::net::TcpStream::connect(addr).expect("slow client");
    let (code, body) = get(addr, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(code, 200);
    assert!(body.contains("verifier_kernel_seen_total 10"), "{body}");
    shared.publish(&stats(20));
    assert!(
        get(addr, "GET /metrics HTTP/1.1\r\n\r\n").1.contains("verifier_kernel_seen_total 20"),
        "counters move"
    );
    assert_eq!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(get(addr, "garbage\r\n\r\n").0, 400);
    assert_eq!(get(addr, &format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000))).0, 431);
    shared.stopping();
    assert_eq!(get(addr, "GET /healthz HTTP/1.1\r\n\r\n").0, 503);
    assert_eq!(get(addr, "GET /readyz HTTP/1.1\r\n\r\n").0, 503);
    handle.join().expect("runtime thread");
}

#[test]
fn a_taken_address_says_what_to_do() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let e = rt.block_on(serve(addr, Shared::default())).expect_err("in use");
    assert!(e.to_string().contains("--metrics-addr"), "{e}");
}

#[test]
fn a_crowd_of_idle_clients_cannot_starve_the_liveness_probe() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let shared = Shared::default();
    shared.publish(&stats(1));
    let addr = rt.block_on(serve("127.0.0.1:0".parse().expect("addr"), shared.clone())).expect("bind");
    let handle =
        std::thread::spawn(move || rt.block_on(async { tokio::time::sleep(Duration::from_secs(6)).await }));
    // 200 clients that connect and say nothing (held open until the end).
    let idle: Vec<std::net::TcpStream> =
        (0..200).map(|_| std::net::TcpStream::connect(addr).expect("idle client")).collect();
    for i in 0..20 {
        let asked = Instant::now();
        let mut s = std::net::TcpStream::connect(addr).expect("probe connects");
        s.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
        s.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").expect("send");
        let mut out = String::new();
        let read = s.read_to_string(&mut out);
        assert!(
            read.is_ok() && out.starts_with("HTTP/1.1 200"),
            "probe {i}: {read:?} {out:?} after {:?}",
            asked.elapsed()
        );
        assert!(asked.elapsed() < Duration::from_secs(1), "probe {i} took {:?}", asked.elapsed());
    }
    drop(idle);
    handle.join().expect("runtime thread");
}
