//! The manifest model: what an image shipped, file by file.
//!
//! A [`Manifest`] answers one question fast: "for this absolute path in the
//! image, which digests did the SBOM promise, and which package owns it?".
//! It is held for every image the agent watches, so it is built for size:
//!
//! - every path lives in one shared `String` arena, addressed by a `u32` end
//!   offset; the lookup table ([`hashbrown::HashTable`]) stores only `u32`
//!   indices into it, not a second copy of the path;
//! - a file's digests are raw bytes packed into a single allocation
//!   (`[alg][len][bytes]...`), not hex strings and not one `Vec` per digest;
//! - packages are stored once and referenced by index.
//!
//! About 140 bytes per file with one SHA-256 and a 60-byte path: 200,000
//! files fit in under 30 MiB (see `benches/sbom_parse.rs`).
//!
//! Readers never fail on data they cannot *use* (an unknown algorithm, an
//! all-zero placeholder, a conflicting hash): they keep what they can and
//! say what they dropped in [`Manifest::warnings`]. They fail only when the
//! document itself is broken (see [`super::SbomError`]).
mod alg;
mod entry;
mod source;

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;

pub use alg::{Digest, DigestRef, HashAlg, Strength};
pub(crate) use entry::DigestBuf;
pub(crate) use entry::push_packed;
pub use entry::{Digests, FileEntry, PackageRef};
use entry::{FLAG_CONFLICT, FLAG_SYMLINK, NO_PACKAGE};
pub(crate) use source::describe_source;
pub use source::{Envelope, SbomFormat, SbomSource};

type PathHasher = hashbrown::DefaultHashBuilder;

/// Files an image shipped, by normalized absolute path (`/usr/bin/x`).
///
/// Built by the readers ([`super::load_path`], [`super::load_reader`]),
/// shared read-only afterwards (one per image digest).
#[derive(Clone)]
pub struct Manifest {
    sources: Vec<SbomSource>,
    /// All paths, back to back.
    path_bytes: String,
    /// End offset in `path_bytes` of path `i`; path `i` starts at
    /// `path_ends[i - 1]` (or 0).
    path_ends: Vec<u32>,
    entries: Vec<FileEntry>,
    index: HashTable<u32>,
    hasher: PathHasher,
    packages: Vec<PackageRef>,
    warnings: Vec<String>,
    /// Where the file digests come from when that is not the SBOM itself
    /// (a package-only SBOM joined with the image's package database).
    digests_from: Option<String>,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("sources", &self.sources)
            .field("files", &self.entries.len())
            .field("packages", &self.packages.len())
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// Why a file could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddError {
    /// The path arena would pass 4 GiB.
    TooLarge,
}

impl Manifest {
    /// An empty manifest for `source` (readers fill it).
    pub fn new(source: SbomSource) -> Manifest {
        Manifest {
            sources: vec![source],
            path_bytes: String::new(),
            path_ends: Vec::new(),
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: PathHasher::default(),
            packages: Vec::new(),
            warnings: Vec::new(),
            digests_from: None,
        }
    }

