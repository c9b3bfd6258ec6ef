//! The one Goto/BLIS loop nest of the crate: `C ← A·B` for any [`GemmKernel`] — the f32/f64
//! FMA kernels of the blocked backend and the int8 kernels of `crate::int8` alike.
//!
//! ```text
//! tasks   C split into row ranges × column ranges, one task per thread-sized piece (below)
//! LOOP 5  for jc in 0..n step nc          B column block, packed B~ (kc × nc) lives in L3
//! LOOP 4    for pc in 0..k step kc        pack B~ = B[pc.., jc..] into NR-wide micro-panels
//! LOOP 3      for ic in 0..m step mc      pack A~ = A[ic.., pc..] into MR-tall micro-panels (L2)
//! LOOP 2        for jr in 0..nc step NR   one B micro-panel (kc × NR) stays in L1/L2
//! LOOP 1          for ir in 0..mc step MR
//!                   tile: C[ic+ir.., jc+jr..] (+)= A~ micro-panel · B~ micro-panel
//! ```
//!
//! The first depth block (`pc = 0`) overwrites C, later ones accumulate, so C needs no zeroing.
//! Packed panels are zero-padded in depth, so depth needs no edge case at all.
//!
//! # The tile hook
//! LOOP 1 calls [`GemmKernel::tile`] with the tile's coordinates ([`TileAt`]: first row and
//! column, depth block index and start, valid rows and columns, accumulate, last depth block);
//! it returns whether a kernel with [`GemmKernel::FLAGS_NON_FINITE`] saw NaN/±∞ in the
//! finished values (the product's result, below). A plain kernel
//! writes a full `MR × NR` tile; edge tiles (fewer than `MR` rows or `NR` columns left) then run
//! into a scratch tile whose valid part is copied out. A kernel with
//! [`GemmKernel::NATIVE_TILES`] writes edge tiles itself and applies its own epilogue: the int8
//! kernels subtract the VNNI offset correction of the tile's A micro-panel and depth block,
//! convert the exact i32 sums to f32 and scale them by the rows' and columns' scales (or by
//! per-block activation scales) before adding them into the f32 C — so the sum across depth
//! blocks is an f32 sum, and `kc` bounds each i32 accumulation.
//!
//! # Operand sources
//! * A: [`ASource::Strided`] (any strides, packed block by block in LOOP 3) or
//!   [`ASource::Panels`] (packed whole ahead of the call, see [`Panels`]).
//! * B: [`BSource::Strided`] (packed block by block in LOOP 4), [`BSource::Packed`] ([`PackedB`],
//!   packed once by `prepare` in the driver's block order: a linear layer never repacks its
//!   weight) or [`BSource::Panels`].
//!
//! A [`Panels`] operand holds each micro-panel with the whole depth, so the depth block at `k0`
//! of panel `p` is the contiguous slice at `p·panel_stride + k0·width`: LOOP 3/4 skip packing and
//! the macro-kernel walks the panels by stride. The int8 backend quantizes and packs both of its
//! operands this way in one vectorised pass (computing the offset corrections as it goes).
//!
//! # Tasks and threads
//! Products under [`GemmKernel::PAR_MIN_MACS`] run on the caller. Otherwise C's rows are split
//! into one range per thread (`⌈m / threads⌉` rounded up to `MR`). When B is pre-packed, every
//! task runs the whole loop nest on its own piece of C: one fork-join per product. A strided B
//! is instead packed once per depth block into one B~ that all threads share, each packing an
//! equal share of its micro-panels, with the row ranges forked inside LOOP 4 (two fork-joins
//! per depth block). Each thread packing all of B~ for itself would save the second
//! fork-join but multiply the packing work and its memory traffic by the thread count; a
//! shared B~ packs every micro-panel once.
//!
//! When both operands are [`Panels`] the nest packs nothing, so tasks cost nothing to split
//! finely: each task is one `mc`-row block (tasks run outermost, in order when single-threaded,
//! so a task's rows of C stay in L2 across the depth blocks; on the pool, idle workers claim the
//! next task, which balances shared cores). Kernels with [`GemmKernel::NATIVE_TILES`] on a
//! [`Panels`] B also get column ranges of whole micro-panels, `⌈4·threads / row tasks⌉` of
//! them, so a one-row product (decode, the LM head) still runs on every thread. The f32 backend
//! never hands the driver a [`Panels`] B, so its tasks always keep whole rows; its small-`m`
//! products with a prepared weight take the skinny path (`blocked::gemv`) instead.

