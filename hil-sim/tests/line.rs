//! End-to-end runs of linectl against the simulated line over real loopback sockets
//! (and a socat PTY for the printer), on the virtual clock: every defect class and every
//! fault class, asserting that no bad unit passes, no serial is used twice, each
//! defect is rejected for its reason, and that a run replays identically.

use std::path::PathBuf;

use hil_sim::defects::{DefectClass, FaultClass, PlanClass};
use hil_sim::line::{PrinterTransport, SimOptions, run};
use hil_sim::report::Report;

fn profile(name: &str) -> linectl::profile::Profile {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../line-profiles")
        .join(format!("{name}.toml"));
    linectl::profile::Profile::load_with_env(&p, Some(Default::default()))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn opts(profile_name: &str, units: u64, defects: &str, faults: &str, seed: u64) -> (SimOptions, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    (
        SimOptions {
            profile: profile(profile_name),
            units,
            rate_upm: None,
            defects: defects.parse().unwrap_or_else(|e| panic!("{e}")),
            faults: faults.parse().unwrap_or_else(|e| panic!("{e}")),
            seed,
            realtime: false,
            data_dir: dir.path().to_path_buf(),
            printer_transport: PrinterTransport::Tcp,
            frame: (1280, 960),
            progress: false,
            status_listen: None,
            stop: None,
            site_server: true,
        },
        dir,
    )
}

fn check_safe(r: &Report) {
    let json = serde_json::to_string_pretty(r).unwrap_or_default();
    assert_eq!(r.missed_rejects, 0, "bad units passed: {json}");
    assert_eq!(r.duplicate_serials, 0, "serials used twice: {json}");
    assert_eq!(r.false_rejects, 0, "good units rejected outside faults: {json}");
    assert_eq!(r.wrong_reason, 0, "defects rejected for the wrong reason: {json}");
    let rejected: u64 = r.rejected.values().sum();
    assert_eq!(r.passed + rejected, r.units, "{json}");
    assert_eq!(r.commissioned, r.passed, "commissioned must be exactly the passed units: {json}");
    let site = r.site_server.as_ref().unwrap_or_else(|| panic!("no site server report: {json}"));
    assert_eq!(site.missing, 0, "commissioned serials missing at the site server: {json}");
    assert_eq!(site.commissioned, r.passed, "{json}");
    assert_eq!(site.events, site.journaled, "every journaled event reached the site server once: {json}");
}

#[test]
fn every_defect_class_is_rejected_for_its_reason_and_a_run_replays_identically() {
    let (o, _d) = opts("eu-fmd-carton", 2000, "0.05", "0", 11);
    let a = run(&o).unwrap_or_else(|e| panic!("{e}"));
    check_safe(&a);
    for c in DefectClass::ALL {
        assert!(
            a.injected.get(c.name()).copied().unwrap_or(0) > 0,
            "class {} was not injected: {:?}",
            c.name(),
            a.injected
        );
    }
    let injected: u64 = a.injected.values().sum();
    assert!(injected >= 60, "{injected} defects in 2000 units at 5%");
    let (o2, _d2) = opts("eu-fmd-carton", 2000, "0.05", "0", 11);
    let b = run(&o2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        serde_json::to_value(a.deterministic_part()).ok(),
        serde_json::to_value(b.deterministic_part()).ok(),
        "same profile, options and seed must give the same report"
    );
}

#[test]
fn every_fault_class_fails_safe() {
    let spec = FaultClass::ALL
        .iter()
        .map(|c| format!("{}=0.002", c.name()))
        .collect::<Vec<_>>()
        .join(",");
    let (o, _d) = opts("eu-fmd-carton", 2000, "0.01", &spec, 5);
    let r = run(&o).unwrap_or_else(|e| panic!("{e}"));
    check_safe(&r);
    for c in FaultClass::ALL {
        assert!(
            r.injected_faults.get(c.name()).copied().unwrap_or(0) > 0,
            "fault {} was not injected: {:?}",
            c.name(),
            r.injected_faults
        );
    }
    assert!(r.holds > 0, "faults must hold the line: {r:?}");
    assert!(r.rejected.get("late").copied().unwrap_or(0) > 0, "slow decodes are late rejects");
}

#[test]
fn zebra_printer_over_a_pty_line() {
    let (mut o, _d) = opts("us-dscsa-bottle", 400, "0.05", "0", 3);
    o.printer_transport = PrinterTransport::Pty;
    let r = run(&o).unwrap_or_else(|e| panic!("{e}"));
    check_safe(&r);
    assert!(r.passed > 300, "{r:?}");
}

#[test]
fn videojet_printer_over_a_pty_line() {
    let (mut o, _d) = opts("eu-fmd-carton", 300, "skipped-print=0.01,no-print=0.01", "0", 9);
    o.printer_transport = PrinterTransport::Pty;
    let r = run(&o).unwrap_or_else(|e| panic!("{e}"));
    check_safe(&r);
}

#[test]
fn russian_markem_line_and_chinese_line_with_a_modbus_rtu_plc() {
    for name in ["ru-crypto-carton", "cn-nmpa-carton"] {
        let (o, _d) = opts(name, 200, "0.05", "0", 13);
        let r = run(&o).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_safe(&r);
        assert!(r.passed > 150, "{name}: {r:?}");
    }
}
