//! TCP frame stream: the framing, its sans-IO codec, the client source
//! ([`StreamSource`]) and the server ([`FrameServer`]) hil-sim uses to play cameras.
//!
//! Owns: the bytes of the stream. Does not own: image content.
//!
//! # Framing (all integers big-endian)
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `LCFS` |
//! | 4 | 1 | version, 1 |
//! | 5 | 3 | reserved, 0 |
//! | 8 | 8 | unit number (u64) |
//! | 16 | 4 | width (u32, ≥ 1) |
//! | 20 | 4 | height (u32, ≥ 1) |
//! | 24 | 8 | timestamp, µs since the Unix epoch (u64) |
//! | 32 | width × height | 8-bit grey pixels, row-major |
//!
//! The server pushes frames as units pass; there are no requests. The receiver
//! refuses a frame whose pixel count exceeds its limit (default 16 MiB) from the
//! header alone, before buffering its pixels.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::camera::{Frame, FrameSource};
use crate::error::{CodecError, Error};
use crate::link::{Decoder, Framed, open_tcp};

/// Stream magic.
pub const MAGIC: &[u8; 4] = b"LCFS";
/// Stream version.
pub const VERSION: u8 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 32;
/// Default limit on pixels per frame.
pub const DEFAULT_MAX_PIXELS: usize = 16 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Encode a frame. `Config` error when `pixels` is not `width * height` bytes or a
/// dimension is zero.
pub fn encode(f: &Frame) -> Result<Vec<u8>, Error> {
    let n = u64::from(f.width) * u64::from(f.height);
    if n == 0 || f.pixels.len() as u64 != n {
        return Err(Error::config(format!(
            "frame of unit {}: {}x{} needs {n} pixels, has {}",
            f.unit,
            f.width,
            f.height,
            f.pixels.len()
        )));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + f.pixels.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&f.unit.to_be_bytes());
    out.extend_from_slice(&f.width.to_be_bytes());
    out.extend_from_slice(&f.height.to_be_bytes());
    out.extend_from_slice(&f.timestamp_us.to_be_bytes());
    out.extend_from_slice(&f.pixels);
    Ok(out)
}

/// Pixel buffers handed back by the consumer, shared by a [`StreamSource`] and its
/// decoder.
pub type Spares = Arc<Mutex<Vec<Vec<u8>>>>;

/// Spare buffers kept at most (more are dropped).
const MAX_SPARES: usize = 8;

/// Incremental frame decoder.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_pixels: usize,
    spares: Spares,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PIXELS)
    }
}

impl FrameDecoder {
    /// A decoder refusing frames over `max_pixels`.
    pub fn new(max_pixels: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            max_pixels,
            spares: Spares::default(),
        }
    }

    /// The pool the decoder takes pixel buffers from (see [`FrameSource::recycle`]).
    pub fn spares(&self) -> Spares {
        self.spares.clone()
    }
}

