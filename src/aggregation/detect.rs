//! Multi-symbol decoding of one station frame: the open case layer (many unit codes) or
//! the pallet layer (many case labels). The profile's nominal layout cuts the frame
//! into cells; each cell is decoded on its own (2× box-downscaled first, then full
//! resolution with rxing's try-harder), so a frame of 120 codes costs 120 small
//! decodes instead of one search over five megapixels. A cell with no ink is reported
//! as empty (a missing unit), a cell with ink that does not read as unreadable, both
//! with their position. It knows nothing about serials or the pool (that is `check`).

use rxing::common::HybridBinarizer;
use rxing::datamatrix::DataMatrixReader;
use rxing::{BinaryBitmap, DecodeHints, Luma8Source, Reader};

use crate::profile::aggregation::LayoutSection;

/// A rectangle of the frame, pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Cell {
    /// Row in the layout (0 = top).
    pub row: u32,
    /// Column in the layout (0 = left).
    pub col: u32,
    /// Left edge, pixels.
    pub x: u32,
    /// Top edge, pixels.
    pub y: u32,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
}

/// What one cell held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "content", rename_all = "kebab-case")]
pub enum CellRead {
    /// A symbol was read: its text (GS1 element string, GS as 0x1D).
    Code(String),
    /// No ink at all: nothing there.
    Empty,
    /// Ink, but no symbol could be read.
    Unreadable,
}

/// One cell and what it held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CellResult {
    /// Where.
    pub cell: Cell,
    /// What.
    pub read: CellRead,
}

/// Why a frame could not be decoded at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    /// The frame's pixel buffer does not match its size.
    #[error("frame {width}×{height} has {len} bytes of pixels")]
    BadFrame {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Bytes given.
        len: usize,
    },
    /// The layout does not fit the frame.
    #[error("layout {lw}×{lh} at ({x}, {y}) does not fit the {width}×{height} frame")]
    LayoutOutside {
        /// Layout left edge.
        x: u32,
        /// Layout top edge.
        y: u32,
        /// Layout width.
        lw: u32,
        /// Layout height.
        lh: u32,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
}

/// A pixel this much darker than the cell's median counts as ink.
const INK_CONTRAST: u8 = 60;
/// Fewer ink pixels than this: the cell is empty (a 4-pixel module is 16 pixels).
const MIN_INK_PIXELS: usize = 64;

/// Decodes every cell of a layout; owns its scratch buffers (reuse it across frames).
#[derive(Debug, Default)]
pub struct LayerDecoder {
    crop: Vec<u8>,
    small: Vec<u8>,
}

impl LayerDecoder {
    /// A decoder with empty scratch buffers.
    pub fn new() -> LayerDecoder {
        LayerDecoder::default()
    }

    /// The cells of `layout`, row by row.
    pub fn cells(layout: &LayoutSection) -> Vec<Cell> {
        let (rows, cols) = (layout.rows.max(1), layout.cols.max(1));
        let mut out = Vec::with_capacity((rows * cols) as usize);
        for row in 0..rows {
            for col in 0..cols {
                let x0 = layout.x + layout.width * col / cols;
                let x1 = layout.x + layout.width * (col + 1) / cols;
                let y0 = layout.y + layout.height * row / rows;
                let y1 = layout.y + layout.height * (row + 1) / rows;
                out.push(Cell {
                    row,
                    col,
                    x: x0,
                    y: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                });
            }
        }
        out
    }

    /// Decode every cell of `layout` in the grey frame `pixels` (`width`×`height`,
    /// row-major).
    pub fn decode(
        &mut self,
        pixels: &[u8],
        width: u32,
        height: u32,
        layout: &LayoutSection,
    ) -> Result<Vec<CellResult>, DetectError> {
        if pixels.len() != width as usize * height as usize {
            return Err(DetectError::BadFrame {
                width,
                height,
                len: pixels.len(),
            });
        }
        let right = u64::from(layout.x) + u64::from(layout.width);
        let bottom = u64::from(layout.y) + u64::from(layout.height);
        if right > u64::from(width) || bottom > u64::from(height) {
            return Err(DetectError::LayoutOutside {
                x: layout.x,
                y: layout.y,
                lw: layout.width,
                lh: layout.height,
                width,
                height,
            });
        }
        Ok(Self::cells(layout)
            .into_iter()
            .map(|cell| CellResult {
                cell,
                read: self.decode_cell(pixels, width as usize, cell),
            })
            .collect())
    }

