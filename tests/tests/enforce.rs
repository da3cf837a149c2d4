//! Root tier: enforcement on this kernel (tracepoint-kill). Real runc
//! containers, the real programs. Every payload's first act is to write a
//! marker file inside its container: a blocked payload must leave none
//! (not one of its instructions ran), and be reported as a `block` record
//! and an alert with `action: blocked`. A dry-run container beside it runs
//! the same payloads (markers written) and reports `would-block`; a
//! container only verified (alerts) runs them with no block at all.

use std::time::Duration;

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, final_stats},
    bundle::Bundle,
    enforce::{
        blocks, dropped_script, exec_any, killed, marker_library, memfd_payload_in, modified_script,
        wait_active,
    },
    evasion::wait_for,
    exclusive,
    image::{self, TOOL},
    real_image::{RealImage, workload_script},
    require_root,
    runc::Container,
};

fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

const MARKERS: [&str; 4] = ["m-dropped", "m-modified", "m-memfd", "m-library"];

/// Runs the four payloads in a container; returns whether each process
/// that could be watched directly (memfd, library mapping) was killed.
fn payloads(c: &Container, busybox: &std::path::Path) -> (bool, bool) {
    exec_any(&c.id, &dropped_script(MARKERS[0])).expect("dropped binary");
    exec_any(&c.id, &modified_script(TOOL, MARKERS[1])).expect("modified binary");
    let pid = c.pid().expect("pid");
    let memfd = memfd_payload_in(pid, busybox, MARKERS[2]).expect("memfd payload");
    // A dropped file mapped as code (this image is static busybox: no
    // dynamic loader; the real-image test loads a real library).
    let library = image::mmap_exec_in(pid, &["/tmp/x/sh"], 0);
    if library.is_ok() {
        std::fs::write(
            std::path::Path::new(&format!("/proc/{pid}/root/tmp")).join(MARKERS[3]),
            b"mapped and returned",
        )
        .expect("library marker");
    }
    (killed(&memfd), library.is_err())
}

fn markers(bundle: &Bundle) -> Vec<bool> {
    MARKERS.iter().map(|m| bundle.rootfs().join("tmp").join(m).exists()).collect()
}

