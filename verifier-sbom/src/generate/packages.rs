//! Packages of the scanned image, from its own package databases: apk
//! (`/lib/apk/db/installed`, Alpine, Wolfi, Chainguard) and dpkg
//! (`/var/lib/dpkg/status`, distroless `/var/lib/dpkg/status.d/`, file
//! lists in `info/*.list` and `*.md5sums`), with package URLs.
//!
//! Why only these: they are what container images ship, they list every
//! file a package installed, and reading them needs no network. The
//! databases' own per-file hashes are not used here (this SBOM hashes the
//! files themselves); they only say which package owns which path.
//! Owned paths are resolved through symlinks in the tree, so `/bin/ls`
//! listed by a package on a merged-/usr image is attributed at
//! `/usr/bin/ls`, where the file really is.

use std::collections::{BTreeMap, HashMap};

use super::tree::{Node, Tree};

/// `ID`, `VERSION_ID`, `PRETTY_NAME` and `NAME` of `/etc/os-release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distro {
    pub id: String,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
    /// `NAME` (`Debian GNU/Linux`): the supplier of a rootfs when nothing
    /// better is known.
    pub name: Option<String>,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `apk` or `deb` (the purl type).
    pub kind: &'static str,
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub purl: String,
    /// Files the database lists for it (normalised, as listed).
    pub listed_files: usize,
    /// Who supplies it: dpkg's `Maintainer`, apk's `m:` (`Name <email>`).
    pub supplier: Option<String>,
}

const APK_DB: &str = "/lib/apk/db/installed";
const DPKG_STATUS: &str = "/var/lib/dpkg/status";
const DPKG_STATUS_D: &str = "/var/lib/dpkg/status.d/";
const DPKG_INFO: &str = "/var/lib/dpkg/info/";

/// Files whose content the scan keeps for this module.
pub fn is_captured(path: &str) -> bool {
    path == APK_DB
        || path == DPKG_STATUS
        || path == "/etc/os-release"
        || path == "/usr/lib/os-release"
        || path.starts_with(DPKG_STATUS_D)
        || (path.starts_with(DPKG_INFO) && (path.ends_with(".list") || path.ends_with(".md5sums")))
}

/// Reads os-release (`/etc` first, then `/usr/lib`).
pub fn distro(captured: &BTreeMap<&str, &[u8]>) -> Option<Distro> {
    let text = captured.get("/etc/os-release").or_else(|| captured.get("/usr/lib/os-release"))?;
    let text = String::from_utf8_lossy(text);
    let mut fields = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            fields.insert(k.trim(), v.trim().trim_matches('"').trim_matches('\'').to_owned());
        }
    }
    Some(Distro {
        id: fields.remove("ID")?,
        version_id: fields.remove("VERSION_ID"),
        pretty_name: fields.remove("PRETTY_NAME"),
        name: fields.remove("NAME"),
    })
}

/// Percent-encodes a purl component (everything but unreserved characters).
pub fn purl_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn purl(
    kind: &str,
    namespace: &str,
    name: &str,
    version: &str,
    arch: Option<&str>,
    distro: Option<&Distro>,
) -> String {
    let mut p =
        format!("pkg:{kind}/{}/{}@{}", purl_encode(namespace), purl_encode(name), purl_encode(version));
    let mut q = Vec::new();
    if let Some(a) = arch {
        q.push(format!("arch={}", purl_encode(a)));
    }
    if let Some(d) = distro {
        let v = d.version_id.as_deref().map(|v| format!("-{v}")).unwrap_or_default();
        q.push(format!("distro={}", purl_encode(&format!("{}{v}", d.id))));
    }
    if !q.is_empty() {
        p.push('?');
        p.push_str(&q.join("&"));
    }
    p
}

