//! The daemon's aggregation: [`AggService`] owns the store, the line's journal, the
//! audit trail, the clock and the batch ledgers, offers the rework steps to the HMI
//! (one step at a time) and the trees and holds to the read API; [`Stations`] runs the
//! case and pallet stations on their real drivers in threads of their own, stopping
//! cleanly with the daemon.
//!
//! Serial states: in the daemon the service shares the line's pool
//! ([`crate::pipeline::Line::pool`], [`AggService::with_pool`]); the batch ledger asks
//! it first ([`LineStates`]): the pool is the durable record of every serial's state,
//! including serials whose events left the journal long ago (retention) and states set
//! outside the line. The pool marks a serial Commissioned only after its commissioning
//! event is durable in the journal (the recorder, then the printer thread), so for a
//! serial the pool still shows as Allocated or Encoded the journal's later state wins
//! ([`JournalStates`]). Without a shared pool (tests, tools) the journal alone answers.
//! Cases labelled `gtin-serial` take their serials from the same shared pool
//! ([`PoolCaseIds`], settled by `recover_settling` at start).
//!
//! End of batch: before each case layer the runner works out whether it is the batch's
//! last case ([`is_last_case`]): the units commissioned in the batch less those packed
//! (cases of the batch, and the checked units its open holds keep — short or not: see
//! [`AggStore::units_packed`]), plus — while the batch runs — the units still to be
//! inspected, cannot fill another case. A short last layer is then held as `short`
//! with its units; the supervisor closes it at the HMI ([`AggService::close_short`]),
//! which the case station's thread does (it owns the label printer and camera: a
//! command channel, waited on for a bounded time, see [`Claim`]), reading the label
//! from frame `n + 1` where `n` is the layer frame it waits for next (that pair is then
//! used up).
//!
//! Holds are never deleted: [`AggService::resolve_hold`] (supervisor, reason) marks one
//! resolved, and re-closing or partially closing a container resolves the holds naming
//! it.
//!
//! Station trigger: the station camera numbers the frame of an open layer `n` and the
//! frame of the printed label `n + 1` (the case packer's convention; hil-sim does the
//! same); the station waits for layer frames `0, 2, 4, …`, a later frame number is
//! followed. A station packs for the running batch, or when none runs for the profile's
//! `[batch] lot`; with neither it holds the container ("no batch").
//!
//! It does not decode, check or print (that is [`super::station`]), nor decide roles
//! (the HMI does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use linectl_drivers::camera::{Frame, FrameSource};
use linectl_drivers::printer::{PrintItem, Printer, PrinterStatus};
use linectl_drivers::{Error as DevError, ErrorKind};

use super::AggError;
use super::check::{BatchLedger, SerialStates};
use super::rework::{Packing, PartialGrant, Rework};
use super::show::{parse_code, show};
use super::station::{self, Devices, Outcome, Station, StationConfig};
use super::station::{ContainerIds, PoolCaseIds};
use super::store::{AggStore, Child, Container, Hold, Level, Resolution};
use crate::audit::{AuditActor, AuditTrail};
use crate::clock::Clock;
use crate::epcis::aggregation::AggregationEvents;
use crate::journal::{Journal, Seq};
use crate::pool::SharedPool;
use crate::pool::{PoolError, SerialState};
use crate::uplink::record::{EVENT_RECORD, EventRecord};

/// Serial states as the journal's events leave them (see the module docs).
#[derive(Clone, Default)]
pub struct JournalStates {
    inner: Arc<Mutex<StatesInner>>,
    ids: Option<AggregationEvents>,
}

#[derive(Default)]
struct StatesInner {
    next: Seq,
    states: HashMap<String, SerialState>,
}

impl JournalStates {
    /// An empty view; unit URIs are built by `ids`.
    pub fn new(ids: AggregationEvents) -> JournalStates {
        JournalStates {
            inner: Arc::default(),
            ids: Some(ids),
        }
    }

    /// Read the journal's events since the last refresh.
    pub fn refresh(&self, journal: &Journal) -> Result<(), crate::journal::JournalError> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.next < journal.first_seq() {
            g.next = journal.first_seq();
        }
        loop {
            let recs = journal.read_from(g.next, 4096)?;
            let Some(last) = recs.last() else {
                return Ok(());
            };
            g.next = Seq(last.seq.0 + 1);
            for r in recs.iter().filter(|r| r.kind == EVENT_RECORD) {
                let Ok(e) = EventRecord::decode(r.seq, &r.payload) else {
                    continue;
                };
                let step = e.event.get("bizStep").and_then(|v| v.as_str());
                let action = e.event.get("action").and_then(|v| v.as_str());
                let to = match (step, action) {
                    (Some("commissioning"), Some("ADD")) => SerialState::Commissioned,
                    (Some("destroying"), _) => SerialState::Destroyed,
                    (Some("decommissioning"), _) => SerialState::SnInvalid,
                    (Some("sampling"), _) => SerialState::Sampled,
                    _ => continue,
                };
                if let Some(list) = e.event.get("epcList").and_then(|v| v.as_array()) {
                    for uri in list.iter().filter_map(|v| v.as_str()) {
                        g.states.insert(uri.to_string(), to);
                    }
                }
            }
        }
    }
}

impl SerialStates for JournalStates {
    fn state_of(&self, gtin: &str, serial: &str) -> Result<Option<SerialState>, PoolError> {
        let Some(ids) = &self.ids else {
            return Ok(None);
        };
        let Ok(uri) = ids.unit_uri(gtin, serial) else {
            return Ok(None);
        };
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(g.states.get(&uri).copied())
    }
}

/// Unit states from the line's shared pool, the journal filling the pool's short lag
/// (see the module docs).
#[derive(Clone)]
pub struct LineStates {
    pool: SharedPool,
    journal: JournalStates,
}

impl LineStates {
    /// States from `pool`, then `journal` for serials not final in the pool yet.
    pub fn new(pool: SharedPool, journal: JournalStates) -> LineStates {
        LineStates { pool, journal }
    }
}

