//! Root tier, end to end: a real runc container of a locally built image,
//! its SBOM written by `verifier sbom generate`, the agent verifying every
//! exec. Image binaries pass (and then stay in the kernel fast path); what
//! was not shipped, or was changed, is drift with the right verdict.

use std::time::{Duration, Instant};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs, final_stats},
    exclusive,
    image::{self, TOOL},
    require_root,
    runc::Container,
};

fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A verifying agent and a running container of the test image.
struct Setup {
    _dir: tempfile::TempDir,
    agent: Agent,
    container: Container,
    id: String,
}

fn setup(extra: &[&str]) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = image::busybox_with_tool(dir.path(), &["sleep", "120"]).expect("bundle");
    let sbom = image::generate_sbom(&bundle, &dir.path().join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let id = unique("vt-drift");
    let rule = format!("{id}={}", sbom.display());
    let mut args = vec!["--stats-interval", "0", "--containers-only", "--sbom", &rule];
    args.extend_from_slice(extra);
    let agent = Agent::start(&args).expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    Setup { _dir: dir, agent, container, id }
}

fn verdicts<'a>(records: &'a [Value], id: &str) -> Vec<(&'a str, &'a Value)> {
    execs(records)
        .filter(|r| r["container"]["id"] == id)
        .filter_map(|r| Some((r["verification"]["verdict"].as_str()?, r)))
        .collect()
}

