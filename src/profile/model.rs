//! The typed line profile: one struct per TOML section, every field documented, with
//! its default where one is sensible. Unknown keys are errors everywhere
//! (`deny_unknown_fields`). Loading and validation live in `profile`; this file only
//! says what a profile holds.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::market::Market;

/// `[line]`: which line this is and where it stands.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineSection {
    /// Line identifier, unique on the site (letters, digits, `-`, `_`), e.g. `"PL-03"`.
    pub id: String,
    /// Site location of the line (read point / business location of its EPCIS events):
    /// an SGLN EPC URN `urn:epc:id:sgln:<company prefix>.<location ref>.<extension>`
    /// (company prefix + location reference = 12 digits), or a 13-digit GLN.
    pub site: String,
}

/// `[product]`: product master data for the batch on the line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSection {
    /// GTIN (8, 12, 13 or 14 digits with check digit); stored as GTIN-14 in codes.
    pub gtin: String,
    /// Product name for the HMI and the audit trail.
    pub name: String,
    /// Target market whose code rules apply, e.g. `"eu-fmd"`.
    pub market: Market,
    /// ISO 3166 alpha-2 country of sale within the market (EU: decides which NHRN AI
    /// the code must carry, e.g. `"DE"` needs AI 710 PZN). Default: none.
    #[serde(default)]
    pub country: Option<String>,
    /// National AIs (NHRN 710–715 and similar) and their values, e.g.
    /// `national_ais = { "710" = "01234562" }`. Default: none.
    #[serde(default)]
    pub national_ais: BTreeMap<String, String>,
    /// China only: the 7-digit product identification code that starts the 20-digit
    /// drug trace code. Default: none (required for `cn-nmpa`).
    #[serde(default)]
    pub cn_product_code: Option<String>,
}

/// `[batch]`: defaults for a new batch (the operator confirms them at batch start).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSection {
    /// Default batch / lot number (AI 10). Default: none, the operator enters it.
    #[serde(default)]
    pub lot: Option<String>,
    /// Default expiry date YYMMDD (AI 17). Default: none, the operator enters it.
    #[serde(default)]
    pub expiry: Option<String>,
    /// Units planned for the batch. Default: none (open-ended).
    #[serde(default)]
    pub target_quantity: Option<u64>,
}

/// PLC protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlcKind {
    /// Modbus TCP; `address` is `host:port`.
    ModbusTcp,
    /// Modbus RTU over a serial line; `address` is a device path, `baud` needed.
    ModbusRtu,
}

/// `[plc]`: the line PLC.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlcSection {
    /// Protocol.
    pub kind: PlcKind,
    /// `host:port` for Modbus TCP, a serial device path (e.g. `/dev/ttyUSB0`) for RTU.
    pub address: String,
    /// Serial speed in baud; required with a serial device, refused otherwise.
    #[serde(default)]
    pub baud: Option<u32>,
    /// Modbus unit (slave) id. Default: 1.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// Timeout of one request, in milliseconds. Default: 100.
    #[serde(default = "default_plc_timeout_ms")]
    pub timeout_ms: u64,
    /// How often the trigger counter is polled, in milliseconds. Default: 5.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// The register map. Default: the map documented on [`PlcRegisters`].
    #[serde(default)]
    pub registers: PlcRegisters,
}

const fn default_unit_id() -> u8 {
    1
}
const fn default_plc_timeout_ms() -> u64 {
    100
}
const fn default_poll_ms() -> u64 {
    5
}

/// `[plc.registers]`: the driver's register map, `linectl_drivers::plc::modbus::RegisterMap`
/// (one model for profile and driver: same keys, same defaults, documented per field
/// there and in drivers/README.md). 0-based holding-register addresses shared with the
/// PLC program; 32-bit values take two registers, high word first.
///
/// | key | default | registers | written by |
/// |---|---|---|---|
/// | `trigger_counter` | 0 | 2 | PLC |
/// | `heartbeat` | 2 | 1 | linectl |
/// | `packml_command` | 10 | 1 | linectl |
/// | `packml_state` | 11 | 1 | PLC |
/// | `counters` | 20 | 6 (total, good, rejected) | PLC |
/// | `alarms` | 30 | 1 | PLC |
/// | `verdict_base` | 100 | 3 × `verdict_slots` | linectl |
/// | `verdict_slots` | 8 | | |
pub type PlcRegisters = linectl_drivers::plc::modbus::RegisterMap;

/// Coding printer protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrinterKind {
    /// ZPL (Zebra and compatible label printers) over TCP.
    Zpl,
    /// Videojet Zipher text protocol (TCP or serial).
    Zipher,
    /// Markem-Imaje protocol (TCP or serial).
    Markem,
}