use super::archparam::balanced_block;
use super::kernel::{GemmKernel, TileAt};
pub use super::operands::{ASource, BSource, Blocking, PackedB, Panels};
use super::operands::{COut, PanelRun};
use super::pack::{packed_len, with_workspace, MatRef, Slot};
use crate::threads::Pool;
use std::sync::atomic::{AtomicBool, Ordering};

/// Multiply-adds (`m·n·k`) below which a product of the f32 kernels runs on one thread (a 128³
/// product takes ~15 µs on one core, comparable to waking a sleeping worker); the default of
/// [`GemmKernel::PAR_MIN_MACS`].
pub const PAR_MIN_MACS: usize = 1 << 21;

/// `C ← A·B` through the loop nest of the module docs, for strided A.
///
/// # Arguments
/// * `kernel` — the microkernel and packing to use
/// * `pool` — worker threads for the tasks and B packing; `None` runs on the caller
/// * `a` — `m × k`, any strides; elements converted by `conv_a` while packing
/// * `b` — `k × n` ([`BSource`]); elements converted by `conv_b` while packing
/// * `c` — row-major `m × n` with row stride `ldc ≥ n`; `c.len() ≥ (m − 1)·ldc + n`.
///   Overwritten (not accumulated into).
///
/// `m`, `k`, `n` must be non-zero (callers validate shapes first).
///
/// # Returns
/// Whether the product proved both *converted* operands finite: the kernel flags NaN/±∞ in
/// the finished C ([`GemmKernel::FLAGS_NON_FINITE`]) and flagged none. That suffices for a
/// float product because NaN and ±∞ are absorbing — `NaN·x`, `±∞·0` are NaN, `±∞·x` is ±∞ for
/// `x ≠ 0`, and a sum holding a NaN or ±∞ term is NaN or ±∞ — so a non-finite `A[i, p]` leaves
/// every `C[i, j]` non-finite, and a non-finite `B[p, j]` every `C[i, j]`. It says the same of
/// the caller's operands only when `conv_a`/`conv_b` keep non-finite values non-finite (the
/// identity does; a clamping conversion would not). `false` proves nothing: a kernel that does
/// not flag, an operand that is not finite, or finite operands whose sums overflow.
#[allow(clippy::too_many_arguments)]
pub fn gemm<K, SA, SB>(
    kernel: K,
    pool: Option<&Pool>,
    a: MatRef<'_, SA>,
    conv_a: impl Fn(SA) -> K::A + Sync + Copy,
    b: BSource<'_, SB, K::B>,
    conv_b: impl Fn(SB) -> K::B + Sync + Copy,
    c: &mut [K::C],
    ldc: usize,
) -> bool
where
    K: GemmKernel,
    SA: bytemuck::Pod + Sync,
    SB: bytemuck::Pod + Sync,
{
    gemm_ext(
        kernel,
        pool,
        ASource::Strided(a),
        conv_a,
        b,
        conv_b,
        None,
        c,
        ldc,
    )
}

