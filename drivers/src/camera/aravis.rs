//! GigE Vision / USB3 Vision (GenICam) frame source through Aravis, behind the
//! `aravis` feature (crate `aravis`, Debian `libaravis-dev` to build).
//!
//! Owns: opening the camera by id, `Mono8` pixel format, a small buffer pool, and a
//! private thread that owns the (not thread-safe) GObject handles; `frame` asks that
//! thread over a channel. Does not own: triggering (the camera is assumed
//! hardware-triggered by the line, one frame per unit).
//!
//! Tried with no hardware: it builds, it has not captured a frame from a camera.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use aravis::prelude::*;

use crate::camera::{Frame, FrameSource};
use crate::error::Error;

type Reply = Result<(u32, u32, u64, Vec<u8>), String>;

/// A GenICam camera streaming `Mono8` frames.
pub struct AravisSource {
    requests: Option<mpsc::Sender<mpsc::Sender<Reply>>>,
    thread: Option<JoinHandle<()>>,
    timeout: Duration,
    device: crate::error::DeviceName,
}

fn capture_loop(
    id: Option<String>,
    timeout: Duration,
    ready: mpsc::Sender<Result<(), String>>,
    requests: mpsc::Receiver<mpsc::Sender<Reply>>,
) {
    let setup = || -> Result<(aravis::Camera, aravis::Stream), glib::Error> {
        let camera = aravis::Camera::new(id.as_deref())?;
        camera.set_pixel_format(aravis::PixelFormat::MONO_8)?;
        let payload = camera.payload()? as usize;
        let stream = camera.create_stream()?;
        for _ in 0..4 {
            stream.push_buffer(aravis::Buffer::new_allocate(payload));
        }
        camera.start_acquisition()?;
        Ok((camera, stream))
    };
    let (camera, stream) = match setup() {
        Ok(cs) => cs,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let micros = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
    while let Ok(reply) = requests.recv() {
        let r = match stream.timeout_pop_buffer(micros) {
            None => Err("timeout".to_string()),
            Some(buf) => {
                let out = if buf.status() == aravis::BufferStatus::Success {
                    let (ptr, len) = buf.data();
                    let w = u32::try_from(buf.image_width()).unwrap_or(0);
                    let h = u32::try_from(buf.image_height()).unwrap_or(0);
                    let n = (w as usize) * (h as usize);
                    if ptr.is_null() || len < n || n == 0 {
                        Err(format!("short buffer: {len} bytes for {w}x{h}"))
                    } else {
                        // SAFETY: Aravis owns `len` valid bytes at `ptr` for as long as
                        // `buf` lives; we copy them out before pushing `buf` back.
                        let bytes = unsafe { std::slice::from_raw_parts(ptr, n) };
                        Ok((w, h, buf.system_timestamp() / 1000, bytes.to_vec()))
                    }
                } else {
                    Err(format!("buffer status {:?}", buf.status()))
                };
                stream.push_buffer(buf);
                out
            }
        };
        let _ = reply.send(r);
    }
    let _ = camera.stop_acquisition();
}

impl AravisSource {
    /// Open the camera `id` (as `arv-tool-0.8` lists it; empty = first camera).
    pub fn open(id: &str, timeout: Duration) -> Result<Self, Error> {
        let device: crate::error::DeviceName = format!("aravis@{id}").into();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (req_tx, req_rx) = mpsc::channel();
        let cam_id = (!id.is_empty()).then(|| id.to_string());
        let thread = std::thread::Builder::new()
            .name("aravis".into())
            .spawn(move || capture_loop(cam_id, timeout, ready_tx, req_rx))
            .map_err(|source| Error::Transport {
                device: device.clone(),
                during: "starting the camera thread",
                source,
            })?;
        match ready_rx.recv_timeout(timeout + Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(AravisSource {
                requests: Some(req_tx),
                thread: Some(thread),
                timeout,
                device,
            }),
            Ok(Err(e)) => Err(Error::DeviceFault {
                device,
                code: None,
                detail: format!("opening the camera: {e}"),
            }),
            Err(_) => Err(Error::Timeout {
                device,
                during: "opening the camera",
                timeout,
            }),
        }
    }
}

impl FrameSource for AravisSource {
    fn describe(&self) -> &str {
        &self.device
    }

    fn frame(&mut self, unit: u64) -> Result<Frame, Error> {
        let (tx, rx) = mpsc::channel();
        let gone = || Error::Disconnected {
            device: self.device.clone(),
            during: "waiting for a frame",
            pending: 0,
        };
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send(tx)
            .map_err(|_| gone())?;
        match rx.recv_timeout(self.timeout + Duration::from_secs(1)) {
            Ok(Ok((width, height, timestamp_us, pixels))) => Ok(Frame {
                unit,
                timestamp_us,
                width,
                height,
                pixels,
            }),
            Ok(Err(e)) if e == "timeout" => Err(Error::Timeout {
                device: self.device.clone(),
                during: "waiting for a frame",
                timeout: self.timeout,
            }),
            Ok(Err(e)) => Err(Error::DeviceFault {
                device: self.device.clone(),
                code: None,
                detail: e,
            }),
            Err(_) => Err(Error::Timeout {
                device: self.device.clone(),
                during: "waiting for a frame",
                timeout: self.timeout,
            }),
        }
    }
}

impl Drop for AravisSource {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
