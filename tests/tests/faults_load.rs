//! The real agent under load that is not exec volume: a crowd of slow
//! clients on its metrics port (the liveness probe must keep answering),
//! and container churn (the attribution cache must return to its base
//! size). Each test prints its numbers for `cargo xtask faults`.

use std::{
    io::Write as _,
    net::TcpStream,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;
use verifier_tests::{
    agent::{Agent, final_stats},
    bundle::Bundle,
    exclusive,
    fault::{free_port, http_get, http_status, report, sample},
    require_root,
};

#[test]
fn two_hundred_slow_clients_do_not_starve_healthz_or_exec_processing() {
    require_root!();
    let _lock = exclusive();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let agent = Agent::start(&["--stats-interval", "0", "--metrics-addr", &addr]).expect("agent starts");
    // 100 that connect and say nothing; 100 that trickle a /metrics
    // request a byte at a time and never finish it.
    let mut idle: Vec<TcpStream> =
        (0..100).map(|_| TcpStream::connect(&addr).expect("idle client")).collect();
    let mut slow: Vec<TcpStream> =
        (0..100).map(|_| TcpStream::connect(&addr).expect("slow client")).collect();
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n";
    let mut probes = Vec::new();
    for i in 0..30 {
        // A byte more from each slow client (those the agent dropped fail).
        for s in &mut slow {
            let _ = s.write_all(&request[i % request.len()..][..1]);
        }
        for _ in 0..20 {
            Command::new("/bin/true").status().expect("exec /bin/true");
        }
        let asked = Instant::now();
        let status = http_status(port, "/healthz", Duration::from_secs(1));
        probes.push((status, asked.elapsed()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let answered = probes.iter().filter(|(s, _)| *s == Ok(200)).count();
    let slowest = probes.iter().map(|(_, t)| *t).max().unwrap_or_default();
    idle.clear();
    slow.clear();
    let stopping = Instant::now();
    let records = agent.stop().expect("agent stops");
    let stop_ms = stopping.elapsed().as_millis();
    let stats = final_stats(&records).expect("stats");
    let me = std::process::id();
    let true_execs = records
        .iter()
        .filter(|r| r["type"] == "exec" && r["filename"] == "/bin/true" && r["ppid"] == me)
        .count();
    report(
        "200 slow clients on the metrics port",
        "every /healthz probe 200 within 1 s, execs still processed, SIGTERM stops the agent",
        json!({"probes": probes.len(), "answered_200": answered, "slowest_probe_ms": slowest.as_millis(),
               "true_execs_reported": true_execs, "lost": stats["lost"], "stop_ms": stop_ms}),
    );
    assert_eq!(answered, probes.len(), "probes: {probes:?}");
    assert!(slowest < Duration::from_secs(1), "slowest probe {slowest:?}");
    assert_eq!(true_execs, 30 * 20, "every exec reported while the clients hung on");
}

/// `verifier_user_cgroups_cached` from a scrape (`None` when unavailable).
fn cached(port: u16) -> Option<u64> {
    let (_, body) = http_get(port, "/metrics", Duration::from_secs(2)).ok()?;
    sample(&body, "verifier_user_cgroups_cached").map(|v| v as u64)
}

#[test]
fn container_churn_leaves_the_attribution_cache_at_its_base_size() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = Bundle::busybox(dir.path(), &["true"]).expect("bundle");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let agent = Agent::start(&["--stats-interval", "0", "--containers-only", "--metrics-addr", &addr])
        .expect("agent");
    std::thread::sleep(Duration::from_millis(1500));
    let base = cached(port).expect("cgroups_cached before");
    // The peak, sampled while containers come and go.
    let peak = Arc::new(AtomicU64::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(n) = cached(port) {
                    peak.fetch_max(n, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let churn = 150;
    let started = Instant::now();
    for i in 0..churn {
        // Foreground `runc run`: the container runs `true`, exits, and
        // runc deletes it (and its cgroup).
        let status = Command::new("runc")
            .args(["run", "--bundle"])
            .arg(&bundle.dir)
            .arg(format!("vt-churn-{}-{i}", std::process::id()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runc run");
        assert!(status.success(), "runc run {i}: {status}");
    }
    let churn_secs = started.elapsed().as_secs_f64();
    // The agent sweeps gone cgroups every 30 s.
    let until = Instant::now() + Duration::from_secs(40);
    let mut after = cached(port);
    while after.is_none_or(|n| n > base) && Instant::now() < until {
        // (Another workload's container may keep it above base: the
        // wait then ends at the deadline.)
        std::thread::sleep(Duration::from_millis(500));
        after = cached(port);
    }
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let records = agent.stop().expect("agent stops");
    let stats = final_stats(&records).expect("stats");
    let ids: std::collections::BTreeSet<&str> = records
        .iter()
        .filter(|r| r["type"] == "exec")
        .filter_map(|r| r["container"]["id"].as_str())
        .collect();
    let (containers, others): (Vec<&str>, Vec<&str>) =
        ids.into_iter().partition(|id| id.starts_with("vt-churn-"));
    let peak = peak.load(Ordering::Relaxed);
    report(
        "150 short-lived runc containers",
        "user.cgroups_cached grows with live containers and is back to its base size after the 30 s sweep",
        json!({"base": base, "peak": peak, "after_sweep": after, "containers_seen": containers.len(),
               "other_containers_on_the_node": others,
               "churn_secs": churn_secs, "final_cgroups_cached": stats["user"]["cgroups_cached"]}),
    );
    assert!(containers.len() >= churn * 9 / 10, "{} of {churn} containers attributed", containers.len());
    assert!(peak >= base + 10, "the cache grew while containers lived: base {base}, peak {peak}");
    // Containers of other workloads on the node may come and stay meanwhile.
    let allowed = base + others.len() as u64;
    assert!(
        after.is_some_and(|n| n <= allowed),
        "back to base {base} (+{others:?}) after the sweep: {after:?}, peak {peak}"
    );
}
