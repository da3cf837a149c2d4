//! Finds an image's layers: OCI image layout (`index.json` -> manifest ->
//! config + layers in `blobs/sha256`) or `docker save` archive
//! (`manifest.json` -> Config + Layers), as a directory or a tar.
//!
//! Why a [`Store`] over both: an image tar is read in place, not unpacked.
//! Its members are indexed once (name -> offset, size) and each blob is then
//! read with a seek, so a multi-GB archive costs no disk space and one pass
//! per layer.

use std::{
    collections::HashMap,
    fs::File,
    io::{Read, Seek as _, SeekFrom},
    path::{Path, PathBuf},
};

use serde::Deserialize;
use sha2::Digest as _;

use super::{GenerateError, Subject};

/// Largest JSON document (index, manifest, config) read into memory.
const MAX_JSON: u64 = 64 << 20;

/// True when `dir` is an OCI layout or an unpacked docker archive.
pub(super) fn is_image_dir(dir: &Path) -> bool {
    dir.join("index.json").is_file()
        || dir.join("oci-layout").is_file()
        || dir.join("manifest.json").is_file()
}

/// Where blobs are read from.
pub(super) enum Store {
    Dir(PathBuf),
    Tar { file: PathBuf, members: HashMap<String, Member> },
}

#[derive(Debug, Clone)]
pub(super) enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

impl Store {
    pub(super) fn open(input: &Path) -> Result<Self, GenerateError> {
        if input.is_dir() {
            return Ok(Self::Dir(input.to_owned()));
        }
        let io_err = |error| GenerateError::Input { path: input.to_owned(), error };
        let file = File::open(input).map_err(io_err)?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive
            .entries_with_seek()
            .map_err(|_| GenerateError::NotRecognized { path: input.to_owned() })?;
        for entry in entries {
            let entry = entry.map_err(|_| GenerateError::NotRecognized { path: input.to_owned() })?;
            let Ok(name) = super::tree::normalize(&entry.path_bytes()) else {
                continue;
            };
            let name = name.trim_start_matches('/').to_owned();
            let kind = entry.header().entry_type();
            if kind.is_file() {
                members.insert(name, Member::File { offset: entry.raw_file_position(), size: entry.size() });
            } else if (kind.is_symlink() || kind.is_hard_link())
                && let Some(target) = entry.link_name_bytes()
            {
                let target = String::from_utf8_lossy(&target).into_owned();
                let target = if kind.is_symlink() { join_rel(&name, &target) } else { target };
                members.insert(name, Member::Link(target));
            }
        }
        if !members.contains_key("index.json") && !members.contains_key("manifest.json") {
            return Err(GenerateError::NotRecognized { path: input.to_owned() });
        }
        Ok(Self::Tar { file: input.to_owned(), members })
    }

    /// How a member is named in messages.
    pub(super) fn describe(&self, name: &str) -> String {
        match self {
            Self::Dir(dir) => dir.join(name).display().to_string(),
            Self::Tar { file, .. } => format!("{name} in {}", file.display()),
        }
    }

    /// Opens a member (`blobs/sha256/<hex>`, `<id>/layer.tar`, ...).
    pub(super) fn open_blob(&self, name: &str) -> Result<Box<dyn Read + Send>, GenerateError> {
        let missing = || {
            GenerateError::Image(format!(
                "{} is missing; the image is incomplete, re-save it",
                self.describe(name)
            ))
        };
        let clean = super::tree::normalize(name.as_bytes()).map_err(|_| missing())?;
        let clean = clean.trim_start_matches('/');
        match self {
            Self::Dir(dir) => {
                let path = dir.join(clean);
                let file = File::open(&path)
                    .map_err(|error| GenerateError::Io { what: path.display().to_string(), error })?;
                Ok(Box::new(file))
            }
            Self::Tar { file, members } => {
                let mut key = clean.to_owned();
                for _ in 0..8 {
                    match members.get(&key) {
                        Some(Member::Link(target)) => key.clone_from(target),
                        Some(Member::File { offset, size }) => {
                            let io = |error| GenerateError::Io { what: self.describe(name), error };
                            let mut f = File::open(file).map_err(io)?;
                            f.seek(SeekFrom::Start(*offset)).map_err(io)?;
                            return Ok(Box::new(f.take(*size)));
                        }
                        None => break,
                    }
                }
                Err(missing())
            }
        }
    }

