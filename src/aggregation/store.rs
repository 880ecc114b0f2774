//! The durable aggregation store (sled, in `<data>/aggregation`): every case and pallet
//! with its children, the child → parent index, the SSCC counters, the intents of
//! labels being printed, the cases held for rework, and the rework operations that
//! change a container. Every change is one sled transaction over the trees it touches,
//! flushed before it returns, so a crash leaves either the old or the new state. It
//! checks the store's invariants (a child has at most one parent, a parent exists once)
//! on every commit — a wrong parent-child relation is refused here even if a caller's
//! check missed it. It does not decode, print or emit events (the stations do).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

/// Packing level of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// A case of units.
    Case,
    /// A pallet of cases.
    Pallet,
}

impl Level {
    /// `case` or `pallet`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Case => "case",
            Level::Pallet => "pallet",
        }
    }
}

/// A child of a container: a unit (GTIN + serial) or a case (SSCC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Child {
    /// A serialised unit.
    Unit {
        /// GTIN-14.
        gtin: String,
        /// Serial (AI 21).
        serial: String,
    },
    /// A case, by its identifier as the store keys it (see
    /// [`crate::gs1::container::ContainerId::id`]).
    Case {
        /// The case's 18-digit SSCC, or `(01)GTIN(21)SERIAL` for a case labelled with
        /// a case GTIN and serial.
        sscc: String,
    },
}

impl Child {
    /// The index key: `(01)GTIN(21)SERIAL` or `(00)SSCC` (a case with a case GTIN and
    /// serial: its `(01)…(21)…`).
    pub fn key(&self) -> String {
        match self {
            Child::Unit { gtin, serial } => format!("(01){gtin}(21){serial}"),
            Child::Case { sscc } => crate::gs1::container::container_key(sscc),
        }
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Labelled, verified and aggregated.
    Closed,
    /// Opened at the rework station: children may be removed or added.
    Open,
}

/// One case or pallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Its identifier: the SSCC, or `(01)GTIN(21)SERIAL` for a case labelled with a
    /// case GTIN and serial (the field keeps its historic name).
    pub sscc: String,
    /// Case or pallet.
    pub level: Level,
    /// The batch its units belong to.
    pub batch: String,
    /// Its children.
    pub children: Vec<Child>,
    /// Closed or open for rework.
    pub status: Status,
    /// The pallet it is on (cases only).
    pub parent: Option<String>,
    /// When it was aggregated, µs since the Unix epoch.
    pub at_us: u64,
}

/// How far a label print got when the process stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The SSCC is taken and the label may have been sent to the printer.
    Printing,
    /// The printed label was read back and matched; the event may be journaled.
    Verified,
}

/// A label being printed: written before the printer sees the SSCC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The identifier on the label (SSCC, or `(01)GTIN(21)SERIAL`).
    pub sscc: String,
    /// Case or pallet.
    pub level: Level,
    /// The batch.
    pub batch: String,
    /// The children that passed every check.
    pub children: Vec<Child>,
    /// How far it got.
    pub stage: Stage,
    /// Event time, µs since the Unix epoch (the event is rebuilt identically from it).
    pub at_us: u64,
    /// The short hold this label closes as a partial case, if it is one: a crash while
    /// it prints holds the case short again with its units (see
    /// `super::station::recover`).
    #[serde(default)]
    pub partial_of: Option<u64>,
}

/// A case or pallet held for rework instead of being aggregated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Hold number (increasing).
    pub id: u64,
    /// Case or pallet.
    pub level: Level,
    /// The batch.
    pub batch: String,
    /// Every problem found, one line each.
    pub reasons: Vec<String>,
    /// The SSCC taken for it, when it got as far as the label.
    pub sscc: Option<String>,
    /// When, µs since the Unix epoch.
    pub at_us: u64,
    /// The children that passed every check, kept for a hold the supervisor may
    /// resolve without a new read (a `short` case: see [`AggStore::close_partial`]).
    #[serde(default)]
    pub children: Vec<Child>,
    /// How the hold was resolved (kept for the record: a hold is never deleted);
    /// `None` while it is open.
    #[serde(default)]
    pub resolved: Option<Resolution>,
}

/// How a hold was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// Who resolved it (a user, or the step that did: `case station`).
    pub by: String,
    /// Why, or what was done (the container re-closed, the partial case's label).
    pub why: String,
    /// When, µs since the Unix epoch.
    pub at_us: u64,
}

/// The first word of the reason of a hold that is a partial case at the end of a
/// batch: the supervisor closes it at the HMI ([`AggStore::close_partial`]).
pub const SHORT: &str = "short";

impl Hold {
    /// Whether this hold is a partial case at the end of a batch (its first reason is
    /// `short: …`) with the children it was found with.
    pub fn is_short(&self) -> bool {
        self.resolved.is_none()
            && self.level == Level::Case
            && !self.children.is_empty()
            && self
                .reasons
                .first()
                .is_some_and(|r| r.split(':').next() == Some(SHORT))
    }
}