/// Finds the packages and which file path each one owns.
/// Returns the packages (sorted by purl) and owner by path.
pub fn collect(
    captured: &BTreeMap<&str, &[u8]>,
    tree: &Tree,
    distro: Option<&Distro>,
    warnings: &mut Vec<String>,
) -> (Vec<Package>, HashMap<String, usize>) {
    let mut found: Vec<(Package, Vec<String>)> = Vec::new();
    if let Some(db) = captured.get(APK_DB) {
        let ns = distro.map_or("alpine", |d| d.id.as_str());
        found.extend(parse_apk(&String::from_utf8_lossy(db), ns, distro));
    }
    let ns = distro.map_or("debian", |d| d.id.as_str());
    let mut deb_files: HashMap<String, Vec<String>> = HashMap::new();
    for (path, bytes) in captured {
        let Some(rest) = path.strip_prefix(DPKG_INFO).or_else(|| path.strip_prefix(DPKG_STATUS_D)) else {
            continue;
        };
        let Some(stem) = rest.strip_suffix(".list").or_else(|| rest.strip_suffix(".md5sums")) else {
            continue;
        };
        let name = stem.split_once(':').map_or(stem, |(n, _)| n).to_owned();
        let text = String::from_utf8_lossy(bytes);
        let files = deb_files.entry(name).or_default();
        for line in text.lines() {
            let p =
                if path.ends_with(".md5sums") { line.split_once("  ").map_or("", |(_, p)| p) } else { line };
            if !p.is_empty() {
                files.push(normalize_listed(p));
            }
        }
    }
    let mut status_docs: Vec<&[u8]> = captured.get(DPKG_STATUS).copied().into_iter().collect();
    status_docs.extend(
        captured
            .iter()
            .filter(|(p, _)| {
                p.starts_with(DPKG_STATUS_D) && !p.ends_with(".md5sums") && !p.ends_with(".list")
            })
            .map(|(_, b)| *b),
    );
    for doc in status_docs {
        for pkg in parse_dpkg_status(&String::from_utf8_lossy(doc), ns, distro) {
            let files = deb_files.get(&pkg.name).cloned().unwrap_or_default();
            found.push((pkg, files));
        }
    }
    found.sort_by(|a, b| a.0.purl.cmp(&b.0.purl));
    found.dedup_by(|a, b| a.0.purl == b.0.purl);
    let mut owners: HashMap<String, usize> = HashMap::new();
    let mut packages = Vec::with_capacity(found.len());
    let (mut absent, mut examples) = (0usize, Vec::new());
    for (idx, (mut pkg, files)) in found.into_iter().enumerate() {
        pkg.listed_files = files.len();
        for listed in files.into_iter().filter(|p| p != "/") {
            match tree.resolve(&listed) {
                Some((real, Node::File { .. })) => {
                    owners.entry(real).or_insert(idx);
                }
                Some(_) => {}
                None if tree.get(&listed).is_none() => {
                    absent += 1;
                    if examples.len() < 3 {
                        examples.push(format!("{listed} ({})", pkg.name));
                    }
                }
                None => {}
            }
            owners.entry(listed).or_insert(idx);
        }
        packages.push(pkg);
    }
    if absent > 0 {
        // Slim images delete docs and locales after install: say it once.
        warnings.push(format!(
            "{absent} path(s) listed by the package databases are not in the image (removed after install?), e.g. {}",
            examples.join(", ")
        ));
    }
    (packages, owners)
}

fn normalize_listed(p: &str) -> String {
    super::tree::normalize(p.as_bytes()).unwrap_or_else(|_| format!("/{}", p.trim_start_matches('/')))
}

/// Parses an apk `installed` database: blank-line separated records of
/// `X:value` lines; `F:` a directory, `R:` a file in it.
pub fn parse_apk(text: &str, namespace: &str, distro: Option<&Distro>) -> Vec<(Package, Vec<String>)> {
    let mut out = Vec::new();
    for record in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut supplier) = (None, None, None, None);
        let mut dir = String::new();
        let mut files = Vec::new();
        for line in record.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key {
                "P" => name = Some(value.to_owned()),
                "V" => version = Some(value.to_owned()),
                "A" => arch = Some(value.to_owned()),
                "m" => supplier = Some(value.to_owned()),
                "F" => dir = value.to_owned(),
                "R" => files.push(normalize_listed(&format!("{dir}/{value}"))),
                _ => {}
            }
        }
        if let (Some(name), Some(version)) = (name, version) {
            let purl = purl("apk", namespace, &name, &version, arch.as_deref(), distro);
            let package = Package { kind: "apk", name, version, arch, purl, listed_files: 0, supplier };
            out.push((package, files));
        }
    }
    out
}

/// Parses dpkg status paragraphs; keeps packages whose status is installed.
pub fn parse_dpkg_status(text: &str, namespace: &str, distro: Option<&Distro>) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for line in para.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim(), v.trim());
            }
        }
        let installed = fields.get("Status").is_none_or(|s| s.split_whitespace().last() == Some("installed"));
        let (Some(name), Some(version)) = (fields.get("Package"), fields.get("Version")) else {
            continue;
        };
        if !installed {
            continue;
        }
        let arch = fields.get("Architecture").map(|a| (*a).to_owned());
        let purl = purl("deb", namespace, name, version, arch.as_deref(), distro);
        out.push(Package {
            kind: "deb",
            name: (*name).to_owned(),
            version: (*version).to_owned(),
            arch,
            purl,
            listed_files: 0,
            supplier: fields.get("Maintainer").map(|m| (*m).to_owned()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apk_records_and_purls() {
        let db = "C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nF:lib\nR:ld-musl-x86_64.so.1\nZ:Q1x=\nR:libc.musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r2\nA:x86_64\nF:bin\nR:busybox\n";
        let pkgs = parse_apk(&format!("{db}m:Natanael Copa <ncopa@alpinelinux.org>\n"), "alpine", None);
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].0.purl, "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64");
        assert_eq!(pkgs[0].1, vec!["/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1"]);
        assert_eq!(pkgs[0].0.supplier, None);
        assert_eq!(pkgs[1].0.supplier.as_deref(), Some("Natanael Copa <ncopa@alpinelinux.org>"));
    }

    #[test]
    fn dpkg_status_skips_removed_and_encodes_epochs() {
        let status = "Package: libc6\nStatus: install ok installed\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nVersion: 1:2.36-9+deb12u4\nArchitecture: amd64\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n";
        let d = Distro { id: "debian".into(), version_id: Some("12".into()), pretty_name: None, name: None };
        let pkgs = parse_dpkg_status(status, "debian", Some(&d));
        assert_eq!(pkgs.len(), 1);
        assert_eq!(pkgs[0].purl, "pkg:deb/debian/libc6@1%3A2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12");
        assert_eq!(pkgs[0].supplier.as_deref(), Some("GNU Libc Maintainers <debian-glibc@lists.debian.org>"));
    }
}
