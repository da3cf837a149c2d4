//! Turns the walk of a root filesystem directory ([`crate::walk`]) into a
//! [`Tree`], queueing every regular file on the hash pool as it goes (walk
//! and hashing overlap).
//!
//! Policy here: hard links are hashed once (keyed by device and inode);
//! names that are not UTF-8 (and everything below such a directory) are
//! skipped with a counted warning, not mangled, since SBOM JSON cannot
//! carry them. Files, package databases included, are opened through
//! [`RootDir`], so nothing read can lie outside the rootfs.

use std::{
    collections::HashMap,
    ffi::OsStr,
    fs,
    io::Read as _,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    GenerateError, Warnings, packages,
    tree::{Node, Tree},
};
use crate::{
    fsroot::RootDir,
    hash::{Algs, HashPool, JobId, Source},
    walk::{Event, Kind, Walk},
};

/// Largest package database file read into memory.
const MAX_CAPTURE: u64 = 256 << 20;

/// A directory counts as a rootfs when it has one of the usual top-level
/// directories (or links to them, as merged-/usr layouts have).
pub fn looks_like_rootfs(dir: &Path) -> bool {
    ["bin", "etc", "lib", "sbin", "usr"].iter().any(|d| fs::symlink_metadata(dir.join(d)).is_ok())
}

/// Walks `root`; returns the tree and the bytes of the package databases.
pub fn walk(
    root: &Path,
    pool: &mut HashPool,
    algs: Algs,
    progress: &indicatif::ProgressBar,
    warnings: &mut Warnings,
) -> Result<(Tree, HashMap<JobId, Vec<u8>>), GenerateError> {
    let input_error = |error| GenerateError::Input { path: root.to_owned(), error };
    let root_dir = Arc::new(RootDir::open(root).map_err(input_error)?);
    let shown = |rel: &[u8]| root.join(OsStr::from_bytes(rel)).display().to_string();
    let mut tree = Tree::default();
    let mut seen_inodes: HashMap<(u64, u64), JobId> = HashMap::new();
    let mut walk = Walk::new(&root_dir).map_err(input_error)?;
    while let Some(event) = walk.next() {
        let entry = match event {
            Event::Entry(entry) => entry,
            Event::Skipped { rel, why } => {
                warnings.push(format!("{} skipped: {why}", shown(&rel)));
                continue;
            }
        };
        // SBOM JSON cannot carry such a name; nor anything below it.
        let Ok(rel) = std::str::from_utf8(&entry.rel) else {
            warnings.non_utf8(&escape_bytes(root.join(OsStr::from_bytes(&entry.rel)).as_os_str().as_bytes()));
            walk.skip_dir();
            continue;
        };
        let path = format!("/{rel}");
        let st = entry.stat;
        match entry.kind {
            Kind::Dir => tree.insert(path, Node::Dir),
            Kind::Symlink { target } => match String::from_utf8(target) {
                Ok(target) => tree.insert(path, Node::Symlink { target, layer: None }),
                Err(_) => warnings.non_utf8(&format!("{} (its link target)", shown(&entry.rel))),
            },
            Kind::File => {
                let key = (st.dev, st.ino);
                let job = match seen_inodes.get(&key) {
                    Some(&job) if st.nlink > 1 => job,
                    _ => {
                        progress.inc_length(st.size);
                        let source = Source::InRoot(Arc::clone(&root_dir), PathBuf::from(rel));
                        let job = pool.submit(source, algs);
                        if st.nlink > 1 {
                            seen_inodes.insert(key, job);
                        }
                        job
                    }
                };
                tree.insert(path, Node::File { job, mode: st.mode & 0o7777, layer: None });
            }
            Kind::Other => tree.insert(path, Node::Other),
        }
    }
    let captures = read_captures(&root_dir, &tree, warnings);
    Ok((tree, captures))
}

/// Reads the package databases and os-release found in the tree.
fn read_captures(root: &RootDir, tree: &Tree, warnings: &mut Warnings) -> HashMap<JobId, Vec<u8>> {
    let mut out = HashMap::new();
    for (path, node) in tree.iter() {
        let Node::File { job, .. } = node else {
            continue;
        };
        if !packages::is_captured(path) {
            continue;
        }
        let read = root.open_read(path.trim_start_matches('/').as_bytes()).and_then(|f| {
            let mut buf = Vec::new();
            f.take(MAX_CAPTURE).read_to_end(&mut buf)?;
            Ok(buf)
        });
        match read {
            Ok(bytes) => {
                out.insert(*job, bytes);
            }
            Err(err) => warnings.push(format!(
                "package database {} not read: {err}",
                root.origin.join(path.trim_start_matches('/')).display()
            )),
        }
    }
    out
}

/// Shows a byte path with non-UTF-8 bytes as `\xNN`, for messages only.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}
