//! Microkernels and the one door through which the driver reaches them.
//!
//! A microkernel computes one `MR × NR` tile of C from a packed `MR × kc` micro-panel of A and a
//! packed `kc × NR` micro-panel of B (the innermost step of the Goto/BLIS loop nest, see
//! [`super::gemm`]). Each instruction set gets its own module:
//!
//! | module | ISA | element | tile `MR × NR` | registers used |
//! |---|---|---|---|---|
//! | [`avx512`] | AVX-512F | f32 | 12 × 32 | 24 zmm accumulators + 2 B + broadcasts |
//! | [`avx512_f64`] | AVX-512F | f64 | 12 × 16 | 24 zmm accumulators + 2 B + broadcasts |
//! | [`avx512_bf16`] | AVX-512F + BF16 | bf16 pairs → f32 | 12 × 32 | as the f32 kernel |
//! | [`avx512_bf16`] (skinny) | AVX-512F | f32 rows × bf16 pairs | m ≤ 8 × 32 | 2 sums per output vector |
//! | [`avx2`] | AVX2 + FMA | f32 | 6 × 16 | 12 ymm accumulators + 2 B + 1 broadcast |
//! | [`avx2_f64`] | AVX2 + FMA | f64 | 6 × 8 | 12 ymm accumulators + 2 B + 1 broadcast |
//! | [`scalar`] | portable | f32, f64 | 4 × 8, 4 × 4 | arrays the compiler vectorises |
//! | `wasm` | wasm32 simd128 | f32 | 4 × 8 | 8 v128 accumulators |
//!
//! bf16 and f16 operands otherwise reach the f32 kernels widened while packing ([`convert`]).
//!
//! [`detect`] picks the best f32 kernel once per process ([`f64_choice`] the f64 one) (AVX-512 → AVX2+FMA → portable) from
//! the detected [`cpu::features`] and caches the choice. A kernel value such as
//! [`avx512::Avx512F32`] can only be obtained from its `new`, which checks the CPU features for
//! every feature its code is compiled with, so holding one *is* the proof that its
//! `#[target_feature]` functions may run: that is the safety argument of every `unsafe` call
//! into them. All SIMD `unsafe` of the blocked backend lives in these kernel modules (the driver
//! has only the raw view of C its tasks write through, see [`GemmKernel::tile`]).
//!
//! The same trait serves the int8 backend: `crate::int8::gemm::Int8Tiles` implements
//! [`GemmKernel`] for the int8 kernels through the [`GemmKernel::tile`] hook, so there is one loop
//! nest for both backends.

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub mod avx2;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub mod avx2_f64;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub mod avx512;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub mod avx512_bf16;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub mod avx512_f64;
pub mod convert;
pub mod f64_choice;
pub mod scalar;
pub mod transpose;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

use super::archparam;
use super::pack::{self, MatRef};
use crate::cpu::{self, CpuFeatures};
use std::ops::Add;
use std::sync::OnceLock;

/// The length checks every microkernel makes before it touches memory: the packed panels hold
/// `kc` depth steps of `MR` (A) and `NR` (B) values, and the C tile's `MR` rows of `NR` values
/// at stride `ldc` fit in `c`. A kernel with `unsafe` inside relies on exactly these.
///
/// # Panics
/// If a panel or the C tile is too short.
pub(crate) fn check_tile_lengths(
    kc: usize,
    (mr, nr): (usize, usize),
    a_len: usize,
    b_len: usize,
    c_len: usize,
    ldc: usize,
) {
    assert!(
        a_len >= kc * mr && b_len >= kc * nr,
        "microkernel: short panel"
    );
    assert!(
        ldc >= nr && c_len >= (mr - 1) * ldc + nr,
        "microkernel: short C tile"
    );
}

