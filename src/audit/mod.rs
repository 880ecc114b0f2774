//! The audit trail, in the spirit of 21 CFR Part 11 and EU GMP Annex 11: every action
//! that changes the line, its data or its users is recorded with who, when, what, on
//! what, why and old → new, optionally with a second person's e-signature. Records are
//! appended to `<data-dir>/audit/audit.log` (one JSON line each), hash-chained
//! (each carries its predecessor's SHA-256, see [`record`]) and made durable
//! (`fdatasync`) before [`AuditTrail::append`] returns; a head file then names the last
//! record, so deleting records at the end is detected too. [`verify`] finds any edited,
//! inserted, deleted or reordered record and names the first; a torn last line after a
//! crash is reported by `verify` and, when the trail is next opened for writing, set
//! aside into a `torn-*.bin` file with a `trail_recovered` record saying so, never
//! silently dropped. [`export`] queries and exports CSV.
//!
//! This module owns the trail's files and format. It does not decide who may do what
//! (that is `crate::users`) and it does not know the line: callers describe their
//! actions as [`Entry`]s.
//!
//! Invariants: the log is only ever appended to (the one exception is cutting off a
//! torn tail at open, after copying it aside and before recording that); a record is
//! acknowledged only after it is durable; the trail is written by one process at a time
//! (`LOCK`).

pub mod error;
pub mod export;
pub mod files;
pub mod record;
pub mod time;
pub mod verify;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::clock::Clock;

pub use error::AuditError;
pub use export::{CsvRow, Query, write_csv};
pub use files::trail_dir;
pub use record::{Action, AuditActor, ESignature, Entry, GENESIS_HASH, Meaning, Record};
pub use verify::{Problem, Report, read_verified, verify_dir};

use files::{Head, io_err};
use verify::HeadVerdict;

/// Largest stored record (its JSON line) accepted by [`AuditTrail::append`]: free
/// text (reasons, details, values) is for people, not for bulk data.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// What opening the trail found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// A torn last record that was set aside (and recorded as `trail_recovered`).
    pub recovered_torn: Option<TornRecovery>,
    /// The head lagged one record behind the log and was brought up to date.
    pub head_repaired: bool,
    /// Notices from verification (see [`Report::notices`]).
    pub notices: Vec<String>,
}

/// A torn tail found at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornRecovery {
    /// Byte offset in the log where the torn bytes were.
    pub offset: u64,
    /// How many bytes.
    pub len: u64,
    /// Where they were copied.
    pub saved_to: PathBuf,
    /// Sequence number of the `trail_recovered` record.
    pub recorded_as: u64,
}

struct Inner {
    log: File,
    seq: u64,
    hash: String,
    broken: Option<String>,
}

/// An audit trail open for appending. Share it (`Arc<AuditTrail>`); appends are
/// serialised internally.
pub struct AuditTrail {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    _lock: File,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail")
            .field("dir", &self.dir)
            .finish()
    }
}

