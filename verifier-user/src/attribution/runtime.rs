//! What a container's runtime says about it: name, image, rootfs, bundle,
//! init pid, pod.
//!
//! - **runc / crun** (and containerd's runc shim): `<state root>/<id>/state.json`
//!   gives the rootfs, the init pid and the bundle; the bundle's
//!   `config.json` annotations name the image (`org.opencontainers.image.ref.name`,
//!   `io.kubernetes.cri.image-name`, `io.verifier.image.name`) and its digest
//!   (`io.verifier.image.digest`); a bundle unpacked by umoci has the
//!   manifest digest in `umoci.json`.
//! - **containerd**: its API ([`super::containerd`]) gives the image
//!   reference and digest; the shim's runc state gives the rootfs and the
//!   init pid.
//!
//! Blocking file reads and RPCs: called off the event loop.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use super::{
    ContainerRef, Runtime,
    containerd::{Containerd, namespace_of},
    resolver::StateRoot,
};

/// What the runtime says about a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RuntimeMeta {
    pub name: Option<String>,
    pub image_name: Option<String>,
    pub image_digest: Option<String>,
    pub rootfs: Option<PathBuf>,
    /// The container's first process (runc `init_process_pid`): alive as
    /// long as the container, so its `/proc/<pid>/root` outlives a short exec.
    pub init_pid: Option<u32>,
    /// The OCI bundle directory (runc `bundle=` label), where umoci leaves
    /// its manifest of the image's files.
    pub bundle: Option<PathBuf>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    /// The pod's labels, when the runtime gives them (containerd's CRI
    /// sandbox); `None` means unknown, not "no labels".
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// The CRI sandbox (pod) container's id (`io.kubernetes.cri.sandbox-id`).
    pub sandbox_id: Option<String>,
}

/// Resolution failed in a way that may pass (the runtime has not written
/// its state yet).
#[derive(Debug)]
pub(crate) struct NotYet(pub String);

/// Where runtime state is read from.
pub(crate) struct Runtimes {
    pub state_roots: Vec<StateRoot>,
    pub containerd: Option<Arc<Containerd>>,
    /// containerd's state directory (`/run/containerd`): namespaces of its
    /// containers.
    pub containerd_state: PathBuf,
}

impl Runtimes {
    /// What the runtime of `c` says about it. `Err` when its state is not
    /// there yet.
    pub(crate) fn meta(&self, c: &ContainerRef) -> Result<RuntimeMeta, NotYet> {
        if c.runtime == Runtime::Containerd
            && let Some(client) = &self.containerd
            && let Some(ns) = namespace_of(&self.containerd_state, &c.id)
        {
            let rec = client.container(&ns, &c.id).map_err(|e| NotYet(e.to_string()))?;
            let label = |k: &str| rec.labels.get(k).cloned();
            // The shim's runc state gives the rootfs and the init pid.
            let state = self.runc_state(c).ok();
            // CRI puts the pod's labels on its sandbox container, not on
            // the pod's other containers.
            let sandbox = state.as_ref().and_then(|s| s.sandbox_id.as_deref()).filter(|s| *s != c.id);
            let sandbox_labels = match sandbox {
                Some(id) => client.container(&ns, id).ok().map(|s| s.labels),
                None if label("io.cri-containerd.kind").as_deref() == Some("sandbox") => {
                    Some(rec.labels.clone())
                }
                None => None,
            };
            return Ok(RuntimeMeta {
                pod_labels: sandbox_labels.map(|l| pod_labels(&l)),
                sandbox_id: state.as_ref().and_then(|s| s.sandbox_id.clone()),
                name: label("io.kubernetes.container.name").or(label("nerdctl/name")),
                image_name: Some(rec.image),
                image_digest: rec.image_digest,
                rootfs: state.as_ref().and_then(|s| s.rootfs.clone()),
                bundle: state.as_ref().and_then(|s| s.bundle.clone()),
                init_pid: state.and_then(|s| s.init_pid),
                pod_name: label("io.kubernetes.pod.name"),
                pod_namespace: label("io.kubernetes.pod.namespace"),
            });
        }
        self.runc_state(c)
    }

