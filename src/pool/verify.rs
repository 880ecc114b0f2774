//! `Pool::verify`: proves the pool consistent by walking every record. Each serial must
//! sit at exactly one seq (serials ↔ index is a bijection), each seq in at most one
//! block (blocks tile `[0, reserved_upto)` without overlap), each override must be a
//! reachable state, and the per-state counts from a serial-by-serial walk must equal the
//! counts `status` computes from ranges; the store must match its high-water mark.

use serde::Serialize;

use super::{
    BlockStatus, Pool, PoolError, SerialState, Space, Store, base_state, be_u64, ctl_key, json,
    payload_serial, rules, tail_u64,
};
use crate::pool::layout::{
    bucket_entries, bucket_of, bucket_of_hash, bundle_key, bundle_payloads, bundle_start, hash64,
};

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Serials walked.
    pub serials: u64,
    /// Blocks checked.
    pub blocks: u64,
    /// Per-state counts, per GTIN, from the serial-by-serial walk.
    pub counts: Vec<(String, Vec<(String, u64)>)>,
    /// Every inconsistency found (empty: consistent).
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// No inconsistency.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const MAX_PROBLEMS: usize = 100;

impl<S: Store> Pool<S> {
    /// Walk the whole pool and report every inconsistency. Store read errors are
    /// returned as `Err` (fatal), inconsistencies as `problems`.
    pub fn verify(&self) -> Result<VerifyReport, PoolError> {
        let mut r = VerifyReport::default();
        let problem = |r: &mut VerifyReport, p: String| {
            if r.problems.len() < MAX_PROBLEMS {
                r.problems.push(p);
            }
        };
        if self.generation != self.hwm.mark().generation {
            problem(
                &mut r,
                format!(
                    "store generation {} differs from the high-water mark's {}",
                    self.generation,
                    self.hwm.mark().generation
                ),
            );
        }
        for kv in self.scan_ctl(b"a/") {
            let (k, _) = kv?;
            problem(
                &mut r,
                format!("block {} is open with no allocator running", tail_u64(&k)?),
            );
        }
        let mut blocks_in_index = 0u64;
        for (gtin, meta) in self.gtins()? {
            if meta.reserved_upto > meta.next_seq {
                problem(
                    &mut r,
                    format!(
                        "{gtin}: reserved_upto {} past next_seq {}",
                        meta.reserved_upto, meta.next_seq
                    ),
                );
            }
            // Blocks tile [0, reserved_upto).
            let blocks = self.blocks(&gtin)?;
            let mut expect = 0u64;
            for kv in self.scan_ctl(&ctl_key(b"k/", &[gtin.as_bytes()])) {
                let (k, v) = kv?;
                let b = self.block(be_u64(&k, &v)?)?;
                if tail_u64(&k)? != b.start || b.gtin != gtin {
                    problem(
                        &mut r,
                        format!(
                            "{gtin}: block index entry for {} does not match block {} ({} at {})",
                            tail_u64(&k)?,
                            b.id,
                            b.gtin,
                            b.start
                        ),
                    );
                }
            }
            for b in &blocks {
                r.blocks += 1;
                blocks_in_index += 1;
                if b.start != expect {
                    problem(
                        &mut r,
                        format!(
                            "{gtin}: block {} starts at {} but the previous ends at {expect} (gap or overlap)",
                            b.id, b.start
                        ),
                    );
                }
                if !(b.start < b.end && b.start <= b.encoded_upto && b.encoded_upto <= b.end) {
                    problem(
                        &mut r,
                        format!(
                            "{gtin}: block {} has bad bounds [{}, {}) encoded to {}",
                            b.id, b.start, b.end, b.encoded_upto
                        ),
                    );
                }
                if b.status == BlockStatus::Open {
                    problem(
                        &mut r,
                        format!("{gtin}: block {} is open with no allocator running", b.id),
                    );
                }
                expect = b.end;
            }
            if expect != meta.reserved_upto {
                problem(
                    &mut r,
                    format!(
                        "{gtin}: blocks end at {expect}, reserved_upto is {}",
                        meta.reserved_upto
                    ),
                );
            }
            // Overrides.
            let mut overrides = Vec::new();
            for o in self.overrides(&gtin, 0, u64::MAX) {
                let (seq, st) = o?;
                let base = base_state(&blocks, &meta, seq);
                let ok = seq < meta.next_seq
                    && match st {
                        SerialState::Commissioned
                        | SerialState::LabelScrapped
                        | SerialState::Destroyed
                        | SerialState::Sampled => base == SerialState::Encoded,
                        SerialState::SnInvalid | SerialState::Returned => true,
                        _ => false,
                    };
                if !ok {
                    problem(
                        &mut r,
                        format!(
                            "{gtin}: seq {seq} has state {st} over {base}, which it cannot reach"
                        ),
                    );
                }
                overrides.push((seq, st));
            }
            // Serial-by-serial walk: seqs 0..next_seq, bundle by bundle.
            let mut walk = [0u64; 9];
            let mut next = 0u64;
            let mut oi = overrides.iter().peekable();
            // (hash64(serial), seq) of every stored serial, to match against the index.
            let mut stored: Vec<(u64, u64)> =
                Vec::with_capacity(usize::try_from(meta.next_seq).unwrap_or(0).min(1 << 26));
            for kv in self.store.scan(
                Space::Serials,
                &bundle_key(&gtin, 0),
                &bundle_key(&gtin, u64::MAX),
            ) {
                let (k, v) = kv?;
                let base = bundle_start(tail_u64(&k)?);
                let payloads = match bundle_payloads(&k, &v) {
                    Ok(p) => p,
                    Err(e) => {
                        problem(&mut r, format!("{gtin}: {e}"));
                        continue;
                    }
                };
                for (seq, v) in (base..).zip(payloads) {
                    r.serials += 1;
                    if seq != next {
                        problem(
                            &mut r,
                            format!("{gtin}: serial seqs jump from {next} to {seq}"),
                        );
                    }
                    next = seq + 1;
                    if seq >= meta.next_seq {
                        problem(
                            &mut r,
                            format!(
                                "{gtin}: seq {seq} stored past next_seq {} (unfinished import)",
                                meta.next_seq
                            ),
                        );
                        continue;
                    }
                    let serial = String::from_utf8_lossy(payload_serial(v)).to_string();
                    let mut fields = v.split(|b| *b == super::GS).skip(1);
                    let ai91 = fields
                        .next()
                        .and_then(|f| f.get(2..))
                        .map(|f| String::from_utf8_lossy(f).to_string());
                    let ai92 = fields
                        .next()
                        .and_then(|f| f.get(2..))
                        .map(|f| String::from_utf8_lossy(f).to_string());
                    if let Err(e) =
                        rules::check_serial(meta.market, &serial, ai91.as_deref(), ai92.as_deref())
                    {
                        problem(&mut r, format!("{gtin}: seq {seq}: {e}"));
                    }
                    stored.push((hash64(payload_serial(v)), seq));
                    let mut st = base_state(&blocks, &meta, seq);
                    while let Some((s, ost)) = oi.peek() {
                        if *s < seq {
                            oi.next();
                        } else {
                            if *s == seq {
                                st = *ost;
                            }
                            break;
                        }
                    }
                    if let Some(i) = SerialState::ALL.iter().position(|x| *x == st) {
                        walk[i] += 1;
                    }
                }
            }
            if next < meta.next_seq {
                problem(
                    &mut r,
                    format!(
                        "{gtin}: {} serials recorded, only {next} stored",
                        meta.next_seq
                    ),
                );
            }
            let indexed = self.verify_index(&gtin, meta.next_seq, stored, &mut r)?;
            if indexed != meta.next_seq {
                problem(
                    &mut r,
                    format!(
                        "{gtin}: {indexed} index entries for {} serials",
                        meta.next_seq
                    ),
                );
            }
            match self.counts(&gtin, &meta) {
                Ok(c) if c == walk => {}
                Ok(c) => problem(
                    &mut r,
                    format!("{gtin}: counts from ranges {c:?} differ from the walk {walk:?}"),
                ),
                Err(e) => problem(&mut r, format!("{gtin}: {e}")),
            }
            let sum: u64 = walk.iter().sum();
            if sum != meta.next_seq {
                problem(
                    &mut r,
                    format!("{gtin}: states add up to {sum}, not {}", meta.next_seq),
                );
            }
            r.counts.push((
                gtin.clone(),
                SerialState::ALL
                    .iter()
                    .zip(walk)
                    .map(|(s, n)| (s.name().to_string(), n))
                    .collect(),
            ));
        }
        let mut all_blocks = 0u64;
        for kv in self.scan_ctl(b"b/") {
            let (k, v) = kv?;
            let _: super::Block = json(&k, &v)?;
            all_blocks += 1;
        }
        if all_blocks != blocks_in_index {
            problem(
                &mut r,
                format!(
                    "{all_blocks} block records, {blocks_in_index} reachable from the GTIN index"
                ),
            );
        }
        for kv in self.scan_ctl(b"r/") {
            let (k, _) = kv?;
            let id = tail_u64(&k)?;
            match self.block(id) {
                Ok(b) if b.status == BlockStatus::Closed && b.encoded_upto < b.end => {}
                Ok(_) => problem(
                    &mut r,
                    format!("SNInvalid report for block {id}, which has no invalid serials"),
                ),
                Err(e) => problem(&mut r, format!("SNInvalid report for block {id}: {e}")),
            }
        }
        self.tokens()?;
        Ok(r)
    }

