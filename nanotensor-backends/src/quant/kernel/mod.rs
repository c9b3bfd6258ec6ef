//! The dot kernels of the quant backend and the one door to them: [`Kernel::best`].
//!
//! A kernel computes `y = Σ_j W[o, j]·x[r, j]` for one weight row `o` in its stored block format
//! and one activation row `r` quantized to 8-bit blocks ([`super::act`]), per block an exact
//! integer sum scaled in f32. [`portable`] is the reference; `x86` holds the AVX2 and AVX-512
//! VNNI kernels (the same integer sums, another f32 rounding order).
//!
//! Every [`Kernel`] is built through [`KernelKind::runs_on`] with the detected CPU features
//! (`crate::cpu`): that check is what makes calling the `#[target_feature]` functions sound.

#[cfg(target_arch = "x86_64")]
mod act_x86;
pub mod portable;
#[cfg(target_arch = "x86_64")]
mod tile_x86;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::act::ActRow;
use super::act::{QActs, QK};
use super::layout::F16;
use super::tile::{TileActs, TileOut, WTile};
use crate::cpu::CpuFeatures;
use nanotensor_core::QuantFormat;
use nanotensor_core::Result;

/// The instruction sets a quant kernel can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// AVX-512 VNNI (`vpdpbusd` on 256-bit vectors).
    Avx512Vnni,
    /// AVX2 (`vpmaddubsw` + `vpmaddwd`).
    Avx2,
    /// wasm32 simd128 (`i32x4.dot_i16x8_s` on widened codes), in a build compiled with
    /// simd128; the multi-row (prefill) tiles run the portable kernel there.
    WasmSimd128,
    /// Plain Rust, any target (including wasm32).
    Portable,
}

impl KernelKind {
    /// The kernel's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Avx512Vnni => "avx512vnni-q8-dot",
            KernelKind::Avx2 => "avx2-q8-dot",
            KernelKind::WasmSimd128 => "wasm-simd128-q8-dot",
            KernelKind::Portable => "portable-q8-dot",
        }
    }

    /// Whether `cpu` runs it.
    pub fn runs_on(self, cpu: &CpuFeatures) -> bool {
        let x86 = cfg!(target_arch = "x86_64");
        match self {
            KernelKind::Avx512Vnni => {
                x86 && cpu.avx2
                    && cpu.fma
                    && cpu.f16c
                    && cpu.avx512f
                    && cpu.avx512vl
                    && cpu.avx512vnni
            }
            KernelKind::Avx2 => x86 && cpu.avx2 && cpu.fma && cpu.f16c,
            KernelKind::WasmSimd128 => {
                cfg!(all(target_arch = "wasm32", target_feature = "simd128"))
            }
            KernelKind::Portable => true,
        }
    }
}

/// A kernel this CPU runs (constructed only through [`Kernel::best`] or [`Kernel::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(KernelKind);

impl Kernel {
    /// The fastest kernel `cpu` runs.
    pub fn best(cpu: &CpuFeatures) -> Kernel {
        let kind = [
            KernelKind::Avx512Vnni,
            KernelKind::Avx2,
            KernelKind::WasmSimd128,
        ]
        .into_iter()
        .find(|k| k.runs_on(cpu))
        .unwrap_or(KernelKind::Portable);
        Kernel(kind)
    }

    /// `kind` if this CPU runs it.
    pub fn new(kind: KernelKind) -> Option<Kernel> {
        kind.runs_on(crate::cpu::features()).then_some(Kernel(kind))
    }

    /// Which kernel.
    pub fn kind(self) -> KernelKind {
        self.0
    }

    /// The dot product of weight row `w` (blocks of `fmt`) with activation row `a`.
    #[inline]
    pub fn dot(self, fmt: QuantFormat, w: &[u8], a: ActRow<'_>, h: &F16) -> f32 {
        self.dots(fmt, [w], a, h)[0]
    }

