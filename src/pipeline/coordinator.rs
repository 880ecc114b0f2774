//! The coordinator: the one thread that knows the line. It tracks every unit from the
//! PLC count to its verdict (the code loaded for it, when it was counted, its
//! deadline), verifies each frame outcome against the code printed for the unit,
//! sends verdicts to the PLC, watches the PLC, printer and camera counts for drift,
//! runs the PackML machine (batch start checks, completion, faults to Held with the
//! reason, re-synchronisation on Unhold) and keeps the status snapshot. It owns no
//! device and no storage: it talks to the stage threads through channels.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use linectl_drivers::{PackMlCommand, PackMlState, Verdict as PlcVerdict};

use super::recorder::{Durable, Rec};
use super::slots::UnitSlots;
use super::stages::{Ctx, Loaded, PlcCmd, PlcEv, PrinterCmd, PrinterEv, VisionEv};
use super::wait::{Waiter, Wake, reply};
use super::{BatchOrder, LineCommand, LineConfig, LineError, StatusCell, UnitRecord, UnitSerial};
use crate::clock::Micros;
use crate::gs1::Gs1Code;
use crate::packml::{Command, Machine, Severity, State, StopReason};
use crate::vision::pool::FrameOutcome;
use crate::vision::verify::{Verdict, Verifier, VerifyConfig};

/// Everything the coordinator hears.
pub(crate) enum Ev {
    Plc(PlcEv),
    Printer(PrinterEv),
    Vision(VisionEv),
    Command(LineCommand, Sender<Result<(), LineError>>),
    Durable(Durable),
    JournalFailed(String),
    Shutdown,
}

/// One unit of the running batch.
struct Slot {
    serial: String,
    code: Option<Gs1Code>,
    frame_at: Option<Micros>,
    /// When the PLC decides about the unit at the reject station.
    due: Option<Micros>,
    /// A verdict was chosen.
    decided: bool,
    /// A pass waiting for the PLC to confirm the write (grade read).
    awaiting: Option<Option<char>>,
}

impl Slot {
    /// Decided and not waiting for the PLC: the unit's state may go.
    fn finished(&self) -> bool {
        self.decided && self.awaiting.is_none()
    }
}

struct RunBatch {
    order: BatchOrder,
    /// The order's lot and expiry, shared with every unit's record (no copy per unit).
    lot: Arc<str>,
    expiry: Arc<str>,
    first_unit: u64,
    last_unit: u64,
    /// Units by number (a ring allocated at batch start: no allocation per unit).
    slots: UnitSlots<Slot>,
    /// Units counted and waiting for a verdict, with their deadline.
    pending: VecDeque<(u64, Micros)>,
    loaded_upto: u64,
    started_plc: bool,
    /// Printer count that corresponds to "no unit of this batch printed yet" (moved
    /// on re-synchronisation).
    printer_base: Option<u64>,
    /// Unit count at which `printer_base` was taken.
    unit_base: u64,
    /// The last unit without a frame and how many units in a row had none up to it.
    missing_run: (u64, u32),
}

pub(crate) struct Coordinator {
    cfg: LineConfig,
    ctx: Ctx,
    status: StatusCell,
    plc: Sender<PlcCmd>,
    prn: Sender<PrinterCmd>,
    rec: Sender<Rec>,
    observer: Option<Sender<UnitRecord>>,
    /// Elements of the codes of finalised units, reused to parse the next loaded codes.
    free_codes: Vec<Vec<crate::gs1::Element>>,
    machine: Machine,
    verifier: Verifier,
    batch: Option<RunBatch>,
    /// PLC unit count (absolute) and its history for drift checks.
    plc_total: Option<u64>,
    history: VecDeque<(Micros, u64)>,
    plc_state: Option<PackMlState>,
    printed: Option<(u64, Micros)>,
    printer_fault: Option<String>,
    links: super::Links,
    next_check: Micros,
    /// Pixel buffers back to the camera thread.
    spares: Sender<Vec<u8>>,
    /// Loaded lists done with, back to the printer thread (their strings reused).
    loaded_spares: Sender<Vec<super::stages::Loaded>>,
    /// The frame of the outcome being handled: kept if its unit is rejected now.
    frame_in_hand: Option<(u64, crate::vision::GreyFrame)>,
}

