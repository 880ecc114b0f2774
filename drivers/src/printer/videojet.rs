//! Videojet/Zipher-style text protocol (thermal transfer coders such as DataFlex),
//! over TCP or RS-232: ASCII messages, fields separated by `|`, each ending in CR.
//!
//! Owns: the text codec for both ends ([`HostCommand`], [`PrinterMessage`],
//! [`TextDecoder`]), the [`VideojetPrinter`] driver and the [`VideojetSession`] twin.
//! Does not own: the job layouts stored on the printer.
//!
//! # Message set implemented
//! Modelled on the public description of the Zipher Text Communications Protocol;
//! validated against our twin only, not against a printer.
//!
//! | direction | bytes (then CR) | meaning | answer |
//! |---|---|---|---|
//! | host → printer | `SLA\|<job>\|` | select job `<job>`, empty its data queue | `ACK` or `ERR` |
//! | host → printer | `JDA\|<FIELD>=<value>\|…\|` | queue one print's variable data | `ACK` or `ERR` |
//! | host → printer | `CQI` | clear the data queue | `ACK` |
//! | host → printer | `GST` | get status | `STS` |
//! | host → printer | `PRN` | print one now (manual print; used by the twin's tests) | `ACK` or `ERR` |
//! | host → printer | `ASE\|1\|` / `ASE\|0\|` | asynchronous status on / off | `ACK` |
//! | printer → host | `ACK` | accepted | |
//! | printer → host | `ERR\|<code>\|<text>\|` | refused: 1 unknown job, 2 queue full, 3 faulted, 4 bad command | |
//! | printer → host | `STS\|<state>\|<queued>\|<count>\|<fault code>\|<fault text>\|` | state 0 ready, 1 paused, 2 faulted; count = total prints | |
//! | printer → host, async | `PRC\|<count>\|` | a print completed; count = total prints | |
//! | printer → host, async | `FLT\|<code>\|<text>\|` | a fault was raised | |
//!
//! Values may contain any byte 0x20–0x7E except `|` and `=` (and GS, 0x1D, for GS1
//! element strings); lines are limited to 1024 bytes.

use std::marker::PhantomData;
use std::time::Duration;

use crate::error::{CodecError, Error};
use crate::link::{Decoder, DeviceSession, Framed, Link, bounded_extend};
use crate::printer::{
    PrintItem, Printer, PrinterFault, PrinterState, PrinterStatus, TwinState, item_fields_iter,
};

const CR: u8 = b'\r';

/// Error codes carried by `ERR`.
pub mod err_code {
    /// Unknown job name.
    pub const UNKNOWN_JOB: u16 = 1;
    /// Data queue full.
    pub const QUEUE_FULL: u16 = 2;
    /// Printer faulted.
    pub const FAULTED: u16 = 3;
    /// Unknown or malformed command.
    pub const BAD_COMMAND: u16 = 4;
}

/// A decoded line, borrowed from the decoder's buffer: the command and its
/// `|`-separated arguments (the empty one after a trailing `|` is dropped). Reading it
/// allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextFrame<'a> {
    /// Three upper-case letters.
    pub cmd: &'a str,
    /// What follows the first `|`, if any.
    tail: Option<&'a str>,
    /// Number of arguments.
    n: usize,
}

fn malformed(what: &'static str, detail: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        what,
        detail: detail.into(),
    }
}

