//! `linectl agg`: aggregation from the console — `show CODE` prints the tree under a
//! scanned case or pallet code (or the containers a unit is in), `holds` lists the
//! cases and pallets held for rework, and the rework steps `open`, `swap`, `close`,
//! `dissolve` change a container with its events journaled and the step audited as
//! `console:<os-user>`. Argument handling and printing only; the work is
//! `linectl::aggregation`. The store is `DATA_DIR/aggregation`, the journal
//! `DATA_DIR/journal`. Errors exit 2 with their message on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use linectl::aggregation::check::BatchLedger;
use linectl::aggregation::rework::Rework;
use linectl::aggregation::show::{parse_code, show};
use linectl::aggregation::store::{AggStore, Child};
use linectl::audit::{AuditActor, AuditTrail};
use linectl::clock::{Clock, SystemClock};
use linectl::epcis::aggregation::AggregationEvents;
use linectl::journal::{Journal, JournalConfig};
use linectl::profile::Profile;

use super::EXIT_REJECTED;

/// `linectl agg` arguments.
#[derive(Debug, Args)]
pub struct AggArgs {
    /// The line's data directory.
    #[arg(long, env = "LINECTL_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: AggCmd,
}

/// `linectl agg` subcommands.
#[derive(Debug, Subcommand)]
pub enum AggCmd {
    /// Print the tree under a case or pallet code (SSCC, `(00)…`, a unit's code or
    /// Digital Link shows the containers it is in).
    Show {
        /// The scanned code.
        code: String,
    },
    /// List the cases and pallets held for rework.
    Holds,
    /// Open a closed case for rework.
    Open(StepArgs),
    /// Take units out of / put units into an open case.
    Swap {
        #[command(flatten)]
        step: StepArgs,
        /// A unit code to take out (repeatable).
        #[arg(long)]
        remove: Vec<String>,
        /// A unit code to put in (repeatable).
        #[arg(long)]
        add: Vec<String>,
    },
    /// Close an open case again.
    Close(StepArgs),
    /// Dissolve a case or a pallet (every child comes out).
    Dissolve(StepArgs),
}

/// What every rework step needs.
#[derive(Debug, Args)]
pub struct StepArgs {
    /// The case or pallet SSCC.
    pub sscc: String,
    /// Why (recorded in the audit trail).
    #[arg(long)]
    pub reason: String,
    /// The line profile (identifier form, site, product).
    #[arg(long, env = "LINECTL_PROFILE")]
    pub profile: PathBuf,
}

/// Run the command.
pub fn run(args: AggArgs) -> anyhow::Result<ExitCode> {
    match real(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("linectl: error: {e:#}");
            Ok(ExitCode::from(EXIT_REJECTED))
        }
    }
}

fn store(dir: &Path) -> anyhow::Result<AggStore> {
    let d = dir.join("aggregation");
    if !d.is_dir() {
        anyhow::bail!(
            "no aggregation store at {} (is --data-dir right?)",
            d.display()
        );
    }
    AggStore::open(&d).with_context(|| format!("aggregation store {}", d.display()))
}

fn real(args: AggArgs) -> anyhow::Result<ExitCode> {
    let Some(dir) = args.data_dir else {
        anyhow::bail!("`linectl agg` needs --data-dir DIR (or LINECTL_DATA_DIR)");
    };
    match args.cmd {
        AggCmd::Show { code } => {
            let s = store(&dir)?;
            match show(&s, &code)? {
                Some(tree) => {
                    print!("{tree}");
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("linectl: {code:?} is no aggregated case or pallet and in none");
                    Ok(ExitCode::from(EXIT_REJECTED))
                }
            }
        }
        AggCmd::Holds => {
            for h in store(&dir)?.holds()? {
                println!(
                    "hold {} · {} · batch {} · SSCC {}",
                    h.id,
                    h.level.name(),
                    h.batch,
                    h.sscc.as_deref().unwrap_or("-")
                );
                for r in &h.reasons {
                    println!("    {r}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AggCmd::Open(step) => step_with(&dir, &step, |r, a| {
            r.open_case(a, &step.sscc, &step.reason).map(|_| ())
        }),
        AggCmd::Close(step) => step_with(&dir, &step, |r, a| {
            r.close_case(a, &step.sscc, &step.reason).map(|_| ())
        }),
        AggCmd::Dissolve(step) => step_with(&dir, &step, |r, a| {
            r.dissolve(a, &step.sscc, &step.reason).map(|_| ())
        }),
        AggCmd::Swap { step, remove, add } => {
            let units = |codes: &[String]| -> anyhow::Result<Vec<Child>> {
                codes
                    .iter()
                    .map(|c| match parse_code(c) {
                        Some(u @ Child::Unit { .. }) => Ok(u),
                        _ => anyhow::bail!("{c:?} is not a unit code"),
                    })
                    .collect()
            };
            let (remove, add) = (units(&remove)?, units(&add)?);
            step_with(&dir, &step, |r, a| {
                let ledger = if add.is_empty() {
                    None
                } else {
                    Some(ledger_for(&dir, &step, r)?)
                };
                r.swap_units(a, &step.sscc, &remove, &add, ledger.as_ref(), &step.reason)
                    .map(|_| ())
            })
        }
    }
}

fn ledger_for(
    dir: &Path,
    step: &StepArgs,
    r: &Rework<'_>,
) -> Result<BatchLedger, linectl::aggregation::AggError> {
    use linectl::aggregation::AggError;
    let p = Profile::load(&step.profile).map_err(|e| AggError::Usage(e.to_string()))?;
    let batch = r
        .store
        .container(&step.sscc)?
        .map(|c| c.batch)
        .ok_or_else(|| AggError::Usage(format!("no case {}", step.sscc)))?;
    let pool = linectl::pool::Pool::open(&dir.join("pool"), linectl::pool::OpenMode::MustExist)
        .map_err(|e| AggError::Usage(format!("serial pool: {e}")))?;
    let mut l = BatchLedger::new(&p.product.gtin, &batch, r.events.clone(), Box::new(pool));
    l.refresh(r.journal)?;
    Ok(l)
}

fn step_with(
    dir: &Path,
    step: &StepArgs,
    f: impl FnOnce(&Rework<'_>, &AuditActor) -> Result<(), linectl::aggregation::AggError>,
) -> anyhow::Result<ExitCode> {
    let p = Profile::load(&step.profile).map_err(|e| anyhow::anyhow!("{e}"))?;
    let s = store(dir)?;
    let cfg = linectl::pipeline::LineConfig::from_profile(&p, dir.to_path_buf());
    let journal = Journal::open(JournalConfig {
        consumers: cfg.journal_consumers.clone(),
        ..JournalConfig::in_dir(dir.join("journal"))
    })
    .context("event journal (is the daemon running? stop it first)")?;
    let site = linectl::pipeline::site_sgln(&p.line.site)?;
    let events = AggregationEvents::new(cfg.identifiers, &site, &site)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (audit, _) = AuditTrail::open(dir, clock.clone()).context("audit trail")?;
    let os_user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let actor = AuditActor {
        user: format!("console:{os_user}"),
        role: "console".into(),
    };
    let r = Rework {
        store: &s,
        journal: &journal,
        events: &events,
        audit: &audit,
        clock,
    };
    f(&r, &actor)?;
    if let Some(tree) = show(&s, &step.sscc)? {
        print!("{tree}");
    } else {
        println!("{} dissolved", step.sscc);
    }
    Ok(ExitCode::SUCCESS)
}