impl SerialStates for LineStates {
    fn state_of(&self, gtin: &str, serial: &str) -> Result<Option<SerialState>, PoolError> {
        let in_pool = crate::pool::alloc::lock(&self.pool)?.state_of(gtin, serial)?;
        match in_pool {
            None | Some(SerialState::Allocated | SerialState::Encoded) => {
                Ok(self.journal.state_of(gtin, serial)?.or(in_pool))
            }
            final_state => Ok(final_state),
        }
    }
}

/// The running batch as the line reports it, for the end-of-batch decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineBatch {
    /// The lot.
    pub lot: String,
    /// Its expiry (YYMMDD).
    pub expiry: String,
    /// Units to code in the batch.
    pub quantity: u64,
    /// Units with a verdict so far.
    pub inspected: u64,
}

/// Tells how the running batch stands (`None` between batches).
pub type LineProbe = Arc<dyn Fn() -> Option<LineBatch> + Send + Sync>;

/// The running batch from the line's status (see [`running_batch`] for the states).
pub fn line_batch(status: crate::pipeline::StatusCell) -> LineProbe {
    let running = running_batch(status.clone());
    Arc::new(move || {
        running()?;
        let s = status.snapshot();
        s.batch.map(|b| LineBatch {
            lot: b.lot,
            expiry: b.expiry,
            quantity: b.quantity,
            inspected: s.inspected,
        })
    })
}

/// Whether the next case of a batch is its last one: the units not packed yet
/// (`commissioned - packed`) and those still to come cannot fill a case of
/// `units_per_case`. With nothing left to pack it is not a case at all (false).
pub fn is_last_case(units_per_case: u32, commissioned: u64, packed: u64, to_come: u64) -> bool {
    let left = commissioned.saturating_sub(packed);
    left > 0 && left.saturating_add(to_come) < u64::from(units_per_case)
}

/// Cases labelled with a case GTIN and a serial from the shared pool
/// (`case_label = "gtin-serial"`).
#[derive(Debug, Clone)]
pub struct CaseSerials {
    /// The case GTIN-14.
    pub case_gtin: String,
    /// The line id (pool blocks name it).
    pub line: String,
    /// Print the batch's expiry (17) and lot (10) on the label too.
    pub label_batch: bool,
    /// The expiry of the profile's `[batch]`, for a batch packed while none runs.
    pub default_expiry: Option<String>,
}

/// A command for the case station's thread.
#[derive(Debug)]
pub enum StationCmd {
    /// Close the short hold `hold` as a partial case (see [`AggService::close_short`]).
    ClosePartial {
        /// The hold.
        hold: u64,
        /// Who asked and why.
        resolution: Resolution,
        /// Taken by the station before it acts, or given up by the requester: only
        /// one of the two happens.
        claim: Claim,
        /// The outcome and the label frame number read.
        reply: crossbeam_channel::Sender<Result<(Outcome, u64), String>>,
    },
}

/// Who has a command: the station takes it before acting on it, or its requester gives
/// it up after waiting too long — whichever comes first; the other then knows.
#[derive(Debug, Clone, Default)]
pub struct Claim(Arc<std::sync::atomic::AtomicU8>);

const CLAIM_PENDING: u8 = 0;
const CLAIM_TAKEN: u8 = 1;
const CLAIM_GIVEN_UP: u8 = 2;

impl Claim {
    /// The station's side: whether it may act (false: the requester gave up, nothing
    /// may be done).
    pub fn take(&self) -> bool {
        self.0
            .compare_exchange(
                CLAIM_PENDING,
                CLAIM_TAKEN,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// The requester's side: whether it gave up before the station took the command
    /// (false: the station is acting on it).
    pub fn give_up(&self) -> bool {
        self.0
            .compare_exchange(
                CLAIM_PENDING,
                CLAIM_GIVEN_UP,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }
}

/// How long [`AggService::close_short`] waits for the case station by default (it
/// looks at commands between containers, at least once per camera timeout).
pub const STATION_ANSWER: Duration = Duration::from_secs(20);

/// Tells which batch the line is running now (`None` between batches).
pub type BatchProbe = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// The running batch's lot, from the line's status (`None` between batches).
pub fn running_batch(status: crate::pipeline::StatusCell) -> BatchProbe {
    Arc::new(move || {
        let s = status.snapshot();
        let running = matches!(
            s.state.as_str(),
            "Starting"
                | "Execute"
                | "Holding"
                | "Held"
                | "Unholding"
                | "Suspending"
                | "Suspended"
                | "Unsuspending"
                | "Completing"
        );
        s.batch.filter(|_| running).map(|b| b.lot)
    })
}

/// What [`AggService::new`] needs.
pub struct ServiceParts {
    /// The aggregation store (`<data>/aggregation`).
    pub store: AggStore,
    /// The line's journal.
    pub journal: Arc<Journal>,
    /// The event builder.
    pub events: AggregationEvents,
    /// The audit trail (the HMI's).
    pub audit: Arc<AuditTrail>,
    /// Event and audit times.
    pub clock: Arc<dyn Clock>,
    /// The product's GTIN-14.
    pub gtin: String,
    /// Packing levels.
    pub packing: Packing,
    /// The running batch.
    pub running_batch: BatchProbe,
    /// The batch to pack when none runs (the profile's `[batch] lot`).
    pub default_batch: Option<String>,
}

/// The aggregation of a running daemon.
pub struct AggService {
    p: ServiceParts,
    states: JournalStates,
    pool: Option<SharedPool>,
    case_serials: Option<CaseSerials>,
    line_batch: Option<LineProbe>,
    case_station: Mutex<Option<crossbeam_channel::Sender<StationCmd>>>,
    station_answer: Duration,
    ledgers: Mutex<HashMap<String, BatchLedger>>,
    /// One rework step at a time (a step's checks and its change belong together).
    step: Mutex<()>,
}

impl std::fmt::Debug for AggService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggService")
            .field("gtin", &self.p.gtin)
            .field("packing", &self.p.packing)
            .finish_non_exhaustive()
    }
}

/// A rework step asked of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Open a closed case.
    Open,
    /// Take units out of an open case.
    Remove(Vec<Child>),
    /// Put units into an open case.
    Add(Vec<Child>),
    /// Close an open case holding the packing level.
    Close,
    /// Close an open short case (needs a [`PartialGrant`]).
    ClosePartial,
    /// Dissolve a case or a pallet.
    Dissolve,
}

