//! The skinny paths: `Y = X·B` for `m = 1…8` rows of X against a pre-packed B (a weight), and
//! for `m = 1…16` against a B that was not prepared ([`strided_f32`]), which is streamed where
//! it lies.
//!
//! At decode time a linear layer multiplies one token (or a handful) by a large weight; each
//! weight element is used `m` times only, so the product is bound by how fast the weight
//! streams from memory, not by FMAs. This path therefore reads every packed B micro-panel
//! exactly once, in storage order (column block → depth block → micro-panel, the order
//! [`PackedB`] lays them out), with the `m × NR` accumulators of each panel in L1/L2.
//! No packing of X is needed: each of its rows is read directly.
//!
//! Threads split the micro-panels (the `n` dimension): the panels are cut into a few contiguous
//! ranges per thread (tasks), each participant claims tasks dynamically and streams its ranges of
//! every packed block into its own accumulators, so the cores' bandwidth adds up. At decode every
//! product of a small model is split this way (SmolLM2-135M: 576 × 192 … 576 × 49152), which
//! only pays because the [`Pool`] hands a job to a spinning worker in well under a microsecond.

use super::gemm::PackedB;
use super::kernel::SkinnyPanel;
use super::pack::{with_workspace, Slot};
use crate::multiversion::{all_finite, multiversion, Level};
use crate::threads::Pool;

/// Largest `m` the skinny path takes; above it the GEMM driver is faster.
pub const MAX_ROWS: usize = 8;

/// Weights of at least this many elements (256 KiB of f32, 512 KiB of f64) are streamed by all threads;
/// smaller ones by the calling thread alone. One core streams 256 KiB from DRAM in ~6 µs
/// (~40 GB/s), several times the cost of handing a job to a spinning worker. The threshold
/// relies on that cheap hand-off: with a pool whose every job wakes workers through the OS it
/// would have to be far higher, and a small model's layer weights would run on one core
/// (`examples/decode_profile.rs` profiles a decode step).
pub const PAR_MIN_WEIGHT: usize = 1 << 16;

/// Tasks per thread a parallel product is cut into: claimed dynamically, so a participant that
/// starts late (or is preempted) delays the product by about one task, an eighth of it on two
/// threads, rather than by half.
pub const TASKS_PER_THREAD: usize = 4;

/// `y ← x·B` for `x` row-major `m × k` (`1 ≤ m ≤ MAX_ROWS`), `B` packed `k × n` for `kernel`,
/// `y` row-major `m × n`.
pub fn skinny<K: SkinnyPanel>(
    kernel: K,
    pool: Option<&Pool>,
    x: &[K::X],
    m: usize,
    w: &PackedB<K::W>,
    y: &mut [K::Acc],
) {
    let (k, n) = w.dims();
    let nr = K::NR;
    assert_eq!(w.nr(), nr, "skinny: B packed for another kernel");
    assert!(
        (1..=MAX_ROWS).contains(&m) && x.len() == m * k && y.len() == m * n,
        "skinny: shapes"
    );
    let panels = n.div_ceil(nr);
    let pool = pool.filter(|_| k * n >= PAR_MIN_WEIGHT);
    let threads = pool.map_or(1, Pool::threads);
    let tasks = if threads > 1 {
        threads * TASKS_PER_THREAD
    } else {
        1
    };
    let panels_per_task = panels.div_ceil(tasks);
    // Accumulators, panel-major: panel q holds rows i < m of NR columns at (q·m + i)·NR.
    with_workspace::<K::Acc, _>(Slot::B, panels * m * nr, |acc| {
        acc.fill(K::Acc::default());
        skinny_blocks(kernel, pool, x, m, w, acc, panels_per_task);
        // Scatter the panel-major accumulators into row-major y.
        for (q, tile) in acc.chunks_exact(m * nr).enumerate() {
            let j0 = q * nr;
            let cols = nr.min(n - j0);
            for i in 0..m {
                y[i * n + j0..i * n + j0 + cols].copy_from_slice(&tile[i * nr..i * nr + cols]);
            }
        }
    });
}

