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

/// A one-binary test package `pkg`: `/usr/bin/true` with `marker` appended
/// (so its digest is its own) installed at `bin`, with its md5sums as
/// debhelper writes them; built in `dir`. What the build-host tests
/// install, run, change and purge.
pub fn small_package(dir: &Path, pkg: &str, bin: &str, marker: &str) -> anyhow::Result<PathBuf> {
    let root = dir.join("pkg");
    fs::create_dir_all(root.join("DEBIAN"))?;
    let rel = bin.trim_start_matches('/');
    let path = root.join(rel);
    fs::create_dir_all(path.parent().context("the binary's directory")?)?;
    let mut bytes = fs::read("/usr/bin/true")?;
    bytes.extend_from_slice(format!("{marker} {}\n", std::process::id()).as_bytes());
    fs::write(&path, &bytes)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    let arch = Command::new("dpkg").arg("--print-architecture").output()?;
    let arch = String::from_utf8(arch.stdout)?.trim().to_owned();
    fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {pkg}\nVersion: 1.0\nArchitecture: {arch}\nMaintainer: verifier tests <root@localhost>\n\
             Description: a binary installed and purged by the verifier's tests\n"
        ),
    )?;
    // md5sums as debhelper writes it (paths relative to the root).
    let sums = Command::new("md5sum").current_dir(&root).arg(rel).output()?;
    anyhow::ensure!(sums.status.success(), "md5sum failed");
    fs::write(root.join("DEBIAN/md5sums"), sums.stdout)?;
    let deb = dir.join(format!("{pkg}.deb"));
    let out =
        Command::new("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&root).arg(&deb).output()?;
    anyhow::ensure!(out.status.success(), "dpkg-deb: {}", String::from_utf8_lossy(&out.stderr));
    Ok(deb)
}

/// Purges a test package (and removes its binary) when dropped, so a
/// failed test leaves nothing installed.
pub struct Purge {
    pub package: &'static str,
    pub binary: &'static str,
}

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", self.package]).output();
        let _ = fs::remove_file(self.binary);
    }
}
