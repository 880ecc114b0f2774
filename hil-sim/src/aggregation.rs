//! The simulated aggregation stations: a case packer that fills cases from the units
//! the line passed and shows each open case layer to the case camera (many rendered
//! unit codes in one frame, laid out as the profile's case layout says, with injected
//! faults: damaged codes, a foreign unit, a missing unit, a unit packed twice), a
//! label printer per station (the ZPL twin) whose printed label is shown to the
//! station camera, and a pallet station that stacks labelled cases. linectl's stations
//! run in-process against these over their real drivers (TCP frame stream, ZPL over
//! TCP). It owns the layer renderer, the fault plan and the ground truth behind the
//! report's `aggregation` object; it does not decide anything linectl decides.
//!
//! The stations run on virtual time continuing the line's (a fixed step per container),
//! so a seed gives the same events; the last case of the batch is closed short when the
//! passed units are not a multiple of the packing level; with a site server the
//! stations' events are uploaded from the same journal after the line's.

use datamatrix::{DataMatrix, SymbolList};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::render::GreyFrame;
use linectl::profile::aggregation::LayoutSection;

/// What one position of a rendered layer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A clean code with this element string (GS as 0x1D).
    Code(String),
    /// A code with this element string, half of it torn off (unreadable).
    Damaged(String),
    /// Nothing: a missing unit.
    Empty,
}

/// Why a layer could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// The encoder refused the content.
    #[error("cannot encode {content:?} as a GS1 DataMatrix: {reason}")]
    Encode {
        /// The element string.
        content: String,
        /// Why.
        reason: String,
    },
    /// The symbol does not fit its cell.
    #[error("a {side}-pixel symbol does not fit a {cw}×{ch} cell")]
    TooBig {
        /// Symbol side with quiet zone, pixels.
        side: u32,
        /// Cell width.
        cw: u32,
        /// Cell height.
        ch: u32,
    },
    /// More slots than cells, or a layout outside the frame.
    #[error("{0}")]
    Layout(String),
}

/// Module size of rendered layer codes, pixels.
pub const MODULE_PX: u32 = 5;

