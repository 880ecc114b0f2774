//! `linectl export --batch B DIR [--data-dir D] [--profile P] [--force]`: writes the
//! batch's EPCIS document, audit records, exception list, a summary and the audit-ready
//! `report.html` into DIR (see `linectl::report`). Exit 2 for an unknown batch, a
//! non-empty DIR without `--force`, a missing journal or a journal the daemon holds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use linectl::clock::{Clock, SystemClock};
use linectl::journal::{Journal, JournalConfig, JournalError};
use linectl::report::{ExportOptions, ReportError, export_batch};

use super::EXIT_REJECTED;

/// `linectl export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The batch (lot) to export.
    #[arg(long)]
    pub batch: String,
    /// Output directory (created; must be empty unless --force).
    pub dir: PathBuf,
    /// Data directory (journal, audit trail, exception queue, unit log).
    #[arg(long, env = "LINECTL_DATA_DIR", default_value = "/var/lib/linectl")]
    pub data_dir: PathBuf,
    /// Line profile, for the product name in the report.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Write into a non-empty directory, replacing the export's files.
    #[arg(long)]
    pub force: bool,
}

fn reject(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("linectl: error: {msg}");
    Ok(ExitCode::from(EXIT_REJECTED))
}

/// Run the export.
pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let jdir = args.data_dir.join("journal");
    if !jdir.is_dir() {
        return reject(format!(
            "no event journal at {} (is --data-dir right?)",
            jdir.display()
        ));
    }
    let product_name = match &args.profile {
        Some(p) => match linectl::profile::Profile::load(p) {
            Ok(p) => Some(p.product.name),
            Err(e) => return reject(e),
        },
        None => None,
    };
    let journal = match Journal::open(JournalConfig {
        consumers: Vec::new(),
        ..JournalConfig::in_dir(&jdir)
    }) {
        Ok(j) => j,
        Err(e @ JournalError::Locked { .. }) => {
            return reject(format!(
                "{e}: the daemon has it open; stop it first (or export the events with the pull API)"
            ));
        }
        Err(e) => return reject(format!("cannot open the event journal: {e}")),
    };
    let opts = ExportOptions {
        product_name,
        force: args.force,
        now_us: SystemClock::new().wall_micros(),
    };
    match export_batch(&args.data_dir, &journal, &args.batch, &args.dir, &opts) {
        Ok(s) => {
            println!("{}", serde_json::to_string_pretty(&s)?);
            eprintln!(
                "linectl: batch {} exported to {}: {} events, {} commissioned, {} rejected, {} exceptions, {} audit records",
                s.batch,
                args.dir.display(),
                s.events,
                s.commissioned,
                s.rejected,
                s.exceptions,
                s.audit_records
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (ReportError::UnknownBatch { .. }
            | ReportError::NotEmpty(_)
            | ReportError::AuditInconsistent(_)),
        ) => reject(e),
        Err(e) => Err(e.into()),
    }
}
