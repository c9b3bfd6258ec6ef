//! The x86-64 tile kernels ([`super::super::tile`]): AVX-512 VNNI on 512-bit vectors (one step,
//! 16 lanes = 8 weight rows × 2 blocks, per `vpdpbusd`) and AVX2 (half a step per
//! `vpmaddubsw` + `vpmaddwd`, four rows at a time).
//!
//! Per activation row and block pair the integer sums of every lane accumulate over the steps
//! of a segment (all eight, or four per half block for Q6_K), the format's offset times the
//! activation block's sum is subtracted (exact, in integers), and each lane is converted and
//! scaled by its block's `dw·da`, plus the minimum term `m·da·Σa` for the formats with one, in
//! f32 multiply-adds. The eight-row weight step is loaded once and used by up to `MR_MAX`
//! activation rows, whose 8 bytes per step are broadcast from memory.
//!
//! AVX2's `vpmaddubsw` adds two byte products into a saturating i16: the codes stay below 64
//! for every format but Q8_0, which the tile keeps signed for it (`WTile::signed_q8`) and
//! multiplies with the sign trick (`|w|·sign(a, w) = w·a`, `|w| ≤ 128`, pair sums ≤ 32,512).
//! `vpdpbusd` does not saturate: there Q8_0 is offset to `q + 128` like the other formats.

use core::arch::x86_64::*;

use super::super::layout::F16;
use super::super::tile::{locate, TileActs, TileOut, WTile, NR, STEPS, STEP_BYTES};
use super::x86;
use nanotensor_core::QuantFormat;

/// Checks the shapes the kernels index by raw pointers: the tile and the activations have
/// the same block pairs and whole buffers, and `rows` activation rows exist.
fn check(w: &WTile, a: &TileActs, rows: usize) {
    let (p, segs) = (w.pairs, w.segs);
    assert!(segs == 1 || segs == 2);
    assert_eq!(a.pairs, p);
    assert!(w.qs.len() >= p * STEPS * STEP_BYTES);
    assert!(w.d.len() >= p * segs * 2 * NR && w.m.len() >= p * 2 * NR);
    assert!(a.qs.len() >= rows * p * STEPS * 8);
    assert!(a.d.len() >= rows * 2 * p && a.sd.len() >= rows * 2 * p);
    assert!(a.sum.len() >= rows * 2 * p && a.sumh.len() >= rows * 4 * p);
    assert!(w.shift.is_none_or(|s| s < 8));
}

/// Pointers to activation row `r`'s codes, scales, scaled sums and sums of segment `s`.
struct RowPtrs {
    q: *const i8,
    d: *const f32,
    sd: *const f32,
    sum: [*const i32; 2],
}

impl RowPtrs {
    /// # Safety
    /// `r` is a row of `a` (checked by `check`).
    #[inline(always)]
    unsafe fn new(a: &TileActs, r: usize) -> RowPtrs {
        let nb2 = 2 * a.pairs;
        // SAFETY: in bounds for a row `r` of `a` (`check`).
        unsafe {
            RowPtrs {
                q: a.qs.as_ptr().add(r * a.pairs * STEPS * 8),
                d: a.d.as_ptr().add(r * nb2),
                sd: a.sd.as_ptr().add(r * nb2),
                sum: [
                    a.sumh.as_ptr().add(2 * r * nb2),
                    a.sumh.as_ptr().add((2 * r + 1) * nb2),
                ],
            }
        }
    }

    /// Block sums for segment `s` of `SEGS`: the whole block's, or a half's.
    #[inline(always)]
    fn sums<const SEGS: usize>(&self, a: &TileActs, r: usize, s: usize) -> *const i32 {
        if SEGS == 1 {
            a.sum[r * 2 * a.pairs..].as_ptr()
        } else {
            self.sum[s]
        }
    }
}