    fn path_at(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.path_ends[i - 1] as usize };
        &self.path_bytes[start..self.path_ends[i] as usize]
    }

    fn find(&self, path: &str) -> Option<usize> {
        let h = self.hasher.hash_one(path);
        self.index.find(h, |&i| self.path_at(i as usize) == path).map(|&i| i as usize)
    }

    /// The entry for a normalized absolute path (`/usr/bin/x`). Use
    /// [`super::normalize_path`] first on anything else.
    pub fn get(&self, path: &str) -> Option<&FileEntry> {
        self.find(path).map(|i| &self.entries[i])
    }

    /// The entry for `path`, or, when the SBOM does not list it, for its
    /// merged-/usr alias (`/usr/bin/ls` listed as `/bin/ls` by dpkg and
    /// other pre-merge databases, or the other way round), with the path
    /// the SBOM lists: the lookup for a path the kernel resolved (the
    /// agent), where `/bin` has already become `/usr/bin`.
    ///
    /// The alias is a name rule: on an image that is *not* merged, `/bin/x`
    /// and `/usr/bin/x` are different files, and a file found at one is
    /// compared with the digests of the other (a match still proves the
    /// bytes are ones the image shipped). `check`, which sees the whole
    /// rootfs, does not need the rule: it matches listed paths through the
    /// rootfs's own symlinks, which proves the merge and also covers other
    /// symlinked directories (Wolfi's `/usr/lib64 -> lib`).
    pub fn get_canonical(&self, path: &str) -> Option<(&str, &FileEntry)> {
        let i = self.find(path).or_else(|| self.find(&super::path::usr_merge_alias(path)?))?;
        Some((self.path_at(i), &self.entries[i]))
    }

    /// Every file, in the order first seen.
    pub fn files(&self) -> impl Iterator<Item = (&str, &FileEntry)> + Clone {
        (0..self.entries.len()).map(|i| (self.path_at(i), &self.entries[i]))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Files with at least one usable digest.
    pub fn len_with_digests(&self) -> usize {
        self.entries.iter().filter(|e| e.has_digests()).count()
    }

    /// What vouches for the file digests, as reasons name it: the SBOM, or
    /// what [`Self::set_digests_from`] said.
    pub fn digests_from(&self) -> &str {
        self.digests_from.as_deref().unwrap_or("the SBOM")
    }

    /// Says where the file digests come from, for a manifest whose digests
    /// are not the SBOM's own (`"the image's dpkg database"`).
    pub fn set_digests_from(&mut self, origin: impl Into<String>) {
        self.digests_from = Some(origin.into());
    }

    /// The SBOM this manifest was read from (the first one, after a merge).
    pub fn source(&self) -> &SbomSource {
        &self.sources[0]
    }

    /// Every SBOM merged into this manifest, the first one first.
    pub fn sources(&self) -> &[SbomSource] {
        &self.sources
    }

    pub(crate) fn source_mut(&mut self) -> &mut SbomSource {
        &mut self.sources[0]
    }

    /// Every package the SBOM listed (whether or not it owns files).
    pub fn packages(&self) -> &[PackageRef] {
        &self.packages
    }

    /// What could not be used, said plainly (dropped algorithms, placeholder
    /// digests, conflicts, a stripped root prefix, unverified signatures...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub(crate) fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(msg.into());
    }

    /// Paths whose SHA-256 is `sha`: where a binary found elsewhere
    /// ("relocated") was shipped. A linear scan, meant for the rare
    /// unknown-binary case, not the hot path.
    pub fn paths_with_sha256(&self, sha: &[u8; 32]) -> Vec<&str> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.matches(HashAlg::Sha256, sha))
            .map(|(i, _)| self.path_at(i))
            .collect()
    }

    pub(crate) fn add_package(&mut self, p: PackageRef) -> u32 {
        let i = self.packages.len() as u32;
        self.packages.push(p);
        i
    }

    pub(crate) fn package_mut(&mut self, i: u32) -> Option<&mut PackageRef> {
        self.packages.get_mut(i as usize)
    }

    /// Sets the owning package of the file at normalized `path`, unless it
    /// already has one.
    pub(crate) fn set_package_if_none(&mut self, path_index: usize, package: u32) {
        if let Some(e) = self.entries.get_mut(path_index)
            && e.package_raw() == NO_PACKAGE
        {
            e.set_package_raw(package);
        }
    }

    /// Adds (or merges into) the entry for an already normalized path.
    /// Returns the index of the entry and whether digests conflicted.
    pub(crate) fn add_normalized(
        &mut self,
        path: &str,
        digests: &DigestBuf,
        package: Option<u32>,
        symlink: bool,
    ) -> Result<(usize, bool), AddError> {
        self.add_packed(path, &digests.packed, package, symlink)
    }

    fn add_packed(
        &mut self,
        path: &str,
        packed: &[u8],
        package: Option<u32>,
        symlink: bool,
    ) -> Result<(usize, bool), AddError> {
        let h = self.hasher.hash_one(path);
        let (bytes, ends, hasher) = (&self.path_bytes, &self.path_ends, &self.hasher);
        let span = |i: usize| {
            let start = if i == 0 { 0 } else { ends[i - 1] as usize };
            &bytes[start..ends[i] as usize]
        };
        // One probe finds the path or the slot for it.
        let entry =
            self.index.entry(h, |&i| span(i as usize) == path, |&j| hasher.hash_one(span(j as usize)));
        let slot = match entry {
            hashbrown::hash_table::Entry::Occupied(o) => {
                let e = &mut self.entries[*o.get() as usize];
                let conflict = e.absorb(packed);
                if symlink {
                    e.add_flags(FLAG_SYMLINK);
                }
                if e.package_raw() == NO_PACKAGE {
                    e.set_package_raw(package.unwrap_or(NO_PACKAGE));
                }
                return Ok((*o.get() as usize, conflict));
            }
            hashbrown::hash_table::Entry::Vacant(v) => v,
        };
        let end = self.path_bytes.len() + path.len();
        let (Ok(end), Ok(i)) = (u32::try_from(end), u32::try_from(self.entries.len())) else {
            return Err(AddError::TooLarge);
        };
        slot.insert(i);
        grow(&mut self.path_bytes, path.len(), 1);
        self.path_bytes.push_str(path);
        grow(&mut self.path_ends, 1, size_of::<u32>());
        self.path_ends.push(end);
        grow(&mut self.entries, 1, size_of::<FileEntry>());
        self.entries.push(FileEntry::new(
            packed,
            package.unwrap_or(NO_PACKAGE),
            if symlink { FLAG_SYMLINK } else { 0 },
        ));
        Ok((i as usize, false))
    }

    /// Rewrites every path with `f` (used to strip a root prefix), merging
    /// paths that become equal. Returns how many conflicted.
    pub(crate) fn rewrite_paths(&mut self, mut f: impl FnMut(&str) -> Option<String>) -> usize {
        let old = std::mem::replace(self, Manifest::new(self.sources[0].clone()));
        self.sources = old.sources.clone();
        self.packages = old.packages.clone();
        self.warnings = old.warnings.clone();
        let mut conflicts = 0;
        for (i, e) in old.entries.iter().enumerate() {
            let p = old.path_at(i);
            let new = f(p);
            let path = new.as_deref().unwrap_or(p);
            let package = (e.package_raw() != NO_PACKAGE).then_some(e.package_raw());
            // Cannot pass 4 GiB: the paths only got shorter or stayed.
            if let Ok((_, c)) = self.add_packed(path, &e.packed(), package, e.is_symlink()) {
                conflicts += usize::from(c);
            }
            if let Some(idx) = self.find(path)
                && e.has_conflict()
            {
                self.entries[idx].add_flags(FLAG_CONFLICT);
            }
        }
        conflicts
    }

    /// Adds another SBOM of the same image: its files, packages, warnings and
    /// source. A path in both keeps the digests of both; where they differ
    /// it is marked [`FileEntry::has_conflict`] and a warning says so.
    pub fn merge(&mut self, other: Manifest) {
        let base = self.packages.len() as u32;
        let other_name = describe_source(other.source());
        let mut conflicts = Vec::new();
        let mut dropped = 0usize;
        for (i, e) in other.entries.iter().enumerate() {
            let path = other.path_at(i);
            let package = (e.package_raw() != NO_PACKAGE).then(|| e.package_raw() + base);
            match self.add_packed(path, &e.packed(), package, e.is_symlink()) {
                Ok((_, true)) => conflicts.push(path.to_owned()),
                Ok(_) => {}
                Err(AddError::TooLarge) => dropped += 1,
            }
        }
        self.packages.extend(other.packages);
        for w in other.warnings {
            self.warnings.push(format!("{other_name}: {w}"));
        }
        if !conflicts.is_empty() {
            self.warnings.push(format!(
                "{} path(s) have different digests in {} and {}: both are kept, either matches ({}{})",
                conflicts.len(),
                describe_source(self.source()),
                other_name,
                conflicts.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                if conflicts.len() > 5 { ", ..." } else { "" },
            ));
        }
        if dropped > 0 {
            self.warnings.push(format!(
                "{dropped} path(s) from {other_name} were dropped: the manifest's path storage is full (4 GiB)"
            ));
        }
        self.sources.extend(other.sources);
    }

    /// For verification only: files with a SHA-256 keep just their SHA-256
    /// digest(s), the only ones compared for them (see
    /// `verify::verdict::judge`); weak digests stay where they are all
    /// there is. Most entries then fit inline.
    pub fn keep_sha256_where_present(&mut self) {
        for e in &mut self.entries {
            if e.sha256().is_some() && e.digests().any(|d| d.alg != HashAlg::Sha256) {
                let mut kept = Vec::new();
                for d in e.digests().filter(|d| d.alg == HashAlg::Sha256) {
                    push_packed(&mut kept, d.alg, d.value);
                }
                *e = FileEntry::new(&kept, e.package_raw(), e.flags());
            }
        }
    }

    /// Bytes of heap this manifest holds (approximate: allocator overhead
    /// not counted). Used by the benchmark and for metrics.
    pub fn heap_bytes(&self) -> usize {
        let entries: usize = self.entries.iter().map(FileEntry::heap_len).sum();
        let packages: usize = self
            .packages
            .iter()
            .map(|p| {
                p.name.capacity()
                    + p.version.as_ref().map_or(0, String::capacity)
                    + p.purl.as_ref().map_or(0, String::capacity)
            })
            .sum();
        self.path_bytes.capacity()
            + self.path_ends.capacity() * 4
            + self.entries.capacity() * size_of::<FileEntry>()
            + entries
            + self.index.allocation_size()
            + self.packages.capacity() * size_of::<PackageRef>()
            + packages
            + self.warnings.iter().map(String::capacity).sum::<usize>()
    }

    /// Drops spare capacity once loading is done.
    pub fn shrink_to_fit(&mut self) {
        self.path_bytes.shrink_to_fit();
        self.path_ends.shrink_to_fit();
        self.entries.shrink_to_fit();
        self.packages.shrink_to_fit();
        let (bytes, ends, hasher) = (&self.path_bytes, &self.path_ends, &self.hasher);
        self.index.shrink_to_fit(|&j| {
            let j = j as usize;
            let start = if j == 0 { 0 } else { ends[j - 1] as usize };
            hasher.hash_one(&bytes[start..ends[j] as usize])
        });
    }
}

