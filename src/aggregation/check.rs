//! The checks between a decoded layer and an aggregation: every unit code must be this
//! product and batch, Commissioned (in the pool) and commissioned in this batch (its
//! event in the journal), not already packed, not seen twice; every case label on a
//! pallet layer (an SSCC, or a case GTIN + serial) must be a closed case of this batch
//! on no pallet; nothing unreadable;
//! the count equal to the packing level. Any problem holds the case or pallet: the
//! children are only handed on when the problem list is empty. The ledger of what was
//! commissioned is built from the pool and the journal; it owns no storage.

use std::collections::HashSet;
use std::fmt;

use super::detect::{Cell, CellRead, CellResult};
use super::store::{AggStore, Child, Level, Status, StoreError};
use crate::epcis::aggregation::AggregationEvents;
use crate::gs1::Gs1Code;
use crate::journal::{Journal, JournalError, Seq};
use crate::pool::{Pool, PoolError, SerialState, Store};
use crate::uplink::record::{EVENT_RECORD, EventRecord};

/// One thing wrong with a layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    /// A cell that should hold a code is empty.
    Missing {
        /// Where.
        cell: Cell,
    },
    /// A cell with ink that does not read.
    Unreadable {
        /// Where.
        cell: Cell,
    },
    /// A code that is not what this station packs (not GS1, another product or batch,
    /// not commissioned in this batch, not a closed case…).
    Foreign {
        /// Where.
        cell: Cell,
        /// The code as read (GS shown as `|`).
        code: String,
        /// Why it does not belong.
        why: String,
    },
    /// The same code in two cells.
    Duplicate {
        /// The second cell.
        cell: Cell,
        /// The child.
        child: String,
    },
    /// A child already in another container.
    AlreadyPacked {
        /// Where.
        cell: Cell,
        /// The child.
        child: String,
        /// Its container.
        parent: String,
    },
    /// Not as many children as the packing level asks.
    Count {
        /// Children found.
        found: u32,
        /// Packing level.
        expected: u32,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |c: &Cell| format!("row {} col {} ({}, {})", c.row + 1, c.col + 1, c.x, c.y);
        match self {
            Problem::Missing { cell } => write!(f, "missing: nothing at {}", at(cell)),
            Problem::Unreadable { cell } => {
                write!(f, "unreadable: a code at {} does not read", at(cell))
            }
            Problem::Foreign { cell, code, why } => {
                write!(f, "foreign: {code} at {}: {why}", at(cell))
            }
            Problem::Duplicate { cell, child } => {
                write!(f, "duplicate: {child} again at {}", at(cell))
            }
            Problem::AlreadyPacked {
                cell,
                child,
                parent,
            } => write!(f, "already-packed: {child} at {} is in {parent}", at(cell)),
            Problem::Count { found, expected } => {
                write!(f, "count: {found} found, packing level {expected}")
            }
        }
    }
}

/// What a layer check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LayerCheck {
    /// The children that passed, in cell order.
    pub children: Vec<Child>,
    /// Every problem; the container may be aggregated only when this is empty.
    pub problems: Vec<Problem>,
}

impl LayerCheck {
    /// Whether the layer may be aggregated.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where a unit stands for aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitStatus {
    /// Commissioned in this batch and still Commissioned.
    Ok,
    /// Anything else, and why.
    Not(String),
}

/// Unit states as the pool knows them.
pub trait SerialStates {
    /// The serial's state, `None` when the pool does not have it.
    fn state_of(&self, gtin: &str, serial: &str) -> Result<Option<SerialState>, PoolError>;
}

impl<S: Store> SerialStates for Pool<S> {
    fn state_of(&self, gtin: &str, serial: &str) -> Result<Option<SerialState>, PoolError> {
        Pool::state_of(self, gtin, serial)
    }
}

/// A pool shared with the case-label serials ([`super::station::PoolCaseIds`]).
impl<S: Store> SerialStates for std::sync::Arc<std::sync::Mutex<Pool<S>>> {
    fn state_of(&self, gtin: &str, serial: &str) -> Result<Option<SerialState>, PoolError> {
        match self.lock() {
            Ok(p) => p.state_of(gtin, serial),
            Err(_) => Err(PoolError::Usage(
                "the serial pool's lock is poisoned".into(),
            )),
        }
    }
}

