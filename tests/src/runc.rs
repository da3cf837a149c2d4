//! Drives `runc`: run detached, exec, delete. Each container is deleted when
//! its handle drops, so a failing test leaves nothing running.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, bail};

/// A running container.
#[derive(Debug)]
pub struct Container {
    pub id: String,
}

impl Container {
    /// `runc run -d` of the bundle under `id`.
    ///
    /// The container inherits runc's stdio, so a pipe here would stay open
    /// for the container's whole life: runc's errors go to a file instead.
    pub fn run(bundle: &Path, id: &str) -> anyhow::Result<Self> {
        let errors = tempfile::tempfile().context("temp file for runc's stderr")?;
        let status = Command::new("runc")
            .args(["run", "-d", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors.try_clone()?)
            .status()
            .context("running runc")?;
        if !status.success() {
            let mut text = String::new();
            let mut errors = errors;
            std::io::Seek::rewind(&mut errors)?;
            std::io::Read::read_to_string(&mut errors, &mut text)?;
            bail!("runc run {id} failed: {text}");
        }
        Ok(Self { id: id.to_string() })
    }

    /// `runc exec` of `args` in the container; returns its output.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = Command::new("runc")
            .arg("exec")
            .arg(&self.id)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running runc exec")?;
        if !out.status.success() {
            bail!("runc exec {} {args:?} failed: {}", self.id, String::from_utf8_lossy(&out.stderr));
        }
        Ok(out)
    }

    /// Host pid of the container's init process.
    pub fn pid(&self) -> anyhow::Result<u32> {
        let out = Command::new("runc").args(["state", &self.id]).output()?;
        let state: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        state["pid"].as_u64().map(|p| p as u32).context("runc state has no pid")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
