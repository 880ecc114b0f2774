//! The device threads: the PLC thread (trigger counter, PackML state, heartbeat,
//! verdict writes), the printer thread (pool allocator, code building, keeping the
//! printer loaded ahead, print counts and faults) and the camera thread (frames,
//! decode on the worker pool with a deadline). Each owns its device and reconnects it
//! through its factory; each reports to the coordinator and decides nothing about the
//! line itself. Device errors are sorted by `kind()`: transport and timeout drop the
//! link (reconnect), device faults are reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use linectl_drivers::{ErrorKind, FrameSource, PackMlCommand, Plc, PrintItem, Printer, Verdict};

use super::coordinator::Ev;
use super::devices::DeviceFactory;
use super::wait::{Waiter, Wake, send};
use super::{BatchOrder, LineConfig};
use crate::clock::{Activity, Clock, Micros};
use crate::market::{CodeTemplate, Market, Product};
use crate::pool::alloc::AllocatorConfig;
use crate::pool::{Pool, SerialState, SharedAllocator, SharedPool};
use crate::vision::pool::{DecodePool, FrameDecoder, PoolConfig};
use crate::vision::{DecodeConfig, GreyFrame};

/// What every stage thread shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) activity: Activity,
    pub(crate) stop: Arc<AtomicBool>,
}

impl Ctx {
    pub(crate) fn new(clock: Arc<dyn Clock>, activity: Activity, stop: Arc<AtomicBool>) -> Ctx {
        Ctx {
            clock,
            activity,
            stop,
        }
    }
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    pub(crate) fn waiter(&self) -> Waiter {
        Waiter::new(self.clock.clone(), self.activity.clone())
    }
    pub(crate) fn send<T>(&self, tx: &Sender<T>, msg: T) -> bool {
        send(&self.activity, tx, msg)
    }
}

fn is_link_loss(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Transport | ErrorKind::Timeout)
}

/// Commands to the PLC thread.
pub(crate) enum PlcCmd {
    /// Write unit's verdict.
    Verdict(u64, Verdict),
    /// Write a PackML command.
    PackMl(PackMlCommand),
}

/// Events from the PLC thread.
#[derive(Debug)]
pub(crate) enum PlcEv {
    /// Link up / down (with the reason).
    Link(bool, String),
    /// The trigger counter, extended to 64 bits, when it changed.
    Count { total: u64, at: Micros },
    /// The PLC's PackML state, when it changed.
    State(Option<linectl_drivers::PackMlState>),
    /// A verdict reached the PLC.
    VerdictWritten { unit: u64, at: Micros },
    /// A verdict could not be written.
    VerdictFailed { unit: u64, error: String },
}

