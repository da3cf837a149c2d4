//! `cargo xtask setup`: make this machine able to build and test.
//!
//! Every step checks before it acts, so a second run does nothing:
//! - Debian packages the tests use (runc, busybox-static, bpftool, containerd,
//!   umoci, prometheus for `promtool check metrics`);
//! - the nightly toolchain's rust-src (eBPF is built with
//!   `-Z build-std=core`);
//! - bpf-linker 0.13.0 built against the nightly toolchain's *own* libLLVM
//!   (Debian has no LLVM 22): a directory whose `lib/` holds symlinks to
//!   that library is passed as `LLVM_PREFIX`, and kept (bpf-linker's rpath
//!   points into it);
//! - the Python validators the SBOM, OCSF and record-schema tests run;
//! - cargo-fuzz, for the SBOM readers' fuzz targets;
//! - the real Debian image and its SBOMs for the false-alarm test
//!   (`real_image`, cached outside the repository; mmdebstrap from apt).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::Context as _;

use crate::util::{self, cargo_bin, output, root};

const APT_PACKAGES: &[&str] = &[
    "runc",
    "busybox-static",
    "bpftool",
    "containerd",
    "umoci",
    "mmdebstrap",
    "prometheus",
    "gcc",
    "make",
    // The registry tests: a local OCI registry, an image copier, htpasswd.
    "docker-registry",
    "skopeo",
    "apache2-utils",
    // systemd-analyze for the package test.
    "systemd",
    "libc6-dev",
    "nats-server",
    "buildah",
];
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Where the LLVM prefix for bpf-linker lives (must outlive the build).
fn llvm_prefix() -> PathBuf {
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
        .join(".local/share/verifier/llvm-nightly")
}

pub fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut did = Vec::new();
    if apt()? {
        did.push("apt packages");
    }
    if rust_src()? {
        did.push("rust-src");
    }
    if bpf_linker()? {
        did.push("bpf-linker");
    }
    if validators()? {
        did.push("python validators");
    }
    if cargo_fuzz()? {
        did.push("cargo-fuzz");
    }
    if crate::real_image::ensure()? {
        did.push("real image");
    }
    let took = started.elapsed().as_secs_f64();
    if did.is_empty() {
        eprintln!("xtask setup: everything already present ({took:.1} s)");
    } else {
        eprintln!("xtask setup: installed {} ({took:.1} s)", did.join(", "));
    }
    Ok(())
}

fn apt() -> anyhow::Result<bool> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    eprintln!("xtask setup: installing {}", missing.join(" "));
    util::run(Command::new("apt-get").arg("update").arg("-qq"))?;
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("apt-get install (run as root)")?;
    Ok(true)
}

fn rust_src() -> anyhow::Result<bool> {
    let installed =
        output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))
            .context("the `nightly` toolchain is needed to build eBPF; install it with rustup")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(false);
    }
    util::run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    Ok(true)
}

/// The nightly toolchain's libLLVM shared object.
fn nightly_libllvm() -> anyhow::Result<PathBuf> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib = Path::new(&sysroot).join("lib");
    std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.contains("-rust-"))
        })
        .with_context(|| format!("no libLLVM.so.*-rust-* in {}", lib.display()))
}

/// Symlinks `lib/libLLVM.so` and `lib/<soname>` in the prefix to nightly's
/// library. Returns whether anything changed.
fn llvm_prefix_links(libllvm: &Path) -> anyhow::Result<bool> {
    let lib = llvm_prefix().join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let soname = libllvm.file_name().context("libLLVM file name")?;
    let mut changed = false;
    for name in [std::ffi::OsStr::new("libLLVM.so"), soname] {
        let link = lib.join(name);
        if std::fs::read_link(&link).ok().as_deref() == Some(libllvm) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(libllvm, &link).with_context(|| format!("linking {}", link.display()))?;
        changed = true;
    }
    Ok(changed)
}

fn bpf_linker() -> anyhow::Result<bool> {
    let libllvm = nightly_libllvm()?;
    let relinked = llvm_prefix_links(&libllvm)?;
    let linker = cargo_bin().join("bpf-linker");
    let works = Command::new(&linker)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION));
    if works && !relinked {
        return Ok(false);
    }
    eprintln!(
        "xtask setup: building bpf-linker {BPF_LINKER_VERSION} against {} (about a minute)",
        libllvm.display()
    );
    util::run(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked", "--force"])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", llvm_prefix()),
    )?;
    Ok(true)
}

/// The tests validate output with independent tools (`pyspdxtools`,
/// `cyclonedx-python-lib` for SBOMs; `ocsf-json-schema` and `jsonschema`
/// for OCSF alerts and docs/schemas/), installed into the machine's
/// `python3` from PyPI.
fn validators() -> anyhow::Result<bool> {
    let requirements = root().join("tests/validators/requirements.txt");
    if !requirements.exists() {
        return Ok(false);
    }
    let present = Command::new("python3")
        .args([
            "-c",
            "import spdx_tools, cyclonedx.validation.json, ocsf_json_schema, jsonschema, ntia_conformance_checker, kubernetes_validate",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(false);
    }
    util::run(Command::new("python3").args(["-m", "pip", "install", "-q", "-r"]).arg(&requirements))
        .context("installing the validators from PyPI")?;
    Ok(true)
}

/// The SBOM readers' fuzz targets run briefly in `cargo xtask test`.
fn cargo_fuzz() -> anyhow::Result<bool> {
    if cargo_bin().join("cargo-fuzz").exists() {
        return Ok(false);
    }
    util::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    Ok(true)
}