/// The row-group size for `left` remaining rows: at most [`MR_MAX`].
#[inline(always)]
fn group(left: usize) -> usize {
    match left {
        l if l >= MR_MAX => MR_MAX,
        2 | 3 => 2,
        _ => 1,
    }
}

/// Activation rows per kernel call: four rows' integer and float accumulators, the weight
/// step and the broadcasts fit the registers of either instruction set, and measured no
/// slower than eight on AVX-512 (whose register file could hold eight).
const MR_MAX: usize = 4;

/// The 8 bytes at `p` (8 codes, or two 4-byte values) repeated over the 512 bits.
#[inline(always)]
unsafe fn bcast_x2_512<T>(p: *const T) -> __m512i {
    // SAFETY: the caller's pointer is valid for 8 bytes; unaligned read.
    unsafe { _mm512_set1_epi64(p.cast::<i64>().read_unaligned()) }
}

/// The VNNI tile kernel: `out[i][o]` = activation row `i` · tile row `o`.
///
/// # Safety
/// The CPU must support AVX2, FMA, AVX512F and AVX512VNNI.
#[target_feature(enable = "avx2,fma,avx512f,avx512vnni")]
pub(super) unsafe fn tile_vnni(w: &WTile, a: &TileActs, out: &mut TileOut<'_>) {
    check(w, a, out.rows());
    let mut r = 0;
    while r < out.rows() {
        let mr = group(out.rows() - r);
        let o = &mut *out;
        // SAFETY: shapes checked above for every row; the features are this function's. The
        // mode is the tile's: an offset (one or two segments) or a minimum.
        unsafe {
            match (w.segs, w.has_min, mr) {
                (1, false, MR_MAX) => vnni::<MR_MAX, 1, false>(w, a, r, o),
                (1, false, 2) => vnni::<2, 1, false>(w, a, r, o),
                (1, false, _) => vnni::<1, 1, false>(w, a, r, o),
                (1, true, MR_MAX) => vnni::<MR_MAX, 1, true>(w, a, r, o),
                (1, true, 2) => vnni::<2, 1, true>(w, a, r, o),
                (1, true, _) => vnni::<1, 1, true>(w, a, r, o),
                (_, _, MR_MAX) => vnni::<MR_MAX, 2, false>(w, a, r, o),
                (_, _, 2) => vnni::<2, 2, false>(w, a, r, o),
                _ => vnni::<1, 2, false>(w, a, r, o),
            }
        }
        r += mr;
    }
}

// The loops index several arrays (rows, segments) by the same counters, as the maths reads.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn vnni<const MR: usize, const SEGS: usize, const MIN: bool>(
    w: &WTile,
    a: &TileActs,
    r0: usize,
    out: &mut TileOut<'_>,
) {
    let per_seg = STEPS / SEGS;
    // SAFETY: `check` bounds every offset below: step `(p, t)` of the tile, 8 bytes at
    // `p·64 + 8t` of a row's codes, `2p` and `2p + 1` of its scales and sums.
    unsafe {
        let (wq, wd, wm) = (w.qs.as_ptr(), w.d.as_ptr(), w.m.as_ptr());
        let rows: [RowPtrs; MR] = core::array::from_fn(|i| RowPtrs::new(a, r0 + i));
        let sums: [[*const i32; SEGS]; MR] =
            core::array::from_fn(|i| core::array::from_fn(|s| rows[i].sums::<SEGS>(a, r0 + i, s)));
        let shift = _mm_cvtsi32_si128(w.shift.unwrap_or(0) as i32);
        let offset = w.shift.is_some();
        let mut acc = [_mm512_setzero_ps(); MR];
        for p in 0..w.pairs {
            for s in 0..SEGS {
                let mut ip = [_mm512_setzero_si512(); MR];
                for t in s * per_seg..(s + 1) * per_seg {
                    let wv = _mm512_loadu_si512(wq.add((p * STEPS + t) * STEP_BYTES).cast());
                    for i in 0..MR {
                        let av = bcast_x2_512(rows[i].q.add(p * 64 + 8 * t));
                        ip[i] = _mm512_dpbusd_epi32(ip[i], wv, av);
                    }
                }
                let dw = _mm512_loadu_ps(wd.add((p * SEGS + s) * 2 * NR));
                for i in 0..MR {
                    if !MIN && offset {
                        let sum = bcast_x2_512(sums[i][s].add(2 * p));
                        ip[i] = _mm512_sub_epi32(ip[i], _mm512_sll_epi32(sum, shift));
                    }
                    let da = _mm512_castsi512_ps(bcast_x2_512(rows[i].d.add(2 * p)));
                    let scale = _mm512_mul_ps(dw, da);
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ip[i]), scale, acc[i]);
                }
            }
            if MIN {
                let m = _mm512_loadu_ps(wm.add(p * 2 * NR));
                for i in 0..MR {
                    let sd = _mm512_castsi512_ps(bcast_x2_512(rows[i].sd.add(2 * p)));
                    acc[i] = _mm512_fmadd_ps(m, sd, acc[i]);
                }
            }
        }
        for i in 0..MR {
            let mut l = [0.0f32; 2 * NR];
            _mm512_storeu_ps(l.as_mut_ptr(), acc[i]);
            out.write(r0 + i, &core::array::from_fn(|o| l[2 * o] + l[2 * o + 1]));
        }
    }
}

