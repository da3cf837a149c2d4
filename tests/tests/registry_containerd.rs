//! Root tier, the registry flow end to end: an image pushed with skopeo to
//! a real registry on 127.0.0.1, its SBOM attached as a signed cosign
//! `.att` attestation, the image pulled into containerd and run with
//! `ctr run`; the agent (`--registry-attestations --trust`) fetches the
//! attestation, verifies it for the digest containerd reports, and judges
//! the container's execs against it. A second agent, with the registry
//! stopped and the fetch cache warm, judges a new container the same way:
//! a cached image needs no network.

use std::{
    fs,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use verifier_tests::{
    agent::{Agent, execs},
    bundle::Bundle,
    containerd::{self, CtrContainer, NAMESPACE, OciImage, SOCKET},
    exclusive, image,
    registry::{DSSE, INTOTO, Options, Registry, Signer, statement},
    require_root,
};

const PREDICATE: &str = "https://spdx.dev/Document";
const DROP: &str = "mkdir -p /tmp/x && cat /bin/busybox > /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true && /tmp/x/true";

/// Waits for the verdict of `filename`'s exec in container `id`.
fn wait_for(agent: &Agent, id: &str, filename: &str, since: Instant) -> (Value, Duration) {
    loop {
        if let Some(r) = agent.records_so_far().into_iter().find(|r| {
            r["type"] == "exec"
                && r["container"]["id"] == id
                && r["filename"] == filename
                && r["verification"]["verdict"].is_string()
        }) {
            return (r, since.elapsed());
        }
        assert!(since.elapsed() < Duration::from_secs(15), "no verdict for {filename} in {id} within 15 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn agent(trust: &str, cache: &str, registry: &str) -> Agent {
    Agent::start(&[
        "--stats-interval",
        "0",
        "--containers-only",
        "--trust",
        trust,
        "--registry-attestations",
        "--registry-cache",
        cache,
        "--insecure-registry",
        registry,
    ])
    .expect("agent starts")
}

#[test]
fn containerd_image_verified_against_its_registry_attestation_then_offline() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    containerd::ensure_daemon(&d.join("containerd.log")).expect("containerd runs");
    let mut reg = Registry::start(Options::default()).expect("registry");

    // Publisher: build, push, generate the SBOM, sign it, attach it.
    let bundle = Bundle::busybox(&d.join("src"), &["sleep", "60"]).expect("rootfs");
    let oci =
        OciImage::from_rootfs(&bundle.rootfs(), &d.join("oci"), "v1", &["/bin/sleep", "60"]).expect("oci");
    let repo = format!("trust/app{}", std::process::id());
    let digest = reg.push_layout(&oci.layout, "v1", &repo, "v1").expect("skopeo push");
    let sbom = image::generate_sbom(&bundle, &d.join("app.spdx.json"), "spdx-json").expect("sbom");
    let doc: Value = serde_json::from_slice(&fs::read(&sbom).expect("sbom")).expect("json");
    let name = format!("{}/{repo}", reg.host);
    let signer = Signer::new(d).expect("openssl key");
    let envelope = signer.envelope(INTOTO, &statement(&name, &digest, PREDICATE, doc)).expect("sign");
    let layer = reg.put_blob(&repo, DSSE, &envelope).expect("blob");
    let layer = {
        let mut l = layer;
        l["annotations"] = json!({"predicateType": PREDICATE});
        l
    };
    let att = reg.artifact(&repo, None, &[layer], None).expect("artifact");
    let tag = format!("sha256-{}.att", digest.trim_start_matches("sha256:"));
    reg.put_manifest(&repo, &tag, &att).expect("att tag");

    // Node: pull into containerd, trust the publisher's key.
    let reference = format!("{name}:v1");
    let pull = Command::new("ctr")
        .args(["--address", SOCKET, "--namespace", NAMESPACE, "images", "pull", "--plain-http", &reference])
        .output()
        .expect("ctr pull");
    assert!(pull.status.success(), "ctr pull: {}", String::from_utf8_lossy(&pull.stderr));
    fs::write(
        d.join("trust.toml"),
        format!(
            "[[image]]\npattern = \"{}/*\"\nkeys = [\"{}\"]\nrequire = true\n",
            reg.host,
            signer.public.display()
        ),
    )
    .expect("policy");
    let trust = d.join("trust.toml").display().to_string();
    let cache = d.join("cache").display().to_string();

    // Cold: the first exec of a new image waits for fetch + verification.
    let a = agent(&trust, &cache, &reg.host);
    let id = format!("vt-regctrd-{}", std::process::id());
    let t = Instant::now();
    let c = CtrContainer::run(&reference, &id, &[]).expect("ctr run");
    let (first, cold) = wait_for(&a, &id, "/bin/sleep", t);
    c.exec(&["sh", "-c", DROP]).expect("dropped binary");
    let (dropped, _) = wait_for(&a, &id, "/tmp/x/true", Instant::now());
    let records = a.stop().expect("agent stops");
    drop(c);
    assert_eq!(first["verification"]["verdict"], "ok", "{first}");
    assert_eq!(dropped["verification"]["verdict"], "unknown-binary", "{dropped}");
    let refused: Vec<&Value> = records.iter().filter(|r| r["schema"] == "verifier.warning.v1").collect();
    assert!(refused.is_empty(), "{refused:?}");
    let cold_us = first["verification"]["latency_us"].as_u64().unwrap_or_default();
    eprintln!(
        "registry flow, cold: container start -> entrypoint verified against the fetched SBOM {} ms \
         (exec -> verdict {} ms, fetch + verify + hash)",
        cold.as_millis(),
        cold_us / 1000
    );
    assert!(cold < Duration::from_secs(2), "target: verified SBOM within 2 s of the start, took {cold:?}");

    // Warm cache, registry gone: the same verdicts, no network.
    reg.stop();
    let a = agent(&trust, &cache, &reg.host);
    let id2 = format!("{id}-offline");
    let t = Instant::now();
    let c = CtrContainer::run(&reference, &id2, &[]).expect("ctr run");
    let (first, warm) = wait_for(&a, &id2, "/bin/sleep", t);
    let records = a.stop().expect("agent stops");
    drop(c);
    assert_eq!(first["verification"]["verdict"], "ok", "from the cache with the registry stopped: {first}");
    assert!(execs(&records).any(|r| r["container"]["id"] == id2.as_str()));
    eprintln!(
        "registry flow, warm cache, registry stopped: start -> verified {} ms (exec -> verdict {} ms)",
        warm.as_millis(),
        first["verification"]["latency_us"].as_u64().unwrap_or_default() / 1000
    );
    let _ = Command::new("ctr")
        .args(["--address", SOCKET, "--namespace", NAMESPACE, "images", "rm", &reference])
        .output();
}
