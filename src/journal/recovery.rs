//! Opening a journal directory: validate every segment, cut a torn tail of the last
//! segment back to the last complete record and report exactly what was cut, and refuse
//! (fatally, naming segment and offset) damage anywhere else. Builds the in-memory
//! segment table with its sparse seq→offset index. Appending and reading live in
//! `mod.rs`; the byte format lives in `format`.
//!
//! How a bad frame in the last segment is judged. The first record of every write the
//! committer makes durable with one `fdatasync` carries [`FLAG_WRITE_START`], and a write
//! starts only after the previous one's `fdatasync` succeeded. So the bad frame is a torn
//! tail (cut and reported) when nothing valid follows it (partial frame, zero fill,
//! garbage), or when no valid record after it starts a write: the records after it
//! belong to the same, final write, whose pages reached the disk out of order before a
//! power cut. If a valid record after it starts a later write, the damaged record had
//! been made durable (and acknowledged): opening fails, naming segment and offset. A bad
//! frame in any earlier segment is always fatal: segments are fsynced before the next
//! one is created. Limitation: damage inside the final write of the last segment is
//! indistinguishable from a torn write and is cut (and reported), as in any write-ahead
//! log.

use std::path::{Path, PathBuf};

use tracing::warn;

use super::format::{
    self, FLAG_WRITE_START, HeaderProblem, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
    decode_frame_header, decode_segment_header, frame_ok,
};
use super::storage::Storage;
use super::{JournalError, Seq};

/// One record offset is kept in memory per this many records of a segment.
pub(super) const INDEX_EVERY: u64 = 64;

/// A segment as known in memory.
#[derive(Debug, Clone)]
pub(super) struct SegmentInfo {
    /// Path of the file.
    pub path: PathBuf,
    /// Seq of its first record.
    pub first: Seq,
    /// One past the seq of its last durable record.
    pub end: Seq,
    /// Durable length of the file in bytes.
    pub bytes: u64,
    /// Byte offset of record `first + k * INDEX_EVERY` at position `k`.
    pub index: Vec<u64>,
}

/// Why bytes were cut from the tail of the last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CutReason {
    /// The file ends inside a record frame header.
    PartialHeader,
    /// The file ends inside a record's payload.
    PartialRecord,
    /// The tail is all zero bytes (blocks allocated but never written, as after a power
    /// cut on some filesystems).
    ZeroFill,
    /// The tail does not checksum (garbage or a torn write) and no valid record follows.
    BadTail,
    /// The last write was torn: a record in it is damaged or missing while later records
    /// of the same write reached the disk (pages written back out of order before a
    /// power cut), and no later write follows. Its `fdatasync` cannot have completed.
    TornBatch,
    /// The last segment file was created but its header never reached the disk (short,
    /// zero or garbage header, and no valid record in the file); the file was removed.
    EmptySegment,
}

/// What recovery cut from the tail of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailCut {
    /// The segment file that was cut.
    pub segment: PathBuf,
    /// Byte offset the file was cut back to (end of the last complete record).
    pub offset: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// Incomplete or damaged record frames recognised in the removed bytes (frames whose
    /// header carries the next expected seq, plus a final partial header).
    pub records_cut: u64,
    /// Why.
    pub reason: CutReason,
}

/// What opening the journal found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Segment files kept.
    pub segments: usize,
    /// Complete records found.
    pub records: u64,
    /// The seq the next append receives.
    pub next_seq: Seq,
    /// What was cut from the tail, if anything.
    pub cuts: Vec<TailCut>,
}

pub(super) struct Recovered {
    pub segments: Vec<SegmentInfo>,
    pub report: RecoveryReport,
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> JournalError {
    JournalError::Corrupt {
        segment: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// Read all of a file.
pub(super) fn read_file(storage: &dyn Storage, path: &Path) -> Result<Vec<u8>, JournalError> {
    let mut f = storage
        .open_read(path)
        .map_err(|e| JournalError::io("open", path, e))?;
    let len = f.size().map_err(|e| JournalError::io("stat", path, e))?;
    let len = usize::try_from(len).map_err(|_| corrupt(path, 0, "file too large for memory"))?;
    let mut buf = vec![0u8; len];
    let n = f
        .read_at(0, &mut buf)
        .map_err(|e| JournalError::io("read", path, e))?;
    buf.truncate(n);
    Ok(buf)
}

enum FrameProblem {
    PartialHeader,
    TooLong(u32),
    PartialRecord,
    WrongSeq(Seq),
    BadChecksum,
}

impl std::fmt::Display for FrameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameProblem::PartialHeader => write!(f, "record header cut short"),
            FrameProblem::TooLong(n) => write!(f, "record length {n} above the maximum"),
            FrameProblem::PartialRecord => write!(f, "record runs past the end of the file"),
            FrameProblem::WrongSeq(s) => write!(f, "record carries seq {s}, out of order"),
            FrameProblem::BadChecksum => write!(f, "record checksum (CRC32C) mismatch"),
        }
    }
}