impl AggService {
    /// The service over `parts`.
    pub fn new(parts: ServiceParts) -> AggService {
        AggService {
            states: JournalStates::new(parts.events.clone()),
            p: parts,
            pool: None,
            case_serials: None,
            line_batch: None,
            case_station: Mutex::new(None),
            station_answer: STATION_ANSWER,
            ledgers: Mutex::new(HashMap::new()),
            step: Mutex::new(()),
        }
    }

    /// Share the line's serial pool: unit states for the ledgers ([`LineStates`]) and,
    /// with [`AggService::with_case_serials`], the case labels' serials.
    pub fn with_pool(mut self, pool: SharedPool) -> AggService {
        self.pool = Some(pool);
        self
    }

    /// Label cases with a case GTIN and a serial from the shared pool (needs
    /// [`AggService::with_pool`]).
    pub fn with_case_serials(mut self, c: CaseSerials) -> AggService {
        self.case_serials = Some(c);
        self
    }

    /// How long a request to the case station ([`AggService::close_short`]) waits for
    /// the station to take it, and then again for its outcome.
    pub fn with_station_answer(mut self, wait: Duration) -> AggService {
        self.station_answer = wait.max(Duration::from_millis(1));
        self
    }

    /// Follow the running batch's quantity and progress for the end-of-batch decision.
    pub fn with_line_batch(mut self, probe: LineProbe) -> AggService {
        self.line_batch = Some(probe);
        self
    }

    /// The case label source of a station packing `batch`: the pool's serials of the
    /// case GTIN when configured, else `None` (the profile's SSCC scheme).
    fn case_ids(
        &self,
        batch: &str,
        with_label_ais: bool,
    ) -> Result<Option<Box<dyn ContainerIds>>, AggError> {
        let (Some(c), Some(pool)) = (&self.case_serials, &self.pool) else {
            if self.case_serials.is_some() {
                return Err(AggError::Usage(
                    "case_label = \"gtin-serial\" needs the line's serial pool".into(),
                ));
            }
            return Ok(None);
        };
        let mut ids = PoolCaseIds::new(pool.clone(), &c.case_gtin, &c.line, batch)?;
        if c.label_batch && with_label_ais {
            let expiry = self
                .line_batch
                .as_ref()
                .and_then(|f| f())
                .filter(|b| b.lot == batch)
                .map(|b| b.expiry)
                .or_else(|| c.default_expiry.clone())
                .ok_or_else(|| {
                    AggError::Usage(format!(
                        "case_label_batch: no expiry known for batch {batch}"
                    ))
                })?;
            ids = ids.with_label_ais(vec![("17".into(), expiry), ("10".into(), batch.into())])?;
        }
        Ok(Some(Box::new(ids)))
    }

    /// Whether the next case layer of `batch` is its last case (see [`is_last_case`]).
    pub fn next_case_is_last(&self, batch: &str) -> Result<bool, AggError> {
        let commissioned = self.with_ledger(batch, |l| l.commissioned() as u64)?;
        let packed = self.p.store.units_packed(batch)?;
        let to_come = self
            .line_batch
            .as_ref()
            .and_then(|f| f())
            .filter(|b| b.lot == batch)
            .map_or(0, |b| b.quantity.saturating_sub(b.inspected));
        Ok(is_last_case(
            self.p.packing.units_per_case,
            commissioned,
            packed,
            to_come,
        ))
    }

    /// The store (read it; change it only through the steps).
    pub fn store(&self) -> &AggStore {
        &self.p.store
    }

    /// The packing levels.
    pub fn packing(&self) -> Packing {
        self.p.packing
    }

    /// The batch a station packs for now.
    pub fn station_batch(&self) -> Option<String> {
        (self.p.running_batch)().or_else(|| self.p.default_batch.clone())
    }

    /// Run `f` on the refreshed ledger of `batch`.
    pub fn with_ledger<T>(
        &self,
        batch: &str,
        f: impl FnOnce(&BatchLedger) -> T,
    ) -> Result<T, AggError> {
        self.states.refresh(&self.p.journal)?;
        let mut g = self.ledgers.lock().unwrap_or_else(|p| p.into_inner());
        let l = g.entry(batch.to_string()).or_insert_with(|| {
            let states: Box<dyn SerialStates + Send> = match &self.pool {
                Some(p) => Box::new(LineStates::new(p.clone(), self.states.clone())),
                None => Box::new(self.states.clone()),
            };
            BatchLedger::new(&self.p.gtin, batch, self.p.events.clone(), states)
        });
        l.refresh(&self.p.journal)?;
        Ok(f(l))
    }

    /// The text tree of a scanned code (see [`show`]).
    pub fn show(&self, code: &str) -> Result<Option<String>, AggError> {
        Ok(show(&self.p.store, code)?)
    }

