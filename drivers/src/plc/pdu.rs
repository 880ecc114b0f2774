//! The Modbus application layer both blocking clients share: building the requests of
//! the three function codes the PLC driver uses (03 read holding registers, 06 write
//! single register, 16 write multiple registers) into a stack buffer, and checking what
//! their replies carry (register data, the echoed address and value or quantity, an
//! exception), on top of an [`Exchange`]: one request and its reply over a framing,
//! MBAP over TCP ([`super::mbtcp`]) or RTU over a serial line ([`super::mbrtu`]). It
//! also owns [`ReqError`], what one request can fail with.
//!
//! Does not own: framing, CRCs, timing, reconnecting, the register map or error
//! reporting to the line (that is [`super::modbus::ModbusPlc`]).

use std::io;
use std::time::Duration;

use crate::error::{CodecError, Error};

/// Most registers one read may return (the PDU limit).
pub(crate) const MAX_READ: u16 = 125;
/// Most registers one write-multiple may carry.
pub(crate) const MAX_WRITE: usize = 123;

/// What went wrong with one request (Modbus TCP or RTU).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReqError {
    /// The link failed.
    #[error("{0}")]
    Io(io::Error),
    /// The reply broke the protocol.
    #[error("{0}")]
    Protocol(CodecError),
    /// No complete reply before the deadline.
    #[error("no reply in time")]
    Timeout,
}

impl ReqError {
    /// The driver's error for this failure of `device` while `during` (a request
    /// bounded by `timeout`): `Transport`, `Protocol` or `Timeout`.
    pub(crate) fn into_error(
        self,
        device: &crate::error::DeviceName,
        during: &'static str,
        timeout: Duration,
    ) -> Error {
        match self {
            ReqError::Io(source) => Error::Transport {
                device: device.clone(),
                during,
                source,
            },
            ReqError::Protocol(source) => Error::Protocol {
                device: device.clone(),
                during,
                source,
            },
            ReqError::Timeout => Error::Timeout {
                device: device.clone(),
                during,
                timeout,
            },
        }
    }
}

/// A malformed `what` (a reply, a request), with what was wrong.
pub(crate) fn bad(what: &'static str, detail: String) -> ReqError {
    ReqError::Protocol(CodecError::Malformed { what, detail })
}

/// The high byte of `v`.
pub(crate) fn hi(v: u16) -> u8 {
    v.to_be_bytes()[0]
}

/// The low byte of `v`.
pub(crate) fn lo(v: u16) -> u8 {
    v.to_be_bytes()[1]
}

/// One Modbus request and its reply over a framing, and the three requests the driver
/// makes on top of it. Every request answers `Ok(Ok(..))` when done, `Ok(Err(code))`
/// for a Modbus exception, and `Err` when the link, the protocol or the clock failed.
pub(crate) trait Exchange {
    /// What a reply is called in errors ("Modbus reply", "Modbus RTU reply").
    fn reply_name(&self) -> &'static str;

    /// Send `pdu` (function code first) framed for the unit, and take the reply: its
    /// data after the function code (`data_len` bytes for a normal reply, where the
    /// framing needs to know), or the exception code.
    fn transact(&mut self, pdu: &[u8], data_len: usize) -> Result<Result<&[u8], u8>, ReqError>;

    /// A whole reply came that does not answer the request: the framing gets back in
    /// step before the next one (RTU waits for the line to fall silent).
    fn out_of_step(&mut self) {}

    /// Read `regs.len()` holding registers from `addr` into `regs`.
    fn read_holding(&mut self, addr: u16, regs: &mut [u16]) -> Result<Result<(), u8>, ReqError> {
        let name = self.reply_name();
        let n = u16::try_from(regs.len())
            .ok()
            .filter(|n| (1..=MAX_READ).contains(n))
            .ok_or_else(|| {
                bad(
                    "Modbus request",
                    format!("cannot read {} registers", regs.len()),
                )
            })?;
        let want = 2 * usize::from(n);
        let pdu = [0x03, hi(addr), lo(addr), hi(n), lo(n)];
        let data = match self.transact(&pdu, want + 1)? {
            Ok(data) => data,
            Err(code) => return Ok(Err(code)),
        };
        match data {
            [count, words @ ..] if usize::from(*count) == want && words.len() == want => {
                for (r, w) in regs.iter_mut().zip(words.chunks_exact(2)) {
                    *r = u16::from_be_bytes([w[0], w[1]]);
                }
                Ok(Ok(()))
            }
            _ => Err(bad(
                name,
                format!("read reply of {} bytes for {n} registers", data.len()),
            )),
        }
    }

    /// Write one register; the reply must echo the request.
    fn write_single(&mut self, addr: u16, value: u16) -> Result<Result<(), u8>, ReqError> {
        let name = self.reply_name();
        let pdu = [0x06, hi(addr), lo(addr), hi(value), lo(value)];
        let detail = match self.transact(&pdu, 4)? {
            Ok(reply) if reply == &pdu[1..] => return Ok(Ok(())),
            Ok(reply) => format!("write-register reply {reply:02x?} does not echo the request"),
            Err(code) => return Ok(Err(code)),
        };
        self.out_of_step();
        Err(bad(name, detail))
    }

    /// Write registers from `addr` on; the reply must name the address and quantity.
    fn write_multiple(&mut self, addr: u16, values: &[u16]) -> Result<Result<(), u8>, ReqError> {
        let name = self.reply_name();
        if values.is_empty() || values.len() > MAX_WRITE {
            return Err(bad(
                "Modbus request",
                format!("cannot write {} registers", values.len()),
            ));
        }
        let n = values.len() as u16;
        let mut pdu = [0u8; 6 + 2 * MAX_WRITE];
        pdu[..6].copy_from_slice(&[0x10, hi(addr), lo(addr), hi(n), lo(n), (2 * n) as u8]);
        for (w, v) in pdu[6..].chunks_exact_mut(2).zip(values) {
            w.copy_from_slice(&v.to_be_bytes());
        }
        let len = 6 + 2 * values.len();
        let detail = match self.transact(&pdu[..len], 4)? {
            Ok(reply) if reply == &pdu[1..5] => return Ok(Ok(())),
            Ok(reply) => format!("write-registers reply {reply:02x?} does not match the request"),
            Err(code) => return Ok(Err(code)),
        };
        self.out_of_step();
        Err(bad(name, detail))
    }
}
