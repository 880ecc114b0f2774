//! Camera frames: an owned 8-bit grey image ([`GreyFrame`]), a borrowed rectangular view
//! of one ([`Plane`]), the region of interest ([`Roi`]) and loading frames from PNG / PNM
//! files or bytes with size limits. It owns the checks that turn a corrupt, truncated,
//! oversized or wrong-format image into a [`FrameError`] naming what was wrong; it knows
//! nothing about symbols or decoding.

use std::io::Cursor;
use std::path::Path;

/// Largest frame side accepted by default (pixels). A line camera sends 0.3–5 MP.
pub const DEFAULT_MAX_SIDE: u32 = 8192;

/// Size limits applied before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Widest frame accepted, in pixels.
    pub max_width: u32,
    /// Tallest frame accepted, in pixels.
    pub max_height: u32,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_width: DEFAULT_MAX_SIDE,
            max_height: DEFAULT_MAX_SIDE,
        }
    }
}

/// Why a frame could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not an image format the vision stage reads (PNG, PGM/PPM/PBM).
    #[error("unsupported or unknown image format: {0}")]
    Format(String),
    /// The image is corrupt or truncated.
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
    /// The image is larger than the limits.
    #[error("image too large: {width}x{height} exceeds the limit {max_width}x{max_height}")]
    TooLarge {
        /// Width of the image (0 when the decoder refused before telling).
        width: u32,
        /// Height of the image.
        height: u32,
        /// The width limit.
        max_width: u32,
        /// The height limit.
        max_height: u32,
    },
    /// Zero width or height.
    #[error("empty image ({width}x{height})")]
    Empty {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The pixel buffer does not match the stated size.
    #[error("pixel buffer holds {got} bytes, {width}x{height} needs {expected}")]
    SizeMismatch {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The region of interest does not lie inside the frame.
    #[error("region of interest {roi} does not fit in the {width}x{height} frame")]
    RoiOutside {
        /// The ROI.
        roi: Roi,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
}

/// A rectangle of the frame, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Roi {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (> 0).
    pub width: u32,
    /// Height (> 0).
    pub height: u32,
}

impl std::fmt::Display for Roi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.width, self.height)
    }
}

impl std::str::FromStr for Roi {
    type Err = String;
    /// Parse `X,Y,W,H`.
    fn from_str(s: &str) -> Result<Roi, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [x, y, w, h] = parts.as_slice() else {
            return Err(format!("expected X,Y,W,H, got {s:?}"));
        };
        let num = |name: &str, v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("ROI {name} {v:?} is not a non-negative integer"))
        };
        let roi = Roi {
            x: num("X", x)?,
            y: num("Y", y)?,
            width: num("W", w)?,
            height: num("H", h)?,
        };
        if roi.width == 0 || roi.height == 0 {
            return Err(format!("ROI {s:?} has zero width or height"));
        }
        Ok(roi)
    }
}

/// An owned 8-bit grey frame, row-major, one byte per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreyFrame {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl GreyFrame {
    /// Wrap a pixel buffer (no copy). Checks that it is `width * height` bytes.
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Result<GreyFrame, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty { width, height });
        }
        let expected = width as usize * height as usize;
        if pixels.len() != expected {
            return Err(FrameError::SizeMismatch {
                width,
                height,
                expected,
                got: pixels.len(),
            });
        }
        Ok(GreyFrame {
            width,
            height,
            pixels,
        })
    }

    /// Decode a PNG or PNM image held in memory; colour images are converted to luma.
    pub fn from_image_bytes(bytes: &[u8], limits: FrameLimits) -> Result<GreyFrame, FrameError> {
        let reader = image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| FrameError::Corrupt(e.to_string()))?;
        let Some(format) = reader.format() else {
            return Err(FrameError::Format(
                "not a PNG or PNM image (unrecognised signature)".into(),
            ));
        };
        if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Pnm) {
            return Err(FrameError::Format(format!(
                "{format:?} is not read here (PNG or PNM only)"
            )));
        }
        // Check the header's size before any pixel buffer is allocated.
        let (width, height) = image::ImageReader::with_format(Cursor::new(bytes), format)
            .into_dimensions()
            .map_err(|e| classify(e, limits))?;
        if width > limits.max_width || height > limits.max_height {
            return Err(FrameError::TooLarge {
                width,
                height,
                max_width: limits.max_width,
                max_height: limits.max_height,
            });
        }
        let mut reader = reader;
        let mut l = image::Limits::default();
        l.max_image_width = Some(limits.max_width);
        l.max_image_height = Some(limits.max_height);
        reader.limits(l);
        let img = reader.decode().map_err(|e| classify(e, limits))?;
        let grey = match img {
            image::DynamicImage::ImageLuma8(buf) => buf,
            other => other.into_luma8(),
        };
        let (w, h) = grey.dimensions();
        GreyFrame::new(w, h, grey.into_raw())
    }

    /// Load a PNG or PNM file.
    pub fn load(path: &Path, limits: FrameLimits) -> Result<GreyFrame, FrameError> {
        let bytes = std::fs::read(path).map_err(|source| FrameError::Io {
            path: path.display().to_string(),
            source,
        })?;
        GreyFrame::from_image_bytes(&bytes, limits)
    }

    /// The pixel buffer, for reuse (a frame source refills it with the next frame).
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// A view of the whole frame.
    pub fn plane(&self) -> Plane<'_> {
        Plane {
            data: &self.pixels,
            width: self.width as usize,
            height: self.height as usize,
            stride: self.width as usize,
        }
    }

    /// A view of `roi` (no copy), or an error when it does not fit in the frame.
    pub fn region(&self, roi: Roi) -> Result<Plane<'_>, FrameError> {
        let fits = roi.width > 0
            && roi.height > 0
            && roi
                .x
                .checked_add(roi.width)
                .is_some_and(|r| r <= self.width)
            && roi
                .y
                .checked_add(roi.height)
                .is_some_and(|b| b <= self.height);
        if !fits {
            return Err(FrameError::RoiOutside {
                roi,
                width: self.width,
                height: self.height,
            });
        }
        let start = roi.y as usize * self.width as usize + roi.x as usize;
        let end =
            (roi.y + roi.height - 1) as usize * self.width as usize + (roi.x + roi.width) as usize;
        Ok(Plane {
            data: self.pixels.get(start..end).unwrap_or(&[]),
            width: roi.width as usize,
            height: roi.height as usize,
            stride: self.width as usize,
        })
    }
}

