//! AVX-512F tile kernels (16 f32 lanes per `zmm`, 32 registers).
//!
//! Register tiles are 8 rows × 32 lanes = 16 accumulators, enough independent FMA chains to
//! cover the 4-cycle FMA latency at one or two 512-bit FMAs per cycle (4 or 8 chains needed),
//! with 2 vector loads and 8 broadcast loads per 16 FMAs.
//!
//! Every function is `unsafe` only because of `#[target_feature]` (the caller must have checked
//! avx512f) and documents the slice lengths it relies on; the dispatcher in `mod.rs` asserts them.

use super::exp::{C, EXP2_MAX, EXP2_MIN, EXP_BIAS_FIX, ROUND_MAGIC};
use super::LANES;
use std::arch::x86_64::*;

/// Register-tile height.
const R: usize = 8;

/// `2^x` on 16 lanes: the method of `exp.rs` in vector form.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp2_v(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(EXP2_MIN)),
        _mm512_set1_ps(EXP2_MAX),
    );
    let magic = _mm512_set1_ps(ROUND_MAGIC);
    let t = _mm512_add_ps(x, magic);
    let n = _mm512_sub_ps(t, magic);
    let f = _mm512_sub_ps(x, n);
    let mut p = _mm512_set1_ps(C[6]);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(C[5]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(C[4]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(C[3]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(C[2]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(C[1]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(C[0]));
    let bits = _mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(EXP_BIAS_FIX));
    let pow = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(bits));
    _mm512_mul_ps(p, pow)
}

/// # Safety
/// avx512f must be available; `k` holds `rows` rows of `d` at stride `ks`, `qt` holds `d·LANES`
/// and `s` holds `rows·LANES` elements.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn qk(k: &[f32], ks: usize, rows: usize, d: usize, qt: &[f32], s: &mut [f32]) {
    let (kp, qp, sp) = (k.as_ptr(), qt.as_ptr(), s.as_mut_ptr());
    let mut j = 0;
    while j + R <= rows {
        // SAFETY: rows j..j+R < rows and p < d, so every read is inside `k`/`qt` and every write
        // inside `s` (lengths asserted by the dispatcher).
        unsafe { qk_tile::<R>(kp.add(j * ks), ks, d, qp, sp.add(j * LANES)) };
        j += R;
    }
    let rest = rows - j;
    // SAFETY: as above, for the remaining `rest < R` rows.
    unsafe {
        let (kj, sj) = (kp.add(j * ks), sp.add(j * LANES));
        match rest {
            1 => qk_tile::<1>(kj, ks, d, qp, sj),
            2 => qk_tile::<2>(kj, ks, d, qp, sj),
            3 => qk_tile::<3>(kj, ks, d, qp, sj),
            4 => qk_tile::<4>(kj, ks, d, qp, sj),
            5 => qk_tile::<5>(kj, ks, d, qp, sj),
            6 => qk_tile::<6>(kj, ks, d, qp, sj),
            7 => qk_tile::<7>(kj, ks, d, qp, sj),
            _ => {}
        }
    }
}

/// `T` rows × 32 lanes of `Sᵀ`.
///
/// # Safety
/// `k` points at `T` rows of `d` floats at stride `ks`; `qt` at `d·LANES`; `s` at `T·LANES`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn qk_tile<const T: usize>(k: *const f32, ks: usize, d: usize, qt: *const f32, s: *mut f32) {
    let mut a0 = [_mm512_setzero_ps(); T];
    let mut a1 = [_mm512_setzero_ps(); T];
    for p in 0..d {
        // SAFETY: p < d, so `qt[p·LANES .. p·LANES + 32]` and `k[r·ks + p]` are in bounds.
        unsafe {
            let q0 = _mm512_loadu_ps(qt.add(p * LANES));
            let q1 = _mm512_loadu_ps(qt.add(p * LANES + 16));
            for r in 0..T {
                let kb = _mm512_set1_ps(*k.add(r * ks + p));
                a0[r] = _mm512_fmadd_ps(kb, q0, a0[r]);
                a1[r] = _mm512_fmadd_ps(kb, q1, a1[r]);
            }
        }
    }
    for r in 0..T {
        // SAFETY: row r < T of `s` holds 32 floats.
        unsafe {
            _mm512_storeu_ps(s.add(r * LANES), a0[r]);
            _mm512_storeu_ps(s.add(r * LANES + 16), a1[r]);
        }
    }
}

