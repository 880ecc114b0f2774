//! Pixel preprocessing for the decode retries: a 2× box downscale (optionally inverting
//! the luma in the same pass, for light-on-dark laser codes), luma inversion, and grey
//! morphology (min / max filters, closing) that joins the separate dots of continuous-
//! inkjet prints into solid modules. Each function writes into a caller-provided buffer
//! so that a worker reuses its scratch memory from frame to frame. It knows nothing about
//! symbols.

use super::frame::Plane;

/// Downscale `src` by 2 in each direction (2×2 box mean) into `out`, inverting the luma
/// (`255 - v`) when `invert`. Returns (width, height) of the result; an odd last
/// row / column is dropped.
pub fn downscale2(src: Plane<'_>, invert: bool, out: &mut Vec<u8>) -> (usize, usize) {
    let w = src.width / 2;
    let h = src.height / 2;
    out.clear();
    out.reserve(w * h);
    for y in 0..h {
        let r0 = src.row(2 * y);
        let r1 = src.row(2 * y + 1);
        let pairs = r0.chunks_exact(2).zip(r1.chunks_exact(2)).take(w);
        if invert {
            out.extend(pairs.map(|(a, b)| {
                let s = a[0] as u16 + a[1] as u16 + b[0] as u16 + b[1] as u16;
                255 - ((s + 2) / 4) as u8
            }));
        } else {
            out.extend(pairs.map(|(a, b)| {
                let s = a[0] as u16 + a[1] as u16 + b[0] as u16 + b[1] as u16;
                ((s + 2) / 4) as u8
            }));
        }
    }
    (w, h)
}

/// Copy `src` into `out` packed, inverting when `invert`.
pub fn pack(src: Plane<'_>, invert: bool, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(src.width * src.height);
    for y in 0..src.height {
        let row = src.row(y);
        if invert {
            out.extend(row.iter().map(|&v| 255 - v));
        } else {
            out.extend_from_slice(row);
        }
    }
}

#[derive(Clone, Copy)]
enum Op {
    Min,
    Max,
}

/// Separable square filter of radius `r` ((2r+1)² window), `src` packed `w`×`h` into
/// `out`; `tmp` is scratch.
fn filter(src: &[u8], w: usize, h: usize, r: usize, op: Op, tmp: &mut Vec<u8>, out: &mut Vec<u8>) {
    let pick = |a: u8, b: u8| match op {
        Op::Min => a.min(b),
        Op::Max => a.max(b),
    };
    tmp.clear();
    tmp.resize(w * h, 0);
    out.clear();
    out.resize(w * h, 0);
    // horizontal: interior pixels from sliding windows, the r-wide edges clamped
    let win = 2 * r + 1;
    for (srow, trow) in src.chunks_exact(w).zip(tmp.chunks_exact_mut(w)) {
        if w > win {
            for (t, wnd) in trow[r..w - r].iter_mut().zip(srow.windows(win)) {
                *t = wnd.iter().copied().fold(wnd[0], pick);
            }
        }
        let edges = (0..r.min(w)).chain(w.saturating_sub(r).max(r.min(w))..w);
        for x in edges.chain(if w > win { 0..0 } else { 0..w }) {
            let lo = x.saturating_sub(r);
            let hi = (x + r + 1).min(w);
            trow[x] = srow[lo..hi].iter().copied().fold(srow[x], pick);
        }
    }
    // vertical
    for y in 0..h {
        let lo = y.saturating_sub(r);
        let hi = (y + r + 1).min(h);
        let orow = &mut out[y * w..(y + 1) * w];
        orow.copy_from_slice(&tmp[lo * w..(lo + 1) * w]);
        for yy in lo + 1..hi {
            for (o, &t) in orow.iter_mut().zip(&tmp[yy * w..(yy + 1) * w]) {
                *o = pick(*o, t);
            }
        }
    }
}

/// Grey morphological closing of the dark ink: a min filter (dark grows by `r` pixels,
/// joining dots closer than 2r) then a max filter (dark shrinks back by `r`). `src` is
/// packed `w`×`h`; the result goes to `out`, `tmp` is scratch.
pub fn close_dark(src: &[u8], w: usize, h: usize, r: usize, tmp: &mut Vec<u8>, out: &mut Vec<u8>) {
    let mut mid = Vec::new();
    filter(src, w, h, r, Op::Min, tmp, &mut mid);
    filter(&mid, w, h, r, Op::Max, tmp, out);
}

/// Min filter of radius `r` (dark grows by `r` pixels).
pub fn min_filter(src: &[u8], w: usize, h: usize, r: usize, tmp: &mut Vec<u8>, out: &mut Vec<u8>) {
    filter(src, w, h, r, Op::Min, tmp, out);
}

