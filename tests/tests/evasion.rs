//! Root tier: no cheap way past the verifier from inside a container.
//!
//! - Swap and restore: a payload written over an image binary in place,
//!   run, and the original written back, within one timestamp tick, leaves
//!   the file's identity (dev, inode, size, ctime) as it was; the agent
//!   would hash the restored original. The kernel remembers the write-open
//!   (`WRITTEN`), so every such exec is reported and never judged `ok`.
//! - Chroot and exit: a payload run in a `chroot` inside the container, at
//!   a path that in the container's root names a listed file, and gone
//!   before the agent looks. The kernel reports the task's root at the
//!   exec, so the agent never resolves the path in the container's root:
//!   the exec is `unknown-binary`, marked `"root": "chroot"`.

use std::{process::Command, time::Duration};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs},
    evasion::{self, stage_swap, swap_script},
    exclusive,
    image::{self, TOOL},
    require_root,
    runc::Container,
};

const SWAPS: usize = 20;

/// An agent verifying a running container of the test image (with `extra`
/// arguments), once the container is watched (its entrypoint judged).
fn setup(
    dir: &std::path::Path,
    tag: &str,
    extra: &[&str],
) -> (Agent, Container, String, verifier_tests::bundle::Bundle) {
    let bundle = image::busybox_with_tool(dir, &["sleep", "120"]).expect("bundle");
    let sbom = image::generate_sbom(&bundle, &dir.join("sbom.spdx.json"), "spdx-json").expect("sbom");
    let id = format!("vt-{tag}-{}", std::process::id());
    let rule = format!("{id}={}", sbom.display());
    let mut args = vec!["--stats-interval", "0", "--containers-only", "--sbom", &rule];
    args.extend_from_slice(extra);
    let agent = Agent::start(&args).expect("agent starts");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    evasion::wait_for(&agent, Duration::from_secs(10), |r| {
        r["type"] == "exec" && r["container"]["id"] == id.as_str() && r["verification"]["verdict"].is_string()
    })
    .expect("the container is verified");
    (agent, container, id, bundle)
}

#[test]
fn a_payload_swapped_in_and_out_within_a_tick_is_never_ok() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, container, id, bundle) = setup(dir.path(), "swap", &[]);
    stage_swap(&bundle).expect("payload");
    // From the container's shell (as an intruder would), then as tight as
    // one process can make it (most of those land within one tick).
    container.exec(&["sh", "-c", &swap_script(SWAPS as u32 / 2)]).expect("swap loop");
    let pid = container.pid().expect("pid");
    evasion::swap_tight(pid, SWAPS as u32 / 2).expect("tight swap loop");
    // Then the same file mapped as code, as a library would be.
    image::mmap_exec_in(pid, &[TOOL], 300).expect("map as code");
    std::thread::sleep(Duration::from_millis(1000));
    let records = agent.stop().expect("agent stops");
    drop(container);

    let runs: Vec<&Value> =
        execs(&records).filter(|r| r["container"]["id"] == id.as_str() && r["filename"] == TOOL).collect();
    let mut by_verdict = std::collections::BTreeMap::<String, usize>::new();
    for r in &runs {
        *by_verdict.entry(r["verification"]["verdict"].as_str().unwrap_or("none").to_owned()).or_default() +=
            1;
    }
    eprintln!("swapped execs by verdict: {by_verdict:?}");
    assert_eq!(runs.len(), SWAPS, "every exec of the swapped file reported: {runs:?}");
    for r in &runs {
        let v = &r["verification"];
        assert_eq!(v["verdict"], "modified-binary", "a swapped exec: {r}");
        assert_eq!(r["written"], true, "the kernel flagged it: {r}");
        assert!(v["reason"].as_str().is_some_and(|s| s.contains("opened for writing")), "{r}");
    }
    let alert = records
        .iter()
        .find(|r| r["type"] == "alert" && r["verdict"] == "modified-binary" && r["file"]["path"] == TOOL)
        .unwrap_or_else(|| panic!("an alert for {TOOL}: {records:?}"));
    assert_eq!(alert["severity"], "high", "{alert}");

    let lib = records
        .iter()
        .find(|r| r["type"] == "library" && r["verification"]["path"] == TOOL)
        .unwrap_or_else(|| panic!("the written file's mapping was reported: {records:?}"));
    assert_eq!(lib["verification"]["verdict"], "library-drift", "{lib}");
    assert_eq!(lib["verification"]["file_verdict"], "modified-binary", "{lib}");
}

/// Makes `/tmp/jail/bin/true` in the container: busybox with one byte
/// appended (other bytes than anything listed; still runs as the `true`
/// applet), at a path that in the container's root is a listed file.
const JAIL: &str = "busybox mkdir -p /tmp/jail/bin && cp /bin/busybox /tmp/jail/bin/true \
                    && echo >> /tmp/jail/bin/true";

#[test]
fn a_chrooted_payload_gone_before_it_is_judged_is_unknown_not_its_namesake() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, container, id, _bundle) = setup(dir.path(), "chroot", &[]);
    // A legitimate exec first: the image's own tool, never run before.
    container.exec(&[TOOL]).expect("the tool runs");
    container.exec(&["sh", "-c", JAIL]).expect("jail made");
    // `chroot` needs CAP_SYS_CHROOT, which runc's default spec leaves out.
    let out = Command::new("runc")
        .args(["exec", "--cap", "CAP_SYS_CHROOT", &id, "busybox", "chroot", "/tmp/jail", "/bin/true"])
        .output()
        .expect("runc exec");
    assert!(out.status.success(), "chroot /tmp/jail /bin/true: {}", String::from_utf8_lossy(&out.stderr));
    let in_container = |r: &Value| r["container"]["id"] == id.as_str();
    let jailed = evasion::wait_for(&agent, Duration::from_secs(10), |r| {
        r["type"] == "exec"
            && in_container(r)
            && r["filename"] == "/bin/true"
            && r["verification"].is_object()
    })
    .expect("the chrooted exec is reported");
    evasion::wait_for(&agent, Duration::from_secs(10), |r| {
        r["type"] == "alert" && r["file"]["path"] == "/bin/true"
    })
    .expect("and alerted");
    let records = agent.stop().expect("agent stops");
    drop(container);

    let v = &jailed["verification"];
    assert_eq!(v["verdict"], "unknown-binary", "never the listed /bin/true it is named like: {jailed}");
    assert_eq!(v["path"], "/bin/true", "the path as seen in its root: {jailed}");
    assert_eq!(v["root"], "chroot", "exited before it was read, and said so: {jailed}");
    assert!(v["reason"].as_str().is_some_and(|s| s.contains("another root")), "{jailed}");
    let alert = records
        .iter()
        .find(|r| r["type"] == "alert" && r["file"]["path"] == "/bin/true")
        .unwrap_or_else(|| panic!("an alert for the chrooted exec: {records:?}"));
    assert_eq!(
        (&alert["verdict"], &alert["severity"]),
        (&"unknown-binary".into(), &"high".into()),
        "{alert}"
    );

    let tool = execs(&records)
        .find(|r| in_container(r) && r["filename"] == TOOL)
        .unwrap_or_else(|| panic!("the legitimate exec: {records:?}"));
    assert_eq!(tool["verification"]["verdict"], "ok", "{tool}");
    // Found by its path, in the root the kernel saw it run in (alive or
    // not): the container's root is told from a chroot, never confused.
    assert_eq!(tool["verification"]["via"], "path", "{tool}");
    assert!(tool["verification"].get("root").is_none(), "{tool}");
}