impl<'a> TextFrame<'a> {
    fn parse(line: &'a [u8]) -> Result<Self, CodecError> {
        if let Some(&b) = line
            .iter()
            .find(|&&b| !(0x20..=0x7e).contains(&b) && b != 0x1d)
        {
            return Err(CodecError::UnexpectedByte {
                byte: b,
                context: "in a text protocol line",
            });
        }
        // Printable ASCII and GS only (checked above): valid UTF-8.
        let text = std::str::from_utf8(line).map_err(|e| malformed("text line", e.to_string()))?;
        let (cmd, tail) = match text.split_once('|') {
            Some((cmd, tail)) => (cmd, Some(tail)),
            None => (text, None),
        };
        if cmd.len() != 3 || !cmd.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(malformed(
                "text command",
                format!("{cmd:.20?} is not three upper-case letters"),
            ));
        }
        let n = tail.map_or(0, |t| {
            let parts = t.split('|').count();
            if t.is_empty() || t.ends_with('|') {
                parts - 1
            } else {
                parts
            }
        });
        Ok(TextFrame { cmd, tail, n })
    }

    /// The arguments.
    pub fn args(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.tail.unwrap_or_default().split('|').take(self.n)
    }

    fn arg(&self, i: usize) -> Result<&'a str, CodecError> {
        self.args().nth(i).ok_or_else(|| {
            malformed(
                "text message",
                format!("{} lacks argument {}", self.cmd, i + 1),
            )
        })
    }

    fn num<T: std::str::FromStr>(&self, i: usize) -> Result<T, CodecError> {
        let a = self.arg(i)?;
        a.parse().map_err(|_| {
            malformed(
                "text message",
                format!("{} argument {} is not a number: {a:.20?}", self.cmd, i + 1),
            )
        })
    }
}

/// Append the line `cmd|arg|…|` CR to `out` (just `cmd` CR without arguments).
fn write_frame(out: &mut Vec<u8>, cmd: &str, args: &[&str]) {
    out.extend_from_slice(cmd.as_bytes());
    for a in args {
        out.push(b'|');
        out.extend_from_slice(a.as_bytes());
    }
    if !args.is_empty() {
        out.push(b'|');
    }
    out.push(CR);
}

/// [`write_frame`] into a new buffer.
fn encode_frame(cmd: &str, args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, cmd, args);
    out
}

/// A message type the [`TextDecoder`] can produce.
pub trait TextMessage: Sized {
    /// Interpret a decoded line.
    fn from_frame(f: &TextFrame<'_>) -> Result<Self, CodecError>;
}

/// Host → printer commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCommand {
    /// `SLA|job|`
    SelectJob(String),
    /// `JDA|NAME=value|…|`
    JobData(Vec<(String, String)>),
    /// `CQI`
    ClearQueue,
    /// `GST`
    GetStatus,
    /// `PRN`
    Print,
    /// `ASE|1|` or `ASE|0|`
    AsyncStatus(bool),
}

fn check_value(what: std::fmt::Arguments<'_>, v: &str) -> Result<(), Error> {
    if let Some(c) = v
        .chars()
        .find(|&c| matches!(c, '|' | '=') || !(c == '\u{1d}' || (' '..='~').contains(&c)))
    {
        return Err(Error::config(format!(
            "text protocol: {what} contains {c:?}, which cannot be sent"
        )));
    }
    Ok(())
}

/// Append `JDA|NAME=value|…|` CR for `fields` to `out`, refusing names and values the
/// protocol cannot carry (`Config` error; `out` is then as it was).
pub fn encode_job_data<'a>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(b"JDA");
    let mut any = false;
    for (k, v) in fields {
        let checked = check_value(format_args!("field name"), k)
            .and_then(|()| check_value(format_args!("field {k}"), v));
        if let Err(e) = checked {
            out.truncate(start);
            return Err(e);
        }
        out.push(b'|');
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        any = true;
    }
    if any {
        out.push(b'|');
    }
    out.push(CR);
    Ok(())
}

impl HostCommand {
    /// Encode, refusing values the protocol cannot carry (`Config` error).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// [`HostCommand::encode`] appended to `out` (a buffer reused from command to
    /// command; on an error `out` is as it was).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            HostCommand::SelectJob(j) => {
                check_value(format_args!("job name"), j)?;
                write_frame(out, "SLA", &[j]);
            }
            HostCommand::JobData(fields) => {
                encode_job_data(out, fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))?
            }
            HostCommand::ClearQueue => write_frame(out, "CQI", &[]),
            HostCommand::GetStatus => write_frame(out, "GST", &[]),
            HostCommand::Print => write_frame(out, "PRN", &[]),
            HostCommand::AsyncStatus(on) => write_frame(out, "ASE", &[if *on { "1" } else { "0" }]),
        }
        Ok(())
    }
}

