//! `verifier sbom generate`, driven as a user runs it: the real binary on
//! a busybox rootfs, OCI layouts and image tars built here, and the output
//! checked by two independent validators (`pyspdxtools` and
//! cyclonedx-python-lib's strict 1.6 schema). A missing validator fails the
//! test with the command that installs it.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::{Value, json};
use sha2::Digest as _;

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

fn run(args: &[&str]) -> Output {
    let out =
        Command::new(BIN).args(args).env("SOURCE_DATE_EPOCH", "1700000000").output().expect("run verifier");
    if !out.status.success() {
        eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// busybox + applet symlinks + synthetic apk and dpkg databases + odd names.
pub fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "usr/bin", "etc", "lib/apk/db", "var/lib/dpkg/info", "usr/lib/x86_64-linux-gnu"] {
        fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox"))
        .expect("copy /bin/busybox (apt-get install busybox-static)");
    for applet in ["sh", "ls", "cat"] {
        symlink("busybox", dir.join("bin").join(applet)).expect("symlink");
    }
    symlink("/bin/busybox", dir.join("usr/bin/env")).expect("symlink");
    symlink("/nowhere", dir.join("bin/dangling")).expect("symlink");
    fs::write(dir.join("usr/lib/x86_64-linux-gnu/libdemo.so.1"), b"\x7fELF demo library").expect("write");
    fs::write(
        dir.join("etc/os-release"),
        "ID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n",
    )
    .expect("write");
    fs::write(dir.join("etc/motd"), "hello\n").expect("write");
    fs::write(dir.join("etc/new\nline"), "odd name\n").expect("write");
    fs::write(dir.join(std::ffi::OsStr::from_bytes_compat(b"etc/bad\xffname")), "x").expect("write");
    fs::write(dir.join("lib/apk/db/installed"), "C:Q1x=\nP:busybox\nV:1.36.1-r29\nA:x86_64\nF:bin\nR:busybox\nR:sh\nR:ls\nR:cat\n\nP:alpine-baselayout\nV:3.6.5-r0\nA:x86_64\nF:etc\nR:motd\nR:os-release\n\n").expect("write");
    fs::write(dir.join("var/lib/dpkg/status"), "Package: libdemo1\nStatus: install ok installed\nVersion: 1:2.0-3+deb12u1\nArchitecture: amd64\nDescription: demo\n long text\n\nPackage: removed\nStatus: deinstall ok config-files\nVersion: 1\n").expect("write");
    fs::write(
        dir.join("var/lib/dpkg/info/libdemo1:amd64.list"),
        "/.\n/usr\n/usr/lib/x86_64-linux-gnu/libdemo.so.1\n",
    )
    .expect("write");
    fs::set_permissions(dir.join("bin/busybox"), fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `OsStr::from_bytes` under a name that reads well in the helper above.
trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

fn validators_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/validators")
}

/// Runs `pyspdxtools -i FILE`; fails the test when it is missing or rejects.
pub fn validate_spdx(file: &Path) {
    let out = Command::new("pyspdxtools").arg("-i").arg(file).output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!(
            "pyspdxtools is not installed ({e}): run `cargo xtask setup` (python3 -m pip install -r tests/validators/requirements.txt)"
        ),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && !text.contains("Document is invalid"),
        "pyspdxtools rejects {}:\n{text}",
        file.display()
    );
}

/// Validates with cyclonedx-python-lib's JsonStrictValidator (1.6).
pub fn validate_cdx(file: &Path) {
    let script = validators_dir().join("validate_cyclonedx.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(file)
        .output()
        .expect("python3 must be installed: run `cargo xtask setup`");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.code() != Some(2), "cyclonedx-python-lib is missing: run `cargo xtask setup`\n{text}");
    assert!(out.status.success(), "CycloneDX validation failed for {}:\n{text}", file.display());
}

fn generate(input: &Path, format: &str, out: &Path) -> Value {
    let o = run(&[
        "sbom",
        "generate",
        input.to_str().expect("utf8"),
        "--format",
        format,
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "generate failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&fs::read(out).expect("read sbom")).expect("sbom is JSON")
}

fn spdx_file<'a>(doc: &'a Value, name: &str) -> Option<&'a Value> {
    doc["files"].as_array().expect("files").iter().find(|f| f["fileName"] == name)
}

fn spdx_checksum(file: &Value, alg: &str) -> String {
    file["checksums"].as_array().expect("checksums").iter().find(|c| c["algorithm"] == alg).expect("checksum")
        ["checksumValue"]
        .as_str()
        .expect("str")
        .to_owned()
}

fn cdx_files(components: &Value, out: &mut Vec<Value>) {
    for c in components.as_array().into_iter().flatten() {
        if c["type"] == "file" {
            out.push(c.clone());
        }
        cdx_files(&c["components"], out);
    }
}

#[test]
fn busybox_rootfs_spdx_validates_and_attributes_packages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    busybox_rootfs(&root);
    let out = tmp.path().join("sbom.spdx.json");
    let o = run(&["sbom", "generate", root.to_str().expect("utf8"), "-o", out.to_str().expect("utf8")]);
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("bad\\xffname") && stderr.contains("not UTF-8"),
        "non-UTF-8 name must be reported: {stderr}"
    );
    validate_spdx(&out);
    let doc: Value = serde_json::from_slice(&fs::read(&out).expect("read")).expect("json");
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let busybox = spdx_file(&doc, "./bin/busybox").expect("busybox listed");
    let bytes = fs::read("/bin/busybox").expect("read busybox");
    assert_eq!(spdx_checksum(busybox, "SHA256"), sha256_hex(&bytes));
    assert_eq!(spdx_checksum(busybox, "SHA1"), hex::encode(sha1::Sha1::digest(&bytes)));
    assert_eq!(busybox["fileTypes"], json!(["BINARY"]));
    let sh = spdx_file(&doc, "./bin/sh").expect("symlink listed");
    assert_eq!(sh["comment"], "symlink to busybox");
    assert_eq!(spdx_checksum(sh, "SHA256"), sha256_hex(&bytes), "a symlink carries its target's digest");
    assert!(spdx_file(&doc, "./usr/bin/env").is_some(), "absolute symlink resolved inside the rootfs");
    assert!(spdx_file(&doc, "./bin/dangling").is_none(), "dangling symlink left out");
    assert!(spdx_file(&doc, "./etc/new\nline").is_some(), "newline in a name round-trips");
    assert!(
        doc["files"]
            .as_array()
            .expect("files")
            .iter()
            .all(|f| !f["fileName"].as_str().unwrap_or("").contains("bad"))
    );
    assert!(doc["creationInfo"]["comment"].as_str().expect("comment").contains("1 names that are not UTF-8"));
    // Packages with purls, and CONTAINS from package to file.
    let pkgs = doc["packages"].as_array().expect("packages");
    let purl = |p: &Value| p["externalRefs"][0]["referenceLocator"].as_str().unwrap_or("").to_owned();
    let bb = pkgs.iter().find(|p| p["name"] == "busybox").expect("busybox package");
    assert_eq!(purl(bb), "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=alpine-3.20.3");
    let deb = pkgs.iter().find(|p| p["name"] == "libdemo1").expect("dpkg package");
    assert!(purl(deb).starts_with("pkg:deb/alpine/libdemo1@1%3A2.0-3%2Bdeb12u1?arch=amd64"), "{}", purl(deb));
    assert!(!pkgs.iter().any(|p| p["name"] == "removed"), "deinstalled package left out");
    let contains = |from: &Value, to: &Value| {
        doc["relationships"].as_array().expect("rels").iter().any(|r| {
            r["relationshipType"] == "CONTAINS"
                && r["spdxElementId"] == from["SPDXID"]
                && r["relatedSpdxElement"] == to["SPDXID"]
        })
    };
    assert!(contains(bb, busybox) && contains(bb, sh));
    let lib = spdx_file(&doc, "./usr/lib/x86_64-linux-gnu/libdemo.so.1").expect("lib");
    assert!(contains(deb, lib));
    let root_pkg = pkgs.iter().find(|p| p["SPDXID"] == "SPDXRef-Root").expect("root");
    assert!(
        contains(root_pkg, spdx_file(&doc, "./etc/new\nline").expect("file")),
        "unowned files belong to the root"
    );
}