/// A register-blocked GEMM microkernel plus the packing it expects: everything the generic
/// driver ([`super::gemm::gemm`]) needs to know about an instruction set and an element type.
///
/// The driver owns the loop nest, the cache blocking and the threading; a kernel owns the
/// register tile and what is written into C. Two kinds of kernel share the one driver:
///
/// * **plain** kernels (the AVX2, portable and wasm f32/f64 FMA kernels here) implement
///   [`microkernel`]: a full `MR × NR` tile of `C (+)= A_panel · B_panel` into a slice. The
///   driver's default [`tile`](GemmKernel::tile) calls it, and runs edge tiles into a scratch
///   tile it then copies out. The AVX-512 f32 kernel also overrides `tile` with native edge
///   tiles (only the valid rows computed, columns masked), see [`avx512`];
/// * **epilogue** kernels (the int8 kernels of `crate::int8`) override [`tile`](GemmKernel::tile):
///   the driver hands them the tile's coordinates ([`TileAt`]: row, column, depth block, valid
///   rows and columns), from which they look up their side data (per-row and per-column scales,
///   offset corrections) in the kernel value itself, and they set
///   [`NATIVE_TILES`](GemmKernel::NATIVE_TILES) because they write exactly the valid part of the
///   tile (no scratch tile; and tasks may then split C by columns too).
///
/// [`microkernel`]: GemmKernel::microkernel
///
/// # Packed layouts
/// Depth (the `k` index) is grouped by [`KGROUP`](GemmKernel::KGROUP) = `g` (1 for float
/// kernels; 4 for VNNI, whose instruction multiplies 4 adjacent bytes and adds them into one
/// i32 lane). With `kc` already rounded up to a multiple of `g`:
///
/// * a packed **A micro-panel** holds rows `i ∈ 0..MR` and depths `p ∈ 0..kc` at
///   `((p / g)·MR + i)·g + p % g`;
/// * a packed **B micro-panel** holds columns `j ∈ 0..NR` and depths `p` at
///   `((p / g)·NR + j)·g + p % g`.
///
/// For `g = 1` that is the classic layout: `MR` consecutive A values per depth step, `NR`
/// consecutive B values per depth step. Rows, columns and depths past the matrix edge are
/// packed as zeros (`Default`), so the microkernel never needs an edge case in `k`, and the
/// driver only trims `m`/`n` edges when it writes C. (The int8 operands use this layout with
/// `g = 4` but are packed by `crate::int8::pack`, B as offset-binary bytes whose padding is
/// 128, i.e. code 0; they reach the driver as whole-packed `Panels`.)
///
/// # Safety contract for implementors
/// The trait is safe to implement; implementations that use `unsafe` internally must check
/// the slice lengths stated on [`microkernel`](GemmKernel::microkernel) (or, for an overridden
/// [`tile`](GemmKernel::tile), the panel lengths and the tile contract stated there) before
/// touching memory, and must only be constructible when their instruction set is available.
pub trait GemmKernel: Copy + Send + Sync + std::fmt::Debug {
    /// Element of the packed A panels (e.g. `f32`, or `u8` for VNNI).
    type A: bytemuck::Pod + Default + Send + Sync + 'static;
    /// Element of the packed B panels (e.g. `f32`, or `i8` for VNNI).
    type B: bytemuck::Pod + Default + Send + Sync + 'static;
    /// Accumulator and element of C (e.g. `f32`, or `i32` for VNNI).
    type C: bytemuck::Pod + Default + Send + Sync + Add<Output = Self::C> + 'static;

    /// Rows of the register tile (rows of A per micro-panel).
    const MR: usize;
    /// Columns of the register tile (columns of B per micro-panel).
    const NR: usize;
    /// Depth grouping `g` of the packed panels; `kc` is a multiple of it.
    const KGROUP: usize = 1;
    /// Rows of A per packed block (LOOP 3 step); a multiple of `MR`.
    const MC: usize = archparam::MC;
    /// Depth of the packed blocks (LOOP 4 step); a multiple of `KGROUP`.
    const KC: usize = archparam::KC;
    /// Columns of B per packed block (LOOP 5 step); a multiple of `NR`.
    const NC: usize = archparam::NC;
    /// Whether [`tile`](GemmKernel::tile) handles edge tiles itself and writes only the valid
    /// `rows × cols` elements of a tile (never a slice spanning other columns). The driver then
    /// skips the scratch tile, and may give threads column ranges of C as well as row ranges.
    const NATIVE_TILES: bool = false;
    /// Multiply-adds (`m·n·k`) below which the driver runs a product on the calling thread.
    const PAR_MIN_MACS: usize = 1 << 21;
    /// Whether [`tile`](GemmKernel::tile) reports NaN or ±∞ among the values it writes in the
    /// last depth block ([`TileAt::last`]), i.e. among the finished elements of C. The driver
    /// then tells its caller whether the product came out all finite, which for a float
    /// product also proves both operands finite (see [`super::gemm::gemm`]).
    const FLAGS_NON_FINITE: bool = false;

