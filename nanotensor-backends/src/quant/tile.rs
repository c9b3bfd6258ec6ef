//! The multi-row (prefill) path: each weight row is decoded once per call into a tile of plain
//! 8-bit codes and reused by every activation row, and each integer instruction sums 32-value
//! blocks of eight weight rows at once.
//!
//! # The common form
//! Every format's block of 32 values is rewritten, per weight row `o` and block `b`, as
//!
//! ```text
//! W[o, j] = dw[o, b, s] · (u[o, j] − off) + m[o, b]        (j in block b, segment s of it)
//! ```
//!
//! with unsigned codes `0 ≤ u ≤ 255`, a format-wide integer offset `off` and one segment per
//! block (two halves of 16 for Q6_K, whose sub-blocks have their own scales): Q4_0 `dw = d,
//! off = 8`; Q5_0 `off = 16`; Q8_0 `u = q + 128, off = 128`; Q6_K `dw = d·s, off = 32`;
//! Q4_1/Q5_1 `dw = d, m = m`; Q4_K/Q5_K `dw = d·sc, m = −dmin·mᵢ`. With the activations' 8-bit
//! blocks (`x = da·a`, [`super::act`]) the product is
//!
//! ```text
//! y[r, o] = Σ_{b,s} (dw·da)·(Σ_{j∈b,s} u·a − off·Σ_{j∈b,s} a) + m·(da·Σ_{j∈b} a)
//! ```
//!
//! an exact integer sum per block and segment (the offset subtracted in integers, as the
//! one-row kernels do), scaled in f32; the activation sums `Σ a` and `da·Σ a` are computed once
//! per activation block ([`TileActs`]), not per weight row.
//!
//! # The layout
//! One lane of an integer dot instruction sums 4 byte products. Lane `2·o + e` of a 64-byte
//! *step* `t` holds bytes `4t..4t + 4` of block `2p + e` of weight row `o` (`o < NR` = 8, block
//! pair `p`): after the eight steps of a block pair each of the 16 lanes holds one block's whole
//! integer sum, ready to be scaled by that block's own `dw·da`, so the float work is one
//! convert and one or two multiply-adds per 16 block products rather than per one. The
//! activation row's matching 8 bytes (`a` of blocks `2p`, `2p + 1` at `4t`) are broadcast to
//! every row's lanes. Blocks come in pairs, so a row of an odd number of blocks gets one zero
//! block; weight rows come in tiles of eight, the last one padded.
//!
//! The decode ([`WTile::decode`]) runs once per weight row and call and its cost is shared by
//! every activation row; the kernels (`kernel::tile_*`) then read only the tile and the
//! activations, both in cache.

use super::act::{QActs, QK};
use super::kernel::Kernel;
use super::layout::{self, F16};
use crate::threads::Pool;
use nanotensor_core::QuantFormat;

/// Weight rows per tile.
pub const NR: usize = 8;
/// 4-byte steps per 32-value block.
pub const STEPS: usize = QK / 4;
/// Bytes of one step of a weight tile: 4 bytes of 2 blocks of `NR` rows.
pub const STEP_BYTES: usize = 4 * 2 * NR;

/// Activation rows in the tile layout (see the [module docs](self)).
#[derive(Debug, Default, Clone)]
pub struct TileActs {
    /// Block pairs per row.
    pub pairs: usize,
    /// Codes, `[rows, pairs, STEPS, 2, 4]`: the 8 bytes a step broadcasts are contiguous.
    pub qs: Vec<i8>,
    /// Scales `da`, `[rows, 2·pairs]`.
    pub d: Vec<f32>,
    /// `da·Σ a` over each block, `[rows, 2·pairs]`.
    pub sd: Vec<f32>,
    /// `Σ a` over each block, `[rows, 2·pairs]`.
    pub sum: Vec<i32>,
    /// `Σ a` over each half block, `[rows, 2 halves, 2·pairs]`.
    pub sumh: Vec<i32>,
}

