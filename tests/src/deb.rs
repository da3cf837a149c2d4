//! The agent as a Debian package for build hosts (`cargo xtask deb`; the
//! `deb` test builds and checks the same package).
//!
//! `dpkg-deb --build --root-owner-group` of a staged tree: `/usr/bin/verifier`,
//! the hardened unit `deploy/host/verifier.service` in
//! `/lib/systemd/system`, `/etc/verifier/{verifier.conf,sbom-rules}` as
//! conffiles (an operator's edits survive upgrades), an empty SBOM store
//! and the deployment notes. Maintainer scripts enable and (re)start the
//! service only where systemd runs, and stop it on removal. The alert file
//! is rotated by the agent itself (`--alert-file-max-bytes`,
//! `--alert-file-keep`), not by logrotate: a second rotator renaming the
//! file under the agent would race its own rotation.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// The package's name.
pub const PACKAGE: &str = "verifier";

/// The repository root (this crate's parent directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| ".".into(), Path::to_path_buf)
}

const POSTINST: &str = r#"#!/bin/sh
set -e
mkdir -p /var/lib/verifier/sboms /var/log/verifier
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable verifier.service
    systemctl restart verifier.service || echo "verifier: the service did not start; see journalctl -u verifier" >&2
fi
"#;

const PRERM: &str = r#"#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl stop verifier.service || true
    if [ "$1" = remove ]; then systemctl disable verifier.service || true; fi
fi
"#;

const POSTRM: &str = r#"#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
"#;

/// Builds `verifier_<version>_amd64.deb` of `bin` into `out`; returns its path.
pub fn build(bin: &Path, version: &str, out: &Path) -> anyhow::Result<PathBuf> {
    let stage = tempfile::tempdir()?;
    let root = stage.path();
    let host = repo_root().join("deploy/host");
    put(bin, &root.join("usr/bin/verifier"), 0o755)?;
    put(&host.join("verifier.service"), &root.join("lib/systemd/system/verifier.service"), 0o644)?;
    put(&host.join("verifier.conf"), &root.join("etc/verifier/verifier.conf"), 0o644)?;
    put(&host.join("sbom-rules"), &root.join("etc/verifier/sbom-rules"), 0o644)?;
    put(&repo_root().join("docs/deploy.md"), &root.join("usr/share/doc/verifier/deploy.md"), 0o644)?;
    fs::create_dir_all(root.join("var/lib/verifier/sboms"))?;
    let debian = root.join("DEBIAN");
    let installed_kib = du(root)? / 1024;
    write(
        &debian.join("control"),
        &format!(
            "Package: {PACKAGE}\nVersion: {version}\nArchitecture: amd64\nMaintainer: verifier developers <verifier@localhost>\n\
             Depends: libc6 (>= 2.34), libgcc-s1\nRecommends: containerd | runc\nSection: admin\nPriority: optional\n\
             Installed-Size: {installed_kib}\n\
             Description: eBPF agent verifying container execs against their image's SBOM\n \
             Every exec in a container is hashed and looked up in its image's SBOM;\n \
             drift (unknown, modified, fileless binaries) becomes an alert.\n"
        ),
        0o644,
    )?;
    write(&debian.join("conffiles"), "/etc/verifier/verifier.conf\n/etc/verifier/sbom-rules\n", 0o644)?;
    write(&debian.join("postinst"), POSTINST, 0o755)?;
    write(&debian.join("prerm"), PRERM, 0o755)?;
    write(&debian.join("postrm"), POSTRM, 0o755)?;
    fs::create_dir_all(out)?;
    let deb = out.join(format!("{PACKAGE}_{version}_amd64.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zgzip"])
        .arg(root)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", "0")
        .status()
        .context("running dpkg-deb (Debian package dpkg)")?;
    if !status.success() {
        bail!("dpkg-deb --build of {} failed", root.display());
    }
    Ok(deb)
}

fn put(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(to: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(to, text)?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn du(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { du(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}
