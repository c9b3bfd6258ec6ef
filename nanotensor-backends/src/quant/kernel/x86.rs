//! The x86-64 dot kernels: AVX2 (`vpmaddubsw` + `vpmaddwd`) and AVX-512 VNNI (`vpdpbusd` on
//! 256-bit vectors), one body per format generic over the 32-byte integer dot ([`Madd`]).
//!
//! A block of 32 codes fills one 256-bit vector, laid out as the activation block is (value `j`
//! in byte `j`): the 4-bit formats widen their 16 bytes into low and high nibbles, the 5-bit ones
//! add the fifth bits expanded from `qh`, Q6_K merges its low nibbles and high bit pairs. Codes
//! stay unsigned (`0 ≤ q ≤ 63`) and the activation codes signed, the operand order of
//! `vpmaddubsw`/`vpdpbusd`; a format's offset (`q − 8`, `q − 16`, `q − 32`) and minimum are
//! applied through the activation block sums, as in the portable kernel. Q8_0's signed codes
//! become unsigned `w + 128` for `vpdpbusd` (the 128 taken back through the block sum) and use
//! the sign trick for `vpmaddubsw`: `|w| · sign(a, w) = w·a`, with `|w| ≤ 128` unsigned.
//!
//! Four rows at a time ([`super::Kernel::dots`]) gather their blocks' f16 scales into one
//! vector, converted and multiplied together rather than one scalar at a time; and every kernel
//! prefetches the rows two calls ahead ([`prefetch_ahead`]).
//!
//! Saturation: `vpmaddubsw` adds two products into a saturating i16; the largest pair is
//! `2·128·127 = 32,512` (Q8_0) or `2·63·127 = 16,002` (Q6_K), below 32,767, so every pair is
//! exact, and every i32 lane sums at most 4 of them. Each block's integer lanes are converted
//! to f32 and multiplied into an f32 vector accumulator by the block's scale, reduced once per
//! row: the sums are the portable kernel's, the f32 rounding order differs.

use core::arch::x86_64::*;

use super::super::act::{ActRow, QK};
use super::super::layout::scale_min_k4;
use nanotensor_core::QuantFormat;

/// The integer dot of 32 unsigned bytes `w` by 32 signed bytes `a`, as 8 i32 lanes (lane `i`
/// sums bytes `4i..4i+4`).
trait Madd {
    /// Whether a 4-byte product sum goes straight into i32 (`vpdpbusd`), so that unsigned
    /// codes up to 255 are exact; `vpmaddubsw` saturates pairs at `i16`.
    const WIDE_SUMS: bool;
    /// # Safety
    /// The CPU must support the implementation's instructions (the entry points' features).
    unsafe fn dot(w: __m256i, a: __m256i) -> __m256i;
}

/// AVX2: `vpmaddubsw` then `vpmaddwd` by ones.
struct Avx2;
/// AVX-512 VNNI on 256-bit vectors (`vpdpbusd`, needs AVX512VL).
struct Vnni;

impl Madd for Avx2 {
    const WIDE_SUMS: bool = false;
    #[inline(always)]
    unsafe fn dot(w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: AVX2, guaranteed by the caller.
        unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1)) }
    }
}

impl Madd for Vnni {
    const WIDE_SUMS: bool = true;
    #[inline(always)]
    unsafe fn dot(w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: AVX512VNNI + AVX512VL, guaranteed by the caller.
        unsafe { _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, a) }
    }
}

/// The AVX2 kernel: the dots of `R` weight rows `w` (blocks of `fmt`) with activation row
/// `a`. See [`super::portable::dot`] for the maths.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; each row of `w` holds whole blocks of `fmt` and
/// `a` as many 32-value blocks as a row has values.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_avx2<const R: usize>(
    fmt: QuantFormat,
    w: [&[u8]; R],
    a: ActRow<'_>,
) -> [f32; R] {
    // SAFETY: forwarded.
    unsafe { dot::<Avx2, R>(fmt, w, a) }
}

/// The AVX-512 VNNI kernel (256-bit vectors), as [`dot_avx2`].
///
/// # Safety
/// The CPU must support AVX2, FMA, F16C, AVX512F, AVX512VL and AVX512VNNI; the slices as for
/// [`dot_avx2`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub(super) unsafe fn dot_vnni<const R: usize>(
    fmt: QuantFormat,
    w: [&[u8]; R],
    a: ActRow<'_>,
) -> [f32; R] {
    // SAFETY: forwarded.
    unsafe { dot::<Vnni, R>(fmt, w, a) }
}

