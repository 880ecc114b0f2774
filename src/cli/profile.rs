//! `linectl profile`: check line profiles. Prints a one-line summary per valid file on
//! stdout and every problem of every invalid file on stderr (`file: key: problem`);
//! exit status 2 when any file has a problem. Loading and validation are
//! `linectl::profile`.

use std::path::PathBuf;
use std::process::ExitCode;

use linectl::profile::Profile;

use super::EXIT_REJECTED;

/// `linectl profile` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ProfileCmd {
    /// Load and validate line profiles (with `LINECTL__SECTION__KEY` environment
    /// overrides applied), reporting every problem at once.
    Check {
        /// Profile files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Run the command.
pub fn run(cmd: ProfileCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ProfileCmd::Check { files } => {
            let mut failed = false;
            for file in &files {
                match Profile::load(file) {
                    Ok(p) => println!("{}: OK: {}", file.display(), summary(&p)),
                    Err(e) => {
                        failed = true;
                        for problem in &e.problems {
                            eprintln!("{problem}");
                        }
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(EXIT_REJECTED)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// One line about a valid profile: line, product and market, devices, timing.
fn summary(p: &Profile) -> String {
    format!(
        "line {} | {} {} ({}) | plc {:?} {} | printer {:?} {} | camera {:?} {} | {:.0} units/min, verdict deadline {:.1} ms, decode deadline {} ms | serials {:?}",
        p.line.id,
        p.product.gtin,
        p.product.name,
        p.product.market,
        p.plc.kind,
        p.plc.address,
        p.printer.kind,
        p.printer.address,
        p.camera.kind,
        p.camera.address,
        p.geometry.units_per_minute(),
        p.geometry.verdict_deadline_ms(),
        p.verification.decode_deadline_ms,
        p.serials.source,
    )
}
