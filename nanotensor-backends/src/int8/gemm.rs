//! The int8 GEMM driver: Goto/BLIS loops around the int8 microkernel.
//!
//! ```text
//! C[m×n] = Σ_kc-blocks  tile( A panels (MR × kc),  B panels (kc × NR) )  · rs[i] · cs[j]
//! ```
//!
//! Both operands arrive fully packed (A per call, B per call or once at `prepare`), each panel
//! holding the whole `k` range, so the classic loops only choose *which slice* to feed:
//!
//! ```text
//! tasks: row blocks of MC rows × column ranges        (LOOP 5/3 of Goto, spread over threads)
//!   LOOP 4: k in kc blocks                              (i32 accumulation spans one block)
//!     LOOP 2: B micro-panel jr (kc × NR, stays in L1)
//!       LOOP 1: A micro-panel ir (MR × kc, from the L2-resident MC × kc block)
//!         microkernel: MR × NR tile, accumulate = (kc block > 0)
//! ```
//!
//! Between `kc` blocks the partial sums are added in f32 (each block's i32 result is exact), so a
//! block must not span more than [`super::kernel::K_MAX`] values of `k`; the caller picks `kc`.
//!
//! # Why not the blocked backend's generic driver
//! `blocked::gemm` is generic over a `GemmKernel` with `A`/`B`/`C` element types and a `KGROUP`,
//! so an `i8 × u8 → i32` kernel type-checks in it. It was not used, for structural reasons,
//! each of which would cost the int8 path speed or exactness:
//! * its microkernel contract writes the tile in the accumulator type `C` and accumulates across
//!   `kc` blocks in `C`: for int8 that is an `m × n` i32 matrix plus a second pass to dequantize
//!   it (`(acc − corr)·sa·sb`), and an i32 sum over all of `k` (the split at `K_MAX` would have
//!   to wrap the whole driver). Here the dequantization is fused into the microkernel epilogue
//!   and each `kc` block's exact i32 sum is added in f32;
//! * the VNNI offset correction `128·Σ_k a[i, k]` has no slot in that contract; here it is
//!   computed while A is packed and applied per tile;
//! * its packing converts element by element through a closure; here both operands are
//!   quantized and packed by vectorised passes (fused for B);
//! * its tiles are always `MR` rows: a decode row (`m = 1`) would pay `MR×` the multiplies. Here
//!   the kernels are specialised on the row count (`R = 1..=MR`);
//! * per-block activation scales rescale *inside* the `k` loop (every 16–32 values of `k`, into
//!   an f32 accumulator): the generic microkernel has no per-block scale input.
//!
//! The loop nest, the names (LOOP 4 … LOOP 1, `MR`, `NR`, `kc`, `mc`) and the one-door kernel
//! dispatch are the same; only the panel formats and the epilogue differ.
//!
//! Decode (`m ≤ MR`) is the same nest with one A panel and `kc` = all of `k`: every B panel is
//! streamed from memory exactly once — the GEMV path for prepared weights.

use super::kernel::{Kernel, TileOut};
use super::pack::{PackedA, PackedB};
use crate::threads::Pool;

/// `kc` for GEMM: a B micro-panel of `KC × 32` bytes (16 KiB) stays in the 32 KiB L1d.
pub const KC: usize = 512;
/// Rows of A per task block: `MC × KC` = 64 KiB of A stays in L2 across the B micro-panels.
pub const MC: usize = 128;

/// `(kc, mc)` in force: [`KC`] and [`MC`], or the experiment overrides `NT_INT8_KC` /
/// `NT_INT8_MC` from the environment (read once per process; `kc` is rounded down to a
/// multiple of 4, both are clamped to sane ranges).
pub fn blocking() -> (usize, usize) {
    static BLOCKING: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    *BLOCKING.get_or_init(|| {
        let var = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(default)
        };
        let kc = (var("NT_INT8_KC", KC) / 4 * 4).clamp(4, super::kernel::K_MAX);
        (kc, var("NT_INT8_MC", MC).clamp(1, 1 << 16))
    })
}

/// Products smaller than this many multiply-adds run on the calling thread: waking workers
/// costs more than it saves (a 1×576·576×1536 decode step is 0.9 M and takes ~10 µs).
pub const PARALLEL_MIN_MACS: usize = 1 << 22;

/// Per-column scales: `cs[j]` for column `j` (`stride` 1, padded to whole panels), or one
/// repeated value (`stride` 0, `NR` copies).
#[derive(Debug, Clone, Copy)]
pub struct ColScales<'a> {
    /// The values.
    pub values: &'a [f32],
    /// 1 for per-column values, 0 for a single repeated scale.
    pub stride: usize,
}

