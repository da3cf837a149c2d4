//! `verifier sbom generate`: a per-file SBOM (SPDX 2.3 or CycloneDX 1.6
//! JSON) of a root filesystem directory, an OCI image layout, or an image
//! tar (OCI archive or `docker save` archive).
//!
//! Why: the agent and `check` need a trustworthy per-file baseline, and most
//! SBOM tools list packages only. This one hashes every regular file
//! (SHA-256, plus the SHA-1 SPDX 2.3 requires) and attributes files to the
//! packages of the image's own apk and dpkg databases.
//!
//! How: the input becomes an in-memory [`tree::Tree`] (a rootfs is walked
//! without following symlinks; image layers are streamed, gzip or plain, and
//! applied in order with `.wh.` and `.wh..wh..opq` whiteouts, never
//! extracted), while a [`hash::HashPool`] hashes files in parallel. The
//! result is an [`Inventory`], sorted by path, written by [`spdx`] or
//! [`cyclonedx`].
//!
//! Choices, documented for users of the output:
//! - **Symlinks** that resolve (inside the tree) to a regular file are
//!   listed as files carrying the *target's* digests, marked with the link
//!   target (SPDX file `comment` `symlink to <target>`, CycloneDX property
//!   `verifier:symlink-target`). That is what readers of real SBOMs already
//!   expect, and it lets `check` verify a link by hashing what it points to.
//!   Links to directories are not listed (the files below them are, under
//!   their real path); dangling or looping links are counted and skipped.
//! - **Names that are not UTF-8** cannot be written in SPDX or CycloneDX
//!   JSON; they are skipped with a warning on stderr and counted, never
//!   altered. Other odd names (newlines, control characters) are kept and
//!   JSON-escaped, so they round-trip.
//! - **Output is deterministic**: sorted files and packages, identifiers
//!   derived from content; the timestamp comes from `SOURCE_DATE_EPOCH`
//!   when set.

pub mod cyclonedx;

mod image;
mod layer;
pub mod packages;
pub mod rootfs;
pub mod spdx;

pub mod tree;

use std::{
    collections::{BTreeMap, HashMap},
    io::{self, IsTerminal as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::hash::{self, Algs, FileHashes, HashPool, JobId};
use tree::{Node, Tree};

/// Output format of `sbom generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    SpdxJson,
    CycloneDxJson,
}

impl Format {
    /// The digests a format needs for each file.
    pub fn algs(self) -> Algs {
        match self {
            Self::SpdxJson => Algs::SHA256_SHA1,
            Self::CycloneDxJson => Algs::SHA256,
        }
    }
}

/// What `generate` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub algs: Algs,
    /// `os/arch[/variant]` to pick from a multi-platform image.
    pub platform: Option<String>,
    /// Image name to record (overrides what the image says).
    pub name: Option<String>,
    /// Who supplies the image (`Name <email>`), recorded as its supplier
    /// (default: the distribution's `NAME` from os-release).
    pub supplier: Option<String>,
    pub threads: Option<usize>,
    /// Show a progress bar (only ever drawn on a terminal).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            algs: Algs::SHA256_SHA1,
            platform: None,
            name: None,
            supplier: None,
            threads: None,
            progress: false,
        }
    }
}

/// Errors of `sbom generate`.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot read {path}: {error}; check the path exists and is readable")]
    Input { path: PathBuf, error: io::Error },
    #[error(
        "{path} is neither a root filesystem directory (it has no bin, etc, lib, sbin or usr), an OCI image layout \
         (no index.json), a docker-archive directory (no manifest.json) nor an image tar; pass one of those"
    )]
    NotRecognized { path: PathBuf },
    #[error("reading {what} failed: {error}")]
    Io { what: String, error: io::Error },
    #[error("{what} is not valid JSON: {error}; the image is damaged, re-save it")]
    Json { what: String, error: serde_json::Error },
    #[error("{0}")]
    Image(String),
    #[error(
        "layer {index} of {total} ({blob}) is corrupt or truncated: {error}; re-pull or re-save the image"
    )]
    Layer { index: usize, total: usize, blob: String, error: io::Error },
    #[error(
        "{what} has digest {actual}, but the image says {expected}: the image is damaged or was tampered with"
    )]
    Digest { what: String, expected: String, actual: String },
    /// The underlying error is the source (so a closed stdout is seen as
    /// a broken pipe by `main`), not repeated in the message.
    #[error("writing the SBOM failed")]
    Write(#[source] io::Error),
}

