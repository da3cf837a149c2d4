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
    let alerts: Vec<&Value> = records.iter().filter(|r| r["schema"] == "verifier.alert.v1").collect();
    assert!(alerts.is_empty(), "no alert: {alerts:?}");
    assert!(v.iter().any(|(_, r)| r["filename"] == TOOL), "the tool was verified: {v:?}");
    let stats = final_stats(&records).expect("stats");
    let fast = stats["kernel"]["fast_path"].as_u64().expect("fast_path");
    // Until the first verdict enters the kernel map, execs go to the agent
    // (about one a millisecond here): on a loaded machine the first hash and
    // the ring buffer's wake-up take tens of ms, so allow 50 of the 1,000.
    assert!(fast >= 950, "after the first sight, execs of /bin/true stay in the kernel: {stats}");
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

#[test]
fn a_file_swapped_between_exec_and_hash_is_never_ok() {
    require_root!();
    let _lock = exclusive();
    let s = setup(&[]);
    // Run other bytes under a listed path, then put the shipped file back
    // at once: by the time the agent opens the path, it holds the bytes the
    // SBOM lists, but not the file that ran.
    let script = format!(
        "cat /bin/busybox > /tmp/evil; echo >> /tmp/evil; chmod +x /tmp/evil; cp -p {TOOL} /tmp/orig; \
         i=0; while [ $i -lt 20 ]; do mv /tmp/evil {TOOL}; {TOOL}; mv {TOOL} /tmp/evil; \
         cp -p /tmp/orig {TOOL}; i=$((i+1)); done"
    );
    s.container.exec(&["sh", "-c", &script]).expect("swap loop");
    std::thread::sleep(Duration::from_millis(1000));
    let records = s.agent.stop().expect("agent stops");
    let runs: Vec<_> = verdicts(&records, &s.id).into_iter().filter(|(_, r)| r["filename"] == TOOL).collect();
    assert_eq!(runs.len(), 20, "every swapped exec reported: {runs:?}");
    for (verdict, r) in &runs {
        assert_ne!(*verdict, "ok", "a swapped file passed: {r}");
        let sha = r["verification"]["sha256"].as_str();
        assert!(
            matches!(*verdict, "unverifiable" | "modified-binary" | "relocated-binary"),
            "{verdict}: {r}"
        );
        // When it was hashed, it was the file that ran (not the shipped one).
        if let Some(sha) = sha {
            assert_ne!(Some(sha), runs_shipped_digest(&records, &s.id).as_deref(), "{r}");
        }
    }
}

/// The SHA-256 an `ok` exec of the tool had, if any was reported.
fn runs_shipped_digest(records: &[Value], id: &str) -> Option<String> {
    verdicts(records, id)
        .into_iter()
        .find(|(v, r)| *v == "ok" && r["verification"]["path"] == TOOL)
        .and_then(|(_, r)| r["verification"]["sha256"].as_str().map(str::to_owned))
}

#[test]
fn a_symlink_out_of_the_root_is_resolved_inside_it() {
    require_root!();
    let _lock = exclusive();
    let s = setup(&[]);
    // `..` past the container's root stays at its root: in the container
    // this link names /tmp/esc/true. Followed from the host, it would leave
    // the rootfs and land on the host file made below, the image's own tool
    // (which would pass).
    let host_dir = tempfile::tempdir_in("/tmp").expect("host dir");
    let name = host_dir.path().file_name().and_then(|n| n.to_str()).expect("name").to_owned();
    std::fs::write(host_dir.path().join("true"), b"not what ran").expect("host decoy");
    let script = format!(
        "mkdir -p /tmp/{name} /tmp/up && cp /bin/busybox /tmp/{name}/true && \
         echo >> /tmp/{name}/true && ln -s ../../../../../../../../tmp/{name}/true /tmp/up/true && /tmp/up/true"
    );
    s.container.exec(&["sh", "-c", &script]).expect("escape exec");
    let (r, _) = wait_for_verdict(&s.agent, &s.id, "/tmp/up/true", Instant::now());
    assert_eq!(r["verification"]["verdict"], "unknown-binary", "{r}");
    assert_eq!(r["verification"]["path"], format!("/tmp/{name}/true"), "resolved inside the root: {r}");
    assert_eq!(r["verification"]["via"], "path", "{r}");
    let decoy = sha256_hex(b"not what ran");
    assert_ne!(r["verification"]["sha256"], decoy.as_str(), "the host file was not read: {r}");
}

