//! The durable serial-number pool: where serials come from (site-server lists,
//! SNCollection documents, local generation where the market allows it), their
//! OPEN-SCS states, durable block reservation for a line and batch, crash recovery, the
//! low-water forecast and a consistency check. Invariant: a serial is handed out at most
//! once, ever — across crashes, power loss and retries. It does not build GS1 codes,
//! talk HTTP or drive printers; the allocator hands serials to whoever asks.
//!
//! # Data-dir layout
//!
//! ```text
//! DIR/LOCK        lock file; an exclusive advisory lock (flock) is held while open,
//!                 a second process gets PoolError::InUse
//! DIR/hwm         high-water mark (see hwm.rs): store generation + last reserved
//!                 block + store id, two CRC'd slots, pwrite + fdatasync per update
//! DIR/store/      the sled database (db, conf, snap.*), store format 2, three trees
//!                 (byte layouts in layout.rs):
//!   bundles       GTIN(14 ASCII digits) ++ (seq/256)(u64 BE) -> the payloads of
//!                 seqs (seq/256)*256 .. in order, each len(u8) ++ payload, at most 256;
//!                 payload = serial, or serial GS "91" key GS "92" crypto (Russia);
//!                 per GTIN, seq 0.. in import (file) order; only seq < next_seq is
//!                 live: an import stages past it, a failed one is trimmed back
//!   buckets       GTIN ++ bucket(u16 BE) -> sorted (len(u8) serial seq(u64 BE))*,
//!                 bucket = top 16 bits of hash64(serial): the exact duplicate index
//!   ctl           every state record, changed only by atomic batches:
//!     m/id m/gen m/nextblock m/nextimport   store id, generation, counters (u64 BE)
//!     m/format        store format (u64 BE, 2); absent in format 1, which kept one
//!                     key per serial in trees `serials` and `index` and is migrated
//!                     at open into a new store; the old one is kept in
//!                     DIR/backup-format1/ (migrate.rs)
//!     g/GTIN          GtinMeta: market, next_seq, reserved_upto, sequential counter
//!     b/ID            Block: gtin, [start,end) seqs, line, batch, encoded_upto, status
//!     k/GTIN++START   block id, blocks of a GTIN in seq order
//!     a/ID            blocks open (reserved by a running process)
//!     o/GTIN++SEQ     per-serial state after Encoded (Commissioned, ...), or
//!                     Returned / SNInvalid of a serial never reserved
//!     r/ID            closed block whose unused tail is SNInvalid, to report upstream
//!     t/TOKEN         site-server request token and the collection received for it
//!     p/ID            import record (audit), n/ID return record (audit)
//! DIR/backup-format1/ only after a format-1 store was migrated: its store/ (moved,
//!                 untouched) and a copy of hwm, and COMPLETE (migrate.rs)
//! DIR/store-format2.tmp/ only while a migration builds the new store
//! ```
//!
//! An import stages its serials past `next_seq` in chunks of 2^21 (stage.rs): one
//! sled write per 256 serials for the bundles and one read-modify-write per touched
//! bucket per chunk for the index, instead of two writes per serial; the commit that
//! moves `next_seq` makes them live, all at once. The duplicate check is exact: a
//! serial is compared byte for byte with every serial of its bucket.
//!
//! A serial's state is derived: seq >= reserved_upto → Unallocated; inside block B:
//! seq < B.encoded_upto → Encoded, else Allocated (B open) or SNInvalid (B closed); an
//! `o/` record overrides. So a reservation of 1,000 serials writes one block record, not
//! 1,000 keys, and Encoded advances one watermark.
//!
//! Every durable commit bumps `m/gen`, makes the store durable (sled flush + fsync of
//! its data file) and then writes the high-water mark; serials of a new block leave the
//! process only after that. At open the store must not be behind the mark.

pub mod alloc;
pub mod forecast;
pub mod generate;
pub mod hwm;
pub mod layout;
mod migrate;
pub mod rules;
pub mod source;
mod stage;
pub mod state;
pub mod store;
mod verify;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::market::Market;
pub use alloc::{Allocator, Handed, Payload, SharedAllocator, SharedPool};
pub use forecast::{Forecast, PoolLevel};
pub use hwm::{Hwm, HwmError, Mark};
use layout::Key;
pub use source::{Format, SerialRecord, Source, SourceError};
pub use state::{SerialState, TransitionError, transition};
pub use store::{Op, Ops, SledConfig, SledStore, Space, Store, StoreError};
pub use verify::VerifyReport;

/// Group separator between a serial and its AI 91/92 tail in a stored payload.
const GS: u8 = 0x1d;

/// Serials staged per chunk during an import (each chunk costs one read-modify-write
/// of every index bucket it touches; see `stage.rs`).
const IMPORT_CHUNK: usize = 1 << 21;

/// How many example lines an import report or error keeps.
const EXAMPLES: usize = 20;

