//! Migration of a store written in format 1 (one sled key per serial in the trees
//! `serials` and `index`, no `m/format` record) to format 2 (bundles and hash buckets,
//! see `layout`). Before anything is rewritten the store and its high-water mark are
//! copied to `DIR/backup-format1/` (marked complete by a `COMPLETE` file, fsynced).
//! The serials are then re-staged in seq order through the importer's stager, which
//! proves them gap-free and duplicate-free; `m/format` = 2 is set in one durable commit
//! and only after that are the format-1 trees dropped. A crash at any point leaves
//! either format 1 (the migration runs again, over the partial format-2 trees it
//! clears) or format 2. It does not touch the control records (blocks, states, tokens):
//! they are the same in both formats.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::layout::FORMAT_VERSION;
use super::stage::{Chunk, Stager};
use super::{M_FORMAT, Op, Pool, PoolError, Space, Store, tail_u64};

/// Name of the backup directory inside the data dir.
pub const BACKUP_DIR: &str = "backup-format1";

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), &dest)?;
            File::open(&dest)?.sync_all()?;
        }
    }
    File::open(to)?.sync_all()
}

/// Copy `DIR/store` and `DIR/hwm` to `DIR/backup-format1/` (the store must be closed).
/// A complete backup from an earlier, interrupted migration is kept as it is.
pub(super) fn backup(dir: &Path) -> Result<PathBuf, PoolError> {
    let to = dir.join(BACKUP_DIR);
    let failed = |e: std::io::Error| PoolError::Damaged {
        dir: dir.to_path_buf(),
        reason: format!(
            "store format 1 needs migrating, but the backup to {} failed (nothing was changed): {e}",
            to.display()
        ),
    };
    if to.join("COMPLETE").is_file() {
        return Ok(to);
    }
    if to.exists() {
        std::fs::remove_dir_all(&to).map_err(failed)?;
    }
    copy_dir(&dir.join("store"), &to.join("store")).map_err(failed)?;
    let hwm = dir.join("hwm");
    if hwm.is_file() {
        std::fs::copy(&hwm, to.join("hwm")).map_err(failed)?;
        File::open(to.join("hwm"))
            .and_then(|f| f.sync_all())
            .map_err(failed)?;
    }
    File::create(to.join("COMPLETE"))
        .and_then(|f| f.sync_all())
        .map_err(failed)?;
    File::open(&to).and_then(|f| f.sync_all()).map_err(failed)?;
    File::open(dir).and_then(|f| f.sync_all()).map_err(failed)?;
    Ok(to)
}

impl<S: Store> Pool<S> {
    /// Rewrite the format-1 serials of every GTIN as bundles and buckets and commit
    /// format 2 durably. Returns the number of serials migrated. The caller drops the
    /// format-1 trees afterwards.
    pub(super) fn migrate_from_format1(&mut self) -> Result<u64, PoolError> {
        let damaged = |reason: String| PoolError::Damaged {
            dir: self.dir.clone(),
            reason: format!("cannot migrate store format 1 to {FORMAT_VERSION}: {reason}"),
        };
        // What an interrupted earlier attempt wrote.
        for space in [Space::Serials, Space::Index] {
            let keys: Vec<Vec<u8>> = self
                .store
                .scan(space, &[], &[0xff; 32])
                .map(|kv| kv.map(|(k, _)| k))
                .collect::<Result<_, _>>()?;
            for k in keys {
                self.store.del(space, &k)?;
            }
        }
        let mut total = 0u64;
        for (gtin, meta) in self.gtins()? {
            let mut stager = Stager::new(&self.store, &gtin, 0)?;
            let mut chunk = Chunk::default();
            let mut expect = 0u64;
            let mut start = gtin.as_bytes().to_vec();
            start.extend_from_slice(&0u64.to_be_bytes());
            let mut end = gtin.as_bytes().to_vec();
            end.extend_from_slice(&meta.next_seq.to_be_bytes());
            for kv in self.store.scan(Space::LegacySerials, &start, &end) {
                let (k, v) = kv?;
                let seq = tail_u64(&k)?;
                if seq != expect {
                    return Err(damaged(format!(
                        "GTIN {gtin} has no serial at seq {expect} (the next is at {seq})"
                    )));
                }
                chunk.push(&v, seq)?;
                expect += 1;
                if chunk.len() >= self.import_chunk {
                    stager.stage(&mut chunk, "format 1 seq")?;
                }
            }
            stager.stage(&mut chunk, "format 1 seq")?;
            if expect != meta.next_seq {
                return Err(damaged(format!(
                    "GTIN {gtin} records {} serials, only {expect} are stored",
                    meta.next_seq
                )));
            }
            if stager.cur != meta.next_seq {
                return Err(damaged(format!(
                    "GTIN {gtin} holds the same serial more than once: {}",
                    stager.dup_examples.join("; ")
                )));
            }
            total += expect;
        }
        self.commit_durable(
            vec![Op::Put(
                M_FORMAT.to_vec(),
                FORMAT_VERSION.to_be_bytes().to_vec(),
            )],
            None,
        )?;
        Ok(total)
    }
}
