//! NTIA minimum elements of `verifier sbom generate`'s output: supplier,
//! component name, version, unique identifiers, dependency relationships,
//! author and timestamp. SPDX is checked by `ntia-checker`
//! (ntia-conformance-checker, PyPI) and `pyspdxtools`; CycloneDX by
//! cyclonedx-python-lib's strict schema and the same elements read here
//! (ntia-checker reads only SPDX). A missing validator fails the test with
//! the command that installs it.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

/// A small Debian-like rootfs: busybox, os-release, a dpkg database of two
/// packages (with `Maintainer`) and their file lists.
fn debian_rootfs(dir: &Path, os_release: &str) {
    for d in ["usr/bin", "etc", "var/lib/dpkg/info"] {
        fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    symlink("usr/bin", dir.join("bin")).expect("symlink");
    fs::copy("/bin/busybox", dir.join("usr/bin/busybox"))
        .expect("copy /bin/busybox (apt-get install busybox-static)");
    fs::write(dir.join("etc/os-release"), os_release).expect("write");
    fs::write(
        dir.join("var/lib/dpkg/status"),
        "Package: busybox-static\nStatus: install ok installed\nMaintainer: Debian Install System Team <debian-boot@lists.debian.org>\n\
         Architecture: amd64\nVersion: 1:1.35.0-4+b3\nDescription: x\n\n\
         Package: base-files\nStatus: install ok installed\nMaintainer: Santiago Vila <sanvila@debian.org>\n\
         Architecture: amd64\nVersion: 12.4+deb12u5\nDescription: y\n",
    )
    .expect("write");
    fs::write(dir.join("var/lib/dpkg/info/busybox-static.list"), "/.\n/bin/busybox\n").expect("write");
    fs::write(dir.join("var/lib/dpkg/info/base-files.list"), "/.\n/etc/os-release\n").expect("write");
}

const DEBIAN: &str = "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n";

fn generate(input: &Path, format: &str, out: &Path, extra: &[&str]) -> Value {
    let o = Command::new(BIN)
        .args(["sbom", "generate", "--no-progress", "--format", format, "-o"])
        .arg(out)
        .args(extra)
        .arg(input)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run verifier");
    assert!(o.status.success(), "generate failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&fs::read(out).expect("read sbom")).expect("sbom is JSON")
}

/// `ntia-checker -r json FILE`: the report.
fn ntia(file: &Path) -> Value {
    let out = Command::new("ntia-checker").args(["-r", "json"]).arg(file).output().unwrap_or_else(|e| {
        panic!(
            "ntia-checker is not installed ({e}): run `cargo xtask setup` (python3 -m pip install -r tests/validators/requirements.txt)"
        )
    });
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("ntia-checker wrote no JSON report ({e}): {}", String::from_utf8_lossy(&out.stderr))
    })
}

fn validators_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/validators")
}

#[test]
fn spdx_meets_the_ntia_minimum_elements() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("rootfs");
    debian_rootfs(&root, DEBIAN);
    let out = dir.path().join("sbom.spdx.json");
    let doc = generate(&root, "spdx-json", &out, &[]);
    let report = ntia(&out);
    assert_eq!(report["isNtiaConformant"], true, "{report:#}");
    let pyspdx =
        Command::new("pyspdxtools").arg("-i").arg(&out).output().expect("pyspdxtools (cargo xtask setup)");
    let text =
        String::from_utf8_lossy(&pyspdx.stderr).into_owned() + &String::from_utf8_lossy(&pyspdx.stdout);
    assert!(pyspdx.status.success() && !text.contains("invalid"), "pyspdxtools: {text}");
    let pkgs = doc["packages"].as_array().expect("packages");
    let supplier = |name: &str| pkgs.iter().find(|p| p["name"] == name).map(|p| p["supplier"].clone());
    assert_eq!(supplier("base-files"), Some("Organization: Santiago Vila (sanvila@debian.org)".into()));
    assert_eq!(supplier("rootfs"), Some("Organization: Debian GNU/Linux".into()), "{pkgs:#?}");
    let root_version = pkgs[0]["versionInfo"].as_str().expect("root version");
    assert!(root_version.starts_with("content-"), "{root_version}");
}

#[test]
fn a_rootfs_of_unknown_origin_needs_supplier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("rootfs");
    debian_rootfs(&root, "ID=debian\n");
    let out = dir.path().join("sbom.spdx.json");
    generate(&root, "spdx-json", &out, &[]);
    let report = ntia(&out);
    assert_eq!(report["isNtiaConformant"], false, "no NAME in os-release, no --supplier: {report:#}");
    let missing = &report["componentSuppliers"]["nonconformantComponents"];
    assert_eq!(missing, &serde_json::json!(["rootfs"]), "{report:#}");
    generate(&root, "spdx-json", &out, &["--supplier", "Example Builds <builds@example.org>"]);
    let report = ntia(&out);
    assert_eq!(report["isNtiaConformant"], true, "{report:#}");
}

#[test]
fn cyclonedx_meets_the_ntia_minimum_elements() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("rootfs");
    debian_rootfs(&root, DEBIAN);
    let out = dir.path().join("sbom.cdx.json");
    let doc = generate(&root, "cyclonedx-json", &out, &[]);
    let check = Command::new("python3")
        .arg(validators_dir().join("validate_cyclonedx.py"))
        .arg(&out)
        .output()
        .expect("python3 (cargo xtask setup)");
    assert!(check.status.success(), "CycloneDX validation: {}", String::from_utf8_lossy(&check.stderr));
    let meta = &doc["metadata"];
    assert!(meta["timestamp"].as_str().is_some_and(|t| t.starts_with("2023-11-14T")), "{meta}");
    assert_eq!(meta["tools"]["components"][0]["name"], "verifier", "the author: {meta}");
    let subject = &meta["component"];
    assert_eq!(subject["supplier"]["name"], "Debian GNU/Linux", "{subject}");
    assert!(subject["version"].as_str().is_some_and(|v| v.starts_with("content-")), "{subject}");
    let libraries: Vec<&Value> =
        doc["components"].as_array().expect("components").iter().filter(|c| c["type"] == "library").collect();
    assert_eq!(libraries.len(), 2, "{libraries:#?}");
    for c in &libraries {
        for field in ["name", "version", "purl", "bom-ref"] {
            assert!(c[field].as_str().is_some_and(|v| !v.is_empty()), "{field} of {c}");
        }
        assert!(c["supplier"]["name"].as_str().is_some_and(|v| v.contains('@')), "supplier of {c}");
    }
    let deps = doc["dependencies"].as_array().expect("dependencies");
    let root_deps = deps.iter().find(|d| d["ref"] == "subject").expect("the subject's dependencies");
    let mut got: Vec<&str> =
        root_deps["dependsOn"].as_array().expect("dependsOn").iter().filter_map(Value::as_str).collect();
    let mut want: Vec<&str> = libraries.iter().filter_map(|c| c["bom-ref"].as_str()).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
}
