//! `linectl decode`: SKELETON, filled by its issue.

use std::process::ExitCode;

/// `linectl decode` arguments.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {}

/// Run the command.
pub fn run(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("not built yet")
}
