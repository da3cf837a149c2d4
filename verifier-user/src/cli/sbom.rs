//! Options and dispatch for `verifier sbom ...` and `verifier check`.
//! (Owned by the SBOM work; see issue 4.)

use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum SbomCommand {}

#[derive(Debug, Args)]
pub struct CheckArgs {}

pub fn run(cmd: SbomCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}

pub fn run_check(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`verifier check` is not built yet")
}
