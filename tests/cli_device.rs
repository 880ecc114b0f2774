//! `linectl device` end to end: the real device twins (Modbus PLC twin, ZPL / Zipher /
//! Markem-Imaje printer twins, frame-stream server) run in the test process on
//! loopback ports; the built binary is pointed at them through the example profile
//! `line-profiles/eu-fmd-carton.toml` with `LINECTL__…` environment overrides (which
//! also proves the overrides reach the devices). Checks stdout, exit status and what
//! the twins received.

use std::net::TcpListener;
use std::process::{Command, Output};

use linectl::gs1::Gs1Code;
use linectl_drivers::camera::stream::FrameServer;
use linectl_drivers::link::TwinServer;
use linectl_drivers::plc::modbus::{PlcTwin, RegisterMap, TwinHandle, verdict_words};
use linectl_drivers::plc::{PackMlState, Verdict};
use linectl_drivers::printer::TwinState;
use linectl_drivers::printer::markem::MarkemSession;
use linectl_drivers::printer::videojet::VideojetSession;
use linectl_drivers::printer::zpl::ZplSession;

const PROFILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/line-profiles/eu-fmd-carton.toml"
);
const CODE: &str = "(01)09506000134352(17)281231(10)EU24A001(21)ABC123DEF456";

/// Every device of a line, served from this process.
struct Line {
    plc: PlcTwin,
    _plc_server: TwinHandle,
    plc_addr: String,
    printer: TwinState,
    _printer_server: TwinServer,
    printer_addr: String,
    printer_kind: &'static str,
    _camera: FrameServer,
    camera_addr: String,
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"))
}

/// A loopback port nothing listens on (bound, then released).
fn dead_addr() -> String {
    let l = listener();
    let a = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(l);
    a.to_string()
}

