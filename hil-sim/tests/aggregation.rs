//! The simulated case packer's layers read back through linectl's multi-symbol decoder,
//! and the full line + aggregation run with injected faults.

#[path = "../../tests/agg_support/mod.rs"]
mod agg_support;

use hil_sim::aggregation::{Slot, render_layer};
use linectl::aggregation::detect::{CellRead, LayerDecoder};
use linectl::profile::aggregation::LayoutSection;

fn layout() -> LayoutSection {
    LayoutSection {
        rows: 10,
        cols: 12,
        x: 0,
        y: 0,
        width: 2448,
        height: 2048,
    }
}

fn code(i: usize) -> String {
    format!("0109506000134352\u{1d}21S{i:011}\u{1d}10EU24A001\u{1d}17281231")
}

#[test]
fn a_full_layer_reads_back_cell_by_cell_with_faults_in_place() {
    let mut slots: Vec<Slot> = (0..120).map(|i| Slot::Code(code(i))).collect();
    slots[7] = Slot::Damaged(code(7));
    slots[50] = Slot::Empty;
    let f = render_layer(2448, 2048, &layout(), &slots, 42).unwrap();
    let t0 = std::time::Instant::now();
    let reads = LayerDecoder::new()
        .decode(&f.pixels, f.width, f.height, &layout())
        .unwrap();
    eprintln!("decoded 120 cells in {:?}", t0.elapsed());
    assert_eq!(reads.len(), 120);
    for (i, r) in reads.iter().enumerate() {
        let want = match i {
            7 => CellRead::Unreadable,
            50 => CellRead::Empty,
            _ => CellRead::Code(code(i)),
        };
        assert_eq!(
            r.read, want,
            "cell {i} at row {} col {}",
            r.cell.row, r.cell.col
        );
    }
}

/// The shared line options, with the simulated site server (the run uploads).
fn small_opts(
    p: linectl::profile::Profile,
    dir: &std::path::Path,
    units: u64,
    seed: u64,
) -> hil_sim::line::SimOptions {
    hil_sim::line::SimOptions {
        site_server: true,
        ..agg_support::sim_opts(&p, dir, units, seed)
    }
}

fn small(p: &mut linectl::profile::Profile) {
    let a = p.aggregation.as_mut().unwrap();
    a.units_per_case = 12;
    a.case_layout.rows = 3;
    a.case_layout.cols = 4;
    a.cases_per_pallet = 2;
    a.pallet_layout.rows = 1;
    a.pallet_layout.cols = 2;
}

/// The AggregationEvents in the run's journal, as JSON.
fn journaled_aggregation_events(
    p: &linectl::profile::Profile,
    dir: &std::path::Path,
) -> Vec<serde_json::Value> {
    let cfg = linectl::pipeline::LineConfig::from_profile(p, dir.to_path_buf());
    let j = linectl::journal::Journal::open(linectl::journal::JournalConfig {
        consumers: cfg.journal_consumers.clone(),
        ..linectl::journal::JournalConfig::in_dir(dir.join("journal"))
    })
    .unwrap();
    j.read_from(linectl::journal::Seq(0), usize::MAX)
        .unwrap()
        .iter()
        .filter(|r| r.kind == linectl::uplink::record::EVENT_RECORD)
        .filter_map(|r| linectl::uplink::record::EventRecord::decode(r.seq, &r.payload).ok())
        .map(|e| e.event.clone())
        .filter(|e| e["type"] == "AggregationEvent")
        .collect()
}

