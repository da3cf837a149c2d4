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

use std::fmt;
use std::hash::BuildHasher;
use std::path::PathBuf;

use hashbrown::HashTable;

/// A hash algorithm an SBOM can state for a file.
///
/// Only algorithms whose digests we can at least compare are kept; others
/// (MD2, MD4, MD6, ADLER32, ...) are dropped with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(u8)]
pub enum HashAlg {
    Sha256 = 1,
    Sha512 = 2,
    Sha384 = 3,
    Sha224 = 4,
    Sha1 = 5,
    Md5 = 6,
    Sha3_256 = 7,
    Sha3_384 = 8,
    Sha3_512 = 9,
    Blake2b256 = 10,
    Blake2b384 = 11,
    Blake2b512 = 12,
    Blake3 = 13,
}

/// Whether a digest still proves content today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strength {
    /// Collisions are practical (MD5, SHA-1): fine to spot accidents, not
    /// proof against an attacker.
    Weak,
    /// No practical collisions known.
    Strong,
}

impl HashAlg {
    const ALL: [HashAlg; 13] = [
        HashAlg::Sha256,
        HashAlg::Sha512,
        HashAlg::Sha384,
        HashAlg::Sha224,
        HashAlg::Sha1,
        HashAlg::Md5,
        HashAlg::Sha3_256,
        HashAlg::Sha3_384,
        HashAlg::Sha3_512,
        HashAlg::Blake2b256,
        HashAlg::Blake2b384,
        HashAlg::Blake2b512,
        HashAlg::Blake3,
    ];

    /// Parses an algorithm name the way SBOM tools spell it: `SHA256`,
    /// `SHA-256`, `sha256`, `sha_256`, `SHA3-256`, `BLAKE2b-256`, `blake3`.
    pub fn parse(name: &str) -> Option<HashAlg> {
        let mut buf = [0u8; 16];
        let mut n = 0;
        for b in name.bytes() {
            if b == b'-' || b == b'_' || b == b' ' {
                continue;
            }
            if n == buf.len() {
                return None;
            }
            buf[n] = b.to_ascii_lowercase();
            n += 1;
        }
        Some(match &buf[..n] {
            b"sha256" => HashAlg::Sha256,
            b"sha512" => HashAlg::Sha512,
            b"sha384" => HashAlg::Sha384,
            b"sha224" => HashAlg::Sha224,
            b"sha1" => HashAlg::Sha1,
            b"md5" => HashAlg::Md5,
            b"sha3256" => HashAlg::Sha3_256,
            b"sha3384" => HashAlg::Sha3_384,
            b"sha3512" => HashAlg::Sha3_512,
            b"blake2b256" => HashAlg::Blake2b256,
            b"blake2b384" => HashAlg::Blake2b384,
            b"blake2b512" => HashAlg::Blake2b512,
            b"blake3" => HashAlg::Blake3,
            _ => return None,
        })
    }

    /// The name used in output: lowercase, no dash (`sha256`, `sha3-256`
    /// keeps its dash because `sha3256` reads badly).
    pub fn name(&self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha512 => "sha512",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha224 => "sha224",
            HashAlg::Sha1 => "sha1",
            HashAlg::Md5 => "md5",
            HashAlg::Sha3_256 => "sha3-256",
            HashAlg::Sha3_384 => "sha3-384",
            HashAlg::Sha3_512 => "sha3-512",
            HashAlg::Blake2b256 => "blake2b-256",
            HashAlg::Blake2b384 => "blake2b-384",
            HashAlg::Blake2b512 => "blake2b-512",
            HashAlg::Blake3 => "blake3",
        }
    }

    /// Length of a digest in bytes.
    pub fn digest_len(&self) -> usize {
        match self {
            HashAlg::Sha256 | HashAlg::Sha3_256 | HashAlg::Blake2b256 | HashAlg::Blake3 => 32,
            HashAlg::Sha512 | HashAlg::Sha3_512 | HashAlg::Blake2b512 => 64,
            HashAlg::Sha384 | HashAlg::Sha3_384 | HashAlg::Blake2b384 => 48,
            HashAlg::Sha224 => 28,
            HashAlg::Sha1 => 20,
            HashAlg::Md5 => 16,
        }
    }

    pub fn strength(&self) -> Strength {
        match self {
            HashAlg::Sha1 | HashAlg::Md5 => Strength::Weak,
            _ => Strength::Strong,
        }
    }

    fn from_u8(v: u8) -> Option<HashAlg> {
        HashAlg::ALL.into_iter().find(|a| *a as u8 == v)
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An owned digest: algorithm and raw bytes (not hex).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    pub alg: HashAlg,
    pub value: Box<[u8]>,
}

