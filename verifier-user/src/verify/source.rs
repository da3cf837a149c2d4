//! A container's verification context: runtime state -> image -> SBOM
//! manifest, root directory and image content.
//!
//! The runtime's answer comes from `attribution::runtime`, the SBOM files
//! from `baseline`'s sources (rules, rules file, store) and their parsed
//! manifest from its cache; this module adds what verification needs on
//! top: the container's root held open (`/proc/<pid>/root`, else the
//! runtime's rootfs), the image's own layers (overlay lowerdirs, or the
//! umoci manifest of a runc bundle) and the writable layer.
//!
//! An SBOM that lists packages and no file digests is joined with the
//! image's own package database (`baseline::join`), read from the image's
//! read-only content only (overlay lower layers; a runc root mounted
//! read-only or vouched for by umoci's manifest, see `image_files`), and
//! a `verifier.warning.v1` record says so, once per set of SBOM files.
//!
//! An image the trust policy requires a signed SBOM for and that has none
//! that verifies is `Resolved::Refused` (every exec `unverifiable`, the
//! reason naming the attestations and failed checks), or, with
//! `on_missing = "alert"`, resolved without an SBOM; each rejection is a
//! `verifier.warning.v1` record (`attestation-rejected`/`-missing`).

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use super::{
    containers::{ContainerInfo, Resolved},
    engine::Context,
    image_files::{GapContent, RootFiles, readonly_root},
    layers::Layers,
    mtree::Mtree,
    verdict::ImageContent,
};
use verifier_attest::OnMissing;
use verifier_sbom::{Manifest, fsroot::RootDir};

use crate::{
    attribution::{
        ContainerRef,
        runtime::{NotYet, Runtimes},
    },
    baseline::{
        Baselines, ImageKeys, Refusal, Warning,
        cache::ManifestCache,
        join::{ImageFiles, JoinCache},
        required::{Found, Lookup, Rejected},
    },
};

type Content = Option<Arc<dyn ImageContent + Send + Sync>>;

/// Settings of the source.
pub(crate) struct SourceConfig {
    pub runtimes: Runtimes,
    pub baselines: Baselines,
    pub proc_root: PathBuf,
}

/// Resolves containers to verification contexts (blocking; called off the
/// event loop).
pub(crate) struct Source {
    cfg: SourceConfig,
    manifests: ManifestCache,
    /// umoci manifests read, by path (one per image, shared by its bundles).
    mtrees: Mutex<HashMap<PathBuf, Arc<Mtree>>>,
    joins: JoinCache,
    /// SBOM sets already warned about.
    warned: Mutex<HashSet<Vec<PathBuf>>>,
    /// Rejections already reported, by image digest (else image).
    refused: Mutex<HashSet<(String, Rejected)>>,
    /// Warnings not yet printed.
    warnings: Mutex<Vec<Warning>>,
}