fn start_line(printer_kind: &'static str) -> Line {
    let plc = PlcTwin::new(RegisterMap::default()).unwrap_or_else(|e| panic!("{e}"));
    let plc_server = plc
        .spawn_tcp("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("{e}"));
    let plc_addr = plc_server
        .local_addr()
        .unwrap_or_else(|| panic!("plc twin has no address"))
        .to_string();
    let printer = TwinState::default();
    let l = listener();
    let printer_addr = l.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string();
    let s = printer.clone();
    let printer_server = match printer_kind {
        "zpl" => TwinServer::spawn_tcp(l, move || ZplSession::new(s.clone())),
        "zipher" => TwinServer::spawn_tcp(l, move || VideojetSession::new(s.clone())),
        "markem" => TwinServer::spawn_tcp(l, move || MarkemSession::new(s.clone())),
        other => panic!("no twin for {other}"),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let camera = FrameServer::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let camera_addr = camera.local_addr().to_string();
    Line {
        plc,
        _plc_server: plc_server,
        plc_addr,
        printer,
        _printer_server: printer_server,
        printer_addr,
        printer_kind,
        _camera: camera,
        camera_addr,
    }
}

/// Run `linectl device <args>` against the profile with `line`'s addresses as
/// environment overrides, plus `extra` overrides (later ones win).
fn linectl(line: &Line, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linectl"));
    cmd.arg("device").args(args).args(["--profile", PROFILE]);
    // Generous timeouts: the machine is shared and noisy.
    for (k, v) in [
        ("LINECTL__PLC__ADDRESS", line.plc_addr.as_str()),
        ("LINECTL__PLC__TIMEOUT_MS", "3000"),
        ("LINECTL__PRINTER__KIND", line.printer_kind),
        ("LINECTL__PRINTER__ADDRESS", line.printer_addr.as_str()),
        ("LINECTL__PRINTER__TIMEOUT_MS", "3000"),
        ("LINECTL__CAMERA__ADDRESS", line.camera_addr.as_str()),
        ("LINECTL__CAMERA__TIMEOUT_MS", "3000"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        cmd.env(k, v);
    }
    cmd.env("RUST_LOG", "warn");
    cmd.output()
        .unwrap_or_else(|e| panic!("running linectl: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn line_of<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

#[test]
fn probe_reports_every_device_ok() {
    let line = start_line("zipher");
    line.plc.set_state(PackMlState::Idle);
    line.plc.set_alarms(0x0003);
    let o = linectl(&line, &["probe"], &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    let plc = line_of(&out, &format!("plc modbus-tcp@{}: ", line.plc_addr));
    assert!(plc.contains("OK: state Idle"), "{plc}");
    assert!(plc.contains("alarms 0x0003"), "{plc}");
    let printer = line_of(&out, &format!("printer zipher@{}: ", line.printer_addr));
    assert!(printer.contains("OK: Ready"), "{printer}");
    let camera = line_of(&out, &format!("camera tcp-stream@{}: ", line.camera_addr));
    assert!(camera.contains("OK"), "{camera}");
}

#[test]
fn probe_names_the_unreachable_device_and_exits_2() {
    let line = start_line("markem");
    let dead = dead_addr();
    let o = linectl(&line, &["probe"], &[("LINECTL__PRINTER__ADDRESS", &dead)]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{}", stderr(&o));
    let printer = line_of(&out, &format!("printer markem@{dead}: "));
    assert!(printer.contains("FAILED (Transport)"), "{printer}");
    // The others are still probed and reported.
    assert!(line_of(&out, "plc ").contains("OK"), "{out}");
    assert!(line_of(&out, "camera ").contains("OK"), "{out}");
}

#[test]
fn print_test_queues_the_code_on_every_printer_kind() {
    let code = Gs1Code::parse(CODE).unwrap_or_else(|e| panic!("{e}"));
    let element_string = code.element_string();
    assert!(element_string.contains('\u{1d}'));
    for kind in ["zpl", "zipher", "markem"] {
        let line = start_line(kind);
        let o = linectl(&line, &["print-test", "--code", CODE], &[]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{kind}: {out}\n{}", stderr(&o));
        assert!(
            out.contains(&format!("loaded {}", code.hri())),
            "{kind}: {out}"
        );
        assert!(out.contains("status Ready"), "{kind}: {out}");
        assert_eq!(line.printer.queued(), 1, "{kind}: {out}");
        let queued = line
            .printer
            .lock()
            .queue
            .front()
            .cloned()
            .unwrap_or_default();
        assert!(
            queued.iter().any(|(_, v)| *v == element_string),
            "{kind}: element string not queued, got {queued:?}"
        );
        if kind != "zpl" {
            // Text and binary protocols carry the HRI beside the code.
            assert!(
                queued.iter().any(|(_, v)| *v == code.hri()),
                "{kind}: HRI not queued, got {queued:?}"
            );
        }
        // The queued code prints as what was sent.
        let printed = line.printer.print_one().unwrap_or_else(|| panic!("{kind}"));
        assert!(printed.fields.iter().any(|(_, v)| *v == element_string));
    }
}

#[test]
fn print_test_refuses_an_invalid_code_before_the_printer() {
    let line = start_line("zipher");
    // Wrong GTIN check digit.
    let o = linectl(
        &line,
        &["print-test", "--code", "(01)09506000134353(21)ABC"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("not a valid GS1 code"),
        "{}",
        stderr(&o)
    );
    assert_eq!(line.printer.queued(), 0);
}

#[test]
fn plc_shows_the_register_map_values() {
    let line = start_line("zipher");
    let map = RegisterMap::default();
    for _ in 0..3 {
        line.plc.trigger();
    }
    line.plc.count_exit(Verdict::Good);
    line.plc.count_exit(Verdict::Good);
    line.plc.count_exit(Verdict::Reject);
    line.plc.set_state(PackMlState::Execute);
    line.plc.set_alarms(0x0105);
    line.plc.set_register(map.heartbeat, 4242);
    let slot = map.verdict_slot(70_001);
    for (i, w) in verdict_words(70_001, Verdict::Reject).iter().enumerate() {
        line.plc.set_register(slot + i as u16, *w);
    }
    let o = linectl(&line, &["plc", "--watch", "--count", "2"], &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    for want in [
        "trigger_counter [0]: 3",
        "packml_state [11]: 6 Execute",
        "counters [20]: total 3, good 2, rejected 1",
        "alarms [30]: 0x0105",
        "heartbeat [2]: 4242",
        "verdict slot 1 [103]: unit 70001, reject",
        "verdict slot 0 [100]: unit 0, none",
        "reading 2:",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("reading 3:"), "{out}");
}

#[test]
fn plc_follows_a_moved_register_map_and_a_bad_map_touches_no_device() {
    let line = start_line("zipher");
    // A valid moved alarm word (the twin serves registers 0..124): the profile's map is
    // the one the driver reads.
    line.plc.set_register(40, 0x00aa);
    let o = linectl(
        &line,
        &["plc"],
        &[("LINECTL__PLC__REGISTERS__ALARMS", "40")],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("alarms [40]: 0x00aa"), "{out}");
    assert!(
        out.contains("reading 1:") && !out.contains("reading 2:"),
        "{out}"
    );

    // An overlapping map is a profile problem: exit 2, key path named, no device line.
    let o = linectl(
        &line,
        &["plc"],
        &[("LINECTL__PLC__REGISTERS__ALARMS", "21")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("plc.registers.alarms: registers 21..22 overlap `counters`"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}
