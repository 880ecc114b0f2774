//! End to end: the operator HMI in front of a real-time simulated line (hil-sim's
//! devices, linectl's real drivers and pipeline), walked through in headless Chromium
//! by `tests/hmi_e2e/e2e.mjs` (playwright-core): log in, start a batch, see the counts
//! rise, resolve an exception with a reason, find it in the audit trail, open a case
//! for rework at the aggregation page. Screenshots
//! of every page go to `docs/screenshots/`. Fails (never skips) when Chromium or the
//! Node modules are missing, naming the install commands.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hil_sim::line::{PrinterTransport, SimOptions};
use linectl::audit::{Action, Query};
use linectl::clock::{Clock, SystemClock};
use linectl::hmi::{Hmi, HmiConfig, HmiParts, HmiServer};
use linectl::users::{Actor, HashParams, Role, UsersConfig};

const PW: &str = "e2e-pass-word-1";
/// The SSCC of the case the walk opens for rework.
const E2E_CASE: &str = "095060000000000015";

fn require_tools(root: &Path) -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let pkg = root.join("tests/hmi_e2e/node_modules/playwright-core/package.json");
    let mut missing = Vec::new();
    if !Path::new(&chromium).exists() {
        missing.push(format!("{chromium} (apt-get install -y chromium)"));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        missing.push("node (apt-get install -y nodejs npm)".into());
    }
    if !pkg.exists() {
        missing.push("playwright-core (npm ci --prefix tests/hmi_e2e)".into());
    }
    assert!(
        missing.is_empty(),
        "the HMI end-to-end test needs: {}. Install with: apt-get install -y chromium nodejs npm && npm ci --prefix tests/hmi_e2e",
        missing.join(", ")
    );
    chromium
}

