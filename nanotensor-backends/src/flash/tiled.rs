//! The f32 tiled path: one work item is one (head, block of `BR` queries).

use super::kernel::{self, Isa, LANES};
use super::shared::SharedRows;
use super::{run_tasks, workers, BC, BR};
use crate::threads::Pool;
use nanotensor_core::attention::{AttentionDims, AttentionSpec};
use nanotensor_core::{Heads, HeadsMut};
use std::ops::Range;

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
        window: spec.window,
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
    window: Option<usize>,
    c: f32,
}

/// One block of up to `BR` query rows within a work item.
#[derive(Clone, Default)]
struct Sub {
    /// First query row.
    first: usize,
    /// Query rows (≤ `BR`).
    rows: usize,
    /// Visible key range of the first row.
    lo: Range<usize>,
    /// Visible key range of the last row.
    hi: Range<usize>,
}

impl Ctx<'_> {
    /// The keys query row `i` sees (causal diagonal and sliding window).
    #[inline]
    fn visible(&self, i: usize) -> Range<usize> {
        self.dims.visible_range(i, self.causal, self.window)
    }

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
        // Per sub-block: its rows and the visible ranges of its first and last row. Both ends
        // of a row's range grow with the row, so keys `first.start..last.end` are those any row
        // of the block sees, and keys in `last.start..first.end` those every row sees.
        let mut sub: [Sub; GROUP] = Default::default();
        for (b, sb) in sub.iter_mut().enumerate().take(n_sub) {
            let first = i0 + b * BR;
            let rows = BR.min(dims.n_q - first);
            *sb = Sub {
                first,
                rows,
                lo: self.visible(first),
                hi: self.visible(first + rows - 1),
            };
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
        let subs = &sub[..n_sub];
        let vis_end = subs.iter().map(|sb| sb.hi.end).max().unwrap_or(0);
        // Keys before the first key any row of the group sees (a sliding window's lower edge)
        // are never loaded: the cost per query follows the window, not the cache length.
        let vis_start = subs.iter().map(|sb| sb.lo.start).min().unwrap_or(0);
        let (ks, vs) = (self.k.layout.row_stride, self.v.layout.row_stride);
        let mut j0 = vis_start;
        while j0 < vis_end {
            let kb = &self.k.data[self.k.layout.offset(g, j0)..];
            let vb = &self.v.data[self.v.layout.offset(g, j0)..];
            for (b, sb) in subs.iter().enumerate() {
                // Keys at or past `hi.end` are seen by no query of this block: skipped.
                if j0 >= sb.hi.end {
                    continue;
                }
                let rows = BC.min(sb.hi.end - j0);
                // Keys before `lo.start` (the window's lower edge of the block's first row) are
                // seen by no query of this block either: a block wholly before it is skipped.
                if j0 + rows <= sb.lo.start {
                    continue;
                }
                let qt = &qts[b * d * LANES..(b + 1) * d * LANES];
                kernel::qk(self.isa, kb, ks, rows, d, qt, s);
                if j0 + rows > sb.lo.end || j0 < sb.hi.start {
                    // A block crossing the diagonal or the window's lower edge: mask, per lane,
                    // the keys outside that row's visible range.
                    for li in 0..sb.rows {
                        let vis = self.visible(sb.first + li);
                        for j in j0..vis.start.clamp(j0, j0 + rows) {
                            s[(j - j0) * LANES + li] = f32::NEG_INFINITY;
                        }
                        for j in vis.end.max(j0)..j0 + rows {
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

        for (b, sb) in subs.iter().enumerate() {
            let ot = &ots[b * dv * LANES..(b + 1) * dv * LANES];
            for (li, &sum) in l[b].iter().enumerate().take(sb.rows) {
                let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
                // SAFETY: row (h, first + li) belongs to this work item only (one item per head
                // and query group), and the slice is dropped before the next row is taken.
                let row = unsafe { out.row(h, sb.first + li) };
                for (x, o) in row.iter_mut().enumerate() {
                    *o = ot[x * LANES + li] * inv;
                }
            }
        }
    }
}