/// The output matrix, shared by tasks that write disjoint tiles of it.
struct OutPtr(*mut f32);
// SAFETY: tasks only write disjoint tiles through it (see `gemm`), and the owning slice outlives
// the parallel section.
unsafe impl Sync for OutPtr {}
// SAFETY: as above.
unsafe impl Send for OutPtr {}

impl OutPtr {
    /// Element `off` of the matrix (a method, so closures capture the `Sync` wrapper).
    ///
    /// # Safety
    /// `off` must lie inside the matrix.
    unsafe fn at(&self, off: usize) -> *mut f32 {
        // SAFETY: forwarded to the caller.
        unsafe { self.0.add(off) }
    }
}

/// `C = (A·B) ⊙ (rs ⊗ cs)` into `c` (`m × n`, row stride `n`), overwriting it.
///
/// * `a` — `m` rows packed with the `kc` that also blocks the loop (≤ `K_MAX`)
/// * `rs` — one scale per row of A (`m` values); unused (may be empty) when `a` carries
///   per-block scales ([`PackedA::set_block_scales`]), which then take its place:
///   `C = Σ_blocks (A_blk·B_blk) ⊙ (bs_blk ⊗ cs)`
/// * `b` — `k × n` packed panels
/// * `cs` — column scales
#[allow(clippy::too_many_arguments)] // the BLAS-style operand list reads best flat
pub fn gemm(
    pool: &Pool,
    kernel: Kernel,
    a: &PackedA,
    rs: &[f32],
    b: &PackedB,
    cs: ColScales<'_>,
    m: usize,
    c: &mut [f32],
) {
    let (mr, nr, n, k, kc) = (kernel.mr(), kernel.nr(), b.n, b.k, a.kc);
    assert!(a.mr == mr && b.nr == nr && a.kp == b.kp && c.len() >= m * n);
    assert!(kc.is_multiple_of(4) && kc <= super::kernel::K_MAX);
    if let Some(len) = a.block_len {
        assert!(kc >= k || kc.is_multiple_of(len));
    } else {
        assert!(rs.len() >= m);
    }
    assert!(cs.values.len() >= (b.panels() - 1) * nr * cs.stride + nr);
    let m_panels = m.div_ceil(mr);
    let n_panels = b.panels();
    let mc_panels = (blocking().1 / mr).max(1);
    let row_blocks = m_panels.div_ceil(mc_panels);
    let threads = if m * n * k < PARALLEL_MIN_MACS {
        1
    } else {
        pool.threads()
    };
    let col_splits = if threads == 1 {
        1
    } else {
        (4 * threads).div_ceil(row_blocks).clamp(1, n_panels)
    };
    let cols_per = n_panels.div_ceil(col_splits);
    let out = OutPtr(c.as_mut_ptr());
    let task = |t: usize| {
        let (rb, cb) = (t / col_splits, t % col_splits);
        let ips = rb * mc_panels..((rb + 1) * mc_panels).min(m_panels);
        let jps = cb * cols_per..((cb + 1) * cols_per).min(n_panels);
        // LOOP 4: kc blocks.
        for (blk, k0) in (0..k).step_by(kc).enumerate() {
            let kc4 = kc.min(k - k0).div_ceil(4);
            // LOOP 2: B micro-panels.
            for jp in jps.clone() {
                let bp = b.block(jp, k0, kc4);
                let cols = nr.min(n - jp * nr);
                let cs_p = &cs.values[jp * nr * cs.stride..];
                // LOOP 1: A micro-panels.
                for ip in ips.clone() {
                    let rows = mr.min(m - ip * mr);
                    let tile = TileOut {
                        // SAFETY: (ip·mr, jp·nr) is inside the m × n matrix of `c`.
                        c: unsafe { out.at(ip * mr * n + jp * nr) },
                        ldc: n,
                        cols,
                        rs: rs.get(ip * mr..).unwrap_or(&[]),
                        cs: cs_p,
                        accumulate: blk > 0,
                    };
                    let ab = a.block(ip, k0, kc4);
                    match a.block_len {
                        // SAFETY: the tile's rows × cols elements lie inside `c` (rows ≤
                        // m − ip·mr, cols ≤ n − jp·nr), and tile (ip, jp) belongs to exactly
                        // one task, so no other thread touches it.
                        None => unsafe { kernel.tile(rows, kc4, ab, a.corr(ip, blk), bp, &tile) },
                        // SAFETY: as above; `k0` is a multiple of the block length (asserted
                        // before the loop), so the block scales start at block `k0 / len`.
                        Some(len) => unsafe {
                            let (bs, fc) = (a.block_scales(ip, k0), a.fcorr(ip, blk));
                            kernel.tile_blocks(rows, kc4, len / 4, ab, bs, fc, bp, &tile)
                        },
                    }
                }
            }
        }
    };
    let tasks = row_blocks * col_splits;
    if threads == 1 {
        (0..tasks).for_each(task);
    } else {
        pool.for_each(tasks, task);
    }
}
