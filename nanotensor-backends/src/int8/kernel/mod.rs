//! The int8 microkernels and the one door to them: [`Kernel::detect`].
//!
//! # What a microkernel computes
//! One `R × NR` tile of `C` (`R ≤ MR` rows) from one packed A micro-panel and one packed B
//! micro-panel, over `kc4` groups of four `k`:
//!
//! ```text
//! acc[i][j] = Σ_{g < kc4} Σ_{t < 4} a[g][i][t] · (b[g][j][t] − 128)        (exact, in i32)
//! C[i][j]   = (accumulate ? C[i][j] : 0) + acc[i][j] · rs[i] · cs[j]        (f32)
//! ```
//!
//! * `a` — the A micro-panel: `kc4` groups of `MR` rows of 4 signed codes (`i8`, `|a| ≤ 127`);
//!   padding rows and padding `k` hold 0.
//! * `b` — the B micro-panel: `kc4` groups of `NR` columns of 4 codes stored *offset-binary*
//!   (`u8 = code + 128`, so `u8 ∈ [1, 255]`, 128 meaning 0); padding holds 128.
//! * `corr[i] = 128 · Σ_k a[i][k]` over the same `k` range (the offset correction, see below).
//! * `rs` — per-row scales (`R` used); `cs` — per-column scales (`NR` read, `cols` used).
//!
//! # Why weights are the unsigned operand
//! `vpdpbusd` multiplies unsigned bytes by signed bytes. We make *B* (the weights) unsigned by
//! storing `q + 128`, and keep A (the activations) signed:
//! `Σ a·(b + 128) = Σ a·b + 128·Σ a`, so the correction depends only on the row of A and costs
//! `m·k` additions per call while A is packed. The alternative (offset A, correct with
//! `128·Σ_k b[k, j]` per weight column) would need a stored correction per weight column or a
//! second pass; ours keeps a prepared weight at exactly `n + 4` bytes, lets the signed operand be
//! the 32-bit broadcast (which `vpdpbusd` can take from memory), and needs nothing for decode.
//!
//! # Per-block activation scales
//! With activation scales per block of `L = 4·blk4` values of `k` ([`Kernel::tile_blocks`]),
//! each block's integer sum is converted to f32 and multiplied into an f32 accumulator by that
//! block's row scale `bs[blk][i]`; the per-column (weight) scale is applied once at the end:
//!
//! ```text
//! facc[i][j] = Σ_blk bs[blk][i] · f32( Σ_{g ∈ blk} Σ_t a[g][i][t] · u[g][j][t] )
//! C[i][j]    = (accumulate ? C[i][j] : 0) + (facc[i][j] − fcorr[i]) · cs[j]
//! ```
//!
//! where `u` is what the kernel multiplies: the offset-binary byte `b` for VNNI (so its block sum
//! carries `128·Σ a`, and `fcorr[i] = Σ_blk bs[blk][i]·128·Σ_{k ∈ blk} a[i][k]` removes it, in
//! f32 units), the true code `b − 128` for AVX2 and portable (which then ignore `fcorr`). The
//! block sums are exact in i32 and, for `L ≤ 512`, exactly representable in f32
//! (`|Σ| ≤ 255·127·512 < 2²⁴`); the scaling and the f32 sums round as any float dot product
//! does. Subtracting the correction after the f32 sum instead of per block in i32 saves two
//! integer subtractions per row and block; the correction is of the order of the sum itself
//! (`|128·Σ a| ≲ 4·|Σ a·b|` for Gaussian codes), so it costs a few f32 ulps of the result.
//!
//! # i32 overflow bound
//! The true product satisfies `|Σ_k a·b| ≤ 127·127·K`, which fits in i32 while
//! `K ≤ ⌊(2³¹−1)/16129⌋ = 133,144`. The raw VNNI accumulator `Σ a·(b+128)` can reach
//! `255·127·K` and would leave i32 from `K > 66,311`, but `vpdpbusd` (unlike `vpdpbusds`)
//! *wraps* modulo 2³², and the correction is subtracted with wrapping arithmetic: the result is
//! congruent to the true sum modulo 2³², hence exact whenever the true sum fits, i.e. for
//! `K ≤ 133,144` ([`K_MAX`]). The driver never lets one i32 accumulation span more than
//! `K_MAX` values of `k`; longer reductions are split into chunks summed in f32.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

use crate::cpu::{self, CpuFeatures};

/// Longest `k` range one i32 accumulation may cover (see the module docs): `⌊(2³¹−1)/127²⌋`.
pub const K_MAX: usize = 133_144;

