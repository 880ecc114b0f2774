//! Print-quality grading in the spirit of ISO/IEC 15415 for a DataMatrix that rxing has
//! already decoded: from the decoder's corner points it fits the module grid (symbol size
//! and orientation found by matching the finder L and the clock tracks), samples every
//! module on the pixels that decoded, and computes symbol contrast, modulation, fixed
//! pattern damage, axial and grid non-uniformity and unused error correction, each with a
//! letter grade A–F (4..0); the overall grade is the lowest.
//!
//! This is an estimate for process control, NOT a certified verification: no calibrated
//! illumination, optics or measuring aperture (the aperture is a fixed fraction of the
//! module), reflectance is raw 8-bit luma / 255 without calibration against a reference
//! card, the grid is fitted from four corners and the clock tracks rather than the
//! reference decode algorithm, one image instead of several at different orientations,
//! modulation is pooled by module counts (not per codeword), and unused error correction
//! is estimated by re-running Reed-Solomon on our own sampling of the grid. Use a
//! certified ISO 15415 verifier for release or audit figures.

use rxing::common::BitMatrix;
use rxing::common::reedsolomon::{PredefinedGenericGF, ReedSolomonDecoder};
use rxing::datamatrix::decoder::{BitMatrixParser, DataBlock, Version};

use super::frame::Plane;

use std::cell::RefCell;
use std::thread::LocalKey;

// Per-thread scratch vectors: a decode worker grades every frame with the same buffers
// (no allocation per frame once they have grown to the largest symbol).
thread_local! {
    static BORDER: RefCell<Vec<(f32, usize, usize)>> = const { RefCell::new(Vec::new()) };
    static REFL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static QUIET: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static MODS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with the thread's scratch vector `key`, emptied (a fresh one if it is in use).
fn with_scratch<T, R>(
    key: &'static LocalKey<RefCell<Vec<T>>>,
    f: impl FnOnce(&mut Vec<T>) -> R,
) -> R {
    let mut v = key.with(|c| {
        c.try_borrow_mut()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    });
    v.clear();
    let r = f(&mut v);
    key.with(|c| {
        if let Ok(mut b) = c.try_borrow_mut() {
            *b = v;
        }
    });
    r
}

/// An ISO-style letter grade; `A` (4) is best, `F` (0) fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grade {
    /// 0: fail.
    F = 0,
    /// 1.
    D = 1,
    /// 2.
    C = 2,
    /// 3.
    B = 3,
    /// 4: best.
    A = 4,
}

impl Grade {
    /// The numeric grade 0..=4.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The letter.
    pub fn letter(self) -> char {
        match self {
            Grade::A => 'A',
            Grade::B => 'B',
            Grade::C => 'C',
            Grade::D => 'D',
            Grade::F => 'F',
        }
    }

    /// Grade for a value where bigger is better, from the A, B, C, D lower bounds.
    fn at_least(v: f32, bounds: [f32; 4]) -> Grade {
        if v >= bounds[0] {
            Grade::A
        } else if v >= bounds[1] {
            Grade::B
        } else if v >= bounds[2] {
            Grade::C
        } else if v >= bounds[3] {
            Grade::D
        } else {
            Grade::F
        }
    }

    /// Grade for a value where smaller is better, from the A, B, C, D upper bounds.
    fn at_most(v: f32, bounds: [f32; 4]) -> Grade {
        if v <= bounds[0] {
            Grade::A
        } else if v <= bounds[1] {
            Grade::B
        } else if v <= bounds[2] {
            Grade::C
        } else if v <= bounds[3] {
            Grade::D
        } else {
            Grade::F
        }
    }
}

impl std::fmt::Display for Grade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl std::str::FromStr for Grade {
    type Err = String;
    /// `A`..`D`, `F`, or `4`..`0`.
    fn from_str(s: &str) -> Result<Grade, String> {
        match s.trim() {
            "A" | "a" | "4" => Ok(Grade::A),
            "B" | "b" | "3" => Ok(Grade::B),
            "C" | "c" | "2" => Ok(Grade::C),
            "D" | "d" | "1" => Ok(Grade::D),
            "F" | "f" | "0" => Ok(Grade::F),
            other => Err(format!(
                "grade {other:?} is not one of A, B, C, D, F or 4..0"
            )),
        }
    }
}

