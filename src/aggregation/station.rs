//! A case or pallet station on real devices: it takes the frame of the open layer from
//! the station camera, decodes every code of the layer, checks them, and only then
//! takes an SSCC (durably), records the intent, loads the label into the label printer,
//! reads the printed label back from the camera and, when it matches, commits the
//! aggregation with its ADD event in one store transaction and journals the event. Any
//! problem — a check, a device error, a label that does not read back — holds the
//! container for rework with every reason; nothing is aggregated on doubt.
//!
//! Crash safety: the intent is durable before the printer sees the SSCC; the event is
//! written in the same transaction as the aggregation and delivered to the journal
//! from that outbox. [`recover`] finishes what a crash interrupted: a label that was
//! being printed is voided and its case held; a verified label is committed; an event
//! not yet journaled is journaled once (its eventID is looked for first).

use std::sync::{Arc, Mutex};

use linectl_drivers::camera::FrameSource;
use linectl_drivers::printer::{PrintItem, Printer};

use super::AggError;
use super::check::{BatchLedger, LayerCheck, Problem, check_case, check_pallet};
use super::detect::{CellResult, LayerDecoder};
use super::store::{
    AggStore, Child, Container, Hold, Intent, Level, Outgoing, Resolution, SHORT, Stage,
};
use crate::clock::Clock;
use crate::epcis::EventTime;
use crate::epcis::aggregation::AggregationEvents;
use crate::gs1::container::{ContainerId, check_gtin14};
use crate::gs1::sscc::SsccScheme;
use crate::journal::{Journal, Seq};
use crate::pool::alloc::AllocatorConfig;
use crate::pool::{Pool, PoolError, SerialState, Store};
use crate::profile::aggregation::LayoutSection;
use crate::uplink::record::{EVENT_RECORD, EventRecord};

/// What one station does.
#[derive(Debug, Clone)]
pub struct StationConfig {
    /// Case or pallet.
    pub level: Level,
    /// The layout of the layer in the camera frame.
    pub layout: LayoutSection,
    /// Packing level: children per container.
    pub expected: u32,
    /// The SSCC scheme of this level's labels.
    pub scheme: SsccScheme,
    /// The batch (lot).
    pub batch: String,
    /// The label printer's job.
    pub label_job: String,
}

/// The devices of a station.
pub struct Devices {
    /// The camera over the layer and the label.
    pub camera: Box<dyn FrameSource>,
    /// The label printer.
    pub printer: Box<dyn Printer>,
}

/// How one container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Aggregated under this SSCC.
    Aggregated(Container),
    /// Held for rework.
    Held(Hold),
}

/// A running station.
pub struct Station {
    cfg: StationConfig,
    dev: Devices,
    store: AggStore,
    journal: Arc<Journal>,
    events: AggregationEvents,
    clock: Arc<dyn Clock>,
    layer: LayerDecoder,
    label: crate::vision::Decoder,
    job_selected: bool,
    ids: Box<dyn ContainerIds>,
    end_of_batch: bool,
    /// A partial case's label is being printed: a failure holds it short again.
    partial: bool,
    /// The last layer read (for the HMI and diagnostics).
    pub last_reads: Vec<CellResult>,
    /// The last check.
    pub last_check: LayerCheck,
    /// Time the last layer took to decode and check, ms (measured).
    pub last_check_ms: f64,
}

impl Station {
    /// A station on `dev`; call [`recover`] before the first container.
    pub fn new(
        cfg: StationConfig,
        dev: Devices,
        store: AggStore,
        journal: Arc<Journal>,
        events: AggregationEvents,
        clock: Arc<dyn Clock>,
    ) -> Station {
        let ids = Box::new(SsccIds(cfg.scheme.clone()));
        Station {
            ids,
            end_of_batch: false,
            partial: false,
            cfg,
            dev,
            store,
            journal,
            events,
            clock,
            layer: LayerDecoder::new(),
            label: crate::vision::Decoder::new(crate::vision::DecodeConfig::default()),
            job_selected: false,
            last_reads: Vec::new(),
            last_check: LayerCheck::default(),
            last_check_ms: 0.0,
        }
    }

    /// Label the containers of this station from `ids` instead of the profile's SSCC
    /// scheme (a case labelled with a case GTIN and a serial from the pool:
    /// [`PoolCaseIds`]).
    pub fn with_ids(mut self, ids: Box<dyn ContainerIds>) -> Station {
        self.ids = ids;
        self
    }