#[test]
fn busybox_rootfs_cyclonedx_validates_and_is_deterministic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    busybox_rootfs(&root);
    let a = tmp.path().join("a.cdx.json");
    let b = tmp.path().join("b.cdx.json");
    let doc = generate(&root, "cyclonedx-json", &a);
    generate(&root, "cyclonedx-json", &b);
    assert_eq!(fs::read(&a).expect("a"), fs::read(&b).expect("b"), "same input, same bytes");
    validate_cdx(&a);
    assert_eq!(doc["specVersion"], "1.6");
    let mut files = Vec::new();
    cdx_files(&doc["components"], &mut files);
    let bb = files.iter().find(|f| f["name"] == "/bin/busybox").expect("busybox");
    assert_eq!(bb["hashes"][0]["alg"], "SHA-256");
    assert_eq!(bb["hashes"][0]["content"], sha256_hex(&fs::read("/bin/busybox").expect("read")));
    let sh = files.iter().find(|f| f["name"] == "/bin/sh").expect("sh");
    assert_eq!(sh["properties"][0], json!({"name": "verifier:symlink-target", "value": "busybox"}));
    let pkg = doc["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == "busybox")
        .expect("pkg");
    assert!(
        pkg["components"].as_array().expect("nested").iter().any(|f| f["name"] == "/bin/busybox"),
        "files nest in their package"
    );
}

