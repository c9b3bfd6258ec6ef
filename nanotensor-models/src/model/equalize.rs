//! Per-channel equalisation: rescaling that is exact in real arithmetic and evens out the
//! ranges one per-tensor int8 scale has to cover.
//!
//! # Why
//! One scale per weight tensor is set by the tensor's largest magnitude. When a few input
//! channels (columns of `W[out, in]`) are much larger than the rest, every other column is
//! quantized with a step far coarser than its own values need. A positive factor `s_j` per
//! channel can move range between a matrix and the operation that produces its input without
//! changing the function:
//!
//! ```text
//! RMSNorm gain → W:   y = W·(g ⊙ n)   = (W·diag(s))·((g ⊘ s) ⊙ n)          (q, k, v; gate, up)
//! up rows → down:     y = D·(a ⊙ U·x) = (D·diag(s))·(a ⊙ (diag(s)⁻¹·U)·x)   (SwiGLU is linear in up)
//! v rows → o:         y = O·(P·V)     = (O·diag(s))·(P·(V·diag(s)⁻¹))       (attention is linear in V)
//! ```
//!
//! where `n` is the normalised hidden state, `a = silu(gate·x)` and `P` the attention
//! probabilities. The factors are folded into the tensors once, at load; the model then runs as
//! before and every weight tensor still carries exactly one scale.
//!
//! # Choosing `s_j` (from the weights alone, no calibration data)
//! * **Norm → matrices** (SmoothQuant-style, α = ½): the activation's range in channel `j` is
//!   taken as `|g_j|` (the normalised state has a comparable magnitude in every channel), the
//!   weight's as `w_j = max_i |W[i, j]|` over all the matrices the norm feeds, and
//!   `s_j = √(|g_j| / w_j)` — both sides then have range `√(|g_j|·w_j)`.
//! * **Matrix → matrix** (cross-layer equalisation as in Nagel et al., "Data-Free Quantization
//!   Through Weight Equalization and Bias Correction", ICCV 2019): with `r_j` the range of the
//!   producer's output row `j` and `c_j` that of the consumer's input column `j`,
//!   `s_j = √(r_j / c_j)` gives both the range `√(r_j·c_j)`.
//!
//! Factors are normalised to a geometric mean of 1 and clamped to `[1/64, 64]`, so a dead
//! channel (a zero gain or a zero column) neither divides by zero nor blows up its partner.

use nanotensor_core::Tensor;

/// Largest factor (and 1 / smallest) applied to one channel.
const MAX_FACTOR: f32 = 64.0;

/// `max_i |W[i, j]|` for every column `j` of `w: [out, in]`, accumulated into `acc: [in]`.
fn column_max_into(w: &Tensor<f32>, acc: &mut [f32]) {
    column_max_rows(w.as_slice(), acc);
}

/// Folds some rows of a matrix (`rows`: whole rows of `acc.len()` values) into the running
/// column maxima of `|W|` in `acc`, so that a matrix read a chunk of rows at a time gets the
/// statistic it would get whole.
pub fn column_max_rows(rows: &[f32], acc: &mut [f32]) {
    for row in rows.chunks(acc.len()) {
        for (m, &x) in acc.iter_mut().zip(row) {
            *m = m.max(x.abs());
        }
    }
}

/// `max_j |W[i, j]|` for every row `i` of `w: [out, in]`.
fn row_max(w: &Tensor<f32>) -> Vec<f32> {
    let cols = w.shape()[1];
    w.as_slice()
        .chunks(cols)
        .map(|r| r.iter().fold(0.0f32, |m, x| m.max(x.abs())))
        .collect()
}