    /// The container a scanned code names or is in (its top-level container).
    pub fn container_of(&self, code: &str) -> Result<Option<Container>, AggError> {
        let Some(child) = parse_code(code) else {
            return Ok(None);
        };
        let sscc = match &child {
            Child::Case { sscc } => sscc.clone(),
            // A case labelled with a case GTIN and serial reads like a unit code.
            Child::Unit { .. } if self.p.store.container(&child.key())?.is_some() => child.key(),
            Child::Unit { .. } => match self.p.store.parent_of(&child)? {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        Ok(self.p.store.container(&sscc)?)
    }

    /// Every open hold, oldest first.
    pub fn holds(&self) -> Result<Vec<Hold>, AggError> {
        Ok(self.p.store.open_holds()?)
    }

    /// Every hold, resolved ones included, oldest first.
    pub fn all_holds(&self) -> Result<Vec<Hold>, AggError> {
        Ok(self.p.store.holds()?)
    }

    /// Resolve the open hold `id` as `actor` with `reason` (role checks are the
    /// caller's): audited first, then kept in the store marked resolved.
    pub fn resolve_hold(
        &self,
        actor: &AuditActor,
        id: u64,
        reason: &str,
    ) -> Result<Hold, AggError> {
        if reason.trim().is_empty() {
            return Err(AggError::Usage("resolving a hold needs a reason".into()));
        }
        let _one = self.step.lock().unwrap_or_else(|p| p.into_inner());
        let h = self
            .p
            .store
            .hold_by_id(id)?
            .ok_or_else(|| AggError::Usage(format!("no hold {id}")))?;
        if let Some(r) = &h.resolved {
            return Err(AggError::Usage(format!(
                "hold {id} was already resolved by {}: {}",
                r.by, r.why
            )));
        }
        super::rework::audited(
            &self.p.audit,
            super::rework::Step {
                actor,
                detail: format!("resolve {} hold {id}", h.level.name()),
                object: format!("hold:{id}"),
                reason,
                old: Some(h.reasons.join("; ")),
                new: Some("resolved".into()),
            },
            || {
                Ok(self.p.store.resolve_hold(
                    id,
                    &Resolution {
                        by: actor.user.clone(),
                        why: reason.to_string(),
                        at_us: self.p.clock.wall_micros(),
                    },
                )?)
            },
        )
    }

    /// The supervisor closes the short hold `id` (the last case of a batch, held with
    /// its units and no label yet) as a partial case: audited first, then done by the
    /// case station's thread (label printed, read back from the camera, ADD event).
    /// Returns the case and the label frame number; a label that does not read back
    /// holds it short again (an error naming the new hold).
    pub fn close_short(
        &self,
        actor: &AuditActor,
        id: u64,
        reason: &str,
    ) -> Result<(Container, u64), AggError> {
        if reason.trim().is_empty() {
            return Err(AggError::Usage(
                "closing a partial case needs a reason".into(),
            ));
        }
        let h = self
            .p
            .store
            .hold_by_id(id)?
            .ok_or_else(|| AggError::Usage(format!("no hold {id}")))?;
        if !h.is_short() {
            return Err(AggError::Usage(format!(
                "hold {id} is not an open partial case at the end of a batch"
            )));
        }
        let tx = self
            .case_station
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| AggError::Usage("no case station runs".into()))?;
        let n = h.children.len();
        super::rework::audited(
            &self.p.audit,
            super::rework::Step {
                actor,
                detail: format!(
                    "close partial case of {n} of {} units from hold {id} (label at the case station)",
                    self.p.packing.units_per_case
                ),
                object: format!("hold:{id}"),
                reason,
                old: Some("held short".into()),
                new: Some(format!(
                    "closed partial {n}/{}",
                    self.p.packing.units_per_case
                )),
            },
            || {
                let (rtx, rrx) = crossbeam_channel::bounded(1);
                let claim = Claim::default();
                let wait = self.station_answer;
                let secs = wait.as_secs_f64();
                tx.send_timeout(
                    StationCmd::ClosePartial {
                        hold: id,
                        resolution: Resolution {
                            by: actor.user.clone(),
                            why: format!("closed as a partial case: {reason}"),
                            at_us: self.p.clock.wall_micros(),
                        },
                        claim: claim.clone(),
                        reply: rtx,
                    },
                    wait,
                )
                .map_err(|e| match e {
                    crossbeam_channel::SendTimeoutError::Timeout(_) => AggError::Usage(format!(
                        "the case station did not answer in {secs:.0} s; nothing was changed"
                    )),
                    crossbeam_channel::SendTimeoutError::Disconnected(_) => {
                        AggError::Usage("the case station has stopped; nothing was changed".into())
                    }
                })?;
                let got = match rrx.recv_timeout(wait) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) if claim.give_up() => {
                        // The station never took it and now never will.
                        return Err(AggError::Usage(format!(
                            "the case station did not answer in {secs:.0} s; nothing was changed"
                        )));
                    }
                    // Taken meanwhile: the station is printing and reading the label
                    // (bounded by its device timeouts); wait for how it ended.
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        rrx.recv_timeout(wait).map_err(|_| {
                            AggError::Usage(format!(
                                "the case station took the request but gave no outcome within {:.0} s more: \
                                 see the holds and the case list for what it did",
                                secs
                            ))
                        })
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(AggError::Usage(
                        "the case station stopped before closing the case".into(),
                    )),
                    Ok(r) => Ok(r),
                };
                match got {
                    Ok(Ok((Outcome::Aggregated(c), frame))) => Ok((c, frame)),
                    Ok(Ok((Outcome::Held(h), frame))) => Err(AggError::Usage(format!(
                        "the label (frame {frame}) did not verify: held short again as hold {}: {}",
                        h.id,
                        h.reasons.join("; ")
                    ))),
                    Ok(Err(e)) => Err(AggError::Usage(e)),
                    Err(e) => Err(e),
                }
            },
        )
    }

    /// Every container, by SSCC.
    pub fn containers(&self) -> Result<Vec<Container>, AggError> {
        Ok(self.p.store.containers()?)
    }

    /// Why the open case `sscc` may be closed short: its batch has ended, or it was
    /// held short (a count or missing-unit problem); an error saying why not otherwise.
    pub fn partial_grant(&self, sscc: &str) -> Result<PartialGrant, AggError> {
        let c = self
            .p
            .store
            .container(sscc)?
            .ok_or_else(|| AggError::Usage(format!("no case or pallet {sscc}")))?;
        if let Some(h) = self.p.store.open_holds()?.into_iter().find(|h| {
            h.sscc.as_deref() == Some(sscc)
                && h.reasons
                    .iter()
                    .any(|r| r.starts_with("count:") || r.starts_with("missing:"))
        }) {
            return Ok(PartialGrant::ShortHold { hold: h.id });
        }
        match (self.p.running_batch)() {
            Some(b) if b == c.batch => Err(AggError::Usage(format!(
                "batch {b} is still running: a partial case is closed only at the end of its batch"
            ))),
            _ => Ok(PartialGrant::BatchEnded { batch: c.batch }),
        }
    }

    fn rework(&self) -> Rework<'_> {
        Rework {
            store: &self.p.store,
            journal: &self.p.journal,
            events: &self.p.events,
            audit: &self.p.audit,
            clock: self.p.clock.clone(),
            packing: self.p.packing,
        }
    }

    /// Do one rework step on `sscc` as `actor` (role checks are the caller's).
    pub fn apply(
        &self,
        actor: &AuditActor,
        sscc: &str,
        step: &Step,
        reason: &str,
    ) -> Result<Container, AggError> {
        let _one = self.step.lock().unwrap_or_else(|p| p.into_inner());
        let r = self.rework();
        let done = match step {
            Step::Open => r.open_case(actor, sscc, reason),
            Step::Close => r.close_case(actor, sscc, reason),
            Step::ClosePartial => {
                let grant = self.partial_grant(sscc)?;
                r.close_partial(actor, sscc, reason, &grant)
            }
            Step::Dissolve => r.dissolve(actor, sscc, reason),
            Step::Remove(units) => r.swap_units(actor, sscc, units, &[], None, reason),
            Step::Add(units) => {
                let batch = self
                    .p
                    .store
                    .container(sscc)?
                    .map(|c| c.batch)
                    .ok_or_else(|| AggError::Usage(format!("no case {sscc}")))?;
                self.with_ledger(&batch, |l| {
                    r.swap_units(actor, sscc, &[], units, Some(l), reason)
                })?
            }
        }?;
        if matches!(step, Step::Close | Step::ClosePartial) {
            let res = Resolution {
                by: actor.user.clone(),
                why: format!("{sscc} re-closed: {reason}"),
                at_us: self.p.clock.wall_micros(),
            };
            match self.p.store.resolve_holds_of(sscc, &res) {
                Ok(ids) if !ids.is_empty() => {
                    tracing::info!(sscc, holds = ?ids, "holds resolved by the re-close")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(sscc, error = %e, "holds not resolved"),
            }
        }
        Ok(done)
    }
}

