//! The [`Plc`] trait the line's controller implements, its data types, and the
//! Modbus TCP/RTU implementation ([`modbus`], over our own blocking clients `mbtcp`
//! and `mbrtu`).
//!
//! Owns: the host-facing PLC API (trigger counter, verdicts, heartbeat, PackML,
//! counters, alarms). Does not own: reject timing (the PLC's shift register times
//! the reject pulse; Modbus polling is not deterministic enough to do it).

mod mbrtu;
mod mbtcp;
pub mod modbus;
mod pdu;

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

/// PackML (ISA-TR88.00.02) control commands, numbered as OMAC PackTags `CntrlCmd`.
/// This is linectl's one definition of the PackML vocabulary: the PLC register map
/// speaks these numbers and `linectl::packml` runs its state machine on these types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u16)]
pub enum PackMlCommand {
    /// Stopped/Complete → Resetting.
    Reset = 1,
    /// Idle → Starting.
    Start = 2,
    /// Most states → Stopping.
    Stop = 3,
    /// Execute/Suspended/Suspending/Unsuspending → Holding.
    Hold = 4,
    /// Held → Unholding.
    Unhold = 5,
    /// Execute → Suspending.
    Suspend = 6,
    /// Suspended → Unsuspending.
    Unsuspend = 7,
    /// Any state but Aborting/Aborted → Aborting.
    Abort = 8,
    /// Aborted → Clearing.
    Clear = 9,
}

impl PackMlCommand {
    /// Every command, in PackTags order.
    pub const ALL: [PackMlCommand; 9] = [
        PackMlCommand::Reset,
        PackMlCommand::Start,
        PackMlCommand::Stop,
        PackMlCommand::Hold,
        PackMlCommand::Unhold,
        PackMlCommand::Suspend,
        PackMlCommand::Unsuspend,
        PackMlCommand::Abort,
        PackMlCommand::Clear,
    ];

    /// The PackTags `CntrlCmd` number.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// From the register value; `None` for 0 (no command) and unknown values.
    pub fn from_code(code: u16) -> Option<Self> {
        PackMlCommand::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// PackML states, numbered as OMAC PackTags `StateCurrent` (vendors differ; the PLC
/// program must use this numbering). Acting states end with a state-complete event;
/// wait states wait for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u16)]
pub enum PackMlState {
    /// Acting: clearing a fault after Aborted; ends in Stopped.
    Clearing = 1,
    /// Wait: powered, not producing.
    Stopped = 2,
    /// Acting: preparing to produce; ends in Execute.
    Starting = 3,
    /// Wait: reset, ready for Start.
    Idle = 4,
    /// Wait: starved or blocked by an upstream/downstream condition.
    Suspended = 5,
    /// Producing.
    Execute = 6,
    /// Acting: controlled stop; ends in Stopped.
    Stopping = 7,
    /// Acting: immediate stop on a fault; ends in Aborted.
    Aborting = 8,
    /// Wait: stopped by a fault; needs Clear.
    Aborted = 9,
    /// Acting: pausing on an internal condition; ends in Held.
    Holding = 10,
    /// Wait: paused on an internal condition (e.g. count drift); needs Unhold.
    Held = 11,
    /// Acting: resuming from Held; ends in Execute.
    Unholding = 12,
    /// Acting: pausing on an external condition; ends in Suspended.
    Suspending = 13,
    /// Acting: resuming from Suspended; ends in Execute.
    Unsuspending = 14,
    /// Acting: resetting; ends in Idle.
    Resetting = 15,
    /// Acting: the batch quantity is reached; ends in Complete.
    Completing = 16,
    /// Wait: the batch is complete; Reset for the next one.
    Complete = 17,
}

impl PackMlState {
    /// Every state, in PackTags order.
    pub const ALL: [PackMlState; 17] = [
        PackMlState::Clearing,
        PackMlState::Stopped,
        PackMlState::Starting,
        PackMlState::Idle,
        PackMlState::Suspended,
        PackMlState::Execute,
        PackMlState::Stopping,
        PackMlState::Aborting,
        PackMlState::Aborted,
        PackMlState::Holding,
        PackMlState::Held,
        PackMlState::Unholding,
        PackMlState::Suspending,
        PackMlState::Unsuspending,
        PackMlState::Resetting,
        PackMlState::Completing,
        PackMlState::Complete,
    ];

    /// The PackTags `StateCurrent` number.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// From the register value; `None` for 0 (undefined) and unknown values.
    pub fn from_code(code: u16) -> Option<Self> {
        PackMlState::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Acting states do work and then end with a state-complete event.
    pub fn is_acting(self) -> bool {
        use PackMlState::*;
        matches!(
            self,
            Clearing
                | Starting
                | Stopping
                | Aborting
                | Holding
                | Unholding
                | Suspending
                | Unsuspending
                | Resetting
                | Completing
        )
    }

    /// The name as PackML writes it.
    pub fn name(self) -> &'static str {
        use PackMlState::*;
        match self {
            Clearing => "Clearing",
            Stopped => "Stopped",
            Starting => "Starting",
            Idle => "Idle",
            Suspended => "Suspended",
            Execute => "Execute",
            Stopping => "Stopping",
            Aborting => "Aborting",
            Aborted => "Aborted",
            Holding => "Holding",
            Held => "Held",
            Unholding => "Unholding",
            Suspending => "Suspending",
            Unsuspending => "Unsuspending",
            Resetting => "Resetting",
            Completing => "Completing",
            Complete => "Complete",
        }
    }
}

impl std::fmt::Display for PackMlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
/// The Modbus implementation uses plain blocking I/O (a `std` TCP socket, a
/// `serialport` port) with no runtime, so callers stay on plain threads, as the
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

    /// The trigger counter and the PackML state together, in as few round trips as
    /// the transport allows (the line's polling call). Default: the two calls.
    fn poll(&mut self) -> Result<(u32, Option<PackMlState>), Error> {
        Ok((self.trigger_counter()?, self.state()?))
    }

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
