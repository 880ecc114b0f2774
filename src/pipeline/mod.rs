//! The real-time pipeline: the line end to end. For each unit the PLC counts it takes a
//! serial from the pool, builds the market code, keeps the printer loaded ahead of the
//! line, matches the camera frame to the unit, decodes and verifies it on the decode
//! pool, writes the verdict to the PLC before the unit's deadline and records the
//! outcome durably in the event journal. It owns the threads and the channels between
//! them, the PackML machine's place in the line, and the line's status snapshot.
//! It does not own device protocols (drivers, behind `Plc`, `Printer`, `FrameSource`),
//! decoding (vision), serial storage (pool) or the event formats (epcis, journal).
//!
//! # Threads
//! ```text
//!  plc ──Count/State──▶ coordinator ──LoadUpTo──▶ printer (pool + allocator + printer)
//!   ▲                    ▲   ▲  │                    │ Loaded / Count / Fault
//!   └──── verdicts ──────┘   │  └──▶ recorder (journal, pool states) ◀── states
//!  camera + decode ─Outcome──┘
//! ```
//! Every thread blocks only on a bounded crossbeam channel or on an alarm of the
//! injected [`Clock`]; tokio lives inside the Modbus driver only. Under a
//! [`VirtualClock`](crate::clock::VirtualClock) with an [`Activity`] counter the
//! simulator can tell when the whole pipeline is idle and only then move time on,
//! which makes a run deterministic.

mod coordinator;
mod devices;
pub mod frames;
mod histogram;
pub mod probe;
mod recorder;
mod serial;
mod slots;
mod stages;
mod wait;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use serde::Serialize;

use crate::clock::{Activity, Clock};
use crate::market::{BatchData, Market, Product};
use crate::packml::{State, StopReason};
use crate::profile::Profile;
use crate::vision::DecodeConfig;

pub use devices::{DeviceFactory, Devices};
pub use histogram::TimeHistogram;
pub use serial::UnitSerial;

/// Everything the pipeline needs to know about the line, taken from a profile.
#[derive(Debug, Clone)]
pub struct LineConfig {
    /// Line id (events, allocations).
    pub line_id: String,
    /// Product master data.
    pub product: Product,
    /// The market whose rules build the code.
    pub market: Market,
    /// The line's SGLN (read point and business location of events).
    pub site: String,
    /// Identifier form of event EPCs.
    pub identifiers: crate::epcis::IdForm,
    /// Codes kept loaded in the printer ahead of the line.
    pub buffer_ahead: u32,
    /// The printer job selected at batch start.
    pub printer_job: String,
    /// Serials per durable pool reservation.
    pub block_size: u64,
    /// PLC polling period.
    pub poll: Duration,
    /// Heartbeat period towards the PLC.
    pub heartbeat: Duration,
    /// Printer count / status polling period.
    pub printer_poll: Duration,
    /// Time from the trigger (at the printer) to the camera.
    pub print_to_camera: Duration,
    /// Verdict deadline after the camera (travel to the reject station minus PLC scan
    /// and valve time).
    pub verdict_deadline: Duration,
    /// Decode time allowed per frame.
    pub decode_deadline: Duration,
    /// How long a printer count may lag the PLC count before it is a drift; must stay
    /// below the time between two units, or one missing print hides behind the next.
    pub count_settle: Duration,
    /// Consecutive units without a frame that mean the camera stalled (line Held).
    pub max_missing_frames: u32,
    /// Lowest acceptable print grade.
    pub min_grade: crate::vision::Grade,
    /// Decoder settings (ROI, passes).
    pub decode: DecodeConfig,
    /// Decode worker threads.
    pub decode_workers: usize,
    /// Data directory (pool in `pool/`, journal in `journal/`, reject frames in
    /// `frames/`).
    pub data_dir: PathBuf,
    /// How many reject frames are kept.
    pub reject_frames: frames::FrameRetention,
    /// Journal consumers: `uplink` holds records until the site server has them (when
    /// the profile names a capture URL); `site-pull` reads for the pull API.
    pub journal_consumers: Vec<crate::journal::ConsumerConfig>,
}

