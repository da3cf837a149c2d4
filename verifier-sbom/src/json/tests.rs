//! Quirks and bad input for the JSON readers, on small synthetic documents.

use base64::Engine;

use super::super::{
    Envelope, HashAlg, LoadOptions, Manifest, SbomError, SbomFormat, load_bytes, load_reader,
};

const SHA256_A: &str = "2dba00b048555bd12d5527d4b16d2ca110a129f5c719d8505f23dc9d87ef7640";
const SHA256_B: &str = "366a3f5653e34673b875891b021647440d0127c2ef041e3b1a22da2a7d4f3703";
const SHA1_A: &str = "a097f77be3b9e1586fd2a2176a247bd3e7c83a3e";

/// A reader that hands out one byte per call: every value then straddles a
/// buffer refill in the streaming path.
struct OneByte<'a>(&'a [u8]);

impl std::io::Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(out)) => {
                *out = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// Loads through the streaming path (whole and byte by byte) and the
/// in-memory path, which must agree.
fn load(doc: &str) -> Result<Manifest, SbomError> {
    let streamed = load_reader(doc.as_bytes(), "test.json", &LoadOptions::default());
    let trickled = load_reader(OneByte(doc.as_bytes()), "test.json", &LoadOptions::default());
    match (&streamed, &trickled) {
        (Ok(a), Ok(b)) => assert_eq!((a.len(), a.packages().len()), (b.len(), b.packages().len())),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("whole and trickled streams disagree: {streamed:?} vs {trickled:?}"),
    }
    let sliced = load_bytes(doc.as_bytes(), "test.json", &LoadOptions::default());
    match (&streamed, &sliced) {
        (Ok(a), Ok(b)) => assert_eq!(a.len(), b.len()),
        // serde_json's stream and slice readers differ by one in columns.
        (Err(a), Err(b)) => {
            assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b), "{a} vs {b}");
            // Paths agree except at the nesting limit, which the streaming
            // path (a fresh parser per element) meets one level later.
            assert_eq!(a.location().map(|l| l.line), b.location().map(|l| l.line), "{a} vs {b}");
            if !a.to_string().contains("recursion limit") {
                assert_eq!(a.location().map(|l| &l.path), b.location().map(|l| &l.path), "{a} vs {b}");
            }
        }
        _ => panic!("stream and slice disagree: {streamed:?} vs {sliced:?}"),
    }
    streamed
}

fn spdx_files(files: &str) -> String {
    format!(r#"{{"spdxVersion": "SPDX-2.3", "name": "t", "files": [{files}]}}"#)
}

fn err(doc: &str) -> String {
    load(doc).expect_err("should fail").to_string()
}

#[test]
fn spdx_quirks_lowercase_null_zero_sha1_duplicates_conflicts() {
    let doc = spdx_files(&format!(
        r#"{{"SPDXID": "SPDXRef-a", "fileName": "./usr/bin/a", "checksums": [
              {{"algorithm": "sha256", "checksumValue": "{SHA256_A}"}},
              {{"algorithm": "SHA1", "checksumValue": "0000000000000000000000000000000000000000"}}]}},
           {{"fileName": "usr/bin/b", "checksums": null}},
           {{"fileName": "/usr/bin/a", "checksums": [{{"algorithm": "SHA256", "checksumValue": "{SHA256_B}"}}]}},
           {{"fileName": "/usr//bin/./c", "checksums": [{{"algorithm": "SHA1", "checksumValue": "{SHA1_A}"}},
              {{"algorithm": "MD2", "checksumValue": "00"}}, {{"algorithm": "SHA256", "checksumValue": "xyz"}}]}},
           {{"fileName": "/usr/bin/c", "checksums": [{{"algorithm": "SHA1", "checksumValue": "{SHA1_A}"}}]}}"#
    ));
    let m = load(&doc).expect("loads");
    assert_eq!(m.len(), 3);
    let a = m.get("/usr/bin/a").expect("a");
    assert!(a.has_conflict());
    assert!(a.matches(HashAlg::Sha256, &hex::decode(SHA256_A).expect("hex")));
    assert!(a.matches(HashAlg::Sha256, &hex::decode(SHA256_B).expect("hex")));
    assert!(a.digest(HashAlg::Sha1).is_none(), "an all-zero SHA-1 is no digest");
    assert!(!m.get("/usr/bin/b").expect("b").has_digests());
    let c = m.get("/usr/bin/c").expect("c");
    assert!(!c.has_conflict(), "the same digest twice is no conflict");
    assert_eq!(c.digests().count(), 1);
    let w = m.warnings().join("\n");
    for expect in
        ["different digests", "/usr/bin/a", "placeholder", "MD2 (1)", "not valid", "no usable digest"]
    {
        assert!(w.contains(expect), "{expect:?} missing in {w}");
    }
}

