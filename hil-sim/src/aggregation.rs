//! The simulated aggregation stations: a case packer that fills cases from the units
//! the line passed and shows each open case layer to the case camera (many rendered
//! unit codes in one frame, laid out as the profile's case layout says, with injected
//! faults: damaged codes, a foreign unit, a missing unit, a unit packed twice), a
//! label printer per station (the ZPL twin) whose printed label is shown to the
//! station camera, and a pallet station that stacks labelled cases. linectl's stations
//! run in-process against these over their real drivers (TCP frame stream, ZPL over
//! TCP). It owns the layer renderer, the fault plan and the ground truth behind the
//! report's `aggregation` object; it does not decide anything linectl decides.

use datamatrix::{DataMatrix, SymbolList};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::render::GreyFrame;
use linectl::profile::aggregation::LayoutSection;

/// What one position of a rendered layer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A clean code with this element string (GS as 0x1D).
    Code(String),
    /// A code with this element string, half of it torn off (unreadable).
    Damaged(String),
    /// Nothing: a missing unit.
    Empty,
}

/// Why a layer could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// The encoder refused the content.
    #[error("cannot encode {content:?} as a GS1 DataMatrix: {reason}")]
    Encode {
        /// The element string.
        content: String,
        /// Why.
        reason: String,
    },
    /// The symbol does not fit its cell.
    #[error("a {side}-pixel symbol does not fit a {cw}×{ch} cell")]
    TooBig {
        /// Symbol side with quiet zone, pixels.
        side: u32,
        /// Cell width.
        cw: u32,
        /// Cell height.
        ch: u32,
    },
    /// More slots than cells, or a layout outside the frame.
    #[error("{0}")]
    Layout(String),
}

/// Module size of rendered layer codes, pixels.
pub const MODULE_PX: u32 = 5;

/// Render a layer: one symbol per slot, centred in its layout cell with a seeded
/// jitter, on a grey carton-board background with a gradient and sensor noise.
pub fn render_layer(
    width: u32,
    height: u32,
    layout: &LayoutSection,
    slots: &[Slot],
    seed: u64,
) -> Result<GreyFrame, LayerError> {
    if layout.x + layout.width > width || layout.y + layout.height > height {
        return Err(LayerError::Layout(format!(
            "layout {}×{} at ({}, {}) outside the {width}×{height} frame",
            layout.width, layout.height, layout.x, layout.y
        )));
    }
    let cells = linectl::aggregation::detect::LayerDecoder::cells(layout);
    if slots.len() > cells.len() {
        return Err(LayerError::Layout(format!(
            "{} slots for {} cells",
            slots.len(),
            cells.len()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut f = GreyFrame::new(width, height);
    let (w, h) = (width as usize, height as usize);
    for y in 0..h {
        for x in 0..w {
            let grad = 30.0 * (x as f64 / w as f64) - 15.0 * (y as f64 / h as f64);
            let v = 190.0 + grad + f64::from(rng.random_range(-8i32..=8));
            if let Some(p) = f.pixels.get_mut(y * w + x) {
                *p = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    for (slot, cell) in slots.iter().zip(cells) {
        let (content, damaged) = match slot {
            Slot::Code(c) => (c, false),
            Slot::Damaged(c) => (c, true),
            Slot::Empty => continue,
        };
        let symbol = DataMatrix::encode_gs1(content.as_bytes(), SymbolList::default().enforce_square())
            .map_err(|e| LayerError::Encode {
                content: content.clone(),
                reason: format!("{e:?}"),
            })?;
        let bm = symbol.bitmap();
        let (mw, mh) = (bm.width() as u32, bm.height() as u32);
        let (sw, sh) = ((mw + 2) * MODULE_PX, (mh + 2) * MODULE_PX);
        if sw > cell.width || sh > cell.height {
            return Err(LayerError::TooBig {
                side: sw.max(sh),
                cw: cell.width,
                ch: cell.height,
            });
        }
        let free_x = (cell.width - sw) / 3;
        let free_y = (cell.height - sh) / 3;
        let ox = cell.x + (cell.width - sw) / 2 + MODULE_PX;
        let oy = cell.y + (cell.height - sh) / 2 + MODULE_PX;
        let jx = if free_x > 0 { rng.random_range(0..=2 * free_x) } else { free_x } as i64
            - i64::from(free_x);
        let jy = if free_y > 0 { rng.random_range(0..=2 * free_y) } else { free_y } as i64
            - i64::from(free_y);
        let (ox, oy) = (i64::from(ox) + jx, i64::from(oy) + jy);
        let bits = bm.bits();
        for my in 0..mh {
            for mx in 0..mw {
                let dark = bits.get((my * mw + mx) as usize).copied().unwrap_or(false);
                // A torn code: the left half (with the finder's solid edge) is gone.
                if !dark || (damaged && mx < mw / 2 + 1) {
                    continue;
                }
                for py in 0..MODULE_PX {
                    for px in 0..MODULE_PX {
                        let x = ox + i64::from(mx * MODULE_PX + px);
                        let y = oy + i64::from(my * MODULE_PX + py);
                        if let Some(p) = f.pixels.get_mut(y as usize * w + x as usize) {
                            *p = (35 + rng.random_range(0..20u8)).min(*p);
                        }
                    }
                }
            }
        }
    }
    Ok(f)
}