/// Everything that can go wrong with the pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The high-water mark failed.
    #[error(transparent)]
    Hwm(#[from] HwmError),
    /// A source file is unreadable or malformed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Another process has the data dir open.
    #[error("data dir {0} is in use by another process (lock on {0}/LOCK is held)")]
    InUse(PathBuf),
    /// No pool in the data dir.
    #[error("no serial pool in {0} (create one with `linectl pool import` or `generate`)")]
    NoPool(PathBuf),
    /// The data dir is damaged or inconsistent with its high-water mark.
    #[error("serial pool in {dir} refused: {reason}")]
    Damaged {
        /// The data dir.
        dir: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The store was written in a format this build does not read.
    #[error(
        "serial pool in {dir} has store format version {found}; this linectl reads format version {supported}{hint}"
    )]
    FormatVersion {
        /// The data dir.
        dir: PathBuf,
        /// The format found (1: the store has no `m/format` record).
        found: u64,
        /// The format this build reads.
        supported: u64,
        /// What to do about it.
        hint: String,
    },
    /// A stored record cannot be decoded.
    #[error("serial store record `{key}` is corrupt: {reason}")]
    Corrupt {
        /// The key (printable form).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Not a valid GTIN.
    #[error("{0}")]
    BadGtin(String),
    /// The GTIN has no serials in this pool.
    #[error("GTIN {0} has no serials in this pool")]
    UnknownGtin(String),
    /// A new GTIN needs a market.
    #[error("GTIN {0} is new to this pool: give its market (--market)")]
    MarketNeeded(String),
    /// The market given differs from the GTIN's market in the pool or the document.
    #[error("GTIN {gtin} belongs to market {have}, not {asked}")]
    MarketMismatch {
        /// The GTIN.
        gtin: String,
        /// The market on record.
        have: Market,
        /// The market asked for.
        asked: Market,
    },
    /// The GTIN of a document differs from the one asked for.
    #[error("the document is for GTIN {found}, not {asked}")]
    GtinMismatch {
        /// Asked for.
        asked: String,
        /// In the document.
        found: String,
    },
    /// Serials broke the market's rules; nothing was imported.
    #[error("{count} serial(s) rejected, nothing imported:\n  {}", examples.join("\n  "))]
    InvalidSerials {
        /// How many.
        count: u64,
        /// The first few, with where they were.
        examples: Vec<String>,
    },
    /// Not enough Unallocated serials.
    #[error(
        "InsufficientSerialNumbers: GTIN {gtin} needs {requested} serials, the pool has {available} (short by {shortfall})"
    )]
    InsufficientSerialNumbers {
        /// The GTIN.
        gtin: String,
        /// Needed.
        requested: u64,
        /// Unallocated now.
        available: u64,
        /// requested - available.
        shortfall: u64,
    },
    /// Local generation is not allowed or not safe.
    #[error("cannot generate serials for {market}: {reason}")]
    Generation {
        /// The market.
        market: Market,
        /// Why not.
        reason: String,
    },
    /// A state change that is not a forward move.
    #[error("GTIN {gtin} serial `{serial}`: {source}")]
    Transition {
        /// The GTIN.
        gtin: String,
        /// The serial.
        serial: String,
        /// The refused move.
        source: TransitionError,
    },
    /// The serial is not in the pool.
    #[error("GTIN {gtin}: serial `{serial}` is not in the pool")]
    UnknownSerial {
        /// The GTIN.
        gtin: String,
        /// The serial.
        serial: String,
    },
    /// A request-token problem.
    #[error("request token {token}: {reason}")]
    Token {
        /// The token.
        token: String,
        /// What is wrong.
        reason: String,
    },
    /// A misuse of the API (e.g. marking a serial Encoded that was never handed out).
    #[error("{0}")]
    Usage(String),
}

/// How [`Pool::open`] treats a missing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create an empty pool when the data dir holds none.
    CreateIfMissing,
    /// Refuse when there is no pool.
    MustExist,
}

/// Per-GTIN record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GtinMeta {
    /// The market the GTIN's serials follow.
    pub market: Market,
    /// Number of serials (seq 0..next_seq are live).
    pub next_seq: u64,
    /// Every seq below this is inside a block.
    pub reserved_upto: u64,
    /// Next value of sequential local generation.
    #[serde(default)]
    pub next_sequential: u64,
}

/// Whether a block is still being handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockStatus {
    /// Reserved by a running allocator.
    Open,
    /// Closed: serials at or past `encoded_upto` are SNInvalid.
    Closed,
}

/// A reserved block of serials: the seqs `[start, end)` of one GTIN for one line and
/// batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Block id (global, increasing).
    pub id: u64,
    /// GTIN-14.
    pub gtin: String,
    /// First seq.
    pub start: u64,
    /// One past the last seq.
    pub end: u64,
    /// The line it was reserved for.
    pub line: String,
    /// The batch it was reserved for.
    pub batch: String,
    /// Seqs below this (and at or past `start`) are Encoded.
    pub encoded_upto: u64,
    /// Open or closed.
    pub status: BlockStatus,
}

impl Block {
    /// The state a seq inside this block has, before any override.
    fn base_state(&self, seq: u64) -> SerialState {
        BlockRange {
            start: self.start,
            end: self.end,
            encoded_upto: self.encoded_upto,
            status: self.status,
        }
        .base_state(seq)
    }
}

/// What a state lookup needs of a block record: its seqs, watermark and status (the
/// record decoded without its strings, so a lookup allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
struct BlockRange {
    start: u64,
    end: u64,
    encoded_upto: u64,
    status: BlockStatus,
}

impl BlockRange {
    /// As [`Block::base_state`].
    fn base_state(&self, seq: u64) -> SerialState {
        if seq < self.encoded_upto {
            SerialState::Encoded
        } else if self.status == BlockStatus::Open {
            SerialState::Allocated
        } else {
            SerialState::SnInvalid
        }
    }
}

/// The record of a site-server request, kept against its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token sent as OPEN-SCS RequestToken.
    pub token: String,
    /// GTIN asked for.
    pub gtin: String,
    /// Count asked for.
    pub count: u64,
    /// The collection received for it, once received.
    pub received: Option<ReceivedCollection>,
}

/// What was received against a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedCollection {
    /// snCollectionId.
    pub collection_id: String,
    /// Number of serials in it.
    pub count: u64,
    /// CRC-32 over the serial payloads, in order.
    pub digest: u32,
    /// The import it became.
    pub report: ImportReport,
}

/// Result of an import or a generation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Import id (audit record `p/ID`).
    pub import_id: u64,
    /// GTIN-14.
    pub gtin: String,
    /// Serials read.
    pub read: u64,
    /// Serials added to the pool.
    pub imported: u64,
    /// Rejected: already in the pool.
    pub duplicates_in_pool: u64,
    /// Rejected: twice in the file.
    pub duplicates_in_file: u64,
    /// The first rejected duplicates, with where they were.
    pub duplicate_examples: Vec<String>,
    /// Where the serials came from.
    pub source: String,
}

/// Outcome of receiving a collection against a request token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// First time: imported.
    Imported(ImportReport),
    /// The same collection had already been received and imported; nothing changed.
    AlreadyReceived(ImportReport),
}

/// What recovery at open did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Blocks found open (their process died) and closed.
    pub blocks_closed: u64,
    /// Serials of those blocks made SNInvalid.
    pub serials_invalidated: u64,
    /// Staged serials of an unfinished import removed.
    pub staged_removed: u64,
    /// The store was migrated from format 1; its format-1 copy is in this directory.
    pub migrated_from_format1: Option<PathBuf>,
}

/// Counts per state of one GTIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GtinStatus {
    /// GTIN-14.
    pub gtin: String,
    /// Market.
    pub market: Market,
    /// Total serials.
    pub total: u64,
    /// Count per state (every state listed).
    pub states: BTreeMap<String, u64>,
}

/// A closed block's SNInvalid serials, to report to the site server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidReport {
    /// The block.
    pub block: u64,
    /// GTIN-14.
    pub gtin: String,
    /// Line.
    pub line: String,
    /// Batch.
    pub batch: String,
    /// The serials.
    pub serials: Vec<String>,
}

