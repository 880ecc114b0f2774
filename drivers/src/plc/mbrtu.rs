//! A blocking Modbus RTU client for the PLC driver: RTU framing (unit id, PDU,
//! CRC-16/MODBUS sent low byte first) of the three function codes the driver uses (03
//! read holding registers, 06 write single register, 16 write multiple registers; the
//! requests and their replies' data are [`super::pdu`]'s, shared with Modbus TCP) over
//! any byte [`Link`] (a serial port or socat PTY; TCP for RTU-over-TCP gateways and the
//! tests), with one request and one reply buffer per connection, so a poll or a verdict
//! write allocates nothing.
//!
//! Owns: the CRC, framing and checking of requests and replies, the inter-frame silence
//! the baud rate asks for (3.5 character times, 1.75 ms above 19200 baud), per-request
//! deadlines, and getting back in step after garbage, a bad CRC or a late reply (stale
//! bytes are discarded and the line must fall silent before the next request).
//! Does not own: opening the port, reconnecting, the register map or error reporting to
//! the line (that is [`super::modbus::ModbusPlc`]), nor Modbus TCP ([`super::mbtcp`]).
//!
//! # Frames
//! Request: `unit | function | data | crc lo | crc hi`. Replies this client takes:
//!
//! | function | reply (after unit and function, before the CRC) | length |
//! |---|---|---|
//! | 03 | byte count, 2 × n register bytes (high byte first) | 5 + 2n |
//! | 06 | address, value (the request echoed) | 8 |
//! | 16 | address, quantity | 8 |
//! | any, exception | `function | 0x80` then the exception code | 5 |
//!
//! A reply is read up to the length its function code announces; one that stops short
//! of it is a protocol error at the deadline, one with another function code, another
//! unit id or a bad CRC a protocol error at once.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::pdu::{Exchange, ReqError};
use crate::error::CodecError;
use crate::link::Link;

/// Largest RTU frame (unit 1 + PDU 253 + CRC 2).
const MAX_ADU: usize = 256;
/// Bits per character on the line (start, 8 data, parity or second stop, stop).
const BITS_PER_CHAR: u64 = 11;

const fn crc_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xa001
            } else {
                c >> 1
            };
            bit += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// CRC-16/MODBUS (reflected polynomial 0xA001, initial value 0xFFFF) by table.
static CRC_TABLE: [u16; 256] = crc_table();

/// CRC-16/MODBUS of `bytes`; on the wire it follows the frame low byte first.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0xffff_u16, |crc, &b| {
        (crc >> 8) ^ CRC_TABLE[usize::from((crc as u8) ^ b)]
    })
}

/// The silence that separates two frames at `baud`: 3.5 character times, and a fixed
/// 1.75 ms above 19200 baud (Modbus over serial line, 2.5.1.1).
pub fn interframe_gap(baud: u32) -> Duration {
    if baud == 0 || baud > 19_200 {
        Duration::from_micros(1750)
    } else {
        // 3.5 characters of 11 bits, rounded up to the microsecond.
        Duration::from_micros((35 * BITS_PER_CHAR * 1_000_000).div_ceil(10 * u64::from(baud)))
    }
}

/// Time `len` characters take on the wire at `baud`.
fn wire_time(len: usize, baud: u32) -> Duration {
    Duration::from_micros((len as u64 * BITS_PER_CHAR * 1_000_000).div_ceil(u64::from(baud.max(1))))
}

fn bad(detail: String) -> ReqError {
    super::pdu::bad("Modbus RTU reply", detail)
}

fn quiet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// One Modbus RTU master on one link, addressing one unit.
pub(crate) struct RtuClient {
    link: Box<dyn Link>,
    unit: u8,
    baud: u32,
    timeout: Duration,
    /// 3.5 character times at `baud`.
    gap: Duration,
    /// When the line was last busy: our request's last character on the wire, or the
    /// last byte we received.
    busy_until: Instant,
    /// An error left the exchange out of step: wait for silence before the next request.
    resync: bool,
    req: [u8; MAX_ADU],
    rep: [u8; MAX_ADU],
}

impl RtuClient {
    /// Talk to unit `unit` over `link` (a serial port at `baud`, which sets the
    /// inter-frame silence), waiting at most `timeout` for each reply.
    pub(crate) fn new(link: Box<dyn Link>, unit: u8, baud: u32, timeout: Duration) -> Self {
        RtuClient {
            link,
            unit,
            baud,
            timeout,
            gap: interframe_gap(baud),
            busy_until: Instant::now(),
            resync: false,
            req: [0; MAX_ADU],
            rep: [0; MAX_ADU],
        }
    }

