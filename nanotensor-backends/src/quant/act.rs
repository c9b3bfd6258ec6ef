//! Activations quantized per call to 8-bit blocks, the form every dot kernel reads.
//!
//! A row of `k` values is cut into blocks of [`QK`] = 32 (the last one zero-padded). Block `b`
//! keeps one f32 scale `d[b] = max|x|/127`, the codes `q = round(x/d)` in `[-127, 127]`, and the
//! sums of its two halves of 16 codes (`sums[2b]`, `sums[2b+1]`, at most 16·127 in magnitude).
//!
//! One form serves every weight format. The legacy formats (32-value blocks) use the whole
//! block's sum for their offset (`q − 8`, `q − 16`) or minimum (`m`) term, as llama.cpp's
//! Q8_0/Q8_1 activations do; the k-quants use the sum of each sub-block (32 values for Q4_K and
//! Q5_K, 16 for Q6_K), as the block sums of llama.cpp's Q8_K do. Unlike Q8_K, whose one scale
//! covers 256 values, the scale here covers 32: the codes resolve a block's own range (the
//! largest of 32 values, not of 256), at the cost of one float multiply-add per 32 values in
//! the kernels instead of per 256.

use super::kernel::Kernel;
use nanotensor_core::{Error, Result};

/// Values per activation block.
pub const QK: usize = 32;

/// `rows` rows of activations quantized to 8-bit blocks (see the [module docs](self)).
#[derive(Debug, Default, Clone)]
pub struct QActs {
    /// Blocks per row: `ceil(k / QK)`.
    pub blocks: usize,
    /// Codes, `[rows, blocks · QK]`.
    pub qs: Vec<i8>,
    /// Scales, `[rows, blocks]`.
    pub d: Vec<f32>,
    /// Sums of the halves of each block, `[rows, 2 · blocks]`.
    pub sums: Vec<i16>,
    /// Each block's scale times the sum of its codes, `[rows, blocks]`: the factor of a weight
    /// block's offset or minimum term, computed once per activation rather than once per
    /// weight row.
    pub ds: Vec<f32>,
}

/// One row of [`QActs`].
#[derive(Debug, Clone, Copy)]
pub struct ActRow<'a> {
    /// Codes, `blocks · QK`.
    pub qs: &'a [i8],
    /// Scales, `blocks`.
    pub d: &'a [f32],
    /// Half-block sums, `2 · blocks`.
    pub sums: &'a [i16],
    /// Scale times code sum per block, `blocks`.
    pub ds: &'a [f32],
}

impl QActs {
    /// Row `r`.
    pub fn row(&self, r: usize) -> ActRow<'_> {
        let nb = self.blocks;
        ActRow {
            qs: &self.qs[r * nb * QK..(r + 1) * nb * QK],
            d: &self.d[r * nb..(r + 1) * nb],
            sums: &self.sums[2 * r * nb..2 * (r + 1) * nb],
            ds: &self.ds[r * nb..(r + 1) * nb],
        }
    }

    /// Quantizes `rows` rows of `k` values of `x` into `self` (buffers reused), with the
    /// fastest instructions of this CPU (the same codes everywhere).
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming `x` and the first NaN/∞.
    pub fn quantize(&mut self, x: &[f32], rows: usize, k: usize) -> Result<()> {
        self.quantize_with(Kernel::best(crate::cpu::features()), x, rows, k)
    }

    /// [`QActs::quantize`] with `kernel`'s [`Kernel::quantize_block`].
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming `x` and the first NaN/∞.
    pub fn quantize_with(
        &mut self,
        kernel: Kernel,
        x: &[f32],
        rows: usize,
        k: usize,
    ) -> Result<()> {
        // `v·0` is NaN exactly for a NaN or infinite `v`: one pass over eight running sums
        // (which vectorises), and the position is looked for only on failure.
        let mut poison = [0.0f32; 8];
        let (whole, tail) = x[..rows * k].as_chunks::<8>();
        for c in whole {
            for (p, &v) in poison.iter_mut().zip(c) {
                *p += v * 0.0;
            }
        }
        if poison.iter().any(|v| v.is_nan()) || tail.iter().any(|v| !v.is_finite()) {
            let p = x.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(Error::NonFinite {
                op: "linear",
                operand: "x",
                index: p,
                value: f64::from(x[p]),
            });
        }
        let nb = k.div_ceil(QK);
        self.blocks = nb;
        self.qs.clear();
        self.qs.resize(rows * nb * QK, 0);
        self.d.clear();
        self.d.resize(rows * nb, 0.0);
        self.sums.clear();
        self.sums.resize(rows * nb * 2, 0);
        self.ds.clear();
        self.ds.resize(rows * nb, 0.0);
        let mut buf = [0.0f32; QK];
        let (codes, _) = self.qs.as_chunks_mut::<QK>();
        for r in 0..rows {
            let xr = &x[r * k..(r + 1) * k];
            for b in 0..nb {
                let xb = &xr[b * QK..k.min((b + 1) * QK)];
                let xb: &[f32; QK] = match xb.try_into() {
                    Ok(whole) => whole,
                    Err(_) => {
                        // The last block of a row of `k` not a multiple of 32: zero-padded.
                        buf[..xb.len()].copy_from_slice(xb);
                        buf[xb.len()..].fill(0.0);
                        &buf
                    }
                };
                let (d, s0, s1) = kernel.quantize_block(xb, &mut codes[r * nb + b]);
                self.d[r * nb + b] = d;
                self.sums[2 * (r * nb + b)] = s0;
                self.sums[2 * (r * nb + b) + 1] = s1;
                self.ds[r * nb + b] = d * f32::from(s0 + s1);
            }
        }
        Ok(())
    }
}

