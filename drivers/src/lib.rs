//! linectl-drivers: the device side of linectl. Traits the pipeline uses ([`Printer`],
//! [`Plc`], [`FrameSource`]), their protocols as sans-IO codecs (bytes in, typed
//! messages out) with thin transports, device twins for the simulator and tests, and
//! factory functions for the CLI.
//!
//! Owns: every byte exchanged with a printer, PLC or camera. Does not own: GS1
//! encoding, decoding DataMatrix images, or pipeline policy (the pipeline decides
//! retry / reject / stop from [`Error::kind`]).
//!
//! Architecture invariant: only this crate knows a device wire protocol; the twins
//! reuse the same codecs, so driver and simulator speak the same bytes.

pub mod camera;
pub mod error;
pub mod factory;
pub mod link;
pub mod plc;
pub mod printer;

pub use camera::{Frame, FrameSource};
pub use error::{CodecError, DeviceName, Error, ErrorKind};
pub use factory::{connect_frame_source, connect_plc, connect_printer};
pub use plc::{PackMlCommand, PackMlState, Plc, PlcCounters, Verdict};
pub use printer::{PrintItem, Printer, PrinterFault, PrinterState, PrinterStatus};