    /// Size of a member as stored (for the progress bar), when known.
    fn size(&self, name: &str) -> Option<u64> {
        match self {
            Self::Dir(dir) => std::fs::metadata(dir.join(name)).ok().map(|m| m.len()),
            Self::Tar { members, .. } => match members.get(name)? {
                Member::File { size, .. } => Some(*size),
                Member::Link(_) => None,
            },
        }
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Self::Dir(dir) => dir.join(name).is_file(),
            Self::Tar { members, .. } => members.contains_key(name),
        }
    }

    /// Reads a JSON member; checks its digest when one is given.
    fn json<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
        digest: Option<&str>,
    ) -> Result<(T, String), GenerateError> {
        let mut bytes = Vec::new();
        self.open_blob(name)?
            .take(MAX_JSON)
            .read_to_end(&mut bytes)
            .map_err(|error| GenerateError::Io { what: self.describe(name), error })?;
        let actual = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
        if let Some(expected) = digest.filter(|d| d.starts_with("sha256:") && *d != actual) {
            return Err(GenerateError::Digest {
                what: self.describe(name),
                expected: expected.into(),
                actual,
            });
        }
        let value = serde_json::from_slice(&bytes)
            .map_err(|error| GenerateError::Json { what: self.describe(name), error })?;
        Ok((value, actual))
    }
}

fn join_rel(member: &str, target: &str) -> String {
    let dir = member.rsplit_once('/').map_or("", |(d, _)| d);
    let joined = format!("{dir}/{target}");
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// A layer to apply, in order.
#[derive(Debug, Clone)]
pub(super) struct LayerRef {
    /// Member name in the store.
    pub path: String,
    /// `sha256:<hex>` of the bytes as stored (checked while streaming).
    pub digest: Option<String>,
    /// `sha256:<hex>` of the uncompressed tar (config `rootfs.diff_ids`).
    pub diff_id: Option<String>,
    pub size: u64,
}

pub(super) struct Plan {
    pub subject: Subject,
    pub layers: Vec<LayerRef>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl Platform {
    fn text(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize, Default)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    rootfs: Option<RootFs>,
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// Works out which manifest and layers to read.
pub(super) fn plan(store: &Store, platform: Option<&str>) -> Result<Plan, GenerateError> {
    if store.has("index.json") {
        plan_oci(store, platform)
    } else if store.has("manifest.json") {
        plan_docker(store)
    } else {
        Err(GenerateError::Image(format!("{} has neither index.json nor manifest.json", store.describe(""))))
    }
}

fn blob_path(digest: &str) -> Result<String, GenerateError> {
    match digest.split_once(':') {
        Some((alg, hex))
            if !alg.is_empty() && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Ok(format!("blobs/{alg}/{hex}"))
        }
        _ => Err(GenerateError::Image(format!("invalid digest {digest:?} in the image index or manifest"))),
    }
}

fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("linux/{arch}")
}

fn is_index(media_type: &str) -> bool {
    media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json")
}

fn plan_oci(store: &Store, wanted: Option<&str>) -> Result<Plan, GenerateError> {
    let (mut index, _) = store.json::<Index>("index.json", None)?;
    let mut name = None;
    let mut depth = 0;
    let chosen = loop {
        let candidates: Vec<Descriptor> = index
            .manifests
            .into_iter()
            .filter(|d| {
                d.annotations.get("vnd.docker.reference.type").is_none_or(|t| t != "attestation-manifest")
                    && d.platform.as_ref().is_none_or(|p| p.os != "unknown")
            })
            .collect();
        let default = host_platform();
        let target = wanted.unwrap_or(&default);
        let available: Vec<String> =
            candidates.iter().filter_map(|d| d.platform.as_ref().map(Platform::text)).collect();
        let matching = |d: &Descriptor| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.text() == target || format!("{}/{}", p.os, p.architecture) == target)
        };
        let pick = if candidates.len() == 1
            && (wanted.is_none() || candidates[0].platform.is_none() || matching(&candidates[0]))
        {
            candidates.into_iter().next()
        } else {
            candidates.into_iter().find(|d| matching(d))
        };
        let Some(d) = pick else {
            return Err(GenerateError::Image(format!(
                "no image manifest for platform {target} in {}; available: {}; choose one with --platform",
                store.describe("index.json"),
                if available.is_empty() { "none".to_owned() } else { available.join(", ") }
            )));
        };
        name = name.or_else(|| {
            d.annotations
                .get("io.containerd.image.name")
                .or_else(|| d.annotations.get("org.opencontainers.image.ref.name"))
                .cloned()
        });
        if is_index(&d.media_type) && depth < 4 {
            depth += 1;
            index = store.json::<Index>(&blob_path(&d.digest)?, Some(&d.digest))?.0;
            continue;
        }
        break d;
    };
    let (manifest, digest) = store.json::<Manifest>(&blob_path(&chosen.digest)?, Some(&chosen.digest))?;
    let config = store
        .json::<Config>(&blob_path(&manifest.config.digest)?, Some(&manifest.config.digest))
        .map(|c| c.0)
        .unwrap_or_default();
    let platform = chosen.platform.as_ref().map(Platform::text).or_else(|| {
        (!config.os.is_empty()).then(|| {
            Platform {
                os: config.os.clone(),
                architecture: config.architecture.clone(),
                variant: config.variant.clone(),
            }
            .text()
        })
    });
    let diff_ids = config.rootfs.as_ref().map(|r| r.diff_ids.clone()).unwrap_or_default();
    let layers = manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if l.media_type.contains("zstd") {
                return Err(GenerateError::Image(format!("layer {} is zstd-compressed, which is not supported yet; convert the image to gzip layers", l.digest)));
            }
            Ok(LayerRef { path: blob_path(&l.digest)?, digest: Some(l.digest.clone()), diff_id: diff_ids.get(i).cloned(), size: l.size })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let subject = Subject {
        is_image: true,
        name: name.unwrap_or_else(|| "image".into()),
        manifest_digest: Some(digest),
        config_digest: Some(manifest.config.digest.clone()),
        platform,
        layers: layers.iter().filter_map(|l| l.digest.clone()).collect(),
        distro: None,
        supplier: None,
    };
    Ok(Plan { subject, layers })
}