/// The 8 bytes at `p` repeated over the 256 bits.
#[inline(always)]
unsafe fn bcast_x2_256<T>(p: *const T) -> __m256i {
    // SAFETY: the caller's pointer is valid for 8 bytes; unaligned read.
    unsafe { _mm256_set1_epi64x(p.cast::<i64>().read_unaligned()) }
}

/// The AVX2 tile kernel: `out[i][o]` = activation row `i` · tile row `o`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile_avx2(w: &WTile, a: &TileActs, out: &mut TileOut<'_>) {
    check(w, a, out.rows());
    let mut r = 0;
    while r < out.rows() {
        let mr = group(out.rows() - r);
        let o = &mut *out;
        // SAFETY: shapes checked above for every row; the features are this function's. The
        // mode is the tile's: signed Q8_0, an offset (one or two segments) or a minimum.
        unsafe {
            match (
                w.segs,
                w.signed_q8 && w.shift.is_none() && !w.has_min,
                w.has_min,
                mr,
            ) {
                (1, true, _, 4) => avx2::<4, 1, false, true>(w, a, r, o),
                (1, true, _, 2) => avx2::<2, 1, false, true>(w, a, r, o),
                (1, true, _, _) => avx2::<1, 1, false, true>(w, a, r, o),
                (1, _, false, 4) => avx2::<4, 1, false, false>(w, a, r, o),
                (1, _, false, 2) => avx2::<2, 1, false, false>(w, a, r, o),
                (1, _, false, _) => avx2::<1, 1, false, false>(w, a, r, o),
                (1, _, true, 4) => avx2::<4, 1, true, false>(w, a, r, o),
                (1, _, true, 2) => avx2::<2, 1, true, false>(w, a, r, o),
                (1, _, true, _) => avx2::<1, 1, true, false>(w, a, r, o),
                (_, _, _, 4) => avx2::<4, 2, false, false>(w, a, r, o),
                (_, _, _, 2) => avx2::<2, 2, false, false>(w, a, r, o),
                _ => avx2::<1, 2, false, false>(w, a, r, o),
            }
        }
        r += mr;
    }
}

