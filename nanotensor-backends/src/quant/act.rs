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
}

impl QActs {
    /// Row `r`.
    pub fn row(&self, r: usize) -> ActRow<'_> {
        let nb = self.blocks;
        ActRow {
            qs: &self.qs[r * nb * QK..(r + 1) * nb * QK],
            d: &self.d[r * nb..(r + 1) * nb],
            sums: &self.sums[2 * r * nb..2 * (r + 1) * nb],
        }
    }

    /// Quantizes `rows` rows of `k` values of `x` into `self` (buffers reused).
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming `x` and the first NaN/∞.
    pub fn quantize(&mut self, x: &[f32], rows: usize, k: usize) -> Result<()> {
        let nb = k.div_ceil(QK);
        self.blocks = nb;
        self.qs.clear();
        self.qs.resize(rows * nb * QK, 0);
        self.d.clear();
        self.d.resize(rows * nb, 0.0);
        self.sums.clear();
        self.sums.resize(rows * nb * 2, 0);
        for r in 0..rows {
            let xr = &x[r * k..(r + 1) * k];
            for b in 0..nb {
                let xb = &xr[b * QK..k.min((b + 1) * QK)];
                if let Some(p) = xb.iter().position(|v| !v.is_finite()) {
                    return Err(Error::NonFinite {
                        op: "linear",
                        operand: "x",
                        index: r * k + b * QK + p,
                        value: f64::from(xb[p]),
                    });
                }
                let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                let at = (r * nb + b) * QK;
                let q = &mut self.qs[at..at + QK];
                for (q, &v) in q.iter_mut().zip(xb) {
                    // |v·id| ≤ 127 up to rounding, so the cast never saturates past ±127.
                    *q = (v * id).round() as i8;
                }
                self.d[r * nb + b] = d;
                let (lo, hi) = q.split_at(QK / 2);
                let sum = |h: &[i8]| h.iter().map(|&v| i16::from(v)).sum::<i16>();
                self.sums[2 * (r * nb + b)] = sum(lo);
                self.sums[2 * (r * nb + b) + 1] = sum(hi);
            }
        }
        Ok(())
    }
}

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