pub(crate) fn plc_thread(
    ctx: Ctx,
    mut factory: DeviceFactory<dyn Plc>,
    rx: Receiver<PlcCmd>,
    ev: Sender<Ev>,
    poll: Duration,
    heartbeat: Duration,
) {
    let mut waiter = ctx.waiter();
    let mut plc: Option<Box<dyn Plc>> = None;
    let mut last_raw: Option<u32> = None;
    let mut total: u64 = 0;
    let mut last_state = None;
    let mut hb: u16 = 0;
    let mut next_tick = ctx.clock.now();
    let mut next_hb = next_tick;
    let mut retry_at = next_tick;
    let drop_link = |plc: &mut Option<Box<dyn Plc>>, why: String| {
        if plc.take().is_some() {
            tracing::warn!(error = %why, "PLC link lost");
            ctx.send(&ev, Ev::Plc(PlcEv::Link(false, why)));
        }
    };
    loop {
        if ctx.stopped() {
            break;
        }
        let now = ctx.clock.now();
        if now >= next_tick {
            if plc.is_none() && now >= retry_at {
                match factory() {
                    Ok(p) => {
                        tracing::info!(plc = p.describe(), "PLC connected");
                        plc = Some(p);
                        last_state = None;
                        ctx.send(&ev, Ev::Plc(PlcEv::Link(true, String::new())));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "PLC connect failed");
                        retry_at = now.plus(Duration::from_millis(100));
                    }
                }
            }
            if let Some(p) = plc.as_mut() {
                let r = super::probe::inside(super::probe::Inside::Driver, || p.poll());
                match r {
                    Ok((raw, state)) => {
                        let delta = match last_raw {
                            Some(l) => u64::from(raw.wrapping_sub(l)),
                            None => u64::from(raw),
                        };
                        last_raw = Some(raw);
                        if delta > 0 || total == 0 && raw == 0 && last_state.is_none() {
                            total += delta;
                            ctx.send(&ev, Ev::Plc(PlcEv::Count { total, at: now }));
                        }
                        if last_state != Some(state) {
                            last_state = Some(state);
                            ctx.send(&ev, Ev::Plc(PlcEv::State(state)));
                        }
                    }
                    Err(e) if is_link_loss(e.kind()) => drop_link(&mut plc, e.to_string()),
                    Err(e) => tracing::warn!(error = %e, "PLC read refused"),
                }
            }
            if now >= next_hb {
                if let Some(p) = plc.as_mut() {
                    hb = hb.wrapping_add(1);
                    if let Err(e) =
                        super::probe::inside(super::probe::Inside::Driver, || p.heartbeat(hb))
                        && is_link_loss(e.kind())
                    {
                        drop_link(&mut plc, e.to_string());
                    }
                }
                next_hb = now.plus(heartbeat);
            }
            next_tick = next_tick.plus(poll).max(now.plus(Duration::from_micros(1)));
        }
        waiter.set_alarm(next_tick);
        let handle = |cmd: PlcCmd, plc: &mut Option<Box<dyn Plc>>| match cmd {
            PlcCmd::Verdict(unit, v) => {
                let r = match plc.as_mut() {
                    Some(p) => super::probe::inside(super::probe::Inside::Driver, || {
                        p.write_verdict(unit, v)
                    }),
                    None => {
                        ctx.send(
                            &ev,
                            Ev::Plc(PlcEv::VerdictFailed {
                                unit,
                                error: "PLC not connected".into(),
                            }),
                        );
                        return;
                    }
                };
                match r {
                    Ok(()) => {
                        ctx.send(
                            &ev,
                            Ev::Plc(PlcEv::VerdictWritten {
                                unit,
                                at: ctx.clock.now(),
                            }),
                        );
                    }
                    Err(e) => {
                        ctx.send(
                            &ev,
                            Ev::Plc(PlcEv::VerdictFailed {
                                unit,
                                error: e.to_string(),
                            }),
                        );
                        if is_link_loss(e.kind()) {
                            drop_link(plc, e.to_string());
                        }
                    }
                }
            }
            PlcCmd::PackMl(c) => {
                if let Some(p) = plc.as_mut()
                    && let Err(e) =
                        super::probe::inside(super::probe::Inside::Driver, || p.command(c))
                {
                    tracing::warn!(error = %e, command = ?c, "PackML command to the PLC failed");
                    if is_link_loss(e.kind()) {
                        drop_link(plc, e.to_string());
                    }
                }
            }
        };
        match waiter.wait(&rx) {
            Wake::Msg(cmd) => {
                handle(cmd, &mut plc);
                while let Some(cmd) = waiter.try_next(&rx) {
                    handle(cmd, &mut plc);
                }
            }
            Wake::Alarm => {}
            Wake::Closed => break,
        }
    }
    waiter.clear_alarm();
    ctx.activity.end();
}

/// Commands to the printer thread.
pub(crate) enum PrinterCmd {
    /// Open the batch: pool coverage, code template, printer ready and empty.
    Begin {
        order: BatchOrder,
        first_unit: u64,
        reply: Sender<Result<(), String>>,
    },
    /// Keep codes loaded for every unit up to this one (absolute unit number).
    LoadUpTo(u64),
    /// Clear the printer's buffer and load again from `next_unit`.
    Reload {
        next_unit: u64,
        reply: Sender<Result<(), String>>,
    },
    /// Close the batch's allocation.
    End,
    /// Final pool states of serials.
    States(Vec<(String, SerialState)>),
}

/// A code loaded for a unit.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) unit: u64,
    pub(crate) serial: String,
    pub(crate) element_string: String,
}

/// Events from the printer thread.
#[derive(Debug)]
pub(crate) enum PrinterEv {
    Link(bool, String),
    Loaded(Vec<Loaded>),
    LoadFailed(String),
    Count { printed: u64, at: Micros },
    Fault(Option<String>),
    PoolLevel(u64),
}

/// Printer thread settings.
pub(crate) struct PrinterSetup {
    line: String,
    gtin: String,
    market: Market,
    product: Product,
    block_size: u64,
    poll: Duration,
    job: String,
}