/// What was scanned, as recorded in the SBOM.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// `true` for an OCI/docker image, `false` for a rootfs directory.
    pub is_image: bool,
    pub name: String,
    /// `sha256:<hex>` of the image manifest (OCI inputs).
    pub manifest_digest: Option<String>,
    /// `sha256:<hex>` of the image config (the image ID).
    pub config_digest: Option<String>,
    /// `os/arch[/variant]`.
    pub platform: Option<String>,
    /// Layer digests in order.
    pub layers: Vec<String>,
    pub distro: Option<packages::Distro>,
    /// From [`Options::supplier`].
    pub supplier: Option<String>,
}

impl Subject {
    /// Who supplies the image: as asked, else the distribution (`NAME` of
    /// os-release, `Debian GNU/Linux`), else unknown.
    pub fn supplier(&self) -> Option<&str> {
        self.supplier.as_deref().or_else(|| self.distro.as_ref().and_then(|d| d.name.as_deref()))
    }

    /// The version to record: the manifest digest, else the config digest
    /// (the image ID), else, for a rootfs directory, `content-<hex>` from
    /// its files and their digests (the same tree gives the same version).
    pub fn version(&self, content: &[u8; 32]) -> String {
        match self.manifest_digest.as_deref().or(self.config_digest.as_deref()) {
            Some(d) => d.to_owned(),
            None => format!("content-{}", hex::encode(&content[..8])),
        }
    }
}

/// One file of the SBOM.
#[derive(Debug, Clone)]
pub struct FileRecord {
    /// Absolute, normalised path (`/usr/bin/env`).
    pub path: String,
    pub hashes: FileHashes,
    pub mode: u32,
    /// Set when this path is a symlink (its digests are the target's).
    pub symlink_target: Option<String>,
    /// Index into [`Inventory::packages`].
    pub package: Option<usize>,
    /// Index of the layer the content comes from (images).
    pub layer: Option<usize>,
}

/// Counts of what was left out, so that nothing is dropped silently.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub non_utf8_names: usize,
    pub dangling_symlinks: usize,
    pub hash_errors: usize,
    pub special_files: usize,
}

/// Everything an SBOM writer needs, sorted by path.
#[derive(Debug, Default)]
pub struct Inventory {
    pub subject: Subject,
    pub files: Vec<FileRecord>,
    pub packages: Vec<packages::Package>,
    pub warnings: Vec<String>,
    pub stats: Stats,
}

/// Scans `input` (rootfs dir, OCI layout, docker-archive dir, image tar).
pub fn scan(input: &Path, opts: &Options) -> Result<Inventory, GenerateError> {
    let meta =
        std::fs::metadata(input).map_err(|error| GenerateError::Input { path: input.to_owned(), error })?;
    let progress = progress_bar(opts.progress);
    let bar = progress.clone();
    let threads = hash::default_threads(opts.threads);
    let mut warnings = Warnings::default();
    let (tree, results, captures, mut subject) = if meta.is_dir() && !image::is_image_dir(input) {
        if !rootfs::looks_like_rootfs(input) {
            return Err(GenerateError::NotRecognized { path: input.to_owned() });
        }
        let mut pool = HashPool::new(threads, Arc::new(move |n| bar.inc(n)));
        let (tree, captures) = rootfs::walk(input, &mut pool, opts.algs, &progress, &mut warnings)?;
        let name =
            input.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let subject = Subject { name: name.unwrap_or_else(|| "rootfs".into()), ..Subject::default() };
        (tree, pool.finish(), captures, subject)
    } else {
        let store = image::Store::open(input)?;
        let plan = image::plan(&store, opts.platform.as_deref())?;
        let mut pool = HashPool::new(threads, Arc::new(|_| {}));
        let mut tree = Tree::default();
        let mut captures = HashMap::new();
        let total = plan.layers.len();
        progress.set_length(plan.layers.iter().map(|l| l.size).sum());
        for (index, layer_ref) in plan.layers.iter().enumerate() {
            let ctx = layer::LayerCtx {
                index,
                total,
                name: &layer_ref.path,
                algs: opts.algs,
                diff_id: layer_ref.diff_id.as_deref(),
            };
            let raw = store.open_blob(&layer_ref.path)?;
            let raw = progress.wrap_read(raw);
            layer::apply(
                &mut tree,
                &mut pool,
                &mut captures,
                raw,
                layer_ref.digest.as_deref(),
                &ctx,
                &mut warnings,
            )?;
        }
        (tree, pool.finish(), captures, plan.subject)
    };
    progress.finish_and_clear();
    if let Some(name) = &opts.name {
        subject.name.clone_from(name);
    }
    subject.supplier.clone_from(&opts.supplier);
    Ok(assemble(tree, results, &captures, subject, warnings))
}

