//! The operands of the loop nest in [`super::gemm`]: the blocking, B packed once
//! ([`PackedB`]), operands packed whole ([`Panels`]), the A and B sources, and the raw view of C
//! the tasks write through.

use super::archparam::balanced_block;
use super::kernel::GemmKernel;
use super::pack::{packed_len, AlignedBuf, MatRef};
use crate::threads::Pool;

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
pub struct PackedB<P: bytemuck::Pod> {
    buf: AlignedBuf<P>,
    k: usize,
    n: usize,
    nr: usize,
    blocking: Blocking,
    /// Start of block `(jb, pb)` at `offsets[jb · k_blocks + pb]`.
    offsets: Vec<usize>,
    k_blocks: usize,
}

impl<P: bytemuck::Pod + Send + Sync> PackedB<P> {
    /// Packs `b` (`k × n`, any strides) for `kernel`, converting elements with `conv`. Column
    /// blocks are packed in parallel on `pool`.
    pub fn new<K: GemmKernel<B = P>, S: bytemuck::Pod + Sync>(
        kernel: K,
        pool: Option<&Pool>,
        b: MatRef<'_, S>,
        conv: impl Fn(S) -> P + Sync + Copy,
    ) -> Self {
        let (k, n) = (b.rows(), b.cols());
        let mut me = Self::empty::<K>(k, n);
        let (kc, nc) = (me.blocking.kc, me.blocking.nc);
        // Every column block but the last spans the same number of elements.
        let per_block = me.offsets.get(me.k_blocks).copied().unwrap_or(me.buf.len());
        let pack_block = |jb: usize, out: &mut [P]| {
            let jc = jb * nc;
            let ncl = nc.min(n - jc);
            Self::pack_column_block(kernel, kc, b.block(0, jc, k, ncl), conv, out);
        };
        match pool {
            Some(p) => p.for_each_chunk_mut(me.buf.as_mut_slice(), per_block, pack_block),
            None => me
                .buf
                .as_mut_slice()
                .chunks_mut(per_block)
                .enumerate()
                .for_each(|(jb, out)| pack_block(jb, out)),
        }
        me
    }

    /// Packs B = Wᵀ for a weight `W: [n, k]` whose rows come a column block of B at a time:
    /// `fill(rows, buf)` writes rows `rows` of `W` into `buf` (`rows.len() · k` values of `S`),
    /// which is then packed into that block's place. Only one column block of `W` exists
    /// unpacked at any moment; the result is [`PackedB::new`]'s on the whole `Wᵀ`.
    ///
    /// # Errors
    /// The first error of `fill`.
    pub fn from_row_blocks<K: GemmKernel<B = P>, S: bytemuck::Pod + Default, E>(
        kernel: K,
        k: usize,
        n: usize,
        conv: impl Fn(S) -> P + Copy,
        mut fill: impl FnMut(std::ops::Range<usize>, &mut [S]) -> Result<(), E>,
    ) -> Result<Self, E> {
        let mut me = Self::empty::<K>(k, n);
        let (kc, nc) = (me.blocking.kc, me.blocking.nc);
        let mut rows = vec![S::default(); nc.min(n) * k];
        for (jb, jc) in (0..n).step_by(nc).enumerate() {
            let ncl = nc.min(n - jc);
            let w = &mut rows[..ncl * k];
            fill(jc..jc + ncl, w)?;
            let start = me.offsets[jb * me.k_blocks];
            let end = me
                .offsets
                .get((jb + 1) * me.k_blocks)
                .copied()
                .unwrap_or(me.buf.len());
            let wt = MatRef::new(w, ncl, k, k, 1).t();
            Self::pack_column_block(kernel, kc, wt, conv, &mut me.buf.as_mut_slice()[start..end]);
        }
        Ok(me)
    }