// ---- keys ----------------------------------------------------------------------------

fn ctl_key(prefix: &[u8], parts: &[&[u8]]) -> Key {
    match parts {
        [] => Key::of(&[prefix]),
        [a] => Key::of(&[prefix, a]),
        [a, b] => Key::of(&[prefix, a, b]),
        _ => Key::of(&[prefix, &parts.concat()]),
    }
}
fn k_gtin(g: &str) -> Key {
    ctl_key(b"g/", &[g.as_bytes()])
}
fn k_block(id: u64) -> Key {
    ctl_key(b"b/", &[&id.to_be_bytes()])
}
fn k_active(id: u64) -> Key {
    ctl_key(b"a/", &[&id.to_be_bytes()])
}
fn k_report(id: u64) -> Key {
    ctl_key(b"r/", &[&id.to_be_bytes()])
}
fn k_bidx(g: &str, start: u64) -> Key {
    ctl_key(b"k/", &[g.as_bytes(), &start.to_be_bytes()])
}
fn k_over(g: &str, seq: u64) -> Key {
    ctl_key(b"o/", &[g.as_bytes(), &seq.to_be_bytes()])
}
fn k_token(t: &str) -> Key {
    ctl_key(b"t/", &[t.as_bytes()])
}
/// The end of a prefix range (all our keys after a prefix are < 0xff bytes).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&[0xff; 16]);
    k
}
const M_ID: &[u8] = b"m/id";
const M_GEN: &[u8] = b"m/gen";
const M_NEXT_BLOCK: &[u8] = b"m/nextblock";
const M_NEXT_IMPORT: &[u8] = b"m/nextimport";
const M_FORMAT: &[u8] = b"m/format";

fn printable(key: &[u8]) -> String {
    String::from_utf8_lossy(key).escape_debug().to_string()
}

fn be_u64(key: &[u8], v: &[u8]) -> Result<u64, PoolError> {
    let b: [u8; 8] = v.try_into().map_err(|_| PoolError::Corrupt {
        key: printable(key),
        reason: format!("expected 8 bytes, found {}", v.len()),
    })?;
    Ok(u64::from_be_bytes(b))
}

fn tail_u64(key: &[u8]) -> Result<u64, PoolError> {
    let at = key.len().saturating_sub(8);
    be_u64(key, key.get(at..).unwrap_or_default())
}

fn json<T: for<'de> Deserialize<'de>>(key: &[u8], v: &[u8]) -> Result<T, PoolError> {
    serde_json::from_slice(v).map_err(|e| PoolError::Corrupt {
        key: printable(key),
        reason: e.to_string(),
    })
}

