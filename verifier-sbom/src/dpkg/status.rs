//! The dpkg status database: `/var/lib/dpkg/status` (one stanza per
//! package) or distroless `/var/lib/dpkg/status.d/<pkg>` (one file per
//! package). What it adds to the `*.md5sums` files is the conffiles:
//! dpkg leaves `/etc` files a package owns out of its md5sums and records
//! their MD5 in the `Conffiles:` field instead, one ` <path> <md5>` line
//! each, sometimes followed by `obsolete` (the package no longer ships it)
//! or `remove-on-upgrade`; `newconffile` in place of the MD5 means dpkg has
//! not hashed it yet. Versions come from here too.
//!
//! Only what dpkg itself wrote is read, leniently: a line that does not fit
//! is skipped, never a reason to refuse the database.

use std::path::{Path, PathBuf};

/// Largest status file read (a real one is a few MiB).
const MAX_STATUS: u64 = 64 << 20;

/// One package's stanza, the fields the manifest uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Stanza {
    pub package: String,
    pub arch: Option<String>,
    pub version: Option<String>,
    pub conffiles: Vec<Conffile>,
}

/// One line of `Conffiles:`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Conffile {
    pub path: String,
    /// The MD5 in hex, `None` for `newconffile` (not hashed yet).
    pub md5: Option<String>,
    /// `obsolete`: no longer shipped by the package.
    pub obsolete: bool,
}

impl Stanza {
    /// Conffiles the package still ships.
    pub fn shipped(&self) -> impl Iterator<Item = &Conffile> {
        self.conffiles.iter().filter(|c| !c.obsolete)
    }
}

/// The status files of a dpkg database directory: `<dir>/../status` for
/// `info/`, every package file in `status.d/` itself (not `*.md5sums`).
pub(crate) fn sources(dir: &Path) -> Vec<PathBuf> {
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("info") => {
            let status = dir.join("../status");
            if status.is_file() { vec![status] } else { Vec::new() }
        }
        Some("status.d") => {
            let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
                    !name.starts_with('.') && !name.ends_with(".md5sums") && p.is_file()
                })
                .collect();
            files.sort();
            files
        }
        _ => Vec::new(),
    }
}

/// Reads a status file; why not, when it cannot be read.
pub(crate) fn read(path: &Path) -> Result<Vec<Stanza>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_STATUS {
        return Err(format!("{len} bytes is more than any dpkg status file holds"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

/// Parses stanzas; packages that are not installed (removed, config files
/// only, half-installed) are left out: the image does not ship them.
pub(crate) fn parse(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    let mut installed = true;
    let mut in_conffiles = false;
    let mut finish = |cur: &mut Stanza, installed: &mut bool| {
        let s = std::mem::take(cur);
        if !s.package.is_empty() && *installed {
            out.push(s);
        }
        *installed = true;
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            finish(&mut cur, &mut installed);
            in_conffiles = false;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if in_conffiles && let Some(c) = conffile(line) {
                cur.conffiles.push(c);
            }
            continue;
        }
        in_conffiles = false;
        let Some((field, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match field.to_ascii_lowercase().as_str() {
            "package" => value.clone_into(&mut cur.package),
            "version" => cur.version = Some(value.to_owned()),
            "architecture" => cur.arch = Some(value.to_owned()),
            // `<want> <flag> <status>`: only `installed` is in the image.
            "status" => installed = value.split_whitespace().nth(2) == Some("installed"),
            "conffiles" => in_conffiles = true,
            _ => {}
        }
    }
    finish(&mut cur, &mut installed);
    out
}

/// ` /etc/foo.conf <md5>[ obsolete][ remove-on-upgrade]`. Paths may hold
/// spaces, so the line is read from its end.
fn conffile(line: &str) -> Option<Conffile> {
    let mut rest = line.trim();
    let mut obsolete = false;
    loop {
        let (head, last) = rest.rsplit_once(' ')?;
        match last {
            "obsolete" => obsolete = true,
            "remove-on-upgrade" => {}
            _ => break,
        }
        rest = head.trim_end();
    }
    let (path, hash) = rest.rsplit_once(' ')?;
    let path = path.trim_end();
    if !path.starts_with('/') {
        return None;
    }
    let md5 = match hash {
        "newconffile" => None,
        h if h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Some(h.to_owned()),
        _ => return None,
    };
    Some(Conffile { path: path.to_owned(), md5, obsolete })
}
