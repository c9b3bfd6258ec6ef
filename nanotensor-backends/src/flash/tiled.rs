//! The f32 tiled path: one work item is one (head, block of `BR` queries).

use super::kernel::{self, Isa, LANES};
use super::shared::SharedRows;
use super::{run_tasks, workers, BC, BR};
use crate::threads::Pool;
use nanotensor::attention::{AttentionDims, AttentionSpec};
use nanotensor::{Heads, HeadsMut};

/// Work items: heads × query blocks.
pub(super) fn tasks(dims: &AttentionDims) -> usize {
    dims.n_heads * dims.n_q.div_ceil(BR)
}

/// f32 scratch per worker: packed `Qᵀ` (`d × BR`), score tile (`BC × BR`), `Oᵀ` (`d_v × BR`).
fn worker_len(dims: &AttentionDims) -> usize {
    BR * (dims.head_dim + BC + dims.v_dim)
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
    let n_qb = dims.n_q.div_ceil(BR);
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
            // Heaviest causal blocks (last queries) first, for load balance.
            let (h, qb) = (t / n_qb, n_qb - 1 - t % n_qb);
            ctx.query_block(h, qb * BR, buf, &out);
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
    /// Attention for query rows `i0 .. i0 + BR` (clipped) of head `h`, written to `out`.
    fn query_block(&self, h: usize, i0: usize, buf: &mut [f32], out: &SharedRows<'_, f32>) {
        let dims = &self.dims;
        let (d, dv) = (dims.head_dim, dims.v_dim);
        let nrows = BR.min(dims.n_q - i0);
        let (qt, rest) = buf.split_at_mut(d * LANES);
        let (s, ot) = rest.split_at_mut(BC * LANES);

        // Pack Qᵀ (d × LANES) pre-scaled by c; lanes past the last query stay zero.
        qt.fill(0.0);
        for li in 0..nrows {
            for (p, &x) in self.q.row(h, i0 + li).iter().enumerate() {
                qt[p * LANES + li] = x * self.c;
            }
        }
        ot.fill(0.0);
        let mut m = [f32::NEG_INFINITY; LANES];
        let mut l = [0.0f32; LANES];
        let mut alpha = [0.0f32; LANES];

        let g = dims.kv_head(h);
        let vis_lo = dims.visible_keys(i0, self.causal);
        let vis_hi = dims.visible_keys(i0 + nrows - 1, self.causal);
        let (ks, vs) = (self.k.layout.row_stride, self.v.layout.row_stride);
        let mut j0 = 0;
        // Keys at or past `vis_hi` are seen by no query of the block: those blocks are skipped.
        while j0 < vis_hi {
            let rows = BC.min(vis_hi - j0);
            let kb = &self.k.data[self.k.layout.offset(g, j0)..];
            kernel::qk(self.isa, kb, ks, rows, d, qt, s);
            if j0 + rows > vis_lo {
                // A block crossing the diagonal: mask keys j ≥ visible_keys(i) per query lane.
                for li in 0..nrows {
                    let vis = dims.visible_keys(i0 + li, self.causal);
                    for j in vis.max(j0)..j0 + rows {
                        s[(j - j0) * LANES + li] = f32::NEG_INFINITY;
                    }
                }
            }
            kernel::softmax_step(self.isa, s, rows, &mut m, &mut l, &mut alpha);
            let vb = &self.v.data[self.v.layout.offset(g, j0)..];
            kernel::pv(self.isa, vb, vs, rows, dv, s, &alpha, ot);
            j0 += rows;
        }

        for (li, &sum) in l.iter().enumerate().take(nrows) {
            let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
            // SAFETY: row (h, i0 + li) belongs to this work item only (one item per head and
            // query block), and the slice is dropped before the next row is taken.
            let row = unsafe { out.row(h, i0 + li) };
            for (x, o) in row.iter_mut().enumerate() {
                *o = ot[x * LANES + li] * inv;
            }
        }
    }
}
