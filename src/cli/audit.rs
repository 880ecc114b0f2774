//! `linectl audit`: verify the audit trail of a data directory and export it as CSV.
//! Only argument handling and printing; the trail is `linectl::audit`. `verify` exits
//! 0 when the trail is consistent and 2 with a message naming the first bad record
//! otherwise; `export` refuses (exit 2) to export a trail that does not verify.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use linectl::audit::{self, Action, Query, time::parse_utc};

use super::EXIT_REJECTED;

/// `linectl audit` arguments.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The data directory (the trail is in its `audit` folder).
    #[arg(
        long,
        global = true,
        env = "LINECTL_DATA_DIR",
        default_value = "/var/lib/linectl"
    )]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub cmd: AuditCmd,
}

/// `linectl audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain, sequence and head of the trail (exit 2 on any inconsistency).
    Verify {
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Export records to stdout (after verifying the trail).
    Export {
        /// CSV (RFC 4180, with a header row); the only format so far.
        #[arg(long, required = true)]
        csv: bool,
        /// Only records at or after this UTC time (2026-11-30 or 2026-11-30T08:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// Only records before this UTC time.
        #[arg(long)]
        to: Option<String>,
        /// Only records by (or signed by) this user.
        #[arg(long)]
        user: Option<String>,
        /// Only records of this action (e.g. login_failed, exception_resolved).
        #[arg(long)]
        action: Option<String>,
        /// Only records whose object starts with this (e.g. `user:` or `batch:B12`).
        #[arg(long)]
        object: Option<String>,
    },
}

fn reject(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("linectl: error: {msg}");
    Ok(ExitCode::from(EXIT_REJECTED))
}

/// Run the command.
pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let dir = audit::trail_dir(&args.data_dir);
    if !dir.is_dir() {
        return reject(format!(
            "no audit trail at {} (is --data-dir right?)",
            dir.display()
        ));
    }
    match args.cmd {
        AuditCmd::Verify { json } => verify(&dir, json),
        AuditCmd::Export {
            csv: _,
            from,
            to,
            user,
            action,
            object,
        } => {
            let parse = |t: Option<String>| t.as_deref().map(parse_utc).transpose();
            let (from_us, to_us) = match (parse(from), parse(to)) {
                (Ok(f), Ok(t)) => (f, t),
                (Err(e), _) | (_, Err(e)) => return reject(e),
            };
            let action = action.map(|a| a.parse::<Action>().unwrap_or(Action::Other(a)));
            if let Some(Action::Other(name)) = &action {
                let known: Vec<_> = Action::ALL.iter().map(Action::as_str).collect();
                return reject(format!(
                    "unknown action {name:?} (one of: {})",
                    known.join(", ")
                ));
            }
            let q = Query {
                from_us,
                to_us,
                user,
                action,
                object_prefix: object,
            };
            export(&dir, &q)
        }
    }
}

fn verify(dir: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let report = audit::verify_dir(dir)
        .with_context(|| format!("cannot read the audit trail in {}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "audit trail {}: {} good records, last good record {} (hash {})",
            dir.display(),
            report.records,
            report.last_seq,
            report.last_hash
        )?;
    }
    for n in &report.notices {
        eprintln!("linectl: notice: {n}");
    }
    match &report.problem {
        None => {
            if !json {
                writeln!(out, "OK: chain, sequence and head are consistent")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => reject(format!(
            "audit trail {} is INCONSISTENT: {p}",
            dir.display()
        )),
    }
}

fn export(dir: &std::path::Path, q: &Query) -> anyhow::Result<ExitCode> {
    let (records, report) = audit::read_verified(dir)
        .with_context(|| format!("cannot read the audit trail in {}", dir.display()))?;
    if let Some(p) = report.problem {
        return reject(format!(
            "not exporting: audit trail {} is INCONSISTENT: {p} (run `linectl audit verify`)",
            dir.display()
        ));
    }
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    audit::write_csv(records.iter().filter(|r| q.matches(r)), out)
        .context("cannot write the CSV to stdout")?;
    Ok(ExitCode::SUCCESS)
}
