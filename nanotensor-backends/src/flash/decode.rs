//! The decode path: a few query rows (generation with a KV cache) against `n_kv` cached keys.
//!
//! With one query per head the tiled path would fill one of its 32 lanes, so decode works row
//! by row and, when there are fewer rows than workers can use, splits each row's key range into
//! chunks processed in parallel (*flash-decoding*): chunk `c` yields a partial state
//! `(m_c, l_c, acc_c)` and the row's result is
//!
//! ```text
//! M = max_c m_c,   L = Σ_c 2^(m_c − M)·l_c,   O = Σ_c 2^(m_c − M)·acc_c / L
//! ```
//!
//! **Allocation-free per step.** The only scratch is the partial states ([`decode_scratch_len`]
//! floats); the per-chunk score buffer (`BC` floats) lives on the stack. [`flash_decode`] takes
//! the partials from the caller. The trait path (`Backend::attention_into`) borrows them from a
//! buffer owned by the calling thread ([`with_scratch`]), which grows to the largest size seen
//! and is then reused: after the first step of a generation loop no call allocates.

use super::kernel::{self, exp::exp2, Isa};
use super::shared::SharedRows;
use super::{run_tasks, BC};
use crate::threads::Pool;
use nanotensor_core::attention::{check_operands, AttentionDims, AttentionSpec, HeadsLayout};
use nanotensor_core::{Error, Heads, HeadsMut, Result};
use std::cell::RefCell;

/// Smallest number of keys worth a chunk of its own.
const MIN_CHUNK: usize = 512;

/// The longest visible key range of any query row: `n_kv`, or under a sliding window `W`
/// `min(W, n_kv)` (the last row's range is the longest; see
/// [`AttentionDims::visible_range`]). Chunks are laid over each row's own range, so the work
/// and the partial states follow the window, not the cache length.
fn key_span(dims: &AttentionDims, spec: &AttentionSpec) -> usize {
    match spec.window {
        Some(w) if spec.causal => w.min(dims.n_kv),
        _ => dims.n_kv,
    }
}

/// `(splits, chunk)`: KV chunks per query row and keys per chunk (a multiple of `BC`).
fn split(dims: &AttentionDims, spec: &AttentionSpec, threads: usize) -> (usize, usize) {
    let span = key_span(dims, spec).max(1);
    let rows = dims.n_heads * dims.n_q;
    let want = 2 * threads.max(1);
    let splits = if rows >= want || threads <= 1 {
        1
    } else {
        want.div_ceil(rows).min(span.div_ceil(MIN_CHUNK)).max(1)
    };
    let chunk = span.div_ceil(splits).div_ceil(BC) * BC;
    (span.div_ceil(chunk), chunk)
}

/// Floats of scratch [`flash_decode`] needs: `H·n_q·splits·(d_v + 2)` (`splits` chunks over the
/// longest visible key range, which a sliding window shortens).
pub fn decode_scratch_len(dims: &AttentionDims, spec: &AttentionSpec, threads: usize) -> usize {
    let (splits, _) = split(dims, spec, threads);
    dims.n_heads * dims.n_q * splits * (dims.v_dim + 2)
}

