//! The row-parallel driver: `y[r, o] = Σ_j W[o, j]·x[r, j]` for every activation row `r` and
//! weight row `o`, weight rows split among the pool's workers.
//!
//! Each task takes a range of weight rows and multiplies every row of it by every activation
//! row: a weight row is read from memory once per call, while the activations (8-bit codes,
//! `rows · k` bytes) stay in cache. A task writes the outputs of its weight rows, which are a
//! contiguous range of a transposed output `yᵀ: [n, rows]`; with one activation row (decode)
//! that is `y` itself, otherwise `yᵀ` is transposed into `y` afterwards (`rows·n` values, next
//! to `rows·n·k` multiply-adds).

use super::act::QActs;
use super::kernel::Kernel;
use super::layout::F16;
use crate::threads::Pool;
use nanotensor_core::QuantFormat;

/// Below this many weight bytes a product runs on the calling thread: handing a job to the
/// pool costs about a microsecond, the time to stream some tens of kilobytes.
pub const PAR_MIN_BYTES: usize = 1 << 15;

/// Weight rows per task, at least: enough work per task to amortise claiming it.
const MIN_ROWS_PER_TASK: usize = 8;

/// Weight rows one kernel call multiplies together ([`Kernel::dots`]); tasks start at
/// multiples of it.
const GROUP: usize = 4;

/// `y = x·Wᵀ` with `W: [n, k]` stored as `n` rows of `row_bytes` bytes of `fmt` blocks, `x`
/// quantized in `a` (`rows` rows), into `y: [rows, n]`; `yt` is scratch for `rows > 1`.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    pool: &Pool,
    kernel: Kernel,
    fmt: QuantFormat,
    w: &[u8],
    row_bytes: usize,
    n: usize,
    a: &QActs,
    rows: usize,
    y: &mut [f32],
    yt: &mut Vec<f32>,
) {
    let h = F16::table();
    let threads = if w.len() >= PAR_MIN_BYTES {
        pool.threads()
    } else {
        1
    };
    // A few tasks per thread, so that a preempted worker delays only its own small share.
    let per_task = n
        .div_ceil(4 * threads)
        .max(MIN_ROWS_PER_TASK)
        .next_multiple_of(GROUP);
    let task = |first: usize, out: &mut [f32]| {
        // `out` holds the outputs of weight rows first.., `rows` each (row-major in `o`).
        let wr = |o: usize| &w[o * row_bytes..(o + 1) * row_bytes];
        let (quads, rest) = out.as_chunks_mut::<GROUP>();
        // Four weight rows at a time: `quads` covers whole groups when `rows == 1`; with more
        // activation rows each group is `GROUP / rows` weight rows only if that divides, so
        // those calls go row by row.
        if rows == 1 {
            for (i, o_out) in quads.iter_mut().enumerate() {
                let o = first + GROUP * i;
                *o_out = kernel.dots(fmt, [wr(o), wr(o + 1), wr(o + 2), wr(o + 3)], a.row(0), h);
            }
            for (i, y) in rest.iter_mut().enumerate() {
                *y = kernel.dot(fmt, wr(first + GROUP * quads.len() + i), a.row(0), h);
            }
        } else {
            for (i, o_out) in out.chunks_mut(rows).enumerate() {
                let o = first + i;
                for (r, y) in o_out.iter_mut().enumerate() {
                    *y = kernel.dot(fmt, wr(o), a.row(r), h);
                }
            }
        }
    };
    let run = |out: &mut [f32]| {
        if threads == 1 {
            task(0, out);
        } else {
            pool.for_each_chunk_mut(out, per_task * rows, |t, chunk| task(t * per_task, chunk));
        }
    };
    if rows == 1 {
        run(y);
    } else {
        yt.clear();
        yt.resize(n * rows, 0.0);
        run(yt);
        for (o, col) in yt.chunks_exact(rows).enumerate() {
            for (r, &v) in col.iter().enumerate() {
                y[r * n + o] = v;
            }
        }
    }
}
