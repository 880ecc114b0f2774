//! Markem-Imaje-style binary protocol (CIJ 9xxx family) over TCP or RS-232: single
//! control bytes (ENQ/ACK/NAK) and checksummed frames.
//!
//! Owns: the binary codec for both ends ([`MarkemDecoder`], [`HostRequest`],
//! [`PrinterReply`]), the [`MarkemPrinter`] driver and the [`MarkemSession`] twin.
//! Does not own: message layouts stored on the printer.
//!
//! The driver's per-print path allocates nothing: frames are checked and parsed in
//! place in the decoder's buffer ([`MarkemDecoder::decode_with`]) and requests are
//! encoded into one buffer per connection ([`encode_external_variables`]).
//!
//! # Framing
//! `ident (1 byte) | length (2 bytes, big-endian) | data (length bytes) | checksum`,
//! checksum = XOR of every preceding byte of the frame (ident, both length bytes,
//! data). Outside frames: `ENQ` 0x05 (host asks "ready?"), `ACK` 0x06, `NAK` 0x15.
//! A frame whose data exceeds the decoder limit (default 1024) is refused from its
//! length field, before its data is buffered.
//!
//! # Identifiers used
//! The vendor manual's numeric identifiers were not available to us: these are this
//! crate's own, to be mapped to the manual's values when a printer is at hand.
//! Validated against our twin only.
//!
//! | ident | direction | data | answer |
//! |---|---|---|---|
//! | 0x40 select job | host → printer | job name (ASCII) | ACK / NAK |
//! | 0x41 external variables | host → printer | n × (index u8, length u8, bytes) | ACK / NAK |
//! | 0x42 clear buffer | host → printer | — | ACK |
//! | 0x43 print ack on/off | host → printer | 1 byte: 1 on, 0 off | ACK |
//! | 0x44 print acknowledgement | printer → host, async | total prints u32 BE | — |
//! | 0x45 fault status | host → printer: empty; reply: state u8 (0 ready, 1 paused, 2 faulted), queued u16 BE, total prints u32 BE, n u8, n × fault code u16 BE | | reply 0x45 |
//! | 0x46 print | host → printer (manual print, twin tests) | — | ACK / NAK |

use std::time::Duration;

use crate::error::{CodecError, Error};
use crate::link::{Decoder, DeviceSession, Framed, Link, bounded_extend};
use crate::printer::{
    PrintItem, Printer, PrinterFault, PrinterState, PrinterStatus, TwinState, item_fields_iter,
};

/// Ask "ready?".
pub const ENQ: u8 = 0x05;
/// Accepted / ready.
pub const ACK: u8 = 0x06;
/// Refused / not ready / bad checksum.
pub const NAK: u8 = 0x15;

/// Frame identifiers (this crate's own; see module docs).
pub mod ident {
    /// Select job.
    pub const SELECT_JOB: u8 = 0x40;
    /// Transmit external variables.
    pub const EXTERNAL_VARIABLES: u8 = 0x41;
    /// Clear the print buffer.
    pub const CLEAR_BUFFER: u8 = 0x42;
    /// Enable or disable print acknowledgements.
    pub const PRINT_ACK_ENABLE: u8 = 0x43;
    /// Print acknowledgement (printer → host).
    pub const PRINT_ACK: u8 = 0x44;
    /// Fault status request and reply.
    pub const FAULT_STATUS: u8 = 0x45;
    /// Manual print.
    pub const PRINT: u8 = 0x46;
    /// Every identifier.
    pub const ALL: &[u8] = &[
        SELECT_JOB,
        EXTERNAL_VARIABLES,
        CLEAR_BUFFER,
        PRINT_ACK_ENABLE,
        PRINT_ACK,
        FAULT_STATUS,
        PRINT,
    ];
}

/// XOR checksum over bytes.
pub fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

/// Encode one frame. Fails (`Config`) when data exceeds 65535 bytes.
pub fn encode_frame(id: u8, data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut f = Vec::with_capacity(data.len() + 4);
    encode_frame_into(&mut f, id, data)?;
    Ok(f)
}

/// [`encode_frame`] appended to `out` (on an error `out` is as it was).
pub fn encode_frame_into(out: &mut Vec<u8>, id: u8, data: &[u8]) -> Result<(), Error> {
    let start = open_frame(out, id);
    out.extend_from_slice(data);
    close_frame(out, start)
}

