//! The simulated line and the scenario runner. It owns the conveyor (units enter at the
//! printer's photo-eye at the profile's pitch and speed, reach the camera and then the
//! reject station), the simulated devices on loopback (the PLC as a Modbus TCP server
//! with the shift register's verdict lookup and a heartbeat watchdog, the printer
//! speaking the profile's protocol over TCP or a socat PTY, the camera streaming the
//! rendered frames over TCP), defect and fault injection, an operator that resumes a
//! held line, and the ground truth the report is built from. linectl runs in-process,
//! unchanged, on the same clock; it reaches every device through its real drivers.
//!
//! # Virtual time
//! On a [`VirtualClock`] the runner moves time from event to event: it waits until
//! linectl's pipeline is idle (its [`Activity`] count is zero), sets the clock to the
//! next event (a unit at a station, a fault, or a pipeline alarm), lets the devices act,
//! waits for idle again and only then fires linectl's alarms. Every decision is then a
//! function of virtual time and data alone, so a run replays identically for the same
//! profile, options and seed. With `realtime` the same events run on the wall clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use linectl::clock::{Activity, Clock, Micros, SystemClock, VirtualClock};
use linectl::pipeline::{BatchOrder, Devices, Hooks, Line, LineCommand, LineConfig, UnitRecord};
use linectl::profile::{PrinterKind, Profile};
use linectl_drivers::camera::stream::FrameServer;
use linectl_drivers::link::TwinServer;
use linectl_drivers::plc::modbus::{PlcTwin, TwinHandle};
use linectl_drivers::printer::TwinState;
use linectl_drivers::{Frame, PackMlState, Verdict};

use crate::defects::{
    Defect, DefectClass, DefectPlan, DefectSpec, ExpectedRejection, FaultClass, FaultPlan,
    FaultSpec, PlanClass,
};
use crate::render::{Content, FrameOutcome, FrameSpec, GreyFrame, Renderer, unit_seed};
use crate::report::{Host, Latency, Report};

/// How the simulated printer is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrinterTransport {
    /// TCP on loopback.
    Tcp,
    /// A serial line: a socat PTY pair.
    Pty,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The line profile (its device addresses are replaced by the simulator's).
    pub profile: Profile,
    /// Units to send down the line.
    pub units: u64,
    /// Line rate in units per minute (default: the profile's speed and pitch).
    pub rate_upm: Option<f64>,
    /// Defects per unit.
    pub defects: DefectSpec,
    /// Faults per unit.
    pub faults: FaultSpec,
    /// Seed of every random choice.
    pub seed: u64,
    /// Run on the wall clock instead of virtual time.
    pub realtime: bool,
    /// linectl's data directory.
    pub data_dir: PathBuf,
    /// Printer transport.
    pub printer_transport: PrinterTransport,
    /// How long the simulated printer takes to acknowledge each loaded code (zero: at
    /// once; Videojet and Markem-Imaje). On the wall clock (`realtime`) a delay longer
    /// than the unit pitch makes the printer fall behind the line.
    pub printer_load_delay: Duration,
    /// Camera frame size.
    pub frame: (u32, u32),
    /// Print a live progress line to stderr.
    pub progress: bool,
    /// Serve linectl's status endpoint here (`host:port`).
    pub status_listen: Option<String>,
    /// Set to stop the run early (Ctrl-C): the infeed stops, the units on the
    /// conveyor run out, and the report covers what ran.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Upload the events to a simulated site server and report what it holds.
    pub site_server: bool,
    /// Upload to this capture URL instead (a site server outside this process, e.g. one
    /// that outlives a killed run); takes precedence over `site_server`.
    pub site_url: Option<String>,
}

/// Why a run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A simulated device could not start.
    #[error("simulated {0}: {1}")]
    Device(&'static str, String),
    /// linectl refused or failed.
    #[error("linectl: {0}")]
    Line(String),
    /// The run did not finish.
    #[error("the run is stuck: {0}")]
    Stuck(String),
}

/// How long (wall time) the run waits for the line to settle once nothing of the
/// simulator's is left to happen, before it calls the run stuck.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Ground truth of one unit.
#[derive(Debug, Clone, Default)]
struct Truth {
    defect: Option<DefectClass>,
    /// The printer skipped an earlier unit and the buffer was not cleared since: this
    /// unit carries another unit's code.
    shifted: bool,
    /// Nothing was printed (printer faulted, empty buffer or skipped).
    unprinted: bool,
    /// A fault was active during the unit's life on the line.
    faulted: bool,
    /// The PLC rejected it.
    rejected: Option<bool>,
    serial: Option<String>,
}

