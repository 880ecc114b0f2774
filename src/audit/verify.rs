//! Verification of an audit trail: every line parses as a record, is stored in its
//! canonical form, carries the hash of its own content, follows its predecessor by
//! sequence number and `prev_hash`, and the head file names the last record. Any edited,
//! inserted, deleted or reordered record, a deleted tail and a torn last line are found,
//! and the first problem names the record (sequence number, line and byte offset).
//!
//! What a hash chain without a secret cannot show: someone able to write the files can
//! rewrite the whole trail from some record on, with fresh hashes and a matching head.
//! The chain makes every edit visible to anyone who kept an earlier head (an exported
//! copy, a printed hash); it does not replace file permissions.
//!
//! This module reads and judges; it never changes a file.

use std::path::Path;

use serde::Serialize;

use super::error::AuditError;
use super::files::{self, Head, HeadState, Scan};
use super::record::{GENESIS_HASH, Record};
use super::time::format_utc;

/// The first inconsistency of a trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// A line is not a record at all.
    #[error(
        "line {line} (byte {offset}), after record {after_seq}: not a valid record ({error}): edited or inserted"
    )]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line.
        offset: u64,
        /// Sequence number of the last good record before it (0: none).
        after_seq: u64,
        /// Why it does not parse.
        error: String,
    },
    /// A record parses but is not byte-for-byte in the form linectl writes.
    #[error("record {seq} (line {line}, byte {offset}): not in its canonical stored form: edited")]
    NotCanonical {
        /// The record's sequence number.
        seq: u64,
        /// Line number.
        line: u64,
        /// Byte offset.
        offset: u64,
    },
    /// A record's content does not match its hash.
    #[error(
        "record {seq} (line {line}, byte {offset}): content does not match its hash (stored {stored}, computed {computed}): edited"
    )]
    HashMismatch {
        /// The record's sequence number.
        seq: u64,
        /// Line number.
        line: u64,
        /// Byte offset.
        offset: u64,
        /// The hash stored in the record.
        stored: String,
        /// The hash of its content.
        computed: String,
    },
    /// A record's sequence number is not its predecessor's + 1.
    #[error(
        "record {found} (line {line}, byte {offset}) where record {expected} should be: {what}"
    )]
    Sequence {
        /// The sequence number expected here.
        expected: u64,
        /// The sequence number found.
        found: u64,
        /// Line number.
        line: u64,
        /// Byte offset.
        offset: u64,
        /// The likely cause.
        what: String,
    },
    /// A record's `prev_hash` is not its predecessor's hash.
    #[error(
        "record {seq} (line {line}, byte {offset}): does not link to the record before it (prev_hash {found}, expected {expected}): a record before it was replaced, inserted or deleted"
    )]
    ChainBroken {
        /// The record's sequence number.
        seq: u64,
        /// Line number.
        line: u64,
        /// Byte offset.
        offset: u64,
        /// The predecessor's hash.
        expected: String,
        /// The record's `prev_hash`.
        found: String,
    },
    /// The log ends with an incomplete line.
    #[error(
        "torn record after record {after_seq} (byte {offset}, {len} bytes without a newline): a write was interrupted (crash or power loss); opening the trail for writing sets these bytes aside and records the recovery"
    )]
    TornTail {
        /// Sequence number of the last complete record.
        after_seq: u64,
        /// Byte offset of the torn bytes.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// The log is missing but the head says records were written.
    #[error("the log file is missing, but the head names record {head_seq}: the log was deleted")]
    LogMissing {
        /// The head's sequence number.
        head_seq: u64,
    },
    /// The head file is missing although records exist.
    #[error("the head file is missing, but the log has {last_seq} records: the head was deleted")]
    HeadMissing {
        /// Last record in the log.
        last_seq: u64,
    },
    /// The head file does not parse.
    #[error("the head file is damaged ({error})")]
    HeadCorrupt {
        /// Why.
        error: String,
    },
    /// The head names a record after the log's last one.
    #[error(
        "record {missing_from} is missing: the head names record {head_seq} but the log ends at record {last_seq}: records at the end were deleted"
    )]
    Truncated {
        /// The first missing record.
        missing_from: u64,
        /// The head's sequence number.
        head_seq: u64,
        /// The last record in the log.
        last_seq: u64,
    },
    /// The head names the record at its sequence number, but with another hash.
    #[error(
        "record {seq}: its hash {record_hash} is not the one the head recorded ({head_hash}): the last records were replaced"
    )]
    HeadMismatch {
        /// The sequence number.
        seq: u64,
        /// Hash in the head.
        head_hash: String,
        /// Hash of the record in the log.
        record_hash: String,
    },
    /// The head lags more than one record behind the log.
    #[error(
        "record {first_unheaded}: the head names record {head_seq} but the log goes on to record {last_seq}: records were appended outside linectl or the head was replaced"
    )]
    HeadBehind {
        /// First record after the head.
        first_unheaded: u64,
        /// The head's sequence number.
        head_seq: u64,
        /// The last record in the log.
        last_seq: u64,
    },
}

