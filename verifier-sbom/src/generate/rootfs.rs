//! Walks a root filesystem directory into a [`Tree`], queueing every
//! regular file on the hash pool as it goes (walk and hashing overlap).
//!
//! Why not a walker crate: the rules here are few and strict. Nothing is
//! followed (`symlink_metadata` / `DirEntry::file_type` only), so a link to
//! `/` or `../..` can never take the walk out of the rootfs; hard links are
//! hashed once (keyed by device and inode); names that are not UTF-8 are
//! skipped and reported, not mangled.

use std::{
    collections::HashMap,
    fs,
    io::Read as _,
    os::unix::{
        ffi::OsStrExt as _,
        fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    GenerateError, Warnings, packages,
    tree::{Node, Tree},
};
use crate::hash::{Algs, HashPool, JobId, Root, Source};

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
    let root_dev =
        fs::metadata(root).map_err(|error| GenerateError::Input { path: root.to_owned(), error })?.dev();
    let root_dir =
        Arc::new(Root::open(root).map_err(|error| GenerateError::Input { path: root.to_owned(), error })?);
    let mut tree = Tree::default();
    let mut seen_inodes: HashMap<(u64, u64), JobId> = HashMap::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_owned(), String::new())];
    let mut first = true;
    while let Some((dir, tree_dir)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(error) if first => return Err(GenerateError::Input { path: dir, error }),
            Err(err) => {
                warnings.push(format!("directory {} skipped: {err}", dir.display()));
                continue;
            }
        };
        first = false;
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    warnings.push(format!("listing {} failed part-way: {err}", dir.display()));
                    break;
                }
            };
            let fs_path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                warnings.non_utf8(&escape_bytes(fs_path.as_os_str().as_bytes()));
                continue;
            };
            let path = format!("{tree_dir}/{name}");
            let meta = match fs::symlink_metadata(&fs_path) {
                Ok(m) => m,
                Err(err) => {
                    warnings.push(format!("{} skipped: {err}", fs_path.display()));
                    continue;
                }
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                tree.insert(path.clone(), Node::Dir);
                if meta.dev() != root_dev && is_pseudo_fs(&fs_path) {
                    warnings.push(format!(
                        "{} skipped: a kernel pseudo-filesystem is mounted there",
                        fs_path.display()
                    ));
                    continue;
                }
                stack.push((fs_path, path));
            } else if ft.is_symlink() {
                match fs::read_link(&fs_path).map(|t| t.into_os_string().into_string()) {
                    Ok(Ok(target)) => tree.insert(path, Node::Symlink { target, layer: None }),
                    Ok(Err(_)) => warnings.non_utf8(&format!("{} (its link target)", fs_path.display())),
                    Err(err) => warnings.push(format!("{} skipped: {err}", fs_path.display())),
                }
            } else if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                let job = match seen_inodes.get(&key) {
                    Some(&job) if meta.nlink() > 1 => job,
                    _ => {
                        progress.inc_length(meta.len());
                        let rel = fs_path.strip_prefix(root).unwrap_or(&fs_path).to_owned();
                        let job = pool.submit(Source::InRoot(Arc::clone(&root_dir), rel), algs);
                        if meta.nlink() > 1 {
                            seen_inodes.insert(key, job);
                        }
                        job
                    }
                };
                tree.insert(path, Node::File { job, mode: meta.mode() & 0o7777, layer: None });
            } else {
                tree.insert(path, Node::Other);
            }
        }
    }
    let captures = read_captures(root, &tree, warnings);
    Ok((tree, captures))
}

/// Reads the package databases and os-release found in the tree.
fn read_captures(root: &Path, tree: &Tree, warnings: &mut Warnings) -> HashMap<JobId, Vec<u8>> {
    let mut out = HashMap::new();
    for (path, node) in tree.iter() {
        let Node::File { job, .. } = node else {
            continue;
        };
        if !packages::is_captured(path) {
            continue;
        }
        let fs_path = root.join(path.trim_start_matches('/'));
        let read = fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&fs_path)
            .and_then(|f| {
                let mut buf = Vec::new();
                f.take(MAX_CAPTURE).read_to_end(&mut buf)?;
                Ok(buf)
            });
        match read {
            Ok(bytes) => {
                out.insert(*job, bytes);
            }
            Err(err) => warnings.push(format!("package database {} not read: {err}", fs_path.display())),
        }
    }
    out
}

/// Kernel pseudo-filesystems (proc, sysfs, cgroup, debugfs, tracefs,
/// securityfs, bpf, devpts) mounted inside a rootfs, as in
/// `/proc/<pid>/root` of a running container: their files are not image
/// content, and some (`/proc/kcore`) are huge or block. Only asked for
/// directories on another device than their parent, so it costs nothing
/// on an ordinary tree.
pub fn is_pseudo_fs(dir: &Path) -> bool {
    use nix::sys::statfs as sfs;
    const PSEUDO: [sfs::FsType; 9] = [
        sfs::PROC_SUPER_MAGIC,
        sfs::SYSFS_MAGIC,
        sfs::CGROUP_SUPER_MAGIC,
        sfs::CGROUP2_SUPER_MAGIC,
        sfs::DEBUGFS_MAGIC,
        sfs::TRACEFS_MAGIC,
        sfs::SECURITYFS_MAGIC,
        sfs::BPF_FS_MAGIC,
        sfs::DEVPTS_SUPER_MAGIC,
    ];
    sfs::statfs(dir).is_ok_and(|st| PSEUDO.contains(&st.filesystem_type()))
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
