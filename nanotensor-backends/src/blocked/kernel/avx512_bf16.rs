//! AVX512-BF16 microkernel: bf16 operands, f32 accumulation, `MR × NR = 12 × 32`.
//!
//! `vdpbf16ps` (`_mm512_dpbf16_ps`) multiplies 16 lanes of *pairs* of bf16 values and adds
//! both products into one f32 lane: `c[j] += a[2j]·b[2j] + a[2j+1]·b[2j+1]`. The operands are
//! therefore packed with depth grouped by two ([`GemmKernel::KGROUP`] = 2, the layout of
//! [`GemmKernel`]): each depth *pair* of an A micro-panel holds, per row, the two bf16 values
//! `A[i, p], A[i, p+1]` side by side (one 32-bit word), and each depth pair of a B micro-panel
//! holds, per column, `B[p, j], B[p+1, j]`. One 32-bit broadcast of A's pair against a vector
//! of B's 16 column pairs is then one instruction doing 32 multiply-adds, twice an f32 FMA's
//! count, for half the bytes of every operand. An odd depth is padded with a zero in the last
//! pair, which adds nothing.
//!
//! Register budget as in the f32 kernel ([`super::avx512`]): 24 f32 accumulators (12 rows × 2
//! vectors of 16 columns), 2 B vectors, the A pair broadcast. Each bf16 product is exact in
//! f32 (8 × 8 significant bits); the instruction rounds the sums to f32 (ties to even,
//! denormal inputs and results flushed to zero), so the result is an f32 product of the bf16
//! inputs whose error is f32 rounding, well inside what the bf16 output rounding adds.
//!
//! Edge tiles run natively and the last depth block flags NaN/±∞ in the finished f32 values,
//! exactly as in the f32 kernel.
//!
//! **Decode with bf16 weights** ([`Bf16WeightsSkinny`]): a model whose weights are stored as
//! bf16 but whose activations stay f32 streams these same B panels one to eight rows at a
//! time. There the product is bound by memory, not by multiply-adds, so instead of rounding
//! the activations to bf16 for `vdpbf16ps` the kernel widens each weight pair in registers — a
//! bf16 is the top half of an f32, so the even depth of a 32-bit pair is the word shifted left
//! by 16 and the odd one the word with its low half cleared — and runs f32 FMAs. The weights
//! are read at half the bytes of f32 and the activations keep their precision. It needs
//! AVX-512F only.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{GemmKernel, SkinnyPanel, TileAt};
use crate::cpu::CpuFeatures;

const MR: usize = 12;
const NR: usize = 32;

/// The AVX512-BF16 kernel. Only constructible when the CPU has AVX-512F and AVX512-BF16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx512Bf16 {
    _checked: (),
}

impl Avx512Bf16 {
    /// The kernel, if `cpu` has AVX-512F and AVX512-BF16 (the features its code is compiled
    /// with).
    pub fn new(cpu: &CpuFeatures) -> Option<Self> {
        (cpu.avx512f && cpu.avx512bf16).then_some(Avx512Bf16 { _checked: () })
    }
}

impl Avx512Bf16 {
    /// The decode kernel that streams this kernel's B panels against f32 rows of X.
    pub fn widening_skinny(self) -> Bf16WeightsSkinny {
        Bf16WeightsSkinny { _checked: () }
    }
}

/// f32 rows of X against B panels packed for [`Avx512Bf16`], the weights widened to f32 in
/// registers (see the module docs). Obtained from an [`Avx512Bf16`], which proves AVX-512F.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bf16WeightsSkinny {
    _checked: (),
}

impl SkinnyPanel for Bf16WeightsSkinny {
    type X = f32;
    /// bf16 bit patterns, in depth pairs.
    type W = u16;
    type Acc = f32;
    const NR: usize = NR;
    const KGROUP: usize = 2;

