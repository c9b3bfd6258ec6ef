//! Rotating the residual stream: an orthogonal change of basis, exact in real arithmetic, that
//! spreads outlier channels over all channels before weights and activations are quantized.
//!
//! # Why
//! A LLaMA residual stream has a few channels far larger than the rest, and the weights that
//! write to or read from them have matching outlier rows and columns. One int8 scale per
//! tensor (or per 16 activation values) is then set by those few values. An orthogonal `Q`
//! mixes every channel into every other: outliers are spread thin and the distributions become
//! close to Gaussian, which a single scale covers well (the idea of QuaRot, Ashkboos et al.
//! 2024, and SpinQuant, Liu et al. 2024).
//!
//! # Why it is exact
//! RMSNorm without its gain commutes with `Q`: `rms(Q·h) = rms(h)`. So with every gain `g`
//! folded into the columns of the matrices the norm feeds, the model computes the same function
//! on the rotated stream `h' = Q·h`:
//!
//! ```text
//! embedding:            h'  = Q·e(token)                      (applied per token at run time)
//! q, k, v, gate, up:    W'  = W·diag(g)·Qᵀ                    (they read norm(h') = Q·norm(h))
//! attn_output, down:    W'  = Q·W                             (they write into h')
//! output head:          W'  = W·diag(g_out)·Qᵀ
//! ```
//!
//! and every norm gain becomes 1.
//!
//! A model with *post-norms* (Gemma 3: `h ← h + g ⊙ norm(W_o·a)`) writes into the stream through
//! a gain, and `g ⊙ (Q·y) ≠ Q·(g ⊙ y)`: there `W_o` and `W_down` keep their outputs and the
//! forward pass applies `Q` to each post-norm output before the residual add (two rotations of
//! `dim` values per token and layer, a few thousand multiply-adds next to the block's
//! matrices' millions).
//!
//! # The rotation
//! `Q = (H_p ⊗ R_m)·D` with `dim = p·m`, `p` the largest power of two dividing `dim`: `H_p` the
//! normalised Walsh–Hadamard matrix, `R_m` a random orthogonal `m × m` matrix (Gram–Schmidt on
//! a seeded Gaussian) and `D` random signs. Applying it to a vector costs `O(dim·(log p + m))`
//! rather than `dim²`: for SmolLM2's 576 = 64·9 channels, about 9,000 multiply-adds.

use nanotensor_core::rng::Rng;
use nanotensor_core::{Error, Result, Tensor};

/// The seed of the rotation: fixed, so a model loads to the same weights every time.
const SEED: u64 = 0x5eed_0f0a_7a7e;

/// An orthogonal `dim × dim` matrix `Q = (H_p ⊗ R_m)·D` (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Rotation {
    dim: usize,
    /// Power-of-two factor `p` of `dim`.
    p: usize,
    /// Odd factor `m = dim / p`.
    m: usize,
    /// `R_m`, row-major `[m, m]`.
    r: Vec<f64>,
    /// `D`: ±1 per channel.
    signs: Vec<f64>,
}