fn classify(e: image::ImageError, limits: FrameLimits) -> FrameError {
    match e {
        image::ImageError::Limits(_) => FrameError::TooLarge {
            width: 0,
            height: 0,
            max_width: limits.max_width,
            max_height: limits.max_height,
        },
        image::ImageError::Unsupported(u) => FrameError::Format(u.to_string()),
        other => FrameError::Corrupt(other.to_string()),
    }
}

/// A borrowed grey image: `height` rows of `width` pixels, rows `stride` bytes apart.
/// `data` starts at the first pixel and ends after the last pixel of the last row.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) stride: usize,
}

impl<'a> Plane<'a> {
    /// Wrap a contiguous buffer; `None` when it is not `width * height` bytes.
    pub fn contiguous(data: &'a [u8], width: usize, height: usize) -> Option<Plane<'a>> {
        (width > 0 && height > 0 && data.len() == width * height).then_some(Plane {
            data,
            width,
            height,
            stride: width,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Row `y` (`y < height`).
    #[inline]
    pub(crate) fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        self.data.get(start..start + self.width).unwrap_or(&[])
    }

    /// Pixel at (x, y), clamped to the plane.
    #[inline]
    pub(crate) fn at_clamped(&self, x: isize, y: isize) -> u8 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.data.get(y * self.stride + x).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::GrayImage::from_pixel(w, h, image::Luma([200]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn loads_png() {
        let f = GreyFrame::from_image_bytes(&png(8, 6), FrameLimits::default()).unwrap();
        assert_eq!((f.width(), f.height()), (8, 6));
        assert!(f.pixels().iter().all(|&p| p == 200));
    }

    #[test]
    fn truncated_png_is_corrupt() {
        let bytes = png(64, 64);
        let err = GreyFrame::from_image_bytes(&bytes[..bytes.len() / 2], FrameLimits::default())
            .unwrap_err();
        assert!(matches!(err, FrameError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn unknown_format_is_rejected() {
        let err =
            GreyFrame::from_image_bytes(b"GIF89a not really", FrameLimits::default()).unwrap_err();
        assert!(matches!(err, FrameError::Format(_)), "{err:?}");
        let err = GreyFrame::from_image_bytes(b"hello", FrameLimits::default()).unwrap_err();
        assert!(matches!(err, FrameError::Format(_)), "{err:?}");
    }

    #[test]
    fn oversized_is_rejected_before_decoding() {
        let limits = FrameLimits {
            max_width: 32,
            max_height: 32,
        };
        let err = GreyFrame::from_image_bytes(&png(64, 16), limits).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    width: 64,
                    height: 16,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn size_mismatch_and_empty() {
        assert!(matches!(
            GreyFrame::new(4, 4, vec![0; 15]),
            Err(FrameError::SizeMismatch { .. })
        ));
        assert!(matches!(
            GreyFrame::new(0, 4, vec![]),
            Err(FrameError::Empty { .. })
        ));
    }

    #[test]
    fn region_checks_bounds_and_borrows() {
        let f = GreyFrame::new(10, 8, (0..80).map(|i| i as u8).collect()).unwrap();
        let r = f
            .region(Roi {
                x: 2,
                y: 3,
                width: 4,
                height: 5,
            })
            .unwrap();
        assert_eq!(r.row(0), &[32, 33, 34, 35]);
        assert_eq!(r.row(4), &[72, 73, 74, 75]);
        assert!(
            f.region(Roi {
                x: 8,
                y: 0,
                width: 3,
                height: 1
            })
            .is_err()
        );
        assert!("1,2,3".parse::<Roi>().is_err());
        assert!("1,2,0,4".parse::<Roi>().is_err());
        assert_eq!(
            "1, 2,3,4".parse::<Roi>().unwrap(),
            Roi {
                x: 1,
                y: 2,
                width: 3,
                height: 4
            }
        );
    }
}