impl Truth {
    fn bad(&self) -> bool {
        self.defect.is_some() || self.shifted || self.unprinted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Infeed,
    Camera(u64),
    Decide(u64),
    FaultEnd(FaultClass),
    Operator,
    Watchdog,
}

/// Where the simulated PLC serves (to bring it back after a disconnect).
enum PlcAt {
    Tcp(String),
    Rtu(String, u32),
}

struct Devs {
    plc: PlcTwin,
    plc_handle: Option<TwinHandle>,
    plc_addr: PlcAt,
    _plc_socat: Option<SocatPair>,
    printer: TwinState,
    _printer_server: TwinServer,
    _socat: Option<SocatPair>,
    camera: Arc<FrameServer>,
}

/// A socat PTY pair, killed on drop.
struct SocatPair {
    child: Child,
    _dir: PathBuf,
}

impl Drop for SocatPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn socat_pair(dir: &Path, name: &'static str) -> Result<(SocatPair, String, String), SimError> {
    let a = dir.join(format!("{name}-device"));
    let b = dir.join(format!("{name}-host"));
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    let child = Command::new("socat")
        .arg("-d")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            SimError::Device(
                "printer PTY",
                format!("cannot start socat (apt-get install -y socat): {e}"),
            )
        })?;
    let t0 = Instant::now();
    while !(a.exists() && b.exists()) {
        if t0.elapsed() > Duration::from_secs(5) {
            return Err(SimError::Device(
                "printer PTY",
                "socat did not create the PTY pair".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((
        SocatPair {
            child,
            _dir: dir.to_path_buf(),
        },
        a.display().to_string(),
        b.display().to_string(),
    ))
}

fn start_devices(opts: &SimOptions) -> Result<(Devs, Profile), SimError> {
    let mut profile = opts.profile.clone();
    let map = profile.plc.registers.clone();
    let plc = PlcTwin::new(map).map_err(|e| SimError::Device("PLC", e.to_string()))?;
    let (plc_handle, plc_addr, plc_socat) = match profile.plc.kind {
        linectl::profile::PlcKind::ModbusTcp => {
            let h = plc
                .spawn_tcp("127.0.0.1:0")
                .map_err(|e| SimError::Device("PLC", e.to_string()))?;
            let a = h
                .local_addr()
                .map(|a| a.to_string())
                .ok_or_else(|| SimError::Device("PLC", "no local address".into()))?;
            profile.plc.address = a.clone();
            (h, PlcAt::Tcp(a), None)
        }
        linectl::profile::PlcKind::ModbusRtu => {
            let (pair, dev, host) = socat_pair(&opts.data_dir, "plc")?;
            let baud = profile.plc.baud.unwrap_or(19_200);
            let h = plc
                .spawn_rtu(&dev, baud)
                .map_err(|e| SimError::Device("PLC", e.to_string()))?;
            profile.plc.address = host;
            profile.plc.baud = Some(baud);
            (h, PlcAt::Rtu(dev, baud), Some(pair))
        }
    };
    let printer = TwinState::new(256);
    printer.lock().load_delay = opts.printer_load_delay;
    let kind = profile.printer.kind;
    let st = printer.clone();
    let (server, socat) = match opts.printer_transport {
        PrinterTransport::Tcp => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| SimError::Device("printer", e.to_string()))?;
            let addr = listener
                .local_addr()
                .map_err(|e| SimError::Device("printer", e.to_string()))?;
            profile.printer.address = addr.to_string();
            let server = match kind {
                PrinterKind::Zpl => TwinServer::spawn_tcp(listener, move || {
                    linectl_drivers::printer::zpl::ZplSession::new(st.clone())
                }),
                PrinterKind::Zipher => TwinServer::spawn_tcp(listener, move || {
                    linectl_drivers::printer::videojet::VideojetSession::new(st.clone())
                }),
                PrinterKind::Markem => TwinServer::spawn_tcp(listener, move || {
                    linectl_drivers::printer::markem::MarkemSession::new(st.clone())
                }),
            }
            .map_err(|e| SimError::Device("printer", e.to_string()))?;
            (server, None)
        }
        PrinterTransport::Pty => {
            let (pair, dev, host) = socat_pair(&opts.data_dir, "printer")?;
            let baud = profile.printer.baud.unwrap_or(115_200);
            let server = match kind {
                PrinterKind::Zpl => TwinServer::spawn_serial(
                    &dev,
                    baud,
                    linectl_drivers::printer::zpl::ZplSession::new(st),
                ),
                PrinterKind::Zipher => TwinServer::spawn_serial(
                    &dev,
                    baud,
                    linectl_drivers::printer::videojet::VideojetSession::new(st),
                ),
                PrinterKind::Markem => TwinServer::spawn_serial(
                    &dev,
                    baud,
                    linectl_drivers::printer::markem::MarkemSession::new(st),
                ),
            }
            .map_err(|e| SimError::Device("printer", e.to_string()))?;
            profile.printer.address = host;
            profile.printer.baud = Some(baud);
            (server, Some(pair))
        }
    };
    let camera =
        FrameServer::bind("127.0.0.1:0").map_err(|e| SimError::Device("camera", e.to_string()))?;
    profile.camera.address = camera.local_addr().to_string();
    profile.camera.kind = linectl::profile::CameraKind::TcpStream;
    Ok((
        Devs {
            plc,
            plc_handle: Some(plc_handle),
            plc_addr,
            _plc_socat: plc_socat,
            printer,
            _printer_server: server,
            _socat: socat,
            camera: Arc::new(camera),
        },
        profile,
    ))
}

/// The slow-decode fault's decoder: the real decoder, plus a decode time past the
/// deadline for the frames the runner marks (virtual time), or a real sleep past it
/// (`realtime`).
struct SlowDecoder {
    inner: linectl::vision::Decoder,
    slow: Arc<std::sync::Mutex<std::collections::BTreeSet<u64>>>,
    seen: Arc<AtomicU64>,
    cost: Duration,
    realtime: bool,
    this_cost: Duration,
}

impl linectl::vision::pool::FrameDecoder for SlowDecoder {
    fn decode(
        &mut self,
        frame: &linectl::vision::GreyFrame,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<linectl::vision::Read>, linectl::vision::FrameError> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        let slow = self.slow.lock().map(|s| s.contains(&n)).unwrap_or(false);
        self.this_cost = Duration::ZERO;
        if slow {
            if self.realtime {
                std::thread::sleep(self.cost);
            } else {
                self.this_cost = self.cost;
            }
        }
        linectl::vision::pool::FrameDecoder::decode(&mut self.inner, frame, stop)
    }

    fn extra_cost(&self) -> Duration {
        self.this_cost
    }
}

/// `count` serials valid for `market`, drawn from the run's seed, so that a run prints
/// the same codes every time (the site server or the operator issues them on a real
/// line; Russia's come with their 91/92 tail).
fn seeded_serials(
    market: linectl::market::Market,
    count: u64,
    seed: u64,
) -> Vec<linectl::pool::SerialRecord> {
    use rand::{Rng, SeedableRng};
    let rules = market.serial_rules();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5e71_a15e_ed00_0001);
    const CSET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    const CSET82: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!%&()*+-./:;<=>?_";
    let alphabet: &[u8] = match rules.charset {
        linectl::market::SerialCharset::Numeric => b"0123456789",
        linectl::market::SerialCharset::Cset82 => CSET,
    };
    let len = 12usize.clamp(rules.min_len, rules.max_len);
    let mut draw = |alpha: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| char::from(alpha[rng.random_range(0..alpha.len())]))
            .collect()
    };
    let ru = market == linectl::market::Market::RuCrypto;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count as usize);
    let mut at = 0u64;
    while (out.len() as u64) < count {
        let serial = draw(alphabet, len);
        if !seen.insert(serial.clone()) {
            continue;
        }
        at += 1;
        let (ai91, ai92) = if ru {
            (Some(draw(CSET82, 4)), Some(draw(CSET82, 44)))
        } else {
            (None, None)
        };
        out.push(linectl::pool::SerialRecord {
            at,
            serial,
            ai91,
            ai92,
        });
    }
    out
}