/// The outcome of [`verify_dir`].
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Records checked and found good (before the first problem).
    pub records: u64,
    /// Sequence number of the last good record (0: none).
    pub last_seq: u64,
    /// Hash of the last good record.
    pub last_hash: String,
    /// The first problem, if any.
    pub problem: Option<Problem>,
    /// Things worth knowing that are not inconsistencies (e.g. the head lagging by one
    /// record after a crash, the wall clock stepping back).
    pub notices: Vec<String>,
}

impl Report {
    /// No problem found.
    pub fn is_clean(&self) -> bool {
        self.problem.is_none()
    }
}

/// Where the verified chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainEnd {
    pub seq: u64,
    pub hash: String,
    pub count: u64,
}

/// Check the records of a scan; returns the parsed records, where the good chain ends,
/// and the first record problem.
pub(crate) fn check_records(
    scan: &Scan,
    notices: &mut Vec<String>,
) -> (Vec<Record>, ChainEnd, Option<Problem>) {
    let mut records = Vec::with_capacity(scan.lines.len());
    let mut end = ChainEnd {
        seq: 0,
        hash: GENESIS_HASH.to_string(),
        count: 0,
    };
    let mut last_time = 0u64;
    for line in &scan.lines {
        let rec: Record = match serde_json::from_slice(&line.bytes) {
            Ok(r) => r,
            Err(e) => {
                let problem = Problem::Malformed {
                    line: line.number,
                    offset: line.offset,
                    after_seq: end.seq,
                    error: e.to_string(),
                };
                return (records, end, Some(problem));
            }
        };
        let (seq, ln, offset) = (rec.seq, line.number, line.offset);
        let computed = rec.compute_hash();
        if computed != rec.hash {
            let problem = Problem::HashMismatch {
                seq,
                line: ln,
                offset,
                stored: rec.hash.clone(),
                computed,
            };
            return (records, end, Some(problem));
        }
        match rec.to_line() {
            Ok(canon) if canon == line.bytes => {}
            _ => {
                return (
                    records,
                    end,
                    Some(Problem::NotCanonical {
                        seq,
                        line: ln,
                        offset,
                    }),
                );
            }
        }
        let expected = end.seq + 1;
        if seq != expected {
            let what = if seq > expected {
                if seq == expected + 1 {
                    format!("record {expected} was deleted")
                } else {
                    format!("records {expected} to {} were deleted", seq - 1)
                }
            } else {
                format!(
                    "record {seq} appears again or out of order: a record was inserted, duplicated or moved"
                )
            };
            let problem = Problem::Sequence {
                expected,
                found: seq,
                line: ln,
                offset,
                what,
            };
            return (records, end, Some(problem));
        }
        if rec.prev_hash != end.hash {
            let problem = Problem::ChainBroken {
                seq,
                line: ln,
                offset,
                expected: end.hash.clone(),
                found: rec.prev_hash.clone(),
            };
            return (records, end, Some(problem));
        }
        if rec.time_us < last_time {
            notices.push(format!(
                "record {seq}: time {} is before the previous record's {} (the wall clock was set back)",
                format_utc(rec.time_us),
                format_utc(last_time)
            ));
        }
        last_time = rec.time_us;
        end = ChainEnd {
            seq,
            hash: rec.hash.clone(),
            count: end.count + 1,
        };
        records.push(rec);
    }
    (records, end, None)
}

/// What the head says about the end of a good chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadVerdict {
    /// The head names the last record.
    Current,
    /// The head names the record before the last one (crash between the log's fsync
    /// and the head's update); `Head` is what the head should become.
    LagsByOne(Head),
}

