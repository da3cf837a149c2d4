//! Drives a real containerd: the daemon (started if none is running, at its
//! default socket, so the agent finds it where a node has it), images
//! imported from OCI layouts built here with umoci, and containers run with
//! `ctr`. Containers are killed and removed when their handle drops.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// containerd's default API socket.
pub const SOCKET: &str = "/run/containerd/containerd.sock";
/// The namespace the tests use.
pub const NAMESPACE: &str = "verifier-test";

fn ctr() -> Command {
    let mut c = Command::new("ctr");
    c.args(["--address", SOCKET, "--namespace", NAMESPACE]);
    c
}

fn checked(cmd: &mut Command, what: &str) -> anyhow::Result<Output> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

/// Makes sure a containerd daemon answers on [`SOCKET`], starting one
/// (logging to `log`) when none does.
pub fn ensure_daemon(log: &Path) -> anyhow::Result<()> {
    let up = || {
        Command::new("ctr").args(["--address", SOCKET, "version"]).output().is_ok_and(|o| o.status.success())
    };
    if up() {
        return Ok(());
    }
    let log = std::fs::File::create(log).context("containerd log file")?;
    Command::new("containerd")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting containerd (installed by `cargo xtask setup`)")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if up() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("containerd did not answer on {SOCKET} within 20 s")
}

/// An OCI image layout made with umoci from a root filesystem directory.
#[derive(Debug)]
pub struct OciImage {
    pub layout: PathBuf,
    pub tag: String,
}

impl OciImage {
    /// Builds `layout:tag` whose single layer is `rootfs` and whose command
    /// is `cmd`.
    pub fn from_rootfs(rootfs: &Path, layout: &Path, tag: &str, cmd: &[&str]) -> anyhow::Result<Self> {
        let image = format!("{}:{tag}", layout.display());
        let work = layout.with_extension("unpack");
        checked(Command::new("umoci").args(["init", "--layout"]).arg(layout), "umoci init")?;
        checked(Command::new("umoci").args(["new", "--image", &image]), "umoci new")?;
        checked(
            Command::new("umoci").args(["unpack", "--rootless", "--image", &image]).arg(&work),
            "umoci unpack",
        )?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", rootfs.display()))
            .arg(work.join("rootfs"))
            .status()?;
        if !status.success() {
            bail!("copying the rootfs into the umoci bundle failed");
        }
        checked(Command::new("umoci").args(["repack", "--image", &image]).arg(&work), "umoci repack")?;
        let mut config = Command::new("umoci");
        config.args(["config", "--image", &image]);
        for arg in cmd {
            config.args(["--config.cmd", arg]);
        }
        checked(&mut config, "umoci config")?;
        let _ = std::fs::remove_dir_all(&work);
        Ok(Self { layout: layout.to_path_buf(), tag: tag.to_string() })
    }

    /// Unpacks the image into an OCI runtime bundle for runc, as umoci does
    /// (with its `umoci.json` and its `.mtree` manifest of the image's
    /// files); the process gets no terminal, so `runc run -d` can start it.
    pub fn unpack(&self, bundle: &Path) -> anyhow::Result<()> {
        let image = format!("{}:{}", self.layout.display(), self.tag);
        checked(Command::new("umoci").args(["unpack", "--image", &image]).arg(bundle), "umoci unpack")?;
        let path = bundle.join("config.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        config["process"]["terminal"] = serde_json::Value::Bool(false);
        std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        Ok(())
    }

    /// The manifest digest the layout's index gives for the tag.
    pub fn manifest_digest(&self) -> anyhow::Result<String> {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.layout.join("index.json"))?)?;
        index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == self.tag.as_str())
            .and_then(|m| m["digest"].as_str())
            .map(str::to_owned)
            .context("tag not in the layout's index.json")
    }

    /// Imports the image into containerd as `name` (tar of the layout, as
    /// `ctr images import` wants); returns the reference.
    pub fn import(&self, name: &str) -> anyhow::Result<String> {
        let tar = self.layout.with_extension("tar");
        let status =
            Command::new("tar").arg("-C").arg(&self.layout).arg("-cf").arg(&tar).arg(".").status()?;
        if !status.success() {
            bail!("tar of the OCI layout failed");
        }
        let reference = format!("{name}:{}", self.tag);
        checked(ctr().args(["images", "import", "--base-name", name]).arg(&tar), "ctr images import")?;
        Ok(reference)
    }
}

/// A container run by containerd.
#[derive(Debug)]
pub struct CtrContainer {
    pub id: String,
}

impl CtrContainer {
    /// `ctr run -d image id [args]`.
    pub fn run(image: &str, id: &str, args: &[&str]) -> anyhow::Result<Self> {
        checked(ctr().args(["run", "-d", image, id]).args(args).stdout(Stdio::null()), "ctr run")?;
        Ok(Self { id: id.to_string() })
    }

    /// `ctr tasks exec` of `args`; returns its output.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<Output> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let exec_id = format!("exec-{}-{n}", std::process::id());
        checked(ctr().args(["tasks", "exec", "--exec-id", &exec_id, &self.id]).args(args), "ctr tasks exec")
    }

    /// Host pid of the container's init process.
    pub fn pid(&self) -> anyhow::Result<u32> {
        let out = checked(ctr().args(["tasks", "ls"]), "ctr tasks ls")?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next()? == self.id).then(|| f.next()?.parse().ok())?
            })
            .context("container task not listed")
    }
}

impl Drop for CtrContainer {
    fn drop(&mut self) {
        let _ = ctr()
            .args(["tasks", "kill", "-s", "KILL", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let gone = ctr()
                .args(["tasks", "rm", "-f", &self.id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if gone.is_ok_and(|s| s.success()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ =
            ctr().args(["containers", "rm", &self.id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}