    /// Rows of A per packed block (LOOP 3 step) for this product: [`MC`](GemmKernel::MC)
    /// unless a kernel takes it from its configuration. A multiple of `MR`.
    fn mc(&self) -> usize {
        Self::MC
    }

    /// Short name for logs and benchmarks (`"avx512-f32-12x32"`).
    fn name(&self) -> &'static str;

    /// Packs `src` — `rows × depth`, the rows of an A block — into consecutive `MR`-row
    /// micro-panels in the layout above, converting each element with `conv`.
    /// `out.len()` must be `pack::packed_len(rows, depth, MR, KGROUP)`.
    fn pack_a<S: bytemuck::Pod>(
        &self,
        src: MatRef<'_, S>,
        conv: impl Fn(S) -> Self::A,
        out: &mut [Self::A],
    ) {
        pack::pack_panels(src, Self::MR, Self::KGROUP, conv, out);
    }

    /// Packs `src` — `depth × cols`, a block of B — into consecutive `NR`-column micro-panels in
    /// the layout above. `out.len()` must be `pack::packed_len(cols, depth, NR, KGROUP)`.
    fn pack_b<S: bytemuck::Pod>(
        &self,
        src: MatRef<'_, S>,
        conv: impl Fn(S) -> Self::B,
        out: &mut [Self::B],
    ) {
        pack::pack_panels(src.t(), Self::NR, Self::KGROUP, conv, out);
    }

    /// The microkernel: `C_tile ← A_panel · B_panel` (or `C_tile += …` when `accumulate`).
    ///
    /// # Arguments
    /// * `kc` — depth, a multiple of `KGROUP`
    /// * `a` — packed A micro-panel, at least `kc · MR` elements
    /// * `b` — packed B micro-panel, at least `kc · NR` elements
    /// * `c` — the tile's top-left element and everything after it: row `i` of the tile is
    ///   `c[i·ldc .. i·ldc + NR]`, so `c.len() ≥ (MR − 1)·ldc + NR`
    /// * `ldc` — row stride of C (`≥ NR`)
    /// * `accumulate` — add to C instead of overwriting it
    ///
    /// Implementations panic (they never read out of bounds) if a length is too short.
    fn microkernel(
        &self,
        kc: usize,
        a: &[Self::A],
        b: &[Self::B],
        c: &mut [Self::C],
        ldc: usize,
        accumulate: bool,
    );

    /// The driver's door to the kernel: one tile of C at `at`, from a packed A micro-panel and
    /// a packed B micro-panel of depth `kc` (a multiple of `KGROUP`). Plain kernels keep this
    /// default, which runs [`microkernel`](GemmKernel::microkernel) on the full `MR × NR` tile
    /// with `at.accumulate`.
    ///
    /// # Returns
    /// With [`FLAGS_NON_FINITE`](GemmKernel::FLAGS_NON_FINITE), whether `at.last` is set and a
    /// value written is NaN or ±∞; `false` otherwise.
    ///
    /// # Safety
    /// `c` points at element `(at.row, at.col)` of C with row stride `ldc ≥ NR`. With
    /// [`NATIVE_TILES`](GemmKernel::NATIVE_TILES), the elements `c + i·ldc + j` for
    /// `i < at.rows`, `j < at.cols` must be valid for reads and writes and touched by no other
    /// thread during the call. Without it, `at` must be a full tile (`MR × NR`) and the whole
    /// span `c .. c + (MR − 1)·ldc + NR` must be valid and exclusively the caller's (the
    /// default builds one slice over it).
    unsafe fn tile(
        &self,
        kc: usize,
        a: &[Self::A],
        b: &[Self::B],
        at: &TileAt,
        c: *mut Self::C,
        ldc: usize,
    ) -> bool {
        debug_assert!(at.rows == Self::MR && at.cols == Self::NR);
        // SAFETY: the caller owns the span `c .. c + (MR − 1)·ldc + NR` exclusively and it is
        // valid (this method's contract for kernels without NATIVE_TILES).
        let c = unsafe { std::slice::from_raw_parts_mut(c, (Self::MR - 1) * ldc + Self::NR) };
        self.microkernel(kc, a, b, c, ldc, at.accumulate);
        false
    }
}

