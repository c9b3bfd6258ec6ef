//! f32 tile kernels of the flash path, one implementation per instruction set.
//!
//! The tiles use a *transposed* formulation: the `BR` queries of a query block live in SIMD
//! lanes. With `Qᵀ` packed once per query block (`d × LANES`, pre-scaled), the score tile is
//!
//! ```text
//! Sᵀ[j, lane] = Σ_p K[j, p] · Qᵀ[p, lane]          (qk: broadcast K[j,p], FMA over lanes)
//! Oᵀ[x, lane] = α[lane]·Oᵀ[x, lane] + Σ_j V[j, x] · Pᵀ[j, lane]   (pv: broadcast V[j,x])
//! ```
//!
//! so K and V are read in place from any strided layout (a KV cache, a projection's token-major
//! output) without packing, and the online-softmax statistics `m`, `l` of each query are plain
//! vertical (lane-wise) max and sum — no horizontal reductions in the inner loop.
//!
//! Three implementations sit behind one runtime [`detect`]:
//! - [`Isa::Avx512`]: hand-written AVX-512F intrinsics (`avx512.rs`), 8×32 register tiles;
//! - [`Isa::Avx2`]: the portable code compiled with `avx2,fma` enabled (LLVM vectorises the
//!   fixed-size lane loops; `mul_add` becomes `vfmadd`);
//! - [`Isa::Portable`]: the same code without target features (any CPU, wasm32; with
//!   `-C target-feature=+simd128` LLVM vectorises it for wasm SIMD).
//!
//! `unsafe` in the flash module lives only here (calls of `#[target_feature]` functions, each
//! guarded by a check of the detected [`cpu::features`]) and in `avx512.rs` (raw loads and
//! stores behind asserted bounds).

#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod exp;
mod portable;

use crate::cpu::{self, CpuFeatures};

/// Query lanes per tile: the query block size `BR` of the flash path.
pub const LANES: usize = 32;

/// The instruction set the f32 kernels run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F (16 f32 lanes per register, 32 registers).
    Avx512,
    /// AVX2 + FMA (8 lanes, 16 registers).
    Avx2,
    /// Plain Rust, vectorised by the compiler where the target allows.
    Portable,
}

