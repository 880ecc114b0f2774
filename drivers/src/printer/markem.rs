//! Markem-Imaje-style binary protocol (CIJ 9xxx family) over TCP or RS-232: single
//! control bytes (ENQ/ACK/NAK) and checksummed frames.
//!
//! Owns: the binary codec for both ends ([`MarkemDecoder`], [`HostRequest`],
//! [`PrinterReply`]), the [`MarkemPrinter`] driver and the [`MarkemSession`] twin.
//! Does not own: message layouts stored on the printer.
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
    PrintItem, Printer, PrinterFault, PrinterState, PrinterStatus, TwinState, item_fields,
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
    let len = u16::try_from(data.len()).map_err(|_| {
        Error::config(format!(
            "frame 0x{id:02x}: {} data bytes exceed 65535",
            data.len()
        ))
    })?;
    let mut f = Vec::with_capacity(data.len() + 4);
    f.push(id);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(data);
    f.push(xor(&f));
    Ok(f)
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

impl Decoder for MarkemDecoder {
    type Item = Unit;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        bounded_extend(&mut self.buf, bytes, self.limit + 4)
    }
    fn decode(&mut self) -> Result<Option<Unit>, CodecError> {
        let Some(&first) = self.buf.first() else {
            return Ok(None);
        };
        if matches!(first, ENQ | ACK | NAK) {
            self.buf.drain(..1);
            return Ok(Some(Unit::Control(first)));
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
        let frame: Vec<u8> = self.buf.drain(..4 + len).collect();
        let body = frame.get(..3 + len).unwrap_or_default();
        let computed = xor(body);
        if computed != received {
            return Err(CodecError::BadChecksum {
                ident: first,
                computed,
                received,
            });
        }
        Ok(Some(Unit::Frame {
            ident: first,
            data: body.get(3..).unwrap_or_default().to_vec(),
        }))
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
        match self {
            HostRequest::Enq => Ok(vec![ENQ]),
            HostRequest::SelectJob(j) => encode_frame(ident::SELECT_JOB, j.as_bytes()),
            HostRequest::ExternalVariables(vars) => {
                let mut d = Vec::new();
                for (i, v) in vars {
                    let l = u8::try_from(v.len()).map_err(|_| {
                        Error::config(format!(
                            "external variable {i}: {} bytes exceed 255",
                            v.len()
                        ))
                    })?;
                    d.push(*i);
                    d.push(l);
                    d.extend_from_slice(v);
                }
                encode_frame(ident::EXTERNAL_VARIABLES, &d)
            }
            HostRequest::ClearBuffer => encode_frame(ident::CLEAR_BUFFER, &[]),
            HostRequest::PrintAckEnable(on) => {
                encode_frame(ident::PRINT_ACK_ENABLE, &[u8::from(*on)])
            }
            HostRequest::FaultStatus => encode_frame(ident::FAULT_STATUS, &[]),
            HostRequest::Print => encode_frame(ident::PRINT, &[]),
        }
    }

    /// Interpret a decoded unit (device side).
    pub fn parse(u: Unit) -> Result<Self, CodecError> {
        match u {
            Unit::Control(ENQ) => Ok(HostRequest::Enq),
            Unit::Control(b) => Err(CodecError::UnexpectedByte {
                byte: b,
                context: "from the host",
            }),
            Unit::Frame { ident, data } => match ident {
                ident::SELECT_JOB => Ok(HostRequest::SelectJob(
                    String::from_utf8(data)
                        .map_err(|_| malformed("select job", "job name is not UTF-8"))?,
                )),
                ident::EXTERNAL_VARIABLES => {
                    let mut vars = Vec::new();
                    let mut rest = data.as_slice();
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
        match u {
            Unit::Control(ACK) => Ok(PrinterReply::Ack),
            Unit::Control(NAK) => Ok(PrinterReply::Nak),
            Unit::Control(b) => Err(CodecError::UnexpectedByte {
                byte: b,
                context: "from the printer",
            }),
            Unit::Frame {
                ident: ident::PRINT_ACK,
                data,
            } => {
                let b: [u8; 4] = data.as_slice().try_into().map_err(|_| {
                    malformed(
                        "print acknowledgement",
                        format!("{} data bytes, expected 4", data.len()),
                    )
                })?;
                Ok(PrinterReply::PrintAck(u32::from_be_bytes(b)))
            }
            Unit::Frame {
                ident: ident::FAULT_STATUS,
                data,
            } => {
                let bad = || {
                    malformed(
                        "fault status",
                        format!("{} data bytes do not match the layout", data.len()),
                    )
                };
                let [state, q0, q1, c0, c1, c2, c3, n, rest @ ..] = data.as_slice() else {
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
            Unit::Frame { ident, .. } => Err(malformed(
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
        self.0.decode()?.map(PrinterReply::parse).transpose()
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
        self.0.decode()?.map(HostRequest::parse).transpose()
    }
    fn pending(&self) -> usize {
        self.0.pending()
    }
}

/// Markem-Imaje printer driver (host side).
pub struct MarkemPrinter {
    framed: Framed<ReplyDecoder>,
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
                    device: self.framed.device().to_string(),
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
        self.framed.send(&req.encode()?, during)?;
        match self.reply(during)? {
            PrinterReply::Ack => Ok(()),
            PrinterReply::Nak => Err(Error::DeviceFault {
                device: self.framed.device().to_string(),
                code: Some(u32::from(NAK)),
                detail: format!("NAK while {during}"),
            }),
            other => Err(Error::Protocol {
                device: self.framed.device().to_string(),
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
            let vars = item_fields(item, "")
                .into_iter()
                .enumerate()
                .map(|(i, (_, v))| {
                    (
                        u8::try_from(i + 1).unwrap_or(u8::MAX),
                        v.as_bytes().to_vec(),
                    )
                })
                .collect();
            self.command(
                &HostRequest::ExternalVariables(vars),
                "transmitting external variables",
            )?;
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
        self.framed.send(
            &HostRequest::FaultStatus.encode()?,
            "requesting fault status",
        )?;
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
                device: self.framed.device().to_string(),
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
