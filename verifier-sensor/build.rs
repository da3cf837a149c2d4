//! Builds the kernel programs (`verifier-ebpf`) with aya-build and leaves the
//! object in `OUT_DIR/verifier`, which the agent embeds.
//!
//! Building eBPF needs the nightly toolchain with rust-src and `bpf-linker`
//! (`cargo xtask setup` installs both). Without them — or with
//! `AYA_BUILD_SKIP=1` — the agent still builds, so `cargo build`, `clippy`
//! and the unit tests work on a bare stable toolchain, and the embedded
//! object is empty: `verifier agent` then says how to get a full build.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=PATH");
    let out = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out.join("verifier");

    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip || which::which("bpf-linker").is_err() {
        println!(
            "cargo:warning=eBPF programs not built ({}); run `cargo xtask setup` for a full build",
            if skip { "AYA_BUILD_SKIP is set" } else { "bpf-linker is not on PATH" }
        );
        fs::write(&object, b"").context("writing empty eBPF object")?;
        return Ok(());
    }
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }

    let metadata = cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let package = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "verifier-ebpf")
        .ok_or_else(|| anyhow!("verifier-ebpf package not found in the workspace"))?;
    let root =
        package.manifest_path.parent().ok_or_else(|| anyhow!("no parent for {}", package.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package { name: package.name.as_str(), root_dir: root.as_str(), ..Default::default() }],
        Toolchain::default(),
    )
}
