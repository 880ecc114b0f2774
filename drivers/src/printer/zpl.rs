//! Zebra ZPL over raw TCP (port 9100) or RS-232: label formats with a GS1 DataMatrix
//! (`^BX` with `_` as escape character, `_1` = FNC1), `~HS` host status, `~JA` cancel.
//!
//! Owns: the ZPL codec for both ends (host: [`render_label`], [`HostStatusDecoder`],
//! [`HsLineDecoder`], [`HostStatus::parse`]; device: [`ZplDecoder`],
//! [`HostStatus::encode`]), the [`ZebraPrinter`] driver and the [`ZplSession`] twin.
//! Does not own: GS1 syntax (the element string arrives finished).
//!
//! The driver's per-label path allocates nothing: labels are rendered into one buffer
//! per connection ([`render_label_into`]) and the `~HS` answer is parsed in place in
//! the decoder's buffer ([`HostStatusDecoder`]).
//!
//! # Bytes
//! Host → printer: label formats `^XA…^XZ` (one per print, `^PQ1`), `~HS`, `~JA`.
//! Printer → host, only in answer to `~HS`: three lines, each `STX … ETX CR LF`:
//! 1. `aaa,b,c,dddd,eee,f,g,h,iii,j,k,l`: communication settings, paper out, pause,
//!    label length (dots), formats in receive buffer, buffer full, diagnostic mode,
//!    partial format, unused, corrupt RAM, under temperature, over temperature;
//! 2. `mmm,n,o,p,q,r,s,t,uuuuuuuu,v,www`: function settings, unused, head up,
//!    ribbon out, thermal transfer mode, print mode, print width mode, label waiting,
//!    labels remaining in batch, format while printing, graphics stored;
//! 3. `xxxx,y`: password, static RAM installed.
//!
//! # DataMatrix data escaping (`^FD` after `^BX…,_`)
//! The field starts with `_1` (FNC1 in first position = GS1 DataMatrix); each GS
//! (0x1D) separator becomes `_1`; a literal `_` becomes `_d095`. `^` and `~` (ZPL
//! command prefixes) and other control characters cannot be sent and give a
//! `Config` error.

use std::time::Duration;

use crate::error::{CodecError, Error};
use crate::link::{Decoder, DeviceSession, Framed, Link, bounded_extend};
use crate::printer::{PrintItem, Printer, PrinterFault, PrinterState, PrinterStatus, TwinState};

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const GS: char = '\u{1d}';

/// The host status request.
pub const HS_REQUEST: &[u8] = b"~HS";
/// Cancel all formats in the printer's buffer.
pub const CANCEL_ALL: &[u8] = b"~JA";
/// Default template: a GS1 DataMatrix (module 6 dots, ECC 200) at 40,40.
pub const DEFAULT_TEMPLATE: &str = "^XA^FO40,40^BXN,6,200,,,,_^FD{DM}^FS^PQ1^XZ";

/// Escape a GS1 element string for a `^BX` field with `_` as escape character.
pub fn escape_datamatrix(element_string: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(element_string.len() + 4);
    escape_datamatrix_into(&mut out, element_string)?;
    Ok(out)
}

/// [`escape_datamatrix`] appended to `out` (on an error `out` is as it was).
pub fn escape_datamatrix_into(out: &mut String, element_string: &str) -> Result<(), Error> {
    let start = out.len();
    let r = escape_to(out, element_string);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn escape_to(out: &mut String, element_string: &str) -> Result<(), Error> {
    out.push_str("_1");
    for (i, c) in element_string.chars().enumerate() {
        match c {
            GS => out.push_str("_1"),
            '_' => out.push_str("_d095"),
            '^' | '~' => {
                return Err(Error::config(format!(
                    "ZPL: character {c:?} at position {i} of the element string is a ZPL command prefix"
                )));
            }
            c if c.is_ascii_graphic() => out.push(c),
            c => {
                return Err(Error::config(format!(
                    "ZPL: character {c:?} at position {i} of the element string cannot be printed in a DataMatrix field"
                )));
            }
        }
    }
    Ok(())
}

/// Undo [`escape_datamatrix`] (device side): `_1` → GS (the leading one dropped).
pub fn unescape_datamatrix(fd: &str) -> Result<String, CodecError> {
    let bad = |detail: String| CodecError::Malformed {
        what: "^BX field data",
        detail,
    };
    let body = fd
        .strip_prefix("_1")
        .ok_or_else(|| bad(format!("does not start with FNC1 (_1): {:.40}", fd)))?;
    let mut out = String::with_capacity(body.len());
    let mut it = body.chars();
    while let Some(c) = it.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('1') => out.push(GS),
            Some('d') => {
                let digits: String = it.by_ref().take(3).collect();
                let v = digits
                    .parse::<u8>()
                    .map_err(|_| bad(format!("bad _d escape {digits:?}")))?;
                out.push(char::from(v));
            }
            other => {
                return Err(bad(format!(
                    "unsupported escape _{}",
                    other.map(String::from).unwrap_or_default()
                )));
            }
        }
    }
    Ok(out)
}