    /// The dot products of the `R` weight rows `w` (blocks of `fmt`) with activation row `a`:
    /// the x86 kernels run the rows together, sharing each activation block's load.
    ///
    /// # Panics
    /// If a row of `w` does not hold as many values as `a` (whole blocks).
    #[inline]
    pub fn dots<const R: usize>(
        self,
        fmt: QuantFormat,
        w: [&[u8]; R],
        a: ActRow<'_>,
        h: &F16,
    ) -> [f32; R] {
        match self.0 {
            // SAFETY: a `Kernel` of this kind exists only if `runs_on` saw its features; the
            // kernel asserts the rows' lengths.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni => unsafe { x86::dot_vnni(fmt, w, a) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => unsafe { x86::dot_avx2(fmt, w, a) },
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            KernelKind::WasmSimd128 => w.map(|w| wasm::dot(fmt, w, a, h)),
            _ => w.map(|w| portable::dot(fmt, w, a, h)),
        }
    }

    /// Whether this kernel's weight tiles keep Q8_0 codes signed ([`WTile::signed_q8`]).
    pub fn tile_signed_q8(self) -> bool {
        self.0 == KernelKind::Avx2
    }

    /// The tile product: row `r` of `out` = activation row `r` of `a` times each row of the
    /// weight tile `w` (decoded with [`Kernel::tile_signed_q8`]), for `r < out.rows()`.
    #[inline]
    pub fn tile(self, w: &WTile, a: &TileActs, out: &mut TileOut<'_>) {
        debug_assert_eq!(w.signed_q8, self.tile_signed_q8());
        match self.0 {
            // SAFETY: a `Kernel` of this kind exists only if `runs_on` saw its features (a
            // superset of the tile kernel's); the kernel checks the buffers' shapes.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni => unsafe { tile_x86::tile_vnni(w, a, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => unsafe { tile_x86::tile_avx2(w, a, out) },
            _ => super::tile::tile_portable(w, a, out),
        }
    }

    /// [`WTile::decode`] (the same tile) with this kernel's instructions.
    pub fn decode_tile(
        self,
        tile: &mut WTile,
        fmt: QuantFormat,
        w: &[u8],
        row_bytes: usize,
        rows: usize,
        h: &F16,
    ) {
        match self.0 {
            // SAFETY: both x86 kinds imply AVX2 and FMA (`runs_on`).
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni | KernelKind::Avx2 => unsafe {
                tile_x86::decode_avx2(tile, fmt, w, row_bytes, rows, h)
            },
            _ => tile.decode(fmt, w, row_bytes, rows, h),
        }
    }

    /// [`super::act::quantize_block`] (bit for bit) with this kernel's instructions.
    #[inline]
    pub fn quantize_block(self, x: &[f32; QK], q: &mut [i8; QK]) -> (f32, i16, i16) {
        match self.0 {
            // SAFETY: both x86 kinds imply AVX2 and FMA (`runs_on`).
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni | KernelKind::Avx2 => unsafe {
                act_x86::quantize_block_avx2(x, q)
            },
            _ => super::act::quantize_block(x, q),
        }
    }

    /// `rows` rows of `k` values of `x` quantized into the tile layout: `ta` as
    /// [`QActs::quantize`] then [`TileActs::build`] make it (`scratch` is the `QActs` of the
    /// portable path).
    ///
    /// # Errors
    /// [`nanotensor_core::Error::NonFinite`] naming `x` and the first NaN/∞.
    pub fn quantize_tile(
        self,
        x: &[f32],
        rows: usize,
        k: usize,
        scratch: &mut QActs,
        ta: &mut TileActs,
    ) -> Result<()> {
        #[cfg(target_arch = "x86_64")]
        if matches!(self.0, KernelKind::Avx512Vnni | KernelKind::Avx2)
            // SAFETY: both x86 kinds imply AVX2 and FMA (`runs_on`).
            && unsafe { act_x86::quantize_tile_avx2(x, rows, k, ta) }
        {
            return Ok(());
        }
        // The portable path, which also finds and names a NaN or infinity.
        scratch.quantize_with(self, x, rows, k)?;
        ta.build(scratch, rows);
        Ok(())
    }
}
