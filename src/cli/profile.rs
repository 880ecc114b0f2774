//! `linectl profile`: SKELETON, filled by the foundation issue.

use std::process::ExitCode;

/// `linectl profile` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ProfileCmd {
    /// Placeholder until the foundation issue lands.
    Todo,
}

/// Run the command.
pub fn run(cmd: ProfileCmd) -> anyhow::Result<ExitCode> {
    let _ = cmd;
    anyhow::bail!("not built yet")
}
