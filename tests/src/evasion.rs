//! Attacks on the agent itself, as a container would mount them: a payload
//! written over an image file and the original written back around its
//! exec (the file's identity unchanged within one timestamp tick). The
//! payloads are written from the host into the rootfs after its SBOM was
//! made, so the only write-opens the kernel sees in the container are the
//! attack's own.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

use crate::{agent::Agent, bundle::Bundle, image::TOOL};

/// Where, inside the container, [`stage_swap`] puts the payload and a copy
/// of the original tool.
pub const PAYLOAD: &str = "/tmp/payload";
pub const ORIGINAL: &str = "/tmp/orig";

/// Writes [`PAYLOAD`] (busybox with other trailing bytes than [`TOOL`], the
/// same size: a swap keeps the file's size) and [`ORIGINAL`] (the tool's
/// bytes) into the rootfs.
pub fn stage_swap(bundle: &Bundle) -> anyhow::Result<()> {
    let root = bundle.rootfs();
    let tool = std::fs::read(root.join(TOOL.trim_start_matches('/'))).context("reading the tool")?;
    let mut payload = std::fs::read(root.join("bin/busybox")).context("reading busybox")?;
    payload.extend_from_slice(b"\0verifier evil tool\0");
    anyhow::ensure!(payload.len() == tool.len() && payload != tool, "payload must differ, same size");
    std::fs::write(root.join(PAYLOAD.trim_start_matches('/')), &payload)?;
    std::fs::write(root.join(ORIGINAL.trim_start_matches('/')), &tool)?;
    Ok(())
}

/// A shell loop: `n` times, write the payload over [`TOOL`] in place (same
/// inode), run it, write the original back at once.
pub fn swap_script(n: u32) -> String {
    format!(
        "i=0; while [ $i -lt {n} ]; do cat {PAYLOAD} > {TOOL}; {TOOL}; cat {ORIGINAL} > {TOOL}; \
         i=$((i+1)); done"
    )
}

/// Waits (up to `limit`) for a record `pred` accepts; returns it.
pub fn wait_for(agent: &Agent, limit: Duration, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let t = Instant::now();
    loop {
        if let Some(r) = agent.records_so_far().into_iter().find(&pred) {
            return Ok(r);
        }
        anyhow::ensure!(t.elapsed() < limit, "no such record within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The same swap as [`swap_script`], `n` times, as tight as one process
/// can make it: a python3 process that joins the cgroup and mount
/// namespace of `container_pid` writes the payload over [`TOOL`] in place,
/// runs it to its end, and writes the original back, so that all three
/// usually fall within one timestamp tick (the shell's `cat`s take longer).
pub fn swap_tight(container_pid: u32, n: u32) -> anyhow::Result<()> {
    let procs = crate::image::cgroup2_dir_of(container_pid)?.join("cgroup.procs");
    let script = r#"
import ctypes, os, sys
procs, pid, n, tool, payload, orig = sys.argv[1:7]
libc = ctypes.CDLL(None, use_errno=True)
mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
with open(procs, "w") as f:
    f.write(str(os.getpid()))
if libc.setns(mnt, 0x00020000) != 0:
    raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNS)")
bad, good = open(payload, "rb").read(), open(orig, "rb").read()
def put(data):
    fd = os.open(tool, os.O_WRONLY)
    os.write(fd, data)
    os.close(fd)
for _ in range(int(n)):
    put(bad)
    child = os.posix_spawn(tool, [tool], {})
    os.waitpid(child, 0)
    put(good)
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&procs)
        .arg(container_pid.to_string())
        .arg(n.to_string())
        .args([TOOL, PAYLOAD, ORIGINAL])
        .status()
        .context("running python3 for the swap")?;
    anyhow::ensure!(status.success(), "swap in the container failed: {status}");
    Ok(())
}