impl serde::Serialize for Grade {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_char(self.letter())
    }
}

impl<'de> serde::Deserialize<'de> for Grade {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Grade, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One graded parameter: the measured value and its grade.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Metric {
    /// The measured value (a fraction; see each field of [`GradeReport`]).
    pub value: f32,
    /// Its grade.
    pub grade: Grade,
}

impl Metric {
    const FAILED: Metric = Metric {
        value: f32::NAN,
        grade: Grade::F,
    };
}

/// The grading of one symbol.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GradeReport {
    /// The lowest of the parameter grades.
    pub overall: Grade,
    /// Rmax − Rmin (luma / 255). A ≥ 0.70, B ≥ 0.55, C ≥ 0.40, D ≥ 0.20.
    pub symbol_contrast: Metric,
    /// Modulation: the grade at which the modules whose 2|R−GT|/SC falls below each
    /// level still fit in the error correction (value: lowest module modulation).
    pub modulation: Metric,
    /// Fixed pattern damage: finder L and clock tracks (value: share of wrong modules).
    pub fixed_pattern_damage: Metric,
    /// |X − Y| / mean module pitch. A ≤ 0.06, B ≤ 0.08, C ≤ 0.10, D ≤ 0.12.
    pub axial_nonuniformity: Metric,
    /// Largest deviation of a clock-track module centre from the fitted grid, in
    /// modules. A ≤ 0.38, B ≤ 0.50, C ≤ 0.63, D ≤ 0.75.
    pub grid_nonuniformity: Metric,
    /// Estimated unused error correction, worst block: 1 − 2·errors / EC codewords.
    /// A ≥ 0.62, B ≥ 0.50, C ≥ 0.37, D ≥ 0.25.
    pub unused_error_correction: Metric,
    /// Symbol rows × columns found (0 × 0 when the grid could not be fitted).
    pub rows: u16,
    /// Symbol columns.
    pub cols: u16,
    /// Mean module pitch in the graded image's pixels.
    pub module_px: f32,
    /// Why the grid could not be fitted, when it could not (then every grade is F).
    pub note: Option<String>,
}

