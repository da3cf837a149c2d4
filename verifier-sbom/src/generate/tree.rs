//! The in-memory file tree `sbom generate` builds: path -> node, for a
//! rootfs walk and for OCI layers applied one over another.
//!
//! Why in memory and not on disk: layers are streamed, never extracted, so
//! whiteouts and overwrites are applied to this map instead of a directory.
//! Keys are normalised absolute paths (`/usr/bin/env`), valid UTF-8 (SBOMs
//! can only carry UTF-8); a `BTreeMap` keeps them sorted, which makes the
//! output deterministic and lets a subtree be removed as one range.
//!
//! Symlinks are resolved here with chroot semantics (an absolute target or
//! a `..` above `/` stays inside the tree), so nothing ever leaves the
//! image or rootfs.

use std::collections::BTreeMap;

use crate::hash::JobId;

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    /// A regular file; its digests are the hash job's result.
    File {
        job: JobId,
        mode: u32,
        layer: Option<usize>,
    },
    Symlink {
        target: String,
        layer: Option<usize>,
    },
    /// Device, FIFO, socket: listed nowhere.
    Other,
}

/// Longest chain of symlinks followed (as Linux's `MAXSYMLINKS`).
const MAX_HOPS: usize = 40;

#[derive(Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds or replaces `path`. Anything but a directory replacing a
    /// directory drops what was below it (as a layer replacing a directory
    /// by a file does).
    pub fn insert(&mut self, path: String, node: Node) {
        if node != Node::Dir {
            self.clear_below(&path);
        } else if self.nodes.get(&path) == Some(&Node::Dir) {
            return;
        }
        self.nodes.insert(path, node);
    }

    /// Removes `path` and everything below it (a `.wh.<name>` whiteout).
    pub fn remove(&mut self, path: &str) {
        self.nodes.remove(path);
        self.clear_below(path);
    }

    /// Removes everything below `dir`, keeping `dir` (an opaque whiteout).
    pub fn clear_below(&mut self, dir: &str) {
        let prefix = if dir == "/" { "/".to_owned() } else { format!("{dir}/") };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            self.nodes.remove(&key);
        }
    }

    /// Follows symlinks in every component of `path`, never leaving the
    /// tree. Returns the final path and its node, or `None` when the path
    /// dangles, loops or goes through a non-directory.
    pub fn resolve(&self, path: &str) -> Option<(String, &Node)> {
        let mut todo: Vec<String> = components(path).rev().map(str::to_owned).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                cur.pop();
                continue;
            }
            cur.push(name);
            let here = join(&cur);
            match self.nodes.get(&here) {
                Some(Node::Symlink { target, .. }) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return None;
                    }
                    cur.pop();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    todo.extend(components(target).rev().map(str::to_owned));
                }
                Some(Node::File { .. } | Node::Other) if !todo.is_empty() => return None,
                _ => {}
            }
        }
        let end = join(&cur);
        let node = self.nodes.get(&end)?;
        Some((end, node))
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

fn join(parts: &[String]) -> String {
    if parts.is_empty() {
        return "/".to_owned();
    }
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(p);
    }
    s
}

/// Why an archive path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPath {
    NotUtf8,
    /// Has a `..` component (would climb out of the image).
    Escapes,
}

/// Normalises an archive member name (`./usr/bin/x`, `usr/bin/x/`) to the
/// tree's absolute form (`/usr/bin/x`). The root itself gives `/`.
pub fn normalize(raw: &[u8]) -> Result<String, BadPath> {
    let text = std::str::from_utf8(raw).map_err(|_| BadPath::NotUtf8)?;
    let mut out = String::with_capacity(text.len() + 1);
    for c in components(text) {
        if c == ".." {
            return Err(BadPath::Escapes);
        }
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(job: JobId) -> Node {
        Node::File { job, mode: 0o755, layer: None }
    }

    fn link(target: &str) -> Node {
        Node::Symlink { target: target.into(), layer: None }
    }

    #[test]
    fn normalizes_archive_names() {
        assert_eq!(normalize(b"./usr/bin/x").as_deref(), Ok("/usr/bin/x"));
        assert_eq!(normalize(b"usr//bin/x/").as_deref(), Ok("/usr/bin/x"));
        assert_eq!(normalize(b"./").as_deref(), Ok("/"));
        assert_eq!(normalize(b"a/../../etc"), Err(BadPath::Escapes));
        assert_eq!(normalize(b"bad\xff"), Err(BadPath::NotUtf8));
    }

    #[test]
    fn resolves_inside_the_tree_only() {
        let mut t = Tree::default();
        t.insert("/usr".into(), Node::Dir);
        t.insert("/usr/bin".into(), Node::Dir);
        t.insert("/usr/bin/busybox".into(), file(1));
        t.insert("/bin".into(), link("usr/bin"));
        t.insert("/usr/bin/sh".into(), link("busybox"));
        t.insert("/escape".into(), link("../../../../usr/bin/sh"));
        t.insert("/loop".into(), link("/loop"));
        t.insert("/dangling".into(), link("/nowhere"));
        assert_eq!(t.resolve("/bin/sh").map(|(p, _)| p).as_deref(), Some("/usr/bin/busybox"));
        assert_eq!(t.resolve("/escape").map(|(p, _)| p).as_deref(), Some("/usr/bin/busybox"));
        assert!(t.resolve("/loop").is_none());
        assert!(t.resolve("/dangling").is_none());
        assert!(t.resolve("/usr/bin/busybox/x").is_none());
    }

    #[test]
    fn whiteouts_remove_subtrees() {
        let mut t = Tree::default();
        t.insert("/a".into(), Node::Dir);
        t.insert("/a/x".into(), file(1));
        t.insert("/ab".into(), file(2));
        t.clear_below("/a");
        assert!(t.get("/a").is_some() && t.get("/a/x").is_none() && t.get("/ab").is_some());
        t.insert("/a/y".into(), file(3));
        t.insert("/a".into(), file(4)); // a file replaces the directory
        assert!(t.get("/a/y").is_none());
        t.remove("/a");
        assert!(t.get("/a").is_none());
        assert_eq!(t.len(), 1);
    }
}