impl AuditTrail {
    /// Open (or create) the trail of data directory `data_dir` (in its `audit` folder).
    pub fn open(
        data_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<(AuditTrail, OpenReport), AuditError> {
        Self::open_dir(&trail_dir(data_dir), clock)
    }

    /// Open (or create) the trail in directory `dir` itself. Verifies the whole trail
    /// first: any inconsistency other than a torn last record is an
    /// [`AuditError::Integrity`] error and nothing is written.
    pub fn open_dir(
        dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<(AuditTrail, OpenReport), AuditError> {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
            if let Some(parent) = dir.parent() {
                files::sync_dir(parent)?;
            }
        }
        let lock = files::lock(dir)?;
        let ex = verify::examine(dir)?;
        let mut report = OpenReport {
            notices: ex.report.notices.clone(),
            ..OpenReport::default()
        };
        let torn = match &ex.report.problem {
            None => None,
            Some(Problem::TornTail { .. }) => ex.scan.torn.clone(),
            Some(p) => {
                return Err(AuditError::Integrity {
                    dir: dir.to_path_buf(),
                    problem: Box::new(p.clone()),
                });
            }
        };
        let log_existed = ex.scan.exists;
        let log = files::open_log(dir)?;
        if !log_existed {
            files::sync_dir(dir)?;
        }
        let (seq, hash) = (ex.report.last_seq, ex.report.last_hash.clone());
        match ex.head {
            Some(HeadVerdict::LagsByOne(head)) => {
                tracing::warn!(
                    dir = %dir.display(),
                    seq = head.seq,
                    "audit head lagged one record behind the log (interrupted append); updated"
                );
                files::write_head(dir, &head)?;
                report.head_repaired = true;
            }
            _ if !dir.join(files::HEAD_FILE).exists() => {
                files::write_head(
                    dir,
                    &Head {
                        seq,
                        hash: hash.clone(),
                    },
                )?;
            }
            _ => {}
        }
        let trail = AuditTrail {
            dir: dir.to_path_buf(),
            clock,
            inner: Mutex::new(Inner {
                log,
                seq,
                hash,
                broken: None,
            }),
            _lock: lock,
        };
        if let Some(torn) = torn {
            report.recovered_torn = Some(trail.recover_torn(&torn, seq)?);
        }
        Ok((trail, report))
    }

    /// Copy a torn tail aside, cut it off the log and record that.
    fn recover_torn(&self, torn: &files::Torn, after_seq: u64) -> Result<TornRecovery, AuditError> {
        let wall = self.clock.wall_micros();
        let name = format!("torn-after-{after_seq}-{wall}.bin");
        let saved_to = self.dir.join(&name);
        files::write_atomic(&saved_to, &torn.bytes)?;
        let log_path = self.dir.join(files::LOG_FILE);
        {
            let f = OpenOptions::new()
                .write(true)
                .open(&log_path)
                .map_err(io_err(&log_path, "open"))?;
            f.set_len(torn.offset)
                .map_err(io_err(&log_path, "cut the torn tail off"))?;
            f.sync_all().map_err(io_err(&log_path, "fsync"))?;
        }
        let digest = record::hex(&Sha256::digest(&torn.bytes));
        tracing::warn!(
            log = %log_path.display(),
            offset = torn.offset,
            len = torn.bytes.len(),
            saved_to = %saved_to.display(),
            "audit log ended in a torn record (interrupted write); set aside and recorded"
        );
        let rec = self.append(
            Entry::new(AuditActor::system(), Action::TrailRecovered, "audit:log")
                .detail(format!(
                    "torn record after record {after_seq}: {} bytes at byte {} without a newline, sha256 {digest}, set aside in {name}",
                    torn.bytes.len(),
                    torn.offset
                ))
                .reason("a write to the audit log was interrupted (crash or power loss); it was never acknowledged"),
        )?;
        Ok(TornRecovery {
            offset: torn.offset,
            len: torn.bytes.len() as u64,
            saved_to,
            recorded_as: rec.seq,
        })
    }

    /// The trail's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sequence number and hash of the last record (0 and [`GENESIS_HASH`] if none).
    pub fn last(&self) -> (u64, String) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.seq, inner.hash.clone())
    }

    /// Append a record, timestamped now by the injected clock. Returns once the record
    /// is durable in the log and the head names it. If any step fails the trail refuses
    /// further appends ([`AuditError::Broken`]) until it is opened again, which finds
    /// and reports what the failed append left.
    pub fn append(&self, entry: Entry) -> Result<Record, AuditError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &inner.broken {
            return Err(AuditError::Broken(why.clone()));
        }
        let time_us = self.clock.wall_micros();
        let rec = Record::seal(inner.seq + 1, time_us, entry, &inner.hash);
        let mut line = rec.to_line()?;
        if line.len() > MAX_RECORD_BYTES {
            return Err(AuditError::TooLarge {
                bytes: line.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        line.push(b'\n');
        let log_path = self.dir.join(files::LOG_FILE);
        let written = inner
            .log
            .write_all(&line)
            .map_err(io_err(&log_path, "append to"))
            .and_then(|()| {
                inner
                    .log
                    .sync_data()
                    .map_err(io_err(&log_path, "fdatasync"))
            })
            .and_then(|()| {
                files::write_head(
                    &self.dir,
                    &Head {
                        seq: rec.seq,
                        hash: rec.hash.clone(),
                    },
                )
            });
        if let Err(e) = written {
            inner.broken = Some(format!("record {} failed: {e}", rec.seq));
            return Err(e);
        }
        inner.seq = rec.seq;
        inner.hash = rec.hash.clone();
        tracing::info!(
            seq = rec.seq,
            user = %rec.user,
            action = %rec.action,
            object = %rec.object,
            "audit record"
        );
        Ok(rec)
    }

    /// Verify the whole trail as it is on disk now.
    pub fn verify(&self) -> Result<Report, AuditError> {
        let _inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(verify::examine(&self.dir)?.report)
    }

    /// The records matching `q`, oldest first, from a trail that verifies clean;
    /// [`AuditError::Integrity`] otherwise.
    pub fn query(&self, q: &Query) -> Result<Vec<Record>, AuditError> {
        let _inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let verify::Examined {
            records, report, ..
        } = verify::examine(&self.dir)?;
        if let Some(p) = report.problem {
            return Err(AuditError::Integrity {
                dir: self.dir.clone(),
                problem: Box::new(p),
            });
        }
        Ok(records.into_iter().filter(|r| q.matches(r)).collect())
    }
}

#[cfg(test)]
mod tests;