/// Largest `MR` of any kernel (sizes stack buffers).
pub const MR_MAX: usize = 8;

/// The instruction sets an int8 kernel can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// AVX-512 with VNNI (`vpdpbusd`): 8 × 32 tiles.
    Avx512Vnni,
    /// AVX2 (`vpmaddubsw` + `vpmaddwd` with the sign trick): 4 × 16 tiles.
    Avx2,
    /// Plain Rust, any target (including wasm32): 4 × 16 tiles.
    Portable,
}

impl KernelKind {
    /// Whether `cpu` has every feature this kind's code is compiled with: AVX-512 F/BW/VNNI for
    /// [`Avx512Vnni`](KernelKind::Avx512Vnni), AVX2 for [`Avx2`](KernelKind::Avx2) (both built
    /// for x86-64 only), nothing for [`Portable`](KernelKind::Portable).
    pub fn runs_on(self, cpu: &CpuFeatures) -> bool {
        match self {
            KernelKind::Avx512Vnni => {
                cfg!(target_arch = "x86_64") && cpu.avx512f && cpu.avx512bw && cpu.avx512vnni
            }
            KernelKind::Avx2 => cfg!(target_arch = "x86_64") && cpu.avx2,
            KernelKind::Portable => true,
        }
    }

    /// Short name for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Avx512Vnni => "avx512-vnni",
            KernelKind::Avx2 => "avx2",
            KernelKind::Portable => "portable",
        }
    }
}

/// A kernel whose instruction set this CPU supports. Every way to obtain one ([`Kernel::detect`],
/// [`Kernel::new`], [`Kernel::best`], [`Kernel::new_on`]) goes through [`KernelKind::runs_on`]
/// with the detected CPU features: that check is what makes calling the `#[target_feature]`
/// functions sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    kind: KernelKind,
}

/// One output tile and how to write it.
///
/// `C` is a raw pointer because concurrent tasks write disjoint tiles of one matrix: a `&mut`
/// slice per tile would overlap the other tasks' columns between its rows.
#[derive(Debug)]
pub struct TileOut<'a> {
    /// `C` at the tile's first element; element `(i, j)` is at `c + i·ldc + j`.
    pub c: *mut f32,
    /// Row stride of `C` in elements.
    pub ldc: usize,
    /// Valid columns (`1..=NR`).
    pub cols: usize,
    /// Per-row scales, at least `R` of them (unused by [`Kernel::tile_blocks`]).
    pub rs: &'a [f32],
    /// Per-column scales, at least `NR` of them (entries past `cols` are read but unused).
    pub cs: &'a [f32],
    /// Add into `C` instead of overwriting it.
    pub accumulate: bool,
}

impl Kernel {
    /// The best kernel `cpu` supports: AVX-512 VNNI, then AVX2, then portable.
    pub fn best(cpu: &CpuFeatures) -> Self {
        [KernelKind::Avx512Vnni, KernelKind::Avx2]
            .into_iter()
            .find_map(|kind| Self::new_on(kind, cpu))
            .unwrap_or(Kernel {
                kind: KernelKind::Portable,
            })
    }

    /// The best kernel this CPU supports ([`Kernel::best`] of [`cpu::features`]).
    pub fn detect() -> Self {
        Self::best(cpu::features())
    }

    /// The kernel `kind` if `cpu` has its features ([`KernelKind::runs_on`]).
    pub fn new_on(kind: KernelKind, cpu: &CpuFeatures) -> Option<Self> {
        kind.runs_on(cpu).then_some(Kernel { kind })
    }

    /// The kernel `kind` if this CPU supports it. Under Miri, which cannot run SIMD intrinsics,
    /// only the portable kernel (no feature is reported there).
    pub fn new(kind: KernelKind) -> Option<Self> {
        Self::new_on(kind, cpu::features())
    }

    /// Every kernel this CPU supports (for tests and benches).
    pub fn all_supported() -> Vec<Self> {
        [
            KernelKind::Avx512Vnni,
            KernelKind::Avx2,
            KernelKind::Portable,
        ]
        .into_iter()
        .filter_map(Self::new)
        .collect()
    }

    /// Which instruction set.
    pub fn kind(self) -> KernelKind {
        self.kind
    }

    /// Rows of the register tile.
    pub fn mr(self) -> usize {
        match self.kind {
            KernelKind::Avx512Vnni => 8,
            KernelKind::Avx2 | KernelKind::Portable => 4,
        }
    }