    /// [`Exchange::transact`] without the bookkeeping: the reply's length before its
    /// CRC, and the exception code if it was one.
    fn exchange(&mut self, pdu: &[u8], data_len: usize) -> Result<(usize, Option<u8>), ReqError> {
        let fc = pdu.first().copied().unwrap_or(0);
        let len = pdu.len() + 3;
        let frame = self
            .req
            .get_mut(..len)
            .ok_or_else(|| bad(format!("request of {} bytes is too long", pdu.len())))?;
        frame[0] = self.unit;
        frame[1..len - 2].copy_from_slice(pdu);
        let crc = crc16(&frame[..len - 2]).to_le_bytes();
        frame[len - 2..].copy_from_slice(&crc);
        self.settle()?;
        self.link
            .write_all(&self.req[..len])
            .and_then(|()| self.link.flush())
            .map_err(io_or_timeout)?;
        let sent = Instant::now();
        self.busy_until = sent + wire_time(len, self.baud);
        let deadline = sent + self.timeout;
        // Unit, function and the first data byte tell which reply this is.
        self.fill(0, 3, deadline)?;
        let (unit, got_fc, first) = (self.rep[0], self.rep[1], self.rep[2]);
        let (total, exception) = if got_fc == fc | 0x80 {
            (5, Some(first))
        } else if got_fc == fc {
            if fc == 0x03 && usize::from(first) + 1 != data_len {
                return Err(bad(format!(
                    "read reply announces {first} data bytes, {} expected",
                    data_len.saturating_sub(1)
                )));
            }
            (data_len + 4, None)
        } else {
            return Err(bad(format!(
                "reply starts {:02x?}: function {got_fc:#04x} does not answer {fc:#04x} (garbage \
                 or another master's traffic)",
                &self.rep[..3]
            )));
        };
        if total > MAX_ADU {
            return Err(bad(format!("reply of {total} bytes is too long")));
        }
        self.fill(3, total, deadline)?;
        let computed = crc16(&self.rep[..total - 2]);
        let received = u16::from_le_bytes([self.rep[total - 2], self.rep[total - 1]]);
        if computed != received {
            return Err(ReqError::Protocol(CodecError::BadCrc {
                computed,
                received,
            }));
        }
        if unit != self.unit {
            return Err(bad(format!(
                "reply from unit {unit}, the request went to unit {}",
                self.unit
            )));
        }
        Ok((total - 2, exception))
    }

    /// Read reply bytes `from..to` into the reply buffer before `deadline`. Nothing at
    /// all is a timeout; a reply that stops short is a protocol error.
    fn fill(&mut self, from: usize, to: usize, deadline: Instant) -> Result<(), ReqError> {
        let mut got = from;
        while got < to {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(if got == 0 {
                    ReqError::Timeout
                } else {
                    bad(format!(
                        "reply stopped short: {got} of {to} bytes within {:?} ({:02x?})",
                        self.timeout,
                        &self.rep[..got]
                    ))
                });
            }
            self.link.set_read_timeout(left).map_err(ReqError::Io)?;
            match self.link.read(&mut self.rep[got..to]) {
                Ok(0) => return Err(link_closed()),
                Ok(n) => {
                    got += n;
                    self.busy_until = Instant::now();
                }
                Err(e) if quiet(&e) => {}
                Err(e) => return Err(ReqError::Io(e)),
            }
        }
        Ok(())
    }

    /// Before a request: drop what arrived since the last reply (late or unsolicited
    /// bytes), after an error wait until the line has been silent for a while, and
    /// keep the inter-frame silence since the line was last busy.
    fn settle(&mut self) -> Result<(), ReqError> {
        let mut dropped = 0usize;
        loop {
            match self.link.read_available(&mut self.rep) {
                Ok(0) => return Err(link_closed()),
                Ok(n) => {
                    dropped += n;
                    self.busy_until = Instant::now();
                }
                Err(e) if quiet(&e) => break,
                Err(e) => return Err(ReqError::Io(e)),
            }
        }
        if self.resync {
            // The line must stay silent for a while (the rest of a reply that ended in
            // error may still be coming) before a request can be answered in step.
            let silence = (self.gap * 8).max(Duration::from_millis(20));
            let give_up = Instant::now() + self.timeout;
            loop {
                self.link.set_read_timeout(silence).map_err(ReqError::Io)?;
                match self.link.read(&mut self.rep) {
                    Ok(0) => return Err(link_closed()),
                    Ok(n) => {
                        dropped += n;
                        self.busy_until = Instant::now();
                        if Instant::now() >= give_up {
                            return Err(bad(format!(
                                "the line did not fall silent within {:?} ({dropped} bytes \
                                 discarded)",
                                self.timeout
                            )));
                        }
                    }
                    Err(e) if quiet(&e) => break,
                    Err(e) => return Err(ReqError::Io(e)),
                }
            }
            self.resync = false;
        }
        if dropped > 0 {
            tracing::debug!(
                unit = self.unit,
                dropped,
                "modbus rtu: stale bytes discarded"
            );
        }
        let ready = self.busy_until + self.gap;
        let now = Instant::now();
        if now < ready {
            std::thread::sleep(ready - now);
        }
        Ok(())
    }
}

