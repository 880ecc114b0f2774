//! Errors of the audit trail: I/O on its files (naming the file and the operation), an
//! integrity problem found when opening the trail for writing, a trail already held by
//! another process, and a trail that refuses further writes after a failed append.
//! The list of integrity problems itself is [`super::verify::Problem`].

use std::path::PathBuf;

use super::verify::Problem;

/// What went wrong with the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed.
    #[error("audit trail: cannot {op} {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The trail failed verification; it is not written to until someone looks.
    #[error("audit trail in {dir} is inconsistent: {problem}")]
    Integrity {
        /// The trail's directory.
        dir: PathBuf,
        /// The first problem found.
        problem: Box<Problem>,
    },
    /// Another process holds the trail open for writing.
    #[error("audit trail in {0} is in use by another process (is the daemon running?)")]
    InUse(PathBuf),
    /// An earlier append failed part-way; the trail accepts no more records until it is
    /// opened again (which detects and reports what that append left behind).
    #[error("audit trail refuses writes after an earlier failure: {0}")]
    Broken(String),
    /// A record is larger than the trail accepts; nothing was written.
    #[error("audit record of {bytes} bytes is larger than the {max} bytes accepted")]
    TooLarge {
        /// The record's encoded size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A record could not be encoded.
    #[error("audit trail: cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
}