/// `SIGNED`: the tile's Q8_0 codes are signed (one segment, no offset, no minimum).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn avx2<const MR: usize, const SEGS: usize, const MIN: bool, const SIGNED: bool>(
    w: &WTile,
    a: &TileActs,
    r0: usize,
    out: &mut TileOut<'_>,
) {
    let per_seg = STEPS / SEGS;
    // SAFETY: as in `vnni`; each half reads 32 of a step's 64 bytes and 8 of its 16 scales.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let (wq, wd, wm) = (w.qs.as_ptr(), w.d.as_ptr(), w.m.as_ptr());
        let rows: [RowPtrs; MR] = core::array::from_fn(|i| RowPtrs::new(a, r0 + i));
        let sums: [[*const i32; SEGS]; MR] =
            core::array::from_fn(|i| core::array::from_fn(|s| rows[i].sums::<SEGS>(a, r0 + i, s)));
        let shift = _mm_cvtsi32_si128(w.shift.unwrap_or(0) as i32);
        let offset = w.shift.is_some();
        // Rows 0–3 are the low 32 bytes of a step (lanes 0–7), rows 4–7 the high ones.
        let mut l = [[0.0f32; 2 * NR]; MR];
        for half in 0..2 {
            let mut acc = [_mm256_setzero_ps(); MR];
            for p in 0..w.pairs {
                for s in 0..SEGS {
                    let mut ip = [_mm256_setzero_si256(); MR];
                    for t in s * per_seg..(s + 1) * per_seg {
                        let wv = _mm256_loadu_si256(
                            wq.add((p * STEPS + t) * STEP_BYTES + 32 * half).cast(),
                        );
                        let wu = if SIGNED { _mm256_abs_epi8(wv) } else { wv };
                        for i in 0..MR {
                            let av = bcast_x2_256(rows[i].q.add(p * 64 + 8 * t));
                            let av = if SIGNED { _mm256_sign_epi8(av, wv) } else { av };
                            let prod = _mm256_madd_epi16(_mm256_maddubs_epi16(wu, av), ones);
                            ip[i] = _mm256_add_epi32(ip[i], prod);
                        }
                    }
                    let dw = _mm256_loadu_ps(wd.add((p * SEGS + s) * 2 * NR + NR * half));
                    for i in 0..MR {
                        if !MIN && !SIGNED && offset {
                            let sum = bcast_x2_256(sums[i][s].add(2 * p));
                            ip[i] = _mm256_sub_epi32(ip[i], _mm256_sll_epi32(sum, shift));
                        }
                        let da = _mm256_castsi256_ps(bcast_x2_256(rows[i].d.add(2 * p)));
                        let scale = _mm256_mul_ps(dw, da);
                        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ip[i]), scale, acc[i]);
                    }
                }
                if MIN {
                    let m = _mm256_loadu_ps(wm.add(p * 2 * NR + NR * half));
                    for i in 0..MR {
                        let sd = _mm256_castsi256_ps(bcast_x2_256(rows[i].sd.add(2 * p)));
                        acc[i] = _mm256_fmadd_ps(m, sd, acc[i]);
                    }
                }
            }
            for i in 0..MR {
                _mm256_storeu_ps(l[i][NR * half..].as_mut_ptr(), acc[i]);
            }
        }
        for (i, l) in l.iter().enumerate() {
            out.write(r0 + i, &core::array::from_fn(|o| l[2 * o] + l[2 * o + 1]));
        }
    }
}

/// The codes `u` of 32-value block `j` of stored block `blk` (format `fmt`), value `i` in byte
/// `i`; `flip` is XOR-ed in (0x80 turns Q8_0's signed codes into `q + 128`).
///
/// # Safety
/// AVX2; `blk` is a whole block of `fmt` and `j` one of its 32-value blocks.
#[inline(always)]
unsafe fn codes(fmt: QuantFormat, blk: &[u8], j: usize, flip: __m256i) -> __m256i {
    // SAFETY: AVX2 (the caller's); every decoder reads inside `blk`.
    unsafe {
        match fmt {
            QuantFormat::Q4_0 => x86::legacy_codes::<false, false>(blk),
            QuantFormat::Q4_1 => x86::legacy_codes::<false, true>(blk),
            QuantFormat::Q5_0 => x86::legacy_codes::<true, false>(blk),
            QuantFormat::Q5_1 => x86::legacy_codes::<true, true>(blk),
            QuantFormat::Q8_0 => _mm256_xor_si256(x86::load32(blk, 2), flip),
            QuantFormat::Q4_K => x86::k45_codes::<false>(&blk[16..], _mm256_setzero_si256(), j),
            QuantFormat::Q5_K => x86::k45_codes::<true>(&blk[48..], x86::load32(blk, 16), j),
            QuantFormat::Q6_K => x86::q6k_codes(blk, j),
        }
    }
}