impl LineConfig {
    /// The pipeline settings a validated profile gives, with data in `data_dir`.
    pub fn from_profile(p: &Profile, data_dir: PathBuf) -> LineConfig {
        let g = &p.geometry;
        let speed = g.conveyor_speed_mm_s.max(1e-6);
        let ms = |v: f64| Duration::from_micros((v.max(0.0) * 1000.0) as u64);
        let verdict_deadline = ms(g.verdict_deadline_ms());
        let decode_deadline = Duration::from_millis(p.verification.decode_deadline_ms);
        let min_grade = match p.verification.min_grade {
            crate::profile::Grade::A => crate::vision::Grade::A,
            crate::profile::Grade::B => crate::vision::Grade::B,
            crate::profile::Grade::C => crate::vision::Grade::C,
            crate::profile::Grade::D => crate::vision::Grade::D,
            crate::profile::Grade::F => crate::vision::Grade::F,
        };
        let roi = p.verification.roi.map(|r| crate::vision::Roi {
            x: r.x,
            y: r.y,
            width: r.w,
            height: r.h,
        });
        LineConfig {
            line_id: p.line.id.clone(),
            product: p.market_product(),
            market: p.product.market,
            site: p.line.site.clone(),
            identifiers: id_form(p.epcis.identifiers, &p.line.site),
            buffer_ahead: p.printer.buffer_ahead.max(1),
            printer_job: p.printer.job.clone(),
            block_size: u64::from(p.serials.block_size.max(1)),
            poll: Duration::from_millis(p.plc.poll_ms.max(1)),
            heartbeat: Duration::from_millis(100),
            printer_poll: Duration::from_millis(p.plc.poll_ms.max(1) * 2),
            print_to_camera: ms(g.print_to_camera_mm / speed * 1000.0),
            verdict_deadline,
            decode_deadline,
            // A skipped print must show before the next unit hides it: half a pitch,
            // but at least two PLC polls and at most 30 ms.
            count_settle: ms(g.pitch_mm / speed * 500.0).clamp(
                Duration::from_millis(p.plc.poll_ms.max(1) * 2),
                Duration::from_millis(30),
            ),
            max_missing_frames: 3,
            min_grade,
            decode: DecodeConfig {
                roi,
                ..DecodeConfig::default()
            },
            decode_workers: 1,
            data_dir,
            reject_frames: frames::FrameRetention {
                keep: p.verification.reject_frames_keep,
                max_bytes: p
                    .verification
                    .reject_frames_max_mb
                    .saturating_mul(1024 * 1024),
            },
            journal_consumers: {
                let mut c = Vec::new();
                if p.epcis.capture_url.is_some() {
                    c.push(crate::journal::ConsumerConfig::holding("uplink"));
                }
                c.push(crate::journal::ConsumerConfig {
                    name: "site-pull".into(),
                    retention: crate::journal::Retention::Advisory,
                });
                c
            },
        }
    }
}

/// The profile's site (an SGLN URN or a 13-digit GLN) as an [`Sgln`](crate::epcis::Sgln).
pub fn site_sgln(site: &str) -> Result<crate::epcis::Sgln, crate::epcis::EpcisError> {
    match site.strip_prefix("urn:epc:id:sgln:") {
        Some(rest) => {
            let mut parts = rest.splitn(3, '.');
            let cp = parts.next().unwrap_or("");
            let loc = parts.next().unwrap_or("");
            let ext = parts.next();
            let digits = format!("{cp}{loc}");
            let check = crate::epcis::ids::gs1_check_digit(&digits).unwrap_or('0');
            crate::epcis::Sgln::new(&format!("{digits}{check}"), ext)
        }
        None => crate::epcis::Sgln::new(site, None),
    }
}

/// The event identifier form a profile asks for; EPC URNs split keys at the company
/// prefix length of the site's SGLN URN (7 digits when the site is a bare GLN).
pub fn id_form(form: crate::profile::IdentifierForm, site: &str) -> crate::epcis::IdForm {
    match form {
        crate::profile::IdentifierForm::DigitalLink => crate::epcis::IdForm::DigitalLink,
        crate::profile::IdentifierForm::EpcUrn => {
            let len = site
                .strip_prefix("urn:epc:id:sgln:")
                .and_then(|r| r.split('.').next())
                .map_or(7, |cp| cp.len() as u8);
            match crate::epcis::CompanyPrefixLen::new(len) {
                Ok(company_prefix_len) => crate::epcis::IdForm::EpcUrn { company_prefix_len },
                Err(_) => crate::epcis::IdForm::DigitalLink,
            }
        }
    }
}

/// A batch to run: the operator's (or work order's) data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BatchOrder {
    /// Batch / lot (AI 10).
    pub lot: String,
    /// Expiry YYMMDD (AI 17).
    pub expiry: String,
    /// Units to code: each consumes one serial; the batch completes when this many
    /// units have a verdict.
    pub quantity: u64,
}