/// Waits until an exec record for `filename` in container `id` has a
/// verdict; returns it and how long that took.
fn wait_for_verdict(agent: &Agent, id: &str, filename: &str, since: Instant) -> (Value, Duration) {
    loop {
        if let Some(r) = agent.records_so_far().into_iter().find(|r| {
            r["type"] == "exec"
                && r["container"]["id"] == id
                && r["filename"] == filename
                && r["verification"]["verdict"].is_string()
        }) {
            return (r, since.elapsed());
        }
        assert!(since.elapsed() < Duration::from_secs(10), "no verdict for {filename} within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_thousand_image_execs_raise_nothing_and_stay_in_the_kernel() {
    require_root!();
    let _lock = exclusive();
    let s = setup(&[]);
    s.container
        .exec(&["sh", "-c", "i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done; /opt/tool/true"])
        .expect("exec loop");
    let records = s.agent.stop().expect("agent stops");
    let v = verdicts(&records, &s.id);
    let drift: Vec<_> = v.iter().filter(|(verdict, _)| *verdict != "ok").collect();
    assert!(drift.is_empty(), "image binaries are not drift: {drift:?}");
    assert!(v.iter().any(|(_, r)| r["filename"] == TOOL), "the tool was verified: {v:?}");
    let stats = final_stats(&records).expect("stats");
    let fast = stats["kernel"]["fast_path"].as_u64().expect("fast_path");
    assert!(fast >= 990, "after the first sight, execs of /bin/true stay in the kernel: {stats}");
    let k = &stats["kernel"];
    let n = |x: &Value| x.as_u64().expect("number");
    assert_eq!(
        n(&k["seen"]),
        n(&k["sent"]) + n(&k["dropped"]) + n(&k["filtered"]) + n(&k["fast_path"]) + n(&k["throttled"]),
        "{stats}"
    );
    assert_eq!(stats["lost"], 0, "{stats}");
}

#[test]
fn drift_gets_the_right_verdict_fast() {
    require_root!();
    let _lock = exclusive();
    let s = setup(&[]);
    // A new binary (busybox with a byte appended: runs, other digest).
    let t0 = Instant::now();
    s.container
        .exec(&[
            "sh",
            "-c",
            "mkdir /tmp/new; cat /bin/busybox > /tmp/new/true; echo >> /tmp/new/true; chmod +x /tmp/new/true; /tmp/new/true",
        ])
        .expect("new");
    let (new, latency) = wait_for_verdict(&s.agent, &s.id, "/tmp/new/true", t0);
    assert_eq!(new["verification"]["verdict"], "unknown-binary", "{new}");
    assert!(latency < Duration::from_secs(1), "unknown-binary reported in {latency:?}");
    assert!(new["verification"]["sha256"].as_str().is_some_and(|h| h.len() == 64));

    // A copy of a shipped binary elsewhere.
    s.container
        .exec(&["sh", "-c", "mkdir /tmp/copy; cp /bin/busybox /tmp/copy/true; /tmp/copy/true"])
        .expect("copy");
    let (copy, _) = wait_for_verdict(&s.agent, &s.id, "/tmp/copy/true", Instant::now());
    assert_eq!(copy["verification"]["verdict"], "relocated-binary", "{copy}");
    assert_eq!(copy["verification"]["listed_at"][0], "/bin/busybox", "{copy}");

    // An image binary, verified (and so in the fast path), then
    // overwritten in place and run.
    s.container.exec(&[TOOL]).expect("tool");
    let (tool, _) = wait_for_verdict(&s.agent, &s.id, TOOL, Instant::now());
    assert_eq!(tool["verification"]["verdict"], "ok", "{tool}");
    s.container.exec(&["sh", "-c", &format!("cat /tmp/new/true > {TOOL}; {TOOL}")]).expect("overwrite");
    let t = Instant::now();
    loop {
        let records = s.agent.records_so_far();
        if verdicts(&records, &s.id).iter().any(|(v, r)| *v == "modified-binary" && r["filename"] == TOOL) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no modified-binary for {TOOL}: {records:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Run from memory inside the container: fileless.
    let pid = s.container.pid().expect("pid");
    image::memfd_exec_in(pid, std::path::Path::new("/bin/busybox"), 1).expect("memfd exec");
    let t = Instant::now();
    let fileless = loop {
        let records = s.agent.records_so_far();
        if let Some((_, r)) = verdicts(&records, &s.id).into_iter().find(|(v, _)| *v == "fileless") {
            break r.clone();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no fileless verdict: {records:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(fileless["filename"].as_str().is_some_and(|f| f.starts_with("/dev/fd/")), "{fileless}");

    // The write-open of the verified tool was reported.
    let records = s.agent.stop().expect("agent stops");
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "write" && r["path"] == TOOL && r["verdict"] == "image-file-written"),
        "write-open of {TOOL} reported: {:?}",
        records.iter().filter(|r| r["type"] == "write").collect::<Vec<_>>()
    );
}

#[test]
fn hostile_names_and_links_are_handled_inside_the_root() {
    require_root!();
    let _lock = exclusive();
    let s = setup(&[]);
    // A newline and a non-UTF-8 byte in the name; an absolute symlink that
    // must resolve inside the container (the host has no such tool); a
    // path of about 4 KiB.
    let deep = "d".repeat(200);
    let script = format!(
        "d=\"/tmp/$(printf 'a\\nb\\377')\"; mkdir \"$d\" && cp /bin/busybox \"$d/true\" && \"$d/true\"; \
         mkdir /tmp/abs && ln -s {TOOL} /tmp/abs/true && /tmp/abs/true; \
         p=/tmp; for i in $(seq 19); do p=$p/{deep}; done; mkdir -p $p && cp /bin/busybox $p/true && $p/true"
    );
    s.container.exec(&["sh", "-c", &script]).expect("hostile execs");
    std::thread::sleep(Duration::from_millis(1500));
    let records = s.agent.stop().expect("agent stops");
    let v = verdicts(&records, &s.id);
    let odd = v.iter().find(|(_, r)| r["filename_hex"].is_string()).expect("the non-UTF-8 name was reported");
    assert_eq!(odd.1["filename_hex"], hex_of(b"/tmp/a\nb\xff/true"), "exact bytes kept: {}", odd.1);
    assert_eq!(odd.0, "relocated-binary", "{}", odd.1);
    assert_eq!(odd.1["verification"]["path_hex"], hex_of(b"/tmp/a\nb\xff/true"));
    let abs = v.iter().find(|(_, r)| r["filename"] == "/tmp/abs/true").expect("symlink exec reported");
    assert_eq!(abs.0, "ok", "{}", abs.1);
    assert_eq!(abs.1["verification"]["path"], TOOL, "resolved inside the container root: {}", abs.1);
    let long =
        v.iter().find(|(_, r)| r["filename"].as_str().is_some_and(|f| f.len() > 3800)).unwrap_or_else(|| {
            panic!("no long path: {:?}", v.iter().map(|(v, r)| (v, &r["filename"])).collect::<Vec<_>>())
        });
    assert_eq!(long.0, "relocated-binary", "{}", long.1);
    let len = long.1["filename"].as_str().map_or(0, str::len);
    assert!(len > 3800, "a {len}-byte path is carried whole");
    assert_eq!(long.1["verification"]["path"], long.1["filename"], "and resolved whole");
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