/// The codes of block `b` of row `wr` (zero past its `nb` blocks).
///
/// # Safety
/// AVX2; `wr` is a whole row of `fmt` blocks holding `nb` 32-value blocks.
#[inline(always)]
unsafe fn row_codes(fmt: QuantFormat, wr: &[u8], b: usize, nb: usize, flip: __m256i) -> __m256i {
    // SAFETY: AVX2 (the caller's); `b < nb` is inside the row.
    unsafe {
        if b < nb {
            let (blk, j) = locate(fmt, wr, b);
            codes(fmt, blk, j, flip)
        } else {
            _mm256_setzero_si256()
        }
    }
}

/// [`WTile::decode`] with AVX2: the same tile, codes unpacked 32 at a time and written two
/// blocks (one step's 8 bytes) at a time.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn decode_avx2(
    tile: &mut WTile,
    fmt: QuantFormat,
    w: &[u8],
    row_bytes: usize,
    rows: usize,
    h: &F16,
) {
    assert!(rows <= NR && w.len() >= rows * row_bytes);
    let nb = tile.start(fmt, row_bytes, rows);
    let pairs = tile.pairs;
    assert!(tile.qs.len() >= pairs * STEPS * STEP_BYTES);
    let flip = if fmt == QuantFormat::Q8_0 && !tile.signed_q8 {
        0x80u8 as i8
    } else {
        0
    };
    for o in 0..rows {
        let wr = &w[o * row_bytes..(o + 1) * row_bytes];
        // SAFETY: AVX2 (this function's); block `b < nb` lies inside the row; the stores
        // write 8 bytes at `p·512 + 64t + 8o < pairs·512` (`o < NR`, `t < STEPS`).
        unsafe {
            let flip = _mm256_set1_epi8(flip);
            let base = tile.qs.as_mut_ptr().add(8 * o);
            for p in 0..pairs {
                let c0 = row_codes(fmt, wr, 2 * p, nb, flip);
                let c1 = row_codes(fmt, wr, 2 * p + 1, nb, flip);
                // 64-bit lane `i` of `lo` is step (0, 1, 4, 5)[i], of `hi` step (2, 3, 6, 7)[i].
                let lo = _mm256_unpacklo_epi32(c0, c1);
                let hi = _mm256_unpackhi_epi32(c0, c1);
                let dst = base.add(p * STEPS * STEP_BYTES).cast::<i64>();
                let step = STEP_BYTES / 8;
                dst.write_unaligned(_mm256_extract_epi64::<0>(lo));
                dst.add(step).write_unaligned(_mm256_extract_epi64::<1>(lo));
                dst.add(4 * step)
                    .write_unaligned(_mm256_extract_epi64::<2>(lo));
                dst.add(5 * step)
                    .write_unaligned(_mm256_extract_epi64::<3>(lo));
                dst.add(2 * step)
                    .write_unaligned(_mm256_extract_epi64::<0>(hi));
                dst.add(3 * step)
                    .write_unaligned(_mm256_extract_epi64::<1>(hi));
                dst.add(6 * step)
                    .write_unaligned(_mm256_extract_epi64::<2>(hi));
                dst.add(7 * step)
                    .write_unaligned(_mm256_extract_epi64::<3>(hi));
            }
        }
        tile.put_row_scales(fmt, o, wr, nb, h);
    }
}
