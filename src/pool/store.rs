//! The storage the pool sits on: a small ordered key-value trait ([`Store`]) and its sled
//! implementation ([`SledStore`]). The trait has three key spaces: `Ctl` (every state
//! record; the only space with atomic multi-key batches), `Serials` and `Index` (whose
//! values the pool encodes, see `layout.rs`), plus format 1's two spaces, read only to
//! migrate an old store. It owns
//! opening sled safely (under `catch_unwind`, sled 0.34 panics on some damaged files),
//! making writes durable (sled `flush()` plus our own `fsync`, since sled's flush is only
//! `sync_file_range` on Linux), and turning every sled error into a fatal
//! [`StoreError`]. It knows nothing about serials, blocks or states.

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// sled tree of the Serials space (format 2; format 1 used `serials`).
const SERIALS_TREE: &str = "bundles";
/// sled tree of the Index space (format 2; format 1 used `index`).
const INDEX_TREE: &str = "buckets";

/// Format 1's trees.
const LEGACY_SERIALS_TREE: &str = "serials";
const LEGACY_INDEX_TREE: &str = "index";

/// One of the store's key spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// State records: GTIN metadata, blocks, overrides, tokens, imports, counters.
    Ctl,
    /// Serial payloads in bundles of consecutive seqs (see `layout`).
    Serials,
    /// The duplicate index in hash buckets (see `layout`).
    Index,
    /// Format 1's serials (`gtin ++ seq` → payload), present only in a store written
    /// by format 1; read once by the migration.
    LegacySerials,
    /// Format 1's index (`gtin ++ serial` → seq); present only in a format-1 store.
    LegacyIndex,
}

/// One write of an atomic [`Store::commit`], borrowed from an [`Ops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Set `key` to `value`.
    Put(&'a [u8], &'a [u8]),
    /// Remove `key`.
    Del(&'a [u8]),
}

/// The writes of one atomic [`Store::commit`], in order. Keys and values are copied into
/// one byte buffer, so a batch kept and [`Ops::clear`]ed between commits allocates
/// nothing once its buffers have grown to the largest batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ops {
    bytes: Vec<u8>,
    /// Per write: where its key ends in `bytes` and, for a put, where its value ends
    /// (each write starts where the previous one ended).
    ends: Vec<(usize, Option<usize>)>,
}

impl Ops {
    /// An empty batch.
    pub fn new() -> Ops {
        Ops::default()
    }

    /// Set `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.put_with(key, |b| b.extend_from_slice(value));
    }

    /// Set `key` to what `write` appends to the buffer it is given (e.g. a record
    /// serialised in place).
    pub fn put_with(&mut self, key: &[u8], write: impl FnOnce(&mut Vec<u8>)) {
        self.bytes.extend_from_slice(key);
        let k = self.bytes.len();
        write(&mut self.bytes);
        self.ends.push((k, Some(self.bytes.len())));
    }

    /// Remove `key`.
    pub fn del(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push((self.bytes.len(), None));
    }

    /// Forget every write, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// No writes.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The number of writes.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The writes, in order.
    pub fn iter(&self) -> impl Iterator<Item = Op<'_>> + '_ {
        let mut at = 0usize;
        self.ends.iter().map(move |&(k, v)| {
            let key = self.bytes.get(at..k).unwrap_or_default();
            match v {
                Some(v) => {
                    at = v;
                    Op::Put(key, self.bytes.get(k..v).unwrap_or_default())
                }
                None => {
                    at = k;
                    Op::Del(key)
                }
            }
        })
    }
}

/// A storage failure. All are fatal for the operation that met them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be opened; the files are damaged or unreadable.
    #[error("cannot open the serial store at {path}: {reason}")]
    Open {
        /// The store directory.
        path: PathBuf,
        /// What sled reported (an error or a panic message).
        reason: String,
    },
    /// A read or write failed (I/O error, full disk, corruption met while reading).
    #[error("serial store {op} failed: {reason}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        reason: String,
    },
}