fn check_text(name: &str, value: &str) -> Result<(), Error> {
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '^' | '~') || c.is_control())
    {
        return Err(Error::config(format!(
            "ZPL: field {name} contains {c:?}, which cannot be sent in ^FD"
        )));
    }
    Ok(())
}

/// Render one label: `{DM}` in the template becomes the escaped element string and
/// `{NAME}` becomes field `NAME`'s value.
pub fn render_label(template: &str, item: &PrintItem) -> Result<Vec<u8>, Error> {
    let mut out = String::with_capacity(template.len() + item.element_string.len() + 16);
    render_label_into(&mut out, template, item)?;
    Ok(out.into_bytes())
}

/// [`render_label`] appended to `out` (a buffer reused from label to label; on an
/// error `out` is as it was). Every field and the element string are checked even
/// when the template does not use them; a placeholder without a value is a `Config`
/// error.
pub fn render_label_into(out: &mut String, template: &str, item: &PrintItem) -> Result<(), Error> {
    let start = out.len();
    let r = render_to(out, template, item);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn render_to(out: &mut String, template: &str, item: &PrintItem) -> Result<(), Error> {
    for (k, v) in &item.fields {
        check_text(k, v)?;
    }
    let mut dm = false;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest.get(open..).and_then(|s| s.find('}')) else {
            break;
        };
        out.push_str(rest.get(..open).unwrap_or_default());
        let name = rest.get(open + 1..open + len).unwrap_or_default();
        if name == "DM" {
            escape_datamatrix_into(out, &item.element_string)?;
            dm = true;
        } else if let Some((_, v)) = item.fields.iter().find(|(k, _)| k == name) {
            out.push_str(v);
        } else {
            return Err(Error::config(format!(
                "ZPL: template placeholder {{{name}}} has no value for unit {}",
                item.unit
            )));
        }
        rest = rest.get(open + len + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    if !dm {
        // Checked all the same, as if printed.
        let mark = out.len();
        escape_datamatrix_into(out, &item.element_string)?;
        out.truncate(mark);
    }
    Ok(())
}

/// Decodes the printer's `~HS` answer into its `STX…ETX` lines (host side), one owned
/// line at a time (for tools and tests; the driver uses [`HostStatusDecoder`]).
/// CR and LF between frames are skipped; any other byte outside a frame is an error.
#[derive(Debug)]
pub struct HsLineDecoder {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for HsLineDecoder {
    fn default() -> Self {
        Self::new(256)
    }
}

impl HsLineDecoder {
    /// A decoder accepting lines up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        HsLineDecoder {
            buf: Vec::new(),
            limit,
        }
    }
}

impl Decoder for HsLineDecoder {
    type Item = String;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        bounded_extend(&mut self.buf, bytes, self.limit)
    }
    fn decode(&mut self) -> Result<Option<String>, CodecError> {
        let skip = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        self.buf.drain(..skip);
        let Some(&first) = self.buf.first() else {
            return Ok(None);
        };
        if first != STX {
            self.buf.drain(..1);
            return Err(CodecError::UnexpectedByte {
                byte: first,
                context: "outside an STX…ETX status line",
            });
        }
        match self.buf.iter().position(|&b| b == ETX) {
            Some(end) => {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let inner = line.get(1..end).unwrap_or_default();
                if let Some(&b) = inner.iter().find(|b| !b.is_ascii() || b.is_ascii_control()) {
                    return Err(CodecError::UnexpectedByte {
                        byte: b,
                        context: "inside a status line",
                    });
                }
                Ok(Some(String::from_utf8_lossy(inner).into_owned()))
            }
            None if self.buf.len() > self.limit => {
                let size = self.buf.len();
                self.buf.clear();
                Err(CodecError::Oversize {
                    size,
                    limit: self.limit,
                })
            }
            None => Ok(None),
        }
    }
    fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Decodes the printer's whole `~HS` answer (three `STX…ETX` lines) into a
/// [`HostStatus`], parsed in place in its buffer: nothing is allocated for a
/// well-formed answer (host side). CR and LF between lines are skipped; any other
/// byte outside a line is an error, as is a control or non-ASCII byte inside one.
#[derive(Debug)]
pub struct HostStatusDecoder {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for HostStatusDecoder {
    fn default() -> Self {
        Self::new(768)
    }
}

impl HostStatusDecoder {
    /// A decoder accepting answers up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        HostStatusDecoder {
            buf: Vec::new(),
            limit,
        }
    }

    fn need_more(&mut self) -> Result<Option<HostStatus>, CodecError> {
        if self.buf.len() > self.limit {
            let size = self.buf.len();
            self.buf.clear();
            return Err(CodecError::Oversize {
                size,
                limit: self.limit,
            });
        }
        Ok(None)
    }
}

