//! `linectl pool`: the serial-number pool from the command line — import, generate,
//! status, take, verify, list and the SNInvalid report. Only argument handling and
//! printing; the pool logic is `linectl::pool`. Every error exits 2 with its message.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use linectl::market::Market;
use linectl::pool::alloc::AllocatorConfig;
use linectl::pool::{Format, OpenMode, Pool, PoolError, Received, SerialState, source};

use super::EXIT_REJECTED;

/// `println!` that returns an error instead of panicking when stdout is gone (e.g.
/// `linectl pool list | head`).
macro_rules! say {
    ($($t:tt)*) => {
        writeln!(std::io::stdout().lock(), $($t)*)
            .map_err(|e| PoolError::Usage(format!("cannot write to stdout: {e}")))?
    };
}

/// `linectl pool` arguments.
#[derive(Debug, Args)]
pub struct PoolArgs {
    /// The pool's data directory.
    #[arg(long, global = true, env = "LINECTL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: PoolCmd,
}

/// `linectl pool` subcommands.
#[derive(Debug, Subcommand)]
pub enum PoolCmd {
    /// Import a serial list (CSV, JSON list or SNCollection) for one GTIN.
    Import {
        /// GTIN the serials belong to.
        #[arg(long)]
        gtin: String,
        /// Market (needed the first time a GTIN is seen).
        #[arg(long)]
        market: Option<Market>,
        /// File format (default: from the extension).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The file.
        file: PathBuf,
    },
    /// Receive an SNCollection that answers a request token this pool issued.
    Receive {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The SNCollection JSON file.
        file: PathBuf,
    },
    /// Issue (or show the pending) request token for a site-server request.
    Request {
        /// GTIN.
        #[arg(long)]
        gtin: String,
        /// How many serials to ask for.
        #[arg(long)]
        count: u64,
    },
    /// Generate serials locally where the market allows it.
    Generate {
        /// GTIN.
        #[arg(long)]
        gtin: String,
        /// How many.
        #[arg(long)]
        count: u64,
        /// Market.
        #[arg(long)]
        market: Market,
    },
    /// Counts per GTIN and state.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Hand out serials, one per line on stdout, each marked Encoded once written.
    Take {
        /// GTIN.
        #[arg(long)]
        gtin: String,
        /// How many.
        #[arg(long)]
        count: u64,
        /// Line the block is reserved for.
        #[arg(long, default_value = "cli")]
        line: String,
        /// Batch the block is reserved for.
        #[arg(long, default_value = "cli")]
        batch: String,
        /// Serials per durable reservation.
        #[arg(long, default_value_t = 1000)]
        block_size: u64,
    },
    /// Check the pool's consistency (exit 2 on any inconsistency).
    Verify {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// List the serials of a GTIN with their states.
    List {
        /// GTIN.
        #[arg(long)]
        gtin: String,
        /// Only this state.
        #[arg(long)]
        state: Option<SerialState>,
    },
    /// Serials made SNInvalid that are still to be reported to the site server.
    Invalid {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Acknowledge the report of this block (the site server has it).
        #[arg(long)]
        ack: Option<u64>,
    },
}

/// Run the command.
pub fn run(args: PoolArgs) -> anyhow::Result<ExitCode> {
    let Some(dir) = args.data_dir.clone() else {
        eprintln!("linectl: error: `linectl pool` needs --data-dir DIR (or LINECTL_DATA_DIR)");
        return Ok(ExitCode::from(EXIT_REJECTED));
    };
    match run_cmd(&dir, args.cmd) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("linectl: error: {e}");
            Ok(ExitCode::from(EXIT_REJECTED))
        }
    }
}

fn open(dir: &Path, create: bool) -> Result<Pool, PoolError> {
    let mode = if create {
        OpenMode::CreateIfMissing
    } else {
        OpenMode::MustExist
    };
    let pool = Pool::open(dir, mode)?;
    let rec = pool.recovery();
    if let Some(backup) = &rec.migrated_from_format1 {
        eprintln!(
            "linectl: migrated the serial store from format 1 to format {}; the format-1 copy is in {}",
            linectl::pool::layout::FORMAT_VERSION,
            backup.display()
        );
    }
    if rec.blocks_closed > 0 || rec.staged_removed > 0 {
        eprintln!(
            "linectl: recovery: closed {} block(s) left open, {} serial(s) now SNInvalid (see `linectl pool invalid`), removed {} staged serial(s)",
            rec.blocks_closed, rec.serials_invalidated, rec.staged_removed
        );
    }
    Ok(pool)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), PoolError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| PoolError::Usage(e.to_string()))?;
    say!("{text}");
    Ok(())
}

