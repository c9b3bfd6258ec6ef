//! The portable dot kernels: one weight row (stored blocks) against one quantized activation
//! row. Integer sums are exact (`i32`); each block's sum is scaled in f32 and accumulated in
//! block order. They are the reference the SIMD kernels are tested against, and their formulas
//! follow the dequantizers' (`nanotensor-models`' `gguf::dequant`), which the tests check:
//!
//! * `Q4_0`: `Σ_j d·(q_j − 8)·da·a_j = d·da·(Σ q_j·a_j − 8·Σ a_j)`; `Q5_0` with 16;
//! * `Q4_1`: `Σ_j (d·q_j + m)·da·a_j = d·da·Σ q_j·a_j + m·da·Σ a_j`; `Q5_1` alike;
//! * `Q8_0`: `d·da·Σ q_j·a_j`;
//! * `Q4_K`/`Q5_K`, sub-block `j` of 32 (one activation block): `(d·s_j)·da·Σ q·a − (dmin·m_j)·da·Σ a`;
//! * `Q6_K`, activation block `g` of 32 holding sub-blocks `2g`, `2g+1` of 16:
//!   `d·da·Σ_h s_h·(Σ q·a − 32·Σ a)`.

use super::super::act::{ActRow, QK};
use super::super::layout::{self, F16};
use nanotensor_core::QuantFormat;

/// `Σ_j w_j·a_j` over 32 codes, exact.
#[inline]
pub fn isum32(w: &[u8; QK], a: &[i8]) -> i32 {
    w.iter()
        .zip(a)
        .map(|(&w, &a)| i32::from(w) * i32::from(a))
        .sum()
}

/// `Σ_j w_j·a_j` over 16 codes, exact.
#[inline]
pub fn isum16(w: &[u8], a: &[i8]) -> i32 {
    w.iter()
        .zip(a)
        .map(|(&w, &a)| i32::from(w) * i32::from(a))
        .sum()
}

/// The dot product of weight row `w` (blocks of `fmt`) with activation row `a`.
pub fn dot(fmt: QuantFormat, w: &[u8], a: ActRow<'_>, h: &F16) -> f32 {
    let mut acc = 0.0f32;
    let bsum = |b: usize| i32::from(a.sums[2 * b]) + i32::from(a.sums[2 * b + 1]);
    match fmt {
        QuantFormat::Q4_0 | QuantFormat::Q5_0 | QuantFormat::Q4_1 | QuantFormat::Q5_1 => {
            let (five, offset) = match fmt {
                QuantFormat::Q4_0 => (false, 8),
                QuantFormat::Q5_0 => (true, 16),
                QuantFormat::Q4_1 => (false, 0),
                _ => (true, 0),
            };
            for (b, blk) in w.chunks_exact(fmt.block_bytes()).enumerate() {
                let (d, m, q) = layout::legacy_codes(fmt, blk, five, h);
                let s = bsum(b);
                let isum = isum32(&q, &a.qs[b * QK..(b + 1) * QK]) - offset * s;
                acc += d * a.d[b] * isum as f32;
                if let Some(m) = m {
                    acc += m * a.d[b] * s as f32;
                }
            }
        }
        QuantFormat::Q8_0 => {
            for (b, blk) in w.chunks_exact(34).enumerate() {
                let d = h.get([blk[0], blk[1]]);
                let isum: i32 = blk[2..]
                    .iter()
                    .zip(&a.qs[b * QK..(b + 1) * QK])
                    .map(|(&w, &a)| i32::from(w as i8) * i32::from(a))
                    .sum();
                acc += d * a.d[b] * isum as f32;
            }
        }
        QuantFormat::Q4_K | QuantFormat::Q5_K => {
            for (sb, blk) in w.chunks_exact(fmt.block_bytes()).enumerate() {
                let (d, dmin) = (h.get([blk[0], blk[1]]), h.get([blk[2], blk[3]]));
                for j in 0..8 {
                    let b = 8 * sb + j;
                    let (sc, m, q) = layout::k45_codes(fmt, blk, j);
                    let isum = isum32(&q, &a.qs[b * QK..(b + 1) * QK]);
                    acc += (d * f32::from(sc)) * a.d[b] * isum as f32;
                    acc -= (dmin * f32::from(m)) * a.d[b] * bsum(b) as f32;
                }
            }
        }
        QuantFormat::Q6_K => {
            for (sb, blk) in w.chunks_exact(210).enumerate() {
                let d = h.get([blk[208], blk[209]]);
                for g in 0..8 {
                    let b = 8 * sb + g;
                    let q = layout::q6k_codes(blk, g);
                    let qa = &a.qs[b * QK..(b + 1) * QK];
                    let mut isum = 0i32;
                    for half in 0..2 {
                        let s = i32::from(blk[192 + 2 * g + half] as i8);
                        let raw = isum16(&q[16 * half..16 * half + 16], &qa[16 * half..]);
                        isum += s * (raw - 32 * i32::from(a.sums[2 * b + half]));
                    }
                    acc += d * a.d[b] * isum as f32;
                }
            }
        }
    }
    acc
}
