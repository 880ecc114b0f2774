//! One audit record and its hash. A [`Record`] says who ([`Record::user`] with the
//! [`Record::role`] they acted in), when (UTC microseconds from the injected clock),
//! what ([`Action`] + free `detail`, on which `object`), why (`reason`), the change
//! (`old_value` → `new_value`), an optional second-person [`ESignature`], and links to
//! its predecessor by `prev_hash`. This module owns the record's types, its on-disk text
//! (one compact JSON object per line, in exactly the form `serde_json` writes it) and
//! the canonical byte encoding that is hashed; it does not touch files.
//!
//! ## Canonical encoding (version 1)
//! `hash = SHA-256(encoding)`, lowercase hex, where `encoding` is the bytes of
//! `linectl-audit-v1`, then each field in this order: `seq` and `time_us` as 8-byte
//! big-endian integers; `user`, `role`, `action` (its text name), `detail`, `object`,
//! `reason` as strings; `old_value`, `new_value` and `signature` as optionals; and
//! `prev_hash` (its 64 hex characters) as a string. A string is its UTF-8 length as an
//! 8-byte big-endian integer followed by its bytes; an optional is one byte `0` (absent)
//! or `1` followed by the value; a signature is `signer`, `signer_role`, `meaning` (text
//! name) as strings and `time_us` as an integer. Length prefixes make the encoding
//! unambiguous: no two different records encode to the same bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separator at the start of the canonical encoding.
const DOMAIN: &[u8] = b"linectl-audit-v1";

/// What was done. Stored by its text name (`as_str`); a name this build does not know
/// (written by a newer linectl) reads as [`Action::Other`] so old binaries can still
/// verify and export new trails. New code adds a variant instead of using `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// A user logged in.
    Login,
    /// A login was refused (wrong password, unknown user, locked or disabled account).
    LoginFailed,
    /// A user logged out.
    Logout,
    /// A session ended by timeout.
    SessionExpired,
    /// An account was locked after repeated failed logins.
    AccountLocked,
    /// An administrator unlocked an account.
    AccountUnlocked,
    /// A request was refused for lack of permission.
    AccessDenied,
    /// A second-person e-signature was refused.
    ESignFailed,
    /// A user account was created.
    UserAdded,
    /// A user account was disabled.
    UserDisabled,
    /// A disabled user account was enabled again.
    UserEnabled,
    /// A user's role changed.
    RoleChanged,
    /// A user's password was changed or reset (the values are never recorded).
    PasswordChanged,
    /// A batch was started.
    BatchStarted,
    /// A batch was completed or closed.
    BatchCompleted,
    /// A PackML command was given (detail: the command).
    PackmlCommand,
    /// An alarm was acknowledged.
    AlarmAcknowledged,
    /// A rejected unit or exception was resolved.
    ExceptionResolved,
    /// Line configuration (a profile, a threshold) changed.
    ConfigChanged,
    /// The serial pool changed by hand (import, generate, return).
    PoolChanged,
    /// (Part of) the audit trail was exported.
    AuditExported,
    /// The trail recovered from a crash (detail: what was found and kept aside).
    TrailRecovered,
    /// An aggregation rework step is about to change a case or pallet (detail: the
    /// step; old → new: the children or status before and after). Written before the
    /// change; trails written before this variant carry the same name and read as it.
    AggregationRework,
    /// An audited aggregation rework step did not take effect (detail: the step and
    /// why): the entry before it describes a change that was not made.
    AggregationReworkFailed,
    /// An action name this build does not know.
    Other(String),
}