// ---- the stations ---------------------------------------------------------------------

/// One station's device settings.
#[derive(Debug, Clone)]
pub struct StationDevices {
    /// Camera frame-stream kind (`tcp-stream`).
    pub camera_kind: String,
    /// Camera address.
    pub camera_address: String,
    /// Label printer kind.
    pub printer_kind: String,
    /// Label printer address.
    pub printer_address: String,
    /// Device round-trip and frame timeout.
    pub timeout: Duration,
}

type Slot<T> = Arc<Mutex<Option<Box<T>>>>;

fn not_connected(what: &str) -> DevError {
    DevError::Disconnected {
        device: what.into(),
        during: "reconnecting",
        pending: 0,
    }
}

/// The camera as the station sees it: frames from the shared connection, the layer
/// frame the runner already took handed back first.
struct SharedCamera {
    slot: Slot<dyn FrameSource>,
    ahead: Arc<Mutex<Option<Frame>>>,
}

impl FrameSource for SharedCamera {
    fn describe(&self) -> &str {
        "station camera"
    }
    fn frame(&mut self, unit: u64) -> Result<Frame, DevError> {
        if let Some(f) = self
            .ahead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_if(|f| f.unit == unit)
        {
            return Ok(f);
        }
        let mut g = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let cam = g.as_mut().ok_or_else(|| not_connected("station camera"))?;
        let r = cam.frame(unit);
        if matches!(&r, Err(e) if e.kind() == ErrorKind::Transport) {
            *g = None;
        }
        r
    }
}

struct SharedPrinter {
    slot: Slot<dyn Printer>,
}

impl SharedPrinter {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut dyn Printer) -> Result<T, DevError>,
    ) -> Result<T, DevError> {
        let mut g = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let p = g.as_mut().ok_or_else(|| not_connected("label printer"))?;
        let r = f(p.as_mut());
        if matches!(&r, Err(e) if e.kind() == ErrorKind::Transport) {
            *g = None;
        }
        r
    }
}

impl Printer for SharedPrinter {
    fn describe(&self) -> &str {
        "label printer"
    }
    fn select_job(&mut self, job: &str) -> Result<(), DevError> {
        self.with(|p| p.select_job(job))
    }
    fn load(&mut self, items: &[PrintItem]) -> Result<(), DevError> {
        self.with(|p| p.load(items))
    }
    fn clear(&mut self) -> Result<(), DevError> {
        self.with(|p| p.clear())
    }
    fn printed_count(&mut self) -> Result<u64, DevError> {
        self.with(|p| p.printed_count())
    }
    fn status(&mut self) -> Result<PrinterStatus, DevError> {
        self.with(|p| p.status())
    }
    fn buffer_depth(&self) -> usize {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(1, |p| p.buffer_depth())
    }
}

/// What one station thread needs besides the service.
#[derive(Debug, Clone)]
pub struct StationSetup {
    /// Case or pallet.
    pub level: Level,
    /// The station's settings, batch aside (taken at each container).
    pub config: StationConfig,
    /// Its devices.
    pub devices: StationDevices,
}

/// Counts of one station since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationCounts {
    /// Containers aggregated.
    pub aggregated: u64,
    /// Containers held.
    pub held: u64,
}

/// The running stations.
pub struct Stations {
    svc: Option<Arc<AggService>>,
    stop: Arc<AtomicBool>,
    threads: Vec<(Level, JoinHandle<()>)>,
    counts: Arc<Mutex<HashMap<Level, StationCounts>>>,
}

impl std::fmt::Debug for Stations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stations")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl Stations {
    /// Recover what a crash interrupted, then start a thread per station.
    pub fn start(svc: Arc<AggService>, setups: Vec<StationSetup>) -> Result<Stations, AggError> {
        let now = svc.p.clock.wall_micros();
        let r = match svc.case_ids(&svc.station_batch().unwrap_or_default(), false)? {
            // Interrupted case labels' serials are settled in the pool too.
            Some(mut ids) => station::recover_settling(
                &svc.p.store,
                &svc.p.journal,
                &svc.p.events,
                now,
                &mut *ids,
            )?,
            None => station::recover(&svc.p.store, &svc.p.journal, &svc.p.events, now)?,
        };
        if r != station::Recovered::default() {
            tracing::warn!(voided = ?r.voided, committed = ?r.committed, journaled = r.journaled,
                "aggregation recovered after a restart");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let mut threads = Vec::new();
        for s in setups {
            let (tx, cmds) = crossbeam_channel::bounded(4);
            if s.level == Level::Case {
                *svc.case_station.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
            }
            let (svc, stop, counts) = (svc.clone(), stop.clone(), counts.clone());
            let level = s.level;
            let h = std::thread::Builder::new()
                .name(format!("linectl-{}-station", level.name()))
                .spawn(move || run_station(&svc, s, &stop, &counts, &cmds))
                .map_err(|e| {
                    AggError::Usage(format!("starting the {} station: {e}", level.name()))
                })?;
            threads.push((level, h));
        }
        Ok(Stations {
            svc: Some(svc),
            stop,
            threads,
            counts,
        })
    }

    /// Counts per station.
    pub fn counts(&self) -> HashMap<Level, StationCounts> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stop every station after the container it is on, and wait for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(svc) = &self.svc {
            svc.case_station
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
        for (level, h) in self.threads {
            if h.join().is_err() {
                tracing::error!(level = level.name(), "station thread panicked");
            }
        }
    }
}