#[test]
fn operator_runs_a_batch_and_a_supervisor_resolves_an_exception_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = require_tools(root);
    let dir = tempfile::tempdir().unwrap();
    let profile = linectl::profile::Profile::load_with_env(
        &root.join("line-profiles/eu-fmd-carton.toml"),
        Some(Default::default()),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = SimOptions {
        profile: profile.clone(),
        units: 100_000,
        rate_upm: Some(120.0),
        defects: "0.08".parse().unwrap(),
        faults: "0".parse().unwrap(),
        seed: 17,
        realtime: true,
        data_dir: dir.path().join("line"),
        printer_transport: PrinterTransport::Tcp,
        printer_load_delay: std::time::Duration::ZERO,
        frame: (1280, 960),
        progress: false,
        status_listen: None,
        stop: Some(stop.clone()),
        site_server: false,
        site_url: None,
    };
    let data_dir = dir.path().join("line");
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (parts_tx, parts_rx) = std::sync::mpsc::channel();
    let front: hil_sim::line::FrontEnd = Box::new(move |line, records| {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let parts = HmiParts::open(
            &data_dir,
            UsersConfig {
                hashing: HashParams::insecure_fast_for_tests(),
                ..UsersConfig::default()
            },
            clock.clone(),
        )
        .unwrap();
        let console = Actor::console("e2e");
        for (n, r) in [
            ("op", Role::Operator),
            ("sup", Role::Supervisor),
            ("qa", Role::Qa),
            ("admin", Role::Admin),
        ] {
            parts
                .users
                .add_user(&console, n, r, PW, "e2e set-up")
                .unwrap();
        }
        // The overview's pool forecast and upload backlog, as `linectl run` wires them.
        let gauges = std::sync::Arc::new(linectl::serve::gauges::GaugeSource::new(
            line.journal(),
            line.status().clone(),
            clock.clone(),
            linectl::pool::Forecast::default(),
            profile.serials.low_water,
        ));
        let observer = linectl::hmi::spawn_observer(
            records,
            parts.exceptions.clone(),
            line.status().clone(),
            clock.clone(),
        )
        .unwrap();
        let hmi = Hmi::new(
            HmiConfig::from_profile(&profile),
            line.clone(),
            parts.users.clone(),
            parts.audit.clone(),
            parts.exceptions.clone(),
            Some(parts.orders.clone()),
        );
        hmi.set_ops_probe(std::sync::Arc::new(move || gauges.collect()));
        // Aggregation rework: one closed case of 4 units and a held case.
        let agg_store =
            linectl::aggregation::store::AggStore::open(&data_dir.join("aggregation")).unwrap();
        let unit = |s: &str| linectl::aggregation::store::Child::Unit {
            gtin: profile.product.gtin.clone(),
            serial: s.into(),
        };
        agg_store
            .begin(&linectl::aggregation::store::Intent {
                sscc: E2E_CASE.into(),
                level: linectl::aggregation::store::Level::Case,
                batch: "E2E-LOT-1".into(),
                children: ["E2EU1", "E2EU2", "E2EU3", "E2EU4"].map(unit).to_vec(),
                stage: linectl::aggregation::store::Stage::Verified,
                at_us: clock.wall_micros(),
                partial_of: None,
            })
            .unwrap();
        agg_store.commit(E2E_CASE, &[]).unwrap();
        agg_store
            .hold(
                linectl::aggregation::store::Level::Case,
                "E2E-LOT-1",
                vec!["foreign: (01)09506000134352(21)XYZ at row 1 col 2 (200, 0): not commissioned in batch E2E-LOT-1".into()],
                None,
                clock.wall_micros(),
            )
            .unwrap();
        let site = linectl::pipeline::site_sgln(&profile.line.site).unwrap();
        let form = linectl::pipeline::id_form(profile.epcis.identifiers, &profile.line.site);
        hmi.set_aggregation(Arc::new(linectl::aggregation::service::AggService::new(
            linectl::aggregation::service::ServiceParts {
                store: agg_store,
                journal: line.journal(),
                events: linectl::epcis::aggregation::AggregationEvents::new(form, &site, &site)
                    .unwrap(),
                audit: parts.audit.clone(),
                clock: clock.clone(),
                gtin: profile.product.gtin.clone(),
                packing: linectl::aggregation::rework::Packing {
                    units_per_case: 4,
                    cases_per_pallet: 2,
                },
                running_batch: linectl::aggregation::service::running_batch(line.status().clone()),
                default_batch: None,
            },
        )));
        let server = HmiServer::start("127.0.0.1:0", &hmi, hmi.router()).unwrap();
        addr_tx.send(server.local_addr()).unwrap();
        parts_tx.send(parts.audit.clone()).unwrap();
        Box::new((server, hmi, observer))
    });
    let sim = std::thread::spawn(move || hil_sim::line::run_with_front_end(&opts, front));
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the HMI did not come up");
    let audit = parts_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let shots = root.join("docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = std::process::Command::new("node")
        .arg(root.join("tests/hmi_e2e/e2e.mjs"))
        .arg(format!("http://{addr}"))
        .arg(&shots)
        .arg(PW)
        .arg(E2E_CASE)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = sim.join().unwrap();
    assert!(
        out.status.success(),
        "browser walk failed:\n{stdout}\n{stderr}"
    );
    let seen: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    let report = report.unwrap_or_else(|e| panic!("simulated run: {e}"));
    assert!(report.missed_rejects == 0, "bad units passed");
    assert!(seen["inspected_later"].as_u64().unwrap() > seen["inspected_first"].as_u64().unwrap());
    assert!(seen["passed_later"].as_u64().unwrap() > seen["passed_first"].as_u64().unwrap());
    assert!(report.passed > 0, "no good unit passed");
    // The browser's resolution is in the (verified) trail, by the supervisor, with the reason.
    let id = seen["exception"].as_u64().unwrap();
    let recs = audit
        .query(&Query {
            action: Some(Action::ExceptionResolved),
            object_prefix: Some(format!("exception:{id}")),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].user, "sup");
    assert_eq!(recs[0].reason, seen["reason"].as_str().unwrap());
    let started = audit
        .query(&Query {
            action: Some(Action::BatchStarted),
            user: Some("op".into()),
            ..Query::default()
        })
        .unwrap();
    assert!(started.iter().any(|r| r.object == "batch:E2E-LOT-1"));
    // The case the supervisor opened at the aggregation page.
    let opened = audit
        .query(&Query {
            action: Some(Action::AggregationRework),
            object_prefix: Some(format!("case:{E2E_CASE}")),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(
        (opened[0].user.as_str(), opened[0].reason.as_str()),
        ("sup", "e2e: carton dented")
    );
    assert!(audit.verify().is_ok());
    for page in [
        "login",
        "batch",
        "overview",
        "exceptions",
        "audit",
        "trends",
        "users",
        "aggregation",
        "aggregation-case",
        "overview-1024",
    ] {
        let p = shots.join(format!("{page}.png"));
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {} missing or empty", p.display());
    }
}
