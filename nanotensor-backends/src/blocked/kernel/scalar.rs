//! Portable microkernels: no intrinsics and no `unsafe`, still register-blocked.
//!
//! The accumulators are a fixed-size `[[T; NR]; MR]` array and every loop bound is a constant,
//! so the compiler keeps the tile in vector registers and vectorises the `NR` loop with whatever
//! the target offers (SSE2 on baseline x86-64, NEON on aarch64, simd128 on wasm32 when enabled).

use super::{GemmKernel, SkinnyKernel};

/// `C_tile (+)= Σ_p a[p·MR + i] · b[p·NR + j]` with a constant-size accumulator tile.
#[inline(always)]
fn tile<T, const MR: usize, const NR: usize>(
    kc: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
) where
    T: Copy + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    assert!(
        a.len() >= kc * MR && b.len() >= kc * NR,
        "microkernel: short panel"
    );
    assert!(c.len() >= (MR - 1) * ldc + NR, "microkernel: short C tile");
    let mut acc = [[T::default(); NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(kc) {
        let ap: &[T; MR] = ap.try_into().expect("chunk of MR");
        let bp: &[T; NR] = bp.try_into().expect("chunk of NR");
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] = acc[i][j] + ap[i] * bp[j];
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        let out = &mut c[i * ldc..i * ldc + NR];
        for (o, &v) in out.iter_mut().zip(row) {
            *o = if accumulate { *o + v } else { v };
        }
    }
}

/// Portable f32 kernel, 4 × 8 tile (eight 4-lane accumulators on SSE2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ScalarF32;

impl GemmKernel for ScalarF32 {
    type A = f32;
    type B = f32;
    type C = f32;
    const MR: usize = 4;
    const NR: usize = 8;

    fn name(&self) -> &'static str {
        "portable-f32-4x8"
    }

    fn microkernel(&self, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, acc: bool) {
        tile::<f32, 4, 8>(kc, a, b, c, ldc, acc);
    }
}

impl SkinnyKernel for ScalarF32 {
    fn skinny(&self, m: usize, kc: usize, x: &[f32], ldx: usize, b: &[f32], acc: &mut [f32]) {
        skinny_portable(Self::NR, m, kc, x, ldx, b, acc);
    }
}

/// Portable f64 kernel, 4 × 4 tile: `f64` on CPUs without AVX2+FMA (and on wasm32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ScalarF64;

impl GemmKernel for ScalarF64 {
    type A = f64;
    type B = f64;
    type C = f64;
    const MR: usize = 4;
    const NR: usize = 4;

    fn name(&self) -> &'static str {
        "portable-f64-4x4"
    }

    fn microkernel(&self, kc: usize, a: &[f64], b: &[f64], c: &mut [f64], ldc: usize, acc: bool) {
        tile::<f64, 4, 4>(kc, a, b, c, ldc, acc);
    }
}

impl SkinnyKernel for ScalarF64 {
    fn skinny(&self, m: usize, kc: usize, x: &[f64], ldx: usize, b: &[f64], acc: &mut [f64]) {
        skinny_portable(Self::NR, m, kc, x, ldx, b, acc);
    }
}

/// Portable skinny update `acc[i·nr + j] += Σ_p x[i·ldx + p] · b[p·nr + j]` (see
/// [`SkinnyKernel::skinny`]). Loop order p → i → j keeps each B row in registers for all `m`
/// rows, and the `j` loop vectorises.
#[inline(always)]
pub fn skinny_portable<T>(
    nr: usize,
    m: usize,
    kc: usize,
    x: &[T],
    ldx: usize,
    b: &[T],
    acc: &mut [T],
) where
    T: Copy + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    assert!(
        m >= 1 && b.len() >= kc * nr && acc.len() >= m * nr,
        "skinny: short buffers"
    );
    assert!(x.len() >= (m - 1) * ldx + kc, "skinny: short x");
    for (p, bp) in b.chunks_exact(nr).take(kc).enumerate() {
        for i in 0..m {
            let xi = x[i * ldx + p];
            for (o, &bv) in acc[i * nr..(i + 1) * nr].iter_mut().zip(bp) {
                *o = *o + xi * bv;
            }
        }
    }
}

/// `e^x` for `x ≤ 0` in f32, branch-free so that a loop over it vectorises; inputs below
/// −87 (including −∞) give exactly 0.
///
/// Range reduction `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2` (`ln 2` split in a high and a low part
/// so `r` is exact), `e^r` by its degree-7 Taylor polynomial (truncation error
/// `r⁸/8! < 6·10⁻⁹`, below half an f32 ulp), and `2ⁿ` assembled in the exponent bits. `n` is
/// rounded with the `1.5·2²³` trick, whose low mantissa bits then hold `n` as an integer.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let xc = if x < -87.0 { -87.0 } else { x };
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// Softmax of each `n`-long row of `x` in place: `y_j = e^(x_j − max) / Σ e^(x_i − max)`;
/// a row that is entirely `−∞` becomes zeros. Written in 16-lane chunks so the max, the
/// exponentials and the scaling vectorise.
#[inline(always)]
pub fn softmax_rows_portable(x: &mut [f32], n: usize) {
    const L: usize = 16;
    for row in x.chunks_exact_mut(n) {
        let mut mx = [f32::NEG_INFINITY; L];
        let mut chunks = row.chunks_exact(L);
        for ch in &mut chunks {
            for (m, &v) in mx.iter_mut().zip(ch) {
                *m = if v > *m { v } else { *m };
            }
        }
        let mut max = chunks
            .remainder()
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        for &m in &mx {
            max = if m > max { m } else { max };
        }
        if max == f32::NEG_INFINITY {
            row.fill(0.0);
            continue;
        }
        let mut sums = [0.0f32; L];
        let mut chunks = row.chunks_exact_mut(L);
        for ch in &mut chunks {
            for (s, v) in sums.iter_mut().zip(ch.iter_mut()) {
                *v = exp_nonpositive(*v - max);
                *s += *v;
            }
        }
        let mut sum: f32 = 0.0;
        for v in chunks.into_remainder() {
            *v = exp_nonpositive(*v - max);
            sum += *v;
        }
        sum += sums.iter().sum::<f32>();
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}