    /// Columns of the register tile (the width of a packed B panel).
    pub fn nr(self) -> usize {
        match self.kind {
            KernelKind::Avx512Vnni => 32,
            KernelKind::Avx2 | KernelKind::Portable => 16,
        }
    }

    /// Runs the microkernel on `rows` rows (see the module docs for the maths).
    ///
    /// # Panics
    /// If an input slice is shorter than the geometry requires (the driver sizes them; this is a
    /// bug check that also makes the ISA calls below sound).
    ///
    /// # Safety
    /// `out.c` must be valid for reads and writes of the elements `i·ldc + j` for `i < rows`,
    /// `j < out.cols`, and no other thread may access those elements during the call.
    #[inline]
    pub unsafe fn tile(
        self,
        rows: usize,
        kc4: usize,
        a: &[i8],
        corr: &[i32],
        b: &[u8],
        out: &TileOut<'_>,
    ) {
        let (mr, nr) = (self.mr(), self.nr());
        assert!((1..=mr).contains(&rows) && (1..=nr).contains(&out.cols));
        assert!(a.len() >= kc4 * mr * 4 && b.len() >= kc4 * nr * 4);
        assert!(corr.len() >= rows && out.rs.len() >= rows && out.cs.len() >= nr);
        match self.kind {
            // SAFETY: the caller guarantees the tile of `out.c` (forwarded contract).
            KernelKind::Portable => unsafe { portable::tile(rows, kc4, a, corr, b, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Kernel` of this kind exists only if `runs_on` saw avx512f, avx512bw and
            // avx512vnni (what the kernel is compiled with) among this CPU's features; the
            // asserts above give every input the length the kernel reads, and the caller
            // guarantees the tile of `out.c`.
            KernelKind::Avx512Vnni => unsafe { avx512::tile(rows, kc4, a, corr, b, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, with avx2 (the one feature this kernel is compiled with).
            KernelKind::Avx2 => unsafe { avx2::tile(rows, kc4, a, corr, b, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("x86 kernels are never constructed on this target"),
        }
    }

    /// Runs the microkernel with per-block activation scales on `rows` rows (see "Per-block
    /// activation scales" in the module docs).
    ///
    /// * `blk4` — groups of four `k` per scale block (the block length is `4·blk4`, ≤ 512)
    /// * `bs` — `⌈kc4/blk4⌉` blocks of `MR` row scales
    /// * `fcorr` — per-row scaled offset corrections (`R` used; VNNI only)
    ///
    /// `out.rs` is not read: the row scales are the block scales.
    ///
    /// # Panics
    /// As [`Kernel::tile`], and when `bs` holds fewer than `⌈kc4/blk4⌉·MR` scales.
    ///
    /// # Safety
    /// As [`Kernel::tile`].
    #[allow(clippy::too_many_arguments)] // the microkernel's operand list reads best flat
    #[inline]
    pub unsafe fn tile_blocks(
        self,
        rows: usize,
        kc4: usize,
        blk4: usize,
        a: &[i8],
        bs: &[f32],
        fcorr: &[f32],
        b: &[u8],
        out: &TileOut<'_>,
    ) {
        let (mr, nr) = (self.mr(), self.nr());
        assert!((1..=mr).contains(&rows) && (1..=nr).contains(&out.cols));
        assert!((1..=128).contains(&blk4));
        assert!(a.len() >= kc4 * mr * 4 && b.len() >= kc4 * nr * 4);
        assert!(bs.len() >= kc4.div_ceil(blk4) * mr && fcorr.len() >= rows && out.cs.len() >= nr);
        match self.kind {
            // SAFETY: the caller guarantees the tile of `out.c` (forwarded contract).
            KernelKind::Portable => unsafe {
                portable::tile_blocks(rows, kc4, blk4, a, bs, b, out)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Kernel` of this kind exists only if `runs_on` saw avx512f, avx512bw and
            // avx512vnni (what the kernel is compiled with) among this CPU's features; the
            // asserts above give every input the length the kernel reads, and the caller
            // guarantees the tile of `out.c`.
            KernelKind::Avx512Vnni => unsafe {
                avx512::tile_blocks(rows, kc4, blk4, a, bs, fcorr, b, out)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, with avx2 (the one feature this kernel is compiled with).
            KernelKind::Avx2 => unsafe { avx2::tile_blocks(rows, kc4, blk4, a, bs, b, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("x86 kernels are never constructed on this target"),
        }
    }
}

#[cfg(test)]
mod tests;