/// `[printer]`: the coding printer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterSection {
    /// Protocol.
    pub kind: PrinterKind,
    /// `host:port`, or a serial device path (Zipher, Markem) with `baud`.
    pub address: String,
    /// Serial speed in baud; required with a serial device, refused otherwise.
    #[serde(default)]
    pub baud: Option<u32>,
    /// Timeout of one request / acknowledgement, in milliseconds. Default: 500.
    #[serde(default = "default_printer_timeout_ms")]
    pub timeout_ms: u64,
    /// Codes kept loaded in the printer ahead of the line. Default: 4.
    #[serde(default = "default_buffer_ahead")]
    pub buffer_ahead: u32,
    /// The printer's job (message, label template) that carries the DataMatrix,
    /// selected at batch start. Default: `"dm"` (the ZPL driver's built-in template).
    #[serde(default = "default_printer_job")]
    pub job: String,
}

fn default_printer_job() -> String {
    "dm".to_string()
}

const fn default_printer_timeout_ms() -> u64 {
    500
}
const fn default_buffer_ahead() -> u32 {
    4
}

/// Camera / frame source kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CameraKind {
    /// Frames appear as image files in a directory; `address` is the directory.
    Dir,
    /// Frames arrive over a TCP stream; `address` is `host:port`.
    TcpStream,
}

/// `[camera]`: the verification camera.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSection {
    /// Frame source.
    pub kind: CameraKind,
    /// Directory for `dir`, `host:port` for `tcp-stream`.
    pub address: String,
    /// Time to wait for the frame of a unit, in milliseconds. Default: 200.
    #[serde(default = "default_camera_timeout_ms")]
    pub timeout_ms: u64,
}

const fn default_camera_timeout_ms() -> u64 {
    200
}

/// `[geometry]`: the conveyor between printer, camera and reject station.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeometrySection {
    /// Distance from the print head to the camera's field of view, in mm.
    pub print_to_camera_mm: f64,
    /// Distance from the camera to the reject station, in mm.
    pub camera_to_reject_mm: f64,
    /// Conveyor speed, in mm/s.
    pub conveyor_speed_mm_s: f64,
    /// Distance between the leading edges of consecutive units, in mm.
    pub pitch_mm: f64,
    /// PLC scan time, in ms, taken off the verdict deadline. Default: 10.
    #[serde(default = "default_plc_scan_ms")]
    pub plc_scan_ms: f64,
    /// Reject valve / pusher reaction time, in ms, taken off the deadline. Default: 20.
    #[serde(default = "default_reject_actuation_ms")]
    pub reject_actuation_ms: f64,
}

const fn default_plc_scan_ms() -> f64 {
    10.0
}
const fn default_reject_actuation_ms() -> f64 {
    20.0
}

impl GeometrySection {
    /// The per-unit verdict deadline after the camera sees the unit, in ms: travel
    /// time camera → reject minus PLC scan and reject actuation. May be ≤ 0 (the
    /// validation refuses that).
    pub fn verdict_deadline_ms(&self) -> f64 {
        self.camera_to_reject_mm / self.conveyor_speed_mm_s * 1000.0
            - self.plc_scan_ms
            - self.reject_actuation_ms
    }

    /// Nominal line rate in units per minute.
    pub fn units_per_minute(&self) -> f64 {
        self.conveyor_speed_mm_s / self.pitch_mm * 60.0
    }
}

/// ISO/IEC 15415 overall symbol grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Grade {
    /// 4.0
    A,
    /// 3.0
    B,
    /// 2.0
    C,
    /// 1.0
    D,
    /// 0.0
    F,
}

impl Grade {
    /// Whether this grade is `min` or better (`A` is best).
    pub fn at_least(self, min: Grade) -> bool {
        // Declared best first, so "better" is "earlier".
        self <= min
    }

    /// The grade's numeric value (A 4.0 … D 1.0, F 0.0).
    pub fn value(self) -> f32 {
        match self {
            Grade::A => 4.0,
            Grade::B => 3.0,
            Grade::C => 2.0,
            Grade::D => 1.0,
            Grade::F => 0.0,
        }
    }
}

/// A region of interest in the camera frame, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roi {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (> 0).
    pub w: u32,
    /// Height (> 0).
    pub h: u32,
}

