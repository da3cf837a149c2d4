//! Root tier: the kernel maps of features that are off are created with one
//! entry (they are preallocated and charged to the agent's memory cgroup),
//! and keep their full size when the feature is on. Read from the kernel
//! with bpftool: the maps of the running agent's own programs and fds.

use std::{collections::BTreeMap, process::Command};

use serde_json::Value;
use verifier_common::{
    enforce::{ALLOWED_MAX, ENFORCE_MAX},
    fastpath::{VERIFIED_MAX, WATCHED_MAX, WRITTEN_MAX},
    measure::ALLOWED_DIGESTS_MAX,
    throttle::THROTTLE_MAX,
};
use verifier_tests::{agent::Agent, exclusive, require_root};

/// `bpftool <what> show id <id> --json`.
fn bpftool(what: &str, id: u64) -> Value {
    let out = Command::new("bpftool")
        .args([what, "show", "id", &id.to_string(), "--json"])
        .output()
        .expect("bpftool runs (installed by `cargo xtask setup`)");
    assert!(out.status.success(), "bpftool {what} show id {id}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("bpftool JSON")
}

/// Map name (as the kernel keeps it, 15 bytes at most) -> (max_entries,
/// bytes_memlock), for every map the agent's fds or programs hold.
fn agent_maps(pid: u32) -> BTreeMap<String, (u64, u64)> {
    let mut ids = std::collections::BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("agent fds").flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else { continue };
        let info =
            std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()))
                .unwrap_or_default();
        let field = |name: &str| {
            info.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<u64>().ok())
        };
        match target.to_string_lossy().as_ref() {
            "anon_inode:bpf-map" => ids.extend(field("map_id:")),
            "anon_inode:bpf-prog" => {
                if let Some(prog) = field("prog_id:") {
                    let p = bpftool("prog", prog);
                    ids.extend(p["map_ids"].as_array().into_iter().flatten().filter_map(Value::as_u64));
                }
            }
            _ => {}
        }
    }
    ids.into_iter()
        .map(|id| {
            let m = bpftool("map", id);
            let name = m["name"].as_str().unwrap_or_default().to_owned();
            (name, (m["max_entries"].as_u64().unwrap_or(0), m["bytes_memlock"].as_u64().unwrap_or(0)))
        })
        .collect()
}

fn max_entries(maps: &BTreeMap<String, (u64, u64)>, name: &str) -> u64 {
    maps.get(name).unwrap_or_else(|| panic!("map {name} not found among {maps:?}")).0
}

fn memlock(maps: &BTreeMap<String, (u64, u64)>) -> u64 {
    maps.values().map(|&(_, bytes)| bytes).sum()
}

#[test]
fn maps_of_features_off_are_one_entry_and_full_size_when_on() {
    require_root!();
    let _lock = exclusive();

    let observe = Agent::start(&["--stats-interval", "0", "--containers-only"]).expect("agent starts");
    let small = agent_maps(observe.pid());
    observe.stop().expect("agent stops");
    // One entry, or gone: with nothing verified the programs that use the
    // enforcement maps are unloaded, and a map nothing holds is freed.
    for name in ["ALLOWED_DIGESTS", "ALLOWED", "ENFORCE", "WATCHED", "VERIFIED", "VERIFIED_INODES", "WRITTEN"]
    {
        let entries = small.get(name).map_or(1, |&(max, _)| max);
        assert_eq!(entries, 1, "{name} with default flags: {small:?}");
    }
    assert_eq!(max_entries(&small, "THROTTLE"), u64::from(THROTTLE_MAX), "the throttle is on by default");

    let dir = tempfile::tempdir().expect("tempdir");
    let sbom = dir.path().join("unused.spdx.json");
    std::fs::write(&sbom, b"{}").expect("sbom");
    let rule = format!("vt-map-sizes-none-*={}", sbom.display());
    let enforcing = Agent::start(&[
        "--stats-interval",
        "0",
        "--containers-only",
        "--sbom",
        &rule,
        "--enforce",
        "vt-map-sizes-none-x",
        "--enforce-measure",
    ])
    .expect("agent starts");
    let full = agent_maps(enforcing.pid());
    enforcing.stop().expect("agent stops");
    for (name, max) in [
        ("ALLOWED_DIGESTS", ALLOWED_DIGESTS_MAX),
        ("ALLOWED", ALLOWED_MAX),
        ("ENFORCE", ENFORCE_MAX),
        ("WATCHED", WATCHED_MAX),
        ("VERIFIED", VERIFIED_MAX),
        ("VERIFIED_INODES", VERIFIED_MAX),
        ("WRITTEN", WRITTEN_MAX),
    ] {
        assert_eq!(max_entries(&full, name), u64::from(max), "{name} with --enforce-measure: {full:?}");
    }
    let (small, full) = (memlock(&small), memlock(&full));
    println!("map memory (bytes_memlock): default flags {small} B, enforcing and measuring {full} B");
    assert!(small * 4 < full, "default {small} B vs full {full} B");
}
