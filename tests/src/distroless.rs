//! A distroless-style root filesystem built from real Debian packages:
//! Google's distroless images have no `/var/lib/dpkg/status` and no
//! `info/` directory, but one control file per package in
//! `/var/lib/dpkg/status.d/<package>` and, beside it, the package's
//! `<package>.md5sums`. This builds that layout offline from `.deb` files:
//! `dpkg-deb -x` for the files, `dpkg-deb -f` for the control file, and the
//! `md5sums` member of the control archive.
//!
//! The `.deb` files are fetched once by `cargo xtask setup` (`apt-get
//! download`) into [`debs_dir`]; the test itself needs no network.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// The packages: a static busybox (runs with no libc), netbase and tzdata
/// (data files and conffiles).
pub const PACKAGES: &[&str] = &["busybox-static", "netbase", "tzdata"];

/// Where `cargo xtask setup` puts the `.deb` files.
pub fn debs_dir() -> PathBuf {
    PathBuf::from("/var/cache/verifier/debs")
}

/// One package unpacked into the rootfs.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Lines of its md5sums (files it installed).
    pub files: usize,
}

/// The `.deb` of `package` in [`debs_dir`].
pub fn deb_of(package: &str) -> anyhow::Result<PathBuf> {
    let dir = debs_dir();
    let prefix = format!("{package}_");
    std::fs::read_dir(&dir)
        .with_context(|| format!("reading {} (run `cargo xtask setup`)", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
        .with_context(|| format!("no {package} .deb in {} (run `cargo xtask setup`)", dir.display()))
}

fn output(cmd: &mut Command, what: &str) -> anyhow::Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

/// Unpacks [`PACKAGES`] into `rootfs` with a distroless `status.d`.
pub fn build(rootfs: &Path) -> anyhow::Result<Vec<Unpacked>> {
    let status_d = rootfs.join("var/lib/dpkg/status.d");
    std::fs::create_dir_all(&status_d)?;
    let mut out = Vec::new();
    for package in PACKAGES {
        let deb = deb_of(package)?;
        output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(rootfs), "dpkg-deb -x")?;
        let control = output(Command::new("dpkg-deb").arg("-f").arg(&deb), "dpkg-deb -f")?;
        std::fs::write(status_d.join(package), &control)?;
        let control = String::from_utf8_lossy(&control);
        let field = |name: &str| {
            control.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim().to_owned())
        };
        let md5sums = output(
            Command::new("sh")
                .arg("-c")
                .arg("dpkg-deb --ctrl-tarfile \"$1\" | tar -xO ./md5sums")
                .arg("sh")
                .arg(&deb),
            "extracting md5sums",
        )?;
        std::fs::write(status_d.join(format!("{package}.md5sums")), &md5sums)?;
        out.push(Unpacked {
            name: (*package).to_owned(),
            version: field("Version").context("control file without Version")?,
            arch: field("Architecture").context("control file without Architecture")?,
            files: md5sums.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count(),
        });
    }
    Ok(out)
}

/// A package-only CycloneDX SBOM listing `packages` by purl, as trivy,
/// syft or debsbom write for a distroless image.
pub fn package_only_cdx(packages: &[Unpacked]) -> serde_json::Value {
    let components: Vec<_> = packages
        .iter()
        .map(|p| {
            let version = p.version.replace(':', "%3A").replace('+', "%2B");
            serde_json::json!({
                "type": "library", "name": p.name, "version": p.version,
                "purl": format!("pkg:deb/debian/{}@{version}?arch={}&distro=debian-12", p.name, p.arch),
            })
        })
        .collect();
    serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": components})
}