    /// Whether the next layer is the last case of the batch: a case layer that is only
    /// short of the packing level (at least one unit, nothing else wrong) is then held
    /// as `short`, a partial case the supervisor closes at the HMI
    /// ([`Station::close_partial`]), instead of as missing units.
    pub fn set_end_of_batch(&mut self, last: bool) {
        self.end_of_batch = last;
    }

    fn hold(&mut self, reasons: Vec<String>, sscc: Option<&str>) -> Result<Outcome, AggError> {
        let at = self.clock.wall_micros();
        let h = match sscc {
            Some(s) if self.partial => {
                // The partial case keeps its units: the supervisor may close it again.
                let mut r = vec![format!(
                    "{SHORT}: the partial case's label failed: close it again at the HMI"
                )];
                r.extend(reasons);
                let h = self.store.abandon_keeping_children(s, r, at)?;
                self.ids.settled(s, false)?;
                h
            }
            Some(s) => {
                let h = self.store.abandon(s, reasons, at)?;
                // The identifier was taken (and may be on a label): never again.
                self.ids.settled(s, false)?;
                h
            }
            None => self
                .store
                .hold(self.cfg.level, &self.cfg.batch, reasons, None, at)?,
        };
        tracing::warn!(level = self.cfg.level.name(), hold = h.id, sscc = ?h.sscc,
            reasons = ?h.reasons, "held for rework");
        Ok(Outcome::Held(h))
    }

    /// Process one container: the layer is frame `layer_frame` of the camera, the
    /// printed label frame `label_frame`. `ledger` is needed for cases (unit checks).
    /// Errors are only store and journal failures; device trouble holds the container.
    pub fn process(
        &mut self,
        layer_frame: u64,
        label_frame: u64,
        ledger: Option<&BatchLedger>,
    ) -> Result<Outcome, AggError> {
        let level = self.cfg.level;
        let last = std::mem::take(&mut self.end_of_batch);
        let frame = match self.dev.camera.frame(layer_frame) {
            Ok(f) => f,
            Err(e) => return self.hold(vec![format!("no layer frame: {e}")], None),
        };
        let t0 = std::time::Instant::now();
        let reads =
            match self
                .layer
                .decode(&frame.pixels, frame.width, frame.height, &self.cfg.layout)
            {
                Ok(r) => r,
                Err(e) => return self.hold(vec![format!("layer frame: {e}")], None),
            };
        let check = match (level, ledger) {
            (Level::Case, Some(l)) => {
                check_case(&reads, self.cfg.expected, &self.cfg.batch, l, &self.store)?
            }
            (Level::Case, None) => {
                return Err(AggError::Usage(
                    "a case station needs the batch ledger".into(),
                ));
            }
            (Level::Pallet, _) => {
                check_pallet(&reads, self.cfg.expected, &self.cfg.batch, &self.store)?
            }
        };
        self.last_check_ms = t0.elapsed().as_secs_f64() * 1000.0;
        self.last_reads = reads;
        self.last_check = check.clone();
        if !check.ok() {
            if last && level == Level::Case && only_short(&check) {
                let h = self.store.hold_with_children(
                    level,
                    &self.cfg.batch,
                    vec![format!(
                        "{SHORT}: {} of {} units in the last case of batch {}: close it as a partial case at the HMI",
                        check.children.len(),
                        self.cfg.expected,
                        self.cfg.batch
                    )],
                    None,
                    self.clock.wall_micros(),
                    check.children,
                )?;
                tracing::info!(
                    hold = h.id,
                    units = h.children.len(),
                    "partial case held at the end of the batch"
                );
                return Ok(Outcome::Held(h));
            }
            // The units that passed every check stay with the hold: they sit in the
            // held case (the end-of-batch count needs them, see `AggStore::units_packed`).
            let h = self.store.hold_with_children(
                level,
                &self.cfg.batch,
                check.problems.iter().map(ToString::to_string).collect(),
                None,
                self.clock.wall_micros(),
                check.children,
            )?;
            tracing::warn!(level = level.name(), hold = h.id, reasons = ?h.reasons,
                kept = h.children.len(), "held for rework");
            return Ok(Outcome::Held(h));
        }
        self.label_and_commit(check.children, layer_frame, label_frame, None)
    }

