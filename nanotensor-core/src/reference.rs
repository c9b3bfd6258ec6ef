//! Float64 references and error metrics: the yardstick every backend is measured against.
//!
//! These are written for clarity, not speed, and compute in `f64` whatever the input type, so a
//! float32 backend is compared with something ~2⁻²⁹ more precise than itself.

use crate::attention::{AttentionDims, AttentionSpec, Heads, TensorAttention};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::shape::matmul_dims;
use crate::tensor::Tensor;

/// `A·B` in f64 for (batched) operands with the shapes [`crate::Backend::matmul`] accepts.
pub fn matmul_f64<T: Element>(a: &Tensor<T>, b: &Tensor<T>) -> Result<Vec<f64>> {
    let (d, _) = matmul_dims(a.shape(), b.shape())?;
    let (av, bv) = (a.as_slice(), b.as_slice());
    let mut c = vec![0.0f64; d.batch * d.m * d.n];
    for bi in 0..d.batch {
        let ao = bi * d.m * d.k;
        let bo = if d.broadcast_b { 0 } else { bi * d.k * d.n };
        let co = bi * d.m * d.n;
        for i in 0..d.m {
            for p in 0..d.k {
                let aip = av[ao + i * d.k + p].as_f64();
                let brow = &bv[bo + p * d.n..bo + (p + 1) * d.n];
                for (cj, bj) in c[co + i * d.n..co + (i + 1) * d.n].iter_mut().zip(brow) {
                    *cj += aip * bj.as_f64();
                }
            }
        }
    }
    Ok(c)
}

/// Softmax of each row of `row_len` values in f64; all-`-inf` rows give zeros.
pub fn softmax_rows_f64(x: &[f64], row_len: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (row, o) in x.chunks(row_len).zip(out.chunks_mut(row_len)) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            continue;
        }
        let mut sum = 0.0;
        for (oi, &xi) in o.iter_mut().zip(row) {
            *oi = (xi - max).exp();
            sum += *oi;
        }
        for oi in o.iter_mut() {
            *oi /= sum;
        }
    }
    out
}

/// Softmax along the last axis of `x`, in f64.
pub fn softmax_f64<T: Element>(x: &Tensor<T>) -> Vec<f64> {
    let row_len = *x.shape().last().unwrap_or(&1);
    let xs: Vec<f64> = x.as_slice().iter().map(|v| v.as_f64()).collect();
    softmax_rows_f64(&xs, row_len.max(1))
}

/// Attention in f64, one query row at a time; output is contiguous `[H, n_q, d_v]`.
pub fn attention_f64<T: Element>(
    q: &Heads<'_, T>,
    k: &Heads<'_, T>,
    v: &Heads<'_, T>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
) -> Vec<f64> {
    let scale = spec.scale_for(dims.head_dim);
    let mut out = vec![0.0; dims.n_heads * dims.n_q * dims.v_dim];
    let mut scores = vec![0.0; dims.n_kv];
    for h in 0..dims.n_heads {
        let g = dims.kv_head(h);
        for i in 0..dims.n_q {
            // Written out from the definition rather than through `visible_range`, so the
            // reference does not share the backends' mask arithmetic: key `j` is visible iff it
            // is not in the future of query position `p` and (with a window) `p - j < W`.
            let p = (dims.n_kv + i) as i64 - dims.n_q as i64;
            let visible = |j: usize| {
                let j = j as i64;
                !spec.causal || (j <= p && spec.window.is_none_or(|w| p - j < w as i64))
            };
            let qi = q.row(h, i);
            for (j, s) in scores.iter_mut().enumerate() {
                *s = if visible(j) {
                    let kj = k.row(g, j);
                    scale
                        * qi.iter()
                            .zip(kj)
                            .map(|(a, b)| a.as_f64() * b.as_f64())
                            .sum::<f64>()
                } else {
                    f64::NEG_INFINITY
                };
            }
            let probs = softmax_rows_f64(&scores, dims.n_kv);
            let o = &mut out[(h * dims.n_q + i) * dims.v_dim..(h * dims.n_q + i + 1) * dims.v_dim];
            for (j, pj) in probs.iter().enumerate() {
                for (ox, vx) in o.iter_mut().zip(v.row(g, j)) {
                    *ox += pj * vx.as_f64();
                }
            }
        }
    }
    out
}

/// Tensor form of [`attention_f64`], with the shapes [`crate::Backend::attention`] takes: `q`
/// `[H, n_q, d]`, `k` `[H_kv, n_kv, d]`, `v` `[H_kv, n_kv, d_v]`, each optionally with the same
/// leading batch dim. Returns `[H, n_q, d_v]` (per batch entry, concatenated) in f64.
///
/// # Errors
/// An invalid spec, shapes that do not form an attention call (the checks of
/// [`crate::Backend::attention`]).
pub fn attention_tensor_f64<T: Element>(
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    spec: &AttentionSpec,
) -> Result<Vec<f64>> {
    spec.validate()?;
    let ta = TensorAttention::new("attention reference", q.shape(), k.shape(), v.shape())?;
    let mut out = Vec::with_capacity(ta.batch.saturating_mul(ta.per_entry[3]));
    for b in 0..ta.batch {
        out.extend(attention_f64(
            &ta.entry(q.as_slice(), 0, b),
            &ta.entry(k.as_slice(), 1, b),
            &ta.entry(v.as_slice(), 2, b),
            &ta.dims,
            spec,
        ));
    }
    Ok(out)
}