impl BatchOrder {
    pub(crate) fn batch_data(&self) -> BatchData {
        BatchData {
            batch: self.lot.clone(),
            expiry: self.expiry.clone(),
        }
    }
}

/// What an operator (HMI, simulator, CLI) asks of the line.
#[derive(Debug, Clone, PartialEq)]
pub enum LineCommand {
    /// Reset a Stopped or Complete line to Idle.
    Reset,
    /// Start a batch from Idle: checks pool coverage and the devices first.
    StartBatch(BatchOrder),
    /// Hold the line (operator).
    Hold,
    /// Resume from Held (re-synchronises counts and reloads the printer).
    Unhold,
    /// Stop the line.
    Stop,
    /// Abort the line.
    Abort,
    /// Clear an Aborted line.
    Clear,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not allowed in this state.
    #[error("{command} is not allowed in state {state}")]
    NotAllowed {
        /// The command.
        command: String,
        /// The line's state.
        state: String,
    },
    /// A start check failed (pool coverage, devices, batch data).
    #[error("cannot start the batch: {0}")]
    StartRefused(String),
    /// The pipeline has stopped.
    #[error("the pipeline is not running")]
    Gone,
}

/// One unit's outcome, as the pipeline decided it (published for observers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitRecord {
    /// Line unit number (PLC count).
    pub unit: u64,
    /// The serial loaded for it (`None`: no code was loaded); inline, no allocation.
    pub serial: Option<UnitSerial>,
    /// `pass` or the reject reason code.
    pub verdict: &'static str,
    /// Human-readable detail of a reject.
    pub detail: String,
    /// The grade letter when a symbol was graded.
    pub grade: Option<char>,
    /// Frame arrival → verdict sent to the PLC, µs (clock time; `None` without frame).
    pub latency_us: Option<u64>,
    /// File name of the reject's camera frame in `<data-dir>/frames/` (see
    /// [`frames::FrameStore`]); `None` for a pass or a reject without a frame.
    pub frame: Option<String>,
}

/// Device link states.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Links {
    /// PLC connected.
    pub plc: bool,
    /// Printer connected.
    pub printer: bool,
    /// Camera connected.
    pub camera: bool,
}

/// The line's status (PackTags-style), updated by the coordinator.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LineStatus {
    /// PackML state name.
    pub state: String,
    /// Last stop reason.
    pub stop_reason: Option<StopReason>,
    /// Running batch.
    pub batch: Option<BatchOrder>,
    /// Units counted by the PLC in this batch.
    pub triggered: u64,
    /// Codes loaded into the printer in this batch.
    pub loaded: u64,
    /// Prints the printer reported in this batch.
    pub printed: u64,
    /// Codes that reached the printer only after their unit had passed it (a printer
    /// slower than the line), in this batch: recorded as never applied.
    pub late_codes: u64,
    /// Units with a verdict in this batch.
    pub inspected: u64,
    /// Units passed.
    pub passed: u64,
    /// Units rejected, by reason code.
    pub rejected: BTreeMap<String, u64>,
    /// Passed units whose commissioning event is durable in the journal.
    pub commissioned: u64,
    /// Events durable in the journal (this process).
    pub journaled: u64,
    /// Serials left in the pool for the product (last known).
    pub pool_available: Option<u64>,
    /// Device links.
    pub links: Links,
    /// Clock time (µs) of the coordinator's last periodic check: the liveness stamp the
    /// daemon's systemd watchdog follows.
    pub alive_us: u64,
    /// Verdict latency (frame arrival → verdict written to the PLC) of every unit with
    /// a frame since the pipeline started.
    pub latency: TimeHistogram,
    /// Time the decoder spent on each frame it finished (read or not).
    pub decode_time: TimeHistogram,
}

impl LineStatus {
    fn state_enum(&self) -> State {
        State::ALL
            .iter()
            .copied()
            .find(|s| s.name() == self.state)
            .unwrap_or(State::Stopped)
    }
}

/// Shared, cloneable view of the status.
#[derive(Debug, Clone, Default)]
pub struct StatusCell(Arc<Mutex<LineStatus>>);

