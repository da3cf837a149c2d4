//! Root tier: the fleet's alert stream on NATS JetStream. Three agents
//! (three node names, as three nodes would be) watch the same runc
//! container and publish its drift to one stream; `verifier alerts tail`
//! reads the stream. The server is killed after the first alerts, more
//! drift happens while it is down, and it comes back on the same storage:
//! the reader gets every alert of every agent exactly once, and the
//! agents' stats show the retries and no loss.

use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, final_stats},
    exclusive,
    image::{self},
    nats::{self, NatsServer},
    require_root,
    runc::Container,
};

const NODES: [&str; 3] = ["fleet-a", "fleet-b", "fleet-c"];

/// Drops a copy of busybox (changed by one line, so its digest is new) at
/// `/tmp/<name>/true` and runs it.
fn drift(c: &Container, name: &str) {
    let script = format!(
        "mkdir -p /tmp/{name} && cat /bin/busybox > /tmp/{name}/true && echo {name} >> /tmp/{name}/true && chmod +x /tmp/{name}/true && /tmp/{name}/true"
    );
    c.exec(&["sh", "-c", &script]).expect("drop and run a binary");
}

fn alerts_of(records: &[Value]) -> Vec<Value> {
    records.iter().filter(|r| r["schema"] == "verifier.alert.v1").cloned().collect()
}

/// Waits until every agent printed at least `n` alert records.
fn wait_alerts(agents: &[Agent], n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let counts: Vec<usize> = agents.iter().map(|a| alerts_of(&a.records_so_far()).len()).collect();
        if counts.iter().all(|&c| c >= n) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "alerts per agent {counts:?}, want {n} each");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Records keyed by their identity: the alert id, the node, the record
/// type and the time. A duplicate would count 2.
fn by_identity(records: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        let key = format!("{} {} {} {}", r["node"], r["alert_id"], r["type"], r["time"]);
        *m.entry(key).or_default() += 1;
    }
    m
}

#[test]
fn every_agents_alerts_reach_the_reader_once_across_a_server_restart() {
    require_root!();
    if nats::server_bin().is_none() {
        eprintln!("skipped: nats-server is not installed (cargo xtask setup installs it)");
        return;
    }
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("jetstream");
    let bundle = image::busybox_with_tool(dir.path(), &["sleep", "300"]).expect("bundle");
    let sbom =
        image::generate_sbom(&bundle, &dir.path().join("sbom.cdx.json"), "cyclonedx-json").expect("sbom");
    let id = format!("vt-fleet-{}", std::process::id());
    let rule = format!("{id}={}", sbom.display());
    let port = nats::free_port().expect("port");
    let server = NatsServer::start(port, &store).expect("nats-server starts");
    let url = server.url();

    let agents: Vec<Agent> = NODES
        .iter()
        .map(|node| {
            Agent::start(&[
                "--stats-interval",
                "0",
                "--containers-only",
                "--sbom",
                &rule,
                "--node-name",
                node,
                "--alert-nats",
                &url,
            ])
            .expect("agent starts")
        })
        .collect();
    let container = Container::run(&bundle.dir, &id).expect("runc run");

    // 1. The server is up: the first alert of every agent is stored.
    drift(&container, "d1");
    wait_alerts(&agents, 1);
    let (first, all) = nats::tail(&url, NODES.len(), Duration::from_secs(20), &[]).expect("tail");
    assert!(all, "the first alerts reached the stream: {first:?}");

    // 2. The server dies; drift goes on.
    server.stop();
    drift(&container, "d2");
    drift(&container, "d3");
    wait_alerts(&agents, 3);
    std::thread::sleep(Duration::from_secs(2));

    // 3. Back on the same storage: the queued alerts arrive.
    let server = NatsServer::start(port, &store).expect("nats-server starts again");
    let want = 3 * NODES.len();
    let (_, all) = nats::tail(&url, want, Duration::from_secs(60), &[]).expect("tail");
    assert!(all, "the alerts queued while the server was down arrived");

    let mut emitted = Vec::new();
    for (node, agent) in NODES.iter().zip(agents) {
        let records = agent.stop().expect("agent stops");
        let alerts = alerts_of(&records);
        let stats = final_stats(&records).expect("stats");
        let s = &stats["alerts"];
        assert_eq!(s["nats_lost"], 0, "{node}: {s}");
        assert_eq!(s["nats_sent"].as_u64(), Some(alerts.len() as u64), "{node}: {s}");
        // A publish made while the server is away is either retried by the
        // sink (its ack timed out) or held by the client until it
        // reconnects, depending on timing: both are fine as long as
        // nothing is lost, which the reader below proves. The counter is
        // there either way.
        assert!(s["nats_retries"].as_u64().is_some(), "{node}: retries counted: {s}");
        eprintln!("{node}: nats_sent={} nats_retries={}", s["nats_sent"], s["nats_retries"]);
        assert!(alerts.iter().all(|a| a["node"] == *node), "{node}");
        emitted.extend(alerts);
    }
    drop(container);

    // Everything the agents emitted, once: a reader asking for one more
    // record than that times out with exactly that.
    let (got, all) =
        nats::tail(&url, emitted.len() + 1, Duration::from_secs(5), &["--subject", "verifier.alerts.>"])
            .expect("tail");
    assert!(!all, "no record beyond those emitted");
    assert_eq!(by_identity(&got), by_identity(&emitted), "every alert of every agent, exactly once");
    assert!(by_identity(&got).values().all(|&n| n == 1));
    let drift_paths: Vec<&str> = got.iter().filter_map(|r| r["file"]["path"].as_str()).collect();
    for d in ["/tmp/d1/true", "/tmp/d2/true", "/tmp/d3/true"] {
        assert_eq!(drift_paths.iter().filter(|p| **p == d).count(), NODES.len(), "{d} from every node");
    }
    drop(server);
}