/// # Safety
/// avx512f must be available; `s` holds `rows·LANES` elements.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn softmax_step(
    s: &mut [f32],
    rows: usize,
    m: &mut [f32; LANES],
    l: &mut [f32; LANES],
    alpha: &mut [f32; LANES],
) {
    let sp = s.as_mut_ptr();
    for half in 0..2 {
        let o = half * 16;
        // SAFETY: `m`, `l`, `alpha` hold 32 lanes; `s` holds `rows` rows of 32 (asserted).
        unsafe {
            let m_old = _mm512_loadu_ps(m.as_ptr().add(o));
            let mut mx = m_old;
            for j in 0..rows {
                mx = _mm512_max_ps(mx, _mm512_loadu_ps(sp.add(j * LANES + o)));
            }
            let none = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(mx, _mm512_set1_ps(f32::NEG_INFINITY));
            let mref = _mm512_mask_mov_ps(mx, none, _mm512_setzero_ps());
            let al = exp2_v(_mm512_sub_ps(m_old, mref));
            let mut sum = _mm512_setzero_ps();
            for j in 0..rows {
                let ptr = sp.add(j * LANES + o);
                let pj = exp2_v(_mm512_sub_ps(_mm512_loadu_ps(ptr), mref));
                _mm512_storeu_ps(ptr, pj);
                sum = _mm512_add_ps(sum, pj);
            }
            let lv = _mm512_fmadd_ps(_mm512_loadu_ps(l.as_ptr().add(o)), al, sum);
            _mm512_storeu_ps(l.as_mut_ptr().add(o), lv);
            _mm512_storeu_ps(m.as_mut_ptr().add(o), mx);
            _mm512_storeu_ps(alpha.as_mut_ptr().add(o), al);
        }
    }
}

/// # Safety
/// avx512f must be available; `v` holds `rows` rows of `dv` at stride `vs`, `p` holds
/// `rows·LANES` and `ot` holds `dv·LANES` elements.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pv(
    v: &[f32],
    vs: usize,
    rows: usize,
    dv: usize,
    p: &[f32],
    alpha: &[f32; LANES],
    ot: &mut [f32],
) {
    let (vp, pp, op) = (v.as_ptr(), p.as_ptr(), ot.as_mut_ptr());
    let mut x = 0;
    while x + R <= dv {
        // SAFETY: dims x..x+R lie inside dv and rows inside `rows`; bounds asserted by the
        // dispatcher.
        unsafe { pv_tile::<R>(vp.add(x), vs, rows, pp, alpha, op.add(x * LANES)) };
        x += R;
    }
    // SAFETY: as above for the remaining `dv − x < R` dims.
    unsafe {
        let (vx, ox) = (vp.add(x), op.add(x * LANES));
        match dv - x {
            1 => pv_tile::<1>(vx, vs, rows, pp, alpha, ox),
            2 => pv_tile::<2>(vx, vs, rows, pp, alpha, ox),
            3 => pv_tile::<3>(vx, vs, rows, pp, alpha, ox),
            4 => pv_tile::<4>(vx, vs, rows, pp, alpha, ox),
            5 => pv_tile::<5>(vx, vs, rows, pp, alpha, ox),
            6 => pv_tile::<6>(vx, vs, rows, pp, alpha, ox),
            7 => pv_tile::<7>(vx, vs, rows, pp, alpha, ox),
            _ => {}
        }
    }
}

/// `T` output dims × 32 lanes of `Oᵀ`.
///
/// # Safety
/// `v` points at `rows` rows (stride `vs`) of at least `T` floats; `p` at `rows·LANES`;
/// `ot` at `T·LANES`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn pv_tile<const T: usize>(
    v: *const f32,
    vs: usize,
    rows: usize,
    p: *const f32,
    alpha: &[f32; LANES],
    ot: *mut f32,
) {
    // SAFETY: `alpha` has 32 lanes.
    let (al0, al1) = unsafe {
        (
            _mm512_loadu_ps(alpha.as_ptr()),
            _mm512_loadu_ps(alpha.as_ptr().add(16)),
        )
    };
    let mut a0 = [_mm512_setzero_ps(); T];
    let mut a1 = [_mm512_setzero_ps(); T];
    for r in 0..T {
        // SAFETY: row r < T of `ot` holds 32 floats.
        unsafe {
            a0[r] = _mm512_mul_ps(_mm512_loadu_ps(ot.add(r * LANES)), al0);
            a1[r] = _mm512_mul_ps(_mm512_loadu_ps(ot.add(r * LANES + 16)), al1);
        }
    }
    for j in 0..rows {
        // SAFETY: j < rows: `p[j·LANES..+32]` and `v[j·vs + r]` for r < T are in bounds.
        unsafe {
            let p0 = _mm512_loadu_ps(p.add(j * LANES));
            let p1 = _mm512_loadu_ps(p.add(j * LANES + 16));
            let vj = v.add(j * vs);
            for r in 0..T {
                let vb = _mm512_set1_ps(*vj.add(r));
                a0[r] = _mm512_fmadd_ps(vb, p0, a0[r]);
                a1[r] = _mm512_fmadd_ps(vb, p1, a1[r]);
            }
        }
    }
    for r in 0..T {
        // SAFETY: row r < T of `ot` holds 32 floats.
        unsafe {
            _mm512_storeu_ps(ot.add(r * LANES), a0[r]);
            _mm512_storeu_ps(ot.add(r * LANES + 16), a1[r]);
        }
    }
}