/// An event to journal, written in the same transaction as the change it reports, and
/// removed once it is durable in the journal (so a crash between the two neither
/// loses it nor journals it twice: see `super::station::recover`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// Its eventID (the CBV 2.0 hash).
    pub event_id: String,
    /// The journal payload (an `EventRecord`).
    pub payload: Vec<u8>,
    /// The journal's end when it was written: it is journaled iff a record from here on
    /// carries its eventID.
    pub from_seq: u64,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("aggregation store {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The sled error.
        source: sled::Error,
    },
    /// A stored value does not decode.
    #[error("aggregation store: record {key:?} is damaged: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A change would break an invariant; nothing was changed.
    #[error("aggregation refused: {0}")]
    Refused(String),
    /// No such container.
    #[error("no case or pallet {0}")]
    Unknown(String),
}

fn io(op: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |source| StoreError::Io { op, source }
}

/// The store.
#[derive(Debug, Clone)]
pub struct AggStore {
    db: sled::Db,
    containers: sled::Tree,
    children: sled::Tree,
    intents: sled::Tree,
    holds: sled::Tree,
    meta: sled::Tree,
    outbox: sled::Tree,
    spares: sled::Tree,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_err(op: &'static str) -> impl Fn(TransactionError<StoreError>) -> StoreError {
    move |e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(source) => StoreError::Io { op, source },
    }
}

/// The hold `id` inside a transaction, refused when unknown or already resolved.
fn open_hold(holds: &sled::transaction::TransactionalTree, id: u64) -> TxResult<Hold> {
    let key = id.to_be_bytes();
    let Some(v) = holds.get(key)? else {
        return abort(StoreError::Unknown(format!("hold {id}")));
    };
    let h: Hold = match dec(&key, &v) {
        Ok(h) => h,
        Err(e) => return abort(e),
    };
    if let Some(was) = &h.resolved {
        return abort(StoreError::Refused(format!(
            "hold {id} was already resolved by {}: {}",
            was.by, was.why
        )));
    }
    Ok(h)
}

