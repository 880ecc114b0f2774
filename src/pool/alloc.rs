//! The allocator: hands out the serials of one GTIN to one line and batch. It reserves
//! blocks (one durable commit per block: store flush + fsync, then the high-water mark)
//! and only then hands the block's serials out from memory, so a crash can lose at most
//! serials of a reserved block, which recovery makes SNInvalid; it can never hand one
//! out twice. It does not know printers: "Encoded" is whatever the caller reports with
//! [`Allocator::mark_encoded`].
//!
//! In steady state (between block reservations) handing out a serial and marking it
//! Encoded allocate nothing: a block's payloads are read once into a buffer the
//! allocator keeps from block to block, a [`Handed`] carries its payload inline, and
//! the block record is serialised into a buffer the pool keeps.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Block, BlockStatus, GS, M_NEXT_BLOCK, Ops, Pool, PoolError, SerialState, Space, Store,
    k_active, k_bidx, k_block, k_gtin, k_report, put_json, rules, write_json,
};

/// The longest payload the store holds (its length is one byte, see `layout`).
const PAYLOAD_MAX: usize = 255;

/// A stored payload, held inline so that handing a serial out never allocates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    len: u8,
    bytes: [u8; PAYLOAD_MAX],
}

impl Payload {
    /// `text` as a payload; `None` when it is longer than the store holds (255 bytes).
    pub fn new(text: &str) -> Option<Payload> {
        let len = u8::try_from(text.len()).ok()?;
        let mut bytes = [0u8; PAYLOAD_MAX];
        bytes
            .get_mut(..text.len())?
            .copy_from_slice(text.as_bytes());
        Some(Payload { len, bytes })
    }

