//! The high-water mark: a small file next to the store, independent of sled, that
//! records the store's generation (bumped by every durable commit) and the id of the
//! last reserved block. It is written and `fdatasync`ed after the store is durable and
//! before any serial of a new block leaves the process, so a store that comes back
//! behind it (lost writes after power loss, a silently truncated log, a restored old
//! copy) is detected and refused instead of handing serials out a second time.
//!
//! Format: two 512-byte slots, each `magic(8) counter(8) generation(8) last_block(8)
//! store_id(8) crc32(4)`, little-endian. Updates alternate slots and are written in
//! place (`pwrite` + `fdatasync`), so a torn write can only damage the slot being
//! written; reading takes the valid slot with the higher counter. The file is created
//! with write-temp + fsync + rename + fsync-dir.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"LCHWM001";
const SLOT: u64 = 512;
const REC: usize = 44;

/// What the high-water mark records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    /// The store's generation at the last durable commit.
    pub generation: u64,
    /// The id of the last reserved block (0: none yet).
    pub last_block: u64,
    /// Random id of the store this mark belongs to.
    pub store_id: u64,
}

/// Errors reading or writing the high-water mark.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HwmError {
    /// An I/O failure.
    #[error("high-water mark {path}: {op}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Neither slot holds a valid record.
    #[error("high-water mark {0} is damaged: no slot has a valid checksum")]
    Damaged(PathBuf),
}

/// The open high-water-mark file.
pub struct Hwm {
    path: PathBuf,
    file: File,
    counter: u64,
    mark: Mark,
}

fn encode(counter: u64, m: &Mark) -> [u8; REC] {
    let mut b = [0u8; REC];
    b[0..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&counter.to_le_bytes());
    b[16..24].copy_from_slice(&m.generation.to_le_bytes());
    b[24..32].copy_from_slice(&m.last_block.to_le_bytes());
    b[32..40].copy_from_slice(&m.store_id.to_le_bytes());
    let crc = crc32fast::hash(&b[0..40]);
    b[40..44].copy_from_slice(&crc.to_le_bytes());
    b
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

fn decode(b: &[u8]) -> Option<(u64, Mark)> {
    if b.get(0..8)? != MAGIC {
        return None;
    }
    let crc: [u8; 4] = b.get(40..44)?.try_into().ok()?;
    if crc32fast::hash(b.get(0..40)?) != u32::from_le_bytes(crc) {
        return None;
    }
    Some((
        u64_at(b, 8)?,
        Mark {
            generation: u64_at(b, 16)?,
            last_block: u64_at(b, 24)?,
            store_id: u64_at(b, 32)?,
        },
    ))
}

/// fsync a directory so that a create or rename in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Hwm {
    /// Create a new mark file at `path` holding `mark` (write-temp, fsync, rename,
    /// fsync of the directory).
    pub fn create(path: &Path, mark: Mark) -> Result<Hwm, HwmError> {
        let io = |op, source| HwmError::Io {
            path: path.to_path_buf(),
            op,
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut buf = vec![0u8; (2 * SLOT) as usize];
        buf[..REC].copy_from_slice(&encode(1, &mark));
        {
            let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
            f.write_all(&buf).map_err(|e| io("write", e))?;
            f.sync_all().map_err(|e| io("fsync", e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(|e| io("fsync dir", e))?;
        }
        Hwm::open(path)
    }

    /// Open an existing mark file and read its newest valid slot.
    pub fn open(path: &Path) -> Result<Hwm, HwmError> {
        let io = |op, source| HwmError::Io {
            path: path.to_path_buf(),
            op,
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io("open", e))?;
        let mut best: Option<(u64, Mark)> = None;
        for slot in 0..2u64 {
            let mut b = [0u8; REC];
            if file.read_exact_at(&mut b, slot * SLOT).is_ok()
                && let Some((c, m)) = decode(&b)
                && best.is_none_or(|(bc, _)| c > bc)
            {
                best = Some((c, m));
            }
        }
        let (counter, mark) = best.ok_or_else(|| HwmError::Damaged(path.to_path_buf()))?;
        Ok(Hwm {
            path: path.to_path_buf(),
            file,
            counter,
            mark,
        })
    }

    /// The last mark written.
    pub fn mark(&self) -> Mark {
        self.mark
    }

    /// Durably record `mark`: `pwrite` into the older slot, then `fdatasync`.
    pub fn write(&mut self, mark: Mark) -> Result<(), HwmError> {
        let counter = self.counter + 1;
        let rec = encode(counter, &mark);
        let io = |op, source| HwmError::Io {
            path: self.path.clone(),
            op,
            source,
        };
        self.file
            .write_all_at(&rec, (counter % 2) * SLOT)
            .map_err(|e| io("write", e))?;
        self.file.sync_data().map_err(|e| io("fdatasync", e))?;
        self.counter = counter;
        self.mark = mark;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_valid_slot_wins_and_torn_slot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hwm");
        let mut h = Hwm::create(
            &p,
            Mark {
                generation: 1,
                last_block: 0,
                store_id: 7,
            },
        )
        .unwrap();
        h.write(Mark {
            generation: 2,
            last_block: 1,
            store_id: 7,
        })
        .unwrap();
        h.write(Mark {
            generation: 3,
            last_block: 2,
            store_id: 7,
        })
        .unwrap();
        assert_eq!(Hwm::open(&p).unwrap().mark().generation, 3);
        // Tear the newest slot (counter 3 → slot 1): the previous one is read.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[0xff; 4], SLOT + 20).unwrap();
        assert_eq!(Hwm::open(&p).unwrap().mark().generation, 2);
        // Both slots torn: a clear error, never a default mark.
        f.write_all_at(&[0xff; 4], 20).unwrap();
        assert!(matches!(Hwm::open(&p), Err(HwmError::Damaged(_))));
    }
}