impl TileActs {
    /// Sizes the buffers for `rows` rows of `nb` blocks and returns the block pairs per row;
    /// the block past an odd `nb` is zero (codes, scales and sums), the rest is left to be
    /// written.
    pub fn size(&mut self, rows: usize, nb: usize) -> usize {
        let pairs = nb.div_ceil(2);
        let nb2 = 2 * pairs;
        self.pairs = pairs;
        for v in [&mut self.d, &mut self.sd] {
            v.clear();
            v.resize(rows * nb2, 0.0);
        }
        self.sum.clear();
        self.sum.resize(rows * nb2, 0);
        self.sumh.clear();
        self.sumh.resize(2 * rows * nb2, 0);
        self.qs.clear();
        self.qs.resize(rows * pairs * STEPS * 8, 0);
        pairs
    }

    /// `a`'s `rows` rows re-laid out (buffers reused).
    pub fn build(&mut self, a: &QActs, rows: usize) {
        let nb = a.blocks;
        let pairs = self.size(rows, nb);
        let nb2 = 2 * pairs;
        for r in 0..rows {
            let row = a.row(r);
            let qs = &mut self.qs[r * pairs * STEPS * 8..][..pairs * STEPS * 8];
            for (b, src) in row.qs.chunks_exact(QK).enumerate() {
                let dst = &mut qs[(b / 2) * STEPS * 8 + 4 * (b % 2)..];
                for (t, four) in src.chunks_exact(4).enumerate() {
                    dst[8 * t..8 * t + 4].copy_from_slice(four);
                }
            }
            for b in 0..nb {
                let (s0, s1) = (i32::from(row.sums[2 * b]), i32::from(row.sums[2 * b + 1]));
                self.d[r * nb2 + b] = row.d[b];
                self.sd[r * nb2 + b] = row.d[b] * (s0 + s1) as f32;
                self.sum[r * nb2 + b] = s0 + s1;
                self.sumh[(2 * r) * nb2 + b] = s0;
                self.sumh[(2 * r + 1) * nb2 + b] = s1;
            }
        }
    }
}

/// Up to [`NR`] weight rows decoded to the common form (see the [module docs](self)).
#[derive(Debug, Default, Clone)]
pub struct WTile {
    /// Block pairs per row.
    pub pairs: usize,
    /// Segments per block: 1, or 2 for Q6_K.
    pub segs: usize,
    /// Whether Q8_0 codes are kept signed (`q`, no offset) rather than offset (`q + 128`): for
    /// kernels whose byte products saturate past `2·128·127` (AVX2's `vpmaddubsw`).
    pub signed_q8: bool,
    /// The format's offset `off` as a shift (`off = 1 << shift`), `None` without one.
    pub shift: Option<u32>,
    /// Whether the format has a minimum `m` per block.
    pub has_min: bool,
    /// Codes, `[pairs, STEPS, NR, 2, 4]`.
    pub qs: Vec<u8>,
    /// Scales `dw`, `[pairs, segs, NR, 2]`.
    pub d: Vec<f32>,
    /// Minimums `m`, `[pairs, NR, 2]` (zero without).
    pub m: Vec<f32>,
}

/// Where a tile kernel writes: `rows` rows of `cols ≤ NR` values, row `r` at `r·stride`
/// values past the start. It may cover columns of an output that other tiles of the same call
/// write at the same time (their own columns), so it holds a raw pointer.
#[derive(Debug)]
pub struct TileOut<'a> {
    ptr: *mut f32,
    rows: usize,
    stride: usize,
    cols: usize,
    _out: core::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> TileOut<'a> {
    /// The first `cols` values of `rows` rows of `out`, `stride` values apart.
    ///
    /// # Panics
    /// If `cols > NR` or `out` is too short.
    pub fn new(out: &'a mut [f32], rows: usize, stride: usize, cols: usize) -> Self {
        assert!(cols <= NR && (rows == 0 || out.len() >= (rows - 1) * stride + cols));
        TileOut {
            ptr: out.as_mut_ptr(),
            rows,
            stride,
            cols,
            _out: core::marker::PhantomData,
        }
    }

    /// [`TileOut::new`] over a raw output.
    ///
    /// # Safety
    /// `ptr + r·stride + c` is valid for writes for every `r < rows`, `c < cols ≤ NR`, and no
    /// other access to those values happens while the `TileOut` lives.
    pub unsafe fn from_raw(ptr: *mut f32, rows: usize, stride: usize, cols: usize) -> Self {
        assert!(cols <= NR);
        TileOut {
            ptr,
            rows,
            stride,
            cols,
            _out: core::marker::PhantomData,
        }
    }

    /// Rows to write.
    #[inline]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes row `r` (its first `cols` values of `v`).
    #[inline(always)]
    pub fn write(&mut self, r: usize, v: &[f32; NR]) {
        assert!(r < self.rows);
        // SAFETY: row `r < rows`, columns `< cols`: valid and exclusive by construction.
        unsafe {
            let dst = self.ptr.add(r * self.stride);
            if self.cols == NR {
                dst.cast::<[f32; NR]>().write_unaligned(*v);
            } else {
                core::ptr::copy_nonoverlapping(v.as_ptr(), dst, self.cols);
            }
        }
    }
}

