//! `linectl pool`: SKELETON, filled by its issue.

use std::process::ExitCode;

/// `linectl pool` arguments.
#[derive(Debug, clap::Args)]
pub struct PoolArgs {}

/// Run the command.
pub fn run(args: PoolArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("not built yet")
}