/// Streams every packed block of `w` once, each task accumulating its own micro-panels into
/// its chunk of `acc` (panel-major, `m × NR` per panel).
fn skinny_blocks<K: SkinnyPanel>(
    kernel: K,
    pool: Option<&Pool>,
    x: &[K::X],
    m: usize,
    w: &PackedB<K::W>,
    acc: &mut [K::Acc],
    panels_per_task: usize,
) {
    let (k, n) = w.dims();
    let nr = K::NR;
    let (kc, nc) = (w.blocking().kc, w.blocking().nc);
    let panels = n.div_ceil(nr);
    let threads = pool.map_or(1, Pool::threads);
    let run = |task: usize, acc: &mut [K::Acc]| {
        let (q0, q1) = (
            task * panels_per_task,
            ((task + 1) * panels_per_task).min(panels),
        );
        let panels_per_block = nc / nr;
        for jb in (q0 / panels_per_block)..q1.div_ceil(panels_per_block) {
            // The micro-panels of column block `jb` that belong to this task.
            let lo = q0.max(jb * panels_per_block);
            let hi = q1.min((jb + 1) * panels_per_block);
            for (pb, pc) in (0..k).step_by(kc).enumerate() {
                let kcl = kc.min(k - pc);
                // A panel holds the depth rounded up to the kernel's grouping (zero-padded).
                let len = kcl.next_multiple_of(K::KGROUP) * nr;
                let block = w.block(jb, pb);
                for q in lo..hi {
                    let local = q - jb * panels_per_block;
                    let panel = &block[local * len..(local + 1) * len];
                    let a = &mut acc[(q - q0) * m * nr..(q - q0 + 1) * m * nr];
                    kernel.skinny_panel(m, kcl, &x[pc..], k, panel, a);
                }
            }
        }
    };
    match pool {
        Some(p) if threads > 1 && panels > panels_per_task => {
            p.for_each_chunk_mut(acc, panels_per_task * m * nr, run)
        }
        _ => {
            debug_assert!(panels_per_task >= panels, "one task must cover every panel");
            run(0, acc)
        }
    }
}

/// Largest `m` for which a product with an unprepared B streams B in place
/// ([`strided_f32`]) instead of packing it: packing reads B, writes a copy and reads that
/// again, three passes over a matrix each of whose elements is then used only `m` times.
pub const STRIDED_MAX_ROWS: usize = 16;

/// Accumulator values of one [`strided_f32`] task (24 KiB of `f32`): its `m × cols` outputs
/// stay in L1 (48 KiB on the cores measured) while B's rows stream past once, eight at a time.
const STRIDED_ACC: usize = 6 * 1024;

/// The operands of an unprepared skinny product: `x` row-major `m × k`, `b` row-major `k × n`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a> {
    /// The rows of X.
    pub x: &'a [f32],
    /// Rows of X (`1 ≤ m ≤ STRIDED_MAX_ROWS`).
    pub m: usize,
    /// Columns of X, rows of B.
    pub k: usize,
    /// B as the caller has it.
    pub b: &'a [f32],
    /// Columns of B.
    pub n: usize,
}