fn be<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        a.copy_from_slice(s);
    }
    a
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        let size = self.buf.len() + bytes.len();
        let limit = HEADER_LEN + self.max_pixels;
        if size > limit + CHUNK {
            self.buf.clear();
            return Err(CodecError::Oversize { size, limit });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
    fn decode(&mut self) -> Result<Option<Frame>, CodecError> {
        let have = self.buf.len().min(4);
        if self.buf.get(..have) != MAGIC.get(..have) {
            // Resynchronise at the next possible magic start.
            let skip = self
                .buf
                .iter()
                .skip(1)
                .position(|&b| b == MAGIC[0])
                .map_or(self.buf.len(), |p| p + 1);
            let byte = self.buf.first().copied().unwrap_or(0);
            self.buf.drain(..skip);
            return Err(CodecError::UnexpectedByte {
                byte,
                context: "where the frame magic LCFS was expected",
            });
        }
        let Some(h) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let version = h[4];
        let unit = u64::from_be_bytes(be(h, 8));
        let width = u32::from_be_bytes(be(h, 16));
        let height = u32::from_be_bytes(be(h, 20));
        let timestamp_us = u64::from_be_bytes(be(h, 24));
        if version != VERSION {
            self.buf.clear();
            return Err(CodecError::Malformed {
                what: "frame header",
                detail: format!("version {version}, expected {VERSION}"),
            });
        }
        let n = u64::from(width) * u64::from(height);
        if n == 0 {
            self.buf.clear();
            return Err(CodecError::Malformed {
                what: "frame header",
                detail: format!("empty frame {width}x{height}"),
            });
        }
        if n > self.max_pixels as u64 {
            self.buf.clear();
            return Err(CodecError::Oversize {
                size: n as usize,
                limit: self.max_pixels,
            });
        }
        let total = HEADER_LEN + n as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        // Copy the pixels into a spare buffer (a new one only while the consumer has
        // none to give back); the receive buffer keeps its capacity and whatever came
        // after the frame.
        let mut pixels = self
            .spares
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_default();
        pixels.clear();
        pixels.extend_from_slice(self.buf.get(HEADER_LEN..total).unwrap_or_default());
        self.buf.drain(..total);
        Ok(Some(Frame {
            unit,
            timestamp_us,
            width,
            height,
            pixels,
        }))
    }
    fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Client side: frames pushed by a [`FrameServer`] (or a real bridge).
pub struct StreamSource {
    framed: Framed<FrameDecoder>,
    spares: Spares,
    timeout: Duration,
    ahead: Option<Frame>,
}

impl StreamSource {
    /// Connect to `host:port`; `timeout` bounds connecting and each `frame` call.
    pub fn connect(address: &str, timeout: Duration) -> Result<Self, Error> {
        let link = open_tcp(address, timeout)?;
        Ok(Self::over(
            Box::new(link),
            format!("tcp-frames@{address}"),
            timeout,
            DEFAULT_MAX_PIXELS,
        ))
    }

    /// Read frames from any link with a pixel limit.
    pub fn over(
        link: Box<dyn crate::link::Link>,
        device: String,
        timeout: Duration,
        max_pixels: usize,
    ) -> Self {
        let decoder = FrameDecoder::new(max_pixels);
        StreamSource {
            spares: decoder.spares(),
            framed: Framed::new(link, decoder, device).with_chunk(CHUNK),
            timeout,
            ahead: None,
        }
    }
}

impl FrameSource for StreamSource {
    fn describe(&self) -> &str {
        self.framed.device()
    }

    fn frame(&mut self, unit: u64) -> Result<Frame, Error> {
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let f = match self.ahead.take() {
                Some(f) => f,
                None => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout {
                            device: self.framed.name(),
                            during: "waiting for a frame",
                            timeout: self.timeout,
                        });
                    }
                    self.framed.recv(left, "waiting for a frame")?
                }
            };
            if f.unit == unit {
                return Ok(f);
            }
            if f.unit > unit {
                let next = f.unit;
                self.ahead = Some(f);
                return Err(Error::DeviceFault {
                    device: self.framed.name(),
                    code: None,
                    detail: format!("frame of unit {unit} lost: the next frame is for unit {next}"),
                });
            }
            self.recycle(f.pixels);
            tracing::debug!(
                device = self.framed.device(),
                skipped = f.unit,
                wanted = unit,
                "older frame skipped"
            );
        }
    }

    fn recycle(&mut self, pixels: Vec<u8>) {
        if let Ok(mut s) = self.spares.lock()
            && s.len() < MAX_SPARES
        {
            s.push(pixels);
        }
    }
}

