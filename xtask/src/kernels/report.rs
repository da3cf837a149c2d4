//! The matrix's results: per kernel, which checks passed and which
//! required ones did not; shown as a markdown table (kernel x check, the
//! one the README quotes) and written as JSON (`target/kernels/matrix.json`,
//! documented in docs/kernels.md).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{REQUIRED, guest::Boot};

/// One kernel's results.
#[derive(Debug)]
pub(crate) struct Row {
    pub series: String,
    pub package: String,
    pub boot: Boot,
    pub log: PathBuf,
    /// Why this kernel fails the matrix (empty: it passes).
    pub failures: Vec<String>,
}

impl Row {
    pub(crate) fn new(series: &str, package: &str, boot: Boot, log: &Path) -> Self {
        let failures = failures(&boot);
        Self {
            series: series.to_string(),
            package: package.to_string(),
            boot,
            log: log.to_path_buf(),
            failures,
        }
    }
}

/// A failed check, a required check that did not pass, or a guest that
/// did not finish.
fn failures(boot: &Boot) -> Vec<String> {
    let mut out: Vec<String> =
        boot.checks.iter().filter(|c| c.result == "fail").map(|c| format!("{} failed", c.name)).collect();
    for name in REQUIRED {
        match boot.checks.iter().find(|c| c.name == *name) {
            None => out.push(format!("{name} did not run")),
            Some(c) if c.result == "skip" => out.push(format!("{name} skipped: {}", c.detail)),
            Some(_) => {}
        }
    }
    if !boot.finished {
        out.push("the guest did not finish".into());
    }
    out
}

/// Check names in order: the required ones, then any other the guests ran.
fn columns(rows: &[Row]) -> Vec<String> {
    let mut names: Vec<String> = REQUIRED.iter().map(|s| (*s).to_string()).collect();
    for c in rows.iter().flat_map(|r| &r.boot.checks) {
        if !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    names
}

/// The kernel x check table, markdown.
pub(crate) fn table(rows: &[Row]) -> String {
    let cols = columns(rows);
    let mut out = format!("| kernel | {} | boot s | total s |\n", cols.join(" | "));
    out.push_str(&format!("| --- |{} ---: | ---: |\n", " :---: |".repeat(cols.len())));
    for r in rows {
        let cells: Vec<&str> = cols
            .iter()
            .map(|name| match r.boot.checks.iter().find(|c| &c.name == name) {
                Some(c) if c.result == "pass" => "pass",
                Some(c) if c.result == "skip" => "skip",
                Some(_) => "**FAIL**",
                None => "-",
            })
            .collect();
        let release = r.boot.release.as_deref().unwrap_or(&r.series);
        out.push_str(&format!(
            "| {release} | {} | {} | {:.0} |\n",
            cells.join(" | "),
            r.boot.boot_seconds.map_or("-".into(), |s| format!("{s:.0}")),
            r.boot.total_seconds
        ));
    }
    out
}

/// `matrix.json`.
pub(crate) fn json(rows: &[Row], total_seconds: f64) -> Value {
    json!({
        "schema": "verifier.kernel-matrix.v1",
        "total_seconds": total_seconds,
        "required": REQUIRED,
        "kernels": rows.iter().map(|r| json!({
            "series": r.series,
            "package": r.package,
            "release": r.boot.release,
            "boot_seconds": r.boot.boot_seconds,
            "total_seconds": r.boot.total_seconds,
            "finished": r.boot.finished,
            "passed": r.failures.is_empty(),
            "failures": r.failures,
            "console": r.log,
            "checks": r.boot.checks.iter().map(|c| json!({
                "name": c.name, "result": c.result, "detail": c.detail,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::guest::Check;

    fn boot(results: &[(&str, &str)], finished: bool) -> Boot {
        Boot {
            release: Some("6.1.0-57-cloud-amd64".into()),
            boot_seconds: Some(20.0),
            total_seconds: 80.0,
            checks: results
                .iter()
                .map(|(n, r)| Check { name: (*n).into(), result: (*r).into(), detail: String::new() })
                .collect(),
            finished,
        }
    }

    #[test]
    fn all_required_passing_is_a_pass_and_anything_less_is_not() {
        let all: Vec<(&str, &str)> = REQUIRED.iter().map(|n| (*n, "pass")).collect();
        assert!(failures(&boot(&all, true)).is_empty());
        assert_eq!(failures(&boot(&all, false)), ["the guest did not finish"]);
        let mut skipped = all.clone();
        skipped[0].1 = "skip";
        assert_eq!(failures(&boot(&skipped, true)).len(), 1);
        assert_eq!(failures(&boot(&all[1..], true)), [format!("{} did not run", REQUIRED[0])]);
        let mut extra = all.clone();
        extra.push(("enforce-lsm", "fail"));
        assert_eq!(failures(&boot(&extra, true)), ["enforce-lsm failed"]);
        extra.last_mut().expect("extra").1 = "skip";
        assert!(failures(&boot(&extra, true)).is_empty(), "an optional check may skip");
    }

    #[test]
    fn the_table_has_a_column_per_check_and_marks_failures() {
        let row = Row::new(
            "6.1",
            "linux-image-6.1",
            boot(&[("agent-ready", "pass"), ("extra", "fail")], true),
            Path::new("x"),
        );
        let t = table(&[row]);
        let header = t.lines().next().expect("header");
        assert!(
            header.contains("| agent-ready |") && header.ends_with("| extra | boot s | total s |"),
            "{t}"
        );
        let line = t.lines().nth(2).expect("row");
        assert!(line.starts_with("| 6.1.0-57-cloud-amd64 | pass | - |"), "{t}");
        assert!(line.contains("**FAIL**") && line.ends_with("| 20 | 80 |"), "{t}");
    }
}
