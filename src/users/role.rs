//! Roles and permissions: who may do what on the line. Every server-side action names
//! one [`Permission`]; [`Role::may`] is the only place that decides. The table below
//! is the specification; `tests/users_permissions.rs` reads it from this file and
//! checks `Role::may` against it for every role and permission, so the two cannot
//! drift apart.
//!
//! | Permission             | operator | supervisor | qa  | admin |
//! |------------------------|----------|------------|-----|-------|
//! | `view_line`            | yes      | yes        | yes | yes   |
//! | `change_own_password`  | yes      | yes        | yes | yes   |
//! | `start_batch`          | yes      | yes        | no  | no    |
//! | `packml_command`       | yes      | yes        | no  | no    |
//! | `acknowledge_alarm`    | yes      | yes        | yes | no    |
//! | `resolve_exception`    | no       | yes        | yes | no    |
//! | `sign_as_second_person`| no       | yes        | yes | no    |
//! | `release_batch`        | no       | no         | yes | no    |
//! | `manage_pool`          | no       | yes        | no  | yes   |
//! | `view_audit`           | no       | yes        | yes | yes   |
//! | `export_audit`         | no       | no         | yes | yes   |
//! | `manage_users`         | no       | no         | no  | yes   |
//! | `change_config`        | no       | no         | no  | yes   |
//!
//! The reasoning: operators run the line; supervisors run it too and handle its
//! exceptions; QA judges product and records but does not run production; the
//! administrator manages accounts, configuration and the serial pool but neither runs
//! production nor signs for it (segregation of duties, EU GMP Annex 11 §12). Whether an
//! action also needs a second person's e-signature is the line profile's business, not
//! this table's; the second person must hold `sign_as_second_person`.
//!
//! This module owns the vocabulary and the table; it does not know users or sessions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the line.
    Operator,
    /// Runs the line and resolves its exceptions.
    Supervisor,
    /// Quality assurance: reviews, resolves, signs, releases.
    Qa,
    /// Manages users, configuration and the pool.
    Admin,
}

/// Something a user may or may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See the line overview, counts and trends.
    ViewLine,
    /// Change one's own password (with the old one).
    ChangeOwnPassword,
    /// Set up and start a batch.
    StartBatch,
    /// Give PackML commands (start, stop, hold, unhold, suspend, unsuspend, reset, clear, abort).
    PackmlCommand,
    /// Acknowledge an alarm.
    AcknowledgeAlarm,
    /// Resolve a reject or exception (with a reason).
    ResolveException,
    /// Sign another user's action as second person.
    SignAsSecondPerson,
    /// Release a completed batch.
    ReleaseBatch,
    /// Import, generate or return serial numbers by hand.
    ManagePool,
    /// Read the audit trail.
    ViewAudit,
    /// Export the audit trail.
    ExportAudit,
    /// Add, disable, enable, unlock users, set roles, reset passwords.
    ManageUsers,
    /// Change line configuration (profiles, thresholds).
    ChangeConfig,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Operator, Role::Supervisor, Role::Qa, Role::Admin];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Qa => "qa",
            Role::Admin => "admin",
        }
    }

    /// Whether this role holds `p` (the table in the module doc).
    pub fn may(self, p: Permission) -> bool {
        use Permission as P;
        use Role::*;
        match p {
            P::ViewLine | P::ChangeOwnPassword => true,
            P::StartBatch | P::PackmlCommand => matches!(self, Operator | Supervisor),
            P::AcknowledgeAlarm => matches!(self, Operator | Supervisor | Qa),
            P::ResolveException | P::SignAsSecondPerson => matches!(self, Supervisor | Qa),
            P::ReleaseBatch => self == Qa,
            P::ManagePool => matches!(self, Supervisor | Admin),
            P::ViewAudit => matches!(self, Supervisor | Qa | Admin),
            P::ExportAudit => matches!(self, Qa | Admin),
            P::ManageUsers | P::ChangeConfig => self == Admin,
        }
    }
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 13] = [
        Permission::ViewLine,
        Permission::ChangeOwnPassword,
        Permission::StartBatch,
        Permission::PackmlCommand,
        Permission::AcknowledgeAlarm,
        Permission::ResolveException,
        Permission::SignAsSecondPerson,
        Permission::ReleaseBatch,
        Permission::ManagePool,
        Permission::ViewAudit,
        Permission::ExportAudit,
        Permission::ManageUsers,
        Permission::ChangeConfig,
    ];

    /// The name used in the table and in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ViewLine => "view_line",
            Permission::ChangeOwnPassword => "change_own_password",
            Permission::StartBatch => "start_batch",
            Permission::PackmlCommand => "packml_command",
            Permission::AcknowledgeAlarm => "acknowledge_alarm",
            Permission::ResolveException => "resolve_exception",
            Permission::SignAsSecondPerson => "sign_as_second_person",
            Permission::ReleaseBatch => "release_batch",
            Permission::ManagePool => "manage_pool",
            Permission::ViewAudit => "view_audit",
            Permission::ExportAudit => "export_audit",
            Permission::ManageUsers => "manage_users",
            Permission::ChangeConfig => "change_config",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role or permission name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?} (one of: {choices})")]
pub struct UnknownName {
    /// "role" or "permission".
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The valid names.
    pub choices: String,
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Role, UnknownName> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "role",
                name: s.to_string(),
                choices: Role::ALL.map(Role::as_str).join(", "),
            })
    }
}

impl FromStr for Permission {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Permission, UnknownName> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "permission",
                name: s.to_string(),
                choices: Permission::ALL.map(Permission::as_str).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        let e = "root".parse::<Role>().unwrap_err();
        assert!(
            e.to_string().contains("operator, supervisor, qa, admin"),
            "{e}"
        );
    }

    #[test]
    fn segregation_of_duties() {
        // Nobody both administers users and runs or signs for production.
        for r in Role::ALL {
            if r.may(Permission::ManageUsers) {
                assert!(!r.may(Permission::StartBatch));
                assert!(!r.may(Permission::SignAsSecondPerson));
            }
        }
    }
}
