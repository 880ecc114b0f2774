//! The decoder: finds and reads one GS1 DataMatrix in a grey frame with rxing's
//! DataMatrix reader (no other symbology is ever tried: the multi-format path false-reads
//! print clutter as 1D codes), through an ordered list of passes — a cheap 2×-downscaled
//! pass over the whole frame first; if that fails, the busiest region (the symbol's edges)
//! is located on the 2× image and every retry (inverted, turned 45°, closings for noisy
//! and dotted prints, full resolution) runs on that crop only — and grades the symbol on
//! the very pixels that decoded. It owns per-worker scratch buffers so that a steady
//! stream of frames does not allocate frame-sized memory. It does not validate GS1
//! syntax (the verifier does) and has no notion of time (the pool does).

use rxing::common::HybridBinarizer;
use rxing::datamatrix::DataMatrixReader;
use rxing::{
    BinaryBitmap, DecodeHints, Luma8Source, LuminanceSource, RXingResultMetadataType,
    RXingResultMetadataValue, Reader,
};

use super::frame::{FrameError, GreyFrame, Roi};
use super::grade::{GradeReport, grade_symbol};
use super::preprocess;

/// One decoding attempt over the frame (or ROI), in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PassKind {
    /// 2× box-downscaled luma, try-harder: cheap, and rescues blurred / noisy frames.
    Downscaled,
    /// Full-resolution luma, try-harder.
    Full,
    /// 2× downscaled, luma inverted (light-on-dark codes).
    DownscaledInverted,
    /// Full resolution, luma inverted.
    FullInverted,
    /// Morphological closing of the dark ink (dotted inkjet codes), full resolution.
    Dotted,
    /// Closing (3×3) on the 2× downscaled luma.
    DottedDownscaled,
    /// 2× downscaled and turned 45° (rxing misses some symbols turned ~30°).
    Rotated45,
    /// 3×3 closing at full resolution: fills speckle noise in dark modules of blurred,
    /// noisy frames (and small dots).
    Closed,
}

impl PassKind {
    /// Whether this pass reads light-on-dark codes.
    pub fn inverted(self) -> bool {
        matches!(self, PassKind::DownscaledInverted | PassKind::FullInverted)
    }

    /// Whether this pass works on full-resolution pixels (and so, within
    /// [`Decoder::decode_until`], only on the located busy region).
    pub fn full_resolution(self) -> bool {
        matches!(
            self,
            PassKind::Full | PassKind::FullInverted | PassKind::Dotted | PassKind::Closed
        )
    }
}

/// Which passes the decoder may run; the order is fixed (cheapest and likeliest first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// Decode only this rectangle of the frame (pixels). Default: the whole frame.
    pub roi: Option<Roi>,
    /// Try luma-inverted passes for light-on-dark (laser) codes. Default true.
    pub inverted: bool,
    /// Try the closing passes for dotted (continuous inkjet) codes. Default true.
    pub dotted: bool,
    /// Radius in full-resolution pixels of the full-resolution closing for dotted codes
    /// (joins dots up to 2·r pixels apart; keep 2r+1 below the module size). Default 2,
    /// for 4–6 px modules.
    pub dot_radius: u8,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            roi: None,
            inverted: true,
            dotted: true,
            dot_radius: 2,
        }
    }
}

/// A symbol read from a frame.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Read {
    /// The decoded data as rxing reports it: for GS1 the leading FNC1 is dropped and
    /// every later FNC1 is a GS (0x1D).
    pub content: String,
    /// The symbology identifier, `]d2` for GS1 DataMatrix (`]d1` when the symbol does
    /// not start with FNC1, i.e. it is not a GS1 symbol).
    pub symbology: String,
    /// The pass that read it.
    pub pass: PassKind,
    /// Symbol corners in frame pixels: top-left, top-right, bottom-right, bottom-left of
    /// the symbol as sampled (the L finder runs along left and bottom).
    pub corners: [(f32, f32); 4],
    /// The print-quality estimate.
    pub grade: GradeReport,
}

/// Per-worker decoder: configuration and scratch buffers.
#[derive(Debug, Default)]
pub struct Decoder {
    cfg: DecodeConfig,
    small: Vec<u8>,
    work: Vec<u8>,
    tmp: Vec<u8>,
    out: Vec<u8>,
    /// Where the full-resolution passes look, in frame pixels (set by
    /// [`Decoder::decode_until`] from [`preprocess::locate_busy`]); `None`: the whole ROI.
    crop: Option<Roi>,
}

