//! Portable int8 microkernel (any target, including wasm32): `MR = 4`, `NR = 16`.
//!
//! Computes the true products `a · (b − 128)` directly in i32, so it ignores the offset
//! correction `corr` (which only the VNNI kernel needs).

use super::TileOut;

const MR: usize = 4;
const NR: usize = 16;

/// See [`super`] for the maths; inputs are checked by [`super::Kernel::tile`].
///
/// # Safety
/// `out.c` must be valid for the tile, unshared (the contract of [`super::Kernel::tile`]).
pub(super) unsafe fn tile(
    rows: usize,
    kc4: usize,
    a: &[i8],
    _corr: &[i32],
    b: &[u8],
    out: &TileOut<'_>,
) {
    let mut acc = [[0i32; NR]; MR];
    for g in 0..kc4 {
        let ag = &a[g * MR * 4..(g + 1) * MR * 4];
        let bg = &b[g * NR * 4..(g + 1) * NR * 4];
        for (i, acc_i) in acc.iter_mut().enumerate().take(rows) {
            let ai = &ag[i * 4..i * 4 + 4];
            for (j, acc_ij) in acc_i.iter_mut().enumerate() {
                let bj = &bg[j * 4..j * 4 + 4];
                let mut s = 0i32;
                for t in 0..4 {
                    s += ai[t] as i32 * (bj[t] as i32 - 128);
                }
                // Exact while the k range is ≤ K_MAX; wrapping matches the SIMD kernels.
                *acc_ij = acc_ij.wrapping_add(s);
            }
        }
    }
    for (i, acc_i) in acc.iter().enumerate().take(rows) {
        // SAFETY: row i of the tile holds `cols` elements the caller lets us own for this call.
        let crow = unsafe { std::slice::from_raw_parts_mut(out.c.add(i * out.ldc), out.cols) };
        for (j, c) in crow.iter_mut().enumerate() {
            let v = acc_i[j] as f32 * (out.rs[i] * out.cs[j]);
            *c = if out.accumulate { *c + v } else { v };
        }
    }
}

/// Per-block activation scales (see [`super`]): the true block sums, scaled per block into f32.
///
/// # Safety
/// As [`tile`].
pub(super) unsafe fn tile_blocks(
    rows: usize,
    kc4: usize,
    blk4: usize,
    a: &[i8],
    bs: &[f32],
    b: &[u8],
    out: &TileOut<'_>,
) {
    let mut facc = [[0f32; NR]; MR];
    for (blk, g0) in (0..kc4).step_by(blk4).enumerate() {
        let mut acc = [[0i32; NR]; MR];
        for g in g0..(g0 + blk4).min(kc4) {
            let ag = &a[g * MR * 4..(g + 1) * MR * 4];
            let bg = &b[g * NR * 4..(g + 1) * NR * 4];
            for (i, acc_i) in acc.iter_mut().enumerate().take(rows) {
                let ai = &ag[i * 4..i * 4 + 4];
                for (j, acc_ij) in acc_i.iter_mut().enumerate() {
                    let bj = &bg[j * 4..j * 4 + 4];
                    for t in 0..4 {
                        // |block sum| ≤ 127²·512 fits i32 by far.
                        *acc_ij += ai[t] as i32 * (bj[t] as i32 - 128);
                    }
                }
            }
        }
        for i in 0..rows {
            let s = bs[blk * MR + i];
            for j in 0..NR {
                facc[i][j] += acc[i][j] as f32 * s;
            }
        }
    }
    for (i, facc_i) in facc.iter().enumerate().take(rows) {
        // SAFETY: row i of the tile holds `cols` elements the caller lets us own for this call.
        let crow = unsafe { std::slice::from_raw_parts_mut(out.c.add(i * out.ldc), out.cols) };
        for (j, c) in crow.iter_mut().enumerate() {
            let v = facc_i[j] * out.cs[j];
            *c = if out.accumulate { *c + v } else { v };
        }
    }
}
