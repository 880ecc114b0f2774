//! Factory functions the CLI uses to build a device from a kind name and an address.
//!
//! Owns: the mapping from kind strings to drivers. Does not own: configuration files
//! (the CLI reads them and passes typed settings).

use std::time::Duration;

use crate::camera::FrameSource;
use crate::camera::dir::DirectorySource;
use crate::camera::stream::StreamSource;
use crate::error::Error;
use crate::link::{Address, open_link};
use crate::plc::Plc;
use crate::plc::modbus::{Endpoint, ModbusConfig, ModbusPlc};
use crate::printer::Printer;
use crate::printer::markem::{MarkemConfig, MarkemPrinter};
use crate::printer::videojet::{VideojetConfig, VideojetPrinter};
use crate::printer::zpl::{ZebraPrinter, ZplConfig};

/// Printer kinds accepted by [`connect_printer`].
pub const PRINTER_KINDS: &[&str] = &["zebra", "videojet", "markem"];
/// Aliases accepted by [`connect_printer`] (line profiles use `zpl`, `zipher`,
/// `markem`).
pub const PRINTER_KIND_ALIASES: &[&str] = &["zpl", "zipher", "markem-imaje"];
/// PLC kinds accepted by [`connect_plc`].
pub const PLC_KINDS: &[&str] = &["modbus-tcp", "modbus-rtu"];
/// Frame source kinds accepted by [`connect_frame_source`].
pub const FRAME_SOURCE_KINDS: &[&str] = &["dir", "tcp-stream"];

/// Connect a printer. `kind`: `zebra` (alias `zpl`), `videojet` (alias `zipher`),
/// `markem` (alias `markem-imaje`). `address`: `host:port` or a serial device path;
/// `baud` only for serial (default 9600). `timeout` bounds connecting and each round
/// trip. Zebra uses the default template set (one template `dm`).
pub fn connect_printer(
    kind: &str,
    address: &str,
    baud: Option<u32>,
    timeout: Duration,
) -> Result<Box<dyn Printer>, Error> {
    let addr = Address::parse(address, baud, 9600)?;
    let kind_l = kind.to_ascii_lowercase();
    let canonical = match kind_l.as_str() {
        "zebra" | "zpl" => "zebra",
        "videojet" | "zipher" => "videojet",
        "markem" | "markem-imaje" => "markem",
        _ => {
            return Err(Error::config(format!(
                "unknown printer kind {kind:?} (known: {}; aliases: {})",
                PRINTER_KINDS.join(", "),
                PRINTER_KIND_ALIASES.join(", ")
            )));
        }
    };
    let link = open_link(&addr, timeout)?;
    let device = format!("{canonical}@{address}");
    Ok(match canonical {
        "zebra" => Box::new(ZebraPrinter::new(
            link,
            device,
            ZplConfig {
                timeout,
                ..ZplConfig::default()
            },
        )),
        "videojet" => Box::new(VideojetPrinter::new(
            link,
            device,
            VideojetConfig {
                timeout,
                ..VideojetConfig::default()
            },
        )?),
        _ => Box::new(MarkemPrinter::new(
            link,
            device,
            MarkemConfig {
                timeout,
                ..MarkemConfig::default()
            },
        )?),
    })
}

/// Connect a PLC with the default register map. `kind`: `modbus-tcp` (address
/// `host:port`, usually port 502) or `modbus-rtu` (serial path, `baud` default 19200).
pub fn connect_plc(
    kind: &str,
    address: &str,
    baud: Option<u32>,
    timeout: Duration,
) -> Result<Box<dyn Plc>, Error> {
    connect_plc_with(
        kind,
        address,
        baud,
        ModbusConfig {
            timeout,
            ..ModbusConfig::default()
        },
    )
}

/// [`connect_plc`] with full settings (register map, slave id, backoff).
pub fn connect_plc_with(
    kind: &str,
    address: &str,
    baud: Option<u32>,
    cfg: ModbusConfig,
) -> Result<Box<dyn Plc>, Error> {
    Ok(Box::new(connect_modbus(kind, address, baud, cfg)?))
}

/// [`connect_plc_with`] returning the concrete Modbus driver (for diagnostics that read
/// raw registers, e.g. [`ModbusPlc::read_registers`]).
pub fn connect_modbus(
    kind: &str,
    address: &str,
    baud: Option<u32>,
    cfg: ModbusConfig,
) -> Result<ModbusPlc, Error> {
    let endpoint = match (
        kind.to_ascii_lowercase().as_str(),
        Address::parse(address, baud, 19200)?,
    ) {
        ("modbus-tcp", Address::Tcp(a)) => Endpoint::Tcp(crate::link::resolve(&a)?),
        ("modbus-rtu", Address::Serial { path, baud }) => Endpoint::Rtu { path, baud },
        ("modbus-tcp" | "modbus-rtu", _) => {
            return Err(Error::config(format!(
                "PLC kind {kind} does not take address {address:?}"
            )));
        }
        _ => {
            return Err(Error::config(format!(
                "unknown PLC kind {kind:?} (known: {})",
                PLC_KINDS.join(", ")
            )));
        }
    };
    ModbusPlc::connect(endpoint, cfg)
}

/// Open a frame source. `kind`: `dir` (address = directory of PNG/PGM files, replayed
/// in name order), `tcp-stream` (alias `tcp`; address = `host:port` of a frame
/// stream server, the line profiles' name) or, with
/// the `v4l` feature, `v4l` (address = device path such as `/dev/video0`), with the
/// `aravis` feature, `aravis` (address = camera id, empty for the first camera).
pub fn connect_frame_source(
    kind: &str,
    address: &str,
    timeout: Duration,
) -> Result<Box<dyn FrameSource>, Error> {
    match kind.to_ascii_lowercase().as_str() {
        "dir" => Ok(Box::new(DirectorySource::open(address)?)),
        "tcp-stream" | "tcp" => Ok(Box::new(StreamSource::connect(address, timeout)?)),
        #[cfg(feature = "aravis")]
        "aravis" => Ok(Box::new(crate::camera::aravis::AravisSource::open(
            address, timeout,
        )?)),
        #[cfg(feature = "v4l")]
        "v4l" => Ok(Box::new(crate::camera::v4l::V4lSource::open(
            address, timeout,
        )?)),
        _ => Err(Error::config(format!(
            "unknown frame source kind {kind:?} (known: {})",
            FRAME_SOURCE_KINDS.join(", ")
        ))),
    }
}
