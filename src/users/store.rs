//! The user file: `<data-dir>/users/users.json`, all accounts with their role, Argon2id
//! PHC hash, enabled flag, failed-login count and lock-out. Written whole and
//! atomically (write `users.json.tmp`, fsync, rename, fsync the directory), so a crash
//! leaves either the old or the new file. Loading checks every entry and names the
//! first bad one. This module owns the file format; it does not decide anything.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::UsersError;
use super::password;
use super::role::Role;

/// The user file's name.
pub const USERS_FILE: &str = "users.json";
/// Format version written.
pub const VERSION: u32 = 1;

/// Why an account is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Locked {
    /// Until this wall time (UTC µs since the Unix epoch).
    UntilUs(u64),
    /// Until an administrator unlocks it.
    UntilUnlocked,
}

/// One account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string.
    pub password: String,
    /// Whether the account may log in.
    pub enabled: bool,
    /// Failed logins since the last successful one.
    pub failed_logins: u32,
    /// Lock-out after too many failures.
    pub locked: Option<Locked>,
    /// When created (UTC µs).
    pub created_us: u64,
    /// When the password was last set (UTC µs).
    pub password_changed_us: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    version: u32,
    /// The audit trail's last sequence number when this file was written (the record of
    /// the change it holds); the trail must reach at least this far.
    #[serde(default)]
    audit_seq: u64,
    users: Vec<UserRecord>,
}

/// Check a login name: 1 to 64 characters of `a-z 0-9 . _ -`, starting with a letter
/// or digit.
pub fn check_name(name: &str) -> Result<(), UsersError> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !ok_start || !ok_chars || name.len() > 64 {
        return Err(UsersError::BadName(format!(
            "{name:?}: a user name is 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        )));
    }
    Ok(())
}

/// The user file of directory `dir`.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

fn io(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> UsersError {
    let path = path.to_path_buf();
    move |source| UsersError::Io { path, op, source }
}

impl Store {
    /// Open the store in `dir` (created if missing), taking its lock, and load the
    /// users (none if the file does not exist yet).
    /// Also returns the audit sequence number the file was written at.
    pub fn open(dir: &Path) -> Result<(Store, Vec<UserRecord>, u64), UsersError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io(dir, "create directory"))?;
            if let Some(parent) = dir.parent() {
                File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(io(parent, "fsync directory"))?;
            }
        }
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path, "open"))?;
        match fs4::fs_std::FileExt::try_lock_exclusive(&lock) {
            Ok(true) => {}
            Ok(false) => return Err(UsersError::InUse(dir.to_path_buf())),
            Err(e) => return Err(io(&lock_path, "lock")(e)),
        }
        let (users, audit_seq) = load_file(dir)?;
        Ok((
            Store {
                dir: dir.to_path_buf(),
                _lock: lock,
            },
            users,
            audit_seq,
        ))
    }

    /// Replace the file with `users`, atomically and durably; `audit_seq` is the audit
    /// trail's last sequence number (the record of this change).
    pub fn save(&self, users: &[UserRecord], audit_seq: u64) -> Result<(), UsersError> {
        let file = UsersFile {
            version: VERSION,
            audit_seq,
            users: users.to_vec(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| UsersError::Damaged {
            path: self.dir.join(USERS_FILE),
            why: format!("cannot encode: {e}"),
        })?;
        bytes.push(b'\n');
        let path = self.dir.join(USERS_FILE);
        let tmp = path.with_extension("json.tmp");
        {
            let mut f = File::create(&tmp).map_err(io(&tmp, "create"))?;
            f.write_all(&bytes).map_err(io(&tmp, "write"))?;
            f.sync_all().map_err(io(&tmp, "fsync"))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path, "rename into place"))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir, "fsync directory"))
    }
}

/// Read and check the users of `dir` without taking the lock (for listing).
pub fn load(dir: &Path) -> Result<Vec<UserRecord>, UsersError> {
    load_file(dir).map(|(users, _)| users)
}

/// Read and check the users of `dir` and the audit sequence number the file was
/// written at.
pub fn load_file(dir: &Path) -> Result<(Vec<UserRecord>, u64), UsersError> {
    let path = dir.join(USERS_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io(&path, "read")(e)),
    };
    let damaged = |why: String| UsersError::Damaged {
        path: path.clone(),
        why,
    };
    let file: UsersFile = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
    if file.version != VERSION {
        return Err(damaged(format!(
            "format version {} (this linectl reads {VERSION})",
            file.version
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, u) in file.users.iter().enumerate() {
        check_name(&u.name).map_err(|e| damaged(format!("user #{}: {e}", i + 1)))?;
        if !seen.insert(u.name.as_str()) {
            return Err(damaged(format!("user {:?} appears twice", u.name)));
        }
        password::check_stored(&u.password)
            .map_err(|e| damaged(format!("user {:?}: {e}", u.name)))?;
    }
    Ok((file.users, file.audit_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::password::{HashParams, hash_password};

    fn user(name: &str) -> UserRecord {
        UserRecord {
            name: name.into(),
            role: Role::Qa,
            password: hash_password(&HashParams::insecure_fast_for_tests(), "pw-pw-pw-pw").unwrap(),
            enabled: true,
            failed_logins: 0,
            locked: Some(Locked::UntilUs(5)),
            created_us: 1,
            password_changed_us: 2,
        }
    }

    #[test]
    fn saves_and_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, users, seq) = Store::open(tmp.path()).unwrap();
        assert_eq!(seq, 0);
        assert!(users.is_empty());
        let us = vec![user("alice"), user("bob")];
        store.save(&us, 7).unwrap();
        assert_eq!(load(tmp.path()).unwrap(), us);
        assert!(!tmp.path().join("users.json.tmp").exists());
        assert!(matches!(Store::open(tmp.path()), Err(UsersError::InUse(_))));
        drop(store);
        let (_s, again, seq) = Store::open(tmp.path()).unwrap();
        assert_eq!((again, seq), (us, 7));
    }

    #[test]
    fn damage_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _, _) = Store::open(tmp.path()).unwrap();
        store.save(&[user("alice"), user("alice")], 1).unwrap();
        let e = load(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("\"alice\" appears twice"), "{e}");
        let mut bad = user("bob");
        bad.password = "plain".into();
        store.save(&[bad], 1).unwrap();
        let e = load(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("user \"bob\""), "{e}");
        fs::write(tmp.path().join(USERS_FILE), "{").unwrap();
        assert!(matches!(load(tmp.path()), Err(UsersError::Damaged { .. })));
    }

    #[test]
    fn names_are_checked() {
        for ok in ["alice", "a", "op.1", "qa_team-2"] {
            check_name(ok).unwrap();
        }
        for bad in [
            "",
            "Alice",
            "-x",
            "a b",
            "console:root",
            &"a".repeat(65),
            "ä",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