#[test]
fn same_seed_same_aggregation_uploaded_once_and_the_short_last_case_held_then_closed() {
    let faults: hil_sim::aggregation::AggFaults = "damaged=0.2,label=0.2".parse().unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let mut p = profile();
        small(&mut p);
        // 100 units: whatever passes, the last case is very likely short of 12.
        let opts = small_opts(p.clone(), dir.path(), 100, 23);
        let rep = hil_sim::aggregation::run_with_aggregation(&opts, &faults).unwrap();
        let events = journaled_aggregation_events(&p, dir.path());
        runs.push((rep, events, dir));
    }
    let (r1, e1, _d1) = &runs[0];
    let (r2, e2, _d2) = &runs[1];
    let a = r1.aggregation.clone().unwrap();
    let json = serde_json::to_string_pretty(&a).unwrap();
    // Identical per seed: the report (without measured times) and every event.
    assert_eq!(
        r1.aggregation.as_ref().map(|a| a.deterministic_part()),
        r2.aggregation.as_ref().map(|a| a.deterministic_part()),
    );
    assert_eq!(e1, e2);
    assert!(!e1.is_empty());
    // Virtual event times after the line's start (2026-01-01), not the wall clock.
    for e in e1 {
        let t = e["eventTime"].as_str().unwrap_or_default();
        assert!(t.starts_with("2026-01-01T"), "{t}");
    }
    assert_eq!(a.wrong_aggregations, 0, "{json}");
    // The short last case: held as `short`, then closed by the supervisor.
    assert_eq!(a.held_reasons.get("short"), Some(&1), "{json}");
    assert_eq!(a.partial_cases, 1, "{json}");
    assert!(a.partial_units > 0 && a.partial_units < 12, "{json}");
    // The site server holds exactly one ADD per aggregated case and pallet.
    let u = a.uploaded.clone().unwrap();
    let aggregated = a.cases + a.partial_cases + a.pallets;
    assert_eq!(u.adds, aggregated, "{json}");
    assert_eq!(u.distinct_parents, aggregated, "{json}");
    assert_eq!((u.missing, u.unexpected), (0, 0), "{json}");
    assert_eq!(u.events_uploaded, e1.len() as u64, "{json}");
    let site = r1.site_server.clone().unwrap();
    assert_eq!(site.missing, 0, "{site:?}");
}

#[test]
fn cases_labelled_with_a_case_gtin_and_serial_from_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = profile();
    small(&mut p);
    let a = p.aggregation.as_mut().unwrap();
    a.case_label = linectl::profile::aggregation::CaseLabel::GtinSerial;
    a.case_gtin = Some("19506000134359".into());
    // The case labels carry the batch's expiry and lot too.
    a.case_label_batch = true;
    let opts = small_opts(p.clone(), dir.path(), 60, 5);
    let faults: hil_sim::aggregation::AggFaults = "label=0.3".parse().unwrap();
    let rep = hil_sim::aggregation::run_with_aggregation(&opts, &faults).unwrap();
    let a = rep.aggregation.clone().unwrap();
    let json = serde_json::to_string_pretty(&a).unwrap();
    assert_eq!(a.wrong_aggregations, 0, "{json}");
    assert!(a.cases >= 2 && a.pallets >= 1, "{json}");
    let u = a.uploaded.clone().unwrap();
    assert_eq!(u.adds, a.cases + a.partial_cases + a.pallets, "{json}");
    assert_eq!((u.missing, u.unexpected), (0, 0), "{json}");
    // Every case's parentID is its SGTIN; pallets stay SSCCs.
    let events = journaled_aggregation_events(&p, dir.path());
    let case_adds: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["parentID"]
                .as_str()
                .is_some_and(|s| s.starts_with("https://id.gs1.org/01/19506000134359/21/"))
        })
        .collect();
    assert_eq!(
        case_adds.len() as u64,
        a.cases + a.partial_cases,
        "{events:?}"
    );
    let store =
        linectl::aggregation::store::AggStore::open(&dir.path().join("aggregation")).unwrap();
    let pallet = store
        .containers()
        .unwrap()
        .into_iter()
        .find(|c| c.level == linectl::aggregation::store::Level::Pallet)
        .unwrap();
    assert_eq!(pallet.sscc.len(), 18);
    let linectl::aggregation::store::Child::Case { sscc: case } = pallet.children[0].clone() else {
        panic!("{pallet:?}")
    };
    assert!(case.starts_with("(01)19506000134359(21)C"), "{case}");
    // Scanning the case label (its element string) resolves the tree.
    let serial = case.rsplit("(21)").next().unwrap();
    let scanned = format!("011950600013435921{serial}");
    let tree = linectl::aggregation::show::show(&store, &scanned)
        .unwrap()
        .unwrap();
    assert!(
        tree.starts_with(&format!("{case} is in (00){}", pallet.sscc)),
        "{tree}"
    );
    assert!(tree.contains(&format!("case {case} batch")), "{tree}");
    let units: usize = pallet
        .children
        .iter()
        .filter_map(|c| match c {
            linectl::aggregation::store::Child::Case { sscc } => store.container(sscc).unwrap(),
            _ => None,
        })
        .map(|c| c.children.len())
        .sum();
    assert_eq!(
        tree.matches(" unit (01)09506000134352").count(),
        units,
        "{tree}"
    );
    // The pool knows each aggregated case serial as Commissioned, a voided one as
    // LabelScrapped; none is Unallocated again.
    drop(store);
    let pool =
        linectl::pool::Pool::open(&dir.path().join("pool"), linectl::pool::OpenMode::MustExist)
            .unwrap();
    assert_eq!(
        pool.state_of("19506000134359", serial).unwrap(),
        Some(linectl::pool::SerialState::Commissioned)
    );
    let scrapped = a.held_reasons.get("label verify").copied().unwrap_or(0);
    let mut states = std::collections::BTreeMap::new();
    pool.for_each("19506000134359", |_, st| {
        *states.entry(st).or_insert(0u64) += 1;
    })
    .unwrap();
    assert_eq!(
        states
            .get(&linectl::pool::SerialState::Commissioned)
            .copied(),
        Some(a.cases + a.partial_cases),
        "{states:?}"
    );
    assert_eq!(
        states
            .get(&linectl::pool::SerialState::LabelScrapped)
            .copied()
            .unwrap_or(0),
        scrapped,
        "{states:?}"
    );
}