/// `C ← A·B` through the loop nest of the module docs, for any operand sources.
///
/// # Arguments
/// As [`gemm`], plus:
/// * `a` — `m × k` ([`ASource`])
/// * `kc` — the depth block (LOOP 4 step), a multiple of `KGROUP`; `None` takes the balanced
///   [`Blocking`] of `k` (or the one a [`BSource::Packed`] was packed with). Operands whose side
///   data was computed per depth block (the int8 offset corrections) pass the `kc` they were
///   packed with.
///
/// # Returns
/// Whether the product proved both converted operands finite, as [`gemm`].
///
/// # Panics
/// On inconsistent operands (inner dimensions, a `PackedB` of another kernel, short panels):
/// callers validate user input before.
#[allow(clippy::too_many_arguments)]
pub fn gemm_ext<K, SA, SB>(
    kernel: K,
    pool: Option<&Pool>,
    a: ASource<'_, SA, K::A>,
    conv_a: impl Fn(SA) -> K::A + Sync + Copy,
    b: BSource<'_, SB, K::B>,
    conv_b: impl Fn(SB) -> K::B + Sync + Copy,
    kc: Option<usize>,
    c: &mut [K::C],
    ldc: usize,
) -> bool
where
    K: GemmKernel,
    SA: bytemuck::Pod + Sync,
    SB: bytemuck::Pod + Sync,
{
    let (m, k) = a.dims();
    let (kb, n) = b.dims();
    let blocking = match (b, kc) {
        (BSource::Packed(pb), _) => {
            assert_eq!(pb.nr(), K::NR, "gemm: B packed for another kernel");
            assert!(
                kc.is_none_or(|kc| kc == pb.blocking().kc),
                "gemm: kc of packed B"
            );
            pb.blocking()
        }
        (_, Some(kc)) => Blocking {
            kc,
            nc: balanced_block(n, K::NC, K::NR),
        },
        (_, None) => Blocking::new::<K>(k, n),
    };
    assert_eq!(k, kb, "gemm: inner dimensions");
    assert!(
        m > 0 && k > 0 && n > 0 && ldc >= n,
        "gemm: empty or bad ldc"
    );
    assert!(
        blocking.kc > 0 && blocking.kc.is_multiple_of(K::KGROUP),
        "gemm: kc"
    );
    assert!(
        K::NATIVE_TILES || !K::FLAGS_NON_FINITE,
        "gemm: a flagging kernel writes C natively"
    );
    let kp = k.div_ceil(K::KGROUP) * K::KGROUP;
    if let ASource::Panels(p) = a {
        assert!(p.panel_stride >= K::MR * kp, "gemm: A panel stride");
        assert!(
            p.data.len() >= m.div_ceil(K::MR) * p.panel_stride,
            "gemm: short A panels"
        );
    }
    if let BSource::Panels(p) = b {
        assert!(p.panel_stride >= K::NR * kp, "gemm: B panel stride");
        assert!(
            p.data.len() >= n.div_ceil(K::NR) * p.panel_stride,
            "gemm: short B panels"
        );
    }
    let c = &mut c[..(m - 1) * ldc + n];
    let out = COut {
        ptr: c.as_mut_ptr(),
        ldc,
    };
    let ops = Ops {
        kernel,
        conv_a,
        conv_b,
        blocking,
        non_finite: AtomicBool::new(false),
    };
    // SAFETY: `out` views the `m × n` matrix at stride `ldc` inside `c` (length checked above),
    // which stays mutably borrowed until `nest` returns.
    unsafe { nest(&ops, pool, a, b, out, 0, 0) };
    // Every task has ended (the pool's join orders their stores before this load).
    K::FLAGS_NON_FINITE && !ops.non_finite.load(Ordering::Relaxed)
}

/// What every task of one product shares.
struct Ops<K, FA, FB> {
    kernel: K,
    conv_a: FA,
    conv_b: FB,
    blocking: Blocking,
    /// Set by any task whose tiles flagged NaN/±∞ in the finished C.
    non_finite: AtomicBool,
}

