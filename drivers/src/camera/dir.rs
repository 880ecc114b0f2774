//! Directory replay: PNG / PGM (PNM) files in name order, converted to 8-bit grey.
//!
//! Owns: listing and decoding the files. Does not own: timing (frames are returned
//! as fast as asked; the timestamp is microseconds since the source was opened).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::camera::{Frame, FrameSource};
use crate::error::Error;

/// Largest image accepted (pixels), so a hostile file cannot exhaust memory.
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Replays the images of a directory; unit `n` gets file `n mod count`.
pub struct DirectorySource {
    files: Vec<PathBuf>,
    started: Instant,
    device: String,
}

impl DirectorySource {
    /// List `*.png`, `*.pgm`, `*.pnm` files (case-insensitive) of `dir`, sorted by name.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let rd = std::fs::read_dir(dir)
            .map_err(|e| Error::config(format!("frame directory {}: {e}", dir.display())))?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "pgm" | "pnm")
                })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::config(format!(
                "frame directory {} holds no .png/.pgm/.pnm file",
                dir.display()
            )));
        }
        Ok(DirectorySource {
            files,
            started: Instant::now(),
            device: format!("dir@{}", dir.display()),
        })
    }

    /// Number of files replayed.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Always false (an empty directory is refused at open).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Decode one image file to grey.
pub fn load_grey(path: &Path) -> Result<(u32, u32, Vec<u8>), Error> {
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Error::config(format!("frame {}: {e}", path.display())))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| Error::config(format!("frame {}: {e}", path.display())))?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Error::config(format!(
            "frame {}: {w}x{h} exceeds {MAX_PIXELS} pixels",
            path.display()
        )));
    }
    let img = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Error::config(format!("frame {}: {e}", path.display())))?
        .decode()
        .map_err(|e| Error::config(format!("frame {}: {e}", path.display())))?
        .into_luma8();
    Ok((img.width(), img.height(), img.into_raw()))
}

impl FrameSource for DirectorySource {
    fn describe(&self) -> &str {
        &self.device
    }

    fn frame(&mut self, unit: u64) -> Result<Frame, Error> {
        let n = self.files.len().max(1) as u64;
        let path = self
            .files
            .get((unit % n) as usize)
            .ok_or_else(|| Error::config("frame directory is empty"))?;
        let (width, height, pixels) = load_grey(path)?;
        Ok(Frame {
            unit,
            timestamp_us: self.started.elapsed().as_micros() as u64,
            width,
            height,
            pixels,
        })
    }
}
