//! Streams one image layer (a tar, gzip-compressed or plain) into the tree,
//! applying OCI whiteouts, without writing anything to disk.
//!
//! Why collect then apply: a whiteout in layer N hides entries of the
//! layers *below* it, never entries of layer N itself, whatever their order
//! in the tar. So each layer's whiteouts (`.wh.<name>`, `.wh..wh..opq`) are
//! applied to the tree first, then its entries, in tar order (hard links
//! point to entries earlier in the stream). File contents go to the hash
//! pool as they stream by; the stored blob's SHA-256 is checked against the
//! manifest as it is read, so a damaged or swapped layer is an error.

use std::{
    collections::HashMap,
    io::{self, BufRead as _, BufReader, Read},
};

use sha2::Digest as _;

use super::{
    GenerateError, Warnings, packages,
    rootfs::escape_bytes,
    tree::{BadPath, Node, Tree, normalize},
};
use crate::hash::{Algs, HashPool, JobId, Source};

/// Entries up to this size are buffered and hashed on the pool; larger
/// ones are hashed on the reading thread.
const MAX_BUFFERED: u64 = 64 << 20;

pub(super) struct LayerCtx<'a> {
    pub index: usize,
    pub total: usize,
    pub name: &'a str,
    pub algs: Algs,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Option<&'a str>,
}

enum Change {
    Whiteout(String),
    Opaque(String),
    Add(String, Node),
    HardLink(String, String),
}

/// Counts and hashes what it reads (the stored blob's digest).
struct DigestReader<R> {
    inner: R,
    sha: sha2::Sha256,
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// Decompresses (gzip or plain) and reads the layer's tar entries.
fn read_layer<R: io::BufRead>(
    buffered: &mut R,
    pool: &mut HashPool,
    captures: &mut HashMap<JobId, Vec<u8>>,
    ctx: &LayerCtx<'_>,
    warnings: &mut Warnings,
) -> Result<Vec<Change>, GenerateError> {
    let layer_err = |error: io::Error| GenerateError::Layer {
        index: ctx.index + 1,
        total: ctx.total,
        blob: ctx.name.to_owned(),
        error,
    };
    let head = buffered.fill_buf().map_err(layer_err)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut gz = flate2::bufread::MultiGzDecoder::new(buffered);
        let changes = read_changes(&mut gz, pool, captures, ctx, warnings).map_err(layer_err)?;
        io::copy(&mut gz, &mut io::sink()).map_err(layer_err)?; // checks the gzip trailer
        Ok(changes)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(GenerateError::Image(format!(
            "layer {} ({}) is zstd-compressed, which is not supported yet",
            ctx.index + 1,
            ctx.name
        )))
    } else {
        read_changes(buffered, pool, captures, ctx, warnings).map_err(layer_err)
    }
}

