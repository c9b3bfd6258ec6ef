//! FlashAttention: tiled attention with an online softmax, no N×N score matrix.
//!
//! For each query head `h` and each block of `BR` query rows, K/V of the head's KV group are
//! streamed in blocks of `BC` keys; a running max `m`, running sum `l` and an output accumulator
//! `O` per query are updated with [`OnlineSoftmax`]'s step (rescaling by `exp(m_old − m_new)`),
//! and `O / l` is written at the end (Dao et al., *FlashAttention*, 2022, Algorithm 1). Memory per
//! worker is `O((d + d_v)·BR)`, independent of the sequence length.
//!
//! # Block sizes (Zen 4/5: 32–48 KiB L1d, 1 MiB L2 per core)
//! `BR = 32` queries (two 16-lane AVX-512 registers) and `BC = 64` keys, and one work item runs
//! `GROUP = 4` query blocks against each K/V block. At `d = d_v = 64` a query block's working set
//! is `Qᵀ` 8 KiB + score tile 8 KiB + `Oᵀ` 8 KiB = 24 KiB, in L1d while the 64-key K and V blocks
//! (16 KiB each) stream in; the group's 72 KiB of tiles stay in L2. Each K/V element brought from
//! memory feeds 128 queries (256 flops), so at ~200 GFLOP/s per core the K/V stream needs
//! ~3 GB/s — affordable even from DRAM at N = 100,000 (K + V = 51 MB per head, past L3).
//!
//! # Causal mask and sliding window
//! End-aligned (query `i` sees keys `j < n_kv − n_q + i + 1`). Key blocks past the last key any
//! query of the block sees are skipped; only blocks crossing the diagonal are masked, element by
//! element; blocks fully below it run unmasked. A sliding window `W` adds a lower edge (query
//! at position `p` sees `p − W < j ≤ p`): the key loop starts at the first key any query of the
//! block sees, key blocks entirely before a query block's window are skipped, and blocks crossing
//! the lower edge are masked like the diagonal ones — so a query costs `O(W)`, not `O(n_kv)`,
//! on every path (tiled, decode, generic).
//!
//! # Paths
//! - f32, `n_q > DECODE_MAX_Q`: the tiled path ([`kernel`]: SIMD tiles, queries in lanes).
//! - f32, `n_q ≤ DECODE_MAX_Q`: the decode path ([`flash_decode`]), split over the KV range.
//! - other element types: a scalar path accumulating in f64 with the same block structure.
//!
//! # Threads
//! Work items are (head, query block) pairs — (head, query row, KV chunk) for decode — handed out
//! dynamically to the pool's workers (heavy causal blocks first); each tiled worker allocates
//! its scratch once per call, while the decode path reuses a per-thread buffer so that a
//! generation step allocates nothing. Grouped KV heads are read in place by every query head of
//! the group.

mod decode;
mod generic;
pub mod kernel;
mod online;
mod shared;
mod tiled;

#[cfg(test)]
mod tests;

pub use decode::{decode_scratch_len, flash_decode};
pub use online::OnlineSoftmax;

use crate::threads::Pool;
use nanotensor_core::attention::{
    check_operands, AttentionAlgo, AttentionDims, AttentionPlan, AttentionSpec,
};
use nanotensor_core::{DType, Element, Error, Heads, HeadsMut, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Query rows per block (the SIMD lane count of the tiles).
pub const BR: usize = kernel::LANES;
/// Keys per K/V block.
pub const BC: usize = 64;
/// Up to this many query rows, f32 attention takes the decode path.
pub const DECODE_MAX_Q: usize = 4;

/// Which implementation a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Tiled,
    Decode,
    Generic,
}

fn path(dims: &AttentionDims, elem_size: usize) -> Path {
    if elem_size != 4 {
        Path::Generic
    } else if dims.n_q <= DECODE_MAX_Q {
        Path::Decode
    } else {
        Path::Tiled
    }
}