// ---------- OCI layouts and archives built here ----------

enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

fn layer_tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            E::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o755);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).expect("append");
            }
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).expect("append");
            }
            E::Link(p, t) | E::Hard(p, t) => {
                h.set_entry_type(if matches!(e, E::Link(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                b.append_link(&mut h, p, t).expect("append");
            }
        }
    }
    b.into_inner().expect("tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = sha256_hex(bytes);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join(&hex), bytes).expect("blob");
    (format!("sha256:{hex}"), bytes.len())
}

/// Writes an OCI layout; `layers` are (bytes as stored, media type).
pub fn oci_layout(layout: &Path, layers: &[(Vec<u8>, &str)], name: &str) -> String {
    let config =
        json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
    let (cfg_digest, cfg_size) = put_blob(layout, &serde_json::to_vec(&config).expect("json"));
    let layer_descs: Vec<Value> = layers
        .iter()
        .map(|(bytes, mt)| {
            let (d, s) = put_blob(layout, bytes);
            json!({"mediaType": mt, "digest": d, "size": s})
        })
        .collect();
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
        "layers": layer_descs});
    let (m_digest, m_size) = put_blob(layout, &serde_json::to_vec(&manifest).expect("json"));
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": m_digest, "size": m_size, "platform": {"os": "linux", "architecture": "amd64"},
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1.0"}}]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&index).expect("json")).expect("index");
    fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    m_digest
}

const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

fn two_layers() -> Vec<(Vec<u8>, &'static str)> {
    let l1 = layer_tar(&[
        E::Dir("bin/"),
        E::File("bin/tool", b"\x7fELF tool v1"),
        E::Link("bin/alias", "tool"),
        E::Dir("etc/"),
        E::File("etc/removed", b"gone in layer 2"),
        E::Dir("etc/conf.d/"),
        E::File("etc/conf.d/a", b"a"),
        E::File("etc/conf.d/b", b"b"),
        E::File("etc/replaced", b"old"),
    ]);
    let l2 = layer_tar(&[
        E::File("etc/.wh.removed", b""),
        E::File("etc/conf.d/.wh..wh..opq", b""),
        E::File("etc/conf.d/c", b"c"),
        E::File("etc/replaced", b"new"),
        E::File("bin/extra", b"\x7fELF extra"),
        E::Hard("bin/extra-hardlink", "bin/extra"),
    ]);
    vec![(gzip(&l1), GZ), (l2, TAR)]
}

