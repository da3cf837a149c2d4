//! `cargo xtask image`: the agent's OCI image (layout and oci-archive),
//! built without a container daemon, with its own SBOM inside and beside
//! it. The assembly is `verifier_tests::agent_image` (the pod-equivalent
//! test builds the same image); here it runs twice from the same inputs
//! and fails unless both give the same manifest digest.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, bail};
use serde_json::json;
use verifier_tests::agent_image::{self, IMAGE_NAME, Stamp};

use crate::util::{self, output, root};

#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    /// Output directory: `oci/` (the OCI layout), `verifier-image.oci.tar`
    /// (the same as an oci-archive, for `ctr images import`, `podman load`,
    /// `skopeo copy oci-archive:...`), `verifier-image.spdx.json`, `image.json`.
    #[arg(long, default_value = "target/image")]
    pub out: PathBuf,
    /// Agent binary to package (default: target/release/verifier, built first).
    #[arg(long)]
    pub bin: Option<PathBuf>,
}

pub fn run(args: &ImageArgs) -> anyhow::Result<()> {
    let bin = args.bin.clone().unwrap_or_else(util::verifier_bin);
    let out = if args.out.is_absolute() { args.out.clone() } else { root().join(&args.out) };
    let stamp = Stamp {
        epoch: source_date_epoch()?,
        reference: format!("{IMAGE_NAME}:{}", env!("CARGO_PKG_VERSION")),
        revision: output(Command::new("git").current_dir(root()).args(["rev-parse", "HEAD"]))
            .unwrap_or_else(|_| "unknown".into()),
    };
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let first = agent_image::assemble(&bin, Some(&bin), &out, &stamp)?;
    let again = tempfile::tempdir()?;
    let second = agent_image::assemble(&bin, Some(&bin), again.path(), &stamp)?;
    if first != second {
        bail!(
            "the image is not reproducible: two assemblies from the same inputs gave {} and {}",
            first.manifest_digest,
            second.manifest_digest
        );
    }
    let archive = out.join("verifier-image.oci.tar");
    agent_image::deterministic_tar(&out.join("oci"), &archive, stamp.epoch)?;
    fs::write(
        out.join("image.json"),
        serde_json::to_vec_pretty(&json!({
            "reference": stamp.reference,
            "manifest_digest": first.manifest_digest,
            "layer_bytes": first.layer_bytes,
            "rootfs_bytes": first.rootfs_bytes,
            "source_date_epoch": stamp.epoch,
        }))?,
    )?;
    eprintln!(
        "xtask: image {} {} (reproduced): layer {:.1} MiB compressed, rootfs {:.1} MiB\n\
         xtask: layout {}\nxtask: import with: ctr -n k8s.io images import {}",
        stamp.reference,
        first.manifest_digest,
        first.layer_bytes as f64 / 1_048_576.0,
        first.rootfs_bytes as f64 / 1_048_576.0,
        out.join("oci").display(),
        archive.display()
    );
    Ok(())
}

/// `SOURCE_DATE_EPOCH`, else the last commit's time.
fn source_date_epoch() -> anyhow::Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v.parse().with_context(|| format!("SOURCE_DATE_EPOCH={v} is not a number of seconds"));
    }
    output(Command::new("git").current_dir(root()).args(["log", "-1", "--format=%ct"]))?
        .parse()
        .context("git log -1 --format=%ct (set SOURCE_DATE_EPOCH outside a git checkout)")
}
