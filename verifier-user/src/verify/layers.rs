//! A container's image layers, read from its overlay root mount: what the
//! image shipped (independently of its SBOM) and what the container wrote.
//!
//! containerd (and podman, CRI-O) mount a container's root as overlayfs:
//! `lowerdir=` lists the image's layers (topmost first), `upperdir=` is the
//! container's writable layer. So, for a path inside the container:
//! - present in a lower layer: the image shipped it, whatever its SBOM says
//!   (an unlisted one is an `sbom-gap`, not drift);
//! - present in the upper layer: written (or copied up) by the container.
//!
//! Layer directories are opened like container roots (beneath, no symlink
//! out), and the digest of a shipped file is computed on demand and kept.

use std::{
    collections::{HashMap, HashSet},
    io::Read as _,
    os::{fd::AsRawFd as _, unix::fs::FileTypeExt as _},
    path::{Path, PathBuf},
    sync::Mutex,
};

use super::verdict::ImageContent;
use crate::baseline::join::ImageFiles;
use verifier_sbom::fsroot::RootDir;
use verifier_sbom::hash::{Algs, BUFFER_SIZE, hash_reader};

/// The overlay layers of a container root.
#[derive(Debug)]
pub(crate) struct Layers {
    lowers: Vec<RootDir>,
    /// The lower directories' host paths, topmost first (what identifies
    /// the image's content).
    lower_paths: Vec<PathBuf>,
    upper: Option<PathBuf>,
    digests: Mutex<HashMap<String, Option<[u8; 32]>>>,
}

/// lowerdir/upperdir of the mount at `/` in a process's mountinfo, when it
/// is an overlay.
pub(crate) fn overlay_of(mountinfo: &str) -> Option<(Vec<PathBuf>, Option<PathBuf>)> {
    let line = mountinfo.lines().find(|l| l.split_whitespace().nth(4) == Some("/"))?;
    let (_, right) = line.split_once(" - ")?;
    let mut fields = right.split_whitespace();
    if fields.next()? != "overlay" {
        return None;
    }
    let opts = fields.nth(1)?;
    let mut lowers = Vec::new();
    let mut upper = None;
    for opt in split_options(opts) {
        if let Some(v) = opt.strip_prefix("lowerdir=") {
            lowers.extend(split_lowers(v).into_iter().map(PathBuf::from));
        } else if let Some(v) = opt.strip_prefix("upperdir=") {
            upper = Some(PathBuf::from(unescape(v)));
        }
    }
    (!lowers.is_empty()).then_some((lowers, upper))
}

/// Mount options are comma-separated; overlay escapes commas in paths as
/// `\,` (and mountinfo octal-escapes spaces as `\040`).
fn split_options(opts: &str) -> Vec<String> {
    split_unescaped(opts, ',').into_iter().collect()
}

fn split_lowers(v: &str) -> Vec<String> {
    split_unescaped(v, ':').iter().map(|s| unescape(s)).collect()
}

/// Splits at `sep` not preceded by a backslash; keeps escapes as they are.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if c == sep && !escaped {
            out.push(String::new());
            continue;
        }
        escaped = c == '\\' && !escaped;
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012`
/// newline, `\134` backslash) and overlay's `\,` / `\:`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal =
            (i + 3 < b.len() && b[i] == b'\\' && b[i + 1..i + 4].iter().all(|d| (b'0'..=b'7').contains(d)))
                .then(|| b[i + 1..i + 4].iter().fold(0u32, |n, d| n * 8 + u32::from(d - b'0')))
                .and_then(|n| u8::try_from(n).ok());
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else if b[i] == b'\\' && i + 1 < b.len() {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Layers {
    /// The layers of `pid`'s root mount (`/proc/<pid>/mountinfo`), if it is
    /// an overlay.
    pub(crate) fn of_process(proc_root: &Path, pid: u32) -> Option<Self> {
        let info = std::fs::read_to_string(proc_root.join(pid.to_string()).join("mountinfo")).ok()?;
        let (lowers, upper) = overlay_of(&info)?;
        Self::new(&lowers, upper)
    }

    /// Layers from directories (topmost lower first).
    pub(crate) fn new(lowers: &[PathBuf], upper: Option<PathBuf>) -> Option<Self> {
        let lower_paths = lowers.to_vec();
        let lowers: Vec<RootDir> = lowers.iter().filter_map(|p| RootDir::open(p).ok()).collect();
        (!lowers.is_empty()).then(|| Self { lowers, lower_paths, upper, digests: Mutex::new(HashMap::new()) })
    }

    /// The writable layer's directory.
    pub(crate) fn upper(&self) -> Option<&Path> {
        self.upper.as_deref()
    }

    #[cfg(test)]
    /// Whether `path` (canonical, inside the container) exists in the
    /// writable layer: the container wrote or changed it.
    pub(crate) fn in_writable_layer(&self, path: &str) -> Option<bool> {
        let upper = RootDir::open(self.upper.as_deref()?).ok()?;
        Some(upper.open_path(path.trim_start_matches('/').as_bytes()).is_ok())
    }

    fn shipped(&self, path: &str) -> Option<[u8; 32]> {
        let rel = path.trim_start_matches('/').as_bytes();
        for layer in &self.lowers {
            let Ok(meta) = layer.open_path(rel).and_then(|f| f.metadata()) else { continue };
            // A whiteout (0:0 character device) hides the file below it.
            if meta.file_type().is_char_device() || !meta.is_file() {
                return None;
            }
            let file = layer.open_read(rel).ok()?;
            let mut buf = vec![0u8; BUFFER_SIZE];
            return hash_reader(&file, Algs::SHA256, &mut buf).ok()?.sha256;
        }
        None
    }
}

impl ImageContent for Layers {
    fn sha256_of(&self, path: &str) -> Option<[u8; 32]> {
        if let Some(hit) = self.digests.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
            return *hit;
        }
        let found = self.shipped(path);
        self.digests.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_owned(), found);
        found
    }
}

/// The image's layers are its read-only content: package databases are
/// read from them (topmost layer that has the file; a whiteout hides it),
/// never from the writable layer.
impl ImageFiles for Layers {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let rel = path.trim_start_matches('/').as_bytes();
        for layer in &self.lowers {
            let Ok(meta) = layer.open_path(rel).and_then(|f| f.metadata()) else { continue };
            if !meta.is_file() {
                return None;
            }
            let mut out = Vec::new();
            layer.open_read(rel).ok()?.read_to_end(&mut out).ok()?;
            return Some(out);
        }
        None
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let rel = dir.trim_start_matches('/').as_bytes();
        let (mut seen, mut out) = (HashSet::new(), Vec::new());
        for layer in &self.lowers {
            for (name, whiteout) in list_dir(layer, rel) {
                if seen.insert(name.clone()) && !whiteout {
                    out.push(name);
                }
            }
        }
        out.sort();
        out
    }

    fn key(&self) -> String {
        let paths: Vec<String> = self.lower_paths.iter().map(|p| p.display().to_string()).collect();
        format!("layers:{}", paths.join(":"))
    }
}

/// The names in `rel` beneath `root` (opened without leaving it), each
/// with whether it is an overlay whiteout.
pub(crate) fn list_dir(root: &RootDir, rel: &[u8]) -> Vec<(String, bool)> {
    let Ok(fd) = root.open_dir(rel) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let whiteout = e.file_type().is_ok_and(|t| t.is_char_device());
            Some((e.file_name().into_string().ok()?, whiteout))
        })
        .collect()
}

#[cfg(test)]
#[path = "layers_tests.rs"]
mod tests;
