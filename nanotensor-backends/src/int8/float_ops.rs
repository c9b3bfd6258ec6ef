//! The int8 backend's float operations: softmax and materialised attention.
//!
//! # Why these stay in float
//! Quantization pays where a *weight* is read many times: `prepare` stores it in a quarter of the
//! bytes and the integer dot products are 4× denser. Attention has no weights — Q, K and V are
//! activations that would each need a fresh per-call quantization — and its scores go through
//! `exp`, which turns an absolute score error `ε` into a relative probability error `e^ε − 1`:
//! with per-tensor scales an outlier query would blur every other score. Softmax has no
//! multiply-accumulate at all. So both run in f32 (inputs of any element type are read through
//! `as_f32`), with the same algorithm and memory accounting as the naive backend: the scores of
//! every head are materialised after [`nanotensor_core::memory::check_budget`] approves the bytes.
//! The tiled (flash) path is the shared [`crate::flash`] implementation, chosen by
//! [`crate::flash::resolve_algo`] exactly as on the blocked backend.

use nanotensor_core::attention::{AttentionAlgo, AttentionDims, AttentionPlan, AttentionSpec};
use nanotensor_core::{Element, Error, Heads, HeadsMut, Result, Tensor};

/// Plans an attention call on a pool of `threads`: flash (shared implementation) when
/// [`crate::flash::resolve_algo`] picks it, else the materialised path and its score bytes;
/// either within the budget.
pub fn plan<T: Element>(
    dims: &AttentionDims,
    spec: &AttentionSpec,
    threads: usize,
) -> Result<AttentionPlan> {
    if crate::flash::resolve_algo::<T>(dims, spec) == AttentionAlgo::Flash {
        return crate::flash::flash_plan::<T>(dims, spec, threads);
    }
    let scratch = dims.materialized_scores_bytes(std::mem::size_of::<f32>());
    nanotensor_core::memory::check_budget(
        "attention",
        scratch,
        spec.budget(),
        &dims.scores_detail("f32"),
    )?;
    Ok(AttentionPlan {
        algo: AttentionAlgo::Materialized,
        scratch_bytes: scratch,
    })
}

/// `softmax(scale·Q·Kᵀ + mask)·V` with the scores of all heads materialised (`dims` validated).
pub fn attention<T: Element>(
    q: &Heads<'_, T>,
    k: &Heads<'_, T>,
    v: &Heads<'_, T>,
    out: &mut HeadsMut<'_, T>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
    plan: &AttentionPlan,
) -> Result<()> {
    let n_scores = plan.scratch_bytes as usize / std::mem::size_of::<f32>();
    let mut scores: Vec<f32> = Vec::new();
    scores
        .try_reserve_exact(n_scores)
        .map_err(|_| Error::OutOfMemory {
            op: "attention",
            bytes: plan.scratch_bytes,
        })?;
    scores.resize(n_scores, 0.0);
    let scale = spec.scale_for(dims.head_dim) as f32;
    let (nq, nkv) = (dims.n_q, dims.n_kv);
    // S = scale·Q·Kᵀ with the causal mask, for every head.
    for h in 0..dims.n_heads {
        let g = dims.kv_head(h);
        for i in 0..nq {
            let visible = dims.visible_keys(i, spec.causal);
            let qi = q.row(h, i);
            let row = &mut scores[(h * nq + i) * nkv..(h * nq + i + 1) * nkv];
            for (j, s) in row.iter_mut().enumerate() {
                *s = if j < visible {
                    let kj = k.row(g, j);
                    scale
                        * qi.iter()
                            .zip(kj)
                            .map(|(a, b)| a.as_f32() * b.as_f32())
                            .sum::<f32>()
                } else {
                    f32::NEG_INFINITY
                };
            }
            softmax_row(row);
        }
    }
    // O = P·V.
    let mut acc = vec![0.0f32; dims.v_dim];
    for h in 0..dims.n_heads {
        let g = dims.kv_head(h);
        for i in 0..nq {
            acc.fill(0.0);
            let p = &scores[(h * nq + i) * nkv..(h * nq + i + 1) * nkv];
            for (j, &pj) in p.iter().enumerate().filter(|(_, &pj)| pj != 0.0) {
                for (o, x) in acc.iter_mut().zip(v.row(g, j)) {
                    *o += pj * x.as_f32();
                }
            }
            for (o, &a) in out.row_mut(h, i).iter_mut().zip(&acc) {
                *o = T::from_f32(a);
            }
        }
    }
    Ok(())
}

/// In-place numerically stable softmax of one row: `y_j = exp(x_j − max) / Σ exp(x_i − max)`;
/// an all-`-inf` row becomes zeros.
pub fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let mut sum = 0.0f32;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

/// Softmax along the last axis (input already checked).
pub fn softmax<T: Element>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let n = *x.shape().last().expect("rank >= 1 checked");
    let mut out = Tensor::<T>::zeros(x.shape())?;
    let mut row = vec![0.0f32; n];
    for (src, dst) in x.as_slice().chunks(n).zip(out.as_mut_slice().chunks_mut(n)) {
        for (r, s) in row.iter_mut().zip(src) {
            *r = s.as_f32();
        }
        softmax_row(&mut row);
        for (d, &r) in dst.iter_mut().zip(&row) {
            *d = T::from_f32(r);
        }
    }
    Ok(out)
}