#[test]
fn scan_directory_prefix_is_stripped_or_taken_from_options() {
    let doc = spdx_files(&format!(
        r#"{{"fileName": "/tmp/x/rootfs/usr/bin/a", "checksums": [{{"algorithm": "SHA256", "checksumValue": "{SHA256_A}"}}]}},
           {{"fileName": "/tmp/x/rootfs/etc/passwd", "checksums": []}}"#
    ));
    // /tmp is a real top-level directory: ambiguous, only a warning.
    let m = load(&doc).expect("loads");
    assert!(m.get("/tmp/x/rootfs/usr/bin/a").is_some());
    assert!(
        m.warnings().iter().any(|w| w.contains("/tmp/x/rootfs") && w.contains("root prefix")),
        "{:?}",
        m.warnings()
    );
    let opts = LoadOptions { root_prefix: Some("/tmp/x/rootfs/".into()), ..LoadOptions::default() };
    let m = load_reader(doc.as_bytes(), "t", &opts).expect("loads");
    assert!(m.get("/usr/bin/a").expect("stripped").sha256().is_some());
    assert!(m.get("/etc/passwd").is_some());
    // `rootfs/...` (not a standard top-level dir, a rootfs below): stripped.
    let doc = spdx_files(r#"{"fileName": "rootfs/usr/bin/a"}, {"fileName": "rootfs/etc/os-release"}"#);
    let m = load(&doc).expect("loads");
    assert!(m.get("/usr/bin/a").is_some() && m.get("/etc/os-release").is_some());
    assert!(m.warnings().iter().any(|w| w.contains("started with /rootfs")), "{:?}", m.warnings());
}

#[test]
fn spdx_packages_by_has_files_and_relationships() {
    let doc = format!(
        r#"{{"spdxVersion": "SPDX-2.2",
            "relationships": [{{"spdxElementId": "SPDXRef-p2", "relationshipType": "CONTAINS", "relatedSpdxElement": "SPDXRef-f2"}},
                              {{"spdxElementId": "SPDXRef-f3", "relationshipType": "CONTAINED_BY", "relatedSpdxElement": "SPDXRef-p2"}}],
            "files": [{{"SPDXID": "SPDXRef-f1", "fileName": "/bin/one", "checksums": [{{"algorithm": "SHA256", "checksumValue": "{SHA256_A}"}}]}},
                      {{"SPDXID": "SPDXRef-f2", "fileName": "/bin/two"}}, {{"SPDXID": "SPDXRef-f3", "fileName": "/bin/three"}}],
            "packages": [{{"SPDXID": "SPDXRef-p1", "name": "one", "versionInfo": "1", "hasFiles": ["SPDXRef-f1"],
                          "externalRefs": [{{"referenceType": "purl", "referenceLocator": "pkg:apk/wolfi/one@1"}}]}},
                         {{"SPDXID": "SPDXRef-p2", "name": "two", "externalRefs": null, "hasFiles": null}},
                         {{"SPDXID": "SPDXRef-img", "name": "cgr.dev/x/y", "primaryPackagePurpose": "CONTAINER",
                          "externalRefs": [{{"referenceType": "purl", "referenceLocator": "pkg:oci/y@sha256%3A{SHA256_B}?repository_url=cgr.dev/x/y"}}]}}]}}"#
    );
    let m = load(&doc).expect("loads");
    let pkg = |p: &str| m.get(p).and_then(|e| e.package(&m)).map(|p| (p.name.clone(), p.purl.clone()));
    assert_eq!(pkg("/bin/one"), Some(("one".into(), Some("pkg:apk/wolfi/one@1".into()))));
    assert_eq!(pkg("/bin/two").map(|p| p.0), Some("two".into()));
    assert_eq!(pkg("/bin/three").map(|p| p.0), Some("two".into()));
    assert_eq!(m.source().image_name.as_deref(), Some("cgr.dev/x/y"));
    assert_eq!(m.source().image_digest.as_deref(), Some(format!("sha256:{SHA256_B}").as_str()));
}

