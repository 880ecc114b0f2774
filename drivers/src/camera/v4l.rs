//! V4L2 frame source (UVC webcams and other Linux capture devices), behind the `v4l`
//! feature (crate `v4l`, kernel V4L2 API; building needs libclang for its bindings:
//! Debian `libclang-dev`).
//!
//! Owns: opening the device, choosing an 8-bit grey format (`GREY`, else `YUYV` whose
//! luma bytes are taken), memory-mapped streaming. Does not own: triggering (the
//! camera is assumed hardware-triggered by the line, one frame per unit).
//!
//! Tried with no hardware: it builds, it has not captured a frame.

use std::time::Duration;

use v4l::FourCC;
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;

use crate::camera::{Frame, FrameSource};
use crate::error::Error;

/// A V4L2 capture device streaming grey frames.
pub struct V4lSource {
    stream: Stream<'static>,
    _dev: v4l::Device,
    width: u32,
    height: u32,
    stride: u32,
    yuyv: bool,
    device: crate::error::DeviceName,
}

impl V4lSource {
    /// Open `path` (e.g. `/dev/video0`), ask for `GREY` at the device's current size,
    /// fall back to `YUYV`; `timeout` bounds each frame wait.
    pub fn open(path: &str, timeout: Duration) -> Result<Self, Error> {
        let device: crate::error::DeviceName = format!("v4l@{path}").into();
        let tr = |during: &'static str| {
            let device = device.clone();
            move |source| Error::Transport {
                device,
                during,
                source,
            }
        };
        let dev = v4l::Device::with_path(path).map_err(tr("opening the V4L2 device"))?;
        let mut fmt = dev.format().map_err(tr("reading the format"))?;
        fmt.fourcc = FourCC::new(b"GREY");
        let mut got = dev.set_format(&fmt).map_err(tr("setting the format"))?;
        if got.fourcc != FourCC::new(b"GREY") {
            fmt.fourcc = FourCC::new(b"YUYV");
            got = dev.set_format(&fmt).map_err(tr("setting the format"))?;
        }
        let yuyv = match &got.fourcc.repr {
            b"GREY" => false,
            b"YUYV" => true,
            other => {
                return Err(Error::config(format!(
                    "{device}: offers {:?}, neither GREY nor YUYV",
                    String::from_utf8_lossy(other)
                )));
            }
        };
        let mut stream =
            Stream::with_buffers(&dev, Type::VideoCapture, 4).map_err(tr("mapping buffers"))?;
        stream.set_timeout(timeout.min(Duration::from_secs(3600)));
        Ok(V4lSource {
            stream,
            _dev: dev,
            width: got.width,
            height: got.height,
            stride: got.stride,
            yuyv,
            device,
        })
    }
}

impl FrameSource for V4lSource {
    fn describe(&self) -> &str {
        &self.device
    }

    fn frame(&mut self, unit: u64) -> Result<Frame, Error> {
        let (buf, meta) = self.stream.next().map_err(|source| {
            if source.kind() == std::io::ErrorKind::TimedOut {
                Error::Timeout {
                    device: self.device.clone(),
                    during: "waiting for a frame",
                    timeout: Duration::ZERO,
                }
            } else {
                Error::Transport {
                    device: self.device.clone(),
                    during: "dequeuing a frame",
                    source,
                }
            }
        })?;
        let used = buf.get(..meta.bytesused as usize).unwrap_or(buf);
        let (w, h, stride) = (
            self.width as usize,
            self.height as usize,
            self.stride as usize,
        );
        let bpp = if self.yuyv { 2 } else { 1 };
        let stride = stride.max(w * bpp);
        let mut pixels = Vec::with_capacity(w * h);
        for row in 0..h {
            let line = used
                .get(row * stride..row * stride + w * bpp)
                .ok_or_else(|| Error::DeviceFault {
                    device: self.device.clone(),
                    code: None,
                    detail: format!("short frame: {} bytes for {w}x{h}", used.len()),
                })?;
            if self.yuyv {
                pixels.extend(line.iter().step_by(2));
            } else {
                pixels.extend_from_slice(line);
            }
        }
        let ts = meta.timestamp;
        let timestamp_us = (ts.sec.max(0) as u64) * 1_000_000 + ts.usec.max(0) as u64;
        Ok(Frame {
            unit,
            timestamp_us,
            width: self.width,
            height: self.height,
            pixels,
        })
    }
}