fn connect(dev: &StationDevices, cam: &Slot<dyn FrameSource>, prn: &Slot<dyn Printer>) {
    let mut c = cam.lock().unwrap_or_else(|p| p.into_inner());
    if c.is_none() {
        match linectl_drivers::connect_frame_source(
            &dev.camera_kind,
            &dev.camera_address,
            dev.timeout,
        ) {
            Ok(s) => *c = Some(s),
            Err(e) => tracing::debug!(error = %e, "station camera not connected"),
        }
    }
    drop(c);
    let mut p = prn.lock().unwrap_or_else(|p| p.into_inner());
    if p.is_none() {
        match linectl_drivers::connect_printer(
            &dev.printer_kind,
            &dev.printer_address,
            None,
            dev.timeout,
        ) {
            Ok(s) => *p = Some(s),
            Err(e) => tracing::debug!(error = %e, "label printer not connected"),
        }
    }
}

/// The frame number a stream source names when the frame asked for was passed over
/// ("… the next frame is for unit N").
fn later_frame(msg: &str) -> Option<u64> {
    msg.rsplit_once("the next frame is for unit ")
        .and_then(|(_, n)| n.trim().parse().ok())
}

/// The station of `batch`, made when the batch changes.
fn station_for<'a>(
    svc: &AggService,
    s: &StationSetup,
    slot: &'a mut Option<(String, Station)>,
    batch: &str,
    cam: &Slot<dyn FrameSource>,
    prn: &Slot<dyn Printer>,
    ahead: &Arc<Mutex<Option<Frame>>>,
) -> Result<&'a mut Station, AggError> {
    if slot.as_ref().is_none_or(|(b, _)| b != batch) {
        let cfg = StationConfig {
            batch: batch.to_string(),
            ..s.config.clone()
        };
        let dev = Devices {
            camera: Box::new(SharedCamera {
                slot: cam.clone(),
                ahead: ahead.clone(),
            }),
            printer: Box::new(SharedPrinter { slot: prn.clone() }),
        };
        let mut st = Station::new(
            cfg,
            dev,
            svc.p.store.clone(),
            svc.p.journal.clone(),
            svc.p.events.clone(),
            svc.p.clock.clone(),
        );
        if s.level == Level::Case
            && let Some(ids) = svc.case_ids(batch, true)?
        {
            st = st.with_ids(ids);
        }
        *slot = Some((batch.to_string(), st));
    }
    slot.as_mut()
        .map(|(_, st)| st)
        .ok_or_else(|| AggError::Usage("no station".into()))
}

