//! Shared set-up for the user tests (included with `mod users_support;`): a temp data
//! dir with a real audit trail and user store on a virtual clock, cheap Argon2
//! parameters, and one account per role created from the console.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use linectl::audit::{AuditTrail, Query, Record};
use linectl::clock::VirtualClock;
use linectl::users::{Actor, HashParams, Role, Users, UsersConfig};

pub const T0: u64 = 1_700_000_000_000_000;
pub const PW: &str = "pass-word-123";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub clock: VirtualClock,
    pub audit: Arc<AuditTrail>,
    pub users: Users,
}

pub fn fast_config() -> UsersConfig {
    UsersConfig {
        hashing: HashParams::insecure_fast_for_tests(),
        ..UsersConfig::default()
    }
}

pub fn open_users(
    dir: &Path,
    clock: &VirtualClock,
    audit: &Arc<AuditTrail>,
    cfg: UsersConfig,
) -> Users {
    Users::open(dir, cfg, Arc::new(clock.clone()), audit.clone()).unwrap()
}

/// A data dir with users `op` (operator), `sup` (supervisor), `qa` (qa), `admin`
/// (admin), all with password [`PW`].
pub fn env_with(cfg: UsersConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new(T0);
    let (trail, _) = AuditTrail::open(dir.path(), Arc::new(clock.clone())).unwrap();
    let audit = Arc::new(trail);
    let users = open_users(dir.path(), &clock, &audit, cfg);
    let console = Actor::console("tester");
    for (name, role) in [
        ("op", Role::Operator),
        ("sup", Role::Supervisor),
        ("qa", Role::Qa),
        ("admin", Role::Admin),
    ] {
        users
            .add_user(&console, name, role, PW, "test set-up")
            .unwrap();
    }
    Env {
        dir,
        clock,
        audit,
        users,
    }
}

pub fn env() -> Env {
    env_with(fast_config())
}

impl Env {
    /// All audit records so far.
    pub fn records(&self) -> Vec<Record> {
        self.audit.query(&Query::default()).unwrap()
    }

    /// The action names of the records after the first `skip`.
    pub fn actions_since(&self, skip: usize) -> Vec<String> {
        self.records()
            .iter()
            .skip(skip)
            .map(|r| r.action.to_string())
            .collect()
    }
}