#[test]
fn an_sbom_written_by_dpkg_verifies_the_image() {
    require_root!();
    let _lock = exclusive();
    // Debian's own record of busybox-static's files (MD5 per path), written
    // by dpkg when the package was installed on this machine: the image's
    // /bin/busybox is that file.
    let md5sums = std::path::Path::new("/var/lib/dpkg/info/busybox-static.md5sums");
    assert!(md5sums.is_file(), "busybox-static is installed by `cargo xtask setup`");
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = image::busybox_with_tool(dir.path(), &["sleep", "120"]).expect("bundle");
    let id = unique("vt-dpkg");
    // The mapping comes from a rules file this time (as from a ConfigMap).
    let rules = dir.path().join("sbom-rules");
    std::fs::write(&rules, format!("# container -> SBOM\n{id}={}\n", md5sums.display())).expect("rules");
    let rules = rules.to_str().expect("utf-8").to_owned();
    let agent = Agent::start(&["--stats-interval", "0", "--containers-only", "--sbom-rules", &rules])
        .expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    container.exec(&["/bin/ls", "/"]).expect("ls");
    container.exec(&[TOOL]).expect("tool");
    std::thread::sleep(Duration::from_millis(500));
    let records = agent.stop().expect("agent stops");
    let v = verdicts(&records, &id);
    let (sleep_verdict, sleep) = v.iter().find(|(_, r)| r["filename"] == "/bin/sleep").expect("entrypoint");
    assert_eq!(*sleep_verdict, "ok", "{sleep}");
    let j = &sleep["verification"];
    assert_eq!(j["path"], "/bin/busybox", "{j}");
    assert_eq!(j["weak"], true, "MD5 is all dpkg records: said so: {j}");
    assert_eq!(j["package"]["name"], "busybox-static", "{j}");
    let (tool_verdict, tool) = v.iter().find(|(_, r)| r["filename"] == TOOL).expect("tool");
    assert_eq!(*tool_verdict, "unknown-binary", "dpkg does not list the added tool: {tool}");
}

#[test]
fn code_mapped_from_a_file_not_in_the_sbom_is_library_drift() {
    require_root!();
    let _lock = exclusive();
    let s = setup(&[]);
    s.container
        .exec(&[
            "sh",
            "-c",
            "mkdir -p /tmp/lib && cat /bin/busybox > /tmp/lib/evil.so && echo >> /tmp/lib/evil.so",
        ])
        .expect("drop a library");
    let pid = s.container.pid().expect("pid");
    // The image's own file (listed, and already verified), then one the
    // image never shipped.
    image::mmap_exec_in(pid, &["/bin/busybox", "/tmp/lib/evil.so"], 1500).expect("map as code");
    image::mmap_exec_in(pid, &["/bin/busybox"], 300).expect("map again");
    let records = s.agent.stop().expect("agent stops");
    let libs: Vec<&Value> =
        records.iter().filter(|r| r["type"] == "library" && r["container"]["id"] == s.id.as_str()).collect();
    let by_path = |p: &str| {
        libs.iter()
            .find(|r| r["verification"]["path"] == p)
            .unwrap_or_else(|| panic!("no library record for {p}: {libs:?}"))
    };
    let evil = by_path("/tmp/lib/evil.so");
    assert_eq!(evil["schema"], "verifier.library.v1", "{evil}");
    assert_eq!(evil["verification"]["verdict"], "library-drift", "{evil}");
    assert_eq!(evil["verification"]["file_verdict"], "unknown-binary", "{evil}");
    // busybox was verified when the container ran it: its mappings are
    // answered in the kernel, no record, no alert.
    assert!(libs.iter().all(|r| r["verification"]["path"] != "/bin/busybox"), "{libs:?}");
    let stats = final_stats(&records).expect("stats");
    assert!(stats["kernel"]["mmap_fast_path"].as_u64() >= Some(2), "{stats}");
    assert_eq!(stats["kernel"]["mmap_dropped"], 0, "{stats}");
}