impl Decoder for HostStatusDecoder {
    type Item = HostStatus;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        bounded_extend(&mut self.buf, bytes, self.limit)
    }
    fn decode(&mut self) -> Result<Option<HostStatus>, CodecError> {
        let mut lines = [(0, 0); 3];
        let mut pos = 0;
        for line in &mut lines {
            while matches!(self.buf.get(pos), Some(b'\r' | b'\n')) {
                pos += 1;
            }
            match self.buf.get(pos) {
                None => return self.need_more(),
                Some(&STX) => {}
                Some(&byte) => {
                    self.buf.drain(..=pos);
                    return Err(CodecError::UnexpectedByte {
                        byte,
                        context: "outside an STX…ETX status line",
                    });
                }
            }
            let from = pos + 1;
            let Some(len) = self
                .buf
                .get(from..)
                .and_then(|rest| rest.iter().position(|&b| b == ETX))
            else {
                return self.need_more();
            };
            let inner = self.buf.get(from..from + len).unwrap_or_default();
            if let Some(&byte) = inner.iter().find(|b| !b.is_ascii() || b.is_ascii_control()) {
                self.buf.drain(..=from + len);
                return Err(CodecError::UnexpectedByte {
                    byte,
                    context: "inside a status line",
                });
            }
            *line = (from, from + len);
            pos = from + len + 1;
        }
        // Printable ASCII only (checked above): valid UTF-8.
        let text = |(a, b): (usize, usize)| {
            std::str::from_utf8(self.buf.get(a..b).unwrap_or_default()).unwrap_or_default()
        };
        let r = HostStatus::parse(&lines.map(text));
        self.buf.drain(..pos);
        r.map(Some)
    }
    fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// The fields of a `~HS` answer this crate uses (others are kept for re-encoding).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostStatus {
    /// Communication settings (line 1 field 1, 3 digits).
    pub comm_settings: u16,
    /// Paper out.
    pub paper_out: bool,
    /// Paused.
    pub paused: bool,
    /// Label length in dots.
    pub label_length: u32,
    /// Formats in the receive buffer (not yet printing).
    pub formats_in_buffer: u32,
    /// Receive buffer full.
    pub buffer_full: bool,
    /// Partial format in progress.
    pub partial_format: bool,
    /// Corrupt RAM (configuration lost).
    pub corrupt_ram: bool,
    /// Under temperature.
    pub under_temperature: bool,
    /// Over temperature.
    pub over_temperature: bool,
    /// Function settings (line 2 field 1).
    pub function_settings: u16,
    /// Print head up (open).
    pub head_up: bool,
    /// Ribbon out.
    pub ribbon_out: bool,
    /// Thermal transfer mode (else direct thermal).
    pub thermal_transfer: bool,
    /// Print mode digit.
    pub print_mode: u8,
    /// Label waiting to be taken (peel-off).
    pub label_waiting: bool,
    /// Labels remaining in the current batch.
    pub labels_remaining: u32,
    /// Graphic images stored.
    pub graphics_stored: u32,
}