impl TextMessage for HostCommand {
    fn from_frame(f: &TextFrame<'_>) -> Result<Self, CodecError> {
        Ok(match f.cmd {
            "SLA" => HostCommand::SelectJob(f.arg(0)?.to_string()),
            "JDA" => {
                let mut v = Vec::new();
                for a in f.args() {
                    let (k, val) = a
                        .split_once('=')
                        .ok_or_else(|| malformed("JDA", format!("field {a:.30?} has no '='")))?;
                    v.push((k.to_string(), val.to_string()));
                }
                if v.is_empty() {
                    return Err(malformed("JDA", "no fields"));
                }
                HostCommand::JobData(v)
            }
            "CQI" => HostCommand::ClearQueue,
            "GST" => HostCommand::GetStatus,
            "PRN" => HostCommand::Print,
            "ASE" => HostCommand::AsyncStatus(f.arg(0)? == "1"),
            other => {
                return Err(malformed(
                    "host command",
                    format!("unknown command {other}"),
                ));
            }
        })
    }
}

/// Printer → host messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterMessage {
    /// `ACK`
    Ack,
    /// `ERR|code|text|`
    Err {
        /// See [`err_code`].
        code: u16,
        /// Explanation.
        text: String,
    },
    /// `STS|state|queued|count|fault code|fault text|`
    Status {
        /// 0 ready, 1 paused, 2 faulted.
        state: u8,
        /// Prints queued.
        queued: u32,
        /// Total prints made by the printer.
        count: u64,
        /// First active fault code, 0 for none.
        fault_code: u16,
        /// Its text.
        fault_text: String,
    },
    /// `PRC|count|` (asynchronous).
    PrintComplete {
        /// Total prints made by the printer.
        count: u64,
    },
    /// `FLT|code|text|` (asynchronous).
    Fault {
        /// Fault code.
        code: u16,
        /// Fault text.
        text: String,
    },
}

impl PrinterMessage {
    /// Encode as the printer sends it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            PrinterMessage::Ack => encode_frame("ACK", &[]),
            PrinterMessage::Err { code, text } => encode_frame("ERR", &[&code.to_string(), text]),
            PrinterMessage::Status {
                state,
                queued,
                count,
                fault_code,
                fault_text,
            } => encode_frame(
                "STS",
                &[
                    &state.to_string(),
                    &queued.to_string(),
                    &count.to_string(),
                    &fault_code.to_string(),
                    fault_text,
                ],
            ),
            PrinterMessage::PrintComplete { count } => encode_frame("PRC", &[&count.to_string()]),
            PrinterMessage::Fault { code, text } => encode_frame("FLT", &[&code.to_string(), text]),
        }
    }
}

impl TextMessage for PrinterMessage {
    fn from_frame(f: &TextFrame<'_>) -> Result<Self, CodecError> {
        let opt_text = |i: usize| f.args().nth(i).map(str::to_string).unwrap_or_default();
        Ok(match f.cmd {
            "ACK" => PrinterMessage::Ack,
            "ERR" => PrinterMessage::Err {
                code: f.num(0)?,
                text: opt_text(1),
            },
            "STS" => PrinterMessage::Status {
                state: f.num(0)?,
                queued: f.num(1)?,
                count: f.num(2)?,
                fault_code: f.num(3)?,
                fault_text: opt_text(4),
            },
            "PRC" => PrinterMessage::PrintComplete { count: f.num(0)? },
            "FLT" => PrinterMessage::Fault {
                code: f.num(0)?,
                text: opt_text(1),
            },
            other => {
                return Err(malformed(
                    "printer message",
                    format!("unknown message {other}"),
                ));
            }
        })
    }
}

/// CR-terminated line decoder producing `M` (LF is ignored; lines ≤ limit bytes).
#[derive(Debug)]
pub struct TextDecoder<M> {
    buf: Vec<u8>,
    limit: usize,
    _m: PhantomData<fn() -> M>,
}