fn plan_docker(store: &Store) -> Result<Plan, GenerateError> {
    let (entries, _) = store.json::<Vec<DockerEntry>>("manifest.json", None)?;
    let count = entries.len();
    let Some(entry) = entries.into_iter().next() else {
        return Err(GenerateError::Image(format!("{} lists no image", store.describe("manifest.json"))));
    };
    if count > 1 {
        return Err(GenerateError::Image(format!(
            "{} holds {count} images; save one image per archive",
            store.describe("manifest.json")
        )));
    }
    let (config, config_digest) = store.json::<Config>(&entry.config, None)?;
    let diff_ids = config.rootfs.as_ref().map(|r| r.diff_ids.clone()).unwrap_or_default();
    let mut layers = Vec::new();
    for (i, path) in entry.layers.iter().enumerate() {
        // Newer docker saves name layers by digest; older ones by ID.
        let digest = path.strip_prefix("blobs/sha256/").map(|hex| format!("sha256:{hex}"));
        layers.push(LayerRef {
            path: path.clone(),
            digest,
            diff_id: diff_ids.get(i).cloned(),
            size: store.size(path).unwrap_or(0),
        });
    }
    let subject = Subject {
        is_image: true,
        name: entry.repo_tags.and_then(|t| t.into_iter().next()).unwrap_or_else(|| "image".into()),
        manifest_digest: None,
        config_digest: Some(config_digest),
        platform: (!config.os.is_empty()).then(|| {
            Platform { os: config.os, architecture: config.architecture, variant: config.variant }.text()
        }),
        layers: layers.iter().filter_map(|l| l.digest.clone().or_else(|| l.diff_id.clone())).collect(),
        distro: None,
        supplier: None,
    };
    Ok(Plan { subject, layers })
}