impl Isa {
    /// The best instruction set `cpu` supports: AVX-512 needs avx512f for its tiles and avx2 +
    /// fma for the decode helpers it shares with AVX2 (every AVX-512 CPU has them), AVX2 needs
    /// avx2 + fma. Both are built for x86-64 only.
    pub fn best(cpu: &CpuFeatures) -> Isa {
        if Isa::Avx512.runs_on(cpu) {
            Isa::Avx512
        } else if Isa::Avx2.runs_on(cpu) {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }

    /// Whether `cpu` has every feature the code of this instruction set is compiled with.
    pub fn runs_on(self, cpu: &CpuFeatures) -> bool {
        let avx2 = cfg!(target_arch = "x86_64") && cpu.avx2 && cpu.fma;
        match self {
            Isa::Avx512 => avx2 && cpu.avx512f,
            Isa::Avx2 => avx2,
            Isa::Portable => true,
        }
    }
}

/// The best instruction set this CPU supports ([`Isa::best`] of [`cpu::features`]). Under Miri,
/// which cannot run SIMD intrinsics, always the portable path.
pub fn detect() -> Isa {
    Isa::best(cpu::features())
}

/// Whether the AVX-512 tiles may run here. An [`Isa`] is a plain value any caller can name, so
/// the entry points below check the detected features themselves before calling into
/// `#[target_feature]` code (one cached load; an `Isa` this CPU cannot run takes the portable
/// path).
#[cfg(target_arch = "x86_64")]
#[inline]
fn avx512_ok() -> bool {
    cpu::features().avx512f
}

/// Whether the `avx2,fma` code may run here (see [`avx512_ok`]).
#[cfg(target_arch = "x86_64")]
#[inline]
fn avx2_ok() -> bool {
    let f = cpu::features();
    f.avx2 && f.fma
}

/// Score tile `Sᵀ[j, lane] = Σ_p K[j, p]·Qᵀ[p, lane]` for `j < rows`.
///
/// # Arguments
/// * `k` — key rows: row `j` is `k[j·k_stride .. j·k_stride + d]`
/// * `qt` — packed `Qᵀ`, `d × LANES`, row `p` at `p·LANES`
/// * `s` — output, `rows × LANES`
///
/// # Panics
/// If a slice is shorter than the sizes require (checked once, not per element).
pub fn qk(isa: Isa, k: &[f32], k_stride: usize, rows: usize, d: usize, qt: &[f32], s: &mut [f32]) {
    assert!(rows == 0 || k.len() >= (rows - 1) * k_stride + d);
    assert!(qt.len() >= d * LANES && s.len() >= rows * LANES);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx512f, the one feature `avx512` is compiled with.
        Isa::Avx512 if avx512_ok() => unsafe { avx512::qk(k, k_stride, rows, d, qt, s) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx2 and fma, the features `avx2` is compiled with.
        Isa::Avx2 if avx2_ok() => unsafe { avx2::qk(k, k_stride, rows, d, qt, s) },
        _ => portable::qk::<2, false>(k, k_stride, rows, d, qt, s),
    }
}

/// One online-softmax step for `LANES` queries over a block of `rows` scores per query, in
/// base 2 (the scores were pre-multiplied by log₂e):
///
/// ```text
/// m_new = max(m, max_j S[j, ·]);   m_ref = m_new, or 0 where m_new = -inf (nothing visible yet)
/// α     = 2^(m − m_ref);           P[j, ·] = 2^(S[j, ·] − m_ref)   (written over S)
/// l     = α·l + Σ_j P[j, ·];       m = m_new
/// ```
///
/// `-inf` scores are masked keys and get `P = 0`. `alpha` receives `α` for rescaling `Oᵀ`.
pub fn softmax_step(
    isa: Isa,
    s: &mut [f32],
    rows: usize,
    m: &mut [f32; LANES],
    l: &mut [f32; LANES],
    alpha: &mut [f32; LANES],
) {
    assert!(s.len() >= rows * LANES);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx512f, the one feature `avx512` is compiled with.
        Isa::Avx512 if avx512_ok() => unsafe { avx512::softmax_step(s, rows, m, l, alpha) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx2 and fma, the features `avx2` is compiled with.
        Isa::Avx2 if avx2_ok() => unsafe { avx2::softmax_step(s, rows, m, l, alpha) },
        _ => portable::softmax_step(s, rows, m, l, alpha),
    }
}

/// Output tile update `Oᵀ[x, lane] = α[lane]·Oᵀ[x, lane] + Σ_{j<rows} V[j, x]·P[j, lane]`.
///
/// # Arguments
/// * `v` — value rows: row `j` is `v[j·v_stride .. j·v_stride + dv]`
/// * `p` — probabilities, `rows × LANES`
/// * `ot` — the accumulator `Oᵀ`, `dv × LANES`
#[allow(clippy::too_many_arguments)]
pub fn pv(
    isa: Isa,
    v: &[f32],
    v_stride: usize,
    rows: usize,
    dv: usize,
    p: &[f32],
    alpha: &[f32; LANES],
    ot: &mut [f32],
) {
    assert!(rows == 0 || v.len() >= (rows - 1) * v_stride + dv);
    assert!(p.len() >= rows * LANES && ot.len() >= dv * LANES);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx512f, the one feature `avx512` is compiled with.
        Isa::Avx512 if avx512_ok() => unsafe { avx512::pv(v, v_stride, rows, dv, p, alpha, ot) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx2 and fma, the features `avx2` is compiled with.
        Isa::Avx2 if avx2_ok() => unsafe { avx2::pv(v, v_stride, rows, dv, p, alpha, ot) },
        _ => portable::pv::<2, false>(v, v_stride, rows, dv, p, alpha, ot),
    }
}

/// Decode scores `s[j] = Σ_p q[p]·K[j, p]` for `j < rows` (one query against a key block).
///
/// # Arguments
/// * `q` — the query, `d` elements (already scaled)
/// * `k` — key rows: row `j` is `k[j·k_stride .. j·k_stride + d]`
/// * `s` — output, `rows` scores
pub fn decode_scores(isa: Isa, q: &[f32], k: &[f32], k_stride: usize, rows: usize, s: &mut [f32]) {
    let d = q.len();
    assert!(rows == 0 || k.len() >= (rows - 1) * k_stride + d);
    assert!(s.len() >= rows);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx512f, the one feature `avx512` is compiled with.
        Isa::Avx512 if avx512_ok() => unsafe { avx512::decode_scores(q, k, k_stride, rows, s) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx2 and fma, the features `avx2` is compiled with.
        Isa::Avx512 | Isa::Avx2 if avx2_ok() => unsafe {
            avx2::decode_scores(q, k, k_stride, rows, s)
        },
        _ => portable::decode_scores::<false>(q, k, k_stride, rows, s),
    }
}

/// Asks the caches for `rows` rows of `d` floats at stride `stride` from `data` (a hint: a
/// no-op off x86-64 and on slices shorter than the rows). The decode path prefetches a block
/// of V rows before it computes that block's scores, so the values are in cache when it
/// needs them.
pub fn prefetch_rows(data: &[f32], stride: usize, rows: usize, d: usize) {
    #[cfg(target_arch = "x86_64")]
    if rows > 0 && data.len() >= (rows - 1) * stride + d {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for j in 0..rows {
            let row = data[j * stride..j * stride + d].as_ptr() as *const i8;
            for line in (0..d * 4).step_by(64) {
                // SAFETY: a prefetch is a hint that never faults; the address is inside the row.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(line)) };
            }
        }
    }
    let _ = (data, stride, rows, d);
}

/// Decode value update `acc[x] = α·acc[x] + Σ_{j<rows} p[j]·V[j, x]`.
pub fn decode_values(
    isa: Isa,
    v: &[f32],
    v_stride: usize,
    rows: usize,
    p: &[f32],
    alpha: f32,
    acc: &mut [f32],
) {
    let dv = acc.len();
    assert!(rows == 0 || v.len() >= (rows - 1) * v_stride + dv);
    assert!(p.len() >= rows);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx512f, the one feature `avx512` is compiled with.
        Isa::Avx512 if avx512_ok() => unsafe {
            avx512::decode_values(v, v_stride, rows, p, alpha, acc)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx2 and fma, the features `avx2` is compiled with.
        Isa::Avx512 | Isa::Avx2 if avx2_ok() => unsafe {
            avx2::decode_values(v, v_stride, rows, p, alpha, acc)
        },
        _ => portable::decode_values::<false>(v, v_stride, rows, p, alpha, acc),
    }
}

/// `x[i] = 2^(x[i] − sub)` in place (`-inf` gives 0); returns `Σ x[i]` after the update.
pub fn exp2_sub_sum(isa: Isa, x: &mut [f32], sub: f32) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard saw avx2 and fma, the features `avx2` is compiled with.
        Isa::Avx512 | Isa::Avx2 if avx2_ok() => unsafe { avx2::exp2_sub_sum(x, sub) },
        _ => portable::exp2_sub_sum(x, sub),
    }
}

