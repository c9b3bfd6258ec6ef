//! Per-call (dynamic) quantization of f32 operands, vectorised.
//!
//! The maths is [`nanotensor_core::quant`]'s, expression for expression (`scale = max|x|/127`,
//! `q = clamp(round_ties_even(x·(1/scale)), ±127)`), so the codes are bit-identical to
//! [`nanotensor_core::QTensor`]'s. Each loop is written once as plain Rust and compiled twice: for the
//! baseline target and, through a `#[target_feature]` wrapper, for AVX-512 (where LLVM turns
//! `round_ties_even` into `vrndscaleps` and the loops into 16-lane code). [`Level`] picks the
//! copy at run time.

use super::pack::{scatter_quads, PackedA, PackedB};
use crate::scales::ActGranularity;
use crate::threads::Pool;
use nanotensor_core::quant::{inverse_scale, scale_for_max_abs};
use nanotensor_core::Granularity;

/// `1.5·2²³`: adding it to `|y| ≤ 2²²` leaves `round_ties_even(y)` in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;

/// [`nanotensor_core::quant::quantize_value`] in a form every SIMD width vectorises: clamp first
/// (the bounds are integers, so clamping before or after rounding agrees), then round to nearest
/// even with the `1.5·2²³` trick instead of a rounding instruction, then read the integer out of
/// the mantissa. Bit-identical to the core quantizer (tested).
#[inline(always)]
fn quantize_value(x: f32, inv: f32) -> i8 {
    let y = (x * inv).clamp(-127.0, 127.0) + MAGIC;
    (y.to_bits() as i32 - MAGIC.to_bits() as i32) as i8
}

use crate::multiversion::multiversion;
pub use crate::multiversion::{all_finite, Level};

multiversion! {
    /// `max |x|` of a finite slice (0 for an empty one). For finite floats the order of
    /// `|x|` is the order of the bit patterns with the sign cleared, so this is an integer max
    /// reduction, which vectorises at any width.
    fn max_abs(x: &[f32]) -> f32 {
        f32::from_bits(x.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)))
    }
}

multiversion! {
    /// `dst[i] = clamp(round(src[i]·inv), ±127)`.
    fn quantize_slice(src: &[f32], inv: f32, dst: &mut [i8]) {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = quantize_value(x, inv);
        }
    }
}

multiversion! {
    /// One row in blocks of `len` values (the last may be shorter): per block `b`,
    /// `scales[b] = scale_for_max_abs(max |block|)`, the block's codes into `dst`, and the sum
    /// of those codes into `sums[b]` (what the VNNI offset correction needs).
    fn quantize_blocks(src: &[f32], len: usize, scales: &mut [f32], sums: &mut [i32], dst: &mut [i8]) {
        let blocks = src.chunks(len).zip(dst.chunks_mut(len));
        for (((s, d), sc), sum) in blocks.zip(scales.iter_mut()).zip(sums.iter_mut()) {
            let m = f32::from_bits(s.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)));
            *sc = scale_for_max_abs(m);
            let inv = inverse_scale(*sc);
            for (d, &x) in d.iter_mut().zip(s) {
                *d = quantize_value(x, inv);
            }
            // |Σ| ≤ 127·512: exact in i32.
            *sum = d.iter().map(|&q| q as i32).sum();
        }
    }
}