/// Number of workers a call uses: at most one per work item.
fn workers(threads: usize, tasks: usize) -> usize {
    threads.clamp(1, tasks.max(1))
}

/// Exact scratch bytes [`flash_attention`] allocates for these sizes, spec (a sliding window
/// shortens the decode path's key range), element size (4 selects the f32 paths) and thread
/// count — computable before running.
///
/// - tiled f32: `workers · 4·BR·(GROUP·(d + d_v) + BC)` (`GROUP` = 4 packed `Qᵀ` and `Oᵀ`
///   tiles, one score tile);
/// - decode f32: `4 · H·n_q·splits·(d_v + 2)` (partial `(m, l, acc)` per KV chunk of the
///   longest visible key range);
/// - generic: `workers · 8·(d + BC + d_v)` (one f64 query row, scores and accumulator).
pub fn flash_scratch_bytes(
    dims: &AttentionDims,
    spec: &AttentionSpec,
    elem_size: usize,
    threads: usize,
) -> u64 {
    let (d, dv) = (dims.head_dim as u64, dims.v_dim as u64);
    match path(dims, elem_size) {
        Path::Tiled => {
            let w = workers(threads, tiled::tasks(dims)) as u64;
            w * 4 * tiled::worker_len(dims) as u64
        }
        Path::Decode => 4 * decode_scratch_len(dims, spec, threads) as u64,
        Path::Generic => {
            let w = workers(threads, generic::tasks(dims)) as u64;
            w * 8 * (d + BC as u64 + dv)
        }
    }
}

/// The algorithm `Auto` resolves to on a backend with the flash path: flash when the
/// materialised score matrices (`H·n_q·n_kv` elements of `T`) would exceed
/// `spec.auto_threshold` (default [`AttentionSpec::DEFAULT_AUTO_THRESHOLD`]), and for f32 decode
/// shapes (`n_q ≤ DECODE_MAX_Q`), where the flash decode kernel is faster and allocates nothing
/// per call while the materialised path allocates its scores every generation step. Other
/// requests (`Naive`, `Flash`) are returned unchanged.
pub fn resolve_algo<T: Element>(dims: &AttentionDims, spec: &AttentionSpec) -> AttentionAlgo {
    match spec.algo {
        AttentionAlgo::Auto => {
            let threshold = spec
                .auto_threshold
                .unwrap_or(AttentionSpec::DEFAULT_AUTO_THRESHOLD);
            let decode = T::DTYPE == DType::F32 && dims.n_q <= DECODE_MAX_Q;
            if decode || dims.materialized_scores_bytes(std::mem::size_of::<T>()) > threshold {
                AttentionAlgo::Flash
            } else {
                AttentionAlgo::Materialized
            }
        }
        other => other,
    }
}

/// The plan of a flash call on a pool of `threads`: its scratch ([`flash_scratch_bytes`]),
/// refused with [`Error::MemoryBudget`] above `spec.budget()`.
pub fn flash_plan<T: Element>(
    dims: &AttentionDims,
    spec: &AttentionSpec,
    threads: usize,
) -> Result<AttentionPlan> {
    let scratch_bytes = flash_scratch_bytes(dims, spec, std::mem::size_of::<T>(), threads);
    nanotensor_core::memory::check_budget(
        "attention",
        scratch_bytes,
        spec.budget(),
        " of flash-attention scratch",
    )?;
    Ok(AttentionPlan {
        algo: AttentionAlgo::Flash,
        scratch_bytes,
    })
}