/// `[verification]`: what a readable, good code is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationSection {
    /// Lowest acceptable symbol grade, `"A"` to `"F"`. Default: `"C"` (GS1 healthcare).
    #[serde(default = "default_min_grade")]
    pub min_grade: Grade,
    /// Time allowed to decode one frame, in ms; must be below the verdict deadline.
    /// Default: 50.
    #[serde(default = "default_decode_deadline_ms")]
    pub decode_deadline_ms: u64,
    /// Region of the frame to search, `{ x, y, w, h }`. Default: the whole frame.
    #[serde(default)]
    pub roi: Option<Roi>,
    /// Camera frames of rejected units kept in `<data-dir>/frames/` for the exception
    /// review, newest first (0: none). Default: 500.
    #[serde(default = "default_reject_frames_keep")]
    pub reject_frames_keep: usize,
    /// Megabytes the kept reject frames may take together (oldest deleted first).
    /// Default: 256.
    #[serde(default = "default_reject_frames_max_mb")]
    pub reject_frames_max_mb: u64,
}

const fn default_reject_frames_keep() -> usize {
    500
}
const fn default_reject_frames_max_mb() -> u64 {
    256
}

const fn default_min_grade() -> Grade {
    Grade::C
}
const fn default_decode_deadline_ms() -> u64 {
    50
}

impl Default for VerificationSection {
    fn default() -> Self {
        VerificationSection {
            min_grade: default_min_grade(),
            decode_deadline_ms: default_decode_deadline_ms(),
            roi: None,
            reject_frames_keep: default_reject_frames_keep(),
            reject_frames_max_mb: default_reject_frames_max_mb(),
        }
    }
}

/// Where serials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SerialSource {
    /// Imported into the pool from files (`linectl pool import`).
    Import,
    /// Generated locally at random (markets that allow local generation).
    GenerateRandom,
    /// Generated locally in sequence (markets that allow sequential serials).
    GenerateSequential,
    /// Requested in blocks from the site server.
    SiteServer,
}

/// `[serials]`: the serial-number supply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialsSection {
    /// Source of serials.
    pub source: SerialSource,
    /// Serials reserved from the pool per block. Default: 1000.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    /// Refill when fewer than this many unallocated serials remain. Default: 5000.
    #[serde(default = "default_low_water")]
    pub low_water: u64,
    /// Serial length for local generation. Default: 12.
    #[serde(default = "default_serial_length")]
    pub length: usize,
    /// Most serials that will ever be valid for this GTIN (for the EU guessing
    /// probability check of random generation). Default: 100,000,000.
    #[serde(default = "default_expected_per_gtin")]
    pub expected_per_gtin: u64,
    /// Site-server serial endpoint (`http://` or `https://`), for `site-server`.
    #[serde(default)]
    pub url: Option<String>,
}

const fn default_block_size() -> u32 {
    1000
}
const fn default_low_water() -> u64 {
    5000
}
const fn default_serial_length() -> usize {
    12
}
const fn default_expected_per_gtin() -> u64 {
    100_000_000
}

/// `[hmi]`: the operator web interface.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmiSection {
    /// Listen address `ip:port`. Default: `"127.0.0.1:8080"`.
    #[serde(default = "default_hmi_listen")]
    pub listen: String,
    /// Resolving an exception needs a second person's e-signature (re-entered password
    /// of a user allowed to sign). Default: false (a reason is always required).
    #[serde(default)]
    pub resolve_needs_second_signature: bool,
}

fn default_hmi_listen() -> String {
    "127.0.0.1:8080".to_string()
}

impl Default for HmiSection {
    fn default() -> Self {
        HmiSection {
            listen: default_hmi_listen(),
            resolve_needs_second_signature: false,
        }
    }
}

/// How EPCIS events name objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentifierForm {
    /// GS1 Digital Link URIs, e.g. `https://id.gs1.org/01/…/21/…`.
    DigitalLink,
    /// EPC pure-identity URNs, e.g. `urn:epc:id:sgtin:…`.
    EpcUrn,
}

/// `[epcis]`: event output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpcisSection {
    /// Identifier form. Default: `"digital-link"`.
    #[serde(default = "default_identifiers")]
    pub identifiers: IdentifierForm,
    /// Digital Link base URI. Default: `"https://id.gs1.org"`.
    #[serde(default = "default_dl_base")]
    pub digital_link_base: String,
    /// Site server capture interface (`http(s)://…/capture`). Default: none (events
    /// are only journaled and served for pull).
    #[serde(default)]
    pub capture_url: Option<String>,
}

const fn default_identifiers() -> IdentifierForm {
    IdentifierForm::DigitalLink
}
fn default_dl_base() -> String {
    "https://id.gs1.org".to_string()
}

impl Default for EpcisSection {
    fn default() -> Self {
        EpcisSection {
            identifiers: default_identifiers(),
            digital_link_base: default_dl_base(),
            capture_url: None,
        }
    }
}