multiversion! {
    /// Column-wise `acc[j] = max(acc[j], |row[j]|)`.
    fn max_abs_into(row: &[f32], acc: &mut [f32]) {
        for (m, v) in acc.iter_mut().zip(row) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
}

multiversion! {
    /// `dst[j] = clamp(round(src[j]·inv[j]), ±127)` (per-column reciprocals).
    fn quantize_slice_cols(src: &[f32], inv: &[f32], dst: &mut [i8]) {
        for ((d, &x), &r) in dst.iter_mut().zip(src).zip(inv) {
            *d = quantize_value(x, r);
        }
    }
}

multiversion! {
    /// Group `g` (four consecutive `k`: `rows` of B, restricted to some run of whole
    /// panels) of every panel in `out` (panel `p` at `p·panel_len`, its group `g` at `g·nr·4`):
    /// per column `c`, 4 offset-binary codes, the code of row `t` in byte `t`,
    /// `q = clamp(round(x·inv[c]), ±127) + 128`.
    ///
    /// Rows are read front to back and each panel gets one contiguous `4·nr`-byte run, so a
    /// call streams 4 rows of B once (walking a panel down all of `k` instead reads B in
    /// 128-byte strips a row apart).
    fn quantize_pack_rows(
        rows: [&[f32]; 4],
        inv: &[f32],
        nr: usize,
        panel_len: usize,
        g: usize,
        out: &mut [u8]
    ) {
        let q = |x: f32, r: f32| ((quantize_value(x, r) as u8) ^ 0x80) as u32;
        let [r0, r1, r2, r3] = rows;
        let strips = r0.chunks(nr).zip(r1.chunks(nr)).zip(r2.chunks(nr)).zip(r3.chunks(nr));
        for (p, ((((a, b), c), d), s)) in strips.zip(inv.chunks(nr)).enumerate() {
            let o = &mut out[p * panel_len + g * nr * 4..][..s.len() * 4];
            let cols = a.iter().zip(b).zip(c).zip(d).zip(s);
            for (w, ((((&x0, &x1), &x2), &x3), &r)) in o.chunks_exact_mut(4).zip(cols) {
                let word = q(x0, r) | (q(x1, r) << 8) | (q(x2, r) << 16) | (q(x3, r) << 24);
                w.copy_from_slice(&word.to_le_bytes());
            }
        }
    }
}

/// Quantizes `B: [k, n]` straight into kernel panels of width `nr` (into `packed`, whose
/// buffer is reused), with one scale for the tensor or one per column, the panels shared among
/// the workers of `pool`. Returns the `n` column scales, or `None` if `b` holds a NaN or an
/// infinity (per tensor, the scan for them is the scale's own `max |x|` pass).
#[allow(clippy::too_many_arguments)]
pub fn quantize_pack_b(
    level: Level,
    pool: Option<&Pool>,
    b: &[f32],
    k: usize,
    n: usize,
    nr: usize,
    granularity: Granularity,
    packed: &mut PackedB,
) -> Option<Vec<f32>> {
    let scales: Vec<f32> = match granularity {
        Granularity::PerTensor => {
            // +inf or NaN exactly when b holds one (checked before `scale_for_max_abs`, which
            // would turn +inf into a finite scale).
            let max = max_abs(level, &b[..k * n]);
            if !max.is_finite() {
                return None;
            }
            vec![scale_for_max_abs(max); n]
        }
        Granularity::PerRow => {
            if !all_finite(level, &b[..k * n]) {
                return None;
            }
            let mut m = vec![0.0f32; n];
            for row in b.chunks(n).take(k) {
                max_abs_into(level, row, &mut m);
            }
            m.into_iter().map(scale_for_max_abs).collect()
        }
    };
    let inv: Vec<f32> = scales.iter().map(|&s| inverse_scale(s)).collect();
    packed.reset(n, k, nr);
    let (kp, panels) = (packed.kp, packed.panels());
    let zeros = vec![0.0f32; n];
    let row = |kk: usize| {
        if kk < k {
            &b[kk * n..(kk + 1) * n]
        } else {
            &zeros[..]
        }
    };
    let threads = pool.map_or(1, Pool::threads).min(panels);
    let per_task = panels.div_ceil(threads);
    let fill = |t: usize, chunk: &mut [u8]| {
        // This task's panels cover columns j0..j1.
        let j0 = t * per_task * nr;
        let j1 = (j0 + chunk.len() / kp).min(n);
        for g in 0..kp / 4 {
            let rows = [row(4 * g), row(4 * g + 1), row(4 * g + 2), row(4 * g + 3)];
            quantize_pack_rows(
                level,
                rows.map(|r| &r[j0..j1]),
                &inv[j0..j1],
                nr,
                nr * kp,
                g,
                chunk,
            );
        }
    };
    match pool {
        Some(pool) if threads > 1 => {
            pool.for_each_chunk_mut(&mut packed.data, per_task * nr * kp, fill)
        }
        _ => fill(0, &mut packed.data),
    }
    Some(scales)
}

/// Codes quantized per staging step of [`quantize_pack_a`]: 512 bytes stay in L1.
const STAGE: usize = 512;

multiversion! {
    /// `Σ codes`, exact in i32 for up to 2²⁴ codes.
    fn sum_codes(codes: &[i8]) -> i32 {
        codes.iter().map(|&q| q as i32).sum()
    }
}

/// Quantizes A (`m × k`, finite or not) with one scale per row (per tensor: all equal) and packs
/// it for the kernels in the same pass, filling `pa` as [`PackedA::pack`] does (codes in
/// `MR`-row panels, offset corrections `128·Σ a` per row and `kc` block).
///
/// One pass instead of four (scan for NaN, quantize into a row-major code matrix, repack it
/// into panels, sum the codes again for the corrections): each row is quantized `STAGE` values
/// at a time into an L1-resident buffer, summed there, and its 4-byte groups scattered into the
/// panel. The finiteness scan is folded into the scale's `max |x|` (a NaN or infinity makes the
/// maximum, hence the scale, non-finite).
///
/// # Returns
/// The per-row scales, or `None` when `x` holds a NaN or an infinity (`pa` is then unusable;
/// the caller reports the error).
#[allow(clippy::too_many_arguments)]
pub fn quantize_pack_a(
    level: Level,
    pool: Option<&Pool>,
    x: &[f32],
    m: usize,
    k: usize,
    granularity: Granularity,
    mr: usize,
    kc: usize,
    pa: &mut PackedA,
) -> Option<Vec<f32>> {
    debug_assert!(kc.is_multiple_of(4) && kc > 0 && x.len() >= m * k);
    // `max |x|` is +inf or NaN exactly when x holds a non-finite value (checked before
    // `scale_for_max_abs`, which would turn +inf into a finite scale).
    let maxima: Vec<f32> = match granularity {
        Granularity::PerTensor => vec![max_abs(level, &x[..m * k]); m],
        Granularity::PerRow => x.chunks(k).take(m).map(|r| max_abs(level, r)).collect(),
    };
    if !maxima.iter().all(|v| v.is_finite()) {
        return None;
    }
    let scales: Vec<f32> = maxima.into_iter().map(scale_for_max_abs).collect();
    pa.reset(m, k, mr, kc);
    let (kp, kblocks, panels) = (pa.kp, pa.kblocks, m.div_ceil(mr));
    pa.corr.resize(panels * kblocks * mr, 0);
    let threads = pool.map_or(1, Pool::threads).min(panels);
    let per_task = panels.div_ceil(threads);
    // Each task owns whole panels: its slice of the codes and of the corrections.
    let corr_chunks: Vec<std::sync::Mutex<&mut [i32]>> = pa
        .corr
        .chunks_mut(per_task * kblocks * mr)
        .map(std::sync::Mutex::new)
        .collect();
    let fill = |t: usize, chunk: &mut [i8]| {
        let mut corr = corr_chunks[t].lock().unwrap_or_else(|e| e.into_inner());
        let mut stage = [0i8; STAGE];
        for (pp, panel) in chunk.chunks_mut(mr * kp).enumerate() {
            let p = t * per_task + pp;
            let corr_p = &mut corr[pp * kblocks * mr..(pp + 1) * kblocks * mr];
            for r in 0..mr.min(m - p * mr) {
                let i = p * mr + r;
                let inv = inverse_scale(scales[i]);
                let row = &x[i * k..(i + 1) * k];
                for (blk, block) in row.chunks(kc).enumerate() {
                    let mut sum = 0i32;
                    for (s, src) in block.chunks(STAGE).enumerate() {
                        let codes = &mut stage[..src.len()];
                        quantize_slice(level, src, inv, codes);
                        sum = sum.wrapping_add(sum_codes(level, codes));
                        // kc and STAGE are multiples of 4: this stage starts a group.
                        scatter_quads(codes, panel, (blk * kc + s * STAGE) / 4, mr, r);
                    }
                    // Wrapping on purpose: only the result modulo 2³² matters (kernel docs).
                    corr_p[blk * mr + r] = sum.wrapping_mul(128);
                }
            }
        }
    };
    match pool {
        Some(pool) if threads > 1 => {
            pool.for_each_chunk_mut(&mut pa.data, per_task * mr * kp, fill)
        }
        _ => fill(0, &mut pa.data),
    }
    Some(scales)
}

/// Quantizes `rows` rows of `k` values (finite) into `codes`. Returns one scale per row (equal
/// for every row under per-tensor granularity), or under [`ActGranularity::PerBlock`] with
/// length `L`, `⌈k/L⌉` scales per row (row `i`'s block `b` at `i·⌈k/L⌉ + b`).
pub fn quantize_rows(
    level: Level,
    pool: Option<&Pool>,
    x: &[f32],
    rows: usize,
    k: usize,
    granularity: impl Into<ActGranularity>,
    codes: &mut Vec<i8>,
) -> Vec<f32> {
    codes.clear();
    codes.resize(rows * k, 0);
    let scales: Vec<f32> = match granularity.into() {
        ActGranularity::PerTensor => {
            vec![scale_for_max_abs(max_abs(level, &x[..rows * k])); rows]
        }
        ActGranularity::PerRow => x
            .chunks(k)
            .take(rows)
            .map(|r| scale_for_max_abs(max_abs(level, r)))
            .collect(),
        ActGranularity::PerBlock(len) => {
            let mut sums = Vec::new();
            return quantize_row_blocks(level, pool, x, rows, k, len.get(), codes, &mut sums);
        }
    };
    quantize_rows_with_scales(level, pool, x, rows, k, &scales, codes);
    scales
}

/// Quantizes `rows` rows of `k` finite values into `codes` (already `rows·k` long) with one
/// given scale per row; values beyond `127·scale` are clamped (a clipped range).
pub fn quantize_rows_with_scales(
    level: Level,
    pool: Option<&Pool>,
    x: &[f32],
    rows: usize,
    k: usize,
    scales: &[f32],
    codes: &mut Vec<i8>,
) {
    codes.resize(rows * k, 0);
    let threads = pool.map_or(1, Pool::threads).min(rows);
    let per_task = rows.div_ceil(threads);
    let fill = |t: usize, chunk: &mut [i8]| {
        let r0 = t * per_task;
        for (r, dst) in chunk.chunks_mut(k).enumerate() {
            let src = &x[(r0 + r) * k..(r0 + r + 1) * k];
            quantize_slice(level, src, inverse_scale(scales[r0 + r]), dst);
        }
    };
    match pool {
        Some(pool) if threads > 1 => pool.for_each_chunk_mut(codes, per_task * k, fill),
        _ => fill(0, codes),
    }
}

/// [`quantize_rows`] with blocks of `len` values along each row (`codes` already sized to
/// `rows·k`), also returning in `sums` the sum of each block's codes (same layout as the scales:
/// row `i`'s block `b` at `i·⌈k/len⌉ + b`).
#[allow(clippy::too_many_arguments)]
pub fn quantize_row_blocks(
    level: Level,
    pool: Option<&Pool>,
    x: &[f32],
    rows: usize,
    k: usize,
    len: usize,
    codes: &mut [i8],
    sums: &mut Vec<i32>,
) -> Vec<f32> {
    let nb = k.div_ceil(len);
    let mut scales = vec![0.0f32; rows * nb];
    sums.clear();
    sums.resize(rows * nb, 0);
    let threads = pool.map_or(1, Pool::threads).min(rows);
    let per_task = rows.div_ceil(threads);
    let fill = |r0: usize, codes: &mut [i8], scales: &mut [f32], sums: &mut [i32]| {
        let rows = codes
            .chunks_mut(k)
            .zip(scales.chunks_mut(nb))
            .zip(sums.chunks_mut(nb));
        for (r, ((dst, s), sum)) in rows.enumerate() {
            let src = &x[(r0 + r) * k..(r0 + r + 1) * k];
            quantize_blocks(level, src, len, s, sum, dst);
        }
    };
    match pool {
        Some(pool) if threads > 1 => {
            // One (codes, scales, sums) triple of disjoint slices per task.
            let mut parts: Vec<(&mut [i8], &mut [f32], &mut [i32])> = codes
                .chunks_mut(per_task * k)
                .zip(scales.chunks_mut(per_task * nb))
                .zip(sums.chunks_mut(per_task * nb))
                .map(|((c, s), u)| (c, s, u))
                .collect();
            pool.for_each_chunk_mut(&mut parts, 1, |t, part| {
                for (c, s, u) in part.iter_mut() {
                    fill(t * per_task, c, s, u);
                }
            });
        }
        _ => fill(0, codes, &mut scales, sums),
    }
    scales
}

/// Quantizes `B: [k, n]` (finite) with one scale for the tensor or one per column (per output
/// feature), into row-major codes. Returns the `n` column scales.
pub fn quantize_cols(
    level: Level,
    b: &[f32],
    k: usize,
    n: usize,
    granularity: Granularity,
    codes: &mut Vec<i8>,
) -> Vec<f32> {
    codes.clear();
    codes.resize(k * n, 0);
    let scales: Vec<f32> = match granularity {
        Granularity::PerTensor => vec![scale_for_max_abs(max_abs(level, &b[..k * n])); n],
        Granularity::PerRow => {
            let mut m = vec![0.0f32; n];
            for row in b.chunks(n).take(k) {
                max_abs_into(level, row, &mut m);
            }
            m.into_iter().map(scale_for_max_abs).collect()
        }
    };
    let inv: Vec<f32> = scales.iter().map(|&s| inverse_scale(s)).collect();
    for (src, dst) in b.chunks(n).zip(codes.chunks_mut(n)) {
        quantize_slice_cols(level, src, &inv, dst);
    }
    scales
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanotensor_core::{QTensor, Tensor};

    /// The fused quantize-and-pack gives the same panels, corrections and scales as quantizing
    /// into a code matrix and packing it, across panel edges, `k` tails, several `kc` blocks and
    /// staging steps, one or two threads; a NaN or infinity anywhere yields `None`.
    #[test]
    fn fused_quantize_pack_matches_quantize_then_pack() {
        let pool = Pool::new(2).unwrap();
        for &(m, k, kc) in &[(1, 4, 4), (9, 37, 12), (17, 1030, 512), (3, 600, 600)] {
            let x = Tensor::<f32>::randn(&[m, k], 1.5, (m * k) as u64).unwrap();
            for level in [Level::portable(), Level::detect()] {
                for g in [Granularity::PerTensor, Granularity::PerRow] {
                    for p in [None, Some(&pool)] {
                        let mut codes = Vec::new();
                        let s0 = quantize_rows(level, None, x.as_slice(), m, k, g, &mut codes);
                        let mut want = PackedA::default();
                        want.pack(&codes, m, k, 8, kc);
                        let mut got = PackedA::default();
                        let s1 = quantize_pack_a(level, p, x.as_slice(), m, k, g, 8, kc, &mut got);
                        assert_eq!(s1.as_deref(), Some(&s0[..]), "{m}x{k} {g:?}");
                        assert_eq!(got.data, want.data, "{m}x{k} kc {kc} {g:?}");
                        assert_eq!(got.corr, want.corr, "{m}x{k} kc {kc} {g:?}");
                        assert_eq!((got.kp, got.kblocks), (want.kp, want.kblocks));
                    }
                }
            }
            for bad in [f32::NAN, f32::INFINITY] {
                let mut y = x.as_slice().to_vec();
                y[(m * k) / 2] = bad;
                let mut pa = PackedA::default();
                for g in [Granularity::PerTensor, Granularity::PerRow] {
                    let r = quantize_pack_a(Level::detect(), None, &y, m, k, g, 8, kc, &mut pa);
                    assert!(r.is_none());
                }
            }
        }
    }

    #[test]
    fn codes_match_the_core_quantizer_bit_for_bit() {
        let x = Tensor::<f32>::randn(&[7, 37], 2.0, 5).unwrap();
        for level in [Level::portable(), Level::detect()] {
            for g in [Granularity::PerTensor, Granularity::PerRow] {
                let q = QTensor::quantize(&x, g).unwrap();
                let mut codes = Vec::new();
                let s = quantize_rows(level, None, x.as_slice(), 7, 37, g, &mut codes);
                assert_eq!(codes, q.codes());
                for (r, &sr) in s.iter().enumerate() {
                    assert_eq!(sr, q.row_scale(r));
                }
                // Columns of B are the rows of Bᵀ.
                let xt = x.t().unwrap();
                let qt = QTensor::quantize(&xt, g).unwrap();
                let sc = quantize_cols(level, x.as_slice(), 7, 37, g, &mut codes);
                let back: Vec<i8> = (0..7 * 37)
                    .map(|i| qt.codes()[(i % 37) * 7 + i / 37])
                    .collect();
                assert_eq!(codes, back);
                for (j, &sj) in sc.iter().enumerate() {
                    assert_eq!(sj, qt.row_scale(j));
                }
            }
        }
    }

    #[test]
    fn block_codes_match_the_core_quantizer_block_by_block() {
        let (rows, k) = (9, 100);
        let x = Tensor::<f32>::randn(&[rows, k], 3.0, 6).unwrap();
        let pool = Pool::new(2).unwrap();
        for level in [Level::portable(), Level::detect()] {
            for len in [4, 32, 64, 128] {
                let g = ActGranularity::PerBlock(crate::BlockLen::new(len).unwrap());
                for pool in [None, Some(&pool)] {
                    let mut codes = Vec::new();
                    let s = quantize_rows(level, pool, x.as_slice(), rows, k, g, &mut codes);
                    let nb = k.div_ceil(len);
                    assert_eq!(s.len(), rows * nb);
                    for (i, row) in x.as_slice().chunks(k).enumerate() {
                        for (b, block) in row.chunks(len).enumerate() {
                            let t = Tensor::from_slice(block, &[1, block.len()]).unwrap();
                            let q = QTensor::quantize(&t, Granularity::PerRow).unwrap();
                            let got = &codes[i * k + b * len..i * k + b * len + block.len()];
                            assert_eq!(got, q.codes(), "len {len} row {i} block {b}");
                            assert_eq!(s[i * nb + b], q.row_scale(0));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fused_quantize_pack_equals_quantize_then_pack() {
        for (k, n) in [(7, 37), (8, 64), (1, 5)] {
            let b = Tensor::<f32>::randn(&[k, n], 1.5, 9).unwrap();
            for level in [Level::portable(), Level::detect()] {
                for g in [Granularity::PerTensor, Granularity::PerRow] {
                    let mut codes = Vec::new();
                    let s = quantize_cols(level, b.as_slice(), k, n, g, &mut codes);
                    let want = PackedB::from_cols(&codes, k, n, 16);
                    let pool = Pool::new(2).unwrap();
                    let mut got = PackedB::default();
                    let s2 =
                        quantize_pack_b(level, Some(&pool), b.as_slice(), k, n, 16, g, &mut got);
                    assert_eq!(got.data, want.data);
                    assert_eq!(Some(s), s2);
                    for bad in [f32::NAN, f32::INFINITY] {
                        let mut y = b.as_slice().to_vec();
                        y[k * n / 2] = bad;
                        assert!(quantize_pack_b(level, None, &y, k, n, 16, g, &mut got).is_none());
                    }
                }
            }
        }
    }

    #[test]
    fn max_abs_handles_tails_and_signs() {
        for level in [Level::portable(), Level::detect()] {
            let mut v: Vec<f32> = (0..35).map(|i| i as f32 * 0.1).collect();
            v[33] = -9.0;
            assert_eq!(max_abs(level, &v), 9.0);
            v[3] = -10.0;
            assert_eq!(max_abs(level, &v), 10.0);
            assert_eq!(max_abs(level, &[]), 0.0);
            assert!(all_finite(level, &v));
            for (i, bad) in [(0, f32::NAN), (17, f32::INFINITY), (34, f32::NEG_INFINITY)] {
                let mut w = v.clone();
                w[i] = bad;
                assert!(!all_finite(level, &w));
            }
        }
    }
}