    fn skinny_panel(&self, m: usize, kc: usize, x: &[f32], ldx: usize, b: &[u16], acc: &mut [f32]) {
        assert!((1..=8).contains(&m), "skinny: 1..=8 rows");
        assert!(
            b.len() >= kc.next_multiple_of(2) * NR && acc.len() >= m * NR,
            "skinny: short buffers"
        );
        assert!(x.len() >= (m - 1) * ldx + kc, "skinny: short x");
        let (x, b, acc) = (x.as_ptr(), b.as_ptr(), acc.as_mut_ptr());
        // SAFETY: AVX-512F was detected (an `Avx512Bf16` exists, and it checks it); every
        // range `skinny_widen` touches was bounds-checked above.
        unsafe {
            match m {
                1 => skinny_widen::<1>(kc, x, ldx, b, acc),
                2 => skinny_widen::<2>(kc, x, ldx, b, acc),
                3 => skinny_widen::<3>(kc, x, ldx, b, acc),
                4 => skinny_widen::<4>(kc, x, ldx, b, acc),
                5 => skinny_widen::<5>(kc, x, ldx, b, acc),
                6 => skinny_widen::<6>(kc, x, ldx, b, acc),
                7 => skinny_widen::<7>(kc, x, ldx, b, acc),
                _ => skinny_widen::<8>(kc, x, ldx, b, acc),
            }
        }
    }
}

/// `acc[i·32 + j] += Σ_p x[i·ldx + p] · B(p, j)` for `M` rows, `B` one bf16 pair panel of depth
/// `kc`: each 32-bit word of a panel row holds `B(2q, j)` in its low and `B(2q+1, j)` in its
/// high half, so the shift and the mask give both as f32. Even and odd depths sum into separate
/// accumulators, so no chain of dependent FMAs limits the rate at which B streams in.
///
/// # Safety
/// AVX-512F available; `x` readable for `(M−1)·ldx + kc` floats, `b` for `⌈kc/2⌉·64` values,
/// `acc` read/write for `M·32` floats.
#[allow(clippy::needless_range_loop)] // the row index drives two accumulator arrays and x
#[target_feature(enable = "avx512f")]
unsafe fn skinny_widen<const M: usize>(
    kc: usize,
    x: *const f32,
    ldx: usize,
    b: *const u16,
    acc: *mut f32,
) {
    let high = _mm512_set1_epi32(0xffff_0000_u32 as i32);
    let widen = |v: __m512i| {
        (
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v)),
            _mm512_castsi512_ps(_mm512_and_si512(v, high)),
        )
    };
    let mut s0 = [[_mm512_setzero_ps(); 2]; M];
    let mut s1 = [[_mm512_setzero_ps(); 2]; M];
    let pairs = kc / 2;
    for q in 0..pairs {
        // SAFETY: pair `q < kc / 2` of the panel and depths `2q, 2q + 1 < kc` of each row are
        // inside the caller's ranges; a prefetch past the end never faults.
        unsafe {
            let bp = b.add(q * 2 * NR);
            // 16 depth pairs (2 KiB) ahead, as the f32 skinny kernel.
            let ahead = bp.wrapping_add(16 * 2 * NR) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
            let (e0, o0) = widen(_mm512_loadu_si512(bp.cast()));
            let (e1, o1) = widen(_mm512_loadu_si512(bp.add(NR).cast()));
            for i in 0..M {
                let xp = x.add(i * ldx + 2 * q);
                let (x0, x1) = (_mm512_set1_ps(*xp), _mm512_set1_ps(*xp.add(1)));
                s0[i][0] = _mm512_fmadd_ps(x0, e0, s0[i][0]);
                s0[i][1] = _mm512_fmadd_ps(x0, e1, s0[i][1]);
                s1[i][0] = _mm512_fmadd_ps(x1, o0, s1[i][0]);
                s1[i][1] = _mm512_fmadd_ps(x1, o1, s1[i][1]);
            }
        }
    }
    if kc % 2 == 1 {
        // SAFETY: the last, half-filled pair `pairs` lies inside the padded panel, and depth
        // `kc − 1` inside each row of x.
        unsafe {
            let bp = b.add(pairs * 2 * NR);
            let (e0, _) = widen(_mm512_loadu_si512(bp.cast()));
            let (e1, _) = widen(_mm512_loadu_si512(bp.add(NR).cast()));
            for i in 0..M {
                let x0 = _mm512_set1_ps(*x.add(i * ldx + kc - 1));
                s0[i][0] = _mm512_fmadd_ps(x0, e0, s0[i][0]);
                s0[i][1] = _mm512_fmadd_ps(x0, e1, s0[i][1]);
            }
        }
    }
    // SAFETY: `acc` holds `M·32` floats (caller contract).
    unsafe { super::avx512::add_skinny_sums(&s0, &s1, acc) };
}