/// `[log]`: the daemon's log output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `tracing` filter directives, e.g. `"info"` or `"linectl::uplink=debug,info"`;
    /// used when `RUST_LOG` is not set, and changeable by SIGHUP. Default: `"info"`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_level() -> String {
    "info".to_string()
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: default_log_level(),
        }
    }
}

/// A whole line profile, validated (see `Profile::load`).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `[line]`
    pub line: LineSection,
    /// `[product]`
    pub product: ProductSection,
    /// `[batch]`
    pub batch: BatchSection,
    /// `[plc]`
    pub plc: PlcSection,
    /// `[printer]`
    pub printer: PrinterSection,
    /// `[camera]`
    pub camera: CameraSection,
    /// `[geometry]`
    pub geometry: GeometrySection,
    /// `[verification]`
    pub verification: VerificationSection,
    /// `[serials]`
    pub serials: SerialsSection,
    /// `[hmi]`
    pub hmi: HmiSection,
    /// `[epcis]`
    pub epcis: EpcisSection,
    /// `[log]`
    pub log: LogSection,
    /// `[aggregation]`, absent when the line does not aggregate.
    pub aggregation: Option<super::aggregation::AggregationSection>,
}

impl PlcKind {
    /// The kind as written in profiles.
    pub fn id(self) -> &'static str {
        match self {
            PlcKind::ModbusTcp => "modbus-tcp",
            PlcKind::ModbusRtu => "modbus-rtu",
        }
    }
}

impl PrinterKind {
    /// The kind as written in profiles.
    pub fn id(self) -> &'static str {
        match self {
            PrinterKind::Zpl => "zpl",
            PrinterKind::Zipher => "zipher",
            PrinterKind::Markem => "markem",
        }
    }
}

impl CameraKind {
    /// The kind as written in profiles.
    pub fn id(self) -> &'static str {
        match self {
            CameraKind::Dir => "dir",
            CameraKind::TcpStream => "tcp-stream",
        }
    }
}

impl SerialSource {
    /// The source as written in profiles.
    pub fn id(self) -> &'static str {
        match self {
            SerialSource::Import => "import",
            SerialSource::GenerateRandom => "generate-random",
            SerialSource::GenerateSequential => "generate-sequential",
            SerialSource::SiteServer => "site-server",
        }
    }
}

impl PlcSection {
    /// Where the PLC is reached (validated profiles always parse).
    pub fn endpoint(&self) -> Result<super::Endpoint, String> {
        super::parse_endpoint(&self.address)
    }

    /// The driver settings this section gives: register map, unit (slave) id and
    /// request timeout; reconnect backoff stays at the driver's defaults.
    pub fn modbus_config(&self) -> linectl_drivers::plc::modbus::ModbusConfig {
        linectl_drivers::plc::modbus::ModbusConfig {
            map: self.registers.clone(),
            slave: self.unit_id,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            ..linectl_drivers::plc::modbus::ModbusConfig::default()
        }
    }
}

impl PrinterSection {
    /// Where the printer is reached (validated profiles always parse).
    pub fn endpoint(&self) -> Result<super::Endpoint, String> {
        super::parse_endpoint(&self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_compare_best_first() {
        assert!(Grade::A.at_least(Grade::C));
        assert!(Grade::C.at_least(Grade::C));
        assert!(!Grade::D.at_least(Grade::C));
        assert!(!Grade::F.at_least(Grade::D));
        assert_eq!(Grade::B.value(), 3.0);
    }

    #[test]
    fn verdict_deadline_and_rate() {
        let g = GeometrySection {
            print_to_camera_mm: 300.0,
            camera_to_reject_mm: 400.0,
            conveyor_speed_mm_s: 500.0,
            pitch_mm: 150.0,
            plc_scan_ms: 10.0,
            reject_actuation_ms: 20.0,
        };
        assert_eq!(g.verdict_deadline_ms(), 770.0);
        assert_eq!(g.units_per_minute(), 200.0);
    }

    #[test]
    fn default_registers_are_the_drivers_and_convert() {
        assert!(PlcRegisters::default().problems().is_empty());
        let plc = PlcSection {
            kind: PlcKind::ModbusTcp,
            address: "127.0.0.1:502".into(),
            baud: None,
            unit_id: 7,
            timeout_ms: 150,
            poll_ms: 5,
            registers: PlcRegisters {
                heartbeat: 40,
                ..PlcRegisters::default()
            },
        };
        let cfg = plc.modbus_config();
        assert_eq!(cfg.slave, 7);
        assert_eq!(cfg.timeout, std::time::Duration::from_millis(150));
        assert_eq!(cfg.map.heartbeat, 40);
        assert_eq!(cfg.map.verdict_base, 100);
    }
}
