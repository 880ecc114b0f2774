//! `linectl device`: commissioning checks against the devices a line profile names —
//! `probe` (connect to PLC, printer and camera, print each status), `print-test` (send
//! one GS1 code to the printer) and `plc` (show the PLC register map's values, once or
//! every 500 ms). The whole profile is loaded and validated before any device is
//! touched. Exit status 2 when the profile or the code is rejected or a device fails.
//! Owns only the command-line side; protocols are `linectl_drivers`, profiles
//! `linectl::profile`, GS1 parsing `linectl::gs1`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use linectl::gs1::Gs1Code;
use linectl::profile::Profile;
use linectl_drivers::plc::modbus::ModbusPlc;
use linectl_drivers::plc::{PackMlState, Plc, Verdict};
use linectl_drivers::printer::{PrintItem, PrinterStatus};
use linectl_drivers::{Error as DeviceError, factory};

use super::EXIT_REJECTED;

/// Period of `linectl device plc --watch`.
const WATCH_PERIOD: Duration = Duration::from_millis(500);

/// Job selected on ZPL printers when none is given: the driver's built-in template.
const ZPL_DEFAULT_JOB: &str = "dm";

/// Field that carries the human-readable interpretation next to the code.
const HRI_FIELD: &str = "HRI";

/// Field that carries the element string on text-protocol printers (the Zipher
/// driver's default `code_field`).
const CODE_FIELD: &str = "CODE";

/// `linectl device` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DeviceCmd {
    /// Connect to every device of the profile (PLC, printer, camera) and print each
    /// one's status or error; exit status 2 if any fails.
    Probe {
        /// Line profile (TOML; `LINECTL__SECTION__KEY` overrides apply).
        #[arg(long)]
        profile: PathBuf,
    },
    /// Validate a GS1 code and load it into the profile's printer as the next print
    /// (element string with GS separators, plus the HRI), then print the printer's status.
    PrintTest {
        /// Line profile (TOML; `LINECTL__SECTION__KEY` overrides apply).
        #[arg(long)]
        profile: PathBuf,
        /// The code, in any GS1 syntax, e.g. `(01)09506000134352(17)281231(10)L1(21)S1`.
        #[arg(long)]
        code: String,
        /// Job / template to select first. Default: `dm` on ZPL printers (the
        /// driver's template), the printer's current job otherwise.
        #[arg(long)]
        job: Option<String>,
    },
    /// Print the PLC register map's values: trigger counter, PackML state, counters,
    /// alarms, heartbeat, verdict slots.
    Plc {
        /// Line profile (TOML; `LINECTL__SECTION__KEY` overrides apply).
        #[arg(long)]
        profile: PathBuf,
        /// Repeat every 500 ms until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Stop after this many readings (with `--watch`; without it, one reading).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
}

/// Run the command.
pub fn run(cmd: DeviceCmd) -> anyhow::Result<ExitCode> {
    Ok(match cmd {
        DeviceCmd::Probe { profile } => match load(&profile) {
            Some(p) => probe(&p),
            None => ExitCode::from(EXIT_REJECTED),
        },
        DeviceCmd::PrintTest { profile, code, job } => match load(&profile) {
            Some(p) => print_test(&p, &code, job.as_deref()),
            None => ExitCode::from(EXIT_REJECTED),
        },
        DeviceCmd::Plc {
            profile,
            watch,
            count,
        } => match load(&profile) {
            Some(p) => {
                let readings = if watch { count } else { Some(1) };
                plc(&p, readings)
            }
            None => ExitCode::from(EXIT_REJECTED),
        },
    })
}

/// Load and validate the whole profile; every problem goes to stderr.
fn load(path: &Path) -> Option<Profile> {
    match Profile::load(path) {
        Ok(p) => Some(p),
        Err(e) => {
            for problem in &e.problems {
                eprintln!("{problem}");
            }
            None
        }
    }
}