impl GemmKernel for Avx512Bf16 {
    /// bf16 bit patterns (`half::bf16::to_bits`).
    type A = u16;
    /// bf16 bit patterns.
    type B = u16;
    type C = f32;
    const MR: usize = MR;
    const NR: usize = NR;
    const KGROUP: usize = 2;
    const KC: usize = super::archparam::KC_BF16;
    const NATIVE_TILES: bool = true;
    const FLAGS_NON_FINITE: bool = true;
    // Twice the multiply-adds of an f32 product in the same time.
    const PAR_MIN_MACS: usize = 1 << 22;

    fn name(&self) -> &'static str {
        "avx512bf16-12x32"
    }

    fn microkernel(&self, kc: usize, a: &[u16], b: &[u16], c: &mut [f32], ldc: usize, acc: bool) {
        assert!(kc.is_multiple_of(2), "microkernel: odd depth");
        super::check_tile_lengths(kc, (MR, NR), a.len(), b.len(), c.len(), ldc);
        // SAFETY: `self` exists only if AVX-512F and AVX512-BF16 were detected (see `new`); the
        // lengths of `a`, `b` and `c` were checked against what `kernel_rows` reads and writes.
        unsafe {
            kernel_rows::<MR, false>(
                kc / 2,
                a.as_ptr(),
                b.as_ptr(),
                c.as_mut_ptr(),
                ldc,
                acc,
                false,
                NR as u32,
            );
        }
    }

    unsafe fn tile(
        &self,
        kc: usize,
        a: &[u16],
        b: &[u16],
        at: &TileAt,
        c: *mut f32,
        ldc: usize,
    ) -> bool {
        let (rows, cols) = (at.rows, at.cols);
        assert!(
            (1..=MR).contains(&rows) && (1..=NR).contains(&cols) && ldc >= cols,
            "tile: bad geometry"
        );
        assert!(
            kc.is_multiple_of(2) && a.len() >= kc * MR && b.len() >= kc * NR,
            "microkernel: short panel"
        );
        let (a, b, acc, last, kp) = (a.as_ptr(), b.as_ptr(), at.accumulate, at.last, kc / 2);
        if rows == MR && cols == NR {
            // SAFETY: the features were detected (the value's existence proves it); the panels
            // were length-checked above; the caller owns the full tile (NATIVE_TILES contract).
            return unsafe { kernel_rows::<MR, false>(kp, a, b, c, ldc, acc, last, NR as u32) };
        }
        let cols = cols as u32;
        // SAFETY: as above; the edge kernel touches rows < `rows` and, through the masks,
        // columns < `cols` only.
        unsafe {
            match rows {
                1 => kernel_rows::<1, true>(kp, a, b, c, ldc, acc, last, cols),
                2 => kernel_rows::<2, true>(kp, a, b, c, ldc, acc, last, cols),
                3 => kernel_rows::<3, true>(kp, a, b, c, ldc, acc, last, cols),
                4 => kernel_rows::<4, true>(kp, a, b, c, ldc, acc, last, cols),
                5 => kernel_rows::<5, true>(kp, a, b, c, ldc, acc, last, cols),
                6 => kernel_rows::<6, true>(kp, a, b, c, ldc, acc, last, cols),
                7 => kernel_rows::<7, true>(kp, a, b, c, ldc, acc, last, cols),
                8 => kernel_rows::<8, true>(kp, a, b, c, ldc, acc, last, cols),
                9 => kernel_rows::<9, true>(kp, a, b, c, ldc, acc, last, cols),
                10 => kernel_rows::<10, true>(kp, a, b, c, ldc, acc, last, cols),
                11 => kernel_rows::<11, true>(kp, a, b, c, ldc, acc, last, cols),
                _ => kernel_rows::<12, true>(kp, a, b, c, ldc, acc, last, cols),
            }
        }
    }
}