impl GradeReport {
    fn failed(note: &str) -> GradeReport {
        GradeReport {
            overall: Grade::F,
            symbol_contrast: Metric::FAILED,
            modulation: Metric::FAILED,
            fixed_pattern_damage: Metric::FAILED,
            axial_nonuniformity: Metric::FAILED,
            grid_nonuniformity: Metric::FAILED,
            unused_error_correction: Metric::FAILED,
            rows: 0,
            cols: 0,
            module_px: f32::NAN,
            note: Some(note.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct P {
    x: f32,
    y: f32,
}

/// Bilinear map from the unit square to the quad `tl, tr, br, bl` (adequate for the
/// near-affine views of a line camera).
#[derive(Debug, Clone, Copy)]
struct Quad([P; 4]);

impl Quad {
    fn map(&self, u: f32, v: f32) -> P {
        let [a, b, c, d] = self.0;
        let top = P {
            x: a.x + (b.x - a.x) * u,
            y: a.y + (b.y - a.y) * u,
        };
        let bot = P {
            x: d.x + (c.x - d.x) * u,
            y: d.y + (c.y - d.y) * u,
        };
        P {
            x: top.x + (bot.x - top.x) * v,
            y: top.y + (bot.y - top.y) * v,
        }
    }
}

fn dist(a: P, b: P) -> f32 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

/// Luma (inverted when asked) at a sub-pixel point, bilinear.
fn luma(plane: Plane<'_>, invert: bool, p: P) -> f32 {
    let x0 = p.x.floor();
    let y0 = p.y.floor();
    let fx = p.x - x0;
    let fy = p.y - y0;
    let (xi, yi) = (x0 as isize, y0 as isize);
    let g = |x: isize, y: isize| f32::from(plane.at_clamped(x, y));
    let v = g(xi, yi) * (1.0 - fx) * (1.0 - fy)
        + g(xi + 1, yi) * fx * (1.0 - fy)
        + g(xi, yi + 1) * (1.0 - fx) * fy
        + g(xi + 1, yi + 1) * fx * fy;
    if invert { 255.0 - v } else { v }
}

/// The grid: quad, size, and sampled module reflectances (row-major, 0..1).
struct Grid {
    quad: Quad,
    rows: usize,
    cols: usize,
}

impl Grid {
    /// Centre of module (c, r) in pixels; c, r may be fractional / outside.
    fn at(&self, c: f32, r: f32) -> P {
        self.quad
            .map((c + 0.5) / self.cols as f32, (r + 0.5) / self.rows as f32)
    }

    /// Reflectance of module (c, r): mean of a 3×3 pattern at ±0.2 module (the
    /// "aperture").
    fn sample(&self, plane: Plane<'_>, invert: bool, c: f32, r: f32) -> f32 {
        let mut s = 0.0;
        for dy in [-0.2f32, 0.0, 0.2] {
            for dx in [-0.2f32, 0.0, 0.2] {
                s += luma(plane, invert, self.at(c + dx, r + dy));
            }
        }
        s / 9.0 / 255.0
    }
}

/// Expected colour of border module (c, r) of a DataMatrix (true = dark): solid L on the
/// left column and bottom row, alternating clock tracks on the top row and right column.
/// `None` for interior modules.
fn border_expect(c: usize, r: usize, rows: usize, cols: usize) -> Option<bool> {
    if c == 0 || r == rows - 1 {
        Some(true)
    } else if r == 0 {
        Some(c.is_multiple_of(2))
    } else if c == cols - 1 {
        Some(!r.is_multiple_of(2))
    } else {
        None
    }
}

/// Every valid DataMatrix size (ECC 200 square, rectangular and DMRE), as rows × cols,
/// from rxing's version table (computed once).
fn valid_sizes() -> &'static [(usize, usize)] {
    static SIZES: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();
    SIZES.get_or_init(|| {
        (8..=144usize)
            .step_by(2)
            .flat_map(|r| {
                (8..=144usize)
                    .step_by(2)
                    .filter(move |&c| Version::getVersionForDimensions(r as u32, c as u32).is_ok())
                    .map(move |c| (r, c))
            })
            .collect()
    })
}

/// Grade the symbol whose corner points rxing reported, on `plane` (the pixels that
/// decoded, inverted when `invert`). Never panics; returns an all-F report with a note
/// when the grid cannot be fitted.
pub fn grade_symbol(plane: Plane<'_>, invert: bool, points: &[rxing::Point]) -> GradeReport {
    let Some(corners) = points.get(..4) else {
        return GradeReport::failed("decoder gave no symbol corners");
    };
    let pts: [P; 4] = std::array::from_fn(|i| {
        corners.get(i).map_or(
            P {
                x: f32::NAN,
                y: f32::NAN,
            },
            |p| P { x: p.x, y: p.y },
        )
    });
    if pts.iter().any(|p| !p.x.is_finite() || !p.y.is_finite()) {
        return GradeReport::failed("decoder gave non-finite corners");
    }
    // Find orientation and size by the border match: rxing's own order first (top-left,
    // top-right, bottom-right, bottom-left with the L at bottom-left), then the other
    // three rotations and the mirrored windings.
    let mut best: Option<(f32, Grid)> = None;
    for (start, wind) in (0..4).flat_map(|s| [(s, false), (s, true)]) {
        if best.as_ref().is_some_and(|(s, _)| *s >= 0.95) {
            break;
        }
        let idx = |k: usize| {
            if wind {
                (start + 4 - k) % 4
            } else {
                (start + k) % 4
            }
        };
        let quad = Quad([pts[idx(0)], pts[idx(1)], pts[idx(2)], pts[idx(3)]]);
        let [a, b, c, d] = quad.0;
        let wpx = (dist(a, b) + dist(d, c)) / 2.0;
        let hpx = (dist(a, d) + dist(b, c)) / 2.0;
        for &(rows, cols) in valid_sizes() {
            let mx = wpx / cols as f32;
            let my = hpx / rows as f32;
            if mx < 1.2 || my < 1.2 || (mx - my).abs() / (mx + my) * 2.0 > 0.3 {
                continue;
            }
            let grid = Grid { quad, rows, cols };
            let score = border_score(&grid, plane, invert);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, grid));
            }
        }
    }
    let Some((score, grid)) = best else {
        return GradeReport::failed("no DataMatrix size fits the corners");
    };
    if score < 0.75 {
        return GradeReport::failed("finder and clock patterns not found on the fitted grid");
    }
    grade_grid(&grid, plane, invert)
}