/// `error (Kind)`: a device error with its kind, on one line.
fn failure(e: &DeviceError) -> String {
    format!("FAILED ({:?}): {e}", e.kind())
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REJECTED)
    }
}

fn connect_plc(p: &Profile) -> Result<ModbusPlc, DeviceError> {
    factory::connect_modbus(
        p.plc.kind.id(),
        &p.plc.address,
        p.plc.baud,
        p.plc.modbus_config(),
    )
}

fn connect_printer(p: &Profile) -> Result<Box<dyn linectl_drivers::Printer>, DeviceError> {
    factory::connect_printer(
        p.printer.kind.id(),
        &p.printer.address,
        p.printer.baud,
        Duration::from_millis(p.printer.timeout_ms),
    )
}

fn probe(p: &Profile) -> ExitCode {
    let mut ok = true;

    let plc_line = match connect_plc(p).and_then(|mut plc| {
        let state = plc.state()?;
        let trigger = plc.trigger_counter()?;
        let alarms = plc.alarms()?;
        Ok(format!(
            "OK: state {}, trigger counter {trigger}, alarms 0x{alarms:04x}",
            state_name(state)
        ))
    }) {
        Ok(s) => s,
        Err(e) => {
            ok = false;
            failure(&e)
        }
    };
    println!("plc {}@{}: {plc_line}", p.plc.kind.id(), p.plc.address);

    let printer_line = match connect_printer(p).and_then(|mut pr| pr.status()) {
        Ok(st) => format!("OK: {}", printer_status(&st)),
        Err(e) => {
            ok = false;
            failure(&e)
        }
    };
    println!(
        "printer {}@{}: {printer_line}",
        p.printer.kind.id(),
        p.printer.address
    );

    let camera_line = match factory::connect_frame_source(
        p.camera.kind.id(),
        &p.camera.address,
        Duration::from_millis(p.camera.timeout_ms),
    ) {
        Ok(src) => format!("OK: {} open", src.describe()),
        Err(e) => {
            ok = false;
            failure(&e)
        }
    };
    println!(
        "camera {}@{}: {camera_line}",
        p.camera.kind.id(),
        p.camera.address
    );
    exit(ok)
}

fn printer_status(st: &PrinterStatus) -> String {
    let mut s = format!("{:?}", st.state);
    if let Some(q) = st.queued {
        let _ = write!(s, ", queued {q}");
    }
    let _ = write!(s, ", printed {}", st.printed);
    if st.faults.is_empty() {
        s.push_str(", no faults");
    } else {
        let faults: Vec<String> = st
            .faults
            .iter()
            .map(|f| format!("{} {}", f.code, f.text))
            .collect();
        let _ = write!(s, ", faults: {}", faults.join("; "));
    }
    s
}

fn print_test(p: &Profile, code: &str, job: Option<&str>) -> ExitCode {
    let parsed = match Gs1Code::parse(code) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("--code {code:?}: not a valid GS1 code: {e}");
            return ExitCode::from(EXIT_REJECTED);
        }
    };
    let element_string = parsed.element_string();
    let hri = parsed.hri();
    if let Some(gtin) = parsed.get("01")
        && gtin != p.product.gtin
    {
        eprintln!(
            "note: GTIN {gtin} of the code is not the profile's product GTIN {}",
            p.product.gtin
        );
    }
    let device = format!("printer {}@{}", p.printer.kind.id(), p.printer.address);
    let job = job.or(match p.printer.kind {
        linectl::profile::PrinterKind::Zpl => Some(ZPL_DEFAULT_JOB),
        _ => None,
    });
    // ZPL templates take `{DM}` from `element_string` (escaped into the DataMatrix
    // field) and `{HRI}` from the fields; text-protocol printers get the element
    // string in their code field and the HRI beside it; Markem-Imaje external
    // variables 1 and 2 are these two, in that order.
    let mut fields = Vec::new();
    if p.printer.kind != linectl::profile::PrinterKind::Zpl {
        fields.push((CODE_FIELD.to_string(), element_string.clone()));
    }
    fields.push((HRI_FIELD.to_string(), hri.clone()));
    let item = PrintItem {
        unit: 0,
        element_string: element_string.clone(),
        fields,
    };
    let result = connect_printer(p).and_then(|mut pr| {
        if let Some(job) = job {
            pr.select_job(job)?;
        }
        pr.load(std::slice::from_ref(&item))?;
        pr.status()
    });
    match result {
        Ok(st) => {
            println!(
                "{device}: loaded {hri} (element string {}){}",
                element_string.replace('\u{1d}', "<GS>"),
                job.map(|j| format!(" into job {j}")).unwrap_or_default()
            );
            println!("{device}: status {}", printer_status(&st));
            exit(true)
        }
        Err(e) => {
            println!("{device}: {}", failure(&e));
            exit(false)
        }
    }
}

