//! Shared set-up of the aggregation tests (included with `mod agg_support;` by
//! `tests/aggregation.rs` and `tests/agg_daemon.rs`, and by path from hil-sim's
//! `tests/aggregation.rs`): running the `linectl` binary, hil-sim line options, the
//! stores of a data dir (opened again after a crash), a station's real devices (a frame
//! stream the test publishes rendered layers and labels to, a ZPL label printer twin on
//! TCP), unit codes and their commissioning events in the journal.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hil_sim::aggregation::{Slot, render_layer};
use linectl::aggregation::store::AggStore;
use linectl::epcis::aggregation::AggregationEvents;
use linectl::epcis::{EventTime, IdForm, LineEvents, Sgln};
use linectl::journal::{Journal, JournalConfig};
use linectl::profile::aggregation::LayoutSection;
use linectl::uplink::record::{EVENT_RECORD, EventRecord};
use linectl_drivers::Frame;
use linectl_drivers::camera::stream::FrameServer;
use linectl_drivers::link::TwinServer;
use linectl_drivers::printer::TwinState;

/// The product GTIN of the example profiles.
pub const GTIN: &str = "09506000134352";
/// The case GTIN of the `gtin-serial` profile.
pub const CASE_GTIN: &str = "19506000134359";
/// The example profiles' batch.
pub const LOT: &str = "EU24A001";

/// Run the `linectl` binary `bin` (pass `env!("CARGO_BIN_EXE_linectl")`) with `args`,
/// no data dir or profile from the environment.
pub fn run_linectl(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("LINECTL_DATA_DIR")
        .env_remove("LINECTL_PROFILE")
        .env_remove("LINECTL_PASSWORD")
        .env("USER", "tester")
        .output()
        .expect("run linectl")
}

/// Stdout then stderr of a run.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// hil-sim's line on `profile` into `data`: `units` units, no defects, no faults.
pub fn sim_opts(
    profile: &linectl::profile::Profile,
    data: &Path,
    units: u64,
    seed: u64,
) -> hil_sim::line::SimOptions {
    hil_sim::line::SimOptions {
        profile: profile.clone(),
        units,
        rate_upm: None,
        defects: "0".parse().unwrap(),
        faults: "0".parse().unwrap(),
        seed,
        realtime: false,
        data_dir: data.to_path_buf(),
        printer_transport: hil_sim::line::PrinterTransport::Tcp,
        printer_load_delay: std::time::Duration::ZERO,
        frame: (1280, 960),
        progress: false,
        status_listen: None,
        stop: None,
        site_server: false,
        site_url: None,
    }
}