#[test]
fn a_shipped_file_missing_from_the_sbom_is_an_sbom_gap_not_drift() {
    require_root!();
    let _lock = exclusive();
    // An OCI image built and unpacked by umoci (as a runc-based node would):
    // its bundle carries umoci's manifest of the image's own files.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = image::busybox_with_tool(&dir.path().join("src"), &["sleep", "120"]).expect("rootfs");
    let image = verifier_tests::containerd::OciImage::from_rootfs(
        &src.rootfs(),
        &dir.path().join("oci"),
        "gap",
        &["/bin/sleep", "120"],
    )
    .expect("OCI image");
    let bundle = dir.path().join("bundle");
    image.unpack(&bundle).expect("umoci unpack");
    // Its SBOM misses the tool: an incomplete SBOM, as scanners write when
    // a file belongs to no package they know.
    let full = image::generate_sbom(&src, &dir.path().join("full.spdx.json"), "spdx-json").expect("sbom");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&full).expect("read")).expect("json");
    let files = doc["files"].as_array_mut().expect("files");
    let before = files.len();
    files.retain(|f| !f["fileName"].as_str().is_some_and(|n| n.ends_with("opt/tool/true")));
    assert_eq!(files.len(), before - 1, "the tool was listed once");
    let sbom = dir.path().join("partial.spdx.json");
    std::fs::write(&sbom, serde_json::to_vec(&doc).expect("json")).expect("write");

    let id = unique("vt-gap");
    let rule = format!("{id}={}", sbom.display());
    let agent =
        Agent::start(&["--stats-interval", "0", "--containers-only", "--sbom", &rule]).expect("agent");
    let container = Container::run(&bundle, &id).expect("runc run");
    container.exec(&[TOOL]).expect("tool");
    let (gap, _) = wait_for_verdict(&agent, &id, TOOL, Instant::now());
    assert_eq!(gap["verification"]["verdict"], "sbom-gap", "{gap}");
    // Changed in the container: the image's layers say what it was.
    container
        .exec(&["sh", "-c", &format!("cat /bin/busybox > {TOOL}; echo >> {TOOL}; {TOOL}")])
        .expect("change");
    let t = Instant::now();
    let changed = loop {
        let so_far = agent.records_so_far();
        if let Some((_, r)) =
            verdicts(&so_far, &id).into_iter().find(|(v, r)| *v == "modified-binary" && r["filename"] == TOOL)
        {
            break r.clone();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no modified-binary: {so_far:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let records = agent.stop().expect("agent stops");
    drop(container);
    let expected = changed["verification"]["expected"].as_str().expect("expected digest");
    assert_eq!(
        Some(expected.trim_start_matches("sha256:")),
        gap["verification"]["sha256"].as_str(),
        "{changed}"
    );
    let alert = records
        .iter()
        .find(|r| r["type"] == "alert" && r["verdict"] == "sbom-gap")
        .unwrap_or_else(|| panic!("sbom-gap alert: {records:?}"));
    assert_eq!(alert["severity"], "low", "an SBOM-quality finding, not an attack: {alert}");
    assert_eq!(
        alert["image"]["digest"],
        image.manifest_digest().expect("digest").as_str(),
        "from umoci.json: {alert}"
    );
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex_of(&sha2::Sha256::digest(b))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
