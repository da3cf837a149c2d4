//! Root tier, the real Debian image under containerd: the same workload as
//! `real_image.rs` (which runs it under runc), in a container `ctr` runs
//! from the image packed with umoci and imported into containerd. The
//! container's root is then an overlay whose lower layers are the image,
//! so a package-only SBOM is joined with the dpkg database read from those
//! layers (not from a read-only bundle root as under runc).
//!
//! Asserted, for our SBOM (generated here by the binary under test), syft
//! SPDX and trivy's package-only CycloneDX: more than 50 execs judged and
//! no false alarm at all (every exec, script and library `ok`, no alert);
//! for trivy, also one `sbom-package-only` warning joined with dpkg.
//!
//! The image is packed and imported once per real-image version (about a
//! minute: umoci repacks 250 MB) and kept in containerd's `verifier-test`
//! namespace as [`REFERENCE`]`:<version>`; later runs reuse it.

use std::process::Command;
use std::time::Instant;

use verifier_tests::{
    agent::Agent,
    containerd::{self, CtrContainer, NAMESPACE, OciImage, SOCKET},
    exclusive,
    real_image::{RealImage, Tally, VERSION, WORKLOAD, table, workload_script},
    real_run::{our_sbom, package_only_findings, settle, unique},
    require_root,
};

/// Where the real image is imported in containerd.
const REFERENCE: &str = "localhost/verifier-test/debian-real";

/// Sources run under containerd: (name, package-only).
const SOURCES: &[(&str, bool)] = &[("verifier-spdx", false), ("syft-spdx", false), ("trivy-cyclonedx", true)];

/// The image in containerd, imported unless already there.
fn imported(image: &RealImage, scratch: &std::path::Path) -> String {
    let reference = format!("{REFERENCE}:{VERSION}");
    let listed = Command::new("ctr")
        .args(["--address", SOCKET, "--namespace", NAMESPACE, "images", "ls", "-q"])
        .output()
        .expect("ctr images ls");
    if String::from_utf8_lossy(&listed.stdout).lines().any(|l| l == reference) {
        return reference;
    }
    let started = Instant::now();
    let oci = OciImage::from_rootfs(&image.rootfs(), &scratch.join("oci"), VERSION, &["sleep", "600"])
        .expect("OCI image of the real rootfs");
    let got = oci.import(REFERENCE).expect("ctr images import");
    println!("real image packed and imported in {:.1} s", started.elapsed().as_secs_f64());
    got
}

#[test]
fn a_debian_workload_under_containerd() {
    require_root!();
    let _lock = exclusive();
    let image = RealImage::find().expect("the real image (built by `cargo xtask setup`)");
    let scratch = tempfile::tempdir().expect("tempdir");
    containerd::ensure_daemon(&scratch.path().join("containerd.log")).expect("containerd runs");
    let reference = imported(&image, scratch.path());
    let ours = our_sbom(&image, &scratch.path().join("verifier.spdx.json")).expect("our SBOM");
    let script = workload_script();
    let (mut rows, mut failures, mut seconds) = (Vec::new(), Vec::new(), Vec::new());
    for &(name, package_only) in SOURCES {
        let sbom = match name {
            "verifier-spdx" => ours.clone(),
            _ => image.sources().into_iter().find(|(n, _)| *n == name).map(|(_, p)| p).unwrap_or_else(|| {
                panic!("no {name} SBOM of the real image: run `cargo xtask setup` to generate it")
            }),
        };
        let id = unique(&format!("vt-real-ctrd-{name}"));
        let started = Instant::now();
        let rule = format!("{id}={}", sbom.display());
        let agent =
            Agent::start(&["--stats-interval", "0", "--containers-only", "--sbom", &rule]).expect("agent");
        let container = CtrContainer::run(&reference, &id, &[]).expect("ctr run");
        for _ in 0..2 {
            container.exec(&["sh", "-c", &script]).expect("workload");
        }
        settle(&agent);
        drop(container);
        let records = agent.stop().expect("agent stops");
        seconds.push(format!("{name} {:.1}", started.elapsed().as_secs_f64()));
        let tally = Tally::of(&records, &id);
        if tally.execs <= 50 {
            failures.push(format!(
                "{name}: only {} execs judged ({:?})",
                tally.execs,
                tally.unjudged.first()
            ));
        }
        let alarms = tally.false_alarms();
        if !alarms.is_empty() {
            failures.push(format!("{name}: false alarms:\n{}", alarms.join("\n")));
        }
        if package_only {
            failures.extend(package_only_findings(name, &records, &tally));
        }
        rows.push((name, tally));
    }
    println!(
        "real image under containerd ({} workload commands, run twice):\n{}seconds per source: {}",
        WORKLOAD.len(),
        table(&rows),
        seconds.join(", ")
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
