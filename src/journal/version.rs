//! The journal directory's store-format version file, `FORMAT`: one line
//! `linectl-journal-format <n>`. It is checked before recovery reads any segment, so a
//! journal written by a newer linectl is refused with both versions named instead of
//! being misread, and a damaged version file stops the open with its path. A directory
//! without the file (journals written before the file existed, the same layout as
//! version 1) or a new empty directory is stamped with [`DIR_FORMAT_VERSION`]; nothing
//! else changes, so no migration or backup is needed for version 1.
//!
//! Not owned here: the per-segment header version (`format`), which guards each segment
//! file on its own and stays at the same number.

use std::path::Path;

use super::error::JournalError;
use super::format::FORMAT_VERSION;
use super::storage::Storage;

/// Name of the version file inside the journal directory.
pub const VERSION_FILE: &str = "FORMAT";
/// The directory format this build reads and writes (equal to the segment format).
pub const DIR_FORMAT_VERSION: u32 = FORMAT_VERSION;
const PREFIX: &str = "linectl-journal-format ";
/// A version file larger than this is damaged, not read.
const MAX_FILE_BYTES: usize = 256;

/// What [`check_or_stamp`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionCheck {
    /// The file was there and names this build's version.
    Current,
    /// The directory had no version file (unversioned = version 1); it was stamped.
    Stamped,
}

/// The bytes of a version file for `version`.
pub fn encode(version: u32) -> String {
    format!("{PREFIX}{version}\n")
}

/// Parse the contents of a version file; `Err` says what is wrong with it.
pub fn parse(text: &[u8]) -> Result<u32, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8 text".to_string())?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    let number = line
        .strip_prefix(PREFIX)
        .ok_or_else(|| format!("expected `{}<version>`, found {line:?}", PREFIX))?;
    let v: u32 = number
        .parse()
        .map_err(|_| format!("version {number:?} is not a whole number"))?;
    if v == 0 {
        return Err("version 0 does not exist (the first format is 1)".into());
    }
    Ok(v)
}

/// Check the version file of `dir` (which the caller has locked): refuse a newer or
/// damaged one, stamp a missing one durably (write a temporary file, fsync, rename,
/// fsync the directory).
pub fn check_or_stamp(storage: &dyn Storage, dir: &Path) -> Result<VersionCheck, JournalError> {
    let path = dir.join(VERSION_FILE);
    let names = storage
        .list(dir)
        .map_err(|e| JournalError::io("list", dir, e))?;
    if names.iter().any(|n| n == VERSION_FILE) {
        let mut f = storage
            .open_read(&path)
            .map_err(|e| JournalError::io("open", &path, e))?;
        let size = f.size().map_err(|e| JournalError::io("stat", &path, e))?;
        if size as usize > MAX_FILE_BYTES {
            return Err(JournalError::BadVersionFile {
                path,
                reason: format!("{size} bytes, a version file has at most {MAX_FILE_BYTES}"),
            });
        }
        let mut buf = vec![0u8; size as usize];
        let n = f
            .read_at(0, &mut buf)
            .map_err(|e| JournalError::io("read", &path, e))?;
        buf.truncate(n);
        let found = parse(&buf).map_err(|reason| JournalError::BadVersionFile {
            path: path.clone(),
            reason,
        })?;
        return match found.cmp(&DIR_FORMAT_VERSION) {
            std::cmp::Ordering::Equal => Ok(VersionCheck::Current),
            std::cmp::Ordering::Greater => Err(JournalError::NewerFormat {
                path,
                found,
                supported: DIR_FORMAT_VERSION,
            }),
            // Only reachable once a version 2 exists; then a migration goes here.
            std::cmp::Ordering::Less => Err(JournalError::BadVersionFile {
                path,
                reason: format!(
                    "version {found} has no migration to {DIR_FORMAT_VERSION} in this build"
                ),
            }),
        };
    }
    let tmp = dir.join(format!("{VERSION_FILE}.tmp"));
    let mut f = storage
        .create_truncate(&tmp)
        .map_err(|e| JournalError::io("create", &tmp, e))?;
    f.append(encode(DIR_FORMAT_VERSION).as_bytes())
        .map_err(|e| JournalError::io("write", &tmp, e))?;
    f.sync_data()
        .map_err(|e| JournalError::io("fdatasync", &tmp, e))?;
    drop(f);
    storage
        .rename(&tmp, &path)
        .map_err(|e| JournalError::io("rename", &tmp, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| JournalError::io("fsync directory", dir, e))?;
    Ok(VersionCheck::Stamped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_the_written_form_and_names_what_is_wrong() {
        assert_eq!(parse(encode(1).as_bytes()), Ok(1));
        assert_eq!(parse(b"linectl-journal-format 7"), Ok(7));
        assert!(
            parse(b"linectl-journal-format x")
                .unwrap_err()
                .contains("\"x\"")
        );
        assert!(
            parse(b"linectl-journal-format 0")
                .unwrap_err()
                .contains("0")
        );
        assert!(parse(b"garbage").unwrap_err().contains("garbage"));
        assert!(parse(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
    }
}