#[test]
fn cyclonedx_files_nested_components_properties_and_evidence() {
    let doc = format!(
        r#"{{"bomFormat": "CycloneDX", "specVersion": "1.6",
            "metadata": {{"component": {{"type": "container", "name": "alpine", "version": "sha256:{SHA256_B}"}}}},
            "components": [
              {{"type": "file", "name": "/usr/bin/top", "hashes": [{{"alg": "SHA-256", "content": "{SHA256_A}"}}]}},
              {{"type": "file", "name": "ignored-name", "hashes": [{{"alg": "SHA-1", "content": "{SHA1_A}"}}],
                "properties": [{{"name": "syft:location:0:path", "value": "/usr/lib/libz.so.1"}},
                               {{"name": "syft:location:1:path", "value": "/lib/libz.so.1"}},
                               {{"name": "syft:location:0:layerID", "value": "sha256:00"}}]}},
              {{"type": "library", "name": "musl", "version": "1.2", "purl": "pkg:apk/alpine/musl@1.2",
                "hashes": [{{"alg": "SHA-256", "content": "{SHA256_B}"}}],
                "components": [
                  {{"type": "file", "name": "x", "evidence": {{"occurrences": [{{"location": "/lib/ld-musl.so.1"}}]}},
                    "hashes": [{{"alg": "SHA-512", "content": "{SHA256_A}{SHA256_B}"}}]}},
                  {{"type": "library", "name": "inner", "components": [{{"type": "file", "name": "/lib/inner.so"}}]}}]}},
              {{"type": "file", "name": "/usr/bin/nullhashes", "hashes": null, "properties": null}}]}}"#
    );
    let m = load(&doc).expect("loads");
    assert_eq!(m.source().format, SbomFormat::CycloneDxJson);
    assert_eq!(m.source().spec_version.as_deref(), Some("1.6"));
    assert_eq!(m.source().image_name.as_deref(), Some("alpine"));
    assert_eq!(m.len(), 6, "{:?}", m.files().map(|(p, _)| p).collect::<Vec<_>>());
    assert!(m.get("/usr/bin/top").expect("top").sha256().is_some());
    assert!(m.get("/ignored-name").is_none());
    assert!(m.get("/usr/lib/libz.so.1").expect("libz").digest(HashAlg::Sha1).is_some());
    assert!(m.get("/lib/libz.so.1").expect("libz 2").digest(HashAlg::Sha1).is_some());
    let ld = m.get("/lib/ld-musl.so.1").expect("from evidence");
    assert!(ld.digest(HashAlg::Sha512).is_some());
    assert_eq!(ld.package(&m).map(|p| p.name.as_str()), Some("musl"));
    let inner = m.get("/lib/inner.so").and_then(|e| e.package(&m)).map(|p| p.name.as_str());
    assert_eq!(inner, Some("inner"), "the nearest enclosing component owns a file");
    // A library's own hash is a package digest, not a file in the image.
    assert!(m.paths_with_sha256(&hex::decode(SHA256_B).expect("hex").try_into().expect("32")).is_empty());
    assert_eq!(
        m.paths_with_sha256(&hex::decode(SHA256_A).expect("hex").try_into().expect("32")),
        ["/usr/bin/top"]
    );
}