/// Share of border modules matching the finder / clock pattern, thresholded at the
/// midpoint of the border samples.
fn border_score(grid: &Grid, plane: Plane<'_>, invert: bool) -> f32 {
    with_scratch(&BORDER, |samples| {
        border_score_in(grid, plane, invert, samples)
    })
}

fn border_score_in(
    grid: &Grid,
    plane: Plane<'_>,
    invert: bool,
    samples: &mut Vec<(f32, usize, usize)>,
) -> f32 {
    let (rows, cols) = (grid.rows, grid.cols);
    for c in 0..cols {
        for r in [0, rows - 1] {
            samples.push((grid.sample(plane, invert, c as f32, r as f32), c, r));
        }
    }
    for r in 1..rows - 1 {
        for c in [0, cols - 1] {
            samples.push((grid.sample(plane, invert, c as f32, r as f32), c, r));
        }
    }
    let (lo, hi) = samples.iter().fold((f32::MAX, f32::MIN), |(lo, hi), s| {
        (lo.min(s.0), hi.max(s.0))
    });
    let gt = (lo + hi) / 2.0;
    let ok = samples
        .iter()
        .filter(|(v, c, r)| border_expect(*c, *r, rows, cols) == Some(*v < gt))
        .count();
    ok as f32 / samples.len() as f32
}

fn grade_grid(grid: &Grid, plane: Plane<'_>, invert: bool) -> GradeReport {
    with_scratch(&REFL, |refl| {
        with_scratch(&QUIET, |quiet| {
            with_scratch(&MODS, |border_mods| {
                grade_grid_in(grid, plane, invert, refl, quiet, border_mods)
            })
        })
    })
}