/// The loop nest on the piece of C whose top-left element is `(row0, col0)` of the product
/// (both multiples of `MR`/`NR`): `a` holds its rows, `b` its columns, `c` points at it.
///
/// # Safety
/// `c` must be valid for reads and writes of the `a.rows × b.cols` piece at stride `c.ldc`, and
/// no other thread may touch it during the call.
unsafe fn nest<K, SA, SB, FA, FB>(
    ops: &Ops<K, FA, FB>,
    pool: Option<&Pool>,
    a: ASource<'_, SA, K::A>,
    b: BSource<'_, SB, K::B>,
    c: COut<K::C>,
    row0: usize,
    col0: usize,
) where
    K: GemmKernel,
    SA: bytemuck::Pod + Sync,
    SB: bytemuck::Pod + Sync,
    FA: Fn(SA) -> K::A + Sync + Copy,
    FB: Fn(SB) -> K::B + Sync + Copy,
{
    let kernel = ops.kernel;
    let (m, k) = a.dims();
    let n = b.dims().1;
    let (kc, nc, g) = (ops.blocking.kc, ops.blocking.nc, K::KGROUP);
    let (mr, nr) = (K::MR, K::NR);

    // Products below PAR_MIN_MACS run on the caller: waking workers would cost more.
    let pool = pool.filter(|_| m * n * k >= K::PAR_MIN_MACS);
    let threads = pool.map_or(1, Pool::threads);
    // Both operands packed whole: the nest packs nothing, so a task can be as small as one
    // mc-row block at no cost. Tasks then run outermost (on the pool, or in order on the
    // caller), which keeps each task's rows of C in L2 across the depth blocks and lets the
    // workers balance the load on shared cores.
    let whole = matches!(a, ASource::Panels(_)) && matches!(b, BSource::Panels(_));
    // Rows of C per task (a multiple of MR), and the mc that splits them evenly.
    let rows_per_task = if whole {
        kernel.mc().div_ceil(mr) * mr
    } else {
        m.div_ceil(threads).div_ceil(mr) * mr
    };
    let mc = balanced_block(rows_per_task, kernel.mc(), mr);
    let row_tasks = m.div_ceil(rows_per_task);
    // Column ranges (kernels that write their tiles natively, on whole-packed B): enough for
    // about four tasks per thread when the row blocks alone are fewer (decode, the LM head).
    let col_tasks = if K::NATIVE_TILES && matches!(b, BSource::Panels(_)) && threads > 1 {
        let panels = n.div_ceil(nr);
        let per = panels.div_ceil((4 * threads).div_ceil(row_tasks).clamp(1, panels));
        panels.div_ceil(per)
    } else {
        1
    };
    let cols_per_task = n.div_ceil(nr).div_ceil(col_tasks) * nr;

    // B already packed: each task runs the whole loop nest on its own piece of C, one
    // fork-join per product. A strided B is packed into one shared B~ per depth block (below).
    let prepacked = !matches!(b, BSource::Strided(_));
    let own_nest = whole || (pool.is_some() && prepacked);
    let tasks = row_tasks * col_tasks;
    if tasks > 1 && own_nest {
        let task = |t: usize| {
            let (r0, c0) = (
                (t / col_tasks) * rows_per_task,
                (t % col_tasks) * cols_per_task,
            );
            let (rows, cols) = (rows_per_task.min(m - r0), cols_per_task.min(n - c0));
            let (a_t, b_t) = (a.rows(r0, rows, mr), b.cols(c0, cols, nr));
            // SAFETY: task `t` owns rows r0..r0+rows × columns c0..c0+cols of this piece (the
            // ranges of distinct tasks are disjoint and inside it), which the caller gave us
            // exclusively.
            unsafe { nest(ops, None, a_t, b_t, c.at(r0, c0), row0 + r0, col0 + c0) };
        };
        match pool {
            Some(p) => p.for_each(tasks, task),
            None => (0..tasks).for_each(task),
        }
        return;
    }

    let b_len = match b {
        BSource::Strided(_) => packed_len(nc.min(n), kc.min(k), nr, g),
        _ => 0,
    };
    with_workspace::<K::B, _>(Slot::B, b_len, |b_buf| {
        for (jb, jc) in (0..n).step_by(nc).enumerate() {
            // LOOP 5: split n into nc-wide column blocks.
            let ncl = nc.min(n - jc);
            for (pb, pc) in (0..k).step_by(kc).enumerate() {
                // LOOP 4: split k into kc-deep blocks; pack B~ (or take the pre-packed block).
                let kcl = kc.min(k - pc);
                let kcp = kcl.div_ceil(g) * g;
                let b_run = match b {
                    BSource::Packed(packed) => PanelRun::packed(packed.block(jb, pb), kcp * nr),
                    BSource::Panels(panels) => panels.run(nr, jc / nr, pc, kcp),
                    BSource::Strided(bm) => {
                        let len = packed_len(ncl, kcl, nr, g);
                        let out = &mut b_buf[..len];
                        let conv = ops.conv_b;
                        pack_b_parallel(kernel, pool, bm.block(pc, jc, kcl, ncl), conv, out);
                        PanelRun::packed(&b_buf[..len], kcp * nr)
                    }
                };
                let step = Step {
                    kcp,
                    k_block: pb,
                    k0: pc,
                    accumulate: pc > 0,
                    last: pc + kcl == k,
                };
                let run_rows = |task: usize| {
                    let r0 = task * rows_per_task;
                    let rows = rows_per_task.min(m - r0);
                    let a_len = match a {
                        ASource::Strided(_) => packed_len(mc.min(rows), kcl, mr, g),
                        ASource::Panels(_) => 0,
                    };
                    with_workspace::<K::A, _>(Slot::A, a_len, |a_tilde| {
                        let mut edge =
                            vec![K::C::default(); if K::NATIVE_TILES { 0 } else { mr * nr }];
                        for ic in (0..rows).step_by(mc) {
                            // LOOP 3: split this task's rows into mc-tall blocks; pack A~.
                            let mcl = mc.min(rows - ic);
                            let a_run = match a {
                                ASource::Strided(am) => {
                                    let a_len = packed_len(mcl, kcl, mr, g);
                                    let a_block = am.block(r0 + ic, pc, mcl, kcl);
                                    kernel.pack_a(a_block, ops.conv_a, &mut a_tilde[..a_len]);
                                    PanelRun::packed(&a_tilde[..a_len], kcp * mr)
                                }
                                ASource::Panels(panels) => panels.run(mr, (r0 + ic) / mr, pc, kcp),
                            };
                            let tiles = Tiles {
                                a: a_run,
                                mcl,
                                b: b_run,
                                ncl,
                                row0: row0 + r0 + ic,
                                col0: col0 + jc,
                            };
                            // SAFETY: rows r0+ic .. r0+ic+mcl × columns jc .. jc+ncl lie inside
                            // this piece of C, whose row range r0.. belongs to this task alone.
                            let flagged = unsafe {
                                macro_kernel(kernel, &step, &tiles, c.at(r0 + ic, jc), &mut edge)
                            };
                            if flagged {
                                ops.non_finite.store(true, Ordering::Relaxed);
                            }
                        }
                    });
                };
                match pool {
                    Some(p) if row_tasks > 1 => p.for_each(row_tasks, run_rows),
                    _ => (0..row_tasks).for_each(run_rows),
                }
            }
        }
    });
}