const CHECK_EVERY: Duration = Duration::from_millis(20);
/// PLC counts kept for the drift checks.
const HISTORY: usize = 4096;
const IDLE_CHECK_EVERY: Duration = Duration::from_millis(100);

impl Coordinator {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: LineConfig,
        ctx: Ctx,
        status: StatusCell,
        plc: Sender<PlcCmd>,
        prn: Sender<PrinterCmd>,
        rec: Sender<Rec>,
        observer: Option<Sender<UnitRecord>>,
        spares: Sender<Vec<u8>>,
        loaded_spares: Sender<Vec<super::stages::Loaded>>,
    ) -> Coordinator {
        let verifier = Verifier::new(VerifyConfig {
            min_grade: cfg.min_grade,
            batch_size: 100_000,
        });
        let next_check = ctx.clock.now();
        Coordinator {
            cfg,
            ctx,
            status,
            plc,
            prn,
            rec,
            observer,
            free_codes: Vec::new(),
            machine: Machine::new(),
            verifier,
            batch: None,
            plc_total: None,
            // Room for its bound up front: it never grows while the line runs.
            history: VecDeque::with_capacity(HISTORY + 1),
            plc_state: None,
            printed: None,
            printer_fault: None,
            links: super::Links::default(),
            next_check,
            spares,
            loaded_spares,
            frame_in_hand: None,
        }
    }

    pub(crate) fn run(mut self, rx: Receiver<Ev>) {
        let mut waiter: Waiter = self.ctx.waiter();
        self.publish();
        loop {
            self.on_time();
            match self.next_alarm() {
                Some(t) => waiter.set_alarm(t),
                None => waiter.clear_alarm(),
            }
            let ev = match waiter.wait(&rx) {
                Wake::Msg(m) => m,
                Wake::Alarm => continue,
                Wake::Closed => break,
            };
            if !self.handle(ev) {
                break;
            }
            while let Some(ev) = waiter.try_next(&rx) {
                if !self.handle(ev) {
                    waiter.clear_alarm();
                    self.ctx.activity.end();
                    return;
                }
            }
            self.publish();
        }
        waiter.clear_alarm();
        self.ctx.activity.end();
    }

    fn next_alarm(&self) -> Option<Micros> {
        let due = self
            .batch
            .as_ref()
            .and_then(|b| b.pending.front().map(|p| p.1));
        // The check also keeps the liveness stamp fresh (the daemon's watchdog).
        let check = Some(self.next_check);
        match (due, check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn send_plc(&self, c: PlcCmd) {
        self.ctx.send(&self.plc, c);
    }
    fn send_prn(&self, c: PrinterCmd) {
        self.ctx.send(&self.prn, c);
    }

    fn publish(&self) {
        let state = self.machine.state();
        let reason = self.machine.stop_reason();
        let links = self.links.clone();
        // Only what changed is copied (no allocation while the line runs steadily).
        self.status.update(|s| {
            if s.state != state.name() {
                s.state = state.name().to_string();
            }
            if s.stop_reason.as_ref() != reason {
                s.stop_reason = reason.cloned();
            }
            s.links = links;
        });
    }

    fn fault(&mut self, code: &str, message: String) {
        let before = self.machine.state();
        let after = self.machine.fault(
            Severity::Hold,
            StopReason {
                code: code.to_string(),
                message: message.clone(),
            },
        );
        if before != after {
            tracing::warn!(reason = code, detail = %message, state = %after, "line fault");
            if after == State::Holding {
                self.send_plc(PlcCmd::PackMl(PackMlCommand::Hold));
                self.machine.state_complete();
            } else if after == State::Stopping {
                self.stop_batch();
            }
        }
        self.publish();
    }

    /// Deadlines and drift checks that fall due.
    fn on_time(&mut self) {
        let now = self.ctx.clock.now();
        let mut expired = Vec::new();
        if let Some(b) = self.batch.as_mut() {
            while let Some(&(unit, due)) = b.pending.front() {
                if due > now {
                    break;
                }
                b.pending.pop_front();
                if b.slots.get(unit).is_some_and(|s| s.decided) {
                    continue;
                }
                expired.push(unit);
            }
        }
        for unit in expired {
            let seen_frame = self
                .batch
                .as_ref()
                .and_then(|b| b.slots.get(unit))
                .is_some_and(|s| s.frame_at.is_some());
            let (code, detail) = if seen_frame {
                ("late", "no verdict by the deadline".to_string())
            } else {
                (
                    "missing-frame",
                    "no frame for the unit by its deadline".to_string(),
                )
            };
            self.decide_reject(unit, code, detail, None, None);
            if !seen_frame && let Some(b) = self.batch.as_mut() {
                let run = if b.missing_run.0 + 1 == unit {
                    b.missing_run.1 + 1
                } else {
                    1
                };
                b.missing_run = (unit, run);
                if run >= self.cfg.max_missing_frames {
                    let n = run;
                    self.fault(
                        "camera-stalled",
                        format!("no frame for {n} units in a row (last unit {unit})"),
                    );
                }
            }
        }
        if now >= self.next_check {
            let every = if self.machine.state() == State::Execute {
                CHECK_EVERY
            } else {
                IDLE_CHECK_EVERY
            };
            self.next_check = now.plus(every);
            self.check_drift(now);
            self.status.update(|s| s.alive_us = now.0);
        }
        self.maybe_complete();
    }

    /// PLC count as of `t` (the last one seen at or before it).
    fn plc_at(&self, t: Micros) -> Option<u64> {
        self.history
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|(_, n)| *n)
    }

    fn check_drift(&mut self, now: Micros) {
        if self.machine.state() != State::Execute {
            return;
        }
        let Some(b) = self.batch.as_ref() else {
            return;
        };
        let (Some(base), Some((printed, at))) = (b.printer_base, self.printed) else {
            return;
        };
        let settle = self.cfg.count_settle;
        if now.since(at) > settle * 4 {
            // The printer count is stale: the link check reports that.
            return;
        }
        let probe = Micros(at.0.saturating_sub(settle.as_micros() as u64));
        let Some(plc_then) = self.plc_at(probe) else {
            return;
        };
        let units = plc_then.saturating_sub(b.unit_base);
        let prints = printed.saturating_sub(base);
        let plc_now = self.plc_total.unwrap_or(0).saturating_sub(b.unit_base);
        if prints < units {
            self.fault(
                "count-drift",
                format!(
                    "printer behind the PLC: {prints} prints for {units} units counted (PLC {plc_then}, printer {printed})"
                ),
            );
        } else if prints > plc_now + 1 {
            self.fault(
                "count-drift",
                format!("printer ahead of the PLC: {prints} prints for {plc_now} units counted"),
            );
        }
    }

    fn maybe_complete(&mut self) {
        let done = self.batch.as_ref().is_some_and(|b| {
            let counted = self.plc_total.unwrap_or(0) >= b.last_unit;
            counted
                && b.pending.is_empty()
                && b.slots
                    .iter()
                    .filter(|(u, _)| *u <= b.last_unit)
                    .all(|(_, s)| s.finished())
        });
        match self.machine.state() {
            State::Execute => {
                if self
                    .batch
                    .as_ref()
                    .is_some_and(|b| self.plc_total.unwrap_or(0) >= b.last_unit)
                {
                    self.machine.complete();
                    self.send_plc(PlcCmd::PackMl(PackMlCommand::Stop));
                    self.publish();
                }
                if done {
                    self.finish_batch();
                }
            }
            State::Completing if done => self.finish_batch(),
            _ => {}
        }
    }

    fn finish_batch(&mut self) {
        if self.machine.state() == State::Execute {
            self.machine.complete();
        }
        self.end_batch_records();
        self.send_prn(PrinterCmd::End);
        self.machine.state_complete();
        tracing::info!("batch complete");
        self.publish();
    }

    /// Codes loaded but never on a unit are recorded as unprinted; the allocation ends.
    fn end_batch_records(&mut self) {
        if let Some(b) = self.batch.as_mut() {
            let counted = self.plc_total.unwrap_or(0);
            let unprinted: Vec<String> = b
                .slots
                .take_from(counted + 1)
                .into_iter()
                .map(|(_, s)| s.serial)
                .collect();
            if !unprinted.is_empty() {
                let lot = b.order.lot.clone();
                self.ctx.send(
                    &self.rec,
                    Rec::Unprinted {
                        serials: unprinted,
                        lot,
                    },
                );
            }
        }
    }

    fn stop_batch(&mut self) {
        self.send_plc(PlcCmd::PackMl(PackMlCommand::Stop));
        if self.batch.is_some() {
            self.end_batch_records();
            self.send_prn(PrinterCmd::End);
        }
        self.machine.state_complete();
        self.publish();
    }

    fn handle(&mut self, ev: Ev) -> bool {
        match ev {
            Ev::Shutdown => return false,
            Ev::Command(c, reply) => {
                let r = self.command(c);
                let _ = reply.send(r);
            }
            Ev::Plc(e) => self.on_plc(e),
            Ev::Printer(e) => self.on_printer(e),
            Ev::Vision(e) => self.on_vision(e),
            Ev::Durable(d) => self.status.update(|s| {
                s.commissioned += d.commissioned;
                s.journaled += d.events;
            }),
            Ev::JournalFailed(e) => {
                self.machine.fault(
                    Severity::Abort,
                    StopReason {
                        code: "journal".into(),
                        message: e,
                    },
                );
                self.send_plc(PlcCmd::PackMl(PackMlCommand::Abort));
                self.machine.state_complete();
            }
        }
        true
    }

    fn not_allowed(&self, c: &LineCommand) -> LineError {
        LineError::NotAllowed {
            command: format!("{c:?}"),
            state: self.machine.state().name().to_string(),
        }
    }

    fn command(&mut self, c: LineCommand) -> Result<(), LineError> {
        let r = match &c {
            LineCommand::Reset => {
                self.machine
                    .command(Command::Reset)
                    .map_err(|_| self.not_allowed(&c))?;
                self.send_plc(PlcCmd::PackMl(PackMlCommand::Reset));
                self.machine.state_complete();
                self.batch = None;
                self.status.update(|s| {
                    s.batch = None;
                });
                Ok(())
            }
            LineCommand::StartBatch(order) => self.start_batch(order.clone()),
            LineCommand::Hold => {
                self.machine
                    .command(Command::Hold)
                    .map_err(|_| self.not_allowed(&c))?;
                self.send_plc(PlcCmd::PackMl(PackMlCommand::Hold));
                self.machine.state_complete();
                Ok(())
            }
            LineCommand::Unhold => self.unhold(),
            LineCommand::Stop => {
                self.machine
                    .command(Command::Stop)
                    .map_err(|_| self.not_allowed(&c))?;
                self.stop_batch();
                Ok(())
            }
            LineCommand::Abort => {
                self.machine
                    .command(Command::Abort)
                    .map_err(|_| self.not_allowed(&c))?;
                self.send_plc(PlcCmd::PackMl(PackMlCommand::Abort));
                if self.batch.is_some() {
                    self.end_batch_records();
                    self.send_prn(PrinterCmd::End);
                }
                self.machine.state_complete();
                Ok(())
            }
            LineCommand::Clear => {
                self.machine
                    .command(Command::Clear)
                    .map_err(|_| self.not_allowed(&c))?;
                self.send_plc(PlcCmd::PackMl(PackMlCommand::Clear));
                self.machine.state_complete();
                Ok(())
            }
        };
        self.publish();
        r
    }

    /// Every device link is up (a start or resume needs all three).
    fn devices_ready(&self) -> Result<(), LineError> {
        for (up, name) in [
            (self.links.plc, "PLC"),
            (self.links.printer, "printer"),
            (self.links.camera, "camera"),
        ] {
            if !up {
                return Err(LineError::StartRefused(format!("{name} not connected")));
            }
        }
        Ok(())
    }

    fn start_batch(&mut self, order: BatchOrder) -> Result<(), LineError> {
        if self.machine.state() != State::Idle {
            return Err(self.not_allowed(&LineCommand::StartBatch(order)));
        }
        if order.quantity == 0 {
            return Err(LineError::StartRefused(
                "quantity must be at least 1".into(),
            ));
        }
        self.devices_ready()?;
        let Some(total) = self.plc_total else {
            return Err(LineError::StartRefused("no PLC count read yet".into()));
        };
        let first_unit = total + 1;
        let (tx, rx) = bounded(1);
        self.send_prn(PrinterCmd::Begin {
            order: order.clone(),
            first_unit,
            reply: tx,
        });
        match reply(&rx, Duration::from_secs(30)) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(LineError::StartRefused(e)),
            None => {
                return Err(LineError::StartRefused(
                    "printer stage did not answer".into(),
                ));
            }
        }
        self.verifier.new_batch();
        let last_unit = first_unit + order.quantity - 1;
        self.batch = Some(RunBatch {
            order: order.clone(),
            lot: Arc::from(order.lot.as_str()),
            expiry: Arc::from(order.expiry.as_str()),
            first_unit,
            last_unit,
            slots: UnitSlots::new(),
            pending: VecDeque::new(),
            loaded_upto: first_unit - 1,
            started_plc: false,
            printer_base: self.printed.map(|p| p.0).or(Some(0)),
            unit_base: total,
            missing_run: (0, 0),
        });
        self.status.update(|s| {
            s.batch = Some(order.clone());
            s.triggered = 0;
            s.loaded = 0;
            s.printed = 0;
            s.late_codes = 0;
            s.inspected = 0;
            s.passed = 0;
            s.rejected.clear();
        });
        let _ = self.machine.command(Command::Start);
        let ahead = u64::from(self.cfg.buffer_ahead);
        self.send_prn(PrinterCmd::LoadUpTo(first_unit + ahead - 1));
        tracing::info!(lot = %order.lot, quantity = order.quantity, first_unit, "batch starting");
        Ok(())
    }

    fn unhold(&mut self) -> Result<(), LineError> {
        if self.machine.state() != State::Held {
            return Err(self.not_allowed(&LineCommand::Unhold));
        }
        self.devices_ready()?;
        if let Some(f) = &self.printer_fault {
            return Err(LineError::StartRefused(format!("printer faulted: {f}")));
        }
        if self.batch.is_some() {
            // Codes loaded ahead are dropped with the printer's buffer; units counted
            // so far are aligned with the prints so far.
            self.end_batch_records();
            let counted = self.plc_total.unwrap_or(0);
            let (tx, rx) = bounded(1);
            self.send_prn(PrinterCmd::Reload {
                next_unit: counted + 1,
                reply: tx,
            });
            match reply(&rx, Duration::from_secs(30)) {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(LineError::StartRefused(format!("printer: {e}"))),
                None => {
                    return Err(LineError::StartRefused(
                        "printer stage did not answer".into(),
                    ));
                }
            }
            let ahead = u64::from(self.cfg.buffer_ahead);
            let printed = self.printed.map(|p| p.0).unwrap_or(0);
            if let Some(b) = self.batch.as_mut() {
                b.loaded_upto = counted;
                b.printer_base = Some(printed);
                b.unit_base = counted;
                b.missing_run = (0, 0);
                b.started_plc = false;
                let to = (counted + ahead).min(b.last_unit);
                self.ctx.send(&self.prn, PrinterCmd::LoadUpTo(to));
            }
        }
        let _ = self.machine.command(Command::Unhold);
        if self
            .batch
            .as_ref()
            .is_none_or(|b| b.loaded_upto >= b.last_unit)
        {
            self.send_plc(PlcCmd::PackMl(PackMlCommand::Unhold));
        }
        self.publish();
        Ok(())
    }

    fn on_plc(&mut self, e: PlcEv) {
        match e {
            PlcEv::Link(up, why) => {
                self.links.plc = up;
                if !up {
                    self.fault("plc-link", format!("PLC connection lost: {why}"));
                }
            }
            PlcEv::State(s) => {
                self.plc_state = s;
                match (self.machine.state(), s) {
                    (State::Starting | State::Unholding, Some(PackMlState::Execute)) => {
                        self.machine.state_complete();
                    }
                    (State::Execute, Some(other)) if other != PackMlState::Execute => {
                        self.fault(
                            "plc-state",
                            format!("the PLC left Execute: it reports {}", other.name()),
                        );
                    }
                    _ => {}
                }
            }
            PlcEv::Count { total, at } => {
                let prev = self.plc_total.unwrap_or(total);
                self.plc_total = Some(total);
                self.history.push_back((at, total));
                while self.history.len() > HISTORY {
                    self.history.pop_front();
                }
                if let Some(b) = self.batch.as_mut() {
                    // The PLC counted the unit up to one poll before we read the count:
                    // its deadline is reckoned from the earliest possible trigger, so a
                    // pass we call "in time" is always in time for the PLC.
                    let triggered = Micros(at.0.saturating_sub(self.cfg.poll.as_micros() as u64));
                    let due = triggered
                        .plus(self.cfg.print_to_camera)
                        .plus(self.cfg.verdict_deadline);
                    for unit in prev + 1..=total {
                        if unit < b.first_unit {
                            continue;
                        }
                        if let Some(s) = b.slots.get_mut(unit) {
                            s.due = Some(due);
                        }
                        b.pending.push_back((unit, due));
                    }
                    let ahead = u64::from(self.cfg.buffer_ahead);
                    let to = (total + ahead).min(b.last_unit);
                    let counted = total.saturating_sub(b.first_unit - 1).min(b.order.quantity);
                    self.status.update(|s| s.triggered = counted);
                    if self.machine.state() == State::Execute {
                        self.ctx.send(&self.prn, PrinterCmd::LoadUpTo(to));
                    }
                }
            }
            PlcEv::VerdictWritten { unit, at } => {
                let frame_at = self
                    .batch
                    .as_ref()
                    .and_then(|b| b.slots.get(unit))
                    .and_then(|s| s.frame_at);
                if let Some(f) = frame_at {
                    let us = at.since(f).as_micros() as u64;
                    self.status.update(|s| s.latency.record(us));
                }
                self.confirm(unit, Some(at), None);
            }
            PlcEv::VerdictFailed { unit, error } => {
                tracing::warn!(unit, error = %error, "verdict not written: the PLC rejects the unit");
                self.confirm(unit, None, Some(error));
            }
        }
    }

    fn on_printer(&mut self, e: PrinterEv) {
        match e {
            PrinterEv::Link(up, why) => {
                self.links.printer = up;
                if !up {
                    self.fault("printer-link", format!("printer connection lost: {why}"));
                }
            }
            PrinterEv::Loaded(items) => self.on_loaded(items),
            PrinterEv::LoadFailed(why) => self.fault("printer-load", why),
            PrinterEv::Count { printed, at } => {
                self.printed = Some((printed, at));
                if let Some(b) = self.batch.as_ref()
                    && let Some(base) = b.printer_base
                {
                    let n =
                        printed.saturating_sub(base) + b.unit_base.saturating_sub(b.first_unit - 1);
                    self.status.update(|s| s.printed = n);
                }
            }
            PrinterEv::Fault(f) => {
                self.printer_fault = f.clone();
                if let Some(f) = f {
                    self.fault("printer-fault", format!("printer fault: {f}"));
                }
            }
            PrinterEv::PoolLevel(n) => self.status.update(|s| s.pool_available = Some(n)),
        }
    }

    fn on_loaded(&mut self, mut items: Vec<Loaded>) {
        let Some(b) = self.batch.as_mut() else {
            return;
        };
        let n = items.len() as u64;
        let mut late: Vec<String> = Vec::new();
        for l in items.iter_mut() {
            b.loaded_upto = b.loaded_upto.max(l.unit);
            if b.slots.get(l.unit).is_some_and(|s| s.decided) {
                // The unit passed the printer and was decided (rejected: no frame, or
                // no code, by its deadline) before its code reached the printer. The
                // code belongs to no unit: it is recorded as never applied, and the
                // unit's outcome stands. Anything the printer now puts on a later unit
                // is that unit's wrong code (rejected), and the count drift holds the
                // line until an Unhold reloads the printer.
                tracing::warn!(unit = l.unit, "code loaded after its unit was decided");
                late.push(std::mem::take(&mut l.serial));
                continue;
            }
            let mut code = None;
            let mut spare = self.free_codes.pop().unwrap_or_default();
            if let Err(e) =
                Gs1Code::parse_element_string_into(&l.element_string, &mut code, &mut spare)
            {
                tracing::error!(unit = l.unit, error = %e, "loaded code does not parse");
                self.free_codes.push(spare);
            }
            // A unit the PLC counted before its code arrived keeps the deadline its
            // count gave it: a pass written after it is late, never "in time".
            let counted = self.plc_total.is_some_and(|t| l.unit <= t);
            let due = if counted {
                b.pending
                    .iter()
                    .find(|(u, _)| *u == l.unit)
                    .map(|&(_, d)| d)
            } else {
                None
            };
            b.slots.insert(
                l.unit,
                Slot {
                    serial: std::mem::take(&mut l.serial),
                    code,
                    frame_at: None,
                    due,
                    decided: false,
                    awaiting: None,
                },
                Slot::finished,
            );
        }
        if !late.is_empty() {
            let k = late.len() as u64;
            self.status.update(|s| s.late_codes += k);
            let lot = b.order.lot.clone();
            self.ctx
                .send(&self.rec, Rec::Unprinted { serials: late, lot });
        }
        // The list and its element strings go back to the printer thread for reuse.
        let _ = self.loaded_spares.try_send(items);
        self.status.update(|s| s.loaded += n);
        let ahead = u64::from(self.cfg.buffer_ahead);
        let want = (self.plc_total.unwrap_or(0) + ahead).min(b.last_unit);
        if !b.started_plc && b.loaded_upto >= want {
            b.started_plc = true;
            match self.machine.state() {
                State::Starting => self.send_plc(PlcCmd::PackMl(PackMlCommand::Start)),
                State::Unholding => self.send_plc(PlcCmd::PackMl(PackMlCommand::Unhold)),
                _ => {}
            }
        }
    }

    fn on_vision(&mut self, e: VisionEv) {
        match e {
            VisionEv::Link(up, why) => {
                self.links.camera = up;
                if !up {
                    self.fault("camera-link", format!("camera connection lost: {why}"));
                }
            }
            VisionEv::Outcome {
                unit,
                outcome,
                frame_at,
                decode_time,
                frame,
            } => {
                if let Some(t) = decode_time {
                    self.status
                        .update(|s| s.decode_time.record(t.as_micros() as u64));
                }
                self.frame_in_hand = frame.map(|f| (unit, f));
                self.on_outcome(unit, outcome, frame_at);
                if let Some((_, f)) = self.frame_in_hand.take() {
                    // Not a reject: the buffer goes back to the camera (a full channel,
                    // the camera having spares enough, drops it).
                    let _ = self.spares.try_send(f.into_pixels());
                }
            }
        }
    }

    fn on_outcome(&mut self, unit: u64, outcome: FrameOutcome, frame_at: Micros) {
        let now = self.ctx.clock.now();
        let Some(b) = self.batch.as_mut() else {
            tracing::debug!(unit, "frame outside a batch");
            return;
        };
        if unit < b.first_unit || unit > b.last_unit {
            tracing::debug!(unit, "frame of a unit outside the batch");
            return;
        }
        if self.plc_total.is_some_and(|t| unit > t) {
            self.fault(
                "count-drift",
                format!(
                    "camera ahead of the PLC: frame for unit {unit}, PLC counted {}",
                    self.plc_total.unwrap_or(0)
                ),
            );
        }
        let Some(b) = self.batch.as_mut() else {
            return;
        };
        let due = b.pending.iter().find(|p| p.0 == unit).map(|p| p.1);
        let Some(slot) = b.slots.get_mut(unit) else {
            self.decide_reject(
                unit,
                "no-code",
                "no code was loaded for the unit".into(),
                None,
                Some(frame_at),
            );
            return;
        };
        if slot.decided {
            tracing::debug!(unit, "frame after the unit's verdict: ignored");
            return;
        }
        slot.frame_at = Some(frame_at);
        if due.is_some_and(|d| now >= d) {
            self.decide_reject(
                unit,
                "late",
                "frame came after the deadline".into(),
                None,
                Some(frame_at),
            );
            return;
        }
        let Some(code) = slot.code.as_ref() else {
            self.decide_reject(
                unit,
                "no-code",
                "the loaded code did not parse".into(),
                None,
                Some(frame_at),
            );
            return;
        };
        let verdict = self.verifier.verify(code, &outcome);
        match verdict {
            Verdict::Pass(p) => {
                let grade = Some(p.grade().letter());
                self.verifier.recycle(p);
                self.decide(unit, true, "pass", String::new(), grade, Some(frame_at));
            }
            Verdict::Reject(r) => {
                let grade = match &r {
                    crate::vision::verify::RejectReason::LowGrade { grade, .. } => {
                        Some(grade.letter())
                    }
                    _ => None,
                };
                self.decide_reject(unit, r.code(), r.to_string(), grade, Some(frame_at));
            }
        }
    }

    fn decide_reject(
        &mut self,
        unit: u64,
        code: &'static str,
        detail: String,
        grade: Option<char>,
        frame_at: Option<Micros>,
    ) {
        self.decide(unit, false, code, detail, grade, frame_at);
    }

    fn decide(
        &mut self,
        unit: u64,
        pass: bool,
        code: &'static str,
        detail: String,
        grade: Option<char>,
        frame_at: Option<Micros>,
    ) {
        let Some(b) = self.batch.as_mut() else {
            return;
        };
        self.ctx.send(
            &self.plc,
            PlcCmd::Verdict(
                unit,
                if pass {
                    PlcVerdict::Good
                } else {
                    PlcVerdict::Reject
                },
            ),
        );
        match b.slots.get_mut(unit) {
            Some(s) => {
                s.decided = true;
                if s.frame_at.is_none() {
                    s.frame_at = frame_at;
                }
                if pass {
                    // Commissioned only once the PLC has the pass in time.
                    s.awaiting = Some(grade);
                    return;
                }
            }
            None => {
                b.slots.insert(
                    unit,
                    Slot {
                        serial: String::new(),
                        code: None,
                        frame_at,
                        due: None,
                        decided: true,
                        awaiting: None,
                    },
                    Slot::finished,
                );
            }
        }
        self.finalize(unit, false, code, detail, grade);
    }

    /// The PLC confirmed (or failed) the pass of `unit` at `at`.
    fn confirm(&mut self, unit: u64, written_at: Option<Micros>, error: Option<String>) {
        let Some(b) = self.batch.as_mut() else {
            return;
        };
        let Some(s) = b.slots.get_mut(unit) else {
            return;
        };
        let Some(grade) = s.awaiting.take() else {
            return;
        };
        let due = s.due;
        match (written_at, error) {
            (Some(at), _) if due.is_none_or(|d| at < d) => {
                self.finalize(unit, true, "pass", String::new(), grade);
            }
            (Some(at), _) => self.finalize(
                unit,
                false,
                "late",
                format!(
                    "pass written {} µs after the deadline",
                    at.since(due.unwrap_or(at)).as_micros()
                ),
                grade,
            ),
            (None, e) => self.finalize(
                unit,
                false,
                "verdict-not-written",
                format!("the PLC did not take the pass: {}", e.unwrap_or_default()),
                grade,
            ),
        }
    }

    /// Count, record and publish the unit's final outcome.
    fn finalize(
        &mut self,
        unit: u64,
        pass: bool,
        code: &'static str,
        detail: String,
        grade: Option<char>,
    ) {
        let Some(b) = self.batch.as_mut() else {
            return;
        };
        // The unit is done: its serial goes to the records, its parsed code back to
        // the parser.
        let serial = match b.slots.get_mut(unit) {
            Some(slot) => {
                if let Some(code) = slot.code.take() {
                    self.free_codes.push(code.into_elements());
                }
                Some(std::mem::take(&mut slot.serial)).filter(|s| !s.is_empty())
            }
            None => None,
        };
        let mut frame = None;
        let mut frame_rec = None;
        if !pass {
            tracing::debug!(unit, reason = code, detail = %detail, "unit rejected");
            if let Some((_, f)) = self.frame_in_hand.take_if(|(u, _)| *u == unit) {
                let name = super::frames::FrameStore::name_for(
                    self.ctx.clock.wall_micros(),
                    unit,
                    serial.as_deref(),
                );
                frame_rec = Some(Rec::Frame {
                    name: name.clone(),
                    frame: Some(f),
                });
                frame = Some(name);
            }
        }
        // The observer's copy of the serial is inline (no allocation).
        let observed = match &self.observer {
            Some(_) => serial.as_deref().map(UnitSerial::from),
            None => None,
        };
        if let Some(s) = serial {
            self.ctx.send(
                &self.rec,
                Rec::Unit {
                    serial: s,
                    passed: pass,
                    lot: Arc::clone(&b.lot),
                    expiry: Arc::clone(&b.expiry),
                },
            );
        }
        if let Some(r) = frame_rec {
            self.ctx.send(&self.rec, r);
        }
        self.status.update(|s| {
            s.inspected += 1;
            if pass {
                s.passed += 1;
            } else {
                *s.rejected.entry(code.to_string()).or_insert(0) += 1;
            }
        });
        if let Some(o) = &self.observer {
            let _ = o.send(UnitRecord {
                unit,
                serial: observed,
                verdict: code,
                detail,
                grade,
                latency_us: None,
                frame,
            });
        }
        self.maybe_complete();
    }
}
