//! The Goto/BLIS loop nest: `C ← A·B` for any [`GemmKernel`].
//!
//! ```text
//! LOOP 5  for jc in 0..n step nc          B column block, packed B~ (kc × nc) lives in L3
//! LOOP 4    for pc in 0..k step kc        pack B~ = B[pc.., jc..] into NR-wide micro-panels
//! LOOP 3      for ic in 0..m step mc      pack A~ = A[ic.., pc..] into MR-tall micro-panels (L2)
//!                                          — the m range is split across the worker threads
//! LOOP 2        for jr in 0..nc step NR   one B micro-panel (kc × NR) stays in L1
//! LOOP 1          for ir in 0..mc step MR
//!                   microkernel: C[ic+ir.., jc+jr..] (+)= A~ micro-panel · B~ micro-panel
//! ```
//!
//! The first depth block (`pc = 0`) overwrites C, later ones accumulate, so C needs no zeroing.
//! Edge tiles (fewer than `MR` rows or `NR` columns left) run the same microkernel into a
//! scratch tile whose valid part is then copied out; packed panels are zero-padded, so depth
//! needs no edge case at all.
//!
//! B may come pre-packed ([`PackedB`], built once by `prepare` for a weight), in which case
//! LOOP 4 skips its packing step: a linear layer never repacks its weight.

use super::archparam::balanced_block;
use super::kernel::GemmKernel;
use super::pack::{packed_len, with_workspace, AlignedBuf, MatRef, Slot};
use crate::threads::Pool;

/// Multiply-adds (`m·n·k`) below which a product runs on one thread (a 128³ product takes
/// ~15 µs on one core, comparable to waking a sleeping worker).
pub const PAR_MIN_MACS: usize = 1 << 21;

/// Rows per thread from which each thread packs its own copy of B~ (see [`gemm`]).
const OWN_B_ROWS: usize = 192;

/// The depth and column block sizes of one product; they depend only on `k`, `n` and the
/// kernel, so B packed ahead of time agrees with the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Depth per block (LOOP 4 step), a multiple of `KGROUP`.
    pub kc: usize,
    /// Columns per block (LOOP 5 step), a multiple of `NR`.
    pub nc: usize,
}

impl Blocking {
    /// Balanced blocks for a `k`-deep, `n`-wide B and kernel `K`.
    pub fn new<K: GemmKernel>(k: usize, n: usize) -> Self {
        Blocking {
            kc: balanced_block(k, K::KC, K::KGROUP),
            nc: balanced_block(n, K::NC, K::NR),
        }
    }
}

/// B (`k × n`) packed once into the micro-panel layout of one kernel, block by block in the
/// order the driver consumes them: column block `jb` (LOOP 5), then depth block `pb` (LOOP 4).
#[derive(Debug, Clone)]
pub struct PackedB<P> {
    buf: AlignedBuf<P>,
    k: usize,
    n: usize,
    nr: usize,
    blocking: Blocking,
    /// Start of block `(jb, pb)` at `offsets[jb · k_blocks + pb]`.
    offsets: Vec<usize>,
    k_blocks: usize,
}

impl<P: Copy + Default + Send + Sync> PackedB<P> {
    /// Packs `b` (`k × n`, any strides) for `kernel`, converting elements with `conv`. Column
    /// blocks are packed in parallel on `pool`.
    pub fn new<K: GemmKernel<B = P>, S: bytemuck::Pod + Sync>(
        kernel: K,
        pool: Option<&Pool>,
        b: MatRef<'_, S>,
        conv: impl Fn(S) -> P + Sync + Copy,
    ) -> Self {
        let (k, n) = (b.rows(), b.cols());
        let blocking = Blocking::new::<K>(k, n);
        let (kc, nc, g) = (blocking.kc, blocking.nc, K::KGROUP);
        let k_blocks = k.div_ceil(kc);
        let k_padded: usize = (0..k_blocks)
            .map(|pb| kc.min(k - pb * kc).div_ceil(g) * g)
            .sum();
        let mut offsets = Vec::with_capacity(n.div_ceil(nc) * k_blocks);
        let mut off = 0;
        for jc in (0..n).step_by(nc) {
            let ncl = nc.min(n - jc);
            for pc in (0..k).step_by(kc) {
                offsets.push(off);
                off += packed_len(ncl, kc.min(k - pc), K::NR, g);
            }
        }
        let mut buf = AlignedBuf::new(off);
        // Every column block but the last spans `nc · k_padded` elements.
        let per_block = nc * k_padded;
        let pack_block = |jb: usize, out: &mut [P]| {
            let jc = jb * nc;
            let ncl = nc.min(n - jc);
            let mut o = 0;
            for pc in (0..k).step_by(kc) {
                let kcl = kc.min(k - pc);
                let len = packed_len(ncl, kcl, K::NR, g);
                kernel.pack_b(b.block(pc, jc, kcl, ncl), conv, &mut out[o..o + len]);
                o += len;
            }
        };
        match pool {
            Some(p) => p.for_each_chunk_mut(buf.as_mut_slice(), per_block, pack_block),
            None => buf
                .as_mut_slice()
                .chunks_mut(per_block)
                .enumerate()
                .for_each(|(jb, out)| pack_block(jb, out)),
        }
        PackedB {
            buf,
            k,
            n,
            nr: K::NR,
            blocking,
            offsets,
            k_blocks,
        }
    }