    /// The supervisor closes the partial case of the `short` hold `hold_id` as it is:
    /// a label is taken, printed on the station's printer and read back from camera
    /// frame `label_frame`, and the case aggregated with its ADD event — or held again
    /// if the label does not read back. Refused (an error, nothing changed) if the hold
    /// is not a short case or one of its units got packed meanwhile.
    pub fn close_partial(&mut self, hold_id: u64, label_frame: u64) -> Result<Outcome, AggError> {
        let r = Resolution {
            by: "case station".into(),
            why: "closed as a partial case".into(),
            at_us: self.clock.wall_micros(),
        };
        self.close_partial_as(hold_id, label_frame, r)
    }

    /// [`Station::close_partial`], the hold marked resolved by `resolution` (who asked
    /// for it and why; the label's identifier is added to the why).
    pub fn close_partial_as(
        &mut self,
        hold_id: u64,
        label_frame: u64,
        resolution: Resolution,
    ) -> Result<Outcome, AggError> {
        let h = self
            .store
            .hold_by_id(hold_id)?
            .ok_or_else(|| AggError::Usage(format!("no hold {hold_id}")))?;
        if !h.is_short() || self.cfg.level != Level::Case {
            return Err(AggError::Usage(format!(
                "hold {hold_id} is not a partial case at the end of a batch"
            )));
        }
        self.partial = true;
        let r = self.label_and_commit(
            h.children,
            label_frame,
            label_frame,
            Some((hold_id, resolution)),
        );
        self.partial = false;
        r
    }

    /// Take an identifier, record the intent durably (for a partial case: in the same
    /// transaction that resolves its hold), print, read back, commit.
    fn label_and_commit(
        &mut self,
        children: Vec<Child>,
        unit: u64,
        label_frame: u64,
        partial_of: Option<(u64, Resolution)>,
    ) -> Result<Outcome, AggError> {
        let level = self.cfg.level;
        // Only now is an identifier taken; it is never reused, whatever happens next.
        let id = self.ids.take(level, &self.store)?;
        let key = id.id();
        let intent = Intent {
            sscc: key.clone(),
            level,
            batch: self.cfg.batch.clone(),
            children,
            stage: Stage::Printing,
            at_us: self.clock.wall_micros(),
            partial_of: partial_of.as_ref().map(|(hold, _)| *hold),
        };
        let begun = match partial_of {
            None => self.store.begin(&intent),
            Some((hold, r)) => self.store.close_partial_resolving(
                hold,
                &intent,
                &Resolution {
                    why: format!("{}: label {key}", r.why),
                    ..r
                },
            ),
        };
        if let Err(e) = begun {
            self.ids.settled(&key, false)?;
            return Err(e.into());
        }
        let want = self.ids.label(&id)?;
        if let Err(e) = self.print(want.clone(), unit) {
            return self.hold(vec![format!("label printer: {e}")], Some(&key));
        }
        crash_point("agg-label-printing");
        let label = match self.dev.camera.frame(label_frame) {
            Ok(f) => f,
            Err(e) => return self.hold(vec![format!("no label frame: {e}")], Some(&key)),
        };
        let read = crate::vision::GreyFrame::new(label.width, label.height, label.pixels)
            .map_err(|e| e.to_string())
            .and_then(|g| self.label.decode(&g).map_err(|e| e.to_string()));
        match read {
            Ok(Some(r)) if r.content == want => {}
            Ok(Some(r)) => {
                return self.hold(
                    vec![format!(
                        "label verify: read {:?}, printed {want}",
                        r.content
                    )],
                    Some(&key),
                );
            }
            Ok(None) => {
                return self.hold(
                    vec!["label verify: the label does not read".into()],
                    Some(&key),
                );
            }
            Err(e) => return self.hold(vec![format!("label verify: {e}")], Some(&key)),
        }
        self.store.advance(&key, Stage::Verified)?;
        let c = finish(&self.store, &self.journal, &self.events, &key)?;
        crash_point("agg-committed");
        self.ids.settled(&key, true)?;
        tracing::info!(level = level.name(), id = %id, children = c.children.len(), "aggregated");
        Ok(Outcome::Aggregated(c))
    }