/// Margin, in pixels of the 2× downscaled image, around the located busy region: a quiet
/// zone and the partly covered blocks at the symbol's edge.
const CROP_MARGIN: usize = 24;

/// Cheapest and likeliest first: the 2× passes cost about a quarter of a full-resolution
/// pass. Every pass after the first runs on the located crop (see
/// [`Decoder::decode_until`]), which makes the full-resolution retries cheap too.
const ALL_PASSES: [PassKind; 8] = [
    PassKind::Downscaled,
    PassKind::DownscaledInverted,
    PassKind::Rotated45,
    PassKind::DottedDownscaled,
    PassKind::Closed,
    PassKind::Dotted,
    PassKind::FullInverted,
    PassKind::Full,
];

impl Decoder {
    /// A decoder with `cfg`.
    pub fn new(cfg: DecodeConfig) -> Decoder {
        Decoder {
            cfg,
            ..Decoder::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DecodeConfig {
        &self.cfg
    }

    /// The passes this configuration runs, in order.
    pub fn passes(&self) -> impl Iterator<Item = PassKind> + '_ {
        ALL_PASSES.into_iter().filter(|p| match p {
            PassKind::DownscaledInverted | PassKind::FullInverted => self.cfg.inverted,
            PassKind::Dotted | PassKind::DottedDownscaled => self.cfg.dotted,
            _ => true,
        })
    }

    /// Decode `frame`: `Ok(None)` when no pass reads a DataMatrix; an error only when the
    /// configured ROI does not fit the frame.
    pub fn decode(&mut self, frame: &GreyFrame) -> Result<Option<Read>, FrameError> {
        self.decode_until(frame, &|| false)
    }

    /// Like [`Decoder::decode`], but give up before starting another pass once
    /// `stop()` says so (the pool passes "the deadline has passed"): rxing cannot be
    /// interrupted inside a pass, so a frame is abandoned between passes.
    pub fn decode_until(
        &mut self,
        frame: &GreyFrame,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Read>, FrameError> {
        // The passes, copied out (no allocation) so that each may borrow the decoder.
        let mut passes = [PassKind::Full; ALL_PASSES.len()];
        let mut n = 0;
        for (slot, p) in passes.iter_mut().zip(self.passes()) {
            *slot = p;
            n += 1;
        }
        self.crop = None;
        let roi = self.roi(frame);
        preprocess::reserve_locate(roi.width as usize / 2, roi.height as usize / 2);
        let mut located = false;
        let mut found = None;
        for pass in passes.into_iter().take(n) {
            if stop() {
                break;
            }
            if pass != PassKind::Downscaled && !located {
                located = true;
                self.crop = self.locate(frame)?;
            }
            if let Some(read) = self.decode_pass(frame, pass)? {
                found = Some(read);
                break;
            }
        }
        self.crop = None;
        Ok(found)
    }

    /// The configured ROI, or the whole frame.
    fn roi(&self, frame: &GreyFrame) -> Roi {
        self.cfg.roi.unwrap_or(Roi {
            x: 0,
            y: 0,
            width: frame.width(),
            height: frame.height(),
        })
    }

    /// The busiest region of the ROI (see [`preprocess::locate_busy`]), in frame pixels.
    fn locate(&mut self, frame: &GreyFrame) -> Result<Option<Roi>, FrameError> {
        let roi = self.roi(frame);
        let plane = frame.region(roi)?;
        let (w, h) = preprocess::downscale2(plane, false, &mut self.small);
        let Some((x, y, cw, ch)) = preprocess::locate_busy(&self.small, w, h, CROP_MARGIN) else {
            return Ok(None);
        };
        let to_u32 = |v: usize| u32::try_from(2 * v).unwrap_or(u32::MAX);
        let crop = Roi {
            x: roi.x.saturating_add(to_u32(x)),
            y: roi.y.saturating_add(to_u32(y)),
            width: to_u32(cw),
            height: to_u32(ch),
        };
        Ok(frame.region(crop).is_ok().then_some(crop))
    }

    /// Run one pass only (benches and tests use this to measure each retry).
    pub fn decode_pass(
        &mut self,
        frame: &GreyFrame,
        pass: PassKind,
    ) -> Result<Option<Read>, FrameError> {
        let roi = match self.crop {
            Some(crop) => crop,
            _ => self.roi(frame),
        };
        let plane = frame.region(roi)?;
        // The span covers the rxing calls (its sources, binarizer and reader allocate
        // inside) and our preprocessing into the decoder's reused scratch buffers.
        let span = crate::pipeline::probe::Span::enter(crate::pipeline::probe::Inside::Decoder);
        let found = match pass {
            PassKind::Full | PassKind::FullInverted => {
                // Borrow the frame; crop is a view in rxing too: no copy unless inverted.
                let Ok(src) =
                    Luma8Source::new_with_slice(frame.pixels(), frame.width(), frame.height())
                else {
                    return Ok(None);
                };
                let src = if roi.width == frame.width() && roi.height == frame.height() {
                    Ok(src)
                } else {
                    src.crop(
                        roi.x as usize,
                        roi.y as usize,
                        roi.width as usize,
                        roi.height as usize,
                    )
                };
                let Ok(mut src) = src else {
                    return Ok(None);
                };
                if pass == PassKind::FullInverted {
                    src.invert();
                }
                run_reader(src).map(|hit| (hit, 1.0))
            }
            PassKind::Downscaled | PassKind::DownscaledInverted => {
                let invert = pass == PassKind::DownscaledInverted;
                let (w, h) = preprocess::downscale2(plane, invert, &mut self.small);
                read_packed(&self.small, w, h).map(|hit| (hit, 2.0))
            }
            PassKind::DottedDownscaled => {
                let (w, h) = preprocess::downscale2(plane, false, &mut self.small);
                preprocess::close_dark(&self.small, w, h, 1, &mut self.tmp, &mut self.out);
                read_packed(&self.out, w, h).map(|hit| (hit, 2.0))
            }
            PassKind::Rotated45 => {
                let (w, h) = preprocess::downscale2(plane, false, &mut self.small);
                let side = preprocess::rotate45(&self.small, w, h, &mut self.out);
                read_packed(&self.out, side, side).map(|mut hit| {
                    for p in &mut hit.points {
                        let (x, y) = preprocess::rotated45_to_source(p.x, p.y, w, h);
                        p.x = x;
                        p.y = y;
                    }
                    (hit, 2.0)
                })
            }
            PassKind::Dotted | PassKind::Closed => {
                preprocess::pack(plane, false, &mut self.work);
                let (w, h) = (plane.width(), plane.height());
                let r = if pass == PassKind::Closed {
                    1
                } else {
                    usize::from(self.cfg.dot_radius.max(1))
                };
                preprocess::close_dark(&self.work, w, h, r, &mut self.tmp, &mut self.out);
                read_packed(&self.out, w, h).map(|hit| (hit, 1.0))
            }
        };
        drop(span);
        let Some((hit, scale)) = found else {
            return Ok(None);
        };
        // Grade on the full-resolution pixels of the ROI (as the camera saw them, inverted
        // for light-on-dark codes), with the corners scaled back from the pass's image.
        let mut points = hit.points;
        for p in &mut points {
            p.x *= scale;
            p.y *= scale;
        }
        let grade = grade_symbol(plane, pass.inverted(), &points);
        let corner = |i: usize| {
            points
                .get(i)
                .map(|p| (p.x + roi.x as f32, p.y + roi.y as f32))
                .unwrap_or((f32::NAN, f32::NAN))
        };
        Ok(Some(Read {
            content: hit.text,
            symbology: hit.symbology,
            pass,
            corners: [corner(0), corner(1), corner(2), corner(3)],
            grade,
        }))
    }
}

fn read_packed(data: &[u8], w: usize, h: usize) -> Option<Hit> {
    let src = Luma8Source::new_with_slice(data, w as u32, h as u32).ok()?;
    run_reader(src)
}

struct Hit {
    text: String,
    symbology: String,
    points: Vec<rxing::Point>,
}

fn run_reader(src: Luma8Source<'_>) -> Option<Hit> {
    let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(src));
    let hints = DecodeHints {
        TryHarder: Some(true),
        ..DecodeHints::default()
    };
    let result = DataMatrixReader
        .decode_with_hints(&mut bitmap, &hints)
        .ok()?;
    let symbology = match result
        .getRXingResultMetadata()
        .get(&RXingResultMetadataType::SYMBOLOGY_IDENTIFIER)
    {
        Some(RXingResultMetadataValue::SymbologyIdentifier(s)) => s.clone(),
        _ => String::from("]d1"),
    };
    Some(Hit {
        text: result.getText().to_owned(),
        symbology,
        points: result.getPoints().to_vec(),
    })
}