    /// The payload text.
    pub fn as_str(&self) -> &str {
        // Built from a `&str` cut at its end: always UTF-8.
        std::str::from_utf8(self.bytes.get(..usize::from(self.len)).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl std::ops::Deref for Payload {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Payload {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Payload {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One serial handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handed {
    /// The block it came from.
    pub block: u64,
    /// Its sequence number in the GTIN's pool.
    pub seq: u64,
    /// The stored payload: the serial, then for Russia GS "91"key GS "92"crypto.
    pub payload: Payload,
}

impl Handed {
    /// The serial (AI 21).
    pub fn serial(&self) -> &str {
        self.payload.split(char::from(GS)).next().unwrap_or("")
    }

    /// The extra AIs stored with it (Russia: 91 and 92), as (AI, value).
    pub fn extra_ais(&self) -> Vec<(&str, &str)> {
        self.extra().collect()
    }

    /// The value of extra AI `ai` stored with it (Russia: "91", "92"), if any; unlike
    /// [`Handed::extra_ais`] it allocates nothing.
    pub fn extra_ai(&self, ai: &str) -> Option<&str> {
        self.extra().find(|(k, _)| *k == ai).map(|(_, v)| v)
    }

    fn extra(&self) -> impl Iterator<Item = (&str, &str)> {
        self.payload
            .split(char::from(GS))
            .skip(1)
            .map(|e| (e.get(..2).unwrap_or(""), e.get(2..).unwrap_or("")))
    }
}

/// Allocator settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatorConfig {
    /// Serials per durable reservation.
    pub block_size: u64,
    /// How many serials this batch (or request) will take in all; the last block is cut
    /// to it, and starting is refused when the pool cannot cover it. `None`: open-ended.
    pub quantity: Option<u64>,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            block_size: 1000,
            quantity: None,
        }
    }
}

/// The serials of the reserved block, in the order they are handed out: each seq with
/// where its payload ends in `text`. Kept from block to block (cleared, not freed).
#[derive(Default)]
struct Entries {
    seqs: Vec<(u64, usize)>,
    text: String,
}

impl Entries {
    fn clear(&mut self) {
        self.seqs.clear();
        self.text.clear();
    }

    fn push(&mut self, seq: u64, payload: &str) {
        self.text.push_str(payload);
        self.seqs.push((seq, self.text.len()));
    }

    fn len(&self) -> usize {
        self.seqs.len()
    }

    /// The seq of entry `i`.
    fn seq(&self, i: usize) -> Option<u64> {
        self.seqs.get(i).map(|e| e.0)
    }

    /// Entry `i`: its seq and payload.
    fn get(&self, i: usize) -> Option<(u64, &str)> {
        let (seq, end) = *self.seqs.get(i)?;
        let start = match i.checked_sub(1) {
            Some(j) => self.seqs.get(j)?.1,
            None => 0,
        };
        Some((seq, self.text.get(start..end)?))
    }
}

struct Active {
    block: Block,
    /// Entries of `Cursor::entries` handed out so far.
    pos: usize,
    /// The seq of the last serial handed out from `block`.
    handed_upto: Option<u64>,
}

/// What an allocator keeps apart from the pool it hands out from (moved between an
/// [`Allocator`] and a [`SharedAllocator`] without allocating).
#[derive(Default)]
struct Cursor {
    gtin: String,
    line: String,
    batch: String,
    cfg: AllocatorConfig,
    remaining: Option<u64>,
    active: Option<Active>,
    /// The serials of `active`'s block.
    entries: Entries,
}

/// Hands out serials of one GTIN for one line and batch.
pub struct Allocator<'p, S: Store> {
    pool: &'p mut Pool<S>,
    c: Cursor,
}

impl<S: Store> Pool<S> {
    /// Start handing out serials of `gtin` for `line` and `batch`. With a quantity, the
    /// start is refused (InsufficientSerialNumbers, naming the shortfall) when the pool
    /// cannot cover it.
    pub fn allocator(
        &mut self,
        gtin: &str,
        line: &str,
        batch: &str,
        cfg: AllocatorConfig,
    ) -> Result<Allocator<'_, S>, PoolError> {
        let gtin = rules::normalise_gtin(gtin).map_err(PoolError::BadGtin)?;
        if self.gtin_meta(&gtin)?.is_none() {
            return Err(PoolError::UnknownGtin(gtin));
        }
        if cfg.block_size == 0 {
            return Err(PoolError::Usage("block size must be at least 1".into()));
        }
        if let Some(q) = cfg.quantity {
            self.ensure_available(&gtin, q)?;
        }
        Ok(Allocator {
            pool: self,
            c: Cursor {
                gtin,
                line: line.to_string(),
                batch: batch.to_string(),
                remaining: cfg.quantity,
                cfg,
                active: None,
                entries: Entries::default(),
            },
        })
    }

    /// Close `b` (its unused tail becomes SNInvalid and is listed for the site server):
    /// mark it closed and add its writes to `ops`.
    fn close_ops(b: &mut Block, ops: &mut Ops) {
        b.status = BlockStatus::Closed;
        put_json(ops, &k_block(b.id), b);
        ops.del(&k_active(b.id));
        if b.encoded_upto < b.end {
            ops.put(&k_report(b.id), &[]);
        }
    }

    /// Reserve up to `want` Unallocated serials as one block, durably, closing `prev`
    /// in the same commit; its serials are put in `entries` (cleared first). Returns
    /// after the block is on disk and in the high-water mark.
    fn reserve(
        &mut self,
        gtin: &str,
        line: &str,
        batch: &str,
        want: u64,
        prev: Option<&mut Block>,
        entries: &mut Entries,
    ) -> Result<Block, PoolError> {
        entries.clear();
        let meta = self
            .gtin_meta(gtin)?
            .ok_or_else(|| PoolError::UnknownGtin(gtin.to_string()))?;
        let want_n = usize::try_from(want).unwrap_or(usize::MAX);
        {
            let mut over = self
                .overrides(gtin, meta.reserved_upto, meta.next_seq)
                .peekable();
            self.walk_serials(gtin, meta.reserved_upto, meta.next_seq, |seq, v| {
                if entries.len() >= want_n {
                    return Ok(false);
                }
                while let Some(o) = over.peek() {
                    match o {
                        Ok((s, _)) if *s < seq => {
                            over.next();
                        }
                        Ok((s, _)) => {
                            if *s == seq {
                                return Ok(true);
                            }
                            break;
                        }
                        Err(_) => {
                            if let Some(Err(e)) = over.next() {
                                return Err(e);
                            }
                        }
                    }
                }
                let text = std::str::from_utf8(v).map_err(|_| PoolError::Corrupt {
                    key: format!("{gtin} seq {seq}"),
                    reason: "serial is not UTF-8".into(),
                })?;
                entries.push(seq, text);
                Ok(true)
            })?;
        }
        let Some(last) = entries.len().checked_sub(1).and_then(|i| entries.seq(i)) else {
            return Err(PoolError::InsufficientSerialNumbers {
                gtin: gtin.to_string(),
                requested: want,
                available: 0,
                shortfall: want,
            });
        };
        let id = self.next_block;
        let block = Block {
            id,
            gtin: gtin.to_string(),
            start: meta.reserved_upto,
            end: last + 1,
            line: line.to_string(),
            batch: batch.to_string(),
            encoded_upto: meta.reserved_upto,
            status: BlockStatus::Open,
        };
        let new_meta = super::GtinMeta {
            reserved_upto: block.end,
            ..meta
        };
        let mut ops = std::mem::take(&mut self.ops);
        ops.clear();
        if let Some(prev) = prev {
            Pool::<S>::close_ops(prev, &mut ops);
        }
        put_json(&mut ops, &k_block(id), &block);
        ops.put(&k_bidx(gtin, block.start), &id.to_be_bytes());
        ops.put(&k_active(id), &[]);
        put_json(&mut ops, &k_gtin(gtin), &new_meta);
        ops.put(M_NEXT_BLOCK, &(id + 1).to_be_bytes());
        let committed = self.commit_durable(&mut ops, Some(id));
        self.ops = ops;
        committed?;
        self.next_block = id + 1;
        tracing::debug!(
            block = id,
            gtin,
            start = block.start,
            end = block.end,
            "block reserved"
        );
        Ok(block)
    }
}

impl<S: Store> Allocator<'_, S> {
    /// The next serial. Reserves a new block (durably) when the current one is used up.
    pub fn next_serial(&mut self) -> Result<Handed, PoolError> {
        if self.c.remaining == Some(0) {
            return Err(PoolError::Usage(format!(
                "all {} serials of this allocation were handed out",
                self.c.cfg.quantity.unwrap_or(0)
            )));
        }
        let c = &mut self.c;
        let exhausted = c.active.as_ref().is_none_or(|a| a.pos >= c.entries.len());
        if exhausted {
            let want = c
                .remaining
                .map_or(c.cfg.block_size, |r| r.min(c.cfg.block_size));
            let mut prev = c.active.take();
            let block = self.pool.reserve(
                &c.gtin,
                &c.line,
                &c.batch,
                want,
                prev.as_mut().map(|a| &mut a.block),
                &mut c.entries,
            );
            let block = match block {
                Ok(b) => b,
                Err(e) => {
                    c.entries.clear();
                    // Refused before its commit (e.g. the pool ran dry): the used-up
                    // block stays this allocator's, to be closed with it. After a
                    // failed commit it is left to recovery, as the store may hold it
                    // closed.
                    if let Some(mut p) = prev.filter(|p| p.block.status == BlockStatus::Open) {
                        p.pos = 0;
                        c.active = Some(p);
                    }
                    return Err(e);
                }
            };
            c.active = Some(Active {
                block,
                pos: 0,
                handed_upto: None,
            });
        }
        let a = c
            .active
            .as_mut()
            .ok_or_else(|| PoolError::Usage("no active block".into()))?;
        let (seq, text) = c
            .entries
            .get(a.pos)
            .ok_or_else(|| PoolError::Usage("no serial left in the block".into()))?;
        let payload = Payload::new(text).ok_or_else(|| PoolError::Corrupt {
            key: format!("{} seq {seq}", c.gtin),
            reason: format!("stored payload is {} bytes long", text.len()),
        })?;
        a.pos += 1;
        a.handed_upto = Some(seq);
        if let Some(r) = c.remaining.as_mut() {
            *r -= 1;
        }
        Ok(Handed {
            block: a.block.id,
            seq,
            payload,
        })
    }