thread_local! {
    /// The calling thread's reusable partial-state buffer (see [`with_scratch`]).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` floats of the calling thread's decode scratch, growing the buffer (an
/// allocation) only when `len` exceeds every earlier request. A re-entrant call on the same thread
/// (attention run from a task that another attention call on this thread is waiting on) finds
/// the buffer borrowed and uses a fresh one. Contents on entry are unspecified.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// f32 attention for few query rows against a long KV range, without allocating.
///
/// # Arguments
/// * `pool` — worker pool; work items are (head, query row, KV chunk)
/// * `q`, `k`, `v`, `out` — as in [`super::flash_attention`] (any `n_q`, best for `n_q ≤ 4`)
/// * `spec` — causal mask (end-aligned: a single query sees the whole cache), sliding window
///   (only the last `W` keys are read) and scale
/// * `scratch` — at least [`decode_scratch_len`]`(dims, spec, pool.threads())` floats; contents
///   ignored
///
/// # Errors
/// An invalid spec, inconsistent operands, overlapping output rows, or a short `scratch`.
#[allow(clippy::too_many_arguments)]
pub fn flash_decode(
    pool: &Pool,
    q: Heads<'_, f32>,
    k: Heads<'_, f32>,
    v: Heads<'_, f32>,
    out: HeadsMut<'_, f32>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
    scratch: &mut [f32],
) -> Result<()> {
    const OP: &str = "attention";
    if check_operands(&q, &k, &v, &out)? != *dims {
        return Err(Error::invalid_arg(OP, "dims do not describe the operands"));
    }
    if !super::shared::rows_disjoint(&out.layout) {
        return Err(Error::invalid_arg(
            OP,
            "the output layout has overlapping rows",
        ));
    }
    spec.validate()?;
    let need = decode_scratch_len(dims, spec, pool.threads());
    if scratch.len() < need {
        return Err(Error::invalid_arg(
            OP,
            format!("decode scratch of {} floats, need {need}", scratch.len()),
        ));
    }
    run(pool, kernel::detect(), q, k, v, out, dims, spec, scratch);
    Ok(())
}

/// The decode computation on validated operands.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    pool: &Pool,
    isa: Isa,
    q: Heads<'_, f32>,
    k: Heads<'_, f32>,
    v: Heads<'_, f32>,
    mut out: HeadsMut<'_, f32>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
    scratch: &mut [f32],
) {
    let (splits, chunk) = split(dims, spec, pool.threads());
    let (d, dv) = (dims.head_dim, dims.v_dim);
    let rows = dims.n_heads * dims.n_q;
    let slot = dv + 2;
    let c = (spec.scale_for(d) * std::f64::consts::LOG2_E) as f32;
    let n_tasks = rows * splits;
    let partials = SharedRows::new(
        &mut scratch[..n_tasks * slot],
        HeadsLayout::contiguous(1, n_tasks, slot),
    );
    run_tasks(
        pool,
        n_tasks,
        pool.threads().min(n_tasks),
        || (),
        |_, t| {
            let (r, sp) = (t / splits, t % splits);
            let (h, i) = (r / dims.n_q, r % dims.n_q);
            let g = dims.kv_head(h);
            // Chunk `sp` of this row's visible range `lo..hi`.
            let visible = dims.visible_range_for(i, spec);
            let start = visible.start.saturating_add(sp * chunk);
            let end = visible.end.min(start.saturating_add(chunk));
            // SAFETY: slot `t` belongs to work item `t` only.
            let part = unsafe { partials.row(0, t) };
            let (ml, acc) = part.split_at_mut(2);
            acc.fill(0.0);
            let (mut m, mut l) = (f32::NEG_INFINITY, 0.0f32);
            let qi = q.row(h, i);
            let mut s = [0.0f32; BC];
            let mut j0 = start;
            while j0 < end {
                let n = BC.min(end - j0);
                let kb = &k.data[k.layout.offset(g, j0)..];
                let vb = &v.data[v.layout.offset(g, j0)..];
                kernel::prefetch_rows(vb, v.layout.row_stride, n, dv);
                kernel::decode_scores(isa, qi, kb, k.layout.row_stride, n, &mut s);
                let mut bm = f32::NEG_INFINITY;
                for x in s[..n].iter_mut() {
                    *x *= c;
                    bm = bm.max(*x);
                }
                let m_new = m.max(bm);
                let alpha = exp2(m - m_new);
                let sum = kernel::exp2_sub_sum(isa, &mut s[..n], m_new);
                l = l * alpha + sum;
                m = m_new;
                kernel::decode_values(isa, vb, v.layout.row_stride, n, &s, alpha, acc);
                j0 += n;
            }
            ml[0] = m;
            ml[1] = l;
        },
    );
    // Combine the partial states of each row (the flash-decoding reduction).
    for r in 0..rows {
        let (h, i) = (r / dims.n_q, r % dims.n_q);
        let parts = &scratch[r * splits * slot..(r + 1) * splits * slot];
        let big_m = parts
            .chunks_exact(slot)
            .map(|p| p[0])
            .fold(f32::NEG_INFINITY, f32::max);
        let o = out.row_mut(h, i);
        o.fill(0.0);
        if big_m == f32::NEG_INFINITY {
            continue; // the row sees no key
        }
        let mut big_l = 0.0f32;
        for p in parts.chunks_exact(slot) {
            let w = exp2(p[0] - big_m);
            big_l += w * p[1];
            for (ox, &a) in o.iter_mut().zip(&p[2..]) {
                *ox += w * a;
            }
        }
        let inv = 1.0 / big_l;
        o.iter_mut().for_each(|x| *x *= inv);
    }
}
