//! agent (in progress)
use std::process::ExitCode;
#[derive(Debug, clap::Args)]
pub struct AgentArgs {}
pub fn run(_args: AgentArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not yet") }