/// The `N` comma-separated fields of a status line, borrowed.
fn fields<'a, const N: usize>(
    line: &'a str,
    which: &'static str,
) -> Result<[&'a str; N], CodecError> {
    let mut f = [""; N];
    let mut n = 0;
    for part in line.split(',') {
        if let Some(slot) = f.get_mut(n) {
            *slot = part;
        }
        n += 1;
    }
    if n != N {
        return Err(CodecError::Malformed {
            what: which,
            detail: format!("expected {N} comma-separated fields, got {n}: {line:.60}"),
        });
    }
    Ok(f)
}

fn num<T: std::str::FromStr>(f: &[&str], i: usize, which: &'static str) -> Result<T, CodecError> {
    let s = f.get(i).copied().unwrap_or_default();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodecError::Malformed {
            what: which,
            detail: format!("field {} is not a number: {s:?}", i + 1),
        });
    }
    s.parse().map_err(|_| CodecError::Malformed {
        what: which,
        detail: format!("field {} out of range: {s:?}", i + 1),
    })
}

fn flag(f: &[&str], i: usize, which: &'static str) -> Result<bool, CodecError> {
    match f.get(i).copied() {
        Some("0") => Ok(false),
        Some("1") => Ok(true),
        other => Err(CodecError::Malformed {
            what: which,
            detail: format!(
                "field {} is not a 0/1 flag: {:?}",
                i + 1,
                other.unwrap_or_default()
            ),
        }),
    }
}

impl HostStatus {
    /// Parse the three `~HS` lines (without STX/ETX). Allocates nothing unless the
    /// lines are malformed.
    pub fn parse<S: AsRef<str>>(lines: &[S; 3]) -> Result<Self, CodecError> {
        const L1: &str = "~HS line 1";
        const L2: &str = "~HS line 2";
        const L3: &str = "~HS line 3";
        let [l1, l2, l3] = lines;
        let a: [&str; 12] = fields(l1.as_ref(), L1)?;
        let b: [&str; 11] = fields(l2.as_ref(), L2)?;
        let c: [&str; 2] = fields(l3.as_ref(), L3)?;
        let _: u32 = num(&c, 0, L3)?;
        Ok(HostStatus {
            comm_settings: num(&a, 0, L1)?,
            paper_out: flag(&a, 1, L1)?,
            paused: flag(&a, 2, L1)?,
            label_length: num(&a, 3, L1)?,
            formats_in_buffer: num(&a, 4, L1)?,
            buffer_full: flag(&a, 5, L1)?,
            partial_format: flag(&a, 7, L1)?,
            corrupt_ram: flag(&a, 9, L1)?,
            under_temperature: flag(&a, 10, L1)?,
            over_temperature: flag(&a, 11, L1)?,
            function_settings: num(&b, 0, L2)?,
            head_up: flag(&b, 2, L2)?,
            ribbon_out: flag(&b, 3, L2)?,
            thermal_transfer: flag(&b, 4, L2)?,
            print_mode: num(&b, 5, L2)?,
            label_waiting: flag(&b, 7, L2)?,
            labels_remaining: num(&b, 8, L2)?,
            graphics_stored: num(&b, 10, L2)?,
        })
    }

    /// Encode as the printer sends it (device side): three `STX…ETX CR LF` lines.
    pub fn encode(&self) -> Vec<u8> {
        let b = |v: bool| u8::from(v);
        format!(
            "\x02{:03},{},{},{:04},{:03},{},0,{},000,{},{},{}\x03\r\n\x02{:03},0,{},{},{},{},6,{},{:08},0,{:03}\x03\r\n\x021234,0\x03\r\n",
            self.comm_settings,
            b(self.paper_out),
            b(self.paused),
            self.label_length,
            self.formats_in_buffer,
            b(self.buffer_full),
            b(self.partial_format),
            b(self.corrupt_ram),
            b(self.under_temperature),
            b(self.over_temperature),
            self.function_settings,
            b(self.head_up),
            b(self.ribbon_out),
            b(self.thermal_transfer),
            self.print_mode,
            b(self.label_waiting),
            self.labels_remaining,
            self.graphics_stored,
        )
        .into_bytes()
    }

