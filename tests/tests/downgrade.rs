//! Root tier: no cheap way from a high `unknown-binary` down to a medium
//! `unverifiable` (or up to a false `fileless`), in real runc containers
//! under the agent with the image's SBOM. A dropped binary is reported
//! `unknown-binary` whether it is deleted right after its exec, exits at
//! once, or is padded past `--max-hash-bytes`; an image binary run through
//! a descriptor is that binary, `ok`. A dropped library mapped by a
//! process that exits at once is named (the kernel walks its path at the
//! mapping) and `unknown-binary`, with its digest while the file exists.

use std::time::Duration;

use serde_json::Value;
use verifier_tests::{
    agent::Agent,
    dropped::{Image, alerts, unique, verdict_of, wait_for},
    exclusive, image, require_root,
    runc::Container,
};

/// The exec record and alert of a dropped binary: `unknown-binary`, high,
/// at `path`; returns the record's SHA-256 (if it was hashed).
fn assert_unknown(agent: Agent, id: &str, path: &str) -> (Value, Option<String>) {
    let record = wait_for(&agent, Duration::from_secs(10), verdict_of(id, path)).expect("a verdict");
    let records = agent.stop().expect("agent stops");
    let v = &record["verification"];
    assert_eq!(v["verdict"], "unknown-binary", "{record}");
    assert_eq!(v["path"], path, "{record}");
    let alert = alerts(&records, id)
        .into_iter()
        .find(|a| a["file"]["path"] == path)
        .unwrap_or_else(|| panic!("an alert for {path}: {records:#?}"));
    assert_eq!(
        (alert["verdict"].as_str(), alert["severity"].as_str()),
        (Some("unknown-binary"), Some("high"))
    );
    assert_eq!(alert["file"]["sha256"], v["sha256"], "the alert carries the record's digest: {alert}");
    (record.clone(), v["sha256"].as_str().map(str::to_owned))
}

#[test]
fn a_dropped_binary_deleted_right_after_its_exec_is_unknown() {
    require_root!();
    let _lock = exclusive();
    let image = Image::new(&["sleep", "120"]).expect("image");
    let id = unique("vt-dg-del");
    let agent = image.agent(&id, &[]).expect("agent");
    let c = Container::run(&image.bundle.dir, &id).expect("runc run");
    // Deleted as soon as it runs, while it keeps running.
    c.exec(&[
        "sh",
        "-c",
        "mkdir -p /tmp/d && cat /bin/busybox > /tmp/d/sleep && echo dropped >> /tmp/d/sleep && \
         chmod +x /tmp/d/sleep && { /tmp/d/sleep 30 >/dev/null 2>&1 & p=$!; \
         while [ \"$(readlink /proc/$p/exe)\" != /tmp/d/sleep ]; do :; done; rm /tmp/d/sleep; }",
    ])
    .expect("exec then delete");
    let (record, sha) = assert_unknown(agent, &id, "/tmp/d/sleep");
    assert!(sha.is_some_and(|h| h.len() == 64), "read through the running process: {record}");
}

#[test]
fn a_dropped_binary_that_exits_at_once_is_unknown_with_its_digest() {
    require_root!();
    let _lock = exclusive();
    let image = Image::new(&["sleep", "120"]).expect("image");
    let id = unique("vt-dg-exit");
    let agent = image.agent(&id, &[]).expect("agent");
    let c = Container::run(&image.bundle.dir, &id).expect("runc run");
    let out = c
        .exec(&[
            "sh",
            "-c",
            "mkdir -p /tmp/e && cat /bin/busybox > /tmp/e/true && echo dropped >> /tmp/e/true && \
             chmod +x /tmp/e/true && /tmp/e/true && sha256sum /tmp/e/true",
        ])
        .expect("exec");
    let expected =
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned();
    let (record, sha) = assert_unknown(agent, &id, "/tmp/e/true");
    assert_eq!(sha.as_deref(), Some(expected.as_str()), "{record}");
}

