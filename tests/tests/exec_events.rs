//! Root tier: the real exec program in the real kernel, real runc
//! containers. Each test holds `exclusive()` because the agent sees every
//! exec on the machine.

use std::{os::unix::fs::MetadataExt as _, process::Command};

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs, final_stats},
    bundle::Bundle,
    exclusive, require_root,
    runc::Container,
    storm,
};

fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Kernel counters balance: every seen exec was sent, dropped or filtered,
/// and userspace received every sent record.
fn assert_counters_balance(stats: &Value) {
    let k = &stats["kernel"];
    let n = |v: &Value| v.as_u64().expect("counter is a number");
    assert_eq!(
        n(&k["seen"]),
        n(&k["sent"]) + n(&k["dropped"]) + n(&k["filtered"]) + n(&k["fast_path"]) + n(&k["throttled"]),
        "seen = sent + dropped + filtered + fast_path: {stats}"
    );
    assert_eq!(n(&k["sent"]), n(&stats["user"]["received"]), "every sent record reached userspace: {stats}");
    assert_eq!(n(&stats["user"]["decode_errors"]), 0, "{stats}");
}

#[test]
fn container_exec_carries_container_id_filename_and_inode() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = Bundle::busybox(dir.path(), &["sleep", "60"]).expect("bundle");
    let agent = Agent::start(&["--stats-interval", "0"]).expect("agent starts");
    let id = unique("vt-exec");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    let out = container.exec(&["/bin/ls", "/etc"]).expect("runc exec");
    assert!(String::from_utf8_lossy(&out.stdout).contains("os-release"));
    let records = agent.stop().expect("agent stops cleanly");

    let busybox = std::fs::metadata(bundle.rootfs().join("bin/busybox")).expect("stat busybox");
    let ls: Vec<&Value> = execs(&records)
        .filter(|r| r["filename"] == "/bin/ls" && r["container"]["id"] == id.as_str())
        .collect();
    assert_eq!(ls.len(), 1, "exactly one /bin/ls exec in {id}: {records:?}");
    let ls = ls[0];
    assert_eq!(ls["container"]["runtime"], "runc");
    assert_eq!(ls["host"], false);
    assert_eq!(ls["exe"]["ino"].as_u64(), Some(busybox.ino()), "inode of the symlink's target");
    assert_eq!(ls["exe"]["st_dev"].as_u64(), Some(busybox.dev()), "device as stat(2) reports it");
    assert_eq!(ls["exe"]["size"].as_u64(), Some(busybox.size()));
    assert_eq!(ls["exe"]["ctime_sec"].as_i64(), Some(busybox.ctime()));
    assert_eq!(ls["exe"]["ctime_nsec"].as_i64(), Some(busybox.ctime_nsec()));
    assert!(ls["ns_pid"].as_u64().is_some_and(|p| p > 1), "pid inside the container's namespace");
    assert_ne!(ls["mnt_ns"], own_mnt_ns(), "the container has its own mount namespace");
    // The container's init (`sleep`) was seen too, in the same container.
    assert!(execs(&records).any(|r| r["filename"] == "/bin/sleep" && r["container"]["id"] == id.as_str()));
    let stats = final_stats(&records).expect("final stats");
    assert_counters_balance(stats);
    // runc made the container's cgroup before starting it: the kernel
    // reported the mkdir and the agent recognised the container from it.
    assert!(stats["kernel"]["cgroup_sent"].as_u64() >= Some(1), "{stats}");
    assert!(stats["user"]["containers_started"].as_u64() >= Some(1), "{stats}");
    assert_eq!(stats["kernel"]["cgroup_dropped"], 0, "{stats}");
    drop(container);
}

fn own_mnt_ns() -> Value {
    std::fs::metadata("/proc/self/ns/mnt").map(|m| m.ino()).expect("own mnt ns").into()
}

#[test]
fn host_exec_is_attributed_to_the_host() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = storm::marker_program(dir.path(), &unique("host-marker")).expect("marker");
    let agent = Agent::start(&["--stats-interval", "0"]).expect("agent starts");
    assert!(Command::new(&marker).status().expect("runs").success());
    let records = agent.stop().expect("agent stops");
    let name = marker.to_str().expect("utf-8 path");
    let hits: Vec<&Value> = execs(&records).filter(|r| r["filename"] == name).collect();
    assert_eq!(hits.len(), 1, "{records:?}");
    assert_eq!(hits[0]["host"], true);
    assert!(hits[0]["container"].is_null());
    let meta = std::fs::metadata(&marker).expect("stat");
    assert_eq!(hits[0]["exe"]["ino"].as_u64(), Some(meta.ino()));
    assert_eq!(hits[0]["ppid"].as_u64(), Some(u64::from(std::process::id())), "parent is this test");
}