impl StatusCell {
    /// A copy of the current status.
    pub fn snapshot(&self) -> LineStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// The PackML state.
    pub fn state(&self) -> State {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state_enum()
    }
    pub(crate) fn update(&self, f: impl FnOnce(&mut LineStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Optional hooks for the simulator and tests.
#[derive(Default)]
pub struct Hooks {
    /// Receives every unit's record. The coordinator blocks while a bounded channel is
    /// full, so drain it promptly (hil-sim drains its bounded one at every step of the
    /// simulation: nothing allocates per unit); an unbounded one never blocks the line
    /// but allocates a block every 31 records.
    pub observer: Option<Sender<UnitRecord>>,
    /// Idle accounting for lockstep simulation (see [`Activity`]).
    pub activity: Activity,
    /// Replaces the frame decoder (fault injection in the simulator).
    pub decoder: Option<Arc<dyn Fn() -> Box<dyn crate::vision::pool::FrameDecoder> + Send + Sync>>,
}

/// Errors starting the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The pool could not be opened.
    #[error("serial pool: {0}")]
    Pool(#[from] crate::pool::PoolError),
    /// The journal could not be opened.
    #[error("event journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    /// Line identity or product data is not usable for events.
    #[error("events: {0}")]
    Events(#[from] crate::epcis::EpcisError),
    /// A thread could not be spawned.
    #[error("spawning the {0} thread: {1}")]
    Spawn(&'static str, std::io::Error),
}

/// The running pipeline.
pub struct Line {
    journal: Arc<crate::journal::Journal>,
    pool: crate::pool::SharedPool,
    cmd: Sender<coordinator::Ev>,
    status: StatusCell,
    activity: Activity,
    threads: Vec<(&'static str, JoinHandle<()>)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line").finish_non_exhaustive()
    }
}

impl Line {
    /// Open the pool and journal in the data dir and start every thread. Devices are
    /// connected by their threads (and reconnected after a loss).
    pub fn start(
        cfg: LineConfig,
        devices: Devices,
        clock: Arc<dyn Clock>,
        hooks: Hooks,
    ) -> Result<Line, StartError> {
        let pool: crate::pool::SharedPool = Arc::new(Mutex::new(crate::pool::Pool::open(
            &cfg.data_dir.join("pool"),
            crate::pool::OpenMode::CreateIfMissing,
        )?));
        let shared_pool = pool.clone();
        let journal = Arc::new(crate::journal::Journal::open(
            crate::journal::JournalConfig {
                consumers: cfg.journal_consumers.clone(),
                ..crate::journal::JournalConfig::in_dir(cfg.data_dir.join("journal"))
            },
        )?);
        let site = site_sgln(&cfg.site)?;
        let events =
            crate::epcis::LineEvents::new(cfg.identifiers, &cfg.product.gtin, &site, &site)?;
        let activity = hooks.activity.clone();
        let status = StatusCell::default();
        status.update(|s| s.state = State::Stopped.name().to_string());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ev_tx, ev_rx) = bounded::<coordinator::Ev>(1024);
        let (plc_tx, plc_rx) = bounded::<stages::PlcCmd>(1024);
        let (prn_tx, prn_rx) = bounded::<stages::PrinterCmd>(1024);
        let (rec_tx, rec_rx) = bounded::<recorder::Rec>(4096);
        // Pixel buffers of frames done with, back to the camera thread (never waited on:
        // a full channel drops the buffer).
        let (spare_tx, spare_rx) = bounded::<Vec<u8>>(8);
        // Lists of loaded codes the coordinator is done with, back to the printer thread
        // with their strings for the next load (dropped when the channel is full).
        let (loaded_tx, loaded_rx) = bounded::<Vec<stages::Loaded>>(8);
        // State lists the printer thread has taken in, back to the recorder (emptied).
        let (states_tx, states_rx) = bounded::<Vec<(String, crate::pool::SerialState)>>(8);
        // Every thread starts holding one activity token and gives it up when it first
        // blocks.
        let mut threads = Vec::new();
        let mut spawn =
            |name: &'static str, f: Box<dyn FnOnce() + Send>| -> Result<(), StartError> {
                activity.begin();
                let h = std::thread::Builder::new()
                    .name(format!("linectl-{name}"))
                    .spawn(move || {
                        probe::enter(probe::Stage::of_thread(name));
                        f()
                    })
                    .map_err(|e| StartError::Spawn(name, e))?;
                threads.push((name, h));
                Ok(())
            };
        let Devices {
            plc,
            printer,
            camera,
        } = devices;
        {
            let ctx = stages::Ctx::new(clock.clone(), activity.clone(), stop.clone());
            let ev = ev_tx.clone();
            let poll = cfg.poll;
            let hb = cfg.heartbeat;
            spawn(
                "plc",
                Box::new(move || stages::plc_thread(ctx, plc, plc_rx, ev, poll, hb)),
            )?;
        }
        {
            let ctx = stages::Ctx::new(clock.clone(), activity.clone(), stop.clone());
            let ev = ev_tx.clone();
            let pcfg = stages::PrinterSetup::from(&cfg);
            spawn(
                "printer",
                Box::new(move || {
                    stages::printer_thread(
                        ctx, printer, pool, pcfg, prn_rx, ev, loaded_rx, states_tx,
                    )
                }),
            )?;
        }
        {
            let ctx = stages::Ctx::new(clock.clone(), activity.clone(), stop.clone());
            let ev = ev_tx.clone();
            let vcfg = stages::VisionSetup::from(&cfg);
            let decoder = hooks.decoder.clone();
            spawn(
                "camera",
                Box::new(move || stages::camera_thread(ctx, camera, vcfg, decoder, ev, spare_rx)),
            )?;
        }
        {
            let ctx = stages::Ctx::new(clock.clone(), activity.clone(), stop.clone());
            let ev = ev_tx.clone();
            let prn = prn_tx.clone();
            let j = journal.clone();
            let store = frames::FrameStore::new(&cfg.data_dir, cfg.reject_frames);
            spawn(
                "recorder",
                Box::new(move || {
                    recorder::recorder_thread(ctx, j, events, store, rec_rx, ev, prn, states_rx)
                }),
            )?;
        }
        {
            let ctx = stages::Ctx::new(clock.clone(), activity.clone(), stop.clone());
            let st = status.clone();
            let observer = hooks.observer;
            let c = coordinator::Coordinator::new(
                cfg, ctx, st, plc_tx, prn_tx, rec_tx, observer, spare_tx, loaded_tx,
            );
            spawn("coordinator", Box::new(move || c.run(ev_rx)))?;
        }
        Ok(Line {
            journal,
            pool: shared_pool,
            cmd: ev_tx,
            status,
            activity,
            threads,
            stop,
        })
    }

    /// Send a command and wait for its answer.
    pub fn command(&self, command: LineCommand) -> Result<(), LineError> {
        let (tx, rx) = bounded(1);
        self.activity.begin();
        if self
            .cmd
            .send(coordinator::Ev::Command(command, tx))
            .is_err()
        {
            self.activity.end();
            return Err(LineError::Gone);
        }
        rx.recv().unwrap_or(Err(LineError::Gone))
    }

    /// The shared status.
    pub fn status(&self) -> &StatusCell {
        &self.status
    }

    /// The event journal (for the uplink and the pull API).
    pub fn journal(&self) -> Arc<crate::journal::Journal> {
        self.journal.clone()
    }

    /// The serial pool the printer thread hands out from, shared (its data dir is
    /// locked by this process): the aggregation's case serials and unit states use it.
    /// Lock it per operation (`crate::pool::alloc::lock`), never across a wait.
    pub fn pool(&self) -> crate::pool::SharedPool {
        self.pool.clone()
    }

    /// Stop every thread (devices are left as they are; a running batch stays open
    /// and its unused serials are invalidated at the next start).
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.activity.begin();
        let _ = self.cmd.send(coordinator::Ev::Shutdown);
        for (name, h) in self.threads.drain(..) {
            if h.join().is_err() {
                tracing::error!(thread = name, "pipeline thread panicked");
            }
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_threads();
        }
    }
}

/// Receiver type for [`Hooks::observer`].
pub type Observer = Receiver<UnitRecord>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_urn_and_gln_become_the_same_sgln() {
        let a = site_sgln("urn:epc:id:sgln:9506000.00000.0").unwrap_or_else(|e| panic!("{e}"));
        let gln = format!(
            "950600000000{}",
            crate::epcis::ids::gs1_check_digit("950600000000").unwrap_or('0')
        );
        let b = site_sgln(&gln).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, b);
        assert!(site_sgln("urn:epc:id:sgln:12.3.0").is_err());
    }

    #[test]
    fn profile_geometry_gives_the_deadlines() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("line-profiles/eu-fmd-carton.toml");
        let prof =
            Profile::load_with_env(&p, Some(Default::default())).unwrap_or_else(|e| panic!("{e}"));
        let c = LineConfig::from_profile(&prof, PathBuf::from("/tmp/x"));
        // 400 mm at 500 mm/s minus 10 ms scan and 20 ms valve.
        assert_eq!(c.verdict_deadline, Duration::from_millis(770));
        assert_eq!(c.print_to_camera, Duration::from_millis(600));
        assert_eq!(c.buffer_ahead, 4);
        assert!(c.journal_consumers.iter().any(|k| k.name == "uplink"));
    }
}