/// Start a frame at the end of `out`: identifier and a length to be filled in by
/// [`close_frame`]. Returns where the frame starts.
fn open_frame(out: &mut Vec<u8>, id: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[id, 0, 0]);
    start
}

/// Finish the frame started at `start`: its length field and checksum. A frame over
/// 65535 data bytes is taken back out (`Config` error).
fn close_frame(out: &mut Vec<u8>, start: usize) -> Result<(), Error> {
    let size = out.len() - start - 3;
    let Ok(len) = u16::try_from(size) else {
        let id = out.get(start).copied().unwrap_or(0);
        out.truncate(start);
        return Err(Error::config(format!(
            "frame 0x{id:02x}: {size} data bytes exceed 65535"
        )));
    };
    if let Some(l) = out.get_mut(start + 1..start + 3) {
        l.copy_from_slice(&len.to_be_bytes());
    }
    let sum = xor(out.get(start..).unwrap_or_default());
    out.push(sum);
    Ok(())
}

/// Append an external-variables frame (0x41) for `(index, value)` pairs to `out`,
/// refusing a value over 255 bytes (`Config` error; `out` is then as it was).
pub fn encode_external_variables<'a>(
    out: &mut Vec<u8>,
    vars: impl IntoIterator<Item = (u8, &'a [u8])>,
) -> Result<(), Error> {
    let start = open_frame(out, ident::EXTERNAL_VARIABLES);
    for (i, v) in vars {
        let Ok(l) = u8::try_from(v.len()) else {
            out.truncate(start);
            return Err(Error::config(format!(
                "external variable {i}: {} bytes exceed 255",
                v.len()
            )));
        };
        out.push(i);
        out.push(l);
        out.extend_from_slice(v);
    }
    close_frame(out, start)
}

/// One unit on the wire: a control byte or a checked frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// ENQ, ACK or NAK.
    Control(u8),
    /// A frame whose checksum matched.
    Frame {
        /// Identifier.
        ident: u8,
        /// Data.
        data: Vec<u8>,
    },
}

/// A unit on the wire as the decoder holds it: a frame's data is borrowed from the
/// decoder's buffer. Reading it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawUnit<'a> {
    /// ENQ, ACK or NAK.
    Control(u8),
    /// A frame whose checksum matched.
    Frame {
        /// Identifier.
        ident: u8,
        /// Data.
        data: &'a [u8],
    },
}

impl RawUnit<'_> {
    /// An owned copy.
    pub fn to_unit(self) -> Unit {
        match self {
            RawUnit::Control(b) => Unit::Control(b),
            RawUnit::Frame { ident, data } => Unit::Frame {
                ident,
                data: data.to_vec(),
            },
        }
    }
}

impl Unit {
    /// The unit borrowed.
    pub fn as_raw(&self) -> RawUnit<'_> {
        match self {
            Unit::Control(b) => RawUnit::Control(*b),
            Unit::Frame { ident, data } => RawUnit::Frame {
                ident: *ident,
                data,
            },
        }
    }
}

