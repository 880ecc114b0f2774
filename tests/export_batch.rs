//! `linectl export --batch B DIR` on the data dir of a real-time simulated line with
//! defects (hil-sim's devices, linectl's drivers and pipeline, the HMI's exception
//! queue and audit trail, the daemon's unit log): the files are there, the EPCIS
//! document validates against the EPCIS 2.0 schema and holds the batch's events, the
//! summary's counts agree with what the simulator saw, the report is well-formed,
//! self-contained, shows the counts, charts and the resolved, e-signed exception, and
//! prints to PDF in headless Chromium. An unknown batch and a non-empty directory are
//! refused with exit 2.

mod uplink_support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hil_sim::line::{PrinterTransport, SimOptions};
use linectl::audit::{Action, AuditActor, ESignature, Entry, Meaning};
use linectl::clock::{Clock, SystemClock};
use linectl::hmi::HmiParts;
use linectl::hmi::exceptions::Resolution;
use linectl::pipeline::{BatchOrder, LineCommand};
use linectl::users::{HashParams, UsersConfig};
use serde_json::Value;
use uplink_support::{schema_errors, validator};

const LOT: &str = "EXP-LOT-1";

fn linectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linectl"))
        .args(args)
        .env_remove("LINECTL_DATA_DIR")
        .output()
        .expect("run linectl")
}

/// Every element opened is closed in order (void HTML elements are written `<x/>`):
/// the report parses as XML.
fn assert_well_formed(html: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if let Some(closing) = tag.strip_prefix('/') {
            let _ = closing;
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name, "</{name}> closes <{open}>");
        } else if !tag.ends_with('/') {
            if name == "style" {
                // CSS holds no markup; skip to its end tag.
                let e = rest.find("</style>").expect("style end");
                rest = &rest[e + "</style>".len()..];
                continue;
            }
            stack.push(name);
        }
        // Text between tags must not hold a raw '<' (checked by the loop) nor '&' that
        // is not an entity.
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    for (i, _) in html.match_indices('&') {
        let ent = &html[i..html.len().min(i + 8)];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|e| ent.starts_with(e)),
            "bare & at {i}: {ent}"
        );
    }
}