/// The ready record lists every hook; one is skipped only where this
/// kernel lacks its tracepoint, and the required ones are attached.
#[test]
fn ready_lists_every_hook_and_what_became_of_it() {
    require_root!();
    let _lock = exclusive();
    let agent = Agent::start(&["--stats-interval", "0"]).expect("agent starts");
    let hooks = agent.ready["hooks"].as_array().cloned().expect("ready lists hooks");
    agent.stop().expect("agent stops");
    let names: Vec<&str> = hooks.iter().filter_map(|h| h["name"].as_str()).collect();
    for required in ["exec", "cgroup_mkdir"] {
        let h = hooks.iter().find(|h| h["name"] == required).expect("required hook listed");
        assert_eq!((&h["state"], &h["required"]), (&Value::from("attached"), &Value::from(true)), "{h}");
    }
    assert!(names.contains(&"mmap_exec") && names.contains(&"write_openat"), "{names:?}");
    let tracefs = ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| p.is_dir())
        .expect("the agent mounted tracefs");
    for h in &hooks {
        let attached = h["state"] == "attached";
        assert!(attached || h["reason"].is_string(), "a skipped hook says why: {h}");
        // The enforcement hooks are unloaded when nothing is enforced.
        let unneeded = h["reason"].as_str().is_some_and(|r| r.starts_with("not needed"));
        if let Some(tp) = h["attach"].as_str().and_then(|a| a.strip_prefix("tracepoint/"))
            && !unneeded
        {
            assert_eq!(attached, tracefs.join(tp).is_dir(), "attached exactly when the kernel has it: {h}");
        }
        // So are the hooks that act only in watched containers, when
        // nothing is verified (this agent has no SBOM).
        if unneeded {
            let name = h["name"].as_str().unwrap_or_default();
            assert!(
                name.starts_with("enforce_") || name.starts_with("write_") || name == "mmap_exec",
                "only enforcement and watched-container hooks: {h}"
            );
        }
    }
}

/// A verifying agent also lists the `mprotect(PROT_EXEC)` observer, a BPF
/// LSM program: attached where the kernel runs BPF LSM, else skipped with
/// the kernel's reason and what goes unseen.
#[test]
fn a_verifying_agent_lists_the_mprotect_observer_and_why_it_is_not_attached() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let sbom = dir.path().join("empty.spdx.json");
    std::fs::write(&sbom, br#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"x","files":[]}"#)
        .expect("sbom");
    let rule = format!("nothing-matches-this={}", sbom.display());
    let agent = Agent::start(&["--stats-interval", "0", "--sbom", &rule]).expect("agent starts");
    let hooks = agent.ready["hooks"].as_array().cloned().expect("ready lists hooks");
    agent.stop().expect("agent stops");
    let h = hooks.iter().find(|h| h["name"] == "lsm_mprotect").unwrap_or_else(|| panic!("listed: {hooks:?}"));
    assert_eq!(
        (&h["attach"], &h["required"]),
        (&Value::from("lsm/file_mprotect"), &Value::from(false)),
        "{h}"
    );
    if h["state"] != "attached" {
        let reason = h["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("mprotect(PROT_EXEC) of a file mapping is not seen"), "{h}");
        eprintln!("lsm_mprotect not attached here: {reason}");
    }
}

#[test]
fn containers_only_filters_host_execs_in_the_kernel() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = Bundle::busybox(&dir.path().join("bundle"), &["sleep", "60"]).expect("bundle");
    let marker = storm::marker_program(dir.path(), &unique("filtered-marker")).expect("marker");
    let agent = Agent::start(&["--containers-only", "--stats-interval", "0"]).expect("agent starts");
    for _ in 0..20 {
        assert!(Command::new(&marker).status().expect("runs").success());
    }
    let id = unique("vt-filter");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    container.exec(&["/bin/true"]).expect("exec");
    let records = agent.stop().expect("agent stops");
    let name = marker.to_str().expect("utf-8");
    assert_eq!(execs(&records).filter(|r| r["filename"] == name).count(), 0, "host execs are filtered");
    assert!(execs(&records).any(|r| r["filename"] == "/bin/true" && r["container"]["id"] == id.as_str()));
    let stats = final_stats(&records).expect("stats");
    assert!(stats["kernel"]["filtered"].as_u64().expect("n") >= 20, "{stats}");
    assert_counters_balance(stats);
}