impl Action {
    /// Every named action, in declaration order (not `Other`).
    pub const ALL: [Action; 24] = [
        Action::Login,
        Action::LoginFailed,
        Action::Logout,
        Action::SessionExpired,
        Action::AccountLocked,
        Action::AccountUnlocked,
        Action::AccessDenied,
        Action::ESignFailed,
        Action::UserAdded,
        Action::UserDisabled,
        Action::UserEnabled,
        Action::RoleChanged,
        Action::PasswordChanged,
        Action::BatchStarted,
        Action::BatchCompleted,
        Action::PackmlCommand,
        Action::AlarmAcknowledged,
        Action::ExceptionResolved,
        Action::ConfigChanged,
        Action::PoolChanged,
        Action::AuditExported,
        Action::TrailRecovered,
        Action::AggregationRework,
        Action::AggregationReworkFailed,
    ];

    /// The action's stored name (snake_case).
    pub fn as_str(&self) -> &str {
        match self {
            Action::Login => "login",
            Action::LoginFailed => "login_failed",
            Action::Logout => "logout",
            Action::SessionExpired => "session_expired",
            Action::AccountLocked => "account_locked",
            Action::AccountUnlocked => "account_unlocked",
            Action::AccessDenied => "access_denied",
            Action::ESignFailed => "e_sign_failed",
            Action::UserAdded => "user_added",
            Action::UserDisabled => "user_disabled",
            Action::UserEnabled => "user_enabled",
            Action::RoleChanged => "role_changed",
            Action::PasswordChanged => "password_changed",
            Action::BatchStarted => "batch_started",
            Action::BatchCompleted => "batch_completed",
            Action::PackmlCommand => "packml_command",
            Action::AlarmAcknowledged => "alarm_acknowledged",
            Action::ExceptionResolved => "exception_resolved",
            Action::ConfigChanged => "config_changed",
            Action::PoolChanged => "pool_changed",
            Action::AuditExported => "audit_exported",
            Action::TrailRecovered => "trail_recovered",
            Action::AggregationRework => "aggregation_rework",
            Action::AggregationReworkFailed => "aggregation_rework_failed",
            Action::Other(name) => name,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = std::convert::Infallible;
    /// Never fails: an unknown name is [`Action::Other`].
    fn from_str(s: &str) -> Result<Action, Self::Err> {
        Ok(Action::ALL
            .iter()
            .find(|a| a.as_str() == s)
            .cloned()
            .unwrap_or_else(|| Action::Other(s.to_string())))
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or(Action::Other(s)))
    }
}

/// The meaning of an electronic signature (21 CFR 11.50: "such as review, approval,
/// responsibility, or authorship").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meaning {
    /// The signer reviewed the action and its data.
    Review,
    /// The signer approves the action.
    Approval,
    /// The signer verified the result (e.g. checked a resolved exception).
    Verification,
    /// The signer takes responsibility for the action.
    Responsibility,
}

impl Meaning {
    /// Every meaning.
    pub const ALL: [Meaning; 4] = [
        Meaning::Review,
        Meaning::Approval,
        Meaning::Verification,
        Meaning::Responsibility,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Meaning::Review => "review",
            Meaning::Approval => "approval",
            Meaning::Verification => "verification",
            Meaning::Responsibility => "responsibility",
        }
    }
}

impl fmt::Display for Meaning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Meaning {
    type Err = String;
    fn from_str(s: &str) -> Result<Meaning, String> {
        Meaning::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown signature meaning {s:?} (review, approval, verification, responsibility)")
            })
    }
}

/// A second person's electronic signature on an action: who signed, in which role, what
/// the signature means and when. Obtained from `Users::e_sign` after the signer
/// re-entered their password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ESignature {
    /// The signer's user name.
    pub signer: String,
    /// The signer's role when signing.
    pub signer_role: String,
    /// What the signature means.
    pub meaning: Meaning,
    /// When the signer signed (UTC µs since the Unix epoch).
    pub time_us: u64,
}

/// Who acted, as recorded: a user name and the role they acted in. System actions use
/// [`AuditActor::system`]; the command line uses `console:<os-user>` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    /// User name.
    pub user: String,
    /// Role name (`operator`, `supervisor`, `qa`, `admin`, `console`, `system`).
    pub role: String,
}