/// Rotate packed `src` (`w`×`h`) by 45° about its centre into `out` (nearest pixel,
/// clamped at the edges); returns the output side length. rxing's detector misses
/// some symbols turned about 30° from the axes; turned by a further 45° they read.
/// [`rotated45_to_source`] maps a point of the output back.
pub fn rotate45(src: &[u8], w: usize, h: usize, out: &mut Vec<u8>) -> usize {
    let side = ((w + h) as f32 * std::f32::consts::FRAC_1_SQRT_2).ceil() as usize;
    out.clear();
    out.reserve(side * side);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let c = side as f32 / 2.0;
    let k = std::f32::consts::FRAC_1_SQRT_2;
    let (wi, hi) = (w as isize - 1, h as isize - 1);
    for v in 0..side {
        let dv = v as f32 + 0.5 - c;
        for u in 0..side {
            let du = u as f32 + 0.5 - c;
            let x = (cx + (du - dv) * k) as isize;
            let y = (cy + (du + dv) * k) as isize;
            let idx = y.clamp(0, hi) as usize * w + x.clamp(0, wi) as usize;
            out.push(src.get(idx).copied().unwrap_or(0));
        }
    }
    side
}

/// Map a point of [`rotate45`]'s output back to the source image.
pub fn rotated45_to_source(x: f32, y: f32, w: usize, h: usize) -> (f32, f32) {
    let side = ((w + h) as f32 * std::f32::consts::FRAC_1_SQRT_2).ceil();
    let k = std::f32::consts::FRAC_1_SQRT_2;
    let (du, dv) = (x - side / 2.0, y - side / 2.0);
    (
        w as f32 / 2.0 + (du - dv) * k,
        h as f32 / 2.0 + (du + dv) * k,
    )
}

/// Side, in pixels of the image given to [`locate_busy`], of the blocks it scores.
const BLOCK: usize = 8;

/// Find the busiest region of a (downscaled) `w`×`h` image: the bounding box, grown by
/// `margin` pixels and clamped to the image, of the 4-connected blocks of [`BLOCK`]² pixels
/// whose total variation (sum of absolute differences between neighbouring pixels) is at
/// least 35% of the way from the median block's (the background) to the busiest block's, taking the component that holds the busiest block.
/// A DataMatrix is edges in every block; print clutter (solid boxes, rules, outlines) has
/// edges only along its outline, and sensor noise far less contrast than a module edge.
/// Returns (x, y, width, height), or `None` for an image smaller than a block or without
/// any variation.
pub fn locate_busy(
    src: &[u8],
    w: usize,
    h: usize,
    margin: usize,
) -> Option<(usize, usize, usize, usize)> {
    let (bw, bh) = (w / BLOCK, h / BLOCK);
    if bw == 0 || bh == 0 || src.len() < w * h {
        return None;
    }
    LOCATE_SCRATCH.with(|s| locate_in(src, (w, h), (bw, bh), margin, &mut s.borrow_mut()))
}

/// The working lists of [`locate_busy`], kept per decode thread so that a frame that
/// needs locating allocates nothing once the lists have grown to the frame size.
#[derive(Default)]
struct Scratch {
    score: Vec<u32>,
    sorted: Vec<u32>,
    seen: Vec<bool>,
    stack: Vec<usize>,
}