/// Run a scenario and build its report.
pub fn run(opts: &SimOptions) -> Result<Report, SimError> {
    run_inner(opts, None)
}

/// A front end served on the running line (the operator HMI in its end-to-end test):
/// called once the line is up, before any unit, with the line and a copy of every unit
/// outcome; what it returns is kept until the run ends.
pub type FrontEnd = Box<
    dyn FnOnce(Arc<Line>, crossbeam_channel::Receiver<UnitRecord>) -> Box<dyn std::any::Any> + Send,
>;

/// As [`run`], with `front` served on the line; the operator starts the batch through
/// it (the runner waits up to ten minutes for the line to reach Execute), and the
/// run ends when `opts.stop` is set (or the units run out).
pub fn run_with_front_end(opts: &SimOptions, front: FrontEnd) -> Result<Report, SimError> {
    run_inner(opts, Some(front))
}

fn run_inner(opts: &SimOptions, front: Option<FrontEnd>) -> Result<Report, SimError> {
    run_core(opts, front).map(|(report, _site)| report)
}

/// As [`run`], handing back the simulated site server (with `site_server`) still
/// running, so that what is journaled after the line stopped (the aggregation
/// stations' events) can be uploaded to it too.
pub fn run_keeping_site(
    opts: &SimOptions,
) -> Result<(Report, Option<crate::site::SiteServer>), SimError> {
    run_core(opts, None)
}

