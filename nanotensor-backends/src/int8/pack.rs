//! Packing quantized operands into the micro-panel layouts the kernels read.
//!
//! Both layouts hold the *whole* `k` range of a panel (padded to a multiple of 4, `kp`), grouped
//! by four consecutive `k`, so any `kc` block (a multiple of 4) of a panel is one contiguous
//! slice: bytes `k0·w .. (k0+kc)·w` for a panel of width `w`.
//!
//! ```text
//! A panel (MR rows):    for g in 0..kp/4: for r in 0..MR: a[r][4g..4g+4]         (i8)
//! B panel (NR columns): for g in 0..kp/4: for c in 0..NR: b[4g..4g+4][c] + 128   (u8)
//! ```
//!
//! Padding: A rows past `m` and `k` past `K` hold 0; B columns past `n` and `k` past `K` hold
//! 128 (code 0). `corr` of A holds `128·Σ_k a[r][k]` per row and per `kc` block (see
//! [`super::kernel`]).
//!
//! With per-block activation scales ([`PackedA::set_block_scales`], block length `L`, a
//! multiple of 4 dividing `kc` unless one `kc` block spans all of `k`) A also carries
//!
//! ```text
//! bscale[(p·nb + b)·MR + r] = scale of block b of row p·MR + r          (nb = ⌈K/L⌉; 0 for padding rows)
//! fcorr[(p·kblocks + kb)·MR + r] = Σ_{blocks b in kc block kb} bscale[b] · 128·Σ_{k ∈ b} a[r][k]
//! ```
//!
//! `fcorr` is the VNNI offset correction already scaled into the f32 accumulator's units (see
//! [`super::kernel`]).

use crate::hugebuf::HugeBuf;
use crate::threads::Pool;

