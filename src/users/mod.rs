//! Users and roles of the line HMI: accounts with a [`Role`] (operator, supervisor, QA,
//! admin) and an Argon2id password hash, stored in `<data-dir>/users/users.json`;
//! logins that open server-side sessions with an idle and an absolute timeout measured
//! on the injected [`Clock`]; lock-out after repeated failed logins (for a time or until
//! an administrator unlocks); a permission check on every request
//! ([`Users::authorize`], [`Role::may`]); and second-person e-signatures
//! ([`Users::e_sign`]). Every change to an account, every login, failed login, lock-out,
//! refused request and session timeout is recorded in the audit trail
//! ([`crate::audit`]) before it takes effect; a change the trail cannot record is not
//! made.
//!
//! How the HMI uses it (one `Arc<AuditTrail>` and one `Arc<Users>` per daemon):
//!
//! ```
//! # use std::sync::Arc;
//! # use linectl::audit::{Action, AuditTrail, Entry, Meaning};
//! # use linectl::clock::{Clock, VirtualClock};
//! # use linectl::users::*;
//! # let dir = tempfile::tempdir().unwrap();
//! # let data_dir = dir.path();
//! let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new(1_700_000_000_000_000));
//! let (trail, _report) = AuditTrail::open(data_dir, clock.clone()).unwrap();
//! let audit = Arc::new(trail);
//! let cfg = UsersConfig { hashing: HashParams::insecure_fast_for_tests(), ..UsersConfig::default() };
//! let users = Users::open(data_dir, cfg, clock, audit.clone()).unwrap();
//! # let console = Actor::console("root");
//! # users.add_user(&console, "sam", Role::Supervisor, "sam-password-1", "set-up").unwrap();
//! # users.add_user(&console, "quinn", Role::Qa, "quinn-password-1", "set-up").unwrap();
//! // Login page: keep `session.token.as_str()` in a cookie.
//! let session = users.login("sam", "sam-password-1").unwrap();
//! // Every request: check the permission the action needs.
//! let actor = users.authorize(&session.token, Permission::ResolveException).unwrap();
//! // Where the profile demands it, a second person re-enters their password.
//! let sig = users.e_sign(&actor, "quinn", "quinn-password-1", Meaning::Verification).unwrap();
//! // The action and its signature go into the trail before the action takes effect.
//! audit
//!     .append(
//!         Entry::new(actor.audit_actor(), Action::ExceptionResolved, "exception:17")
//!             .reason("unit re-inspected")
//!             .change(Some("open".into()), Some("resolved".into()))
//!             .signed(sig),
//!     )
//!     .unwrap();
//! users.logout(&session.token).unwrap();
//! ```
//!
//! This module owns accounts and sessions. It does not render pages or read cookies
//! (the HMI does) and does not decide which actions need a second person (the line
//! profile does).

pub mod error;
pub mod password;
pub mod role;
pub mod session;
pub mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::record::hex;
use crate::audit::time::format_utc;
use crate::audit::{Action, AuditActor, AuditTrail, ESignature, Entry, Meaning};
use crate::clock::Clock;

pub use error::{AuthError, ESignError, LoginError, UsersError};
pub use password::{HashParams, PasswordPolicy};
pub use role::{Permission, Role};
pub use session::{Session, SessionToken};
pub use store::Locked;

use session::SessionState;
use store::{Store, UserRecord};

/// How long a lock-out lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lockout {
    /// This many seconds after the failure that locked the account.
    ForSecs(u64),
    /// Until an administrator unlocks the account.
    UntilUnlocked,
}