fn grade_grid_in(
    grid: &Grid,
    plane: Plane<'_>,
    invert: bool,
    refl: &mut Vec<f32>,
    quiet: &mut Vec<f32>,
    border_mods: &mut Vec<f32>,
) -> GradeReport {
    let (rows, cols) = (grid.rows, grid.cols);
    for r in 0..rows {
        for c in 0..cols {
            refl.push(grid.sample(plane, invert, c as f32, r as f32));
        }
    }
    // quiet zone ring, one module outside

    for c in -1..=cols as i32 {
        quiet.push(grid.sample(plane, invert, c as f32, -1.0));
        quiet.push(grid.sample(plane, invert, c as f32, rows as f32));
    }
    for r in 0..rows as i32 {
        quiet.push(grid.sample(plane, invert, -1.0, r as f32));
        quiet.push(grid.sample(plane, invert, cols as f32, r as f32));
    }
    let rmax = refl
        .iter()
        .chain(quiet.iter())
        .copied()
        .fold(0.0f32, f32::max);
    let rmin = refl
        .iter()
        .chain(quiet.iter())
        .copied()
        .fold(1.0f32, f32::min);
    let sc = (rmax - rmin).max(0.0);
    let gt = (rmax + rmin) / 2.0;
    let symbol_contrast = Metric {
        value: sc,
        grade: Grade::at_least(sc, [0.70, 0.55, 0.40, 0.20]),
    };

    // Unused error correction from our own sampling, with rxing's bit matrix, codeword
    // parser and Reed-Solomon decoder (which allocate inside).
    let ec = {
        let _span = crate::pipeline::probe::Span::enter(crate::pipeline::probe::Inside::Decoder);
        BitMatrix::new(cols as u32, rows as u32)
            .ok()
            .map(|mut bits| {
                for r in 0..rows {
                    for c in 0..cols {
                        if refl.get(r * cols + c).is_some_and(|&v| v < gt) {
                            bits.set(c as u32, r as u32);
                        }
                    }
                }
                unused_ec(&bits)
            })
    };
    let Some((uec, ec_total)) = ec else {
        return GradeReport::failed("cannot build the module matrix");
    };
    let unused_error_correction = Metric {
        value: uec,
        grade: Grade::at_least(uec, [0.62, 0.50, 0.37, 0.25]),
    };

    // Modulation: module grades pooled against the error-correction budget.
    let module_grade = |v: f32| {
        let m = if sc > 0.0 {
            2.0 * (v - gt).abs() / sc
        } else {
            0.0
        };
        (m, Grade::at_least(m, [0.50, 0.40, 0.30, 0.20]))
    };
    let min_mod = refl
        .iter()
        .map(|&v| module_grade(v).0)
        .fold(f32::MAX, f32::min);
    let mut mod_grade = Grade::F;
    for level in [Grade::A, Grade::B, Grade::C, Grade::D] {
        let below = refl.iter().filter(|&&v| module_grade(v).1 < level).count();
        let notional = if ec_total > 0 {
            1.0 - below as f32 / ec_total as f32
        } else {
            0.0
        };
        let g = level.min(Grade::at_least(notional, [0.62, 0.50, 0.37, 0.25]));
        mod_grade = mod_grade.max(g);
    }
    let modulation = Metric {
        value: min_mod,
        grade: mod_grade,
    };

    // Fixed pattern damage: wrong border modules, worst side, and their modulation.
    let mut wrong = [0usize; 4]; // left, bottom, top, right
    let mut total = 0usize;
    for r in 0..rows {
        for c in 0..cols {
            let Some(expect) = border_expect(c, r, rows, cols) else {
                continue;
            };
            let v = refl.get(r * cols + c).copied().unwrap_or(1.0);
            total += 1;
            border_mods.push(module_grade(v).0);
            if (v < gt) != expect {
                let side = if c == 0 {
                    0
                } else if r == rows - 1 {
                    1
                } else if r == 0 {
                    2
                } else {
                    3
                };
                wrong[side] += 1;
            }
        }
    }
    let worst = wrong.iter().copied().max().unwrap_or(0);
    let count_grade = match worst {
        0 => Grade::A,
        1 => Grade::B,
        2 => Grade::C,
        3 => Grade::D,
        _ => Grade::F,
    };
    border_mods.sort_by(f32::total_cmp);
    let p10 = border_mods
        .get(border_mods.len() / 10)
        .copied()
        .unwrap_or(0.0);
    let fixed_pattern_damage = Metric {
        value: wrong.iter().sum::<usize>() as f32 / total.max(1) as f32,
        grade: count_grade.min(Grade::at_least(p10, [0.50, 0.40, 0.30, 0.20])),
    };

    // Axial non-uniformity from the fitted quad.
    let [a, b, c, d] = grid.quad.0;
    let x = (dist(a, b) + dist(d, c)) / 2.0 / cols as f32;
    let y = (dist(a, d) + dist(b, c)) / 2.0 / rows as f32;
    let an = (x - y).abs() / ((x + y) / 2.0);
    let axial_nonuniformity = Metric {
        value: an,
        grade: Grade::at_most(an, [0.06, 0.08, 0.10, 0.12]),
    };

    // Grid non-uniformity from the clock tracks: centres of the dark clock modules
    // (midpoint of their two edges, so print growth cancels) against the fitted grid.
    let gn = clock_deviation(grid, plane, invert, gt);
    let grid_nonuniformity = Metric {
        value: gn,
        grade: Grade::at_most(gn, [0.38, 0.50, 0.63, 0.75]),
    };

    let overall = [
        symbol_contrast.grade,
        modulation.grade,
        fixed_pattern_damage.grade,
        axial_nonuniformity.grade,
        grid_nonuniformity.grade,
        unused_error_correction.grade,
    ]
    .into_iter()
    .min()
    .unwrap_or(Grade::F);
    GradeReport {
        overall,
        symbol_contrast,
        modulation,
        fixed_pattern_damage,
        axial_nonuniformity,
        grid_nonuniformity,
        unused_error_correction,
        rows: rows as u16,
        cols: cols as u16,
        module_px: (x + y) / 2.0,
        note: None,
    }
}