multiversion! {
    /// `acc ← x·B[:, j0..j0 + cols]`, `acc` holding `m` rows of `cols`. Eight rows of B are
    /// read per step and each output is loaded and stored once per step, not once per row of
    /// B; the slices of those rows serve all `m` rows of X while in L1, so the loop is one
    /// pass over B in storage order.
    fn strided_columns(op: Strided<'_>, j0: usize, acc: &mut [f32]) {
        let Strided { x, m, k, b, n } = op;
        let cols = acc.len() / m;
        let row = |p: usize| &b[p * n + j0..p * n + j0 + cols];
        acc.fill(0.0);
        let k8 = k - k % 8;
        for p in (0..k8).step_by(8) {
            let r: [&[f32]; 8] = std::array::from_fn(|d| row(p + d));
            for (i, out) in acc.chunks_exact_mut(cols).enumerate() {
                let a = &x[i * k + p..i * k + p + 8];
                let rows = r[0].iter().zip(r[1]).zip(r[2]).zip(r[3]);
                let rows = rows.zip(r[4].iter().zip(r[5]).zip(r[6]).zip(r[7]));
                for (o, ((((&w0, &w1), &w2), &w3), (((&w4, &w5), &w6), &w7))) in
                    out.iter_mut().zip(rows)
                {
                    *o += (a[0] * w0 + a[1] * w1 + a[2] * w2 + a[3] * w3)
                        + (a[4] * w4 + a[5] * w5 + a[6] * w6 + a[7] * w7);
                }
            }
        }
        let k4 = k8 + (k - k8) / 4 * 4;
        for p in (k8..k4).step_by(4) {
            let (r0, r1, r2, r3) = (row(p), row(p + 1), row(p + 2), row(p + 3));
            for (i, out) in acc.chunks_exact_mut(cols).enumerate() {
                let a = &x[i * k + p..i * k + p + 4];
                let (a0, a1, a2, a3) = (a[0], a[1], a[2], a[3]);
                let rows = r0.iter().zip(r1).zip(r2).zip(r3);
                for (o, (((&w0, &w1), &w2), &w3)) in out.iter_mut().zip(rows) {
                    *o += a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3;
                }
            }
        }
        for p in k4..k {
            let r = row(p);
            for (i, out) in acc.chunks_exact_mut(cols).enumerate() {
                let a = x[i * k + p];
                for (o, &w) in out.iter_mut().zip(r) {
                    *o += a * w;
                }
            }
        }
    }
}

/// `y ← x·B` (`y` row-major `m × n`) with B as the caller has it, not prepared: one pass over
/// B, split by columns over the pool's threads. Returns whether `y` is all finite, which
/// proves the operands finite too (every element of `x` and `B` enters some output, and a NaN
/// or ∞ factor leaves that output non-finite).
pub fn strided_f32(level: Level, pool: Option<&Pool>, op: Strided<'_>, y: &mut [f32]) -> bool {
    let Strided { x, m, k, b, n } = op;
    assert!(
        (1..=STRIDED_MAX_ROWS).contains(&m)
            && x.len() == m * k
            && b.len() == k * n
            && y.len() == m * n,
        "strided: shapes"
    );
    let pool = pool.filter(|p| p.threads() > 1 && k * n >= PAR_MIN_WEIGHT);
    let threads = pool.map_or(1, Pool::threads);
    // Columns per task: as many as the accumulator budget allows, but at least one task per
    // thread; a multiple of 16 (one AVX-512 vector) so that only the last task has a tail.
    let cols = (STRIDED_ACC / m)
        .min(n.div_ceil(threads))
        .next_multiple_of(16)
        .max(16);
    let chunks = n.div_ceil(cols);
    // Accumulators, chunk-major: chunk q holds rows i < m of its columns at q·m·cols.
    with_workspace::<f32, _>(Slot::B, chunks * m * cols, |acc| {
        let task = |q: usize, acc: &mut [f32]| {
            let j0 = q * cols;
            let width = cols.min(n - j0);
            strided_columns(level, op, j0, &mut acc[..m * width]);
        };
        match pool.filter(|_| chunks > 1) {
            Some(p) => p.for_each_chunk_mut(acc, m * cols, task),
            None => {
                for (q, chunk) in acc.chunks_exact_mut(m * cols).enumerate() {
                    task(q, chunk);
                }
            }
        }
        let mut finite = true;
        for (q, chunk) in acc.chunks_exact(m * cols).enumerate() {
            let j0 = q * cols;
            let width = cols.min(n - j0);
            for (i, row) in chunk[..m * width].chunks_exact(width).enumerate() {
                finite &= all_finite(level, row);
                y[i * n + j0..i * n + j0 + width].copy_from_slice(row);
            }
        }
        finite
    })
}