impl Digest {
    pub fn as_ref(&self) -> DigestRef<'_> {
        DigestRef { alg: self.alg, value: &self.value }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

/// A digest borrowed from a [`FileEntry`]. Displays as `sha256:<hex>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DigestRef<'a> {
    pub alg: HashAlg,
    pub value: &'a [u8],
}

impl DigestRef<'_> {
    pub fn to_owned(&self) -> Digest {
        Digest { alg: self.alg, value: self.value.into() }
    }

    pub fn hex(&self) -> String {
        hex::encode(self.value)
    }
}

impl fmt::Display for DigestRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg, hex::encode(self.value))
    }
}

/// The package a file came from, as the SBOM names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageRef {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
}

const NO_PACKAGE: u32 = u32::MAX;
const FLAG_SYMLINK: u8 = 1;
const FLAG_CONFLICT: u8 = 2;

/// What the SBOM says about one path.
///
/// One SHA-256 (the common case) is kept inline, with no allocation of its
/// own; anything else is packed as `[alg u8][len u8][bytes]...` in one
/// allocation. Use [`FileEntry::digests`] to walk them. With tens of
/// thousands of files per image and dozens of images per node, the
/// allocation per file was about half of a manifest's memory; the package
/// and flags share the variant's padding, so an entry is 40 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    repr: Repr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    Sha256 { sha: [u8; 32], package: u32, flags: u8 },
    Packed { digests: Box<[u8]>, package: u32, flags: u8 },
}

impl FileEntry {
    fn new(packed: &[u8], package: u32, flags: u8) -> Self {
        let repr = match packed {
            [a, 32, sha @ ..] if *a == HashAlg::Sha256 as u8 && sha.len() == 32 => {
                let mut one = [0u8; 32];
                one.copy_from_slice(sha);
                Repr::Sha256 { sha: one, package, flags }
            }
            _ => Repr::Packed { digests: packed.into(), package, flags },
        };
        Self { repr }
    }

    /// The digests in packed form.
    fn packed(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.repr {
            Repr::Sha256 { sha, .. } => {
                let mut v = Vec::with_capacity(34);
                push_packed(&mut v, HashAlg::Sha256, sha);
                std::borrow::Cow::Owned(v)
            }
            Repr::Packed { digests, .. } => std::borrow::Cow::Borrowed(digests),
        }
    }

    /// Bytes this entry holds on the heap.
    fn heap_len(&self) -> usize {
        match &self.repr {
            Repr::Sha256 { .. } => 0,
            Repr::Packed { digests, .. } => digests.len(),
        }
    }

    fn package_raw(&self) -> u32 {
        match self.repr {
            Repr::Sha256 { package, .. } | Repr::Packed { package, .. } => package,
        }
    }

    fn set_package_raw(&mut self, p: u32) {
        match &mut self.repr {
            Repr::Sha256 { package, .. } | Repr::Packed { package, .. } => *package = p,
        }
    }

    fn flags(&self) -> u8 {
        match self.repr {
            Repr::Sha256 { flags, .. } | Repr::Packed { flags, .. } => flags,
        }
    }