impl Rotation {
    /// The rotation of a `dim`-channel stream.
    ///
    /// # Errors
    /// `dim == 0`.
    pub fn new(dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid_arg("rotation", "dimension 0"));
        }
        let p = 1usize << dim.trailing_zeros();
        let m = dim / p;
        let mut rng = Rng::new(SEED);
        let signs = (0..dim)
            .map(|_| if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 })
            .collect();
        // Gram–Schmidt (twice, for orthogonality to f64 precision) on Gaussian rows.
        let mut r: Vec<f64> = (0..m * m).map(|_| rng.normal()).collect();
        for i in 0..m {
            for _pass in 0..2 {
                for j in 0..i {
                    let dot: f64 = (0..m).map(|k| r[i * m + k] * r[j * m + k]).sum();
                    for k in 0..m {
                        r[i * m + k] -= dot * r[j * m + k];
                    }
                }
            }
            let norm = (0..m).map(|k| r[i * m + k].powi(2)).sum::<f64>().sqrt();
            for k in 0..m {
                r[i * m + k] /= norm;
            }
        }
        Ok(Rotation {
            dim,
            p,
            m,
            r,
            signs,
        })
    }

    /// Channels rotated.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `x ← Q·x` for one vector of `dim` values, computed in f64 and rounded once.
    pub fn apply(&self, x: &mut [f32]) {
        let mut scratch = vec![0.0f64; 2 * self.dim];
        self.apply_with(x, &mut scratch, false);
    }

    /// `x ← Q·x` for every `dim`-long row of `rows`, with a caller's scratch of `2·dim` values
    /// (no allocation: the forward pass rotates each token's embedding, and the post-norm
    /// outputs of a model with post-norms, this way).
    pub fn apply_each(&self, rows: &mut [f32], scratch: &mut [f64]) {
        debug_assert!(rows.len().is_multiple_of(self.dim) && scratch.len() >= 2 * self.dim);
        let scratch = &mut scratch[..2 * self.dim];
        for row in rows.chunks_exact_mut(self.dim) {
            self.apply_with(row, scratch, false);
        }
    }

    /// [`Rotation::apply`] with a caller's scratch of `2·dim` values (no allocation); with
    /// `signs_last` the sign flips `D` come after the product instead of before (how
    /// [`Rotation::transposed`] computes `Qᵀ·x`).
    fn apply_with(&self, x: &mut [f32], scratch: &mut [f64], signs_last: bool) {
        debug_assert_eq!(x.len(), self.dim);
        let (p, m) = (self.p, self.m);
        let (v, y) = scratch.split_at_mut(self.dim);
        // x viewed as [p][m] (index i·m + j), signs applied first unless `signs_last`.
        for ((d, &a), s) in v.iter_mut().zip(x.iter()).zip(&self.signs) {
            *d = if signs_last { a as f64 } else { a as f64 * s };
        }
        // R_m along j (the identity when m = 1).
        if m == 1 {
            y.copy_from_slice(v);
        } else {
            for (src, dst) in v.chunks_exact(m).zip(y.chunks_exact_mut(m)) {
                for (out, r) in dst.iter_mut().zip(self.r.chunks_exact(m)) {
                    *out = r.iter().zip(src).map(|(a, b)| a * b).sum();
                }
            }
        }
        // Walsh–Hadamard along i (butterflies), then the 1/√p normalisation.
        let mut h = 1;
        while h < p {
            for start in (0..p).step_by(2 * h) {
                let (lo, hi) = y[start * m..(start + 2 * h) * m].split_at_mut(h * m);
                for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (s, d) = (*a + *b, *a - *b);
                    *a = s;
                    *b = d;
                }
            }
            h *= 2;
        }
        let norm = 1.0 / (p as f64).sqrt();
        for ((o, v), s) in x.iter_mut().zip(y.iter()).zip(&self.signs) {
            *o = if signs_last { v * norm * s } else { v * norm } as f32;
        }
    }

    /// Applies the rotation (`Qᵀ` when `inverse`) to every `dim`-long row of `rows`, split over
    /// the machine's cores (at load, each matrix's rows are independent).
    fn apply_rows(&self, rows: &mut [f32], inverse: bool) {
        let inv;
        let q = if inverse {
            inv = self.transposed();
            &inv
        } else {
            self
        };
        let n = rows.len() / self.dim;
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(n.div_ceil(256))
            .max(1);
        let per = n.div_ceil(threads) * self.dim;
        if threads == 1 || cfg!(target_arch = "wasm32") {
            let mut scratch = vec![0.0f64; 2 * self.dim];
            for row in rows.chunks_exact_mut(self.dim) {
                q.apply_with(row, &mut scratch, inverse);
            }
            return;
        }
        std::thread::scope(|s| {
            for chunk in rows.chunks_mut(per) {
                s.spawn(move || {
                    let mut scratch = vec![0.0f64; 2 * q.dim];
                    for row in chunk.chunks_exact_mut(q.dim) {
                        q.apply_with(row, &mut scratch, inverse);
                    }
                });
            }
        });
    }

    /// `H_p ⊗ R_mᵀ` with `D` kept: `apply_with(…, inverse = true)` on it computes `Qᵀ·x`
    /// (`H_p` is symmetric, so `Qᵀ = D·(H_p ⊗ R_mᵀ)`: the signs come last).
    fn transposed(&self) -> Rotation {
        let m = self.m;
        let mut rt = vec![0.0f64; m * m];
        for i in 0..m {
            for j in 0..m {
                rt[j * m + i] = self.r[i * m + j];
            }
        }
        Rotation {
            r: rt,
            ..self.clone()
        }
    }

    /// `x ← Qᵀ·x` (the inverse rotation).
    pub fn apply_transpose(&self, x: &mut [f32]) {
        let mut scratch = vec![0.0f64; 2 * self.dim];
        self.transposed().apply_with(x, &mut scratch, true);
    }

    /// `W ← W·Qᵀ` for `w: [out, dim]` (a matrix reading the rotated stream): each row `r`
    /// becomes `Q·r`.
    pub fn rotate_inputs(&self, w: &mut Tensor<f32>) {
        debug_assert_eq!(w.shape()[1], self.dim);
        self.apply_rows(w.as_mut_slice(), false);
    }

    /// [`Rotation::rotate_inputs`] for some rows of such a matrix (whole rows of `dim`
    /// values): each row `r` becomes `Q·r`, as it would in the whole matrix.
    pub fn rotate_input_rows(&self, rows: &mut [f32]) {
        debug_assert!(rows.len().is_multiple_of(self.dim));
        self.apply_rows(rows, false);
    }

    /// `W ← Q·W` for `w: [dim, in]` (a matrix writing into the rotated stream): each column
    /// `c` becomes `Q·c`.
    pub fn rotate_outputs(&self, w: &mut Tensor<f32>) {
        self.columns(w, false);
    }

    /// Undoes [`Rotation::rotate_inputs`]: `W ← W·Q`.
    pub fn unrotate_inputs(&self, w: &mut Tensor<f32>) {
        debug_assert_eq!(w.shape()[1], self.dim);
        self.apply_rows(w.as_mut_slice(), true);
    }

    /// Undoes [`Rotation::rotate_outputs`]: `W ← Qᵀ·W`.
    pub fn unrotate_outputs(&self, w: &mut Tensor<f32>) {
        self.columns(w, true);
    }

    /// `Q` (or `Qᵀ`) applied to every column of `w: [dim, in]`.
    fn columns(&self, w: &mut Tensor<f32>, inverse: bool) {
        debug_assert_eq!(w.shape()[0], self.dim);
        let cols = w.shape()[1];
        let data = w.as_mut_slice();
        // Columns as rows: [cols, dim].
        let mut t = vec![0.0f32; data.len()];
        for (i, row) in data.chunks_exact(cols).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                t[c * self.dim + i] = v;
            }
        }
        self.apply_rows(&mut t, inverse);
        for (i, row) in data.chunks_exact_mut(cols).enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = t[c * self.dim + i];
            }
        }
    }
}

