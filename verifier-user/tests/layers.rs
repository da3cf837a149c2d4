//! The crate's modules form layers, lowest first: attribution (`container`,
//! `containerd`) -> `verify` -> `output` -> `alert` -> `metrics` -> `agent`
//! -> `cli`. A module may use its own layer and those below, never one
//! above: this reads the sources and names every `crate::` path that
//! points up.

use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u32)] = &[
    ("container", 0),
    ("containerd", 0),
    ("verify", 1),
    ("output", 2),
    ("alert", 3),
    ("metrics", 4),
    ("agent", 5),
    ("cli", 6),
];

fn rank(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, r)| r)
}

/// The top-level module a source file belongs to (`src/alert/x.rs`,
/// `src/metrics_tests.rs` -> `alert`, `metrics`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let stem = first.strip_suffix(".rs").unwrap_or(first);
    Some(stem.strip_suffix("_tests").unwrap_or(stem).to_owned())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// First segments of every `crate::` path in `text`, including those in
/// `crate::{a::x, b}` groups.
fn crate_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut found = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if !rest.starts_with('{') {
            found.push(ident(rest));
            continue;
        }
        let mut depth = 0;
        let mut expect_name = true;
        for (j, c) in rest.char_indices() {
            match c {
                '{' => {
                    depth += 1;
                    expect_name = depth == 1;
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' if depth == 1 => expect_name = true,
                c if expect_name && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                    found.push(ident(&rest[j..]));
                    expect_name = false;
                }
                _ => {}
            }
        }
    }
    found
}

#[test]
fn no_module_uses_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Some(own) = module_of(&src, file).and_then(|m| rank(&m).map(|r| (m, r))) else { continue };
        let text = std::fs::read_to_string(file).expect("read source");
        for target in crate_paths(&text) {
            checked += 1;
            if let Some(r) = rank(&target)
                && r > own.1
            {
                upward.push(format!("{} ({}) uses crate::{target}", file.display(), own.0));
            }
        }
    }
    assert!(checked > 20, "found only {checked} crate:: paths: is the source tree where expected?");
    assert!(upward.is_empty(), "imports pointing up a layer:\n{}", upward.join("\n"));
}

#[test]
fn grouped_and_plain_paths_are_both_seen() {
    let text = "use crate::{\n    container::Attribution,\n    verify::{a, b::c},\n};\nlet t = crate::output::rfc3339(0);";
    assert_eq!(crate_paths(text), ["container", "verify", "output"]);
}
