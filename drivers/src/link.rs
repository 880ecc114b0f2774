//! Blocking byte links (TCP via std, serial via `serialport`) and the glue that runs a
//! sans-IO [`Decoder`] over one: [`Framed`] for the host side, [`serve_session`] and
//! [`TwinServer`] for the device side (twins used by tests and by hil-sim).
//!
//! Owns: timeouts, read chunking (so no buffer grows unbounded), disconnect detection.
//! Does not own: any protocol; each codec module brings its own decoder.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{CodecError, Error};

/// Bytes read from a link at once. A decoder's buffer is bounded by its message limit
/// plus this chunk.
pub const READ_CHUNK: usize = 512;

/// A bidirectional byte link with a settable read timeout.
pub trait Link: Read + Write + Send {
    /// Set how long one `read` may block. Zero is rounded up to one millisecond.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;

    /// Read what has already arrived without waiting (`WouldBlock` when nothing has).
    /// Default: a read with the shortest timeout.
    fn read_available(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.set_read_timeout(Duration::from_millis(1))?;
        self.read(buf)
    }
}

impl Link for TcpStream {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        TcpStream::set_read_timeout(self, Some(timeout.max(Duration::from_millis(1))))
    }

    fn read_available(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.set_nonblocking(true)?;
        let r = self.read(buf);
        self.set_nonblocking(false)?;
        r
    }
}

/// A serial port opened with `serialport` (a real UART or a PTY made by socat).
pub struct SerialLink(pub Box<dyn serialport::SerialPort>);

impl Read for SerialLink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl Write for SerialLink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl Link for SerialLink {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.0
            .set_timeout(timeout.max(Duration::from_millis(1)))
            .map_err(io::Error::from)
    }

    /// Asks the port how much has arrived (no wait), then reads that much.
    fn read_available(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let ready = self.0.bytes_to_read().map_err(io::Error::from)?;
        if ready == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(ready as usize);
        self.0.read(buf.get_mut(..n).unwrap_or_default())
    }
}

/// Where a device is: `host:port` or a serial device path (anything containing `/`,
/// or starting with `COM` on Windows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A TCP endpoint, `host:port`.
    Tcp(String),
    /// A serial device path and its baud rate.
    Serial {
        /// Device path, e.g. `/dev/ttyUSB0` or a socat PTY link.
        path: String,
        /// Baud rate.
        baud: u32,
    },
}

impl Address {
    /// Parse an address as the CLI gives it. `default_baud` applies to serial paths
    /// when `baud` is `None`.
    pub fn parse(address: &str, baud: Option<u32>, default_baud: u32) -> Result<Self, Error> {
        let address = address.trim();
        if address.is_empty() {
            return Err(Error::config("empty device address"));
        }
        if address.contains('/') || address.starts_with("COM") {
            Ok(Address::Serial {
                path: address.to_string(),
                baud: baud.unwrap_or(default_baud),
            })
        } else if address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            if baud.is_some() {
                return Err(Error::config(format!(
                    "baud rate given for TCP address {address:?}"
                )));
            }
            Ok(Address::Tcp(address.to_string()))
        } else {
            Err(Error::config(format!(
                "device address {address:?} is neither host:port nor a serial device path"
            )))
        }
    }
}

