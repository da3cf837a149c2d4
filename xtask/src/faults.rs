//! `cargo xtask faults`: the fault suite as one command, with a table of
//! what each scenario expects and what it observed.
//!
//! The scenarios are the root tests in `tests/tests/faults*.rs` (stalled
//! and closed stdout, SIGSTOP, FIFO/device/directory SBOMs, the alert file
//! deleted and on a full disk, a webhook that never answers, final stats
//! with stdout gone, slow metrics clients, container churn). Each prints a `fault-result:` line (see
//! `verifier_tests::fault`) before it asserts; the test harness says pass
//! or fail. `cargo xtask test` runs the same tests among all the others:
//! this command is for reading the results, not a second CI run.

use std::process::Stdio;

use anyhow::{Context as _, bail};
use serde_json::Value;
use verifier_tests::fault::PREFIX;

use crate::util::{cargo, verifier_bin};

/// The test files of the fault suite.
const SUITE: &[&str] = &["faults", "faults_sinks", "faults_load"];

/// One test's row.
struct Row {
    test: String,
    passed: bool,
    result: Option<Value>,
}

/// Builds, runs the fault tests one at a time, prints the table; fails
/// when a scenario failed.
pub fn run() -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["test", "--release", "-p", "verifier-tests"]);
    for t in SUITE {
        cmd.args(["--test", t]);
    }
    // Captured output is shown for passing tests too (`--show-output`), so
    // every result line is there while the `test ... ok` lines stay whole.
    cmd.args(["--", "--test-threads=1", "--show-output"])
        .env("VERIFIER_BIN", verifier_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("xtask: running the fault suite ({})", SUITE.join(", "));
    let out = cmd.output().context("running cargo test for the fault suite")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = rows(&text);
    if rows.is_empty() {
        bail!("the fault suite ran no test (cargo test: {}):\n{text}", out.status);
    }
    print!("{}", table(&rows));
    let failed = rows.iter().filter(|r| !r.passed).count();
    if failed > 0 || !out.status.success() {
        bail!("{failed} of {} fault scenarios failed (their output is above)", rows.len());
    }
    eprintln!("xtask: all {} fault scenarios passed", rows.len());
    Ok(())
}

/// Every test's verdict (`test NAME ... ok|FAILED`) with its result line.
fn rows(text: &str) -> Vec<Row> {
    let results: Vec<Value> = text
        .lines()
        .filter_map(|l| l.split_once(PREFIX).map(|(_, json)| json))
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect();
    text.lines()
        .filter_map(|l| l.strip_prefix("test ")?.split_once(" ... "))
        .filter(|(_, verdict)| matches!(verdict.trim(), "ok" | "FAILED"))
        .map(|(test, verdict)| Row {
            test: test.to_owned(),
            passed: verdict.trim() == "ok",
            result: results.iter().find(|r| r["test"] == test).cloned(),
        })
        .collect()
}

/// A Markdown table: scenario, expected, observed, pass/fail.
fn table(rows: &[Row]) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from("| scenario | expected | observed | result |\n| --- | --- | --- | --- |\n");
    for r in rows {
        let (scenario, expected, observed) = match &r.result {
            Some(v) => (
                v["scenario"].as_str().unwrap_or(&r.test).to_owned(),
                v["expected"].as_str().unwrap_or_default().to_owned(),
                v["observed"].to_string(),
            ),
            None => (r.test.clone(), "(see the test)".to_owned(), "-".to_owned()),
        };
        let verdict = if r.passed { "pass" } else { "FAIL" };
        out.push_str(&format!(
            "| {} | {} | {} | {verdict} |\n",
            cell(&scenario),
            cell(&expected),
            cell(&observed)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_joined_with_their_result_lines() {
        let text = "running 2 tests\ntest a_one ... ok\ntest b_two ... FAILED\n\nsuccesses:\n\n---- a_one stdout ----\nfault-result: {\"test\":\"a_one\",\"scenario\":\"one\",\"expected\":\"x | y\",\"observed\":{\"n\":1}}\n\nfailures:\n    b_two\n";
        let rows = rows(text);
        assert_eq!(rows.len(), 2);
        assert!(rows[0].passed && !rows[1].passed);
        let t = table(&rows);
        assert!(t.contains("| one | x \\| y | {\"n\":1} | pass |"), "{t}");
        assert!(t.contains("| b_two | (see the test) | - | FAIL |"), "{t}");
    }
}