#[inline(always)]
unsafe fn dot<M: Madd, const R: usize>(fmt: QuantFormat, w: [&[u8]; R], a: ActRow<'_>) -> [f32; R] {
    for w in w {
        assert_eq!(w.len() / fmt.block_bytes() * fmt.block_values(), a.qs.len());
    }
    // SAFETY: every arm reads only inside `w` and `a` (slice indexing), with the CPU features
    // the entry point enables.
    unsafe {
        match fmt {
            QuantFormat::Q4_0 => legacy::<M, R, false, false>(w, a, 18, 8),
            QuantFormat::Q4_1 => legacy::<M, R, false, true>(w, a, 20, 0),
            QuantFormat::Q5_0 => legacy::<M, R, true, false>(w, a, 22, 16),
            QuantFormat::Q5_1 => legacy::<M, R, true, true>(w, a, 24, 0),
            QuantFormat::Q8_0 => q8_0::<M, R>(w, a),
            QuantFormat::Q4_K => k45::<M, R, false>(w, a, 144),
            QuantFormat::Q5_K => k45::<M, R, true>(w, a, 176),
            QuantFormat::Q6_K => q6_k::<M, R>(w, a),
        }
    }
}

/// The little-endian f16 at `p[at..at + 2]` as f32, with F16C: one conversion instead of a
/// load from a 256 KiB table, which a matrix-vector product would keep pulling into cache.
#[inline(always)]
unsafe fn f16(p: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([p[at], p[at + 1]]);
    // SAFETY: F16C (the entry points').
    unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits)))) }
}

/// 32 bytes from `s[at..at + 32]`.
#[inline(always)]
pub(super) unsafe fn load32(s: &[u8], at: usize) -> __m256i {
    let s = &s[at..at + 32];
    // SAFETY: `s` holds 32 bytes; unaligned load.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// The activation codes of block `b`.
#[inline(always)]
unsafe fn act(a: &ActRow<'_>, b: usize) -> __m256i {
    let s = &a.qs[b * QK..(b + 1) * QK];
    // SAFETY: `s` holds 32 bytes; unaligned load.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// Byte `j` = 0xFF where bit `j` of `bits` is set, else 0.
#[inline(always)]
unsafe fn bytes_from_bits(bits: u32) -> __m256i {
    // SAFETY: AVX2 (the entry points').
    unsafe {
        // Byte j gets byte j/8 of `bits`; OR-ing every bit but bit j%8 makes it all ones exactly
        // when bit j was set.
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits as i32),
            _mm256_setr_epi64x(
                0x0000_0000_0000_0000,
                0x0101_0101_0101_0101,
                0x0202_0202_0202_0202,
                0x0303_0303_0303_0303,
            ),
        );
        let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
        _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1))
    }
}

/// Asks for byte `at` of the row [`PF_ROWS`] rows below `row` (a matrix's rows are
/// contiguous): the row a later call multiplies, fetched while this one computes. Each call
/// reads a few hundred bytes from each of its rows, too short a stream for the hardware
/// prefetcher to lock on; without this, a decode step waits on memory about half the time.
/// `l2` (from [`prefetch_to_l2`]) asks for the line into L2 instead of L1.
#[inline(always)]
unsafe fn prefetch_ahead(row: &[u8], at: usize, l2: bool) {
    let p = row.as_ptr().wrapping_add(at + PF_ROWS * row.len());
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        if l2 {
            _mm_prefetch::<_MM_HINT_T1>(p.cast())
        } else {
            _mm_prefetch::<_MM_HINT_T0>(p.cast())
        }
    }
}

/// Whether [`prefetch_ahead`] fetches into L2 (`T1`) rather than L1 (`T0`): on AMD cores.
/// Measured with `bench-model --backend quant`, interleaved: on a Zen 4 (`cpu family 25`) the
/// L2 hint took Gemma 3 decode from 31–34 to 43–46 tok/s on one thread and 61 to 80 on two
/// (SmolLM2 2 threads 129 → 159, 1 thread alike), the L1 hint filling the small L1 with lines
/// two calls early; on an Intel Xeon (`cpu family 6 model 207`) the L1 hint was the one
/// measured. Zen 5 takes the AMD choice unmeasured.
fn prefetch_to_l2() -> bool {
    crate::cpu::features().amd
}

/// How far ahead [`prefetch_ahead`] reaches, in rows: two calls of four rows, about one
/// memory latency of work for rows of a few hundred bytes (the distances 8 to 16 measured
/// alike; 4 loses part of the gain).
const PF_ROWS: usize = 8;

/// The sum of the 8 lanes.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: AVX (the entry points').
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}

