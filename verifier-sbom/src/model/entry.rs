//! One file of a manifest: its digests packed in 40 bytes (one SHA-256
//! inline, anything more in one allocation), its package and flags.

use super::{
    Manifest,
    alg::{DigestRef, HashAlg},
};

/// The package a file came from, as the SBOM names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageRef {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
}

pub(super) const NO_PACKAGE: u32 = u32::MAX;
pub(super) const FLAG_SYMLINK: u8 = 1;
pub(super) const FLAG_CONFLICT: u8 = 2;

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
    pub(super) fn new(packed: &[u8], package: u32, flags: u8) -> Self {
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
    pub(super) fn packed(&self) -> std::borrow::Cow<'_, [u8]> {
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
    pub(super) fn heap_len(&self) -> usize {
        match &self.repr {
            Repr::Sha256 { .. } => 0,
            Repr::Packed { digests, .. } => digests.len(),
        }
    }

    pub(super) fn package_raw(&self) -> u32 {
        match self.repr {
            Repr::Sha256 { package, .. } | Repr::Packed { package, .. } => package,
        }
    }

    pub(super) fn set_package_raw(&mut self, p: u32) {
        match &mut self.repr {
            Repr::Sha256 { package, .. } | Repr::Packed { package, .. } => *package = p,
        }
    }

    pub(super) fn flags(&self) -> u8 {
        match self.repr {
            Repr::Sha256 { flags, .. } | Repr::Packed { flags, .. } => flags,
        }
    }

    pub(super) fn add_flags(&mut self, f: u8) {
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
    pub(super) fn absorb(&mut self, packed: &[u8]) -> bool {
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

pub(crate) fn push_packed(buf: &mut Vec<u8>, alg: HashAlg, value: &[u8]) {
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
pub(crate) struct DigestBuf {
    pub(super) packed: Vec<u8>,
}

impl DigestBuf {
    pub(crate) fn clear(&mut self) {
        self.packed.clear();
    }

    /// Adds a digest; the caller has checked `value.len() == alg.digest_len()`.
    pub(crate) fn push(&mut self, alg: HashAlg, value: &[u8]) {
        push_packed(&mut self.packed, alg, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SbomFormat, SbomSource};

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
