//! The float operations that the blocked and int8 backends share: softmax and materialised
//! attention, on the blocked GEMM kernels and the worker pool.
//!
//! The int8 backend runs these in float, not in int8. Quantization pays where a *weight* is read
//! many times: `prepare` stores it in a quarter of the bytes and the integer dot products are 4×
//! denser. Attention has no weights — Q, K and V are activations that would each need a fresh
//! per-call quantization — and its scores go through `exp`, which turns an absolute score error
//! `ε` into a relative probability error `e^ε − 1`. Softmax has no multiply-accumulate at all.
//!
//! `f32` rows take the detected SIMD softmax kernel; bf16/f16 rows are widened to f32 a chunk
//! at a time, run through the same kernel and rounded back once (f32 arithmetic, so the only
//! error beyond f32 rounding is the output's own rounding); f64 rows the core's
//! [`nanotensor_core::attention::softmax_rows`]. Materialised attention runs every type but
//! f64 on the f32 GEMM kernel (bf16/f16 widened while packing), f64 on the f64 kernel. The
//! tiled (flash) path is [`crate::flash`], chosen by [`crate::flash::resolve_algo`].

use super::attention;
use super::kernel::convert::{narrow_into, widen_into};
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
    } else if matches!(T::DTYPE, DType::BF16 | DType::F16) {
        // Widen a block of rows (about 64 KiB of f32, at least one row), softmax, round back.
        let block = (16384 / n).max(1) * n;
        pool.for_each_chunk_mut(out.as_mut_slice(), rows_per_task * n, |_, rows| {
            let mut wide = vec![0.0f32; block.min(rows.len())];
            for chunk in rows.chunks_mut(block) {
                let w = &mut wide[..chunk.len()];
                widen_into(chunk, w);
                kernel.softmax_rows(w, n);
                narrow_into(w, chunk);
            }
        });
    } else {
        pool.for_each_chunk_mut(out.as_mut_slice(), rows_per_task * n, |_, rows| {
            softmax_rows(rows, n)
        });
    }
    Ok(out)
}

/// The name of the kernel an attention call of `dtype` runs on with the resolved `algo`:
/// `"flash-<isa>-f32"` (`"convert+flash-…"` for bf16/f16 widened to f32, `"flash-generic-f64"`
/// for f64) or the GEMM kernel of the materialised path (`"materialized+<kernel>"`).
pub fn kernel_name(kernel: F32Kernel, dtype: DType, algo: AttentionAlgo) -> &'static str {
    use crate::flash::kernel::Isa;
    let isa = crate::flash::kernel::detect();
    match (algo, dtype) {
        (AttentionAlgo::Materialized, DType::F64) => match F64Kernel::detect().name() {
            "avx512-f64-12x16" => "materialized+avx512-f64-12x16",
            "avx2-f64-6x8" => "materialized+avx2-f64-6x8",
            _ => "materialized+portable-f64-4x4",
        },
        (AttentionAlgo::Materialized, DType::F32) => match kernel.name() {
            "avx512-f32-12x32" => "materialized+avx512-f32-12x32",
            "avx2-f32-6x16" => "materialized+avx2-f32-6x16",
            "wasm-simd128-f32-4x8" => "materialized+wasm-simd128-f32-4x8",
            _ => "materialized+portable-f32-4x8",
        },
        (AttentionAlgo::Materialized, _) => match kernel.name() {
            "avx512-f32-12x32" => "materialized+convert+avx512-f32-12x32",
            "avx2-f32-6x16" => "materialized+convert+avx2-f32-6x16",
            "wasm-simd128-f32-4x8" => "materialized+convert+wasm-simd128-f32-4x8",
            _ => "materialized+convert+portable-f32-4x8",
        },
        (_, DType::F64) => "flash-generic-f64",
        (_, DType::F32) => match isa {
            Isa::Avx512 => "flash-avx512-f32",
            Isa::Avx2 => "flash-avx2-f32",
            Isa::Portable => "flash-portable-f32",
        },
        _ => match isa {
            Isa::Avx512 => "convert+flash-avx512-f32",
            Isa::Avx2 => "convert+flash-avx2-f32",
            Isa::Portable => "convert+flash-portable-f32",
        },
    }
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