/// Incremental decoder for both directions.
#[derive(Debug)]
pub struct MarkemDecoder {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for MarkemDecoder {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl MarkemDecoder {
    /// A decoder accepting frames with up to `limit` data bytes.
    pub fn new(limit: usize) -> Self {
        MarkemDecoder {
            buf: Vec::new(),
            limit,
        }
    }
}

impl MarkemDecoder {
    /// Take the next complete unit, if any, and hand it to `parse` while it is still in
    /// the buffer (no copy); the unit leaves the buffer either way. Errors as
    /// [`Decoder::decode`].
    pub fn decode_with<T>(
        &mut self,
        parse: impl FnOnce(RawUnit<'_>) -> Result<T, CodecError>,
    ) -> Result<Option<T>, CodecError> {
        let Some(&first) = self.buf.first() else {
            return Ok(None);
        };
        if matches!(first, ENQ | ACK | NAK) {
            self.buf.drain(..1);
            return parse(RawUnit::Control(first)).map(Some);
        }
        if !ident::ALL.contains(&first) {
            self.buf.drain(..1);
            return Err(CodecError::UnexpectedByte {
                byte: first,
                context: "where a control byte or frame identifier was expected",
            });
        }
        let (Some(&hi), Some(&lo)) = (self.buf.get(1), self.buf.get(2)) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len > self.limit {
            self.buf.clear();
            return Err(CodecError::Oversize {
                size: len,
                limit: self.limit,
            });
        }
        let Some(&received) = self.buf.get(3 + len) else {
            return Ok(None);
        };
        let body = self.buf.get(..3 + len).unwrap_or_default();
        let computed = xor(body);
        let r = if computed != received {
            Err(CodecError::BadChecksum {
                ident: first,
                computed,
                received,
            })
        } else {
            parse(RawUnit::Frame {
                ident: first,
                data: body.get(3..).unwrap_or_default(),
            })
            .map(Some)
        };
        self.buf.drain(..4 + len);
        r
    }
}

impl Decoder for MarkemDecoder {
    type Item = Unit;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        bounded_extend(&mut self.buf, bytes, self.limit + 4)
    }
    fn decode(&mut self) -> Result<Option<Unit>, CodecError> {
        self.decode_with(|r| Ok(r.to_unit()))
    }
    fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn malformed(what: &'static str, detail: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        what,
        detail: detail.into(),
    }
}

/// Host → printer requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRequest {
    /// ENQ.
    Enq,
    /// 0x40.
    SelectJob(String),
    /// 0x41: (index, value) pairs.
    ExternalVariables(Vec<(u8, Vec<u8>)>),
    /// 0x42.
    ClearBuffer,
    /// 0x43.
    PrintAckEnable(bool),
    /// 0x45 (empty).
    FaultStatus,
    /// 0x46.
    Print,
}

impl HostRequest {
    /// Encode for the wire.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// [`HostRequest::encode`] appended to `out` (a buffer reused from request to
    /// request; on an error `out` is as it was).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            HostRequest::Enq => {
                out.push(ENQ);
                Ok(())
            }
            HostRequest::SelectJob(j) => encode_frame_into(out, ident::SELECT_JOB, j.as_bytes()),
            HostRequest::ExternalVariables(vars) => {
                encode_external_variables(out, vars.iter().map(|(i, v)| (*i, v.as_slice())))
            }
            HostRequest::ClearBuffer => encode_frame_into(out, ident::CLEAR_BUFFER, &[]),
            HostRequest::PrintAckEnable(on) => {
                encode_frame_into(out, ident::PRINT_ACK_ENABLE, &[u8::from(*on)])
            }
            HostRequest::FaultStatus => encode_frame_into(out, ident::FAULT_STATUS, &[]),
            HostRequest::Print => encode_frame_into(out, ident::PRINT, &[]),
        }
    }

    /// Interpret a decoded unit (device side).
    pub fn parse(u: Unit) -> Result<Self, CodecError> {
        Self::parse_raw(u.as_raw())
    }

    /// Interpret a unit still in the decoder's buffer (device side).
    pub fn parse_raw(u: RawUnit<'_>) -> Result<Self, CodecError> {
        match u {
            RawUnit::Control(ENQ) => Ok(HostRequest::Enq),
            RawUnit::Control(b) => Err(CodecError::UnexpectedByte {
                byte: b,
                context: "from the host",
            }),
            RawUnit::Frame { ident, data } => match ident {
                ident::SELECT_JOB => Ok(HostRequest::SelectJob(
                    std::str::from_utf8(data)
                        .map_err(|_| malformed("select job", "job name is not UTF-8"))?
                        .to_string(),
                )),
                ident::EXTERNAL_VARIABLES => {
                    let mut vars = Vec::new();
                    let mut rest = data;
                    while let [i, l, tail @ ..] = rest {
                        let l = usize::from(*l);
                        let v = tail.get(..l).ok_or_else(|| {
                            malformed("external variables", format!("variable {i} truncated"))
                        })?;
                        vars.push((*i, v.to_vec()));
                        rest = tail.get(l..).unwrap_or_default();
                    }
                    if !rest.is_empty() || vars.is_empty() {
                        return Err(malformed(
                            "external variables",
                            "trailing byte or no variable",
                        ));
                    }
                    Ok(HostRequest::ExternalVariables(vars))
                }
                ident::CLEAR_BUFFER => Ok(HostRequest::ClearBuffer),
                ident::PRINT_ACK_ENABLE => {
                    Ok(HostRequest::PrintAckEnable(data.first() == Some(&1)))
                }
                ident::FAULT_STATUS => Ok(HostRequest::FaultStatus),
                ident::PRINT => Ok(HostRequest::Print),
                other => Err(malformed(
                    "host frame",
                    format!("identifier 0x{other:02x} is not a request"),
                )),
            },
        }
    }
}