    fn print(&mut self, element_string: String, unit: u64) -> Result<(), linectl_drivers::Error> {
        if !self.job_selected {
            self.dev.printer.select_job(&self.cfg.label_job)?;
            self.job_selected = true;
        }
        self.dev.printer.load(&[PrintItem {
            unit,
            element_string,
            fields: Vec::new(),
        }])
    }
}

/// The crash-test hook: with `LINECTL_CRASH_POINT=NAME` in the environment a station
/// stops at the point `NAME` — it creates the file named by `LINECTL_CRASH_POINT_FILE`
/// (if set) and then waits there for good, for a test to SIGKILL the process at exactly
/// that point. Points: `agg-label-printing` (a label's intent durable and the label
/// sent to the printer, not read back yet) and `agg-committed` (a container aggregated
/// with its event, its identifier not yet settled in the pool). Unset (always, outside
/// such tests) it costs one environment lookup per container.
pub fn crash_point(name: &str) {
    if std::env::var_os("LINECTL_CRASH_POINT").is_none_or(|v| v != name) {
        return;
    }
    tracing::warn!(point = name, "crash point reached: waiting to be killed");
    if let Some(f) = std::env::var_os("LINECTL_CRASH_POINT_FILE") {
        let _ = std::fs::write(f, name);
    }
    loop {
        std::thread::park();
    }
}

/// Whether the only problems of a case layer are that it is short of the packing level
/// (empty cells and the count), with at least one unit in it.
fn only_short(check: &LayerCheck) -> bool {
    let found = check.children.len() as u32;
    found > 0
        && check.problems.iter().all(|p| match p {
            Problem::Missing { .. } => true,
            Problem::Count { found: f, expected } => f < expected,
            _ => false,
        })
}

/// Where the identifiers on a station's labels come from.
pub trait ContainerIds: Send {
    /// Take the next identifier of a `level` container, durably: one handed out is
    /// never handed out again, whatever happens to its label.
    fn take(&mut self, level: Level, store: &AggStore) -> Result<ContainerId, AggError>;

    /// The element string printed on the label of `id` (and expected back from the
    /// label camera). The default: the identifier alone.
    fn label(&self, id: &ContainerId) -> Result<String, AggError> {
        Ok(id.element_string())
    }

    /// The label of `id` (as the store keys it) was aggregated (`true`) or voided
    /// (`false`). The default does nothing (an SSCC counter has no states).
    fn settled(&mut self, id: &str, aggregated: bool) -> Result<(), AggError> {
        let _ = (id, aggregated);
        Ok(())
    }

    /// Write settlements kept back (see [`PoolCaseIds`]). The default has none.
    fn flush(&mut self) -> Result<(), AggError> {
        Ok(())
    }

    /// After a crash (and [`recover`]): settle identifiers a crash left half-way —
    /// a case serial still Encoded in the pool becomes Commissioned if its case is in
    /// the store, LabelScrapped otherwise (a label voided, or taken and never printed);
    /// spares still listed stay. Returns (commissioned, scrapped). The default has none.
    fn settle_leftovers(&mut self, store: &AggStore) -> Result<(usize, usize), AggError> {
        let _ = store;
        Ok((0, 0))
    }
}

/// SSCCs from the profile's scheme, serial references from the store's counter.
#[derive(Debug, Clone)]
pub struct SsccIds(pub SsccScheme);

impl ContainerIds for SsccIds {
    fn take(&mut self, level: Level, store: &AggStore) -> Result<ContainerId, AggError> {
        let serial = store.next_serial_reference(level)?;
        Ok(ContainerId::Sscc(self.0.sscc(serial)?))
    }
}

/// Cases labelled with a case GTIN and a serial from the serial pool.
///
/// Serials are made Encoded a few at a time ([`PoolCaseIds::with_ahead`], 8 by
/// default) in one pool lock hold: one durable block reservation, the block handed out
/// and marked Encoded, the block closed durably. Only then are they listed as spares in
/// the aggregation store (its own fsync, not under the pool lock), and each label takes
/// the next spare: so a case label takes the pool's lock (and its fsyncs) once per few
/// cases, and the line's printer thread, which shares the pool, waits at most that
/// often. A serial is Encoded in the pool before it can reach a label, so a crash never
/// frees it. How a label ended (aggregated: Commissioned, voided: LabelScrapped) is
/// applied to the pool in batches too (at the next refill, every few labels, and at
/// [`ContainerIds::flush`] or drop); after a crash [`recover_settling`] settles what
/// was left Encoded from the store's record (see [`ContainerIds::settle_leftovers`]).
pub struct PoolCaseIds<S: Store + Send + 'static> {
    pool: Arc<Mutex<Pool<S>>>,
    gtin: String,
    line: String,
    batch: String,
    label_ais: Vec<(String, String)>,
    ahead: u64,
    /// Serials settled but not yet written to the pool: (serial, aggregated).
    pending: Vec<(String, bool)>,
}

