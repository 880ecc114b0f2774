//! `linectl user`: manage HMI accounts from the line PC's console — add, list, set a
//! role, disable, enable, unlock, reset a password. Changes are made as
//! `console:<os-user>` and recorded in the audit trail like any other; they need the
//! store and the trail to themselves, so they fail while the daemon holds them.
//! Passwords come from stdin (first line) or, on a terminal, from a prompt with echo
//! off. Only argument handling and printing; the logic is `linectl::users`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use linectl::audit::{AuditTrail, time::format_utc};
use linectl::clock::{Clock, SystemClock};
use linectl::users::{self, Actor, Locked, Role, Users, UsersConfig};

use super::EXIT_REJECTED;

/// `linectl user` arguments.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The data directory (accounts in `users/`, the trail in `audit/`).
    #[arg(
        long,
        global = true,
        env = "LINECTL_DATA_DIR",
        default_value = "/var/lib/linectl"
    )]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub cmd: UserCmd,
}

/// `linectl user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add an account; the password is read from stdin (or prompted for).
    Add {
        /// Login name (a-z, 0-9, '.', '_', '-').
        name: String,
        /// Role: operator, supervisor, qa or admin.
        #[arg(long)]
        role: Role,
        /// Why (recorded in the audit trail).
        #[arg(long, default_value = "added with linectl user add")]
        reason: String,
    },
    /// List the accounts.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Change an account's role.
    SetRole {
        /// Login name.
        name: String,
        /// The new role.
        #[arg(long)]
        role: Role,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Disable an account (it can no longer log in or sign).
    Disable {
        /// Login name.
        name: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Login name.
        name: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Lift a lock-out after failed logins.
    Unlock {
        /// Login name.
        name: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Set a new password (read from stdin or prompted for).
    Passwd {
        /// Login name.
        name: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
}

fn console_actor() -> Actor {
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Actor::console(&os_user)
}

/// Read a password: the first line of stdin, or a prompt (echo off, asked twice) on a
/// terminal.
fn read_password(name: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        anyhow::ensure!(!pw.is_empty(), "no password on stdin");
        return Ok(pw);
    }
    let ask = |prompt: &str| -> anyhow::Result<String> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let echo_off = std::process::Command::new("stty")
            .arg("-echo")
            .status()
            .is_ok_and(|s| s.success());
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        if echo_off {
            let _ = std::process::Command::new("stty").arg("echo").status();
            eprintln!();
        }
        read?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    };
    let first = ask(&format!("New password for {name}: "))?;
    let second = ask("Repeat it: ")?;
    anyhow::ensure!(first == second, "the two passwords differ");
    Ok(first)
}

fn open(data_dir: &Path) -> anyhow::Result<Users> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (trail, report) = AuditTrail::open(data_dir, clock.clone())?;
    if let Some(t) = &report.recovered_torn {
        eprintln!(
            "linectl: notice: the audit log ended in a torn record ({} bytes); set aside in {} and recorded as record {}",
            t.len,
            t.saved_to.display(),
            t.recorded_as
        );
    }
    Ok(Users::open(
        data_dir,
        UsersConfig::default(),
        clock,
        Arc::new(trail),
    )?)
}

/// Run the command.
pub fn run(args: UserArgs) -> anyhow::Result<ExitCode> {
    match run_cmd(&args.data_dir, args.cmd) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("linectl: error: {e:#}");
            Ok(ExitCode::from(EXIT_REJECTED))
        }
    }
}

fn run_cmd(data_dir: &Path, cmd: UserCmd) -> anyhow::Result<()> {
    let me = console_actor();
    match cmd {
        UserCmd::List { json } => list(data_dir, json),
        UserCmd::Add { name, role, reason } => {
            users::store::check_name(&name)?;
            let users = open(data_dir)?;
            let pw = read_password(&name)?;
            users.add_user(&me, &name, role, &pw, &reason)?;
            eprintln!("added {name} ({role})");
            Ok(())
        }
        UserCmd::SetRole { name, role, reason } => {
            open(data_dir)?.set_role(&me, &name, role, &reason)?;
            eprintln!("{name} is now {role}");
            Ok(())
        }
        UserCmd::Disable { name, reason } => {
            open(data_dir)?.disable(&me, &name, &reason)?;
            eprintln!("{name} disabled");
            Ok(())
        }
        UserCmd::Enable { name, reason } => {
            open(data_dir)?.enable(&me, &name, &reason)?;
            eprintln!("{name} enabled");
            Ok(())
        }
        UserCmd::Unlock { name, reason } => {
            if open(data_dir)?.unlock(&me, &name, &reason)? {
                eprintln!("{name} unlocked");
            } else {
                eprintln!("{name} was not locked");
            }
            Ok(())
        }
        UserCmd::Passwd { name, reason } => {
            let users = open(data_dir)?;
            let pw = read_password(&name)?;
            users.change_password(&me, &name, None, &pw, &reason)?;
            eprintln!("password of {name} set");
            Ok(())
        }
    }
}

/// List from the file without taking the store's lock, so it works while the daemon
/// runs.
fn list(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let now = SystemClock::new().wall_micros();
    let all = users::store::load(&data_dir.join("users"))?;
    let mut out = std::io::stdout().lock();
    let lock_text = |l: Option<Locked>| match l {
        None => "-".to_string(),
        Some(Locked::UntilUs(t)) if t <= now => "-".to_string(),
        Some(Locked::UntilUs(t)) => format!("until {}", format_utc(t)),
        Some(Locked::UntilUnlocked) => "until unlocked".to_string(),
    };
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|u| {
                serde_json::json!({
                    "name": u.name,
                    "role": u.role,
                    "enabled": u.enabled,
                    "locked": lock_text(u.locked),
                    "failed_logins": u.failed_logins,
                    "created_utc": format_utc(u.created_us),
                    "password_changed_utc": format_utc(u.password_changed_us),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<11} {:<8} {:<7} {:<38} created",
        "name", "role", "enabled", "failed", "locked"
    )?;
    for u in &all {
        writeln!(
            out,
            "{:<20} {:<11} {:<8} {:<7} {:<38} {}",
            u.name,
            u.role.as_str(),
            if u.enabled { "yes" } else { "no" },
            u.failed_logins,
            lock_text(u.locked),
            format_utc(u.created_us)
        )?;
    }
    Ok(())
}
