//! A package-only SBOM joined with the image's own package database.
//!
//! Most SBOMs in the wild (syft or trivy CycloneDX, debsbom, cdxgen) list
//! packages (name, version, purl) and no file digests: on their own they
//! verify nothing, and every exec of a real image is `unknown-binary`. The
//! image itself says which files each package installed and their digests:
//! dpkg's `info/<pkg>.md5sums` (distroless: `status.d/<pkg>.md5sums`) and
//! apk's `installed`. Joining the two keeps the SBOM as the authority on
//! *which* packages belong in the image and takes the *files* of those
//! packages from the database:
//!
//! - a package the SBOM lists (by name, and by version when it gives one)
//!   and the database has installed brings its files with the database's
//!   digests (dpkg: MD5, apk: SHA-1, both weak);
//! - a package the database has and the SBOM does not list is kept apart
//!   ([`Joined::unlisted`]): its files are evidence that the image shipped
//!   them (`sbom-gap`), never a reason to pass them.
//!
//! The database must be read from the image's read-only content (overlay
//! lower layers, a read-only or umoci-vouched runc root), never from the
//! container's writable layer: [`ImageFiles`] is that read-only view, and
//! its implementations decide what counts. The records of the kept
//! packages are cut out of the database text and read by
//! `verifier_sbom`'s own dpkg and apk readers.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use verifier_sbom::{LoadOptions, Manifest, SbomFormat, load_reader};

/// Read-only view of an image's shipped files (paths absolute, inside the
/// image). An implementation returns only what it can vouch is the
/// image's, never the container's writes.
pub(crate) trait ImageFiles {
    /// The bytes of a regular file, if the image shipped it.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// The names in a directory the image shipped.
    fn list(&self, dir: &str) -> Vec<String>;
    /// Identifies the content (layer paths, rootfs): the join's cache key.
    fn key(&self) -> String;
}

/// Why no join was made.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum JoinError {
    #[error(
        "the image has no package database this agent reads (/var/lib/dpkg/status, /var/lib/dpkg/status.d, /lib/apk/db/installed)"
    )]
    NoDatabase,
    #[error("none of the {listed} packages the SBOM lists is installed in the image's {db} database")]
    NothingMatched { db: &'static str, listed: usize },
    #[error("the image's {db} database could not be read ({file}): {error}; fix or regenerate it")]
    Read { db: &'static str, file: String, error: String },
}

/// The join of a package-only SBOM with the image's database.
#[derive(Debug)]
pub(crate) struct Joined {
    /// The baseline key of the joined manifest (its own: the same SBOM
    /// joined with another image's database is another baseline).
    pub key: u64,
    /// The SBOM with the files of its listed packages, database digests.
    pub manifest: Arc<Manifest>,
    /// Files of installed packages the SBOM does not list (for `sbom-gap`).
    pub unlisted: Arc<Manifest>,
    /// `dpkg` or `apk`.
    pub db: &'static str,
    /// Listed packages found installed (name, version agreeing).
    pub matched: usize,
    /// Listed packages with no installed match.
    pub missing: Vec<String>,
    /// Installed packages the SBOM does not list.
    pub unlisted_packages: Vec<String>,
}

/// One installed package's record in the database.
struct Installed {
    name: String,
    version: Option<String>,
    /// The text the reader gets for it (md5sums file, or apk block), and
    /// the name it reads it under.
    text: Vec<u8>,
    source: String,
}

/// Joins `sbom` with the database in `image`.
pub(crate) fn join(sbom: &Manifest, image: &dyn ImageFiles) -> Result<Joined, JoinError> {
    let (db, format, installed) = if let Some(i) = dpkg_installed(image) {
        ("dpkg", SbomFormat::DpkgMd5sums, i)
    } else if let Some(i) = apk_installed(image) {
        ("apk", SbomFormat::ApkInstalled, i)
    } else {
        return Err(JoinError::NoDatabase);
    };
    let listed = listed_packages(sbom);
    let mut manifest = sbom.clone();
    let mut unlisted: Option<Manifest> = None;
    let (mut matched, mut found) = (0, HashSet::new());
    let mut unlisted_packages = Vec::new();
    let opts = LoadOptions { format: Some(format), ..LoadOptions::default() };
    for p in installed {
        let is_listed = listed.get(&p.name).is_some_and(|versions| {
            versions.iter().any(|v| v.as_deref().is_none_or(|v| same_version(v, p.version.as_deref())))
        });
        // A package with no file list (metapackages) brings no files.
        let m = if p.text.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(load_reader(p.text.as_slice(), &p.source, &opts).map_err(|e| JoinError::Read {
                db,
                file: p.source.clone(),
                error: e.to_string(),
            })?)
        };
        if is_listed {
            matched += 1;
            found.insert(p.name);
            if let Some(m) = m {
                manifest.merge(m);
            }
        } else {
            unlisted_packages.push(p.name);
            match (unlisted.as_mut(), m) {
                (Some(all), Some(m)) => all.merge(m),
                (None, m) => unlisted = m,
                (Some(_), None) => {}
            }
        }
    }
    if matched == 0 {
        return Err(JoinError::NothingMatched { db, listed: listed.len() });
    }
    let mut missing: Vec<String> = listed.into_keys().filter(|n| !found.contains(n)).collect();
    missing.sort();
    unlisted_packages.sort();
    manifest.shrink_to_fit();
    // Reasons say whose digests a file matched: the database's, for a
    // package the SBOM lists.
    manifest.set_digests_from(format!("the image's {db} database (for a package the SBOM lists)"));
    let unlisted = unlisted.unwrap_or_else(|| Manifest::new(sbom.source().clone()));
    Ok(Joined {
        key: super::cache::next_key(),
        manifest: Arc::new(manifest),
        unlisted: Arc::new(unlisted),
        db,
        matched,
        missing,
        unlisted_packages,
    })
}