impl<S: Store + Send + 'static> PoolCaseIds<S> {
    /// Serials of `case_gtin` for `line` and `batch` from `pool` (shared, e.g. with the
    /// batch ledger).
    pub fn new(
        pool: Arc<Mutex<Pool<S>>>,
        case_gtin: &str,
        line: &str,
        batch: &str,
    ) -> Result<Self, AggError> {
        check_gtin14(case_gtin).map_err(|e| AggError::Usage(e.to_string()))?;
        Ok(PoolCaseIds {
            pool,
            gtin: case_gtin.to_string(),
            line: line.to_string(),
            batch: batch.to_string(),
            label_ais: Vec::new(),
            ahead: 8,
            pending: Vec::new(),
        })
    }

    /// Make `n` serials Encoded per pool step (at least 1).
    pub fn with_ahead(mut self, n: u64) -> Self {
        self.ahead = n.max(1);
        self
    }

    /// Print these elements (AI, value) on each case label too, e.g. the expiry (17)
    /// and batch (10); checked here by the GS1 engine, so a bad value is an error
    /// before any label is printed.
    pub fn with_label_ais(mut self, ais: Vec<(String, String)>) -> Result<Self, AggError> {
        ContainerId::sgtin(&self.gtin, "1")
            .map_err(|e| AggError::Usage(e.to_string()))?
            .label_element_string(&ais)
            .map_err(|e| AggError::Usage(format!("case label: {e}")))?;
        self.label_ais = ais;
        Ok(self)
    }

    fn pool(&self) -> Result<std::sync::MutexGuard<'_, Pool<S>>, AggError> {
        crate::pool::alloc::lock(&self.pool).map_err(pool_err(&self.gtin))
    }

    /// Write the pending settlements (one durable pool commit per target state).
    fn write_pending(&mut self, pool: &mut Pool<S>) -> Result<(), AggError> {
        for (aggregated, to) in [
            (true, SerialState::Commissioned),
            (false, SerialState::LabelScrapped),
        ] {
            let serials: Vec<&str> = self
                .pending
                .iter()
                .filter(|(_, a)| *a == aggregated)
                .map(|(s, _)| s.as_str())
                .collect();
            if !serials.is_empty() {
                pool.set_state(&self.gtin, &serials, to)
                    .map_err(pool_err(&self.gtin))?;
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// One pool step: the pending settlements, then `ahead` serials reserved, handed
    /// out, marked Encoded and their block closed, durably; then listed as spares.
    fn refill(&mut self, store: &AggStore) -> Result<(), AggError> {
        let (gtin, line, batch) = (self.gtin.clone(), self.line.clone(), self.batch.clone());
        let pool_arc = self.pool.clone();
        let mut pool = crate::pool::alloc::lock(&pool_arc).map_err(pool_err(&gtin))?;
        self.write_pending(&mut pool)?;
        let mut a = pool
            .allocator(
                &gtin,
                &line,
                &batch,
                AllocatorConfig {
                    block_size: self.ahead,
                    quantity: None,
                },
            )
            .map_err(pool_err(&gtin))?;
        let mut got = vec![a.next_serial().map_err(pool_err(&gtin))?];
        while a.in_hand() > 0 {
            got.push(a.next_serial().map_err(pool_err(&gtin))?);
        }
        if let Some(last) = got.last() {
            a.mark_encoded(last).map_err(pool_err(&gtin))?;
        }
        a.close().map_err(pool_err(&gtin))?;
        drop(pool);
        let spares: Vec<(u64, String)> = got
            .iter()
            .map(|h| (h.seq, h.serial().to_string()))
            .collect();
        store.add_spare_ids(&gtin, &spares)?;
        Ok(())
    }
}

fn pool_err(gtin: &str) -> impl Fn(PoolError) -> AggError + '_ {
    move |source| AggError::Pool {
        context: format!("case serials, GTIN {gtin}"),
        source,
    }
}

impl<S: Store + Send + 'static> ContainerIds for PoolCaseIds<S> {
    fn take(&mut self, level: Level, store: &AggStore) -> Result<ContainerId, AggError> {
        if level != Level::Case {
            return Err(AggError::Usage(
                "a pallet is labelled with an SSCC, not a case GTIN".into(),
            ));
        }
        let serial = match store.take_spare_id(&self.gtin)? {
            Some(s) => s,
            None => {
                self.refill(store)?;
                store.take_spare_id(&self.gtin)?.ok_or_else(|| {
                    AggError::Usage(format!("no case serial of {} after a refill", self.gtin))
                })?
            }
        };
        ContainerId::sgtin(&self.gtin, &serial).map_err(|e| AggError::Usage(e.to_string()))
    }

    fn label(&self, id: &ContainerId) -> Result<String, AggError> {
        id.label_element_string(&self.label_ais)
            .map_err(|e| AggError::Usage(format!("case label {id}: {e}")))
    }

    fn settled(&mut self, id: &str, aggregated: bool) -> Result<(), AggError> {
        let Ok(ContainerId::Sgtin { gtin, serial }) = ContainerId::parse(id) else {
            return Ok(());
        };
        if gtin != self.gtin {
            return Ok(());
        }
        self.pending.push((serial, aggregated));
        if self.pending.len() as u64 >= self.ahead {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), AggError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pool_arc = self.pool.clone();
        let mut pool = crate::pool::alloc::lock(&pool_arc).map_err(pool_err(&self.gtin))?;
        self.write_pending(&mut pool)
    }

    fn settle_leftovers(&mut self, store: &AggStore) -> Result<(usize, usize), AggError> {
        self.flush()?;
        let spare: std::collections::HashSet<String> =
            store.spare_ids(&self.gtin)?.into_iter().collect();
        let mut encoded = Vec::new();
        {
            let pool = self.pool()?;
            pool.for_each(&self.gtin, |payload, state| {
                if state == SerialState::Encoded {
                    let serial = payload.split('\t').next().unwrap_or(payload);
                    if !spare.contains(serial) {
                        encoded.push(serial.to_string());
                    }
                }
            })
            .map_err(pool_err(&self.gtin))?;
        }
        let mut n = (0, 0);
        for serial in encoded {
            let key = ContainerId::sgtin(&self.gtin, &serial)
                .map_err(|e| AggError::Usage(e.to_string()))?
                .id();
            let aggregated = store.container(&key)?.is_some();
            if aggregated {
                n.0 += 1;
            } else {
                n.1 += 1;
            }
            tracing::warn!(id = %key, aggregated, "case serial left Encoded by a crash: settled");
            self.pending.push((serial, aggregated));
        }
        self.flush()?;
        Ok(n)
    }
}