/// The offset shift and whether there is a minimum, for `fmt` (Q8_0 offset unless signed).
fn form(fmt: QuantFormat, signed_q8: bool) -> (Option<u32>, bool) {
    match fmt {
        QuantFormat::Q4_0 => (Some(3), false),
        QuantFormat::Q5_0 => (Some(4), false),
        QuantFormat::Q6_K => (Some(5), false),
        QuantFormat::Q8_0 if signed_q8 => (None, false),
        QuantFormat::Q8_0 => (Some(7), false),
        QuantFormat::Q4_1 | QuantFormat::Q5_1 | QuantFormat::Q4_K | QuantFormat::Q5_K => {
            (None, true)
        }
    }
}

/// The 32-value block `b` of weight row `w` (blocks of `fmt`): its stored block and its
/// index inside it.
#[inline]
pub fn locate(fmt: QuantFormat, w: &[u8], b: usize) -> (&[u8], usize) {
    let per = fmt.block_values() / QK;
    let bb = fmt.block_bytes();
    (&w[(b / per) * bb..][..bb], b % per)
}

/// `dw` per segment and `m` of block `b` of weight row `w` (see the [module docs](self)).
#[inline(always)]
pub fn block_scales(fmt: QuantFormat, w: &[u8], b: usize, h: &F16) -> ([f32; 2], f32) {
    let (blk, j) = locate(fmt, w, b);
    match fmt {
        QuantFormat::Q4_0 | QuantFormat::Q5_0 | QuantFormat::Q8_0 => {
            ([h.get([blk[0], blk[1]]), 0.0], 0.0)
        }
        QuantFormat::Q4_1 | QuantFormat::Q5_1 => {
            ([h.get([blk[0], blk[1]]), 0.0], h.get([blk[2], blk[3]]))
        }
        QuantFormat::Q4_K | QuantFormat::Q5_K => {
            let (d, dmin) = (h.get([blk[0], blk[1]]), h.get([blk[2], blk[3]]));
            let (sc, m) = layout::scale_min_k4(j, &blk[4..16]);
            ([d * f32::from(sc), 0.0], -(dmin * f32::from(m)))
        }
        QuantFormat::Q6_K => {
            let d = h.get([blk[208], blk[209]]);
            let s = |i: usize| d * f32::from(blk[192 + 2 * j + i] as i8);
            ([s(0), s(1)], 0.0)
        }
    }
}

/// The unsigned codes `u` of block `b` of weight row `w` (Q8_0 signed if `signed_q8`).
fn block_codes(fmt: QuantFormat, w: &[u8], b: usize, signed_q8: bool) -> [u8; QK] {
    let (blk, j) = locate(fmt, w, b);
    match fmt {
        QuantFormat::Q4_0 | QuantFormat::Q5_0 | QuantFormat::Q4_1 | QuantFormat::Q5_1 => {
            let five = matches!(fmt, QuantFormat::Q5_0 | QuantFormat::Q5_1);
            layout::legacy_codes(fmt, blk, five, F16::table()).2
        }
        QuantFormat::Q8_0 => {
            let mut q = [0u8; QK];
            let off = if signed_q8 { 0 } else { 128 };
            for (q, &v) in q.iter_mut().zip(&blk[2..]) {
                *q = v.wrapping_add(off);
            }
            q
        }
        QuantFormat::Q4_K | QuantFormat::Q5_K => layout::k45_codes(fmt, blk, j).2,
        QuantFormat::Q6_K => layout::q6k_codes(blk, j),
    }
}

