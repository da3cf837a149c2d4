//! dpkg `*.md5sums` files: `<md5>  <path>` per line, paths relative to `/`.
//! Debian and Ubuntu keep them in `/var/lib/dpkg/info/<pkg>[:<arch>].md5sums`,
//! distroless images in `/var/lib/dpkg/status.d/<pkg>.md5sums`. MD5 is weak,
//! but for many Debian images it is the only per-file baseline there is.

use std::fs::File;
use std::io::BufRead;
use std::path::Path;

use super::error::{SbomError, hint};
use super::model::{DigestBuf, HashAlg, Manifest, PackageRef, SbomFormat};
use super::sink::Sink;
use super::text::LineReader;
use super::{LoadOptions, load_reader};

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
    let mut lines = LineReader::new(r, name);
    let mut sink = Sink::new(SbomFormat::DpkgMd5sums, name);
    let package = package_name(name)
        .map(|n| sink.m.add_package(PackageRef { name: n.to_owned(), ..Default::default() }));
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
    Ok(sink.finish(opts))
}

/// Every `*.md5sums` in `dir`, merged (sorted by name, so the result does
/// not depend on directory order).
pub(crate) fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Manifest, SbomError> {
    let name = dir.display().to_string();
    let io_err = |source| SbomError::Io { file: name.clone(), source };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md5sums"))
        .collect();
    files.sort();
    let mut merged: Option<Manifest> = None;
    for f in files {
        let fname = f.display().to_string();
        let file = File::open(&f).map_err(|source| SbomError::Io { file: fname.clone(), source })?;
        let opts = LoadOptions { format: Some(SbomFormat::DpkgMd5sums), ..opts.clone() };
        let mut m = load_reader(file, &fname, &opts)?;
        m.source_mut().path = Some(f);
        match merged.as_mut() {
            Some(all) => all.merge(m),
            None => merged = Some(m),
        }
    }
    merged.ok_or_else(|| SbomError::UnknownFormat {
        file: name,
        reason:
            "it is a directory with no *.md5sums files; pass an SBOM file, or a dpkg info/status.d directory"
                .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{HashAlg, LoadOptions, load_reader};
    use super::package_name;

    #[test]
    fn reads_relative_paths_and_package_from_name() {
        let text = "e11d70c96979a1328ae4e7e50542782b  usr/lib/x/libsqlite3.so.0.8.6\n\
                    00000000000000000000000000000000  usr/share/doc/placeholder\n\
                    9d8facc2fa9d2df52f1c7cb4e5fa4741 *usr/share/doc/README\n";
        let m = load_reader(text.as_bytes(), "/x/libsqlite3-0:arm64.md5sums", &LoadOptions::default())
            .expect("loads");
        assert_eq!(m.len(), 3);
        let e = m.get("/usr/lib/x/libsqlite3.so.0.8.6").expect("lib");
        assert_eq!(
            e.digest(HashAlg::Md5).map(hex::encode).as_deref(),
            Some("e11d70c96979a1328ae4e7e50542782b")
        );
        assert_eq!(e.package(&m).map(|p| p.name.as_str()), Some("libsqlite3-0"));
        assert!(m.get("/usr/share/doc/README").expect("readme").has_digests());
        assert!(!m.get("/usr/share/doc/placeholder").expect("placeholder").has_digests());
        assert_eq!(package_name("a/b/libc6:amd64.md5sums"), Some("libc6"));
        assert_eq!(package_name("nope.txt"), None);
    }

    #[test]
    fn a_directory_of_md5sums_is_one_manifest() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("libc6:amd64.md5sums"),
            "e11d70c96979a1328ae4e7e50542782b  lib/libc.so.6\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("bash.md5sums"), "9d8facc2fa9d2df52f1c7cb4e5fa4741  bin/bash\n")
            .expect("write");
        std::fs::write(dir.path().join("bash.list"), "/bin/bash\n").expect("write");
        let m = super::super::load_path(dir.path(), &LoadOptions::default()).expect("loads");
        assert_eq!(m.len(), 2);
        assert_eq!(m.sources().len(), 2);
        assert_eq!(m.get("/bin/bash").and_then(|e| e.package(&m)).map(|p| p.name.as_str()), Some("bash"));
        assert_eq!(
            m.get("/lib/libc.so.6").and_then(|e| e.package(&m)).map(|p| p.name.as_str()),
            Some("libc6")
        );
        let empty = tempfile::tempdir().expect("temp dir");
        let err = super::super::load_path(empty.path(), &LoadOptions::default()).expect_err("no md5sums");
        assert!(err.to_string().contains("no *.md5sums"), "{err}");
    }

    #[test]
    fn rejects_a_bad_line_by_number() {
        let text = "e11d70c96979a1328ae4e7e50542782b  usr/bin/a\nnot a sum\n";
        let err = load_reader(text.as_bytes(), "p.md5sums", &LoadOptions::default()).expect_err("bad");
        assert!(err.to_string().starts_with("p.md5sums: line 2"), "{err}");
    }
}