/// Render a layer: one symbol per slot, centred in its layout cell with a seeded
/// jitter, on a grey carton-board background with a gradient and sensor noise.
pub fn render_layer(
    width: u32,
    height: u32,
    layout: &LayoutSection,
    slots: &[Slot],
    seed: u64,
) -> Result<GreyFrame, LayerError> {
    if layout.x + layout.width > width || layout.y + layout.height > height {
        return Err(LayerError::Layout(format!(
            "layout {}×{} at ({}, {}) outside the {width}×{height} frame",
            layout.width, layout.height, layout.x, layout.y
        )));
    }
    let cells = linectl::aggregation::detect::LayerDecoder::cells(layout);
    if slots.len() > cells.len() {
        return Err(LayerError::Layout(format!(
            "{} slots for {} cells",
            slots.len(),
            cells.len()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut f = GreyFrame::new(width, height);
    let (w, h) = (width as usize, height as usize);
    for y in 0..h {
        for x in 0..w {
            let grad = 30.0 * (x as f64 / w as f64) - 15.0 * (y as f64 / h as f64);
            let v = 190.0 + grad + f64::from(rng.random_range(-8i32..=8));
            if let Some(p) = f.pixels.get_mut(y * w + x) {
                *p = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    for (slot, cell) in slots.iter().zip(cells) {
        let (content, damaged) = match slot {
            Slot::Code(c) => (c, false),
            Slot::Damaged(c) => (c, true),
            Slot::Empty => continue,
        };
        let symbol =
            DataMatrix::encode_gs1(content.as_bytes(), SymbolList::default().enforce_square())
                .map_err(|e| LayerError::Encode {
                    content: content.clone(),
                    reason: format!("{e:?}"),
                })?;
        let bm = symbol.bitmap();
        let (mw, mh) = (bm.width() as u32, bm.height() as u32);
        let (sw, sh) = ((mw + 2) * MODULE_PX, (mh + 2) * MODULE_PX);
        if sw > cell.width || sh > cell.height {
            return Err(LayerError::TooBig {
                side: sw.max(sh),
                cw: cell.width,
                ch: cell.height,
            });
        }
        let free_x = (cell.width - sw) / 3;
        let free_y = (cell.height - sh) / 3;
        let ox = cell.x + (cell.width - sw) / 2 + MODULE_PX;
        let oy = cell.y + (cell.height - sh) / 2 + MODULE_PX;
        let jx = if free_x > 0 {
            rng.random_range(0..=2 * free_x)
        } else {
            free_x
        } as i64
            - i64::from(free_x);
        let jy = if free_y > 0 {
            rng.random_range(0..=2 * free_y)
        } else {
            free_y
        } as i64
            - i64::from(free_y);
        let (ox, oy) = (i64::from(ox) + jx, i64::from(oy) + jy);
        let bits = bm.bits();
        for my in 0..mh {
            for mx in 0..mw {
                let dark = bits.get((my * mw + mx) as usize).copied().unwrap_or(false);
                // A torn code: the left half (with the finder's solid edge) is gone.
                if !dark || (damaged && mx < mw / 2 + 1) {
                    continue;
                }
                for py in 0..MODULE_PX {
                    for px in 0..MODULE_PX {
                        let x = ox + i64::from(mx * MODULE_PX + px);
                        let y = oy + i64::from(my * MODULE_PX + py);
                        if let Some(p) = f.pixels.get_mut(y as usize * w + x as usize) {
                            *p = (35 + rng.random_range(0..20u8)).min(*p);
                        }
                    }
                }
            }
        }
    }
    Ok(f)
}

// ---------------------------------------------------------------------------------
// The aggregation scenario: after the line run, pack its passed units.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linectl::aggregation::check::BatchLedger;
use linectl::aggregation::station::{
    self, ContainerIds, Outcome, PoolCaseIds, Station, StationConfig,
};
use linectl::aggregation::store::{AggStore, Child, Level};
use linectl::clock::{Clock, SystemClock, VirtualClock};
use linectl::epcis::aggregation::AggregationEvents;
use linectl::gs1::container::ContainerId;
use linectl::gs1::sscc::SsccScheme;
use linectl::profile::aggregation::CaseLabel;
use linectl_drivers::Frame;
use linectl_drivers::camera::stream::FrameServer;
use linectl_drivers::link::TwinServer;
use linectl_drivers::printer::TwinState;

use crate::line::{SimError, SimOptions};
use crate::report::Report;

/// Faults injected at the stations, each a probability per case (or pallet).
#[derive(Debug, Clone, PartialEq)]
pub struct AggFaults {
    /// One unit code of the case torn (unreadable).
    pub damaged: f64,
    /// One unit replaced by a unit from elsewhere (serial not of this batch).
    pub foreign: f64,
    /// One unit missing from the case.
    pub missing: f64,
    /// One unit of an already aggregated case put in again.
    pub duplicate: f64,
    /// The printed label smudged (does not read back).
    pub label: f64,
    /// One case of a pallet missing.
    pub pallet_missing: f64,
}

impl Default for AggFaults {
    fn default() -> Self {
        AggFaults {
            damaged: 0.1,
            foreign: 0.05,
            missing: 0.05,
            duplicate: 0.05,
            label: 0.03,
            pallet_missing: 0.1,
        }
    }
}

impl std::str::FromStr for AggFaults {
    type Err = String;

    /// `damaged=0.1,foreign=0.05,missing=0.05,duplicate=0.05,label=0.03,pallet-missing=0.1`
    /// (unnamed classes are 0) or `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut f = AggFaults {
            damaged: 0.0,
            foreign: 0.0,
            missing: 0.0,
            duplicate: 0.0,
            label: 0.0,
            pallet_missing: 0.0,
        };
        if s.trim() == "none" || s.trim().is_empty() {
            return Ok(f);
        }
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected class=probability"))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: {v:?} is not a number"))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`{part}`: probability must be 0-1"));
            }
            match k.trim() {
                "damaged" => f.damaged = v,
                "foreign" => f.foreign = v,
                "missing" => f.missing = v,
                "duplicate" => f.duplicate = v,
                "label" => f.label = v,
                "pallet-missing" => f.pallet_missing = v,
                other => {
                    return Err(format!(
                        "unknown fault {other:?} (known: damaged, foreign, missing, duplicate, label, pallet-missing)"
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// The report's `aggregation` object.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AggregationReport {
    /// Cases aggregated.
    pub cases: u64,
    /// Pallets aggregated.
    pub pallets: u64,
    /// Cases and pallets held for rework.
    pub held_for_rework: u64,
    /// Short last cases of the batch (held as `short`) the simulated supervisor then
    /// closed as partial cases (not in `cases`).
    pub partial_cases: u64,
    /// Units in those partial cases (not in `units_packed`).
    pub partial_units: u64,
    /// Cases held, by the first reason's kind.
    pub held_reasons: BTreeMap<String, u64>,
    /// Aggregations whose children differ from what was physically packed, or that
    /// were recorded although a fault was injected (must be 0).
    pub wrong_aggregations: u64,
    /// Cases and pallets with an injected fault that were held (as they must be).
    pub faulty_held: u64,
    /// Clean cases and pallets held anyway (a fail-safe hold, not an error).
    pub clean_held: u64,
    /// Faults injected, by class.
    pub injected: BTreeMap<String, u64>,
    /// Units packed into aggregated cases.
    pub units_packed: u64,
    /// Aggregation events journaled.
    pub events: u64,
    /// What the site server holds of the stations' events (with a site server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<AggUpload>,
    /// Layer decode and check time per case, ms (measured).
    pub case_check_ms: crate::report::Latency,
}

/// The stations' events at the site server.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AggUpload {
    /// Events the uplink delivered after the line stopped (including refused
    /// duplicates).
    pub delivered: u64,
    /// AggregationEvents the site server holds.
    pub events_uploaded: u64,
    /// Of them ADD.
    pub adds: u64,
    /// Distinct parents of those ADDs (equal to `adds`: one ADD per container).
    pub distinct_parents: u64,
    /// Containers aggregated in this run whose ADD the site server does not hold
    /// (must be 0).
    pub missing: u64,
    /// ADD parents the site server holds that this run did not aggregate (must be 0).
    pub unexpected: u64,
}

impl AggregationReport {
    /// The report without the measured part (`case_check_ms`, and the uplink's
    /// `delivered`, which a retried request may raise): equal for equal profile,
    /// options and seed on a virtual clock.
    pub fn deterministic_part(&self) -> AggregationReport {
        AggregationReport {
            case_check_ms: crate::report::Latency::default(),
            uploaded: self
                .uploaded
                .clone()
                .map(|u| AggUpload { delivered: 0, ..u }),
            ..self.clone()
        }
    }
}

/// Virtual time between two containers at a station, µs.
const CASE_CYCLE_US: u64 = 12_000_000;

/// Run the line as [`crate::line::run`] does, then pack its passed units into cases and
/// the cases onto pallets at the simulated stations (the profile needs an
/// `[aggregation]` section); the report gains `aggregation`.
pub fn run_with_aggregation(opts: &SimOptions, faults: &AggFaults) -> Result<Report, SimError> {
    let (mut report, site) = crate::line::run_keeping_site(opts)?;
    let agg = run_stations(opts, faults, site.as_ref(), &mut report)?;
    report.aggregation = Some(agg);
    if let Some(site) = site {
        site.stop();
    }
    Ok(report)
}

struct Sim {
    server: Arc<FrameServer>,
    printer: TwinState,
    _printer_server: TwinServer,
}

fn sim_station() -> Result<(Sim, String, String), SimError> {
    let dev = |e: String| SimError::Device("aggregation station", e);
    let server = FrameServer::bind("127.0.0.1:0").map_err(|e| dev(e.to_string()))?;
    let cam = server.local_addr().to_string();
    let printer = TwinState::new(16);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| dev(e.to_string()))?;
    let prn = listener
        .local_addr()
        .map_err(|e| dev(e.to_string()))?
        .to_string();
    let st = printer.clone();
    let ps = TwinServer::spawn_tcp(listener, move || {
        linectl_drivers::printer::zpl::ZplSession::new(st.clone())
    })
    .map_err(|e| dev(e.to_string()))?;
    Ok((
        Sim {
            server: Arc::new(server),
            printer,
            _printer_server: ps,
        },
        cam,
        prn,
    ))
}

fn publish(server: &FrameServer, unit: u64, f: &GreyFrame) -> Result<(), SimError> {
    server
        .publish(&Frame {
            unit,
            timestamp_us: 0,
            width: f.width,
            height: f.height,
            pixels: f.pixels.clone(),
        })
        .map(|_| ())
        .map_err(|e| SimError::Device("station camera", e.to_string()))
}

/// One container as the simulator built it.
struct Built {
    slots: Vec<Slot>,
    /// The children physically in it, readable or not.
    truth: BTreeSet<Child>,
    faulty: bool,
    label_fault: bool,
}

/// What the station thread is asked to do.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// A container: its layer frame, its label frame, whether it is the batch's last.
    Container(u64, u64, bool),
    /// The supervisor closes the partial case of this hold; its label frame.
    ClosePartial(u64, u64),
}

/// Drive one container through linectl's station thread: publish the layer, print
/// and show the label when linectl loads one, return linectl's outcome.
fn drive(
    sim: &Sim,
    (jobs, outcomes): (&crossbeam_channel::Sender<Job>, &Outcomes),
    (k, job): (u64, Job),
    layer: Option<&GreyFrame>,
    label_fault: bool,
    seed: u64,
) -> Result<(Outcome, f64), SimError> {
    let layout = LayoutSection {
        rows: 1,
        cols: 1,
        x: 0,
        y: 0,
        width: 640,
        height: 480,
    };
    // The station is waiting on its camera before the frame (5 MB) is written.
    jobs.send(job)
        .map_err(|_| SimError::Line("the station thread stopped".into()))?;
    if let Some(layer) = layer {
        publish(&sim.server, 2 * k, layer)?;
    }
    let t0 = Instant::now();
    loop {
        if let Some(rec) = sim.printer.print_one() {
            let content = rec
                .fields
                .iter()
                .find(|(n, _)| n == "DM")
                .or_else(|| rec.fields.first())
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let slot = if label_fault {
                Slot::Damaged(content)
            } else {
                Slot::Code(content)
            };
            let f = render_layer(640, 480, &layout, &[slot], seed)
                .map_err(|e| SimError::Device("label printer", e.to_string()))?;
            publish(&sim.server, 2 * k + 1, &f)?;
        }
        match outcomes.recv_timeout(Duration::from_millis(1)) {
            Ok(Ok(o)) => return Ok(o),
            Ok(Err(e)) => return Err(SimError::Line(e)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(_) => return Err(SimError::Line("the station thread stopped".into())),
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(SimError::Stuck(format!(
                "container {k}: no outcome in 60 s"
            )));
        }
    }
}

/// What linectl's side of a station works on.
struct Backend {
    store: AggStore,
    journal: Arc<linectl::journal::Journal>,
    events: AggregationEvents,
    clock: VirtualOrWall,
    ids: Option<Box<dyn ContainerIds>>,
}

/// The stations' clock: virtual (advanced a fixed step per container) unless the run
/// is in real time.
#[derive(Clone)]
struct VirtualOrWall {
    clock: Arc<dyn Clock>,
    virt: Option<VirtualClock>,
}

impl VirtualOrWall {
    fn step(&self, us: u64) {
        if let Some(v) = &self.virt {
            v.advance(Duration::from_micros(us));
        }
    }
}

type Outcomes = crossbeam_channel::Receiver<Result<(Outcome, f64), String>>;
type StationThread = (
    crossbeam_channel::Sender<Job>,
    Outcomes,
    std::thread::JoinHandle<()>,
);

fn start_station(
    cfg: StationConfig,
    (cam, prn): (&str, &str),
    timeout: Duration,
    be: Backend,
    mut ledger: Option<BatchLedger>,
) -> Result<StationThread, SimError> {
    let Backend {
        store,
        journal,
        events,
        clock,
        ids,
    } = be;
    let camera = linectl_drivers::connect_frame_source("tcp-stream", cam, timeout)
        .map_err(|e| SimError::Line(format!("station camera: {e}")))?;
    let printer = linectl_drivers::connect_printer("zpl", prn, None, timeout)
        .map_err(|e| SimError::Line(format!("station printer: {e}")))?;
    let mut st = Station::new(
        cfg,
        station::Devices { camera, printer },
        store,
        journal.clone(),
        events,
        clock.clock,
    );
    if let Some(ids) = ids {
        st = st.with_ids(ids);
    }
    let (jtx, jrx) = crossbeam_channel::unbounded::<Job>();
    let (otx, orx) = crossbeam_channel::unbounded();
    let h = std::thread::spawn(move || {
        while let Ok(job) = jrx.recv() {
            let r = match job {
                Job::Container(layer, label, last) => {
                    st.set_end_of_batch(last);
                    if let Some(l) = ledger.as_mut()
                        && let Err(e) = l.refresh(&journal)
                    {
                        let _ = otx.send(Err(e.to_string()));
                        return;
                    }
                    st.process(layer, label, ledger.as_ref())
                        .map(|o| (o, st.last_check_ms.max(0.0)))
                }
                Job::ClosePartial(hold, label) => st.close_partial(hold, label).map(|o| (o, 0.0)),
            }
            .map_err(|e| e.to_string());
            if otx.send(r).is_err() {
                return;
            }
        }
    });
    Ok((jtx, orx, h))
}

fn run_stations(
    opts: &SimOptions,
    faults: &AggFaults,
    site_server: Option<&crate::site::SiteServer>,
    report: &mut Report,
) -> Result<AggregationReport, SimError> {
    let p = &opts.profile;
    let a = p
        .aggregation
        .clone()
        .ok_or_else(|| SimError::Line("the profile has no [aggregation] section".into()))?;
    let line_err = |e: String| SimError::Line(e);
    let gtin = p.product.gtin.clone();
    let lot = p.batch.lot.clone().unwrap_or_else(|| "SIM0001".into());
    let expiry = p.batch.expiry.clone().unwrap_or_else(|| "301231".into());
    // The pool (its lock is let go a little after the line stopped).
    let t0 = Instant::now();
    let pool = loop {
        match linectl::pool::Pool::open(
            &opts.data_dir.join("pool"),
            linectl::pool::OpenMode::MustExist,
        ) {
            Ok(pool) => break pool,
            Err(e) if e.to_string().contains("lock") && t0.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(line_err(format!("pool: {e}"))),
        }
    };
    let mut supply: Vec<String> = Vec::new();
    pool.for_each(&gtin, |payload, state| {
        if state == linectl::pool::SerialState::Commissioned {
            supply.push(
                payload
                    .split('\u{1d}')
                    .next()
                    .unwrap_or(payload)
                    .to_string(),
            );
        }
    })
    .map_err(|e| line_err(format!("pool: {e}")))?;
    let cfg = linectl::pipeline::LineConfig::from_profile(p, opts.data_dir.clone());
    let journal = Arc::new(
        linectl::journal::Journal::open(linectl::journal::JournalConfig {
            consumers: cfg.journal_consumers.clone(),
            ..linectl::journal::JournalConfig::in_dir(opts.data_dir.join("journal"))
        })
        .map_err(|e| line_err(format!("journal: {e}")))?,
    );
    let journal_start = journal.end_seq().0;
    let site = linectl::pipeline::site_sgln(&p.line.site).map_err(|e| line_err(e.to_string()))?;
    let events = AggregationEvents::new(cfg.identifiers, &site, &site)
        .map_err(|e| line_err(e.to_string()))?;
    let store =
        AggStore::open(&opts.data_dir.join("aggregation")).map_err(|e| line_err(e.to_string()))?;
    // The stations' clock continues the line's virtual time (the line starts at
    // 2026-01-01T00:00:00Z and runs one unit per pitch), rounded up to the minute.
    let clock = if opts.realtime {
        VirtualOrWall {
            clock: Arc::new(SystemClock::new()),
            virt: None,
        }
    } else {
        let g = &p.geometry;
        let pitch_us = (g.pitch_mm / g.conveyor_speed_mm_s.max(1e-6) * 1e6) as u64;
        let line_us = (opts.units + 100).saturating_mul(pitch_us.max(1));
        let origin = (1_767_225_600_000_000 + line_us).div_ceil(60_000_000) * 60_000_000;
        let v = VirtualClock::new(origin);
        VirtualOrWall {
            clock: Arc::new(v.clone()),
            virt: Some(v),
        }
    };
    // Cases labelled with a case GTIN take their serials from the same pool.
    let case_gtin = match (a.case_label, &a.case_gtin) {
        (CaseLabel::GtinSerial, Some(g)) => Some(g.clone()),
        (CaseLabel::GtinSerial, None) => {
            return Err(line_err(
                "case_label = \"gtin-serial\" without case_gtin".into(),
            ));
        }
        (CaseLabel::Sscc, _) => None,
    };
    let mut pool = pool;
    if let Some(cg) = &case_gtin {
        seed_case_serials(
            &mut pool,
            cg,
            p.product.market,
            &supply,
            a.units_per_case,
            opts.seed,
        )?;
    }
    let pool = Arc::new(std::sync::Mutex::new(pool));
    // What a case label carries besides its identifier (the profile's choice).
    let label_ais: Vec<(String, String)> = if a.case_label_batch {
        vec![("17".into(), expiry.clone()), ("10".into(), lot.clone())]
    } else {
        Vec::new()
    };
    let case_ids: Option<Box<dyn ContainerIds>> = match &case_gtin {
        Some(cg) => Some(Box::new(
            PoolCaseIds::new(pool.clone(), cg, &p.line.id, &lot)
                .and_then(|ids| ids.with_label_ais(label_ais.clone()))
                .map_err(|e| line_err(e.to_string()))?,
        )),
        None => None,
    };
    let recovered = match case_ids {
        Some(mut ids) => {
            let r = station::recover_settling(
                &store,
                &journal,
                &events,
                clock.clock.wall_micros(),
                &mut *ids,
            );
            (r, Some(ids))
        }
        None => (
            station::recover(&store, &journal, &events, clock.clock.wall_micros()),
            None,
        ),
    };
    let case_ids = recovered.1;
    recovered
        .0
        .map_err(|e| line_err(format!("recovery: {e}")))?;
    let mut ledger = BatchLedger::new(&gtin, &lot, events.clone(), Box::new(pool.clone()));
    ledger
        .refresh(&journal)
        .map_err(|e| line_err(e.to_string()))?;
    let product = p.market_product();
    let code_of = |serial: &str| -> Result<String, SimError> {
        p.product
            .market
            .build(
                &product,
                &linectl::market::UnitData {
                    serial: serial.to_string(),
                    batch: lot.clone(),
                    expiry: expiry.clone(),
                    extra: Vec::new(),
                },
            )
            .map(|c| c.element_string())
            .map_err(|e| line_err(format!("unit code: {e}")))
    };
    let timeout = Duration::from_millis(a.case_station.timeout_ms);
    let scheme =
        |ext: u8| SsccScheme::new(ext, &a.company_prefix).map_err(|e| line_err(e.to_string()));
    let mut rep = AggregationReport::default();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xa66e_0000_0000_0001);
    let mut check_us: Vec<u64> = Vec::new();
    // ---- case station
    let (case_sim, cam, prn) = sim_station()?;
    let (jobs, outcomes, handle) = start_station(
        StationConfig {
            level: Level::Case,
            layout: a.case_layout,
            expected: a.units_per_case,
            scheme: scheme(a.case_extension)?,
            batch: lot.clone(),
            label_job: a.case_station.label_job.clone(),
        },
        (&cam, &prn),
        timeout,
        Backend {
            store: store.clone(),
            journal: journal.clone(),
            events: events.clone(),
            clock: clock.clone(),
            ids: case_ids,
        },
        Some(ledger),
    )?;
    case_sim.server.wait_for_clients(1, Duration::from_secs(5));
    let per_case = a.units_per_case as usize;
    let mut packed_units: Vec<Child> = Vec::new();
    let mut closed_cases: Vec<String> = Vec::new();
    let mut aggregated: Vec<String> = Vec::new();
    let mut short: Option<(u64, BTreeSet<Child>)> = None;
    let mut next = 0usize;
    let mut k = 0u64;
    let bump =
        |m: &mut BTreeMap<String, u64>, name: &str| *m.entry(name.to_string()).or_insert(0) += 1;
    while next < supply.len() {
        let take = per_case.min(supply.len() - next);
        let mut serials: Vec<String> = supply[next..next + take].to_vec();
        next += take;
        let mut built = Built {
            slots: Vec::new(),
            truth: BTreeSet::new(),
            faulty: take < per_case,
            label_fault: false,
        };
        if take < per_case {
            bump(&mut rep.injected, "partial-case");
        }
        let mut foreign_at = None;
        let mut damaged_at = None;
        if rng.random_bool(faults.missing) && serials.len() > 1 {
            // One unit fell out: it goes back to the supply of a later case.
            let i = rng.random_range(0..serials.len());
            let s = serials.remove(i);
            supply.push(s);
            built.faulty = true;
            bump(&mut rep.injected, "missing");
        }
        if rng.random_bool(faults.duplicate) && !packed_units.is_empty() && !serials.is_empty() {
            let Child::Unit { serial, .. } =
                packed_units[rng.random_range(0..packed_units.len())].clone()
            else {
                continue;
            };
            let i = rng.random_range(0..serials.len());
            let s = std::mem::replace(&mut serials[i], serial);
            supply.push(s);
            built.faulty = true;
            bump(&mut rep.injected, "duplicate");
        }
        if rng.random_bool(faults.foreign) && !serials.is_empty() {
            let i = rng.random_range(0..serials.len());
            let s = std::mem::replace(&mut serials[i], format!("FOREIGN{k:05}"));
            supply.push(s);
            foreign_at = Some(i);
            built.faulty = true;
            bump(&mut rep.injected, "foreign");
        }
        if rng.random_bool(faults.damaged) && !serials.is_empty() {
            damaged_at = Some(rng.random_range(0..serials.len()));
            built.faulty = true;
            bump(&mut rep.injected, "damaged");
        }
        if rng.random_bool(faults.label) {
            built.label_fault = true;
            built.faulty = true;
            bump(&mut rep.injected, "label");
        }
        for (i, s) in serials.iter().enumerate() {
            let code = code_of(s)?;
            built.slots.push(if damaged_at == Some(i) {
                Slot::Damaged(code)
            } else {
                Slot::Code(code)
            });
            if foreign_at != Some(i) {
                built.truth.insert(Child::Unit {
                    gtin: gtin.clone(),
                    serial: s.clone(),
                });
            }
        }
        while built.slots.len() < a.case_layout.cells() as usize {
            built.slots.push(Slot::Empty);
        }
        // The batch's last case: the packer closes it as it is (short when the passed
        // units are not a multiple of the packing level).
        let last = next >= supply.len();
        let layer = render_layer(2448, 2048, &a.case_layout, &built.slots, opts.seed ^ k)
            .map_err(|e| SimError::Device("case packer", e.to_string()))?;
        clock.step(CASE_CYCLE_US);
        let (outcome, ms) = drive(
            &case_sim,
            (&jobs, &outcomes),
            (k, Job::Container(2 * k, 2 * k + 1, last)),
            Some(&layer),
            built.label_fault,
            opts.seed ^ k,
        )?;
        check_us.push((ms * 1000.0) as u64);
        match outcome {
            Outcome::Aggregated(c) => {
                let got: BTreeSet<Child> = c.children.iter().cloned().collect();
                if built.faulty || got != built.truth {
                    rep.wrong_aggregations += 1;
                    tracing::error!(case = %c.sscc, "wrong aggregation");
                }
                rep.cases += 1;
                rep.units_packed += c.children.len() as u64;
                packed_units.extend(c.children.iter().cloned());
                aggregated.push(c.sscc.clone());
                closed_cases.push(c.sscc);
            }
            Outcome::Held(h) => {
                rep.held_for_rework += 1;
                if built.faulty {
                    rep.faulty_held += 1
                } else {
                    rep.clean_held += 1
                }
                let kind = h
                    .reasons
                    .first()
                    .map_or("?", |r| r.split(':').next().unwrap_or("?"))
                    .to_string();
                bump(&mut rep.held_reasons, &kind);
                if h.is_short() {
                    short = Some((h.id, built.truth.clone()));
                }
                // Held cases are reworked off-line; their real units are not repacked
                // in this run (the supply keeps only what fell out or was swapped).
            }
        }
        k += 1;
        if k > 100_000 {
            break;
        }
    }
    // The supervisor closes the short last case as a partial case at the HMI: the
    // station labels it from its hold and aggregates it.
    if let Some((hold, truth)) = short {
        clock.step(CASE_CYCLE_US);
        let (outcome, _) = drive(
            &case_sim,
            (&jobs, &outcomes),
            (k, Job::ClosePartial(hold, 2 * k + 1)),
            None,
            false,
            opts.seed ^ k,
        )?;
        if let Outcome::Aggregated(c) = outcome {
            let got: BTreeSet<Child> = c.children.iter().cloned().collect();
            if got != truth {
                rep.wrong_aggregations += 1;
                tracing::error!(case = %c.sscc, "wrong aggregation of a partial case");
            }
            rep.partial_cases += 1;
            rep.partial_units += c.children.len() as u64;
            aggregated.push(c.sscc.clone());
            closed_cases.push(c.sscc);
        }
    }
    drop(jobs);
    let _ = handle.join();
    // ---- pallet station
    let (pal_sim, cam, prn) = sim_station()?;
    let (jobs, outcomes, handle) = start_station(
        StationConfig {
            level: Level::Pallet,
            layout: a.pallet_layout,
            expected: a.cases_per_pallet,
            scheme: scheme(a.pallet_extension)?,
            batch: lot.clone(),
            label_job: a.pallet_station.label_job.clone(),
        },
        (&cam, &prn),
        Duration::from_millis(a.pallet_station.timeout_ms),
        Backend {
            store: store.clone(),
            journal: journal.clone(),
            events: events.clone(),
            clock: clock.clone(),
            ids: None,
        },
        None,
    )?;
    pal_sim.server.wait_for_clients(1, Duration::from_secs(5));
    let per_pallet = a.cases_per_pallet as usize;
    for (pk, group) in (0u64..).zip(closed_cases.chunks(per_pallet)) {
        let mut cases: Vec<String> = group.to_vec();
        let mut faulty = cases.len() < per_pallet;
        if faulty {
            bump(&mut rep.injected, "partial-pallet");
        }
        if rng.random_bool(faults.pallet_missing) && cases.len() > 1 {
            cases.pop();
            faulty = true;
            bump(&mut rep.injected, "pallet-missing");
        }
        let mut slots: Vec<Slot> = Vec::with_capacity(cases.len());
        for s in &cases {
            // The case label as it was printed on the case.
            let label = ContainerId::parse(s)
                .map_err(|e| e.to_string())
                .and_then(|id| match id {
                    ContainerId::Sgtin { .. } => id
                        .label_element_string(&label_ais)
                        .map_err(|e| e.to_string()),
                    ContainerId::Sscc(_) => Ok(id.element_string()),
                })
                .map_err(|e| line_err(format!("case {s}: {e}")))?;
            slots.push(Slot::Code(label));
        }
        while slots.len() < a.pallet_layout.cells() as usize {
            slots.push(Slot::Empty);
        }
        let truth: BTreeSet<Child> = cases
            .iter()
            .map(|s| Child::Case { sscc: s.clone() })
            .collect();
        let layer = render_layer(2448, 2048, &a.pallet_layout, &slots, opts.seed ^ (pk << 20))
            .map_err(|e| SimError::Device("pallet station", e.to_string()))?;
        clock.step(CASE_CYCLE_US);
        let (outcome, _) = drive(
            &pal_sim,
            (&jobs, &outcomes),
            (pk, Job::Container(2 * pk, 2 * pk + 1, false)),
            Some(&layer),
            false,
            opts.seed ^ pk,
        )?;
        match outcome {
            Outcome::Aggregated(c) => {
                aggregated.push(c.sscc.clone());
                let got: BTreeSet<Child> = c.children.iter().cloned().collect();
                if faulty || got != truth {
                    rep.wrong_aggregations += 1;
                }
                rep.pallets += 1;
            }
            Outcome::Held(h) => {
                rep.held_for_rework += 1;
                if faulty {
                    rep.faulty_held += 1
                } else {
                    rep.clean_held += 1
                }
                let kind = h
                    .reasons
                    .first()
                    .map_or("?", |r| r.split(':').next().unwrap_or("?"))
                    .to_string();
                bump(&mut rep.held_reasons, &format!("pallet-{kind}"));
            }
        }
    }
    drop(jobs);
    let _ = handle.join();
    // Every aggregated container's event is in the journal.
    rep.events = journal
        .read_from(linectl::journal::Seq(journal_start), usize::MAX)
        .map(|r| r.len() as u64)
        .unwrap_or(0);
    rep.case_check_ms = crate::report::Latency::from_micros(&check_us);
    // Upload what the stations journaled, after the line's events.
    let capture_url = site_server
        .map(|s| format!("http://{}/capture", s.addr()))
        .or_else(|| opts.site_url.clone());
    if let Some(url) = capture_url {
        let up = linectl::uplink::Uplink::start(
            linectl::uplink::UplinkConfig::new(url),
            journal.clone(),
            Arc::new(SystemClock::new()),
        )
        .map_err(|e| line_err(format!("uplink: {e}")))?;
        let end = journal.end_seq();
        let t0 = Instant::now();
        while up.status().cursor < end && t0.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let st = up.stop();
        let mut u = AggUpload {
            delivered: st.delivered,
            ..AggUpload::default()
        };
        if let Some(site) = site_server {
            let want: BTreeSet<String> = aggregated
                .iter()
                .map(|id| events.container_uri(id))
                .collect::<Result<_, _>>()
                .map_err(|e| line_err(e.to_string()))?;
            let mut parents = BTreeSet::new();
            for e in site.events() {
                if e.get("type").and_then(|v| v.as_str()) != Some("AggregationEvent") {
                    continue;
                }
                u.events_uploaded += 1;
                if e.get("action").and_then(|v| v.as_str()) == Some("ADD") {
                    u.adds += 1;
                    if let Some(p) = e.get("parentID").and_then(|v| v.as_str()) {
                        parents.insert(p.to_string());
                    }
                }
            }
            u.distinct_parents = parents.len() as u64;
            u.missing = want.difference(&parents).count() as u64;
            u.unexpected = parents.difference(&want).count() as u64;
            // The site server's figures now cover the stations' events too.
            if let Some(sr) = report.site_server.as_mut() {
                let s = site.stats();
                sr.events = s.events as u64;
                sr.duplicates_refused = s.duplicates_refused;
                sr.commissioned = s.commissioned as u64;
                sr.journaled = journal.end_seq().0;
                sr.delivered += st.delivered;
            }
        }
        rep.uploaded = Some(u);
    }
    Ok(rep)
}

/// Serials for the case GTIN, drawn from the seed (as the line's own), enough for
/// every case of the run and its voided labels.
fn seed_case_serials(
    pool: &mut linectl::pool::Pool,
    case_gtin: &str,
    market: linectl::market::Market,
    supply: &[String],
    per_case: u32,
    seed: u64,
) -> Result<(), SimError> {
    let need = (supply.len() as u64 / u64::from(per_case.max(1))) * 2 + 64;
    let have = pool.available(case_gtin).unwrap_or(0);
    if have >= need {
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xca5e_5e71_a100_0001);
    let mut seen = BTreeSet::new();
    let mut records = Vec::new();
    while (records.len() as u64) < need - have {
        let serial = format!("C{:011}", rng.random_range(0..100_000_000_000u64));
        if seen.insert(serial.clone()) {
            records.push(Ok(linectl::pool::SerialRecord {
                at: records.len() as u64 + 1,
                serial,
                ai91: None,
                ai92: None,
            }));
        }
    }
    pool.import(
        case_gtin,
        Some(market),
        linectl::pool::Source {
            header: None,
            records: Box::new(records.into_iter()),
        },
        "hil-sim (seeded case serials)",
    )
    .map_err(|e| SimError::Line(format!("seeding the case serials: {e}")))?;
    Ok(())
}