/// What was commissioned in one batch: the pool's states plus the batch's
/// commissioning events in the journal.
pub struct BatchLedger {
    gtin: String,
    batch: String,
    ids: AggregationEvents,
    states: Box<dyn SerialStates + Send>,
    commissioned: HashSet<String>,
    next: Seq,
}

impl fmt::Debug for BatchLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchLedger")
            .field("gtin", &self.gtin)
            .field("batch", &self.batch)
            .field("commissioned", &self.commissioned.len())
            .finish_non_exhaustive()
    }
}

impl BatchLedger {
    /// The ledger of `batch` of product `gtin`; call [`BatchLedger::refresh`] to read
    /// the journal.
    pub fn new(
        gtin: &str,
        batch: &str,
        ids: AggregationEvents,
        states: Box<dyn SerialStates + Send>,
    ) -> BatchLedger {
        BatchLedger {
            gtin: gtin.to_string(),
            batch: batch.to_string(),
            ids,
            states,
            commissioned: HashSet::new(),
            next: Seq(0),
        }
    }

    /// Read the journal's events since the last refresh.
    pub fn refresh(&mut self, journal: &Journal) -> Result<(), JournalError> {
        if self.next < journal.first_seq() {
            self.next = journal.first_seq();
        }
        loop {
            let recs = journal.read_from(self.next, 4096)?;
            let Some(last) = recs.last() else {
                return Ok(());
            };
            self.next = Seq(last.seq.0 + 1);
            for r in recs.iter().filter(|r| r.kind == EVENT_RECORD) {
                let Ok(e) = EventRecord::decode(r.seq, &r.payload) else {
                    continue;
                };
                if e.batch != self.batch
                    || e.event.get("bizStep").and_then(|v| v.as_str()) != Some("commissioning")
                    || e.event.get("action").and_then(|v| v.as_str()) != Some("ADD")
                {
                    continue;
                }
                if let Some(list) = e.event.get("epcList").and_then(|v| v.as_array()) {
                    self.commissioned
                        .extend(list.iter().filter_map(|v| v.as_str().map(str::to_string)));
                }
            }
        }
    }

    /// Units commissioned in the batch so far.
    pub fn commissioned(&self) -> usize {
        self.commissioned.len()
    }

    /// Whether unit `serial` of `gtin` may be packed.
    pub fn unit(&self, gtin: &str, serial: &str) -> UnitStatus {
        if gtin != self.gtin {
            return UnitStatus::Not(format!(
                "GTIN {gtin} is not this line's product {}",
                self.gtin
            ));
        }
        match self.states.state_of(gtin, serial) {
            Ok(Some(SerialState::Commissioned)) => {}
            Ok(Some(s)) => return UnitStatus::Not(format!("serial is {}", s.name())),
            Ok(None) => return UnitStatus::Not("serial is not in the pool".into()),
            Err(e) => return UnitStatus::Not(format!("pool: {e}")),
        }
        match self.ids.unit_uri(gtin, serial) {
            Ok(uri) if self.commissioned.contains(&uri) => UnitStatus::Ok,
            Ok(_) => UnitStatus::Not(format!("not commissioned in batch {}", self.batch)),
            Err(e) => UnitStatus::Not(e.to_string()),
        }
    }
}

fn shown(code: &str) -> String {
    code.replace('\u{1d}', "|").chars().take(80).collect()
}

