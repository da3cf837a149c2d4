//! dpkg `*.md5sums` files: `<md5>  <path>` per line, paths relative to `/`.
//! Debian and Ubuntu keep them in `/var/lib/dpkg/info/<pkg>[:<arch>].md5sums`,
//! distroless images in `/var/lib/dpkg/status.d/<pkg>.md5sums`. MD5 is weak,
//! but for many Debian images it is the only per-file baseline there is.
//!
//! A database *directory* (`info/` or `status.d/`) is read with its status
//! file(s) ([`status`]): each package's conffiles (the `/etc` files dpkg
//! leaves out of the md5sums) are added with their MD5, under the same
//! package, and its version is filled in. The manifest's format stays
//! `dpkg md5sums`; its sources name every file read.

mod status;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufRead;
use std::path::Path;

use super::LoadOptions;
use super::error::{SbomError, hint};
use super::model::{DigestBuf, HashAlg, Manifest, PackageRef, SbomFormat};
use super::sink::Sink;
use super::text::LineReader;
use status::Stanza;

/// `<32 hex>` then a space: the shape of an md5sums line.
pub(crate) fn looks_like_md5sums_line(line: &[u8]) -> bool {
    line.len() > 34 && line[..32].iter().all(u8::is_ascii_hexdigit) && line[32] == b' '
}

/// Package name from the file name: `libc6:amd64.md5sums` -> `libc6`.
fn package_name(file: &str) -> Option<&str> {
    let base = file.rsplit('/').next()?;
    let stem = base.strip_suffix(".md5sums")?;
    let name = stem.split(':').next()?;
    (!name.is_empty()).then_some(name)
}

pub(crate) fn read(r: impl BufRead, name: &str, opts: &LoadOptions) -> Result<Manifest, SbomError> {
    read_package(r, name, opts, None)
}

/// An md5sums file, plus the conffiles and version of its package from the
/// status database when known.
fn read_package(
    r: impl BufRead,
    name: &str,
    opts: &LoadOptions,
    stanza: Option<&Stanza>,
) -> Result<Manifest, SbomError> {
    let mut lines = LineReader::new(r, name);
    let mut sink = Sink::new(SbomFormat::DpkgMd5sums, name);
    let package = package_name(name).map(|n| {
        let version = stanza.and_then(|s| s.version.clone());
        sink.m.add_package(PackageRef { name: n.to_owned(), version, ..Default::default() })
    });
    let mut digests = DigestBuf::default();
    while let Some(line) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        if !looks_like_md5sums_line(line.as_bytes()) {
            let shown: String = line.chars().take(60).collect();
            return Err(lines.malformed(
                format!("expected `<md5>  <path>`, found {shown:?}"),
                "pass a dpkg *.md5sums file as it is in the image",
            ));
        }
        // "<md5>  <path>", or "<md5> *<path>" (md5sum's binary mode).
        let rest = &line[33..];
        let path = rest.strip_prefix([' ', '*']).unwrap_or(rest);
        digests.clear();
        let (hex_value, path) = (line[..32].to_owned(), path.to_owned());
        sink.push_hex(&mut digests, HashAlg::Md5.name(), &hex_value, &path);
        sink.add_file(&path, &digests, package, false)
            .map_err(|e| lines.malformed(e.message(), hint::TOO_LONG))?;
    }
    if let Some(s) = stanza {
        add_conffiles(&mut sink, s, package);
    }
    Ok(sink.finish(opts))
}

/// Adds a package's shipped conffiles; `newconffile` ones without a digest
/// (dpkg has none for them: they cannot be verified, and say so).
fn add_conffiles(sink: &mut Sink, s: &Stanza, package: Option<u32>) -> usize {
    let mut digests = DigestBuf::default();
    let mut unhashed = 0;
    for c in s.shipped() {
        digests.clear();
        match &c.md5 {
            Some(md5) => sink.push_hex(&mut digests, HashAlg::Md5.name(), md5, &c.path),
            None => unhashed += 1,
        }
        // Conffile paths come from dpkg and are short; one that is refused
        // is left out rather than failing the database.
        let _ = sink.add_file(&c.path, &digests, package, false);
    }
    if unhashed > 0 {
        sink.m.warn(format!(
            "{unhashed} conffile(s) of {} are marked `newconffile` (dpkg has no MD5 for them yet)",
            s.package
        ));
    }
    unhashed
}