    fn decode_cell(&mut self, pixels: &[u8], stride: usize, c: Cell) -> CellRead {
        let (w, h) = (c.width as usize, c.height as usize);
        self.crop.clear();
        for row in 0..h {
            let start = (c.y as usize + row) * stride + c.x as usize;
            match pixels.get(start..start + w) {
                Some(line) => self.crop.extend_from_slice(line),
                None => return CellRead::Unreadable,
            }
        }
        if ink_pixels(&self.crop) < MIN_INK_PIXELS {
            return CellRead::Empty;
        }
        // 2× box downscale: modules of 4-8 px become 2-4 px, a quarter of the work.
        let (sw, sh) = (w / 2, h / 2);
        self.small.clear();
        for y in 0..sh {
            for x in 0..sw {
                let at = |dx: usize, dy: usize| {
                    u16::from(
                        self.crop
                            .get((2 * y + dy) * w + 2 * x + dx)
                            .copied()
                            .unwrap_or(255),
                    )
                };
                let sum = at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1);
                self.small.push((sum / 4) as u8);
            }
        }
        if let Some(text) = read(&self.small, sw, sh, false) {
            return CellRead::Code(text);
        }
        match read(&self.crop, w, h, true) {
            Some(text) => CellRead::Code(text),
            None => CellRead::Unreadable,
        }
    }
}

/// Pixels clearly darker than the cell's median (the carton): the ink.
fn ink_pixels(p: &[u8]) -> usize {
    let mut hist = [0usize; 256];
    for &v in p {
        hist[usize::from(v)] += 1;
    }
    let half = p.len() / 2;
    let mut acc = 0;
    let mut median = 255usize;
    for (v, &c) in hist.iter().enumerate() {
        acc += c;
        if acc > half {
            median = v;
            break;
        }
    }
    let limit = median.saturating_sub(usize::from(INK_CONTRAST));
    hist.iter().take(limit).sum()
}

fn read(data: &[u8], w: usize, h: usize, try_harder: bool) -> Option<String> {
    let src = Luma8Source::new_with_slice(data, w as u32, h as u32).ok()?;
    let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(src));
    let hints = DecodeHints {
        TryHarder: Some(try_harder),
        ..DecodeHints::default()
    };
    let r = DataMatrixReader
        .decode_with_hints(&mut bitmap, &hints)
        .ok()?;
    Some(r.getText().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(rows: u32, cols: u32, width: u32, height: u32) -> LayoutSection {
        LayoutSection {
            rows,
            cols,
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    #[test]
    fn cells_tile_the_layout_exactly() {
        let cells = LayerDecoder::cells(&layout(3, 7, 100, 50));
        assert_eq!(cells.len(), 21);
        let area: u32 = cells.iter().map(|c| c.width * c.height).sum();
        assert_eq!(area, 5000);
        assert_eq!(
            cells.last().map(|c| (c.row, c.col, c.x + c.width)),
            Some((2, 6, 100))
        );
    }

    #[test]
    fn blank_cells_are_empty_and_bad_input_is_an_error() {
        let mut d = LayerDecoder::new();
        let px = vec![200u8; 200 * 100];
        let r = d.decode(&px, 200, 100, &layout(1, 2, 200, 100));
        assert_eq!(
            r.map(|v| v.iter().all(|c| c.read == CellRead::Empty)),
            Ok(true)
        );
        assert!(matches!(
            d.decode(&px[1..], 200, 100, &layout(1, 2, 200, 100)),
            Err(DetectError::BadFrame { .. })
        ));
        assert!(matches!(
            d.decode(&px, 200, 100, &layout(1, 2, 201, 100)),
            Err(DetectError::LayoutOutside { .. })
        ));
    }

    #[test]
    fn noise_is_unreadable_not_empty() {
        let mut d = LayerDecoder::new();
        let px: Vec<u8> = (0..100 * 100u32)
            .map(|i| {
                if i.wrapping_mul(2_654_435_761u32) >> 31 == 1 {
                    20
                } else {
                    230
                }
            })
            .collect();
        let r = d.decode(&px, 100, 100, &layout(1, 1, 100, 100));
        assert_eq!(
            r.map(|v| v.first().map(|c| c.read.clone())),
            Ok(Some(CellRead::Unreadable))
        );
    }
}
