//! PLC over Modbus TCP and RTU: the configurable holding-register map, the
//! [`ModbusPlc`] driver with reconnect/backoff, and the [`PlcTwin`] server that plays
//! the PLC for the simulator and tests.
//!
//! Owns: register layout and its encoding (32-bit values as two registers, high word
//! first), telling Modbus exceptions (`DeviceFault`) from link failures
//! (`Transport`). Does not own: Modbus framing (the client side is ours and
//! allocation-free per request: `super::mbtcp` for TCP, `super::mbrtu` for RTU; the
//! twin's servers use tokio-modbus) nor the PLC program (the twin implements just
//! enough of one: PackML transitions, counters).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::pdu::{Exchange, ReqError};
use super::{PackMlCommand, PackMlState, Plc, PlcCounters, Verdict};
use crate::error::{CodecError, Error};

/// Where each value lives: 0-based holding-register addresses (protocol addresses;
/// S7 / Modicon documentation often shows them +1 as `4xxxx`).
///
/// | field | default | registers | written by | content |
/// |---|---|---|---|---|
/// | `trigger_counter` | 0 | 2 | PLC | units seen at the trigger sensor, u32 wrapping, high word first |
/// | `heartbeat` | 2 | 1 | linectl | incrementing value; the PLC watchdog stops the line when it freezes |
/// | `packml_command` | 10 | 1 | linectl | PackML command (1 Reset … 9 Clear); the PLC clears it to 0 when taken |
/// | `packml_state` | 11 | 1 | PLC | PackML state (1 Clearing … 17 Complete) |
/// | `counters` | 20 | 6 | PLC | total, good, rejected: three u32, high word first |
/// | `alarms` | 30 | 1 | PLC | alarm bits (meaning set by the PLC program) |
/// | `verdict_base` | 100 | 3 × `verdict_slots` | linectl | ring of slots; slot `unit % verdict_slots` = unit number (low 32 bits, high word first), verdict code (1 good, 2 reject) |
/// | `verdict_slots` | 8 | | | number of slots; at least the units between camera and reject station |
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegisterMap {
    /// PLC → linectl: units seen at the trigger sensor, u32 wrapping, high word first,
    /// in this and the next register. Default: 0 (0–1).
    pub trigger_counter: u16,
    /// linectl → PLC: incrementing heartbeat; the PLC watchdog stops the line when it
    /// stops changing. Default: 2.
    pub heartbeat: u16,
    /// linectl → PLC: PackML command (1 Reset … 9 Clear); the PLC clears it to 0 when
    /// taken. Default: 10.
    pub packml_command: u16,
    /// PLC → linectl: PackML state (ISA-TR88 numbers, 1 Clearing … 17 Complete).
    /// Default: 11.
    pub packml_state: u16,
    /// PLC → linectl: counters total, good, rejected: three u32, high word first, in
    /// six registers from here. Default: 20 (20–25).
    pub counters: u16,
    /// PLC → linectl: alarm bits (meanings set by the PLC program; 0 = no alarm).
    /// Default: 30.
    pub alarms: u16,
    /// linectl → PLC: first register of the verdict ring; slot `unit % verdict_slots`
    /// holds the unit number (low 32 bits, high word first) and the verdict code
    /// (1 good, 2 reject), three registers per slot. Default: 100.
    pub verdict_base: u16,
    /// Slots in the verdict ring; at least the units between camera and reject station.
    /// Default: 8 (registers 100–123 with the default base).
    pub verdict_slots: u16,
}

impl Default for RegisterMap {
    fn default() -> Self {
        RegisterMap {
            trigger_counter: 0,
            heartbeat: 2,
            packml_command: 10,
            packml_state: 11,
            counters: 20,
            alarms: 30,
            verdict_base: 100,
            verdict_slots: 8,
        }
    }
}

impl RegisterMap {
    fn blocks(&self) -> Vec<(&'static str, u32, u32)> {
        vec![
            ("trigger_counter", u32::from(self.trigger_counter), 2),
            ("heartbeat", u32::from(self.heartbeat), 1),
            ("packml_command", u32::from(self.packml_command), 1),
            ("packml_state", u32::from(self.packml_state), 1),
            ("counters", u32::from(self.counters), 6),
            ("alarms", u32::from(self.alarms), 1),
            (
                "verdict_base",
                u32::from(self.verdict_base),
                3 * u32::from(self.verdict_slots),
            ),
        ]
    }