/// Serialise `v` onto the end of `out` (a reused buffer: no allocation once it has
/// grown to the record's size).
fn write_json<T: Serialize>(out: &mut Vec<u8>, v: &T) {
    // Our record types contain only strings, numbers and enums, and a Vec never refuses
    // a write: serialising cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// `ops.put(key, JSON of v)`, serialised in place.
fn put_json<T: Serialize>(ops: &mut Ops, key: &[u8], v: &T) {
    ops.put_with(key, |out| write_json(out, v));
}

/// The serial part of a stored payload.
fn payload_serial(p: &[u8]) -> &[u8] {
    match p.iter().position(|&b| b == GS) {
        Some(i) => p.get(..i).unwrap_or(p),
        None => p,
    }
}

/// Build a stored payload.
fn make_payload(serial: &str, ai91: Option<&str>, ai92: Option<&str>) -> Vec<u8> {
    let mut p = serial.as_bytes().to_vec();
    if let (Some(k), Some(c)) = (ai91, ai92) {
        p.push(GS);
        p.extend_from_slice(b"91");
        p.extend_from_slice(k.as_bytes());
        p.push(GS);
        p.extend_from_slice(b"92");
        p.extend_from_slice(c.as_bytes());
    }
    p
}

// ---- the pool ------------------------------------------------------------------------

/// The serial pool in one data dir, held open with an exclusive lock.
pub struct Pool<S: Store = SledStore> {
    store: S,
    dir: PathBuf,
    hwm: Hwm,
    _lock: File,
    generation: u64,
    store_id: u64,
    next_block: u64,
    next_import: u64,
    recovery: Recovery,
    /// Serials per import chunk ([`IMPORT_CHUNK`]; smaller in tests).
    import_chunk: usize,
    /// The batch of the next durable commit on the per-unit paths (state changes,
    /// block reservation), kept between commits so that building one allocates nothing.
    ops: Ops,
    /// A record being serialised (the Encoded watermark's block record).
    scratch: Vec<u8>,
}

impl Pool<SledStore> {
    /// Open the pool in `dir`: take the lock, open the store (damage is an error, never
    /// an empty pool), check it against the high-water mark, then recover (close the
    /// blocks a dead process left open, their unused serials become SNInvalid).
    pub fn open(dir: &Path, mode: OpenMode) -> Result<Pool<SledStore>, PoolError> {
        Pool::open_with(dir, mode, &SledConfig::default())
    }

    /// [`Pool::open`] with sled tuning.
    pub fn open_with(
        dir: &Path,
        mode: OpenMode,
        cfg: &SledConfig,
    ) -> Result<Pool<SledStore>, PoolError> {
        let damaged = |reason: String| PoolError::Damaged {
            dir: dir.to_path_buf(),
            reason,
        };
        let store_dir = dir.join("store");
        let hwm_path = dir.join("hwm");
        let exists = store_dir.exists() || hwm_path.exists();
        if !exists && mode == OpenMode::MustExist {
            return Err(PoolError::NoPool(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| damaged(format!("cannot create the data dir: {e}")))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(|e| damaged(format!("cannot open the lock file: {e}")))?;
        match fs4::fs_std::FileExt::try_lock_exclusive(&lock) {
            Ok(true) => {}
            Ok(false) => return Err(PoolError::InUse(dir.to_path_buf())),
            Err(e) => return Err(damaged(format!("cannot lock {}/LOCK: {e}", dir.display()))),
        }
        let resumed = migrate::resume(dir)?;
        if !exists {
            return Pool::create(dir, lock, cfg);
        }
        if !store_dir.exists() {
            return Err(damaged(
                "the store directory is missing but the high-water mark shows a pool was here"
                    .into(),
            ));
        }
        let mut store = SledStore::open(&store_dir, false, cfg)?;
        let id = store.get(Space::Ctl, M_ID)?;
        let generation = match store.get(Space::Ctl, M_GEN)? {
            Some(v) => be_u64(M_GEN, &v)?,
            None => 0,
        };
        let store_id = match &id {
            Some(v) => be_u64(M_ID, v)?,
            None => {
                return Err(damaged(
                    "the store has no id record: it is empty or damaged".into(),
                ));
            }
        };
        let hwm = if hwm_path.exists() {
            Hwm::open(&hwm_path)?
        } else if generation == 0 {
            // A crash between creating the store and writing the first mark.
            Hwm::create(
                &hwm_path,
                Mark {
                    generation: 0,
                    last_block: 0,
                    store_id,
                },
            )?
        } else {
            return Err(damaged(format!(
                "the high-water mark {} is missing for a store at generation {generation}",
                hwm_path.display()
            )));
        };
        let mark = hwm.mark();
        if mark.store_id != store_id {
            return Err(damaged(format!(
                "the store (id {store_id:016x}) is not the one the high-water mark belongs to (id {:016x})",
                mark.store_id
            )));
        }
        if generation < mark.generation {
            return Err(damaged(format!(
                "the store is behind its high-water mark (store generation {generation}, mark {}): \
                 durable writes were lost; refusing to hand out serials that may have been used",
                mark.generation
            )));
        }
        if mark.last_block > 0 && store.get(Space::Ctl, &k_block(mark.last_block))?.is_none() {
            return Err(damaged(format!(
                "the store lacks block {} that the high-water mark records as reserved",
                mark.last_block
            )));
        }
        let next_block = match store.get(Space::Ctl, M_NEXT_BLOCK)? {
            Some(v) => be_u64(M_NEXT_BLOCK, &v)?,
            None => 1,
        };
        if next_block <= mark.last_block {
            return Err(damaged(format!(
                "the store's block counter ({next_block}) is not past the high-water mark's last block ({})",
                mark.last_block
            )));
        }
        let next_import = match store.get(Space::Ctl, M_NEXT_IMPORT)? {
            Some(v) => be_u64(M_NEXT_IMPORT, &v)?,
            None => 1,
        };
        let format = match store.get(Space::Ctl, M_FORMAT)? {
            Some(v) => be_u64(M_FORMAT, &v)?,
            None => 1,
        };
        let mut backup = resumed;
        if format == 1 {
            // Build a format-2 store beside it and swap the two: see migrate.rs. The
            // control records, generation included, are copied as they are.
            let (to, serials) = migrate::migrate(dir, store, cfg)?;
            tracing::warn!(dir = %dir.display(), serials, backup = %to.display(),
                "store migrated from format 1 to {}", layout::FORMAT_VERSION);
            backup = Some(to);
            store = SledStore::open(&store_dir, false, cfg)?;
        } else if format != layout::FORMAT_VERSION {
            return Err(PoolError::FormatVersion {
                dir: dir.to_path_buf(),
                found: format,
                supported: layout::FORMAT_VERSION,
                hint: if format > layout::FORMAT_VERSION {
                    " (written by a newer linectl)".into()
                } else {
                    " (no linectl wrote such a format: the store is damaged)".into()
                },
            });
        }
        let mut pool = Pool {
            store,
            dir: dir.to_path_buf(),
            hwm,
            _lock: lock,
            generation,
            store_id,
            next_block,
            next_import,
            recovery: Recovery::default(),
            import_chunk: IMPORT_CHUNK,
            ops: Ops::new(),
            scratch: Vec::new(),
        };
        pool.recovery.migrated_from_format1 = backup;
        pool.recover()?;
        Ok(pool)
    }

    fn create(dir: &Path, lock: File, cfg: &SledConfig) -> Result<Pool<SledStore>, PoolError> {
        let store = SledStore::open(&dir.join("store"), true, cfg)?;
        let store_id: u64 = rand::random();
        let mut ops = Ops::new();
        ops.put(M_ID, &store_id.to_be_bytes());
        ops.put(M_GEN, &0u64.to_be_bytes());
        ops.put(M_FORMAT, &layout::FORMAT_VERSION.to_be_bytes());
        store.commit(&ops)?;
        store.make_durable()?;
        let hwm = Hwm::create(
            &dir.join("hwm"),
            Mark {
                generation: 0,
                last_block: 0,
                store_id,
            },
        )?;
        hwm::sync_dir(dir).map_err(|e| PoolError::Damaged {
            dir: dir.to_path_buf(),
            reason: format!("cannot fsync the data dir: {e}"),
        })?;
        tracing::info!(dir = %dir.display(), store_id = format!("{store_id:016x}"), "created serial pool");
        Ok(Pool {
            store,
            dir: dir.to_path_buf(),
            hwm,
            _lock: lock,
            generation: 0,
            store_id,
            next_block: 1,
            next_import: 1,
            recovery: Recovery::default(),
            import_chunk: IMPORT_CHUNK,
            ops: Ops::new(),
            scratch: Vec::new(),
        })
    }
}

impl<S: Store> Pool<S> {
    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery at open did.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The store (for benches and diagnostics).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Commit `ops` atomically with a new generation, make the store durable, then
    /// advance the high-water mark. Returns after everything is on disk.
    fn commit_durable(&mut self, ops: &mut Ops, last_block: Option<u64>) -> Result<(), PoolError> {
        let generation = self.generation + 1;
        ops.put(M_GEN, &generation.to_be_bytes());
        self.store.commit(ops)?;
        self.store.make_durable()?;
        self.generation = generation;
        let mut mark = self.hwm.mark();
        mark.generation = generation;
        mark.store_id = self.store_id;
        if let Some(b) = last_block {
            mark.last_block = mark.last_block.max(b);
        }
        self.hwm.write(mark)?;
        Ok(())
    }

    fn scan_ctl(&self, prefix: &[u8]) -> S::Scan<'_> {
        self.store.scan(Space::Ctl, prefix, &prefix_end(prefix))
    }

    /// Every GTIN in the pool with its record.
    pub fn gtins(&self) -> Result<Vec<(String, GtinMeta)>, PoolError> {
        let mut out = Vec::new();
        for kv in self.scan_ctl(b"g/") {
            let (k, v) = kv?;
            let g = String::from_utf8_lossy(k.get(2..).unwrap_or_default()).to_string();
            out.push((g, json(&k, &v)?));
        }
        Ok(out)
    }

    /// The record of one GTIN, if it has serials here.
    pub fn gtin_meta(&self, gtin: &str) -> Result<Option<GtinMeta>, PoolError> {
        let k = k_gtin(gtin);
        self.store
            .get(Space::Ctl, &k)?
            .map(|v| json(&k, &v))
            .transpose()
    }

    fn block(&self, id: u64) -> Result<Block, PoolError> {
        self.block_record(id)
    }

    /// The seqs and states of block `id` (its record decoded without its strings: no
    /// allocation).
    fn block_range(&self, id: u64) -> Result<BlockRange, PoolError> {
        self.block_record(id)
    }

    /// Block `id`'s record, decoded as `T` (whole, or only the parts `T` keeps).
    fn block_record<T: for<'de> Deserialize<'de>>(&self, id: u64) -> Result<T, PoolError> {
        let k = k_block(id);
        let v = self
            .store
            .get(Space::Ctl, &k)?
            .ok_or_else(|| PoolError::Corrupt {
                key: printable(&k),
                reason: "block record missing".into(),
            })?;
        json(&k, &v)
    }

    /// The blocks of a GTIN, in seq order.
    pub fn blocks(&self, gtin: &str) -> Result<Vec<Block>, PoolError> {
        let mut out = Vec::new();
        for kv in self.scan_ctl(&ctl_key(b"k/", &[gtin.as_bytes()])) {
            let (k, v) = kv?;
            out.push(self.block(be_u64(&k, &v)?)?);
        }
        Ok(out)
    }

    /// Overrides of a GTIN in `[from, to)`: (seq, state).
    fn overrides(
        &self,
        gtin: &str,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<(u64, SerialState), PoolError>> + '_ {
        self.store
            .scan(Space::Ctl, &k_over(gtin, from), &k_over(gtin, to))
            .map(|kv| {
                let (k, v) = kv?;
                let seq = tail_u64(&k)?;
                let st = v
                    .first()
                    .and_then(|c| SerialState::from_code(*c))
                    .ok_or_else(|| PoolError::Corrupt {
                        key: printable(&k),
                        reason: "bad state code".into(),
                    })?;
                Ok((seq, st))
            })
    }

    fn recover(&mut self) -> Result<(), PoolError> {
        // 1. Staged serials of an import that did not commit.
        for (gtin, meta) in self.gtins()? {
            self.recovery.staged_removed += self.remove_staged(&gtin, meta.next_seq)?;
        }
        // 2. Blocks left open by a process that died.
        let mut ops = Ops::new();
        let mut ids = Vec::new();
        for kv in self.scan_ctl(b"a/") {
            let (k, _) = kv?;
            ids.push(tail_u64(&k)?);
        }
        for id in ids {
            let mut b = self.block(id)?;
            let invalid = b.end - b.encoded_upto.min(b.end);
            tracing::warn!(block = id, gtin = %b.gtin, line = %b.line, batch = %b.batch, invalid,
                "recovery: block was open when its process died; unused serials become SNInvalid");
            b.status = BlockStatus::Closed;
            put_json(&mut ops, &k_block(id), &b);
            ops.del(&k_active(id));
            if invalid > 0 {
                ops.put(&k_report(id), &[]);
            }
            self.recovery.blocks_closed += 1;
            self.recovery.serials_invalidated += invalid;
        }
        if !ops.is_empty() || self.generation > self.hwm.mark().generation {
            self.commit_durable(&mut ops, None)?;
        }
        Ok(())
    }

    /// Remove serials staged at or past `from` (an import that never committed).
    fn remove_staged(&self, gtin: &str, from: u64) -> Result<u64, PoolError> {
        stage::remove_staged(&self.store, gtin, from)
    }

    /// Call `f(seq, payload)` for the stored serials of `gtin` with seq in `[from, to)`,
    /// in seq order, until it returns `false`.
    fn walk_serials(
        &self,
        gtin: &str,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<bool, PoolError>,
    ) -> Result<(), PoolError> {
        if from >= to {
            return Ok(());
        }
        for kv in self.store.scan(
            Space::Serials,
            &layout::bundle_key(gtin, layout::bundle_of(from)),
            &layout::bundle_key(gtin, layout::bundle_of(to - 1) + 1),
        ) {
            let (k, v) = kv?;
            let base = layout::bundle_start(tail_u64(&k)?);
            for (seq, p) in (base..).zip(layout::bundle_iter(&k, &v)) {
                if seq < from {
                    p?;
                    continue;
                }
                if seq >= to || !f(seq, p?)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The stored payload at `seq`, if any.
    fn payload_at(&self, gtin: &str, seq: u64) -> Result<Option<Vec<u8>>, PoolError> {
        let mut out = None;
        self.walk_serials(gtin, seq, seq.saturating_add(1), |_, p| {
            out = Some(p.to_vec());
            Ok(false)
        })?;
        Ok(out)
    }

    fn meta_for(&self, gtin: &str, market: Option<Market>) -> Result<GtinMeta, PoolError> {
        match (self.gtin_meta(gtin)?, market) {
            (Some(m), Some(asked)) if m.market != asked => Err(PoolError::MarketMismatch {
                gtin: gtin.to_string(),
                have: m.market,
                asked,
            }),
            (Some(m), _) => Ok(m),
            (None, Some(market)) => Ok(GtinMeta {
                market,
                next_seq: 0,
                reserved_upto: 0,
                next_sequential: 1,
            }),
            (None, None) => Err(PoolError::MarketNeeded(gtin.to_string())),
        }
    }

    /// Import a serial list for `gtin` (any GTIN form; `market` needed for a new GTIN).
    /// Every serial is checked against the market: one bad serial and nothing is
    /// imported. Duplicates (in the file or against the pool) are skipped and reported.
    /// The import becomes visible in one atomic, durable commit.
    pub fn import(
        &mut self,
        gtin: &str,
        market: Option<Market>,
        source: Source,
        name: &str,
    ) -> Result<ImportReport, PoolError> {
        self.import_inner(gtin, market, source, name, None, None)
    }

    fn import_inner(
        &mut self,
        gtin: &str,
        market: Option<Market>,
        source: Source,
        name: &str,
        token: Option<(TokenRecord, String, u32, u64)>,
        next_sequential: Option<u64>,
    ) -> Result<ImportReport, PoolError> {
        let gtin = rules::normalise_gtin(gtin).map_err(PoolError::BadGtin)?;
        let mut market = market;
        if let Some(h) = &source.header {
            let found = rules::normalise_gtin(&h.gtin).map_err(PoolError::BadGtin)?;
            if found != gtin {
                return Err(PoolError::GtinMismatch { asked: gtin, found });
            }
            match (market, h.market) {
                (Some(a), Some(b)) if a != b => {
                    return Err(PoolError::MarketMismatch {
                        gtin,
                        have: b,
                        asked: a,
                    });
                }
                (None, m) => market = m,
                _ => {}
            }
        }
        let meta = self.meta_for(&gtin, market)?;
        self.remove_staged(&gtin, meta.next_seq)?;
        let mut stager = stage::Stager::new(&self.store, &gtin, meta.next_seq)?;
        let mut invalid = 0u64;
        let mut invalid_examples = Vec::new();
        let mut read = 0u64;
        let mut failure: Option<PoolError> = None;
        let mut chunk = stage::Chunk::default();
        for rec in source.records {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            };
            read += 1;
            if let Err(reason) = rules::check_serial(
                meta.market,
                &rec.serial,
                rec.ai91.as_deref(),
                rec.ai92.as_deref(),
            ) {
                invalid += 1;
                if invalid_examples.len() < EXAMPLES {
                    invalid_examples.push(format!("{name}: {}: {reason}", rec.at));
                }
                continue;
            }
            if invalid > 0 {
                continue;
            }
            let payload = make_payload(&rec.serial, rec.ai91.as_deref(), rec.ai92.as_deref());
            if let Err(e) = chunk.push(&payload, rec.at) {
                failure = Some(e);
                break;
            }
            if chunk.len() >= self.import_chunk
                && let Err(e) = stager.stage(&mut chunk, name)
            {
                failure = Some(e);
                break;
            }
        }
        if failure.is_none()
            && invalid == 0
            && let Err(e) = stager.stage(&mut chunk, name)
        {
            failure = Some(e);
        }
        if failure.is_none() && invalid > 0 {
            failure = Some(PoolError::InvalidSerials {
                count: invalid,
                examples: invalid_examples,
            });
        }
        if let Some(e) = failure {
            let staged_to = stager.cur;
            drop(stager);
            if let Err(clean) = self.remove_staged(&gtin, meta.next_seq) {
                tracing::error!(error = %clean, staged_to, "could not remove staged serials; they are removed at the next open");
            }
            return Err(e);
        }
        let report = ImportReport {
            import_id: self.next_import,
            gtin: gtin.clone(),
            read,
            imported: stager.cur - meta.next_seq,
            duplicates_in_pool: stager.dup_pool,
            duplicates_in_file: stager.dup_file,
            duplicate_examples: std::mem::take(&mut stager.dup_examples),
            source: name.to_string(),
        };
        let new_meta = GtinMeta {
            next_seq: stager.cur,
            next_sequential: next_sequential.unwrap_or(meta.next_sequential),
            ..meta
        };
        drop(stager);
        let mut ops = Ops::new();
        put_json(&mut ops, &k_gtin(&gtin), &new_meta);
        put_json(
            &mut ops,
            &ctl_key(b"p/", &[&report.import_id.to_be_bytes()]),
            &report,
        );
        ops.put(M_NEXT_IMPORT, &(self.next_import + 1).to_be_bytes());
        if let Some((mut rec, collection_id, digest, count)) = token {
            rec.received = Some(ReceivedCollection {
                collection_id,
                count,
                digest,
                report: report.clone(),
            });
            put_json(&mut ops, &k_token(&rec.token), &rec);
        }
        self.commit_durable(&mut ops, None)?;
        self.next_import += 1;
        tracing::info!(gtin = %gtin, imported = report.imported, duplicates_in_pool = report.duplicates_in_pool,
            duplicates_in_file = report.duplicates_in_file, source = name, "import committed");
        Ok(report)
    }

    /// Unallocated serials of a GTIN.
    pub fn available(&self, gtin: &str) -> Result<u64, PoolError> {
        let Some(meta) = self.gtin_meta(gtin)? else {
            return Ok(0);
        };
        let mut n = meta.next_seq - meta.reserved_upto.min(meta.next_seq);
        for o in self.overrides(gtin, meta.reserved_upto, meta.next_seq) {
            o?;
            n = n.saturating_sub(1);
        }
        Ok(n)
    }

    /// Refuse with InsufficientSerialNumbers unless `requested` serials are Unallocated.
    pub fn ensure_available(&self, gtin: &str, requested: u64) -> Result<(), PoolError> {
        let available = self.available(gtin)?;
        if available < requested {
            return Err(PoolError::InsufficientSerialNumbers {
                gtin: gtin.to_string(),
                requested,
                available,
                shortfall: requested - available,
            });
        }
        Ok(())
    }

    /// Counts per state for every GTIN (from the block ranges and the overrides).
    pub fn status(&self) -> Result<Vec<GtinStatus>, PoolError> {
        let mut out = Vec::new();
        for (gtin, meta) in self.gtins()? {
            let counts = self.counts(&gtin, &meta)?;
            out.push(GtinStatus {
                total: meta.next_seq,
                market: meta.market,
                states: SerialState::ALL
                    .iter()
                    .zip(counts.iter())
                    .map(|(s, n)| (s.name().to_string(), *n))
                    .collect(),
                gtin,
            });
        }
        Ok(out)
    }

    /// Counts per state (index = position in `SerialState::ALL`) by arithmetic on the
    /// block ranges, corrected by the overrides.
    fn counts(&self, gtin: &str, meta: &GtinMeta) -> Result<[u64; 9], PoolError> {
        let blocks = self.blocks(gtin)?;
        let mut c = [0i128; 9];
        let at = |s: SerialState| SerialState::ALL.iter().position(|x| *x == s).unwrap_or(0);
        c[at(SerialState::Unallocated)] +=
            i128::from(meta.next_seq) - i128::from(meta.reserved_upto);
        for b in &blocks {
            let enc = b.encoded_upto.clamp(b.start, b.end);
            c[at(SerialState::Encoded)] += i128::from(enc - b.start);
            let rest = if b.status == BlockStatus::Open {
                SerialState::Allocated
            } else {
                SerialState::SnInvalid
            };
            c[at(rest)] += i128::from(b.end - enc);
        }
        for o in self.overrides(gtin, 0, u64::MAX) {
            let (seq, st) = o?;
            let base = base_state(&blocks, meta, seq);
            c[at(base)] -= 1;
            c[at(st)] += 1;
        }
        let mut out = [0u64; 9];
        for (o, v) in out.iter_mut().zip(c) {
            *o = u64::try_from(v).map_err(|_| PoolError::Corrupt {
                key: format!("g/{gtin}"),
                reason: "state counts do not add up (negative count)".into(),
            })?;
        }
        Ok(out)
    }

    /// The seq of `serial` among the live serials of `gtin` (whose record is `meta`).
    fn seq_of(&self, gtin: &str, meta: &GtinMeta, serial: &str) -> Result<Option<u64>, PoolError> {
        let ik = layout::bucket_key(gtin, layout::bucket_of(serial.as_bytes()));
        let Some(v) = self.store.get(Space::Index, &ik)? else {
            return Ok(None);
        };
        let seq = layout::bucket_lookup(&ik, &v, serial.as_bytes())?;
        Ok(seq.filter(|s| *s < meta.next_seq))
    }

    fn state_at(&self, gtin: &str, meta: &GtinMeta, seq: u64) -> Result<SerialState, PoolError> {
        let ok = k_over(gtin, seq);
        if let Some(v) = self.store.get(Space::Ctl, &ok)? {
            return v
                .first()
                .and_then(|c| SerialState::from_code(*c))
                .ok_or_else(|| PoolError::Corrupt {
                    key: printable(&ok),
                    reason: "bad state code".into(),
                });
        }
        if seq >= meta.reserved_upto {
            return Ok(SerialState::Unallocated);
        }
        let probe = k_bidx(gtin, seq.saturating_add(1));
        let prefix = probe
            .get(..probe.len().saturating_sub(8))
            .unwrap_or_default();
        match self.store.get_lt(Space::Ctl, &probe)? {
            Some((k, v)) if k.starts_with(prefix) && k.len() == probe.len() => {
                let b = self.block_range(be_u64(&k, &v)?)?;
                if seq >= b.start && seq < b.end {
                    Ok(b.base_state(seq))
                } else {
                    Err(PoolError::Corrupt {
                        key: printable(&k),
                        reason: format!("no block covers seq {seq}"),
                    })
                }
            }
            _ => Err(PoolError::Corrupt {
                key: format!("k/{gtin}"),
                reason: format!("no block covers seq {seq}"),
            }),
        }
    }

    /// The state of one serial, `None` when it is not in the pool.
    pub fn state_of(&self, gtin: &str, serial: &str) -> Result<Option<SerialState>, PoolError> {
        let gtin = rules::normalise_gtin(gtin).map_err(PoolError::BadGtin)?;
        let Some(meta) = self.gtin_meta(&gtin)? else {
            return Ok(None);
        };
        match self.seq_of(&gtin, &meta, serial)? {
            Some(seq) => Ok(Some(self.state_at(&gtin, &meta, seq)?)),
            None => Ok(None),
        }
    }

    /// Move serials of a GTIN to `to` (after Encoded: Commissioned, LabelScrapped,
    /// Destroyed, Sampled; for Unallocated serials: SNInvalid), checked by
    /// [`transition`], in one durable commit. Returns to the site server go through
    /// [`Pool::return_unallocated`].
    pub fn set_state(
        &mut self,
        gtin: &str,
        serials: &[impl AsRef<str>],
        to: SerialState,
    ) -> Result<(), PoolError> {
        if to == SerialState::Returned {
            return Err(PoolError::Usage(
                "use return_unallocated to return serials".into(),
            ));
        }
        // The pool's own batch, kept between calls: a state change allocates nothing.
        let mut ops = std::mem::take(&mut self.ops);
        ops.clear();
        let r = self
            .override_ops(gtin, serials, to, &mut ops)
            .and_then(|_| self.commit_durable(&mut ops, None));
        self.ops = ops;
        r
    }

    /// Add to `ops` the overrides that move `serials` of `gtin` to `to`, each checked by
    /// [`transition`]; returns the GTIN-14. Allocates nothing unless it refuses.
    fn override_ops(
        &self,
        gtin: &str,
        serials: &[impl AsRef<str>],
        to: SerialState,
        ops: &mut Ops,
    ) -> Result<rules::Gtin14, PoolError> {
        let g14 = rules::gtin14(gtin).map_err(PoolError::BadGtin)?;
        let gtin = g14.as_str();
        let meta = self
            .gtin_meta(gtin)?
            .ok_or_else(|| PoolError::UnknownGtin(gtin.to_string()))?;
        for s in serials {
            let s = s.as_ref();
            let unknown = || PoolError::UnknownSerial {
                gtin: gtin.to_string(),
                serial: s.to_string(),
            };
            let seq = self.seq_of(gtin, &meta, s)?.ok_or_else(unknown)?;
            let from = self.state_at(gtin, &meta, seq)?;
            // Invalidating or returning is only offered for serials never reserved: a
            // reserved serial's fate belongs to its block.
            if matches!(to, SerialState::SnInvalid | SerialState::Returned)
                && from != SerialState::Unallocated
            {
                return Err(PoolError::Transition {
                    gtin: gtin.to_string(),
                    serial: s.to_string(),
                    source: TransitionError { from, to },
                });
            }
            transition(from, to).map_err(|source| PoolError::Transition {
                gtin: gtin.to_string(),
                serial: s.to_string(),
                source,
            })?;
            ops.put(&k_over(gtin, seq), &[to.code()]);
        }
        Ok(g14)
    }

    /// Return Unallocated serials to the site server (SNReturnUnallocated): they become
    /// Returned, with an audit record naming why. Returns the record id.
    pub fn return_unallocated(
        &mut self,
        gtin: &str,
        serials: &[&str],
        reason: &str,
    ) -> Result<u64, PoolError> {
        let mut ops = Ops::new();
        let gtin = self.override_ops(gtin, serials, SerialState::Returned, &mut ops)?;
        let id = self.next_import;
        let record =
            serde_json::json!({ "gtin": gtin.as_str(), "serials": serials, "reason": reason });
        put_json(&mut ops, &ctl_key(b"n/", &[&id.to_be_bytes()]), &record);
        ops.put(M_NEXT_IMPORT, &(id + 1).to_be_bytes());
        self.commit_durable(&mut ops, None)?;
        self.next_import += 1;
        Ok(id)
    }

    /// Closed blocks whose unused serials are SNInvalid and not yet acknowledged as
    /// reported to the site server.
    pub fn invalid_reports(&self) -> Result<Vec<InvalidReport>, PoolError> {
        let mut ids = Vec::new();
        for kv in self.scan_ctl(b"r/") {
            ids.push(tail_u64(&kv?.0)?);
        }
        let mut out = Vec::new();
        for id in ids {
            let b = self.block(id)?;
            let mut serials = Vec::new();
            let overridden: std::collections::HashSet<u64> = self
                .overrides(&b.gtin, b.encoded_upto, b.end)
                .map(|o| o.map(|(s, _)| s))
                .collect::<Result<_, _>>()?;
            self.walk_serials(&b.gtin, b.encoded_upto, b.end, |seq, p| {
                if !overridden.contains(&seq) {
                    serials.push(String::from_utf8_lossy(payload_serial(p)).to_string());
                }
                Ok(true)
            })?;
            out.push(InvalidReport {
                block: id,
                gtin: b.gtin,
                line: b.line,
                batch: b.batch,
                serials,
            });
        }
        Ok(out)
    }

    /// Record that the site server has received the SNInvalid report of `block`.
    pub fn ack_invalid_report(&mut self, block: u64) -> Result<(), PoolError> {
        if self.store.get(Space::Ctl, &k_report(block))?.is_none() {
            return Err(PoolError::Usage(format!(
                "block {block} has no pending SNInvalid report"
            )));
        }
        let mut ops = Ops::new();
        ops.del(&k_report(block));
        self.commit_durable(&mut ops, None)
    }

    /// Call `f(serial payload, state)` for every serial of a GTIN, in seq order.
    pub fn for_each(
        &self,
        gtin: &str,
        mut f: impl FnMut(&str, SerialState),
    ) -> Result<(), PoolError> {
        let gtin = rules::normalise_gtin(gtin).map_err(PoolError::BadGtin)?;
        let meta = self
            .gtin_meta(&gtin)?
            .ok_or_else(|| PoolError::UnknownGtin(gtin.clone()))?;
        let blocks = self.blocks(&gtin)?;
        let mut over = self.overrides(&gtin, 0, u64::MAX).peekable();
        self.walk_serials(&gtin, 0, meta.next_seq, |seq, v| {
            let mut st = base_state(&blocks, &meta, seq);
            while let Some(o) = over.peek() {
                match o {
                    Ok((s, _)) if *s < seq => {
                        over.next();
                    }
                    Ok((s, ost)) if *s == seq => {
                        st = *ost;
                        over.next();
                        break;
                    }
                    Ok(_) => break,
                    Err(_) => {
                        if let Some(Err(e)) = over.next() {
                            return Err(e);
                        }
                    }
                }
            }
            let text = String::from_utf8_lossy(v).replace(char::from(GS), "\t");
            f(&text, st);
            Ok(true)
        })
    }

    // ---- site-server request tokens ------------------------------------------------

    /// Start (or resume) a request for `count` serials of `gtin` to the site server:
    /// returns the persisted RequestToken to send. While a request of this GTIN has no
    /// collection yet, the same token is returned, so a retried request (after a crash,
    /// a timeout) carries the same token and the server answers it with the same
    /// collection.
    pub fn begin_request(&mut self, gtin: &str, count: u64) -> Result<TokenRecord, PoolError> {
        let gtin = rules::normalise_gtin(gtin).map_err(PoolError::BadGtin)?;
        if let Some(pending) = self
            .pending_requests()?
            .into_iter()
            .find(|t| t.gtin == gtin)
        {
            return Ok(pending);
        }
        let token = format!("{:032x}", rand::random::<u128>());
        let rec = TokenRecord {
            token: token.clone(),
            gtin,
            count,
            received: None,
        };
        let mut ops = Ops::new();
        put_json(&mut ops, &k_token(&token), &rec);
        self.commit_durable(&mut ops, None)?;
        Ok(rec)
    }

    /// Requests sent (or about to be) that have no collection yet.
    pub fn pending_requests(&self) -> Result<Vec<TokenRecord>, PoolError> {
        self.tokens()
            .map(|v| v.into_iter().filter(|t| t.received.is_none()).collect())
    }

    /// Every request token on record.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, PoolError> {
        let mut out = Vec::new();
        for kv in self.scan_ctl(b"t/") {
            let (k, v) = kv?;
            out.push(json(&k, &v)?);
        }
        Ok(out)
    }

    /// Receive an SNCollection answering one of our requests (`requestToken` must name
    /// it). The first time it is imported and recorded against the token in the same
    /// commit; the same collection again changes nothing; a different collection for a
    /// token that already has one is refused.
    pub fn receive_collection(
        &mut self,
        open: impl Fn() -> Result<Source, SourceError>,
        name: &str,
    ) -> Result<Received, PoolError> {
        let source = open()?;
        let header = source
            .header
            .clone()
            .ok_or_else(|| PoolError::Usage(format!("{name}: not an SNCollection document")))?;
        let token = header.request_token.clone().ok_or_else(|| {
            PoolError::Usage(format!("{name}: the SNCollection has no requestToken"))
        })?;
        let tk = k_token(&token);
        let rec: TokenRecord = match self.store.get(Space::Ctl, &tk)? {
            Some(v) => json(&tk, &v)?,
            None => {
                return Err(PoolError::Token {
                    token,
                    reason: "not a request this pool sent".into(),
                });
            }
        };
        // Digest of the collection's payloads, in order.
        let mut h = crc32fast::Hasher::new();
        let mut count = 0u64;
        for r in source.records {
            let r = r?;
            h.update(&make_payload(
                &r.serial,
                r.ai91.as_deref(),
                r.ai92.as_deref(),
            ));
            h.update(b"\n");
            count += 1;
        }
        let digest = h.finalize();
        if let Some(got) = &rec.received {
            if got.collection_id == header.id && got.digest == digest && got.count == count {
                return Ok(Received::AlreadyReceived(got.report.clone()));
            }
            return Err(PoolError::Token {
                token,
                reason: format!(
                    "already answered by collection `{}` ({} serials); refusing a different collection `{}` ({count} serials)",
                    got.collection_id, got.count, header.id
                ),
            });
        }
        if rules::normalise_gtin(&header.gtin).ok().as_deref() != Some(rec.gtin.as_str()) {
            return Err(PoolError::Token {
                token,
                reason: format!(
                    "requested GTIN {}, the collection is for {}",
                    rec.gtin, header.gtin
                ),
            });
        }
        let gtin = rec.gtin.clone();
        let report = self.import_inner(
            &gtin,
            None,
            open()?,
            name,
            Some((rec, header.id, digest, count)),
            None,
        )?;
        Ok(Received::Imported(report))
    }
}

/// The state of a seq before any override.
fn base_state(blocks: &[Block], meta: &GtinMeta, seq: u64) -> SerialState {
    if seq >= meta.reserved_upto {
        return SerialState::Unallocated;
    }
    let i = blocks.partition_point(|b| b.start <= seq);
    match i.checked_sub(1).and_then(|i| blocks.get(i)) {
        Some(b) if seq < b.end => b.base_state(seq),
        // Not covered by a block: verify reports this; count it as invalid.
        _ => SerialState::SnInvalid,
    }
}

#[cfg(test)]
mod tests;