/// cdxgen (`-t rootfs`) names a file component by its base name and puts
/// the path in a `SrcFile` property: two `adduser.mo` of different
/// languages must stay two files, at their paths.
#[test]
fn cyclonedx_cdxgen_src_file_property_is_the_path() {
    let file = |name: &str, path: &str, sha1: &str| {
        format!(
            r#"{{"name": "{name}", "type": "file", "purl": "pkg:generic/{name}",
                "hashes": [{{"alg": "MD5", "content": "2ba08fece3b3434a669f3c529bbea383"}}, {{"alg": "SHA-1", "content": "{sha1}"}}],
                "properties": [{{"name": "SrcFile", "value": "{path}"}}, {{"name": "internal:is_file", "value": "true"}}]}}"#
        )
    };
    let doc = format!(
        r#"{{"bomFormat": "CycloneDX", "specVersion": "1.7", "components": [{}, {}]}}"#,
        file("adduser.mo", "/usr/share/locale/de/LC_MESSAGES/adduser.mo", SHA1_A),
        file(
            "adduser.mo",
            "/usr/share/locale/fr/LC_MESSAGES/adduser.mo",
            "b04cd71b3ebce87e5a9a8e33dbd553190cd0acf5"
        ),
    );
    let m = load(&doc).expect("loads");
    assert_eq!(m.len(), 2, "{:?}", m.files().map(|(p, _)| p).collect::<Vec<_>>());
    assert!(m.get("/adduser.mo").is_none());
    let de = m.get("/usr/share/locale/de/LC_MESSAGES/adduser.mo").expect("de");
    let fr = m.get("/usr/share/locale/fr/LC_MESSAGES/adduser.mo").expect("fr");
    assert_ne!(de.digest(HashAlg::Sha1), fr.digest(HashAlg::Sha1));
}

#[test]
fn spdx3_json_ld_files_packages_contains() {
    let doc = format!(
        r#"{{"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": [
            {{"type": "SpdxDocument", "spdxId": "urn:doc", "name": "doc"}},
            {{"type": "software_File", "spdxId": "urn:f1", "name": "./bin/sh",
              "verifiedUsing": [{{"type": "Hash", "algorithm": "sha256", "hashValue": "{SHA256_A}"}}]}},
            {{"@type": "software_File", "@id": "urn:f2", "name": "/bin/dir", "software_fileKind": "directory"}},
            {{"type": "software_Package", "spdxId": "urn:p", "name": "busybox", "software_packageVersion": "1.36",
              "software_packageUrl": "pkg:apk/alpine/busybox@1.36"}},
            {{"type": "Relationship", "spdxId": "urn:r", "from": "urn:p", "relationshipType": "contains", "to": ["urn:f1"]}}]}}"#
    );
    let m = load(&doc).expect("loads");
    assert_eq!(m.source().format, SbomFormat::Spdx3JsonLd);
    assert_eq!(m.source().document_name.as_deref(), Some("doc"));
    assert_eq!(m.len(), 1);
    let sh = m.get("/bin/sh").expect("sh");
    assert!(sh.sha256().is_some());
    assert_eq!(sh.package(&m).and_then(|p| p.version.as_deref()), Some("1.36"));
}

fn dsse(statement: &str) -> String {
    let payload = base64::engine::general_purpose::STANDARD.encode(statement);
    format!(
        r#"{{"payloadType": "application/vnd.in-toto+json", "payload": "{payload}", "signatures": [{{"keyid": "", "sig": "MEUC"}}]}}"#
    )
}

fn statement() -> String {
    let sbom = spdx_files(&format!(
        r#"{{"fileName": "/bin/x", "checksums": [{{"algorithm": "SHA256", "checksumValue": "{SHA256_A}"}}]}}"#
    ));
    format!(
        r#"{{"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://spdx.dev/Document",
            "subject": [{{"name": "registry.example/app", "digest": {{"sha256": "{SHA256_B}"}}}}], "predicate": {sbom}}}"#
    )
}