/// Printer → host replies and notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterReply {
    /// ACK.
    Ack,
    /// NAK.
    Nak,
    /// 0x44: total prints.
    PrintAck(u32),
    /// 0x45 reply.
    FaultStatus {
        /// 0 ready, 1 paused, 2 faulted.
        state: u8,
        /// Prints queued.
        queued: u16,
        /// Total prints.
        count: u32,
        /// Active fault codes.
        faults: Vec<u16>,
    },
}

impl PrinterReply {
    /// Encode for the wire.
    pub fn encode(&self) -> Vec<u8> {
        let r = match self {
            PrinterReply::Ack => Ok(vec![ACK]),
            PrinterReply::Nak => Ok(vec![NAK]),
            PrinterReply::PrintAck(n) => encode_frame(ident::PRINT_ACK, &n.to_be_bytes()),
            PrinterReply::FaultStatus {
                state,
                queued,
                count,
                faults,
            } => {
                let mut d = vec![*state];
                d.extend_from_slice(&queued.to_be_bytes());
                d.extend_from_slice(&count.to_be_bytes());
                let n = faults.len().min(255);
                d.push(n as u8);
                for f in faults.iter().take(n) {
                    d.extend_from_slice(&f.to_be_bytes());
                }
                encode_frame(ident::FAULT_STATUS, &d)
            }
        };
        r.unwrap_or_default()
    }

    /// Interpret a decoded unit (host side).
    pub fn parse(u: Unit) -> Result<Self, CodecError> {
        Self::parse_raw(u.as_raw())
    }

    /// Interpret a unit still in the decoder's buffer (host side). Allocates only for
    /// a fault status that lists faults (and for errors).
    pub fn parse_raw(u: RawUnit<'_>) -> Result<Self, CodecError> {
        match u {
            RawUnit::Control(ACK) => Ok(PrinterReply::Ack),
            RawUnit::Control(NAK) => Ok(PrinterReply::Nak),
            RawUnit::Control(b) => Err(CodecError::UnexpectedByte {
                byte: b,
                context: "from the printer",
            }),
            RawUnit::Frame {
                ident: ident::PRINT_ACK,
                data,
            } => {
                let b: [u8; 4] = data.try_into().map_err(|_| {
                    malformed(
                        "print acknowledgement",
                        format!("{} data bytes, expected 4", data.len()),
                    )
                })?;
                Ok(PrinterReply::PrintAck(u32::from_be_bytes(b)))
            }
            RawUnit::Frame {
                ident: ident::FAULT_STATUS,
                data,
            } => {
                let bad = || {
                    malformed(
                        "fault status",
                        format!("{} data bytes do not match the layout", data.len()),
                    )
                };
                let [state, q0, q1, c0, c1, c2, c3, n, rest @ ..] = data else {
                    return Err(bad());
                };
                if rest.len() != usize::from(*n) * 2 {
                    return Err(bad());
                }
                Ok(PrinterReply::FaultStatus {
                    state: *state,
                    queued: u16::from_be_bytes([*q0, *q1]),
                    count: u32::from_be_bytes([*c0, *c1, *c2, *c3]),
                    faults: rest
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect(),
                })
            }
            RawUnit::Frame { ident, .. } => Err(malformed(
                "printer frame",
                format!("identifier 0x{ident:02x} is not a reply"),
            )),
        }
    }
}

/// Settings of the Markem-Imaje driver.
#[derive(Debug, Clone)]
pub struct MarkemConfig {
    /// Timeout for each round trip (default 2 s).
    pub timeout: Duration,
    /// Prints kept ahead of the line (default 4).
    pub buffer_depth: usize,
}

