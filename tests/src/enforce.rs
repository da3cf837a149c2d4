//! Payloads for the enforcement tests: each tries to write a marker file
//! inside the container as its first act, so "blocked before its first
//! instruction" is checked by the marker's absence, not by the agent's word.

use std::{
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{agent::Agent, evasion::wait_for};

/// A dropped binary: busybox with a byte appended (not in the SBOM, other
/// digest), run as `sh` (busybox picks the applet by name) to write
/// `/tmp/<marker>`.
pub fn dropped_script(marker: &str) -> String {
    format!(
        "mkdir -p /tmp/x && cat /bin/busybox > /tmp/x/sh && echo >> /tmp/x/sh && chmod +x /tmp/x/sh; \
         /tmp/x/sh -c 'echo pwned > /tmp/{marker}'; true"
    )
}

/// A modified image binary: `tool` (a listed file) overwritten with the
/// dropped binary of [`dropped_script`] (run that first), run through a
/// link named `sh` to write `/tmp/<marker>`.
pub fn modified_script(tool: &str, marker: &str) -> String {
    format!(
        "cat /tmp/x/sh > {tool}; mkdir -p /tmp/y && ln -sf {tool} /tmp/y/sh; \
         /tmp/y/sh -c 'echo pwned > /tmp/{marker}'; true"
    )
}

/// `runc exec` of `sh -c script` in container `id`, whatever its exit
/// status (a killed payload makes the shell's status 137).
pub fn exec_any(id: &str, script: &str) -> anyhow::Result<Output> {
    Command::new("runc")
        .args(["exec", id, "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .context("running runc exec")
}

/// Busybox from a memfd (never on any filesystem) as `sh -c 'echo >
/// /tmp/<marker>'`, in the cgroup and mount namespace of `container_pid`
/// (as `image::memfd_exec_in`); returns how the process ended.
pub fn memfd_payload_in(container_pid: u32, busybox: &Path, marker: &str) -> anyhow::Result<ExitStatus> {
    let procs = crate::image::cgroup2_dir_of(container_pid)?.join("cgroup.procs");
    let script = r#"
import ctypes, os, sys
procs, busybox, pid, marker = sys.argv[1:5]
fd = os.memfd_create("payload", 0)
with open(busybox, "rb") as src:
    os.write(fd, src.read())
mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
with open(procs, "w") as f:
    f.write(str(os.getpid()))
libc = ctypes.CDLL(None, use_errno=True)
if libc.setns(mnt, 0x00020000) != 0:
    raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNS)")
os.execve(fd, ["sh", "-c", f"echo pwned > /tmp/{marker}"], {})
"#;
    Command::new("python3")
        .args(["-c", script])
        .arg(&procs)
        .arg(busybox)
        .arg(container_pid.to_string())
        .arg(marker)
        .status()
        .context("running python3 for the memfd payload")
}

/// Whether a process ended by SIGKILL.
pub fn killed(status: &ExitStatus) -> bool {
    status.signal() == Some(9)
}

/// A shared library whose constructor writes `/tmp/<marker>` (its first
/// code to run when loaded), built with `cc` into `dir`.
pub fn marker_library(dir: &Path, marker: &str) -> anyhow::Result<PathBuf> {
    let src = dir.join("marker.c");
    std::fs::write(
        &src,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void mark(void) {{\n\
             int fd = open(\"/tmp/{marker}\", O_CREAT | O_WRONLY, 0644);\n\
             if (fd >= 0) close(fd);\n}}\n"
        ),
    )?;
    let out = dir.join("libmarker.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .context("running cc (install build-essential: `cargo xtask setup`)")?;
    if !status.success() {
        bail!("cc failed to build {}: {status}", out.display());
    }
    Ok(out)
}

/// Waits until the container's enforcement is `active` (its allowed set
/// is in the kernel); returns the record.
pub fn wait_active(agent: &Agent, id: &str) -> anyhow::Result<Value> {
    let rec = wait_for(agent, Duration::from_secs(20), |r| {
        r["type"] == "enforcement" && r["container_id"] == id && r["state"] != "pending"
    })?;
    if rec["state"] != "active" {
        bail!("enforcement of {id} did not become active: {rec}");
    }
    Ok(rec)
}

/// Block records of container `id`.
pub fn blocks<'a>(records: &'a [Value], id: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == "block" && r["container"]["id"] == id).collect()
}