    /// Storage and block table for a `k × n` B packed for kernel `K`, not yet written.
    fn empty<K: GemmKernel<B = P>>(k: usize, n: usize) -> Self {
        let blocking = Blocking::new::<K>(k, n);
        let (kc, nc, g) = (blocking.kc, blocking.nc, K::KGROUP);
        let k_blocks = k.div_ceil(kc);
        let mut offsets = Vec::with_capacity(n.div_ceil(nc) * k_blocks);
        let mut off = 0;
        for jc in (0..n).step_by(nc) {
            let ncl = nc.min(n - jc);
            for pc in (0..k).step_by(kc) {
                offsets.push(off);
                off += packed_len(ncl, kc.min(k - pc), K::NR, g);
            }
        }
        PackedB {
            buf: AlignedBuf::weight(off),
            k,
            n,
            nr: K::NR,
            blocking,
            offsets,
            k_blocks,
        }
    }

    /// Packs one column block `b` (all `k` rows, the block's columns) into `out`, its place in
    /// the storage: depth blocks of `kc`, one after the other.
    fn pack_column_block<K: GemmKernel<B = P>, S: bytemuck::Pod>(
        kernel: K,
        kc: usize,
        b: MatRef<'_, S>,
        conv: impl Fn(S) -> P + Copy,
        out: &mut [P],
    ) {
        let (k, ncl) = (b.rows(), b.cols());
        let mut o = 0;
        for pc in (0..k).step_by(kc) {
            let kcl = kc.min(k - pc);
            let len = packed_len(ncl, kcl, K::NR, K::KGROUP);
            kernel.pack_b(b.block(pc, 0, kcl, ncl), conv, &mut out[o..o + len]);
            o += len;
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

/// An operand packed whole ahead of the call, in the micro-panel layout of
/// [`GemmKernel`] with the whole depth `k` (padded to `KGROUP`) per panel: panel `p` starts at
/// `p·panel_stride`, and its depth block starting at `k0` (a multiple of `KGROUP`) of `kcp`
/// depths is the `kcp·width` elements from `p·panel_stride + k0·width`, where `width` is `MR`
/// for A and `NR` for B.
#[derive(Debug, Clone, Copy)]
pub struct Panels<'a, P> {
    pub(super) data: &'a [P],
    pub(super) panel_stride: usize,
    pub(super) len: usize,
    pub(super) depth: usize,
}

impl<'a, P> Panels<'a, P> {
    /// `len` rows (A) or columns (B) of `depth` values, panels `panel_stride` elements apart
    /// in `data`. The driver ([`gemm_ext`](super::gemm::gemm_ext)) panics unless
    /// `panel_stride ≥ width · kp` and `data` holds `⌈len / width⌉` panels (`width` = the
    /// kernel's `MR` or `NR`, `kp` = `depth` rounded up to `KGROUP`).
    pub fn new(data: &'a [P], len: usize, depth: usize, panel_stride: usize) -> Self {
        Panels {
            data,
            panel_stride,
            len,
            depth,
        }
    }

    /// The panels from panel `first` on, `len` rows or columns.
    pub(super) fn sub(self, first: usize, len: usize) -> Self {
        Panels {
            data: &self.data[(first * self.panel_stride).min(self.data.len())..],
            len,
            ..self
        }
    }

    /// The depth block `k0 .. k0 + kcp` of the panels (of `width` rows or columns) from panel
    /// `first` on.
    pub(super) fn run(self, width: usize, first: usize, k0: usize, kcp: usize) -> PanelRun<'a, P> {
        PanelRun {
            data: self.data,
            start: first * self.panel_stride + k0 * width,
            stride: self.panel_stride,
            len: kcp * width,
        }
    }
}

/// The A operand of [`gemm_ext`](super::gemm::gemm_ext): a strided matrix packed on the fly, or
/// panels packed whole.
#[derive(Debug, Clone, Copy)]
pub enum ASource<'a, S, P> {
    /// `m × k`, any strides; packed block by block inside LOOP 3.
    Strided(MatRef<'a, S>),
    /// `m` rows packed whole into `MR`-row panels.
    Panels(Panels<'a, P>),
}

impl<S: Copy, P> ASource<'_, S, P> {
    pub(super) fn dims(&self) -> (usize, usize) {
        match self {
            ASource::Strided(a) => (a.rows(), a.cols()),
            ASource::Panels(p) => (p.len, p.depth),
        }
    }

    /// Rows `row0 .. row0 + rows` (`row0` a multiple of `mr`).
    pub(super) fn rows(self, row0: usize, rows: usize, mr: usize) -> Self {
        match self {
            ASource::Strided(a) => ASource::Strided(a.block(row0, 0, rows, a.cols())),
            ASource::Panels(p) => ASource::Panels(p.sub(row0 / mr, rows)),
        }
    }
}

/// The B operand of [`gemm`](super::gemm::gemm): a strided matrix packed on the fly, packed
/// once ahead of time in the driver's block order, or panels packed whole.
#[derive(Debug, Clone, Copy)]
pub enum BSource<'a, S, P: bytemuck::Pod> {
    /// `k × n`, any strides; packed block by block inside LOOP 4.
    Strided(MatRef<'a, S>),
    /// Packed ahead of time by [`PackedB::new`] with the same kernel.
    Packed(&'a PackedB<P>),
    /// `n` columns packed whole into `NR`-column panels.
    Panels(Panels<'a, P>),
}

impl<S: Copy, P: bytemuck::Pod + Send + Sync> BSource<'_, S, P> {
    /// `(k, n)`.
    pub(super) fn dims(&self) -> (usize, usize) {
        match self {
            BSource::Strided(b) => (b.rows(), b.cols()),
            BSource::Packed(b) => b.dims(),
            BSource::Panels(p) => (p.depth, p.len),
        }
    }

    /// Columns `col0 .. col0 + cols` (`col0` a multiple of `nr`; not for [`BSource::Packed`],
    /// which the driver never splits by columns).
    pub(super) fn cols(self, col0: usize, cols: usize, nr: usize) -> Self {
        match self {
            BSource::Strided(b) => BSource::Strided(b.block(0, col0, b.rows(), cols)),
            BSource::Panels(p) => BSource::Panels(p.sub(col0 / nr, cols)),
            BSource::Packed(b) => {
                assert!(
                    col0 == 0 && cols == b.dims().1,
                    "gemm: packed B split by columns"
                );
                self
            }
        }
    }
}

/// Consecutive micro-panels (of one packed block, or depth blocks of whole-packed panels):
/// panel `i` is `data[start + i·stride ..][..len]`.
#[derive(Clone, Copy)]
pub(super) struct PanelRun<'a, P> {
    data: &'a [P],
    start: usize,
    stride: usize,
    len: usize,
}

impl<'a, P> PanelRun<'a, P> {
    /// A contiguous packed block of panels of `len` elements each.
    pub(super) fn packed(data: &'a [P], len: usize) -> Self {
        PanelRun {
            data,
            start: 0,
            stride: len,
            len,
        }
    }

    #[inline]
    pub(super) fn get(&self, i: usize) -> &'a [P] {
        let s = self.start + i * self.stride;
        &self.data[s..s + self.len]
    }
}

/// C as the tasks see it: element `(i, j)` at `ptr + i·ldc + j`.
pub(super) struct COut<C> {
    pub(super) ptr: *mut C,
    pub(super) ldc: usize,
}

impl<C> Clone for COut<C> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C> Copy for COut<C> {}
// SAFETY: a `COut` is only dereferenced by tasks that own disjoint pieces of C (see `super::gemm`),
// and the slice it was made from outlives every task (`gemm_ext` holds its borrow).
unsafe impl<C: Send> Send for COut<C> {}
// SAFETY: as above.
unsafe impl<C: Send> Sync for COut<C> {}

impl<C> COut<C> {
    /// The view from element `(i, j)` on (pointer arithmetic only; nothing is dereferenced).
    pub(super) fn at(self, i: usize, j: usize) -> Self {
        COut {
            ptr: self.ptr.wrapping_add(i * self.ldc + j),
            ldc: self.ldc,
        }
    }
}