/// How far `actual` is from `reference`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Normalised mean squared error Σ(a−b)² / Σb² (0 when both are all zero).
    pub nmse: f64,
    /// Largest |a − b| over finite pairs.
    pub max_abs: f64,
    /// Positions where exactly one side is NaN/inf, or both are but differ.
    pub nonfinite_mismatches: usize,
}

impl Comparison {
    /// True when there is no non-finite mismatch and `nmse <= tol`.
    pub fn passes(&self, tol: f64) -> bool {
        self.nonfinite_mismatches == 0 && self.nmse <= tol
    }
}

/// Compares `actual` against a float64 `reference` of the same length.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the two have different lengths.
pub fn compare<T: Element>(actual: &[T], reference: &[f64]) -> Result<Comparison> {
    if actual.len() != reference.len() {
        return Err(Error::mismatch(
            "compare",
            &[actual.len()],
            &[reference.len()],
            "the result and its reference must have the same length",
        ));
    }
    let (mut num, mut den, mut max_abs, mut bad) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for (a, &b) in actual.iter().zip(reference) {
        let a = a.as_f64();
        if !a.is_finite() || !b.is_finite() {
            // NaN never equals itself; infinities must match in sign.
            if !(a == b) {
                bad += 1;
            }
            continue;
        }
        num += (a - b) * (a - b);
        den += b * b;
        max_abs = max_abs.max((a - b).abs());
    }
    let nmse = if den == 0.0 {
        if num == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        num / den
    };
    Ok(Comparison {
        nmse,
        max_abs,
        nonfinite_mismatches: bad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::HeadsLayout;

    #[test]
    fn matmul_reference_small_case() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let b = Tensor::from_slice(&[5.0f32, 6.0, 7.0, 8.0], &[2, 2]).unwrap();
        assert_eq!(matmul_f64(&a, &b).unwrap(), vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn softmax_reference_handles_masks() {
        let p = softmax_rows_f64(
            &[
                0.0,
                0.0,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ],
            3,
        );
        assert_eq!(p, vec![0.5, 0.5, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn attention_with_one_key_returns_its_value() {
        let q = [1.0f64, 2.0];
        let k = [3.0f64, -1.0];
        let v = [7.0f64, 9.0, 11.0];
        let l1 = HeadsLayout::contiguous(1, 1, 2);
        let lv = HeadsLayout::contiguous(1, 1, 3);
        let dims = AttentionDims {
            n_heads: 1,
            n_kv_heads: 1,
            n_q: 1,
            n_kv: 1,
            head_dim: 2,
            v_dim: 3,
        };
        let o = attention_f64(
            &Heads {
                data: &q,
                layout: l1,
            },
            &Heads {
                data: &k,
                layout: l1,
            },
            &Heads {
                data: &v,
                layout: lv,
            },
            &dims,
            &AttentionSpec::default(),
        );
        assert_eq!(o, vec![7.0, 9.0, 11.0]);
    }

    #[test]
    fn sliding_window_averages_the_last_w_values() {
        // Zero queries make every visible score equal, so each row is the mean of the values it
        // sees: with W = 2, query position p averages v[p-1] and v[p] (just v[0] at p = 0).
        let (n, w) = (5, 2);
        let zeros = vec![0.0f64; n];
        let v: Vec<f64> = (0..n).map(|j| (j * j) as f64).collect();
        let l = HeadsLayout::contiguous(1, n, 1);
        let h = |data| Heads { data, layout: l };
        let dims = AttentionDims {
            n_heads: 1,
            n_kv_heads: 1,
            n_q: n,
            n_kv: n,
            head_dim: 1,
            v_dim: 1,
        };
        let o = attention_f64(
            &h(&zeros),
            &h(&zeros),
            &h(&v),
            &dims,
            &AttentionSpec::sliding(w),
        );
        assert_eq!(o, vec![0.0, 0.5, 2.5, 6.5, 12.5]);
        // One decode query at position 4 against the same keys.
        let dims1 = AttentionDims { n_q: 1, ..dims };
        let q1 = Heads {
            data: &zeros[..1],
            layout: HeadsLayout::contiguous(1, 1, 1),
        };
        let o = attention_f64(&q1, &h(&zeros), &h(&v), &dims1, &AttentionSpec::sliding(3));
        assert_eq!(o, vec![(4.0 + 9.0 + 16.0) / 3.0]);
    }

    #[test]
    fn compare_flags_nan_and_measures_nmse() {
        let c = compare(&[1.0f32, 2.0], &[1.0, 2.0]).expect("same length");
        assert_eq!(c.nmse, 0.0);
        let c = compare(&[f32::NAN, 2.0], &[1.0, 2.0]).expect("same length");
        assert_eq!(c.nonfinite_mismatches, 1);
        assert!(!c.passes(1.0));
        let c = compare(&[1.1f64, 2.0], &[1.0, 2.0]).expect("same length");
        assert!((c.nmse - 0.01 / 5.0).abs() < 1e-12);
    }
}