impl From<&LineConfig> for PrinterSetup {
    fn from(c: &LineConfig) -> Self {
        PrinterSetup {
            line: c.line_id.clone(),
            gtin: c.product.gtin.clone(),
            market: c.market,
            product: c.product.clone(),
            block_size: c.block_size,
            poll: c.printer_poll,
            job: c.printer_job.clone(),
        }
    }
}

struct Batch {
    template: CodeTemplate,
    next_unit: u64,
    last_unit: u64,
    target: u64,
}

/// The printer thread's device side: the printer, its polling and the thread's inbox.
struct PrinterStage {
    ctx: Ctx,
    factory: DeviceFactory<dyn Printer>,
    printer: Option<Box<dyn Printer>>,
    waiter: Waiter,
    ev: Sender<Ev>,
    poll: Duration,
    next_tick: Micros,
    tick_no: u64,
    last_fault: Option<String>,
    last_count: Option<u64>,
    /// Buffers reused from unit to unit (see [`Reuse`]).
    reuse: Reuse,
}

/// What the printer thread reuses instead of allocating per unit: the items it loads,
/// the loaded lists the coordinator hands back (their element strings), serial strings
/// coming back with the pool states, and the scratch of [`apply_states`].
#[derive(Default)]
struct Reuse {
    items: Vec<PrintItem>,
    loaded: Option<Receiver<Vec<Loaded>>>,
    /// Where emptied state lists go back to (the recorder).
    states_back: Option<Sender<Vec<(String, SerialState)>>>,
    serials: Vec<String>,
    group: Vec<String>,
    rest: Vec<(String, SerialState)>,
}

/// Serial strings kept for reuse at most.
const SPARE_SERIALS: usize = 1024;

impl Reuse {
    /// Hand an emptied state list back to the recorder (dropped if it has enough).
    fn give_back(&self, mut list: Vec<(String, SerialState)>) {
        list.clear();
        if let Some(tx) = &self.states_back {
            let _ = tx.try_send(list);
        }
    }

    /// A loaded list handed back by the coordinator (its entries' strings still there),
    /// or a new one.
    fn loaded(&mut self) -> Vec<Loaded> {
        self.loaded
            .as_ref()
            .and_then(|r| r.try_recv().ok())
            .unwrap_or_default()
    }
}

impl PrinterStage {
    fn report(&self, e: PrinterEv) {
        self.ctx.send(&self.ev, Ev::Printer(e));
    }

    fn lost(&mut self, e: &linectl_drivers::Error) {
        self.printer = None;
        self.report(PrinterEv::Link(false, e.to_string()));
    }

    /// Poll the printer when the tick is due.
    fn tick(&mut self) {
        let now = self.ctx.clock.now();
        if now < self.next_tick {
            return;
        }
        self.tick_no += 1;
        if self.printer.is_none() && self.tick_no % 20 == 1 {
            match (self.factory)() {
                Ok(p) => {
                    tracing::info!(printer = p.describe(), "printer connected");
                    self.printer = Some(p);
                    self.last_count = None;
                    self.report(PrinterEv::Link(true, String::new()));
                }
                Err(e) => tracing::debug!(error = %e, "printer connect failed"),
            }
        }
        if let Some(p) = self.printer.as_mut() {
            match super::probe::inside(super::probe::Inside::Driver, || p.printed_count()) {
                Ok(c) => {
                    // Every poll is reported, changed or not: the drift check needs to
                    // know how recent the count is.
                    self.last_count = Some(c);
                    self.report(PrinterEv::Count {
                        printed: c,
                        at: now,
                    });
                }
                Err(e) if is_link_loss(e.kind()) => self.lost(&e),
                Err(e) => tracing::warn!(error = %e, "printer count refused"),
            }
        }
        if self.tick_no.is_multiple_of(4)
            && let Some(p) = self.printer.as_mut()
        {
            match super::probe::inside(super::probe::Inside::Driver, || p.status()) {
                Ok(s) => {
                    let fault = (!s.faults.is_empty()).then(|| {
                        s.faults
                            .iter()
                            .map(|f| format!("{} {}", f.code, f.text))
                            .collect::<Vec<_>>()
                            .join("; ")
                    });
                    if fault != self.last_fault {
                        self.last_fault = fault.clone();
                        self.report(PrinterEv::Fault(fault));
                    }
                }
                Err(e) if is_link_loss(e.kind()) => self.lost(&e),
                Err(e) => tracing::warn!(error = %e, "printer status refused"),
            }
        }
        self.next_tick = self
            .next_tick
            .plus(self.poll)
            .max(now.plus(Duration::from_micros(1)));
    }