/// Where a tile of C lies in the product, as the driver hands it to
/// [`GemmKernel::tile`]: enough for a kernel to find its side data (scales of the tile's rows
/// and columns, corrections of its A micro-panel and depth block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileAt {
    /// First row of the tile in C, a multiple of `MR` (A micro-panel `row / MR`).
    pub row: usize,
    /// First column of the tile in C, a multiple of `NR` (B micro-panel `col / NR`).
    pub col: usize,
    /// Index of the depth block (LOOP 4 iteration).
    pub k_block: usize,
    /// First depth `k0` of that block (a multiple of `kc`).
    pub k0: usize,
    /// Valid rows of the tile, `1..=MR`.
    pub rows: usize,
    /// Valid columns of the tile, `1..=NR`.
    pub cols: usize,
    /// Add to C (a later depth block) instead of overwriting it (the first).
    pub accumulate: bool,
    /// The last depth block: the values the tile writes are the finished elements of C.
    pub last: bool,
}

/// The skinny path (m = 1…8 rows of A against packed B panels): what decode-time `linear`
/// runs. It streams each B micro-panel exactly once, so its speed is the memory bandwidth.
pub trait SkinnyKernel: GemmKernel {
    /// `acc[i·NR + j] += Σ_p x[i·ldx + p] · b[p·NR + j]` for `i < m`, `j < NR`, `p < kc`.
    ///
    /// # Arguments
    /// * `m` — rows of `x`, `1..=8`
    /// * `kc` — depth of this B micro-panel
    /// * `x` — `m` rows of at least `kc` values, row stride `ldx`
    /// * `b` — one packed B micro-panel, at least `kc · NR` values
    /// * `acc` — `m × NR` accumulators, row-major
    fn skinny(
        &self,
        m: usize,
        kc: usize,
        x: &[Self::A],
        ldx: usize,
        b: &[Self::B],
        acc: &mut [Self::C],
    );
}

/// What the skinny driver ([`super::gemv::skinny`]) needs of a kernel: the element types of
/// `x`, of the packed B panels and of the accumulators, the panel width and depth grouping,
/// and the per-panel step. Every [`SkinnyKernel`] is one (same types, same layout); a kernel
/// that only streams B panels packed for another kernel — f32 rows against bf16 weights packed
/// for [`avx512_bf16`] — implements it directly.
pub trait SkinnyPanel: Copy + Send + Sync {
    /// Element of the rows of X.
    type X: Copy + Send + Sync;
    /// Element of the packed B micro-panels.
    type W: bytemuck::Pod + Send + Sync;
    /// Accumulator (and output) element.
    type Acc: bytemuck::Pod + Default + Send + Sync;
    /// Columns per B micro-panel.
    const NR: usize;
    /// Depth grouping of the panels (see [`GemmKernel::KGROUP`]).
    const KGROUP: usize;

    /// `acc[i·NR + j] += Σ_p x[i·ldx + p] · b(p, j)` for `i < m ≤ 8`, `j < NR`, `p < kc`, with
    /// `b` one micro-panel of depth `kc` (at least `kc` rounded up to `KGROUP`, times `NR`).
    fn skinny_panel(
        &self,
        m: usize,
        kc: usize,
        x: &[Self::X],
        ldx: usize,
        b: &[Self::W],
        acc: &mut [Self::Acc],
    );
}

impl<K: SkinnyKernel> SkinnyPanel for K {
    type X = K::A;
    type W = K::B;
    type Acc = K::C;
    const NR: usize = <K as GemmKernel>::NR;
    const KGROUP: usize = <K as GemmKernel>::KGROUP;

    fn skinny_panel(
        &self,
        m: usize,
        kc: usize,
        x: &[K::A],
        ldx: usize,
        b: &[K::B],
        acc: &mut [K::C],
    ) {
        self.skinny(m, kc, x, ldx, b, acc);
    }
}

/// The f32 kernel chosen for this CPU. Only [`detect`] builds one, after checking the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F32Kernel {
    /// AVX-512F, 12 × 32 tile.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    Avx512(avx512::Avx512F32),
    /// AVX2 + FMA, 6 × 16 tile.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    Avx2(avx2::Avx2F32),
    /// wasm32 simd128, 4 × 8 tile.
    #[cfg(target_arch = "wasm32")]
    Wasm(wasm::WasmF32),
    /// Portable, 4 × 8 tile.
    Scalar(scalar::ScalarF32),
}

