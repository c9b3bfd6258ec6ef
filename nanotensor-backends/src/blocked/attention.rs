//! Materialised attention on the blocked kernels (`AttentionAlgo::Materialized`).
//!
//! Per query head `h` reading KV head `g`:
//! ```text
//! S_h = Q_h · K_gᵀ            GEMM with B = K_gᵀ read in place through strides (no transpose copy)
//! S_h ← scale · S_h; mask: S_h[i, j] = −∞ for j outside visible_range(i) (causal, window)
//! P_h = softmax(S_h) rows     vectorised, fully masked rows → zeros
//! O_h = P_h · V_g             GEMM
//! ```
//! The scores of every head are materialised (`H · n_q · n_kv` elements), which is what the
//! memory budget is checked against before anything is allocated. A sliding window does not
//! shrink them: the GEMM computes the full rectangle and the mask discards what lies outside the
//! window (the flash path is the one whose cost follows the window).

use super::gemm::{gemm, BSource};
use super::kernel::GemmKernel;
use super::pack::MatRef;
use crate::threads::Pool;
use nanotensor_core::{AttentionDims, AttentionSpec, Element, Heads, HeadsMut};

/// Scratch elements of the materialised path: all score matrices plus a contiguous output
/// staging area (`H · n_q · (n_kv + d_v)`), saturating.
pub fn scratch_elems(dims: &AttentionDims) -> u64 {
    (dims.n_heads as u64)
        .saturating_mul(dims.n_q as u64)
        .saturating_mul((dims.n_kv + dims.v_dim) as u64)
}

/// Runs the materialised algorithm with kernel `K` computing in `F` (f32 or f64).
///
/// # Arguments
/// * `softmax_rows` — in-place row softmax over `F` rows of the given length
/// * `q`, `k`, `v`, `out`, `dims`, `spec` — validated operands (see `Backend::attention_into`)
#[allow(clippy::too_many_arguments)]
pub fn materialised<T, F, K>(
    kernel: K,
    pool: &Pool,
    softmax_rows: impl Fn(&mut [F], usize) + Sync,
    q: &Heads<'_, T>,
    k: &Heads<'_, T>,
    v: &Heads<'_, T>,
    out: &mut HeadsMut<'_, T>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
) where
    T: Element,
    F: Element,
    K: GemmKernel<A = F, B = F, C = F>,
{
    let (nq, nkv, d, dv) = (dims.n_q, dims.n_kv, dims.head_dim, dims.v_dim);
    let scale = F::from_f64(spec.scale_for(d));
    let per_head = nq * (nkv + dv);
    let mut scratch = vec![F::zero(); dims.n_heads * per_head];
    let conv = |x: T| F::from_f64(x.as_f64());
    let one_head = |h: usize, buf: &mut [F], inner: Option<&Pool>| {
        let g = dims.kv_head(h);
        let (s, o) = buf.split_at_mut(nq * nkv);
        let qh = MatRef::new(
            &q.data[q.layout.offset(h, 0)..],
            nq,
            d,
            q.layout.row_stride,
            1,
        );
        let kh = MatRef::new(
            &k.data[k.layout.offset(g, 0)..],
            nkv,
            d,
            k.layout.row_stride,
            1,
        );
        let vh = MatRef::new(
            &v.data[v.layout.offset(g, 0)..],
            nkv,
            dv,
            v.layout.row_stride,
            1,
        );
        // S = Q·Kᵀ
        gemm(
            kernel,
            inner,
            qh,
            conv,
            BSource::Strided(kh.t()),
            conv,
            s,
            nkv,
        );
        // scale, mask, softmax
        for (i, row) in s.chunks_exact_mut(nkv).enumerate() {
            let visible = dims.visible_range_for(i, spec);
            for x in &mut row[..visible.start] {
                *x = F::neg_infinity();
            }
            for x in &mut row[visible.clone()] {
                *x = *x * scale;
            }
            for x in &mut row[visible.end..] {
                *x = F::neg_infinity();
            }
            softmax_rows(row, nkv);
        }
        // O = P·V
        let p = MatRef::new(s, nq, nkv, nkv, 1);
        gemm(kernel, inner, p, |x| x, BSource::Strided(vh), conv, o, dv);
    };
    if dims.n_heads >= pool.threads() {
        // Heads in parallel, each head's GEMMs on its worker.
        pool.for_each_chunk_mut(&mut scratch, per_head, |h, buf| one_head(h, buf, None));
    } else {
        // Fewer heads than threads: heads in turn, each GEMM split across the pool.
        for (h, buf) in scratch.chunks_exact_mut(per_head).enumerate() {
            one_head(h, buf, Some(pool));
        }
    }
    for (h, buf) in scratch.chunks_exact(per_head).enumerate() {
        let o = &buf[nq * nkv..];
        for (i, orow) in o.chunks_exact(dv).enumerate() {
            for (dst, &src) in out.row_mut(h, i).iter_mut().zip(orow) {
                *dst = T::from_f64(src.as_f64());
            }
        }
    }
}