    /// Poll when due, then block until commands arrive (all queued ones at once, onto
    /// `queue`); false when the thread must end.
    fn next(
        &mut self,
        rx: &Receiver<PrinterCmd>,
        queue: &mut std::collections::VecDeque<PrinterCmd>,
    ) -> bool {
        loop {
            if self.ctx.stopped() {
                return false;
            }
            self.tick();
            self.waiter.set_alarm(self.next_tick);
            match self.waiter.wait(rx) {
                Wake::Msg(m) => {
                    queue.push_back(m);
                    while let Some(c) = self.waiter.try_next(rx) {
                        queue.push_back(c);
                    }
                    return true;
                }
                Wake::Alarm => {}
                Wake::Closed => return false,
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn printer_thread(
    ctx: Ctx,
    factory: DeviceFactory<dyn Printer>,
    pool: SharedPool,
    cfg: PrinterSetup,
    rx: Receiver<PrinterCmd>,
    ev: Sender<Ev>,
    loaded: Receiver<Vec<Loaded>>,
    states_back: Sender<Vec<(String, SerialState)>>,
) {
    let mut st = PrinterStage {
        waiter: ctx.waiter(),
        next_tick: ctx.clock.now(),
        ctx,
        factory,
        printer: None,
        ev,
        poll: cfg.poll,
        tick_no: 0,
        last_fault: None,
        last_count: None,
        reuse: Reuse {
            loaded: Some(loaded),
            states_back: Some(states_back),
            items: Vec::with_capacity(64),
            serials: Vec::with_capacity(SPARE_SERIALS),
            group: Vec::with_capacity(64),
            rest: Vec::with_capacity(64),
        },
    };
    if let Ok(n) = crate::pool::alloc::lock(&pool).and_then(|p| p.available(&cfg.gtin)) {
        st.report(PrinterEv::PoolLevel(n));
    }
    let mut queue: std::collections::VecDeque<PrinterCmd> =
        std::collections::VecDeque::with_capacity(64);
    'thread: loop {
        if queue.is_empty() && !st.next(&rx, &mut queue) {
            break 'thread;
        }
        while let Some(cmd) = queue.pop_front() {
            match cmd {
                PrinterCmd::Begin {
                    order,
                    first_unit,
                    reply,
                } => {
                    if !run_batch(
                        &mut st, &pool, &cfg, &order, first_unit, reply, &rx, &mut queue,
                    ) {
                        break 'thread;
                    }
                }
                PrinterCmd::Reload { reply, .. } => {
                    let _ = reply.send(Err("no batch is running".into()));
                }
                PrinterCmd::States(mut s) => {
                    match crate::pool::alloc::lock(&pool) {
                        Ok(mut p) => apply_states(&mut p, &cfg.gtin, &mut s, &mut st.reuse),
                        Err(e) => tracing::error!(error = %e, "pool state update failed"),
                    }
                    st.reuse.give_back(s);
                }
                PrinterCmd::LoadUpTo(_) | PrinterCmd::End => {}
            }
        }
    }
    st.waiter.clear_alarm();
    st.ctx.activity.end();
}

/// Run one batch: returns false when the thread must end. Commands that belong after
/// the batch (a new Begin) are left in `queue`.
#[allow(clippy::too_many_arguments)]
fn run_batch(
    st: &mut PrinterStage,
    pool: &SharedPool,
    cfg: &PrinterSetup,
    order: &BatchOrder,
    first_unit: u64,
    reply: Sender<Result<(), String>>,
    rx: &Receiver<PrinterCmd>,
    queue: &mut std::collections::VecDeque<PrinterCmd>,
) -> bool {
    let template = match begin(pool, cfg, order, st.printer.as_mut()) {
        Ok(t) => t,
        Err(e) => {
            let _ = reply.send(Err(e));
            return true;
        }
    };
    let mut alloc = match SharedAllocator::new(
        pool,
        &cfg.gtin,
        &cfg.line,
        &order.lot,
        AllocatorConfig {
            block_size: cfg.block_size,
            quantity: None,
        },
    ) {
        Ok(a) => a,
        Err(e) => {
            let _ = reply.send(Err(e.to_string()));
            return true;
        }
    };
    let _ = reply.send(Ok(()));
    let mut b = Batch {
        template,
        next_unit: first_unit,
        last_unit: first_unit + order.quantity.saturating_sub(1),
        target: 0,
    };
    let mut states: Vec<(String, SerialState)> = Vec::new();
    let mut reported_end = false;
    loop {
        while let Some(cmd) = queue.pop_front() {
            match cmd {
                PrinterCmd::Begin { .. } => {
                    queue.push_front(cmd);
                    finish(alloc, &cfg.gtin, &mut states, &mut st.reuse);
                    return true;
                }
                PrinterCmd::End => {
                    finish(alloc, &cfg.gtin, &mut states, &mut st.reuse);
                    if let Ok(n) =
                        crate::pool::alloc::lock(pool).and_then(|p| p.available(&cfg.gtin))
                    {
                        st.report(PrinterEv::PoolLevel(n));
                    }
                    return true;
                }
                PrinterCmd::LoadUpTo(u) => b.target = b.target.max(u.min(b.last_unit)),
                PrinterCmd::Reload { next_unit, reply } => {
                    let r = match st.printer.as_mut() {
                        Some(p) => p.clear().map_err(|e| e.to_string()),
                        None => Err("printer not connected".to_string()),
                    };
                    if r.is_ok() {
                        b.next_unit = next_unit;
                    }
                    let _ = reply.send(r);
                }
                PrinterCmd::States(mut s) => {
                    states.append(&mut s);
                    st.reuse.give_back(s);
                }
            }
        }
        if !states.is_empty() {
            match alloc.pool() {
                Ok(mut p) => apply_states(&mut p, &cfg.gtin, &mut states, &mut st.reuse),
                Err(e) => tracing::error!(error = %e, "pool state update failed"),
            }
        }
        if b.next_unit <= b.target
            && let Some(p) = st.printer.as_mut()
        {
            match load(&mut b, &mut alloc, p.as_mut(), cfg.market, &mut st.reuse) {
                Ok(loaded) => {
                    if !loaded.is_empty() {
                        st.report(PrinterEv::Loaded(loaded));
                    }
                }
                Err(e) => st.report(PrinterEv::LoadFailed(e)),
            }
            if b.next_unit > b.last_unit && !reported_end {
                reported_end = true;
                if let Ok(n) = alloc.available() {
                    st.report(PrinterEv::PoolLevel(n));
                }
            }
        }
        match st.next(rx, queue) {
            true => {}
            false => {
                finish(alloc, &cfg.gtin, &mut states, &mut st.reuse);
                return false;
            }
        }
    }
}

fn finish(
    alloc: SharedAllocator,
    gtin: &str,
    states: &mut Vec<(String, SerialState)>,
    reuse: &mut Reuse,
) {
    if !states.is_empty() {
        match alloc.pool() {
            Ok(mut p) => apply_states(&mut p, gtin, states, reuse),
            Err(e) => tracing::error!(error = %e, "pool state update failed"),
        }
    }
    if let Err(e) = alloc.close() {
        tracing::error!(error = %e, "closing the batch allocation failed");
    }
}

/// Write the final pool states of `pending` (emptied), one pool update per state in
/// the order of the states' names; the serial strings are kept for reuse.
fn apply_states(
    pool: &mut Pool,
    gtin: &str,
    pending: &mut Vec<(String, SerialState)>,
    reuse: &mut Reuse,
) {
    while let Some(st) = pending.iter().map(|(_, st)| *st).min_by_key(|st| st.name()) {
        reuse.group.clear();
        reuse.rest.clear();
        for (s, t) in pending.drain(..) {
            if t == st {
                reuse.group.push(s);
            } else {
                reuse.rest.push((s, t));
            }
        }
        std::mem::swap(pending, &mut reuse.rest);
        let _span = super::probe::Span::enter(super::probe::Inside::Storage);
        if let Err(e) = pool.set_state(gtin, &reuse.group, st) {
            tracing::error!(error = %e, state = %st, n = reuse.group.len(), "pool state update failed");
        }
        drop(_span);
        let room = SPARE_SERIALS.saturating_sub(reuse.serials.len());
        let keep = reuse.group.len().min(room);
        reuse.serials.extend(reuse.group.drain(..keep));
        reuse.group.clear();
    }
}

fn begin(
    pool: &SharedPool,
    cfg: &PrinterSetup,
    order: &BatchOrder,
    printer: Option<&mut Box<dyn Printer>>,
) -> Result<CodeTemplate, String> {
    let template = CodeTemplate::new(cfg.market, &cfg.product, &order.batch_data())
        .map_err(|e| format!("batch data: {e}"))?;
    crate::pool::alloc::lock(pool)
        .and_then(|p| p.ensure_available(&cfg.gtin, order.quantity))
        .map_err(|e| e.to_string())?;
    let p = printer.ok_or_else(|| "printer not connected".to_string())?;
    let st = p.status().map_err(|e| format!("printer: {e}"))?;
    if !st.faults.is_empty() {
        return Err(format!(
            "printer faulted: {}",
            st.faults
                .iter()
                .map(|f| format!("{} {}", f.code, f.text))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    p.select_job(&cfg.job)
        .map_err(|e| format!("printer job `{}`: {e}", cfg.job))?;
    p.clear().map_err(|e| format!("printer: {e}"))?;
    Ok(template)
}

fn load(
    b: &mut Batch,
    a: &mut SharedAllocator,
    p: &mut dyn Printer,
    market: Market,
    reuse: &mut Reuse,
) -> Result<Vec<Loaded>, String> {
    let mut loaded = reuse.loaded();
    let mut n = 0usize;
    let mut last = None;
    while b.next_unit <= b.target {
        let h = super::probe::inside(super::probe::Inside::Storage, || a.next_serial())
            .map_err(|e| format!("serial pool: {e}"))?;
        if reuse.items.len() <= n {
            reuse.items.push(PrintItem {
                unit: 0,
                element_string: String::with_capacity(64),
                fields: Vec::new(),
            });
        }
        let Some(item) = reuse.items.get_mut(n) else {
            return Err("internal: no print item".into());
        };
        item.unit = b.next_unit;
        item.element_string.clear();
        item.fields.clear();
        let es = &mut item.element_string;
        let r = if market == Market::RuCrypto {
            let get = |ai: &str| h.extra_ai(ai).unwrap_or("");
            b.template
                .write_with_tail(h.serial(), get("91"), get("92"), es)
        } else {
            b.template.write(h.serial(), es)
        };
        if let Err(e) = r {
            // The serial stays Allocated and becomes SNInvalid when the block closes.
            return Err(format!("code for serial {}: {e}", h.serial()));
        }
        // What the coordinator gets: the unit, its serial, its element string.
        let mut serial = reuse.serials.pop().unwrap_or_default();
        serial.clear();
        serial.push_str(h.serial());
        match loaded.get_mut(n) {
            Some(l) => {
                l.unit = b.next_unit;
                l.serial = serial;
                l.element_string.clear();
                l.element_string.push_str(&item.element_string);
            }
            None => loaded.push(Loaded {
                unit: b.next_unit,
                serial,
                element_string: item.element_string.clone(),
            }),
        }
        last = Some(h);
        n += 1;
        b.next_unit += 1;
    }
    loaded.truncate(n);
    let items = reuse.items.get(..n).unwrap_or_default();
    let sent = super::probe::inside(super::probe::Inside::Driver, || p.load(items));
    // Mark what was sent (or may have been) Encoded either way: a serial that may be
    // on a unit is never handed out again.
    if let Some(last) = &last
        && let Err(e) = super::probe::inside(super::probe::Inside::Storage, || a.mark_encoded(last))
    {
        tracing::error!(error = %e, "marking serials Encoded failed");
    }
    sent.map_err(|e| format!("printer load: {e}"))?;
    Ok(loaded)
}

/// Camera thread settings.
pub(crate) struct VisionSetup {
    decode: DecodeConfig,
    workers: usize,
    decode_deadline: Duration,
}

impl From<&LineConfig> for VisionSetup {
    fn from(c: &LineConfig) -> Self {
        VisionSetup {
            decode: c.decode.clone(),
            workers: c.decode_workers,
            decode_deadline: c.decode_deadline,
        }
    }
}

/// Events from the camera thread.
// The outcome travels inline: boxing it would allocate per frame (the bounded channel's
// slots are allocated once).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum VisionEv {
    Link(bool, String),
    Outcome {
        unit: u64,
        outcome: crate::vision::pool::FrameOutcome,
        frame_at: Micros,
        /// Time the decoder spent on the frame, when it finished it.
        decode_time: Option<Duration>,
        /// The frame (kept for a reject, its buffer handed back otherwise).
        frame: Option<GreyFrame>,
    },
}

struct Boxed(Box<dyn FrameDecoder>);

impl FrameDecoder for Boxed {
    fn decode(
        &mut self,
        frame: &GreyFrame,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<crate::vision::Read>, crate::vision::FrameError> {
        self.0.decode(frame, stop)
    }
    fn extra_cost(&self) -> Duration {
        self.0.extra_cost()
    }
}

pub(crate) type DecoderHook = Arc<dyn Fn() -> Box<dyn FrameDecoder> + Send + Sync>;

pub(crate) fn camera_thread(
    ctx: Ctx,
    mut factory: DeviceFactory<dyn FrameSource>,
    cfg: VisionSetup,
    decoder: Option<DecoderHook>,
    ev: Sender<Ev>,
    spares: Receiver<Vec<u8>>,
) {
    let pcfg = PoolConfig {
        workers: cfg.workers.max(1),
        queue: 4,
        deadline_ms: cfg.decode_deadline.as_millis() as u64,
        decode: cfg.decode.clone(),
    };
    let pool = match decoder {
        Some(make) => DecodePool::with_decoder(&pcfg, ctx.clock.clone(), move || Boxed(make())),
        None => DecodePool::new(&pcfg, ctx.clock.clone()),
    };
    let mut waiter = ctx.waiter();
    let (_never_tx, never) = bounded::<()>(0);
    let mut source: Option<Box<dyn FrameSource>> = None;
    let mut next: u64 = 1;
    // Token bookkeeping: `token` = this thread holds an activity token; `ahead` = the
    // source holds a newer frame (its token is ours) and answers without blocking.
    let mut token = true;
    let mut ahead = false;
    loop {
        if ctx.stopped() {
            break;
        }
        let Some(src) = source.as_mut() else {
            match factory() {
                Ok(s) => {
                    tracing::info!(camera = s.describe(), "camera connected");
                    source = Some(s);
                    ctx.send(&ev, Ev::Vision(VisionEv::Link(true, String::new())));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "camera connect failed");
                    if !token {
                        ctx.activity.begin();
                        token = true;
                    }
                    waiter.set_alarm(ctx.clock.now().plus(Duration::from_millis(200)));
                    let _ = waiter.wait(&never);
                    waiter.clear_alarm();
                }
            }
            continue;
        };
        // Buffers of frames done with go back to the source before it fills the next.
        while let Ok(px) = spares.try_recv() {
            src.recycle(px);
        }
        if token && !ahead {
            ctx.activity.end();
            token = false;
        }
        let got = super::probe::inside(super::probe::Inside::Driver, || src.frame(next));
        match got {
            Ok(f) => {
                token = true;
                ahead = false;
                let frame_at = ctx.clock.now();
                let unit = f.unit;
                next = unit + 1;
                let done = match GreyFrame::new(f.width, f.height, f.pixels) {
                    Ok(g) => pool
                        .submit_until(g, frame_at.plus(cfg.decode_deadline))
                        .finish(),
                    Err(e) => crate::vision::pool::Finished {
                        outcome: crate::vision::pool::FrameOutcome::NoRead(
                            crate::vision::pool::NoRead::BadFrame(e.to_string()),
                        ),
                        decode_time: None,
                        frame: None,
                    },
                };
                ctx.send(
                    &ev,
                    Ev::Vision(VisionEv::Outcome {
                        unit,
                        outcome: done.outcome,
                        frame_at,
                        decode_time: done.decode_time,
                        frame: done.frame,
                    }),
                );
            }
            Err(e) => match e.kind() {
                ErrorKind::DeviceFault => {
                    // The frame of `next` was lost; a newer one is waiting.
                    token = true;
                    ahead = true;
                    next += 1;
                }
                ErrorKind::Timeout => {}
                _ => {
                    tracing::warn!(error = %e, "camera link lost");
                    source = None;
                    ahead = false;
                    ctx.activity.begin();
                    token = true;
                    ctx.send(&ev, Ev::Vision(VisionEv::Link(false, e.to_string())));
                }
            },
        }
    }
    if !token {
        ctx.activity.begin();
    }
    pool.shutdown();
    ctx.activity.end();
}