/// Resolve `host:port` to its first socket address.
pub fn resolve(address: &str) -> Result<SocketAddr, Error> {
    address
        .to_socket_addrs()
        .map_err(|e| Error::config(format!("cannot resolve {address:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::config(format!("{address:?} resolves to no address")))
}

/// Open a TCP link with a connect timeout.
pub fn open_tcp(address: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let sa = resolve(address)?;
    let stream = TcpStream::connect_timeout(&sa, timeout).map_err(|source| {
        if source.kind() == io::ErrorKind::TimedOut {
            Error::Timeout {
                device: address.into(),
                during: "connecting",
                timeout,
            }
        } else {
            Error::Transport {
                device: address.into(),
                during: "connecting",
                source,
            }
        }
    })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Open a serial link (8N1, no flow control).
pub fn open_serial(path: &str, baud: u32, timeout: Duration) -> Result<SerialLink, Error> {
    let port = serialport::new(path, baud)
        .timeout(timeout.max(Duration::from_millis(1)))
        .open()
        .map_err(|e| Error::Transport {
            device: path.into(),
            during: "opening serial port",
            source: io::Error::from(e),
        })?;
    Ok(SerialLink(port))
}

/// Open either kind of link.
pub fn open_link(address: &Address, timeout: Duration) -> Result<Box<dyn Link>, Error> {
    Ok(match address {
        Address::Tcp(a) => Box::new(open_tcp(a, timeout)?),
        Address::Serial { path, baud } => Box::new(open_serial(path, *baud, timeout)?),
    })
}

/// An incremental, sans-IO decoder: feed bytes, take typed messages out.
///
/// Contract for every implementation:
/// - `feed` never lets the internal buffer exceed the decoder's limit plus one
///   [`READ_CHUNK`]; if a message cannot fit it returns [`CodecError::Oversize`] and
///   drops what it held.
/// - `decode` returns `Ok(None)` when it needs more bytes; on `Err` the offending
///   bytes are already consumed, so decoding can continue after the error.
/// - No input panics.
pub trait Decoder {
    /// The message type produced.
    type Item;
    /// Append received bytes.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError>;
    /// Take the next complete message, if any.
    fn decode(&mut self) -> Result<Option<Self::Item>, CodecError>;
    /// Bytes held that do not yet form a message.
    fn pending(&self) -> usize;
}

/// Append `bytes` to `buf` unless that would pass `limit + READ_CHUNK`.
pub(crate) fn bounded_extend(
    buf: &mut Vec<u8>,
    bytes: &[u8],
    limit: usize,
) -> Result<(), CodecError> {
    let size = buf.len() + bytes.len();
    if size > limit + READ_CHUNK {
        buf.clear();
        return Err(CodecError::Oversize { size, limit });
    }
    buf.extend_from_slice(bytes);
    Ok(())
}

/// A host-side link with a decoder: send bytes, receive typed messages with a deadline.
pub struct Framed<D: Decoder> {
    link: Box<dyn Link>,
    decoder: D,
    device: crate::error::DeviceName,
    chunk: Vec<u8>,
}

impl<D: Decoder> Framed<D> {
    /// Wrap a link. `device` names the device in errors.
    pub fn new(link: Box<dyn Link>, decoder: D, device: impl Into<String>) -> Self {
        Framed {
            link,
            decoder,
            device: device.into().into(),
            chunk: vec![0; READ_CHUNK],
        }
    }

    /// Read up to `size` bytes at once (for bulk streams; the decoder must accept
    /// chunks of that size).
    pub fn with_chunk(mut self, size: usize) -> Self {
        self.chunk = vec![0; size.max(1)];
        self
    }

    /// The device description used in errors.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The device description as a shared handle, for errors (no allocation).
    pub fn name(&self) -> crate::error::DeviceName {
        self.device.clone()
    }

    /// Write all bytes and flush.
    pub fn send(&mut self, bytes: &[u8], during: &'static str) -> Result<(), Error> {
        self.link
            .write_all(bytes)
            .and_then(|()| self.link.flush())
            .map_err(|source| Error::Transport {
                device: self.device.clone(),
                during,
                source,
            })
    }

    /// Receive the next message, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration, during: &'static str) -> Result<D::Item, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.try_decode(during)? {
                return Ok(m);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    device: self.device.clone(),
                    during,
                    timeout,
                });
            }
            self.read_some(deadline - now, during)?;
        }
    }

    /// Decode a message already buffered, or read what arrives within `wait` (which may
    /// be short; zero reads only what has already arrived) and decode that. `Ok(None)` when nothing complete arrived.
    pub fn poll(&mut self, wait: Duration, during: &'static str) -> Result<Option<D::Item>, Error> {
        if let Some(m) = self.try_decode(during)? {
            return Ok(Some(m));
        }
        self.read_some(wait, during)?;
        self.try_decode(during)
    }

    fn try_decode(&mut self, during: &'static str) -> Result<Option<D::Item>, Error> {
        self.decoder.decode().map_err(|source| Error::Protocol {
            device: self.device.clone(),
            during,
            source,
        })
    }

    fn read_some(&mut self, wait: Duration, during: &'static str) -> Result<(), Error> {
        let transport = |source| Error::Transport {
            device: self.device.clone(),
            during,
            source,
        };
        let got = if wait.is_zero() {
            self.link.read_available(&mut self.chunk)
        } else {
            self.link.set_read_timeout(wait).map_err(transport)?;
            self.link.read(&mut self.chunk)
        };
        match got {
            Ok(0) => Err(Error::Disconnected {
                device: self.device.clone(),
                during,
                pending: self.decoder.pending(),
            }),
            Ok(n) => self
                .decoder
                .feed(self.chunk.get(..n).unwrap_or_default())
                .map_err(|source| Error::Protocol {
                    device: self.device.clone(),
                    during,
                    source,
                }),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(source) => Err(Error::Transport {
                device: self.device.clone(),
                during,
                source,
            }),
        }
    }
}