/// (worst-block UEC, total EC codewords) from Reed-Solomon over our sampled matrix; UEC 0
/// when the sampling does not correct.
fn unused_ec(bits: &BitMatrix) -> (f32, usize) {
    let Ok(mut parser) = BitMatrixParser::new(bits) else {
        return (0.0, 0);
    };
    let Ok(codewords) = parser.readCodewords() else {
        return (0.0, 0);
    };
    let Ok(blocks) = DataBlock::getDataBlocks(&codewords, parser.getVersion(), false) else {
        return (0.0, 0);
    };
    let rs = ReedSolomonDecoder::new(PredefinedGenericGF::DataMatrixField256.into());
    let mut worst = 1.0f32;
    let mut ec_total = 0usize;
    for block in &blocks {
        let cw = block.getCodewords();
        let ec = cw
            .len()
            .saturating_sub(block.getNumDataCodewords() as usize);
        ec_total += ec;
        if ec == 0 {
            continue;
        }
        let mut ints: Vec<i32> = cw.iter().map(|&b| i32::from(b)).collect();
        match rs.decode(&mut ints, ec as i32) {
            Ok(errors) => worst = worst.min(1.0 - 2.0 * errors as f32 / ec as f32),
            Err(_) => worst = 0.0,
        }
    }
    (worst.max(0.0), ec_total)
}

/// Largest deviation (in modules) of a dark clock-module centre from its grid position,
/// along the top row and right column.
fn clock_deviation(grid: &Grid, plane: Plane<'_>, invert: bool, gt: f32) -> f32 {
    const STEP: f32 = 0.05;
    let mut worst = 0.0f32;
    // (fixed coordinate, along-top-row?)
    for top in [true, false] {
        let n = if top { grid.cols } else { grid.rows };
        let steps = (n as f32 / STEP) as usize;
        let sample = |t: f32| {
            let p = if top {
                grid.at(t - 0.5, 0.0)
            } else {
                grid.at(grid.cols as f32 - 1.0, t - 0.5)
            };
            luma(plane, invert, p) / 255.0
        };
        let mut prev = sample(0.0) < gt;
        let mut enter: Option<f32> = None;
        for i in 1..=steps {
            let t = i as f32 * STEP;
            let dark = sample(t) < gt;
            if dark != prev {
                let edge = t - STEP / 2.0;
                if dark {
                    enter = Some(edge);
                } else if let Some(e) = enter.take() {
                    let centre = (e + edge) / 2.0;
                    let ideal = centre.floor() + 0.5;
                    worst = worst.max((centre - ideal).abs());
                }
                prev = dark;
            }
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grade_order_and_parse() {
        assert!(Grade::A > Grade::B && Grade::D > Grade::F);
        assert_eq!("c".parse::<Grade>(), Ok(Grade::C));
        assert_eq!("4".parse::<Grade>(), Ok(Grade::A));
        assert!("E".parse::<Grade>().is_err());
        assert_eq!(Grade::at_least(0.56, [0.70, 0.55, 0.40, 0.20]), Grade::B);
        assert_eq!(Grade::at_most(0.13, [0.06, 0.08, 0.10, 0.12]), Grade::F);
    }

    #[test]
    fn sizes_include_square_rect_and_dmre() {
        let sizes = valid_sizes();
        for s in [
            (10, 10),
            (24, 24),
            (144, 144),
            (8, 18),
            (16, 48),
            (8, 120),
            (26, 64),
        ] {
            assert!(sizes.contains(&s), "{s:?}");
        }
        assert!(!sizes.contains(&(10, 12)));
    }

    #[test]
    fn no_corners_is_an_f_not_a_panic() {
        let data = vec![128u8; 100];
        let plane = Plane::contiguous(&data, 10, 10).unwrap();
        let r = grade_symbol(plane, false, &[]);
        assert_eq!(r.overall, Grade::F);
        assert!(r.note.is_some());
        let nan = rxing::Point {
            x: f32::NAN,
            y: 0.0,
        };
        assert_eq!(grade_symbol(plane, false, &[nan; 4]).overall, Grade::F);
    }
}