/// The SBOM's packages: name -> versions it lists (`None`: any version).
/// A purl of another ecosystem (`pkg:pypi/...`) is not a system package.
fn listed_packages(sbom: &Manifest) -> HashMap<String, Vec<Option<String>>> {
    let mut out: HashMap<String, Vec<Option<String>>> = HashMap::new();
    for p in sbom.packages() {
        let (mut name, mut version) = (p.name.clone(), p.version.clone());
        if let Some(purl) = p.purl.as_deref() {
            let Some((n, v)) = purl_name_version(purl) else { continue };
            name = n;
            version = version.or(v);
        }
        if !name.is_empty() {
            out.entry(name).or_default().push(version);
        }
    }
    out
}

/// `pkg:deb/debian/libc6@2.36-9?arch=amd64` -> (`libc6`, `2.36-9`); `None`
/// for a purl that is not deb or apk, and for a source package
/// (`?arch=source`: debsbom lists them beside the binary packages built
/// from them; a source name such as `glibc` or `shadow` is no installed
/// package, and one that is (`bash`) is listed again as the binary).
fn purl_name_version(purl: &str) -> Option<(String, Option<String>)> {
    let rest = purl.strip_prefix("pkg:")?;
    let (kind, path) = rest.split_once('/')?;
    if kind != "deb" && kind != "apk" {
        return None;
    }
    let qualifiers = path.split_once('?').map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
    if qualifiers.split('&').any(|q| q == "arch=source") {
        return None;
    }
    let path = path.split(['?', '#']).next()?;
    let last = path.rsplit('/').next()?;
    let (name, version) = match last.split_once('@') {
        Some((n, v)) => (n, Some(percent_decode(v))),
        None => (last, None),
    };
    Some((percent_decode(name), version))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let byte = (b[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match byte {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Versions agree exactly, or once an epoch (`1:`) is left out of either
/// (SBOM tools differ in writing it).
fn same_version(listed: &str, installed: Option<&str>) -> bool {
    let Some(installed) = installed else { return false };
    let strip = |v: &str| {
        v.split_once(':')
            .map_or(v, |(e, r)| if e.chars().all(|c| c.is_ascii_digit()) { r } else { v })
            .to_owned()
    };
    listed == installed || strip(listed) == strip(installed)
}

/// `Field: value` of a dpkg or apk stanza (dpkg fields at line start).
fn field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

/// dpkg: installed packages of `status` with their `info/*.md5sums`, or
/// distroless `status.d/<pkg>` with `status.d/<pkg>.md5sums`.
fn dpkg_installed(image: &dyn ImageFiles) -> Option<Vec<Installed>> {
    let mut out = Vec::new();
    if let Some(status) = image.read("/var/lib/dpkg/status") {
        let info = image.list("/var/lib/dpkg/info");
        let status = String::from_utf8_lossy(&status);
        for stanza in status.split("\n\n") {
            let Some(name) = field(stanza, "Package") else { continue };
            if !field(stanza, "Status").is_some_and(|s| s.ends_with(" installed")) {
                continue;
            }
            let file = info.iter().find(|f| {
                f.strip_suffix(".md5sums").is_some_and(|s| s == name || s.split(':').next() == Some(name))
            });
            let path = file.map(|f| format!("/var/lib/dpkg/info/{f}"));
            out.push(installed(image, name, field(stanza, "Version"), path));
        }
        return Some(out);
    }
    let names = image.list("/var/lib/dpkg/status.d");
    if names.is_empty() {
        return None;
    }
    for n in names.iter().filter(|n| !n.ends_with(".md5sums")) {
        let Some(stanza) = image.read(&format!("/var/lib/dpkg/status.d/{n}")) else { continue };
        let stanza = String::from_utf8_lossy(&stanza);
        let name = field(&stanza, "Package").unwrap_or(n);
        let md5 = format!("{n}.md5sums");
        let path = names.contains(&md5).then(|| format!("/var/lib/dpkg/status.d/{md5}"));
        out.push(installed(image, name, field(&stanza, "Version"), path));
    }
    Some(out)
}

fn installed(
    image: &dyn ImageFiles,
    name: &str,
    version: Option<&str>,
    md5sums: Option<String>,
) -> Installed {
    // The reader takes the package name from the file name.
    let text = md5sums.as_deref().and_then(|p| image.read(p)).unwrap_or_default();
    Installed {
        name: name.to_owned(),
        version: version.map(str::to_owned),
        text,
        source: md5sums.unwrap_or_else(|| format!("/var/lib/dpkg/info/{name}.md5sums")),
    }
}

/// apk: the blocks of `/lib/apk/db/installed`, one per package.
fn apk_installed(image: &dyn ImageFiles) -> Option<Vec<Installed>> {
    let db = image.read("/lib/apk/db/installed")?;
    let db = String::from_utf8_lossy(&db);
    let out = db
        .split("\n\n")
        .filter_map(|block| {
            let name = field(block, "P")?;
            Some(Installed {
                name: name.to_owned(),
                version: field(block, "V").map(str::to_owned),
                text: format!("{}\n\n", block.trim_end()).into_bytes(),
                source: "/lib/apk/db/installed".to_owned(),
            })
        })
        .collect();
    Some(out)
}

/// Joins made, one per (SBOM manifest, image content): every container of
/// an image shares it, and a new SBOM parse (a changed file) joins again.
#[derive(Default)]
pub(crate) struct JoinCache {
    joined: Mutex<HashMap<(usize, String), CachedJoin>>,
}

/// A join with the SBOM manifest it was made from (held, so its address,
/// part of the key, is not reused).
type CachedJoin = (Arc<Manifest>, Result<Arc<Joined>, JoinError>);

impl JoinCache {
    /// The join of `sbom` with `image`'s database, made once.
    pub(crate) fn join(
        &self,
        sbom: &Arc<Manifest>,
        image: &dyn ImageFiles,
    ) -> Result<Arc<Joined>, JoinError> {
        let key = (Arc::as_ptr(sbom) as usize, image.key());
        if let Some((m, r)) = self.joined.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
            && Arc::ptr_eq(m, sbom)
        {
            return r.clone();
        }
        let r = join(sbom, image).map(Arc::new);
        let mut cache = self.joined.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(key, (sbom.clone(), r.clone()));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image's files from a table of paths and contents.
    struct Files(Vec<(&'static str, &'static str)>);

    impl ImageFiles for Files {
        fn read(&self, path: &str) -> Option<Vec<u8>> {
            self.0.iter().find(|(p, _)| *p == path).map(|(_, t)| t.as_bytes().to_vec())
        }
        fn list(&self, dir: &str) -> Vec<String> {
            let prefix = format!("{dir}/");
            self.0.iter().filter_map(|(p, _)| p.strip_prefix(prefix.as_str()).map(str::to_owned)).collect()
        }
        fn key(&self) -> String {
            "test".into()
        }
    }

    #[test]
    fn a_joined_manifest_says_its_digests_are_the_databases() {
        let sbom = load_reader(
            br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
                {"type":"library","name":"hello","version":"1.0","purl":"pkg:deb/debian/hello@1.0?arch=amd64"}]}"#
                .as_slice(),
            "sbom.cdx.json",
            &LoadOptions::default(),
        )
        .expect("sbom");
        assert_eq!(sbom.digests_from(), "the SBOM");
        let image = Files(vec![
            ("/var/lib/dpkg/status", "Package: hello\nStatus: install ok installed\nVersion: 1.0\n"),
            // md5 of "hi\n"
            ("/var/lib/dpkg/info/hello.md5sums", "764efa883dda1e11db47671c4a3bbd9e  usr/bin/hello\n"),
        ]);
        let joined = join(&sbom, &image).expect("joined");
        assert_eq!(
            joined.manifest.digests_from(),
            "the image's dpkg database (for a package the SBOM lists)"
        );
        assert!(
            joined.manifest.get("/usr/bin/hello").is_some(),
            "the listed package's file, by the database"
        );
    }

    #[test]
    fn purls_and_epochs() {
        assert_eq!(
            purl_name_version("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"),
            Some(("libc6".into(), Some("2.36-9+deb12u4".into())))
        );
        assert_eq!(purl_name_version("pkg:pypi/requests@2.0"), None);
        assert_eq!(purl_name_version("pkg:deb/debian/glibc@2.36-9?arch=source"), None);
        assert_eq!(
            purl_name_version("pkg:deb/debian/bash@5.2.15-2+b13?arch=amd64&distro=debian-12.15"),
            Some(("bash".into(), Some("5.2.15-2+b13".into())))
        );
        assert!(same_version("1:2.38.1-5", Some("1:2.38.1-5")));
        assert!(same_version("2.38.1-5", Some("1:2.38.1-5")));
        assert!(!same_version("2.38.1-6", Some("1:2.38.1-5")));
    }
}