#[test]
fn payloads_are_killed_before_they_run_and_reported_beside_untouched_containers() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("vt-enf");
    let ids: Vec<String> = ["e", "d", "a"].iter().map(|s| format!("{prefix}-{s}")).collect();
    let bundles: Vec<Bundle> = ids
        .iter()
        .map(|id| image::busybox_with_tool(&dir.path().join(id), &["sleep", "120"]).expect("bundle"))
        .collect();
    let sbom =
        image::generate_sbom(&bundles[0], &dir.path().join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let rule = format!("{prefix}-*={}", sbom.display());
    let agent = Agent::start(&[
        "--stats-interval",
        "0",
        "--containers-only",
        "--sbom",
        &rule,
        "--enforce",
        &ids[0],
        "--enforce-dry-run",
        &ids[1],
        "--enforce-measure",
    ])
    .expect("agent starts");
    assert_eq!(agent.ready["enforcement"]["mechanism"], "tracepoint-kill", "{}", agent.ready);
    // This host refuses BPF LSM programs: the agent tried them (a
    // container is enforced), says why not, and falls back.
    let why = agent.ready["enforcement"]["unavailable"]["bpf-lsm"].as_str().unwrap_or_default();
    assert!(why.contains("LSM program lsm_exec") || why.contains("active LSMs"), "{}", agent.ready);
    assert_eq!(agent.ready["enforcement"]["requested"], "auto", "{}", agent.ready);
    // In-kernel measurement (asked for) rides on BPF LSM: inactive here,
    // and says so.
    let measure = &agent.ready["enforcement"]["measure"];
    assert_eq!(measure["active"], false, "{}", agent.ready);
    assert!(measure["reason"].as_str().is_some_and(|r| r.contains("needs bpf-lsm")), "{}", agent.ready);
    let containers: Vec<Container> =
        ids.iter().zip(&bundles).map(|(id, b)| Container::run(&b.dir, id).expect("runc run")).collect();
    let active = wait_active(&agent, &ids[0]).expect("enforced");
    assert!(active["allowed"].as_u64().is_some_and(|n| n >= 2), "busybox and the tool: {active}");
    wait_active(&agent, &ids[1]).expect("dry-run");

    let busybox = bundles[0].rootfs().join("bin/busybox");
    let outcomes: Vec<(bool, bool)> = containers.iter().map(|c| payloads(c, &busybox)).collect();
    assert_eq!(outcomes[0], (true, true), "memfd payload and mapping killed in the enforced container");
    assert_eq!(outcomes[1], (false, false), "dry-run kills nothing");
    assert_eq!(outcomes[2], (false, false), "verified-only kills nothing");
    assert_eq!(markers(&bundles[0]), [false; 4], "no payload instruction ran in the enforced container");
    assert_eq!(markers(&bundles[1]), [true; 4], "dry-run: every payload ran");
    assert_eq!(markers(&bundles[2]), [true; 4], "alert-only: every payload ran");

    // Each block reported with the file's verdict once judged.
    let want = ["unknown-binary", "modified-binary", "fileless", "library-drift"];
    for (id, action) in [(&ids[0], "blocked"), (&ids[1], "would-block")] {
        for verdict in want {
            wait_for(&agent, Duration::from_secs(10), |r| {
                r["type"] == "block" && r["container"]["id"] == *id && r["verdict"] == verdict
            })
            .unwrap_or_else(|e| panic!("{id}: no {verdict} block: {e}: {:#?}", agent.records_so_far()));
        }
        let records = agent.records_so_far();
        assert!(
            blocks(&records, id).iter().all(|b| b["action"] == action && b["mechanism"] == "tracepoint-kill")
        );
    }
    drop(containers);
    let records = agent.stop().expect("agent stops");
    assert!(blocks(&records, &ids[2]).is_empty(), "a verified-only container is never blocked");
    let enforced = blocks(&records, &ids[0]);
    assert!(enforced.iter().all(|b| b["signal_rc"] == 0 && b["rule"] == format!("--enforce {}", ids[0])));
    let alerts: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "alert" && r["action"] == "blocked" && r["container"]["id"] == ids[0])
        .collect();
    for verdict in want {
        assert!(alerts.iter().any(|a| a["verdict"] == verdict), "a blocked {verdict} alert: {alerts:#?}");
    }
    let stats = final_stats(&records).expect("stats");
    let killed_in_kernel = stats["kernel"]["blocked"].as_u64().expect("kernel.blocked");
    assert_eq!(killed_in_kernel as usize, enforced.len(), "only the enforced container's payloads: {stats}");
    let counted: u64 = stats["blocks"]
        .as_object()
        .expect("blocks")
        .iter()
        .filter(|(k, _)| k.ends_with("action=blocked"))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(counted as usize, enforced.len(), "{stats}");
}

#[test]
fn the_agents_death_stops_enforcement() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let id = unique("vt-enf-kill");
    let bundle = image::busybox_with_tool(dir.path(), &["sleep", "120"]).expect("bundle");
    let sbom = image::generate_sbom(&bundle, &dir.path().join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let rule = format!("{id}={}", sbom.display());
    let agent =
        Agent::start(&["--stats-interval", "0", "--containers-only", "--sbom", &rule, "--enforce", &id])
            .expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    wait_active(&agent, &id).expect("enforced");
    exec_any(&id, &dropped_script("m-before")).expect("payload");
    assert!(!bundle.rootfs().join("tmp/m-before").exists(), "blocked while the agent runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.pid() as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill -9");
    drop(agent);
    // The programs' links and maps were the agent's file descriptors:
    // they are gone with it (after an RCU grace period).
    std::thread::sleep(Duration::from_millis(500));
    exec_any(&id, &dropped_script("m-after")).expect("payload");
    assert!(bundle.rootfs().join("tmp/m-after").exists(), "fail-open: nothing blocks without the agent");
    drop(container);
}

