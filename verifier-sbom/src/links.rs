//! SPDX element ids and the links between them: which package contains
//! which file. SPDX states this in three places (a package's `hasFiles`,
//! `CONTAINS` / `CONTAINED_BY` relationships, SPDX 3 `contains`
//! relationships), often after the files themselves, so links are collected
//! while reading and applied at the end.
//!
//! Ids are kept as 64-bit hashes, not strings: 200,000 file ids would cost
//! 10+ MB as strings. With a randomly seeded hash a collision is about 1e-9 likely for
//! 200,000 ids and would only misattribute a package, never a digest.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap};

use super::model::{Manifest, SbomSource};

#[derive(Default)]
pub(crate) struct Links {
    hasher: DefaultHashBuilder,
    files: HashMap<u64, u32>,
    packages: HashMap<u64, u32>,
    /// (package id, file id), in the order stated.
    contains: Vec<(u64, u64)>,
}

impl Links {
    fn key(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub(crate) fn file(&mut self, id: &str, index: usize) {
        let k = self.key(id);
        self.files.entry(k).or_insert(index as u32);
    }

    pub(crate) fn package(&mut self, id: &str, index: u32) {
        let k = self.key(id);
        self.packages.entry(k).or_insert(index);
    }

    /// `package` contains `file` (either may turn out not to exist, or not to
    /// be a package / file: such links are ignored).
    pub(crate) fn contains(&mut self, package: &str, file: &str) {
        let link = (self.key(package), self.key(file));
        self.contains.push(link);
    }

    /// Gives each file the first package that contains it.
    pub(crate) fn apply(&self, m: &mut Manifest) {
        for (p, f) in &self.contains {
            if let (Some(&pi), Some(&fi)) = (self.packages.get(p), self.files.get(f)) {
                m.set_package_if_none(fi as usize, pi);
            }
        }
    }
}

/// Records the image an SBOM describes, from a package that is the image
/// (purpose `CONTAINER`, a `pkg:oci/` or `pkg:docker/` purl, a CycloneDX
/// `container` component). The first one wins.
pub(crate) fn note_image(src: &mut SbomSource, name: &str, purl: Option<&str>, digest: Option<String>) {
    if src.image_name.is_some() {
        return;
    }
    src.image_name = Some(name.to_owned());
    let from_purl = purl.and_then(|p| {
        let (_, version) = p.split_once('@')?;
        let version = version.split(['?', '#']).next()?;
        let version = version.replace("%3A", ":").replace("%3a", ":");
        version.starts_with("sha256:").then_some(version)
    });
    src.image_digest = from_purl.or(digest);
}

/// True for purls naming a container image.
pub(crate) fn is_image_purl(purl: &str) -> bool {
    purl.starts_with("pkg:oci/") || purl.starts_with("pkg:docker/")
}
