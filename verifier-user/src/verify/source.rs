//! A container's verification context: runtime state -> image -> SBOM
//! manifest, root directory and image content.
//!
//! The runtime's answer comes from `attribution::runtime`, the SBOM files
//! from `baseline`'s sources (rules, rules file, store) and their parsed
//! manifest from its cache; this module adds what verification needs on
//! top: the container's root held open (`/proc/<pid>/root`, else the
//! runtime's rootfs), the image's own layers (overlay lowerdirs, or the
//! umoci manifest of a runc bundle) and the writable layer.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use super::{
    containers::{ContainerInfo, Resolved},
    engine::Context,
    layers::Layers,
    verdict::ImageContent,
};
use verifier_sbom::fsroot::RootDir;

use crate::{
    attribution::{
        ContainerRef,
        runtime::{NotYet, Runtimes},
    },
    baseline::{Baselines, ImageKeys, cache::ManifestCache},
};

/// Settings of the source.
pub struct SourceConfig {
    pub runtimes: Runtimes,
    pub baselines: Baselines,
    pub proc_root: PathBuf,
}

/// Resolves containers to verification contexts (blocking; called off the
/// event loop).
pub struct Source {
    cfg: SourceConfig,
    manifests: ManifestCache,
    /// umoci manifests read, by path (one per image, shared by its bundles).
    mtrees: Mutex<HashMap<PathBuf, Arc<super::mtree::Mtree>>>,
}

impl Source {
    pub fn new(cfg: SourceConfig) -> Self {
        Self { cfg, manifests: ManifestCache::default(), mtrees: Mutex::new(HashMap::new()) }
    }

    /// Container -> baseline. `Err` when the runtime state is not there yet.
    pub fn resolve(&self, c: &ContainerRef, pid: Option<u32>) -> Result<Resolved, NotYet> {
        let meta = self.cfg.runtimes.meta(c)?;
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
        let keys = ImageKeys {
            image_name: meta.image_name.as_deref(),
            image_digest: meta.image_digest.as_deref(),
            container_id: &c.id,
            container_name: meta.name.as_deref(),
        };
        let files = self.cfg.baselines.sbom_files(&keys);
        if files.is_empty() {
            let image =
                meta.image_name.or(meta.image_digest).unwrap_or_else(|| format!("of container {}", c.id));
            let why =
                format!("no SBOM for image {image} (add --sbom PATTERN=FILE or put it in --sbom-store)");
            return Ok(Resolved::NoBaseline(Arc::new(info), why));
        }
        let (key, manifest) = match self.manifests.keyed_manifest(&files) {
            Ok(m) => m,
            Err(e) => return Ok(Resolved::Failed(e.to_string())),
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
            any_algs: verifier_sbom::digest::algs_for_any(&manifest),
            key,
            root: Arc::new(root),
            index: Arc::default(),
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
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