/// The device side of one connection: what a twin does with each decoded message.
pub trait DeviceSession: Send {
    /// The decoder for host → device bytes.
    type Dec: Decoder;
    /// A fresh decoder for a new connection.
    fn decoder(&self) -> Self::Dec;
    /// Bytes to answer one message with (may be empty).
    fn on_message(&mut self, msg: <Self::Dec as Decoder>::Item) -> Vec<u8>;
    /// Bytes to answer undecodable input with (e.g. a NAK); empty to stay silent.
    fn on_error(&mut self, err: &CodecError) -> Vec<u8>;
    /// Called about every millisecond (a scheduler tick) and after each message: unsolicited bytes to send (asynchronous status).
    fn on_idle(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

/// Run a device session over one link until the peer closes, an I/O error, or `stop`.
pub fn serve_session<S: DeviceSession>(
    mut link: Box<dyn Link>,
    mut session: S,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut dec = session.decoder();
    let mut chunk = [0u8; READ_CHUNK];
    link.set_read_timeout(Duration::from_millis(1))?;
    while !stop.load(Ordering::Relaxed) {
        let idle = session.on_idle();
        if !idle.is_empty() {
            link.write_all(&idle)?;
            link.flush()?;
        }
        match link.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                let mut out = Vec::new();
                match dec.feed(chunk.get(..n).unwrap_or_default()) {
                    Ok(()) => loop {
                        match dec.decode() {
                            Ok(Some(m)) => out.extend(session.on_message(m)),
                            Ok(None) => break,
                            Err(e) => out.extend(session.on_error(&e)),
                        }
                    },
                    Err(e) => out.extend(session.on_error(&e)),
                }
                if !out.is_empty() {
                    link.write_all(&out)?;
                    link.flush()?;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A running device twin (TCP listener or serial port), stopped on drop.
pub struct TwinServer {
    stop: Arc<AtomicBool>,
    local: Option<SocketAddr>,
    thread: Option<JoinHandle<()>>,
}

impl TwinServer {
    /// Serve every accepted TCP connection with a session from `make`.
    pub fn spawn_tcp<S, F>(listener: TcpListener, make: F) -> io::Result<Self>
    where
        S: DeviceSession + 'static,
        F: Fn() -> S + Send + 'static,
    {
        let local = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("twin-tcp".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_nodelay(true);
                            let session = make();
                            let stop3 = stop2.clone();
                            let _ = std::thread::Builder::new().name("twin-conn".into()).spawn(
                                move || {
                                    if let Err(e) = serve_session(Box::new(stream), session, &stop3)
                                    {
                                        tracing::debug!(%peer, error = %e, "twin connection ended");
                                    }
                                },
                            );
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "twin accept failed");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })?;
        Ok(TwinServer {
            stop,
            local: Some(local),
            thread: Some(thread),
        })
    }

    /// Serve one session on a serial port (or PTY) until stopped.
    pub fn spawn_serial<S: DeviceSession + 'static>(
        path: &str,
        baud: u32,
        session: S,
    ) -> Result<Self, Error> {
        let link = open_serial(path, baud, Duration::from_millis(20))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("twin-serial".into())
            .spawn(move || {
                if let Err(e) = serve_session(Box::new(link), session, &stop2) {
                    tracing::debug!(error = %e, "serial twin ended");
                }
            })
            .map_err(|source| Error::Transport {
                device: path.into(),
                during: "spawning twin",
                source,
            })?;
        Ok(TwinServer {
            stop,
            local: None,
            thread: Some(thread),
        })
    }

    /// The bound TCP address (None for serial twins).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Stop serving and wait for the listener thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TwinServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Address::parse("127.0.0.1:9100", None, 9600).ok(),
            Some(Address::Tcp("127.0.0.1:9100".into()))
        );
        assert_eq!(
            Address::parse("/tmp/xA", Some(19200), 9600).ok(),
            Some(Address::Serial {
                path: "/tmp/xA".into(),
                baud: 19200
            })
        );
        assert_eq!(
            Address::parse("/dev/ttyS0", None, 9600).ok(),
            Some(Address::Serial {
                path: "/dev/ttyS0".into(),
                baud: 9600
            })
        );
        for bad in ["", "printer", "host:notaport", ":9100"] {
            assert!(Address::parse(bad, None, 9600).is_err(), "{bad:?}");
        }
        assert!(Address::parse("h:1", Some(9600), 9600).is_err());
    }

    #[test]
    fn bounded_extend_refuses_growth() {
        let mut b = Vec::new();
        assert!(bounded_extend(&mut b, &[0; 100], 10).is_ok());
        assert!(matches!(
            bounded_extend(&mut b, &[0; 500], 10),
            Err(CodecError::Oversize { .. })
        ));
        assert!(b.is_empty());
    }
}