/// Turns the tree and hash results into the sorted inventory.
fn assemble(
    tree: Tree,
    results: Vec<Result<FileHashes, hash::HashError>>,
    captures: &HashMap<JobId, Vec<u8>>,
    mut subject: Subject,
    mut warnings: Warnings,
) -> Inventory {
    let mut stats = Stats { non_utf8_names: warnings.non_utf8, ..Stats::default() };
    let mut files = Vec::new();
    let mut captured: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (path, node) in tree.iter() {
        let (job, mode, layer, symlink_target) = match node {
            Node::File { job, mode, layer } => {
                if let Some(bytes) = captures.get(job) {
                    captured.insert(path, bytes);
                }
                (*job, *mode, *layer, None)
            }
            Node::Symlink { target, layer } => match tree.resolve(path) {
                Some((_, Node::File { job, mode, .. })) => (*job, *mode, *layer, Some(target.clone())),
                Some((_, Node::Dir)) => continue,
                _ => {
                    stats.dangling_symlinks += 1;
                    continue;
                }
            },
            Node::Other => {
                stats.special_files += 1;
                continue;
            }
            Node::Dir => continue,
        };
        match results.get(job) {
            Some(Ok(hashes)) => files.push(FileRecord {
                path: path.clone(),
                hashes: hashes.clone(),
                mode,
                symlink_target,
                package: None,
                layer,
            }),
            Some(Err(err)) => {
                stats.hash_errors += 1;
                warnings.push(format!("{path} left out: {err}"));
            }
            None => stats.hash_errors += 1,
        }
    }
    subject.distro = packages::distro(&captured);
    let (packages, owners) = packages::collect(&captured, &tree, subject.distro.as_ref(), &mut warnings.list);
    for file in &mut files {
        file.package = owners.get(file.path.as_str()).copied();
    }
    Inventory { subject, files, packages, warnings: warnings.list, stats }
}

/// Warnings gathered while scanning, printed by the CLI.
#[derive(Debug, Default)]
pub struct Warnings {
    pub list: Vec<String>,
    pub non_utf8: usize,
}

impl Warnings {
    pub fn push(&mut self, msg: String) {
        self.list.push(msg);
    }

    /// A name that SBOM JSON cannot carry: skipped, counted, reported.
    pub fn non_utf8(&mut self, shown: &str) {
        self.non_utf8 += 1;
        self.list.push(format!(
            "skipped {shown}: its name is not UTF-8, which SPDX and CycloneDX JSON cannot represent"
        ));
    }
}

fn progress_bar(wanted: bool) -> indicatif::ProgressBar {
    if !wanted || !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} hashing {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

/// Writes `inv` in `format`; `created` is an RFC 3339 UTC timestamp.
pub fn write<W: io::Write>(
    inv: &Inventory,
    format: Format,
    created: &str,
    out: W,
) -> Result<(), GenerateError> {
    match format {
        Format::SpdxJson => spdx::write(inv, created, out),
        Format::CycloneDxJson => cyclonedx::write(inv, created, out),
    }
}

/// The creation time: `SOURCE_DATE_EPOCH` when set (reproducible builds),
/// else now.
pub fn created_timestamp() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
        });
    crate::time::rfc3339(secs)
}

/// A SHA-256 over the sorted (path, sha256) list: a content identity for
/// the document namespace and serial number (same input, same id).
pub fn content_id(inv: &Inventory) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(inv.subject.name.as_bytes());
    h.update([0]);
    h.update(inv.subject.manifest_digest.as_deref().unwrap_or("").as_bytes());
    for f in &inv.files {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(f.hashes.sha256.unwrap_or_default());
    }
    h.finalize().into()
}
