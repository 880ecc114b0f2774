//! The `linectl` binary: command-line parsing and dispatch to the library. Each command
//! group lives in its own file under `src/cli/`; none holds logic beyond printing
//! results and mapping errors to exit codes (0 ok, 2 for a rejected input or a failed
//! check, 1 for an internal failure).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.log_json);
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("linectl: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