fn print_import(r: &linectl::pool::ImportReport, json: bool) -> Result<(), PoolError> {
    if json {
        return print_json(r);
    }
    say!(
        "GTIN {}: read {}, imported {}, rejected {} duplicate(s) already in the pool and {} within the file",
        r.gtin,
        r.read,
        r.imported,
        r.duplicates_in_pool,
        r.duplicates_in_file
    );
    for d in &r.duplicate_examples {
        say!("  duplicate: {d}");
    }
    Ok(())
}

fn run_cmd(dir: &Path, cmd: PoolCmd) -> Result<ExitCode, PoolError> {
    match cmd {
        PoolCmd::Import {
            gtin,
            market,
            format,
            json,
            file,
        } => {
            let src = source::open(&file, format)?;
            let mut pool = open(dir, true)?;
            let r = pool.import(&gtin, market, src, &file.display().to_string())?;
            print_import(&r, json)?;
        }
        PoolCmd::Receive { json, file } => {
            let mut pool = open(dir, false)?;
            match pool.receive_collection(
                || source::open(&file, Some(Format::Json)),
                &file.display().to_string(),
            )? {
                Received::Imported(r) => print_import(&r, json)?,
                Received::AlreadyReceived(r) => {
                    eprintln!(
                        "linectl: this collection was already received for its token; nothing imported again"
                    );
                    print_import(&r, json)?;
                }
            }
        }
        PoolCmd::Request { gtin, count } => {
            let mut pool = open(dir, false)?;
            let t = pool.begin_request(&gtin, count)?;
            print_json(&t)?;
        }
        PoolCmd::Generate {
            gtin,
            count,
            market,
        } => {
            let mut pool = open(dir, true)?;
            let r = pool.generate(&gtin, market, count)?;
            say!(
                "GTIN {}: generated {} serial(s) for {market}",
                r.gtin,
                r.imported
            );
        }
        PoolCmd::Status { json } => {
            let pool = open(dir, false)?;
            let st = pool.status()?;
            if json {
                print_json(&st)?;
            } else {
                for g in &st {
                    say!("GTIN {} ({}): {} serial(s)", g.gtin, g.market, g.total);
                    for s in SerialState::ALL {
                        let n = g.states.get(s.name()).copied().unwrap_or(0);
                        if n > 0 {
                            say!("  {:<14} {n}", s.name());
                        }
                    }
                }
            }
        }
        PoolCmd::Take {
            gtin,
            count,
            line,
            batch,
            block_size,
        } => {
            let mut pool = open(dir, false)?;
            let cfg = AllocatorConfig {
                block_size,
                quantity: Some(count),
            };
            let mut alloc = pool.allocator(&gtin, &line, &batch, cfg)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for _ in 0..count {
                let h = alloc.next_serial()?;
                let line = h.payload.replace('\u{1d}', "\t");
                let wrote = writeln!(out, "{line}").and_then(|()| out.flush());
                if let Err(e) = wrote {
                    // Not written: not Encoded; closing makes it SNInvalid.
                    alloc.close()?;
                    return Err(PoolError::Usage(format!("cannot write to stdout: {e}")));
                }
                alloc.mark_encoded(&h)?;
            }
            alloc.close()?;
        }
        PoolCmd::Verify { json } => {
            let pool = open(dir, false)?;
            let r = pool.verify()?;
            if json {
                print_json(&r)?;
            } else {
                say!("{} serial(s) and {} block(s) checked", r.serials, r.blocks);
                for p in &r.problems {
                    say!("INCONSISTENT: {p}");
                }
            }
            if !r.ok() {
                eprintln!(
                    "linectl: error: the pool is inconsistent ({} problem(s))",
                    r.problems.len()
                );
                return Ok(ExitCode::from(EXIT_REJECTED));
            }
        }
        PoolCmd::List { gtin, state } => {
            let pool = open(dir, false)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut err = None;
            pool.for_each(&gtin, |serial, st| {
                if state.is_none_or(|want| want == st)
                    && err.is_none()
                    && let Err(e) = writeln!(out, "{serial}\t{st}")
                {
                    err = Some(e);
                }
            })?;
            if let Some(e) = err.or_else(|| out.flush().err()) {
                return Err(PoolError::Usage(format!("cannot write to stdout: {e}")));
            }
        }
        PoolCmd::Invalid { json, ack } => {
            let mut pool = open(dir, false)?;
            if let Some(block) = ack {
                pool.ack_invalid_report(block)?;
                return Ok(ExitCode::SUCCESS);
            }
            let reports = pool.invalid_reports()?;
            if json {
                print_json(&reports)?;
            } else {
                for r in &reports {
                    say!(
                        "block {} GTIN {} line {} batch {}: {} SNInvalid",
                        r.block,
                        r.gtin,
                        r.line,
                        r.batch,
                        r.serials.len()
                    );
                    for s in &r.serials {
                        say!("  {s}");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