    /// Every problem of the map (no slots, a block running past 65535, overlapping
    /// blocks), each as (field name, message). An overlap is reported at the later
    /// field of the pair in declaration order.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.verdict_slots == 0 {
            problems.push(("verdict_slots", "must be at least 1".to_string()));
        }
        let b = self.blocks();
        for (name, start, len) in &b {
            if start + len > 0x1_0000 {
                problems.push((
                    *name,
                    format!("registers {start}..{} pass 65535", start + len),
                ));
            }
        }
        for (i, (n2, s2, l2)) in b.iter().enumerate() {
            for (n1, s1, l1) in b.iter().take(i) {
                if s1 < &(s2 + l2) && s2 < &(s1 + l1) {
                    problems.push((
                        *n2,
                        format!(
                            "registers {s2}..{} overlap `{n1}` (registers {s1}..{})",
                            s2 + l2,
                            s1 + l1
                        ),
                    ));
                }
            }
        }
        problems
    }

    /// Check the map, returning every problem at once (overlaps, overflow, no slots)
    /// as one `Config` error, each problem as `plc.registers.<field>: <message>`.
    pub fn validate(&self) -> Result<(), Error> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::config(
                problems
                    .iter()
                    .map(|(f, m)| format!("plc.registers.{f}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ))
        }
    }

    /// One past the highest register used.
    pub fn size(&self) -> usize {
        self.blocks()
            .iter()
            .map(|(_, s, l)| (s + l) as usize)
            .max()
            .unwrap_or(0)
    }

    /// Address of the verdict slot for `unit`.
    pub fn verdict_slot(&self, unit: u64) -> u16 {
        let slot = (unit % u64::from(self.verdict_slots.max(1))) as u16;
        self.verdict_base.saturating_add(slot.saturating_mul(3))
    }
}

/// The three words of a verdict slot.
pub fn verdict_words(unit: u64, verdict: Verdict) -> [u16; 3] {
    let u = unit as u32;
    [(u >> 16) as u16, u as u16, verdict.code()]
}

fn u32_of(words: &[u16], i: usize) -> u32 {
    let hi = words.get(i).copied().unwrap_or(0);
    let lo = words.get(i + 1).copied().unwrap_or(0);
    (u32::from(hi) << 16) | u32::from(lo)
}

/// Where the PLC is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Modbus TCP.
    Tcp(SocketAddr),
    /// Modbus RTU on a serial device (8N1).
    Rtu {
        /// Device path.
        path: String,
        /// Baud rate.
        baud: u32,
    },
}

/// Settings of the Modbus PLC driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusConfig {
    /// Register layout.
    pub map: RegisterMap,
    /// Modbus unit / slave id (default 1).
    pub slave: u8,
    /// Timeout for connecting and for each request (default 1 s).
    pub timeout: Duration,
    /// First reconnect delay after a failure (default 100 ms), doubled per failure.
    pub backoff_initial: Duration,
    /// Longest reconnect delay (default 5 s).
    pub backoff_max: Duration,
}

