//! QEMU and the matrix's kernels, from Debian's own packages, cached under
//! `/var/cache/verifier/kernels/` so a second run downloads nothing.
//!
//! Both come through a *private* apt configuration (its own sources list,
//! lists, archives and status under `apt/`): the machine's sources stay as
//! they are, yet the kernels of other suites of the same mirror
//! (bullseye-security, trixie-backports) can be fetched. Nothing is
//! installed: `apt-get download` then `dpkg-deb -x` into the cache.
//!
//! - QEMU: Debian's `qemu-system-x86` conflicts with the preinstalled
//!   `qemu-utils`, so its package and the libraries it needs that the
//!   machine lacks are unpacked into `qemu/` and run with
//!   `LD_LIBRARY_PATH`; `-L` points at the unpacked firmware.
//! - Kernels: the newest `linux-image-<series>*-cloud-amd64` (the cloud
//!   flavour boots fastest; serial console, cgroup2, BPF, BTF and BPF LSM
//!   are built in, and the guest needs no module). Newer packaging splits
//!   the kernel into `linux-binary-*` (vmlinuz) and `linux-base-*`
//!   (config): those dependencies are fetched too. Only `vmlinuz`,
//!   `config` and the package name are kept.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util::{self, output};

/// Root of the cache.
pub(crate) const CACHE: &str = "/var/cache/verifier/kernels";
const MIRROR: &str = "http://deb.debian.org";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Suites the private apt configuration reads.
const SOURCES: &[(&str, &str)] = &[
    ("debian", "bookworm"),
    ("debian-security", "bookworm-security"),
    ("debian-security", "bullseye-security"),
    ("debian", "trixie-backports"),
];
/// QEMU from bookworm, and the libraries it links that a machine with
/// only `qemu-utils` lacks (found with `ldd`; a missing one is reported).
const QEMU_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-system-data",
    "seabios",
    "libcapstone4",
    "libfdt1",
    "libpmem1",
    "libndctl6",
    "libdaxctl1",
    "librdmacm1",
    "libibverbs1",
    "libnl-3-200",
    "libnl-route-3-200",
    "libslirp0",
    "libvdeplug2",
];

/// The private apt configuration.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new() -> anyhow::Result<Self> {
        let dir = Path::new(CACHE).join("apt");
        for sub in ["lists/partial", "archives/partial", "cache", "preferences.d"] {
            std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.display()))?;
        }
        let sources: String = SOURCES
            .iter()
            .map(|(archive, suite)| format!("deb [signed-by={KEYRING}] {MIRROR}/{archive} {suite} main\n"))
            .collect();
        std::fs::write(dir.join("sources.list"), sources)?;
        let status = dir.join("status");
        if !status.exists() {
            std::fs::write(&status, "")?;
        }
        Ok(Self { dir })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        [
            format!("Dir::Etc::SourceList={d}/sources.list"),
            "Dir::Etc::SourceParts=/nonexistent".into(),
            format!("Dir::Etc::Preferences={d}/preferences"),
            format!("Dir::Etc::PreferencesParts={d}/preferences.d"),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::State::Status={d}/status"),
            format!("Dir::Cache={d}/cache"),
            format!("Dir::Cache::Archives={d}/archives"),
            "APT::Architecture=amd64".into(),
            "APT::Sandbox::User=root".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn cmd(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.args(self.options());
        cmd
    }

    /// `apt-get update` of the private lists, once (when none are there).
    fn update_once(&self) -> anyhow::Result<()> {
        let have_lists = std::fs::read_dir(self.dir.join("lists"))?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"));
        if have_lists {
            return Ok(());
        }
        eprintln!("xtask kernels: apt-get update (private lists in {})", self.dir.display());
        util::run(self.cmd("apt-get").args(["update", "-qq"])).context("apt-get update of the private lists")
    }

    /// Downloads `packages` into `into` (an empty directory).
    fn download(&self, packages: &[String], into: &Path) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(into)?;
        util::run(self.cmd("apt-get").args(["download", "-qq"]).args(packages).current_dir(into))
            .with_context(|| format!("apt-get download {}", packages.join(" ")))?;
        let mut debs: Vec<PathBuf> = std::fs::read_dir(into)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        debs.sort();
        Ok(debs)
    }
}

/// Unpacks every `.deb` into `dir`.
fn unpack(debs: &[PathBuf], dir: &Path) -> anyhow::Result<()> {
    for deb in debs {
        util::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir))?;
    }
    Ok(())
}

/// QEMU unpacked in the cache.
pub(crate) struct Qemu {
    root: PathBuf,
}

impl Qemu {
    pub(crate) fn binary(&self) -> PathBuf {
        self.root.join("usr/bin/qemu-system-x86_64")
    }

