//! Binaries the image never shipped, and an agent verifying a busybox
//! container against its SBOM: the pieces of the downgrade and scan tests.
//!
//! A dropped binary is busybox with a marker (and optional padding)
//! appended: it runs, named like an applet (busybox picks what to run from
//! the name it is called by), and has a digest no SBOM lists.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;
use sha2::Digest as _;

use crate::{
    agent::Agent,
    bundle::{Bundle, HOST_BUSYBOX},
    image,
};

/// A fresh container id for `prefix`.
pub fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Writes a dropped binary at `path` (absolute, inside `rootfs`) with
/// `pad` extra bytes; returns its SHA-256 in hex.
pub fn write_dropped(rootfs: &Path, path: &str, pad: usize) -> anyhow::Result<String> {
    let file = rootfs.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().context("no parent")?)?;
    let mut bytes = std::fs::read(HOST_BUSYBOX).with_context(|| format!("reading {HOST_BUSYBOX}"))?;
    bytes.extend_from_slice(b"\0dropped, not in the image\0");
    bytes.resize(bytes.len() + pad, 0);
    let mut f = std::fs::File::create(&file)?;
    f.write_all(&bytes)?;
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(hex(&sha2::Sha256::digest(&bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A busybox bundle (plus the image's own tool) running `args`, and its
/// SBOM, generated before anything is dropped into it.
pub struct Image {
    pub dir: tempfile::TempDir,
    pub bundle: Bundle,
    pub sbom: PathBuf,
}

impl Image {
    pub fn new(args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let bundle = image::busybox_with_tool(dir.path(), args)?;
        let sbom = image::generate_sbom(&bundle, &dir.path().join("sbom.spdx.json"), "spdx-json")?;
        Ok(Self { dir, bundle, sbom })
    }

    /// Starts an agent verifying container `id` against this SBOM, with
    /// `extra` options.
    pub fn agent(&self, id: &str, extra: &[&str]) -> anyhow::Result<Agent> {
        let rule = format!("{id}={}", self.sbom.display());
        let mut args = vec!["--stats-interval", "0", "--containers-only", "--sbom", &rule];
        args.extend_from_slice(extra);
        Agent::start(&args)
    }
}

/// Waits (up to `within`) for a record of container `id` that `pred`
/// accepts.
pub fn wait_for(agent: &Agent, within: Duration, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let t = Instant::now();
    loop {
        if let Some(r) = agent.records_so_far().into_iter().find(&pred) {
            return Ok(r);
        }
        if t.elapsed() > within {
            bail!("no such record within {within:?}: {:#?}", agent.records_so_far());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The exec record of container `id` with a verdict for `filename`.
pub fn verdict_of(id: &str, filename: &str) -> impl Fn(&Value) -> bool {
    let (id, filename) = (id.to_owned(), filename.to_owned());
    move |r| {
        r["type"] == "exec"
            && r["container"]["id"] == id.as_str()
            && r["filename"] == filename.as_str()
            && r["verification"]["verdict"].is_string()
    }
}

/// Alerts (first sightings) of container `id`.
pub fn alerts<'a>(records: &'a [Value], id: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["schema"] == "verifier.alert.v1" && r["type"] == "alert" && r["container"]["id"] == id)
        .collect()
}