/// Check the frame at `off`; `Ok(next offset)` if it is the complete, valid record `expected`.
fn check_frame(
    bytes: &[u8],
    off: usize,
    expected: Seq,
    max_record: u32,
) -> Result<usize, FrameProblem> {
    let h = bytes
        .get(off..)
        .and_then(decode_frame_header)
        .ok_or(FrameProblem::PartialHeader)?;
    if h.len > max_record {
        return Err(FrameProblem::TooLong(h.len));
    }
    let start = off + RECORD_HEADER_LEN;
    let end = start + h.len as usize;
    let frame = bytes.get(off..end).ok_or(FrameProblem::PartialRecord)?;
    if h.seq != expected {
        return Err(FrameProblem::WrongSeq(h.seq));
    }
    if !frame_ok(&h, frame) {
        return Err(FrameProblem::BadChecksum);
    }
    Ok(end)
}

/// Find a valid record with seq >= `expected` starting anywhere after `off`.
fn find_valid_later_record(
    bytes: &[u8],
    off: usize,
    expected: Seq,
    max_record: u32,
) -> Option<(usize, Seq)> {
    let max_records_left = (bytes.len() / RECORD_HEADER_LEN) as u64 + 1;
    let mut p = off + 1;
    while p + RECORD_HEADER_LEN <= bytes.len() {
        if let Some(h) = bytes.get(p..).and_then(decode_frame_header)
            && h.seq >= expected
            && h.seq.0 < expected.0.saturating_add(max_records_left)
            && h.len <= max_record
            && check_frame(bytes, p, h.seq, max_record).is_ok()
        {
            return Some((p, h.seq));
        }
        p += 1;
    }
    None
}

/// Walk the valid records from the valid frame at `at` (seq `seq`) on, skipping over
/// bad bytes. `Err((offset, seq))` names a record that starts a later write. Otherwise
/// `Ok(count)` of the valid records seen, all of which belong to the final, torn write.
fn scan_after_damage(
    bytes: &[u8],
    mut at: usize,
    mut seq: Seq,
    max_record: u32,
) -> Result<u64, (usize, Seq)> {
    let mut count = 0;
    loop {
        let Some(h) = bytes.get(at..).and_then(decode_frame_header) else {
            return Ok(count);
        };
        if h.flags & FLAG_WRITE_START != 0 {
            return Err((at, seq));
        }
        count += 1;
        let next = at + RECORD_HEADER_LEN + h.len as usize;
        match check_frame(bytes, next, seq.next(), max_record) {
            Ok(_) => {
                at = next;
                seq = seq.next();
            }
            Err(_) => {
                match find_valid_later_record(bytes, next.saturating_sub(1), seq.next(), max_record)
                {
                    Some((p, s)) => {
                        at = p;
                        seq = s;
                    }
                    None => return Ok(count),
                }
            }
        }
    }
}

/// Count recognisable frames (with the expected seqs) in a tail about to be cut.
fn count_tail_frames(bytes: &[u8], mut off: usize, mut expected: Seq, max_record: u32) -> u64 {
    let mut n = 0;
    loop {
        let rest = bytes.get(off..).unwrap_or(&[]);
        if rest.is_empty() {
            return n;
        }
        let Some(h) = decode_frame_header(rest) else {
            return if rest.iter().any(|b| *b != 0) {
                n + 1
            } else {
                n
            };
        };
        if h.seq != expected || h.len > max_record {
            return n;
        }
        n += 1;
        off += RECORD_HEADER_LEN + h.len as usize;
        expected = expected.next();
    }
}

