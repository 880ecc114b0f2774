//! Aggregation end to end: the simulated line and stations (hil-sim) fill a data
//! directory; `linectl agg show` prints the tree of a scanned pallet, case or unit;
//! the rework steps (dissolve a pallet, open a case, take a unit out, close it) change
//! the store, journal DELETE/ADD events and are audited; every journaled event,
//! aggregation included, validates against the EPCIS 2.0 schema. And crash recovery:
//! an interrupted label is voided, a verified one committed, an event written with its
//! aggregation journaled exactly once however often recovery runs.

mod uplink_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use linectl::aggregation::station::{deliver, outgoing, recover};
use linectl::aggregation::store::{AggStore, Child, Intent, Level, Stage};
use linectl::epcis::aggregation::AggregationEvents;
use linectl::epcis::{EventTime, IdForm, Sgln};
use linectl::journal::{Journal, JournalConfig, Seq};
use serde_json::Value;
use uplink_support::{schema_errors, validator};

fn linectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linectl"))
        .args(args)
        .env_remove("LINECTL_DATA_DIR")
        .env_remove("LINECTL_PROFILE")
        .env("USER", "tester")
        .output()
        .expect("run linectl")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn profile_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("line-profiles/eu-fmd-case-aggregation.toml")
}

fn exported(dir: &Path) -> Value {
    let o = linectl(&["events", "export", "--data-dir", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("document")
}

fn agg_events(doc: &Value) -> Vec<Value> {
    doc["epcisBody"]["eventList"]
        .as_array()
        .expect("eventList")
        .iter()
        .filter(|e| e["type"] == "AggregationEvent")
        .cloned()
        .collect()
}

#[test]
fn line_stations_show_and_rework_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut profile =
        linectl::profile::Profile::load_with_env(&profile_path(), Some(Default::default()))
            .unwrap();
    let a = profile.aggregation.as_mut().unwrap();
    a.units_per_case = 12;
    a.case_layout.rows = 3;
    a.case_layout.cols = 4;
    a.cases_per_pallet = 2;
    a.pallet_layout.rows = 1;
    a.pallet_layout.cols = 2;
    let opts = hil_sim::line::SimOptions {
        profile,
        units: 72,
        rate_upm: None,
        defects: "0".parse().unwrap(),
        faults: "0".parse().unwrap(),
        seed: 11,
        realtime: false,
        data_dir: dir.path().to_path_buf(),
        printer_transport: hil_sim::line::PrinterTransport::Tcp,
        frame: (1280, 960),
        progress: false,
        status_listen: None,
        stop: None,
        site_server: false,
        site_url: None,
    };
    let rep = hil_sim::aggregation::run_with_aggregation(&opts, &"none".parse().unwrap()).unwrap();
    let agg = rep.aggregation.clone().unwrap();
    assert_eq!(
        (
            agg.cases,
            agg.pallets,
            agg.held_for_rework,
            agg.wrong_aggregations
        ),
        (6, 3, 0, 0),
        "{agg:?}"
    );
    let d = dir.path().to_str().unwrap();
    let prof = profile_path();
    let p = prof.to_str().unwrap();
    let store_dir = dir.path().join("aggregation");
    let (pallet, case, unit) = {
        let s = AggStore::open(&store_dir).unwrap();
        let pallet = s
            .containers()
            .unwrap()
            .into_iter()
            .find(|c| c.level == Level::Pallet)
            .unwrap();
        let Child::Case { sscc: case } = pallet.children[0].clone() else {
            panic!()
        };
        let c = s.container(&case).unwrap().unwrap();
        let Child::Unit { gtin, serial } = c.children[0].clone() else {
            panic!()
        };
        (pallet.sscc, case, format!("(01){gtin}(21){serial}"))
    };
    // Scanning the pallet prints both cases and their 24 units.
    let o = linectl(&["agg", "--data-dir", d, "show", &pallet]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(t.matches(" unit (01)").count(), 24, "{t}");
    assert!(t.contains(&format!("case (00){case}")), "{t}");
    // A unit's code shows what it is in, and the tree from the pallet down.
    let t = text(&linectl(&["agg", "--data-dir", d, "show", &unit]));
    assert!(
        t.starts_with(&format!("{unit} is in (00){case} on (00){pallet}")),
        "{t}"
    );
    // A case on a pallet is not opened.
    let o = linectl(&[
        "agg",
        "--data-dir",
        d,
        "open",
        &case,
        "--reason",
        "check",
        "--profile",
        p,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("dissolve the pallet first"),
        "{}",
        text(&o)
    );
    // Dissolve, open, take a unit out, close.
    for args in [
        vec!["dissolve", pallet.as_str()],
        vec!["open", case.as_str()],
        vec!["swap", case.as_str(), "--remove", unit.as_str()],
        vec!["close", case.as_str()],
    ] {
        let mut full = vec!["agg", "--data-dir", d];
        full.extend(args.iter().copied());
        full.extend(["--reason", "damaged carton", "--profile", p]);
        let o = linectl(&full);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let o = linectl(&["agg", "--data-dir", d, "show", &unit]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&linectl(&["agg", "--data-dir", d, "show", &case]));
    assert!(
        t.contains("11 units · closed") && !t.contains(" on "),
        "{t}"
    );
    // Events: 6 + 3 ADD packing from the stations, then DELETE of the pallet and of the
    // unit; all valid EPCIS 2.0.
    let doc = exported(dir.path());
    let errs = schema_errors(&validator(), &doc);
    assert!(errs.is_empty(), "{errs:?}");
    let ev = agg_events(&doc);
    let adds = ev.iter().filter(|e| e["action"] == "ADD").count();
    let dels: Vec<&Value> = ev.iter().filter(|e| e["action"] == "DELETE").collect();
    assert_eq!((adds, dels.len()), (9, 2), "{ev:?}");
    assert_eq!(dels[0]["childEPCs"].as_array().map(Vec::len), Some(2));
    assert_eq!(dels[1]["childEPCs"].as_array().map(Vec::len), Some(1));
    assert!(dels.iter().all(|e| e["bizStep"] == "unpacking"));
    // Every step is in the audit trail, with the reason.
    let log =
        std::fs::read_to_string(linectl::audit::trail_dir(dir.path()).join("audit.log")).unwrap();
    assert_eq!(log.matches("aggregation_rework").count(), 4, "{log}");
    assert_eq!(log.matches("damaged carton").count(), 4);
}

fn setup(dir: &Path) -> (AggStore, Journal, AggregationEvents) {
    // sled lets go of its lock only once the background flusher of a dropped store
    // has ended (the "restart" after a crash): try again for a few seconds.
    let t0 = std::time::Instant::now();
    let store = loop {
        match AggStore::open(&dir.join("aggregation")) {
            Ok(s) => break s,
            Err(e) if e.to_string().contains("lock") && t0.elapsed().as_secs() < 10 => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    };
    let journal = Journal::open(JournalConfig {
        consumers: Vec::new(),
        ..JournalConfig::in_dir(dir.join("journal"))
    })
    .unwrap();
    let site = Sgln::new("9506000000008", None).unwrap();
    let events = AggregationEvents::new(IdForm::DigitalLink, &site, &site).unwrap();
    (store, journal, events)
}

fn intent(sscc: &str, serials: &[&str], stage: Stage) -> Intent {
    Intent {
        sscc: sscc.into(),
        level: Level::Case,
        batch: "EU24A001".into(),
        children: serials
            .iter()
            .map(|s| Child::Unit {
                gtin: "09506000134352".into(),
                serial: s.to_string(),
            })
            .collect(),
        stage,
        at_us: 1_767_225_600_000_000,
    }
}

fn journaled(j: &Journal) -> usize {
    j.read_from(Seq(0), usize::MAX).unwrap().len()
}

#[test]
fn crash_recovery_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, journal, events) = setup(dir.path());
    // Crash while the label was printing: voided and held, no event.
    store
        .begin(&intent(
            "095060000000000015",
            &["A1", "A2"],
            Stage::Printing,
        ))
        .unwrap();
    // Crash after the label was verified, before the aggregation was committed.
    store
        .begin(&intent(
            "095060000000000022",
            &["B1", "B2"],
            Stage::Printing,
        ))
        .unwrap();
    store
        .advance("095060000000000022", Stage::Verified)
        .unwrap();
    // Crash after the commit, before its event reached the journal.
    store
        .begin(&intent("095060000000000039", &["C1"], Stage::Printing))
        .unwrap();
    store
        .advance("095060000000000039", Stage::Verified)
        .unwrap();
    let ev = events
        .packed(
            EventTime::from_wall_micros(1_767_225_600_000_000, 0).unwrap(),
            "095060000000000039",
            vec![events.unit_uri("09506000134352", "C1").unwrap()],
        )
        .unwrap();
    let out = outgoing(&journal, "EU24A001", &ev).unwrap();
    store
        .commit("095060000000000039", std::slice::from_ref(&out))
        .unwrap();
    drop((store, journal));

    let (store, journal, events) = setup(dir.path());
    let r = recover(&store, &journal, &events, 5).unwrap();
    assert_eq!(r.voided, vec!["095060000000000015".to_string()]);
    assert_eq!(r.committed, vec!["095060000000000022".to_string()]);
    assert_eq!(journaled(&journal), 2);
    assert!(store.container("095060000000000015").unwrap().is_none());
    assert_eq!(store.holds().unwrap().len(), 1);
    assert!(store.intents().unwrap().is_empty() && store.outbox().unwrap().is_empty());
    // Recovery again changes nothing.
    let r = recover(&store, &journal, &events, 6).unwrap();
    assert_eq!((r.voided.len(), r.committed.len(), r.journaled), (0, 0, 0));
    assert_eq!(journaled(&journal), 2);

    // Crash after the journal append, before the outbox entry was cleared: the event is
    // found in the journal and not appended again.
    store
        .begin(&intent("095060000000000046", &["D1"], Stage::Printing))
        .unwrap();
    store
        .advance("095060000000000046", Stage::Verified)
        .unwrap();
    let ev = events
        .packed(
            EventTime::from_wall_micros(1_767_225_600_000_001, 0).unwrap(),
            "095060000000000046",
            vec![events.unit_uri("09506000134352", "D1").unwrap()],
        )
        .unwrap();
    let out = outgoing(&journal, "EU24A001", &ev).unwrap();
    store
        .commit("095060000000000046", std::slice::from_ref(&out))
        .unwrap();
    journal
        .append(linectl::uplink::record::EVENT_RECORD, out.payload.clone())
        .unwrap();
    assert_eq!(deliver(&store, &journal).unwrap(), 0);
    assert_eq!(journaled(&journal), 3);
    drop((store, journal));
    let doc = exported(dir.path());
    let errs = schema_errors(&validator(), &doc);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(agg_events(&doc).len(), 3);
}

#[test]
fn a_case_gtin_serial_voided_in_a_crash_is_never_reused_and_resolves_when_packed() {
    use linectl::aggregation::station::{ContainerIds, PoolCaseIds};
    use linectl::gs1::container::ContainerId;
    use linectl::pool::{OpenMode, Pool, SerialRecord, SerialState, Source};
    use std::sync::{Arc, Mutex};

    const CASE_GTIN: &str = "19506000134359";
    let dir = tempfile::tempdir().unwrap();
    let mut pool = Pool::open(&dir.path().join("pool"), OpenMode::CreateIfMissing).unwrap();
    let records: Vec<_> = (1..=5u64)
        .map(|i| {
            Ok(SerialRecord {
                at: i,
                serial: format!("C{i:04}"),
                ai91: None,
                ai92: None,
            })
        })
        .collect();
    pool.import(
        CASE_GTIN,
        Some(linectl::market::Market::EuFmd),
        Source {
            header: None,
            records: Box::new(records.into_iter()),
        },
        "test",
    )
    .unwrap();
    let pool = Arc::new(Mutex::new(pool));
    let (store, journal, events) = setup(dir.path());
    let mut ids = PoolCaseIds::new(pool.clone(), CASE_GTIN, "PL-EU-02", "EU24A001").unwrap();
    // A pallet is never labelled from the case GTIN.
    assert!(ids.take(Level::Pallet, &store).is_err());
    let first = ids.take(Level::Case, &store).unwrap();
    let ContainerId::Sgtin { serial: s1, .. } = first.clone() else {
        panic!("{first:?}")
    };
    assert_eq!(first.element_string(), format!("01{CASE_GTIN}21{s1}"));
    // The intent is durable before the printer sees the label; then the process dies.
    store
        .begin(&intent(&first.id(), &["E1", "E2"], Stage::Printing))
        .unwrap();
    drop((store, journal));
    let (store, journal, events2) = setup(dir.path());
    let r =
        linectl::aggregation::station::recover_settling(&store, &journal, &events2, 7, &mut ids)
            .unwrap();
    assert_eq!(r.voided, vec![first.id()]);
    assert_eq!(
        store.holds().unwrap()[0].sscc.as_deref(),
        Some(first.id().as_str())
    );
    // The voided serial is used up in the pool (LabelScrapped): the next label gets
    // another one.
    assert_eq!(
        pool.lock().unwrap().state_of(CASE_GTIN, &s1).unwrap(),
        Some(SerialState::LabelScrapped)
    );
    let second = ids.take(Level::Case, &store).unwrap();
    assert_ne!(second, first);
    let id = second.id();
    store
        .begin(&intent(&id, &["E1", "E2"], Stage::Printing))
        .unwrap();
    store.advance(&id, Stage::Verified).unwrap();
    let ev = events
        .packed(
            EventTime::from_wall_micros(1_767_225_600_000_000, 0).unwrap(),
            &id,
            linectl::aggregation::station::child_uris(
                &events,
                &store.intent(&id).unwrap().unwrap().children,
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(
        ev.to_json()["parentID"],
        format!(
            "https://id.gs1.org/01/{CASE_GTIN}/21/{}",
            id.rsplit("(21)").next().unwrap()
        )
    );
    let out = outgoing(&journal, "EU24A001", &ev).unwrap();
    store.commit(&id, std::slice::from_ref(&out)).unwrap();
    deliver(&store, &journal).unwrap();
    ids.settled(&id, true).unwrap();
    {
        let p = pool.lock().unwrap();
        let ContainerId::Sgtin { serial: s2, .. } = &second else {
            panic!()
        };
        assert_eq!(
            p.state_of(CASE_GTIN, s2).unwrap(),
            Some(SerialState::Commissioned)
        );
        assert_eq!(
            p.state_of(CASE_GTIN, &s1).unwrap(),
            Some(SerialState::LabelScrapped)
        );
    }
    drop((store, journal, pool));
    // Valid EPCIS; scanning the case label (plain or bracketed) shows its units.
    let doc = exported(dir.path());
    let errs = schema_errors(&validator(), &doc);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(agg_events(&doc).len(), 1);
    let d = dir.path().to_str().unwrap();
    for scanned in [second.element_string(), id.clone()] {
        let o = linectl(&["agg", "--data-dir", d, "show", &scanned]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.starts_with(&format!("case {id} batch EU24A001")), "{t}");
        assert_eq!(t.matches(" unit (01)09506000134352").count(), 2, "{t}");
    }
}
