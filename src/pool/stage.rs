//! Staging an import in the bundled layout (see `layout`): serials are written past the
//! GTIN's `next_seq`, invisible until the import's commit moves `next_seq`, and
//! duplicates (within the file, against the pool) are rejected exactly through the
//! hash-bucketed index. It also removes what an import staged but never committed.
//! It does not validate serials against the market or commit anything: the importer
//! in `mod.rs` does.
//!
//! An import is cut into chunks. Per chunk: (1) sort the chunk by (hash, serial, line)
//! and read each touched index bucket once to mark duplicates; (2) give the new serials
//! seqs in file order and write them as bundles; (3) merge them into their index
//! buckets, one read-modify-write per touched bucket. Bundles are written before the
//! index entries that point at them, so whatever a crash leaves past `next_seq` is
//! found by walking the bundles from `next_seq` on.

use std::collections::BTreeSet;

use super::layout::{
    BUNDLE, BucketEntry, bucket_entries, bucket_find, bucket_key, bucket_of, bucket_of_hash,
    bundle_key, bundle_of, bundle_payloads, bundle_prefix_len, bundle_start, encode_bucket, hash64,
    push_payload,
};
use super::{EXAMPLES, PoolError, Space, Store, payload_serial, tail_u64};

/// Not yet decided (before pass 1) / new serial (after pass 1, before seqs).
const FATE_NEW: u64 = u64::MAX;
/// Already in the pool.
const FATE_DUP_POOL: u64 = u64::MAX - 1;
/// Earlier in the same import.
const FATE_DUP_FILE: u64 = u64::MAX - 2;

/// One serial of a chunk; its payload lives in the chunk's arena.
struct Item {
    hash: u64,
    off: usize,
    plen: u8,
    slen: u8,
    at: u64,
    /// A `FATE_*` value, or the seq given to it.
    fate: u64,
}

/// Serials read from a source, waiting to be staged.
#[derive(Default)]
pub(super) struct Chunk {
    arena: Vec<u8>,
    items: Vec<Item>,
}

fn serial_of<'a>(arena: &'a [u8], it: &Item) -> &'a [u8] {
    arena
        .get(it.off..it.off + usize::from(it.slen))
        .unwrap_or_default()
}

fn payload_of<'a>(arena: &'a [u8], it: &Item) -> &'a [u8] {
    arena
        .get(it.off..it.off + usize::from(it.plen))
        .unwrap_or_default()
}

impl Chunk {
    /// Add a serial (`payload` starts with it) read at line/item `at`.
    pub(super) fn push(&mut self, payload: &[u8], at: u64) -> Result<(), PoolError> {
        let serial = payload_serial(payload);
        let too_long = || {
            PoolError::Usage(format!(
                "line {at}: `{}` is {} bytes long; the store holds at most 255",
                String::from_utf8_lossy(payload),
                payload.len()
            ))
        };
        let plen = u8::try_from(payload.len()).map_err(|_| too_long())?;
        let slen = u8::try_from(serial.len()).map_err(|_| too_long())?;
        self.items.push(Item {
            hash: hash64(serial),
            off: self.arena.len(),
            plen,
            slen,
            at,
            fate: FATE_NEW,
        });
        self.arena.extend_from_slice(payload);
        Ok(())
    }

    /// Serials in the chunk.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    fn clear(&mut self) {
        self.arena.clear();
        self.items.clear();
    }
}

/// Writes serials past a GTIN's `next_seq`, rejecting duplicates through the index.
pub(super) struct Stager<'a, S: Store> {
    store: &'a S,
    gtin: &'a str,
    /// The GTIN's `next_seq` when the import began.
    pub(super) start: u64,
    /// The next seq to give.
    pub(super) cur: u64,
    pub(super) dup_pool: u64,
    pub(super) dup_file: u64,
    pub(super) dup_examples: Vec<String>,
    /// The entries of bundle `bundle_of(cur)` so far.
    tail: Vec<u8>,
}

