//! Where a container's baseline comes from: runtime state -> image -> SBOM.
//!
//! - **runc / crun** (and containerd's runc shim): `<state root>/<id>/state.json`
//!   gives the rootfs and the bundle; the bundle's `config.json` annotations
//!   name the image (`org.opencontainers.image.ref.name`,
//!   `io.kubernetes.cri.image-name`, `io.verifier.image.name`) and its digest
//!   (`io.verifier.image.digest`); a bundle unpacked by umoci has the
//!   manifest digest in `umoci.json`.
//! - **containerd**: its API ([`crate::containerd`]) gives the image
//!   reference and digest; the root and the image layers come from the
//!   container's own mounts (`/proc/<pid>/root`, `mountinfo`).
//! - **SBOMs**: `--sbom PATTERN=FILE` rules (first match wins; PATTERN is
//!   matched against the image name, the image digest, the container id and
//!   name; `*` matches any run of characters), then the SBOM store: files
//!   under `<store>/sha256-<hex>/` or named `<store>/sha256-<hex>.*`, for the
//!   image digest. Several files for one image are merged.
//!
//! One parsed manifest per set of SBOM files, shared by every container
//! that uses it, re-read when a file's size or mtime changes. A broken SBOM
//! is an error for the containers that need it, remembered until the file
//! changes (not re-parsed at every new container).

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use super::{
    containers::{ContainerInfo, Resolved},
    engine::Context,
    layers::Layers,
    verdict::ImageContent,
};
use verifier_sbom::{LoadOptions, Manifest, fsroot::RootDir, load_path};

use crate::{
    container::{ContainerRef, Runtime, resolver::StateRoot},
    containerd::Containerd,
};

/// `PATTERN=FILE`: containers whose image name, digest, id or name matches
/// PATTERN are verified against FILE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomRule {
    pub pattern: String,
    pub sbom: PathBuf,
}

impl std::str::FromStr for SbomRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (pattern, file) = s.rsplit_once('=').ok_or_else(|| {
            format!("{s:?}: expected PATTERN=SBOM-FILE, e.g. 'registry.example/app:*=app.spdx.json'")
        })?;
        if pattern.is_empty() || file.is_empty() {
            return Err(format!("{s:?}: both PATTERN and SBOM-FILE are needed"));
        }
        Ok(Self { pattern: pattern.to_owned(), sbom: file.into() })
    }
}

/// `*`-glob match.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// What the runtime says about a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeMeta {
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
}

/// Settings of the source.
pub struct SourceConfig {
    pub rules: Vec<SbomRule>,
    /// `--sbom-rules`: more rules, after `rules`, re-read when changed.
    pub rules_file: Option<Arc<super::rules_file::RulesFile>>,
    pub store: Option<PathBuf>,
    pub state_roots: Vec<StateRoot>,
    pub proc_root: PathBuf,
    pub containerd: Option<Arc<Containerd>>,
    /// containerd's state directory (`/run/containerd`): namespaces of its
    /// containers.
    pub containerd_state: PathBuf,
}

type Signature = Vec<(PathBuf, u64, i64)>;

struct Parsed {
    signature: Signature,
    result: Result<Arc<Manifest>, String>,
}

/// Resolves containers to baselines (blocking; called off the event loop).
pub struct Source {
    cfg: SourceConfig,
    parsed: Mutex<HashMap<Vec<PathBuf>, Arc<Parsed>>>,
    /// umoci manifests read, by path (one per image, shared by its bundles).
    mtrees: Mutex<HashMap<PathBuf, Arc<super::mtree::Mtree>>>,
}

/// Resolution failed in a way that may pass (state not written yet).
#[derive(Debug)]
pub struct NotYet(pub String);

impl Source {
    pub fn new(cfg: SourceConfig) -> Self {
        Self { cfg, parsed: Mutex::new(HashMap::new()), mtrees: Mutex::new(HashMap::new()) }
    }

    /// Container -> baseline. `Err` when the runtime state is not there yet.
    pub fn resolve(&self, c: &ContainerRef, pid: Option<u32>) -> Result<Resolved, NotYet> {
        let meta = self.runtime_meta(c)?;
        let mut info = ContainerInfo {
            name: meta.name.clone(),
            image_name: meta.image_name.clone(),
            image_digest: meta.image_digest.clone(),
            pod_name: meta.pod_name.clone(),
            pod_namespace: meta.pod_namespace.clone(),
            ..ContainerInfo::default()
        };
        // The exec's own pid first (it may have exited by now), then the
        // container's init, which lives as long as the container.
        let pids: Vec<u32> = pid.into_iter().chain(meta.init_pid).collect();
        let layers = pids.iter().find_map(|&p| Layers::of_process(&self.cfg.proc_root, p));
        info.writable_layer = layers.as_ref().and_then(|l| l.upper().map(Path::to_path_buf));
        let files = self.sbom_files(c, &meta);
        if files.is_empty() {
            let image =
                meta.image_name.or(meta.image_digest).unwrap_or_else(|| format!("of container {}", c.id));
            let why =
                format!("no SBOM for image {image} (add --sbom PATTERN=FILE or put it in --sbom-store)");
            return Ok(Resolved::NoBaseline(Arc::new(info), why));
        }
        let manifest = match self.manifest(&files) {
            Ok(m) => m,
            Err(e) => return Ok(Resolved::Failed(e)),
        };
        let by_pid = pids
            .iter()
            .find_map(|p| RootDir::open(&self.cfg.proc_root.join(p.to_string()).join("root")).ok());
        let root = match by_pid.map(Ok).or_else(|| meta.rootfs.as_deref().map(RootDir::open)) {
            Some(Ok(r)) => r,
            _ => return Err(NotYet(format!("no root directory known yet for container {}", c.id))),
        };
        info.sbom_sources = files.iter().map(|f| f.display().to_string()).collect();
        info.sbom_format = Some(manifest.source().format.name().to_owned());
        let ctx = Context {
            weak: super::verdict::weak_algs(&manifest),
            key: Arc::as_ptr(&manifest) as u64,
            root: Arc::new(root),
            manifest,
            content: match layers {
                Some(l) => Some(Arc::new(l) as Arc<dyn ImageContent + Send + Sync>),
                None => meta.bundle.as_deref().and_then(|b| self.mtree(b)),
            },
        };
        Ok(Resolved::Verify(Arc::new(ctx), Arc::new(info)))
    }