/// One block of 32 finite values to codes `q`: returns the scale `d = max|x|/127` and the sums
/// of the two halves of the codes (the portable rule; the SIMD ones match it bit for bit).
pub fn quantize_block(x: &[f32; QK], q: &mut [i8; QK]) -> (f32, i16, i16) {
    // Eight running maxima, so that the loop vectorises.
    let mut lanes = [0.0f32; 8];
    for c in x.as_chunks::<8>().0 {
        for (m, v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    let amax = lanes.iter().fold(0.0f32, |m, &v| m.max(v));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        // |v·id| ≤ 127 up to rounding, so the code never passes ±127.
        *q = round_half_away(v * id) as i8;
    }
    let (lo, hi) = q.split_at(QK / 2);
    let sum = |h: &[i8]| h.iter().map(|&v| i16::from(v)).sum::<i16>();
    (d, sum(lo), sum(hi))
}

/// `t` rounded to the nearest integer, halves away from zero (`f32::round`), for
/// `|t| < 2³¹`: adding the float just below ½ with `t`'s sign and truncating is exact for
/// every such `t` (adding ½ itself would carry `0.49999997` up to 1). Truncation is a plain
/// conversion, which vectorises; `f32::round` is a library call on x86-64's baseline.
#[inline(always)]
pub fn round_half_away(t: f32) -> i32 {
    (t + BELOW_HALF.copysign(t)) as i32
}

/// The largest f32 below ½.
pub const BELOW_HALF: f32 = 0.499_999_97;

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value is within half a step of its block's scale, and the sums are the codes'.
    #[test]
    fn codes_within_half_a_step() {
        let k = 70;
        let x: Vec<f32> = (0..2 * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.03)
            .collect();
        let mut a = QActs::default();
        a.quantize(&x, 2, k).unwrap();
        assert_eq!(a.blocks, 3);
        for r in 0..2 {
            let row = a.row(r);
            for (j, &v) in x[r * k..(r + 1) * k].iter().enumerate() {
                let d = row.d[j / QK];
                assert!((v - d * f32::from(row.qs[j])).abs() <= 0.5 * d * (1.0 + 1e-6));
            }
            // Padding codes are zero.
            assert!(row.qs[k..].iter().all(|&q| q == 0));
            for (h, s) in row.sums.iter().enumerate() {
                let want: i32 = row.qs[h * 16..(h + 1) * 16]
                    .iter()
                    .map(|&q| i32::from(q))
                    .sum();
                assert_eq!(i32::from(*s), want);
            }
        }
    }

    /// Every half-integer and its neighbours in the codes' range, and random values, round as
    /// `f32::round` does.
    #[test]
    fn rounding_is_f32_round() {
        let mut vals = vec![0.499_999_97f32, -0.499_999_97, 0.5, -0.5, 0.0, -0.0];
        for i in -260..=260 {
            let h = i as f32 * 0.5;
            vals.extend([
                h,
                f32::from_bits(h.to_bits() + 1),
                f32::from_bits(h.to_bits().wrapping_sub(1)),
            ]);
        }
        let mut s = 1u32;
        for _ in 0..100_000 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            vals.push((s >> 8) as f32 / (1u32 << 24) as f32 * 300.0 - 150.0);
        }
        for v in vals.into_iter().filter(|v| v.is_finite()) {
            assert_eq!(round_half_away(v), v.round() as i32, "{v:e}");
        }
    }

    #[test]
    fn non_finite_is_named() {
        let mut x = vec![0.5f32; 64];
        x[40] = f32::NAN;
        let mut a = QActs::default();
        match a.quantize(&x, 2, 32) {
            Err(Error::NonFinite { index, operand, .. }) => assert_eq!((index, operand), (40, "x")),
            other => panic!("{other:?}"),
        }
        x[40] = f32::NEG_INFINITY;
        assert!(matches!(
            a.quantize(&x, 2, 32),
            Err(Error::NonFinite { index: 40, .. })
        ));
    }
}