impl Exchange for RtuClient {
    fn reply_name(&self) -> &'static str {
        "Modbus RTU reply"
    }

    /// Any error leaves the client to get back in step before its next request.
    fn transact(&mut self, pdu: &[u8], data_len: usize) -> Result<Result<&[u8], u8>, ReqError> {
        let r = self.exchange(pdu, data_len);
        if r.is_err() {
            self.resync = true;
        }
        let (end, exception) = r?;
        let body = self.rep.get(2..end).unwrap_or_default();
        Ok(match exception {
            Some(code) => Err(code),
            None => Ok(body),
        })
    }

    fn out_of_step(&mut self) {
        self.resync = true;
    }
}

/// The link reached its end (the port or connection closed).
fn link_closed() -> ReqError {
    ReqError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the link closed",
    ))
}

fn io_or_timeout(e: io::Error) -> ReqError {
    if quiet(&e) {
        ReqError::Timeout
    } else {
        ReqError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn crc_matches_the_specification_examples() {
        // CRC-16/MODBUS check value (CRC catalogue): "123456789" -> 0x4B37.
        assert_eq!(crc16(b"123456789"), 0x4b37);
        // Modbus over serial line, 6.2.2: read holding registers 0x006B..+3 of unit 0x11
        // travels as 11 03 00 6B 00 03 76 87.
        assert_eq!(
            crc16(&[0x11, 0x03, 0x00, 0x6b, 0x00, 0x03]).to_le_bytes(),
            [0x76, 0x87]
        );
        assert_eq!(crc16(&[]), 0xffff);
    }

    #[test]
    fn the_interframe_gap_follows_the_baud_rate() {
        assert_eq!(interframe_gap(9600), Duration::from_micros(4011));
        assert_eq!(interframe_gap(19_200), Duration::from_micros(2006));
        assert_eq!(interframe_gap(115_200), Duration::from_micros(1750));
    }

    /// A one-connection peer answering each request it reads with `reply(request)`
    /// (nothing when empty).
    fn peer(reply: fn(&[u8]) -> Vec<u8>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        std::thread::spawn(move || {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; MAX_ADU];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    return;
                }
                let out = reply(&buf[..n]);
                if !out.is_empty() && s.write_all(&out).is_err() {
                    return;
                }
            }
        });
        addr
    }

    fn framed(mut bytes: Vec<u8>) -> Vec<u8> {
        let c = crc16(&bytes).to_le_bytes();
        bytes.extend_from_slice(&c);
        bytes
    }

    fn client(addr: &str, timeout_ms: u64) -> RtuClient {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
        RtuClient::new(Box::new(s), 7, 115_200, Duration::from_millis(timeout_ms))
    }

    /// What the PLC driver makes of an error: its kind.
    fn kind(e: ReqError) -> ErrorKind {
        e.into_error(
            &"modbus-rtu@test".into(),
            "testing",
            Duration::from_millis(1),
        )
        .kind()
    }

    /// The answers a well-behaved unit 7 gives (registers 0x1234, 0xabcd, exception 2
    /// past register 99).
    fn good(req: &[u8]) -> Vec<u8> {
        assert_eq!(crc16(req), 0, "request CRC");
        let addr = u16::from_be_bytes([req[2], req[3]]);
        if addr >= 100 {
            return framed(vec![req[0], req[1] | 0x80, 0x02]);
        }
        match req[1] {
            0x03 => framed(vec![7, 0x03, 4, 0x12, 0x34, 0xab, 0xcd]),
            0x06 => req.to_vec(),
            0x10 => framed(req[..6].to_vec()),
            f => framed(vec![7, f | 0x80, 0x01]),
        }
    }

    #[test]
    fn reads_writes_and_exceptions() {
        let mut c = client(&peer(good), 500);
        let mut regs = [0u16; 2];
        assert!(matches!(c.read_holding(7, &mut regs), Ok(Ok(()))));
        assert_eq!(regs, [0x1234, 0xabcd]);
        assert!(matches!(c.write_single(2, 9), Ok(Ok(()))));
        assert!(matches!(c.write_multiple(20, &[1, 2, 3]), Ok(Ok(()))));
        assert!(matches!(c.write_single(200, 9), Ok(Err(2))));
        assert!(matches!(c.read_holding(7, &mut regs), Ok(Ok(()))));
    }

    #[test]
    fn garbage_is_a_protocol_error_and_the_next_request_is_in_step() {
        // The first request gets noise, every later one a proper answer.
        let addr = peer(|req| {
            static FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
            if FIRST.swap(false, std::sync::atomic::Ordering::SeqCst) {
                b"\xff\x00garbage on the line".to_vec()
            } else {
                good(req)
            }
        });
        let mut c = client(&addr, 500);
        let mut regs = [0u16; 2];
        let e = c.read_holding(7, &mut regs).err();
        let e = e.unwrap_or_else(|| panic!("garbage accepted"));
        assert!(e.to_string().contains("garbage"), "{e}");
        assert_eq!(kind(e), ErrorKind::Protocol);
        assert!(matches!(c.read_holding(7, &mut regs), Ok(Ok(()))));
        assert_eq!(regs, [0x1234, 0xabcd]);
    }

    #[test]
    fn a_wrong_crc_is_a_protocol_error() {
        let addr = peer(|req| {
            let mut r = good(req);
            if let Some(b) = r.last_mut() {
                *b ^= 0x5a;
            }
            r
        });
        let mut c = client(&addr, 500);
        let e = c.write_single(2, 9).err();
        let e = e.unwrap_or_else(|| panic!("bad CRC accepted"));
        assert!(e.to_string().contains("CRC"), "{e}");
        assert_eq!(kind(e), ErrorKind::Protocol);
    }

    #[test]
    fn a_reply_from_another_unit_is_a_protocol_error() {
        let addr = peer(|req| {
            let mut r = req[..req.len() - 2].to_vec();
            r[0] = 8;
            framed(r)
        });
        let mut c = client(&addr, 500);
        let e = c.write_single(2, 9).err();
        let e = e.unwrap_or_else(|| panic!("another unit's reply accepted"));
        assert!(e.to_string().contains("unit 8"), "{e}");
        assert_eq!(kind(e), ErrorKind::Protocol);
    }

    #[test]
    fn a_short_frame_is_a_protocol_error_and_silence_a_timeout() {
        // The read reply stops after its byte count and one register byte.
        let addr = peer(|_| vec![7, 0x03, 4, 0x12]);
        let mut c = client(&addr, 300);
        let mut regs = [0u16; 2];
        let e = c.read_holding(0, &mut regs).err();
        let e = e.unwrap_or_else(|| panic!("short frame accepted"));
        assert!(e.to_string().contains("4 of 9 bytes"), "{e}");
        assert_eq!(kind(e), ErrorKind::Protocol);
        // A byte count that does not fit the request.
        let addr = peer(|_| framed(vec![7, 0x03, 2, 0x12, 0x34]));
        let mut c = client(&addr, 300);
        let e = c.read_holding(0, &mut regs).err();
        let e = e.unwrap_or_else(|| panic!("wrong byte count accepted"));
        assert!(e.to_string().contains("announces 2 data bytes"), "{e}");
        assert_eq!(kind(e), ErrorKind::Protocol);
        let silent = peer(|_| Vec::new());
        let mut c = client(&silent, 200);
        let e = c.write_single(2, 9).err();
        assert_eq!(e.map(kind), Some(ErrorKind::Timeout));
    }

    #[test]
    fn a_late_reply_is_discarded_before_the_next_request() {
        // Every reply comes twice: the stale copy of the read reply must be dropped,
        // not taken as (a garbled) answer to the write that follows.
        let addr = peer(|req| {
            let mut r = good(req);
            r.extend(good(req));
            r
        });
        let mut c = client(&addr, 500);
        let mut regs = [0u16; 2];
        assert!(matches!(c.read_holding(7, &mut regs), Ok(Ok(()))));
        std::thread::sleep(Duration::from_millis(50));
        assert!(matches!(c.write_single(2, 9), Ok(Ok(()))));
    }

    #[test]
    fn a_closed_link_is_a_transport_error() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let peer = std::thread::spawn(move || drop(l.accept()));
        let mut c = client(&addr, 300);
        let _ = peer.join();
        let e = c.write_single(2, 9).err();
        assert_eq!(e.map(kind), Some(ErrorKind::Transport));
    }
}