fn check_two_layer_sbom(doc: &Value) {
    let names: Vec<&str> =
        doc["files"].as_array().expect("files").iter().filter_map(|f| f["fileName"].as_str()).collect();
    assert!(!names.contains(&"./etc/removed"), "whiteout: {names:?}");
    assert!(
        !names.contains(&"./etc/conf.d/a") && !names.contains(&"./etc/conf.d/b"),
        "opaque dir: {names:?}"
    );
    for want in [
        "./etc/conf.d/c",
        "./bin/tool",
        "./bin/alias",
        "./bin/extra",
        "./bin/extra-hardlink",
        "./etc/replaced",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let replaced = spdx_file(doc, "./etc/replaced").expect("replaced");
    assert_eq!(spdx_checksum(replaced, "SHA256"), sha256_hex(b"new"), "upper layer wins");
    let hard = spdx_file(doc, "./bin/extra-hardlink").expect("hardlink");
    assert_eq!(spdx_checksum(hard, "SHA256"), sha256_hex(b"\x7fELF extra"));
}

#[test]
fn oci_layout_two_layers_with_whiteouts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let digest = oci_layout(&layout, &two_layers(), "registry.example/team/app:1.0");
    let out = tmp.path().join("img.spdx.json");
    let doc = generate(&layout, "spdx-json", &out);
    validate_spdx(&out);
    check_two_layer_sbom(&doc);
    let root = doc["packages"]
        .as_array()
        .expect("pkgs")
        .iter()
        .find(|p| p["SPDXID"] == "SPDXRef-Root")
        .expect("root");
    assert_eq!(root["primaryPackagePurpose"], "CONTAINER");
    assert_eq!(root["versionInfo"], digest);
    let purl = root["externalRefs"][0]["referenceLocator"].as_str().expect("purl");
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(
        purl,
        format!("pkg:oci/app@sha256%3A{hex}?repository_url=registry.example%2Fteam%2Fapp&tag=1.0&arch=amd64")
    );
    let cdx = tmp.path().join("img.cdx.json");
    let doc = generate(&layout, "cyclonedx-json", &cdx);
    validate_cdx(&cdx);
    assert_eq!(doc["metadata"]["component"]["type"], "container");
    assert_eq!(doc["metadata"]["component"]["version"], digest);
}

fn tar_of_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(fs::File::create(out).expect("create"));
    b.append_dir_all(".", dir).expect("tar dir");
    b.finish().expect("finish");
}

#[test]
fn oci_archive_tar_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    oci_layout(&layout, &two_layers(), "app:1.0");
    let archive = tmp.path().join("image.tar");
    tar_of_dir(&layout, &archive);
    let out = tmp.path().join("tar.spdx.json");
    let doc = generate(&archive, "spdx-json", &out);
    check_two_layer_sbom(&doc);
    validate_spdx(&out);
}