    fn add_flags(&mut self, f: u8) {
        match &mut self.repr {
            Repr::Sha256 { flags, .. } | Repr::Packed { flags, .. } => *flags |= f,
        }
    }

    /// Every usable digest, in the order the SBOM(s) gave them. With a
    /// conflict ([`FileEntry::has_conflict`]) one algorithm can appear twice.
    ///
    /// Returns an iterator rather than `&[Digest]`: keeping one boxed slice
    /// per digest would cost about 40 bytes per file more.
    pub fn digests(&self) -> Digests<'_> {
        match &self.repr {
            Repr::Sha256 { sha, .. } => Digests { single: Some(sha), rest: &[] },
            Repr::Packed { digests, .. } => Digests { single: None, rest: digests },
        }
    }

    /// The first SHA-256 stated for this file, the digest the agent checks.
    pub fn sha256(&self) -> Option<&[u8; 32]> {
        self.digest(HashAlg::Sha256).and_then(|v| v.try_into().ok())
    }

    /// The first digest of `alg`, raw bytes.
    pub fn digest(&self, alg: HashAlg) -> Option<&[u8]> {
        self.digests().find(|d| d.alg == alg).map(|d| d.value)
    }

    /// The strongest digest stated (SHA-256 first, then other strong ones,
    /// then SHA-1, then MD5).
    pub fn best_digest(&self) -> Option<DigestRef<'_>> {
        let rank = |a: HashAlg| match a {
            HashAlg::Sha256 => 0,
            HashAlg::Md5 => 3,
            HashAlg::Sha1 => 2,
            _ => 1,
        };
        self.digests().min_by_key(|d| rank(d.alg))
    }

    /// True when `value` equals any digest of `alg` stated for this file.
    /// With conflicting SBOMs (two different SHA-256 for one path) either
    /// one counts as a match: both sources were trusted by whoever loaded them.
    pub fn matches(&self, alg: HashAlg, value: &[u8]) -> bool {
        self.digests().any(|d| d.alg == alg && d.value == value)
    }

    /// Whether the SBOM(s) gave no usable digest (none, or only all-zero
    /// placeholders): such a file can be neither verified nor a mismatch.
    pub fn has_digests(&self) -> bool {
        match &self.repr {
            Repr::Sha256 { .. } => true,
            Repr::Packed { digests, .. } => !digests.is_empty(),
        }
    }

    /// The owning package, when the SBOM says.
    pub fn package<'m>(&self, m: &'m Manifest) -> Option<&'m PackageRef> {
        m.packages.get(self.package_raw() as usize)
    }

    /// The SBOM marked this path as a symbolic link (apk `a:` mode 0777, syft
    /// `SymbolicLink`). Its digest is then that of the link or its target,
    /// not of a file at this path: compare the resolved target instead.
    pub fn is_symlink(&self) -> bool {
        self.flags() & FLAG_SYMLINK != 0
    }

    /// Two sources gave different digests of the same algorithm for this
    /// path (kept both; see [`Manifest::warnings`]).
    pub fn has_conflict(&self) -> bool {
        self.flags() & FLAG_CONFLICT != 0
    }

    /// Adds digests from `packed`, skipping exact repeats; returns true
    /// when a digest of an algorithm already present had a different value.
    fn absorb(&mut self, packed: &[u8]) -> bool {
        let mut conflict = false;
        let mut new: Vec<u8> = self.packed().into_owned();
        let old_len = new.len();
        for d in (Digests { single: None, rest: packed }) {
            if self.matches(d.alg, d.value) {
                continue;
            }
            if self.digest(d.alg).is_some() {
                conflict = true;
            }
            push_packed(&mut new, d.alg, d.value);
        }
        if new.len() != old_len {
            *self = FileEntry::new(&new, self.package_raw(), self.flags());
        }
        if conflict {
            self.add_flags(FLAG_CONFLICT);
        }
        conflict
    }
}

fn push_packed(buf: &mut Vec<u8>, alg: HashAlg, value: &[u8]) {
    debug_assert!(value.len() <= 64);
    buf.push(alg as u8);
    buf.push(value.len() as u8);
    buf.extend_from_slice(value);
}