/// Account and session settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// Failed logins in a row that lock an account (default 5; at least 1).
    pub max_failed_logins: u32,
    /// How long the lock lasts (default 15 minutes).
    pub lockout: Lockout,
    /// A session ends after this many seconds without a request (default 900).
    pub idle_timeout_secs: u64,
    /// A session ends this many seconds after login regardless (default 43200 = 12 h).
    pub max_session_secs: u64,
    /// Rules for new passwords.
    pub password: PasswordPolicy,
    /// Argon2id cost of new password hashes.
    pub hashing: HashParams,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            max_failed_logins: 5,
            lockout: Lockout::ForSecs(15 * 60),
            idle_timeout_secs: 15 * 60,
            max_session_secs: 12 * 3600,
            password: PasswordPolicy::default(),
            hashing: HashParams::default(),
        }
    }
}

impl UsersConfig {
    /// Every problem of the configuration, or `Ok`.
    pub fn validate(&self) -> Result<(), UsersError> {
        let mut problems = Vec::new();
        if self.max_failed_logins == 0 {
            problems.push("max_failed_logins must be at least 1".to_string());
        }
        if self.idle_timeout_secs == 0 || self.max_session_secs == 0 {
            problems.push("idle_timeout_secs and max_session_secs must be positive".into());
        }
        if self.password.min_chars == 0 || self.password.min_chars > self.password.max_chars {
            problems.push("password.min_chars must be between 1 and password.max_chars".into());
        }
        if let Err(e) = self.hashing.validate() {
            problems.push(format!("hashing: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(UsersError::Config(problems.join("; ")))
        }
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    fn max_session(&self) -> Duration {
        Duration::from_secs(self.max_session_secs)
    }
}

/// In what capacity an [`Actor`] acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acting {
    /// A logged-in user in their role.
    Role(Role),
    /// Someone at the line PC's command line (`linectl user …`): may manage users and
    /// read the audit trail, nothing else. Whoever can run linectl there can also read
    /// its files; the console is recorded as such.
    Console,
}

/// Who is acting, as established by [`Users::authorize`] (or [`Actor::console`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    user: String,
    acting: Acting,
}

impl Actor {
    /// The command line, run by operating-system user `os_user`.
    pub fn console(os_user: &str) -> Actor {
        Actor {
            user: format!("console:{os_user}"),
            acting: Acting::Console,
        }
    }

    /// The user name (`console:<os-user>` for the console).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// In what capacity.
    pub fn acting(&self) -> Acting {
        self.acting
    }

    /// Whether this actor holds `p`.
    pub fn may(&self, p: Permission) -> bool {
        match self.acting {
            Acting::Role(r) => r.may(p),
            Acting::Console => matches!(
                p,
                Permission::ManageUsers | Permission::ViewAudit | Permission::ExportAudit
            ),
        }
    }

    /// The role name recorded in the audit trail.
    pub fn role_name(&self) -> &'static str {
        match self.acting {
            Acting::Role(r) => r.as_str(),
            Acting::Console => "console",
        }
    }

    /// This actor as recorded in the audit trail.
    pub fn audit_actor(&self) -> AuditActor {
        AuditActor {
            user: self.user.clone(),
            role: self.role_name().into(),
        }
    }
}

/// An account as shown to administrators (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Whether the account may log in.
    pub enabled: bool,
    /// Current lock-out, if any.
    pub locked: Option<Locked>,
    /// Failed logins since the last successful one.
    pub failed_logins: u32,
    /// Created (UTC µs).
    pub created_us: u64,
    /// Password last set (UTC µs).
    pub password_changed_us: u64,
}

struct State {
    users: Vec<UserRecord>,
    sessions: HashMap<[u8; 32], SessionState>,
}

/// The account store and session table. Share it (`Arc<Users>`).
pub struct Users {
    cfg: UsersConfig,
    clock: Arc<dyn Clock>,
    audit: Arc<AuditTrail>,
    store: Store,
    state: Mutex<State>,
    /// A hash to verify against for unknown users, so both cost the same time.
    dummy_hash: String,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").field("store", &self.store).finish()
    }
}

/// Why an account cannot be used right now.
enum Refusal {
    Disabled,
    Locked(Option<u64>),
}