/// The portable kernels compiled with AVX2 and FMA enabled: same source, wider code.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{portable, LANES};

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn qk(k: &[f32], ks: usize, rows: usize, d: usize, qt: &[f32], s: &mut [f32]) {
        portable::qk::<3, true>(k, ks, rows, d, qt, s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn softmax_step(
        s: &mut [f32],
        rows: usize,
        m: &mut [f32; LANES],
        l: &mut [f32; LANES],
        alpha: &mut [f32; LANES],
    ) {
        portable::softmax_step(s, rows, m, l, alpha)
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn pv(
        v: &[f32],
        vs: usize,
        rows: usize,
        dv: usize,
        p: &[f32],
        alpha: &[f32; LANES],
        ot: &mut [f32],
    ) {
        portable::pv::<3, true>(v, vs, rows, dv, p, alpha, ot)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn decode_scores(q: &[f32], k: &[f32], ks: usize, rows: usize, s: &mut [f32]) {
        portable::decode_scores::<true>(q, k, ks, rows, s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn decode_values(
        v: &[f32],
        vs: usize,
        rows: usize,
        p: &[f32],
        alpha: f32,
        acc: &mut [f32],
    ) {
        portable::decode_values::<true>(v, vs, rows, p, alpha, acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn exp2_sub_sum(x: &mut [f32], sub: f32) -> f32 {
        portable::exp2_sub_sum(x, sub)
    }
}

#[cfg(test)]
mod tests;