#[test]
fn exec_storm_of_20000_loses_nothing_silently() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = storm::marker_program(dir.path(), &unique("storm")).expect("marker");
    let agent = Agent::start(&["--stats-interval", "1"]).expect("agent starts");
    let (done, took) = storm::by_count(&marker, 20_000, 2);
    assert_eq!(done, 20_000, "every exec in the storm succeeded");
    let records = agent.stop().expect("agent stops");
    let stats = final_stats(&records).expect("stats");
    assert_counters_balance(stats);
    let name = marker.to_str().expect("utf-8");
    let seen = execs(&records).filter(|r| r["filename"] == name).count() as u64;
    let dropped = stats["kernel"]["dropped"].as_u64().expect("n");
    eprintln!(
        "storm: {done} execs in {:.1} s ({:.0}/s); marker events {seen}; dropped {dropped}",
        took.as_secs_f64(),
        done as f64 / took.as_secs_f64()
    );
    // Whatever was not printed was counted as dropped.
    assert!(seen + dropped >= 20_000, "seen {seen} + dropped {dropped} < 20000");
    assert_eq!(dropped, 0, "the default ring buffer holds a 2-worker storm");
    assert_eq!(seen, 20_000);
}

#[test]
fn agent_mounts_tracefs_and_detaches_on_sigterm() {
    require_root!();
    let _lock = exclusive();
    // Start from a machine without tracefs, as a fresh node is.
    let tracefs = std::path::Path::new("/sys/kernel/tracing");
    if tracefs.join("events").is_dir() {
        let _ = nix::mount::umount2(tracefs, nix::mount::MntFlags::MNT_DETACH);
    }
    assert!(!tracefs.join("events").is_dir(), "tracefs unmounted for the test");
    let agent = Agent::start(&["--stats-interval", "0"]).expect("agent starts without tracefs");
    assert!(tracefs.join("events/sched/sched_process_exec").is_dir(), "agent mounted tracefs");
    let pid = agent.pid();
    let attached = count_exec_programs();
    assert!(attached >= 1, "our program is loaded while the agent runs");
    agent.stop().expect("clean stop");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // The kernel frees a detached program after an RCU grace period: allow
    // it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while count_exec_programs() != attached - 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(count_exec_programs(), attached - 1, "SIGTERM unloads the program");
}

/// Exec programs (a raw tracepoint) named like ours that the kernel has loaded.
fn count_exec_programs() -> usize {
    let out = Command::new("bpftool").args(["prog", "show", "--json"]).output().expect("bpftool");
    let progs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    progs
        .iter()
        .filter(|p| {
            p["type"] == "raw_tracepoint"
                && p["name"].as_str().is_some_and(|n| "sched_process_exec".starts_with(n))
        })
        .count()
}

#[test]
fn a_lone_exec_is_reported_while_the_agent_runs() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = storm::marker_program(dir.path(), &unique("lone")).expect("marker");
    let name = marker.to_str().expect("utf-8").to_string();
    // Wake-ups are batched; the poll timer must still deliver a single exec.
    let agent = Agent::start(&["--stats-interval", "0", "--poll-ms", "20"]).expect("agent starts");
    let started = std::time::Instant::now();
    assert!(Command::new(&marker).status().expect("runs").success());
    let mut latency = None;
    while started.elapsed() < std::time::Duration::from_secs(5) {
        if execs(&agent.records_so_far()).any(|r| r["filename"] == name.as_str()) {
            latency = Some(started.elapsed());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    eprintln!("lone exec reported after {latency:?}");
    assert!(latency.is_some(), "the exec was printed while the agent ran, not only at shutdown");
    agent.stop().expect("stops");
}

#[test]
fn a_script_is_flagged_with_its_interpreter_as_exe() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join(unique("script"));
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let marker = storm::marker_program(dir.path(), &unique("binary")).expect("marker");
    let agent = Agent::start(&["--stats-interval", "0"]).expect("agent starts");
    assert!(Command::new(&script).status().expect("run script").success());
    assert!(Command::new(&marker).status().expect("run marker").success());
    let records = agent.stop().expect("agent stops");
    let find = |p: &std::path::Path| {
        execs(&records)
            .find(|r| r["filename"] == p.to_str().expect("utf-8"))
            .unwrap_or_else(|| panic!("{} not reported: {records:?}", p.display()))
            .clone()
    };
    let s = find(&script);
    assert_eq!(s["script"], true, "{s}");
    let sh = std::fs::metadata("/bin/sh").expect("stat /bin/sh");
    assert_eq!(s["exe"]["ino"].as_u64(), Some(sh.ino()), "exe is the interpreter: {s}");
    let b = find(&marker);
    assert!(b.get("script").is_none(), "a binary is no script: {b}");
}