/// The 32 unsigned codes of a legacy block (Q4_0, Q4_1, Q5_0, Q5_1: `FIVE` for a fifth bit,
/// `MIN` for the `_1` formats' minimum field), value `j` in byte `j`.
///
/// # Safety
/// AVX2; `blk` is a whole block of the format.
#[inline(always)]
pub(super) unsafe fn legacy_codes<const FIVE: bool, const MIN: bool>(blk: &[u8]) -> __m256i {
    // SAFETY: AVX2 (the caller's); the loads stay inside the block.
    unsafe {
        let rest = if MIN { &blk[4..] } else { &blk[2..] };
        let (qh, qs) = if FIVE {
            (
                u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]),
                &rest[4..20],
            )
        } else {
            (0, &rest[..16])
        };
        // The 16 bytes in both halves (a load, no shuffle), the high half shifted by a nibble:
        // this keeps the shuffle port free for the scales.
        let x = _mm256_broadcastsi128_si256(_mm_loadu_si128(qs.as_ptr().cast()));
        let q = _mm256_and_si256(
            _mm256_srlv_epi64(x, _mm256_setr_epi64x(0, 0, 4, 4)),
            _mm256_set1_epi8(0x0F),
        );
        if FIVE {
            let fifth = _mm256_and_si256(bytes_from_bits(qh), _mm256_set1_epi8(0x10));
            _mm256_or_si256(q, fifth)
        } else {
            q
        }
    }
}

/// The 32 codes of sub-block `j` of a Q4_K/Q5_K super-block whose code bytes are `qs` (128
/// bytes) and, for Q5_K (`FIVE`), whose fifth bits are `qh` (32 bytes).
///
/// # Safety
/// AVX2; `qs` holds 128 bytes.
#[inline(always)]
pub(super) unsafe fn k45_codes<const FIVE: bool>(qs: &[u8], qh: __m256i, j: usize) -> __m256i {
    // SAFETY: AVX2 (the caller's); the load stays inside `qs`.
    unsafe {
        let nib = _mm256_set1_epi8(0x0F);
        let x = load32(qs, 32 * (j / 2));
        let q = if j.is_multiple_of(2) {
            _mm256_and_si256(x, nib)
        } else {
            _mm256_and_si256(_mm256_srli_epi16(x, 4), nib)
        };
        if FIVE {
            let bit = _mm256_and_si256(
                _mm256_srl_epi16(qh, _mm_cvtsi32_si128(j as i32)),
                _mm256_set1_epi8(1),
            );
            // Each byte is 0 or 1: a 16-bit shift by 4 stays inside its byte.
            _mm256_or_si256(q, _mm256_slli_epi16(bit, 4))
        } else {
            q
        }
    }
}

/// The 32 six-bit codes of group `g` (0..8) of a Q6_K super-block (before the offset 32).
///
/// # Safety
/// AVX2; `blk` is a whole super-block.
#[inline(always)]
pub(super) unsafe fn q6k_codes(blk: &[u8], g: usize) -> __m256i {
    // SAFETY: AVX2 (the caller's); the loads stay inside the block.
    unsafe {
        let (half, k) = (g / 4, g % 4);
        let lo = load32(blk, 64 * half + 32 * (k % 2));
        let hi = load32(blk, 128 + 32 * half);
        let lo = _mm256_and_si256(
            _mm256_srl_epi16(lo, _mm_cvtsi32_si128(4 * (k / 2) as i32)),
            _mm256_set1_epi8(0x0F),
        );
        let hi = _mm256_and_si256(
            _mm256_srl_epi16(hi, _mm_cvtsi32_si128(2 * k as i32)),
            _mm256_set1_epi8(3),
        );
        // Each byte of `hi` is 0..3: a 16-bit shift by 4 stays inside its byte.
        _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4))
    }
}

/// The f16 words at byte `at` of four rows' blocks, widened: lanes `2r` and `2r + 1` hold row
/// `r`'s first and second f16 (`PAIR`: a `_1` format's `d` and `m`), or its first twice.
///
/// # Safety
/// AVX2 and F16C; every block holds at least `at + 4` bytes.
#[inline(always)]
unsafe fn heads4<const PAIR: bool>(w: &[&[u8]; 4], at: usize) -> __m256 {
    // SAFETY: AVX2 and F16C (the caller's); the reads are slice-indexed.
    unsafe {
        let word = |r: usize| {
            let b = &w[r][at..at + 4];
            i32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        let v = _mm_setr_epi32(word(0), word(1), word(2), word(3));
        let v = if PAIR {
            v
        } else {
            _mm_shuffle_epi8(
                v,
                _mm_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13),
            )
        };
        _mm256_cvtph_ps(v)
    }
}