fn run_core(
    opts: &SimOptions,
    front: Option<FrontEnd>,
) -> Result<(Report, Option<crate::site::SiteServer>), SimError> {
    let wall0 = Instant::now();
    let cpu0 = crate::report::cpu_seconds();
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| SimError::Line(format!("data dir {}: {e}", opts.data_dir.display())))?;
    let (mut devs, mut profile) = start_devices(opts)?;
    if let Some(rate) = opts.rate_upm {
        profile.geometry.conveyor_speed_mm_s = rate * profile.geometry.pitch_mm / 60.0;
    }
    let g = profile.geometry.clone();
    let speed = g.conveyor_speed_mm_s.max(1e-6);
    let pitch_t = Duration::from_secs_f64(g.pitch_mm / speed);
    let to_camera = Duration::from_secs_f64(g.print_to_camera_mm / speed);
    let deadline = Duration::from_secs_f64(g.verdict_deadline_ms().max(0.0) / 1000.0);
    // Serials for the run.
    {
        let mut pool = linectl::pool::Pool::open(
            &opts.data_dir.join("pool"),
            linectl::pool::OpenMode::CreateIfMissing,
        )
        .map_err(|e| SimError::Line(e.to_string()))?;
        let need = opts.units + opts.units / 5 + u64::from(profile.serials.block_size) * 2 + 64;
        let have = pool.available(&profile.product.gtin).unwrap_or(0);
        if have < need {
            let records = seeded_serials(profile.product.market, need - have, opts.seed);
            pool.import(
                &profile.product.gtin,
                Some(profile.product.market),
                linectl::pool::Source {
                    header: None,
                    records: Box::new(records.into_iter().map(Ok)),
                },
                "hil-sim (seeded)",
            )
            .map_err(|e| SimError::Line(format!("seeding the pool: {e}")))?;
        }
    }
    let activity = if opts.realtime {
        Activity::none()
    } else {
        Activity::tracked()
    };
    // A fixed wall origin (2026-01-01T00:00:00Z) keeps event times identical per seed.
    let vclock = VirtualClock::with_activity(1_767_225_600_000_000, activity.clone());
    let clock: Arc<dyn Clock> = if opts.realtime {
        Arc::new(SystemClock::new())
    } else {
        Arc::new(vclock.clone())
    };
    let slow = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let seen = Arc::new(AtomicU64::new(0));
    let site = if let Some(url) = &opts.site_url {
        profile.epcis.capture_url = Some(url.clone());
        None
    } else if opts.site_server {
        let site = crate::site::SiteServer::start(crate::site::SiteConfig {
            seed: opts.seed,
            ..crate::site::SiteConfig::default()
        })
        .map_err(|e| SimError::Device("site server", e.to_string()))?;
        profile.epcis.capture_url = Some(format!("http://{}/capture", site.addr()));
        Some(site)
    } else {
        profile.epcis.capture_url = None;
        None
    };
    let mut cfg = LineConfig::from_profile(&profile, opts.data_dir.clone());
    cfg.heartbeat = Duration::from_millis(100);
    let decode_cfg = cfg.decode.clone();
    let slow_cost = cfg.decode_deadline + Duration::from_millis(20);
    // Bounded (preallocated: the coordinator's send allocates nothing) and drained at
    // every step of the simulation, far more often than it could fill.
    let (obs_tx, obs_rx) = crossbeam_channel::bounded::<UnitRecord>(OBSERVED_QUEUE);
    // With a front end, a tee thread copies every outcome to it as well.
    let (line_tx, front_rx, tee) = if front.is_some() {
        let (ltx, lrx) = crossbeam_channel::bounded::<UnitRecord>(OBSERVED_QUEUE);
        let (ftx, frx) = crossbeam_channel::unbounded::<UnitRecord>();
        let to_sim = obs_tx.clone();
        let tee = std::thread::spawn(move || {
            while let Ok(r) = lrx.recv() {
                let _ = ftx.send(r.clone());
                let _ = to_sim.send(r);
            }
        });
        (ltx, Some(frx), Some(tee))
    } else {
        (obs_tx.clone(), None, None)
    };
    drop(obs_tx);
    let hooks = Hooks {
        observer: Some(line_tx),
        activity: activity.clone(),
        decoder: Some({
            let slow = slow.clone();
            let seen = seen.clone();
            let realtime = opts.realtime;
            Arc::new(move || {
                Box::new(SlowDecoder {
                    inner: linectl::vision::Decoder::new(decode_cfg.clone()),
                    slow: slow.clone(),
                    seen: seen.clone(),
                    cost: slow_cost,
                    realtime,
                    this_cost: Duration::ZERO,
                }) as Box<dyn linectl::vision::pool::FrameDecoder>
            })
        }),
    };
    // sled lets go of the store's lock only once its background flusher has seen the
    // seeding handle dropped: try again for a few seconds.
    let mut hooks = Some(hooks);
    let t0 = Instant::now();
    let line = loop {
        let h = hooks.take().unwrap_or_default();
        let keep = (h.observer.clone(), h.activity.clone(), h.decoder.clone());
        match Line::start(
            cfg.clone(),
            Devices::from_profile(&profile),
            clock.clone(),
            h,
        ) {
            Ok(l) => break l,
            Err(linectl::pipeline::StartError::Pool(e))
                if e.to_string().contains("lock") && t0.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(Duration::from_millis(50));
                hooks = Some(Hooks {
                    observer: keep.0,
                    activity: keep.1,
                    decoder: keep.2,
                });
            }
            Err(e) => return Err(SimError::Line(e.to_string())),
        }
    };
    let line = Arc::new(line);
    let external_start = front.is_some();
    let front_guard = match (front, front_rx) {
        (Some(f), Some(rx)) => Some(f(line.clone(), rx)),
        _ => None,
    };
    let uplink = match &profile.epcis.capture_url {
        Some(url) => Some(
            linectl::uplink::Uplink::start(
                linectl::uplink::UplinkConfig::new(url.clone()),
                line.journal(),
                Arc::new(SystemClock::new()),
            )
            .map_err(|e| SimError::Line(format!("uplink: {e}")))?,
        ),
        None => None,
    };
    let _status = match &opts.status_listen {
        Some(l) => Some(
            linectl::serve::StatusServer::start_with_gauges(
                l,
                &profile.line.id,
                line.status().clone(),
                Some(Arc::new(linectl::serve::gauges::GaugeSource::new(
                    line.journal(),
                    line.status().clone(),
                    clock.clone(),
                    linectl::pool::Forecast::default(),
                    profile.serials.low_water,
                ))),
            )
            .map_err(|e| SimError::Line(e.to_string()))?,
        ),
        None => None,
    };
    let mut sim = Sim {
        opts,
        clock: clock.clone(),
        vclock: (!opts.realtime).then_some(vclock),
        activity,
        line: &line,
        devs: &mut devs,
        events: BTreeMap::new(),
        seq: 0,
        truth: BTreeMap::new(),
        fed: 0,
        decided: 0,
        pending_skips: 0,
        seen_clears: 0,
        renderer: Renderer::new(FrameSpec {
            width: opts.frame.0,
            height: opts.frame.1,
            ..FrameSpec::default()
        })
        .map_err(|e| SimError::Device("camera", e.to_string()))?,
        frame: GreyFrame::default(),
        defects: DefectPlan::new(opts.defects.clone(), opts.seed),
        faults: FaultPlan::new(opts.faults.clone(), opts.seed),
        active_faults: BTreeMap::new(),
        injected: BTreeMap::new(),
        injected_faults: BTreeMap::new(),
        stalled_until: None,
        published: 0,
        slow,
        pitch_t,
        to_camera,
        deadline,
        last_hb: (0, Micros(0)),
        holds: 0,
        printed_codes: BTreeMap::new(),
        pending_content: BTreeMap::new(),
        last_progress: Instant::now(),
        settling: None,
        wall0,
        limit: opts.units,
        stopped: false,
        external_start,
        observed: obs_rx,
        records: Vec::new(),
    };
    sim.start()?;
    sim.main_loop()?;
    let status = line.status().snapshot();
    if external_start {
        // Let the tee pass on what the line has published.
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut records = std::mem::take(&mut sim.records);
    records.extend(sim.observed.try_iter());
    let mut report = sim.report(&status, &records, wall0, cpu0);
    // Everything journaled reaches the site server (real time: the uplink is not part of
    // the line's lockstep).
    let up_status = uplink.map(|up| {
        let end = line.journal().end_seq();
        let t0 = Instant::now();
        while up.status().cursor < end && t0.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(20));
        }
        up.stop()
    });
    if let (Some(site), Some(up_status)) = (site.as_ref(), up_status) {
        let st = site.stats();
        let commissioned: Vec<String> = records
            .iter()
            .filter(|r| r.verdict == "pass")
            .filter_map(|r| r.serial.as_deref().map(str::to_owned))
            .collect();
        report.site_server = Some(crate::report::SiteReport {
            events: st.events as u64,
            duplicates_refused: st.duplicates_refused,
            commissioned: st.commissioned as u64,
            missing: site.missing(&commissioned) as u64,
            journaled: line.journal().end_seq().0,
            delivered: up_status.delivered,
        });
    }
    drop(sim);
    drop(front_guard);
    match Arc::try_unwrap(line) {
        Ok(line) => line.shutdown(),
        Err(_) => return Err(SimError::Line("the front end kept the line".into())),
    }
    if let Some(t) = tee {
        let _ = t.join();
    }
    if let Some(h) = devs.plc_handle.take() {
        h.stop();
    }
    Ok((report, site))
}