/// Multiplies column `j` of `w: [out, in]` by `gain[j]` (folding an RMSNorm gain into the matrix
/// it feeds).
pub fn fold_gain(w: &mut Tensor<f32>, gain: &[f32]) {
    fold_gain_rows(w.as_mut_slice(), gain);
}

/// [`fold_gain`] for some rows of a matrix (whole rows of `gain.len()` values).
pub fn fold_gain_rows(rows: &mut [f32], gain: &[f32]) {
    for row in rows.chunks_mut(gain.len()) {
        for (x, g) in row.iter_mut().zip(gain) {
            *x *= g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense matrix of `q`, column by column.
    fn dense(q: &Rotation) -> Vec<Vec<f64>> {
        (0..q.dim)
            .map(|c| {
                let mut e = vec![0.0f32; q.dim];
                e[c] = 1.0;
                q.apply(&mut e);
                e.iter().map(|&v| v as f64).collect()
            })
            .collect()
    }

    #[test]
    fn rotation_is_orthogonal() {
        // Miri checks the logic on small sizes (its interpreter is ~1000× slower).
        let dims: &[usize] = if cfg!(miri) {
            &[1, 6, 9, 24]
        } else {
            &[1, 6, 64, 576, 640, 9]
        };
        for &dim in dims {
            let q = Rotation::new(dim).unwrap();
            let cols = dense(&q);
            for a in 0..dim {
                for b in 0..dim {
                    let dot: f64 = cols[a].iter().zip(&cols[b]).map(|(x, y)| x * y).sum();
                    let want = if a == b { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5, "dim {dim}: <{a},{b}> = {dot}");
                }
            }
        }
        assert!(Rotation::new(0).is_err());
    }

    #[test]
    fn the_transpose_inverts_the_rotation() {
        let dims: &[usize] = if cfg!(miri) { &[12] } else { &[12, 576] };
        for &dim in dims {
            let q = Rotation::new(dim).unwrap();
            let x = Tensor::<f32>::randn(&[dim], 1.0, 5).unwrap();
            let mut y = x.as_slice().to_vec();
            q.apply(&mut y);
            q.apply_transpose(&mut y);
            for (a, b) in y.iter().zip(x.as_slice()) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            let w = Tensor::<f32>::randn(&[dim, dim], 1.0, 6).unwrap();
            let mut r = w.clone();
            q.rotate_inputs(&mut r);
            q.unrotate_inputs(&mut r);
            q.rotate_outputs(&mut r);
            q.unrotate_outputs(&mut r);
            for (a, b) in r.as_slice().iter().zip(w.as_slice()) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn rotation_spreads_an_outlier_channel() {
        let dim = if cfg!(miri) { 256 } else { 576 };
        let q = Rotation::new(dim).unwrap();
        let mut x = vec![0.01f32; dim];
        x[50] = 50.0;
        let before = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        q.apply(&mut x);
        let after = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(after < before / 5.0, "max {before} → {after}");
    }

    #[test]
    fn rotated_weights_compute_the_same_product() {
        // y = W·x = (W·Qᵀ)·(Q·x), and Q·(W·x) = (Q·W)·x.
        let dim = 24;
        let q = Rotation::new(dim).unwrap();
        let w = Tensor::<f32>::randn(&[5, dim], 1.0, 1).unwrap();
        let x = Tensor::<f32>::randn(&[dim], 1.0, 2).unwrap();
        let dot = |w: &Tensor<f32>, x: &[f32]| -> Vec<f64> {
            w.as_slice()
                .chunks(x.len())
                .map(|r| r.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum())
                .collect()
        };
        let plain = dot(&w, x.as_slice());
        let mut wr = w.clone();
        q.rotate_inputs(&mut wr);
        let mut xr = x.as_slice().to_vec();
        q.apply(&mut xr);
        for (a, b) in dot(&wr, &xr).iter().zip(&plain) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let wt = Tensor::<f32>::randn(&[dim, 7], 1.0, 3).unwrap();
        let v = Tensor::<f32>::randn(&[7], 1.0, 4).unwrap();
        let mut y: Vec<f32> = dot(&wt, v.as_slice()).iter().map(|&a| a as f32).collect();
        q.apply(&mut y);
        let mut wtr = wt.clone();
        q.rotate_outputs(&mut wtr);
        for (a, b) in dot(&wtr, v.as_slice()).iter().zip(&y) {
            assert!((a - *b as f64).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
