//! The [`Printer`] trait every coding printer driver implements, its data types, and
//! the protocol modules (Zebra ZPL, Videojet/Zipher text, Markem-Imaje binary).
//!
//! Owns: the host-facing printer API and the shared twin state ([`TwinState`]) that
//! each protocol's device-side session drives.
//! Does not own: GS1 encoding (the caller hands over a finished element string) nor
//! when to print (the line's trigger decides; drivers only load data ahead of it).

pub mod markem;
pub mod videojet;
pub mod zpl;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Error;

/// One unit's print data, loaded into the printer ahead of the unit reaching it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrintItem {
    /// Line sequence number of the unit this print belongs to.
    pub unit: u64,
    /// GS1 element string for the DataMatrix, without the leading FNC1, with ASCII GS
    /// (0x1D) after each variable-length field that is not last.
    pub element_string: String,
    /// Named variable fields for printers that print job fields (e.g. `SERIAL`,
    /// `LOT`, `EXPIRY`). Names are the printer job's field names. When empty, text
    /// protocol printers receive one field named by their `code_field` setting that
    /// carries `element_string`.
    pub fields: Vec<(String, String)>,
}

/// What the printer is doing, as far as its protocol tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrinterState {
    /// Ready to print (or printing) and not faulted.
    Ready,
    /// Paused or not started by the operator; will not print.
    Paused,
    /// A fault stops printing (see [`PrinterStatus::faults`]).
    Faulted,
}

/// One active fault or warning reported by a printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterFault {
    /// Protocol-specific code (a flag name for ZPL, a number for the others).
    pub code: String,
    /// Human-readable description.
    pub text: String,
}

/// A snapshot of printer status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterStatus {
    /// Overall state.
    pub state: PrinterState,
    /// Active faults; empty when `state` is `Ready`.
    pub faults: Vec<PrinterFault>,
    /// Prints loaded but not yet printed, when the protocol reports it.
    pub queued: Option<u32>,
    /// Prints completed since the driver connected (see [`Printer::printed_count`]).
    pub printed: u64,
}

/// A coding printer: select the job, keep its buffer filled ahead of the line, count
/// prints, report faults.
///
/// # Blocking by design
/// Every method blocks until the printer answered or the driver's timeout elapsed.
/// The linectl pipeline runs one thread per device stage and uses tokio only at I/O
/// edges, so a blocking API is the simple one: the printer drivers use std TCP or a
/// `serialport` port with read timeouts, no runtime at all. A method never blocks
/// longer than the timeout given at connect time (times the number of round trips
/// it needs, which each method documents as "one" unless stated).
///
/// # Errors
/// Every error has a [`kind`](crate::Error::kind): `Timeout` (no answer), `Transport`
/// (link down: reconnect by building a new driver), `DeviceFault` (the printer
/// refused: NAK, `ERR`, or it is faulted), `Protocol` (garbage, bad checksum,
/// oversize reply), `Config` (data that cannot be encoded for this printer, e.g. a
/// ZPL control character in a field). No method panics on anything the printer sends.
///
/// # Counting
/// [`printed_count`](Printer::printed_count) is monotonic for the lifetime of the
/// driver and counts prints of data loaded through this driver. Printers with a
/// per-print acknowledgement (Markem-Imaje, Videojet asynchronous status) count
/// exactly; ZPL has none, so the Zebra driver derives the count from `~HS` (labels
/// sent minus formats still buffered minus labels remaining in the batch).
///
/// # Buffering ahead
/// [`load`](Printer::load) sends data for units that have not reached the printer
/// yet. The caller keeps at most [`buffer_depth`](Printer::buffer_depth) prints
/// outstanding (loaded minus printed) so the printer never prints stale data after a
/// line stop; after a stop the caller calls [`clear`](Printer::clear).
pub trait Printer: Send {
    /// Device description (`kind@address`) used in logs and errors.
    fn describe(&self) -> &str;

    /// Select the job (message, template or stored format) that subsequent loads fill.
    ///
    /// For ZPL the job is the name of a template registered with the driver; for the
    /// Videojet and Markem-Imaje printers it is the job name stored on the printer.
    /// One round trip. Fails with `DeviceFault` when the printer does not know the job.
    fn select_job(&mut self, job: &str) -> Result<(), Error>;

    /// Load the next print(s) into the printer's buffer, in print order.
    ///
    /// Each item is acknowledged before the next is sent where the protocol has an
    /// acknowledgement (one round trip per item). On error, items before the failing
    /// one are loaded; the error says which (see the message) and the caller must
    /// [`clear`](Printer::clear) before retrying so no unit gets two prints.
    fn load(&mut self, items: &[PrintItem]) -> Result<(), Error>;

    /// Discard every loaded print that has not been printed yet.
    fn clear(&mut self) -> Result<(), Error>;

    /// Prints completed since connect (monotonic). May poll the printer.
    fn printed_count(&mut self) -> Result<u64, Error>;