/// `GTIN/` then the pool seq, big-endian (so a scan is in seq order).
fn spare_key(gtin: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(gtin.len() + 9);
    k.extend_from_slice(gtin.as_bytes());
    k.push(b'/');
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn dec<T: for<'de> Deserialize<'de>>(key: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

impl AggStore {
    /// Open (or create) the store in `dir`.
    pub fn open(dir: &Path) -> Result<AggStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(io("open"))?;
        let tree = |n: &str| db.open_tree(n).map_err(io("open"));
        Ok(AggStore {
            containers: tree("containers")?,
            children: tree("children")?,
            intents: tree("intents")?,
            holds: tree("holds")?,
            meta: tree("meta")?,
            outbox: tree("outbox")?,
            spares: tree("spares")?,
            db,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io("flush"))
    }

    /// Take the next serial reference of `level`'s SSCC counter, durably: a number
    /// handed out is never handed out again, whatever happens to its label.
    pub fn next_serial_reference(&self, level: Level) -> Result<u64, StoreError> {
        let key = format!("next/{}", level.name());
        let prev = self
            .meta
            .fetch_and_update(key.as_bytes(), |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(1, u64::from_be_bytes);
                Some((n + 1).to_be_bytes().to_vec())
            })
            .map_err(io("counter"))?;
        self.flush()?;
        Ok(prev
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes))
    }

    /// Record that a label with `intent.sscc` is about to be printed.
    pub fn begin(&self, intent: &Intent) -> Result<(), StoreError> {
        if self.container(&intent.sscc)?.is_some() {
            return Err(StoreError::Refused(format!(
                "SSCC {} is already in use",
                intent.sscc
            )));
        }
        self.intents
            .insert(intent.sscc.as_bytes(), enc(intent))
            .map_err(io("intent"))?;
        self.flush()
    }

    /// Move an intent on to `stage`.
    pub fn advance(&self, sscc: &str, stage: Stage) -> Result<(), StoreError> {
        let mut i = self
            .intent(sscc)?
            .ok_or_else(|| StoreError::Unknown(sscc.to_string()))?;
        i.stage = stage;
        self.intents
            .insert(sscc.as_bytes(), enc(&i))
            .map_err(io("intent"))?;
        self.flush()
    }

    /// One intent.
    pub fn intent(&self, sscc: &str) -> Result<Option<Intent>, StoreError> {
        match self.intents.get(sscc.as_bytes()).map_err(io("read"))? {
            Some(v) => Ok(Some(dec(sscc.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every intent left (after a crash), oldest SSCC first.
    pub fn intents(&self) -> Result<Vec<Intent>, StoreError> {
        let mut out = Vec::new();
        for kv in self.intents.iter() {
            let (k, v) = kv.map_err(io("read"))?;
            out.push(dec(&k, &v)?);
        }
        Ok(out)
    }

    /// Aggregate the intent `sscc`: the container, its child index entries (and for a
    /// pallet, each case's `parent`) and the intent's removal in one transaction.
    /// Refused, with nothing changed, if a child already has a parent, a case is not
    /// closed or unknown, or the SSCC is taken.
    pub fn commit(&self, sscc: &str, out: &[Outgoing]) -> Result<Container, StoreError> {
        let intent = self
            .intent(sscc)?
            .ok_or_else(|| StoreError::Unknown(sscc.to_string()))?;
        if intent.stage != Stage::Verified {
            return Err(StoreError::Refused(format!(
                "the label of {sscc} was not verified"
            )));
        }
        let c = Container {
            sscc: intent.sscc.clone(),
            level: intent.level,
            batch: intent.batch.clone(),
            children: intent.children.clone(),
            status: Status::Closed,
            parent: None,
            at_us: intent.at_us,
        };
        (
            &self.containers,
            &self.children,
            &self.intents,
            &self.outbox,
        )
            .transaction(|(cont, child, int, ob)| {
                if cont.get(c.sscc.as_bytes())?.is_some() {
                    return abort(StoreError::Refused(format!(
                        "SSCC {} is already in use",
                        c.sscc
                    )));
                }
                let mut seen = std::collections::HashSet::new();
                for ch in &c.children {
                    let key = ch.key();
                    if !seen.insert(key.clone()) {
                        return abort(StoreError::Refused(format!("{key} twice in {}", c.sscc)));
                    }
                    if let Some(p) = child.get(key.as_bytes())? {
                        return abort(StoreError::Refused(format!(
                            "{key} is already in {}",
                            String::from_utf8_lossy(&p)
                        )));
                    }
                    if let Child::Case { sscc } = ch {
                        let Some(v) = cont.get(sscc.as_bytes())? else {
                            return abort(StoreError::Refused(format!(
                                "case {sscc} is not aggregated"
                            )));
                        };
                        let mut case: Container = match dec(sscc.as_bytes(), &v) {
                            Ok(x) => x,
                            Err(e) => return abort(e),
                        };
                        if case.level != Level::Case || case.status != Status::Closed {
                            return abort(StoreError::Refused(format!(
                                "{sscc} is not a closed case"
                            )));
                        }
                        case.parent = Some(c.sscc.clone());
                        cont.insert(sscc.as_bytes(), enc(&case))?;
                    }
                    child.insert(key.as_bytes(), c.sscc.as_bytes())?;
                }
                cont.insert(c.sscc.as_bytes(), enc(&c))?;
                int.remove(c.sscc.as_bytes())?;
                for o in out {
                    ob.insert(o.event_id.as_bytes(), enc(o))?;
                }
                Ok(())
            })
            .map_err(tx_err("commit"))?;
        self.flush()?;
        Ok(c)
    }

    /// Drop an intent and hold the case or pallet for rework with `reasons`. The hold
    /// keeps the intent's children (they passed every check and sit in the held
    /// container: the end-of-batch count needs them, see [`AggStore::units_packed`]);
    /// it is not a `short` hold, so they are not closed from it.
    pub fn abandon(
        &self,
        sscc: &str,
        reasons: Vec<String>,
        at_us: u64,
    ) -> Result<Hold, StoreError> {
        let i = self.intent(sscc)?;
        let level = i.as_ref().map_or(Level::Case, |i| i.level);
        let (batch, children) = i.map(|i| (i.batch, i.children)).unwrap_or_default();
        self.intents.remove(sscc.as_bytes()).map_err(io("intent"))?;
        self.hold_with_children(
            level,
            &batch,
            reasons,
            Some(sscc.to_string()),
            at_us,
            children,
        )
    }

    /// [`AggStore::abandon`] for the label of a partial case: the hold keeps the
    /// intent's children, so with a first reason `short: …` it is a short hold the
    /// supervisor may close again.
    pub fn abandon_keeping_children(
        &self,
        sscc: &str,
        reasons: Vec<String>,
        at_us: u64,
    ) -> Result<Hold, StoreError> {
        let i = self
            .intent(sscc)?
            .ok_or_else(|| StoreError::Unknown(sscc.to_string()))?;
        self.intents.remove(sscc.as_bytes()).map_err(io("intent"))?;
        self.hold_with_children(
            i.level,
            &i.batch,
            reasons,
            Some(sscc.to_string()),
            at_us,
            i.children,
        )
    }

    /// Mark the open hold `id` resolved by `r` (who, why, when); the hold stays in the
    /// store for the record. Refused if it is unknown or already resolved.
    pub fn resolve_hold(&self, id: u64, r: &Resolution) -> Result<Hold, StoreError> {
        if r.by.trim().is_empty() || r.why.trim().is_empty() {
            return Err(StoreError::Refused(format!(
                "resolving hold {id} needs who and why"
            )));
        }
        let out = self
            .holds
            .transaction(|holds| {
                let key = id.to_be_bytes();
                let mut h = open_hold(holds, id)?;
                h.resolved = Some(r.clone());
                holds.insert(&key, enc(&h))?;
                Ok(h)
            })
            .map_err(tx_err("resolve hold"))?;
        self.flush()?;
        Ok(out)
    }

    /// Resolve every open hold naming the container `sscc` (it was re-closed or
    /// closed as a partial case); returns their ids.
    pub fn resolve_holds_of(&self, sscc: &str, r: &Resolution) -> Result<Vec<u64>, StoreError> {
        let mut done = Vec::new();
        for h in self.open_holds()? {
            if h.sscc.as_deref() == Some(sscc) {
                self.resolve_hold(h.id, r)?;
                done.push(h.id);
            }
        }
        Ok(done)
    }

    /// Hold a case or pallet for rework.
    pub fn hold(
        &self,
        level: Level,
        batch: &str,
        reasons: Vec<String>,
        sscc: Option<String>,
        at_us: u64,
    ) -> Result<Hold, StoreError> {
        self.hold_with_children(level, batch, reasons, sscc, at_us, Vec::new())
    }

    /// Hold a case or pallet for rework, keeping the `children` that passed every
    /// check (a partial case at the end of a batch is closed from them).
    pub fn hold_with_children(
        &self,
        level: Level,
        batch: &str,
        reasons: Vec<String>,
        sscc: Option<String>,
        at_us: u64,
        children: Vec<Child>,
    ) -> Result<Hold, StoreError> {
        let id = self.next_hold_id()?;
        let h = Hold {
            id,
            level,
            batch: batch.to_string(),
            reasons,
            sscc,
            at_us,
            children,
            resolved: None,
        };
        self.holds
            .insert(id.to_be_bytes(), enc(&h))
            .map_err(io("hold"))?;
        self.flush()?;
        Ok(h)
    }

    /// The next hold number, from 1: the store's counter (`next/hold`), started past
    /// the last hold of a store written before it existed (whose numbers came from
    /// sled's id generator, from 0: they stay as they are).
    fn next_hold_id(&self) -> Result<u64, StoreError> {
        let floor = match self.holds.last().map_err(io("hold id"))? {
            Some((k, _)) => <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: format!("{:?}", k.as_ref()),
                    reason: "a hold key is not 8 bytes".into(),
                })?
                .saturating_add(1),
            None => 1,
        }
        .max(1);
        let prev = self
            .meta
            .fetch_and_update(b"next/hold", |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(floor, u64::from_be_bytes)
                    .max(floor);
                Some((n + 1).to_be_bytes().to_vec())
            })
            .map_err(io("hold id"))?;
        Ok(prev
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(floor, u64::from_be_bytes)
            .max(floor))
    }

    /// Keep case serials the pool has already made Encoded (durably) for labels to
    /// come: `(pool seq, serial)` of the case GTIN `gtin`, taken in seq order by
    /// [`AggStore::take_spare_id`]. A serial listed here was never on a label.
    pub fn add_spare_ids(&self, gtin: &str, ids: &[(u64, String)]) -> Result<(), StoreError> {
        for (seq, serial) in ids {
            self.spares
                .insert(spare_key(gtin, *seq), serial.as_bytes())
                .map_err(io("spare"))?;
        }
        self.flush()
    }

    /// Take the first spare case serial of `gtin` off the list (not flushed here: the
    /// label's intent, written next, flushes it; a crash before that leaves it a
    /// spare, and it was never printed).
    pub fn take_spare_id(&self, gtin: &str) -> Result<Option<String>, StoreError> {
        let prefix = spare_key(gtin, 0);
        let prefix = &prefix[..prefix.len() - 8];
        loop {
            let Some((k, v)) = self
                .spares
                .scan_prefix(prefix)
                .next()
                .transpose()
                .map_err(io("spare"))?
            else {
                return Ok(None);
            };
            // Removed only if still there (one taker wins).
            if self.spares.remove(&k).map_err(io("spare"))?.is_some() {
                return Ok(Some(String::from_utf8_lossy(&v).into_owned()));
            }
        }
    }

    /// The spare case serials of `gtin`, in seq order.
    pub fn spare_ids(&self, gtin: &str) -> Result<Vec<String>, StoreError> {
        let prefix = spare_key(gtin, 0);
        self.spares
            .scan_prefix(&prefix[..prefix.len() - 8])
            .map(|kv| {
                kv.map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
                    .map_err(io("spare"))
            })
            .collect()
    }

    /// Events written with a change and not yet confirmed journaled.
    pub fn outbox(&self) -> Result<Vec<Outgoing>, StoreError> {
        let mut out = Vec::new();
        for kv in self.outbox.iter() {
            let (k, v) = kv.map_err(io("read"))?;
            out.push(dec(&k, &v)?);
        }
        Ok(out)
    }

    /// The event `event_id` is durable in the journal: forget it.
    pub fn delivered(&self, event_id: &str) -> Result<(), StoreError> {
        self.outbox
            .remove(event_id.as_bytes())
            .map_err(io("outbox"))?;
        self.flush()
    }

    /// One hold.
    pub fn hold_by_id(&self, id: u64) -> Result<Option<Hold>, StoreError> {
        match self.holds.get(id.to_be_bytes()).map_err(io("read"))? {
            Some(v) => Ok(Some(dec(&id.to_be_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// The supervisor closes the partial case of hold `hold_id` (a `short` hold, see
    /// [`Hold::is_short`]) as it is: in one transaction the hold is marked resolved
    /// (kept for the record) and `intent`
    /// (the label about to be printed for it, stage `Printing`, a case with exactly
    /// the hold's children; recorded with `partial_of` naming the hold) is recorded. Refused, with nothing changed, if the hold is
    /// not a short case, the children differ, one of them has meanwhile got a parent,
    /// or the identifier is taken. The station then prints, verifies and commits the
    /// intent as any other (see `super::station::Station::close_partial`).
    pub fn close_partial(&self, hold_id: u64, intent: &Intent) -> Result<(), StoreError> {
        let r = Resolution {
            by: "case station".into(),
            why: format!("closed as a partial case: label {}", intent.sscc),
            at_us: intent.at_us,
        };
        self.close_partial_resolving(hold_id, intent, &r)
    }

    /// [`AggStore::close_partial`], the hold marked resolved by `r` (who asked for it).
    pub fn close_partial_resolving(
        &self,
        hold_id: u64,
        intent: &Intent,
        r: &Resolution,
    ) -> Result<(), StoreError> {
        let intent = &Intent {
            partial_of: Some(hold_id),
            ..intent.clone()
        };
        (&self.holds, &self.intents, &self.containers, &self.children)
            .transaction(|(holds, int, cont, child)| {
                let key = hold_id.to_be_bytes();
                let h = open_hold(holds, hold_id)?;
                if !h.is_short() {
                    return abort(StoreError::Refused(format!(
                        "hold {hold_id} is not a partial case at the end of a batch ({})",
                        h.reasons.first().map_or("no reason", String::as_str)
                    )));
                }
                if intent.level != Level::Case
                    || intent.stage != Stage::Printing
                    || intent.batch != h.batch
                    || intent.children != h.children
                {
                    return abort(StoreError::Refused(format!(
                        "the label intent {} does not match hold {hold_id} (level, batch, stage or children differ)",
                        intent.sscc
                    )));
                }
                if cont.get(intent.sscc.as_bytes())?.is_some()
                    || int.get(intent.sscc.as_bytes())?.is_some()
                {
                    return abort(StoreError::Refused(format!(
                        "{} is already in use",
                        intent.sscc
                    )));
                }
                for ch in &intent.children {
                    if let Some(p) = child.get(ch.key().as_bytes())? {
                        return abort(StoreError::Refused(format!(
                            "{} is already in {}",
                            ch.key(),
                            String::from_utf8_lossy(&p)
                        )));
                    }
                }
                let mut h = h;
                h.resolved = Some(r.clone());
                holds.insert(&key, enc(&h))?;
                int.insert(intent.sscc.as_bytes(), enc(intent))?;
                Ok(())
            })
            .map_err(tx_err("close partial"))?;
        self.flush()
    }

    /// Every hold not resolved yet, oldest first.
    pub fn open_holds(&self) -> Result<Vec<Hold>, StoreError> {
        let mut all = self.holds()?;
        all.retain(|h| h.resolved.is_none());
        Ok(all)
    }

    /// Every hold, resolved ones included, oldest first.
    pub fn holds(&self) -> Result<Vec<Hold>, StoreError> {
        let mut out = Vec::new();
        for kv in self.holds.iter() {
            let (k, v) = kv.map_err(io("read"))?;
            out.push(dec(&k, &v)?);
        }
        Ok(out)
    }

    /// One container.
    pub fn container(&self, sscc: &str) -> Result<Option<Container>, StoreError> {
        match self.containers.get(sscc.as_bytes()).map_err(io("read"))? {
            Some(v) => Ok(Some(dec(sscc.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every container, by SSCC.
    pub fn containers(&self) -> Result<Vec<Container>, StoreError> {
        let mut out = Vec::new();
        for kv in self.containers.iter() {
            let (k, v) = kv.map_err(io("read"))?;
            out.push(dec(&k, &v)?);
        }
        Ok(out)
    }

    /// The SSCC of the container `child` is in.
    pub fn parent_of(&self, child: &Child) -> Result<Option<String>, StoreError> {
        Ok(self
            .children
            .get(child.key().as_bytes())
            .map_err(io("read"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Units of `batch` accounted for by aggregation: in its cases, and sitting in its
    /// held cases (the units of an open hold that passed every check: a short case
    /// waiting for its partial close, or a case held for a foreign, duplicate or
    /// unreadable code). A unit counts once: one in a case by now (its held case was
    /// reworked and packed again) is not counted again for the hold.
    pub fn units_packed(&self, batch: &str) -> Result<u64, StoreError> {
        let mut seen = std::collections::HashSet::new();
        for c in self.containers()? {
            if c.level == Level::Case && c.batch == batch {
                seen.extend(c.children.iter().map(Child::key));
            }
        }
        for h in self.open_holds()? {
            if h.level == Level::Case && h.batch == batch {
                seen.extend(h.children.iter().map(Child::key));
            }
        }
        Ok(seen.len() as u64)
    }

    /// Count containers by level.
    pub fn counts(&self) -> Result<BTreeMap<Level, u64>, StoreError> {
        let mut m = BTreeMap::new();
        for c in self.containers()? {
            *m.entry(c.level).or_insert(0) += 1;
        }
        Ok(m)
    }

    /// Open a closed case for rework (not while it is on a pallet).
    pub fn open_case(&self, sscc: &str) -> Result<Container, StoreError> {
        self.update(sscc, |c| {
            if c.level != Level::Case {
                return Err(format!("{sscc} is a pallet: dissolve it instead"));
            }
            if let Some(p) = &c.parent {
                return Err(format!(
                    "case {sscc} is on pallet {p}: dissolve the pallet first"
                ));
            }
            if c.status == Status::Open {
                return Err(format!("case {sscc} is already open"));
            }
            c.status = Status::Open;
            Ok(())
        })
    }

    /// Close an open case again; it must not be empty.
    pub fn close_case(&self, sscc: &str) -> Result<Container, StoreError> {
        self.update(sscc, |c| {
            if c.status != Status::Open {
                return Err(format!("{sscc} is not open"));
            }
            if c.children.is_empty() {
                return Err(format!(
                    "case {sscc} is empty: dissolve it instead of closing"
                ));
            }
            c.status = Status::Closed;
            Ok(())
        })
    }

    fn update(
        &self,
        sscc: &str,
        f: impl Fn(&mut Container) -> Result<(), String>,
    ) -> Result<Container, StoreError> {
        let out = self
            .containers
            .transaction(|cont| {
                let Some(v) = cont.get(sscc.as_bytes())? else {
                    return abort(StoreError::Unknown(sscc.to_string()));
                };
                let mut c: Container = match dec(sscc.as_bytes(), &v) {
                    Ok(c) => c,
                    Err(e) => return abort(e),
                };
                if let Err(msg) = f(&mut c) {
                    return abort(StoreError::Refused(msg));
                }
                cont.insert(sscc.as_bytes(), enc(&c))?;
                Ok(c)
            })
            .map_err(tx_err("update"))?;
        self.flush()?;
        Ok(out)
    }

    /// Take `remove` out of the open case `sscc` and put `add` in, in one transaction.
    /// Refused if a removed child is not in it or an added child has a parent.
    pub fn rework_case(
        &self,
        sscc: &str,
        remove: &[Child],
        add: &[Child],
        out: &[Outgoing],
    ) -> Result<Container, StoreError> {
        let result = (&self.containers, &self.children, &self.outbox)
            .transaction(|(cont, child, ob)| {
                let Some(v) = cont.get(sscc.as_bytes())? else {
                    return abort(StoreError::Unknown(sscc.to_string()));
                };
                let mut c: Container = match dec(sscc.as_bytes(), &v) {
                    Ok(c) => c,
                    Err(e) => return abort(e),
                };
                if c.status != Status::Open {
                    return abort(StoreError::Refused(format!("case {sscc} is not open")));
                }
                for r in remove {
                    let Some(pos) = c.children.iter().position(|x| x == r) else {
                        return abort(StoreError::Refused(format!("{} is not in {sscc}", r.key())));
                    };
                    c.children.remove(pos);
                    child.remove(r.key().as_bytes())?;
                }
                for a in add {
                    if let Some(p) = child.get(a.key().as_bytes())? {
                        return abort(StoreError::Refused(format!(
                            "{} is already in {}",
                            a.key(),
                            String::from_utf8_lossy(&p)
                        )));
                    }
                    if matches!(a, Child::Case { .. }) {
                        return abort(StoreError::Refused("a case holds units only".into()));
                    }
                    child.insert(a.key().as_bytes(), sscc.as_bytes())?;
                    c.children.push(a.clone());
                }
                cont.insert(sscc.as_bytes(), enc(&c))?;
                for o in out {
                    ob.insert(o.event_id.as_bytes(), enc(o))?;
                }
                Ok(c)
            })
            .map_err(tx_err("rework"))?;
        self.flush()?;
        Ok(result)
    }

    /// Dissolve a container: its children lose their parent (cases come off the
    /// pallet, units out of the case) and the container is gone; its SSCC is never
    /// reused. A case on a pallet cannot be dissolved. Returns the container as it was.
    pub fn dissolve(&self, sscc: &str, out: &[Outgoing]) -> Result<Container, StoreError> {
        let result = (&self.containers, &self.children, &self.outbox)
            .transaction(|(cont, child, ob)| {
                let Some(v) = cont.get(sscc.as_bytes())? else {
                    return abort(StoreError::Unknown(sscc.to_string()));
                };
                let c: Container = match dec(sscc.as_bytes(), &v) {
                    Ok(c) => c,
                    Err(e) => return abort(e),
                };
                if let Some(p) = &c.parent {
                    return abort(StoreError::Refused(format!(
                        "case {sscc} is on pallet {p}: dissolve the pallet first"
                    )));
                }
                for ch in &c.children {
                    child.remove(ch.key().as_bytes())?;
                    if let Child::Case { sscc: case } = ch
                        && let Some(v) = cont.get(case.as_bytes())?
                    {
                        let mut cc: Container = match dec(case.as_bytes(), &v) {
                            Ok(x) => x,
                            Err(e) => return abort(e),
                        };
                        cc.parent = None;
                        cont.insert(case.as_bytes(), enc(&cc))?;
                    }
                }
                cont.remove(sscc.as_bytes())?;
                for o in out {
                    ob.insert(o.event_id.as_bytes(), enc(o))?;
                }
                Ok(c)
            })
            .map_err(tx_err("dissolve"))?;
        self.flush()?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(s: &str) -> Child {
        Child::Unit {
            gtin: "09506000134352".into(),
            serial: s.into(),
        }
    }

    fn intent(sscc: &str, level: Level, children: Vec<Child>) -> Intent {
        Intent {
            sscc: sscc.into(),
            level,
            batch: "B1".into(),
            children,
            stage: Stage::Printing,
            at_us: 1,
            partial_of: None,
        }
    }

    fn pack(
        s: &AggStore,
        sscc: &str,
        level: Level,
        children: Vec<Child>,
    ) -> Result<Container, StoreError> {
        s.begin(&intent(sscc, level, children))?;
        s.advance(sscc, Stage::Verified)?;
        s.commit(sscc, &[])
    }

    #[test]
    fn a_child_never_gets_two_parents_and_counters_never_repeat() -> Result<(), StoreError> {
        let d = tempfile::tempdir().map_err(|e| StoreError::Refused(e.to_string()))?;
        let s = AggStore::open(d.path())?;
        assert_eq!(s.next_serial_reference(Level::Case)?, 1);
        assert_eq!(s.next_serial_reference(Level::Case)?, 2);
        assert_eq!(s.next_serial_reference(Level::Pallet)?, 1);
        pack(&s, "A", Level::Case, vec![unit("1"), unit("2")])?;
        // Not verified: refused.
        s.begin(&intent("B", Level::Case, vec![unit("3")]))?;
        assert!(matches!(s.commit("B", &[]), Err(StoreError::Refused(_))));
        // Unit 2 already in A: refused, nothing changed.
        s.advance("B", Stage::Verified)?;
        s.begin(&intent("C", Level::Case, vec![unit("2"), unit("4")]))?;
        s.advance("C", Stage::Verified)?;
        assert!(matches!(s.commit("C", &[]), Err(StoreError::Refused(_))));
        assert_eq!(s.parent_of(&unit("4"))?, None);
        assert_eq!(s.parent_of(&unit("2"))?.as_deref(), Some("A"));
        s.commit("B", &[])?;
        let h = s.abandon("C", vec!["duplicate".into()], 5)?;
        assert_eq!(h.sscc.as_deref(), Some("C"));
        assert!(s.intents()?.is_empty());
        // Pallet of A and B; a case on a pallet cannot be opened or dissolved.
        let cases = vec![
            Child::Case { sscc: "A".into() },
            Child::Case { sscc: "B".into() },
        ];
        pack(&s, "P", Level::Pallet, cases)?;
        assert_eq!(
            s.container("A")?.and_then(|c| c.parent).as_deref(),
            Some("P")
        );
        assert!(s.open_case("A").is_err());
        assert!(s.dissolve("A", &[]).is_err());
        // Unknown case on a pallet: refused.
        assert!(
            pack(
                &s,
                "Q",
                Level::Pallet,
                vec![Child::Case { sscc: "Z".into() }]
            )
            .is_err()
        );
        s.dissolve("P", &[])?;
        assert_eq!(s.container("A")?.and_then(|c| c.parent), None);
        // Rework: open, swap a unit, close.
        s.open_case("A")?;
        assert!(s.rework_case("A", &[], &[unit("3")], &[]).is_err());
        let c = s.rework_case("A", &[unit("1")], &[unit("9")], &[])?;
        assert_eq!(c.children, vec![unit("2"), unit("9")]);
        s.close_case("A")?;
        assert_eq!(s.parent_of(&unit("1"))?, None);
        assert_eq!(s.parent_of(&unit("9"))?.as_deref(), Some("A"));
        drop(s);
        // Everything survives a reopen.
        let s = AggStore::open(d.path())?;
        assert_eq!(s.next_serial_reference(Level::Case)?, 3);
        assert_eq!(s.holds()?.len(), 1);
        assert_eq!(s.counts()?.get(&Level::Case), Some(&2));
        Ok(())
    }

    #[test]
    fn a_short_case_is_closed_from_its_hold_once() -> Result<(), StoreError> {
        let d = tempfile::tempdir().map_err(|e| StoreError::Refused(e.to_string()))?;
        let s = AggStore::open(d.path())?;
        let kids = vec![unit("1"), unit("2")];
        let h = s.hold_with_children(
            Level::Case,
            "B1",
            vec![format!("{SHORT}: 2 of 4 units")],
            None,
            3,
            kids.clone(),
        )?;
        assert!(h.is_short());
        let other = s.hold(Level::Case, "B1", vec!["count: 2 found".into()], None, 4)?;
        assert!(!other.is_short());
        // Not a short hold, other children, another batch: refused, nothing changed.
        assert!(matches!(
            s.close_partial(other.id, &intent("X", Level::Case, kids.clone())),
            Err(StoreError::Refused(_))
        ));
        assert!(
            s.close_partial(h.id, &intent("X", Level::Case, vec![unit("1")]))
                .is_err()
        );
        let mut wrong_batch = intent("X", Level::Case, kids.clone());
        wrong_batch.batch = "B2".into();
        assert!(s.close_partial(h.id, &wrong_batch).is_err());
        assert_eq!(s.holds()?.len(), 2);
        assert!(s.intents()?.is_empty());
        // A unit packed meanwhile: refused.
        pack(&s, "Y", Level::Case, vec![unit("2")])?;
        assert!(
            s.close_partial(h.id, &intent("X", Level::Case, kids.clone()))
                .is_err()
        );
        s.dissolve("Y", &[])?;
        // Now it goes: the hold is resolved (kept), the intent recorded, then committed
        // as usual.
        s.close_partial(h.id, &intent("X", Level::Case, kids.clone()))?;
        let resolved = s.hold_by_id(h.id)?.and_then(|h| h.resolved);
        assert_eq!(resolved.map(|r| r.by).as_deref(), Some("case station"));
        assert_eq!(s.open_holds()?.len(), 1);
        assert_eq!(s.holds()?.len(), 2);
        assert!(
            s.close_partial(h.id, &intent("Z", Level::Case, kids.clone()))
                .is_err()
        );
        s.advance("X", Stage::Verified)?;
        let c = s.commit("X", &[])?;
        assert_eq!(c.children, kids);
        assert_eq!(s.parent_of(&unit("1"))?.as_deref(), Some("X"));
        Ok(())
    }

    #[test]
    fn a_resolved_hold_is_kept_with_who_and_why() -> Result<(), StoreError> {
        let d = tempfile::tempdir().map_err(|e| StoreError::Refused(e.to_string()))?;
        let s = AggStore::open(d.path())?;
        let a = s.hold(Level::Case, "B1", vec!["unreadable: x".into()], None, 3)?;
        let b = s.hold(
            Level::Case,
            "B1",
            vec!["label verify: x".into()],
            Some("C".into()),
            4,
        )?;
        let r = Resolution {
            by: "sue".into(),
            why: "case emptied and repacked".into(),
            at_us: 9,
        };
        // Who and why are required; an unknown hold is refused.
        let empty = Resolution {
            why: " ".into(),
            ..r.clone()
        };
        assert!(matches!(
            s.resolve_hold(a.id, &empty),
            Err(StoreError::Refused(_))
        ));
        assert!(matches!(
            s.resolve_hold(999, &r),
            Err(StoreError::Unknown(_))
        ));
        let h = s.resolve_hold(a.id, &r)?;
        assert_eq!(h.resolved.as_ref(), Some(&r));
        // Once only; the record stays.
        assert!(
            matches!(s.resolve_hold(a.id, &r), Err(StoreError::Refused(m)) if m.contains("already resolved by sue"))
        );
        assert_eq!(
            s.open_holds()?.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![b.id]
        );
        assert_eq!(s.holds()?.len(), 2);
        // The holds naming a container are resolved with it.
        assert_eq!(s.resolve_holds_of("C", &r)?, vec![b.id]);
        assert_eq!(s.resolve_holds_of("C", &r)?, Vec::<u64>::new());
        assert!(s.open_holds()?.is_empty());
        drop(s);
        let s = AggStore::open(d.path())?;
        assert_eq!(s.hold_by_id(a.id)?.and_then(|h| h.resolved), Some(r));
        // A resolved short hold is no longer closable as a partial case.
        let sh = s.hold_with_children(
            Level::Case,
            "B1",
            vec![format!("{SHORT}: 1 of 4 units")],
            None,
            5,
            vec![unit("1")],
        )?;
        s.resolve_hold(
            sh.id,
            &Resolution {
                by: "sue".into(),
                why: "units scrapped".into(),
                at_us: 6,
            },
        )?;
        assert!(
            matches!(s.close_partial(sh.id, &intent("X", Level::Case, vec![unit("1")])), Err(StoreError::Refused(m)) if m.contains("already resolved"))
        );
        Ok(())
    }

    #[test]
    fn hold_numbers_start_at_1_and_follow_a_store_that_counted_from_0() -> Result<(), StoreError> {
        let d = tempfile::tempdir().map_err(|e| StoreError::Refused(e.to_string()))?;
        let s = AggStore::open(&d.path().join("new"))?;
        let a = s.hold(Level::Case, "B1", vec!["unreadable: x".into()], None, 1)?;
        let b = s.hold(Level::Case, "B1", vec!["unreadable: y".into()], None, 2)?;
        assert_eq!((a.id, b.id), (1, 2));
        drop(s);
        let s = AggStore::open(&d.path().join("new"))?;
        assert_eq!(
            s.hold(Level::Pallet, "B1", vec!["x".into()], None, 3)?.id,
            3
        );
        // A store written before the counter: its holds numbered by sled from 0.
        let old = AggStore::open(&d.path().join("old"))?;
        for id in [0u64, 1] {
            let h = Hold {
                id,
                level: Level::Case,
                batch: "B1".into(),
                reasons: vec![format!("old {id}")],
                sscc: None,
                at_us: id,
                children: Vec::new(),
                resolved: None,
            };
            old.holds
                .insert(id.to_be_bytes(), enc(&h))
                .map_err(io("test"))?;
        }
        let n = old.hold(Level::Case, "B1", vec!["new".into()], None, 5)?;
        assert_eq!(n.id, 2);
        assert_eq!(
            old.holds()?.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(
            old.hold_by_id(0)?.map(|h| h.reasons),
            Some(vec!["old 0".into()])
        );
        Ok(())
    }

    #[test]
    fn a_case_gtin_and_serial_is_a_case_like_an_sscc() -> Result<(), StoreError> {
        let d = tempfile::tempdir().map_err(|e| StoreError::Refused(e.to_string()))?;
        let s = AggStore::open(d.path())?;
        let case = "(01)19506000134359(21)C1";
        pack(&s, case, Level::Case, vec![unit("1")])?;
        let c = Child::Case { sscc: case.into() };
        assert_eq!(c.key(), case);
        pack(&s, "195060000000000012", Level::Pallet, vec![c.clone()])?;
        assert_eq!(s.parent_of(&c)?.as_deref(), Some("195060000000000012"));
        assert_eq!(
            Child::Case {
                sscc: "195060000000000012".into()
            }
            .key(),
            "(00)195060000000000012"
        );
        Ok(())
    }
}
