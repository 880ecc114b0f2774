//! Migration of a store written in format 1 (one sled key per serial in the trees
//! `serials` and `index`, no `m/format` record) to format 2 (bundles and hash buckets,
//! see `layout`). It does not change any control record (blocks, states, tokens,
//! counters, generation): they are the same in both formats.
//!
//! The format-1 store is never modified. A new store is built beside it in
//! `DIR/store-format2.tmp/`: every `ctl` record copied, `m/format` = 2, and the serials
//! of each GTIN re-staged in seq order through the importer's stager, which proves them
//! gap-free and duplicate-free. When it is durable a `MIGRATED` marker is written; then
//! `DIR/hwm` is copied and `DIR/store` renamed into `DIR/backup-format1/` (marked
//! `COMPLETE`), and the new store is renamed to `DIR/store`. A crash before the marker
//! leaves format 1 and the next open starts over; after it, the next open finishes the
//! renames. To go back: put `backup-format1/store` and `backup-format1/hwm` in place.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::layout::FORMAT_VERSION;
use super::stage::{Chunk, Stager};
use super::store::{SledConfig, SledStore};
use super::{GtinMeta, IMPORT_CHUNK, M_FORMAT, PoolError, Space, Store, json, tail_u64};

/// The backup directory inside the data dir.
pub const BACKUP_DIR: &str = "backup-format1";
/// Where the format-2 store is built.
pub const BUILD_DIR: &str = "store-format2.tmp";
/// sled cache for reading the format-1 store.
const OLD_STORE_CACHE: u64 = 16 * 1024 * 1024;
/// Marks a complete, durable format-2 store in [`BUILD_DIR`].
pub(super) const MARKER: &str = "MIGRATED";

fn sync(p: &Path) -> std::io::Result<()> {
    File::open(p)?.sync_all()
}

/// Finish or discard what an interrupted migration left in `dir` (called with the
/// data dir locked, before the store is opened).
/// Returns the backup directory when it finished a migration.
pub(super) fn resume(dir: &Path) -> Result<Option<PathBuf>, PoolError> {
    let build = dir.join(BUILD_DIR);
    if build.join(MARKER).is_file() {
        return finish(dir).map(Some);
    }
    if build.exists() {
        std::fs::remove_dir_all(&build).map_err(|e| io_failed(dir, "remove", &build, e))?;
    }
    Ok(None)
}

fn io_failed(dir: &Path, what: &str, path: &Path, e: std::io::Error) -> PoolError {
    PoolError::Damaged {
        dir: dir.to_path_buf(),
        reason: format!(
            "migrating store format 1 to {FORMAT_VERSION}: cannot {what} {}: {e}",
            path.display()
        ),
    }
}

/// Move the format-1 store into the backup and the built store into its place.
fn finish(dir: &Path) -> Result<PathBuf, PoolError> {
    let store = dir.join("store");
    let build = dir.join(BUILD_DIR);
    let backup = dir.join(BACKUP_DIR);
    let failed = |what: &str, p: &Path, e| io_failed(dir, what, p, e);
    if store.exists() {
        if backup.join("store").exists() {
            return Err(PoolError::Damaged {
                dir: dir.to_path_buf(),
                reason: format!(
                    "migrating store format 1 to {FORMAT_VERSION}: {} already holds a store; move it away first",
                    backup.display()
                ),
            });
        }
        std::fs::create_dir_all(&backup).map_err(|e| failed("create", &backup, e))?;
        let hwm = dir.join("hwm");
        if hwm.is_file() {
            let to = backup.join("hwm");
            std::fs::copy(&hwm, &to).map_err(|e| failed("copy the mark to", &to, e))?;
            sync(&to).map_err(|e| failed("fsync", &to, e))?;
        }
        let to = backup.join("store");
        std::fs::rename(&store, &to).map_err(|e| failed("move the store to", &to, e))?;
        let done = backup.join("COMPLETE");
        File::create(&done)
            .and_then(|f| f.sync_all())
            .map_err(|e| failed("write", &done, e))?;
        sync(&backup).map_err(|e| failed("fsync", &backup, e))?;
        sync(dir).map_err(|e| failed("fsync", dir, e))?;
    }
    std::fs::rename(&build, &store).map_err(|e| failed("move the new store to", &store, e))?;
    sync(dir).map_err(|e| failed("fsync", dir, e))?;
    let marker = store.join(MARKER);
    std::fs::remove_file(&marker).map_err(|e| failed("remove", &marker, e))?;
    Ok(backup)
}