#[test]
fn docker_archive_tar_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("docker");
    fs::create_dir_all(dir.join("l1")).expect("mkdir");
    fs::create_dir_all(dir.join("l2")).expect("mkdir");
    let layers = two_layers();
    // docker save stores layers uncompressed.
    let mut l1 = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&layers[0].0[..]), &mut l1).expect("gunzip");
    fs::write(dir.join("l1/layer.tar"), &l1).expect("write");
    fs::write(dir.join("l2/layer.tar"), &layers[1].0).expect("write");
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
        "diff_ids": [format!("sha256:{}", sha256_hex(&l1)), format!("sha256:{}", sha256_hex(&layers[1].0))]}}))
    .expect("json");
    fs::write(dir.join("cfg.json"), &config).expect("write");
    fs::write(
        dir.join("manifest.json"),
        br#"[{"Config":"cfg.json","RepoTags":["app:2.0"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#,
    )
    .expect("write");
    let archive = tmp.path().join("docker.tar");
    tar_of_dir(&dir, &archive);
    let out = tmp.path().join("docker.spdx.json");
    let doc = generate(&archive, "spdx-json", &out);
    check_two_layer_sbom(&doc);
    validate_spdx(&out);
    let root = doc["packages"]
        .as_array()
        .expect("pkgs")
        .iter()
        .find(|p| p["SPDXID"] == "SPDXRef-Root")
        .expect("root");
    assert_eq!(root["name"], "app:2.0");
    assert_eq!(root["versionInfo"], format!("sha256:{}", sha256_hex(&config)));

    // A layer whose content no longer matches the config's diff ID.
    let mut l2 = layers[1].0.clone();
    let pos = l2.windows(3).position(|w| w == b"new").expect("file data");
    l2[pos] = b'N';
    fs::write(dir.join("l2/layer.tar"), &l2).expect("write");
    tar_of_dir(&dir, &archive);
    fails_with(&["sbom", "generate", archive.to_str().expect("utf8")], &["layer 2", "tampered with"]);
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = run(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "exit 2 expected, stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
}

#[test]
fn errors_name_the_input_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("does-not-exist");
    fails_with(&["sbom", "generate", missing.to_str().expect("utf8")], &["does-not-exist", "cannot read"]);
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    fails_with(&["sbom", "generate", empty.to_str().expect("utf8")], &["empty", "neither a root filesystem"]);
    let text = tmp.path().join("notes.txt");
    fs::write(&text, "just text, not a tar").expect("write");
    fails_with(
        &["sbom", "generate", text.to_str().expect("utf8")],
        &["notes.txt", "neither a root filesystem"],
    );

    // A gzip layer cut short and damaged; the manifest digest matches the
    // damaged bytes, so the failure is the decompression itself.
    let mut layers = two_layers();
    let gz = &mut layers[0].0;
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let layout = tmp.path().join("corrupt");
    oci_layout(&layout, &layers, "app:1");
    let hex = sha256_hex(&layers[0].0);
    fails_with(&["sbom", "generate", layout.to_str().expect("utf8")], &["layer 1 of 2", &hex, "corrupt"]);

    // A layer whose bytes do not match the manifest digest.
    let layout = tmp.path().join("tampered");
    oci_layout(&layout, &two_layers(), "app:1");
    let blob = fs::read_dir(layout.join("blobs/sha256"))
        .expect("blobs")
        .filter_map(Result::ok)
        .find(|e| fs::read(e.path()).is_ok_and(|b| b == two_layers()[1].0));
    let blob = blob.expect("layer 2 blob").path();
    let mut bytes = fs::read(&blob).expect("read");
    bytes[600] ^= 1;
    fs::write(&blob, bytes).expect("write");
    fails_with(&["sbom", "generate", layout.to_str().expect("utf8")], &["layer 2", "tampered with"]);
}

