//! The guest's initramfs: an uncompressed cpio (`newc`) archive written
//! here, so no `cpio` tool is needed and nothing is left to decompress in
//! a slow emulated CPU.
//!
//! Contents: busybox-static (the guest's shell and tools), `/init` and
//! `/checks.sh`, the release `verifier` and `runc` with the shared
//! libraries `ldd` lists (at the same paths as on the host), and `/image`:
//! an OCI bundle of a busybox image with its SBOM from
//! `verifier sbom generate` (see `mod.rs`).

use std::{
    collections::BTreeMap,
    io::Write as _,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// What an archive entry is.
enum Node {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
}

/// Archive contents by path inside the guest (no leading `/`).
#[derive(Default)]
pub(crate) struct Initramfs {
    nodes: BTreeMap<String, Node>,
}

impl Initramfs {
    /// Adds every missing ancestor directory of `path`.
    fn parents(&mut self, path: &str) {
        for (i, _) in path.match_indices('/') {
            if i > 0 {
                self.nodes.entry(path[..i].to_string()).or_insert(Node::Dir);
            }
        }
    }

    /// Adds `data` at `path` with permission bits `mode`.
    pub(crate) fn bytes(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        let path = path.trim_start_matches('/').to_string();
        self.parents(&path);
        self.nodes.insert(path, Node::File { data, mode });
    }

    /// Adds a copy of the host file `src` (symlinks followed) at `path`.
    pub(crate) fn file(&mut self, path: &str, src: &Path) -> anyhow::Result<()> {
        let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        let mode = std::fs::metadata(src)?.permissions().mode() & 0o7777;
        self.bytes(path, data, mode);
        Ok(())
    }

    /// Adds a symlink at `path` pointing to `target`.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_start_matches('/').to_string();
        self.parents(&path);
        self.nodes.insert(path, Node::Symlink(target.to_string()));
    }

    /// Adds a character device node (the kernel opens `/dev/console` for
    /// init before anything is mounted).
    pub(crate) fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        let path = path.trim_start_matches('/').to_string();
        self.parents(&path);
        self.nodes.insert(path, Node::CharDevice { major, minor });
    }

    /// Adds the host directory `src` at `path`, keeping symlinks as links.
    pub(crate) fn tree(&mut self, path: &str, src: &Path) -> anyhow::Result<()> {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        self.parents(path);
        self.nodes.insert(path.to_string(), Node::Dir);
        for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let (dst, host) = (format!("{path}/{name}"), entry.path());
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                self.symlink(&dst, &std::fs::read_link(&host)?.to_string_lossy());
            } else if kind.is_dir() {
                self.tree(&dst, &host)?;
            } else {
                self.file(&dst, &host)?;
            }
        }
        Ok(())
    }

    /// Adds the host executable `bin` at `path` and every shared library
    /// `ldd` says it loads, at the library's host path.
    pub(crate) fn executable(&mut self, path: &str, bin: &Path) -> anyhow::Result<()> {
        self.file(path, bin)?;
        for lib in shared_libraries(bin)? {
            self.file(&lib.to_string_lossy(), &lib)?;
        }
        Ok(())
    }

    /// Writes the archive; returns its size in bytes.
    pub(crate) fn write(&self, out: &Path) -> anyhow::Result<u64> {
        let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut w = std::io::BufWriter::new(file);
        for (ino, (path, node)) in (1..).zip(&self.nodes) {
            let (mode, data, rdev): (u32, &[u8], _) = match node {
                Node::Dir => (0o040_755, &[], (0, 0)),
                Node::File { data, mode } => (0o100_000 | mode, data, (0, 0)),
                Node::Symlink(target) => (0o120_777, target.as_bytes(), (0, 0)),
                Node::CharDevice { major, minor } => (0o020_600, &[], (*major, *minor)),
            };
            entry(&mut w, ino, path, mode, data, rdev)?;
        }
        entry(&mut w, 0, "TRAILER!!!", 0, &[], (0, 0))?;
        w.flush()?;
        Ok(std::fs::metadata(out)?.size())
    }
}

/// One `newc` entry: header, name, data, each padded to 4 bytes.
fn entry(
    w: &mut impl std::io::Write,
    ino: u32,
    name: &str,
    mode: u32,
    data: &[u8],
    (rmajor, rminor): (u32, u32),
) -> anyhow::Result<()> {
    let size = u32::try_from(data.len()).context("a file over 4 GiB in the initramfs")?;
    let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
    let name_len = u32::try_from(name.len() + 1).context("name too long")?;
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
    // devminor, rdevmajor, rdevminor, namesize, check.
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{rmajor:08x}{rminor:08x}{name_len:08x}{:08x}",
        0, 0, 0, 0, 0, 0
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    w.write_all(&[0; 3][..pad(header.len() + name.len() + 1)])?;
    w.write_all(data)?;
    w.write_all(&[0; 3][..pad(data.len())])?;
    Ok(())
}

fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Libraries `ldd` lists for `bin` (absolute paths; none for a static one).
fn shared_libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output().context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not found") {
        bail!("{} needs libraries this machine lacks: {text}", bin.display());
    }
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split_once("=> ").map_or(l, |(_, r)| r);
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_end_with_the_trailer() {
        let mut fs = Initramfs::default();
        fs.bytes("bin/x", b"hello".to_vec(), 0o755);
        fs.symlink("bin/sh", "busybox");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("a.cpio");
        let size = fs.write(&out).expect("write");
        assert_eq!(size % 4, 0, "archive padded to 4 bytes");
        let bytes = std::fs::read(&out).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        // The parent directory comes first, then both entries, then the trailer.
        let bin = text.find("bin\0").expect("bin dir");
        let x = text.find("bin/x\0").expect("file");
        assert!(bin < x, "{text}");
        assert!(text.contains("hello"), "{text}");
        assert!(text.ends_with("TRAILER!!!\0\0\0\0"), "{text}");
        assert_eq!(text.matches("070701").count(), 4, "{text}");
    }
}
