//! The crate's one error type and the portable [`ErrorKind`] the pipeline acts on.
//!
//! Owns: [`Error`], [`ErrorKind`], [`CodecError`] (what a sans-IO decoder reports).
//! Does not own: retry policy. Callers decide retry / reject / stop from [`Error::kind`].

use std::time::Duration;

/// What kind of failure happened, independent of the device or protocol.
///
/// The pipeline reacts by kind, never by matching driver-specific variants:
///
/// | kind | meaning | typical reaction |
/// |---|---|---|
/// | `Timeout` | the device did not answer in time | retry a bounded number of times, then stop the line |
/// | `Transport` | the link failed (refused, reset, closed, serial I/O error) | reconnect with backoff; stop the line if it persists |
/// | `DeviceFault` | the device answered and said no (NAK, `ERR`, Modbus exception, fault bit) | reject the unit or stop, per device; do not blindly retry |
/// | `Protocol` | the device answered with bytes we cannot accept (bad checksum, garbage, oversize) | resynchronise (reconnect); count it; stop if repeated |
/// | `Config` | our own settings or data are wrong (bad address, unknown kind, unencodable data) | do not retry: report to the operator |
///
/// New kinds may be added, so matches need a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No answer within the configured timeout.
    Timeout,
    /// The link (TCP or serial) failed or was closed.
    Transport,
    /// The device answered with a refusal or reports a fault.
    DeviceFault,
    /// The device sent bytes that break the protocol.
    Protocol,
    /// Our configuration or the data handed to the driver is invalid.
    Config,
}

/// What a sans-IO decoder reports when the bytes it was fed break the protocol.
///
/// A decoder that returns one of these has already dropped the offending bytes, so it
/// can be fed again; its buffer never grows past its configured maximum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A message announced or reached a size over the decoder's limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    Oversize {
        /// Size announced by a length field, or bytes buffered without a message end.
        size: usize,
        /// The decoder's maximum message size.
        limit: usize,
    },
    /// The checksum at the end of a frame does not match its content.
    #[error(
        "bad checksum in frame 0x{ident:02x}: computed 0x{computed:02x}, received 0x{received:02x}"
    )]
    BadChecksum {
        /// Frame identifier.
        ident: u8,
        /// Checksum computed over the received bytes.
        computed: u8,
        /// Checksum byte that arrived.
        received: u8,
    },
    /// The CRC-16 at the end of a frame (Modbus RTU) does not match its content.
    #[error("bad CRC in frame: computed 0x{computed:04x}, received 0x{received:04x}")]
    BadCrc {
        /// CRC computed over the received bytes.
        computed: u16,
        /// CRC that arrived.
        received: u16,
    },
    /// A byte that cannot start or continue a message here.
    #[error("unexpected byte 0x{byte:02x} {context}")]
    UnexpectedByte {
        /// The offending byte.
        byte: u8,
        /// Where it was found.
        context: &'static str,
    },
    /// A complete message whose content is malformed.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which message or field.
        what: &'static str,
        /// What was wrong, with the offending text where short.
        detail: String,
    },
}

/// A device's description in errors (kind and address), shared: a driver keeps one and
/// each error clones the handle, so an error on a hot path (a camera's idle poll timing
/// out) does not allocate.
pub type DeviceName = std::sync::Arc<str>;

/// The error of every driver in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device did not answer within `timeout` while doing `during`.
    #[error("{device}: no answer within {timeout:?} while {during}")]
    Timeout {
        /// Device description (kind and address).
        device: DeviceName,
        /// The operation that waited.
        during: &'static str,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// An I/O error on the link.
    #[error("{device}: transport error while {during}: {source}")]
    Transport {
        /// Device description.
        device: DeviceName,
        /// The operation.
        during: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The peer closed the link; `pending` bytes of an unfinished message were dropped.
    #[error(
        "{device}: connection closed while {during} ({pending} bytes of an unfinished message dropped)"
    )]
    Disconnected {
        /// Device description.
        device: DeviceName,
        /// The operation.
        during: &'static str,
        /// Bytes of a partial message that were buffered when the link closed.
        pending: usize,
    },
    /// The device refused a request or reports a fault.
    #[error("{device}: device fault{}: {detail}", code.map(|c| format!(" {c}")).unwrap_or_default())]
    DeviceFault {
        /// Device description.
        device: DeviceName,
        /// Device-specific numeric code (NAK reason, Modbus exception code, fault code).
        code: Option<u32>,
        /// Human-readable detail.
        detail: String,
    },
    /// The device sent bytes that break the protocol.
    #[error("{device}: protocol error while {during}: {source}")]
    Protocol {
        /// Device description.
        device: DeviceName,
        /// The operation.
        during: &'static str,
        /// What the decoder found.
        #[source]
        source: CodecError,
    },
    /// Configuration or caller data is invalid.
    #[error("configuration error: {0}")]
    Config(String),
}

impl Error {
    /// The portable kind the pipeline acts on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Transport { .. } | Error::Disconnected { .. } => ErrorKind::Transport,
            Error::DeviceFault { .. } => ErrorKind::DeviceFault,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::Config(_) => ErrorKind::Config,
        }
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_one_to_one() {
        let d = || DeviceName::from("dev");
        let cases = [
            (
                Error::Timeout {
                    device: d(),
                    during: "x",
                    timeout: Duration::from_millis(1),
                },
                ErrorKind::Timeout,
            ),
            (
                Error::Disconnected {
                    device: d(),
                    during: "x",
                    pending: 3,
                },
                ErrorKind::Transport,
            ),
            (
                Error::DeviceFault {
                    device: d(),
                    code: Some(2),
                    detail: "nak".into(),
                },
                ErrorKind::DeviceFault,
            ),
            (
                Error::Protocol {
                    device: d(),
                    during: "x",
                    source: CodecError::Oversize { size: 9, limit: 8 },
                },
                ErrorKind::Protocol,
            ),
            (Error::config("bad"), ErrorKind::Config),
        ];
        for (e, k) in cases {
            assert_eq!(e.kind(), k, "{e}");
        }
    }

    #[test]
    fn fault_message_names_code() {
        let e = Error::DeviceFault {
            device: "plc".into(),
            code: Some(2),
            detail: "illegal address".into(),
        };
        assert_eq!(e.to_string(), "plc: device fault 2: illegal address");
    }
}