/// The status stanzas for `dir`, by `name:arch` and by `name`, and what
/// could not be read.
struct StatusDb {
    stanzas: Vec<Stanza>,
    by_name: HashMap<String, usize>,
    used: Vec<bool>,
    sources: Vec<std::path::PathBuf>,
    warnings: Vec<String>,
}

impl StatusDb {
    fn load(dir: &Path) -> StatusDb {
        let mut db = StatusDb {
            stanzas: Vec::new(),
            by_name: HashMap::new(),
            used: Vec::new(),
            sources: Vec::new(),
            warnings: Vec::new(),
        };
        for path in status::sources(dir) {
            match status::read(&path) {
                Ok(stanzas) if !stanzas.is_empty() => {
                    db.stanzas.extend(stanzas);
                    db.sources.push(path);
                }
                Ok(_) => {}
                Err(why) => db.warnings.push(format!(
                    "{}: not read ({why}): conffiles and versions are missing",
                    path.display()
                )),
            }
        }
        for (i, s) in db.stanzas.iter().enumerate() {
            if let Some(arch) = &s.arch {
                db.by_name.entry(format!("{}:{arch}", s.package)).or_insert(i);
            }
            db.by_name.entry(s.package.clone()).or_insert(i);
        }
        db.used = vec![false; db.stanzas.len()];
        db
    }

    /// The stanza of `libc6:amd64.md5sums` (by `name:arch`, else `name`).
    fn take(&mut self, md5sums: &Path) -> Option<&Stanza> {
        let stem = md5sums.file_name()?.to_str()?.strip_suffix(".md5sums")?;
        let name = stem.split(':').next()?;
        let i = *self.by_name.get(stem).or_else(|| self.by_name.get(name))?;
        self.used[i] = true;
        self.stanzas.get(i)
    }

    /// Conffiles of packages that have no md5sums file (`netbase`), in one
    /// manifest named after the status file.
    fn rest(&self, opts: &LoadOptions) -> Option<Manifest> {
        let first = self.sources.first()?;
        let name = first.display().to_string();
        let mut sink = Sink::new(SbomFormat::DpkgMd5sums, &name);
        for (s, _) in
            self.stanzas.iter().zip(&self.used).filter(|(s, used)| !**used && s.shipped().next().is_some())
        {
            let p = sink.m.add_package(PackageRef {
                name: s.package.clone(),
                version: s.version.clone(),
                ..Default::default()
            });
            add_conffiles(&mut sink, s, Some(p));
        }
        if sink.m.is_empty() {
            return None;
        }
        let mut m = sink.finish(opts);
        m.source_mut().path = Some(first.clone());
        Some(m)
    }
}

/// Every `*.md5sums` in `dir`, merged (sorted by name, so the result does
/// not depend on directory order), with the conffiles of the status
/// database next to it (`<dir>/../status` for `info/`, the package files
/// of `status.d/`).
pub(crate) fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Manifest, SbomError> {
    let name = dir.display().to_string();
    let io_err = |source| SbomError::Io { file: name.clone(), source };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md5sums"))
        .collect();
    files.sort();
    let mut db = StatusDb::load(dir);
    let mut merged: Option<Manifest> = None;
    let mut add = |m: Manifest| match merged.as_mut() {
        Some(all) => all.merge(m),
        None => merged = Some(m),
    };
    for f in files {
        let fname = f.display().to_string();
        let file = File::open(&f).map_err(|source| SbomError::Io { file: fname.clone(), source })?;
        let stanza = db.take(&f);
        let mut m = read_package(std::io::BufReader::new(file), &fname, opts, stanza)?;
        m.source_mut().path = Some(f);
        add(m);
    }
    if let Some(m) = db.rest(opts) {
        add(m);
    }
    if let Some(all) = merged.as_mut() {
        for w in db.warnings {
            all.warn(w);
        }
    }
    merged.ok_or_else(|| SbomError::UnknownFormat {
        file: name,
        reason:
            "it is a directory with no *.md5sums files and no conffiles; pass an SBOM file, or a dpkg info/status.d directory"
                .into(),
    })
}

#[cfg(test)]
mod tests;
