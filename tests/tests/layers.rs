//! The dependency rule as a test: imports point down, never in a circle.
//!
//! Cargo already keeps crates from depending on each other in a circle.
//! Inside a crate nothing does, so this test reads every `crate::` and
//! `super::` path of every workspace crate (use trees and paths in code
//! alike), resolves each to the module it names, and checks two things:
//!
//! - **No import circle between sibling modules, at any level**: an edge
//!   from `a::b::c` to `a::d::e` is an edge `b -> d` among the children of
//!   `a`; the children of every module must form an acyclic graph. A child
//!   using its parent's items (or the parent naming its children) is
//!   containment, not a circle.
//! - **No upward import between verifier-user's layers** (see
//!   [`USER_LAYERS`]).
//!
//! The parser is deliberately small: comments and string literals are
//! stripped, then paths are read token by token. It errs on the side of
//! seeing an import that is not there, never of missing one.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// verifier-user's top-level modules, lowest layer first. A module may
/// import from its own layer's peers only through the sibling rule above,
/// and from lower layers freely; never from a higher one.
const USER_LAYERS: &[&[&str]] = &[
    &["attribution"],
    &["baseline"],
    &["verify"],
    &["output"],
    &["alert"],
    &["metrics"],
    &["agent"],
    &["buildrec"],
    &["cli"],
];

/// Crates whose module trees are checked.
const CRATES: &[&str] =
    &["verifier-common", "verifier-sbom", "verifier-sensor", "verifier-registry", "verifier-user", "xtask"];

type Module = Vec<String>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The module a source file is, from its path under `src/`. A test file
/// (`x_tests.rs` beside `x.rs`, or `tests.rs` in a module's directory) is
/// counted as part of the module it tests.
fn module_of(rel: &Path) -> Module {
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let file = parts.pop().unwrap_or_default();
    match file.trim_end_matches(".rs") {
        "lib" | "main" if parts.is_empty() => {}
        "mod" | "tests" => {}
        stem => parts.push(stem.strip_suffix("_tests").unwrap_or(stem).to_owned()),
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source text with comments, string and char literals blanked out.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if b[i] == b'r'
            && i + 1 < b.len()
            && (b[i + 1] == b'"' || b[i + 1] == b'#')
            && !ident_before(b, i)
        {
            // Raw string r"..." / r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('a', '\n', '\u{..}'); a lifetime has no closing quote.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Colons,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(src[start..i].to_owned()));
        } else if b[i..].starts_with(b"::") {
            out.push(Tok::Colons);
            i += 2;
        } else {
            out.push(match c {
                b'{' => Tok::Open,
                b'}' => Tok::Close,
                b',' => Tok::Comma,
                _ => Tok::Other,
            });
            i += if c.is_ascii() { 1 } else { src[i..].chars().next().map_or(1, char::len_utf8) };
        }
    }
    out
}

/// Every path starting at `crate` or `super`, use-tree branches expanded,
/// each with the inline modules (`mod tests { .. }`) it sits in.
fn paths(toks: &[Tok]) -> Vec<(Module, Vec<String>)> {
    let mut out = Vec::new();
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let starts = matches!(&toks[i], Tok::Ident(s) if s == "crate" || s == "super")
            && !matches!(i.checked_sub(1).map(|p| &toks[p]), Some(Tok::Colons))
            && matches!(toks.get(i + 1), Some(Tok::Colons));
        if starts {
            let ctx: Module = inline.iter().map(|(_, n)| n.clone()).collect();
            let mut found = Vec::new();
            i = tree(toks, i, &mut Vec::new(), &mut found);
            out.extend(found.into_iter().map(|p| (ctx.clone(), p)));
            continue;
        }
        match &toks[i] {
            Tok::Ident(k) if k == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Open)) = (toks.get(i + 1), toks.get(i + 2)) {
                    depth += 1;
                    inline.push((depth, name.clone()));
                    i += 3;
                    continue;
                }
            }
            Tok::Open => depth += 1,
            Tok::Close => {
                if inline.last().is_some_and(|(d, _)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Reads one path (or use tree) at `i` under `prefix`; returns the index after it.
fn tree(toks: &[Tok], mut i: usize, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let depth = prefix.len();
    loop {
        match toks.get(i) {
            Some(Tok::Ident(s)) => {
                prefix.push(s.clone());
                i += 1;
                if matches!(toks.get(i), Some(Tok::Colons)) {
                    i += 1;
                    continue;
                }
                out.push(prefix.clone());
                break;
            }
            Some(Tok::Open) => {
                i += 1;
                loop {
                    match toks.get(i) {
                        Some(Tok::Close) => {
                            i += 1;
                            break;
                        }
                        Some(Tok::Comma) => i += 1,
                        None => break,
                        _ => {
                            let before = i;
                            i = tree(toks, i, prefix, out);
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
                if prefix.len() > depth {
                    out.push(prefix.clone());
                }
                break;
            }
            _ => {
                if prefix.len() > depth {
                    out.push(prefix.clone());
                }
                break;
            }
        }
    }
    prefix.truncate(depth);
    i
}

/// The module a path names: `crate`/`super`/`self` resolved against
/// `from`, then the longest prefix that is a known module.
fn target(from: &Module, path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let mut base: Module;
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base = Vec::new();
            rest = &rest[1..];
        }
        Some("super") => {
            base = from.clone();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    let mut best = base.clone();
    for seg in rest {
        base.push(seg.clone());
        if modules.contains(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    Some(best)
}

struct Crate {
    name: &'static str,
    /// (from, to) module edges with the file that made each.
    edges: Vec<(Module, Module, PathBuf)>,
}

fn read_crate(name: &'static str) -> Crate {
    let src = workspace().join(name).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(!files.is_empty(), "{name}: no source files under {}", src.display());
    let mut modules: BTreeSet<Module> = BTreeSet::new();
    let mut parsed = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let m = module_of(rel);
        for k in 0..=m.len() {
            modules.insert(m[..k].to_vec());
        }
        let text = fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        parsed.push((m, f.clone(), paths(&tokens(&strip(&text)))));
    }
    let mut edges = Vec::new();
    for (m, f, ps) in parsed {
        // A test file is the module `tests` inside the module it tests.
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut file_module = m.clone();
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            file_module.push("tests".into());
        }
        for (ctx, p) in ps {
            let mut from = file_module.clone();
            from.extend(ctx);
            if let Some(t) = target(&from, &p, &modules) {
                edges.push((from, t, f.clone()));
            }
        }
    }
    Crate { name, edges }
}

/// Sibling edges: (parent, child_from, child_to) where the two modules
/// diverge below `parent`; containment edges are dropped.
fn sibling_edges(c: &Crate) -> BTreeMap<Module, BTreeMap<String, BTreeMap<String, PathBuf>>> {
    let mut by_parent: BTreeMap<Module, BTreeMap<String, BTreeMap<String, PathBuf>>> = BTreeMap::new();
    for (from, to, file) in &c.edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue;
        }
        by_parent
            .entry(from[..common].to_vec())
            .or_default()
            .entry(from[common].clone())
            .or_default()
            .entry(to[common].clone())
            .or_insert_with(|| file.clone());
    }
    by_parent
}

/// A cycle in `graph`, if any, as a list of nodes.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for next in graph.get(n).into_iter().flat_map(BTreeMap::keys) {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_import_circle_in_any_crate() {
    let mut problems = Vec::new();
    for name in CRATES {
        let c = read_crate(name);
        assert!(
            !c.edges.is_empty() || *name == "verifier-common",
            "{name}: no imports found: the parser is broken"
        );
        for (parent, graph) in sibling_edges(&c) {
            if let Some(cycle) = find_cycle(&graph) {
                let files: Vec<String> = cycle
                    .windows(2)
                    .map(|w| format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]].display()))
                    .collect();
                problems.push(format!("{name}: circle under `{}`: {}", display(&parent), files.join(", ")));
            }
        }
    }
    assert!(problems.is_empty(), "import circles:\n{}", problems.join("\n"));
}