impl<M> Default for TextDecoder<M> {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl<M> TextDecoder<M> {
    /// A decoder accepting lines up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        TextDecoder {
            buf: Vec::new(),
            limit,
            _m: PhantomData,
        }
    }
}

impl<M: TextMessage> Decoder for TextDecoder<M> {
    type Item = M;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        bounded_extend(&mut self.buf, bytes, self.limit)
    }
    fn decode(&mut self) -> Result<Option<M>, CodecError> {
        loop {
            let skip = self.buf.iter().take_while(|&&b| b == b'\n').count();
            self.buf.drain(..skip);
            match self.buf.iter().position(|&b| b == CR) {
                Some(0) => {
                    self.buf.drain(..1);
                }
                Some(end) => {
                    // Parsed in place, then the line (and its CR) leaves the buffer.
                    let r = if end > self.limit {
                        Err(CodecError::Oversize {
                            size: end,
                            limit: self.limit,
                        })
                    } else {
                        TextFrame::parse(self.buf.get(..end).unwrap_or_default())
                            .and_then(|f| M::from_frame(&f))
                            .map(Some)
                    };
                    self.buf.drain(..=end);
                    return r;
                }
                None if self.buf.len() > self.limit => {
                    let size = self.buf.len();
                    self.buf.clear();
                    return Err(CodecError::Oversize {
                        size,
                        limit: self.limit,
                    });
                }
                None => return Ok(None),
            }
        }
    }
    fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Settings of the Videojet driver.
#[derive(Debug, Clone)]
pub struct VideojetConfig {
    /// Timeout for each round trip (default 2 s).
    pub timeout: Duration,
    /// Field that carries the element string for items without fields (default `CODE`).
    pub code_field: String,
    /// Prints kept ahead of the line (default 4).
    pub buffer_depth: usize,
}

impl Default for VideojetConfig {
    fn default() -> Self {
        VideojetConfig {
            timeout: Duration::from_secs(2),
            code_field: "CODE".into(),
            buffer_depth: 4,
        }
    }
}

/// Videojet/Zipher text protocol driver (host side).
pub struct VideojetPrinter {
    framed: Framed<TextDecoder<PrinterMessage>>,
    /// The command being sent, reused from command to command.
    out: Vec<u8>,
    cfg: VideojetConfig,
    base: Option<u64>,
    count: u64,
    faults: Vec<PrinterFault>,
}

impl VideojetPrinter {
    /// Connect over an open link: enables asynchronous status and reads the printer's
    /// print counter as the baseline (two round trips).
    pub fn new(
        link: Box<dyn Link>,
        device: impl Into<String>,
        cfg: VideojetConfig,
    ) -> Result<Self, Error> {
        let mut p = VideojetPrinter {
            framed: Framed::new(link, TextDecoder::default(), device),
            out: Vec::new(),
            cfg,
            base: None,
            count: 0,
            faults: Vec::new(),
        };
        p.command(
            &HostCommand::AsyncStatus(true),
            "enabling asynchronous status",
        )?;
        p.status()?;
        Ok(p)
    }

    fn note_count(&mut self, count: u64) {
        let base = *self.base.get_or_insert(count);
        self.count = self.count.max(count.saturating_sub(base));
    }

    /// Handle an asynchronous message; returns the message back if it is a reply.
    fn absorb(&mut self, m: PrinterMessage) -> Option<PrinterMessage> {
        match m {
            PrinterMessage::PrintComplete { count } => {
                self.note_count(count);
                None
            }
            PrinterMessage::Fault { code, text } => {
                tracing::warn!(device = self.framed.device(), code, text = %text, "printer fault");
                self.faults.push(PrinterFault {
                    code: code.to_string(),
                    text,
                });
                None
            }
            other => Some(other),
        }
    }