/// The aggregation store, the journal and the event builder of the data dir `dir`.
/// sled lets go of its lock only once the background flusher of a dropped store has
/// ended (the "restart" after a crash): opening is tried again for a few seconds.
pub fn stores(dir: &Path) -> (AggStore, Journal, AggregationEvents) {
    let t0 = Instant::now();
    let store = loop {
        match AggStore::open(&dir.join("aggregation")) {
            Ok(s) => break s,
            Err(e) if e.to_string().contains("lock") && t0.elapsed().as_secs() < 10 => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    };
    let journal = Journal::open(JournalConfig {
        consumers: Vec::new(),
        ..JournalConfig::in_dir(dir.join("journal"))
    })
    .unwrap();
    (store, journal, events())
}

/// The aggregation event builder of the example site.
pub fn events() -> AggregationEvents {
    let site = Sgln::new("9506000000008", None).unwrap();
    AggregationEvents::new(IdForm::DigitalLink, &site, &site).unwrap()
}

/// The serial pool of `dir`, opened again after a crash (its lock goes with the dead
/// process, sled's a moment later).
pub fn pool(dir: &Path) -> linectl::pool::Pool {
    let t0 = Instant::now();
    loop {
        match linectl::pool::Pool::open(&dir.join("pool"), linectl::pool::OpenMode::MustExist) {
            Ok(p) => return p,
            Err(e) => {
                assert!(t0.elapsed() < Duration::from_secs(10), "pool: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A pool in `dir` holding `n` serials `PREFIX0001…` of `gtin`.
pub fn pool_with(dir: &Path, gtin: &str, prefix: &str, n: u64) -> linectl::pool::Pool {
    use linectl::pool::{OpenMode, Pool, SerialRecord, Source};
    let mut pool = Pool::open(&dir.join("pool"), OpenMode::CreateIfMissing).unwrap();
    let records: Vec<_> = (1..=n)
        .map(|i| {
            Ok(SerialRecord {
                at: i,
                serial: format!("{prefix}{i:04}"),
                ai91: None,
                ai92: None,
            })
        })
        .collect();
    pool.import(
        gtin,
        Some(linectl::market::Market::EuFmd),
        Source {
            header: None,
            records: Box::new(records.into_iter()),
        },
        "test",
    )
    .unwrap();
    pool
}

/// The element string of the unit `serial` of the example product and batch.
pub fn unit_code(serial: &str) -> String {
    format!("01{GTIN}21{serial}\u{1d}10{LOT}\u{1d}17281231")
}

/// Journal the commissioning of `serials` in the example batch.
pub fn commission(journal: &Journal, serials: &[&str]) {
    let site = Sgln::new("9506000000008", None).unwrap();
    let line = LineEvents::new(IdForm::DigitalLink, GTIN, &site, &site).unwrap();
    let t = EventTime::from_wall_micros(1_767_225_600_000_000, 0).unwrap();
    let ev = line
        .commissioning(t, serials, LOT, "281231")
        .unwrap()
        .with_hash_id()
        .unwrap();
    let rec = EventRecord::new(LOT, &ev).unwrap();
    journal.append(EVENT_RECORD, rec.encode()).unwrap();
}

/// A 2 × 2 case layer in a 1224 × 1024 frame (the small cases of the daemon tests).
pub const LAYOUT: LayoutSection = LayoutSection {
    rows: 2,
    cols: 2,
    x: 0,
    y: 0,
    width: 1224,
    height: 1024,
};

/// A rendered case layer of `slots` on [`LAYOUT`].
pub fn layer(slots: &[Slot], seed: u64) -> hil_sim::render::GreyFrame {
    render_layer(1224, 1024, &LAYOUT, slots, seed).unwrap()
}

/// A rendered label carrying `element_string`.
pub fn label_frame(element_string: &str) -> hil_sim::render::GreyFrame {
    let layout = LayoutSection {
        rows: 1,
        cols: 1,
        x: 0,
        y: 0,
        width: 640,
        height: 480,
    };
    render_layer(
        640,
        480,
        &layout,
        &[Slot::Code(element_string.to_string())],
        9,
    )
    .unwrap()
}

/// Publish `f` as the camera frame numbered `unit`.
pub fn publish(server: &FrameServer, unit: u64, f: &hil_sim::render::GreyFrame) {
    server
        .publish(&Frame {
            unit,
            timestamp_us: 0,
            width: f.width,
            height: f.height,
            pixels: f.pixels.clone(),
        })
        .expect("publish");
}

/// The data of the next label the printer twin printed, if any.
pub fn label_of(printer: &TwinState) -> Option<String> {
    let rec = printer.print_one()?;
    rec.fields
        .iter()
        .find(|(n, _)| n == "DM")
        .or_else(|| rec.fields.first())
        .map(|(_, v)| v.clone())
}

/// A station's devices: a frame stream on a loopback port and a ZPL label printer twin.
pub struct Rig {
    /// The camera's frame stream (publish layers and labels to it).
    pub camera: Arc<FrameServer>,
    /// Its address.
    pub cam_addr: String,
    /// The printer twin's state (what was printed).
    pub printer: TwinState,
    /// Its address.
    pub prn_addr: String,
    _server: TwinServer,
}

impl Rig {
    /// Both devices, listening.
    pub fn new() -> Rig {
        let camera = FrameServer::bind("127.0.0.1:0").unwrap();
        let cam_addr = camera.local_addr().to_string();
        let printer = TwinState::new(16);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let prn_addr = listener.local_addr().unwrap().to_string();
        let st = printer.clone();
        let server = TwinServer::spawn_tcp(listener, move || {
            linectl_drivers::printer::zpl::ZplSession::new(st.clone())
        })
        .unwrap();
        Rig {
            camera: Arc::new(camera),
            cam_addr,
            printer,
            prn_addr,
            _server: server,
        }
    }

    /// A station's devices connected to this rig (the camera waited for).
    pub fn devices(&self) -> linectl::aggregation::station::Devices {
        let t = Duration::from_secs(5);
        let camera = linectl_drivers::connect_frame_source("tcp-stream", &self.cam_addr, t)
            .expect("station camera");
        let printer =
            linectl_drivers::connect_printer("zpl", &self.prn_addr, None, t).expect("printer");
        assert!(
            self.camera.wait_for_clients(1, Duration::from_secs(10)),
            "station camera not connected"
        );
        linectl::aggregation::station::Devices { camera, printer }
    }
}