/// Scan `dir` and repair its tail. `max_record` bounds plausible record lengths.
pub(super) fn recover(
    storage: &dyn Storage,
    dir: &Path,
    max_record: u32,
) -> Result<Recovered, JournalError> {
    let names = storage
        .list(dir)
        .map_err(|e| JournalError::io("list", dir, e))?;
    let mut seg_names: Vec<(Seq, String)> = names
        .into_iter()
        .filter_map(|n| format::parse_segment_file_name(&n).map(|s| (s, n)))
        .collect();
    seg_names.sort();

    let mut report = RecoveryReport::default();
    let mut segments: Vec<SegmentInfo> = Vec::new();
    let mut next_seq = seg_names.first().map(|(s, _)| *s).unwrap_or(Seq(0));
    let count = seg_names.len();

    for (i, (name_seq, name)) in seg_names.into_iter().enumerate() {
        let path = dir.join(&name);
        let is_last = i + 1 == count;
        let bytes = read_file(storage, &path)?;

        let first = match decode_segment_header(&bytes) {
            Ok(first) => first,
            Err(problem)
                if is_last
                    && !matches!(problem, HeaderProblem::UnsupportedVersion(_))
                    && find_valid_later_record(
                        &bytes,
                        SEGMENT_HEADER_LEN - 1,
                        name_seq,
                        max_record,
                    )
                    .is_none() =>
            {
                // Created during a roll-over, but the header never became durable (the
                // header is fsynced before any record goes in, and no valid record is
                // in the file): nothing in it was acknowledged. Remove it; a fresh
                // segment is created on open.
                warn!(segment = %path.display(), bytes = bytes.len(), problem = %problem, "removing journal segment whose header never became durable");
                storage
                    .remove(&path)
                    .map_err(|e| JournalError::io("remove", &path, e))?;
                storage
                    .sync_dir(dir)
                    .map_err(|e| JournalError::io("fsync directory", dir, e))?;
                report.cuts.push(TailCut {
                    segment: path,
                    offset: 0,
                    bytes_cut: bytes.len() as u64,
                    records_cut: 0,
                    reason: CutReason::EmptySegment,
                });
                if segments.is_empty() {
                    next_seq = name_seq;
                }
                continue;
            }
            Err(problem) => return Err(corrupt(&path, 0, problem.to_string())),
        };
        if first != name_seq {
            return Err(corrupt(
                &path,
                0,
                format!("header says first seq {first}, file name says {name_seq}"),
            ));
        }
        if !segments.is_empty() && first != next_seq {
            return Err(corrupt(
                &path,
                0,
                format!(
                    "segment starts at seq {first} but the previous segment ends before {next_seq}: records missing"
                ),
            ));
        }

        let mut off = SEGMENT_HEADER_LEN;
        let mut expected = first;
        let mut index = Vec::new();
        while off < bytes.len() {
            match check_frame(&bytes, off, expected, max_record) {
                Ok(next) => {
                    if (expected.0 - first.0).is_multiple_of(INDEX_EVERY) {
                        index.push(off as u64);
                    }
                    off = next;
                    expected = expected.next();
                }
                Err(problem) => {
                    if !is_last {
                        return Err(corrupt(
                            &path,
                            off as u64,
                            format!("{problem} in a sealed segment"),
                        ));
                    }
                    let tail = bytes.get(off..).unwrap_or(&[]);
                    let mut torn_batch_records = None;
                    let reason = if tail.iter().all(|b| *b == 0) {
                        CutReason::ZeroFill
                    } else if let Some((at, seq)) =
                        find_valid_later_record(&bytes, off, expected, max_record)
                    {
                        match scan_after_damage(&bytes, at, seq, max_record) {
                            Err((end_at, end_seq)) => {
                                return Err(corrupt(
                                    &path,
                                    off as u64,
                                    format!(
                                        "{problem} (expected seq {expected}); a later write starts with seq {end_seq} at offset {end_at} (first valid record after the damage: seq {seq} at offset {at}), so the damaged record had been made durable: damage inside the journal, not a torn tail"
                                    ),
                                ));
                            }
                            Ok(later) => torn_batch_records = Some(later),
                        }
                        CutReason::TornBatch
                    } else {
                        match problem {
                            FrameProblem::PartialHeader => CutReason::PartialHeader,
                            FrameProblem::PartialRecord => CutReason::PartialRecord,
                            _ => CutReason::BadTail,
                        }
                    };
                    let cut = TailCut {
                        segment: path.clone(),
                        offset: off as u64,
                        bytes_cut: (bytes.len() - off) as u64,
                        records_cut: match torn_batch_records {
                            Some(later) => 1 + later,
                            None => count_tail_frames(&bytes, off, expected, max_record),
                        },
                        reason,
                    };
                    warn!(
                        segment = %path.display(),
                        offset = cut.offset,
                        bytes_cut = cut.bytes_cut,
                        records_cut = cut.records_cut,
                        reason = ?cut.reason,
                        detail = %problem,
                        "journal tail cut back to the last complete record"
                    );
                    let mut f = storage
                        .open_rw(&path)
                        .map_err(|e| JournalError::io("open", &path, e))?;
                    f.set_len(off as u64)
                        .map_err(|e| JournalError::io("truncate", &path, e))?;
                    f.sync_data()
                        .map_err(|e| JournalError::io("fdatasync", &path, e))?;
                    report.cuts.push(cut);
                    break;
                }
            }
        }
        report.records += expected.0 - first.0;
        next_seq = expected;
        segments.push(SegmentInfo {
            path,
            first,
            end: expected,
            bytes: off as u64,
            index,
        });
    }
    report.segments = segments.len();
    report.next_seq = next_seq;
    Ok(Recovered { segments, report })
}
