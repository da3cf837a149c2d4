//! Walks the rootfs, picks the files that can be executed or mapped,
//! hashes them on the pool with the digest the SBOM can be compared with,
//! and turns the results into findings.
//!
//! Nothing is followed while walking ([`crate::walk`]); symlinks
//! are resolved in an in-memory [`Tree`] with chroot semantics, so a link to
//! `/etc/shadow` or `../../..` means the rootfs' own file, never the host's.
//! Paths an SBOM lists through a symlinked directory (`/bin/x` on a
//! merged-/usr rootfs) are matched to the real file (`/usr/bin/x`).

use std::{
    collections::HashMap,
    ffi::{OsStr, OsString},
    io::Read as _,
    os::unix::ffi::{OsStrExt as _, OsStringExt as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{CheckError, Finding, Kind, PackageInfo, Summary};
use crate::digest::{self, Comparison};
use crate::hash::{self, HashPool, JobId, Source};
use crate::{
    FileEntry, Manifest,
    fsroot::RootDir,
    generate::{
        rootfs::escape_bytes,
        tree::{Node, Tree},
    },
    walk::{Event, Kind as EntryKind, Walk},
};

/// A regular file found in the rootfs.
struct Found {
    path: String,
    /// Path from the root, raw bytes.
    rel: PathBuf,
    not_utf8: bool,
    mode: u32,
}

/// Why a file is hashed, and against what.
struct Pending {
    job: JobId,
    path: String,
    not_utf8: bool,
    /// Manifest key the file is compared with (`None`: not in the SBOM).
    sbom_path: Option<String>,
    symlink_target: Option<String>,
}

/// Paths that look like executables or libraries even without a mode.
pub fn looks_executable(path: &str) -> bool {
    let mut parts = path.rsplit('/');
    let name = parts.next().unwrap_or("");
    is_library_name(name) || parts.any(|d| matches!(d, "bin" | "sbin" | "libexec"))
}

fn is_library_name(name: &str) -> bool {
    name.ends_with(".so") || name.contains(".so.")
}

fn is_elf(root: &RootDir, rel: &Path) -> bool {
    let mut head = [0u8; 4];
    root.open_read(rel.as_os_str().as_bytes())
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == *b"\x7fELF")
}

/// Walks the rootfs into a tree (names not UTF-8 escaped, flagged, and
/// reported as `path_not_utf8`) and the list of its regular files.
fn walk(
    root: &Path,
    root_dir: &RootDir,
    warnings: &mut Vec<String>,
) -> Result<(Tree, Vec<Found>), CheckError> {
    let mut tree = Tree::default();
    let mut found = Vec::new();
    let walk = Walk::new(root_dir).map_err(|error| CheckError::Rootfs { path: root.to_owned(), error })?;
    for event in walk {
        let entry = match event {
            Event::Entry(entry) => entry,
            Event::Skipped { rel, why } => {
                warnings.push(format!("{} not checked: {why}", root.join(OsStr::from_bytes(&rel)).display()));
                continue;
            }
        };
        let not_utf8 = std::str::from_utf8(&entry.rel).is_err();
        let path = format!("/{}", escape_bytes(&entry.rel));
        match entry.kind {
            EntryKind::Dir => tree.insert(path, Node::Dir),
            EntryKind::Symlink { target } => {
                tree.insert(path, Node::Symlink { target: escape_bytes(&target), layer: None });
            }
            EntryKind::File => {
                tree.insert(
                    path.clone(),
                    Node::File { job: found.len(), mode: entry.stat.mode, layer: None },
                );
                let rel = PathBuf::from(OsString::from_vec(entry.rel));
                found.push(Found { path, rel, not_utf8, mode: entry.stat.mode });
            }
            EntryKind::Other => tree.insert(path, Node::Other),
        }
    }
    Ok((tree, found))
}

fn package_of(entry: &FileEntry, manifest: &Manifest) -> Option<PackageInfo> {
    entry.package(manifest).map(|p| PackageInfo {
        name: p.name.clone(),
        version: p.version.clone(),
        purl: p.purl.clone(),
    })
}

fn finding(kind: Kind, path: &str, entry: Option<&FileEntry>, manifest: &Manifest) -> Finding {
    Finding {
        kind,
        path: path.to_owned(),
        path_not_utf8: false,
        expected: entry.map(|e| e.digests().map(|d| d.to_string()).collect()).unwrap_or_default(),
        actual: None,
        compared: None,
        weak: false,
        symlink_target: None,
        package: entry.and_then(|e| package_of(e, manifest)),
        detail: None,
    }
}

pub fn run(
    root: &Path,
    manifest: &Manifest,
    threads: Option<usize>,
) -> Result<(Vec<Finding>, Summary, Vec<String>), CheckError> {
    let mut warnings = Vec::new();
    let root_dir =
        Arc::new(RootDir::open(root).map_err(|error| CheckError::Rootfs { path: root.to_owned(), error })?);
    let (tree, found) = walk(root, &root_dir, &mut warnings)?;
    let mut findings = Vec::new();
    // SBOM paths that reach a rootfs file through a symlinked directory.
    let mut alias: HashMap<String, String> = HashMap::new();
    for (path, _) in manifest.files() {
        if tree.get(path).is_some() {
            continue;
        }
        match tree.resolve(path) {
            Some((real, Node::File { .. })) => {
                alias.entry(real).or_insert_with(|| path.to_owned());
            }
            Some(_) => {}
            None => {
                if looks_executable(path) {
                    findings.push(finding(Kind::Missing, path, manifest.get(path), manifest));
                }
            }
        }
    }
    let mut pool = HashPool::new(hash::default_threads(threads), Arc::new(|_| {}));
    let mut pending = Vec::new();
    for f in &found {
        let sbom_path = if f.not_utf8 {
            None
        } else if manifest.get(&f.path).is_some() {
            Some(f.path.clone())
        } else {
            alias.get(&f.path).cloned()
        };
        let entry = sbom_path.as_deref().and_then(|p| manifest.get(p));
        let name = f.path.rsplit('/').next().unwrap_or("");
        let candidate = f.mode & 0o111 != 0
            || is_library_name(name)
            || (entry.is_some() && looks_executable(&f.path))
            || is_elf(&root_dir, &f.rel);
        if !candidate {
            continue;
        }
        let algs = digest::algs_for(entry);
        let job = pool.submit(Source::InRoot(Arc::clone(&root_dir), f.rel.clone()), algs);
        pending.push(Pending {
            job,
            path: f.path.clone(),
            not_utf8: f.not_utf8,
            sbom_path,
            symlink_target: None,
        });
    }
    // Symlinks the SBOM lists: check what they point to, inside the rootfs.
    for (path, node) in tree.iter() {
        let Node::Symlink { target, .. } = node else {
            continue;
        };
        let Some(entry) = manifest.get(path) else {
            continue;
        };
        match tree.resolve(path) {
            Some((_, Node::File { job, .. })) => {
                let job = pool.submit(
                    Source::InRoot(Arc::clone(&root_dir), found[*job].rel.clone()),
                    digest::algs_for(Some(entry)),
                );
                pending.push(Pending {
                    job,
                    path: path.clone(),
                    not_utf8: false,
                    sbom_path: Some(path.clone()),
                    symlink_target: Some(target.clone()),
                });
            }
            Some((_, Node::Dir)) => {}
            _ if looks_executable(path) || entry.has_digests() => {
                let mut f = finding(Kind::Modified, path, Some(entry), manifest);
                f.symlink_target = Some(target.clone());
                f.detail =
                    Some(format!("symlink to {target} no longer reaches a regular file inside the rootfs"));
                findings.push(f);
            }
            _ => {}
        }
    }
    let results = pool.finish();
    let mut summary = Summary { checked: pending.len(), ..Summary::default() };
    for p in pending {
        let entry = p.sbom_path.as_deref().and_then(|s| manifest.get(s));
        let mut f = finding(Kind::Modified, &p.path, entry, manifest);
        f.path_not_utf8 = p.not_utf8;
        f.symlink_target.clone_from(&p.symlink_target);
        let hashes = match &results[p.job] {
            Ok(h) => h,
            Err(err) => {
                f.kind = Kind::Unreadable;
                f.detail = Some(err.to_string());
                findings.push(f);
                continue;
            }
        };
        f.actual = hashes.sha256.map(|d| format!("sha256:{}", hex::encode(d)));
        let Some(entry) = entry else {
            f.kind = Kind::Added;
            findings.push(f);
            continue;
        };
        let compared = match &p.symlink_target {
            Some(target) => digest::compare_link(entry, hashes, target.as_bytes()),
            None => digest::compare(entry, hashes),
        };
        match compared {
            Comparison::Match { weak, .. } => {
                summary.ok += 1;
                summary.ok_weak += usize::from(weak);
                continue;
            }
            Comparison::Mismatch { weak, actual, .. } => {
                f.compared = Some(actual.to_string());
                f.weak = weak;
            }
            Comparison::NoUsableDigest => {
                f.kind = Kind::NoHash;
                f.detail = Some("the SBOM gives no digest this tool can compute for this file".into());
            }
            Comparison::NotComputed { alg } => {
                f.kind = Kind::NoHash;
                f.detail = Some(format!("the {alg} digest the SBOM gives was not computed"));
            }
        }
        findings.push(f);
    }
    Ok((findings, summary, warnings))
}
