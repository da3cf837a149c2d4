//! cgroup path shapes to container ids. No I/O here except the optional
//! runtime state lookup passed in by the caller, so every shape is a unit
//! test.
//!
//! Shapes recognised (leaf, or the segments named):
//! - Docker: `docker-<id>.scope` (systemd driver), `/docker/<id>` (cgroupfs)
//! - containerd: `cri-containerd-<id>.scope`, `containerd-<id>.scope`
//! - CRI-O: `crio-<id>.scope`, `/crio-<id>` (but not `crio-conmon-*`)
//! - podman: `libpod-<id>.scope`, `/libpod_parent/libpod-<id>` (not
//!   `libpod-conmon-*`, which is the monitor, a host process)
//! - Kubernetes cgroupfs driver: `/kubepods/<qos>/pod<uid>/<id>`
//! - anything whose leaf names a container in a runtime's state directory
//!   (`/run/runc/<leaf>`, ...): plain `runc run`, containerd's
//!   `/<namespace>/<id>`, crun.

use super::{ContainerRef, Runtime};

/// Whether `s` is a full 64-character lowercase hex container id.
fn is_id64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Kubernetes pod UID from a path segment: `pod<uid>` (cgroupfs) or
/// `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid(path: &str) -> Option<String> {
    path.split('/').find_map(|seg| {
        let seg = seg.strip_suffix(".slice").unwrap_or(seg);
        let at = seg.rfind("pod")?;
        let uid = &seg[at + 3..];
        let ok = uid.len() >= 32 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
        ok.then(|| uid.replace('_', "-"))
    })
}

/// `prefix<id64>.scope` or `prefix<id64>` → id.
fn strip_id<'a>(seg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = seg.strip_prefix(prefix)?;
    let rest = rest.strip_suffix(".scope").unwrap_or(rest);
    is_id64(rest).then_some(rest)
}

/// Recognises a container from one cgroup path (relative to its hierarchy's
/// root, as in `/proc/<pid>/cgroup`). `runtime_of` answers whether a leaf
/// name is a container in a runtime's state directory (for plain runc, crun
/// and containerd names that follow no pattern); pass `|_| None` for pure
/// parsing.
pub fn container_from_cgroup_path(
    path: &str,
    runtime_of: impl Fn(&str) -> Option<Runtime>,
) -> Option<ContainerRef> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let make = |id: &str, runtime| {
        Some(ContainerRef { id: id.to_string(), runtime, pod_uid: pod_uid(path), cgroup: path.to_string() })
    };
    // Innermost segment first: nested cgroups inside a container
    // (systemd-in-container, docker-in-docker) still belong to it.
    for (i, seg) in segments.iter().enumerate().rev() {
        if seg.starts_with("crio-conmon-") || seg.starts_with("libpod-conmon-") {
            return None;
        }
        let table: [(&str, Runtime); 5] = [
            ("docker-", Runtime::Docker),
            ("cri-containerd-", Runtime::Containerd),
            ("containerd-", Runtime::Containerd),
            ("crio-", Runtime::CriO),
            ("libpod-", Runtime::Podman),
        ];
        for (prefix, runtime) in table {
            if let Some(id) = strip_id(seg, prefix) {
                return make(id, runtime);
            }
        }
        if is_id64(seg) && i > 0 {
            let parent = segments[i - 1];
            if parent == "docker" {
                return make(seg, Runtime::Docker);
            }
            if parent.starts_with("pod") && segments.iter().any(|s| s.starts_with("kubepods")) {
                let runtime = runtime_of(seg).unwrap_or(Runtime::Cri);
                return make(seg, runtime);
            }
        }
    }
    let leaf = segments.last()?;
    runtime_of(leaf).and_then(|runtime| make(leaf, runtime))
}

/// Picks the container from the contents of `/proc/<pid>/cgroup`, whatever
/// the hierarchy: the unified (`0::`) line first, then the v1 controllers
/// that every runtime creates (`name=systemd`, `pids`, `memory`, `cpu`...).
pub fn container_from_proc_cgroup(
    content: &str,
    runtime_of: impl Fn(&str) -> Option<Runtime>,
) -> Option<ContainerRef> {
    let mut lines: Vec<(usize, &str)> = content
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rank = match controllers {
                "" => 0,
                "name=systemd" => 1,
                c if c.split(',').any(|c| c == "pids") => 2,
                c if c.split(',').any(|c| c == "memory") => 3,
                _ => 4,
            };
            Some((rank, path))
        })
        .collect();
    lines.sort_by_key(|(rank, _)| *rank);
    lines
        .into_iter()
        .filter(|(_, path)| *path != "/")
        .find_map(|(_, path)| container_from_cgroup_path(path, &runtime_of))
}