/// `s_j = √(a_j / b_j)`, normalised to a geometric mean of 1 and clamped (see the module docs);
/// 1 where either range is zero.
fn balance(a: &[f32], b: &[f32]) -> Vec<f32> {
    let raw: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(&a, &b)| {
            if a > 0.0 && b > 0.0 {
                (a as f64 / b as f64).sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let log_mean = raw.iter().map(|s| s.ln()).sum::<f64>() / raw.len().max(1) as f64;
    let norm = (-log_mean).exp();
    raw.iter()
        .map(|&s| ((s * norm) as f32).clamp(1.0 / MAX_FACTOR, MAX_FACTOR))
        .collect()
}

/// Multiplies column `j` of `w: [out, in]` by `s[j]`.
fn scale_columns(w: &mut Tensor<f32>, s: &[f32]) {
    scale_columns_rows(w.as_mut_slice(), s);
}

/// Scales column `j` of some rows of a matrix (whole rows of `s.len()` values) by `s[j]`.
pub fn scale_columns_rows(rows: &mut [f32], s: &[f32]) {
    for row in rows.chunks_mut(s.len()) {
        for (x, &f) in row.iter_mut().zip(s) {
            *x *= f;
        }
    }
}

/// Divides row `i` of `w: [out, in]` by `s[i]`.
fn unscale_rows(w: &mut Tensor<f32>, s: &[f32]) {
    let cols = w.shape()[1];
    for (row, &f) in w.as_mut_slice().chunks_mut(cols).zip(s) {
        for x in row {
            *x /= f;
        }
    }
}

/// Folds per-channel factors between an RMSNorm gain `g: [in]` and the matrices it feeds
/// (each `[out, in]`): columns scaled by `s`, the gain divided by `s`. Returns `s`.
pub fn norm_into_matrices(gain: &mut [f32], consumers: &mut [&mut Tensor<f32>]) -> Vec<f32> {
    let mut w = vec![0.0f32; gain.len()];
    for m in consumers.iter() {
        column_max_into(m, &mut w);
    }
    let s = norm_factors(gain, &w);
    for m in consumers.iter_mut() {
        scale_columns(m, &s);
    }
    s
}

/// The half of [`norm_into_matrices`] that needs only the consumers' column maxima
/// (`column_max`, from [`column_max_rows`]): returns the factors `s` and divides the gain by
/// them. The caller multiplies the consumers' columns by `s` ([`scale_columns_rows`]) — how the
/// loader equalises a matrix it never holds whole (the output head, streamed).
pub fn norm_factors(gain: &mut [f32], column_max: &[f32]) -> Vec<f32> {
    let a: Vec<f32> = gain.iter().map(|g| g.abs()).collect();
    let s = balance(&a, column_max);
    for (g, f) in gain.iter_mut().zip(&s) {
        *g /= f;
    }
    s
}

/// Folds per-channel factors between a producer `p: [channels, in]` whose output channel `j`
/// feeds the consumer columns `columns_of(j)` of `c: [out, channels']`: producer rows divided by
/// `s`, the consumer's columns multiplied by it. `columns_of` lists, for each producer row, the
/// consumer columns that read it (one each for up → down; every query head of the group for
/// v → o). Returns the producer's row factors and the consumer's column factors.
pub fn matrix_into_matrix(
    producer: &mut Tensor<f32>,
    consumer: &mut Tensor<f32>,
    columns_of: impl Fn(usize) -> Vec<usize>,
) -> (Vec<f32>, Vec<f32>) {
    let r = row_max(producer);
    let mut col = vec![0.0f32; consumer.shape()[1]];
    column_max_into(consumer, &mut col);
    let c: Vec<f32> = (0..r.len())
        .map(|j| columns_of(j).iter().fold(0.0f32, |m, &k| m.max(col[k])))
        .collect();
    let s = balance(&r, &c);
    unscale_rows(producer, &s);
    let mut per_col = vec![1.0f32; consumer.shape()[1]];
    for (j, &f) in s.iter().enumerate() {
        for k in columns_of(j) {
            per_col[k] = f;
        }
    }
    scale_columns(consumer, &per_col);
    (s, per_col)
}

/// The factors equalisation applied to one matrix: `M' = diag(rows)⁻¹ · M · diag(cols)`
/// (`None`: all ones).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Factors {
    /// Divisors of the rows (output channels).
    pub rows: Option<Vec<f32>>,
    /// Multipliers of the columns (input channels).
    pub cols: Option<Vec<f32>>,
}

impl Factors {
    /// Maps a matrix of the equalised space back to the original one:
    /// `M = diag(rows) · M' · diag(cols)⁻¹`.
    pub fn restore(&self, m: &mut Tensor<f32>) {
        if let Some(c) = &self.cols {
            let inv: Vec<f32> = c.iter().map(|f| 1.0 / f).collect();
            scale_columns(m, &inv);
        }
        if let Some(r) = &self.rows {
            let inv: Vec<f32> = r.iter().map(|f| 1.0 / f).collect();
            unscale_rows(m, &inv);
        }
    }
}

/// One block's norm gains and matrices in f32 (shapes as in the GGUF, `[out, in]`); the
/// optional gains are those of architectures with per-head Q/K norms and post-norms (Gemma 3).
#[derive(Debug)]
pub struct BlockWeights {
    /// `[dim]`.
    pub attn_norm: Vec<f32>,
    /// `[n_heads·head_dim, dim]`.
    pub wq: Tensor<f32>,
    /// `[n_kv_heads·head_dim, dim]`.
    pub wk: Tensor<f32>,
    /// `[n_kv_heads·head_dim, dim]`.
    pub wv: Tensor<f32>,
    /// `[dim, n_heads·head_dim]`.
    pub wo: Tensor<f32>,
    /// `[dim]`.
    pub ffn_norm: Vec<f32>,
    /// `[ffn_dim, dim]`.
    pub w_gate: Tensor<f32>,
    /// `[ffn_dim, dim]`.
    pub w_up: Tensor<f32>,
    /// `[dim, ffn_dim]`.
    pub w_down: Tensor<f32>,
    /// RMSNorm gain of every query head after the projection: `[head_dim]` (`attn_q_norm`).
    pub q_norm: Option<Vec<f32>>,
    /// RMSNorm gain of every key head after the projection: `[head_dim]` (`attn_k_norm`).
    pub k_norm: Option<Vec<f32>>,
    /// RMSNorm gain of the attention output before the residual add: `[dim]`
    /// (`post_attention_norm`).
    pub post_attn_norm: Option<Vec<f32>>,
    /// RMSNorm gain of the FFN output before the residual add: `[dim]` (`post_ffw_norm`).
    pub post_ffn_norm: Option<Vec<f32>>,
}

/// The factors [`BlockWeights::equalize`] applied, per matrix (GGUF name suffix → factors).
pub type BlockFactors = Vec<(&'static str, Factors)>;

impl BlockWeights {
    /// Rotates the block onto the residual stream `Q·h` (see [`crate::model::rotate`]): the
    /// norm gains folded into q/k/v and gate/up and set to 1, those matrices' inputs rotated,
    /// attn_output's and down's outputs rotated — unless a post-norm sits between the matrix and
    /// the stream ([`BlockWeights::writes_stream_directly`]): the forward pass then rotates the
    /// post-norm's output at run time instead.
    pub fn rotate(&mut self, q: &crate::model::rotate::Rotation) {
        use crate::model::rotate::fold_gain;
        for w in [&mut self.wq, &mut self.wk, &mut self.wv] {
            fold_gain(w, &self.attn_norm);
            q.rotate_inputs(w);
        }
        for w in [&mut self.w_gate, &mut self.w_up] {
            fold_gain(w, &self.ffn_norm);
            q.rotate_inputs(w);
        }
        self.attn_norm.fill(1.0);
        self.ffn_norm.fill(1.0);
        let (o, down) = self.writes_stream_directly();
        if o {
            q.rotate_outputs(&mut self.wo);
        }
        if down {
            q.rotate_outputs(&mut self.w_down);
        }
    }

    /// Whether attn_output and ffn_down add their output to the residual stream as it is
    /// (`true`), or through a post-norm (`false`: a norm's gain does not commute with a
    /// rotation, so those outputs cannot be rotated in the weights).
    pub fn writes_stream_directly(&self) -> (bool, bool) {
        (self.post_attn_norm.is_none(), self.post_ffn_norm.is_none())
    }

    /// Equalises the block in place (norm → q/k/v, v → o, norm → gate/up, up → down) for
    /// `n_heads` query heads reading `n_kv_heads` KV heads of `head_dim`. Returns the factors
    /// applied to each matrix.
    pub fn equalize(&mut self, n_heads: usize, n_kv_heads: usize, head_dim: usize) -> BlockFactors {
        let qkv = norm_into_matrices(
            &mut self.attn_norm,
            &mut [&mut self.wq, &mut self.wk, &mut self.wv],
        );
        let (v_rows, o_cols) = matrix_into_matrix(&mut self.wv, &mut self.wo, |j| {
            value_columns(j, n_heads, n_kv_heads, head_dim)
        });
        let ffn = norm_into_matrices(&mut self.ffn_norm, &mut [&mut self.w_gate, &mut self.w_up]);
        let (up_rows, down_cols) =
            matrix_into_matrix(&mut self.w_up, &mut self.w_down, |j| vec![j]);
        let cols = |c: &Vec<f32>| Factors {
            rows: None,
            cols: Some(c.clone()),
        };
        vec![
            ("attn_q", cols(&qkv)),
            ("attn_k", cols(&qkv)),
            (
                "attn_v",
                Factors {
                    rows: Some(v_rows),
                    cols: Some(qkv.clone()),
                },
            ),
            ("attn_output", cols(&o_cols)),
            ("ffn_gate", cols(&ffn)),
            (
                "ffn_up",
                Factors {
                    rows: Some(up_rows),
                    cols: Some(ffn),
                },
            ),
            ("ffn_down", cols(&down_cols)),
        ]
    }
}

/// The consumer columns of `o: [dim, n_heads·head_dim]` that read row `j` of
/// `v: [n_kv_heads·head_dim, dim]` under grouped-query attention.
pub fn value_columns(j: usize, n_heads: usize, n_kv_heads: usize, head_dim: usize) -> Vec<usize> {
    let (kv_head, d) = (j / head_dim, j % head_dim);
    let group = n_heads / n_kv_heads;
    (kv_head * group..(kv_head + 1) * group)
        .map(|h| h * head_dim + d)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanotensor_core::reference::matmul_f64;

    fn randn(shape: &[usize], seed: u64) -> Tensor<f32> {
        Tensor::randn(shape, 1.0, seed).unwrap()
    }

    fn transpose(w: &Tensor<f32>) -> Tensor<f32> {
        let [r, c] = [w.shape()[0], w.shape()[1]];
        let src = w.as_slice();
        let mut t = vec![0.0f32; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = src[i * c + j];
            }
        }
        Tensor::from_vec(t, &[c, r]).unwrap()
    }

    fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
        let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs() / scale))
    }

    /// `(g ⊙ n)·Wᵀ` is unchanged by folding, and the outlier column's range shrinks.
    #[test]
    fn norm_folding_keeps_the_product_and_evens_the_columns() {
        let (tokens, dim, out) = (5, 32, 24);
        let n = randn(&[tokens, dim], 1);
        let mut gain: Vec<f32> = (0..dim).map(|j| 0.5 + 0.05 * j as f32).collect();
        let mut w = randn(&[out, dim], 2);
        for i in 0..out {
            w.as_mut_slice()[i * dim + 7] *= 30.0; // an outlier input channel
        }
        let apply = |gain: &[f32], w: &Tensor<f32>| {
            let mut x = n.clone();
            for row in x.as_mut_slice().chunks_mut(dim) {
                for (v, g) in row.iter_mut().zip(gain) {
                    *v *= g;
                }
            }
            matmul_f64(&x, &transpose(w)).unwrap()
        };
        let before = apply(&gain, &w);
        let spread = |c: &[f32]| {
            c.iter().fold(0.0f32, |m, &x| m.max(x)) / c.iter().fold(f32::MAX, |m, &x| m.min(x))
        };
        let mut cols = vec![0.0f32; dim];
        column_max_into(&w, &mut cols);
        let spread_before = spread(&cols);
        norm_into_matrices(&mut gain, &mut [&mut w]);
        let after = apply(&gain, &w);
        assert!(max_rel_diff(&after, &before) < 1e-5);
        let mut cols = vec![0.0f32; dim];
        column_max_into(&w, &mut cols);
        // √(g·w) per column: the log-spread of the ranges is (about) halved.
        assert!(
            spread(&cols) < 1.5 * spread_before.sqrt(),
            "column ranges still spread: {} → {}",
            spread_before,
            spread(&cols)
        );
    }

    /// `D·(a ⊙ U·x)` is unchanged when factors move from `U`'s rows to `D`'s columns.
    #[test]
    fn matrix_folding_keeps_the_product() {
        let (tokens, dim, hidden) = (3, 16, 40);
        let x = randn(&[tokens, dim], 3);
        let a = randn(&[tokens, hidden], 4);
        let mut up = randn(&[hidden, dim], 5);
        let mut down = randn(&[dim, hidden], 6);
        for j in 0..dim {
            down.as_mut_slice()[j * hidden + 11] *= 25.0;
        }
        let apply = |up: &Tensor<f32>, down: &Tensor<f32>| {
            let u = matmul_f64(&x, &transpose(up)).unwrap();
            let h: Vec<f32> = u
                .as_slice()
                .iter()
                .zip(a.as_slice())
                .map(|(u, a)| (*u as f32) * a)
                .collect();
            let h = Tensor::from_vec(h, &[tokens, hidden]).unwrap();
            matmul_f64(&h, &transpose(down)).unwrap()
        };
        let before = apply(&up, &down);
        matrix_into_matrix(&mut up, &mut down, |j| vec![j]);
        let after = apply(&up, &down);
        assert!(max_rel_diff(&after, &before) < 1e-5);
    }

    #[test]
    fn value_columns_follow_grouped_query_attention() {
        // 4 query heads share 2 KV heads of dim 3: KV row 4 (head 1, d 1) feeds heads 2 and 3.
        assert_eq!(value_columns(4, 4, 2, 3), vec![7, 10]);
        assert_eq!(value_columns(0, 2, 2, 3), vec![0]);
    }

    #[test]
    fn dead_channels_are_left_alone() {
        let s = balance(&[0.0, 1.0, 4.0], &[1.0, 0.0, 1.0]);
        assert_eq!(s[0], s[1]);
        assert!(s.iter().all(|f| f.is_finite() && *f > 0.0));
    }
}