    /// Match the index of `gtin` against the stored serials (`stored`: hash and seq of
    /// every serial walked): every entry must be in its hash's bucket, in order, once,
    /// live, and point at the seq that holds its serial; every stored serial must have
    /// its entry. Returns the number of index entries.
    fn verify_index(
        &self,
        gtin: &str,
        next_seq: u64,
        mut stored: Vec<(u64, u64)>,
        r: &mut VerifyReport,
    ) -> Result<u64, PoolError> {
        let problem = |r: &mut VerifyReport, p: String| {
            if r.problems.len() < MAX_PROBLEMS {
                r.problems.push(p);
            }
        };
        stored.sort_unstable();
        let name = |seq: u64| -> String {
            match self.payload_at(gtin, seq) {
                Ok(Some(p)) => format!("`{}`", String::from_utf8_lossy(payload_serial(&p))),
                Ok(None) => "(none)".into(),
                Err(e) => format!("(unreadable: {e})"),
            }
        };
        let mut indexed = 0u64;
        let mut at = 0usize;
        // Stored serials the index lacks, and index entries no stored serial matches.
        let mut missing: Vec<(u64, u64)> = Vec::new();
        let mut stray: Vec<(u64, u64, String)> = Vec::new();
        let prefix = gtin.as_bytes().to_vec();
        // Bucket keys are the GTIN and two bytes: this end is past every one of them.
        let mut end = prefix.clone();
        end.extend_from_slice(&[0xff; 3]);
        for kv in self.store.scan(Space::Index, &prefix, &end) {
            let (k, v) = kv?;
            let bucket = match k.get(prefix.len()..).map(<[u8; 2]>::try_from) {
                Some(Ok(b)) => u16::from_be_bytes(b),
                _ => {
                    problem(
                        r,
                        format!("{gtin}: stray index key {}", super::printable(&k)),
                    );
                    continue;
                }
            };
            let entries = match bucket_entries(&k, &v) {
                Ok(e) => e,
                Err(e) => {
                    problem(r, format!("{gtin}: {e}"));
                    continue;
                }
            };
            let mut here: Vec<(u64, u64, String)> = Vec::with_capacity(entries.len());
            for (i, (s, seq)) in entries.iter().enumerate() {
                indexed += 1;
                let text = String::from_utf8_lossy(s).to_string();
                if i > 0 && entries.get(i - 1).is_some_and(|p| p.0 >= *s) {
                    problem(
                        r,
                        format!(
                            "{gtin}: index bucket {bucket:04x}: `{text}` is out of order or twice"
                        ),
                    );
                }
                if bucket_of(s) != bucket {
                    problem(
                        r,
                        format!("{gtin}: `{text}` is indexed in bucket {bucket:04x}, not its own"),
                    );
                }
                if *seq >= next_seq {
                    problem(
                        r,
                        format!(
                            "{gtin}: `{text}` is indexed at seq {seq}, past next_seq {next_seq}"
                        ),
                    );
                }
                here.push((hash64(s), *seq, text));
            }
            here.sort_unstable();
            // Stored serials of earlier buckets that had no bucket.
            while let Some(&(h, seq)) = stored.get(at)
                && bucket_of_hash(h) < bucket
            {
                missing.push((h, seq));
                at += 1;
            }
            let mut hi = here.into_iter().peekable();
            loop {
                let cur = stored
                    .get(at)
                    .copied()
                    .filter(|(h, _)| bucket_of_hash(*h) == bucket);
                match (cur, hi.peek()) {
                    (Some(a), Some(b)) if a == (b.0, b.1) => {
                        at += 1;
                        hi.next();
                    }
                    (Some(a), Some(b)) if a < (b.0, b.1) => {
                        missing.push(a);
                        at += 1;
                    }
                    (_, Some(_)) => stray.extend(hi.next()),
                    (Some(a), None) => {
                        missing.push(a);
                        at += 1;
                    }
                    (None, None) => break,
                }
            }
        }
        missing.extend(stored.get(at..).unwrap_or_default());
        for (h, seq, text) in &stray {
            match missing.iter().position(|m| m.0 == *h) {
                Some(i) => {
                    let (_, at_seq) = missing.swap_remove(i);
                    problem(
                        r,
                        format!(
                            "{gtin}: serial `{text}` at seq {at_seq} is indexed at seq {seq} (in two places?)"
                        ),
                    );
                }
                None => problem(
                    r,
                    format!(
                        "{gtin}: index entry `{text}` points at seq {seq}, which holds {}",
                        name(*seq)
                    ),
                ),
            }
        }
        for (_, seq) in missing {
            if r.problems.len() >= MAX_PROBLEMS {
                break;
            }
            problem(
                r,
                format!("{gtin}: serial {} at seq {seq} is not indexed", name(seq)),
            );
        }
        Ok(indexed)
    }
}