    fn reply(&mut self, during: &'static str) -> Result<PrinterMessage, Error> {
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
            let m = self.framed.recv(left, during)?;
            if let Some(r) = self.absorb(m) {
                return Ok(r);
            }
        }
    }

    fn command(&mut self, cmd: &HostCommand, during: &'static str) -> Result<(), Error> {
        self.out.clear();
        cmd.encode_into(&mut self.out)?;
        self.send_out(during)
    }

    /// Send the command in `self.out` and take its ACK.
    fn send_out(&mut self, during: &'static str) -> Result<(), Error> {
        self.framed.send(&self.out, during)?;
        match self.reply(during)? {
            PrinterMessage::Ack => Ok(()),
            PrinterMessage::Err { code, text } => Err(Error::DeviceFault {
                device: self.framed.name(),
                code: Some(u32::from(code)),
                detail: format!("{during}: {text}"),
            }),
            other => Err(Error::Protocol {
                device: self.framed.name(),
                during,
                source: malformed("reply", format!("expected ACK or ERR, got {other:?}")),
            }),
        }
    }
}

impl Printer for VideojetPrinter {
    fn describe(&self) -> &str {
        self.framed.device()
    }

    fn select_job(&mut self, job: &str) -> Result<(), Error> {
        self.command(&HostCommand::SelectJob(job.to_string()), "selecting job")
    }