#[test]
fn dsse_envelope_sigstore_bundle_and_legacy_cosign_predicate() {
    for (doc, envelope) in [
        (dsse(&statement()), Envelope::Dsse),
        (
            format!(
                r#"{{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnvelope": {}}}"#,
                dsse(&statement())
            ),
            Envelope::SigstoreBundle,
        ),
        (statement(), Envelope::InToto),
        // Two envelopes in JSON lines.
        (format!("{}\n{}\n", dsse(&statement()), dsse(&statement())), Envelope::Dsse),
    ] {
        let m = load(&doc).expect("loads");
        assert_eq!(m.source().format, SbomFormat::Spdx2Json);
        assert_eq!(m.source().envelope, Some(envelope));
        assert_eq!(m.len(), 1);
        assert!(m.get("/bin/x").expect("x").sha256().is_some());
        assert_eq!(m.source().image_name.as_deref(), Some("registry.example/app"));
        assert_eq!(m.source().image_digest.as_deref(), Some(format!("sha256:{SHA256_B}").as_str()));
        assert!(m.warnings().iter().any(|w| w.contains("signature")), "{:?}", m.warnings());
    }
    // cosign's old custom predicate: the SBOM as a JSON string in `Data`.
    let inner = serde_json::to_string(&spdx_files(r#"{"fileName": "/bin/y"}"#)).expect("json");
    let doc = format!(
        r#"{{"_type": "https://in-toto.io/Statement/v0.1", "predicate": {{"Data": {inner}, "Timestamp": "x"}}}}"#
    );
    assert!(load(&doc).expect("loads").get("/bin/y").is_some());
}

#[test]
fn bad_payloads_are_explained() {
    let e = err(r#"{"payloadType": "x", "payload": "!!!not base64!!!"}"#);
    assert!(e.contains("test.json") && e.contains("payload") && e.contains("not valid base64"), "{e}");
    // An error inside the decoded payload names the place inside it.
    let broken = statement().replace(r#""fileName": "/bin/x""#, r#""fileName": 42"#);
    let e = err(&dsse(&broken));
    assert!(
        e.contains("decoded DSSE payload") && e.contains("predicate.files[0]") && e.contains("invalid type"),
        "{e}"
    );
    let e = err(&dsse(
        r#"{"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {}}}"#,
    ));
    assert!(e.contains("https://slsa.dev/provenance/v1") && e.contains("not an SBOM"), "{e}");
}

#[test]
fn truncated_document() {
    let doc = spdx_files(r#"{"fileName": "/bin/a"}, {"fileName": "/bin/b", "checks"#);
    let e = load(&doc).expect_err("truncated");
    assert!(matches!(e, SbomError::Truncated { .. }), "{e}");
    let s = e.to_string();
    assert!(
        s.contains("test.json: line 1 column") && s.contains("files[1]") && s.contains("truncated"),
        "{s}"
    );
}

#[test]
fn wrong_types_name_the_place() {
    let e = err(&spdx_files(r#"{"fileName": "/bin/a"}, {"fileName": ["/bin/b"]}"#));
    assert!(e.contains("files[1]") && e.contains("invalid type: sequence"), "{e}");
    let e = err(r#"{"spdxVersion": "SPDX-2.3", "files": {"fileName": "/x"}}"#);
    assert!(e.contains("at files") && e.contains("expected a list of files"), "{e}");
    let e = err(r#"{"bomFormat": "CycloneDX", "components": [{"type": "file", "hashes": "nope"}]}"#);
    assert!(e.contains("components[0].hashes") && e.contains("invalid type"), "{e}");
    let e = err(r#"["not", "an", "object"]"#);
    assert!(e.contains("test.json") && e.contains("not an SBOM format") && e.contains("starts with"), "{e}");
    let e = err(r#"{"predicate": [1, 2]}"#);
    assert!(e.contains("at predicate") && e.contains("expected an SBOM object"), "{e}");
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // Deep nesting in a field we skip costs no stack (serde_json skips
    // iteratively): it loads.
    let deep = format!(
        r#"{{"spdxVersion": "SPDX-2.3", "files": [{{"fileName": "/a", "x": {}{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(load(&deep).expect("loads").len(), 1);
    // Deep nesting where we read is refused at serde_json's limit (128).
    let deep = format!(r#"{{"predicate": {}{}}}"#, r#"{"predicate": "#.repeat(200), "}".repeat(200));
    let e = err(&deep);
    assert!(e.contains("nest too deep") || e.contains("recursion limit"), "{e}");
    // Nested CycloneDX components, each a level deeper.
    let mut comps = String::from(r#"{"type": "file", "name": "/x"}"#);
    for _ in 0..1000 {
        comps = format!(r#"{{"type": "library", "name": "l", "components": [{comps}]}}"#);
    }
    let e = err(&format!(r#"{{"bomFormat": "CycloneDX", "components": [{comps}]}}"#));
    assert!(e.contains("recursion limit") && e.contains("nests this deep"), "{e}");
}

#[test]
fn huge_strings_are_refused() {
    let long = "a/".repeat(5000);
    let e = err(&spdx_files(&format!(r#"{{"fileName": "/{long}"}}"#)));
    assert!(e.contains("files[0]") && e.contains("bytes long"), "{e}");
    let name = "n".repeat(100_000);
    let e = err(&format!(r#"{{"spdxVersion": "SPDX-2.3", "packages": [{{"name": "{name}"}}]}}"#));
    assert!(e.contains("packages[0]") && e.contains("package name is 100000 bytes"), "{e}");
    // A digest far too long is dropped with a warning, not kept.
    let m = load(&spdx_files(&format!(
        r#"{{"fileName": "/a", "checksums": [{{"algorithm": "SHA256", "checksumValue": "{}"}}]}}"#,
        "ab".repeat(10_000)
    )))
    .expect("loads");
    assert!(!m.get("/a").expect("a").has_digests());
}

#[test]
fn non_utf8_and_bad_escapes() {
    let mut doc = spdx_files(r#"{"fileName": "/bin/caf_"}"#).into_bytes();
    let at = doc.iter().position(|&b| b == b'_').expect("marker");
    doc[at] = 0xe9;
    let e = load_reader(&doc[..], "latin1.json", &LoadOptions::default()).expect_err("latin-1");
    let s = e.to_string();
    assert!(s.contains("latin1.json") && s.contains("line 1 column") && s.contains("UTF-8"), "{s}");
    let e = err(&spdx_files(r#"{"fileName": "/bin/\ud800"}"#));
    assert!(e.contains("escape") && e.contains("files[0]"), "{e}");
}

#[test]
fn duplicate_keys_are_refused() {
    let e = err(r#"{"spdxVersion": "SPDX-2.3", "files": [], "files": []}"#);
    assert!(e.contains("`files` appears twice") && e.contains("line 1"), "{e}");
    let e = err(&spdx_files(r#"{"fileName": "/a", "fileName": "/b"}"#));
    assert!(e.contains("duplicate field `fileName`") && e.contains("files[0]"), "{e}");
    let e =
        err(r#"{"bomFormat": "CycloneDX", "components": [{"type": "file", "name": "/a", "name": "/b"}]}"#);
    assert!(e.contains("`name` appears twice") && e.contains("components[0]"), "{e}");
}

#[test]
fn syntax_errors_and_trailing_garbage() {
    let e = err(r#"{"spdxVersion": "SPDX-2.3",, "files": []}"#);
    assert!(e.contains("line 1 column") && e.contains("not valid JSON"), "{e}");
    let e = err(r#"{"spdxVersion": "SPDX-2.3", "files": []} trailing"#);
    assert!(e.contains("trailing characters"), "{e}");
    let e = err(r#"{"some": "json"}"#);
    assert!(e.contains("keys [\"some\"]"), "{e}");
}

#[test]
fn mismatched_brackets_in_skipped_values_are_refused() {
    let e = err(r#"{"spdxVersion": "SPDX-2.3", "annotations": {"a": [1, 2}], "files": []}"#);
    assert!(e.contains("line 1 column"), "{e}");
    // And a large skipped value streams through without being buffered.
    let big = format!(
        r#"{{"spdxVersion": "SPDX-2.3", "snippets": ["{}"], "files": [{{"fileName": "/a"}}]}}"#,
        "x".repeat(1 << 20)
    );
    assert_eq!(load(&big).expect("loads").len(), 1);
}
