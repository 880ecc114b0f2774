//! `linectl events`: the line's EPCIS events from the command line. So far `export`,
//! which prints the EPCIS 2.0 document of one batch (or of every event still in the
//! journal) to stdout. Only argument handling and printing; the export itself is
//! `linectl::uplink::export`, the record format `linectl::uplink::record`. The journal
//! lives in `DATA_DIR/journal`. Errors exit 2 with their message on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use linectl::clock::{Clock, SystemClock};
use linectl::journal::{Journal, JournalConfig, JournalError};
use linectl::uplink::export::export_document;

use super::EXIT_REJECTED;

/// `linectl events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Write the EPCIS document of a batch (all journaled events without --batch) to stdout.
    Export(ExportArgs),
}

/// `linectl events export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only the events of this batch (lot).
    #[arg(long)]
    pub batch: Option<String>,
    /// The line's data directory (the journal is DATA_DIR/journal).
    #[arg(long, env = "LINECTL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Run the command.
pub fn run(cmd: EventsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EventsCmd::Export(args) => match export(args) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("linectl: error: {e}");
                Ok(ExitCode::from(EXIT_REJECTED))
            }
        },
    }
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let Some(dir) = args.data_dir else {
        anyhow::bail!("`linectl events export` needs --data-dir DIR (or LINECTL_DATA_DIR)");
    };
    let jdir = dir.join("journal");
    if !jdir.is_dir() {
        anyhow::bail!(
            "no event journal at {} (is --data-dir right?)",
            jdir.display()
        );
    }
    let config = JournalConfig {
        consumers: Vec::new(),
        ..JournalConfig::in_dir(&jdir)
    };
    let journal = Journal::open(config).map_err(|e| match e {
        JournalError::Locked { .. } => anyhow::anyhow!(
            "{e}: the daemon has it open; stop it or fetch the events with the pull API"
        ),
        e => anyhow::anyhow!("cannot open the event journal {}: {e}", jdir.display()),
    })?;
    for cut in &journal.recovery().cuts {
        eprintln!("linectl: journal recovery: {cut:?}");
    }
    let now = linectl::epcis::EventTime::from_wall_micros(SystemClock::new().wall_micros(), 0)
        .map(|t| t.to_rfc3339())
        .map_err(|e| anyhow::anyhow!("clock: {e}"))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let summary = export_document(&journal, args.batch.as_deref(), &now, &mut out)?;
    drop(out);
    eprintln!(
        "linectl: exported {} event(s){}",
        summary.events,
        if summary.first_seq.0 > 0 {
            format!(
                "; journal records before seq {} were deleted after upload",
                summary.first_seq
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