impl F32Kernel {
    /// The kernel's name.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F32Kernel::Avx512(k) => k.name(),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F32Kernel::Avx2(k) => k.name(),
            #[cfg(target_arch = "wasm32")]
            F32Kernel::Wasm(k) => k.name(),
            F32Kernel::Scalar(k) => k.name(),
        }
    }

    /// The name of this kernel running 16-bit floats widened to f32 while packing
    /// (`"convert+"` and [`name`](F32Kernel::name)).
    pub fn convert_name(&self) -> &'static str {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F32Kernel::Avx512(_) => "convert+avx512-f32-12x32",
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F32Kernel::Avx2(_) => "convert+avx2-f32-6x16",
            #[cfg(target_arch = "wasm32")]
            F32Kernel::Wasm(_) => "convert+wasm-simd128-f32-4x8",
            F32Kernel::Scalar(_) => "convert+portable-f32-4x8",
        }
    }

    /// The name of this kernel running f32 weights rounded to bf16 but stored as f32 (a CPU
    /// without AVX512-BF16): `"bf16-as-f32+"` and [`name`](F32Kernel::name).
    pub fn bf16_weights_name(&self) -> &'static str {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F32Kernel::Avx512(_) => "bf16-as-f32+avx512-f32-12x32",
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F32Kernel::Avx2(_) => "bf16-as-f32+avx2-f32-6x16",
            #[cfg(target_arch = "wasm32")]
            F32Kernel::Wasm(_) => "bf16-as-f32+wasm-simd128-f32-4x8",
            F32Kernel::Scalar(_) => "bf16-as-f32+portable-f32-4x8",
        }
    }

    /// Numerically stable softmax of each `n`-long row of `x`, in place, vectorised for this
    /// kernel's instruction set (see [`scalar::softmax_rows_portable`]).
    pub fn softmax_rows(&self, x: &mut [f32], n: usize) {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F32Kernel::Avx512(k) => k.softmax_rows(x, n),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F32Kernel::Avx2(k) => k.softmax_rows(x, n),
            _ => scalar::softmax_rows_portable(x, n),
        }
    }

    /// Every f32 kernel `cpu` can run, best first: AVX-512F, AVX2 + FMA, then the portable one
    /// (always). Where every feature is off (Miri, other architectures) only the portable
    /// kernel, plus simd128 on a wasm32 build compiled with it.
    pub fn available_on(cpu: &CpuFeatures) -> Vec<F32Kernel> {
        let mut v = Vec::new();
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            if let Some(k) = avx512::Avx512F32::new(cpu) {
                v.push(F32Kernel::Avx512(k));
            }
            if let Some(k) = avx2::Avx2F32::new(cpu) {
                v.push(F32Kernel::Avx2(k));
            }
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        let _ = cpu;
        #[cfg(target_arch = "wasm32")]
        if let Some(k) = wasm::WasmF32::new() {
            v.push(F32Kernel::Wasm(k));
        }
        v.push(F32Kernel::Scalar(scalar::ScalarF32));
        v
    }

    /// Every f32 kernel this CPU can run, best first (tests run each of them): the
    /// [`available_on`](F32Kernel::available_on) the detected [`cpu::features`].
    pub fn available() -> Vec<F32Kernel> {
        Self::available_on(cpu::features())
    }
}

/// The best f32 kernel for this CPU, chosen once and cached: AVX-512 → AVX2+FMA → portable
/// (on wasm32: simd128 when compiled with it → portable).
pub fn detect() -> F32Kernel {
    static BEST: OnceLock<F32Kernel> = OnceLock::new();
    *BEST.get_or_init(|| F32Kernel::available()[0])
}