/// Scaled dot-product attention by the FlashAttention algorithm (see the module docs).
///
/// # Arguments
/// * `pool` — the worker pool (the calling backend's)
/// * `q`, `k`, `v`, `out` — strided heads as in [`nanotensor_core::Backend::attention_into`]; `out` is
///   fully overwritten and its rows must not overlap
/// * `dims` — the sizes, as returned by validating these operands
/// * `spec` — causal mask, sliding window, scale and memory budget (`spec.algo` is not
///   consulted)
///
/// # Returns
/// `AttentionPlan { algo: Flash, scratch_bytes }` with `scratch_bytes` =
/// [`flash_scratch_bytes`].
///
/// # Errors
/// An invalid spec ([`AttentionSpec::validate`]); operands inconsistent with each other or with
/// `dims`; an output layout whose rows overlap;
/// scratch above `spec.budget()` ([`Error::MemoryBudget`]). Finiteness of Q/K/V is the caller's
/// check ([`nanotensor_core::backend::check_attention`]).
pub fn flash_attention<T: Element>(
    pool: &Pool,
    q: Heads<'_, T>,
    k: Heads<'_, T>,
    v: Heads<'_, T>,
    out: HeadsMut<'_, T>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
) -> Result<AttentionPlan> {
    flash_attention_isa(pool, kernel::detect(), q, k, v, out, dims, spec)
}

/// [`flash_attention`] with an explicit instruction set (tests run every available one).
#[allow(clippy::too_many_arguments)]
pub(crate) fn flash_attention_isa<T: Element>(
    pool: &Pool,
    isa: kernel::Isa,
    q: Heads<'_, T>,
    k: Heads<'_, T>,
    v: Heads<'_, T>,
    out: HeadsMut<'_, T>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
) -> Result<AttentionPlan> {
    const OP: &str = "attention";
    spec.validate()?;
    let actual = check_operands(&q, &k, &v, &out)?;
    if actual != *dims {
        return Err(Error::invalid_arg(
            OP,
            format!("dims {dims:?} do not describe the operands ({actual:?})"),
        ));
    }
    let elem = std::mem::size_of::<T>();
    let scratch_bytes = flash_scratch_bytes(dims, spec, elem, pool.threads());
    nanotensor_core::memory::check_budget(
        OP,
        scratch_bytes,
        spec.budget(),
        " of flash-attention scratch",
    )?;
    if !shared::rows_disjoint(&out.layout) {
        return Err(Error::invalid_arg(
            OP,
            "the output layout has overlapping rows",
        ));
    }
    let plan = AttentionPlan {
        algo: AttentionAlgo::Flash,
        scratch_bytes,
    };
    if T::DTYPE != DType::F32 {
        generic::run(pool, q, k, v, out, dims, spec);
        return Ok(plan);
    }
    let out_layout = out.layout;
    let (Some(q), Some(k), Some(v), Some(od)) =
        (as_f32(q), as_f32(k), as_f32(v), T::slice_f32_mut(out.data))
    else {
        return Err(Error::invalid_arg(OP, "f32 operands are not f32-aligned"));
    };
    let out = HeadsMut {
        data: od,
        layout: out_layout,
    };
    match path(dims, 4) {
        Path::Decode => {
            let need = decode_scratch_len(dims, spec, pool.threads());
            decode::with_scratch(need, |scratch| {
                decode::run(pool, isa, q, k, v, out, dims, spec, scratch)
            });
        }
        _ => tiled::run(pool, isa, q, k, v, out, dims, spec),
    }
    Ok(plan)
}

/// The f32 view of f32 heads (`None` for other element types).
fn as_f32<'a, T: Element>(x: Heads<'a, T>) -> Option<Heads<'a, f32>> {
    T::slice_f32(x.data).map(|data| Heads {
        data,
        layout: x.layout,
    })
}

/// Runs `task(scratch, t)` for `t in 0..n_tasks` on `workers` workers pulling work items from a
/// shared counter; each worker builds its scratch once with `make`.
fn run_tasks<S>(
    pool: &Pool,
    n_tasks: usize,
    workers: usize,
    make: impl Fn() -> S + Sync,
    task: impl Fn(&mut S, usize) + Sync,
) {
    let next = AtomicUsize::new(0);
    pool.for_each(workers, |_| {
        let mut scratch = make();
        loop {
            let t = next.fetch_add(1, Ordering::Relaxed);
            if t >= n_tasks {
                break;
            }
            task(&mut scratch, t);
        }
    });
}