    /// Report that `h` (and every serial handed out before it from its block) was sent
    /// to the printer: they become Encoded. Written to the store without waiting for
    /// the disk: a crash can at worst turn them SNInvalid, never Unallocated.
    pub fn mark_encoded(&mut self, h: &Handed) -> Result<(), PoolError> {
        let a = self
            .c
            .active
            .as_mut()
            .filter(|a| a.block.id == h.block)
            .ok_or_else(|| {
                PoolError::Usage(format!(
                    "serial `{}` is not from the current block",
                    h.serial()
                ))
            })?;
        if a.handed_upto.is_none_or(|last| h.seq > last) {
            return Err(PoolError::Usage(format!(
                "serial `{}` was not handed out yet",
                h.serial()
            )));
        }
        if h.seq + 1 > a.block.encoded_upto {
            a.block.encoded_upto = h.seq + 1;
            // Serialised into the pool's reused buffer: no allocation of ours.
            let pool = &mut *self.pool;
            pool.scratch.clear();
            write_json(&mut pool.scratch, &a.block);
            pool.store
                .put(Space::Ctl, &k_block(a.block.id), &pool.scratch)?;
        }
        Ok(())
    }

    /// Serials reserved but not yet handed out.
    pub fn in_hand(&self) -> u64 {
        self.c
            .active
            .as_ref()
            .map_or(0, |a| self.c.entries.len().saturating_sub(a.pos) as u64)
    }

    /// The state the pool holds for the current block's serials (Allocated until
    /// marked Encoded).
    pub fn current_block(&self) -> Option<&Block> {
        self.c.active.as_ref().map(|a| &a.block)
    }

    /// Unallocated serials left in the pool for this GTIN (plus those in hand).
    pub fn available(&self) -> Result<u64, PoolError> {
        Ok(self.pool.available(&self.c.gtin)? + self.in_hand())
    }