#[test]
fn a_debian_workload_runs_unblocked_and_a_dropped_library_does_not_load() {
    require_root!();
    let _lock = exclusive();
    let image = RealImage::find().expect("the real image (built by `cargo xtask setup`)");
    let sbom = image.sources().into_iter().find(|(n, _)| *n == "verifier-spdx").expect("verifier-spdx").1;
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("vt-enf-real");
    let (e, a) = (format!("{prefix}-e"), format!("{prefix}-a"));
    let rule = format!("{prefix}-*={}", sbom.display());
    let agent =
        Agent::start(&["--stats-interval", "0", "--containers-only", "--sbom", &rule, "--enforce", &e])
            .expect("agent starts");
    let bundles: Vec<Bundle> = [&e, &a]
        .iter()
        .map(|id| {
            let d = dir.path().join(id);
            std::fs::create_dir_all(&d).expect("bundle dir");
            image.bundle(&d, &["sleep", "300"]).expect("bundle")
        })
        .collect();
    let ce = Container::run(&bundles[0].dir, &e).expect("runc run");
    let ca = Container::run(&bundles[1].dir, &a).expect("runc run");
    let active = wait_active(&agent, &e).expect("enforced");
    println!(
        "pre-verification of the real image: {} listed, {} allowed, {} refused, {:.0} ms, {} bytes hashed",
        active["listed"],
        active["allowed"],
        active["refused_total"],
        active["preverify_ms"].as_f64().unwrap_or(0.0),
        active["hashed_bytes"]
    );
    let script = workload_script();
    for c in [&ce, &ca] {
        c.exec(&["sh", "-c", &script]).expect("workload");
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = agent.records_so_far();
    assert!(
        blocks(&before, &e).is_empty(),
        "the image's own workload is never blocked: {:#?}",
        blocks(&before, &e)
    );

    let lib = marker_library(dir.path(), "m-lib").expect("library");
    for c in [&ce, &ca] {
        let pid = c.pid().expect("pid");
        std::fs::copy(&lib, format!("/proc/{pid}/root/tmp/libmarker.so")).expect("drop the library");
        exec_any(&c.id, "LD_PRELOAD=/tmp/libmarker.so /bin/true").expect("preload");
    }
    let marker = |c: &Container| {
        std::path::Path::new(&format!("/proc/{}/root/tmp/m-lib", c.pid().expect("pid"))).exists()
    };
    assert!(!marker(&ce), "the dropped library's constructor never ran in the enforced container");
    assert!(marker(&ca), "it did in the verified-only container");
    let block = wait_for(&agent, Duration::from_secs(10), |r| {
        r["type"] == "block" && r["container"]["id"] == e && r["event"] == "library"
    })
    .expect("library block");
    assert_eq!(
        (block["action"].as_str(), block["verdict"].as_str()),
        (Some("blocked"), Some("library-drift")),
        "{block}"
    );
    drop((ce, ca));
    let records = agent.stop().expect("agent stops");
    assert_eq!(blocks(&records, &e).len(), 1, "only the library: {:#?}", blocks(&records, &e));
    assert!(blocks(&records, &a).is_empty());
}

#[test]
fn a_policy_rule_enforces_its_containers_and_a_staged_rule_only_reports() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = [unique("vt-enf-pol"), unique("vt-enf-stg")];
    let mut bundles = Vec::new();
    for (id, name) in ids.iter().zip(["strict", "staged"]) {
        let b = image::busybox_with_tool(&dir.path().join(name), &["sleep", "120"]).expect("bundle");
        image::annotate(&b, &[("io.verifier.container.name", name)]).expect("annotate");
        bundles.push((id.clone(), b));
    }
    let sbom =
        image::generate_sbom(&bundles[0].1, &dir.path().join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let rule = format!("vt-enf-*={}", sbom.display());
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"version = 1
[[rule]]
name = "strict"
mode = "enforce"
[rule.match]
containers = ["strict"]

[[rule]]
name = "staged"
mode = "enforce"
stage = { audit_for = "1h" }
[rule.match]
containers = ["staged"]
"#,
    )
    .expect("policy");
    let agent = Agent::start(&[
        "--stats-interval",
        "0",
        "--containers-only",
        "--sbom",
        &rule,
        "--policy",
        policy.to_str().expect("utf-8"),
    ])
    .expect("agent starts");
    let containers: Vec<Container> =
        bundles.iter().map(|(id, b)| Container::run(&b.dir, id).expect("runc run")).collect();
    for (id, _) in &bundles {
        wait_active(&agent, id).expect("enforcement active");
    }
    for (id, _) in &bundles {
        exec_any(id, &dropped_script("m-policy")).expect("payload");
    }
    let strict_ran = bundles[0].1.rootfs().join("tmp/m-policy").exists();
    let staged_ran = bundles[1].1.rootfs().join("tmp/m-policy").exists();
    assert!(!strict_ran, "the enforce rule's container must not run the dropped binary");
    assert!(staged_ran, "a staged rule only reports until the image has been clean for audit_for");
    for id in &ids {
        wait_for(&agent, Duration::from_secs(10), |r| r["type"] == "block" && r["container"]["id"] == *id)
            .unwrap_or_else(|e| panic!("{id}: no block record: {e}: {:#?}", agent.records_so_far()));
    }
    let records = agent.records_so_far();
    let strict = blocks(&records, &ids[0]);
    let staged = blocks(&records, &ids[1]);
    assert!(
        strict.iter().any(|b| b["action"] == "blocked" && b["rule"] == "policy rule strict"),
        "{strict:#?}"
    );
    assert!(
        staged.iter().all(|b| b["action"] == "would-block" && b["rule"] == "policy rule staged"),
        "{staged:#?}"
    );
    drop(containers);
    let records = agent.stop().expect("agent stops");
    let stats = final_stats(&records).expect("final stats");
    assert!(stats["kernel"]["blocked"].as_u64() >= Some(1), "{stats}");
}

