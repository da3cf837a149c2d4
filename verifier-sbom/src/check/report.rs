//! The human-readable report of `verifier check`: one line per finding,
//! digests shortened, then a summary a person can act on.

use std::io::{self, Write};

use super::Report;

/// Shortens `sha256:<64 hex>` to `sha256:<16 hex>…` for the table.
fn short(d: Option<&str>) -> String {
    match d {
        None => "-".into(),
        Some(d) => match d.split_once(':') {
            Some((alg, hex)) if hex.len() > 16 => format!("{alg}:{}…", &hex[..16]),
            _ => d.to_owned(),
        },
    }
}

pub(super) fn table(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    for w in &r.warnings {
        writeln!(out, "warning: {w}")?;
    }
    if !r.findings.is_empty() {
        let width = r.findings.iter().map(|f| f.path.chars().count()).max().unwrap_or(4).clamp(4, 60);
        writeln!(
            out,
            "{:<10}  {:<width$}  {:<26}  {:<26}  NOTE",
            "KIND", "PATH", "EXPECTED (SBOM)", "ACTUAL"
        )?;
        for f in &r.findings {
            let expected = f.compared.as_deref().map_or_else(
                || short(f.expected.first().map(String::as_str)),
                |_| {
                    short(
                        f.expected
                            .iter()
                            .find(|e| {
                                f.compared
                                    .as_deref()
                                    .is_some_and(|c| e.split(':').next() == c.split(':').next())
                            })
                            .map(String::as_str),
                    )
                },
            );
            let actual = short(f.compared.as_deref().or(f.actual.as_deref()));
            let mut note = Vec::new();
            if f.weak {
                note.push("weak digest".to_owned());
            }
            if let Some(t) = &f.symlink_target {
                note.push(format!("symlink -> {t}"));
            }
            if let Some(p) = &f.package {
                note.push(format!("package {}", p.name));
            }
            if let Some(d) = &f.detail {
                note.push(d.clone());
            }
            writeln!(
                out,
                "{:<10}  {:<width$}  {expected:<26}  {actual:<26}  {}",
                f.kind.name(),
                f.path,
                note.join("; ")
            )?;
        }
    }
    let s = &r.summary;
    let sboms: Vec<String> =
        r.sboms.iter().map(|i| format!("{} ({}, {} files)", i.path, i.format, i.files)).collect();
    writeln!(
        out,
        "checked {} executables and libraries of {} against {}",
        s.checked,
        r.rootfs,
        sboms.join(", ")
    )?;
    writeln!(
        out,
        "{} ok ({} by SHA-1/MD5 only), {} added, {} modified, {} missing, {} without usable hash, {} unreadable",
        s.ok, s.ok_weak, s.added, s.modified, s.missing, s.no_hash, s.unreadable
    )?;
    let verdict = if s.unreadable > 0 {
        "INCOMPLETE (some files could not be read)"
    } else if s.drift {
        "DRIFT"
    } else {
        "clean"
    };
    writeln!(out, "result: {verdict}")
}