impl Default for MarkemConfig {
    fn default() -> Self {
        MarkemConfig {
            timeout: Duration::from_secs(2),
            buffer_depth: 4,
        }
    }
}

/// Host-side adapter: decoder plus typed parsing.
#[derive(Debug, Default)]
pub struct ReplyDecoder(MarkemDecoder);

impl Decoder for ReplyDecoder {
    type Item = PrinterReply;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.0.feed(bytes)
    }
    fn decode(&mut self) -> Result<Option<PrinterReply>, CodecError> {
        self.0.decode_with(PrinterReply::parse_raw)
    }
    fn pending(&self) -> usize {
        self.0.pending()
    }
}

/// Device-side adapter: decoder plus typed parsing.
#[derive(Debug, Default)]
pub struct RequestDecoder(MarkemDecoder);

impl Decoder for RequestDecoder {
    type Item = HostRequest;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.0.feed(bytes)
    }
    fn decode(&mut self) -> Result<Option<HostRequest>, CodecError> {
        self.0.decode_with(HostRequest::parse_raw)
    }
    fn pending(&self) -> usize {
        self.0.pending()
    }
}

/// Markem-Imaje printer driver (host side).
pub struct MarkemPrinter {
    framed: Framed<ReplyDecoder>,
    /// The request being sent, reused from request to request.
    out: Vec<u8>,
    cfg: MarkemConfig,
    base: Option<u32>,
    count: u64,
}

impl MarkemPrinter {
    /// Connect over an open link: ENQ (ACK or NAK both prove the printer is there),
    /// enable print acknowledgements, read the baseline print counter.
    pub fn new(
        link: Box<dyn Link>,
        device: impl Into<String>,
        cfg: MarkemConfig,
    ) -> Result<Self, Error> {
        let mut p = MarkemPrinter {
            framed: Framed::new(link, ReplyDecoder::default(), device),
            out: Vec::new(),
            cfg,
            base: None,
            count: 0,
        };
        p.framed.send(&[ENQ], "asking ready (ENQ)")?;
        let r = p.reply("asking ready (ENQ)")?;
        if r == PrinterReply::Nak {
            tracing::warn!(device = p.framed.device(), "printer not ready at connect");
        }
        p.command(
            &HostRequest::PrintAckEnable(true),
            "enabling print acknowledgements",
        )?;
        p.status()?;
        Ok(p)
    }

    fn note_count(&mut self, total: u32) {
        let base = *self.base.get_or_insert(total);
        self.count = self.count.max(u64::from(total.wrapping_sub(base)));
    }

    fn reply(&mut self, during: &'static str) -> Result<PrinterReply, Error> {
        let deadline = std::time::Instant::now() + self.cfg.timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    device: self.framed.name(),
                    during,
                    timeout: self.cfg.timeout,
                });
            }
            match self.framed.recv(left, during)? {
                PrinterReply::PrintAck(n) => self.note_count(n),
                other => return Ok(other),
            }
        }
    }

    fn command(&mut self, req: &HostRequest, during: &'static str) -> Result<(), Error> {
        self.out.clear();
        req.encode_into(&mut self.out)?;
        self.send_out(during)
    }

    /// Send the request in `self.out` and take its ACK.
    fn send_out(&mut self, during: &'static str) -> Result<(), Error> {
        self.framed.send(&self.out, during)?;
        match self.reply(during)? {
            PrinterReply::Ack => Ok(()),
            PrinterReply::Nak => Err(Error::DeviceFault {
                device: self.framed.name(),
                code: Some(u32::from(NAK)),
                detail: format!("NAK while {during}"),
            }),
            other => Err(Error::Protocol {
                device: self.framed.name(),
                during,
                source: malformed("reply", format!("expected ACK or NAK, got {other:?}")),
            }),
        }
    }
}

impl Printer for MarkemPrinter {
    fn describe(&self) -> &str {
        self.framed.device()
    }

    fn select_job(&mut self, job: &str) -> Result<(), Error> {
        self.command(&HostRequest::SelectJob(job.to_string()), "selecting job")
    }

