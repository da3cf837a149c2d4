//! The image's own content for runc bundles unpacked by umoci: umoci writes
//! `sha256_<manifest>.mtree` next to `rootfs/`, an mtree(5) manifest of
//! every file it unpacked from the image's layers, with SHA-256 digests.
//! That tells `sbom-gap` (shipped in the image, missing from its SBOM) from
//! real drift, as overlay lower layers do for containerd.
//!
//! The format is the BSD hierarchical one go-mtree writes: `/set` defaults,
//! a `type=dir` entry descends into that directory, `..` goes back up, a
//! name with a `/` is relative to the root; names are vis(3)-encoded
//! (`\040` for a space).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::verdict::ImageContent;

/// Path (absolute, inside the image) -> SHA-256 of every regular file.
#[derive(Debug, Default)]
pub(crate) struct Mtree {
    files: HashMap<String, [u8; 32]>,
}

impl ImageContent for Mtree {
    fn sha256_of(&self, path: &str) -> Option<[u8; 32]> {
        self.files.get(path).copied()
    }
}

impl Mtree {
    /// Parses mtree text. Lines it cannot use are skipped (the manifest is
    /// evidence for `sbom-gap`, never a reason to pass a file).
    pub(crate) fn parse(text: &str) -> Self {
        let mut files = HashMap::new();
        let mut dir: Vec<String> = Vec::new();
        let mut default_type = "file".to_owned();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_ascii_whitespace();
            let Some(first) = words.next() else { continue };
            let keywords: HashMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
            match first {
                "/set" => {
                    if let Some(t) = keywords.get("type") {
                        (*t).clone_into(&mut default_type);
                    }
                    continue;
                }
                "/unset" => continue,
                ".." => {
                    dir.pop();
                    continue;
                }
                _ => {}
            }
            let name = unvis(first);
            let kind = keywords.get("type").copied().unwrap_or(default_type.as_str());
            let full = if name.contains('/') {
                format!("/{}", name.trim_start_matches("./").trim_start_matches('/'))
            } else if dir.is_empty() {
                format!("/{name}")
            } else {
                format!("/{}/{name}", dir.join("/"))
            };
            if kind == "dir" {
                if name != "." && !name.contains('/') {
                    dir.push(name);
                }
                continue;
            }
            if kind == "file"
                && let Some(hex) = keywords.get("sha256digest").or_else(|| keywords.get("sha256"))
                && let Some(d) = decode_hex32(hex)
            {
                files.insert(full, d);
            }
        }
        Self { files }
    }

    /// The umoci manifest of a bundle, if it has one.
    pub(crate) fn find(bundle: &Path) -> Option<PathBuf> {
        std::fs::read_dir(bundle).ok()?.flatten().map(|e| e.path()).find(|p| {
            p.extension().is_some_and(|e| e == "mtree")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("sha256_"))
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

/// Undoes vis(3) octal escapes (`\040`) and `\\`.
fn unvis(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
#      keywords: size,type,uid,gid,mode,link,nlink,tar_time,sha256digest,xattr

# .
/set type=file nlink=1 mode=0664 uid=0 gid=0
. size=4096 type=dir mode=0755 nlink=3 tar_time=1795421132.000000000

# bin
bin size=4096 type=dir mode=0755 nlink=2
    busybox size=1982256 mode=0755 sha256digest=3d9f2889d6782537624a4e1a10e68a2ddd53e0ee8bac02676f27308f42ec6bf6
    sh size=7 type=link mode=0777 link=busybox
    my\\040tool size=3 mode=0755 sha256digest=0101010101010101010101010101010101010101010101010101010101010101
# bin/sub
    sub type=dir mode=0755
        deep size=1 sha256digest=0202020202020202020202020202020202020202020202020202020202020202
    ..
..
etc type=dir
    os-release size=10 sha256digest=0303030303030303030303030303030303030303030303030303030303030303
..
";

    #[test]
    fn hierarchical_manifests_give_absolute_paths() {
        let m = Mtree::parse(SAMPLE);
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(m.sha256_of("/bin/busybox").map(|d| d[0]), Some(0x3d));
        assert_eq!(m.sha256_of("/bin/my tool"), Some([1; 32]), "vis-decoded");
        assert_eq!(m.sha256_of("/bin/sub/deep"), Some([2; 32]));
        assert_eq!(m.sha256_of("/etc/os-release"), Some([3; 32]), "back up after ..");
        assert_eq!(m.sha256_of("/bin/sh"), None, "links carry no digest");
    }

    #[test]
    fn junk_is_skipped_not_trusted() {
        let m = Mtree::parse(
            "garbage line\nx sha256digest=zz\n.. \n..\ny sha256digest=0404040404040404040404040404040404040404040404040404040404040404\n",
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m.sha256_of("/y"), Some([4; 32]));
    }
}