/// Applies one layer read from `raw` (as stored) to `tree`.
pub(super) fn apply<R: Read>(
    tree: &mut Tree,
    pool: &mut HashPool,
    captures: &mut HashMap<JobId, Vec<u8>>,
    raw: R,
    expected: Option<&str>,
    ctx: &LayerCtx<'_>,
    warnings: &mut Warnings,
) -> Result<(), GenerateError> {
    let layer_err = |error: io::Error| GenerateError::Layer {
        index: ctx.index + 1,
        total: ctx.total,
        blob: ctx.name.to_owned(),
        error,
    };
    let mut digest = DigestReader { inner: raw, sha: sha2::Sha256::new() };
    let mut buffered = BufReader::with_capacity(256 * 1024, &mut digest);
    // An uncompressed layer's stored digest is its diff ID: check that too.
    let plain = buffered.fill_buf().is_ok_and(|head| !head.starts_with(&[0x1f, 0x8b]));
    let expected = expected.or(ctx.diff_id.filter(|_| plain));
    let parsed = read_layer(&mut buffered, pool, captures, ctx, warnings);
    // Read to the end either way: the stored digest says whether a parse
    // error is damage or tampering, and a clean parse must cover the blob.
    let drained = io::copy(&mut buffered, &mut io::sink());
    drop(buffered);
    let actual = format!("sha256:{}", hex::encode(digest.sha.finalize()));
    if let Some(expected) = expected.filter(|d| d.starts_with("sha256:") && *d != actual)
        && (parsed.is_err() || drained.is_ok())
    {
        return Err(GenerateError::Digest {
            what: format!("layer {} ({})", ctx.index + 1, ctx.name),
            expected: expected.into(),
            actual,
        });
    }
    let changes = parsed?;
    drained.map_err(layer_err)?;
    for change in &changes {
        match change {
            Change::Whiteout(path) => tree.remove(path),
            Change::Opaque(dir) => tree.clear_below(dir),
            _ => {}
        }
    }
    for change in changes {
        match change {
            Change::Add(path, node) => tree.insert(path, node),
            Change::HardLink(path, target) => match tree.get(&target) {
                Some(node @ Node::File { .. }) => {
                    let node = node.clone();
                    tree.insert(path, node);
                }
                _ => warnings.push(format!(
                    "{path} in layer {} is a hard link to {target}, which is not a file; left out",
                    ctx.index + 1
                )),
            },
            Change::Whiteout(_) | Change::Opaque(_) => {}
        }
    }
    Ok(())
}

fn read_changes<R: Read>(
    reader: R,
    pool: &mut HashPool,
    captures: &mut HashMap<JobId, Vec<u8>>,
    ctx: &LayerCtx<'_>,
    warnings: &mut Warnings,
) -> io::Result<Vec<Change>> {
    let mut archive = tar::Archive::new(reader);
    let mut changes = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path_bytes().into_owned();
        let path = match normalize(&raw_path) {
            Ok(p) if p == "/" => continue,
            Ok(p) => p,
            Err(BadPath::NotUtf8) => {
                warnings.non_utf8(&format!("{} (layer {})", escape_bytes(&raw_path), ctx.index + 1));
                continue;
            }
            Err(BadPath::Escapes) => {
                warnings.push(format!(
                    "{} in layer {} climbs out of the image with `..`; ignored",
                    escape_bytes(&raw_path),
                    ctx.index + 1
                ));
                continue;
            }
        };
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", &path));
        let dir = if dir.is_empty() { "/" } else { dir };
        if base == ".wh..wh..opq" {
            changes.push(Change::Opaque(dir.to_owned()));
            continue;
        }
        if let Some(hidden) = base.strip_prefix(".wh.") {
            let hidden = if dir == "/" { format!("/{hidden}") } else { format!("{dir}/{hidden}") };
            changes.push(Change::Whiteout(hidden));
            continue;
        }
        let layer = Some(ctx.index);
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0) & 0o7777;
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let node = match kind {
            tar::EntryType::Directory => Node::Dir,
            tar::EntryType::Symlink => match link.map(String::from_utf8) {
                Some(Ok(target)) => Node::Symlink { target, layer },
                _ => {
                    warnings.non_utf8(&format!("{path} (its link target, layer {})", ctx.index + 1));
                    continue;
                }
            },
            tar::EntryType::Link => match link.as_deref().map(normalize) {
                Some(Ok(target)) => {
                    changes.push(Change::HardLink(path, target));
                    continue;
                }
                _ => {
                    warnings.push(format!(
                        "{path} in layer {} is a hard link with an unusable target; left out",
                        ctx.index + 1
                    ));
                    continue;
                }
            },
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.size();
                let job = if size <= MAX_BUFFERED {
                    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    entry.read_to_end(&mut bytes)?;
                    if packages::is_captured(&path) {
                        captures.insert(pool.next_id(), bytes.clone());
                    }
                    pool.submit(Source::Bytes(bytes), ctx.algs)
                } else {
                    pool.hash_inline(&mut entry, ctx.algs)?
                };
                Node::File { job, mode, layer }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => Node::Other,
            _ => continue,
        };
        changes.push(Change::Add(path, node));
    }
    Ok(changes)
}