impl<S: Store + Send + 'static> Drop for PoolCaseIds<S> {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(gtin = %self.gtin, error = %e,
                "case serials not settled in the pool; recovery settles them at the next start");
        }
    }
}

/// The URIs of `children`.
pub fn child_uris(events: &AggregationEvents, children: &[Child]) -> Result<Vec<String>, AggError> {
    children
        .iter()
        .map(|c| match c {
            Child::Unit { gtin, serial } => events.unit_uri(gtin, serial),
            Child::Case { sscc } => events.container_uri(sscc),
        })
        .collect::<Result<_, _>>()
        .map_err(AggError::from)
}

/// The outbox entry of `event` in `batch`.
pub fn outgoing(
    journal: &Journal,
    batch: &str,
    event: &crate::epcis::Event,
) -> Result<Outgoing, AggError> {
    let rec = EventRecord::new(batch, event).map_err(|e| AggError::Event(e.to_string()))?;
    Ok(Outgoing {
        event_id: rec.event_id().unwrap_or_default().to_string(),
        payload: rec.encode(),
        from_seq: journal.end_seq().0,
    })
}

/// Commit a verified intent with its ADD event and journal the event.
fn finish(
    store: &AggStore,
    journal: &Journal,
    events: &AggregationEvents,
    sscc: &str,
) -> Result<Container, AggError> {
    let intent = store
        .intent(sscc)?
        .ok_or_else(|| AggError::Usage(format!("no intent for {sscc}")))?;
    let time = EventTime::from_wall_micros(intent.at_us, 0)?;
    let event = events.packed(time, sscc, child_uris(events, &intent.children)?)?;
    let out = outgoing(journal, &intent.batch, &event)?;
    let c = store.commit(sscc, std::slice::from_ref(&out))?;
    deliver(store, journal)?;
    Ok(c)
}