    /// Current state, faults and queue depth. One round trip.
    fn status(&mut self) -> Result<PrinterStatus, Error>;

    /// How many prints this printer can hold ahead of the line.
    fn buffer_depth(&self) -> usize;
}

/// A print the twin "printed": the job and the fields it printed (ZPL puts the
/// DataMatrix element string in a field named `DM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintedRecord {
    /// Selected job / template at print time.
    pub job: String,
    /// Printed variable data.
    pub fields: Vec<(String, String)>,
}

/// State shared by a printer twin (device side) and whoever drives it (tests, hil-sim).
#[derive(Debug, Default)]
pub struct TwinInner {
    /// Known job names; empty means every job name is accepted.
    pub jobs: Vec<String>,
    /// Selected job.
    pub job: Option<String>,
    /// Loaded prints waiting for a trigger, in order.
    pub queue: VecDeque<Vec<(String, String)>>,
    /// Everything printed so far.
    pub printed: Vec<PrintedRecord>,
    /// Active faults as (numeric code, text); any fault refuses loads and prints.
    pub faults: Vec<(u16, String)>,
    /// Paused by the operator.
    pub paused: bool,
    /// Maximum queued prints; loads beyond are refused.
    pub capacity: usize,
    /// Print counter values not yet reported asynchronously (for protocols with a
    /// per-print acknowledgement), one entry per print.
    pub unreported: VecDeque<u64>,
    /// Times the host cleared the print buffer.
    pub clears: u64,
    /// How long the Videojet and Markem-Imaje twins take to take each loaded print
    /// before they acknowledge it (zero: at once). A slow printer on the wall clock:
    /// codes reach it later than the line needs them.
    pub load_delay: std::time::Duration,
}

/// Handle to a printer twin's state: cheap to clone, shared with its sessions.
#[derive(Debug, Clone)]
pub struct TwinState(Arc<Mutex<TwinInner>>);

impl Default for TwinState {
    fn default() -> Self {
        Self::new(64)
    }
}

impl TwinState {
    /// A ready twin holding up to `capacity` queued prints.
    pub fn new(capacity: usize) -> Self {
        TwinState(Arc::new(Mutex::new(TwinInner {
            capacity,
            ..TwinInner::default()
        })))
    }

    /// Lock the state (recovering from a poisoned lock: the data stays usable).
    pub fn lock(&self) -> MutexGuard<'_, TwinInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// "Print" the next queued item, as the trigger of a unit would. Returns what was
    /// printed, or `None` when the queue is empty, the twin is paused or faulted.
    pub fn print_one(&self) -> Option<PrintedRecord> {
        let mut s = self.lock();
        if s.paused || !s.faults.is_empty() {
            return None;
        }
        let fields = s.queue.pop_front()?;
        let rec = PrintedRecord {
            job: s.job.clone().unwrap_or_default(),
            fields,
        };
        s.printed.push(rec.clone());
        let n = s.printed.len() as u64;
        s.unreported.push_back(n);
        Some(rec)
    }

    /// Number of prints made.
    pub fn printed_count(&self) -> u64 {
        self.lock().printed.len() as u64
    }

    /// Number of prints loaded and waiting.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Raise a fault (code, text); the twin refuses loads and prints until cleared.
    pub fn set_fault(&self, code: u16, text: &str) {
        self.lock().faults.push((code, text.to_string()));
    }

    /// Clear all faults.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Restrict the accepted job names.
    pub fn set_jobs(&self, jobs: &[&str]) {
        self.lock().jobs = jobs.iter().map(|s| s.to_string()).collect();
    }

    /// Drop every queued print, as the host's "clear buffer" command does.
    pub fn clear_queue(&self) {
        let mut s = self.lock();
        s.queue.clear();
        s.clears += 1;
    }

    pub(crate) fn select(&self, job: &str) -> bool {
        let mut s = self.lock();
        if !s.jobs.is_empty() && !s.jobs.iter().any(|j| j == job) {
            return false;
        }
        s.job = Some(job.to_string());
        s.queue.clear();
        true
    }

    /// Queue one print; `Err(reason)` when faulted or full.
    pub(crate) fn enqueue(&self, fields: Vec<(String, String)>) -> Result<(), &'static str> {
        let delay = self.lock().load_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut s = self.lock();
        if !s.faults.is_empty() {
            return Err("printer faulted");
        }
        if s.queue.len() >= s.capacity {
            return Err("print buffer full");
        }
        s.queue.push_back(fields);
        Ok(())
    }
}

/// Fields to send for an item: its own fields, or `code_field` = element string.
pub(crate) fn item_fields_iter<'a>(
    item: &'a PrintItem,
    code_field: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    let single = item
        .fields
        .is_empty()
        .then_some((code_field, item.element_string.as_str()));
    single
        .into_iter()
        .chain(item.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}
