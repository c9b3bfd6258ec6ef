//! The float operations that the blocked and int8 backends share: softmax and materialised
//! attention, on the blocked GEMM kernels and the worker pool.
//!
//! The int8 backend runs these in float, not in int8. Quantization pays where a *weight* is read
//! many times: `prepare` stores it in a quarter of the bytes and the integer dot products are 4×
//! denser. Attention has no weights — Q, K and V are activations that would each need a fresh
//! per-call quantization — and its scores go through `exp`, which turns an absolute score error
//! `ε` into a relative probability error `e^ε − 1`. Softmax has no multiply-accumulate at all.
//!
//! `f32` rows take the detected SIMD softmax kernel; other element types the core's scalar
//! [`nanotensor_core::attention::softmax_rows`] (f64 inside). The tiled (flash) path is
//! [`crate::flash`], chosen by [`crate::flash::resolve_algo`].

use super::attention;
use super::kernel::f64_choice::{with_f64_kernel, F64Kernel};
use super::kernel::{with_f32_kernel, F32Kernel};
use crate::threads::Pool;
use nanotensor_core::attention::{
    softmax_rows, AttentionAlgo, AttentionDims, AttentionPlan, AttentionSpec,
};
use nanotensor_core::{DType, Element, Heads, HeadsMut, Result, Tensor};

/// Softmax along the last axis of a checked `x` (rank ≥ 1, non-empty, no NaN/`+inf`), rows split
/// among the pool's workers.
pub fn softmax<T: Element>(pool: &Pool, kernel: F32Kernel, x: &Tensor<T>) -> Result<Tensor<T>> {
    let n = *x.shape().last().expect("rank >= 1");
    let mut out = x.clone();
    let rows_per_task = (out.numel() / n).div_ceil(pool.threads()).max(1);
    if let Some(y) = T::slice_f32_mut(out.as_mut_slice()) {
        pool.for_each_chunk_mut(y, rows_per_task * n, |_, rows| kernel.softmax_rows(rows, n));
    } else {
        pool.for_each_chunk_mut(out.as_mut_slice(), rows_per_task * n, |_, rows| {
            softmax_rows(rows, n)
        });
    }
    Ok(out)
}

/// The attention plan on a pool of `threads`: flash when [`crate::flash::resolve_algo`] picks it,
/// else the materialised path and its scratch bytes; either within the spec's budget.
pub fn plan<T: Element>(
    dims: &AttentionDims,
    spec: &AttentionSpec,
    threads: usize,
) -> Result<AttentionPlan> {
    if crate::flash::resolve_algo::<T>(dims, spec) == AttentionAlgo::Flash {
        return crate::flash::flash_plan::<T>(dims, spec, threads);
    }
    let elem = if T::DTYPE == DType::F64 { 8 } else { 4 };
    let scratch = attention::scratch_elems(dims).saturating_mul(elem);
    nanotensor_core::memory::check_budget(
        "attention",
        scratch,
        spec.budget(),
        &dims.scores_detail(T::DTYPE.name()),
    )?;
    Ok(AttentionPlan {
        algo: AttentionAlgo::Materialized,
        scratch_bytes: scratch,
    })
}

/// Runs the algorithm `plan` chose on checked operands: the materialised path on the GEMM
/// kernels (f64 for f64 operands, the detected f32 kernel otherwise), or flash.
#[allow(clippy::too_many_arguments)]
pub fn attention<T: Element>(
    pool: &Pool,
    kernel: F32Kernel,
    q: Heads<'_, T>,
    k: Heads<'_, T>,
    v: Heads<'_, T>,
    mut out: HeadsMut<'_, T>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
    plan: &AttentionPlan,
) -> Result<()> {
    match plan.algo {
        AttentionAlgo::Materialized if T::DTYPE == DType::F64 => {
            with_f64_kernel!(F64Kernel::detect(), kern => attention::materialised(
                kern,
                pool,
                softmax_rows::<f64>,
                &q,
                &k,
                &v,
                &mut out,
                dims,
                spec,
            ))
        }
        AttentionAlgo::Materialized => {
            with_f32_kernel!(kernel, kern => attention::materialised(
                kern,
                pool,
                |rows: &mut [f32], n| kernel.softmax_rows(rows, n),
                &q,
                &k,
                &v,
                &mut out,
                dims,
                spec,
            ))
        }
        AttentionAlgo::Flash | AttentionAlgo::Auto => {
            crate::flash::flash_attention(pool, q, k, v, out, dims, spec)?;
        }
    }
    Ok(())
}