fn lock_in_force(u: &UserRecord, wall: u64) -> Option<Locked> {
    match u.locked {
        Some(Locked::UntilUs(t)) if wall >= t => None,
        other => other,
    }
}

fn usable(u: &UserRecord, wall: u64) -> Result<(), Refusal> {
    if !u.enabled {
        return Err(Refusal::Disabled);
    }
    match lock_in_force(u, wall) {
        None => Ok(()),
        Some(Locked::UntilUs(t)) => Err(Refusal::Locked(Some(t))),
        Some(Locked::UntilUnlocked) => Err(Refusal::Locked(None)),
    }
}

fn describe_lock(l: Option<Locked>) -> String {
    match l {
        None => "unlocked".into(),
        Some(Locked::UntilUs(t)) => format!("locked until {}", format_utc(t)),
        Some(Locked::UntilUnlocked) => "locked until unlocked by an administrator".into(),
    }
}

fn user_object(name: &str) -> String {
    format!("user:{name}")
}

/// A short, non-secret session id for the audit trail (first 8 bytes of the key).
fn session_object(key: &[u8; 32]) -> String {
    format!("session:{}", hex(key.get(..8).unwrap_or_default()))
}

impl Users {
    /// Open the accounts of data directory `data_dir` (folder `users`), recording to
    /// `audit`. The store is locked against other processes while this value lives.
    pub fn open(
        data_dir: &Path,
        cfg: UsersConfig,
        clock: Arc<dyn Clock>,
        audit: Arc<AuditTrail>,
    ) -> Result<Users, UsersError> {
        cfg.validate()?;
        let users_dir = data_dir.join("users");
        let (store, users, written_at) = Store::open(&users_dir)?;
        let trail_end = audit.last().0;
        if trail_end < written_at {
            return Err(UsersError::Damaged {
                path: users_dir.join(store::USERS_FILE),
                why: format!(
                    "it was written with audit record {written_at}, but the audit trail ends at record {trail_end}: the trail was truncated or replaced"
                ),
            });
        }
        let dummy_hash = password::hash_password(&cfg.hashing, "linectl: no such user")?;
        Ok(Users {
            cfg,
            clock,
            audit,
            store,
            state: Mutex::new(State {
                users,
                sessions: HashMap::new(),
            }),
            dummy_hash,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &UsersConfig {
        &self.cfg
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, entry: Entry) -> Result<(), crate::audit::AuditError> {
        self.audit.append(entry).map(|_| ())
    }

    /// Save `next` as the user list. The change is already in the audit trail; if the
    /// save fails, a follow-up record says it was not applied.
    fn persist(
        &self,
        st: &mut State,
        next: Vec<UserRecord>,
        action: Action,
        object: &str,
    ) -> Result<(), UsersError> {
        if let Err(e) = self.store.save(&next, self.audit.last().0) {
            let _ = self.record(
                Entry::new(AuditActor::system(), action, object).detail(format!(
                    "NOT APPLIED: the user file could not be saved: {e}"
                )),
            );
            return Err(e);
        }
        st.users = next;
        Ok(())
    }

    fn find(st: &State, name: &str) -> Option<usize> {
        st.users.iter().position(|u| u.name == name)
    }

    /// Count a failed password for user `idx`: record it, lock the account when the
    /// limit is reached, save. Returns the lock now in force, if any.
    fn count_failure(
        &self,
        st: &mut State,
        idx: usize,
        action: Action,
        context: &str,
    ) -> Result<Option<Locked>, UsersError> {
        let wall = self.clock.wall_micros();
        let mut next = st.users.clone();
        let Some(u) = next.get_mut(idx) else {
            return Ok(None);
        };
        if u.locked.is_some() && lock_in_force(u, wall).is_none() {
            // An expired timed lock: the count starts again.
            u.locked = None;
            u.failed_logins = 0;
        }
        let before = u.failed_logins;
        u.failed_logins = before.saturating_add(1);
        let name = u.name.clone();
        let who = AuditActor {
            user: name.clone(),
            role: u.role.as_str().into(),
        };
        let object = user_object(&name);
        self.record(
            Entry::new(who.clone(), action.clone(), &object)
                .detail(format!(
                    "{context}: wrong password ({} of {} allowed)",
                    u.failed_logins, self.cfg.max_failed_logins
                ))
                .change(
                    Some(format!("failed_logins={before}")),
                    Some(format!("failed_logins={}", u.failed_logins)),
                ),
        )?;
        let mut newly = None;
        if u.failed_logins >= self.cfg.max_failed_logins && u.locked.is_none() {
            let lock = match self.cfg.lockout {
                Lockout::ForSecs(s) => {
                    Locked::UntilUs(wall.saturating_add(s.saturating_mul(1_000_000)))
                }
                Lockout::UntilUnlocked => Locked::UntilUnlocked,
            };
            u.locked = Some(lock);
            newly = Some(lock);
            tracing::warn!(user = %name, "account locked after repeated failed logins");
            self.record(
                Entry::new(who, Action::AccountLocked, &object)
                    .detail(format!(
                        "{} failed logins in a row",
                        self.cfg.max_failed_logins
                    ))
                    .change(Some(describe_lock(None)), Some(describe_lock(Some(lock)))),
            )?;
        }
        self.persist(st, next, action, &object)?;
        st.sessions.retain(|_, s| newly.is_none() || s.user != name);
        Ok(newly.or_else(|| st.users.get(idx).and_then(|u| lock_in_force(u, wall))))
    }

    /// Log in. Unknown user and wrong password give the same answer; the failure is
    /// recorded and counts towards the lock-out.
    pub fn login(&self, name: &str, password: &str) -> Result<Session, LoginError> {
        let wall = self.clock.wall_micros();
        let found = {
            let st = self.state();
            Self::find(&st, name).and_then(|i| st.users.get(i).cloned())
        };
        let Some(user) = found else {
            let _ = password::verify_password(&self.dummy_hash, password);
            self.record(
                Entry::new(
                    AuditActor {
                        user: name.into(),
                        role: "-".into(),
                    },
                    Action::LoginFailed,
                    user_object(name),
                )
                .detail("unknown user"),
            )?;
            return Err(LoginError::InvalidCredentials);
        };
        let refuse = |r: Refusal, u: &UserRecord| -> Result<LoginError, LoginError> {
            let (detail, err) = match r {
                Refusal::Disabled => ("account disabled", LoginError::Disabled),
                Refusal::Locked(until_us) => ("account locked", LoginError::Locked { until_us }),
            };
            self.record(
                Entry::new(
                    AuditActor {
                        user: u.name.clone(),
                        role: u.role.as_str().into(),
                    },
                    Action::LoginFailed,
                    user_object(&u.name),
                )
                .detail(detail),
            )?;
            Ok(err)
        };
        if let Err(r) = usable(&user, wall) {
            return Err(refuse(r, &user)?);
        }
        let ok = password::verify_password(&user.password, password)?;
        let mut st = self.state();
        let Some(idx) = Self::find(&st, name) else {
            return Err(LoginError::InvalidCredentials);
        };
        let Some(current) = st.users.get(idx).cloned() else {
            return Err(LoginError::InvalidCredentials);
        };
        if let Err(r) = usable(&current, wall) {
            return Err(refuse(r, &current)?);
        }
        if !ok {
            return match self.count_failure(&mut st, idx, Action::LoginFailed, "login")? {
                Some(Locked::UntilUs(t)) => Err(LoginError::Locked { until_us: Some(t) }),
                Some(Locked::UntilUnlocked) => Err(LoginError::Locked { until_us: None }),
                None => Err(LoginError::InvalidCredentials),
            };
        }
        let token = SessionToken::generate()?;
        let key = token.key();
        let mut detail = String::from("password");
        let mut next = None;
        if current.failed_logins > 0 || current.locked.is_some() {
            detail = format!(
                "password; {} earlier failed logins cleared",
                current.failed_logins
            );
            let mut n = st.users.clone();
            if let Some(u) = n.get_mut(idx) {
                u.failed_logins = 0;
                u.locked = None;
            }
            next = Some(n);
        }
        self.record(
            Entry::new(
                AuditActor {
                    user: current.name.clone(),
                    role: current.role.as_str().into(),
                },
                Action::Login,
                session_object(&key),
            )
            .detail(detail),
        )?;
        if let Some(n) = next {
            self.persist(&mut st, n, Action::Login, &user_object(name))?;
        }
        let now = self.clock.now();
        st.sessions.insert(
            key,
            SessionState {
                user: current.name.clone(),
                started: now,
                last_used: now,
            },
        );
        tracing::info!(user = %current.name, role = %current.role, "login");
        Ok(Session {
            token,
            user: current.name,
            role: current.role,
            idle_timeout: self.cfg.idle(),
        })
    }

    /// Check a request: the session is live (and is extended), the account still
    /// active, and its role — as it is now, not as it was at login — holds
    /// `permission`. Refusals for lack of permission and timeouts are recorded.
    pub fn authorize(
        &self,
        token: &SessionToken,
        permission: Permission,
    ) -> Result<Actor, AuthError> {
        let key = token.key();
        let now = self.clock.now();
        let wall = self.clock.wall_micros();
        let mut st = self.state();
        let Some(s) = st.sessions.get(&key).cloned() else {
            return Err(AuthError::NoSession);
        };
        let user = Self::find(&st, &s.user).and_then(|i| st.users.get(i).cloned());
        let role_name = user.as_ref().map_or("-", |u| u.role.as_str());
        if s.expired(now, self.cfg.idle(), self.cfg.max_session()) {
            st.sessions.remove(&key);
            self.record(
                Entry::new(
                    AuditActor {
                        user: s.user.clone(),
                        role: role_name.into(),
                    },
                    Action::SessionExpired,
                    session_object(&key),
                )
                .detail(format!(
                    "idle for {} s, {} s since login",
                    now.since(s.last_used).as_secs(),
                    now.since(s.started).as_secs()
                )),
            )?;
            return Err(AuthError::Expired);
        }
        let Some(user) = user.filter(|u| usable(u, wall).is_ok()) else {
            st.sessions.remove(&key);
            return Err(AuthError::AccountInactive);
        };
        if !user.role.may(permission) {
            self.record(
                Entry::new(
                    AuditActor {
                        user: user.name.clone(),
                        role: role_name.into(),
                    },
                    Action::AccessDenied,
                    session_object(&key),
                )
                .detail(format!("needs {permission}")),
            )?;
            return Err(AuthError::Forbidden {
                role: user.role,
                permission,
            });
        }
        if let Some(live) = st.sessions.get_mut(&key) {
            live.last_used = now;
        }
        Ok(Actor {
            user: user.name,
            acting: Acting::Role(user.role),
        })
    }

    /// End a session (no error if it had already ended).
    pub fn logout(&self, token: &SessionToken) -> Result<(), UsersError> {
        let key = token.key();
        let mut st = self.state();
        if let Some(s) = st.sessions.remove(&key) {
            let role = Self::find(&st, &s.user)
                .and_then(|i| st.users.get(i))
                .map_or("-", |u| u.role.as_str());
            self.record(Entry::new(
                AuditActor {
                    user: s.user.clone(),
                    role: role.into(),
                },
                Action::Logout,
                session_object(&key),
            ))?;
        }
        Ok(())
    }

    /// A second person's electronic signature on an action of `actor`: the signer
    /// re-enters their password, must not be `actor`, must hold
    /// [`Permission::SignAsSecondPerson`], and must be enabled and not locked. A wrong
    /// password counts towards the signer's lock-out. Refusals are recorded
    /// (`e_sign_failed`); a granted signature is returned for the caller to attach to
    /// the record of the signed action ([`Entry::signed`]).
    pub fn e_sign(
        &self,
        actor: &Actor,
        name: &str,
        password: &str,
        meaning: Meaning,
    ) -> Result<ESignature, ESignError> {
        let wall = self.clock.wall_micros();
        let refused = |detail: String, role: &str| {
            self.record(
                Entry::new(
                    AuditActor {
                        user: name.into(),
                        role: role.into(),
                    },
                    Action::ESignFailed,
                    user_object(name),
                )
                .detail(format!(
                    "{detail} (signing for {}, meaning {meaning})",
                    actor.user
                )),
            )
        };
        if name == actor.user {
            refused("signer is the actor".into(), actor.role_name())?;
            return Err(ESignError::SameAsActor(actor.user.clone()));
        }
        let found = {
            let st = self.state();
            Self::find(&st, name).and_then(|i| st.users.get(i).cloned())
        };
        let Some(user) = found else {
            let _ = password::verify_password(&self.dummy_hash, password);
            refused("unknown user".into(), "-")?;
            return Err(ESignError::InvalidCredentials);
        };
        let role = user.role.as_str();
        match usable(&user, wall) {
            Err(Refusal::Disabled) => {
                refused("account disabled".into(), role)?;
                return Err(ESignError::Disabled);
            }
            Err(Refusal::Locked(_)) => {
                refused("account locked".into(), role)?;
                return Err(ESignError::Locked);
            }
            Ok(()) => {}
        }
        let ok = password::verify_password(&user.password, password)?;
        if !ok {
            let mut st = self.state();
            if let Some(idx) = Self::find(&st, name) {
                self.count_failure(&mut st, idx, Action::ESignFailed, "e-signature")?;
            }
            return Err(ESignError::InvalidCredentials);
        }
        if !user.role.may(Permission::SignAsSecondPerson) {
            refused(format!("role {role} may not sign"), role)?;
            return Err(ESignError::NotPermitted(user.role));
        }
        Ok(ESignature {
            signer: user.name,
            signer_role: role.into(),
            meaning,
            time_us: wall,
        })
    }

    fn require(by: &Actor, p: Permission) -> Result<(), UsersError> {
        if by.may(p) {
            Ok(())
        } else {
            Err(UsersError::Forbidden {
                user: by.user.clone(),
                permission: p,
            })
        }
    }

    fn require_reason(reason: &str, what: &'static str) -> Result<(), UsersError> {
        if reason.trim().is_empty() {
            Err(UsersError::ReasonRequired(what))
        } else {
            Ok(())
        }
    }

    /// Refuse if user `idx` is the last enabled administrator.
    fn guard_last_admin(st: &State, idx: usize) -> Result<(), UsersError> {
        let Some(target) = st.users.get(idx) else {
            return Ok(());
        };
        if target.role != Role::Admin || !target.enabled {
            return Ok(());
        }
        let others = st
            .users
            .iter()
            .enumerate()
            .filter(|(i, u)| *i != idx && u.role == Role::Admin && u.enabled)
            .count();
        if others == 0 {
            return Err(UsersError::LastAdmin(target.name.clone()));
        }
        Ok(())
    }

    fn index(st: &State, name: &str) -> Result<usize, UsersError> {
        Self::find(st, name).ok_or_else(|| UsersError::NoSuchUser(name.into()))
    }

    /// Create an account (needs `manage_users` and a reason).
    pub fn add_user(
        &self,
        by: &Actor,
        name: &str,
        role: Role,
        password: &str,
        reason: &str,
    ) -> Result<(), UsersError> {
        Self::require(by, Permission::ManageUsers)?;
        Self::require_reason(reason, "adding a user")?;
        store::check_name(name)?;
        self.cfg.password.check(name, password)?;
        let hash = password::hash_password(&self.cfg.hashing, password)?;
        let wall = self.clock.wall_micros();
        let mut st = self.state();
        if Self::find(&st, name).is_some() {
            return Err(UsersError::Exists(name.into()));
        }
        let mut next = st.users.clone();
        next.push(UserRecord {
            name: name.into(),
            role,
            password: hash,
            enabled: true,
            failed_logins: 0,
            locked: None,
            created_us: wall,
            password_changed_us: wall,
        });
        let object = user_object(name);
        self.record(
            Entry::new(by.audit_actor(), Action::UserAdded, &object)
                .reason(reason)
                .change(None, Some(format!("role={role}, enabled"))),
        )?;
        self.persist(&mut st, next, Action::UserAdded, &object)
    }

    /// Change a user's role (needs `manage_users` and a reason; never removes the last
    /// enabled administrator).
    pub fn set_role(
        &self,
        by: &Actor,
        name: &str,
        role: Role,
        reason: &str,
    ) -> Result<(), UsersError> {
        Self::require(by, Permission::ManageUsers)?;
        Self::require_reason(reason, "changing a role")?;
        let mut st = self.state();
        let idx = Self::index(&st, name)?;
        let mut next = st.users.clone();
        let Some(u) = next.get_mut(idx) else {
            return Err(UsersError::NoSuchUser(name.into()));
        };
        let old = u.role;
        if old == role {
            return Ok(());
        }
        if role != Role::Admin {
            Self::guard_last_admin(&st, idx)?;
        }
        u.role = role;
        let object = user_object(name);
        self.record(
            Entry::new(by.audit_actor(), Action::RoleChanged, &object)
                .reason(reason)
                .change(Some(old.to_string()), Some(role.to_string())),
        )?;
        self.persist(&mut st, next, Action::RoleChanged, &object)
    }

    /// Disable (`enabled = false`) or enable an account (needs `manage_users` and a
    /// reason). Disabling ends the user's sessions and never disables the last enabled
    /// administrator.
    pub fn set_enabled(
        &self,
        by: &Actor,
        name: &str,
        enabled: bool,
        reason: &str,
    ) -> Result<(), UsersError> {
        Self::require(by, Permission::ManageUsers)?;
        Self::require_reason(reason, "enabling or disabling a user")?;
        let mut st = self.state();
        let idx = Self::index(&st, name)?;
        if !enabled {
            Self::guard_last_admin(&st, idx)?;
        }
        let mut next = st.users.clone();
        let Some(u) = next.get_mut(idx) else {
            return Err(UsersError::NoSuchUser(name.into()));
        };
        if u.enabled == enabled {
            return Ok(());
        }
        u.enabled = enabled;
        let (action, old, new) = if enabled {
            (Action::UserEnabled, "disabled", "enabled")
        } else {
            (Action::UserDisabled, "enabled", "disabled")
        };
        let object = user_object(name);
        self.record(
            Entry::new(by.audit_actor(), action.clone(), &object)
                .reason(reason)
                .change(Some(old.into()), Some(new.into())),
        )?;
        self.persist(&mut st, next, action, &object)?;
        if !enabled {
            st.sessions.retain(|_, s| s.user != name);
        }
        Ok(())
    }

    /// Disable an account.
    pub fn disable(&self, by: &Actor, name: &str, reason: &str) -> Result<(), UsersError> {
        self.set_enabled(by, name, false, reason)
    }

    /// Enable a disabled account.
    pub fn enable(&self, by: &Actor, name: &str, reason: &str) -> Result<(), UsersError> {
        self.set_enabled(by, name, true, reason)
    }

    /// Lift a lock-out and clear the failed-login count (needs `manage_users` and a
    /// reason). Returns whether there was anything to clear.
    pub fn unlock(&self, by: &Actor, name: &str, reason: &str) -> Result<bool, UsersError> {
        Self::require(by, Permission::ManageUsers)?;
        Self::require_reason(reason, "unlocking a user")?;
        let wall = self.clock.wall_micros();
        let mut st = self.state();
        let idx = Self::index(&st, name)?;
        let mut next = st.users.clone();
        let Some(u) = next.get_mut(idx) else {
            return Err(UsersError::NoSuchUser(name.into()));
        };
        if u.locked.is_none() && u.failed_logins == 0 {
            return Ok(false);
        }
        let old = format!(
            "{}, failed_logins={}",
            describe_lock(lock_in_force(u, wall)),
            u.failed_logins
        );
        u.locked = None;
        u.failed_logins = 0;
        let object = user_object(name);
        self.record(
            Entry::new(by.audit_actor(), Action::AccountUnlocked, &object)
                .reason(reason)
                .change(Some(old), Some("unlocked, failed_logins=0".into())),
        )?;
        self.persist(&mut st, next, Action::AccountUnlocked, &object)?;
        Ok(true)
    }

    /// Set a new password. A user changing their own password gives the current one
    /// (`old`, checked; a wrong one counts towards the lock-out); an administrator
    /// resetting someone else's needs `manage_users` and a reason, and the user's
    /// sessions end. The new password must meet the policy and differ from the old.
    /// Passwords are never recorded, only that a change happened.
    pub fn change_password(
        &self,
        by: &Actor,
        name: &str,
        old: Option<&str>,
        new: &str,
        reason: &str,
    ) -> Result<(), UsersError> {
        let own = matches!(by.acting, Acting::Role(_)) && by.user == name;
        if own {
            Self::require(by, Permission::ChangeOwnPassword)?;
        } else {
            Self::require(by, Permission::ManageUsers)?;
            Self::require_reason(reason, "resetting a password")?;
        }
        self.cfg.password.check(name, new)?;
        let current = {
            let st = self.state();
            let idx = Self::index(&st, name)?;
            st.users.get(idx).cloned()
        }
        .ok_or_else(|| UsersError::NoSuchUser(name.into()))?;
        if own {
            let ok = match old {
                Some(pw) => password::verify_password(&current.password, pw)?,
                None => false,
            };
            if !ok {
                let mut st = self.state();
                if let Some(idx) = Self::find(&st, name) {
                    self.count_failure(&mut st, idx, Action::LoginFailed, "password change")?;
                }
                return Err(UsersError::WrongPassword);
            }
        }
        if password::verify_password(&current.password, new)? {
            return Err(password::PasswordError::Weak(
                "the new password must differ from the current one".into(),
            )
            .into());
        }
        let hash = password::hash_password(&self.cfg.hashing, new)?;
        let wall = self.clock.wall_micros();
        let mut st = self.state();
        let idx = Self::index(&st, name)?;
        let mut next = st.users.clone();
        if let Some(u) = next.get_mut(idx) {
            u.password = hash;
            u.password_changed_us = wall;
        }
        let object = user_object(name);
        let detail = if own {
            "changed by the user".to_string()
        } else {
            format!("reset by {}", by.user)
        };
        self.record(
            Entry::new(by.audit_actor(), Action::PasswordChanged, &object)
                .detail(detail)
                .reason(reason),
        )?;
        self.persist(&mut st, next, Action::PasswordChanged, &object)?;
        if !own {
            st.sessions.retain(|_, s| s.user != name);
        }
        Ok(())
    }

    /// All accounts (needs `manage_users`).
    pub fn list(&self, by: &Actor) -> Result<Vec<UserInfo>, UsersError> {
        Self::require(by, Permission::ManageUsers)?;
        let wall = self.clock.wall_micros();
        let st = self.state();
        Ok(st
            .users
            .iter()
            .map(|u| UserInfo {
                name: u.name.clone(),
                role: u.role,
                enabled: u.enabled,
                locked: lock_in_force(u, wall),
                failed_logins: u.failed_logins,
                created_us: u.created_us,
                password_changed_us: u.password_changed_us,
            })
            .collect())
    }

    /// How many sessions are live (not yet seen to expire).
    pub fn session_count(&self) -> usize {
        self.state().sessions.len()
    }
}
