//! Pod-equivalent: the agent image built by `cargo xtask image`'s code, run
//! by containerd with exactly the DaemonSet's capabilities, mounts, host
//! pid namespace, read-only root and arguments (`verifier_tests::pod`
//! reads them from deploy/kubernetes/daemonset.yaml). It must verify a
//! neighbouring container (an image binary `ok`, a dropped one an alert in
//! the alert file), verify an exec in its own container against the SBOM
//! inside its image, and answer its probes. It prints its memory and CPU use: the
//! DaemonSet's requests and limits come from these numbers.

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use verifier_tests::{
    agent::verifier_bin,
    agent_image::{self, Stamp},
    bundle::Bundle,
    containerd::{self, CtrContainer, OciImage},
    deb::repo_root,
    exclusive, image, pod, require_root,
};

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait(what: &str, within: Duration, mut f: impl FnMut() -> bool, log: &std::path::Path) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < within,
            "{what} not within {within:?}; agent output:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

#[test]
fn the_daemonset_pod_verifies_its_neighbour_and_itself() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    containerd::ensure_daemon(&dir.path().join("containerd.log")).expect("containerd runs");

    // The agent's image, as `cargo xtask image` builds it.
    let bin = verifier_bin();
    let stamp = Stamp {
        epoch: 1_765_000_000,
        reference: "localhost/verifier:pod-test".into(),
        revision: "test".into(),
    };
    let built =
        agent_image::assemble(&bin, Some(&bin), &dir.path().join("img"), &stamp).expect("agent image");
    eprintln!(
        "agent image: {} layer {} bytes, rootfs {} bytes",
        built.manifest_digest, built.layer_bytes, built.rootfs_bytes
    );
    let agent_image = OciImage { layout: dir.path().join("img/oci"), tag: "pod-test".into() };
    let agent_ref = agent_image.import("localhost/verifier").expect("import the agent image");

    // The neighbour: busybox, its SBOM in the store under its digest.
    let bundle = Bundle::busybox(&dir.path().join("nb"), &["sleep", "60"]).expect("rootfs");
    let nb_image =
        OciImage::from_rootfs(&bundle.rootfs(), &dir.path().join("nb-oci"), "pod", &["/bin/sleep", "60"])
            .expect("neighbour image");
    let digest = nb_image.manifest_digest().expect("digest");
    let nb_ref = nb_image.import("localhost/verifier-test/neighbour").expect("import");
    let store = dir.path().join("sboms");
    let slot = store.join(digest.replace(':', "-"));
    std::fs::create_dir_all(&slot).expect("store");
    image::generate_sbom(&bundle, &slot.join("image.spdx.json"), "spdx-json").expect("neighbour SBOM");

    // The ConfigMap's keys as files; the alert directory.
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let cm = pod::yaml_to_json(&repo_root().join("deploy/kubernetes/configmap.yaml")).expect("configmap");
    for (k, v) in cm["data"].as_object().expect("data") {
        std::fs::write(config.join(k), v.as_str().expect("text")).expect("write key");
    }
    let alerts = dir.path().join("alerts");
    std::fs::create_dir_all(&alerts).expect("alerts dir");

    let spec = pod::PodSpec::from_daemonset(&pod::daemonset().expect("daemonset")).expect("pod spec");
    let local = BTreeMap::from([("config", config), ("sboms", store), ("alerts", alerts.clone())]);
    let port = pod::free_port().expect("port");
    let args: Vec<String> = spec
        .args
        .iter()
        .map(|a| {
            if a.starts_with("--metrics-addr") {
                format!("--metrics-addr=127.0.0.1:{port}")
            } else {
                a.clone()
            }
        })
        .collect();
    let log = dir.path().join("agent.log");
    let id = format!("vt-pod-agent-{}", std::process::id());
    let started = Instant::now();
    let status = Command::new("ctr")
        .args(["--address", containerd::SOCKET, "--namespace", containerd::NAMESPACE, "run", "-d"])
        .arg(format!("--log-uri=file://{}", log.display()))
        .args(spec.ctr_options(&local).expect("ctr options"))
        .args(["--env=NODE_NAME=pod-test", "--env=VERIFIER_LOG=warn"])
        .arg(&agent_ref)
        .arg(&id)
        .args(["/verifier", "agent"])
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("ctr run");
    assert!(status.success(), "ctr run of the agent failed");
    let agent = CtrContainer { id: id.clone() };
    wait(
        "readiness",
        Duration::from_secs(60),
        || pod::get(port, "/readyz").is_some_and(|(c, _)| c == 200),
        &log,
    );
    let to_ready = started.elapsed();
    assert_eq!(pod::get(port, "/healthz").map(|r| r.0), Some(200), "liveness");
    let agent_pid = agent.pid().expect("agent pid");
    let want =
        spec.capabilities.iter().fold(0u64, |m, c| m | 1 << pod::cap_number(c).expect("known capability"));
    assert_eq!(pod::effective_caps(agent_pid).expect("caps"), want, "exactly the manifest's capabilities");
    let cpu_start = cpu_ticks(agent_pid);
    let t0 = Instant::now();

    // Dogfood: an exec in the agent's own container (as `kubectl exec`
    // would run one) is judged against the SBOM inside the agent's image.
    // (The start-up scan leaves the agent's own process out.)
    agent.exec(&["/verifier", "--version"]).expect("exec in the agent's container");
    wait(
        "the exec in the agent's own container judged",
        Duration::from_secs(20),
        || {
            lines(&log).iter().any(|r| {
                r["type"] == "exec"
                    && r["container"]["id"] == id.as_str()
                    && r["verification"]["verdict"].is_string()
            })
        },
        &log,
    );

    let nid = format!("vt-pod-nb-{}", std::process::id());
    let neighbour = CtrContainer::run(&nb_ref, &nid, &[]).expect("neighbour runs");
    neighbour.exec(&["/bin/ls", "/"]).expect("image binary");
    neighbour
        .exec(&["sh", "-c", "mkdir -p /tmp/x && cat /bin/busybox > /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true && /tmp/x/true"])
        .expect("dropped binary");
    // A binary in another user's private directory: hashing it needs
    // CAP_DAC_READ_SEARCH (uid 0 without it is refused like anyone else).
    neighbour
        .exec(&["sh", "-c", "mkdir -p /home/u && cat /bin/busybox > /home/u/true && echo x >> /home/u/true && chmod 0700 /home/u/true /home/u && chown -R 1000:1000 /home/u && /home/u/true"])
        .expect("private binary");
    let alert_file = alerts.join("alerts.jsonl");
    wait(
        "the drift alert in the alert file",
        Duration::from_secs(20),
        || {
            lines(&alert_file)
                .iter()
                .any(|a| a["container"]["id"] == nid.as_str() && a["file"]["path"] == "/tmp/x/true")
        },
        &log,
    );
    wait(
        "the private binary's alert",
        Duration::from_secs(20),
        || {
            lines(&alert_file)
                .iter()
                .any(|a| a["container"]["id"] == nid.as_str() && a["file"]["path"] == "/home/u/true")
        },
        &log,
    );
    let (code, metrics) = pod::get(port, "/metrics").expect("metrics answer");
    assert_eq!(code, 200);
    assert!(metrics.contains("verifier_build_info"), "{metrics}");
    let cpu = cpu_ticks(agent_pid) - cpu_start;
    let busy = t0.elapsed();
    let rss: f64 =
        metrics.lines().find_map(|l| l.strip_prefix("verifier_max_rss_bytes ")?.parse().ok()).unwrap_or(0.0);

    // SIGTERM, as the kubelet stops a pod: final stats, then gone.
    let _ = Command::new("ctr")
        .args([
            "--address",
            containerd::SOCKET,
            "--namespace",
            containerd::NAMESPACE,
            "tasks",
            "kill",
            "-s",
            "SIGTERM",
            &id,
        ])
        .status();
    wait(
        "final stats",
        Duration::from_secs(30),
        || lines(&log).iter().any(|r| r["type"] == "stats" && r["final"] == true),
        &log,
    );
    let records = lines(&log);
    drop(neighbour);
    drop(agent);

    let verdict = |cid: &str, f: &str| {
        records
            .iter()
            .find(|r| {
                r["type"] == "exec"
                    && r["container"]["id"] == cid
                    && r["filename"] == f
                    && r["verification"]["verdict"].is_string()
            })
            .map(|r| r["verification"]["verdict"].clone())
    };
    // busybox is judged once, at the entrypoint; `ls` (busybox again) is
    // then answered in the kernel's fast path.
    assert_eq!(verdict(&nid, "/bin/sleep"), Some("ok".into()), "neighbour's image binary: {records:#?}");
    assert_eq!(verdict(&nid, "/tmp/x/true"), Some("unknown-binary".into()));
    let private =
        lines(&alert_file).into_iter().find(|a| a["file"]["path"] == "/home/u/true").expect("alert");
    assert!(private["file"]["sha256"].is_string(), "a private binary is hashed: {private}");
    let own: Vec<&Value> =
        records.iter().filter(|r| r["type"] == "exec" && r["container"]["id"] == id.as_str()).collect();
    assert!(
        own.iter().all(|r| r["verification"]["verdict"] == "ok"),
        "the agent's own container is not clean: {own:#?}"
    );
    let alerts_seen = lines(&alert_file);
    assert!(
        alerts_seen.iter().all(|a| a["container"]["id"] != id.as_str()),
        "the agent alerted on itself: {alerts_seen:#?}"
    );
    assert!(
        records.iter().any(|r| r["type"] == "ready" && r["node"] == "pod-test"),
        "NODE_NAME from the environment"
    );
    let stats = records.iter().rev().find(|r| r["type"] == "stats").expect("stats");
    assert_eq!(stats["kernel"]["dropped"], 0, "{stats}");
    let tick = 100.0; // USER_HZ
    eprintln!("pod agent: ready {:.2} s after `ctr run`", to_ready.as_secs_f64());
    eprintln!(
        "pod agent: peak RSS {:.1} MiB; CPU {:.2} s over {:.1} s ({:.1}% of a core) while verifying",
        rss / 1_048_576.0,
        cpu as f64 / tick,
        busy.as_secs_f64(),
        100.0 * cpu as f64 / tick / busy.as_secs_f64()
    );
}