/// An index of two per-platform manifests plus a buildkit attestation
/// manifest, nested one level as `docker buildx` writes it.
#[test]
fn multi_platform_index_picks_the_requested_platform() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let mut descs = Vec::new();
    for (arch, content) in
        [("amd64", &b"\x7fELF x86"[..]), ("arm64", &b"\x7fELF arm"[..]), ("unknown", &b"{}"[..])]
    {
        let (layer, layer_size) = put_blob(&layout, &gzip(&layer_tar(&[E::File("bin/app", content)])));
        let (cfg, cfg_size) =
            put_blob(&layout, format!(r#"{{"os":"linux","architecture":"{arch}"}}"#).as_bytes());
        let manifest = json!({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
            "layers": [{"mediaType": GZ, "digest": layer, "size": layer_size}]});
        let (m, m_size) = put_blob(&layout, &serde_json::to_vec(&manifest).expect("json"));
        let os = if arch == "unknown" { "unknown" } else { "linux" };
        descs.push(
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": m_size,
            "platform": {"os": os, "architecture": arch}}),
        );
    }
    let inner = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs});
    let (inner_digest, inner_size) = put_blob(&layout, &serde_json::to_vec(&inner).expect("json"));
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": inner_digest, "size": inner_size, "annotations": {"io.containerd.image.name": "example.org/multi:1"}}]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&index).expect("json")).expect("index");
    let app_sha = |platform: Option<&str>| {
        let out = tmp.path().join("multi.json");
        let mut args =
            vec!["sbom", "generate", layout.to_str().expect("utf8"), "-o", out.to_str().expect("utf8")];
        if let Some(p) = platform {
            args.extend(["--platform", p]);
        }
        let o = run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let doc: Value = serde_json::from_slice(&fs::read(&out).expect("read")).expect("json");
        spdx_checksum(spdx_file(&doc, "./bin/app").expect("app"), "SHA256")
    };
    assert_eq!(app_sha(Some("linux/arm64")), sha256_hex(b"\x7fELF arm"));
    assert_eq!(app_sha(Some("linux/amd64")), sha256_hex(b"\x7fELF x86"));
    if cfg!(target_arch = "x86_64") {
        assert_eq!(app_sha(None), sha256_hex(b"\x7fELF x86"), "default: this machine's platform");
    }
}

#[test]
fn platform_selection() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    oci_layout(&layout, &two_layers(), "app:1");
    let out = tmp.path().join("x.json");
    fails_with(
        &[
            "sbom",
            "generate",
            layout.to_str().expect("utf8"),
            "--platform",
            "linux/arm64",
            "-o",
            out.to_str().expect("utf8"),
        ],
        &["linux/arm64", "available: linux/amd64"],
    );
    let o = run(&[
        "sbom",
        "generate",
        layout.to_str().expect("utf8"),
        "--platform",
        "linux/amd64",
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success());
}

/// Entries over 64 MiB are hashed while streaming instead of buffered.
#[test]
fn large_layer_entries_are_streamed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let big = vec![7u8; 65 << 20];
    let layer = layer_tar(&[E::File("opt/big.bin", &big), E::File("opt/small", b"s")]);
    oci_layout(&layout, &[(layer, TAR)], "big:1");
    let out = tmp.path().join("big.json");
    let doc = generate(&layout, "spdx-json", &out);
    assert_eq!(spdx_checksum(spdx_file(&doc, "./opt/big.bin").expect("big"), "SHA256"), sha256_hex(&big));
    assert_eq!(
        spdx_checksum(spdx_file(&doc, "./opt/big.bin").expect("big"), "SHA1"),
        hex::encode(sha1::Sha1::digest(&big))
    );
    assert_eq!(spdx_checksum(spdx_file(&doc, "./opt/small").expect("small"), "SHA256"), sha256_hex(b"s"));
}

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A rootfs with /proc mounted (as `/proc/<pid>/root` of a running
/// container has) must not hash /proc/kcore and friends.
#[test]
fn pseudo_filesystems_inside_a_rootfs_are_skipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    fs::create_dir_all(root.join("proc")).expect("mkdir");
    fs::create_dir_all(root.join("bin")).expect("mkdir");
    fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    let proc = root.join("proc");
    let mounted =
        Command::new("mount").args(["-t", "proc", "proc"]).arg(&proc).status().is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting proc needs root (CAP_SYS_ADMIN)");
        return;
    }
    let _guard = Mounted(proc);
    let out = tmp.path().join("p.json");
    let o = run(&["sbom", "generate", root.to_str().expect("utf8"), "-o", out.to_str().expect("utf8")]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("pseudo-filesystem"));
    let doc: Value = serde_json::from_slice(&fs::read(&out).expect("read")).expect("json");
    assert_eq!(doc["files"].as_array().expect("files").len(), 1, "only /bin/busybox");
}