#[test]
fn a_dropped_binary_padded_past_the_hashing_cap_is_unknown() {
    require_root!();
    let _lock = exclusive();
    let image = Image::new(&["sleep", "120"]).expect("image");
    let id = unique("vt-dg-big");
    // Busybox is about 2 MiB: a 4 MiB cap hashes the image, not the 6 MiB drop.
    let agent = image.agent(&id, &["--max-hash-bytes", "4194304"]).expect("agent");
    let c = Container::run(&image.bundle.dir, &id).expect("runc run");
    c.exec(&[
        "sh",
        "-c",
        "mkdir -p /tmp/big && { cat /bin/busybox; head -c 4194304 /dev/zero; } > /tmp/big/true && \
         chmod +x /tmp/big/true && /tmp/big/true",
    ])
    .expect("exec");
    let (record, sha) = assert_unknown(agent, &id, "/tmp/big/true");
    assert_eq!(sha, None, "not hashed: {record}");
    let reason = record["verification"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not hashed") && reason.contains("over --max-hash-bytes"), "{reason}");
}

#[test]
fn an_image_binary_run_through_a_descriptor_is_that_binary() {
    require_root!();
    let _lock = exclusive();
    let image = Image::new(&["sleep", "120"]).expect("image");
    let id = unique("vt-dg-fd");
    // Without the fast path every exec reaches the agent, this one too.
    let agent = image.agent(&id, &["--no-fast-path"]).expect("agent");
    let c = Container::run(&image.bundle.dir, &id).expect("runc run");
    // busybox named `3` has no such applet and exits: it was still run.
    c.exec(&["sh", "-c", "exec 3</bin/busybox; /proc/self/fd/3 true; exit 0"]).expect("exec");
    let record =
        wait_for(&agent, Duration::from_secs(10), verdict_of(&id, "/proc/self/fd/3")).expect("a verdict");
    let records = agent.stop().expect("agent stops");
    let v = &record["verification"];
    assert_eq!(v["verdict"], "ok", "{record}");
    assert_eq!(v["path"], "/bin/busybox", "{record}");
    assert!(v["sha256"].as_str().is_some_and(|h| h.len() == 64), "{record}");
    let raised = alerts(&records, &id);
    assert!(raised.is_empty(), "nothing raised: {raised:#?}");
}

#[test]
fn a_dropped_library_mapped_by_a_process_that_exits_at_once_is_named_and_unknown() {
    require_root!();
    let _lock = exclusive();
    let image = Image::new(&["sleep", "120"]).expect("image");
    let id = unique("vt-dg-lib");
    let agent = image.agent(&id, &[]).expect("agent");
    let c = Container::run(&image.bundle.dir, &id).expect("runc run");
    let out = c
        .exec(&[
            "sh",
            "-c",
            "mkdir -p /tmp/l && cat /bin/busybox > /tmp/l/evil.so && echo dropped >> /tmp/l/evil.so && \
             cp /tmp/l/evil.so /tmp/l/gone.so && echo gone >> /tmp/l/gone.so && sha256sum /tmp/l/evil.so",
        ])
        .expect("drop two libraries");
    let expected =
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned();
    let pid = c.pid().expect("pid");
    // Mapped, then the process exits at once; the second is also deleted.
    image::mmap_exec_and_exit_in(pid, &["/tmp/l/evil.so"], false).expect("map and exit");
    image::mmap_exec_and_exit_in(pid, &["/tmp/l/gone.so"], true).expect("map, delete and exit");
    let is_lib = |path: &'static str| {
        let id = id.clone();
        move |r: &Value| {
            r["type"] == "library" && r["container"]["id"] == id.as_str() && r["verification"]["path"] == path
        }
    };
    let libraries = |agent: &Agent| -> Vec<Value> {
        agent
            .records_so_far()
            .into_iter()
            .filter(|r| r["type"] == "library" && r["container"]["id"] != "")
            .filter(|r| !r["container"]["id"].as_str().unwrap_or("").starts_with("verifier-bench"))
            .collect()
    };
    let evil = match wait_for(&agent, Duration::from_secs(10), is_lib("/tmp/l/evil.so")) {
        Ok(r) => r,
        Err(e) => {
            let all = agent.stop().expect("stop");
            let stats = verifier_tests::agent::final_stats(&all).expect("stats");
            panic!("evil.so: {e}: {stats:#}")
        }
    };
    let gone = wait_for(&agent, Duration::from_secs(10), is_lib("/tmp/l/gone.so"))
        .unwrap_or_else(|e| panic!("gone.so: {e}: {:#?}", libraries(&agent)));
    let records = agent.stop().expect("agent stops");
    for (record, sha) in [(&evil, Some(expected.as_str())), (&gone, None)] {
        let v = &record["verification"];
        assert_eq!(v["verdict"], "library-drift", "{record}");
        assert_eq!(
            v["file_verdict"], "unknown-binary",
            "never unverifiable because the process exited: {record}"
        );
        if let Some(sha) = sha {
            assert_eq!(v["sha256"], sha, "hashed at the path the kernel walked: {record}");
        }
        let path = v["path"].as_str().expect("path");
        let alert = alerts(&records, &id)
            .into_iter()
            .find(|a| a["file"]["path"] == path)
            .unwrap_or_else(|| panic!("an alert for {path}: {records:#?}"));
        assert_eq!(alert["severity"], "high", "{alert}");
    }
}