#[test]
fn a_write_to_an_image_file_kills_the_writer_where_writes_are_enforced_and_is_only_reported_elsewhere() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("vt-enf-w");
    let ids = [format!("{prefix}-w"), format!("{prefix}-x")];
    let bundles: Vec<Bundle> = ids
        .iter()
        .map(|id| image::busybox_with_tool(&dir.path().join(id), &["sleep", "120"]).expect("bundle"))
        .collect();
    let sbom =
        image::generate_sbom(&bundles[0], &dir.path().join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let rule = format!("{prefix}-*={}", sbom.display());
    let pattern = format!("{prefix}-*");
    // Both containers are enforced; only the first has its writes enforced.
    let agent = Agent::start(&[
        "--stats-interval",
        "0",
        "--containers-only",
        "--sbom",
        &rule,
        "--enforce",
        &pattern,
        "--enforce-writes",
        &ids[0],
    ])
    .expect("agent starts");
    assert_eq!(agent.ready["enforcement"]["mechanism"], "tracepoint-kill", "{}", agent.ready);
    let containers: Vec<Container> =
        ids.iter().zip(&bundles).map(|(id, b)| Container::run(&b.dir, id).expect("runc run")).collect();
    for id in &ids {
        wait_active(&agent, id).expect("enforced");
    }
    let tool = |b: &Bundle| std::fs::read(b.rootfs().join(TOOL.trim_start_matches('/'))).expect("tool bytes");
    let before: Vec<Vec<u8>> = bundles.iter().map(tool).collect();
    let outs: Vec<_> =
        ids.iter().map(|id| exec_any(id, &format!("echo x >> {TOOL}")).expect("runc exec")).collect();
    assert!(killed(&outs[0].status) || outs[0].status.code() == Some(137), "writer killed: {:?}", outs[0]);
    assert_eq!(tool(&bundles[0]), before[0], "the enforced image file is unchanged");
    assert!(outs[1].status.success(), "not write-enforced: the write goes through: {:?}", outs[1]);
    assert_ne!(tool(&bundles[1]), before[1], "the write happened");

    let block = wait_for(&agent, Duration::from_secs(10), |r| {
        r["type"] == "block" && r["container"]["id"] == ids[0] && r["event"] == "write"
    })
    .unwrap_or_else(|e| panic!("no write block: {e}: {:#?}", agent.records_so_far()));
    assert_eq!(
        (&block["action"], &block["mechanism"], &block["verdict"]),
        (&Value::from("blocked"), &Value::from("tracepoint-kill"), &Value::from("image-file-written")),
        "{block}"
    );
    assert_eq!(block["reasons"], serde_json::json!(["image-file"]), "{block}");
    assert_eq!(block["path"], TOOL, "the kernel walked the written file's path: {block}");
    wait_for(&agent, Duration::from_secs(10), |r| {
        r["type"] == "write" && r["container"]["id"] == ids[1] && r["path"] == TOOL
    })
    .unwrap_or_else(|e| {
        panic!("the other container's write is reported: {e}: {:#?}", agent.records_so_far())
    });
    drop(containers);
    let records = agent.stop().expect("agent stops");
    assert!(
        blocks(&records, &ids[1]).iter().all(|b| b["event"] != "write"),
        "no write block where writes are not enforced"
    );
    assert!(
        records.iter().any(|r| r["type"] == "alert"
            && r["action"] == "blocked"
            && r["verdict"] == "image-file-written"),
        "a blocked alert for the write"
    );
}
