//! wasm32 simd128 f32 microkernel, `MR × NR = 4 × 8`.
//!
//! WebAssembly has no run-time feature detection: a module that contains simd128 instructions
//! fails to load on an engine without them. This kernel is therefore offered by
//! [`super::detect`] only when the crate is compiled with `-C target-feature=+simd128`;
//! otherwise the portable kernel runs. 4 rows × 2 vectors of 4 lanes = 8 accumulators,
//! which every engine maps to registers on x86-64 (16 xmm) and aarch64 (32 v-registers).
//!
//! Built with `+relaxed-simd` as well, each multiply-add is one `f32x4.relaxed_madd`, which
//! engines lower to a fused multiply-add on CPUs that have one: half the instructions of a
//! multiply then an add, and one rounding instead of two. The web
//! demo builds both modules and loads the relaxed one only where the engine validates it.

use core::arch::wasm32::*;

use super::{GemmKernel, SkinnyKernel};

const MR: usize = 4;
const NR: usize = 8;

/// The simd128 f32 kernel. Only constructible when compiled with simd128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WasmF32 {
    _checked: (),
}

impl WasmF32 {
    /// The kernel, if this build targets simd128.
    pub fn new() -> Option<Self> {
        cfg!(target_feature = "simd128").then_some(WasmF32 { _checked: () })
    }
}

impl GemmKernel for WasmF32 {
    type A = f32;
    type B = f32;
    type C = f32;
    const MR: usize = MR;
    const NR: usize = NR;

    fn name(&self) -> &'static str {
        "wasm-simd128-f32-4x8"
    }

    fn microkernel(&self, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, acc: bool) {
        super::check_tile_lengths(kc, (MR, NR), a.len(), b.len(), c.len(), ldc);
        // SAFETY: `self` exists only in a simd128 build (see `new`); the lengths of `a`, `b`
        // and `c` were checked by `check_tile_lengths` against what `kernel_4x8` reads and
        // writes.
        unsafe { kernel_4x8(kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, acc) }
    }
}

impl SkinnyKernel for WasmF32 {
    fn skinny(&self, m: usize, kc: usize, x: &[f32], ldx: usize, b: &[f32], acc: &mut [f32]) {
        assert!(
            m >= 1 && b.len() >= kc * NR && acc.len() >= m * NR,
            "skinny: short buffers"
        );
        assert!(x.len() >= (m - 1) * ldx + kc, "skinny: short x");
        for (i, row) in acc.chunks_exact_mut(NR).take(m).enumerate() {
            // SAFETY: `self` exists only in a simd128 build; row `i` of `x` holds `kc` values
            // from `i·ldx` and `b` holds `kc·NR`, both checked above; `row` is NR long.
            unsafe { skinny_row(kc, x.as_ptr().add(i * ldx), b.as_ptr(), row.as_mut_ptr()) }
        }
    }
}

/// One row of the skinny product: `acc[j] += Σ_p x[p] · b[p·8 + j]`, `j < 8`, with the eight
/// sums in two registers for the whole depth. The packed panel streams once per row; at decode
/// (`m = 1`) that is once in all, and for a few rows the panel (`kc · 8 · 4` bytes, 32 KiB at
/// `kc` = 1024) is re-read from L1/L2.
///
/// # Safety
/// simd128 must be enabled; `x` readable for `kc` floats, `b` for `kc·8`, `acc` read-writable
/// for 8.
#[target_feature(enable = "simd128")]
unsafe fn skinny_row(kc: usize, x: *const f32, b: *const f32, acc: *mut f32) {
    // SAFETY: `acc` holds 8 floats (caller contract); wasm loads need no alignment.
    let (mut s0, mut s1) = unsafe {
        (
            v128_load(acc as *const v128),
            v128_load(acc.add(4) as *const v128),
        )
    };
    for p in 0..kc {
        // SAFETY: depth step `p < kc` of `x` and of the panel are readable (caller contract).
        let (xp, b0, b1) = unsafe {
            let bp = b.add(p * NR);
            (
                v128_load32_splat(x.add(p) as *const u32),
                v128_load(bp as *const v128),
                v128_load(bp.add(4) as *const v128),
            )
        };
        s0 = madd(xp, b0, s0);
        s1 = madd(xp, b1, s1);
    }
    // SAFETY: as for the loads above.
    unsafe {
        v128_store(acc as *mut v128, s0);
        v128_store(acc.add(4) as *mut v128, s1);
    }
}

/// `C[0..4, 0..8] (+)= Σ_p A[p·4 + i] · B[p·8 + j]`.
///
/// # Safety
/// simd128 must be enabled; `a` readable for `kc·4`, `b` for `kc·8` floats; `c` writable for
/// rows `i < 4` at `c + i·ldc`, 8 floats each.
#[target_feature(enable = "simd128")]
unsafe fn kernel_4x8(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let mut acc = [[f32x4_splat(0.0); 2]; MR];
    for p in 0..kc {
        // SAFETY: depth step `p < kc` of both panels is readable (caller contract).
        let (b0, b1) = unsafe {
            let bp = b.add(p * NR);
            (
                v128_load(bp as *const v128),
                v128_load(bp.add(4) as *const v128),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: `i < 4` values of depth step `p` of A are readable.
            let ai = unsafe { v128_load32_splat(a.add(p * MR + i) as *const u32) };
            row[0] = madd(ai, b0, row[0]);
            row[1] = madd(ai, b1, row[1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row `i < 4` of the C tile is writable for 8 floats (caller contract).
        unsafe {
            let ci = c.add(i * ldc);
            let (mut r0, mut r1) = (row[0], row[1]);
            if accumulate {
                r0 = f32x4_add(r0, v128_load(ci as *const v128));
                r1 = f32x4_add(r1, v128_load(ci.add(4) as *const v128));
            }
            v128_store(ci as *mut v128, r0);
            v128_store(ci.add(4) as *mut v128, r1);
        }
    }
}

/// `a·b + c` per lane: one fused multiply-add where the engine offers relaxed SIMD (compiled
/// with `+relaxed-simd`), else a multiply then an add.
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(c, f32x4_mul(a, b))
    }
}