#[test]
fn a_finished_batch_is_exported_with_a_printable_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("line");
    let profile_path = root.join("line-profiles/eu-fmd-carton.toml");
    let profile = linectl::profile::Profile::load_with_env(&profile_path, Some(Default::default()))
        .expect("profile");
    let units = 80u64;
    let opts = SimOptions {
        profile: profile.clone(),
        units,
        rate_upm: Some(1200.0),
        defects: "0.12".parse().expect("defects"),
        faults: "0".parse().expect("faults"),
        seed: 23,
        realtime: true,
        data_dir: data.clone(),
        printer_transport: PrinterTransport::Tcp,
        printer_load_delay: std::time::Duration::ZERO,
        frame: (1280, 960),
        progress: false,
        status_listen: None,
        stop: None,
        site_server: false,
        site_url: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let front_data = data.clone();
    let front: hil_sim::line::FrontEnd = Box::new(move |line, records| {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let parts = HmiParts::open(
            &front_data,
            UsersConfig {
                hashing: HashParams::insecure_fast_for_tests(),
                ..UsersConfig::default()
            },
            clock.clone(),
        )
        .expect("hmi parts");
        // As `linectl run` wires it: unit log first, then the HMI's exception queue.
        let (hmi_tx, hmi_rx) = crossbeam_channel::unbounded();
        let log = linectl::report::units::spawn_unit_log(
            records,
            Some(hmi_tx),
            linectl::report::units::UnitLog::open(&front_data).expect("unit log"),
            line.status().clone(),
            clock.clone(),
        )
        .expect("unit log thread");
        let observer = linectl::hmi::spawn_observer(
            hmi_rx,
            parts.exceptions.clone(),
            line.status().clone(),
            clock,
        )
        .expect("observer");
        let starter = {
            let (line, audit) = (line.clone(), parts.audit.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while !{
                    let l = line.status().snapshot().links;
                    l.plc && l.printer && l.camera
                } {
                    assert!(t0.elapsed() < Duration::from_secs(60), "devices not up");
                    std::thread::sleep(Duration::from_millis(20));
                }
                audit
                    .append(
                        Entry::new(
                            AuditActor {
                                user: "op".into(),
                                role: "operator".into(),
                            },
                            Action::BatchStarted,
                            format!("batch:{LOT}"),
                        )
                        .detail(format!("lot={LOT} expiry=281231 quantity={units}")),
                    )
                    .expect("audit");
                let _ = line.command(LineCommand::Reset);
                line.command(LineCommand::StartBatch(BatchOrder {
                    lot: LOT.into(),
                    expiry: "281231".into(),
                    quantity: units,
                }))
                .expect("start batch");
            })
        };
        tx.send((parts.audit.clone(), parts.exceptions.clone(), log, observer))
            .expect("send");
        Box::new(starter)
    });
    let report = hil_sim::line::run_with_front_end(&opts, front).expect("simulated run");
    let (audit, exceptions, log, observer) = rx.recv().expect("front end");
    // The line is gone: the observer channels closed, the unit log is flushed.
    log.join().expect("unit log thread");
    observer.join().expect("observer thread");
    let rejected: u64 = report.rejected.values().sum();
    assert!(
        rejected > 0,
        "the run had no rejects: {:?}",
        report.rejected
    );
    assert!(report.passed > 0);

    // A supervisor resolves the first exception with QA's e-signature.
    let first = exceptions
        .list(1000)
        .into_iter()
        .map(|e| e.id)
        .min()
        .expect("an exception");
    let now = SystemClock::new().wall_micros();
    exceptions
        .resolve(
            first,
            Resolution {
                by: "sup".into(),
                time_us: now,
                reason: "carton destroyed, verified at the reject bin".into(),
                signed_by: Some("qa".into()),
            },
        )
        .expect("resolve");
    audit
        .append(
            Entry::new(
                AuditActor {
                    user: "sup".into(),
                    role: "supervisor".into(),
                },
                Action::ExceptionResolved,
                format!("exception:{first}"),
            )
            .reason("carton destroyed, verified at the reject bin")
            .change(Some("open".into()), Some("resolved".into()))
            .signed(ESignature {
                signer: "qa".into(),
                signer_role: "qa".into(),
                meaning: Meaning::Verification,
                time_us: now,
            }),
        )
        .expect("audit");
    drop((audit, exceptions));

    let out = dir.path().join("export");
    let (d, o, p) = (
        data.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
        profile_path.to_str().expect("utf-8"),
    );
    let run = linectl(&["export", "--batch", LOT, o, "--data-dir", d, "--profile", p]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for f in linectl::report::FILES {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary"))
            .expect("summary JSON");
    assert_eq!(summary["commissioned"], report.commissioned, "{summary}");
    assert_eq!(summary["rejected"].as_u64(), Some(rejected), "{summary}");
    assert_eq!(summary["printed"].as_u64(), Some(report.passed + rejected));
    let by_reason: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(summary["rejects_by_reason"].clone()).expect("reasons");
    assert_eq!(by_reason, report.rejected);
    assert_eq!(summary["exceptions"].as_u64(), Some(rejected));
    assert_eq!(summary["open_exceptions"].as_u64(), Some(rejected - 1));
    assert_eq!(summary["serials"]["count"], report.commissioned);

    // The EPCIS document: valid, only this batch, one commissioning EPC per passed unit.
    let doc: Value = serde_json::from_slice(&std::fs::read(out.join("epcis.json")).expect("epcis"))
        .expect("EPCIS JSON");
    let errors = schema_errors(&validator(), &doc);
    assert!(errors.is_empty(), "{errors:?}");
    let list = doc["epcisBody"]["eventList"].as_array().expect("events");
    assert_eq!(summary["events"].as_u64(), Some(list.len() as u64));
    let commissioned: usize = list
        .iter()
        .filter(|e| e["bizStep"] == "commissioning")
        .map(|e| e["epcList"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(commissioned as u64, report.commissioned);

    // Audit records: the batch start and the signed resolution.
    let audit: Value =
        serde_json::from_slice(&std::fs::read(out.join("audit.json")).expect("audit"))
            .expect("audit JSON");
    let recs = audit.as_array().expect("records");
    assert!(
        recs.iter()
            .any(|r| r["link"] == "batch" && r["record"]["action"] == "batch_started"),
        "{audit}"
    );
    assert!(
        recs.iter()
            .any(|r| r["link"] == "exception" && r["record"]["signature"]["signer"] == "qa"),
        "{audit}"
    );
    let csv = std::fs::read_to_string(out.join("audit.csv")).expect("csv");
    assert_eq!(csv.lines().count(), recs.len() + 1, "{csv}");
    let exc = std::fs::read_to_string(out.join("exceptions.csv")).expect("csv");
    assert_eq!(exc.lines().count() as u64, rejected + 1);

    // The report.
    let html = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert_well_formed(&html);
    for part in [
        format!("id=\"commissioned\">{}<", report.commissioned),
        format!("id=\"rejected\">{rejected}<"),
        format!("id=\"printed\">{}<", report.passed + rejected),
        format!("id=\"batch\">{LOT}<"),
        "id=\"expiry\">2028-12-31<".to_string(),
        "Examplomab".to_string(),
        "e-signed by qa".to_string(),
        "<figure id=\"grade-chart\"><svg".to_string(),
        "<figure id=\"reject-chart\"><svg".to_string(),
        "@page{size:A4".to_string(),
        "Random (non-sequential) serials".to_string(),
    ] {
        assert!(html.contains(&part), "{part} missing from the report");
    }
    for (reason, n) in &report.rejected {
        assert!(
            html.contains(&format!(
                "<tr><td>{reason}</td><td class=\"n\">{n}</td></tr>"
            )),
            "{reason}"
        );
    }
    for external in ["src=\"http", "href=\"http", "url(", "@import"] {
        assert!(
            !html.contains(external),
            "external resource in the report: {external}"
        );
    }
    assert!(!html.contains("<script") && !html.contains("<link"));

    // It prints to PDF in headless Chromium (installed in CI by .ci/install-peers).
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Path::new(&chromium).exists() {
        let pdf = dir.path().join("report.pdf");
        let st = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                &format!("--print-to-pdf={}", pdf.display()),
                &format!("file://{}", out.join("report.html").display()),
            ])
            .output()
            .expect("run chromium");
        let bytes = std::fs::read(&pdf)
            .unwrap_or_else(|e| panic!("no PDF ({e}): {}", String::from_utf8_lossy(&st.stderr)));
        assert!(
            bytes.starts_with(b"%PDF-") && bytes.len() > 5_000,
            "{} bytes",
            bytes.len()
        );
        eprintln!("report.pdf: {} bytes", bytes.len());
    } else {
        eprintln!(
            "NOTE: {chromium} is not installed here: the PDF rendering step was not run (CI installs chromium)"
        );
    }

    // Refusals: unknown batch, non-empty directory; --force replaces the files.
    let r = linectl(&[
        "export",
        "--batch",
        "NOPE",
        &format!("{o}-2"),
        "--data-dir",
        d,
    ]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("NOPE") && err.contains(LOT), "{err}");
    assert!(
        !Path::new(&format!("{o}-2")).exists(),
        "nothing written for an unknown batch"
    );
    let r = linectl(&["export", "--batch", LOT, o, "--data-dir", d]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--force"));
    let r = linectl(&["export", "--batch", LOT, o, "--data-dir", d, "--force"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}