impl<'a, S: Store> Stager<'a, S> {
    /// Stage after `start` (the GTIN's `next_seq`; the store must hold nothing staged
    /// past it, see [`remove_staged`]).
    pub(super) fn new(store: &'a S, gtin: &'a str, start: u64) -> Result<Self, PoolError> {
        let mut tail = Vec::new();
        let have = start % BUNDLE;
        if have != 0 {
            let k = bundle_key(gtin, bundle_of(start));
            let v = store
                .get(Space::Serials, &k)?
                .ok_or_else(|| PoolError::Corrupt {
                    key: super::printable(&k),
                    reason: format!(
                        "bundle of seqs {}.. is missing",
                        bundle_start(bundle_of(start))
                    ),
                })?;
            let len = bundle_prefix_len(&k, &v, have as usize)?;
            tail.extend_from_slice(v.get(..len).unwrap_or_default());
        }
        Ok(Stager {
            store,
            gtin,
            start,
            cur: start,
            dup_pool: 0,
            dup_file: 0,
            dup_examples: Vec::new(),
            tail,
        })
    }

    /// Stage a chunk and empty it. `name` names the source in duplicate examples.
    pub(super) fn stage(&mut self, chunk: &mut Chunk, name: &str) -> Result<(), PoolError> {
        if chunk.items.is_empty() {
            return Ok(());
        }
        let arena = &chunk.arena;
        let items = &mut chunk.items;
        let n = u32::try_from(items.len())
            .map_err(|_| PoolError::Usage("import chunk too large".into()))?;
        let mut order: Vec<u32> = (0..n).collect();
        {
            let items: &[Item] = items;
            let get = |i: u32| items.get(i as usize);
            order.sort_unstable_by(|&a, &b| match (get(a), get(b)) {
                (Some(x), Some(y)) => x
                    .hash
                    .cmp(&y.hash)
                    .then_with(|| serial_of(arena, x).cmp(serial_of(arena, y)))
                    .then(a.cmp(&b)),
                _ => a.cmp(&b),
            });
        }
        // Pass 1: duplicates, one bucket read each.
        let groups = bucket_groups(&order, items);
        for &(from, to) in &groups {
            let group = order.get(from..to).unwrap_or_default();
            let Some(first) = group.first().and_then(|&i| items.get(i as usize)) else {
                continue;
            };
            let key = bucket_key(self.gtin, bucket_of_hash(first.hash));
            let stored = self.store.get(Space::Index, &key)?;
            let entries = match &stored {
                Some(v) => bucket_entries(&key, v)?,
                None => Vec::new(),
            };
            let mut prev: Option<&[u8]> = None;
            for &i in group {
                let Some(it) = items.get_mut(i as usize) else {
                    continue;
                };
                let s = serial_of(arena, it);
                // Already in the pool wins over "earlier in the file" (as in format 1).
                it.fate = match bucket_find(&entries, s) {
                    Some(p) if p < self.start => FATE_DUP_POOL,
                    Some(_) => FATE_DUP_FILE,
                    None if prev == Some(s) => FATE_DUP_FILE,
                    None => FATE_NEW,
                };
                prev = Some(s);
            }
        }
        // Pass 2: seqs in file order, bundles.
        for it in items.iter_mut() {
            match it.fate {
                FATE_NEW => {
                    it.fate = self.cur;
                    push_payload(&mut self.tail, payload_of(arena, it))?;
                    self.cur += 1;
                    if self.cur.is_multiple_of(BUNDLE) {
                        let k = bundle_key(self.gtin, bundle_of(self.cur - 1));
                        self.store.put(Space::Serials, &k, &self.tail)?;
                        self.tail.clear();
                    }
                }
                fate => {
                    let in_pool = fate == FATE_DUP_POOL;
                    if in_pool {
                        self.dup_pool += 1;
                    } else {
                        self.dup_file += 1;
                    }
                    if self.dup_examples.len() < EXAMPLES {
                        self.dup_examples.push(format!(
                            "{name}: {}: `{}` {}",
                            it.at,
                            String::from_utf8_lossy(serial_of(arena, it)),
                            if in_pool {
                                "is already in the pool"
                            } else {
                                "appears earlier in the file"
                            }
                        ));
                    }
                }
            }
        }
        if !self.tail.is_empty() {
            let k = bundle_key(self.gtin, bundle_of(self.cur));
            self.store.put(Space::Serials, &k, &self.tail)?;
        }
        // Pass 3: index buckets, one read-modify-write each.
        let mut new: Vec<BucketEntry<'_>> = Vec::new();
        for &(from, to) in &groups {
            new.clear();
            let mut bucket = None;
            for &i in order.get(from..to).unwrap_or_default() {
                if let Some(it) = items.get(i as usize)
                    && it.fate < FATE_DUP_FILE
                {
                    bucket = Some(bucket_of_hash(it.hash));
                    new.push((serial_of(arena, it), it.fate));
                }
            }
            let Some(bucket) = bucket else { continue };
            merge_into_bucket(self.store, self.gtin, bucket, &mut new)?;
        }
        chunk.clear();
        Ok(())
    }
}

