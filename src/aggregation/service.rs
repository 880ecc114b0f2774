//! The daemon's aggregation: [`AggService`] owns the store, the line's journal, the
//! audit trail, the clock and the batch ledgers, offers the rework steps to the HMI
//! (one step at a time) and the trees and holds to the read API; [`Stations`] runs the
//! case and pallet stations on their real drivers in threads of their own, stopping
//! cleanly with the daemon.
//!
//! The batch ledger's serial states come from the line's journal ([`JournalStates`]),
//! not from a second open of the pool: the pool's sled directory is owned by the running
//! line's printer thread, and the pool marks a serial Commissioned only after its
//! commissioning event is durable in the journal, so the journal is the same truth
//! (a later `destroying`, `decommissioning` or `sampling` event moves it on).
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
use super::store::{AggStore, Child, Container, Hold, Level};
use crate::audit::{AuditActor, AuditTrail};
use crate::clock::Clock;
use crate::epcis::aggregation::AggregationEvents;
use crate::journal::{Journal, Seq};
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
            ledgers: Mutex::new(HashMap::new()),
            step: Mutex::new(()),
        }
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
            BatchLedger::new(
                &self.p.gtin,
                batch,
                self.p.events.clone(),
                Box::new(self.states.clone()),
            )
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
            Child::Unit { .. } => match self.p.store.parent_of(&child)? {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        Ok(self.p.store.container(&sscc)?)
    }

    /// Every hold, oldest first.
    pub fn holds(&self) -> Result<Vec<Hold>, AggError> {
        Ok(self.p.store.holds()?)
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
        if let Some(h) = self.p.store.holds()?.into_iter().find(|h| {
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
        match step {
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
        }
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
        device: what.to_string(),
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
        let r = station::recover(
            &svc.p.store,
            &svc.p.journal,
            &svc.p.events,
            svc.p.clock.wall_micros(),
        )?;
        if r != station::Recovered::default() {
            tracing::warn!(voided = ?r.voided, committed = ?r.committed, journaled = r.journaled,
                "aggregation recovered after a restart");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let mut threads = Vec::new();
        for s in setups {
            let (svc, stop, counts) = (svc.clone(), stop.clone(), counts.clone());
            let level = s.level;
            let h = std::thread::Builder::new()
                .name(format!("linectl-{}-station", level.name()))
                .spawn(move || run_station(&svc, s, &stop, &counts))
                .map_err(|e| {
                    AggError::Usage(format!("starting the {} station: {e}", level.name()))
                })?;
            threads.push((level, h));
        }
        Ok(Stations {
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

fn run_station(
    svc: &Arc<AggService>,
    s: StationSetup,
    stop: &AtomicBool,
    counts: &Mutex<HashMap<Level, StationCounts>>,
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
        if station.as_ref().is_none_or(|(b, _)| *b != batch) {
            let cfg = StationConfig {
                batch: batch.clone(),
                ..s.config.clone()
            };
            let dev = Devices {
                camera: Box::new(SharedCamera {
                    slot: cam.clone(),
                    ahead: ahead.clone(),
                }),
                printer: Box::new(SharedPrinter { slot: prn.clone() }),
            };
            station = Some((
                batch.clone(),
                Station::new(
                    cfg,
                    dev,
                    svc.p.store.clone(),
                    svc.p.journal.clone(),
                    svc.p.events.clone(),
                    svc.p.clock.clone(),
                ),
            ));
        }
        let Some((_, st)) = station.as_mut() else {
            continue;
        };
        let out = match level {
            Level::Case => svc
                .with_ledger(&batch, |l| st.process(layer, layer + 1, Some(l)))
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
