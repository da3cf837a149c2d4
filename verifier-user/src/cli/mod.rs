//! Command-line interface: `verifier agent`, `verifier sbom ...`,
//! `verifier check`. Each subcommand's options live next to the code that
//! uses them; this module only dispatches.

mod attest;
pub mod exec;
pub mod fetch;
pub mod policy;
pub mod sbom;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Container runtime verifier: watches every exec in containers with eBPF
/// and checks what ran against the image's SBOM.
#[derive(Debug, Parser)]
#[command(name = "verifier", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log filter for diagnostics on stderr (e.g. `info`, `verifier=debug`).
    #[arg(long, global = true, env = "VERIFIER_LOG", default_value = "warn")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: watch every exec, verify container execs against their image's SBOM.
    ///
    /// Needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN). Output schema:
    /// docs/schema.md. Stops cleanly on SIGINT/SIGTERM and prints final
    /// kernel counters.
    #[command(after_help = AGENT_EXAMPLES)]
    Agent(Box<crate::agent::AgentArgs>),
    /// Work with SBOMs: generate per-file baselines, inspect what a file holds.
    #[command(subcommand)]
    Sbom(sbom::SbomCommand),
    /// Offline drift check of a root filesystem against one or more SBOMs.
    ///
    /// Exit codes: 0 clean, 1 drift found, 2 error.
    Check(sbom::CheckArgs),
    /// Run a build step under watch and write its build record.
    ///
    /// Every exec and executable mapping of the step (and of containers it
    /// starts) is judged against the host's package database or a host
    /// SBOM. Exit status: the command's own when it failed; else 0, or 3
    /// when a --fail-on verdict occurred; 125 when the verifier could not
    /// run the step. docs/build-hosts.md.
    #[command(after_help = exec::EXAMPLES)]
    Exec(Box<exec::ExecArgs>),
    /// Policy as code: check a policy file, explain which rule applies to a container.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

const AGENT_EXAMPLES: &str = "\
Examples:
  verifier agent                                   every exec on the node, one JSON line each
  verifier agent --containers-only > execs.jsonl   containers only; host execs counted as filtered
  verifier agent --duration 60 --stats-interval 5  a one-minute sample with counters every 5 s
  verifier agent | jq 'select(.container) | [.container.id, .filename]'

  verifier sbom generate ./rootfs -o app.spdx.json
  verifier agent --containers-only --sbom 'registry.example/app:*=app.spdx.json'
      verify every exec of containers of that image against its SBOM
  verifier agent --sbom-store /var/lib/verifier/sboms
      SBOMs per image digest: sboms/sha256-<hex>/*.json (merged) or sboms/sha256-<hex>.spdx.json
  verifier agent --sbom-store DIR | jq 'select(.type == \"alert\")'
      the drift alerts only (verifier.alert.v1, docs/alerts.md)
  verifier agent --sbom-store DIR --alert-format falco --no-alert-stdout \\
      --webhook-url http://falcosidekick:2801/
      drift as Falco events, to falcosidekick
  verifier agent --sbom-store DIR --alert-file /var/log/verifier/alerts.jsonl --metrics-addr 0.0.0.0:9477
      alerts to a rotated file for a log shipper; metrics for Prometheus

Records: ready (once), exec (per exec, with verification.verdict when
verifying, and argv), library (a file mapped as code), write (a verified
file opened for writing), alert / alert-update / alert-suppressed (drift),
throttle (exec floods), stats (periodic and final, kernel and agent
counters). Lost events are counted in stats.lost. Schemas: docs/schema.md,
docs/alerts.md.";

/// Sets up `tracing` on stderr, so stdout carries only records.
pub fn init_tracing(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal: a log file or `kubectl logs` gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Agent(args) => crate::agent::run(*args),
        Command::Sbom(cmd) => sbom::run(cmd),
        Command::Check(args) => sbom::run_check(args),
        Command::Exec(args) => exec::run(*args),
        Command::Policy(cmd) => policy::run(cmd),
    }
}