    fn load(&mut self, items: &[PrintItem]) -> Result<(), Error> {
        for item in items {
            self.out.clear();
            encode_external_variables(
                &mut self.out,
                item_fields_iter(item, "")
                    .enumerate()
                    .map(|(i, (_, v))| (u8::try_from(i + 1).unwrap_or(u8::MAX), v.as_bytes())),
            )?;
            self.send_out("transmitting external variables")?;
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<(), Error> {
        self.command(&HostRequest::ClearBuffer, "clearing the buffer")
    }

    fn printed_count(&mut self) -> Result<u64, Error> {
        while let Some(r) = self
            .framed
            .poll(Duration::ZERO, "reading print acknowledgements")?
        {
            match r {
                PrinterReply::PrintAck(n) => self.note_count(n),
                other => {
                    tracing::warn!(device = self.framed.device(), reply = ?other, "unexpected reply ignored")
                }
            }
        }
        Ok(self.count)
    }

    fn status(&mut self) -> Result<PrinterStatus, Error> {
        self.out.clear();
        HostRequest::FaultStatus.encode_into(&mut self.out)?;
        self.framed.send(&self.out, "requesting fault status")?;
        match self.reply("requesting fault status")? {
            PrinterReply::FaultStatus {
                state,
                queued,
                count,
                faults,
            } => {
                self.note_count(count);
                let state = match state {
                    0 => PrinterState::Ready,
                    1 => PrinterState::Paused,
                    _ => PrinterState::Faulted,
                };
                Ok(PrinterStatus {
                    state,
                    faults: faults
                        .iter()
                        .map(|c| PrinterFault {
                            code: c.to_string(),
                            text: format!("fault {c}"),
                        })
                        .collect(),
                    queued: Some(u32::from(queued)),
                    printed: self.count,
                })
            }
            other => Err(Error::Protocol {
                device: self.framed.name(),
                during: "requesting fault status",
                source: malformed("reply", format!("expected fault status, got {other:?}")),
            }),
        }
    }

    fn buffer_depth(&self) -> usize {
        self.cfg.buffer_depth
    }
}

/// Device-side session of a Markem-Imaje twin.
pub struct MarkemSession {
    state: TwinState,
    acks: bool,
}

impl MarkemSession {
    /// A session on shared twin state.
    pub fn new(state: TwinState) -> Self {
        MarkemSession { state, acks: false }
    }
}

impl DeviceSession for MarkemSession {
    type Dec = RequestDecoder;
    fn decoder(&self) -> RequestDecoder {
        RequestDecoder::default()
    }
    fn on_message(&mut self, msg: HostRequest) -> Vec<u8> {
        let ack = |ok: bool| {
            if ok {
                PrinterReply::Ack
            } else {
                PrinterReply::Nak
            }
            .encode()
        };
        match msg {
            HostRequest::Enq => {
                let s = self.state.lock();
                ack(s.faults.is_empty() && !s.paused)
            }
            HostRequest::SelectJob(j) => ack(self.state.select(&j)),
            HostRequest::ExternalVariables(vars) => {
                let fields = vars
                    .into_iter()
                    .map(|(i, v)| (format!("V{i}"), String::from_utf8_lossy(&v).into_owned()))
                    .collect();
                ack(self.state.enqueue(fields).is_ok())
            }
            HostRequest::ClearBuffer => {
                self.state.clear_queue();
                ack(true)
            }
            HostRequest::PrintAckEnable(on) => {
                self.acks = on;
                ack(true)
            }
            HostRequest::FaultStatus => {
                let s = self.state.lock();
                PrinterReply::FaultStatus {
                    state: if !s.faults.is_empty() {
                        2
                    } else {
                        u8::from(s.paused)
                    },
                    queued: u16::try_from(s.queue.len()).unwrap_or(u16::MAX),
                    count: s.printed.len() as u32,
                    faults: s.faults.iter().map(|(c, _)| *c).collect(),
                }
                .encode()
            }
            HostRequest::Print => ack(self.state.print_one().is_some()),
        }
    }
    fn on_error(&mut self, err: &CodecError) -> Vec<u8> {
        tracing::debug!(error = %err, "markem twin: NAK for bad input");
        vec![NAK]
    }
    fn on_idle(&mut self) -> Vec<u8> {
        let pending: Vec<u64> = self.state.lock().unreported.drain(..).collect();
        if !self.acks {
            return Vec::new();
        }
        pending
            .into_iter()
            .flat_map(|n| PrinterReply::PrintAck(n as u32).encode())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_and_checksum() {
        let f = encode_frame(0x40, b"AB").unwrap_or_default();
        assert_eq!(
            f,
            vec![0x40, 0x00, 0x02, b'A', b'B', 0x40 ^ 0x02 ^ b'A' ^ b'B']
        );
    }

    #[test]
    fn external_variables_encode_into_a_reused_buffer() {
        let vars: [(u8, &[u8]); 2] = [(1, b"SN0001"), (2, b"L42")];
        let mut out = vec![ACK];
        assert!(encode_external_variables(&mut out, vars).is_ok());
        let owned =
            HostRequest::ExternalVariables(vars.iter().map(|(i, v)| (*i, v.to_vec())).collect());
        let mut want = vec![ACK];
        want.extend(owned.encode().unwrap_or_default());
        assert_eq!(out, want);
        // Too long a value: refused, the buffer as it was.
        let long = [b'x'; 256];
        assert!(matches!(
            encode_external_variables(&mut out, [(1, &long[..])]),
            Err(Error::Config(_))
        ));
        assert_eq!(out, want);
    }

    #[test]
    fn replies_are_parsed_in_place() {
        let mut d = MarkemDecoder::default();
        assert!(
            d.feed(&PrinterReply::PrintAck(7).encode())
                .and_then(|()| d.feed(&[NAK]))
                .is_ok()
        );
        assert_eq!(
            d.decode_with(PrinterReply::parse_raw),
            Ok(Some(PrinterReply::PrintAck(7)))
        );
        assert_eq!(
            d.decode_with(PrinterReply::parse_raw),
            Ok(Some(PrinterReply::Nak))
        );
        assert_eq!(d.pending(), 0);
        // A reply that does not parse leaves the buffer all the same.
        assert!(
            d.feed(&encode_frame(ident::PRINT_ACK, &[1]).unwrap_or_default())
                .is_ok()
        );
        assert!(d.decode_with(PrinterReply::parse_raw).is_err());
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn bad_checksum_then_recovery() {
        let mut d = MarkemDecoder::default();
        let mut f = encode_frame(0x45, &[]).unwrap_or_default();
        if let Some(last) = f.last_mut() {
            *last ^= 0xff;
        }
        f.push(ACK);
        assert!(d.feed(&f).is_ok());
        assert!(matches!(
            d.decode(),
            Err(CodecError::BadChecksum { ident: 0x45, .. })
        ));
        assert_eq!(d.decode(), Ok(Some(Unit::Control(ACK))));
    }

    #[test]
    fn oversize_refused_from_length_field() {
        let mut d = MarkemDecoder::new(16);
        assert!(d.feed(&[0x41, 0x01, 0x00]).is_ok());
        assert!(matches!(
            d.decode(),
            Err(CodecError::Oversize {
                size: 256,
                limit: 16
            })
        ));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn requests_roundtrip_drip() {
        let reqs = [
            HostRequest::Enq,
            HostRequest::SelectJob("J1".into()),
            HostRequest::ExternalVariables(vec![
                (1, b"0109506000134352".to_vec()),
                (2, b"X".to_vec()),
            ]),
            HostRequest::ClearBuffer,
            HostRequest::PrintAckEnable(true),
            HostRequest::FaultStatus,
            HostRequest::Print,
        ];
        let mut d = RequestDecoder::default();
        let mut got = Vec::new();
        for r in &reqs {
            for b in r.encode().unwrap_or_default() {
                assert!(d.feed(&[b]).is_ok());
                if let Ok(Some(m)) = d.decode() {
                    got.push(m);
                }
            }
        }
        assert_eq!(got, reqs);
    }

    #[test]
    fn replies_roundtrip() {
        let reps = [
            PrinterReply::Ack,
            PrinterReply::Nak,
            PrinterReply::PrintAck(70000),
            PrinterReply::FaultStatus {
                state: 2,
                queued: 3,
                count: 9,
                faults: vec![101, 7],
            },
        ];
        let mut d = ReplyDecoder::default();
        for r in &reps {
            assert!(d.feed(&r.encode()).is_ok());
            assert_eq!(d.decode().ok().flatten().as_ref(), Some(r));
        }
    }
}
