//! `linectl agg`: aggregation from the console — `show CODE` prints the tree under a
//! scanned case or pallet code (or the containers a unit is in), `holds` lists the
//! cases and pallets held for rework, and the rework steps `open`, `swap`, `close`,
//! `dissolve` change a container with its events journaled and the step audited as
//! `console:<os-user>`. Argument handling and printing only; the work is
//! `linectl::aggregation`. The store is `DATA_DIR/aggregation`, the journal
//! `DATA_DIR/journal`. Errors exit 2 with their message on stderr.
//!
//! While `linectl run` holds the data dir it holds the stores too: `show` and `holds`
//! then ask the daemon over HTTP (its address and a local bearer token are in
//! `DATA_DIR/hmi/agg-api.json`, written by the daemon, readable by its user only), and
//! the rework steps refuse (exit 2) and point to the HMI's aggregation page, where they
//! are done with the operator's own account. With no daemon the stores are opened
//! directly. At the console no batch runs, so `close` of a case short of the packing
//! level closes it as a partial case (the batch has ended) and says so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use linectl::aggregation::check::BatchLedger;
use linectl::aggregation::rework::{Packing, PartialGrant, Rework};
use linectl::aggregation::show::{parse_code, show};
use linectl::aggregation::store::{AggStore, Child};
use linectl::audit::{AuditActor, AuditTrail};
use linectl::clock::{Clock, SystemClock};
use linectl::epcis::aggregation::AggregationEvents;
use linectl::journal::{Journal, JournalConfig};
use linectl::profile::Profile;
use serde::{Deserialize, Serialize};

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
    /// Digital Link shows the containers it is in); asks the running daemon when there
    /// is one.
    Show {
        /// The scanned code.
        code: String,
    },
    /// List the cases and pallets held for rework (through the running daemon when
    /// there is one).
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
    /// Close an open case again (short of the packing level: as a partial case).
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
    /// The line profile (identifier form, site, product, packing levels).
    #[arg(long, env = "LINECTL_PROFILE")]
    pub profile: PathBuf,
}

/// Where a running daemon serves the aggregation read API (`<data>/hmi/agg-api.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonApi {
    /// `host:port` to connect to.
    pub addr: String,
    /// The bearer token of this daemon start.
    pub token: String,
    /// The daemon's process id.
    pub pid: u32,
}

/// The discovery file in `data_dir`.
pub fn api_file(data_dir: &Path) -> PathBuf {
    data_dir.join("hmi").join("agg-api.json")
}

/// Write the discovery file (mode 0600), replacing any left by a dead daemon.
pub fn write_api_file(data_dir: &Path, api: &DaemonApi) -> anyhow::Result<()> {
    use std::io::Write;
    let path = api_file(data_dir);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?
    };
    f.write_all(&serde_json::to_vec(api)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
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

/// A daemon's answer.
enum Daemon {
    /// No daemon answers for this data dir.
    Absent,
    /// It answered with this status and body.
    Answer(u16, serde_json::Value),
}

fn daemon(dir: &Path, path: &str) -> anyhow::Result<Daemon> {
    let file = api_file(dir);
    let Ok(bytes) = std::fs::read(&file) else {
        return Ok(Daemon::Absent);
    };
    let api: DaemonApi =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", file.display()))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("http://{}{path}", api.addr);
    match agent
        .get(&url)
        .header("Authorization", &format!("Bearer {}", api.token))
        .call()
    {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
            Ok(Daemon::Answer(status, v))
        }
        // A file left by a daemon that is gone: nothing listens there.
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Ok(Daemon::Absent)
        }
        Err(ureq::Error::ConnectionFailed) => Ok(Daemon::Absent),
        Err(e) => Err(anyhow::anyhow!("asking the running daemon at {url}: {e}")),
    }
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn message(v: &serde_json::Value) -> String {
    v.get("message")
        .and_then(|m| m.as_str())
        .map_or_else(|| v.to_string(), str::to_string)
}

fn print_holds(holds: &[linectl::aggregation::store::Hold]) {
    for h in holds {
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
}

fn real(args: AggArgs) -> anyhow::Result<ExitCode> {
    let Some(dir) = args.data_dir else {
        anyhow::bail!("`linectl agg` needs --data-dir DIR (or LINECTL_DATA_DIR)");
    };
    match args.cmd {
        AggCmd::Show { code } => {
            let tree = match daemon(&dir, &format!("/api/v1/agg/containers/{}", pct(&code)))? {
                Daemon::Answer(200, v) => {
                    v.get("tree").and_then(|t| t.as_str()).map(str::to_string)
                }
                Daemon::Answer(404, _) => None,
                Daemon::Answer(s, v) => {
                    anyhow::bail!("the running daemon answered {s}: {}", message(&v))
                }
                Daemon::Absent => show(&store(&dir)?, &code)?,
            };
            match tree {
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
            let holds = match daemon(&dir, "/api/v1/agg/holds")? {
                Daemon::Answer(200, v) => {
                    serde_json::from_value(v.get("holds").cloned().unwrap_or_default())
                        .context("the daemon's holds")?
                }
                Daemon::Answer(s, v) => {
                    anyhow::bail!("the running daemon answered {s}: {}", message(&v))
                }
                Daemon::Absent => store(&dir)?.open_holds()?,
            };
            print_holds(&holds);
            Ok(ExitCode::SUCCESS)
        }
        AggCmd::Open(step) => step_with(&dir, &step, |r, a| {
            r.open_case(a, &step.sscc, &step.reason).map(|_| ())
        }),
        AggCmd::Close(step) => step_with(&dir, &step, |r, a| {
            let n = r
                .store
                .container(&step.sscc)?
                .map_or(0, |c| c.children.len());
            if n > 0 && n < r.packing.units_per_case as usize {
                let batch = r
                    .store
                    .container(&step.sscc)?
                    .map(|c| c.batch)
                    .unwrap_or_default();
                println!(
                    "case {} holds {n} of {} units: closed as a partial case (no batch runs)",
                    step.sscc, r.packing.units_per_case
                );
                r.close_partial(
                    a,
                    &step.sscc,
                    &step.reason,
                    &PartialGrant::BatchEnded { batch },
                )
                .map(|_| ())
            } else {
                r.close_case(a, &step.sscc, &step.reason).map(|_| ())
            }
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
    if let Daemon::Answer(..) = daemon(dir, "/api/v1/agg/holds")? {
        let addr = std::fs::read(api_file(dir))
            .ok()
            .and_then(|b| serde_json::from_slice::<DaemonApi>(&b).ok())
            .map(|a| a.addr)
            .unwrap_or_default();
        anyhow::bail!(
            "linectl run holds this data dir: rework at the HMI (http://{addr}/aggregation) with your own account"
        );
    }
    let p = Profile::load(&step.profile).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(agg) = &p.aggregation else {
        anyhow::bail!(
            "{} has no [aggregation] section (packing levels)",
            step.profile.display()
        );
    };
    let packing = Packing {
        units_per_case: agg.units_per_case,
        cases_per_pallet: agg.cases_per_pallet,
    };
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
        packing,
    };
    f(&r, &actor)?;
    if let Some(tree) = show(&s, &step.sscc)? {
        print!("{tree}");
    } else {
        println!("{} dissolved", step.sscc);
    }
    Ok(ExitCode::SUCCESS)
}