/// Journal every event of the outbox that is not journaled yet, then forget it.
pub fn deliver(store: &AggStore, journal: &Journal) -> Result<usize, AggError> {
    let mut n = 0;
    for o in store.outbox()? {
        if !journaled(journal, &o)? {
            journal.append(EVENT_RECORD, o.payload.clone())?;
            n += 1;
        }
        store.delivered(&o.event_id)?;
    }
    Ok(n)
}

fn journaled(journal: &Journal, o: &Outgoing) -> Result<bool, AggError> {
    let mut at = Seq(o.from_seq.max(journal.first_seq().0));
    loop {
        let recs = journal.read_from(at, 1024)?;
        let Some(last) = recs.last() else {
            return Ok(false);
        };
        at = Seq(last.seq.0 + 1);
        for r in recs.iter().filter(|r| r.kind == EVENT_RECORD) {
            if let Ok(e) = EventRecord::decode(r.seq, &r.payload)
                && e.event_id() == Some(o.event_id.as_str())
            {
                return Ok(true);
            }
        }
    }
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Labels that were being printed: voided, their containers held.
    pub voided: Vec<String>,
    /// Verified labels committed.
    pub committed: Vec<String>,
    /// Events journaled from the outbox.
    pub journaled: usize,
}

/// Finish what a crash interrupted (see the module docs). Run before a station starts.
pub fn recover(
    store: &AggStore,
    journal: &Journal,
    events: &AggregationEvents,
    now_us: u64,
) -> Result<Recovered, AggError> {
    let mut r = Recovered {
        journaled: deliver(store, journal)?,
        ..Recovered::default()
    };
    for i in store.intents()? {
        match i.stage {
            // A partial case (closed from a short hold) keeps its units: held short
            // again, the supervisor closes it again at the HMI without a new read.
            Stage::Printing if i.partial_of.is_some() && i.level == Level::Case => {
                store.abandon_keeping_children(
                    &i.sscc,
                    vec![format!(
                        "{SHORT}: interrupted while the partial case's label was printed (hold {}): label voided, close it again at the HMI",
                        i.partial_of.unwrap_or_default()
                    )],
                    now_us,
                )?;
                r.voided.push(i.sscc);
            }
            Stage::Printing => {
                store.abandon(
                    &i.sscc,
                    vec![
                        "interrupted while its label was printed: label voided, re-label the case"
                            .into(),
                    ],
                    now_us,
                )?;
                r.voided.push(i.sscc);
            }
            Stage::Verified => match finish(store, journal, events, &i.sscc) {
                Ok(_) => {
                    r.committed.push(i.sscc);
                    r.journaled += 1;
                }
                Err(AggError::Store(super::store::StoreError::Refused(why))) => {
                    store.abandon(&i.sscc, vec![format!("after a restart: {why}")], now_us)?;
                    r.voided.push(i.sscc);
                }
                Err(e) => return Err(e),
            },
        }
    }
    Ok(r)
}

/// [`recover`], then tell `ids` how each interrupted label ended: a voided one's
/// identifier is settled as not aggregated (a case serial becomes LabelScrapped), a
/// committed one's as aggregated (Commissioned).
pub fn recover_settling(
    store: &AggStore,
    journal: &Journal,
    events: &AggregationEvents,
    now_us: u64,
    ids: &mut dyn ContainerIds,
) -> Result<Recovered, AggError> {
    let r = recover(store, journal, events, now_us)?;
    for v in &r.voided {
        ids.settled(v, false)?;
    }
    for c in &r.committed {
        ids.settled(c, true)?;
    }
    ids.flush()?;
    let (commissioned, scrapped) = ids.settle_leftovers(store)?;
    if commissioned + scrapped > 0 {
        tracing::warn!(
            commissioned,
            scrapped,
            "case serials a crash left Encoded were settled"
        );
    }
    Ok(r)
}