impl AuditActor {
    /// linectl itself (crash recovery, timeouts).
    pub fn system() -> AuditActor {
        AuditActor {
            user: "linectl".into(),
            role: "system".into(),
        }
    }
}

/// What a caller appends: everything of a [`Record`] except the sequence number, the
/// time and the hashes, which the trail assigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who.
    pub actor: AuditActor,
    /// What.
    pub action: Action,
    /// Free text detail of the action (e.g. the PackML command, the reject reason).
    pub detail: String,
    /// On what (e.g. `user:alice`, `batch:B123`, `exception:4711`).
    pub object: String,
    /// Why (the reason the user gave; empty where none applies, e.g. a login).
    pub reason: String,
    /// The value before the change.
    pub old_value: Option<String>,
    /// The value after the change.
    pub new_value: Option<String>,
    /// A second person's signature, where the action needs one.
    pub signature: Option<ESignature>,
}

impl Entry {
    /// An entry with empty detail and reason, no change and no signature.
    pub fn new(actor: AuditActor, action: Action, object: impl Into<String>) -> Entry {
        Entry {
            actor,
            action,
            detail: String::new(),
            object: object.into(),
            reason: String::new(),
            old_value: None,
            new_value: None,
            signature: None,
        }
    }

    /// With this detail text.
    pub fn detail(mut self, detail: impl Into<String>) -> Entry {
        self.detail = detail.into();
        self
    }

    /// With this reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Entry {
        self.reason = reason.into();
        self
    }

    /// With this change (old → new).
    pub fn change(mut self, old: Option<String>, new: Option<String>) -> Entry {
        self.old_value = old;
        self.new_value = new;
        self
    }

    /// With this second-person signature.
    pub fn signed(mut self, signature: ESignature) -> Entry {
        self.signature = Some(signature);
        self
    }
}