/// Runs `$body` with `$k` bound to the concrete kernel inside an [`F32Kernel`], so generic code
/// is monomorphised once per instruction set and dispatched with one `match`.
#[macro_export]
macro_rules! with_f32_kernel {
    ($kernel:expr, $k:ident => $body:expr) => {
        match $kernel {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            $crate::blocked::kernel::F32Kernel::Avx512($k) => $body,
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            $crate::blocked::kernel::F32Kernel::Avx2($k) => $body,
            #[cfg(target_arch = "wasm32")]
            $crate::blocked::kernel::F32Kernel::Wasm($k) => $body,
            $crate::blocked::kernel::F32Kernel::Scalar($k) => $body,
        }
    };
}
pub use crate::with_f32_kernel;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::blocked::pack::packed_len;

    /// Checks one kernel on random packed panels against a direct f64 sum, for both
    /// `accumulate` settings, a C stride wider than the tile, and several depths.
    pub(crate) fn check_kernel<K: GemmKernel>(
        k: K,
        to_a: impl Fn(f64) -> K::A,
        to_b: impl Fn(f64) -> K::B,
        c_f64: impl Fn(K::C) -> f64,
        tol: f64,
    ) {
        let (mr, nr, g) = (K::MR, K::NR, K::KGROUP);
        let mut rng = nanotensor_core::rng::Rng::new(7);
        for kc in [g, 3 * g, 17 * g, 64 * g] {
            let a: Vec<f64> = (0..kc * mr)
                .map(|_| rng.uniform(-3.0, 3.0).round())
                .collect();
            let b: Vec<f64> = (0..kc * nr)
                .map(|_| rng.uniform(-3.0, 3.0).round())
                .collect();
            // Pack through the kernel's own pack functions from plain row-major matrices.
            let mut pa = vec![K::A::default(); packed_len(mr, kc, mr, g)];
            k.pack_a(MatRef::new(&a, mr, kc, kc, 1), &to_a, &mut pa);
            let mut pb = vec![K::B::default(); packed_len(nr, kc, nr, g)];
            k.pack_b(MatRef::new(&b, kc, nr, nr, 1), &to_b, &mut pb);
            let ldc = nr + 3;
            for accumulate in [false, true] {
                let mut c = vec![K::C::default(); (mr - 1) * ldc + nr];
                // Pre-fill C with the product itself so accumulate doubles it.
                let mut expect = vec![0.0; mr * nr];
                for i in 0..mr {
                    for j in 0..nr {
                        expect[i * nr + j] = (0..kc).map(|p| a[i * kc + p] * b[p * nr + j]).sum();
                    }
                }
                if accumulate {
                    k.microkernel(kc, &pa, &pb, &mut c, ldc, false);
                }
                k.microkernel(kc, &pa, &pb, &mut c, ldc, accumulate);
                let f = if accumulate { 2.0 } else { 1.0 };
                for i in 0..mr {
                    for j in 0..nr {
                        let got = c_f64(c[i * ldc + j]);
                        let want = f * expect[i * nr + j];
                        assert!(
                            (got - want).abs() <= tol,
                            "{} kc={kc} ({i},{j}): {got} vs {want}",
                            k.name()
                        );
                    }
                }
            }
        }
    }

    /// The first tile of a one-depth-block product with `rows × cols` valid elements.
    fn tile_at(rows: usize, cols: usize, accumulate: bool, last: bool) -> TileAt {
        TileAt {
            row: 0,
            col: 0,
            k_block: 0,
            k0: 0,
            rows,
            cols,
            accumulate,
            last,
        }
    }

    /// A kernel with `NATIVE_TILES` computes every edge tile (`rows × cols` of the full panels)
    /// exactly, overwriting or accumulating, and leaves every element outside it untouched.
    fn check_native_edges<K: GemmKernel<A = f32, B = f32, C = f32>>(k: K) {
        if !K::NATIVE_TILES {
            return;
        }
        let (mr, nr) = (K::MR, K::NR);
        let mut rng = nanotensor_core::rng::Rng::new(11);
        let kc = 9;
        let a: Vec<f32> = (0..kc * mr)
            .map(|_| rng.uniform(-3.0, 3.0).round() as f32)
            .collect();
        let b: Vec<f32> = (0..kc * nr)
            .map(|_| rng.uniform(-3.0, 3.0).round() as f32)
            .collect();
        let mut pa = vec![0.0f32; kc * mr];
        k.pack_a(MatRef::new(&a, mr, kc, kc, 1), |x| x, &mut pa);
        let mut pb = vec![0.0f32; kc * nr];
        k.pack_b(MatRef::new(&b, kc, nr, nr, 1), |x| x, &mut pb);
        let ldc = nr + 5;
        const CANARY: f32 = -12345.0;
        for rows in 1..=mr {
            for cols in [1, 2, nr / 2 - 1, nr / 2, nr / 2 + 1, nr - 1, nr] {
                for accumulate in [false, true] {
                    let mut c = vec![CANARY; mr * ldc];
                    let at = tile_at(rows, cols, accumulate, true);
                    // SAFETY: `c` holds MR rows of `ldc ≥ NR` elements, all ours.
                    let flagged = unsafe { k.tile(kc, &pa, &pb, &at, c.as_mut_ptr(), ldc) };
                    // Small integers in, small integers out: nothing to flag.
                    assert!(!flagged, "{} flagged a finite tile", k.name());
                    for i in 0..mr {
                        for j in 0..ldc {
                            let got = c[i * ldc + j];
                            if i < rows && j < cols {
                                let sum: f32 = (0..kc).map(|p| a[i * kc + p] * b[p * nr + j]).sum();
                                let want = if accumulate { CANARY + sum } else { sum };
                                assert_eq!(got, want, "{} {rows}x{cols} ({i},{j})", k.name());
                            } else {
                                assert_eq!(
                                    got,
                                    CANARY,
                                    "{} {rows}x{cols} wrote ({i},{j})",
                                    k.name()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// A kernel with `FLAGS_NON_FINITE` flags a tile exactly when `last` is set and a value it
    /// writes is NaN or ±∞: from a special value in its A rows or B columns, from an infinite
    /// old C value it accumulates onto, or from overflow; and never from values outside the
    /// tile's valid rows and columns (a special value in a padded B lane or in C past `cols`).
    fn check_flags<K: GemmKernel<A = f32, B = f32, C = f32>>(k: K) {
        if !K::FLAGS_NON_FINITE {
            return;
        }
        let (mr, nr, kc) = (K::MR, K::NR, 5);
        let ldc = nr + 3;
        // Runs one tile on A (`kc × MR` packed values) and B (`kc × NR`) over `c`.
        let run = |pa: &[f32], pb: &[f32], c: &mut [f32], rows, cols, accumulate, last| {
            let at = tile_at(rows, cols, accumulate, last);
            // SAFETY: `c` holds MR rows of `ldc ≥ NR` elements, all ours.
            unsafe { k.tile(kc, pa, pb, &at, c.as_mut_ptr(), ldc) }
        };
        let ones_a = vec![1.0f32; kc * mr];
        let ones_b = vec![1.0f32; kc * nr];
        for rows in [1, mr / 2, mr] {
            for cols in [1, nr / 2 + 1, nr] {
                for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut c = vec![0.0f32; mr * ldc];
                    // In A: row `rows − 1`, any depth, meets a B of ones (and zeros: ∞·0).
                    let mut pa = ones_a.clone();
                    pa[2 * mr + rows - 1] = special;
                    let zeros_b = vec![0.0f32; kc * nr];
                    for pb in [&ones_b, &zeros_b] {
                        assert!(
                            run(&pa, pb, &mut c, rows, cols, false, true),
                            "{rows}x{cols} A"
                        );
                        assert!(!run(&pa, pb, &mut c, rows, cols, false, false), "not last");
                    }
                    // In B: the last valid column is flagged, a padded lane past it is not.
                    let mut pb = ones_b.clone();
                    pb[3 * nr + cols - 1] = special;
                    assert!(run(&ones_a, &pb, &mut c, rows, cols, false, true), "B col");
                    // In a padded A row (past `rows`): never multiplied, never flagged.
                    if rows < mr {
                        let mut pa = ones_a.clone();
                        pa[2 * mr + rows] = special;
                        assert!(!run(&pa, &ones_b, &mut c, rows, cols, false, true), "A pad");
                    }
                    if cols < nr {
                        let mut pb = ones_b.clone();
                        pb[3 * nr + cols] = special;
                        assert!(!run(&ones_a, &pb, &mut c, rows, cols, false, true), "pad");
                    }
                    // In the old C: accumulated onto when valid, ignored past `cols`.
                    let mut c = vec![0.0f32; mr * ldc];
                    c[(rows - 1) * ldc + cols - 1] = special;
                    if cols < nr {
                        c[cols] = special;
                    }
                    assert!(
                        run(&ones_a, &ones_b, &mut c, rows, cols, true, true),
                        "old C"
                    );
                    let mut c = vec![0.0f32; mr * ldc];
                    if cols < nr {
                        c[cols] = special;
                        let flagged = run(&ones_a, &ones_b, &mut c, rows, cols, true, true);
                        assert!(!flagged, "C past the valid columns");
                    }
                }
                // Finite operands whose sum overflows.
                let big = vec![f32::MAX; kc * mr];
                let mut c = vec![0.0f32; mr * ldc];
                assert!(
                    run(&big, &ones_b, &mut c, rows, cols, false, true),
                    "overflow"
                );
                assert!(
                    !run(&ones_a, &ones_b, &mut c, rows, cols, false, true),
                    "finite"
                );
            }
        }
    }

    #[test]
    fn flagging_kernels_flag_exactly_the_non_finite_tiles() {
        for kern in F32Kernel::available() {
            with_f32_kernel!(kern, k => check_flags(k));
        }
    }

    #[test]
    fn native_edge_tiles_write_exactly_the_valid_part() {
        for kern in F32Kernel::available() {
            with_f32_kernel!(kern, k => check_native_edges(k));
        }
    }

    #[test]
    fn every_available_f32_kernel_matches_direct_sums() {
        for kern in F32Kernel::available() {
            with_f32_kernel!(kern, k => check_kernel(k, |x| x as f32, |x| x as f32, |c| c as f64, 0.0));
        }
    }

    #[test]
    fn f64_portable_kernel_matches_direct_sums() {
        check_kernel(scalar::ScalarF64, |x| x, |x| x, |c| c, 0.0);
    }

    #[test]
    fn skinny_kernels_match_direct_sums() {
        let mut rng = nanotensor_core::rng::Rng::new(3);
        for kern in F32Kernel::available() {
            with_f32_kernel!(kern, k => {
                let nr = k_nr(&k);
                // Depth 64 natively; 17 under Miri, where only the portable loop runs.
                let deep = if cfg!(miri) { 17 } else { 64 };
                for m in 1..=8 {
                    for kc in [1, 5, deep] {
                        let ldx = kc + 2;
                        let x: Vec<f32> = (0..m * ldx).map(|_| rng.uniform(-2.0, 2.0).round() as f32).collect();
                        let b: Vec<f32> = (0..kc * nr).map(|_| rng.uniform(-2.0, 2.0).round() as f32).collect();
                        let mut acc = vec![1.0f32; m * nr];
                        k.skinny(m, kc, &x, ldx, &b, &mut acc);
                        for i in 0..m {
                            for j in 0..nr {
                                let want = 1.0 + (0..kc).map(|p| x[i * ldx + p] * b[p * nr + j]).sum::<f32>();
                                assert_eq!(acc[i * nr + j], want, "{} m={m} kc={kc}", k.name());
                            }
                        }
                    }
                }
            });
        }
    }

    fn k_nr<K: GemmKernel>(_: &K) -> usize {
        K::NR
    }

    #[test]
    fn vectorised_exp_is_accurate_and_exact_at_the_edges() {
        // Every 0.005 over [-100, 0] natively; every 0.05 under Miri (slow).
        let (points, step) = if cfg!(miri) {
            (2000, 0.05)
        } else {
            (20000, 0.005)
        };
        for i in 0..=points {
            let x = -100.0 + i as f32 * step;
            let got = scalar::exp_nonpositive(x) as f64;
            let want = (x as f64).exp();
            if x < -87.0 {
                assert_eq!(got, 0.0);
            } else {
                assert!(
                    (got - want).abs() <= 3e-7 * want,
                    "exp({x}) = {got} vs {want}"
                );
            }
        }
        assert_eq!(scalar::exp_nonpositive(0.0), 1.0);
        assert_eq!(scalar::exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn every_softmax_matches_the_f64_reference() {
        let mut rng = nanotensor_core::rng::Rng::new(11);
        for n in [1, 5, 16, 33, 100] {
            let mut x: Vec<f32> = (0..3 * n)
                .map(|_| rng.uniform(-30.0, 30.0) as f32)
                .collect();
            x[0] = f32::NEG_INFINITY; // a masked entry
            x[n..2 * n].fill(f32::NEG_INFINITY); // a fully masked row
            let reference = nanotensor_core::reference::softmax_rows_f64(
                &x.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                n,
            );
            for kern in F32Kernel::available() {
                let mut y = x.clone();
                kern.softmax_rows(&mut y, n);
                let cmp = nanotensor_core::reference::compare(&y, &reference).expect("same length");
                assert!(cmp.passes(1e-12), "{} n={n}: {cmp:?}", kern.name());
                assert!(y[n..2 * n].iter().all(|&v| v == 0.0));
            }
        }
    }

    #[test]
    fn convert_names_name_the_f32_kernel() {
        for kern in F32Kernel::available() {
            assert_eq!(kern.convert_name(), format!("convert+{}", kern.name()));
            assert_eq!(
                kern.bf16_weights_name(),
                format!("bf16-as-f32+{}", kern.name())
            );
        }
    }

    #[test]
    fn detect_is_stable_and_best() {
        assert_eq!(detect(), detect());
        assert_eq!(detect(), F32Kernel::available()[0]);
        let portable = F32Kernel::available_on(&CpuFeatures::NONE);
        assert_eq!(portable.last(), Some(&F32Kernel::Scalar(scalar::ScalarF32)));
        #[cfg(not(target_arch = "wasm32"))]
        assert_eq!(portable.len(), 1);
    }
}
