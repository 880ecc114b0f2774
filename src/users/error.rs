//! Errors of user management: the general [`UsersError`] (storage, audit, refused
//! administration) and one enum per HMI entry point ([`LoginError`], [`AuthError`],
//! [`ESignError`]) whose variants are the answers a login page or an API handler has
//! to tell apart. Messages never contain a password or a session token.

use std::path::PathBuf;

use crate::audit::AuditError;

use super::password::PasswordError;
use super::role::{Permission, Role};

/// User management failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// A file operation failed.
    #[error("users: cannot {op} {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The user file is damaged.
    #[error("users: {path} is damaged: {why}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Another process holds the user store.
    #[error("users: {0} is in use by another process (is the daemon running?)")]
    InUse(PathBuf),
    /// The configuration is invalid.
    #[error("users: invalid configuration: {0}")]
    Config(String),
    /// The acting user lacks a permission.
    #[error("{user} may not do this: it needs the {permission} permission")]
    Forbidden {
        /// Who tried.
        user: String,
        /// The permission needed.
        permission: Permission,
    },
    /// No such user.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// A user of that name exists.
    #[error("a user named {0:?} exists already")]
    Exists(String),
    /// A bad user name.
    #[error("bad user name {0}")]
    BadName(String),
    /// The change would leave no enabled administrator.
    #[error("refused: {0} is the last enabled administrator")]
    LastAdmin(String),
    /// The old password given for a change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// A reason is required and none was given.
    #[error("a reason is required for {0}")]
    ReasonRequired(&'static str),
    /// A password problem (policy, hashing).
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The audit trail could not record the change, so it was not made.
    #[error("not done: the audit trail could not record it: {0}")]
    Audit(#[from] AuditError),
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password (deliberately not told apart).
    #[error("wrong user name or password")]
    InvalidCredentials,
    /// The account is locked after repeated failures.
    #[error("the account is locked{}", match until_us { Some(t) => format!(" until {}", crate::audit::time::format_utc(*t)), None => " until an administrator unlocks it".to_string() })]
    Locked {
        /// Until when (UTC µs); `None` until an administrator unlocks it.
        until_us: Option<u64>,
    },
    /// The account is disabled.
    #[error("the account is disabled")]
    Disabled,
    /// Storage or audit failure: the login was not granted.
    #[error(transparent)]
    Internal(#[from] UsersError),
}

/// Why a request was not authorized.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No session with this token (never issued, logged out, or the server restarted).
    #[error("not logged in")]
    NoSession,
    /// The session timed out.
    #[error("the session timed out; log in again")]
    Expired,
    /// The account was disabled or locked since the login.
    #[error("the account is no longer active")]
    AccountInactive,
    /// The user's role lacks the permission.
    #[error("role {role} may not {permission}")]
    Forbidden {
        /// The user's role.
        role: Role,
        /// The permission needed.
        permission: Permission,
    },
    /// Storage or audit failure.
    #[error(transparent)]
    Internal(#[from] UsersError),
}

/// Why a second-person signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum ESignError {
    /// The signer is the person whose action is being signed.
    #[error("the second person must be someone other than {0}")]
    SameAsActor(String),
    /// Unknown signer or wrong password.
    #[error("wrong user name or password")]
    InvalidCredentials,
    /// The signer's role may not sign.
    #[error("role {0} may not sign as second person")]
    NotPermitted(Role),
    /// The signer's account is locked.
    #[error("the signer's account is locked")]
    Locked,
    /// The signer's account is disabled.
    #[error("the signer's account is disabled")]
    Disabled,
    /// Storage or audit failure.
    #[error(transparent)]
    Internal(#[from] UsersError),
}

impl From<AuditError> for LoginError {
    fn from(e: AuditError) -> Self {
        LoginError::Internal(UsersError::Audit(e))
    }
}

impl From<AuditError> for AuthError {
    fn from(e: AuditError) -> Self {
        AuthError::Internal(UsersError::Audit(e))
    }
}

impl From<AuditError> for ESignError {
    fn from(e: AuditError) -> Self {
        ESignError::Internal(UsersError::Audit(e))
    }
}

impl From<PasswordError> for LoginError {
    fn from(e: PasswordError) -> Self {
        LoginError::Internal(UsersError::Password(e))
    }
}

impl From<PasswordError> for ESignError {
    fn from(e: PasswordError) -> Self {
        ESignError::Internal(UsersError::Password(e))
    }
}
