//! Test images for drift verification: a busybox bundle with an extra
//! image binary, its SBOM made by `verifier sbom generate`, and ways to
//! produce drift from inside (or next to) a running container.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{agent::verifier_bin, bundle::Bundle};

/// Path, inside the image, of a second static binary (a marked copy of
/// busybox with its own digest) that tests overwrite in place. Named like
/// an applet: busybox picks what to run from the name it was called by.
pub const TOOL: &str = "/opt/tool/true";

/// A busybox bundle plus [`TOOL`], running `args`.
pub fn busybox_with_tool(dir: &Path, args: &[&str]) -> anyhow::Result<Bundle> {
    let bundle = Bundle::busybox(dir, args)?;
    let tool = bundle.rootfs().join(TOOL.trim_start_matches('/'));
    std::fs::create_dir_all(tool.parent().context("tool dir")?)?;
    std::fs::copy(bundle.rootfs().join("bin/busybox"), &tool)?;
    // Bytes after the ELF image are never loaded: still runs, other digest.
    std::fs::OpenOptions::new().append(true).open(&tool)?.write_all(b"\0verifier test tool\0")?;
    Ok(bundle)
}

/// Writes the rootfs's SBOM with `verifier sbom generate` and returns its path.
pub fn generate_sbom(bundle: &Bundle, out: &Path, format: &str) -> anyhow::Result<PathBuf> {
    let status = Command::new(verifier_bin())
        .args(["sbom", "generate", "--format", format, "-o"])
        .arg(out)
        .arg(bundle.rootfs())
        .status()
        .context("running verifier sbom generate")?;
    if !status.success() {
        bail!("sbom generate failed: {status}");
    }
    Ok(out.to_path_buf())
}

/// Sets OCI annotations in the bundle's `config.json`.
pub fn annotate(bundle: &Bundle, pairs: &[(&str, &str)]) -> anyhow::Result<()> {
    let path = bundle.dir.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    for (k, v) in pairs {
        spec["annotations"][*k] = (*v).into();
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&spec)?)?;
    Ok(())
}

/// The cgroup v2 directory of a process (under the unified hierarchy).
pub fn cgroup2_dir_of(pid: u32) -> anyhow::Result<PathBuf> {
    let content = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let rel = content
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no cgroup v2 line in /proc/<pid>/cgroup")?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2").then(|| left.split_whitespace().nth(4))?
        })
        .context("cgroup2 is not mounted")?;
    Ok(Path::new(mount).join(rel.trim_start_matches('/')))
}

/// Runs busybox from a memfd (never on any filesystem) as `sleep <secs>`,
/// inside the cgroup and mount namespace of `container_pid`: a fileless
/// exec (`execveat(memfd, "", AT_EMPTY_PATH)`, the kernel names it
/// `/dev/fd/N`) that the agent must attribute to that container. python3
/// does it: `os.memfd_create`, `setns` through ctypes, `os.execve(fd)`.
pub fn memfd_exec_in(container_pid: u32, busybox: &Path, secs: u32) -> anyhow::Result<()> {
    let procs = cgroup2_dir_of(container_pid)?.join("cgroup.procs");
    let script = r#"
import ctypes, os, sys
procs, busybox, secs, pid = sys.argv[1:5]
fd = os.memfd_create("payload", 0)
with open(busybox, "rb") as src:
    os.write(fd, src.read())
mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
with open(procs, "w") as f:
    f.write(str(os.getpid()))
libc = ctypes.CDLL(None, use_errno=True)
if libc.setns(mnt, 0x00020000) != 0:
    raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNS)")
os.execve(fd, ["sleep", secs], {})
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&procs)
        .arg(busybox)
        .arg(secs.to_string())
        .arg(container_pid.to_string())
        .status()
        .context("running python3 for the memfd exec")?;
    if !status.success() {
        bail!("memfd exec failed: {status}");
    }
    Ok(())
}

/// Maps each of `paths` with `PROT_EXEC` as [`mmap_exec_in`] does, then
/// (with `unlink`) deletes them, and exits at once (`_exit`): the process,
/// its mappings and its descriptors are gone before the agent can look,
/// so only what the kernel carried names the files.
pub fn mmap_exec_and_exit_in(container_pid: u32, paths: &[&str], unlink: bool) -> anyhow::Result<()> {
    let end = if unlink { "for p in paths: os.unlink(p)\nos._exit(0)" } else { "os._exit(0)" };
    map_in_container(container_pid, paths, end)
}

/// Maps each of `paths` (paths inside the container) with `PROT_EXEC`, as
/// the dynamic loader maps a shared library, from a process that joins the
/// cgroup and mount namespace of `container_pid`; keeps the mappings for
/// `hold_ms` so they can be looked up. python3 does it (every module it
/// needs is imported before it joins, so its own loading is not counted).
pub fn mmap_exec_in(container_pid: u32, paths: &[&str], hold_ms: u32) -> anyhow::Result<()> {
    map_in_container(container_pid, paths, &format!("time.sleep({hold_ms} / 1000)"))
}

/// The python3 that joins the container, maps `paths` as code, then runs
/// `end` (python, with `paths` and `kept` in scope).
fn map_in_container(container_pid: u32, paths: &[&str], end: &str) -> anyhow::Result<()> {
    let procs = cgroup2_dir_of(container_pid)?.join("cgroup.procs");
    let script = format!(
        r#"
import ctypes, mmap, os, sys, time
procs, pid = sys.argv[1:3]
paths = sys.argv[3:]
libc = ctypes.CDLL(None, use_errno=True)
mnt = os.open(f"/proc/{{pid}}/ns/mnt", os.O_RDONLY)
with open(procs, "w") as f:
    f.write(str(os.getpid()))
if libc.setns(mnt, 0x00020000) != 0:
    raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNS)")
kept = []
for p in paths:
    fd = os.open(p, os.O_RDONLY)
    kept.append(mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_EXEC))
    os.close(fd)
{end}
"#
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .arg(&procs)
        .arg(container_pid.to_string())
        .args(paths)
        .status()
        .context("running python3 for the executable mappings")?;
    if !status.success() {
        bail!("mmap in the container failed: {status}");
    }
    Ok(())
}