/// `s[j] = q · K[j, ..d]` for `j < rows` (the decode scores), `d = q.len()`. Each row is two
/// FMA chains over 16-lane slices (a masked one for a tail), summed across lanes once; the
/// row eight ahead is prefetched, because the cache rows of one head lie a whole KV row
/// apart and the decode step has just streamed every weight through the caches.
///
/// # Safety
/// avx512f must be available; `k` holds `rows` rows of `d` at stride `ks` (`(rows−1)·ks + d`
/// elements) and `s` at least `rows`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn decode_scores(q: &[f32], k: &[f32], ks: usize, rows: usize, s: &mut [f32]) {
    let d = q.len();
    let (full, tail) = (d / 16, d % 16);
    let mask = ((1u32 << tail) - 1) as __mmask16;
    let (qp, kp) = (q.as_ptr(), k.as_ptr());
    for (j, sj) in s.iter_mut().enumerate().take(rows) {
        // SAFETY: row `j < rows` spans `j·ks .. j·ks + d`, inside `k`; slices `c < full` and
        // the masked tail stay below `d` in both `q` and the row. A prefetch never faults.
        unsafe {
            let row = kp.add(j * ks);
            let ahead = row.wrapping_add(8 * ks) as *const i8;
            for line in (0..d * 4).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
            }
            let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let mut c = 0;
            while c + 2 <= full {
                let o = 16 * c;
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(qp.add(o)), _mm512_loadu_ps(row.add(o)), a0);
                let o = o + 16;
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(qp.add(o)), _mm512_loadu_ps(row.add(o)), a1);
                c += 2;
            }
            if c < full {
                let o = 16 * c;
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(qp.add(o)), _mm512_loadu_ps(row.add(o)), a0);
            }
            if tail > 0 {
                let o = 16 * full;
                let qv = _mm512_maskz_loadu_ps(mask, qp.add(o));
                a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(mask, row.add(o)), a1);
            }
            *sj = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        }
    }
}

/// `acc[x] = α·acc[x] + Σ_{j<rows} p[j]·V[j, x]` (the decode value update), 64 columns of
/// `acc` at a time in four registers, each row's slice read once.
///
/// # Safety
/// avx512f must be available; `v` holds `rows` rows of `acc.len()` at stride `vs`, `p` at
/// least `rows` values.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn decode_values(
    v: &[f32],
    vs: usize,
    rows: usize,
    p: &[f32],
    alpha: f32,
    acc: &mut [f32],
) {
    let dv = acc.len();
    let (vp, ap) = (v.as_ptr(), acc.as_mut_ptr());
    let a = _mm512_set1_ps(alpha);
    let mut x0 = 0;
    while x0 < dv {
        let w = (dv - x0).min(64);
        // Lanes of the four 16-column slices that lie inside `acc` (masks of 0 read nothing).
        let m: [__mmask16; 4] = std::array::from_fn(|t| {
            let lanes = w.saturating_sub(16 * t).min(16) as u32;
            ((1u64 << lanes) - 1) as __mmask16
        });
        // SAFETY: columns `x0 + 16t + lane` with the lane in `m[t]` are below `dv`: inside
        // `acc`, and inside row `j < rows` of `v` (caller contract); masked lanes are neither
        // read nor written. A slice past the end (mask 0) is addressed with `wrapping_add`, so
        // no out-of-bounds pointer is formed by `add`.
        unsafe {
            let mut r: [__m512; 4] = std::array::from_fn(|t| {
                let at = ap.wrapping_add(x0 + 16 * t);
                _mm512_mul_ps(a, _mm512_maskz_loadu_ps(m[t], at))
            });
            for (j, &pj) in p.iter().enumerate().take(rows) {
                let pv = _mm512_set1_ps(pj);
                let row = vp.add(j * vs + x0);
                for t in 0..4 {
                    let x = _mm512_maskz_loadu_ps(m[t], row.wrapping_add(16 * t));
                    r[t] = _mm512_fmadd_ps(pv, x, r[t]);
                }
            }
            for t in 0..4 {
                _mm512_mask_storeu_ps(ap.wrapping_add(x0 + 16 * t), m[t], r[t]);
            }
        }
        x0 += 64;
    }
}