    /// The umoci manifest of `bundle`'s image, read once per file.
    fn mtree(&self, bundle: &Path) -> Option<Arc<dyn ImageContent + Send + Sync>> {
        let path = super::mtree::Mtree::find(bundle)?;
        let mut cache = self.mtrees.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.get(&path) {
            return Some(m.clone());
        }
        let m = Arc::new(super::mtree::Mtree::parse(&std::fs::read_to_string(&path).ok()?));
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(path, m.clone());
        Some(m)
    }

    fn runtime_meta(&self, c: &ContainerRef) -> Result<RuntimeMeta, NotYet> {
        if c.runtime == Runtime::Containerd
            && let Some(client) = &self.cfg.containerd
            && let Some(ns) = crate::containerd::namespace_of(&self.cfg.containerd_state, &c.id)
        {
            let rec = client.container(&ns, &c.id).map_err(|e| NotYet(e.to_string()))?;
            let label = |k: &str| rec.labels.get(k).cloned();
            // The shim's runc state gives the rootfs and the init pid.
            let state = self.runc_state(c).ok();
            return Ok(RuntimeMeta {
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
        for root in &self.cfg.state_roots {
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

    fn sbom_files(&self, c: &ContainerRef, meta: &RuntimeMeta) -> Vec<PathBuf> {
        let keys: Vec<&str> = [
            meta.image_name.as_deref(),
            meta.image_digest.as_deref(),
            Some(c.id.as_str()),
            meta.name.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let from_file = self.cfg.rules_file.as_ref().map(|f| f.rules()).unwrap_or_default();
        if let Some(rule) =
            self.cfg.rules.iter().chain(&from_file).find(|r| keys.iter().any(|k| glob_match(&r.pattern, k)))
        {
            return vec![rule.sbom.clone()];
        }
        let (Some(store), Some(digest)) = (&self.cfg.store, &meta.image_digest) else { return Vec::new() };
        let stem = digest.replace(':', "-");
        let dir = store.join(&stem);
        let mut files: Vec<PathBuf> = if dir.is_dir() {
            std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        } else {
            std::fs::read_dir(store)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{stem}.")))
                })
                .collect()
        };
        files.sort();
        files
    }

    /// The merged manifest of `files`, parsed once per content signature.
    fn manifest(&self, files: &[PathBuf]) -> Result<Arc<Manifest>, String> {
        let signature: Signature = files
            .iter()
            .map(|f| {
                let m = std::fs::metadata(f).ok();
                (
                    f.clone(),
                    m.as_ref().map_or(0, |m| m.size()),
                    m.map_or(0, |m| m.mtime_nsec() + m.mtime() * 1_000_000_000),
                )
            })
            .collect();
        if let Some(p) = self.parsed.lock().unwrap_or_else(|e| e.into_inner()).get(files)
            && p.signature == signature
        {
            return p.result.clone();
        }
        let mut merged: Option<Manifest> = None;
        let mut result = Ok(());
        for f in files {
            match load_path(f, &LoadOptions::default()) {
                Ok(m) => match merged.as_mut() {
                    Some(all) => all.merge(m),
                    None => merged = Some(m),
                },
                Err(e) => {
                    result = Err(format!("SBOM {}: {e}", f.display()));
                    break;
                }
            }
        }
        let result = result.and_then(|()| {
            merged
                .map(|mut m| {
                    m.keep_sha256_where_present();
                    m.shrink_to_fit();
                    Arc::new(m)
                })
                .ok_or_else(|| "no SBOM file could be read".to_owned())
        });
        let parsed = Arc::new(Parsed { signature, result: result.clone() });
        self.parsed.lock().unwrap_or_else(|e| e.into_inner()).insert(files.to_vec(), parsed);
        // Parsing churns through buffers many times the manifest's size on
        // this (blocking-pool) thread's malloc arena; hand the freed pages
        // back so a node with many images does not keep that high-water mark.
        // SAFETY: malloc_trim only releases free memory; no pointer is touched.
        unsafe { libc::malloc_trim(0) };
        result
    }
}

/// Image and rootfs from a runc `state.json` and its bundle.
pub fn runc_meta(state: &[u8]) -> Result<RuntimeMeta, String> {
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
#[path = "source_tests.rs"]
mod tests;