    /// Active faults as printer-independent records.
    pub fn faults(&self) -> Vec<PrinterFault> {
        let mut v = Vec::new();
        let mut add = |on: bool, code: &str, text: &str| {
            if on {
                v.push(PrinterFault {
                    code: code.into(),
                    text: text.into(),
                });
            }
        };
        add(self.paper_out, "paper_out", "paper out");
        add(self.head_up, "head_up", "print head open");
        add(self.ribbon_out, "ribbon_out", "ribbon out");
        add(self.buffer_full, "buffer_full", "receive buffer full");
        add(
            self.corrupt_ram,
            "corrupt_ram",
            "corrupt RAM, configuration lost",
        );
        add(
            self.under_temperature,
            "under_temperature",
            "under temperature",
        );
        add(
            self.over_temperature,
            "over_temperature",
            "over temperature",
        );
        v
    }
}

/// Settings of the Zebra driver.
#[derive(Debug, Clone)]
pub struct ZplConfig {
    /// Named label templates; `{DM}` is replaced by the DataMatrix data, `{NAME}` by
    /// field `NAME`. Default: one template `dm` = [`DEFAULT_TEMPLATE`].
    pub templates: Vec<(String, String)>,
    /// Timeout for each round trip (default 2 s).
    pub timeout: Duration,
    /// Labels kept ahead of the line (default 4).
    pub buffer_depth: usize,
}

impl Default for ZplConfig {
    fn default() -> Self {
        ZplConfig {
            templates: vec![("dm".into(), DEFAULT_TEMPLATE.into())],
            timeout: Duration::from_secs(2),
            buffer_depth: 4,
        }
    }
}

/// Zebra ZPL printer driver (host side).
pub struct ZebraPrinter {
    framed: Framed<HostStatusDecoder>,
    cfg: ZplConfig,
    /// The selected template (an index into `cfg.templates`).
    template: Option<usize>,
    /// The label being sent, reused from label to label.
    out: String,
    sent: u64,
    printed: u64,
}

impl ZebraPrinter {
    /// Drive a printer over an open link; `device` names it in errors.
    pub fn new(link: Box<dyn Link>, device: impl Into<String>, cfg: ZplConfig) -> Self {
        ZebraPrinter {
            framed: Framed::new(link, HostStatusDecoder::default(), device),
            cfg,
            template: None,
            out: String::new(),
            sent: 0,
            printed: 0,
        }
    }

    /// Ask `~HS` and parse the answer.
    pub fn host_status(&mut self) -> Result<HostStatus, Error> {
        self.framed.send(HS_REQUEST, "requesting ~HS")?;
        let hs = self
            .framed
            .recv(self.cfg.timeout, "reading the ~HS answer")?;
        let outstanding = u64::from(hs.formats_in_buffer) + u64::from(hs.labels_remaining);
        self.printed = self.printed.max(self.sent.saturating_sub(outstanding));
        Ok(hs)
    }
}

impl Printer for ZebraPrinter {
    fn describe(&self) -> &str {
        self.framed.device()
    }