/// Makes room for `more` items. Past a few MiB an arena grows by a quarter
/// rather than doubling: a doubled 10 MiB path arena leaves up to 10 MiB
/// unused while loading (the allocation is then a mapping of its own that
/// grows in place). Below that, doubling: each step of a smaller one leaves
/// a hole in the heap.
fn grow<T: Growable>(v: &mut T, more: usize, item: usize) {
    let (len, cap) = (v.len(), v.capacity());
    if cap - len < more {
        let step = if len * item >= 4 << 20 { len / 4 } else { len };
        v.reserve_exact(more.max(step).max(1024));
    }
}

/// What [`grow`] needs of a `Vec` or a `String`.
trait Growable {
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    fn reserve_exact(&mut self, n: usize);
}

impl<T> Growable for Vec<T> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn reserve_exact(&mut self, n: usize) {
        Vec::reserve_exact(self, n);
    }
}

impl Growable for String {
    fn len(&self) -> usize {
        String::len(self)
    }
    fn capacity(&self) -> usize {
        String::capacity(self)
    }
    fn reserve_exact(&mut self, n: usize) {
        String::reserve_exact(self, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(ds: &[(HashAlg, &[u8])]) -> DigestBuf {
        let mut b = DigestBuf::default();
        for (a, v) in ds {
            b.push(*a, v);
        }
        b
    }

    #[test]
    fn parse_algorithm_spellings() {
        for s in ["SHA256", "sha256", "SHA-256", "sha_256", "Sha-256"] {
            assert_eq!(HashAlg::parse(s), Some(HashAlg::Sha256), "{s}");
        }
        assert_eq!(HashAlg::parse("SHA3-256"), Some(HashAlg::Sha3_256));
        assert_eq!(HashAlg::parse("BLAKE2b-384"), Some(HashAlg::Blake2b384));
        assert_eq!(HashAlg::parse("md5"), Some(HashAlg::Md5));
        assert_eq!(HashAlg::parse("MD2"), None);
        assert_eq!(HashAlg::parse("averyveryverylongalgorithmname"), None);
        assert_eq!(HashAlg::Sha1.strength(), Strength::Weak);
        assert_eq!(HashAlg::Sha512.strength(), Strength::Strong);
        assert_eq!(HashAlg::Sha3_256.to_string(), "sha3-256");
        for a in HashAlg::ALL {
            assert_eq!(HashAlg::from_u8(a as u8), Some(a));
            assert_eq!(HashAlg::parse(a.name()), Some(a));
        }
    }

    #[test]
    fn add_get_and_merge_duplicates() {
        let mut m = Manifest::new(SbomSource::new(SbomFormat::Spdx2Json));
        let sha = [7u8; 32];
        let sha1 = [1u8; 20];
        let pkg = m.add_package(PackageRef { name: "busybox".into(), ..Default::default() });
        m.add_normalized("/bin/busybox", &buf(&[(HashAlg::Sha256, &sha)]), Some(pkg), false).expect("fits");
        // The same path again with an extra digest: merged, no conflict.
        let (i, conflict) = m
            .add_normalized(
                "/bin/busybox",
                &buf(&[(HashAlg::Sha1, &sha1), (HashAlg::Sha256, &sha)]),
                None,
                false,
            )
            .expect("fits");
        assert_eq!((i, conflict), (0, false));
        m.add_normalized("/bin/sh", &buf(&[(HashAlg::Sha256, &sha)]), None, true).expect("fits");
        assert_eq!(m.len(), 2);
        let e = m.get("/bin/busybox").expect("present");
        assert_eq!(e.sha256(), Some(&sha));
        assert_eq!(e.digest(HashAlg::Sha1), Some(&sha1[..]));
        assert_eq!(e.digests().count(), 2);
        assert_eq!(e.package(&m).map(|p| p.name.as_str()), Some("busybox"));
        assert!(m.get("/bin/sh").expect("present").is_symlink());
        assert!(m.get("/bin/nope").is_none());
        assert_eq!(m.paths_with_sha256(&sha), vec!["/bin/busybox", "/bin/sh"]);
        assert_eq!(m.files().map(|(p, _)| p).collect::<Vec<_>>(), ["/bin/busybox", "/bin/sh"]);
    }

    #[test]
    fn canonical_lookup_tries_the_usr_merge_alias_when_not_listed() {
        let mut m = Manifest::new(SbomSource::new(SbomFormat::DpkgMd5sums));
        m.add_normalized("/bin/ls", &buf(&[(HashAlg::Md5, &[1; 16])]), None, false).expect("fits");
        m.add_normalized("/usr/lib/x/libc.so.6", &buf(&[(HashAlg::Md5, &[2; 16])]), None, false)
            .expect("fits");
        m.add_normalized("/usr/bin/both", &buf(&[(HashAlg::Md5, &[3; 16])]), None, false).expect("fits");
        m.add_normalized("/bin/both", &buf(&[(HashAlg::Md5, &[4; 16])]), None, false).expect("fits");
        let listed = |p| m.get_canonical(p).map(|(l, e)| (l, e.digest(HashAlg::Md5).map(|d| d[0])));
        assert_eq!(listed("/usr/bin/ls"), Some(("/bin/ls", Some(1))));
        assert_eq!(listed("/bin/ls"), Some(("/bin/ls", Some(1))));
        assert_eq!(listed("/lib/x/libc.so.6"), Some(("/usr/lib/x/libc.so.6", Some(2))));
        assert_eq!(listed("/usr/bin/both"), Some(("/usr/bin/both", Some(3))), "a listed path wins");
        assert_eq!(listed("/bin/both"), Some(("/bin/both", Some(4))));
        assert_eq!(listed("/usr/sbin/ls"), None);
        assert_eq!(listed("/usr/local/bin/ls"), None);
    }

    #[test]
    fn conflicting_digests_are_kept_and_either_matches() {
        let mut a = Manifest::new(SbomSource::new(SbomFormat::Spdx2Json));
        a.add_normalized("/bin/x", &buf(&[(HashAlg::Sha256, &[1; 32])]), None, false).expect("fits");
        let mut b = Manifest::new(SbomSource::new(SbomFormat::CycloneDxJson));
        let p = b.add_package(PackageRef { name: "x".into(), ..Default::default() });
        b.add_normalized("/bin/x", &buf(&[(HashAlg::Sha256, &[2; 32])]), Some(p), false).expect("fits");
        b.add_normalized("/bin/y", &buf(&[(HashAlg::Md5, &[3; 16])]), Some(p), false).expect("fits");
        b.warn("something dropped");
        a.merge(b);
        let e = a.get("/bin/x").expect("present");
        assert!(e.has_conflict());
        assert!(e.matches(HashAlg::Sha256, &[1; 32]));
        assert!(e.matches(HashAlg::Sha256, &[2; 32]));
        assert_eq!(e.sha256(), Some(&[1; 32]));
        assert_eq!(e.package(&a).map(|p| p.name.as_str()), Some("x"));
        assert_eq!(a.len(), 2);
        assert_eq!(a.sources().len(), 2);
        assert!(
            a.warnings().iter().any(|w| w.contains("different digests") && w.contains("/bin/x")),
            "{:?}",
            a.warnings()
        );
        assert!(a.warnings().iter().any(|w| w.starts_with("CycloneDX JSON: something dropped")));
        assert_eq!(a.get("/bin/y").and_then(|e| e.best_digest()).map(|d| d.alg), Some(HashAlg::Md5));
    }

    #[test]
    fn rewrite_paths_merges_collisions() {
        let mut m = Manifest::new(SbomSource::new(SbomFormat::Spdx2Json));
        m.add_normalized("/root/usr/bin/a", &buf(&[(HashAlg::Sha256, &[1; 32])]), None, false).expect("fits");
        m.add_normalized("/usr/bin/a", &buf(&[(HashAlg::Sha256, &[2; 32])]), None, false).expect("fits");
        let conflicts = m.rewrite_paths(|p| p.strip_prefix("/root").map(str::to_owned));
        assert_eq!(conflicts, 1);
        assert_eq!(m.len(), 1);
        assert!(m.get("/usr/bin/a").expect("present").has_conflict());
    }
}