impl WTile {
    /// Sizes the tile for `rows ≤ NR` rows of `row_bytes` bytes of `fmt` and sets its form;
    /// the rows past `rows` and the block past an odd count are zeroed. Returns the 32-value
    /// blocks per row.
    pub fn start(&mut self, fmt: QuantFormat, row_bytes: usize, rows: usize) -> usize {
        debug_assert!(rows <= NR);
        let nb = row_bytes / fmt.block_bytes() * (fmt.block_values() / QK);
        let pairs = nb.div_ceil(2);
        let segs = if fmt == QuantFormat::Q6_K { 2 } else { 1 };
        (self.shift, self.has_min) = form(fmt, self.signed_q8);
        let padded = rows < NR || nb % 2 == 1;
        if self.pairs != pairs || self.segs != segs || padded {
            self.pairs = pairs;
            self.segs = segs;
            self.qs.clear();
            self.qs.resize(pairs * STEPS * STEP_BYTES, 0);
            self.d.clear();
            self.d.resize(pairs * segs * NR * 2, 0.0);
            self.m.clear();
            self.m.resize(pairs * NR * 2, 0.0);
        }
        nb
    }

    /// Decodes `rows ≤ NR` weight rows (`w`, `row_bytes` each, blocks of `fmt`) into the tile
    /// (the portable decode; `Kernel::decode_tile` picks the fastest).
    pub fn decode(&mut self, fmt: QuantFormat, w: &[u8], row_bytes: usize, rows: usize, h: &F16) {
        debug_assert!(w.len() >= rows * row_bytes);
        let nb = self.start(fmt, row_bytes, rows);
        for o in 0..rows {
            let wr = &w[o * row_bytes..(o + 1) * row_bytes];
            for b in 0..nb {
                let (p, e) = (b / 2, b % 2);
                let q = block_codes(fmt, wr, b, self.signed_q8);
                let base = p * STEPS * STEP_BYTES + 8 * o + 4 * e;
                for t in 0..STEPS {
                    let at = base + t * STEP_BYTES;
                    self.qs[at..at + 4].copy_from_slice(&q[4 * t..4 * t + 4]);
                }
            }
            self.put_row_scales(fmt, o, wr, nb, h);
        }
    }

    /// Writes the scales of tile row `o` from weight row `wr` (`nb` blocks of `fmt`).
    pub fn put_row_scales(&mut self, fmt: QuantFormat, o: usize, wr: &[u8], nb: usize, h: &F16) {
        // One monomorphic loop per format: the match is hoisted out of the blocks.
        macro_rules! rows {
            ($($f:ident),*) => {
                match fmt {
                    $(QuantFormat::$f => {
                        for b in 0..nb {
                            let (d, m) = block_scales(QuantFormat::$f, wr, b, h);
                            self.put_scales(o, b, d, m);
                        }
                    })*
                }
            };
        }
        rows!(Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K);
    }

    /// Writes the scales `d` (per segment) and the minimum `m` of block `b` of tile row `o`.
    #[inline(always)]
    fn put_scales(&mut self, o: usize, b: usize, d: [f32; 2], m: f32) {
        let (p, e) = (b / 2, b % 2);
        for (s, &d) in d.iter().enumerate().take(self.segs) {
            self.d[((p * self.segs + s) * NR + o) * 2 + e] = d;
        }
        self.m[(p * NR + o) * 2 + e] = m;
    }
}

