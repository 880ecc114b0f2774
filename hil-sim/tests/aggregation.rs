//! The simulated case packer's layers read back through linectl's multi-symbol decoder,
//! and the full line + aggregation run with injected faults.

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
    let opts = hil_sim::line::SimOptions {
        profile: p,
        units: 600,
        rate_upm: None,
        defects: "0".parse().unwrap(),
        faults: "0".parse().unwrap(),
        seed: 7,
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
    // One ADD event per aggregated container.
    assert_eq!(a.events, a.cases + a.pallets, "{json}");
    assert_eq!(a.units_packed, 24 * a.cases, "{json}");
}