/// Unit records the observer channel holds before the coordinator would wait.
const OBSERVED_QUEUE: usize = 8192;

struct Sim<'a> {
    opts: &'a SimOptions,
    clock: Arc<dyn Clock>,
    vclock: Option<VirtualClock>,
    activity: Activity,
    line: &'a Line,
    devs: &'a mut Devs,
    events: BTreeMap<(Micros, u64), Ev>,
    seq: u64,
    truth: BTreeMap<u64, Truth>,
    fed: u64,
    decided: u64,
    pending_skips: u64,
    seen_clears: u64,
    renderer: Renderer,
    frame: GreyFrame,
    defects: DefectPlan,
    faults: FaultPlan,
    active_faults: BTreeMap<FaultClass, u32>,
    injected: BTreeMap<String, u64>,
    injected_faults: BTreeMap<String, u64>,
    stalled_until: Option<Micros>,
    published: u64,
    slow: Arc<std::sync::Mutex<std::collections::BTreeSet<u64>>>,
    pitch_t: Duration,
    to_camera: Duration,
    deadline: Duration,
    last_hb: (u16, Micros),
    holds: u64,
    printed_codes: BTreeMap<String, u64>,
    pending_content: BTreeMap<u64, (Option<String>, Option<Defect>)>,
    last_progress: Instant,
    /// Since when (wall time) nothing has been scheduled while the line settles.
    settling: Option<Instant>,
    wall0: Instant,
    /// Units to feed (the options' count, cut short by a stop request).
    limit: u64,
    stopped: bool,
    /// The operator starts the batch (through a front end), not the runner.
    external_start: bool,
    /// The line's unit records, drained into `records` at every step.
    observed: crossbeam_channel::Receiver<UnitRecord>,
    records: Vec<UnitRecord>,
}

