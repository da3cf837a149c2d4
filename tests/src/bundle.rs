//! A minimal OCI bundle: a busybox-static root filesystem and a
//! `config.json` from `runc spec`, adjusted for detached, non-terminal runs.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// Applets linked in the image, as `/bin/<name> -> busybox`.
pub const APPLETS: &[&str] =
    &["sh", "ls", "cat", "echo", "sleep", "true", "env", "id", "uname", "ps", "cp", "chmod"];

/// Where Debian's busybox-static installs.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// An OCI bundle on disk.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
}

impl Bundle {
    /// The root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Builds a busybox bundle in `dir` whose container runs `args`.
    pub fn busybox(dir: &Path, args: &[&str]) -> anyhow::Result<Self> {
        if !Path::new(HOST_BUSYBOX).exists() {
            bail!("{HOST_BUSYBOX} is missing: run `cargo xtask setup` (installs busybox-static)");
        }
        let rootfs = dir.join("rootfs");
        for sub in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(sub))?;
        }
        let busybox = rootfs.join("bin/busybox");
        if !busybox.exists() {
            std::fs::copy(HOST_BUSYBOX, &busybox).context("copying busybox into the rootfs")?;
        }
        for applet in APPLETS {
            let link = rootfs.join("bin").join(applet);
            if link.symlink_metadata().is_err() {
                symlink("busybox", &link)?;
            }
        }
        std::fs::write(rootfs.join("etc/os-release"), "NAME=verifier-demo\nID=busybox\n")?;
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
        let bundle = Self { dir: dir.to_path_buf() };
        bundle.write_config(args)?;
        Ok(bundle)
    }

    /// (Re)writes `config.json` with `args` as the container's process.
    pub fn write_config(&self, args: &[&str]) -> anyhow::Result<()> {
        let config = self.dir.join("config.json");
        let _ = std::fs::remove_file(&config);
        let status = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(&self.dir)
            .status()
            .context("running `runc spec` (is runc installed? `cargo xtask setup`)")?;
        if !status.success() {
            bail!("runc spec failed: {status}");
        }
        let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&config)?)?;
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = args.iter().map(|a| serde_json::Value::from(*a)).collect();
        spec["root"]["readonly"] = false.into();
        std::fs::write(&config, serde_json::to_vec_pretty(&spec)?)?;
        Ok(())
    }
}