impl Source {
    pub(crate) fn new(cfg: SourceConfig) -> Self {
        Self {
            cfg,
            manifests: ManifestCache::default(),
            mtrees: Mutex::new(HashMap::new()),
            joins: JoinCache::default(),
            warned: Mutex::new(HashSet::new()),
            refused: Mutex::new(HashSet::new()),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// Warnings found since the last call, for the output to print.
    pub(crate) fn take_warnings(&self) -> Vec<Warning> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Container -> baseline. `Err` when the runtime state is not there yet.
    pub(crate) fn resolve(&self, c: &ContainerRef, pid: Option<u32>) -> Result<Resolved, NotYet> {
        let meta = self.cfg.runtimes.meta(c)?;
        let mut info = ContainerInfo {
            name: meta.name.clone(),
            image_name: meta.image_name.clone(),
            image_digest: meta.image_digest.clone(),
            pod_name: meta.pod_name.clone(),
            pod_namespace: meta.pod_namespace.clone(),
            pod_labels: meta.pod_labels.clone(),
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
        let found = self.cfg.baselines.lookup(&keys);
        self.report_rejections(&keys, &found);
        let files = match found.lookup {
            Lookup::Files(files) => files,
            Lookup::Refused { on_missing: OnMissing::Unverifiable, why } => {
                return Ok(Resolved::Refused(Arc::new(info), why));
            }
            Lookup::Refused { on_missing: OnMissing::Alert, why } => {
                return Ok(Resolved::NoBaseline(Arc::new(info), why));
            }
        };
        if files.is_empty() {
            let image =
                meta.image_name.or(meta.image_digest).unwrap_or_else(|| format!("of container {}", c.id));
            let why =
                format!("no SBOM for image {image} (add --sbom PATTERN=FILE or put it in --sbom-store)");
            return Ok(Resolved::NoBaseline(Arc::new(info), why));
        }
        let (mut key, mut manifest) = match self.manifests.keyed_manifest(&files) {
            Ok(m) => m,
            Err(e) => return Ok(Resolved::Failed(e.to_string())),
        };
        // The root from the container's init first: an exec's own process
        // may be `chroot`ed, and its root is not the container's.
        let by_pid = meta
            .init_pid
            .iter()
            .chain(&pids)
            .find_map(|p| RootDir::open(&self.cfg.proc_root.join(p.to_string()).join("root")).ok());
        let root = match by_pid.map(Ok).or_else(|| meta.rootfs.as_deref().map(RootDir::open)) {
            Some(Ok(r)) => r,
            _ => return Err(NotYet(format!("no root directory known yet for container {}", c.id))),
        };
        info.sbom_sources = files.iter().map(|f| f.display().to_string()).collect();
        info.sbom_format = Some(manifest.source().format.name().to_owned());
        let layers = layers.map(Arc::new);
        let mut content: Content = match &layers {
            Some(l) => Some(l.clone() as Arc<dyn ImageContent + Send + Sync>),
            None => meta.bundle.as_deref().and_then(|b| self.mtree(b)).map(|m| m as _),
        };
        if package_only(&manifest) {
            let image = meta.image_name.clone().or(meta.image_digest.clone()).unwrap_or_else(|| c.id.clone());
            let files_of = self.image_files(layers.as_ref(), meta.bundle.as_deref(), meta.rootfs.as_deref());
            let joined = files_of.and_then(|f| {
                let j = self.joins.join(&manifest, f.as_ref()).map_err(|e| e.to_string())?;
                Ok((j, f))
            });
            self.warn_package_only(&files, &manifest, image, joined.as_ref().map(|(j, _)| j.as_ref()));
            if let Ok((j, f)) = joined {
                key = j.key;
                manifest = j.manifest.clone();
                content = Some(Arc::new(GapContent::new(j.unlisted.clone(), f, content)));
            }
        }
        let ctx = Context {
            any_algs: verifier_sbom::digest::algs_for_any(&manifest),
            key,
            root: Arc::new(root),
            index: Arc::default(),
            manifest,
            content,
        };
        Ok(Resolved::Verify(Arc::new(ctx), Arc::new(info)))
    }

    /// The umoci manifest of `bundle`'s image, read once per file.
    fn mtree(&self, bundle: &Path) -> Option<Arc<Mtree>> {
        let path = Mtree::find(bundle)?;
        let mut cache = self.mtrees.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.get(&path) {
            return Some(m.clone());
        }
        let m = Arc::new(Mtree::parse(&std::fs::read_to_string(&path).ok()?));
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(path, m.clone());
        Some(m)
    }
}

impl Source {
    /// The image's read-only content to read its package database from, or
    /// why there is none.
    fn image_files(
        &self,
        layers: Option<&Arc<Layers>>,
        bundle: Option<&Path>,
        rootfs: Option<&Path>,
    ) -> Result<Arc<dyn ImageFiles + Send + Sync>, String> {
        if let Some(l) = layers {
            return Ok(l.clone() as _);
        }
        let (Some(bundle), Some(rootfs)) = (bundle, rootfs) else {
            return Err("the container's root is neither an overlay of image layers nor a runc bundle".into());
        };
        let vouched = match readonly_root(bundle, rootfs) {
            Ok(()) => None,
            Err(why) => Some(self.mtree(bundle).ok_or(why)?),
        };
        let files = RootFiles::open(rootfs, vouched)
            .ok_or_else(|| format!("{} cannot be opened", rootfs.display()))?;
        Ok(Arc::new(files))
    }

    /// Reports each rejected attestation once per image: all of them when
    /// the image requires a signed SBOM, else those that failed a check
    /// (an image without attestations is the common case, not news).
    fn report_rejections(&self, keys: &ImageKeys<'_>, found: &Found) {
        let image = keys.image_name.or(keys.image_digest).unwrap_or(keys.container_id);
        let by = keys.image_digest.unwrap_or(image).to_owned();
        for r in &found.rejected {
            let missing = r.check == "missing";
            if missing && found.action == "not-used" {
                continue;
            }
            if !self.refused.lock().unwrap_or_else(|e| e.into_inner()).insert((by.clone(), r.clone())) {
                continue;
            }
            let then = match found.action {
                "unverifiable" => "its execs are judged unverifiable",
                "alert" => "no SBOM is used for it (on_missing = alert)",
                _ => "its SBOM is not used (the image does not require a signed SBOM)",
            };
            let message = format!(
                "attestation {} for image {image} {}: {}: {then}",
                r.attestation,
                if missing { "missing".to_owned() } else { format!("failed the {} check", r.check) },
                r.detail
            );
            let code = if missing { "attestation-missing" } else { "attestation-rejected" };
            let w = Warning {
                code,
                sbom: Vec::new(),
                image: image.to_owned(),
                database: None,
                message,
                rejection: Some(Refusal {
                    digest: keys.image_digest.map(str::to_owned),
                    rejected: r.clone(),
                    action: found.action,
                }),
            };
            tracing::warn!("{}", w.message);
            self.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(w);
        }
    }

    /// Says once per SBOM set that it lists no file digests, and what was
    /// done about it.
    fn warn_package_only(
        &self,
        files: &[PathBuf],
        m: &Manifest,
        image: String,
        joined: Result<&crate::baseline::join::Joined, &String>,
    ) {
        if !self.warned.lock().unwrap_or_else(|e| e.into_inner()).insert(files.to_vec()) {
            return;
        }
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let head = format!("{} lists {} packages and no file digests", names.join(", "), m.packages().len());
        let (database, message) = match joined {
            Ok(j) => (
                Some(j.db),
                format!(
                    "{head}: joined with the image's {db} database (read from the image's read-only content): \
                     files of the {} listed packages installed verify against the database's digests \
                     ({weak}, weak); files of the {} installed packages it does not list are sbom-gap{}{}",
                    j.matched,
                    j.unlisted_packages.len(),
                    list(" (", &j.unlisted_packages, ")"),
                    if j.missing.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; {} listed packages are not installed{}",
                            j.missing.len(),
                            list(" (", &j.missing, ")")
                        )
                    },
                    db = j.db,
                    weak = if j.db == "dpkg" { "MD5" } else { "SHA-1" },
                ),
            ),
            Err(why) => (
                None,
                format!(
                    "{head}: not joined with the image's package database ({why}); every exec and library will be \
                     unknown-binary or library-drift. Give an SBOM with per-file SHA-256 (`verifier sbom generate`)"
                ),
            ),
        };
        let w = Warning { code: "sbom-package-only", sbom: names, image, database, message, rejection: None };
        tracing::warn!("{}", w.message);
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(w);
    }
}

/// An SBOM that lists packages and no file with a digest.
fn package_only(m: &Manifest) -> bool {
    !m.packages().is_empty() && m.len_with_digests() == 0
}

/// Up to 8 names, between `open` and `close`.
fn list(open: &str, names: &[String], close: &str) -> String {
    if names.is_empty() {
        return String::new();
    }
    let more = if names.len() > 8 { ", ..." } else { "" };
    format!("{open}{}{more}{close}", names.iter().take(8).cloned().collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
