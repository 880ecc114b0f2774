//! The [`Plc`] trait the line's controller implements, its data types, and the
//! Modbus TCP/RTU implementation ([`modbus`]).
//!
//! Owns: the host-facing PLC API (trigger counter, verdicts, heartbeat, PackML,
//! counters, alarms). Does not own: reject timing (the PLC's shift register times
//! the reject pulse; Modbus polling is not deterministic enough to do it).

pub mod modbus;

use crate::error::Error;

/// Verdict for one unit, written to the PLC before the unit reaches the reject station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// The unit passes.
    Good,
    /// The unit must be rejected (bad or unreadable code, pool failure, ...).
    Reject,
}

impl Verdict {
    /// Code written to the verdict register: 1 good, 2 reject (0 = no verdict yet).
    pub fn code(self) -> u16 {
        match self {
            Verdict::Good => 1,
            Verdict::Reject => 2,
        }
    }

    /// Inverse of [`Verdict::code`].
    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(Verdict::Good),
            2 => Some(Verdict::Reject),
            _ => None,
        }
    }
}

/// PackML (ISA-TR88.00.02) control commands, with their standard numeric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[allow(missing_docs)]
pub enum PackMlCommand {
    Reset = 1,
    Start = 2,
    Stop = 3,
    Hold = 4,
    Unhold = 5,
    Suspend = 6,
    Unsuspend = 7,
    Abort = 8,
    Clear = 9,
}

impl PackMlCommand {
    /// From the register value; `None` for 0 (no command) and unknown values.
    pub fn from_code(code: u16) -> Option<Self> {
        use PackMlCommand::*;
        Some(match code {
            1 => Reset,
            2 => Start,
            3 => Stop,
            4 => Hold,
            5 => Unhold,
            6 => Suspend,
            7 => Unsuspend,
            8 => Abort,
            9 => Clear,
            _ => return None,
        })
    }
}

/// PackML states, with their standard numeric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[allow(missing_docs)]
pub enum PackMlState {
    Clearing = 1,
    Stopped = 2,
    Starting = 3,
    Idle = 4,
    Suspended = 5,
    Execute = 6,
    Stopping = 7,
    Aborting = 8,
    Aborted = 9,
    Holding = 10,
    Held = 11,
    Unholding = 12,
    Suspending = 13,
    Unsuspending = 14,
    Resetting = 15,
    Completing = 16,
    Complete = 17,
}

impl PackMlState {
    /// From the register value; `None` for 0 (undefined) and unknown values.
    pub fn from_code(code: u16) -> Option<Self> {
        use PackMlState::*;
        Some(match code {
            1 => Clearing,
            2 => Stopped,
            3 => Starting,
            4 => Idle,
            5 => Suspended,
            6 => Execute,
            7 => Stopping,
            8 => Aborting,
            9 => Aborted,
            10 => Holding,
            11 => Held,
            12 => Unholding,
            13 => Suspending,
            14 => Unsuspending,
            15 => Resetting,
            16 => Completing,
            17 => Complete,
            _ => return None,
        })
    }
}

/// Production counters kept by the PLC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlcCounters {
    /// Units that passed the trigger sensor.
    pub total: u32,
    /// Units that left the line as good.
    pub good: u32,
    /// Units rejected (confirmed by the reject-confirm sensor).
    pub rejected: u32,
}

/// The line PLC as linectl sees it.
///
/// # Blocking by design
/// Methods block until the PLC answered or the timeout given at connect time elapsed.
/// The Modbus implementation owns a private single-threaded tokio runtime (tokio-modbus
/// is async) and blocks on it per call, so callers stay on plain threads, as the
/// pipeline does everywhere except at I/O edges. Never call these methods from inside
/// an async task: use `spawn_blocking` there.
///
/// # Triggers
/// The PLC counts units at the trigger sensor in a wrapping 32-bit counter; linectl
/// polls it with [`trigger_counter`](Plc::trigger_counter) and derives unit numbers
/// from the increments (a counter, unlike a bit, cannot miss a short pulse between
/// two polls).
///
/// # Verdicts
/// [`write_verdict`](Plc::write_verdict) stores (unit number, verdict code) in a
/// ring of slots indexed by the unit number, in one Modbus request, so the PLC reads
/// a consistent pair when the unit reaches the reject station. A unit with no
/// verdict (slot holding another unit number) must be rejected by the PLC program:
/// fail-safe.
///
/// # Errors
/// `Timeout` (no answer), `Transport` (link down; the driver reconnects with
/// exponential backoff on the next call, and calls made during the backoff fail fast
/// with `Transport`), `DeviceFault` (the PLC answered with a Modbus exception, e.g.
/// illegal data address: the link stays up), `Protocol` (mismatching reply),
/// `Config` (a bad register map or address).
pub trait Plc: Send {
    /// Device description (`kind@address`).
    fn describe(&self) -> &str;

    /// Read the wrapping unit trigger counter.
    fn trigger_counter(&mut self) -> Result<u32, Error>;

    /// Write the verdict for unit `unit` (one request).
    fn write_verdict(&mut self, unit: u64, verdict: Verdict) -> Result<(), Error>;

    /// Write the heartbeat value; call at a steady period (e.g. every 500 ms) with an
    /// incrementing value so the PLC's watchdog stops the line if linectl dies.
    fn heartbeat(&mut self, value: u16) -> Result<(), Error>;

    /// Write a PackML command for the PLC's state machine to act on.
    fn command(&mut self, cmd: PackMlCommand) -> Result<(), Error>;

    /// Read the PLC's PackML state; `Ok(None)` when the register holds no known state.
    fn state(&mut self) -> Result<Option<PackMlState>, Error>;

    /// Read the production counters.
    fn counters(&mut self) -> Result<PlcCounters, Error>;

    /// Read the alarm word (bit meanings are the PLC program's).
    fn alarms(&mut self) -> Result<u16, Error>;
}