/// `[from, to)` ranges of `order` with the same bucket.
fn bucket_groups(order: &[u32], items: &[Item]) -> Vec<(usize, usize)> {
    let bucket = |i: usize| {
        order
            .get(i)
            .and_then(|&o| items.get(o as usize))
            .map(|it| bucket_of_hash(it.hash))
    };
    let mut out = Vec::new();
    let mut from = 0;
    while from < order.len() {
        let b = bucket(from);
        let mut to = from + 1;
        while to < order.len() && bucket(to) == b {
            to += 1;
        }
        out.push((from, to));
        from = to;
    }
    out
}

/// Add `new` entries (serials not yet in the bucket) to index bucket `bucket` of `gtin`.
pub(super) fn merge_into_bucket<S: Store>(
    store: &S,
    gtin: &str,
    bucket: u16,
    new: &mut [BucketEntry<'_>],
) -> Result<(), PoolError> {
    new.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let key = bucket_key(gtin, bucket);
    let stored = store.get(Space::Index, &key)?;
    let old = match &stored {
        Some(v) => bucket_entries(&key, v)?,
        None => Vec::new(),
    };
    let mut merged = Vec::with_capacity(old.len() + new.len());
    let (mut a, mut b) = (old.into_iter().peekable(), new.iter().copied().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                return Err(PoolError::Corrupt {
                    key: super::printable(&key),
                    reason: format!(
                        "serial `{}` would be indexed twice (seqs {} and {})",
                        String::from_utf8_lossy(x.0),
                        x.1,
                        y.1
                    ),
                });
            }
            (Some(x), Some(y)) if x.0 < y.0 => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        merged.extend(next);
    }
    store.put(Space::Index, &key, &encode_bucket(merged)?)?;
    Ok(())
}

/// Remove what was staged at or past seq `from` of `gtin` (an import that never
/// committed): trim the bundle holding `from`, delete the bundles after it, and drop
/// index entries at or past `from` from every bucket a staged serial hashes to.
/// Returns how many serials were removed.
pub(super) fn remove_staged<S: Store>(store: &S, gtin: &str, from: u64) -> Result<u64, PoolError> {
    let mut removed = 0u64;
    let mut touched = BTreeSet::new();
    let mut deletes = Vec::new();
    let mut trim: Option<(Vec<u8>, Vec<u8>)> = None;
    for kv in store.scan(
        Space::Serials,
        &bundle_key(gtin, bundle_of(from)),
        &bundle_key(gtin, u64::MAX),
    ) {
        let (k, v) = kv?;
        let base = bundle_start(tail_u64(&k)?);
        let payloads = bundle_payloads(&k, &v)?;
        let keep = usize::try_from(from.saturating_sub(base))
            .unwrap_or(usize::MAX)
            .min(payloads.len());
        for p in payloads.get(keep..).unwrap_or_default() {
            touched.insert(bucket_of(payload_serial(p)));
            removed += 1;
        }
        if keep == 0 {
            deletes.push(k);
        } else if keep < payloads.len() {
            let len = bundle_prefix_len(&k, &v, keep)?;
            let kept = v.get(..len).unwrap_or_default().to_vec();
            trim = Some((k.to_vec(), kept));
        }
    }
    if removed == 0 {
        return Ok(0);
    }
    // Index entries first: one past `from` stays findable (through its bundle) until
    // it is gone.
    for b in touched {
        let key = bucket_key(gtin, b);
        let Some(v) = store.get(Space::Index, &key)? else {
            continue;
        };
        let entries = bucket_entries(&key, &v)?;
        let kept: Vec<_> = entries.iter().copied().filter(|e| e.1 < from).collect();
        if kept.len() == entries.len() {
            continue;
        }
        if kept.is_empty() {
            store.del(Space::Index, &key)?;
        } else {
            store.put(Space::Index, &key, &encode_bucket(kept)?)?;
        }
    }
    for k in deletes {
        store.del(Space::Serials, &k)?;
    }
    if let Some((k, v)) = trim {
        store.put(Space::Serials, &k, &v)?;
    }
    Ok(removed)
}
