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
//! the rework steps go to the daemon (`POST /api/v1/agg/rework`) as the HMI user
//! `--user NAME` (password from `--password-file`, `LINECTL_PASSWORD` or a prompt),
//! checked, role-gated and audited by the daemon as at the HMI; without `--user` they
//! are refused (exit 2) with a pointer to the HMI. With no daemon the stores are opened
//! directly. At the console `close` of a case short of the packing level closes it as
//! a partial case and says so (without a daemon no batch runs: the batch has ended;
//! through the daemon it is the supervisor's partial close).

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
    /// While `linectl run` holds the data dir: the HMI user doing the step (their role
    /// decides what they may do, as at the HMI).
    #[arg(long)]
    pub user: Option<String>,
    /// A file holding that user's password (first line); else `LINECTL_PASSWORD`, else
    /// a prompt on the terminal.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
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
        AggCmd::Open(step) if daemon_runs(&dir)? => through_daemon(&dir, &step, &[("open", &[])]),
        AggCmd::Close(step) if daemon_runs(&dir)? => {
            // Short of the packing level: a partial case (a supervisor's step).
            let n = daemon_container(&dir, &step.sscc)?
                .and_then(|c| c.get("children").and_then(|c| c.as_array()).map(Vec::len))
                .unwrap_or(0);
            let per_case = packing_of(&step)?.units_per_case as usize;
            let kind = if n > 0 && n < per_case {
                println!(
                    "case {} holds {n} of {per_case} units: closing it as a partial case",
                    step.sscc
                );
                "partial"
            } else {
                "close"
            };
            through_daemon(&dir, &step, &[(kind, &[])])
        }
        AggCmd::Dissolve(step) if daemon_runs(&dir)? => {
            through_daemon(&dir, &step, &[("dissolve", &[])])
        }
        AggCmd::Swap { step, remove, add } if daemon_runs(&dir)? => {
            let mut steps: Vec<(&str, &[String])> = Vec::new();
            if !remove.is_empty() {
                steps.push(("remove", &remove));
            }
            if !add.is_empty() {
                steps.push(("add", &add));
            }
            if steps.is_empty() {
                anyhow::bail!("swap needs --remove CODE or --add CODE");
            }
            through_daemon(&dir, &step, &steps)
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

/// Whether a running daemon answers for `dir` (it then holds the stores).
fn daemon_runs(dir: &Path) -> anyhow::Result<bool> {
    Ok(matches!(
        daemon(dir, "/api/v1/agg/holds")?,
        Daemon::Answer(..)
    ))
}

/// The container `code` as the running daemon has it.
fn daemon_container(dir: &Path, code: &str) -> anyhow::Result<Option<serde_json::Value>> {
    match daemon(dir, &format!("/api/v1/agg/containers/{}", pct(code)))? {
        Daemon::Answer(200, v) => Ok(v.get("container").cloned().filter(|c| !c.is_null())),
        Daemon::Answer(404, _) | Daemon::Absent => Ok(None),
        Daemon::Answer(s, v) => anyhow::bail!("the running daemon answered {s}: {}", message(&v)),
    }
}

fn packing_of(step: &StepArgs) -> anyhow::Result<Packing> {
    let p = Profile::load(&step.profile).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(agg) = &p.aggregation else {
        anyhow::bail!(
            "{} has no [aggregation] section (packing levels)",
            step.profile.display()
        );
    };
    Ok(Packing {
        units_per_case: agg.units_per_case,
        cases_per_pallet: agg.cases_per_pallet,
    })
}

/// The password of the HMI user `user`: `--password-file`, `LINECTL_PASSWORD`, or a
/// prompt on the terminal (not echoed where `stty` can switch echo off).
fn password_for(user: &str, file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading the password file {}", f.display()))?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    if let Ok(pw) = std::env::var("LINECTL_PASSWORD") {
        return Ok(pw);
    }
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no --password-file, no LINECTL_PASSWORD and no terminal to ask on")?;
    let stty = |arg: &str| {
        tty.try_clone().ok().and_then(|t| {
            std::process::Command::new("stty")
                .arg(arg)
                .stdin(t)
                .status()
                .ok()
        })
    };
    let mut out = tty.try_clone().context("terminal")?;
    write!(out, "Password for {user}: ")?;
    out.flush()?;
    let silenced = stty("-echo").is_some_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::BufReader::new(tty.try_clone().context("terminal")?).read_line(&mut line);
    if silenced {
        let _ = stty("echo");
        let _ = writeln!(out);
    }
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Do `steps` (step name, unit codes) on `step.sscc` through the running daemon, as the
/// HMI user `--user` (the daemon checks their password and role and audits each step).
fn through_daemon(
    dir: &Path,
    step: &StepArgs,
    steps: &[(&str, &[String])],
) -> anyhow::Result<ExitCode> {
    let file = api_file(dir);
    let api: DaemonApi = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .with_context(|| format!("reading {}", file.display()))?;
    let Some(user) = step.user.as_deref() else {
        anyhow::bail!(
            "linectl run holds this data dir: give --user NAME (your HMI account) to rework through it, \
             or rework at the HMI (http://{}/aggregation) with your own account",
            api.addr
        );
    };
    let password = password_for(user, step.password_file.as_deref())?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A step may wait on the stores and the journal's fsync, never on a device.
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let url = format!("http://{}/api/v1/agg/rework", api.addr);
    for (kind, units) in steps {
        let body = serde_json::json!({
            "user": user,
            "password": password,
            "sscc": step.sscc,
            "step": kind,
            "units": units,
            "reason": step.reason,
        });
        let mut resp = agent
            .post(&url)
            .header("Authorization", &format!("Bearer {}", api.token))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| anyhow::anyhow!("asking the running daemon at {url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        if status != 200 {
            anyhow::bail!(
                "the running daemon refused the {kind} step ({status}): {}",
                message(&v)
            );
        }
        println!("{}", message(&v));
        if let Some(tree) = v.get("tree").and_then(|t| t.as_str()) {
            print!("{tree}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn step_with(
    dir: &Path,
    step: &StepArgs,
    f: impl FnOnce(&Rework<'_>, &AuditActor) -> Result<(), linectl::aggregation::AggError>,
) -> anyhow::Result<ExitCode> {
    let p = Profile::load(&step.profile).map_err(|e| anyhow::anyhow!("{e}"))?;
    let packing = packing_of(step)?;
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
