//! The apk installed database (`/lib/apk/db/installed`) of Alpine, Wolfi and
//! Chainguard images: often the only per-file baseline such an image has.
//!
//! One block per package, separated by blank lines; `P:` name, `V:`
//! version, `F:` a directory, then for each file in it `R:` name, optional
//! `a:uid:gid:mode` and `Z:Q1<base64 SHA-1>` (`Q2` is SHA-256 in apk v3).
//! apk writes a symlink's digest as that of its target path, with mode 0777:
//! we mark such entries [`super::FileEntry::is_symlink`].

use std::io::BufRead;

use base64::Engine;

use super::LoadOptions;
use super::error::{SbomError, hint};
use super::model::{DigestBuf, HashAlg, Manifest, PackageRef, SbomFormat};
use super::sink::Sink;
use super::text::LineReader;

struct PendingFile {
    path: String,
    digests: DigestBuf,
    symlink: bool,
}

struct State {
    sink: Sink,
    name: Option<String>,
    version: Option<String>,
    package: Option<u32>,
    dir: String,
    file: Option<PendingFile>,
}

impl State {
    fn package(&mut self) -> u32 {
        if let Some(p) = self.package {
            return p;
        }
        let p = self.sink.m.add_package(PackageRef {
            name: self.name.clone().unwrap_or_default(),
            version: self.version.clone(),
            purl: None,
        });
        self.package = Some(p);
        p
    }

    fn commit<R: BufRead>(&mut self, lines: &LineReader<R>) -> Result<(), SbomError> {
        let Some(f) = self.file.take() else {
            return Ok(());
        };
        let package = self.package();
        self.sink
            .add_file(&f.path, &f.digests, Some(package), f.symlink)
            .map_err(|e| lines.malformed(e.message(), hint::TOO_LONG))?;
        Ok(())
    }

    fn end_block<R: BufRead>(&mut self, lines: &LineReader<R>) -> Result<(), SbomError> {
        self.commit(lines)?;
        self.name = None;
        self.version = None;
        self.package = None;
        self.dir.clear();
        Ok(())
    }
}

pub(crate) fn read(r: impl BufRead, name: &str, opts: &LoadOptions) -> Result<Manifest, SbomError> {
    let mut lines = LineReader::new(r, name);
    let mut st = State {
        sink: Sink::new(SbomFormat::ApkInstalled, name),
        name: None,
        version: None,
        package: None,
        dir: String::new(),
        file: None,
    };
    // Owned: committing a file needs `lines` for its error position.
    while let Some(line) = lines.next_line()?.map(str::to_owned) {
        if line.is_empty() {
            st.end_block(&lines)?;
            continue;
        }
        let b = line.as_bytes();
        if b.len() < 2 || b[1] != b':' {
            let shown: String = line.chars().take(60).collect();
            return Err(lines.malformed(
                format!("expected a `X:value` line of the apk database, found {shown:?}"),
                "pass /lib/apk/db/installed as it is in the image",
            ));
        }
        let value = &line[2..];
        match b[0] {
            b'P' => {
                st.name = Some(value.to_owned());
                if let Some(p) = st.package {
                    let v = value.to_owned();
                    if let Some(pkg) = st.sink.m.package_mut(p) {
                        pkg.name = v;
                    }
                }
            }
            b'V' => {
                st.version = Some(value.to_owned());
                if let Some(p) = st.package {
                    let v = Some(value.to_owned());
                    if let Some(pkg) = st.sink.m.package_mut(p) {
                        pkg.version = v;
                    }
                }
            }
            b'F' => {
                st.commit(&lines)?;
                st.dir.clear();
                st.dir.push_str(value);
            }
            b'R' => {
                st.commit(&lines)?;
                let path = if st.dir.is_empty() { value.to_owned() } else { format!("{}/{value}", st.dir) };
                st.file = Some(PendingFile { path, digests: DigestBuf::default(), symlink: false });
            }
            b'a' => {
                if let Some(f) = st.file.as_mut() {
                    let mode = value.rsplit(':').next().and_then(|m| u32::from_str_radix(m, 8).ok());
                    f.symlink = mode.is_some_and(|m| m & 0o777 == 0o777);
                }
            }
            b'Z' => {
                let Some(f) = st.file.as_mut() else { continue };
                let decoded = match value.get(..2) {
                    Some("Q1") => Some(HashAlg::Sha1),
                    Some("Q2") => Some(HashAlg::Sha256),
                    _ => None,
                }
                .and_then(|alg| {
                    Some((alg, base64::engine::general_purpose::STANDARD.decode(&value[2..]).ok()?))
                });
                match decoded {
                    Some((alg, raw)) => {
                        let hint_path = f.path.clone();
                        st.sink.push_raw(&mut f.digests, alg, &raw, &hint_path);
                    }
                    None => {
                        let (p, v) = (f.path.clone(), value.to_owned());
                        st.sink.bad_digest(|| format!("{p} (Z:{v})"));
                    }
                }
            }
            _ => {}
        }
    }
    st.end_block(&lines)?;
    Ok(st.sink.finish(opts))
}

#[cfg(test)]
mod tests {
    use super::super::{LoadOptions, load_reader};

    #[test]
    fn reads_files_modes_and_digests() {
        let db = "C:Q1xxx\nP:busybox\nV:1.36-r0\nF:bin\nR:busybox\na:0:0:755\nZ:Q1GBFhJfyVRqsiXdb06FDDXaJD6M0=\n\
                  R:sh\na:0:0:777\nZ:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nF:etc\nR:motd\nZ:bogus\n\nP:musl\nV:1\nR:top\n";
        let m = load_reader(db.as_bytes(), "installed", &LoadOptions::default()).expect("loads");
        assert_eq!(m.len(), 4);
        let bb = m.get("/bin/busybox").expect("busybox");
        assert_eq!(
            bb.digest(super::HashAlg::Sha1).map(hex::encode).as_deref(),
            Some("18116125fc9546ab225dd6f4e850c35da243e8cd")
        );
        assert_eq!(
            bb.package(&m).map(|p| (p.name.as_str(), p.version.as_deref())),
            Some(("busybox", Some("1.36-r0")))
        );
        // All-zero placeholder: no digest, a warning, not a mismatch.
        let sh = m.get("/bin/sh").expect("sh");
        assert!(sh.is_symlink() && !sh.has_digests());
        assert!(!bb.is_symlink());
        assert!(!m.get("/etc/motd").expect("motd").has_digests());
        assert_eq!(m.get("/top").and_then(|e| e.package(&m)).map(|p| p.name.as_str()), Some("musl"));
        let w = m.warnings().join("\n");
        assert!(w.contains("placeholder") && w.contains("bin/sh"), "{w}");
        assert!(w.contains("not valid") && w.contains("Z:bogus"), "{w}");
    }

    #[test]
    fn rejects_garbage_and_non_utf8_with_line_numbers() {
        let err =
            load_reader(&b"P:x\nthis is not apk\n"[..], "db", &LoadOptions::default()).expect_err("garbage");
        assert!(err.to_string().contains("db: line 2"), "{err}");
        let err =
            load_reader(&b"P:x\nF:usr\nR:caf\xe9\n"[..], "db", &LoadOptions::default()).expect_err("latin-1");
        let s = err.to_string();
        assert!(s.contains("line 3 column 6") && s.contains("UTF-8"), "{s}");
    }
}
