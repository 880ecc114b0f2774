//! `linectl gs1`: SKELETON, filled by the foundation issue.

use std::process::ExitCode;

/// `linectl gs1` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Gs1Cmd {
    /// Placeholder until the foundation issue lands.
    Todo,
}

/// Run the command.
pub fn run(cmd: Gs1Cmd) -> anyhow::Result<ExitCode> {
    let _ = cmd;
    anyhow::bail!("not built yet")
}