thread_local! {
    static LOCATE_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Size this thread's [`locate_busy`] lists for a `w`×`h` (downscaled) image up front,
/// whether or not a frame will need locating: a decode worker calls it for every frame,
/// so its lists are allocated once, on its first frame, and never when a rare frame
/// first needs the fallback (allocation would then depend on which frames come).
pub fn reserve_locate(w: usize, h: usize) {
    let blocks = (w / BLOCK) * (h / BLOCK);
    LOCATE_SCRATCH.with(|s| {
        let Scratch {
            score,
            sorted,
            seen,
            stack,
        } = &mut *s.borrow_mut();
        for v in [score, sorted] {
            v.reserve(blocks.saturating_sub(v.len()));
        }
        seen.reserve(blocks.saturating_sub(seen.len()));
        stack.reserve(blocks.saturating_sub(stack.len()));
    });
}

fn locate_in(
    src: &[u8],
    (w, h): (usize, usize),
    (bw, bh): (usize, usize),
    margin: usize,
    scratch: &mut Scratch,
) -> Option<(usize, usize, usize, usize)> {
    let Scratch {
        score,
        sorted,
        seen,
        stack,
    } = scratch;
    score.clear();
    score.resize(bw * bh, 0);
    for y in 0..bh * BLOCK {
        let row = &src[y * w..(y + 1) * w];
        let below = src.get((y + 1) * w..(y + 2) * w);
        let srow = &mut score[(y / BLOCK) * bw..(y / BLOCK + 1) * bw];
        for (bx, s) in srow.iter_mut().enumerate() {
            let x0 = bx * BLOCK;
            let cells = &row[x0..x0 + BLOCK + usize::from(x0 + BLOCK < w)];
            let mut tv: u32 = cells
                .windows(2)
                .map(|p| u32::from(p[0].abs_diff(p[1])))
                .sum();
            if let Some(b) = below {
                tv += row[x0..x0 + BLOCK]
                    .iter()
                    .zip(&b[x0..x0 + BLOCK])
                    .map(|(a, c)| u32::from(a.abs_diff(*c)))
                    .sum::<u32>();
            }
            *s += tv;
        }
    }
    let (best, &max) = score.iter().enumerate().max_by_key(|(_, v)| **v)?;
    if max == 0 {
        return None;
    }
    // 35% of the way from the median block (background: texture, sensor noise) to the
    // busiest one
    sorted.clear();
    sorted.extend_from_slice(score);
    let mid = sorted.len() / 2;
    let (_, &mut floor, _) = sorted.select_nth_unstable(mid);
    let threshold = floor + (max - floor) / 100 * 35;
    // flood fill from the busiest block
    seen.clear();
    seen.resize(bw * bh, false);
    stack.clear();
    // Every block is pushed at most once: room for all of them, so that how far the
    // fill spreads never grows the list.
    stack.reserve(bw * bh);
    stack.push(best);
    seen[best] = true;
    let (mut x0, mut y0, mut x1, mut y1) = (best % bw, best / bw, best % bw, best / bw);
    while let Some(i) = stack.pop() {
        let (bx, by) = (i % bw, i / bw);
        x0 = x0.min(bx);
        x1 = x1.max(bx);
        y0 = y0.min(by);
        y1 = y1.max(by);
        let mut push = |j: usize| {
            if !seen[j] && score[j] >= threshold {
                seen[j] = true;
                stack.push(j);
            }
        };
        if bx > 0 {
            push(i - 1);
        }
        if bx + 1 < bw {
            push(i + 1);
        }
        if by > 0 {
            push(i - bw);
        }
        if by + 1 < bh {
            push(i + bw);
        }
    }
    let left = (x0 * BLOCK).saturating_sub(margin);
    let top = (y0 * BLOCK).saturating_sub(margin);
    let right = ((x1 + 1) * BLOCK + margin).min(w);
    let bottom = ((y1 + 1) * BLOCK + margin).min(h);
    Some((left, top, right - left, bottom - top))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_the_dense_pattern_not_the_solid_box() {
        let (w, h) = (200usize, 150usize);
        let mut img = vec![180u8; w * h];
        // a big solid dark box (clutter) and a small 3-px checkerboard (the symbol)
        for y in 10..60 {
            for x in 10..90 {
                img[y * w + x] = 20;
            }
        }
        for y in 90..130 {
            for x in 120..160 {
                if ((x - 120) / 3 + (y - 90) / 3) % 2 == 0 {
                    img[y * w + x] = 30;
                }
            }
        }
        let (x, y, cw, ch) = locate_busy(&img, w, h, 4).unwrap();
        assert!(
            x <= 120 && y <= 90,
            "crop {x},{y} starts inside the pattern"
        );
        assert!(
            x + cw >= 160 && y + ch >= 130,
            "crop {x},{y} {cw}x{ch} cuts the pattern"
        );
        assert!(x > 90 && y > 60, "crop {x},{y} {cw}x{ch} includes the box");
        assert!(cw <= 64 && ch <= 64, "crop {cw}x{ch} too large");
        assert_eq!(locate_busy(&[7u8; 64], 8, 8, 2), None, "flat image");
        assert_eq!(
            locate_busy(&[7u8; 12], 4, 3, 2),
            None,
            "smaller than a block"
        );
    }

    #[test]
    fn downscale_averages_and_inverts() {
        let data = [0u8, 4, 10, 10, 8, 4, 10, 10, 1, 1, 1, 1];
        let p = Plane::contiguous(&data, 4, 3).unwrap();
        let mut out = Vec::new();
        assert_eq!(downscale2(p, false, &mut out), (2, 1));
        assert_eq!(out, vec![4, 10]);
        downscale2(p, true, &mut out);
        assert_eq!(out, vec![251, 245]);
    }

    #[test]
    fn closing_joins_dots_and_keeps_gaps() {
        // two dark dots 2 px apart on a light row, and a wide light gap
        let w = 12;
        let mut row = vec![200u8; w];
        row[2] = 10;
        row[5] = 10;
        let src: Vec<u8> = row
            .iter()
            .chain(row.iter())
            .chain(row.iter())
            .copied()
            .collect();
        let (mut tmp, mut out) = (Vec::new(), Vec::new());
        close_dark(&src, w, 3, 2, &mut tmp, &mut out);
        let mid = &out[w..2 * w];
        assert!(mid[2..=5].iter().all(|&v| v == 10), "{mid:?}");
        assert!(mid[9..].iter().all(|&v| v == 200), "{mid:?}");
        min_filter(&src, w, 3, 1, &mut tmp, &mut out);
        assert_eq!(&out[w..w + 7], &[200, 10, 10, 10, 10, 10, 10]);
    }
}