/// The portable tile kernel: row `r` of `out` = the products of activation row `r` of `a` with
/// the tile's rows. The reference of the SIMD ones (the same integer sums; f32 without fused
/// multiply-adds).
pub fn tile_portable(w: &WTile, a: &TileActs, out: &mut TileOut<'_>) {
    let (pairs, segs) = (w.pairs, w.segs);
    let nb2 = 2 * pairs;
    let per_seg = STEPS / segs;
    for r in 0..out.rows() {
        let mut acc = [0.0f32; 2 * NR];
        for p in 0..pairs {
            let aq = &a.qs[(r * pairs + p) * STEPS * 8..][..STEPS * 8];
            for s in 0..segs {
                let mut ip = [0i32; 2 * NR];
                for t in s * per_seg..(s + 1) * per_seg {
                    let wq = &w.qs[(p * STEPS + t) * STEP_BYTES..][..STEP_BYTES];
                    for (lane, ip) in ip.iter_mut().enumerate() {
                        let e = lane % 2;
                        for k in 0..4 {
                            let wv = if w.signed_q8 {
                                i32::from(wq[4 * lane + k] as i8)
                            } else {
                                i32::from(wq[4 * lane + k])
                            };
                            *ip += wv * i32::from(aq[8 * t + 4 * e + k]);
                        }
                    }
                }
                for (lane, acc) in acc.iter_mut().enumerate() {
                    let b = 2 * p + lane % 2;
                    if let Some(shift) = w.shift {
                        let sum = if segs == 1 {
                            a.sum[r * nb2 + b]
                        } else {
                            a.sumh[(2 * r + s) * nb2 + b]
                        };
                        ip[lane] -= sum << shift;
                    }
                    let dw = w.d[(p * segs + s) * 2 * NR + lane];
                    *acc += ip[lane] as f32 * (dw * a.d[r * nb2 + b]);
                    if w.has_min && s == 0 {
                        *acc += w.m[p * 2 * NR + lane] * a.sd[r * nb2 + b];
                    }
                }
            }
        }
        out.write(r, &core::array::from_fn(|o| acc[2 * o] + acc[2 * o + 1]));
    }
}

thread_local! {
    /// Each worker's weight tile.
    static TILE: std::cell::RefCell<WTile> = std::cell::RefCell::new(WTile::default());
}

/// Below this many weight bytes a product runs on the calling thread.
const PAR_MIN_BYTES: usize = super::matvec::PAR_MIN_BYTES;

/// `y = x·Wᵀ` for `rows` activation rows (`ta`, in the tile layout) and `W: [n, k]` stored as
/// `n` rows of `row_bytes` bytes of `fmt` blocks, into `y: [rows, n]`.
///
/// Weight tiles are split among the pool's workers; each decodes a tile once, runs it against
/// every activation row and writes the tile's eight columns of `y`.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    pool: &Pool,
    kernel: Kernel,
    fmt: QuantFormat,
    w: &[u8],
    row_bytes: usize,
    n: usize,
    ta: &TileActs,
    rows: usize,
    y: &mut [f32],
) {
    assert!(y.len() >= rows * n && w.len() >= n * row_bytes);
    let h = F16::table();
    let threads = if w.len() >= PAR_MIN_BYTES {
        pool.threads()
    } else {
        1
    };
    let tiles = n.div_ceil(NR);
    // A few tasks per thread, so that a preempted worker delays only its own small share.
    let tiles_per_task = tiles.div_ceil(4 * threads).max(1);
    let y = SharedOut(y.as_mut_ptr());
    let task = |t: usize| {
        TILE.with(|cell| {
            let mut tile = cell.borrow_mut();
            tile.signed_q8 = kernel.tile_signed_q8();
            for i in t * tiles_per_task..tiles.min((t + 1) * tiles_per_task) {
                let o0 = i * NR;
                let nr = NR.min(n - o0);
                kernel.decode_tile(&mut tile, fmt, &w[o0 * row_bytes..], row_bytes, nr, h);
                // SAFETY: `y` holds `rows·n` values (asserted); tile `i` alone writes columns
                // `o0..o0 + nr` of each row, and each tile belongs to one task, so no two
                // writers share a value, and `y` is not otherwise touched until the pool's
                // `for_each` returns.
                let mut out = unsafe { TileOut::from_raw(y.get().add(o0), rows, n, nr) };
                kernel.tile(&tile, ta, &mut out);
            }
        })
    };
    let tasks = tiles.div_ceil(tiles_per_task);
    if threads == 1 {
        (0..tasks).for_each(task);
    } else {
        pool.for_each(tasks, task);
    }
}

/// The output's pointer, shared by the tasks that write its disjoint columns.
struct SharedOut(*mut f32);

impl SharedOut {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

// SAFETY: the tasks write disjoint values through it (see `linear`).
unsafe impl Sync for SharedOut {}