    /// The packed block for column block `jb` and depth block `pb`.
    pub fn block(&self, jb: usize, pb: usize) -> &[P] {
        let i = jb * self.k_blocks + pb;
        let end = self.offsets.get(i + 1).copied().unwrap_or(self.buf.len());
        &self.buf.as_slice()[self.offsets[i]..end]
    }

    /// `(k, n)` of the packed B.
    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// The blocking it was packed with.
    pub fn blocking(&self) -> Blocking {
        self.blocking
    }

    /// The micro-panel width `NR` it was packed for.
    pub fn nr(&self) -> usize {
        self.nr
    }

    /// Bytes held (packed data, padding and block table).
    pub fn size_bytes(&self) -> usize {
        self.buf.size_bytes() + self.offsets.len() * std::mem::size_of::<usize>()
    }
}

/// The B operand of [`gemm`]: a strided matrix packed on the fly, or a pre-packed one.
#[derive(Debug, Clone, Copy)]
pub enum BSource<'a, S, P> {
    /// `k × n`, any strides; packed block by block inside LOOP 4.
    Strided(MatRef<'a, S>),
    /// Packed ahead of time by [`PackedB::new`] with the same kernel.
    Packed(&'a PackedB<P>),
}

/// `C ← A·B` through the loop nest of the module docs.
///
/// # Arguments
/// * `kernel` — the microkernel and packing to use
/// * `pool` — worker threads for LOOP 3 and B packing; `None` runs on the caller
/// * `a` — `m × k`, any strides; elements converted by `conv_a` while packing
/// * `b` — `k × n` ([`BSource`]); elements converted by `conv_b` while packing
/// * `c` — row-major `m × n` with row stride `ldc ≥ n`; `c.len() ≥ (m − 1)·ldc + n`.
///   Overwritten (not accumulated into).
///
/// `m`, `k`, `n` must be non-zero (callers validate shapes first).
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
) where
    K: GemmKernel,
    SA: bytemuck::Pod + Sync,
    SB: bytemuck::Pod + Sync,
{
    let (m, k) = (a.rows(), a.cols());
    let (kb, n, blocking) = match b {
        BSource::Strided(bm) => (
            bm.rows(),
            bm.cols(),
            Blocking::new::<K>(bm.rows(), bm.cols()),
        ),
        BSource::Packed(pb) => {
            assert_eq!(pb.nr(), K::NR, "gemm: B packed for another kernel");
            let (kb, n) = pb.dims();
            (kb, n, pb.blocking())
        }
    };
    assert_eq!(k, kb, "gemm: inner dimensions");
    assert!(
        m > 0 && k > 0 && n > 0 && ldc >= n,
        "gemm: empty or bad ldc"
    );
    let c = &mut c[..(m - 1) * ldc + n];
    let (kc, nc, g) = (blocking.kc, blocking.nc, K::KGROUP);
    let (mr, nr) = (K::MR, K::NR);

    // Products below PAR_MIN_MACS run on the caller: waking workers would cost more.
    let pool = pool.filter(|_| m * n * k >= PAR_MIN_MACS);
    // Rows of C per thread (a multiple of MR), and the mc that splits them evenly.
    let threads = pool.map_or(1, Pool::threads);
    let rows_per_task = m.div_ceil(threads).div_ceil(mr) * mr;
    let mc = balanced_block(rows_per_task, K::MC, mr);

    // With enough rows per thread (or B already packed), each thread runs the whole loop nest
    // on its own rows of C, packing its own B~ when B is strided: one fork-join per product
    // instead of two per depth block, which matters when the cores are shared. Duplicating the
    // B packing costs O(k·n) per thread against O(rows·k·n) of FMAs, so it only pays for tall
    // row blocks; short ones share one packed B~ (below).
    if threads > 1 && m > rows_per_task {
        if let (Some(p), true) = (
            pool,
            matches!(b, BSource::Packed(_)) || rows_per_task >= OWN_B_ROWS,
        ) {
            p.for_each_chunk_mut(c, rows_per_task * ldc, |t, c_rows| {
                let row0 = t * rows_per_task;
                let rows = rows_per_task.min(m - row0);
                gemm(
                    kernel,
                    None,
                    a.block(row0, 0, rows, k),
                    conv_a,
                    b,
                    conv_b,
                    c_rows,
                    ldc,
                );
            });
            return;
        }
    }

    let b_len = match b {
        BSource::Strided(_) => packed_len(nc.min(n), kc.min(k), nr, g),
        BSource::Packed(_) => 0,
    };
    with_workspace::<K::B, _>(Slot::B, b_len, |b_buf| {
        for (jb, jc) in (0..n).step_by(nc).enumerate() {
            // LOOP 5: split n into nc-wide column blocks.
            let ncl = nc.min(n - jc);
            for (pb, pc) in (0..k).step_by(kc).enumerate() {
                // LOOP 4: split k into kc-deep blocks; pack B~ (or take the pre-packed block).
                let kcl = kc.min(k - pc);
                let kcp = kcl.div_ceil(g) * g;
                let b_tilde: &[K::B] = match b {
                    BSource::Packed(packed) => packed.block(jb, pb),
                    BSource::Strided(bm) => {
                        let len = packed_len(ncl, kcl, nr, g);
                        let out = &mut b_buf[..len];
                        pack_b_parallel(kernel, pool, bm.block(pc, jc, kcl, ncl), conv_b, out);
                        &b_buf[..len]
                    }
                };
                let accumulate = pc > 0;
                let run_rows = |task: usize, c_rows: &mut [K::C]| {
                    let row0 = task * rows_per_task;
                    let rows = rows_per_task.min(m - row0);
                    let a_len = packed_len(mc.min(rows), kcl, mr, g);
                    with_workspace::<K::A, _>(Slot::A, a_len, |a_tilde| {
                        let mut edge = vec![K::C::default(); mr * nr];
                        for ic in (0..rows).step_by(mc) {
                            // LOOP 3: split this thread's rows into mc-tall blocks; pack A~.
                            let mcl = mc.min(rows - ic);
                            let a_len = packed_len(mcl, kcl, mr, g);
                            let a_block = a.block(row0 + ic, pc, mcl, kcl);
                            kernel.pack_a(a_block, conv_a, &mut a_tilde[..a_len]);
                            macro_kernel(
                                kernel,
                                kcp,
                                &a_tilde[..a_len],
                                mcl,
                                b_tilde,
                                ncl,
                                &mut c_rows[ic * ldc + jc..],
                                ldc,
                                accumulate,
                                &mut edge,
                            );
                        }
                    });
                };
                match pool {
                    Some(p) => p.for_each_chunk_mut(c, rows_per_task * ldc, run_rows),
                    None => run_rows(0, c),
                }
            }
        }
    });
}

