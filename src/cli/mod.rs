//! Command-line definition and dispatch. One file per command group; this file only
//! names them and routes. Conventions: results on stdout (JSON where a program reads
//! them), diagnostics on stderr, exit status 2 when the input or a check is rejected.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod agg;
pub mod audit;
pub mod decode;
pub mod device;
pub mod events;
pub mod export;
pub mod gs1;
pub mod pool;
pub mod profile;
pub mod run;
pub mod user;

/// linectl — open-source packaging-line controller for pharmaceutical serialization.
#[derive(Debug, Parser)]
#[command(name = "linectl", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "LINECTL_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the line controller daemon against the profile's devices.
    Run(run::RunArgs),
    /// Parse, validate and build GS1 codes.
    #[command(subcommand)]
    Gs1(gs1::Gs1Cmd),
    /// Check line profiles.
    #[command(subcommand)]
    Profile(profile::ProfileCmd),
    /// Manage the serial-number pool.
    Pool(pool::PoolArgs),
    /// Decode, verify and grade DataMatrix frames from image files.
    Decode(decode::DecodeArgs),
    /// Commissioning: probe the profile's devices, print a test code, show the PLC map.
    #[command(subcommand)]
    Device(device::DeviceCmd),
    /// Verify and export the audit trail.
    Audit(audit::AuditArgs),
    /// Manage HMI user accounts.
    User(user::UserArgs),
    /// EPCIS events: export a batch's document from the journal.
    #[command(subcommand)]
    Events(events::EventsCmd),
    /// Export a batch: EPCIS document, audit records, exceptions and the batch report.
    Export(export::ExportArgs),
    /// Aggregation: show the tree under a case or pallet code, holds, rework.
    Agg(agg::AggArgs),
}

/// Exit status for a rejected input or a failed check.
pub const EXIT_REJECTED: u8 = 2;

/// Route a parsed command line to its command group.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Gs1(cmd) => gs1::run(cmd),
        Command::Profile(cmd) => profile::run(cmd),
        Command::Pool(args) => pool::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Device(cmd) => device::run(cmd),
        Command::Audit(args) => audit::run(args),
        Command::User(args) => user::run(args),
        Command::Events(cmd) => events::run(cmd),
        Command::Export(args) => export::run(args),
        Command::Agg(args) => agg::run(args),
    }
}

/// Replaces the log filter of the running process (set by [`init_logging`]).
type FilterSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static LOG_FILTER: std::sync::OnceLock<FilterSetter> = std::sync::OnceLock::new();

/// Set up `tracing` to stderr; `RUST_LOG` filters (default `info`, or the profile's
/// `[log] level` through [`set_log_filter`]).
pub fn init_logging(json: bool) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
    let _ = LOG_FILTER.set(Box::new(move |spec: &str| {
        let f = tracing_subscriber::EnvFilter::try_new(spec).map_err(|e| e.to_string())?;
        handle.reload(f).map_err(|e| e.to_string())
    }));
}

/// Use `spec` as the log filter unless `RUST_LOG` is set (it wins); `Ok(false)` when
/// `RUST_LOG` kept its filter.
pub fn set_log_filter(spec: &str) -> Result<bool, String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(false);
    }
    match LOG_FILTER.get() {
        Some(set) => set(spec).map(|()| true),
        None => Err("logging is not set up".into()),
    }
}