    fn load(&mut self, items: &[PrintItem]) -> Result<(), Error> {
        for item in items {
            self.out.clear();
            encode_job_data(&mut self.out, item_fields_iter(item, &self.cfg.code_field))?;
            self.send_out("loading print data")?;
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<(), Error> {
        self.command(&HostCommand::ClearQueue, "clearing the queue")
    }

    fn printed_count(&mut self) -> Result<u64, Error> {
        while let Some(m) = self
            .framed
            .poll(Duration::ZERO, "reading asynchronous status")?
        {
            if let Some(other) = self.absorb(m) {
                tracing::warn!(device = self.framed.device(), message = ?other, "unexpected message ignored");
            }
        }
        Ok(self.count)
    }

    fn status(&mut self) -> Result<PrinterStatus, Error> {
        self.out.clear();
        HostCommand::GetStatus.encode_into(&mut self.out)?;
        self.framed.send(&self.out, "requesting status")?;
        match self.reply("requesting status")? {
            PrinterMessage::Status {
                state,
                queued,
                count,
                fault_code,
                fault_text,
            } => {
                self.note_count(count);
                self.faults.clear();
                if fault_code != 0 {
                    self.faults.push(PrinterFault {
                        code: fault_code.to_string(),
                        text: fault_text,
                    });
                }
                let state = match state {
                    0 => PrinterState::Ready,
                    1 => PrinterState::Paused,
                    _ => PrinterState::Faulted,
                };
                Ok(PrinterStatus {
                    state,
                    faults: self.faults.clone(),
                    queued: Some(queued),
                    printed: self.count,
                })
            }
            other => Err(Error::Protocol {
                device: self.framed.name(),
                during: "requesting status",
                source: malformed("reply", format!("expected STS, got {other:?}")),
            }),
        }
    }

    fn buffer_depth(&self) -> usize {
        self.cfg.buffer_depth
    }
}

/// Device-side session of a Videojet twin.
pub struct VideojetSession {
    state: TwinState,
    async_on: bool,
    faults_reported: usize,
}

impl VideojetSession {
    /// A session on shared twin state.
    pub fn new(state: TwinState) -> Self {
        VideojetSession {
            state,
            async_on: false,
            faults_reported: 0,
        }
    }
}

impl DeviceSession for VideojetSession {
    type Dec = TextDecoder<HostCommand>;
    fn decoder(&self) -> Self::Dec {
        TextDecoder::default()
    }
    fn on_message(&mut self, msg: HostCommand) -> Vec<u8> {
        let err = |code, text: &str| {
            PrinterMessage::Err {
                code,
                text: text.into(),
            }
            .encode()
        };
        match msg {
            HostCommand::SelectJob(j) => {
                if self.state.select(&j) {
                    PrinterMessage::Ack.encode()
                } else {
                    err(err_code::UNKNOWN_JOB, "unknown job")
                }
            }
            HostCommand::JobData(fields) => match self.state.enqueue(fields) {
                Ok(()) => PrinterMessage::Ack.encode(),
                Err("print buffer full") => err(err_code::QUEUE_FULL, "queue full"),
                Err(t) => err(err_code::FAULTED, t),
            },
            HostCommand::ClearQueue => {
                self.state.clear_queue();
                PrinterMessage::Ack.encode()
            }
            HostCommand::GetStatus => {
                let s = self.state.lock();
                let (fault_code, fault_text) =
                    s.faults.first().cloned().unwrap_or((0, String::new()));
                let state = if !s.faults.is_empty() {
                    2
                } else {
                    u8::from(s.paused)
                };
                PrinterMessage::Status {
                    state,
                    queued: s.queue.len() as u32,
                    count: s.printed.len() as u64,
                    fault_code,
                    fault_text,
                }
                .encode()
            }
            HostCommand::Print => match self.state.print_one() {
                Some(_) => PrinterMessage::Ack.encode(),
                None => err(err_code::FAULTED, "nothing to print"),
            },
            HostCommand::AsyncStatus(on) => {
                self.async_on = on;
                PrinterMessage::Ack.encode()
            }
        }
    }
    fn on_error(&mut self, e: &CodecError) -> Vec<u8> {
        PrinterMessage::Err {
            code: err_code::BAD_COMMAND,
            text: e.to_string().replace('|', "/"),
        }
        .encode()
    }
    fn on_idle(&mut self) -> Vec<u8> {
        let mut s = self.state.lock();
        let mut out = Vec::new();
        let unreported: Vec<u64> = s.unreported.drain(..).collect();
        if self.async_on {
            for count in unreported {
                out.extend(PrinterMessage::PrintComplete { count }.encode());
            }
            for (code, text) in s.faults.iter().skip(self.faults_reported) {
                out.extend(
                    PrinterMessage::Fault {
                        code: *code,
                        text: text.clone(),
                    }
                    .encode(),
                );
            }
        }
        self.faults_reported = s.faults.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all<M: TextMessage>(bytes: &[u8]) -> Vec<Result<M, CodecError>> {
        let mut d = TextDecoder::<M>::default();
        let mut out = Vec::new();
        for b in bytes {
            if let Err(e) = d.feed(&[*b]) {
                out.push(Err(e));
            }
            loop {
                match d.decode() {
                    Ok(Some(m)) => out.push(Ok(m)),
                    Ok(None) => break,
                    Err(e) => out.push(Err(e)),
                }
            }
        }
        out
    }

    #[test]
    fn commands_roundtrip() {
        let cmds = [
            HostCommand::SelectJob("PHARMA1".into()),
            HostCommand::JobData(vec![
                ("SERIAL".into(), "ABC123".into()),
                ("LOT".into(), "L1".into()),
            ]),
            HostCommand::ClearQueue,
            HostCommand::GetStatus,
            HostCommand::Print,
            HostCommand::AsyncStatus(true),
        ];
        let mut bytes = Vec::new();
        for c in &cmds {
            bytes.extend(c.encode().unwrap_or_default());
        }
        let got: Vec<HostCommand> = decode_all(&bytes)
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(got, cmds);
    }

    #[test]
    fn values_with_separators_are_refused() {
        let e = HostCommand::JobData(vec![("SERIAL".into(), "A|B".into())]).encode();
        assert!(matches!(e, Err(Error::Config(_))));
    }

    #[test]
    fn garbage_gives_errors_and_decoding_continues() {
        let r = decode_all::<PrinterMessage>(b"xyz\r\x01\x02\rACK\rSTS|a|\r");
        assert_eq!(r.len(), 4);
        assert!(r[0].is_err() && r[1].is_err() && r[3].is_err());
        assert_eq!(r[2], Ok(PrinterMessage::Ack));
    }

    #[test]
    fn long_line_is_bounded() {
        let mut d = TextDecoder::<PrinterMessage>::new(16);
        let mut saw = false;
        for _ in 0..20 {
            if d.feed(&[b'A'; 100]).is_err() || d.decode().is_err() {
                saw = true;
            }
            assert!(d.pending() <= 16 + crate::link::READ_CHUNK);
        }
        assert!(saw);
    }
}