fn profile() -> linectl::profile::Profile {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../line-profiles/eu-fmd-case-aggregation.toml");
    linectl::profile::Profile::load_with_env(&p, Some(Default::default())).unwrap()
}

#[test]
fn every_injected_fault_holds_its_case_and_nothing_is_aggregated_wrongly() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = profile();
    let a = p.aggregation.as_mut().unwrap();
    a.units_per_case = 24;
    a.case_layout.rows = 4;
    a.case_layout.cols = 6;
    a.cases_per_pallet = 3;
    let opts = agg_support::sim_opts(&p, dir.path(), 600, 7);
    let faults =
        "damaged=0.15,foreign=0.15,missing=0.15,duplicate=0.15,label=0.15,pallet-missing=0.2"
            .parse()
            .unwrap();
    let rep = hil_sim::aggregation::run_with_aggregation(&opts, &faults).unwrap();
    let a = rep.aggregation.clone().unwrap();
    let json = serde_json::to_string_pretty(&a).unwrap();
    assert_eq!(a.wrong_aggregations, 0, "{json}");
    assert_eq!(a.clean_held, 0, "{json}");
    assert!(a.cases >= 5 && a.pallets >= 1, "{json}");
    // Every class was injected at least once and every faulty container held.
    for class in ["damaged", "foreign", "missing", "duplicate", "label"] {
        assert!(
            a.injected.get(class).copied().unwrap_or(0) > 0,
            "{class} never injected: {json}"
        );
    }
    assert_eq!(a.held_for_rework, a.faulty_held, "{json}");
    assert!(a.held_reasons.contains_key("label verify"), "{json}");
    assert!(
        a.held_reasons.contains_key("unreadable") || a.held_reasons.contains_key("foreign"),
        "{json}"
    );
    // One ADD event per aggregated container (a short last case closed by the
    // supervisor included).
    assert_eq!(a.events, a.cases + a.partial_cases + a.pallets, "{json}");
    assert_eq!(a.units_packed, 24 * a.cases, "{json}");
}