/// `C[0..R, 0..cols] (+)= Σ_q Σ_{t<2} A[(q·12 + i)·2 + t] · B[(q·32 + j)·2 + t]` over `kp` depth
/// pairs, for the first `R` rows of a 12-row A panel; a `MASKED` tile reads and writes its
/// first `cols` columns only. Returns, when `check` is set, whether a value written is NaN or
/// ±∞.
///
/// # Safety
/// AVX-512F and AVX512-BF16 must be available; `a` readable for `kp·24`, `b` for `kp·64` bf16
/// values; `c` readable and writable for rows `i < R` at `c + i·ldc`, 32 floats each, or
/// `cols` when `MASKED`.
#[allow(clippy::too_many_arguments)] // the flat operand list of a BLAS microkernel
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel_rows<const R: usize, const MASKED: bool>(
    kp: usize,
    a: *const u16,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    check: bool,
    cols: u32,
) -> bool {
    for i in 0..R {
        let row = c.wrapping_add(i * ldc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(64));
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let (mut a, mut b) = (a, b);
    for _ in 0..kp {
        // SAFETY: the caller guarantees `kp` pairs of 32 B columns (64 values) and of 12 A rows
        // (24 values). `__m512i` and `__m512bh` are both 64 bytes of plain lanes, so the
        // transmutes reinterpret bits and nothing else.
        let (b0, b1): (__m512bh, __m512bh) = unsafe {
            (
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.cast())),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(32).cast())),
            )
        };
        // A streams from L2: ask for the line 8 depth pairs (384 bytes) ahead.
        _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(16 * MR) as *const i8);
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: row `i < R ≤ 12` of this depth pair (two bf16 values) is readable; the
            // transmute reinterprets 16 copies of the 32-bit pair as 32 bf16 lanes.
            let ai = unsafe {
                let pair = a.add(2 * i).cast::<i32>().read_unaligned();
                std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair))
            };
            row[0] = _mm512_dpbf16_ps(row[0], ai, b0);
            row[1] = _mm512_dpbf16_ps(row[1], ai, b1);
        }
        // SAFETY: advancing within (or one past) the panels the caller provided.
        unsafe {
            a = a.add(2 * MR);
            b = b.add(2 * NR);
        }
    }
    let (m0, m1): (__mmask16, __mmask16) = if MASKED {
        let lo = cols.min(16);
        let hi = cols.saturating_sub(16).min(16);
        (
            ((1u32 << lo) - 1) as __mmask16,
            ((1u32 << hi) - 1) as __mmask16,
        )
    } else {
        (!0, !0)
    };
    // NaN and ±∞ are exactly the values whose exponent bits are all ones.
    let exp = _mm512_set1_epi32(0x7f80_0000);
    let mut bad: __mmask16 = 0;
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row `i < R` of the C tile is accessible for 32 floats, or for the columns
        // the masks select (caller contract); masked-off lanes are neither read nor written.
        unsafe {
            let ci = c.add(i * ldc);
            let (mut r0, mut r1) = (row[0], row[1]);
            if MASKED {
                if accumulate {
                    r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, ci));
                    r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, ci.add(16)));
                }
                _mm512_mask_storeu_ps(ci, m0, r0);
                _mm512_mask_storeu_ps(ci.add(16), m1, r1);
            } else {
                if accumulate {
                    r0 = _mm512_add_ps(r0, _mm512_loadu_ps(ci));
                    r1 = _mm512_add_ps(r1, _mm512_loadu_ps(ci.add(16)));
                }
                _mm512_storeu_ps(ci, r0);
                _mm512_storeu_ps(ci.add(16), r1);
            }
            if check {
                let e0 = _mm512_and_si512(_mm512_castps_si512(r0), exp);
                let e1 = _mm512_and_si512(_mm512_castps_si512(r1), exp);
                bad |= _mm512_mask_cmpeq_epi32_mask(m0, e0, exp);
                bad |= _mm512_mask_cmpeq_epi32_mask(m1, e1, exp);
            }
        }
    }
    bad != 0
}
