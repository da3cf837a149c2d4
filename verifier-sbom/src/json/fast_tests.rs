use super::super::super::{LoadOptions, Manifest, load_bytes, load_reader};
use super::super::cursor::Bail;
use super::super::{Ctx, Key};
use super::element;

const SHA256: &str = "2dba00b048555bd12d5527d4b16d2ca110a129f5c719d8505f23dc9d87ef7640";
const SHA1: &str = "a097f77be3b9e1586fd2a2176a247bd3e7c83a3e";

/// Streamed (fast readers first) and in memory (serde only) give the same
/// manifest: files, digests, packages and warnings.
fn same_both_ways(doc: &str) -> Manifest {
    let opts = LoadOptions::default();
    let a = load_reader(doc.as_bytes(), "t.json", &opts);
    let b = load_bytes(doc.as_bytes(), "t.json", &opts);
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(a), Err(b)) => {
            assert_eq!(std::mem::discriminant(&a), std::mem::discriminant(&b), "{a} vs {b}");
            assert_eq!(a.location().map(|l| &l.path), b.location().map(|l| &l.path), "{a} vs {b}");
            return Manifest::new(super::super::super::SbomSource::new(
                super::super::super::SbomFormat::Spdx2Json,
            ));
        }
        (a, b) => panic!("paths disagree on {doc}: {a:?} vs {b:?}"),
    };
    assert_eq!(a.files().collect::<Vec<_>>(), b.files().collect::<Vec<_>>(), "{doc}");
    assert_eq!(a.packages(), b.packages(), "{doc}");
    assert_eq!(a.warnings(), b.warnings(), "{doc}");
    a
}

fn spdx(files: &[&str]) -> String {
    let rels = r#"{"spdxElementId": "SPDXRef-P", "relationshipType": "CONTAINS", "relatedSpdxElement": "SPDXRef-F0"},
        {"spdxElementId": "SPDXRef-F1", "relationshipType": "contained_by", "relatedSpdxElement": "SPDXRef-P", "comment": [1, {"x": null}]},
        {"spdxElementId": null, "relationshipType": "CONTAINS"}, {}"#;
    format!(
        r#"{{"spdxVersion": "SPDX-2.3", "packages": [{{"SPDXID": "SPDXRef-P", "name": "p"}}],
        "files": [{}], "relationships": [{rels}]}}"#,
        files.join(",\n")
    )
}