impl Sim<'_> {
    fn at(&mut self, t: Micros, ev: Ev) {
        self.seq += 1;
        self.events.insert((t, self.seq), ev);
    }

    /// Wait until linectl's pipeline has nothing left to do at the current time.
    fn settle(&self) -> Result<(), SimError> {
        if self.vclock.is_none() {
            return Ok(());
        }
        let _g = SettleTimer(Instant::now());
        if !self.activity.wait_idle(Duration::from_secs(30)) {
            return Err(SimError::Stuck(format!(
                "linectl did not go idle at {} µs (activity {})",
                self.clock.now().0,
                self.activity.count()
            )));
        }
        Ok(())
    }

    /// Move time to `t`: devices act first, then linectl's alarms fire.
    fn goto(&mut self, t: Micros) -> Result<(), SimError> {
        match &self.vclock {
            Some(v) => {
                self.settle()?;
                v.set_time(t);
            }
            None => self.clock.sleep_until(t),
        }
        Ok(())
    }

    fn fire(&self) -> Result<(), SimError> {
        if let Some(v) = &self.vclock {
            self.settle()?;
            v.fire();
            self.settle()?;
        }
        Ok(())
    }

    /// Step time until `cond` holds (or `limit` of simulated time passes).
    fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        cond: impl Fn(&Self) -> bool,
    ) -> Result<(), SimError> {
        let end = self.clock.now().plus(limit);
        loop {
            self.fire()?;
            if cond(self) {
                return Ok(());
            }
            let now = self.clock.now();
            if now >= end {
                return Err(SimError::Stuck(format!("waiting for {what}")));
            }
            let next = match &self.vclock {
                Some(v) => v
                    .next_alarm()
                    .unwrap_or(now.plus(Duration::from_millis(10))),
                None => now.plus(Duration::from_millis(5)),
            };
            self.goto(next.min(end))?;
        }
    }

    fn start(&mut self) -> Result<(), SimError> {
        self.wait_for(Duration::from_secs(20), "device links", |s| {
            let l = s.line.status().snapshot().links;
            l.plc && l.printer && l.camera
        })?;
        // Let the first PLC poll and printer count arrive.
        let t = self.clock.now().plus(Duration::from_millis(50));
        self.goto(t)?;
        self.fire()?;
        if self.external_start {
            self.wait_for(
                Duration::from_secs(600),
                "the operator to start a batch",
                |s| s.devs.plc.state() == Some(PackMlState::Execute),
            )?;
            let now = self.clock.now();
            self.at(now, Ev::Infeed);
            self.at(now.plus(Duration::from_millis(500)), Ev::Watchdog);
            return Ok(());
        }
        self.line
            .command(LineCommand::Reset)
            .map_err(|e| SimError::Line(e.to_string()))?;
        self.fire()?;
        let p = &self.opts.profile;
        let order = BatchOrder {
            lot: p.batch.lot.clone().unwrap_or_else(|| "SIM0001".into()),
            expiry: p.batch.expiry.clone().unwrap_or_else(|| "301231".into()),
            quantity: self.opts.units,
        };
        self.line
            .command(LineCommand::StartBatch(order))
            .map_err(|e| SimError::Line(e.to_string()))?;
        self.wait_for(Duration::from_secs(20), "the PLC in Execute", |s| {
            s.devs.plc.state() == Some(PackMlState::Execute)
        })?;
        let now = self.clock.now();
        self.at(now, Ev::Infeed);
        self.at(now.plus(Duration::from_millis(500)), Ev::Watchdog);
        Ok(())
    }

    fn main_loop(&mut self) -> Result<(), SimError> {
        loop {
            let stopping = self
                .opts
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst));
            if stopping && !self.stopped {
                self.stopped = true;
                self.limit = self.fed;
                let _ = self.line.command(LineCommand::Stop);
            }
            let limit_units = self.limit;
            if self.decided >= limit_units && self.fed >= limit_units {
                let st = self.line.status().state();
                if matches!(
                    st,
                    linectl::packml::State::Complete
                        | linectl::packml::State::Held
                        | linectl::packml::State::Stopped
                ) {
                    // Let the journal catch up.
                    let t = self.clock.now().plus(Duration::from_millis(200));
                    self.goto(t)?;
                    self.fire()?;
                    return Ok(());
                }
            }
            let sim_next = self.events.keys().next().map(|k| k.0);
            let alarm = self.vclock.as_ref().and_then(|v| v.next_alarm());
            let next = match (sim_next, alarm) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => {
                    // Nothing of the simulator's is due, yet the line has not settled:
                    // its own threads may still be at work (a PLC poll not yet answered,
                    // a last decode, a hold in progress), slowly on a loaded machine.
                    // Look again shortly, for a bounded wall time.
                    let since = *self.settling.get_or_insert_with(Instant::now);
                    if since.elapsed() > SETTLE_LIMIT {
                        let st = self.line.status().state();
                        return Err(SimError::Stuck(format!(
                            "nothing left to happen; the line stayed {st} for {} s",
                            SETTLE_LIMIT.as_secs()
                        )));
                    }
                    self.clock.now().plus(Duration::from_millis(5))
                }
            };
            if sim_next.is_some() || alarm.is_some() {
                self.settling = None;
            }
            let now = self.clock.now();
            if now.0 > 3_600_000_000 * 24 {
                return Err(SimError::Stuck("a day of simulated time passed".into()));
            }
            self.goto(next.max(now))?;
            while let Some((&(t, s), _)) = self.events.iter().next() {
                if t > self.clock.now() {
                    break;
                }
                if let Some(ev) = self.events.remove(&(t, s)) {
                    self.handle(ev)?;
                }
            }
            self.fire()?;
            self.records.extend(self.observed.try_iter());
            self.progress(false);
        }
    }

    fn progress(&mut self, force: bool) {
        if !self.opts.progress
            || (!force && self.last_progress.elapsed() < Duration::from_millis(250))
        {
            return;
        }
        self.last_progress = Instant::now();
        let s = self.line.status().snapshot();
        let rejected: u64 = s.rejected.values().sum();
        eprint!(
            "\r[{:>7.1}s sim {:>8.1}s] {:<10} units {}/{} passed {} rejected {} commissioned {}   ",
            self.wall0.elapsed().as_secs_f64(),
            self.clock.now().0 as f64 / 1e6,
            s.state,
            self.decided,
            self.opts.units,
            s.passed,
            rejected,
            s.commissioned
        );
    }

    fn handle(&mut self, ev: Ev) -> Result<(), SimError> {
        let now = self.clock.now();
        match ev {
            Ev::Infeed => self.infeed(now),
            Ev::Camera(u) => self.camera(u),
            Ev::Decide(u) => {
                let v = self.devs.plc.verdict(u);
                let rejected = v != Some(Verdict::Good);
                self.devs.plc.count_exit(if rejected {
                    Verdict::Reject
                } else {
                    Verdict::Good
                });
                let faulted = !self.active_faults.is_empty();
                if let Some(t) = self.truth.get_mut(&u) {
                    t.rejected = Some(rejected);
                    t.faulted |= faulted;
                }
                self.decided += 1;
                Ok(())
            }
            Ev::FaultEnd(c) => {
                if let Some(n) = self.active_faults.get_mut(&c) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.active_faults.remove(&c);
                        match c {
                            FaultClass::PrinterFault => self.devs.printer.clear_faults(),
                            FaultClass::PlcDisconnect => {
                                let h = match &self.devs.plc_addr {
                                    PlcAt::Tcp(a) => self.devs.plc.spawn_tcp(a),
                                    PlcAt::Rtu(p, b) => self.devs.plc.spawn_rtu(p, *b),
                                }
                                .map_err(|e| SimError::Device("PLC", e.to_string()))?;
                                self.devs.plc_handle = Some(h);
                            }
                            FaultClass::CameraStall | FaultClass::SlowDecode => {}
                        }
                    }
                }
                Ok(())
            }
            Ev::Operator => {
                let st = self.line.status().state();
                if st == linectl::packml::State::Held {
                    if self.active_faults.is_empty() {
                        match self.line.command(LineCommand::Unhold) {
                            Ok(()) => {
                                tracing::info!(at_us = now.0, "operator: unhold");
                                return Ok(());
                            }
                            Err(e) => {
                                tracing::info!(error = %e, "operator: unhold refused, retrying")
                            }
                        }
                    }
                    self.at(now.plus(Duration::from_secs(1)), Ev::Operator);
                }
                Ok(())
            }
            Ev::Watchdog => {
                // The PLC stops the infeed when linectl's heartbeat stops.
                let hb = self.devs.plc.heartbeat();
                if hb != self.last_hb.0 {
                    self.last_hb = (hb, now);
                } else if now.since(self.last_hb.1) > Duration::from_secs(1)
                    && self.devs.plc.state() == Some(PackMlState::Execute)
                {
                    tracing::warn!("simulated PLC: heartbeat lost, holding the line");
                    self.devs.plc.set_state(PackMlState::Held);
                }
                let st = self.line.status().state();
                if st == linectl::packml::State::Held
                    && !self.events.values().any(|e| *e == Ev::Operator)
                {
                    self.holds += 1;
                    self.at(now.plus(Duration::from_secs(1)), Ev::Operator);
                }
                if self.decided < self.limit || self.fed < self.limit {
                    self.at(now.plus(Duration::from_millis(200)), Ev::Watchdog);
                }
                Ok(())
            }
        }
    }

    fn infeed(&mut self, now: Micros) -> Result<(), SimError> {
        if self.fed >= self.limit {
            return Ok(());
        }
        if self.devs.plc.state() != Some(PackMlState::Execute) {
            // Infeed stopped: look again a little later.
            self.at(now.plus(Duration::from_millis(10)), Ev::Infeed);
            return Ok(());
        }
        let unit = u64::from(self.devs.plc.trigger());
        self.fed += 1;
        let defect = self.defects.defect_for(unit);
        let fault = self.faults.fault_for(unit);
        let mut truth = Truth {
            defect: defect.map(|d| d.class),
            faulted: !self.active_faults.is_empty(),
            ..Truth::default()
        };
        if let Some(d) = defect {
            *self.injected.entry(d.class.name().to_string()).or_insert(0) += 1;
        }
        if let Some(f) = fault {
            *self
                .injected_faults
                .entry(f.class.name().to_string())
                .or_insert(0) += 1;
            truth.faulted = true;
            self.start_fault(f.class, now)?;
        }
        // The printer fires on the trigger.
        let clears = self.devs.printer.lock().clears;
        if clears != self.seen_clears {
            self.seen_clears = clears;
            self.pending_skips = 0;
        }
        let skip = defect.is_some_and(|d| !d.class.printer_advances());
        let printed = if skip {
            self.pending_skips += 1;
            None
        } else {
            let r = self.devs.printer.print_one();
            if r.is_none() {
                // Faulted or empty: the buffer did not advance either.
                self.pending_skips += 1;
            }
            r
        };
        truth.shifted = self.pending_skips > 0 && printed.is_some();
        let content = printed.as_ref().and_then(|r| {
            r.fields
                .iter()
                .find(|(k, _)| k == "DM")
                .or_else(|| r.fields.first())
                .map(|(_, v)| v.clone())
        });
        truth.unprinted = content.is_none();
        if let Some(c) = &content {
            let serial = linectl::gs1::Gs1Code::parse_element_string(c)
                .ok()
                .and_then(|g| g.get("21").map(str::to_string));
            if let Some(s) = &serial {
                *self.printed_codes.entry(s.clone()).or_insert(0) += 1;
            }
            truth.serial = serial;
        }
        self.truth.insert(unit, truth);
        self.wait_prints_reported();
        self.pending_content.insert(unit, (content, defect));
        self.at(now.plus(self.to_camera), Ev::Camera(unit));
        self.at(
            now.plus(self.to_camera).plus(self.deadline),
            Ev::Decide(unit),
        );
        if self.fed < self.limit {
            self.at(now.plus(self.pitch_t), Ev::Infeed);
        }
        Ok(())
    }
}