/// The depth block LOOP 4 is on.
struct Step {
    kcp: usize,
    k_block: usize,
    k0: usize,
    accumulate: bool,
    /// The last depth block: the tiles write finished values of C.
    last: bool,
}

/// One packed A block (`mcl` rows) and one packed B block (`ncl` columns) of the macro-kernel,
/// and where its top-left tile lies in C.
struct Tiles<'a, A, B> {
    a: PanelRun<'a, A>,
    mcl: usize,
    b: PanelRun<'a, B>,
    ncl: usize,
    row0: usize,
    col0: usize,
}

/// LOOP 2 and LOOP 1 over one packed A block and one packed B block: every `MR × NR` tile of
/// `c` (which points at the block's top-left element). Returns whether a tile flagged NaN/±∞
/// (see [`GemmKernel::tile`]).
///
/// # Safety
/// `c` must be valid for reads and writes of the `mcl × ncl` block at stride `c.ldc`, touched
/// by no other thread during the call; for plain kernels (no `NATIVE_TILES`) the whole rows of
/// the block's full tiles up to column `ncl` must be too (the tile slices span them).
unsafe fn macro_kernel<K: GemmKernel>(
    kernel: K,
    step: &Step,
    t: &Tiles<'_, K::A, K::B>,
    c: COut<K::C>,
    edge: &mut [K::C],
) -> bool {
    let (mr, nr) = (K::MR, K::NR);
    let mut flagged = false;
    for jr in 0..t.ncl.div_ceil(nr) {
        // LOOP 2: one NR-wide B micro-panel, kept in L1 across LOOP 1.
        let b_panel = t.b.get(jr);
        let j = jr * nr;
        let nr_eff = nr.min(t.ncl - j);
        for ir in 0..t.mcl.div_ceil(mr) {
            // LOOP 1: one MR-tall A micro-panel → one MR × NR tile of C.
            let a_panel = t.a.get(ir);
            let i = ir * mr;
            let mr_eff = mr.min(t.mcl - i);
            let at = TileAt {
                row: t.row0 + i,
                col: t.col0 + j,
                k_block: step.k_block,
                k0: step.k0,
                rows: mr_eff,
                cols: nr_eff,
                accumulate: step.accumulate,
                last: step.last,
            };
            let tile = c.at(i, j);
            if K::NATIVE_TILES || (mr_eff == mr && nr_eff == nr) {
                // SAFETY: the tile's valid rows × columns lie inside the block the caller gave
                // us; a full tile's span lies inside it too (plain kernels).
                flagged |= unsafe { kernel.tile(step.kcp, a_panel, b_panel, &at, tile.ptr, c.ldc) };
            } else {
                let full = TileAt {
                    rows: mr,
                    cols: nr,
                    accumulate: false,
                    ..at
                };
                // SAFETY: `edge` is a private MR × NR tile at stride NR. (Its flag is not C's:
                // flagging kernels have native tiles, asserted in `gemm_ext`.)
                let _ = unsafe {
                    kernel.tile(step.kcp, a_panel, b_panel, &full, edge.as_mut_ptr(), nr)
                };
                for (ii, tile_row) in edge.chunks_exact(nr).take(mr_eff).enumerate() {
                    // SAFETY: row ii < mr_eff of the tile holds nr_eff elements of the block.
                    let row = unsafe { std::slice::from_raw_parts_mut(tile.at(ii, 0).ptr, nr_eff) };
                    for (o, &t) in row.iter_mut().zip(tile_row) {
                        *o = if step.accumulate { *o + t } else { t };
                    }
                }
            }
        }
    }
    flagged
}
/// Packs a `kcl × ncl` block of B, its micro-panels split evenly across the pool's workers.
fn pack_b_parallel<K: GemmKernel, S: bytemuck::Pod + Sync>(
    kernel: K,
    pool: Option<&Pool>,
    b: MatRef<'_, S>,
    conv: impl Fn(S) -> K::B + Sync + Copy,
    out: &mut [K::B],
) {
    let (kcl, ncl) = (b.rows(), b.cols());
    let threads = pool.map_or(1, Pool::threads);
    let panels = ncl.div_ceil(K::NR);
    let cols_per_task = panels.div_ceil(threads) * K::NR;
    let chunk = packed_len(cols_per_task, kcl, K::NR, K::KGROUP);
    let pack = |t: usize, o: &mut [K::B]| {
        kernel.pack_b(b.block(0, t * cols_per_task, kcl, cols_per_task), conv, o);
    };
    match pool {
        Some(p) if threads > 1 && panels > 1 => p.for_each_chunk_mut(out, chunk, pack),
        _ => pack(0, out),
    }
}