/// `x` rounded up to a multiple of `to`.
#[inline]
pub fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Writes the codes of row `r` of an A panel (`mr` rows), starting at group `g0` (codes
/// `4·g0..`): group `g` (4 consecutive `k`) goes to panel bytes `(g·mr + r)·4 .. +4`; a last
/// partial group fills the front of its slot.
#[inline]
pub(super) fn scatter_quads(codes: &[i8], panel: &mut [i8], g0: usize, mr: usize, r: usize) {
    let mut quads = codes.chunks_exact(4);
    for (g, quad) in (&mut quads).enumerate() {
        let dst = ((g0 + g) * mr + r) * 4;
        panel[dst..dst + 4].copy_from_slice(quad);
    }
    let tail = quads.remainder();
    if !tail.is_empty() {
        let dst = ((g0 + codes.len() / 4) * mr + r) * 4;
        panel[dst..dst + tail.len()].copy_from_slice(tail);
    }
}

/// A operand packed into `MR`-row panels, with its offset corrections per `kc` block.
#[derive(Debug, Default)]
pub struct PackedA {
    /// `panels · mr · kp` signed codes.
    pub data: Vec<i8>,
    /// `panels · kblocks · mr` corrections `128·Σ a`.
    pub corr: Vec<i32>,
    /// Rows of the register tile.
    pub mr: usize,
    /// `K` rounded up to 4.
    pub kp: usize,
    /// The `kc` the corrections were summed over.
    pub kc: usize,
    /// `⌈K / kc⌉`.
    pub kblocks: usize,
    /// Per-block activation scales: the block length `L`, or `None` (per-row scales, `rs`).
    pub block_len: Option<usize>,
    /// `⌈K/L⌉`: scale blocks per row (per-block mode only).
    pub scale_blocks: usize,
    /// `panels · ⌈K/L⌉ · mr` block scales (per-block mode only).
    pub bscale: Vec<f32>,
    /// `panels · kblocks · mr` scaled offset corrections (per-block mode only).
    pub fcorr: Vec<f32>,
}

impl PackedA {
    /// Packs `m` rows of `k` codes (row `i` at `codes[i·k..]`) for tiles of `mr` rows and `kc`
    /// blocks (`kc` a multiple of 4), with their offset corrections. Reuses the buffers.
    ///
    /// The backend quantizes and packs activations in one pass
    /// ([`super::quantize::quantize_pack_a`]); this two-step form packs codes that already exist
    /// (kernel tests, benchmarks, and the reference that pass is tested against).
    pub fn pack(&mut self, codes: &[i8], m: usize, k: usize, mr: usize, kc: usize) {
        self.pack_codes(None, codes, m, k, mr, kc);
        self.corr.clear();
        self.corr.resize(m.div_ceil(mr) * self.kblocks * mr, 0);
        for i in 0..m {
            let (p, r) = (i / mr, i % mr);
            for (b, block) in codes[i * k..(i + 1) * k].chunks(kc).enumerate() {
                let sum: i32 = block.iter().map(|&x| x as i32).sum();
                // Wrapping on purpose: only the result modulo 2³² matters (see the kernel docs).
                self.corr[(p * self.kblocks + b) * mr + r] = sum.wrapping_mul(128);
            }
        }
    }

    /// Sizes the buffers for `m × k` codes in `mr`-row panels and `kc` blocks (`kc` a multiple
    /// of 4): `data` zeroed (padding must be 0), `corr` emptied, per-row scales mode.
    pub(super) fn reset(&mut self, m: usize, k: usize, mr: usize, kc: usize) {
        debug_assert!(kc.is_multiple_of(4) && kc > 0);
        let kp = round_up(k, 4);
        self.data.clear();
        self.data.resize(m.div_ceil(mr) * mr * kp, 0);
        self.corr.clear();
        (self.mr, self.kp, self.kc, self.kblocks) = (mr, kp, kc, k.div_ceil(kc));
        self.block_len = None;
    }

    /// [`PackedA::pack`] without the per-row corrections `corr` (left empty): for per-block
    /// scales, whose corrections [`PackedA::set_block_scales`] computes instead.
    pub fn pack_codes(
        &mut self,
        pool: Option<&Pool>,
        codes: &[i8],
        m: usize,
        k: usize,
        mr: usize,
        kc: usize,
    ) {
        debug_assert!(codes.len() >= m * k);
        self.reset(m, k, mr, kc);
        let (kp, panels) = (self.kp, m.div_ceil(mr));
        let threads = pool.map_or(1, Pool::threads).min(panels);
        let per_task = panels.div_ceil(threads);
        let fill = |t: usize, chunk: &mut [i8]| {
            for (pp, panel) in chunk.chunks_mut(mr * kp).enumerate() {
                let p = t * per_task + pp;
                for r in 0..mr.min(m - p * mr) {
                    let i = p * mr + r;
                    scatter_quads(&codes[i * k..(i + 1) * k], panel, 0, mr, r);
                }
            }
        };
        match pool {
            Some(pool) if threads > 1 => {
                pool.for_each_chunk_mut(&mut self.data, per_task * mr * kp, fill)
            }
            _ => fill(0, &mut self.data),
        }
    }

    /// Switches this packed operand (just packed, `m × k`) to per-block scales of blocks of
    /// `len` values: `scales[i·⌈k/len⌉ + b]` is the scale of block `b` of row `i` and
    /// `sums[i·⌈k/len⌉ + b]` the sum of its codes (as returned by
    /// [`super::quantize::quantize_row_blocks`]). Fills `bscale` and `fcorr` (see the module
    /// docs).
    ///
    /// `len` must be a multiple of 4 and, unless one `kc` block spans all of `k`, divide `kc`
    /// (so no scale block straddles two `kc` blocks).
    pub fn set_block_scales(
        &mut self,
        m: usize,
        k: usize,
        len: usize,
        scales: &[f32],
        sums: &[i32],
    ) {
        let (mr, kc) = (self.mr, self.kc);
        assert!(len.is_multiple_of(4) && (kc >= k || kc.is_multiple_of(len)));
        let nb = k.div_ceil(len);
        assert!(scales.len() >= m * nb && sums.len() >= m * nb);
        let panels = m.div_ceil(mr);
        self.block_len = Some(len);
        self.scale_blocks = nb;
        self.bscale.clear();
        self.bscale.resize(panels * nb * mr, 0.0);
        self.fcorr.clear();
        self.fcorr.resize(panels * self.kblocks * mr, 0.0);
        let kblocks = self.kblocks;
        for i in 0..m {
            let (p, r) = (i / mr, i % mr);
            // Σ over the scale blocks of each kc block, in f64 and rounded once: the kernel
            // subtracts it from an f32 accumulator.
            let mut total = 0f64;
            for b in 0..nb {
                let s = scales[i * nb + b];
                self.bscale[(p * nb + b) * mr + r] = s;
                total += s as f64 * (128 * sums[i * nb + b]) as f64;
                let end = ((b + 1) * len).min(k);
                if end.is_multiple_of(kc) || end == k {
                    let kb = (end - 1) / kc;
                    self.fcorr[(p * kblocks + kb) * mr + r] = total as f32;
                    total = 0.0;
                }
            }
        }
    }

    /// Panel `p`, `k` range `k0 .. k0 + kc4·4`.
    #[inline]
    pub fn block(&self, p: usize, k0: usize, kc4: usize) -> &[i8] {
        let start = p * self.mr * self.kp + k0 * self.mr;
        &self.data[start..start + kc4 * 4 * self.mr]
    }

    /// Block scales of panel `p` from `k0` (a multiple of the block length) on:
    /// `MR` values per block.
    #[inline]
    pub fn block_scales(&self, p: usize, k0: usize) -> &[f32] {
        let (len, nb) = (self.block_len.unwrap_or(1), self.scale_blocks);
        let start = (p * nb + k0 / len) * self.mr;
        &self.bscale[start..(p + 1) * nb * self.mr]
    }

    /// Scaled corrections of panel `p` for `kc` block `b` (`mr` values; per-block mode).
    #[inline]
    pub fn fcorr(&self, p: usize, b: usize) -> &[f32] {
        let start = (p * self.kblocks + b) * self.mr;
        &self.fcorr[start..start + self.mr]
    }

    /// Corrections of panel `p` for `kc` block `b` (`mr` values).
    #[inline]
    pub fn corr(&self, p: usize, b: usize) -> &[i32] {
        let start = (p * self.kblocks + b) * self.mr;
        &self.corr[start..start + self.mr]
    }
}

/// B operand packed into `NR`-column panels of offset-binary codes.
#[derive(Debug, Default, Clone)]
pub struct PackedB {
    /// `panels · nr · kp` bytes.
    pub data: HugeBuf<u8>,
    /// Columns of a panel.
    pub nr: usize,
    /// `K` rounded up to 4.
    pub kp: usize,
    /// `K`.
    pub k: usize,
    /// Columns `n`.
    pub n: usize,
}

impl PackedB {
    /// Number of panels `⌈n / nr⌉`.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(self.nr)
    }

    /// Packs a weight stored as `n` rows of `k` codes (`W[j][k]`, i.e. `B = Wᵀ`).
    pub fn from_rows(codes: &[i8], n: usize, k: usize, nr: usize) -> Self {
        let mut me = Self::empty(n, k, nr);
        me.write_rows(codes, 0);
        me
    }

    /// Writes rows `j0 .. j0 + codes.len() / k` of a weight (`W[j][k]`, `B = Wᵀ`) into this
    /// storage (sized by [`PackedB::empty`] for the whole weight): how a weight prepared chunk
    /// by chunk is packed without holding all its codes at once.
    pub fn write_rows(&mut self, codes: &[i8], j0: usize) {
        let (nr, kp, k) = (self.nr, self.kp, self.k);
        if k == 0 {
            return;
        }
        debug_assert!(codes.len().is_multiple_of(k) && j0 + codes.len() / k <= self.n);
        for (r, row) in codes.chunks_exact(k).enumerate() {
            let j = j0 + r;
            let (p, c) = (j / nr, j % nr);
            let panel = &mut self.data[p * nr * kp..(p + 1) * nr * kp];
            for (g, quad) in row.chunks(4).enumerate() {
                let dst = (g * nr + c) * 4;
                for (d, &q) in panel[dst..dst + quad.len()].iter_mut().zip(quad) {
                    *d = (q as u8) ^ 0x80;
                }
            }
        }
    }

    /// Packs `B` stored as `k` rows of `n` codes (`B[k][j]`, row-major).
    pub fn from_cols(codes: &[i8], k: usize, n: usize, nr: usize) -> Self {
        let mut me = Self::empty(n, k, nr);
        let kp = me.kp;
        for p in 0..me.panels() {
            let (j0, w) = (p * nr, nr.min(n - p * nr));
            let panel = &mut me.data[p * nr * kp..(p + 1) * nr * kp];
            for kk in 0..k {
                let (g, t) = (kk / 4, kk % 4);
                let src = &codes[kk * n + j0..kk * n + j0 + w];
                for (c, &q) in src.iter().enumerate() {
                    panel[(g * nr + c) * 4 + t] = (q as u8) ^ 0x80;
                }
            }
        }
        me
    }

    /// All-padding storage for `n × k`, for a weight: on the shared huge-page chunks
    /// ([`HugeBuf::weight`]), which decode streams faster.
    pub fn empty(n: usize, k: usize, nr: usize) -> Self {
        let kp = round_up(k, 4);
        let mut data = HugeBuf::weight(n.div_ceil(nr) * nr * kp);
        data.fill(0x80);
        PackedB { data, nr, kp, k, n }
    }

    /// Makes this all-padding storage for `n × k`, reusing the buffer.
    pub fn reset(&mut self, n: usize, k: usize, nr: usize) {
        let kp = round_up(k, 4);
        let len = n.div_ceil(nr) * nr * kp;
        if self.data.len() != len {
            self.data = HugeBuf::zeroed(len);
        }
        self.data.fill(0x80);
        (self.nr, self.kp, self.k, self.n) = (nr, kp, k, n);
    }

    /// Panel `p`, `k` range `k0 .. k0 + kc4·4`.
    #[inline]
    pub fn block(&self, p: usize, k0: usize, kc4: usize) -> &[u8] {
        let start = p * self.nr * self.kp + k0 * self.nr;
        &self.data[start..start + kc4 * 4 * self.nr]
    }

    /// Bytes held (codes plus padding).
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }
}