    fn select_job(&mut self, job: &str) -> Result<(), Error> {
        match self.cfg.templates.iter().position(|(n, _)| n == job) {
            Some(i) => {
                self.template = Some(i);
                Ok(())
            }
            None => Err(Error::config(format!(
                "{}: no ZPL template named {job:?} (known: {})",
                self.framed.device(),
                self.cfg
                    .templates
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn load(&mut self, items: &[PrintItem]) -> Result<(), Error> {
        let Some((_, template)) = self.template.and_then(|i| self.cfg.templates.get(i)) else {
            return Err(Error::config(format!(
                "{}: load before select_job",
                self.framed.device()
            )));
        };
        for item in items {
            self.out.clear();
            render_label_into(&mut self.out, template, item)?;
            self.framed
                .send(self.out.as_bytes(), "sending a label format")?;
            self.sent += 1;
            tracing::debug!(
                device = self.framed.device(),
                unit = item.unit,
                "zpl label sent"
            );
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<(), Error> {
        self.host_status()?;
        self.framed.send(CANCEL_ALL, "cancelling formats")?;
        self.sent = self.printed;
        Ok(())
    }

    fn printed_count(&mut self) -> Result<u64, Error> {
        self.host_status()?;
        Ok(self.printed)
    }

    fn status(&mut self) -> Result<PrinterStatus, Error> {
        let hs = self.host_status()?;
        let faults = hs.faults();
        let state = if !faults.is_empty() {
            PrinterState::Faulted
        } else if hs.paused {
            PrinterState::Paused
        } else {
            PrinterState::Ready
        };
        Ok(PrinterStatus {
            state,
            faults,
            queued: Some(hs.formats_in_buffer.saturating_add(hs.labels_remaining)),
            printed: self.printed,
        })
    }

    fn buffer_depth(&self) -> usize {
        self.cfg.buffer_depth
    }
}

/// What the device side receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZplMessage {
    /// `~HS`.
    HostStatus,
    /// `~JA`.
    CancelAll,
    /// A complete format `^XA…^XZ` (text including both).
    Format(String),
}

/// Device-side ZPL decoder: formats, `~HS`, `~JA`; whitespace between them skipped.
#[derive(Debug)]
pub struct ZplDecoder {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for ZplDecoder {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl ZplDecoder {
    /// A decoder accepting formats up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ZplDecoder {
            buf: Vec::new(),
            limit,
        }
    }
}

impl Decoder for ZplDecoder {
    type Item = ZplMessage;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        bounded_extend(&mut self.buf, bytes, self.limit)
    }
    fn decode(&mut self) -> Result<Option<ZplMessage>, CodecError> {
        let skip = self
            .buf
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        self.buf.drain(..skip);
        let Some(&first) = self.buf.first() else {
            return Ok(None);
        };
        match first {
            b'~' => {
                let Some(cmd) = self.buf.get(..3) else {
                    return Ok(None);
                };
                let msg = match cmd {
                    b"~HS" => ZplMessage::HostStatus,
                    b"~JA" => ZplMessage::CancelAll,
                    other => {
                        let detail =
                            format!("unsupported command {:?}", String::from_utf8_lossy(other));
                        self.buf.drain(..3);
                        return Err(CodecError::Malformed {
                            what: "ZPL command",
                            detail,
                        });
                    }
                };
                self.buf.drain(..3);
                Ok(Some(msg))
            }
            b'^' => {
                let Some(head) = self.buf.get(..3) else {
                    return Ok(None);
                };
                if head != b"^XA" {
                    let detail = format!("expected ^XA, got {:?}", String::from_utf8_lossy(head));
                    self.buf.drain(..1);
                    return Err(CodecError::Malformed {
                        what: "ZPL format start",
                        detail,
                    });
                }
                match self.buf.windows(3).position(|w| w == b"^XZ") {
                    Some(end) => {
                        let raw: Vec<u8> = self.buf.drain(..end + 3).collect();
                        match String::from_utf8(raw) {
                            Ok(s) => Ok(Some(ZplMessage::Format(s))),
                            Err(_) => Err(CodecError::Malformed {
                                what: "ZPL format",
                                detail: "not UTF-8".into(),
                            }),
                        }
                    }
                    None if self.buf.len() > self.limit => {
                        let size = self.buf.len();
                        self.buf.clear();
                        Err(CodecError::Oversize {
                            size,
                            limit: self.limit,
                        })
                    }
                    None => Ok(None),
                }
            }
            b => {
                self.buf.drain(..1);
                Err(CodecError::UnexpectedByte {
                    byte: b,
                    context: "outside a ZPL format",
                })
            }
        }
    }
    fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Extract the DataMatrix element string from a format (device side): the `^FD`
/// data that follows `^BX`, up to `^FS`, unescaped.
pub fn datamatrix_data(format: &str) -> Result<String, CodecError> {
    let bx = format.find("^BX").ok_or_else(|| CodecError::Malformed {
        what: "ZPL format",
        detail: "no ^BX DataMatrix field".into(),
    })?;
    let rest = format.get(bx..).unwrap_or_default();
    let fd = rest.find("^FD").ok_or_else(|| CodecError::Malformed {
        what: "ZPL format",
        detail: "^BX without ^FD".into(),
    })?;
    let data = rest.get(fd + 3..).unwrap_or_default();
    let end = data.find("^FS").ok_or_else(|| CodecError::Malformed {
        what: "ZPL format",
        detail: "^FD without ^FS".into(),
    })?;
    unescape_datamatrix(data.get(..end).unwrap_or_default())
}

/// Device-side session of a Zebra twin. Twin fault codes map to `~HS` flags:
/// 1 paper out, 2 head up, 3 ribbon out, 4 over temperature, any other corrupt RAM.
pub struct ZplSession {
    state: TwinState,
}

impl ZplSession {
    /// A session on shared twin state.
    pub fn new(state: TwinState) -> Self {
        ZplSession { state }
    }

    /// The `~HS` answer for the twin's current state.
    pub fn host_status(state: &TwinState) -> HostStatus {
        let s = state.lock();
        let has = |c: u16| s.faults.iter().any(|(f, _)| *f == c);
        HostStatus {
            comm_settings: 30,
            paper_out: has(1),
            paused: s.paused,
            label_length: 1245,
            formats_in_buffer: s.queue.len() as u32,
            buffer_full: s.queue.len() >= s.capacity,
            head_up: has(2),
            ribbon_out: has(3),
            over_temperature: has(4),
            corrupt_ram: s.faults.iter().any(|(f, _)| !(1..=4).contains(f)),
            function_settings: 1,
            thermal_transfer: true,
            print_mode: 2,
            ..HostStatus::default()
        }
    }
}

impl DeviceSession for ZplSession {
    type Dec = ZplDecoder;
    fn decoder(&self) -> ZplDecoder {
        ZplDecoder::default()
    }
    fn on_message(&mut self, msg: ZplMessage) -> Vec<u8> {
        match msg {
            ZplMessage::HostStatus => Self::host_status(&self.state).encode(),
            ZplMessage::CancelAll => {
                self.state.clear_queue();
                Vec::new()
            }
            ZplMessage::Format(f) => {
                match datamatrix_data(&f) {
                    Ok(dm) => {
                        // A Zebra buffers formats even while faulted; only a full buffer drops.
                        let mut s = self.state.lock();
                        if s.queue.len() < s.capacity {
                            s.queue.push_back(vec![("DM".to_string(), dm)]);
                        } else {
                            tracing::warn!("zpl twin: buffer full, format dropped");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "zpl twin: format without DataMatrix ignored")
                    }
                }
                Vec::new()
            }
        }
    }
    fn on_error(&mut self, err: &CodecError) -> Vec<u8> {
        tracing::warn!(error = %err, "zpl twin: bad input");
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_roundtrip() {
        let es = "0109506000134352\u{1d}10AB_1\u{1d}21X";
        let e = escape_datamatrix(es).unwrap_or_default();
        assert_eq!(e, "_10109506000134352_110AB_d0951_121X");
        assert_eq!(unescape_datamatrix(&e).ok().as_deref(), Some(es));
    }

    #[test]
    fn escape_refuses_command_prefixes() {
        for bad in ["01^", "~x", "a\nb", "é"] {
            let e = escape_datamatrix(bad);
            assert!(matches!(e, Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn unfilled_placeholder_is_config_error() {
        let item = PrintItem {
            unit: 3,
            element_string: "01".into(),
            fields: vec![],
        };
        let e = render_label("^XA^FD{LOT}^FS^XZ", &item);
        assert!(matches!(e, Err(Error::Config(m)) if m.contains("{LOT}")));
    }

    #[test]
    fn host_status_roundtrip() {
        let hs = HostStatus {
            paper_out: true,
            formats_in_buffer: 7,
            labels_remaining: 12,
            head_up: true,
            ..HostStatus::default()
        };
        let mut d = HsLineDecoder::default();
        assert!(d.feed(&hs.encode()).is_ok());
        let mut lines = Vec::new();
        while let Ok(Some(l)) = d.decode() {
            lines.push(l);
        }
        let lines: [String; 3] = lines.try_into().unwrap_or_default();
        assert_eq!(HostStatus::parse(&lines), Ok(hs));
    }

    #[test]
    fn labels_render_into_a_reused_buffer() {
        let item = PrintItem {
            unit: 9,
            element_string: "0109506000134352\u{1d}21A_B".into(),
            fields: vec![("LOT".into(), "L1".into())],
        };
        let t = "^XA^FO1,1^BXN,6,200,,,,_^FD{DM}^FS^FO9,9^FD{LOT} {x^FS^XZ";
        let mut out = String::from("old");
        out.clear();
        assert!(render_label_into(&mut out, t, &item).is_ok());
        assert_eq!(
            out,
            "^XA^FO1,1^BXN,6,200,,,,_^FD_10109506000134352_121A_d095B^FS^FO9,9^FDL1 {x^FS^XZ"
        );
        assert_eq!(render_label(t, &item).ok(), Some(out.clone().into_bytes()));
        // Errors leave the buffer as it was; the element string is checked even when
        // the template does not print it.
        let before = out.clone();
        let bad = PrintItem {
            element_string: "01^".into(),
            ..item.clone()
        };
        assert!(render_label_into(&mut out, "^XA^FD{LOT}^FS^XZ", &bad).is_err());
        assert!(render_label_into(&mut out, "^XA^FD{DM}{NOPE}^FS^XZ", &item).is_err());
        assert_eq!(out, before);
    }

    #[test]
    fn host_status_is_decoded_in_place_drip_and_garbage() {
        let hs = HostStatus {
            paused: true,
            formats_in_buffer: 2,
            labels_remaining: 1,
            ribbon_out: true,
            ..HostStatus::default()
        };
        let mut bytes = b"\r\n".to_vec();
        bytes.extend(hs.encode());
        bytes.extend(hs.encode());
        let mut d = HostStatusDecoder::default();
        let mut got = Vec::new();
        for b in &bytes {
            assert!(d.feed(&[*b]).is_ok());
            while let Ok(Some(m)) = d.decode() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![hs.clone(), hs.clone()]);
        // A stray byte between lines, a control byte inside one.
        let mut bad = hs.encode();
        bad.insert(bad.iter().position(|&b| b == b'\n').unwrap_or(0) + 1, b'Q');
        assert!(d.feed(&bad).is_ok());
        assert!(matches!(
            d.decode(),
            Err(CodecError::UnexpectedByte { byte: b'Q', .. })
        ));
        let mut d = HostStatusDecoder::default();
        assert!(d.feed(b"\x02030,0\x07,0\x03").is_ok());
        assert!(matches!(
            d.decode(),
            Err(CodecError::UnexpectedByte { byte: 0x07, .. })
        ));
        assert_eq!(d.pending(), 0);
        // Lines that do not parse.
        let mut d = HostStatusDecoder::default();
        assert!(d.feed(b"\x021,2\x03\x023\x03\x024\x03").is_ok());
        assert!(matches!(d.decode(), Err(CodecError::Malformed { .. })));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn decoder_drip_and_garbage() {
        let mut d = ZplDecoder::default();
        let mut got = Vec::new();
        for b in b"  ~HS^XA^FDx^FS^XZ\r\n~JA" {
            assert!(d.feed(&[*b]).is_ok());
            while let Ok(Some(m)) = d.decode() {
                got.push(m);
            }
        }
        assert_eq!(
            got,
            vec![
                ZplMessage::HostStatus,
                ZplMessage::Format("^XA^FDx^FS^XZ".into()),
                ZplMessage::CancelAll
            ]
        );
        assert!(d.feed(b"Q").is_ok());
        assert!(matches!(
            d.decode(),
            Err(CodecError::UnexpectedByte { byte: b'Q', .. })
        ));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn oversize_format_is_refused() {
        let mut d = ZplDecoder::new(64);
        assert!(d.feed(b"^XA").is_ok());
        let mut err = None;
        for _ in 0..10 {
            if let Err(e) = d.feed(&[b'A'; 100]).and_then(|()| d.decode().map(|_| ())) {
                err = Some(e);
                break;
            }
        }
        assert!(matches!(err, Some(CodecError::Oversize { limit: 64, .. })));
        assert!(d.pending() <= 64 + crate::link::READ_CHUNK);
    }
}