/// Split a layer's reads: the codes read (with their cell) and the empty cells; an
/// unreadable cell is a problem of `out` already.
fn sort_reads<'a>(
    reads: &'a [CellResult],
    out: &mut LayerCheck,
) -> (Vec<(Cell, &'a str)>, Vec<Cell>) {
    let mut codes = Vec::with_capacity(reads.len());
    let mut empties = Vec::new();
    for r in reads {
        match &r.read {
            CellRead::Empty => empties.push(r.cell),
            CellRead::Unreadable => out.problems.push(Problem::Unreadable { cell: r.cell }),
            CellRead::Code(t) => codes.push((r.cell, t.as_str())),
        }
    }
    (codes, empties)
}

/// Check a case layer: `expected` units of the ledger's product and batch (`lot`).
pub fn check_case(
    reads: &[CellResult],
    expected: u32,
    lot: &str,
    ledger: &BatchLedger,
    store: &AggStore,
) -> Result<LayerCheck, StoreError> {
    let mut out = LayerCheck::default();
    let mut seen = HashSet::new();
    let (codes, empties) = sort_reads(reads, &mut out);
    for (cell, text) in codes {
        let foreign = |why: String| Problem::Foreign {
            cell,
            code: shown(text),
            why,
        };
        let code = match Gs1Code::parse_element_string(text) {
            Ok(c) => c,
            Err(e) => {
                out.problems
                    .push(foreign(format!("not a GS1 element string: {e}")));
                continue;
            }
        };
        let (Some(gtin), Some(serial)) = (code.get("01"), code.get("21")) else {
            out.problems
                .push(foreign("no GTIN (01) and serial (21)".into()));
            continue;
        };
        if code.get("10") != Some(lot) {
            out.problems.push(foreign(format!(
                "lot {} is not this batch's {lot}",
                code.get("10").unwrap_or("(none)")
            )));
            continue;
        }
        let child = Child::Unit {
            gtin: gtin.to_string(),
            serial: serial.to_string(),
        };
        if !seen.insert(child.key()) {
            out.problems.push(Problem::Duplicate {
                cell,
                child: child.key(),
            });
            continue;
        }
        if let UnitStatus::Not(why) = ledger.unit(gtin, serial) {
            out.problems.push(foreign(why));
            continue;
        }
        if let Some(parent) = store.parent_of(&child)? {
            out.problems.push(Problem::AlreadyPacked {
                cell,
                child: child.key(),
                parent,
            });
            continue;
        }
        out.children.push(child);
    }
    finish(&mut out, expected, &empties);
    Ok(out)
}

/// Check a pallet layer: `expected` case labels, each a closed case of `batch` on no
/// pallet.
pub fn check_pallet(
    reads: &[CellResult],
    expected: u32,
    batch: &str,
    store: &AggStore,
) -> Result<LayerCheck, StoreError> {
    let mut out = LayerCheck::default();
    let mut seen = HashSet::new();
    let (codes, empties) = sort_reads(reads, &mut out);
    for (cell, text) in codes {
        let foreign = |why: String| Problem::Foreign {
            cell,
            code: shown(text),
            why,
        };
        let sscc = match Gs1Code::parse_element_string(text) {
            Ok(c) => match (c.get("00"), c.get("01"), c.get("21")) {
                (Some(s), _, _) => s.to_string(),
                // A case labelled with its case GTIN and serial.
                (None, Some(g), Some(s)) => format!("(01){g}(21){s}"),
                _ => {
                    out.problems.push(foreign(
                        "no SSCC (00) nor case GTIN + serial (01)(21)".into(),
                    ));
                    continue;
                }
            },
            Err(e) => {
                out.problems
                    .push(foreign(format!("not a GS1 element string: {e}")));
                continue;
            }
        };
        let child = Child::Case { sscc: sscc.clone() };
        if !seen.insert(sscc.clone()) {
            out.problems.push(Problem::Duplicate {
                cell,
                child: child.key(),
            });
            continue;
        }
        match store.container(&sscc)? {
            None => out.problems.push(foreign("no such aggregated case".into())),
            Some(c) if c.level != Level::Case => {
                out.problems.push(foreign("a pallet, not a case".into()))
            }
            Some(c) if c.status != Status::Closed => out
                .problems
                .push(foreign("the case is open for rework".into())),
            Some(c) if c.batch != batch => out
                .problems
                .push(foreign(format!("case of batch {}", c.batch))),
            Some(Container {
                parent: Some(p), ..
            }) => out.problems.push(Problem::AlreadyPacked {
                cell,
                child: child.key(),
                parent: p,
            }),
            Some(_) => out.children.push(child),
        }
    }
    finish(&mut out, expected, &empties);
    Ok(out)
}

use super::store::Container;

fn finish(out: &mut LayerCheck, expected: u32, empties: &[Cell]) {
    let found = out.children.len() as u32;
    let accounted = found as usize + out.problems.len();
    if accounted < expected as usize {
        // The first empty cells are where the missing children should have been.
        for &cell in empties.iter().take(expected as usize - accounted) {
            out.problems.push(Problem::Missing { cell });
        }
    }
    if found != expected {
        out.problems.push(Problem::Count { found, expected });
    }
}