    /// `qemu-system-x86_64` with its libraries and firmware directories.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(self.binary());
        // The TCG accelerator is a loadable module: QEMU looks for it in
        // its build-time directory unless told otherwise.
        cmd.env("LD_LIBRARY_PATH", self.library_path())
            .env("QEMU_MODULE_DIR", self.root.join("usr/lib/x86_64-linux-gnu/qemu"))
            .arg("-L")
            .arg(self.root.join("usr/share/seabios"))
            .arg("-L")
            .arg(self.root.join("usr/share/qemu"));
        cmd
    }

    fn library_path(&self) -> String {
        ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
            .iter()
            .map(|d| self.root.join(d).display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    fn works(&self) -> bool {
        self.binary().exists()
            && Command::new(self.binary())
                .arg("--version")
                .env("LD_LIBRARY_PATH", self.library_path())
                .output()
                .is_ok_and(|o| o.status.success())
    }
}

/// QEMU, fetched and unpacked unless the cache already has a working one.
pub(crate) fn qemu() -> anyhow::Result<Qemu> {
    let qemu = Qemu { root: Path::new(CACHE).join("qemu") };
    if qemu.works() {
        return Ok(qemu);
    }
    eprintln!("xtask kernels: fetching QEMU from bookworm into {}", qemu.root.display());
    let apt = Apt::new()?;
    apt.update_once()?;
    let debs_dir = Path::new(CACHE).join("qemu-debs");
    let _ = std::fs::remove_dir_all(&debs_dir);
    let wanted: Vec<String> = QEMU_PACKAGES.iter().map(|p| format!("{p}/bookworm")).collect();
    let debs = apt.download(&wanted, &debs_dir)?;
    unpack(&debs, &qemu.root)?;
    std::fs::remove_dir_all(&debs_dir)?;
    if !qemu.works() {
        let ldd =
            Command::new("ldd").arg(qemu.binary()).env("LD_LIBRARY_PATH", qemu.library_path()).output()?;
        let missing: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
            .lines()
            .filter(|l| l.contains("not found"))
            .map(|l| l.trim().to_string())
            .collect();
        bail!(
            "{} does not run; missing libraries: {missing:?}: add their packages to QEMU_PACKAGES in \
             xtask/src/kernels/fetch.rs",
            qemu.binary().display()
        );
    }
    Ok(qemu)
}

/// One kernel of the matrix, unpacked in the cache.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub vmlinuz: PathBuf,
    pub config: PathBuf,
    /// The Debian package it came from (name and version).
    pub package: String,
}

/// The kernel of `series` (`6.1`, `7.3`, ...), fetched unless cached.
pub(crate) fn kernel(series: &str) -> anyhow::Result<Fetched> {
    let dir = Path::new(CACHE).join(series);
    let fetched = Fetched {
        vmlinuz: dir.join("vmlinuz"),
        config: dir.join("config"),
        package: std::fs::read_to_string(dir.join("package")).unwrap_or_default().trim().to_string(),
    };
    if fetched.vmlinuz.exists() && fetched.config.exists() && !fetched.package.is_empty() {
        return Ok(fetched);
    }
    let apt = Apt::new()?;
    apt.update_once()?;
    let image = newest_image(&apt, series)?;
    let mut packages = vec![image.clone()];
    packages.extend(split_parts(&apt, &image)?);
    eprintln!("xtask kernels: fetching {}", packages.join(" "));
    let work = dir.join("unpack");
    let _ = std::fs::remove_dir_all(&work);
    let debs = apt.download(&packages, &work.join("debs"))?;
    unpack(&debs, &work.join("root"))?;
    let found = |name: &str| -> anyhow::Result<PathBuf> {
        find_file(&work.join("root"), name)
            .with_context(|| format!("no {name}* in the packages {packages:?} of kernel {series}"))
    };
    std::fs::copy(found("vmlinuz")?, &fetched.vmlinuz)?;
    std::fs::copy(found("config")?, &fetched.config)?;
    let version = output(Command::new("dpkg-deb").arg("-f").arg(&debs[0]).arg("Version")).unwrap_or_default();
    std::fs::write(dir.join("package"), format!("{image} {version}\n"))?;
    std::fs::remove_dir_all(&work)?;
    kernel(series)
}

/// The newest `linux-image-<series>...-cloud-amd64` the private lists know.
fn newest_image(apt: &Apt, series: &str) -> anyhow::Result<String> {
    let pattern = format!("^linux-image-{}[.-].*-cloud-amd64$", series.replace('.', "\\."));
    let found = output(apt.cmd("apt-cache").args(["search", "--names-only"]).arg(&pattern))?;
    let mut names: Vec<&str> = found.lines().filter_map(|l| l.split_whitespace().next()).collect();
    names.sort_by_key(|n| version_key(n));
    names
        .last()
        .map(|n| (*n).to_string())
        .with_context(|| format!("no package matches {pattern} in the suites {SOURCES:?}"))
}

/// Numbers in a name, in order, so that `6.1.0-57` sorts after `6.1.0-9`.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect()
}

/// `linux-binary-*` / `linux-base-*` dependencies of `image` that have a
/// candidate (newer packaging keeps vmlinuz and config there).
fn split_parts(apt: &Apt, image: &str) -> anyhow::Result<Vec<String>> {
    let depends = output(apt.cmd("apt-cache").arg("depends").arg(image))?;
    let mut parts = Vec::new();
    for line in depends.lines() {
        let Some(dep) = line.trim().strip_prefix("Depends: ") else { continue };
        if !(dep.starts_with("linux-binary-") || dep.starts_with("linux-base-"))
            || parts.iter().any(|p| p == dep)
        {
            continue;
        }
        let policy = output(apt.cmd("apt-cache").arg("policy").arg(dep))?;
        if policy.lines().any(|l| l.trim().starts_with("Candidate:") && !l.contains("(none)")) {
            parts.push(dep.to_string());
        }
    }
    Ok(parts)
}

/// The first regular file under `root` named `name` or `name-*`
/// (`vmlinuz-<release>` in /boot, or `vmlinuz` in /usr/lib/modules/<release>).
fn find_file(root: &Path, name: &str) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            let kind = entry.file_type().ok()?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && {
                let file = entry.file_name();
                let file = file.to_string_lossy();
                file == name || file.strip_prefix(name).is_some_and(|rest| rest.starts_with('-'))
            } {
                return Some(path);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_abi_numbers_sort_last() {
        let mut names = ["linux-image-6.1.0-9-cloud-amd64", "linux-image-6.1.0-57-cloud-amd64"];
        names.sort_by_key(|n| version_key(n));
        assert_eq!(names[1], "linux-image-6.1.0-57-cloud-amd64");
    }
}