/// `[x, y]` repeated over the 8 lanes.
#[inline(always)]
unsafe fn pairs(x: f32, y: f32) -> __m256 {
    // SAFETY: AVX2 (the caller's).
    unsafe {
        let xy = _mm_unpacklo_ps(_mm_set_ss(x), _mm_set_ss(y));
        _mm256_castpd_ps(_mm256_broadcastsd_pd(_mm_castps_pd(xy)))
    }
}

/// The blocks of 32 with one f16 scale `d` in bytes 0–1 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), `R`
/// rows sharing each activation block's load: `codes(blk)` gives a block's 32 unsigned codes,
/// `off` their offset and `MIN` a `_1` format's `m` (bytes 2–3), both applied through the
/// activation block sum (`d·(−off)·ds`, `m·ds`).
///
/// With four rows, the rows' scales are converted and multiplied together, lanes `2r` (the
/// scale `d·da` of row `r`'s block) and `2r + 1` (its offset or minimum term) of one vector;
/// with one, each in turn. Both round the same products in the same order, so a row's result
/// does not depend on the rows beside it.
#[inline(always)]
unsafe fn blocks32<M: Madd, const R: usize, const MIN: bool>(
    w: [&[u8]; R],
    a: ActRow<'_>,
    bb: usize,
    off: i32,
    codes: impl Fn(&[u8]) -> __m256i,
) -> [f32; R] {
    let l2 = prefetch_to_l2();
    // SAFETY: the entry points' features; loads stay inside the slices.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        // The factor of the second lane: `ds` for a minimum, `−off·ds` for an offset (exact
        // for the powers of two 8, 16 and 128, so `d·(−off·ds)` rounds as `−(d·off)·ds`).
        let k = if MIN { 1.0 } else { -(off as f32) };
        if R == 4 {
            let w4: [&[u8]; 4] = core::array::from_fn(|r| w[r]);
            let mut corr = _mm256_setzero_ps();
            for b in 0..a.d.len() {
                let av = act(&a, b);
                let prod = _mm256_mul_ps(heads4::<MIN>(&w4, b * bb), pairs(a.d[b], k * a.ds[b]));
                corr = _mm256_add_ps(corr, prod);
                for r in 0..R {
                    prefetch_ahead(w[r], b * bb, l2);
                    let p = M::dot(codes(&w[r][b * bb..(b + 1) * bb]), av);
                    let s = _mm256_permutevar8x32_ps(prod, _mm256_set1_epi32(2 * r as i32));
                    acc[r] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(p), acc[r]);
                }
            }
            let mut c = [0.0f32; 8];
            _mm256_storeu_ps(c.as_mut_ptr(), corr);
            core::array::from_fn(|r| hsum(acc[r]) + c[2 * r + 1])
        } else {
            let mut corr = [0.0f32; R];
            for b in 0..a.d.len() {
                let av = act(&a, b);
                let (da, kds) = (a.d[b], k * a.ds[b]);
                for r in 0..R {
                    prefetch_ahead(w[r], b * bb, l2);
                    let blk = &w[r][b * bb..(b + 1) * bb];
                    let d = f16(blk, 0);
                    let p = M::dot(codes(blk), av);
                    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(p), acc[r]);
                    corr[r] += if MIN { f16(blk, 2) } else { d } * kds;
                }
            }
            core::array::from_fn(|r| hsum(acc[r]) + corr[r])
        }
    }
}

/// Q4_0, Q4_1, Q5_0, Q5_1: `bb`-byte blocks, offset `off`, minimum when `MIN`.
#[inline(always)]
unsafe fn legacy<M: Madd, const R: usize, const FIVE: bool, const MIN: bool>(
    w: [&[u8]; R],
    a: ActRow<'_>,
    bb: usize,
    off: i32,
) -> [f32; R] {
    // SAFETY: the entry points' features; `legacy_codes` reads inside the block.
    unsafe { blocks32::<M, R, MIN>(w, a, bb, off, |blk| legacy_codes::<FIVE, MIN>(blk)) }
}

