//! Root tier, a distroless-style image: real Debian packages unpacked with
//! one control file and one `md5sums` per package in
//! `/var/lib/dpkg/status.d/` and no `status` or `info/` (Google's distroless
//! layout), built here offline from the `.deb` files `cargo xtask setup`
//! fetched. Asserted:
//! - `sbom generate` lists the three packages and attributes
//!   `/bin/busybox` to `busybox-static`;
//! - `sbom inspect` reads `status.d` as a per-file (weak, MD5) baseline
//!   with every file the md5sums list;
//! - under runc (root read-only) with a package-only CycloneDX SBOM of the
//!   packages (as trivy, syft or debsbom write one), the join with
//!   `status.d` makes the exec of the packaged busybox `ok`, and a copy of
//!   it no package installed `unknown-binary`.

use std::process::Command;

use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs, verifier_bin},
    bundle::Bundle,
    distroless::{self, PACKAGES},
    exclusive,
    real_run::{settle, unique},
    require_root,
    runc::Container,
};

/// Runs the verifier; its exit code must be `code`.
fn verifier(code: i32, args: &[&str]) -> String {
    let out = Command::new(verifier_bin()).args(args).output().expect("running verifier");
    assert_eq!(out.status.code(), Some(code), "verifier {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_distroless_status_d_image_verifies_under_a_package_only_sbom() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = Bundle { dir: dir.path().join("bundle") };
    let rootfs = bundle.rootfs();
    let packages = distroless::build(&rootfs).expect("distroless rootfs from .deb files");
    for sub in ["proc", "sys", "dev", "tmp", "usr/local/bin"] {
        std::fs::create_dir_all(rootfs.join(sub)).expect("mkdir");
    }
    std::fs::copy(rootfs.join("bin/busybox"), rootfs.join("usr/local/bin/true")).expect("copy");

    // Our generator reads status.d for packages.
    let spdx: Value = serde_json::from_str(&verifier(
        0,
        &["sbom", "generate", "--no-progress", rootfs.to_str().expect("utf-8")],
    ))
    .expect("SPDX JSON");
    let names: Vec<&str> =
        spdx["packages"].as_array().expect("packages").iter().filter_map(|p| p["name"].as_str()).collect();
    for p in PACKAGES {
        assert!(names.contains(p), "{p} not in {names:?}");
    }
    let id_of = |key: &str, value: &str, list: &str| {
        spdx[list].as_array().expect("list").iter().find(|x| x[key] == value).map(|x| x["SPDXID"].clone())
    };
    let (pkg, file) =
        (id_of("name", "busybox-static", "packages"), id_of("fileName", "./bin/busybox", "files"));
    let owned = spdx["relationships"].as_array().expect("relationships").iter().any(|r| {
        Some(&r["spdxElementId"]) == pkg.as_ref()
            && r["relationshipType"] == "CONTAINS"
            && Some(&r["relatedSpdxElement"]) == file.as_ref()
    });
    assert!(owned, "busybox-static CONTAINS ./bin/busybox ({pkg:?}, {file:?})");

    // The dpkg reader takes status.d as a baseline: every md5sums line
    // (exit code 1: weak digests only).
    let listed: usize = packages.iter().map(|p| p.files).sum();
    let report =
        verifier(1, &["sbom", "inspect", rootfs.join("var/lib/dpkg/status.d").to_str().expect("utf-8")]);
    let row = report.lines().nth(1).expect("a row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert!(
        cols.contains(&listed.to_string().as_str()) && row.ends_with("weak"),
        "{listed} files, weak: {report}"
    );

    // The join under runc.
    let sbom = dir.path().join("packages.cdx.json");
    std::fs::write(&sbom, distroless::package_only_cdx(&packages).to_string()).expect("write SBOM");
    bundle.write_config(&["/bin/busybox", "sleep", "300"]).expect("config");
    let config = bundle.dir.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&config).expect("config")).expect("json");
    spec["root"]["readonly"] = true.into();
    std::fs::write(&config, spec.to_string()).expect("config");
    let id = unique("vt-distroless");
    let rule = format!("{id}={}", sbom.display());
    let agent =
        Agent::start(&["--stats-interval", "0", "--containers-only", "--sbom", &rule]).expect("agent");
    let container = Container::run(&bundle.dir, &id).expect("runc run");
    container.exec(&["/bin/busybox", "cat", "/etc/protocols"]).expect("packaged busybox");
    container.exec(&["/usr/local/bin/true"]).expect("unpackaged copy");
    settle(&agent);
    drop(container);
    let records = agent.stop().expect("agent stops");
    let verdict = |path: &str| {
        execs(&records)
            .filter(|r| r["container"]["id"] == id.as_str() && r["filename"] == path)
            .map(|r| r["verification"]["verdict"].as_str().unwrap_or("-").to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        !verdict("/bin/busybox").is_empty() && verdict("/bin/busybox").iter().all(|v| v == "ok"),
        "packaged busybox: {:?}",
        verdict("/bin/busybox")
    );
    assert_eq!(verdict("/usr/local/bin/true"), ["unknown-binary"]);
    let joined = records.iter().any(|w| w["code"] == "sbom-package-only" && w["database"] == "dpkg");
    assert!(joined, "a sbom-package-only warning joined with dpkg: {records:?}");
}