/// Server side: pushes frames to every connected client.
pub struct FrameServer {
    clients: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    local: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl FrameServer {
    /// Listen on `addr` (e.g. `127.0.0.1:0`).
    pub fn bind(addr: &str) -> Result<Self, Error> {
        let tr = |source| Error::Transport {
            device: addr.to_string().into(),
            during: "binding the frame server",
            source,
        };
        let listener = TcpListener::bind(addr).map_err(tr)?;
        let local = listener.local_addr().map_err(tr)?;
        listener.set_nonblocking(true).map_err(tr)?;
        let clients: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c2, s2) = (clients.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("frame-server".into())
            .spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_nodelay(true);
                            let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                            c2.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
            .map_err(tr)?;
        Ok(FrameServer {
            clients,
            stop,
            local,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Connected clients.
    pub fn clients(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Wait until at least `n` clients are connected, up to `timeout`.
    pub fn wait_for_clients(&self, n: usize, timeout: Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if self.clients() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Send a frame to every client; clients that fail are dropped. Returns how many
    /// received it.
    pub fn publish(&self, f: &Frame) -> Result<usize, Error> {
        self.publish_raw(&encode(f)?)
    }

    /// Send raw bytes to every client (tests use it for bad streams).
    pub fn publish_raw(&self, bytes: &[u8]) -> Result<usize, Error> {
        let mut cs = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        cs.retain_mut(|s| s.write_all(bytes).and_then(|()| s.flush()).is_ok());
        Ok(cs.len())
    }

    /// Close every client connection.
    pub fn disconnect_all(&self) {
        let mut cs = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        for s in cs.iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        cs.clear();
    }
}

impl Drop for FrameServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.disconnect_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(unit: u64) -> Frame {
        Frame {
            unit,
            timestamp_us: 1_700_000_000_000_000,
            width: 3,
            height: 2,
            pixels: vec![0, 1, 2, 253, 254, 255],
        }
    }

    #[test]
    fn a_recycled_buffer_takes_the_next_frame() {
        let mut d = FrameDecoder::default();
        let spares = d.spares();
        let mut bytes = encode(&frame(1)).unwrap_or_default();
        bytes.extend(encode(&frame(2)).unwrap_or_default());
        d.feed(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let first = d
            .decode()
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no frame"));
        assert_eq!(first, frame(1));
        let at = first.pixels.as_ptr();
        spares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(first.pixels);
        let second = d
            .decode()
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no frame"));
        assert_eq!(second, frame(2));
        assert_eq!(
            second.pixels.as_ptr(),
            at,
            "the spare buffer was not reused"
        );
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn roundtrip_dripped() {
        let bytes = encode(&frame(42)).unwrap_or_default();
        assert_eq!(bytes.len(), HEADER_LEN + 6);
        let mut d = FrameDecoder::default();
        let mut got = None;
        for b in &bytes {
            assert!(d.feed(&[*b]).is_ok());
            if let Ok(Some(f)) = d.decode() {
                got = Some(f);
            }
        }
        assert_eq!(got, Some(frame(42)));
    }

    #[test]
    fn oversize_refused_from_header() {
        let mut big = frame(1);
        big.width = 5000;
        big.height = 5000;
        big.pixels = vec![0; 25_000_000];
        let bytes = encode(&big).unwrap_or_default();
        let mut d = FrameDecoder::new(1000);
        assert!(d.feed(bytes.get(..HEADER_LEN).unwrap_or_default()).is_ok());
        assert!(matches!(
            d.decode(),
            Err(CodecError::Oversize {
                size: 25_000_000,
                limit: 1000
            })
        ));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn garbage_resyncs_to_magic() {
        let mut bytes = b"xxLzz".to_vec();
        bytes.extend(encode(&frame(7)).unwrap_or_default());
        let mut d = FrameDecoder::default();
        assert!(d.feed(&bytes).is_ok());
        let mut errs = 0;
        loop {
            match d.decode() {
                Err(_) => errs += 1,
                Ok(Some(f)) => {
                    assert_eq!(f.unit, 7);
                    break;
                }
                Ok(None) => panic!("frame not found after garbage"),
            }
        }
        assert!(errs >= 1);
    }

    #[test]
    fn bad_pixel_count_is_config_error() {
        let mut f = frame(1);
        f.pixels.pop();
        assert!(matches!(encode(&f), Err(Error::Config(_))));
    }
}