/// Iterator over a [`FileEntry`]'s digests.
#[derive(Clone, Debug)]
pub struct Digests<'a> {
    single: Option<&'a [u8; 32]>,
    rest: &'a [u8],
}

impl<'a> Iterator for Digests<'a> {
    type Item = DigestRef<'a>;

    fn next(&mut self) -> Option<DigestRef<'a>> {
        if let Some(sha) = self.single.take() {
            return Some(DigestRef { alg: HashAlg::Sha256, value: sha });
        }
        let (&[a, n], rest) = self.rest.split_first_chunk::<2>()?;
        let (value, rest) = rest.split_at_checked(n as usize)?;
        self.rest = rest;
        // Only this module writes the packed form, always with a valid tag.
        let alg = HashAlg::from_u8(a)?;
        Some(DigestRef { alg, value })
    }
}

/// A reusable buffer of digests for one file, filled by a reader.
#[derive(Debug, Default)]
pub struct DigestBuf {
    packed: Vec<u8>,
}

impl DigestBuf {
    pub fn clear(&mut self) {
        self.packed.clear();
    }

    /// Adds a digest; the caller has checked `value.len() == alg.digest_len()`.
    pub fn push(&mut self, alg: HashAlg, value: &[u8]) {
        push_packed(&mut self.packed, alg, value);
    }
}

/// Which format an SBOM was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SbomFormat {
    /// SPDX 2.2 / 2.3 JSON.
    Spdx2Json,
    /// SPDX 2.x tag-value (`.spdx`).
    Spdx2TagValue,
    /// SPDX 3.0 JSON-LD.
    Spdx3JsonLd,
    /// CycloneDX JSON, 1.2 to 1.7.
    CycloneDxJson,
    /// Syft's own JSON (`syft -o json`).
    SyftJson,
    /// apk installed database (`/lib/apk/db/installed`).
    ApkInstalled,
    /// dpkg `*.md5sums` (`/var/lib/dpkg/info`, distroless `status.d`).
    DpkgMd5sums,
}

impl SbomFormat {
    pub fn name(&self) -> &'static str {
        match self {
            SbomFormat::Spdx2Json => "SPDX 2 JSON",
            SbomFormat::Spdx2TagValue => "SPDX 2 tag-value",
            SbomFormat::Spdx3JsonLd => "SPDX 3 JSON-LD",
            SbomFormat::CycloneDxJson => "CycloneDX JSON",
            SbomFormat::SyftJson => "Syft JSON",
            SbomFormat::ApkInstalled => "apk installed database",
            SbomFormat::DpkgMd5sums => "dpkg md5sums",
        }
    }
}

impl fmt::Display for SbomFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The wrapper an SBOM came in, when it was not a plain file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// An in-toto statement, bare.
    InToto,
    /// An in-toto statement in a DSSE envelope.
    Dsse,
    /// An in-toto statement in a DSSE envelope in a Sigstore bundle.
    SigstoreBundle,
}

/// Where a manifest came from: enough to name the SBOM in an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomSource {
    pub format: SbomFormat,
    /// Spec version as stated (`SPDX-2.3`, `1.6`, ...).
    pub spec_version: Option<String>,
    pub path: Option<PathBuf>,
    pub document_name: Option<String>,
    /// SPDX `documentNamespace` / CycloneDX `serialNumber` / SPDX 3 document id.
    pub namespace: Option<String>,
    pub image_name: Option<String>,
    /// `sha256:<hex>` when the SBOM names the image digest.
    pub image_digest: Option<String>,
    pub envelope: Option<Envelope>,
}

