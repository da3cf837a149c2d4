//! Which container a process belongs to, and what its runtime says about
//! it (image, rootfs, pod): the answer travels with the record.
//!
//! The kernel gives the agent a cgroup id, a mount namespace and a pid; the
//! cgroup *path* is what names the container, because every runtime puts
//! each container in a cgroup of its own and encodes the container id in
//! the path. [`path`] turns a path into a [`ContainerRef`] (pure, unit
//! tested against the shapes of runc, containerd, CRI-O, Docker and podman
//! under cgroup v1, v2 and hybrid hierarchies); [`resolver`] finds the path
//! for an event (procfs first, the cgroup2 filesystem when the process is
//! already gone) and caches the answer by cgroup id.

pub mod containerd;
pub(crate) mod path;
pub mod resolver;
pub(crate) mod runtime;

use serde::Serialize;

pub use path::{container_from_cgroup_path, container_from_proc_cgroup};
pub use resolver::Resolver;

/// The container runtime (or orchestrator convention) that made the cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
    Runc,
    Crun,
    /// A Kubernetes pod's container whose runtime the path does not say
    /// (cgroupfs driver: `/kubepods/<qos>/pod<uid>/<id>`).
    Cri,
}

impl Runtime {
    /// The name used in records (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
            Runtime::Cri => "cri",
        }
    }
}

/// A container, as far as its cgroup tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerRef {
    /// Container id (64 hex characters for most runtimes; any name for runc).
    pub id: String,
    pub runtime: Runtime,
    /// Kubernetes pod UID, when the path carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The cgroup path it was recognised from.
    pub cgroup: String,
}

/// The answer for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// A host process (no container cgroup, host mount namespace).
    Host,
    Container(ContainerRef),
    /// Not attributable; the reason says why (for the record and metrics).
    Unknown(&'static str),
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod path_tests;