/// Q8_0. With `vpdpbusd` the signed codes are made unsigned by flipping their top bit
/// (`w + 128`, one instruction) and the 128 taken back through the activation sum; `vpmaddubsw`
/// would saturate on `2·255·127`, so AVX2 uses the sign trick instead (`|w|·sign(a, w) = w·a`),
/// two instructions, which the unsigned first operand of both needs.
#[inline(always)]
unsafe fn q8_0<M: Madd, const R: usize>(w: [&[u8]; R], a: ActRow<'_>) -> [f32; R] {
    let l2 = prefetch_to_l2();
    // SAFETY: the entry points' features; loads stay inside the slices.
    unsafe {
        if M::WIDE_SUMS {
            blocks32::<M, R, false>(w, a, 34, 128, |blk| {
                _mm256_xor_si256(load32(blk, 2), _mm256_set1_epi8(-128))
            })
        } else {
            let mut acc = [_mm256_setzero_ps(); R];
            for b in 0..a.d.len() {
                let av = act(&a, b);
                let da = a.d[b];
                for r in 0..R {
                    prefetch_ahead(w[r], 34 * b, l2);
                    let blk = &w[r][34 * b..34 * (b + 1)];
                    let q = load32(blk, 2);
                    let p = M::dot(_mm256_abs_epi8(q), _mm256_sign_epi8(av, q));
                    let d = f16(blk, 0) * da;
                    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[r]);
                }
            }
            core::array::from_fn(|r| hsum(acc[r]))
        }
    }
}

/// Q4_K and Q5_K (`bb`-byte super-blocks): sub-block `j` is activation block `8·sb + j`.
#[inline(always)]
unsafe fn k45<M: Madd, const R: usize, const FIVE: bool>(
    w: [&[u8]; R],
    a: ActRow<'_>,
    bb: usize,
) -> [f32; R] {
    let l2 = prefetch_to_l2();
    // SAFETY: the entry points' features; loads stay inside the slices.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        let mut corr = [0.0f32; R];
        for sb in 0..a.d.len() / 8 {
            // Each row's sub-block scales and minimums, unpacked once per super-block.
            let mut ds = [[0.0f32; 8]; R];
            let mut dm = [[0.0f32; 8]; R];
            for r in 0..R {
                for line in (0..bb).step_by(64) {
                    prefetch_ahead(w[r], sb * bb + line, l2);
                }
                let blk = &w[r][sb * bb..(sb + 1) * bb];
                let (d, dmin) = (f16(blk, 0), f16(blk, 2));
                for j in 0..8 {
                    let (sc, m) = scale_min_k4(j, &blk[4..16]);
                    ds[r][j] = d * f32::from(sc);
                    dm[r][j] = dmin * f32::from(m);
                }
            }
            for j in 0..8 {
                let b = 8 * sb + j;
                let av = act(&a, b);
                let (da, dsum) = (a.d[b], a.ds[b]);
                for r in 0..R {
                    let blk = &w[r][sb * bb..(sb + 1) * bb];
                    let (qh, qs) = if FIVE {
                        (load32(blk, 16), &blk[48..])
                    } else {
                        (_mm256_setzero_si256(), &blk[16..])
                    };
                    let p = M::dot(k45_codes::<FIVE>(qs, qh, j), av);
                    let scale = _mm256_set1_ps(ds[r][j] * da);
                    acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p), acc[r]);
                    corr[r] -= dm[r][j] * dsum;
                }
            }
        }
        core::array::from_fn(|r| hsum(acc[r]) + corr[r])
    }
}

/// Q6_K: group `g` of 32 is activation block `8·sb + g`, its two sub-blocks of 16 the lanes
/// 0–3 and 4–7 of the integer dot.
#[inline(always)]
unsafe fn q6_k<M: Madd, const R: usize>(w: [&[u8]; R], a: ActRow<'_>) -> [f32; R] {
    let l2 = prefetch_to_l2();
    // SAFETY: the entry points' features; loads stay inside the slices.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        let mut corr = [0.0f32; R];
        for sb in 0..a.d.len() / 8 {
            for g in 0..8 {
                let b = 8 * sb + g;
                let av = act(&a, b);
                let (a0, a1) = (i32::from(a.sums[2 * b]), i32::from(a.sums[2 * b + 1]));
                for r in 0..R {
                    if g % 2 == 0 {
                        prefetch_ahead(w[r], 210 * sb + 32 * g, l2);
                    }
                    let blk = &w[r][210 * sb..210 * (sb + 1)];
                    let (s0, s1) = (
                        i32::from(blk[192 + 2 * g] as i8),
                        i32::from(blk[193 + 2 * g] as i8),
                    );
                    let p = M::dot(q6k_codes(blk, g), av);
                    let sv = _mm256_setr_epi32(s0, s0, s0, s0, s1, s1, s1, s1);
                    let p = _mm256_mullo_epi32(p, sv);
                    let db = f16(blk, 208) * a.d[b];
                    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(db), _mm256_cvtepi32_ps(p), acc[r]);
                    corr[r] -= db * (32 * (s0 * a0 + s1 * a1)) as f32;
                }
            }
        }
        core::array::from_fn(|r| hsum(acc[r]) + corr[r])
    }
}