impl SbomSource {
    pub fn new(format: SbomFormat) -> SbomSource {
        SbomSource {
            format,
            spec_version: None,
            path: None,
            document_name: None,
            namespace: None,
            image_name: None,
            image_digest: None,
            envelope: None,
        }
    }
}

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
        let found = {
            let (bytes, ends) = (&self.path_bytes, &self.path_ends);
            self.index
                .find(h, |&i| {
                    let i = i as usize;
                    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
                    &bytes[start..ends[i] as usize] == path
                })
                .copied()
        };
        if let Some(i) = found {
            let e = &mut self.entries[i as usize];
            let conflict = e.absorb(packed);
            if symlink {
                e.add_flags(FLAG_SYMLINK);
            }
            if e.package_raw() == NO_PACKAGE {
                e.set_package_raw(package.unwrap_or(NO_PACKAGE));
            }
            return Ok((i as usize, conflict));
        }
        let end = self.path_bytes.len() + path.len();
        let (Ok(end), Ok(i)) = (u32::try_from(end), u32::try_from(self.entries.len())) else {
            return Err(AddError::TooLarge);
        };
        self.path_bytes.push_str(path);
        self.path_ends.push(end);
        self.entries.push(FileEntry::new(
            packed,
            package.unwrap_or(NO_PACKAGE),
            if symlink { FLAG_SYMLINK } else { 0 },
        ));
        let (bytes, ends, hasher) = (&self.path_bytes, &self.path_ends, &self.hasher);
        self.index.insert_unique(h, i, |&j| {
            let j = j as usize;
            let start = if j == 0 { 0 } else { ends[j - 1] as usize };
            hasher.hash_one(&bytes[start..ends[j] as usize])
        });
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

/// "manifest.spdx.json (SPDX 2 JSON)" for messages.
pub(crate) fn describe_source(s: &SbomSource) -> String {
    match &s.path {
        Some(p) => format!("{} ({})", p.display(), s.format),
        None => s.format.to_string(),
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

#[cfg(test)]
mod packed_tests {
    use super::*;

    #[test]
    fn one_sha256_is_inline_and_more_spills_to_the_heap_unchanged() {
        let mut one = Vec::new();
        push_packed(&mut one, HashAlg::Sha256, &[7u8; 32]);
        let e = FileEntry::new(&one, 3, FLAG_SYMLINK);
        assert!(matches!(e.repr, Repr::Sha256 { .. }));
        assert_eq!((e.sha256(), e.package_raw(), e.is_symlink()), (Some(&[7u8; 32]), 3, true));
        assert_eq!(e.packed().as_ref(), &one[..], "round trip");
        let mut two = one.clone();
        push_packed(&mut two, HashAlg::Sha1, &[9u8; 20]);
        let e = FileEntry::new(&two, NO_PACKAGE, 0);
        assert!(matches!(e.repr, Repr::Packed { .. }));
        assert_eq!(e.packed().as_ref(), &two[..]);
        assert_eq!(e.digests().count(), 2);
        assert!(!FileEntry::new(&[], 0, 0).has_digests());
        assert_eq!(size_of::<FileEntry>(), 40);
    }

    #[test]
    fn verification_keeps_only_the_sha256_where_there_is_one() {
        let mut m = Manifest::new(SbomSource::new(SbomFormat::Spdx2Json));
        let mut both = Vec::new();
        push_packed(&mut both, HashAlg::Sha256, &[1u8; 32]);
        push_packed(&mut both, HashAlg::Sha1, &[2u8; 20]);
        let mut weak = Vec::new();
        push_packed(&mut weak, HashAlg::Md5, &[3u8; 16]);
        m.add_packed("/a", &both, None, false).expect("add");
        m.add_packed("/b", &weak, None, false).expect("add");
        m.keep_sha256_where_present();
        let a = m.get("/a").expect("a");
        assert_eq!((a.sha256(), a.digest(HashAlg::Sha1)), (Some(&[1u8; 32]), None));
        assert!(matches!(a.repr, Repr::Sha256 { .. }));
        assert_eq!(m.get("/b").and_then(|e| e.digest(HashAlg::Md5)), Some(&[3u8; 16][..]), "weak-only kept");
    }
}