/// One record of the audit trail, exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Sequence number: 1 for the first record, then +1 each.
    pub seq: u64,
    /// When (UTC µs since the Unix epoch, from the injected clock).
    pub time_us: u64,
    /// Who.
    pub user: String,
    /// In which role.
    pub role: String,
    /// What.
    pub action: Action,
    /// Free detail of the action.
    pub detail: String,
    /// On what.
    pub object: String,
    /// Why.
    pub reason: String,
    /// Value before.
    pub old_value: Option<String>,
    /// Value after.
    pub new_value: Option<String>,
    /// Second person's signature.
    pub signature: Option<ESignature>,
    /// `hash` of the previous record ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// SHA-256 of this record's canonical encoding, lowercase hex.
    pub hash: String,
}

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u64(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn put_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => buf.push(0),
        Some(s) => {
            buf.push(1);
            put_str(buf, s);
        }
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

impl Record {
    /// Seal an entry into record `seq` at `time_us` after the record whose hash is
    /// `prev_hash`.
    pub fn seal(seq: u64, time_us: u64, entry: Entry, prev_hash: &str) -> Record {
        let mut r = Record {
            seq,
            time_us,
            user: entry.actor.user,
            role: entry.actor.role,
            action: entry.action,
            detail: entry.detail,
            object: entry.object,
            reason: entry.reason,
            old_value: entry.old_value,
            new_value: entry.new_value,
            signature: entry.signature,
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
    }

    /// The canonical encoding (see the module doc); `hash` is not part of it.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(256);
        b.extend_from_slice(DOMAIN);
        put_u64(&mut b, self.seq);
        put_u64(&mut b, self.time_us);
        for s in [
            self.user.as_str(),
            self.role.as_str(),
            self.action.as_str(),
            self.detail.as_str(),
            self.object.as_str(),
            self.reason.as_str(),
        ] {
            put_str(&mut b, s);
        }
        put_opt_str(&mut b, self.old_value.as_deref());
        put_opt_str(&mut b, self.new_value.as_deref());
        match &self.signature {
            None => b.push(0),
            Some(sig) => {
                b.push(1);
                put_str(&mut b, &sig.signer);
                put_str(&mut b, &sig.signer_role);
                put_str(&mut b, sig.meaning.as_str());
                put_u64(&mut b, sig.time_us);
            }
        }
        put_str(&mut b, &self.prev_hash);
        b
    }

    /// SHA-256 of the canonical encoding, lowercase hex.
    pub fn compute_hash(&self) -> String {
        hex(&Sha256::digest(self.canonical_bytes()))
    }

    /// The stored line (compact JSON, no trailing newline).
    pub fn to_line(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry::new(
            AuditActor {
                user: "alice".into(),
                role: "supervisor".into(),
            },
            Action::ExceptionResolved,
            "exception:17",
        )
        .detail("no read")
        .reason("unit re-inspected, label ok")
        .change(Some("open".into()), Some("resolved".into()))
        .signed(ESignature {
            signer: "bob".into(),
            signer_role: "qa".into(),
            meaning: Meaning::Verification,
            time_us: 42,
        })
    }

    #[test]
    fn action_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for a in Action::ALL {
            assert!(seen.insert(a.as_str().to_string()), "duplicate {a}");
            assert_eq!(a.as_str().parse::<Action>(), Ok(a.clone()));
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a);
        }
        assert_eq!(
            "future_thing".parse::<Action>(),
            Ok(Action::Other("future_thing".into()))
        );
    }

    #[test]
    fn a_rework_record_sealed_as_other_still_verifies_and_reads_as_the_variant() {
        // Trails written before `AggregationRework` existed stored the same name
        // through `Other`: the hash covers the text name, so both hash alike.
        let old = Record::seal(
            5,
            77,
            Entry::new(
                AuditActor::system(),
                Action::Other("aggregation_rework".into()),
                "case:095060000000000015",
            ),
            GENESIS_HASH,
        );
        let line = old.to_line().unwrap();
        let back: Record = serde_json::from_slice(&line).unwrap();
        assert_eq!(back.action, Action::AggregationRework);
        assert_eq!(back.to_line().unwrap(), line);
        assert_eq!(back.compute_hash(), old.hash);
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let base = Record::seal(7, 1000, entry(), GENESIS_HASH);
        assert_eq!(base.hash, base.compute_hash());
        let variants: Vec<fn(&mut Record)> = vec![
            |r| r.seq += 1,
            |r| r.time_us += 1,
            |r| r.user.push('x'),
            |r| r.role.push('x'),
            |r| r.action = Action::Login,
            |r| r.detail.push('x'),
            |r| r.object.push('x'),
            |r| r.reason.push('x'),
            |r| r.old_value = None,
            |r| r.new_value = Some(String::new()),
            |r| r.signature = None,
            |r| {
                if let Some(s) = r.signature.as_mut() {
                    s.meaning = Meaning::Approval
                }
            },
            |r| {
                if let Some(s) = r.signature.as_mut() {
                    s.time_us += 1
                }
            },
            |r| r.prev_hash = "1".repeat(64),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut r = base.clone();
            change(&mut r);
            assert_ne!(r.compute_hash(), base.hash, "change {i} not covered");
        }
    }

    #[test]
    fn length_prefixes_keep_field_boundaries() {
        let mut a = Record::seal(1, 1, entry(), GENESIS_HASH);
        let mut b = a.clone();
        a.detail = "ab".into();
        a.object = "c".into();
        b.detail = "a".into();
        b.object = "bc".into();
        assert_ne!(a.compute_hash(), b.compute_hash());
    }

    #[test]
    fn line_round_trips() {
        let r = Record::seal(3, 99, entry(), GENESIS_HASH);
        let line = r.to_line().unwrap();
        assert!(!line.contains(&b'\n'));
        let back: Record = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.to_line().unwrap(), line);
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0, 0xab, 0x0f]), "00ab0f");
    }
}