fn run_station(
    svc: &Arc<AggService>,
    s: StationSetup,
    stop: &AtomicBool,
    counts: &Mutex<HashMap<Level, StationCounts>>,
    cmds: &crossbeam_channel::Receiver<StationCmd>,
) {
    let level = s.level;
    let cam: Slot<dyn FrameSource> = Arc::new(Mutex::new(None));
    let prn: Slot<dyn Printer> = Arc::new(Mutex::new(None));
    let ahead = Arc::new(Mutex::new(None));
    let mut station: Option<(String, Station)> = None;
    let mut next: u64 = 0;
    tracing::info!(level = level.name(), camera = %s.devices.camera_address,
        printer = %s.devices.printer_address, "aggregation station started");
    while !stop.load(Ordering::SeqCst) {
        connect(&s.devices, &cam, &prn);
        // Commands from the HMI, between containers.
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                StationCmd::ClosePartial {
                    hold,
                    resolution,
                    claim,
                    reply,
                } => {
                    if !claim.take() {
                        tracing::info!(
                            hold,
                            "partial close given up by its requester before the station got to it: not done"
                        );
                        continue;
                    }
                    // The partial case takes the next frame pair: its label is n + 1.
                    let label = next + 1;
                    let r = svc
                        .p
                        .store
                        .hold_by_id(hold)
                        .map_err(AggError::from)
                        .and_then(|h| h.ok_or_else(|| AggError::Usage(format!("no hold {hold}"))))
                        .and_then(|h| {
                            station_for(svc, &s, &mut station, &h.batch, &cam, &prn, &ahead)
                        })
                        .and_then(|st| st.close_partial_as(hold, label, resolution));
                    if r.is_ok() {
                        next += 2;
                    }
                    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                    let n = c.entry(level).or_default();
                    match &r {
                        Ok(Outcome::Aggregated(_)) => n.aggregated += 1,
                        Ok(Outcome::Held(_)) => n.held += 1,
                        Err(e) => {
                            tracing::warn!(level = level.name(), hold, error = %e, "partial close refused")
                        }
                    }
                    drop(c);
                    let _ = reply.send(r.map(|o| (o, label)).map_err(|e| e.to_string()));
                }
            }
        }
        let connected = cam.lock().map(|c| c.is_some()).unwrap_or(false);
        if !connected {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        // Wait for the next layer frame (a timeout is an idle station).
        let got = {
            let mut g = cam.lock().unwrap_or_else(|p| p.into_inner());
            match g.as_mut() {
                Some(c) => {
                    let r = c.frame(next);
                    if matches!(&r, Err(e) if e.kind() == ErrorKind::Transport) {
                        *g = None;
                    }
                    r
                }
                None => continue,
            }
        };
        let frame = match got {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::Timeout => continue,
            Err(e) if e.kind() == ErrorKind::DeviceFault => {
                // A later frame came: follow the packer's numbering (the stream keeps
                // that frame for the next call and names its number).
                match later_frame(&e.to_string()).filter(|n| *n > next) {
                    Some(n) => next = n,
                    None => {
                        tracing::warn!(level = level.name(), error = %e, "station camera");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(level = level.name(), error = %e, "station camera");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let layer = frame.unit;
        *ahead.lock().unwrap_or_else(|p| p.into_inner()) = Some(frame);
        next = layer + 2;
        let Some(batch) = svc.station_batch() else {
            if let Err(e) = svc.p.store.hold(
                level,
                "",
                vec!["no batch: no batch runs and the profile names no [batch] lot".into()],
                None,
                svc.p.clock.wall_micros(),
            ) {
                tracing::error!(level = level.name(), error = %e, "hold not recorded");
            }
            continue;
        };
        let st = match station_for(svc, &s, &mut station, &batch, &cam, &prn, &ahead) {
            Ok(st) => st,
            Err(e) => {
                tracing::error!(level = level.name(), batch, error = %e, "station not set up");
                let held = svc.p.store.hold(
                    level,
                    &batch,
                    vec![format!("station: {e}")],
                    None,
                    svc.p.clock.wall_micros(),
                );
                let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                if held.is_ok() {
                    c.entry(level).or_default().held += 1;
                }
                continue;
            }
        };
        let out = match level {
            Level::Case => svc
                .next_case_is_last(&batch)
                .and_then(|last| {
                    st.set_end_of_batch(last);
                    svc.with_ledger(&batch, |l| st.process(layer, layer + 1, Some(l)))
                })
                .and_then(|r| r),
            Level::Pallet => st.process(layer, layer + 1, None),
        };
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = c.entry(level).or_default();
        match out {
            Ok(Outcome::Aggregated(_)) => n.aggregated += 1,
            Ok(Outcome::Held(_)) => n.held += 1,
            Err(e) => {
                tracing::error!(level = level.name(), error = %e, "station: store or journal failed");
                drop(c);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        ahead.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
    tracing::info!(level = level.name(), "aggregation station stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epcis::{EventTime, IdForm, Sgln};
    use crate::journal::JournalConfig;

    fn unit(s: &str) -> Child {
        Child::Unit {
            gtin: "09506000134352".into(),
            serial: s.into(),
        }
    }

    #[test]
    fn a_partial_close_waits_for_the_batch_end_or_a_short_hold() {
        use crate::aggregation::store::{Intent, Stage, Status};
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock::new());
        let journal = Arc::new(
            Journal::open(JournalConfig {
                consumers: Vec::new(),
                ..JournalConfig::in_dir(d.path().join("journal"))
            })
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let (audit, _) =
            AuditTrail::open(d.path(), clock.clone()).unwrap_or_else(|e| panic!("{e}"));
        let store = AggStore::open(&d.path().join("aggregation")).unwrap_or_else(|e| panic!("{e}"));
        let site = Sgln::new("9506000000008", None).unwrap_or_else(|e| panic!("{e}"));
        let events = AggregationEvents::new(IdForm::DigitalLink, &site, &site)
            .unwrap_or_else(|e| panic!("{e}"));
        let scheme =
            crate::gs1::sscc::SsccScheme::new(0, "9506000").unwrap_or_else(|e| panic!("{e}"));
        let [a, b] = [1, 2].map(|n| {
            scheme
                .sscc(n)
                .unwrap_or_else(|e| panic!("{e}"))
                .as_str()
                .to_string()
        });
        for (sscc, serials) in [(&a, ["A1", "A2"]), (&b, ["B1", "B2"])] {
            store
                .begin(&Intent {
                    sscc: sscc.clone(),
                    level: Level::Case,
                    batch: "B1".into(),
                    children: serials.iter().map(|s| unit(s)).collect(),
                    stage: Stage::Printing,
                    at_us: 1,
                    partial_of: None,
                })
                .unwrap_or_else(|e| panic!("{e}"));
            store
                .advance(sscc, Stage::Verified)
                .unwrap_or_else(|e| panic!("{e}"));
            store.commit(sscc, &[]).unwrap_or_else(|e| panic!("{e}"));
        }
        let running = Arc::new(AtomicBool::new(true));
        let r = running.clone();
        let svc = AggService::new(ServiceParts {
            store: store.clone(),
            journal,
            events,
            audit: Arc::new(audit),
            clock,
            gtin: "09506000134352".into(),
            packing: Packing {
                units_per_case: 2,
                cases_per_pallet: 2,
            },
            running_batch: Arc::new(move || r.load(Ordering::SeqCst).then(|| "B1".to_string())),
            default_batch: None,
        });
        let actor = AuditActor {
            user: "sue".into(),
            role: "supervisor".into(),
        };
        for sscc in [&a, &b] {
            svc.apply(&actor, sscc, &Step::Open, "short")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        svc.apply(&actor, &a, &Step::Remove(vec![unit("A1")]), "torn")
            .unwrap_or_else(|e| panic!("{e}"));
        svc.apply(&actor, &b, &Step::Remove(vec![unit("B1")]), "torn")
            .unwrap_or_else(|e| panic!("{e}"));
        // Batch B1 still runs: refused, the case stays open.
        let e = svc.apply(&actor, &a, &Step::ClosePartial, "end of batch");
        assert!(
            matches!(&e, Err(AggError::Usage(m)) if m.contains("still running")),
            "{e:?}"
        );
        assert_eq!(
            store.container(&a).ok().flatten().map(|c| c.status),
            Some(Status::Open)
        );
        // A hold that says case b was short grants it while the batch runs.
        let h = store
            .hold(
                Level::Case,
                "B1",
                vec!["count: 1 found, packing level 2".into()],
                Some(b.clone()),
                5,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            svc.partial_grant(&b).ok(),
            Some(PartialGrant::ShortHold { hold: h.id })
        );
        svc.apply(&actor, &b, &Step::ClosePartial, "short case")
            .unwrap_or_else(|e| panic!("{e}"));
        // After the batch: granted.
        running.store(false, Ordering::SeqCst);
        let c = svc
            .apply(&actor, &a, &Step::ClosePartial, "end of batch")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.status, c.children.len()), (Status::Closed, 1));
        // A full close of a short case is refused whatever the batch does.
        svc.apply(&actor, &a, &Step::Open, "again")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = svc.apply(&actor, &a, &Step::Close, "full?");
        assert!(
            matches!(&e, Err(AggError::Usage(m)) if m.contains("packing level is 2")),
            "{e:?}"
        );
    }

    /// A service over fresh stores in `d` (packing 4 units a case), batch B1 running.
    fn service_in(d: &std::path::Path) -> (AggService, AggStore, Arc<AuditTrail>) {
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock::new());
        let journal = Arc::new(
            Journal::open(JournalConfig {
                consumers: Vec::new(),
                ..JournalConfig::in_dir(d.join("journal"))
            })
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let (audit, _) = AuditTrail::open(d, clock.clone()).unwrap_or_else(|e| panic!("{e}"));
        let audit = Arc::new(audit);
        let store = AggStore::open(&d.join("aggregation")).unwrap_or_else(|e| panic!("{e}"));
        let site = Sgln::new("9506000000008", None).unwrap_or_else(|e| panic!("{e}"));
        let events = AggregationEvents::new(IdForm::DigitalLink, &site, &site)
            .unwrap_or_else(|e| panic!("{e}"));
        let svc = AggService::new(ServiceParts {
            store: store.clone(),
            journal,
            events,
            audit: audit.clone(),
            clock,
            gtin: "09506000134352".into(),
            packing: Packing {
                units_per_case: 4,
                cases_per_pallet: 2,
            },
            running_batch: Arc::new(|| Some("B1".to_string())),
            default_batch: None,
        });
        (svc, store, audit)
    }

    #[test]
    fn a_partial_close_the_station_does_not_take_in_time_is_given_up_and_never_done() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (svc, store, audit) = service_in(d.path());
        let svc = Arc::new(svc.with_station_answer(Duration::from_millis(300)));
        let h = store
            .hold_with_children(
                Level::Case,
                "B1",
                vec!["short: 1 of 4 units in the last case of batch B1".into()],
                None,
                1,
                vec![unit("A1")],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        // A case station busy elsewhere: its command channel is not read.
        let (tx, cmds) = crossbeam_channel::bounded(4);
        *svc.case_station.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        let actor = AuditActor {
            user: "sue".into(),
            role: "supervisor".into(),
        };
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let s2 = svc.clone();
        let a2 = actor.clone();
        let id = h.id;
        std::thread::spawn(move || {
            let _ = done_tx.send(s2.close_short(&a2, id, "last case"));
        });
        let r = done
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("close_short never returned"));
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("did not answer in") && e.contains("nothing was changed"),
            "{e}"
        );
        // The station gets to it later: the command is given up, it must not act.
        match cmds.try_recv() {
            Ok(StationCmd::ClosePartial { claim, hold, .. }) => {
                assert_eq!(hold, h.id);
                assert!(!claim.take(), "a given-up command was still taken");
            }
            Err(e) => panic!("no command was sent: {e}"),
        }
        assert!(
            store
                .hold_by_id(h.id)
                .ok()
                .flatten()
                .is_some_and(|h| h.is_short()),
            "the hold changed"
        );
        // The attempt is on record: audited first, then its failure.
        let recs = audit
            .query(&crate::audit::Query::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            recs.iter()
                .filter(|r| r.object == format!("hold:{}", h.id))
                .count()
                >= 2,
            "{recs:?}"
        );
        // A station that takes a command in time is answered (the claim is its).
        let c = Claim::default();
        assert!(c.take());
        assert!(!c.give_up());
    }

    #[test]
    fn the_last_case_is_the_one_no_full_case_can_follow() {
        // 10 commissioned, 8 packed, batch over: 2 left, the last case (short).
        assert!(is_last_case(4, 10, 8, 0));
        // 4 left: a full case, not the last short one.
        assert!(!is_last_case(4, 12, 8, 0));
        // Batch running: 2 left but 5 still to inspect may fill a case.
        assert!(!is_last_case(4, 10, 8, 5));
        // 2 left, 1 to come: no full case can be made.
        assert!(is_last_case(4, 10, 8, 1));
        // Nothing left: no case at all.
        assert!(!is_last_case(4, 8, 8, 0));
        assert!(!is_last_case(4, 8, 9, 0));
    }

    #[test]
    fn a_later_frame_number_is_read_from_the_stream_error() {
        let e = DevError::DeviceFault {
            device: "tcp-stream@127.0.0.1:7201".into(),
            code: None,
            detail: "frame of unit 0 lost: the next frame is for unit 1000".into(),
        };
        assert_eq!(later_frame(&e.to_string()), Some(1000));
        assert_eq!(later_frame("camera: device fault: overheated"), None);
    }

    #[test]
    fn journal_states_follow_commissioning_and_later_events() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let j = Journal::open(JournalConfig {
            consumers: Vec::new(),
            ..JournalConfig::in_dir(d.path().join("journal"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let site = Sgln::new("9506000000008", None).unwrap_or_else(|e| panic!("{e}"));
        let ids = AggregationEvents::new(IdForm::DigitalLink, &site, &site)
            .unwrap_or_else(|e| panic!("{e}"));
        let line =
            crate::epcis::LineEvents::new(IdForm::DigitalLink, "09506000134352", &site, &site)
                .unwrap_or_else(|e| panic!("{e}"));
        let t =
            EventTime::from_wall_micros(1_767_225_600_000_000, 0).unwrap_or_else(|e| panic!("{e}"));
        for ev in [
            line.commissioning(t, &["A1", "A2"], "B1", "281231")
                .unwrap_or_else(|e| panic!("{e}")),
            line.rejected_destroyed(t, &["A2"])
                .unwrap_or_else(|e| panic!("{e}")),
        ] {
            let ev = ev.with_hash_id().unwrap_or_else(|e| panic!("{e}"));
            let rec = EventRecord::new("B1", &ev).unwrap_or_else(|e| panic!("{e}"));
            j.append(EVENT_RECORD, rec.encode())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let s = JournalStates::new(ids);
        s.refresh(&j).unwrap_or_else(|e| panic!("{e}"));
        let st = |serial: &str| {
            s.state_of("09506000134352", serial)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(st("A1"), Some(SerialState::Commissioned));
        assert_eq!(st("A2"), Some(SerialState::Destroyed));
        assert_eq!(st("A3"), None);
    }
}
