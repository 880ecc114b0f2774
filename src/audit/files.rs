//! The audit trail's files and how they are read and written: the log (`audit.log`, one
//! record per line, appended and `fdatasync`ed), the head file (`head.json`: the last
//! record's sequence number and hash, replaced atomically after each append so that
//! deleting records at the end of the log is detected), the lock file and the
//! quarantine files of torn tails. This module splits the log into lines and finds a
//! torn last line; it does not judge the records (that is [`super::verify`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::AuditError;

/// The log file's name inside the trail's directory.
pub const LOG_FILE: &str = "audit.log";
/// The head file's name.
pub const HEAD_FILE: &str = "head.json";
/// The lock file's name.
pub const LOCK_FILE: &str = "LOCK";

/// The trail's directory inside a data dir.
pub fn trail_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// The head file's content: where the log ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Sequence number of the last record (0: none yet).
    pub seq: u64,
    /// Hash of the last record ([`super::record::GENESIS_HASH`] when there is none).
    pub hash: String,
}

/// One complete line of the log.
#[derive(Debug, Clone)]
pub struct Line {
    /// 1-based line number.
    pub number: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// The line without its newline.
    pub bytes: Vec<u8>,
}

/// Bytes after the last newline: a record whose write was interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// Byte offset where the torn bytes start (= length of the complete part).
    pub offset: u64,
    /// The torn bytes.
    pub bytes: Vec<u8>,
}

/// The log split into complete lines and a possible torn tail.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Whether the log file exists.
    pub exists: bool,
    /// Complete lines.
    pub lines: Vec<Line>,
    /// Bytes after the last newline, if any.
    pub torn: Option<Torn>,
}

pub(crate) fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> AuditError {
    let path = path.to_path_buf();
    move |source| AuditError::Io { path, op, source }
}

/// Read and split the log of the trail in `dir`.
pub fn scan(dir: &Path) -> Result<Scan, AuditError> {
    let path = dir.join(LOG_FILE);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Scan::default()),
        Err(e) => return Err(io_err(&path, "read")(e)),
    };
    let mut scan = Scan {
        exists: true,
        ..Scan::default()
    };
    let mut start = 0usize;
    let mut number = 0u64;
    while start < data.len() {
        match data
            .get(start..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            Some(len) => {
                number += 1;
                scan.lines.push(Line {
                    number,
                    offset: start as u64,
                    bytes: data.get(start..start + len).unwrap_or_default().to_vec(),
                });
                start += len + 1;
            }
            None => {
                scan.torn = Some(Torn {
                    offset: start as u64,
                    bytes: data.get(start..).unwrap_or_default().to_vec(),
                });
                break;
            }
        }
    }
    Ok(scan)
}

/// What the head file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadState {
    /// No head file.
    Missing,
    /// A head file that does not parse.
    Corrupt(String),
    /// A valid head.
    Valid(Head),
}

/// Read the head file of the trail in `dir`.
pub fn read_head(dir: &Path) -> Result<HeadState, AuditError> {
    let path = dir.join(HEAD_FILE);
    match fs::read(&path) {
        Ok(d) => Ok(match serde_json::from_slice::<Head>(&d) {
            Ok(h) => HeadState::Valid(h),
            Err(e) => HeadState::Corrupt(e.to_string()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HeadState::Missing),
        Err(e) => Err(io_err(&path, "read")(e)),
    }
}

/// fsync a directory so a create or rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

/// Replace a file atomically and durably: write `<name>.tmp`, fsync it, rename it over
/// `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
        f.write_all(bytes).map_err(io_err(&tmp, "write"))?;
        f.sync_all().map_err(io_err(&tmp, "fsync"))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path, "rename into place"))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Write the head file of the trail in `dir`.
pub fn write_head(dir: &Path, head: &Head) -> Result<(), AuditError> {
    let mut bytes = serde_json::to_vec(head)?;
    bytes.push(b'\n');
    write_atomic(&dir.join(HEAD_FILE), &bytes)
}

/// Take the trail's exclusive lock (released when the returned file is dropped).
pub fn lock(dir: &Path) -> Result<File, AuditError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path, "open"))?;
    match fs4::fs_std::FileExt::try_lock_exclusive(&f) {
        Ok(true) => Ok(f),
        Ok(false) => Err(AuditError::InUse(dir.to_path_buf())),
        Err(e) => Err(io_err(&path, "lock")(e)),
    }
}

/// Open the log for appending (creating it if missing).
pub fn open_log(dir: &Path) -> Result<File, AuditError> {
    let path = dir.join(LOG_FILE);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path, "open for appending"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_splits_lines_and_finds_the_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!scan(dir.path()).unwrap().exists);
        fs::write(dir.path().join(LOG_FILE), b"a\nbc\n{\"se").unwrap();
        let s = scan(dir.path()).unwrap();
        assert!(s.exists);
        assert_eq!(s.lines.len(), 2);
        assert_eq!(s.lines[1].bytes, b"bc");
        assert_eq!(s.lines[1].offset, 2);
        assert_eq!(s.lines[1].number, 2);
        assert_eq!(
            s.torn,
            Some(Torn {
                offset: 5,
                bytes: b"{\"se".to_vec()
            })
        );
    }

    #[test]
    fn head_round_trips_and_corruption_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_head(dir.path()).unwrap(), HeadState::Missing);
        let h = Head {
            seq: 4,
            hash: "ab".into(),
        };
        write_head(dir.path(), &h).unwrap();
        assert_eq!(read_head(dir.path()).unwrap(), HeadState::Valid(h));
        fs::write(dir.path().join(HEAD_FILE), b"{\"seq\":").unwrap();
        assert!(matches!(
            read_head(dir.path()).unwrap(),
            HeadState::Corrupt(_)
        ));
    }

    #[test]
    fn a_second_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock(dir.path()).unwrap();
        assert!(matches!(lock(dir.path()), Err(AuditError::InUse(_))));
    }
}
