//! The `hil-sim` binary: `hil-sim run --profile P [--units N] [--rate UPM]
//! [--defects SPEC] [--faults SPEC] [--seed S] [--realtime] [--printer-load-ms MS] [--data-dir DIR]
//! [--report FILE]` starts the simulated devices and linectl against them, shows a
//! live progress line and writes the JSON report. It owns argument parsing and output
//! only; the run is [`hil_sim::line::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hil_sim::defects::{DefectSpec, FaultSpec};
use hil_sim::line::{PrinterTransport, SimOptions, run};

#[derive(Parser)]
#[command(
    name = "hil-sim",
    version,
    about = "Hardware-in-the-loop simulator for linectl"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    Tcp,
    Pty,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a line profile through the simulator and report.
    Run {
        /// Line profile (TOML).
        #[arg(long)]
        profile: PathBuf,
        /// Units to send down the line.
        #[arg(long, default_value_t = 2000)]
        units: u64,
        /// Line rate, units per minute (default: the profile's speed / pitch).
        #[arg(long)]
        rate: Option<f64>,
        /// Defects: `0.05` (any class) or `smudge=0.01,no-print=0.002`.
        #[arg(long, default_value = "0")]
        defects: String,
        /// Faults: `0.001` or `camera-stall=0.001,printer-fault=0.0005`.
        #[arg(long, default_value = "0")]
        faults: String,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Run at wall-clock speed (default: virtual time, as fast as it goes).
        #[arg(long)]
        realtime: bool,
        /// linectl's data directory (default: a fresh temporary one).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Write the JSON report here (default: stdout).
        #[arg(long)]
        report: Option<PathBuf>,
        /// How the printer is reached.
        #[arg(long, value_enum, default_value = "tcp")]
        printer_transport: Transport,
        /// Milliseconds the simulated printer takes to acknowledge each loaded code
        /// (Videojet, Markem-Imaje): with `--realtime`, more than the unit pitch makes
        /// the printer fall behind the line.
        #[arg(long, default_value_t = 0)]
        printer_load_ms: u64,
        /// Frame size WxH.
        #[arg(long, default_value = "1280x960")]
        frame: String,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
        /// Serve linectl's status endpoint here (default: the profile's `[hmi] listen`).
        #[arg(long)]
        status: Option<String>,
        /// No simulated site server (events stay in the journal).
        #[arg(long)]
        no_site_server: bool,
        /// Upload the events to this EPCIS capture URL instead of a built-in site server.
        #[arg(long)]
        site_url: Option<String>,
        /// Faults at the aggregation stations (profiles with `[aggregation]`):
        /// `none` or `damaged=0.1,foreign=0.05,missing=0.05,duplicate=0.05,label=0.03,pallet-missing=0.1`.
        #[arg(
            long,
            default_value = "damaged=0.1,foreign=0.05,missing=0.05,duplicate=0.05,label=0.03,pallet-missing=0.1"
        )]
        agg_faults: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LINECTL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hil-sim: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let Cmd::Run {
        profile,
        units,
        rate,
        defects,
        faults,
        seed,
        realtime,
        data_dir,
        report,
        printer_transport,
        printer_load_ms,
        frame,
        quiet,
        status,
        no_site_server,
        site_url,
        agg_faults,
    } = Cli::parse().cmd;
    let agg_faults: hil_sim::aggregation::AggFaults = agg_faults
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--agg-faults: {e}"))?;
    let prof = linectl::profile::Profile::load(&profile)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("profile {}", profile.display()))?;
    let prof_listen = prof.hmi.listen.clone();
    let defects: DefectSpec = defects.parse().context("--defects")?;
    let faults: FaultSpec = faults.parse().context("--faults")?;
    let (w, h) = frame
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .context("--frame must be WIDTHxHEIGHT, e.g. 1280x960")?;
    let tmp;
    let data_dir = match data_dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("temporary data dir")?;
            tmp.path().to_path_buf()
        }
    };
    let opts = SimOptions {
        profile: prof,
        units,
        rate_upm: rate,
        defects,
        faults,
        seed,
        realtime,
        data_dir,
        printer_transport: match printer_transport {
            Transport::Tcp => PrinterTransport::Tcp,
            Transport::Pty => PrinterTransport::Pty,
        },
        printer_load_delay: std::time::Duration::from_millis(printer_load_ms),
        frame: (w, h),
        progress: !quiet,
        status_listen: Some(status.unwrap_or_else(|| prof_listen.clone())),
        stop: Some(linectl::serve::stop_on_signal()),
        site_server: !no_site_server,
        site_url,
    };
    if let Some(l) = &opts.status_listen {
        eprintln!("hil-sim: linectl status at http://{l}/status (Ctrl-C stops)");
    }
    let rep = if opts.profile.aggregation.is_some() {
        hil_sim::aggregation::run_with_aggregation(&opts, &agg_faults)?
    } else {
        run(&opts)?
    };
    if std::env::var_os("HILSIM_STATS").is_some() {
        eprintln!("settle: {:?}", hil_sim::line::settle_stats());
    }
    if !quiet {
        eprintln!();
    }
    let json = serde_json::to_string_pretty(&rep)?;
    match report {
        Some(p) => {
            std::fs::write(&p, json + "\n").with_context(|| format!("writing {}", p.display()))?
        }
        None => println!("{json}"),
    }
    let clean = rep.missed_rejects == 0
        && rep.duplicate_serials == 0
        && rep
            .aggregation
            .as_ref()
            .is_none_or(|a| a.wrong_aggregations == 0);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
