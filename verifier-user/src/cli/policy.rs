//! `verifier policy check FILE` and `verifier policy explain FILE ...`:
//! the policy file offline, before an agent reads it.
//!
//! `check` exits 0 when the file is valid (and summarises its rules), 1
//! when it is not (every problem with its line:column), 2 when it cannot be
//! read. `explain` says which rule applies to a container described on the
//! command line, why each rule before it did not, the mode, and what would
//! be blocked; it exits 2 when the file is not valid. Both take `--json`
//! (the shapes are in docs/policy.md).

use std::{
    collections::BTreeMap,
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    time::SystemTime,
};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use verifier_policy::{
    CleanSince, Mode, Policy, PolicyError, Rule, Workload, format_duration, parse_duration,
};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file: syntax, unknown keys, modes, verdict names,
    /// patterns, durations, duplicate rule names, exceptions without a
    /// reason. Exit codes: 0 valid, 1 not valid, 2 unreadable.
    Check(CheckArgs),
    /// Which rule applies to a container, why, its mode and what it would
    /// block. Describe the container as the agent would see it; a fact not
    /// given is unknown, and a rule that needs it does not match.
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
}

const EXPLAIN_EXAMPLES: &str = "\
Examples:
  verifier policy explain policy.toml --image registry.example/payments/api:1.4 --namespace payments
  verifier policy explain policy.toml --image alpine:3 --label app=web --label tier=front --container web
  verifier policy explain policy.toml --image app:1 --clean-for 30h   staging as if clean for 30 hours";

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The policy file (TOML, `version = 1`; docs/policy.md).
    pub file: PathBuf,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The policy file.
    pub file: PathBuf,
    /// Image reference (`registry/name:tag`), as the runtime reports it.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Image digest (`sha256:<hex>`).
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    /// Kubernetes namespace of the pod.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// A pod label, `key=value`; repeatable. None given: labels unknown
    /// (as for a container whose runtime does not report them).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Container name.
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// For a staged rule: explain as if the image had been clean this
    /// long (`30h`, `2d`). Default: no history, as for a new image.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub clean_for: Option<std::time::Duration>,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// Runs `verifier policy ...`.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Check(a) => check(&a),
        PolicyCommand::Explain(a) => explain(&a),
    }
}

fn check(a: &CheckArgs) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match Policy::load(&a.file) {
        Ok(p) => {
            if a.json {
                writeln!(out, "{}", json!({"file": a.file, "valid": true, "policy": summary_json(&p)}))?;
            } else {
                write_summary(&mut out, &a.file, &p)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(PolicyError::Invalid { path, problems }) => {
            if a.json {
                writeln!(out, "{}", json!({"file": path, "valid": false, "problems": problems}))?;
            } else {
                writeln!(out, "{}: not valid, {} problem(s):", path.display(), problems.len())?;
                for p in &problems {
                    writeln!(out, "  {}:{p}", path.display())?;
                }
                writeln!(out, "Fix them and run `verifier policy check` again; every key: docs/policy.md.")?;
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("verifier policy check: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn explain(a: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let p = Policy::load(&a.file).context("run `verifier policy check` on it first")?;
    let w = Workload {
        image_name: a.image.clone(),
        image_digest: a.digest.clone(),
        namespace: a.namespace.clone(),
        labels: (!a.labels.is_empty()).then(|| a.labels.iter().cloned().collect::<BTreeMap<_, _>>()),
        container: a.container.clone(),
    };
    let now = SystemTime::now();
    let history = a.clean_for.map(|d| CleanSince {
        first_seen: now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH),
        last_drift: None,
    });
    let d = p.decide(&w, history.as_ref(), now);
    let blocks = would_block(&d);
    let mut out = io::stdout().lock();
    if a.json {
        let mut v = serde_json::to_value(&d).context("decision as JSON")?;
        v["blocks"] = json!(blocks);
        v["policy_sha256"] = json!(p.sha256);
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "rule: {}", d.rule)?;
    writeln!(
        out,
        "mode: {}{}",
        d.mode.name(),
        if d.dry_run { " (dry run: reports would-block)" } else { "" }
    )?;
    writeln!(out, "why:")?;
    for y in &d.why {
        writeln!(out, "  - {y}")?;
    }
    match d.mode {
        Mode::Observe => {
            writeln!(out, "effect: drift is recorded in exec records; no alerts, nothing blocked")?
        }
        Mode::Alert => writeln!(out, "effect: drift is alerted on; nothing blocked")?,
        Mode::Enforce => writeln!(
            out,
            "effect: {} {}{}; other drift is alerted on",
            if d.dry_run { "would block" } else { "blocks" },
            blocks.join(", "),
            if d.deny_writes { ", and writes to the image's verified files" } else { "" }
        )?,
    }
    if d.exceptions.is_empty() {
        writeln!(out, "exceptions: none")?;
    } else {
        writeln!(out, "exceptions (recorded, never alerted on or blocked):")?;
        for e in &d.exceptions {
            writeln!(out, "  - {} ({}): {}", e.describe(), e.scope, e.reason)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The verdicts the decision blocks (or would): none unless `enforce`.
fn would_block(d: &verifier_policy::Decision) -> Vec<String> {
    if d.mode == Mode::Enforce { d.block_verdicts.clone() } else { Vec::new() }
}

fn rule_json(r: &Rule) -> serde_json::Value {
    json!({
        "name": r.name,
        "mode": r.mode,
        "match": r.matcher.describe(),
        "block_verdicts": r.block_verdicts,
        "deny_writes": r.deny_writes,
        "audit_for": r.audit_for.map(format_duration),
        "exceptions": r.exceptions.iter().map(|e| json!({"match": e.describe(), "reason": e.reason})).collect::<Vec<_>>(),
    })
}

fn summary_json(p: &Policy) -> serde_json::Value {
    json!({
        "version": p.version,
        "sha256": p.sha256,
        "defaults": {"mode": p.default_mode, "block_verdicts": p.default_block},
        "exceptions": p.exceptions.iter().map(|e| json!({"match": e.describe(), "reason": e.reason})).collect::<Vec<_>>(),
        "rules": p.rules.iter().map(rule_json).collect::<Vec<_>>(),
    })
}

fn write_summary(out: &mut impl io::Write, file: &Path, p: &Policy) -> io::Result<()> {
    writeln!(
        out,
        "{}: valid (version {}, sha256 {})",
        file.display(),
        p.version,
        &p.sha256[..12.min(p.sha256.len())]
    )?;
    writeln!(out, "rules, tried in this order (the first that matches applies):")?;
    for (i, r) in p.rules.iter().enumerate() {
        let stage =
            r.audit_for.map(|d| format!(", enforce after {} clean", format_duration(d))).unwrap_or_default();
        writeln!(out, "  {}. {} [{}{stage}] when {}", i + 1, r.name, r.mode.name(), r.matcher.describe())?;
        if r.mode == Mode::Enforce {
            writeln!(out, "     blocks: {}", r.block_verdicts.join(", "))?;
            if r.deny_writes {
                writeln!(out, "     denies writes to the image's verified files")?;
            }
        }
        for e in &r.exceptions {
            writeln!(out, "     exception {}: {}", e.describe(), e.reason)?;
        }
    }
    writeln!(out, "  otherwise: default [{}]", p.default_mode.name())?;
    for e in &p.exceptions {
        writeln!(out, "  exception everywhere {}: {}", e.describe(), e.reason)?;
    }
    Ok(())
}
