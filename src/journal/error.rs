//! The journal's error type and the portable [`JournalErrorKind`] callers act on (hold
//! the line on `Full`, stop and alert on `Corrupt`/`Failed`). Only error definitions live
//! here; which operation raises which error is documented on the operations.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::Seq;

/// What kind of failure a [`JournalError`] is, for callers that react by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalErrorKind {
    /// The disk budget is used up by unconfirmed records: hold the line.
    Full,
    /// The record is larger than the configured maximum.
    TooLarge,
    /// An I/O operation failed (including `ENOSPC`); the record was not acknowledged.
    Io,
    /// The journal stopped after an I/O failure it cannot safely continue from; reopen.
    Failed,
    /// Damaged journal data that recovery must not silently skip.
    Corrupt,
    /// A consumer cursor operation was refused (unknown name, going backwards, ...).
    Cursor,
    /// A read asked for records that retention has already deleted.
    Pruned,
    /// The configuration is invalid.
    Config,
    /// Another process has the journal directory open.
    Locked,
    /// The journal was closed before the request was answered.
    Closed,
    /// The journal directory was written in a format this build cannot read (newer) or
    /// its version file is damaged.
    Format,
}

/// Everything the journal can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// An I/O operation failed.
    #[error("journal I/O error while trying to {op} {path}: {source}")]
    Io {
        /// What was being done ("fdatasync", "write", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The disk budget is used up by records not yet confirmed by every consumer that
    /// holds records; nothing was written.
    #[error(
        "journal full: {used_bytes} of {budget_bytes} budget bytes hold unconfirmed records, {needed_bytes} more needed"
    )]
    Full {
        /// Bytes of segment files on disk.
        used_bytes: u64,
        /// The configured budget.
        budget_bytes: u64,
        /// Bytes the refused request needed.
        needed_bytes: u64,
    },
    /// A record payload above the configured maximum.
    #[error("record of {size} bytes refused: the journal's maximum record size is {max} bytes")]
    RecordTooLarge {
        /// Payload size offered.
        size: usize,
        /// Configured maximum.
        max: u32,
    },
    /// Damaged data found inside the journal (not a torn tail): fatal, never skipped.
    #[error("journal corrupt in {} at byte offset {offset}: {reason}", segment.display())]
    Corrupt {
        /// The damaged file.
        segment: PathBuf,
        /// Byte offset of the damaged frame.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The committer stopped after an I/O failure (a failed `fdatasync` may have dropped
    /// written data from the page cache, so continuing could acknowledge lost records).
    #[error("journal stopped after an I/O failure ({cause}); reopen it to recover")]
    Failed {
        /// The failure that stopped it.
        cause: String,
    },
    /// A consumer name not in the configuration.
    #[error("unknown journal consumer {0:?}")]
    UnknownConsumer(String),
    /// A cursor may only move forward.
    #[error("consumer {consumer:?}: cursor cannot move back from {current} to {requested}")]
    CursorBackwards {
        /// Consumer name.
        consumer: String,
        /// Next unconfirmed seq now.
        current: Seq,
        /// Next unconfirmed seq requested.
        requested: Seq,
    },
    /// A consumer confirmed a record that was never acknowledged.
    #[error("consumer {consumer:?}: cannot confirm seq {requested}, the journal ends before {end}")]
    CursorBeyondEnd {
        /// Consumer name.
        consumer: String,
        /// Seq the consumer tried to confirm.
        requested: Seq,
        /// First seq not yet written.
        end: Seq,
    },
    /// After recovery the journal ends before a seq a consumer already confirmed: records
    /// that were acknowledged have disappeared from disk.
    #[error(
        "journal ends at seq {end} but consumer {consumer:?} already confirmed records up to {cursor}: acknowledged records were lost"
    )]
    LostConfirmed {
        /// Consumer name.
        consumer: String,
        /// The consumer's persisted cursor.
        cursor: Seq,
        /// Next seq after recovery.
        end: Seq,
    },
    /// The records asked for were already deleted by retention.
    #[error(
        "seq {requested} was deleted by retention; the oldest record kept is {first_available}"
    )]
    Pruned {
        /// Seq asked for.
        requested: Seq,
        /// Oldest seq still on disk.
        first_available: Seq,
    },
    /// Invalid configuration.
    #[error("invalid journal configuration: {0}")]
    Config(String),
    /// Another process holds the journal directory lock.
    #[error("journal directory {} is locked by another process", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// The journal closed before answering.
    #[error("journal closed before the request was answered")]
    Closed,
    /// The journal directory was written by a newer linectl.
    #[error(
        "journal {} is in store format {found}, newer than format {supported} this build reads; run the linectl version that wrote it (or newer)", path.display()
    )]
    NewerFormat {
        /// The version file.
        path: PathBuf,
        /// Version found in it.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The version file exists but cannot be understood.
    #[error("journal version file {} is damaged: {reason}", path.display())]
    BadVersionFile {
        /// The version file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

impl JournalError {
    /// The portable kind of this error.
    pub fn kind(&self) -> JournalErrorKind {
        match self {
            JournalError::Io { .. } => JournalErrorKind::Io,
            JournalError::Full { .. } => JournalErrorKind::Full,
            JournalError::RecordTooLarge { .. } => JournalErrorKind::TooLarge,
            JournalError::Corrupt { .. } | JournalError::LostConfirmed { .. } => {
                JournalErrorKind::Corrupt
            }
            JournalError::Failed { .. } => JournalErrorKind::Failed,
            JournalError::UnknownConsumer(_)
            | JournalError::CursorBackwards { .. }
            | JournalError::CursorBeyondEnd { .. } => JournalErrorKind::Cursor,
            JournalError::Pruned { .. } => JournalErrorKind::Pruned,
            JournalError::Config(_) => JournalErrorKind::Config,
            JournalError::Locked { .. } => JournalErrorKind::Locked,
            JournalError::Closed => JournalErrorKind::Closed,
            JournalError::NewerFormat { .. } | JournalError::BadVersionFile { .. } => {
                JournalErrorKind::Format
            }
        }
    }

    /// True for an I/O error caused by a full disk (`ENOSPC`).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, JournalError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        JournalError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
