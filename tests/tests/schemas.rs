//! Unprivileged: the record schemas and the code and docs agree. Every
//! record name the code writes (`"verifier.<name>.v1"` in the sources) has
//! a schema file in `docs/schemas/` whose title names it, and
//! docs/schema.md lists every schema file and record name. (That each
//! record a run produces matches its schema is checked by the root tests,
//! `consumers.rs` and `policy.rs`.)

use std::{collections::BTreeSet, path::Path};

use serde_json::Value;

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `(file name, title)` of every schema.
fn schemas() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(verifier_tests::schemas::dir()).expect("docs/schemas") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.ends_with(".schema.json") {
            continue;
        }
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read schema"))
            .expect("schema is JSON");
        let title = schema["title"].as_str().unwrap_or_else(|| panic!("{name} has no title")).to_owned();
        out.push((name, title));
    }
    assert!(out.len() >= 10, "schemas found: {out:?}");
    out
}

/// Every `"verifier.<name>.vN"` string literal in the Rust sources of
/// `crates`.
fn record_names(crates: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs: Vec<_> = crates.iter().map(|c| workspace().join(c).join("src")).collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                // Unit tests name internal formats (the registry cache's
                // index) that are never a record.
                && !path.file_name().is_some_and(|n| n.to_string_lossy().ends_with("_tests.rs"))
            {
                let text = std::fs::read_to_string(&path).expect("source");
                for (i, _) in text.match_indices("\"verifier.") {
                    let rest = &text[i + 1..];
                    let Some(end) = rest.find('"') else { continue };
                    let name = &rest[..end];
                    let versioned = name.rsplit_once(".v").is_some_and(|(_, v)| v.parse::<u32>().is_ok());
                    if versioned && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                        names.insert(name.to_owned());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn every_record_name_in_the_code_has_a_schema() {
    let titles: Vec<String> = schemas().into_iter().map(|(_, t)| t).collect();
    let names = record_names(&["verifier-user", "verifier-sbom"]);
    assert!(names.contains("verifier.exec.v1") && names.contains("verifier.policy.v1"), "{names:?}");
    for name in &names {
        // `verifier.alert.v1` has one schema per type: "verifier.alert.v1: alert".
        let covered = titles.iter().any(|t| t == name || t.starts_with(&format!("{name}: ")));
        assert!(
            covered,
            "{name} is written by the code but has no schema in docs/schemas/ (titles: {titles:?})"
        );
    }
}

#[test]
fn docs_schema_md_lists_every_schema_and_record() {
    let doc = std::fs::read_to_string(workspace().join("docs/schema.md")).expect("docs/schema.md");
    for (file, title) in schemas() {
        assert!(doc.contains(&format!("(schemas/{file})")), "docs/schema.md does not link schemas/{file}");
        let record = title.split(':').next().unwrap_or_default();
        if record.starts_with("verifier.") {
            assert!(doc.contains(&format!("`{record}`")), "docs/schema.md does not name `{record}`");
        }
    }
}