impl Sim<'_> {
    /// Asynchronous print reports (per-print acknowledgements) reach linectl's socket
    /// before time moves on, so its print count does not depend on thread timing.
    fn wait_prints_reported(&self) {
        // Only the protocols with a per-print acknowledgement drain `unreported`.
        if self.vclock.is_none() || self.opts.profile.printer.kind == PrinterKind::Zpl {
            return;
        }
        let t0 = Instant::now();
        while !self.devs.printer.lock().unreported.is_empty()
            && t0.elapsed() < Duration::from_secs(2)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn start_fault(&mut self, class: FaultClass, now: Micros) -> Result<(), SimError> {
        let dur = match class {
            FaultClass::PrinterFault => Duration::from_secs(2),
            FaultClass::PlcDisconnect => Duration::from_secs(2),
            FaultClass::CameraStall => Duration::from_millis(1500),
            FaultClass::SlowDecode => Duration::ZERO,
        };
        match class {
            FaultClass::PrinterFault => self.devs.printer.set_fault(17, "ink system pressure low"),
            FaultClass::PlcDisconnect => {
                if let Some(h) = self.devs.plc_handle.take() {
                    h.stop();
                }
            }
            FaultClass::CameraStall => {
                let until = now.plus(dur);
                self.stalled_until = Some(self.stalled_until.map_or(until, |u| u.max(until)));
            }
            FaultClass::SlowDecode => {
                // The next frame published is decoded slowly.
                if let Ok(mut s) = self.slow.lock() {
                    s.insert(self.published + 1);
                }
                return Ok(());
            }
        }
        *self.active_faults.entry(class).or_insert(0) += 1;
        self.at(now.plus(dur), Ev::FaultEnd(class));
        Ok(())
    }

    fn camera(&mut self, unit: u64) -> Result<(), SimError> {
        let Some((content, defect)) = self.pending_content.remove(&unit) else {
            return Ok(());
        };
        let now = self.clock.now();
        if self.stalled_until.is_some_and(|u| now < u) {
            if let Some(t) = self.truth.get_mut(&unit) {
                t.faulted = true;
            }
            return Ok(());
        }
        let content = match content {
            Some(c) => Content::new(c.as_bytes()).ok(),
            None => None,
        };
        // Nothing printed: render a blank carton (a no-print defect of this unit).
        let (content, defect) = match content {
            Some(c) => (c, defect),
            None => (
                Content::new(b"0").map_err(|e| SimError::Device("camera", e.to_string()))?,
                Some(defect.unwrap_or(Defect::new(DefectClass::NoPrint, unit))),
            ),
        };
        let defect = defect.map(|d| {
            if d.class == DefectClass::SkippedPrint {
                Defect::new(DefectClass::NoPrint, d.seed)
            } else {
                d
            }
        });
        let out = self
            .renderer
            .render_into(
                &mut self.frame,
                &content,
                defect.as_ref(),
                unit_seed(self.opts.seed, unit),
            )
            .map_err(|e| SimError::Device("camera", e.to_string()))?;
        if let FrameOutcome::NoFrame = out {
            return Ok(());
        }
        let f = Frame {
            unit,
            timestamp_us: self.clock.wall_micros(),
            width: self.frame.width,
            height: self.frame.height,
            pixels: self.frame.pixels.clone(),
        };
        self.published += 1;
        if self
            .slow
            .lock()
            .map(|s| s.contains(&self.published))
            .unwrap_or(false)
            && let Some(t) = self.truth.get_mut(&unit)
        {
            t.faulted = true;
        }
        // The frame carries a token until linectl's camera stage has taken it.
        self.activity.begin();
        match self.devs.camera.publish(&f) {
            Ok(n) if n > 0 => {}
            Ok(_) => {
                self.activity.end();
                tracing::warn!(unit, "no camera client connected: frame lost");
            }
            Err(e) => {
                self.activity.end();
                tracing::warn!(unit, error = %e, "frame not published");
            }
        }
        Ok(())
    }

    fn report(
        &self,
        status: &linectl::pipeline::LineStatus,
        records: &[UnitRecord],
        wall0: Instant,
        cpu0: f64,
    ) -> Report {
        let reasons: BTreeMap<u64, &UnitRecord> = records.iter().map(|r| (r.unit, r)).collect();
        let mut rep = Report {
            units: self.fed,
            deadline_ms: self.deadline.as_secs_f64() * 1000.0,
            injected: self.injected.clone(),
            injected_faults: self.injected_faults.clone(),
            printed: self.devs.printer.printed_count(),
            commissioned: status.commissioned,
            holds: self.holds,
            late_codes: status.late_codes,
            ..Report::default()
        };
        for (unit, t) in &self.truth {
            let rejected = t.rejected.unwrap_or(true);
            let reason = reasons.get(unit).map_or("none", |r| r.verdict);
            if rejected {
                *rep.rejected.entry(reason.to_string()).or_insert(0) += 1;
            } else {
                rep.passed += 1;
            }
            if t.bad() && !rejected {
                rep.missed_rejects += 1;
                rep.missed_units.push(*unit);
            }
            if !t.bad() && rejected {
                if t.faulted {
                    rep.fault_rejects += 1;
                } else {
                    rep.false_rejects += 1;
                    rep.false_reject_units.push(*unit);
                }
            }
            if let Some(d) = t.defect
                && rejected
                && !t.faulted
            {
                let ok = match d.expected_rejection() {
                    ExpectedRejection::NoRead => {
                        matches!(reason, "no-read" | "count-drift" | "no-code")
                    }
                    ExpectedRejection::WrongContent => reason == "wrong-code",
                    ExpectedRejection::LowGrade => reason == "low-grade",
                    ExpectedRejection::NoReadOrLowGrade => {
                        matches!(reason, "no-read" | "low-grade")
                    }
                    ExpectedRejection::MissingFrame => reason == "missing-frame",
                };
                if !ok {
                    rep.wrong_reason += 1;
                    rep.wrong_reason_units
                        .push((*unit, d.name().to_string(), reason.to_string()));
                }
            }
        }
        rep.duplicate_serials = self.printed_codes.values().filter(|n| **n > 1).count() as u64;
        let commissioned_dups = {
            let mut seen = std::collections::HashSet::new();
            records
                .iter()
                .filter(|r| r.verdict == "pass")
                .filter_map(|r| r.serial.as_ref())
                .filter(|s| !seen.insert(*s))
                .count() as u64
        };
        rep.duplicate_serials += commissioned_dups;
        rep.latency_ms = Latency::from_histogram(&status.latency);
        rep.host = Host::measure(wall0, cpu0);
        rep.missed_units.truncate(50);
        rep.false_reject_units.truncate(50);
        rep.wrong_reason_units.truncate(50);
        rep
    }
}

static SETTLE_NS: AtomicU64 = AtomicU64::new(0);
static SETTLE_N: AtomicU64 = AtomicU64::new(0);
struct SettleTimer(Instant);
impl Drop for SettleTimer {
    fn drop(&mut self) {
        SETTLE_NS.fetch_add(self.0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        SETTLE_N.fetch_add(1, Ordering::Relaxed);
    }
}
/// Debug: settle calls and total time.
pub fn settle_stats() -> (u64, f64) {
    (
        SETTLE_N.load(Ordering::Relaxed),
        SETTLE_NS.load(Ordering::Relaxed) as f64 / 1e9,
    )
}