    /// The pool this allocator hands out from, for moving serials it already handed
    /// out to their final states (Commissioned, LabelScrapped, ...) during the batch.
    pub fn pool_mut(&mut self) -> &mut Pool<S> {
        self.pool
    }

    /// Close the current block durably: serials handed out but not marked Encoded, and
    /// those never handed out, become SNInvalid and are listed for the site server.
    pub fn close(mut self) -> Result<(), PoolError> {
        self.close_inner()
    }

    /// Let go of the pool, keeping the open block (for [`SharedAllocator`]).
    fn detach(mut self) -> Cursor {
        std::mem::take(&mut self.c)
    }

    fn close_inner(&mut self) -> Result<(), PoolError> {
        if let Some(mut a) = self.c.active.take() {
            self.c.entries.clear();
            let mut ops = Ops::new();
            Pool::<S>::close_ops(&mut a.block, &mut ops);
            self.pool.commit_durable(&mut ops, None)?;
            let unused = a.block.end - a.block.encoded_upto;
            if unused > 0 {
                tracing::info!(block = a.block.id, unused, state = %SerialState::SnInvalid, "block closed with unused serials");
            }
        }
        Ok(())
    }
}

impl<S: Store> Drop for Allocator<'_, S> {
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            tracing::error!(error = %e, "closing the allocator's block failed; recovery will invalidate it at the next open");
        }
    }
}

/// A pool shared between threads: the line's printer thread hands out unit serials
/// from it while the aggregation's case station takes case serials and checks unit
/// states. Each use locks it for that one operation (uncontended: no allocation, a
/// few tens of nanoseconds).
pub type SharedPool<S = super::SledStore> = Arc<Mutex<Pool<S>>>;

/// Lock a [`SharedPool`] for one operation. A poisoned lock (a thread panicked while it
/// held the pool, maybe mid-change) is refused rather than used.
pub fn lock<S: Store>(pool: &SharedPool<S>) -> Result<MutexGuard<'_, Pool<S>>, PoolError> {
    pool.lock().map_err(|_| {
        PoolError::Usage(
            "the serial pool's lock is poisoned (a thread failed while using it): restart linectl"
                .into(),
        )
    })
}

/// An [`Allocator`] over a [`SharedPool`]: the same durable hand-out, the pool locked
/// only for each call, so other users of the pool are not kept out for a whole batch.
/// Dropping it closes the open block like an [`Allocator`].
pub struct SharedAllocator<S: Store = super::SledStore> {
    pool: SharedPool<S>,
    c: Cursor,
}

impl<S: Store> SharedAllocator<S> {
    /// [`Pool::allocator`] on the shared `pool`.
    pub fn new(
        pool: &SharedPool<S>,
        gtin: &str,
        line: &str,
        batch: &str,
        cfg: AllocatorConfig,
    ) -> Result<SharedAllocator<S>, PoolError> {
        let c = lock(pool)?.allocator(gtin, line, batch, cfg)?.detach();
        Ok(SharedAllocator {
            pool: pool.clone(),
            c,
        })
    }

    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Allocator<'_, S>) -> Result<T, PoolError>,
    ) -> Result<T, PoolError> {
        let pool = self.pool.clone();
        let mut g = lock(&pool)?;
        let mut a = Allocator {
            pool: &mut g,
            c: std::mem::take(&mut self.c),
        };
        let r = f(&mut a);
        self.c = a.detach();
        r
    }

    /// [`Allocator::next_serial`].
    pub fn next_serial(&mut self) -> Result<Handed, PoolError> {
        self.with(|a| a.next_serial())
    }

    /// [`Allocator::mark_encoded`].
    pub fn mark_encoded(&mut self, h: &Handed) -> Result<(), PoolError> {
        self.with(|a| a.mark_encoded(h))
    }

    /// [`Allocator::available`].
    pub fn available(&mut self) -> Result<u64, PoolError> {
        self.with(|a| a.available())
    }

    /// The pool, locked (for moving handed-out serials to their final states).
    pub fn pool(&self) -> Result<MutexGuard<'_, Pool<S>>, PoolError> {
        lock(&self.pool)
    }

    /// [`Allocator::close`].
    pub fn close(mut self) -> Result<(), PoolError> {
        self.with(|a| a.close_inner())
    }
}

impl<S: Store> Drop for SharedAllocator<S> {
    fn drop(&mut self) {
        if self.c.active.is_some()
            && let Err(e) = self.with(|a| a.close_inner())
        {
            tracing::error!(error = %e, "closing the allocator's block failed; recovery will invalidate it at the next open");
        }
    }
}
