//! The generic path (f64, bf16, f16): the same blocked online softmax, one query row at a time,
//! accumulating in f64. Correctness first; the f32 paths are the fast ones.

use super::online::OnlineSoftmax;
use super::shared::SharedRows;
use super::{run_tasks, workers, BC};
use crate::threads::Pool;
use nanotensor_core::attention::{AttentionDims, AttentionSpec};
use nanotensor_core::{Element, Heads, HeadsMut};

/// Query rows per work item.
const ROWS: usize = 32;

/// Work items: heads × blocks of `ROWS` query rows.
pub(super) fn tasks(dims: &AttentionDims) -> usize {
    dims.n_heads * dims.n_q.div_ceil(ROWS)
}

/// Runs the call on the pool. Scratch per worker: `d + BC + d_v` f64.
pub(super) fn run<T: Element>(
    pool: &Pool,
    q: Heads<'_, T>,
    k: Heads<'_, T>,
    v: Heads<'_, T>,
    out: HeadsMut<'_, T>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
) {
    let scale = spec.scale_for(dims.head_dim);
    let (d, dv) = (dims.head_dim, dims.v_dim);
    let n_blocks = dims.n_q.div_ceil(ROWS);
    let n_tasks = tasks(dims);
    let out = SharedRows::new(out.data, out.layout);
    run_tasks(
        pool,
        n_tasks,
        workers(pool.threads(), n_tasks),
        || vec![0.0f64; d + BC + dv],
        |buf, t| {
            let (h, i0) = (t / n_blocks, (t % n_blocks) * ROWS);
            let g = dims.kv_head(h);
            let (qrow, rest) = buf.split_at_mut(d);
            let (scores, acc) = rest.split_at_mut(BC);
            for i in i0..dims.n_q.min(i0 + ROWS) {
                for (a, x) in qrow.iter_mut().zip(q.row(h, i)) {
                    *a = x.as_f64() * scale;
                }
                acc.fill(0.0);
                let mut st = OnlineSoftmax::default();
                // Only the visible keys are read: O(window) per row under a sliding window.
                let visible = dims.visible_range_for(i, spec);
                let mut j0 = visible.start;
                while j0 < visible.end {
                    let rows = BC.min(visible.end - j0);
                    for (jj, s) in scores[..rows].iter_mut().enumerate() {
                        let kr = k.row(g, j0 + jj);
                        *s = qrow.iter().zip(kr).map(|(a, b)| a * b.as_f64()).sum();
                    }
                    let alpha = st.update(&mut scores[..rows]);
                    acc.iter_mut().for_each(|a| *a *= alpha);
                    for (jj, &p) in scores[..rows].iter().enumerate() {
                        for (a, x) in acc.iter_mut().zip(v.row(g, j0 + jj)) {
                            *a += p * x.as_f64();
                        }
                    }
                    j0 += rows;
                }
                let inv = st.inv_l();
                // SAFETY: row (h, i) belongs to this work item only; the slice dies at loop end.
                let row = unsafe { out.row(h, i) };
                for (o, a) in row.iter_mut().zip(acc.iter()) {
                    *o = T::from_f64(a * inv);
                }
            }
        },
    );
}
