//! A blocking Modbus TCP client for the PLC driver's hot path: MBAP framing (transaction
//! id, protocol 0, length, unit) over a `std` TCP stream, with one request and one reply
//! buffer per connection, so a poll or a verdict write allocates nothing.
//!
//! Owns: the MBAP framing and checking of replies, per-request deadlines.
//! Does not own: the requests and their replies' data ([`super::pdu`], shared with
//! Modbus RTU), reconnecting, the register map, error reporting to the line (that is
//! [`super::modbus::ModbusPlc`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::pdu::{Exchange, ReqError, hi, lo};

/// Largest Modbus TCP frame (MBAP header 7 + PDU 253).
const MAX_ADU: usize = 260;

fn bad(detail: String) -> ReqError {
    super::pdu::bad("Modbus reply", detail)
}

/// One Modbus TCP connection.
#[derive(Debug)]
pub(crate) struct TcpClient {
    stream: TcpStream,
    unit: u8,
    tid: u16,
    timeout: Duration,
    req: [u8; MAX_ADU],
    rep: [u8; MAX_ADU],
}

impl TcpClient {
    /// Connect to `addr` within `timeout`, addressing unit (slave) `unit`.
    pub(crate) fn connect(addr: SocketAddr, unit: u8, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Ok(TcpClient {
            stream,
            unit,
            tid: 0,
            timeout,
            req: [0; MAX_ADU],
            rep: [0; MAX_ADU],
        })
    }
}

impl Exchange for TcpClient {
    fn reply_name(&self) -> &'static str {
        "Modbus reply"
    }

    /// MBAP carries the reply's length: `_data_len` is not needed.
    fn transact(&mut self, pdu: &[u8], _data_len: usize) -> Result<Result<&[u8], u8>, ReqError> {
        let deadline = Instant::now() + self.timeout;
        self.tid = self.tid.wrapping_add(1);
        let len = pdu.len() + 1;
        let frame = self
            .req
            .get_mut(..6 + len)
            .ok_or_else(|| bad(format!("request of {} bytes is too long", pdu.len())))?;
        frame[..7].copy_from_slice(&[
            hi(self.tid),
            lo(self.tid),
            0,
            0,
            hi(len as u16),
            lo(len as u16),
            self.unit,
        ]);
        frame[7..].copy_from_slice(pdu);
        self.stream
            .set_write_timeout(Some(self.timeout))
            .map_err(ReqError::Io)?;
        self.stream.write_all(frame).map_err(io_or_timeout)?;
        read_exact_by(&mut self.stream, &mut self.rep[..7], deadline)?;
        let [t0, t1, p0, p1, l0, l1, unit] = [
            self.rep[0],
            self.rep[1],
            self.rep[2],
            self.rep[3],
            self.rep[4],
            self.rep[5],
            self.rep[6],
        ];
        let rlen = usize::from(u16::from_be_bytes([l0, l1]));
        if u16::from_be_bytes([t0, t1]) != self.tid
            || [p0, p1] != [0, 0]
            || unit != self.unit
            || !(2..=MAX_ADU - 6).contains(&rlen)
        {
            return Err(bad(format!(
                "reply header {:02x?} does not answer transaction {} of unit {}",
                &self.rep[..7],
                self.tid,
                self.unit
            )));
        }
        read_exact_by(&mut self.stream, &mut self.rep[7..6 + rlen], deadline)?;
        let body = &self.rep[7..6 + rlen];
        let fc = pdu.first().copied().unwrap_or(0);
        match body {
            [f, data @ ..] if *f == fc => Ok(Ok(data)),
            [f, code] if *f == fc | 0x80 => Ok(Err(*code)),
            _ => Err(bad(format!("reply {body:02x?} to function {fc:#04x}"))),
        }
    }
}

fn io_or_timeout(e: io::Error) -> ReqError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ReqError::Timeout,
        _ => ReqError::Io(e),
    }
}

/// Fill `buf` from `stream` before `deadline`.
fn read_exact_by(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), ReqError> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReqError::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(ReqError::Io)?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(ReqError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the PLC closed the connection",
                )));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_or_timeout(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection server answering each request with `reply(request)`.
    fn server(reply: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; MAX_ADU];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&reply(&buf[..n])).is_err() {
                    return;
                }
            }
        });
        addr
    }

    fn client(addr: SocketAddr) -> TcpClient {
        TcpClient::connect(addr, 1, Duration::from_millis(300)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn reads_writes_and_exceptions() {
        let addr = server(|req| {
            let (tid, pdu) = (&req[..2], &req[7..]);
            let body: Vec<u8> = match pdu[0] {
                0x03 => vec![0x03, 4, 0x12, 0x34, 0xab, 0xcd],
                0x06 => pdu.to_vec(),
                0x10 => vec![0x90, 0x02],
                _ => vec![pdu[0] | 0x80, 0x01],
            };
            let mut out = tid.to_vec();
            out.extend_from_slice(&[0, 0, 0, body.len() as u8 + 1, 1]);
            out.extend(body);
            out
        });
        let mut c = client(addr);
        let mut regs = [0u16; 2];
        assert!(matches!(c.read_holding(7, &mut regs), Ok(Ok(()))));
        assert_eq!(regs, [0x1234, 0xabcd]);
        assert!(matches!(c.write_single(2, 9), Ok(Ok(()))));
        assert!(matches!(c.write_multiple(100, &[1, 2, 3]), Ok(Err(2))));
        // A reply of the wrong size is a protocol error, never a panic.
        let mut three = [0u16; 3];
        assert!(matches!(
            c.read_holding(7, &mut three),
            Err(ReqError::Protocol(_))
        ));
    }

    #[test]
    fn a_reply_to_another_transaction_is_a_protocol_error_and_silence_a_timeout() {
        let addr = server(|req| {
            let mut out = req[..7].to_vec();
            out[1] = out[1].wrapping_add(1);
            out.extend_from_slice(&[0x06, 0, 2, 0, 9]);
            out[5] = 6;
            out
        });
        let mut c = client(addr);
        assert!(matches!(c.write_single(2, 9), Err(ReqError::Protocol(_))));
        let silent = server(|_| Vec::new());
        let mut c = client(silent);
        assert!(matches!(c.write_single(2, 9), Err(ReqError::Timeout)));
    }
}