impl Default for ModbusConfig {
    fn default() -> Self {
        ModbusConfig {
            map: RegisterMap::default(),
            slave: 1,
            timeout: Duration::from_secs(1),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

enum Op<'a> {
    Read(u16, u16),
    WriteOne(u16, u16),
    Write(u16, &'a [u16]),
}

/// Run `op` on `c`; a read lands in the front of `regs`.
fn run_op(c: &mut dyn Exchange, op: Op<'_>, regs: &mut [u16]) -> Result<Result<(), u8>, ReqError> {
    match op {
        Op::Read(a, n) => match regs.get_mut(..usize::from(n)) {
            Some(dst) => c.read_holding(a, dst),
            None => Err(ReqError::Protocol(CodecError::Malformed {
                what: "Modbus request",
                detail: format!("cannot read {n} registers"),
            })),
        },
        Op::WriteOne(a, v) => c.write_single(a, v),
        Op::Write(a, w) => c.write_multiple(a, w),
    }
}

/// A live connection, by our own blocking clients (nothing allocated per request).
/// Boxed: their request and reply buffers live in them (made once per connection).
enum Conn {
    Tcp(Box<super::mbtcp::TcpClient>),
    Rtu(Box<super::mbrtu::RtuClient>),
}

/// The PLC driver. Blocking: Modbus TCP on a `std` socket, Modbus RTU on a
/// `serialport` port.
pub struct ModbusPlc {
    endpoint: Endpoint,
    cfg: ModbusConfig,
    ctx: Option<Conn>,
    /// The registers of the last read (reused).
    regs: [u16; super::pdu::MAX_READ as usize],
    next_attempt: Instant,
    backoff: Duration,
    device: crate::error::DeviceName,
}

impl ModbusPlc {
    /// Validate the map and connect once (errors if that first connect fails; later
    /// failures reconnect with backoff).
    pub fn connect(endpoint: Endpoint, cfg: ModbusConfig) -> Result<Self, Error> {
        cfg.map.validate()?;
        let device = match &endpoint {
            Endpoint::Tcp(a) => format!("modbus-tcp@{a}"),
            Endpoint::Rtu { path, .. } => format!("modbus-rtu@{path}"),
        }
        .into();
        let backoff = cfg.backoff_initial;
        let mut plc = ModbusPlc {
            endpoint,
            cfg,
            ctx: None,
            regs: [0; super::pdu::MAX_READ as usize],
            next_attempt: Instant::now(),
            backoff,
            device,
        };
        plc.ensure_connected("connecting")?;
        Ok(plc)
    }

    /// The register map in use.
    pub fn map(&self) -> &RegisterMap {
        &self.cfg.map
    }

    /// Whether a connection is currently up.
    pub fn is_connected(&self) -> bool {
        self.ctx.is_some()
    }

    fn ensure_connected(&mut self, during: &'static str) -> Result<(), Error> {
        if self.ctx.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        if now < self.next_attempt {
            return Err(Error::Transport {
                device: self.device.clone(),
                during,
                source: io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!(
                        "disconnected; next reconnect attempt in {:?}",
                        self.next_attempt - now
                    ),
                ),
            });
        }
        let timeout = self.cfg.timeout;
        let r = match &self.endpoint {
            Endpoint::Tcp(a) => {
                match super::mbtcp::TcpClient::connect(*a, self.cfg.slave, timeout) {
                    Ok(c) => Ok(Ok(Conn::Tcp(Box::new(c)))),
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(()),
                    Err(e) => Ok(Err(e)),
                }
            }
            Endpoint::Rtu { path, baud } => match crate::link::open_serial(path, *baud, timeout) {
                Ok(port) => Ok(Ok(Conn::Rtu(Box::new(super::mbrtu::RtuClient::new(
                    Box::new(port),
                    self.cfg.slave,
                    *baud,
                    timeout,
                ))))),
                Err(Error::Transport { source, .. }) => Ok(Err(source)),
                Err(e) => Ok(Err(io::Error::other(e.to_string()))),
            },
        };
        match r {
            Ok(Ok(ctx)) => {
                tracing::info!(device = %self.device, "plc connected");
                self.ctx = Some(ctx);
                self.backoff = self.cfg.backoff_initial;
                Ok(())
            }
            Ok(Err(source)) => {
                self.schedule_retry();
                Err(Error::Transport {
                    device: self.device.clone(),
                    during,
                    source,
                })
            }
            Err(_) => {
                self.schedule_retry();
                Err(Error::Timeout {
                    device: self.device.clone(),
                    during,
                    timeout,
                })
            }
        }
    }

    fn schedule_retry(&mut self) {
        self.ctx = None;
        self.next_attempt = Instant::now() + self.backoff;
        tracing::warn!(device = %self.device, retry_in = ?self.backoff, "plc link down");
        self.backoff = (self.backoff * 2).min(self.cfg.backoff_max);
    }

    /// Run one request; a read's registers are in `self.regs`, their number returned
    /// (0 for a write).
    fn exec(&mut self, op: Op<'_>, during: &'static str) -> Result<usize, Error> {
        self.ensure_connected(during)?;
        let timeout = self.cfg.timeout;
        let ModbusPlc { ctx, regs, .. } = self;
        let n_read = match op {
            Op::Read(_, n) => usize::from(n),
            _ => 0,
        };
        // A TCP connection that erred is dropped (a late reply would answer the next
        // transaction); the RTU client gets back in step by itself, so only a failed
        // port is reopened.
        let (r, tcp) = match ctx.as_mut() {
            None => return Err(Error::config("internal: no connection after connect")),
            Some(Conn::Tcp(c)) => (run_op(c.as_mut(), op, regs), true),
            Some(Conn::Rtu(c)) => (run_op(c.as_mut(), op, regs), false),
        };
        match r {
            Ok(Ok(())) => Ok(n_read),
            Ok(Err(code)) => Err(Error::DeviceFault {
                device: self.device.clone(),
                code: Some(u32::from(code)),
                detail: format!(
                    "Modbus exception while {during}: {:?}",
                    ExceptionCode::new(code)
                ),
            }),
            Err(e) => {
                if tcp || matches!(e, ReqError::Io(_)) {
                    self.next_attempt = Instant::now();
                    self.ctx = None;
                }
                Err(e.into_error(&self.device, during, timeout))
            }
        }
    }

    /// Read `n` holding registers from `addr` (one request), for diagnostics such as
    /// `linectl device plc` that show registers the [`Plc`] trait does not read
    /// (heartbeat, verdict ring).
    pub fn read_registers(&mut self, addr: u16, n: u16) -> Result<Vec<u16>, Error> {
        self.read(addr, n, "reading holding registers")
            .map(<[u16]>::to_vec)
    }

    fn read(&mut self, addr: u16, n: u16, during: &'static str) -> Result<&[u16], Error> {
        let got = self.exec(Op::Read(addr, n), during)?;
        match self.regs.get(..usize::from(n)) {
            Some(v) if got == usize::from(n) => Ok(v),
            _ => Err(Error::Protocol {
                device: self.device.clone(),
                during,
                source: CodecError::Malformed {
                    what: "Modbus reply",
                    detail: format!("{got} registers, asked {n}"),
                },
            }),
        }
    }
}

impl Plc for ModbusPlc {
    fn describe(&self) -> &str {
        &self.device
    }

    fn trigger_counter(&mut self) -> Result<u32, Error> {
        let v = self.read(
            self.cfg.map.trigger_counter,
            2,
            "reading the trigger counter",
        )?;
        Ok(u32_of(v, 0))
    }

    fn poll(&mut self) -> Result<(u32, Option<PackMlState>), Error> {
        let t = self.cfg.map.trigger_counter;
        let s = self.cfg.map.packml_state;
        let lo = t.min(s);
        let hi = t.saturating_add(1).max(s);
        if hi - lo >= 32 {
            return Ok((self.trigger_counter()?, self.state()?));
        }
        let v = self.read(lo, hi - lo + 1, "polling trigger counter and state")?;
        let at = |a: u16| usize::from(a - lo);
        let trig = u32_of(v, at(t));
        let state = v.get(at(s)).copied().and_then(PackMlState::from_code);
        Ok((trig, state))
    }

    fn write_verdict(&mut self, unit: u64, verdict: Verdict) -> Result<(), Error> {
        let addr = self.cfg.map.verdict_slot(unit);
        self.exec(
            Op::Write(addr, &verdict_words(unit, verdict)),
            "writing a verdict",
        )
        .map(drop)
    }

    fn heartbeat(&mut self, value: u16) -> Result<(), Error> {
        self.exec(
            Op::WriteOne(self.cfg.map.heartbeat, value),
            "writing the heartbeat",
        )
        .map(drop)
    }

    fn command(&mut self, cmd: PackMlCommand) -> Result<(), Error> {
        self.exec(
            Op::WriteOne(self.cfg.map.packml_command, cmd as u16),
            "writing a PackML command",
        )
        .map(drop)
    }

    fn state(&mut self) -> Result<Option<PackMlState>, Error> {
        let v = self.read(self.cfg.map.packml_state, 1, "reading the PackML state")?;
        Ok(v.first().copied().and_then(PackMlState::from_code))
    }

    fn counters(&mut self) -> Result<PlcCounters, Error> {
        let v = self.read(self.cfg.map.counters, 6, "reading counters")?;
        Ok(PlcCounters {
            total: u32_of(v, 0),
            good: u32_of(v, 2),
            rejected: u32_of(v, 4),
        })
    }

    fn alarms(&mut self) -> Result<u16, Error> {
        let v = self.read(self.cfg.map.alarms, 1, "reading alarms")?;
        Ok(v.first().copied().unwrap_or(0))
    }
}

/// The device side: holding registers laid out by a [`RegisterMap`], with just
/// enough PLC behaviour for tests and hil-sim (PackML transitions on command writes,
/// trigger counting, verdict lookup). Cheap to clone; clones share registers.
#[derive(Debug, Clone)]
pub struct PlcTwin {
    regs: Arc<Mutex<Vec<u16>>>,
    map: RegisterMap,
}

impl PlcTwin {
    /// A twin with all registers 0 and PackML state Stopped. Registers exist from 0
    /// to the end of the map; requests beyond get exception 2 (illegal data address).
    pub fn new(map: RegisterMap) -> Result<Self, Error> {
        map.validate()?;
        let mut regs = vec![0u16; map.size()];
        if let Some(r) = regs.get_mut(usize::from(map.packml_state)) {
            *r = PackMlState::Stopped as u16;
        }
        Ok(PlcTwin {
            regs: Arc::new(Mutex::new(regs)),
            map,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u16>> {
        self.regs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read one register (0 when out of range).
    pub fn register(&self, addr: u16) -> u16 {
        self.lock().get(usize::from(addr)).copied().unwrap_or(0)
    }

    /// Set one register (ignored when out of range).
    pub fn set_register(&self, addr: u16, v: u16) {
        if let Some(r) = self.lock().get_mut(usize::from(addr)) {
            *r = v;
        }
    }

    fn set_u32(&self, addr: u16, v: u32) {
        self.set_register(addr, (v >> 16) as u16);
        self.set_register(addr.saturating_add(1), v as u16);
    }

    fn get_u32(&self, addr: u16) -> u32 {
        (u32::from(self.register(addr)) << 16) | u32::from(self.register(addr.saturating_add(1)))
    }

    /// A unit passed the trigger sensor: increment the counter (wrapping) and total.
    pub fn trigger(&self) -> u32 {
        let n = self.get_u32(self.map.trigger_counter).wrapping_add(1);
        self.set_u32(self.map.trigger_counter, n);
        let c = self.map.counters;
        self.set_u32(c, self.get_u32(c).wrapping_add(1));
        n
    }

    /// The verdict linectl wrote for `unit`, if its slot holds that unit.
    pub fn verdict(&self, unit: u64) -> Option<Verdict> {
        let a = self.map.verdict_slot(unit);
        let u = self.get_u32(a);
        (u == unit as u32)
            .then(|| Verdict::from_code(self.register(a.saturating_add(2))))
            .flatten()
    }

    /// Count a unit leaving the line as good or rejected.
    pub fn count_exit(&self, verdict: Verdict) {
        let a = match verdict {
            Verdict::Good => self.map.counters + 2,
            Verdict::Reject => self.map.counters + 4,
        };
        self.set_u32(a, self.get_u32(a).wrapping_add(1));
    }

    /// Last heartbeat linectl wrote.
    pub fn heartbeat(&self) -> u16 {
        self.register(self.map.heartbeat)
    }

    /// Current PackML state.
    pub fn state(&self) -> Option<PackMlState> {
        PackMlState::from_code(self.register(self.map.packml_state))
    }

    /// Force the PackML state.
    pub fn set_state(&self, s: PackMlState) {
        self.set_register(self.map.packml_state, s as u16);
    }

    /// Set the alarm word.
    pub fn set_alarms(&self, bits: u16) {
        self.set_register(self.map.alarms, bits);
    }

    fn apply_command(&self, code: u16) {
        use PackMlState as S;
        let Some(cmd) = PackMlCommand::from_code(code) else {
            return;
        };
        let cur = self.state();
        let next = match (cmd, cur) {
            (PackMlCommand::Reset, Some(S::Stopped | S::Complete)) => Some(S::Idle),
            (PackMlCommand::Start, Some(S::Idle)) => Some(S::Execute),
            (PackMlCommand::Stop, Some(s)) if !matches!(s, S::Aborted | S::Aborting) => {
                Some(S::Stopped)
            }
            (PackMlCommand::Hold, Some(S::Execute)) => Some(S::Held),
            (PackMlCommand::Unhold, Some(S::Held)) => Some(S::Execute),
            (PackMlCommand::Suspend, Some(S::Execute)) => Some(S::Suspended),
            (PackMlCommand::Unsuspend, Some(S::Suspended)) => Some(S::Execute),
            (PackMlCommand::Abort, _) => Some(S::Aborted),
            (PackMlCommand::Clear, Some(S::Aborted)) => Some(S::Stopped),
            _ => None,
        };
        if let Some(s) = next {
            self.set_state(s);
        }
        self.set_register(self.map.packml_command, 0);
    }

    /// Answer one request (the twin's Modbus service logic).
    pub fn handle(&self, req: Request<'_>) -> Result<Response, ExceptionCode> {
        let range = |a: u16, n: usize, len: usize| {
            let s = usize::from(a);
            if n == 0 || s + n > len {
                Err(ExceptionCode::IllegalDataAddress)
            } else {
                Ok(s..s + n)
            }
        };
        match req {
            Request::ReadHoldingRegisters(a, n) => {
                let regs = self.lock();
                let r = range(a, usize::from(n), regs.len())?;
                Ok(Response::ReadHoldingRegisters(
                    regs.get(r).unwrap_or_default().to_vec(),
                ))
            }
            Request::WriteSingleRegister(a, v) => {
                {
                    let mut regs = self.lock();
                    let r = range(a, 1, regs.len())?;
                    if let Some(x) = regs.get_mut(r.start) {
                        *x = v;
                    }
                }
                if a == self.map.packml_command {
                    self.apply_command(v);
                }
                Ok(Response::WriteSingleRegister(a, v))
            }
            Request::WriteMultipleRegisters(a, words) => {
                let touched_cmd;
                {
                    let mut regs = self.lock();
                    let r = range(a, words.len(), regs.len())?;
                    touched_cmd = r.contains(&usize::from(self.map.packml_command));
                    if let Some(dst) = regs.get_mut(r) {
                        dst.copy_from_slice(&words);
                    }
                }
                if touched_cmd {
                    self.apply_command(self.register(self.map.packml_command));
                }
                Ok(Response::WriteMultipleRegisters(a, words.len() as u16))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }

    /// Serve Modbus TCP on `listener` until `stop` resolves (async; for hil-sim).
    pub async fn serve_tcp(
        self,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()> + Send + Sync + 'static,
    ) -> io::Result<()> {
        let server = tokio_modbus::server::tcp::Server::new(listener);
        let svc = TwinService(self);
        let new_service = move |_a| Ok(Some(svc.clone()));
        let on_connected = move |stream, addr| {
            let ns = new_service.clone();
            async move { tokio_modbus::server::tcp::accept_tcp_connection(stream, addr, ns) }
        };
        let on_error = |e: io::Error| tracing::debug!(error = %e, "plc twin connection ended");
        server
            .serve_until(&on_connected, on_error, stop)
            .await
            .map(drop)
    }

    /// Serve Modbus RTU on a serial device until `stop` resolves (async).
    pub async fn serve_rtu(
        self,
        path: &str,
        baud: u32,
        stop: impl Future<Output = ()> + Send + Sync + 'static,
    ) -> io::Result<()> {
        let port = tokio_serial::SerialStream::open(&tokio_serial::new(path, baud))?;
        let server = tokio_modbus::server::rtu::Server::new(port);
        server.serve_until(TwinService(self), stop).await.map(drop)
    }

    /// Serve Modbus TCP on `addr` from a background thread with its own runtime.
    pub fn spawn_tcp(&self, addr: &str) -> Result<TwinHandle, Error> {
        let std_listener =
            std::net::TcpListener::bind(addr).map_err(|source| Error::Transport {
                device: addr.to_string().into(),
                during: "binding the PLC twin",
                source,
            })?;
        let local = std_listener.local_addr().ok();
        let _ = std_listener.set_nonblocking(true);
        let twin = self.clone();
        TwinHandle::spawn(local, addr, move |stop| async move {
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            twin.serve_tcp(listener, stop).await
        })
    }

    /// Serve Modbus RTU on a serial device from a background thread.
    pub fn spawn_rtu(&self, path: &str, baud: u32) -> Result<TwinHandle, Error> {
        let twin = self.clone();
        let p = path.to_string();
        TwinHandle::spawn(None, path, move |stop| async move {
            twin.serve_rtu(&p, baud, stop).await
        })
    }
}

#[derive(Debug, Clone)]
struct TwinService(PlcTwin);

impl tokio_modbus::server::Service for TwinService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;
    fn call(&self, req: Self::Request) -> Self::Future {
        std::future::ready(self.0.handle(req.request))
    }
}

/// A PLC twin served from a background thread; stopped on drop.
pub struct TwinHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    local: Option<SocketAddr>,
}

impl TwinHandle {
    fn spawn<F, Fut>(local: Option<SocketAddr>, what: &str, f: F) -> Result<Self, Error>
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>) -> Fut
            + Send
            + 'static,
        Fut: Future<Output = io::Result<()>>,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Transport {
                device: what.into(),
                during: "starting the twin runtime",
                source,
            })?;
        let name = what.to_string();
        let thread = std::thread::Builder::new()
            .name("plc-twin".into())
            .spawn(move || {
                let stop: std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>> =
                    Box::pin(async move {
                        let _ = rx.await;
                    });
                if let Err(e) = rt.block_on(f(stop)) {
                    tracing::warn!(twin = %name, error = %e, "plc twin stopped with an error");
                }
            })
            .map_err(|source| Error::Transport {
                device: what.into(),
                during: "spawning the twin",
                source,
            })?;
        Ok(TwinHandle {
            stop: Some(tx),
            thread: Some(thread),
            local,
        })
    }

    /// The bound TCP address (TCP twins).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Whether the serving thread is still running (false after a bind/open error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop serving and wait.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TwinHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn default_map_is_valid_and_overlaps_are_all_reported() {
        assert!(RegisterMap::default().validate().is_ok());
        let bad = RegisterMap {
            heartbeat: 1,
            alarms: 21,
            verdict_slots: 0,
            ..RegisterMap::default()
        };
        let Err(Error::Config(msg)) = bad.validate() else {
            panic!("expected a config error")
        };
        assert!(msg.contains("heartbeat"), "{msg}");
        assert!(msg.contains("alarms"), "{msg}");
        assert!(msg.contains("verdict_slots"), "{msg}");
    }

    #[test]
    fn twin_packml_and_verdicts() {
        let t = PlcTwin::new(RegisterMap::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.state(), Some(PackMlState::Stopped));
        for (cmd, want) in [
            (1u16, PackMlState::Idle),
            (2, PackMlState::Execute),
            (4, PackMlState::Held),
            (8, PackMlState::Aborted),
            (9, PackMlState::Stopped),
        ] {
            assert!(t.handle(Request::WriteSingleRegister(10, cmd)).is_ok());
            assert_eq!(t.state(), Some(want));
            assert_eq!(t.register(10), 0);
        }
        let w = verdict_words(70_001, Verdict::Reject);
        let a = RegisterMap::default().verdict_slot(70_001);
        assert!(
            t.handle(Request::WriteMultipleRegisters(a, Cow::Owned(w.to_vec())))
                .is_ok()
        );
        assert_eq!(t.verdict(70_001), Some(Verdict::Reject));
        assert_eq!(t.verdict(70_009), None);
        assert_eq!(
            t.handle(Request::ReadHoldingRegisters(200, 1)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            t.handle(Request::ReadCoils(0, 1)),
            Err(ExceptionCode::IllegalFunction)
        );
    }

    #[test]
    fn trigger_counter_wraps() {
        let t = PlcTwin::new(RegisterMap::default()).unwrap_or_else(|e| panic!("{e}"));
        t.set_u32(0, u32::MAX);
        assert_eq!(t.trigger(), 0);
    }
}