#[test]
fn spdx_file_shapes_agree_with_serde() {
    let shapes = [
        format!(r#"{{"SPDXID": "SPDXRef-F0", "fileName": "./usr/bin/a", "checksums": [{{"algorithm": "SHA1", "checksumValue": "{SHA1}"}}, {{"algorithm": "SHA256", "checksumValue": " {SHA256} "}}], "fileTypes": ["BINARY"], "x": -1.5e3}}"#),
        format!(r#"{{"fileName": "/usr/bin/b", "SPDXID": "SPDXRef-F1", "checksums": [{{"checksumValue": "{SHA256}", "algorithm": "sha-256", "extra": true}}]}}"#),
        r#"{"fileName": "/zero", "checksums": [{"algorithm": "SHA256", "checksumValue": "0000000000000000000000000000000000000000000000000000000000000000"}]}"#.to_owned(),
        r#"{"fileName": "/bad", "checksums": [{"algorithm": "SHA256", "checksumValue": "xyz"}, {"algorithm": "MD2", "checksumValue": "00"}, {"algorithm": null}, {"algorithm": "SHA1", "checksumValue": null}, {"algorithm": "SHA1", "checksumValue": "abcd"}, {}]}"#.to_owned(),
        r#"{"fileName": null, "checksums": null}"#.to_owned(),
        r#"{}"#.to_owned(),
        format!(r#"{{"fileName": "/esc\/aped", "checksums": [{{"algorithm": "SHA256", "checksumValue": "{SHA256}"}}]}}"#),
        r#"{"fileName": "/syft", "digests": [{"algorithm": "sha1", "value": "a097f77be3b9e1586fd2a2176a247bd3e7c83a3e"}]}"#.to_owned(),
        format!(r#"{{"fileName": "/usr/bin/a", "checksums": [{{"algorithm": "SHA256", "checksumValue": "{}"}}]}}"#, "1".repeat(64)),
        r#"{"fileName": "/caf\u00e9", "comment": "caf\u00e9 \"quoted\""}"#.to_owned(),
    ];
    let shapes: Vec<&str> = shapes.iter().map(String::as_str).collect();
    let m = same_both_ways(&spdx(&shapes));
    assert!(m.get("/usr/bin/a").is_some_and(|e| e.has_conflict()), "duplicate path with two SHA-256");
    assert_eq!(m.get("/usr/bin/b").and_then(|e| e.package(&m)).map(|p| p.name.as_str()), Some("p"));
    // Each alone too, so that an error in one does not hide the others.
    for s in &shapes {
        same_both_ways(&spdx(&[s]));
    }
}

#[test]
fn cyclonedx_component_shapes_agree_with_serde() {
    let shapes = [
        format!(
            r#"{{"type": "file", "name": "/usr/bin/a", "hashes": [{{"alg": "SHA-1", "content": "{SHA1}"}}, {{"alg": "SHA-256", "content": "{SHA256}"}}]}}"#
        ),
        format!(
            r#"{{"bom-ref": "x", "type": "file", "name": "a", "properties": [{{"name": "syft:location:0:path", "value": "/usr/lib/a"}}, {{"name": "syft:location:1:path", "value": "/lib/a"}}, {{"name": "other", "value": "v"}}, {{"name": "x:path"}}], "hashes": [{{"alg": "SHA-256", "content": "{SHA256}"}}]}}"#
        ),
        format!(
            r#"{{"type": "file", "name": "adduser", "purl": "pkg:generic/adduser?path=%2Fusr%2Fsbin%2Fadduser", "hashes": [{{"alg": "MD5", "content": "2ba08fece3b3434a669f3c529bbea383"}}, {{"alg": "SHA-1", "content": "{SHA1}"}}], "properties": [{{"name": "SrcFile", "value": "/usr/sbin/adduser"}}, {{"name": "internal:is_executable", "value": "true"}}]}}"#
        ),
        r#"{"type": "file", "properties": null, "hashes": null}"#.to_owned(),
        r#"{"type": "library", "name": "lib", "version": "1.0", "purl": "pkg:apk/x/lib@1.0"}"#.to_owned(),
        r#"{"type": "library"}"#.to_owned(),
        r#"{"type": null, "name": "n"}"#.to_owned(),
        format!(
            r#"{{"type": "library", "name": "outer", "components": [{{"type": "file", "name": "/nested", "hashes": [{{"alg": "SHA-256", "content": "{SHA256}"}}]}}]}}"#
        ),
        r#"{"type": "file", "name": "/ev", "evidence": {"occurrences": [{"location": "/usr/ev"}]}}"#
            .to_owned(),
        r#"{"type": "file", "name": "/e\u0073c"}"#.to_owned(),
        r#"{"type": "file", "name": "/dup", "name": "/dup2"}"#.to_owned(),
        r#"{"type": 3}"#.to_owned(),
    ];
    let doc = |cs: &[&str]| {
        format!(r#"{{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{}]}}"#, cs.join(","))
    };
    let all: Vec<&str> = shapes.iter().map(String::as_str).collect();
    // The last two are errors: all but those together, then each alone.
    let m = same_both_ways(&doc(&all[..all.len() - 2]));
    assert!(m.get("/usr/lib/a").is_some() && m.get("/lib/a").is_some() && m.get("/a").is_none());
    assert!(m.get("/usr/sbin/adduser").is_some() && m.get("/adduser").is_none(), "cdxgen's SrcFile");
    assert_eq!(m.get("/nested").and_then(|e| e.package(&m)).map(|p| p.name.as_str()), Some("outer"));
    for s in &all {
        same_both_ways(&doc(&[s]));
    }
}

#[test]
fn the_common_shapes_take_the_fast_path_and_odd_ones_fall_back() {
    let mut ctx = Ctx::new("t");
    let file = format!(
        r#"{{"SPDXID": "F", "fileName": "/a", "checksums": [{{"algorithm": "SHA256", "checksumValue": "{SHA256}"}}]}}, "#
    );
    assert_eq!(element(&mut ctx, Key::Files, file.as_bytes()), Ok(file.len() - 2));
    assert_eq!(ctx.sink.m.len(), 1);
    let cut = &file[..file.len() / 2];
    assert_eq!(element(&mut ctx, Key::Files, cut.as_bytes()), Err(Bail::More));
    for odd in
        [r#"{"fileName": "/a\n"}"#, r#"{"fileName": "/a", "fileName": "/b"}"#, r#"{"id": "x"}"#, "[]", "null"]
    {
        assert_eq!(element(&mut ctx, Key::Files, odd.as_bytes()), Err(Bail::Fallback), "{odd}");
    }
    assert_eq!(ctx.sink.m.len(), 1, "nothing added by what fell back");
    let comp = r#"{"type": "file", "name": "/b", "components": []}"#;
    assert_eq!(element(&mut ctx, Key::Components, comp.as_bytes()), Err(Bail::Fallback));
    let rel = r#"{"spdxElementId": "P", "relationshipType": "CONTAINS", "relatedSpdxElement": "F"}"#;
    assert_eq!(element(&mut ctx, Key::Relationships, rel.as_bytes()), Ok(rel.len()));
}