#[test]
fn verifier_user_layers_import_downward_only() {
    let c = read_crate("verifier-user");
    let rank = |m: &str| USER_LAYERS.iter().position(|layer| layer.contains(&m));
    let mut problems = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for (from, to, file) in &c.edges {
        let (Some(f), Some(t)) = (from.first(), to.first()) else { continue };
        if f == t {
            continue;
        }
        match (rank(f), rank(t)) {
            (Some(rf), Some(rt)) if rt > rf => {
                problems.insert(format!(
                    "{f} imports {} (a higher layer) in {}",
                    display(to),
                    file.display()
                ));
            }
            (None, _) => {
                unknown.insert(f.clone());
            }
            (_, None) => {
                unknown.insert(t.clone());
            }
            _ => {}
        }
    }
    assert!(unknown.is_empty(), "verifier-user modules missing from USER_LAYERS: {unknown:?}");
    assert!(problems.is_empty(), "upward imports:\n{}", problems.into_iter().collect::<Vec<_>>().join("\n"));
}

fn display(m: &Module) -> String {
    if m.is_empty() { "crate".into() } else { m.join("::") }
}

/// The checker itself finds what it must: a circle, an upward import,
/// use trees, nested `super`.
#[test]
fn the_checker_sees_use_trees_and_circles() {
    let toks = tokens(&strip(
        "use crate::{a::{X, b::Y}, c}; // crate::zz\nfn f() { super::super::d::g(\"crate::s\") }\nmod t { use super::q; }",
    ));
    let found = paths(&toks);
    assert_eq!(found.last(), Some(&(vec!["t".to_owned()], vec!["super".to_owned(), "q".to_owned()])));
    let ps: Vec<Vec<String>> = found.into_iter().map(|(_, p)| p).take(6).collect();
    let want: Vec<Vec<String>> = vec![
        vec!["crate", "a", "X"],
        vec!["crate", "a", "b", "Y"],
        vec!["crate", "a"],
        vec!["crate", "c"],
        vec!["crate"],
        vec!["super", "super", "d", "g"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect();
    assert_eq!(ps, want);

    let modules: BTreeSet<Module> =
        [vec![], vec!["a".to_owned()], vec!["a".to_owned(), "b".to_owned()], vec!["d".to_owned()]]
            .into_iter()
            .collect();
    let from = vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(target(&from, &ps[5], &modules), Some(vec!["d".to_owned()]));

    let c = Crate {
        name: "t",
        edges: vec![
            (vec!["x".into(), "p".into()], vec!["y".into()], PathBuf::from("x/p.rs")),
            (vec!["y".into()], vec!["x".into(), "q".into()], PathBuf::from("y.rs")),
            (vec!["x".into(), "p".into()], vec!["x".into()], PathBuf::from("x/p.rs")),
        ],
    };
    let sib = sibling_edges(&c);
    assert!(find_cycle(&sib[&Vec::<String>::new()]).is_some(), "x <-> y must be a circle");
    assert!(!sib.contains_key(&vec!["x".to_owned()]), "x::p -> x is containment");
    assert_eq!(c.name, "t");
}
