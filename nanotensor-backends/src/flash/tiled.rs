//! The f32 tiled path: one work item is one (head, block of `BR` queries).

use super::kernel::{self, Isa, LANES};
use super::shared::SharedRows;
use super::{run_tasks, workers, BC, BR};
use crate::threads::Pool;
use nanotensor_core::attention::{AttentionDims, AttentionSpec};
use nanotensor_core::{Heads, HeadsMut};

/// Query blocks handled together by one work item: each K/V block loaded from memory then feeds
/// `GROUP·BR` = 128 queries instead of 32, dividing the K/V stream (the bottleneck once K and V
/// outgrow the L2/L3 caches, e.g. 51 MB at N = 100,000) by `GROUP`.
pub(super) const GROUP: usize = 4;

/// Work items: heads × groups of `GROUP` query blocks.
pub(super) fn tasks(dims: &AttentionDims) -> usize {
    dims.n_heads * dims.n_q.div_ceil(BR * GROUP)
}

/// f32 scratch per worker: `GROUP` packed `Qᵀ` (`d × BR`) and `Oᵀ` (`d_v × BR`) tiles and one
/// score tile (`BC × BR`). At d = d_v = 64: 64 KiB + 8 KiB, resident in L2.
pub(super) fn worker_len(dims: &AttentionDims) -> usize {
    BR * (GROUP * (dims.head_dim + dims.v_dim) + BC)
}

/// Runs every (head, query block) of the call on the pool.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    pool: &Pool,
    isa: Isa,
    q: Heads<'_, f32>,
    k: Heads<'_, f32>,
    v: Heads<'_, f32>,
    out: HeadsMut<'_, f32>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
) {
    // Scores are computed in base 2: 2^(c·q·k) with c = scale·log₂e equals e^(scale·q·k).
    let c = (spec.scale_for(dims.head_dim) * std::f64::consts::LOG2_E) as f32;
    let n_groups = dims.n_q.div_ceil(BR * GROUP);
    let n_tasks = tasks(dims);
    let out = SharedRows::new(out.data, out.layout);
    let ctx = Ctx {
        isa,
        q,
        k,
        v,
        dims: *dims,
        causal: spec.causal,
        c,
    };
    run_tasks(
        pool,
        n_tasks,
        workers(pool.threads(), n_tasks),
        || vec![0.0f32; worker_len(dims)],
        |buf, t| {
            // Heaviest causal groups (last queries) first, for load balance.
            let (h, qg) = (t / n_groups, n_groups - 1 - t % n_groups);
            ctx.query_group(h, qg * BR * GROUP, buf, &out);
        },
    );
}

struct Ctx<'a> {
    isa: Isa,
    q: Heads<'a, f32>,
    k: Heads<'a, f32>,
    v: Heads<'a, f32>,
    dims: AttentionDims,
    causal: bool,
    c: f32,
}

impl Ctx<'_> {
    /// Attention for query rows `i0 .. i0 + GROUP·BR` (clipped) of head `h`, written to `out`:
    /// `GROUP` query blocks of `BR` rows share every K/V block while it is in cache.
    fn query_group(&self, h: usize, i0: usize, buf: &mut [f32], out: &SharedRows<'_, f32>) {
        let dims = &self.dims;
        let (d, dv) = (dims.head_dim, dims.v_dim);
        let n_sub = (dims.n_q - i0).min(BR * GROUP).div_ceil(BR);
        let (qts, rest) = buf.split_at_mut(GROUP * d * LANES);
        let (ots, s) = rest.split_at_mut(GROUP * dv * LANES);
        let s = &mut s[..BC * LANES];
        let mut m = [[f32::NEG_INFINITY; LANES]; GROUP];
        let mut l = [[0.0f32; LANES]; GROUP];
        let mut alpha = [[0.0f32; LANES]; GROUP];
        // Per sub-block: first row, rows, and the visible-key range [vis_lo, vis_hi).
        let mut sub = [(0usize, 0usize, 0usize, 0usize); GROUP];
        for (b, sb) in sub.iter_mut().enumerate().take(n_sub) {
            let first = i0 + b * BR;
            let rows = BR.min(dims.n_q - first);
            *sb = (
                first,
                rows,
                dims.visible_keys(first, self.causal),
                dims.visible_keys(first + rows - 1, self.causal),
            );
            // Pack Qᵀ (d × LANES) pre-scaled by c; lanes past the last query stay zero.
            let qt = &mut qts[b * d * LANES..(b + 1) * d * LANES];
            qt.fill(0.0);
            for li in 0..rows {
                for (p, &x) in self.q.row(h, first + li).iter().enumerate() {
                    qt[p * LANES + li] = x * self.c;
                }
            }
            ots[b * dv * LANES..(b + 1) * dv * LANES].fill(0.0);
        }

        let g = dims.kv_head(h);
        let vis_end = sub[..n_sub].iter().map(|sb| sb.3).max().unwrap_or(0);
        let (ks, vs) = (self.k.layout.row_stride, self.v.layout.row_stride);
        let mut j0 = 0;
        while j0 < vis_end {
            let kb = &self.k.data[self.k.layout.offset(g, j0)..];
            let vb = &self.v.data[self.v.layout.offset(g, j0)..];
            for (b, &(first, nrows, vis_lo, vis_hi)) in sub.iter().enumerate().take(n_sub) {
                // Keys at or past `vis_hi` are seen by no query of this block: skipped.
                if j0 >= vis_hi {
                    continue;
                }
                let rows = BC.min(vis_hi - j0);
                let qt = &qts[b * d * LANES..(b + 1) * d * LANES];
                kernel::qk(self.isa, kb, ks, rows, d, qt, s);
                if j0 + rows > vis_lo {
                    // A block crossing the diagonal: mask keys j ≥ visible_keys(i) per lane.
                    for li in 0..nrows {
                        let vis = dims.visible_keys(first + li, self.causal);
                        for j in vis.max(j0)..j0 + rows {
                            s[(j - j0) * LANES + li] = f32::NEG_INFINITY;
                        }
                    }
                }
                kernel::softmax_step(self.isa, s, rows, &mut m[b], &mut l[b], &mut alpha[b]);
                let ot = &mut ots[b * dv * LANES..(b + 1) * dv * LANES];
                kernel::pv(self.isa, vb, vs, rows, dv, s, &alpha[b], ot);
            }
            j0 += BC;
        }

        for (b, &(first, nrows, _, _)) in sub.iter().enumerate().take(n_sub) {
            let ot = &ots[b * dv * LANES..(b + 1) * dv * LANES];
            for (li, &sum) in l[b].iter().enumerate().take(nrows) {
                let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
                // SAFETY: row (h, first + li) belongs to this work item only (one item per head
                // and query group), and the slice is dropped before the next row is taken.
                let row = unsafe { out.row(h, first + li) };
                for (x, o) in row.iter_mut().enumerate() {
                    *o = ot[x * LANES + li] * inv;
                }
            }
        }
    }
}