/// Compare the head with the end of a good chain.
pub(crate) fn check_head(
    exists: bool,
    head: &HeadState,
    end: &ChainEnd,
    before_last: &str,
) -> Result<HeadVerdict, Problem> {
    let head = match head {
        HeadState::Valid(h) => h,
        HeadState::Corrupt(e) => return Err(Problem::HeadCorrupt { error: e.clone() }),
        HeadState::Missing if end.seq == 0 => {
            // A new trail (or a crash between creating the log and the head).
            return Ok(HeadVerdict::Current);
        }
        HeadState::Missing => return Err(Problem::HeadMissing { last_seq: end.seq }),
    };
    if !exists && head.seq > 0 {
        return Err(Problem::LogMissing { head_seq: head.seq });
    }
    let current = Head {
        seq: end.seq,
        hash: end.hash.clone(),
    };
    if head.seq > end.seq {
        return Err(Problem::Truncated {
            missing_from: end.seq + 1,
            head_seq: head.seq,
            last_seq: end.seq,
        });
    }
    if head.seq == end.seq {
        if head.hash != end.hash {
            return Err(Problem::HeadMismatch {
                seq: end.seq,
                head_hash: head.hash.clone(),
                record_hash: end.hash.clone(),
            });
        }
        return Ok(HeadVerdict::Current);
    }
    if head.seq + 1 == end.seq {
        if head.hash != before_last {
            return Err(Problem::HeadMismatch {
                seq: head.seq,
                head_hash: head.hash.clone(),
                record_hash: before_last.to_string(),
            });
        }
        return Ok(HeadVerdict::LagsByOne(current));
    }
    Err(Problem::HeadBehind {
        first_unheaded: head.seq + 1,
        head_seq: head.seq,
        last_seq: end.seq,
    })
}

/// Everything [`verify_dir`] learns, for the writer's open.
pub(crate) struct Examined {
    pub scan: Scan,
    pub records: Vec<Record>,
    pub report: Report,
    pub head: Option<HeadVerdict>,
}

pub(crate) fn examine(dir: &Path) -> Result<Examined, AuditError> {
    // Head first: a writer updates the head after the log, so a reader racing it sees
    // a log at least as long as the head says.
    let head_state = files::read_head(dir)?;
    let scan = files::scan(dir)?;
    let mut notices = Vec::new();
    let (records, end, mut problem) = check_records(&scan, &mut notices);
    let mut verdict = None;
    if problem.is_none() {
        let before_last = match records.len() {
            0 | 1 => GENESIS_HASH.to_string(),
            n => records
                .get(n - 2)
                .map(|r| r.hash.clone())
                .unwrap_or_default(),
        };
        match check_head(scan.exists, &head_state, &end, &before_last) {
            Ok(v) => {
                if let HeadVerdict::LagsByOne(_) = &v {
                    notices.push(format!(
                        "the head names record {} and the log ends at record {}: the last append was interrupted after the record was made durable and before the head was updated; opening the trail for writing updates the head",
                        end.seq.saturating_sub(1),
                        end.seq
                    ));
                }
                verdict = Some(v);
            }
            Err(p) => problem = Some(p),
        }
    }
    if problem.is_none()
        && let Some(torn) = &scan.torn
    {
        problem = Some(Problem::TornTail {
            after_seq: end.seq,
            offset: torn.offset,
            len: torn.bytes.len() as u64,
        });
    }
    let report = Report {
        records: end.count,
        last_seq: end.seq,
        last_hash: end.hash,
        problem,
        notices,
    };
    Ok(Examined {
        scan,
        records,
        report,
        head: verdict,
    })
}

/// Whether a problem is at the end of the trail, where a reader racing a live writer
/// (daemon appending while `linectl audit verify` reads) can see a half-written line or
/// a head and log from different moments.
fn at_the_end(p: &Option<Problem>) -> bool {
    matches!(
        p,
        Some(
            Problem::TornTail { .. }
                | Problem::Truncated { .. }
                | Problem::HeadBehind { .. }
                | Problem::HeadMismatch { .. }
        )
    )
}

/// [`examine`] for readers that do not hold the lock: a problem at the end of the
/// trail counts only if two reads 50 ms apart see the same trail (a live writer takes
/// a few milliseconds per append), at most 20 tries.
fn examine_settled(dir: &Path) -> Result<Examined, AuditError> {
    let mut prev = examine(dir)?;
    for _ in 0..20 {
        if !at_the_end(&prev.report.problem) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let next = examine(dir)?;
        let same = next.report.problem == prev.report.problem
            && next.report.last_seq == prev.report.last_seq
            && next.scan.torn == prev.scan.torn;
        prev = next;
        if same {
            break;
        }
    }
    Ok(prev)
}

/// Verify the trail in directory `dir` (the `audit` folder of a data dir), which a
/// live writer may be appending to. I/O errors are errors; inconsistencies are in the
/// [`Report`].
pub fn verify_dir(dir: &Path) -> Result<Report, AuditError> {
    Ok(examine_settled(dir)?.report)
}

/// Read all records of the trail in `dir` after verifying it: the records and the
/// report. Records after the first problem are not returned.
pub fn read_verified(dir: &Path) -> Result<(Vec<Record>, Report), AuditError> {
    let e = examine_settled(dir)?;
    Ok((e.records, e.report))
}