fn state_name(state: Option<PackMlState>) -> String {
    match state {
        Some(s) => s.name().to_string(),
        None => "undefined".to_string(),
    }
}

/// One reading of the whole register map, as printable lines.
fn plc_reading(plc: &mut ModbusPlc) -> Result<Vec<String>, DeviceError> {
    let map = plc.map().clone();
    let mut lines = Vec::new();
    let trigger = plc.trigger_counter()?;
    lines.push(format!(
        "trigger_counter [{}]: {trigger}",
        map.trigger_counter
    ));
    let raw_state = plc
        .read_registers(map.packml_state, 1)?
        .first()
        .copied()
        .unwrap_or(0);
    lines.push(format!(
        "packml_state [{}]: {raw_state} {}",
        map.packml_state,
        state_name(PackMlState::from_code(raw_state))
    ));
    let c = plc.counters()?;
    lines.push(format!(
        "counters [{}]: total {}, good {}, rejected {}",
        map.counters, c.total, c.good, c.rejected
    ));
    let alarms = plc.alarms()?;
    lines.push(format!("alarms [{}]: 0x{alarms:04x}", map.alarms));
    let hb = plc
        .read_registers(map.heartbeat, 1)?
        .first()
        .copied()
        .unwrap_or(0);
    lines.push(format!("heartbeat [{}]: {hb}", map.heartbeat));
    let ring = plc.read_registers(map.verdict_base, map.verdict_slots.saturating_mul(3))?;
    for (i, slot) in ring.chunks(3).enumerate() {
        let [hi, lo, code] = slot else { continue };
        let unit = (u32::from(*hi) << 16) | u32::from(*lo);
        let verdict = match Verdict::from_code(*code) {
            Some(Verdict::Good) => "good".to_string(),
            Some(Verdict::Reject) => "reject".to_string(),
            _ if *code == 0 => "none".to_string(),
            _ => format!("unknown code {code}"),
        };
        let addr = usize::from(map.verdict_base) + 3 * i;
        lines.push(format!("verdict slot {i} [{addr}]: unit {unit}, {verdict}"));
    }
    Ok(lines)
}

/// Read the map `readings` times (`None`: until interrupted), 500 ms apart.
fn plc(p: &Profile, readings: Option<u64>) -> ExitCode {
    let device = format!("plc {}@{}", p.plc.kind.id(), p.plc.address);
    let mut plc = match connect_plc(p) {
        Ok(plc) => plc,
        Err(e) => {
            println!("{device}: {}", failure(&e));
            return exit(false);
        }
    };
    let mut ok = true;
    let mut n: u64 = 0;
    loop {
        n += 1;
        println!("{device} (unit id {}), reading {n}:", p.plc.unit_id);
        match plc_reading(&mut plc) {
            Ok(lines) => {
                for line in lines {
                    println!("  {line}");
                }
            }
            Err(e) => {
                ok = false;
                println!("  {}", failure(&e));
            }
        }
        if readings.is_some_and(|r| n >= r) {
            break;
        }
        std::thread::sleep(WATCH_PERIOD);
    }
    exit(ok)
}
