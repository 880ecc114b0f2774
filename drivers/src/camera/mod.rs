//! The [`FrameSource`] trait and the grey frame type, plus the sources: directory
//! replay ([`dir`]), a TCP frame stream ([`stream`]) and feature-gated hardware.
//!
//! Owns: acquiring frames. Does not own: decoding the DataMatrix in them (vision stage).

#[cfg(feature = "aravis")]
pub mod aravis;
pub mod dir;
pub mod stream;
#[cfg(feature = "v4l")]
pub mod v4l;

use crate::error::Error;

/// One 8-bit grey image for one unit.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Line sequence number of the unit in the picture.
    pub unit: u64,
    /// Capture time, microseconds since the Unix epoch (or since the source started,
    /// for replay sources; see each source).
    pub timestamp_us: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major grey pixels, exactly `width * height` bytes.
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("unit", &self.unit)
            .field("timestamp_us", &self.timestamp_us)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("pixels", &format_args!("[{} bytes]", self.pixels.len()))
            .finish()
    }
}

/// A camera or anything that stands in for one.
///
/// # Blocking by design
/// [`frame`](FrameSource::frame) blocks until the frame for the unit is there or the
/// source's timeout elapsed; the vision stage runs on its own thread.
///
/// # Unit numbering
/// The caller asks for the unit it expects next (units increase). A source that
/// receives frames tagged with unit numbers (TCP stream) skips older ones and, when
/// the next one available is newer than asked, fails with `DeviceFault` (frame lost)
/// and keeps the newer frame for the next call. Directory replay has no tags and
/// returns the files in name order, cycling: unit `n` gets file `n mod count`.
///
/// # Errors
/// `Timeout` (no frame in time), `Transport` (stream closed), `DeviceFault` (frame
/// for this unit lost), `Protocol` (bad stream bytes: magic, version, oversize),
/// `Config` (unreadable directory or image).
pub trait FrameSource: Send {
    /// Device description.
    fn describe(&self) -> &str;

    /// The frame of unit `unit`.
    fn frame(&mut self, unit: u64) -> Result<Frame, Error>;

    /// Hand back the pixel buffer of a frame this source gave, for a later frame to
    /// fill (no allocation per frame in steady state). Sources that cannot reuse
    /// buffers drop it (the default).
    fn recycle(&mut self, pixels: Vec<u8>) {
        drop(pixels);
    }
}
