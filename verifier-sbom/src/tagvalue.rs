//! SPDX 2.x tag-value (`Tag: value` lines, `.spdx`).
//!
//! An element starts at `PackageName:`, `FileName:` or `SnippetSPDXID:`
//! and runs until the next one; its `SPDXID:` and fields follow it. Files
//! belong to a package through `Relationship: P CONTAINS F` (2.3) or, as
//! older documents do, by being listed after it; explicit relationships win.
//! Multi-line values sit between `<text>` and `</text>` and are skipped.

use std::io::BufRead;

use super::LoadOptions;
use super::error::{Location, SbomError, hint};
use super::links::{Links, is_image_purl, note_image};
use super::model::{DigestBuf, Manifest, PackageRef, SbomFormat};
use super::sink::Sink;
use super::text::LineReader;

struct PendingFile {
    path: String,
    id: Option<String>,
    digests: DigestBuf,
}

enum Element {
    None,
    Package { index: u32, container: bool },
    File(PendingFile),
}

struct State {
    sink: Sink,
    links: Links,
    current: Element,
    /// The package files listed from here on belong to, by position.
    positional_package: Option<u32>,
    positional: Vec<(usize, u32)>,
}

impl State {
    /// Ends the current element: adds a pending file, notes an image.
    fn end_element(&mut self) -> Result<(), String> {
        match std::mem::replace(&mut self.current, Element::None) {
            Element::None => {}
            Element::Package { index, container } => {
                let p = &self.sink.m.packages()[index as usize];
                if container || p.purl.as_deref().is_some_and(is_image_purl) {
                    let (name, purl) = (p.name.clone(), p.purl.clone());
                    note_image(self.sink.m.source_mut(), &name, purl.as_deref(), None);
                }
            }
            Element::File(f) => {
                let index = self.sink.add_file(&f.path, &f.digests, None, false).map_err(|e| e.message())?;
                if let Some(i) = index {
                    if let Some(id) = &f.id {
                        self.links.file(id, i);
                    }
                    if let Some(p) = self.positional_package {
                        self.positional.push((i, p));
                    }
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn read(r: impl BufRead, name: &str, opts: &LoadOptions) -> Result<Manifest, SbomError> {
    let mut lines = LineReader::new(r, name);
    let mut st = State {
        sink: Sink::new(SbomFormat::Spdx2TagValue, name),
        links: Links::default(),
        current: Element::None,
        positional_package: None,
        positional: Vec::new(),
    };
    let mut text_since: Option<u64> = None;
    // Kept here too: `lines` is borrowed by the current line.
    let mut line_no = 0u64;
    let malformed = |line: u64, message: String, hint: &'static str| SbomError::Malformed {
        file: name.to_owned(),
        at: Location::line(line),
        message,
        hint,
    };
    while let Some(line) = lines.next_line()? {
        line_no += 1;
        if text_since.is_some() {
            if line.contains("</text>") {
                text_since = None;
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((tag, value)) = trimmed.split_once(':') else {
            let shown: String = trimmed.chars().take(60).collect();
            return Err(malformed(
                line_no,
                format!("expected a `Tag: value` line, found {shown:?}"),
                "regenerate the SBOM, or check that it is SPDX tag-value",
            ));
        };
        let value = value.trim();
        if value.starts_with("<text>") && !value.contains("</text>") {
            text_since = Some(line_no);
            continue;
        }
        let value = value.strip_prefix("<text>").and_then(|v| v.strip_suffix("</text>")).unwrap_or(value);
        let too_long = |what: &str| format!("{what} is {} bytes long", value.len());
        if value.len() > 64 * 1024 {
            return Err(malformed(line_no, too_long(tag), hint::TOO_LONG));
        }
        let ended = |st: &mut State| st.end_element().map_err(|m| malformed(line_no, m, hint::TOO_LONG));
        match tag {
            "SPDXVersion" => st.sink.m.source_mut().spec_version = Some(value.to_owned()),
            "DocumentName" => st.sink.m.source_mut().document_name = Some(value.to_owned()),
            "DocumentNamespace" => st.sink.m.source_mut().namespace = Some(value.to_owned()),
            "PackageName" => {
                ended(&mut st)?;
                let index =
                    st.sink.m.add_package(PackageRef { name: value.to_owned(), ..Default::default() });
                st.current = Element::Package { index, container: false };
                st.positional_package = Some(index);
            }
            "FileName" => {
                ended(&mut st)?;
                st.current = Element::File(PendingFile {
                    path: value.to_owned(),
                    id: None,
                    digests: DigestBuf::default(),
                });
            }
            "SnippetSPDXID" | "LicenseID" => ended(&mut st)?,
            "SPDXID" => match &mut st.current {
                Element::File(f) => f.id = Some(value.to_owned()),
                Element::Package { index, .. } => st.links.package(value, *index),
                Element::None => {}
            },
            "PackageVersion" => {
                if let Element::Package { index, .. } = st.current
                    && let Some(p) = st.sink.m.package_mut(index)
                {
                    p.version = Some(value.to_owned());
                }
            }
            "ExternalRef" => {
                let mut parts = value.split_whitespace();
                let (_category, kind, locator) = (parts.next(), parts.next(), parts.next());
                if let (Element::Package { index, .. }, Some("purl"), Some(purl)) =
                    (&st.current, kind, locator)
                    && let Some(p) = st.sink.m.package_mut(*index)
                {
                    p.purl.get_or_insert_with(|| purl.to_owned());
                }
            }
            "PrimaryPackagePurpose" => {
                if let Element::Package { container, .. } = &mut st.current {
                    *container = value == "CONTAINER";
                }
            }
            "FileChecksum" => {
                if let Element::File(f) = &mut st.current {
                    let (alg, hex_value) = value.split_once(':').unwrap_or((value, ""));
                    st.sink.push_hex(&mut f.digests, alg.trim(), hex_value, &f.path);
                }
            }
            "Relationship" => {
                let mut parts = value.split_whitespace();
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some("CONTAINS"), Some(b)) => st.links.contains(a, b),
                    (Some(a), Some("CONTAINED_BY"), Some(b)) => st.links.contains(b, a),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let Some(start) = text_since {
        return Err(SbomError::Truncated {
            file: name.to_owned(),
            at: Location { line: Some(start), ..Location::default() },
            message: "a <text> value starts here and never ends".into(),
        });
    }
    st.end_element().map_err(|m| malformed(line_no, m, hint::TOO_LONG))?;
    st.links.apply(&mut st.sink.m);
    for (file, package) in st.positional {
        st.sink.m.set_package_if_none(file, package);
    }
    Ok(st.sink.finish(opts))
}

#[cfg(test)]
mod tests {
    use super::super::{HashAlg, LoadOptions, SbomError, load_reader};

    const DOC: &str = "SPDXVersion: SPDX-2.3\nDocumentName: img\nDocumentNamespace: https://x/y\n\
        ## Package\nPackageName: busybox\nSPDXID: SPDXRef-bb\nPackageVersion: 1.36\n\
        ExternalRef: PACKAGE-MANAGER purl pkg:apk/alpine/busybox@1.36\n\
        PackageDescription: <text>multi\nline: with colon\n</text>\n\
        FileName: ./bin/busybox\nSPDXID: SPDXRef-f1\nFileChecksum: SHA1: d6a770ba38583ed4bb4525bd96e50461655d2758\n\
        FileChecksum: sha256: 2dba00b048555bd12d5527d4b16d2ca110a129f5c719d8505f23dc9d87ef7640\n\
        FileChecksum: MD2: 00\n\
        PackageName: other\nSPDXID: SPDXRef-other\n\
        FileName: /etc/motd\nSPDXID: SPDXRef-f2\nFileChecksum: SHA1: 0000000000000000000000000000000000000000\n\
        Relationship: SPDXRef-bb CONTAINS SPDXRef-f2\n";

    #[test]
    fn reads_files_checksums_and_packages() {
        let m = load_reader(DOC.as_bytes(), "doc.spdx", &LoadOptions::default()).expect("loads");
        assert_eq!(m.source().spec_version.as_deref(), Some("SPDX-2.3"));
        assert_eq!(m.source().document_name.as_deref(), Some("img"));
        assert_eq!(m.len(), 2);
        let bb = m.get("/bin/busybox").expect("busybox");
        assert_eq!(bb.digests().count(), 2);
        assert!(bb.sha256().is_some() && bb.digest(HashAlg::Sha1).is_some());
        let p = bb.package(&m).expect("package");
        assert_eq!((p.name.as_str(), p.purl.as_deref()), ("busybox", Some("pkg:apk/alpine/busybox@1.36")));
        // The explicit relationship wins over the position (after `other`).
        let motd = m.get("/etc/motd").expect("motd");
        assert!(!motd.has_digests());
        assert_eq!(motd.package(&m).map(|p| p.name.as_str()), Some("busybox"));
        let w = m.warnings().join("\n");
        assert!(w.contains("MD2 (1)") && w.contains("placeholder"), "{w}");
    }

    #[test]
    fn unterminated_text_is_truncation() {
        let doc = "SPDXVersion: SPDX-2.2\nPackageName: x\nPackageComment: <text>never\nends\n";
        let err = load_reader(doc.as_bytes(), "t.spdx", &LoadOptions::default()).expect_err("truncated");
        assert!(matches!(err, SbomError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("t.spdx: line 3"), "{err}");
    }

    #[test]
    fn line_without_tag_is_an_error() {
        let doc = "SPDXVersion: SPDX-2.2\nPackageName: x\ngarbage here\n";
        let err = load_reader(doc.as_bytes(), "t.spdx", &LoadOptions::default()).expect_err("garbage");
        assert!(
            err.to_string().contains("t.spdx: line 3") && err.to_string().contains("garbage here"),
            "{err}"
        );
    }
}