/// LOOP 2 and LOOP 1 over one packed A block (`mcl` rows) and one packed B block (`ncl`
/// columns): every `MR × NR` tile of `c` (whose first element is the block's top-left).
#[allow(clippy::too_many_arguments)]
fn macro_kernel<K: GemmKernel>(
    kernel: K,
    kcp: usize,
    a_tilde: &[K::A],
    mcl: usize,
    b_tilde: &[K::B],
    ncl: usize,
    c: &mut [K::C],
    ldc: usize,
    accumulate: bool,
    edge: &mut [K::C],
) {
    let (mr, nr) = (K::MR, K::NR);
    for (jr, b_panel) in b_tilde.chunks_exact(kcp * nr).enumerate() {
        // LOOP 2: one NR-wide B micro-panel, kept in L1 across LOOP 1.
        let j = jr * nr;
        let nr_eff = nr.min(ncl - j);
        for (ir, a_panel) in a_tilde.chunks_exact(kcp * mr).enumerate() {
            // LOOP 1: one MR-tall A micro-panel → one MR × NR tile of C.
            let i = ir * mr;
            let mr_eff = mr.min(mcl - i);
            let off = i * ldc + j;
            if mr_eff == mr && nr_eff == nr {
                kernel.microkernel(kcp, a_panel, b_panel, &mut c[off..], ldc, accumulate);
            } else {
                kernel.microkernel(kcp, a_panel, b_panel, edge, nr, false);
                for (ii, tile_row) in edge.chunks_exact(nr).take(mr_eff).enumerate() {
                    let row = &mut c[off + ii * ldc..off + ii * ldc + nr_eff];
                    for (o, &t) in row.iter_mut().zip(tile_row) {
                        *o = if accumulate { *o + t } else { t };
                    }
                }
            }
        }
    }
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