/// Migrate the format-1 store `old` (open, in `DIR/store`) to format 2; on success
/// `DIR/store` is the new store (closed) and the returned directory holds the old one.
pub(super) fn migrate(
    dir: &Path,
    old: SledStore,
    cfg: &SledConfig,
) -> Result<(PathBuf, u64), PoolError> {
    let build = dir.join(BUILD_DIR);
    // Reading every record of a large format-1 store through a big page cache costs
    // gigabytes of memory; a small cache reads it just as fast, front to back.
    drop(old);
    let small = SledConfig {
        cache_bytes: cfg.cache_bytes.min(OLD_STORE_CACHE),
    };
    let old = SledStore::open(&dir.join("store"), false, &small)?;
    let built = build_format2(dir, &old, &build, cfg);
    drop(old);
    let serials = match built {
        Ok(n) => n,
        Err(e) => {
            if let Err(clean) = std::fs::remove_dir_all(&build) {
                tracing::error!(error = %clean, dir = %build.display(), "could not remove the unfinished format-2 store; it is removed at the next open");
            }
            return Err(e);
        }
    };
    let marker = build.join(MARKER);
    File::create(&marker)
        .and_then(|f| f.sync_all())
        .and_then(|()| sync(&build))
        .map_err(|e| io_failed(dir, "write", &marker, e))?;
    Ok((finish(dir)?, serials))
}

pub(super) fn build_format2(
    dir: &Path,
    old: &SledStore,
    build: &Path,
    cfg: &SledConfig,
) -> Result<u64, PoolError> {
    let damaged = |reason: String| PoolError::Damaged {
        dir: dir.to_path_buf(),
        reason: format!("cannot migrate store format 1 to {FORMAT_VERSION}: {reason}"),
    };
    if build.exists() {
        std::fs::remove_dir_all(build).map_err(|e| io_failed(dir, "remove", build, e))?;
    }
    let new = SledStore::open(build, true, cfg)?;
    let mut gtins = Vec::new();
    for kv in old.scan(Space::Ctl, &[], &[0xff; 64]) {
        let (k, v) = kv?;
        if let Some(g) = k.strip_prefix(b"g/") {
            let meta: GtinMeta = json(&k, &v)?;
            gtins.push((String::from_utf8_lossy(g).to_string(), meta));
        }
        new.put(Space::Ctl, &k, &v)?;
    }
    new.put(Space::Ctl, M_FORMAT, &FORMAT_VERSION.to_be_bytes())?;
    let mut total = 0u64;
    for (gtin, meta) in gtins {
        let mut stager = Stager::new(&new, &gtin, 0)?;
        let mut chunk = Chunk::default();
        let mut expect = 0u64;
        let key = |seq: u64| [gtin.as_bytes(), &seq.to_be_bytes()].concat();
        for kv in old.scan(Space::LegacySerials, &key(0), &key(meta.next_seq)) {
            let (k, v) = kv?;
            let seq = tail_u64(&k)?;
            if seq != expect {
                return Err(damaged(format!(
                    "GTIN {gtin} has no serial at seq {expect} (the next is at {seq})"
                )));
            }
            chunk.push(&v, seq)?;
            expect += 1;
            if chunk.len() >= IMPORT_CHUNK {
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
    new.make_durable()?;
    Ok(total)
}