/// The storage the pool needs: ordered keys, range scans, an atomic batch on `Ctl`,
/// compare-and-swap for the index, and a way to make everything written so far durable.
/// Values are handed out as the store holds them ([`Store::Value`], sled's
/// reference-counted `IVec`), never copied into new vectors.
pub trait Store {
    /// A stored key or value as the store hands it out.
    type Value: std::ops::Deref<Target = [u8]> + AsRef<[u8]> + std::fmt::Debug;
    /// An iterator over a key range; every `Err` is fatal.
    type Scan<'a>: Iterator<Item = Result<(Self::Value, Self::Value), StoreError>>
    where
        Self: 'a;
    /// Read one key.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Self::Value>, StoreError>;
    /// Write one key (not durable until [`Store::make_durable`]).
    fn put(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Remove one key.
    fn del(&self, space: Space, key: &[u8]) -> Result<(), StoreError>;
    /// Set `key` to `new` only if it currently holds `old`; on a mismatch return the
    /// current value as `Err`-free `Some(current)`.
    #[allow(clippy::type_complexity)]
    fn cas(
        &self,
        space: Space,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Self::Value>>, StoreError>;
    /// The greatest key strictly below `key`, with its value.
    #[allow(clippy::type_complexity)]
    fn get_lt(
        &self,
        space: Space,
        key: &[u8],
    ) -> Result<Option<(Self::Value, Self::Value)>, StoreError>;
    /// Keys in `[start, end)`, in order.
    fn scan<'a>(&'a self, space: Space, start: &[u8], end: &[u8]) -> Self::Scan<'a>;
    /// Apply `ops` to `Ctl` atomically (all or none survive a crash).
    fn commit(&self, ops: &Ops) -> Result<(), StoreError>;
    /// Make every write so far durable against power loss.
    fn make_durable(&self) -> Result<(), StoreError>;
    /// Bytes on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}

/// Tuning for the sled store.
#[derive(Debug, Clone)]
pub struct SledConfig {
    /// sled page-cache size in bytes.
    pub cache_bytes: u64,
}

impl Default for SledConfig {
    fn default() -> Self {
        SledConfig {
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The sled implementation of [`Store`].
pub struct SledStore {
    db: sled::Db,
    ctl: sled::Tree,
    serials: sled::Tree,
    index: sled::Tree,
    /// Format 1's `serials` and `index` trees, when the store has them.
    legacy: Option<(sled::Tree, sled::Tree)>,
    /// sled's data file, held open to `fsync` it after sled's `flush()`.
    data_file: File,
}

fn io_err(op: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |e| StoreError::Io {
        op,
        reason: e.to_string(),
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Move sled's snapshot files (only `*.generating` ones, or all) into
/// `quarantine/` inside the store directory; returns what was moved.
fn quarantine_snapshots(path: &Path, only_generating: bool) -> std::io::Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    let q = path.join("quarantine");
    for e in std::fs::read_dir(path)? {
        let p = e?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.starts_with("snap.") && (!only_generating || name.ends_with(".generating")) {
            std::fs::create_dir_all(&q)?;
            let to = q.join(format!("{name}.{}", std::process::id()));
            std::fs::rename(&p, &to)?;
            moved.push(to);
        }
    }
    if !moved.is_empty() {
        File::open(path)?.sync_all()?;
    }
    Ok(moved)
}

impl SledStore {
    /// Open (or create, when `create` is true) the sled store in `path`. A panic inside
    /// sled while opening damaged files is caught and returned as [`StoreError::Open`].
    pub fn open(path: &Path, create: bool, cfg: &SledConfig) -> Result<SledStore, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if !create && !path.join("db").is_file() {
            return Err(open_err("the data file `db` is missing".into()));
        }
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cfg.cache_bytes)
            .flush_every_ms(Some(500));
        // Default mode (LowSpace). `Mode::HighThroughput` imported ~25% faster here but
        // is not what the crash and damage tests were run against.
        let try_open = || match catch_unwind(AssertUnwindSafe(|| -> Result<_, sled::Error> {
            let db = config.open()?;
            let ctl = db.open_tree("ctl")?;
            let serials = db.open_tree(SERIALS_TREE)?;
            let index = db.open_tree(INDEX_TREE)?;
            let names = db.tree_names();
            let legacy = if names.iter().any(|n| n == LEGACY_SERIALS_TREE.as_bytes()) {
                Some((
                    db.open_tree(LEGACY_SERIALS_TREE)?,
                    db.open_tree(LEGACY_INDEX_TREE)?,
                ))
            } else {
                None
            };
            Ok((db, ctl, serials, index, legacy))
        })) {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(e.to_string()),
            Err(p) => Err(format!("sled panicked: {}", panic_text(&p))),
        };
        // A SIGKILL while sled writes a snapshot can leave a snapshot sled then refuses
        // ("corrupt snapshot file"); the log still holds everything. Move snapshots
        // aside (never delete them: first the one being generated, then all) and let
        // sled rebuild from the log. Whatever comes back is checked against the
        // high-water mark by the pool, so a store that lost writes is still refused.
        let mut opened = try_open();
        for only_generating in [true, false] {
            let Err(first) = &opened else { break };
            let moved = quarantine_snapshots(path, only_generating)
                .map_err(|e| open_err(format!("{first}; moving snapshots aside failed: {e}")))?;
            if moved.is_empty() {
                continue;
            }
            tracing::warn!(store = %path.display(), error = %first, moved = ?moved,
                "sled refused to open; snapshots moved aside, rebuilding from the log");
            opened = try_open().map_err(|e| format!("{first}; without the snapshots: {e}"));
        }
        let (db, ctl, serials, index, legacy) = opened.map_err(open_err)?;
        let data_file = File::open(path.join("db"))
            .map_err(|e| open_err(format!("cannot open data file for fsync: {e}")))?;
        Ok(SledStore {
            db,
            ctl,
            serials,
            index,
            legacy,
            data_file,
        })
    }

    fn tree(&self, space: Space) -> Result<&sled::Tree, StoreError> {
        let legacy = || StoreError::Io {
            op: "open",
            reason: "the store has no format-1 trees".into(),
        };
        Ok(match space {
            Space::Ctl => &self.ctl,
            Space::Serials => &self.serials,
            Space::Index => &self.index,
            Space::LegacySerials => &self.legacy.as_ref().ok_or_else(legacy)?.0,
            Space::LegacyIndex => &self.legacy.as_ref().ok_or_else(legacy)?.1,
        })
    }
}

/// Run `f`, a call into sled, marked as third-party code for allocation accounting
/// (`crate::pipeline::probe`; no cost beyond two thread-local writes).
fn in_sled<R>(f: impl FnOnce() -> R) -> R {
    crate::pipeline::probe::inside(crate::pipeline::probe::Inside::Sled, f)
}

/// A range scan of the sled store (or the error that kept it from starting).
pub struct SledScan {
    iter: Result<sled::Iter, Option<StoreError>>,
}

impl Iterator for SledScan {
    type Item = Result<(sled::IVec, sled::IVec), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.iter {
            Ok(iter) => in_sled(|| iter.next()).map(|r| r.map_err(io_err("scan"))),
            Err(e) => e.take().map(Err),
        }
    }
}

impl Store for SledStore {
    type Value = sled::IVec;
    type Scan<'a> = SledScan;

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        let tree = self.tree(space)?;
        in_sled(|| tree.get(key)).map_err(io_err("read"))
    }

    fn put(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let tree = self.tree(space)?;
        in_sled(|| tree.insert(key, value)).map_err(io_err("write"))?;
        Ok(())
    }

    fn del(&self, space: Space, key: &[u8]) -> Result<(), StoreError> {
        let tree = self.tree(space)?;
        in_sled(|| tree.remove(key)).map_err(io_err("remove"))?;
        Ok(())
    }

    fn cas(
        &self,
        space: Space,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<sled::IVec>>, StoreError> {
        let tree = self.tree(space)?;
        match in_sled(|| tree.compare_and_swap(key, old, new)).map_err(io_err("write"))? {
            Ok(()) => Ok(Ok(())),
            Err(e) => Ok(Err(e.current)),
        }
    }

    fn get_lt(
        &self,
        space: Space,
        key: &[u8],
    ) -> Result<Option<(sled::IVec, sled::IVec)>, StoreError> {
        let tree = self.tree(space)?;
        in_sled(|| tree.get_lt(key)).map_err(io_err("read"))
    }

    fn scan(&self, space: Space, start: &[u8], end: &[u8]) -> SledScan {
        SledScan {
            iter: self
                .tree(space)
                .map(|tree| in_sled(|| tree.range(start..end)))
                .map_err(Some),
        }
    }

    fn commit(&self, ops: &Ops) -> Result<(), StoreError> {
        in_sled(|| {
            let mut batch = sled::Batch::default();
            for op in ops.iter() {
                match op {
                    Op::Put(k, v) => batch.insert(k, v),
                    Op::Del(k) => batch.remove(k),
                }
            }
            self.ctl.apply_batch(batch)
        })
        .map_err(io_err("commit"))
    }

    fn make_durable(&self) -> Result<(), StoreError> {
        in_sled(|| self.db.flush()).map_err(io_err("flush"))?;
        self.data_file.sync_all().map_err(|e| StoreError::Io {
            op: "fsync",
            reason: e.to_string(),
        })
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(io_err("size"))
    }
}