    /// The runc `state.json` of `c` under the configured state roots.
    fn runc_state(&self, c: &ContainerRef) -> Result<RuntimeMeta, NotYet> {
        for root in &self.state_roots {
            let dirs: Vec<PathBuf> = if root.namespaced {
                std::fs::read_dir(&root.dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|ns| ns.path().join(&c.id))
                    .collect()
            } else {
                vec![root.dir.join(&c.id)]
            };
            for dir in dirs {
                if let Ok(text) = std::fs::read(dir.join("state.json")) {
                    return runc_meta(&text).map_err(NotYet);
                }
            }
        }
        Err(NotYet(format!("no runtime state found for container {} yet", c.id)))
    }
}

/// The pod's own labels among a CRI sandbox container's containerd labels:
/// without those kubelet and containerd add (`io.kubernetes.*`,
/// `io.cri-containerd.*`). containerd also copies the sandbox image's
/// labels there when the pod does not set the same key; they cannot be told
/// apart and stay.
pub(crate) fn pod_labels(labels: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !k.starts_with("io.kubernetes.") && !k.starts_with("io.cri-containerd."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Image and rootfs from a runc `state.json` and its bundle.
pub(crate) fn runc_meta(state: &[u8]) -> Result<RuntimeMeta, String> {
    let state: serde_json::Value =
        serde_json::from_slice(state).map_err(|e| format!("runc state.json: {e}"))?;
    let config = &state["config"];
    let bundle = config["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str()?.strip_prefix("bundle="))
        .next()
        .map(PathBuf::from);
    let mut meta = RuntimeMeta {
        rootfs: config["rootfs"].as_str().map(PathBuf::from),
        init_pid: state["init_process_pid"].as_u64().and_then(|p| u32::try_from(p).ok()).filter(|&p| p > 0),
        ..RuntimeMeta::default()
    };
    let Some(bundle) = bundle else { return Ok(meta) };
    meta.bundle = Some(bundle.clone());
    if let Ok(text) = std::fs::read(bundle.join("config.json"))
        && let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&text)
    {
        let ann = |k: &str| spec["annotations"][k].as_str().map(str::to_owned);
        meta.image_name = ann("io.verifier.image.name")
            .or_else(|| ann("io.kubernetes.cri.image-name"))
            .or_else(|| ann("org.opencontainers.image.ref.name"));
        meta.image_digest = ann("io.verifier.image.digest");
        meta.name = ann("io.kubernetes.cri.container-name").or_else(|| ann("io.verifier.container.name"));
        meta.pod_name = ann("io.kubernetes.cri.sandbox-name");
        meta.pod_namespace = ann("io.kubernetes.cri.sandbox-namespace");
        meta.sandbox_id = ann("io.kubernetes.cri.sandbox-id");
    }
    if meta.image_digest.is_none()
        && let Ok(text) = std::fs::read(bundle.join("umoci.json"))
        && let Ok(umoci) = serde_json::from_slice::<serde_json::Value>(&text)
    {
        // umoci.json v2: the descriptor walk from the tag to the manifest;
        // older versions: `manifest.digest`.
        let walk = umoci["from_descriptor_path"]["descriptor_walk"].as_array();
        let manifest = walk.and_then(|w| {
            w.iter()
                .rev()
                .find(|d| d["mediaType"] == "application/vnd.oci.image.manifest.v1+json")
                .or_else(|| w.last())
        });
        meta.image_digest = manifest
            .and_then(|d| d["digest"].as_str())
            .or_else(|| umoci["manifest"]["digest"].as_str())
            .map(str::to_owned);
    }
    Ok(meta)
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
pub(crate) mod tests;
