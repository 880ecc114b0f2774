//! `Pool::verify`: proves the pool consistent by walking every record. Each serial must
//! sit at exactly one seq (serials ↔ index is a bijection), each seq in at most one
//! block (blocks tile `[0, reserved_upto)` without overlap), each override must be a
//! reachable state, and the per-state counts from a serial-by-serial walk must equal the
//! counts `status` computes from ranges; the store must match its high-water mark.

use serde::Serialize;

use super::{
    BlockStatus, Pool, PoolError, SerialState, Space, Store, base_state, be_u64, ctl_key, json,
    k_index, k_serial, payload_serial, rules, tail_u64,
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
            // Serial-by-serial walk: seqs 0..next_seq, each in the index at its own seq.
            let mut walk = [0u64; 9];
            let mut next = 0u64;
            let mut oi = overrides.iter().peekable();
            for kv in self.store.scan(
                Space::Serials,
                &k_serial(&gtin, 0),
                &k_serial(&gtin, u64::MAX),
            ) {
                let (k, v) = kv?;
                let seq = tail_u64(&k)?;
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
                let serial = String::from_utf8_lossy(payload_serial(&v)).to_string();
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
                let ik = k_index(&gtin, &serial);
                match self.store.get(Space::Index, &ik)? {
                    Some(iv) if be_u64(&ik, &iv)? == seq => {}
                    Some(iv) => problem(
                        &mut r,
                        format!(
                            "{gtin}: serial `{serial}` at seq {seq} is indexed at seq {} (in two places?)",
                            be_u64(&ik, &iv)?
                        ),
                    ),
                    None => problem(
                        &mut r,
                        format!("{gtin}: serial `{serial}` at seq {seq} is not indexed"),
                    ),
                }
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
            if next < meta.next_seq {
                problem(
                    &mut r,
                    format!(
                        "{gtin}: {} serials recorded, only {next} stored",
                        meta.next_seq
                    ),
                );
            }
            let mut indexed = 0u64;
            let prefix = gtin.as_bytes().to_vec();
            let mut end = prefix.clone();
            end.push(0xff);
            for kv in self.store.scan(Space::Index, &prefix, &end) {
                kv?;
                indexed += 1;
            }
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
}
