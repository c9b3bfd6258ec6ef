//! The transposing copy behind A packing: `panel[p·r + i] = rows[i·rs + p]`.
//!
//! Packing an A block (or a transposed weight) turns `lanes` source rows, each contiguous along
//! the depth `p`, into micro-panels whose `r` lanes are contiguous per depth step. Element by
//! element that is a strided gather: one load, one index computation and one store per value,
//! which is slow enough to be a visible share of a small product, where packing is not yet
//! amortised over many microkernel calls.
//!
//! On x86-64 the copy runs as 4 × 4 tiles: four 16-byte loads (four lanes, four depths each), the
//! classic unpack/move-half transpose in registers, four 16-byte stores (four depths, four lanes
//! each). SSE is part of every x86-64 CPU, so no run-time detection is needed and every f32
//! kernel (AVX-512, AVX2, portable) packs this way. Remainders (lanes or depths not a multiple
//! of 4) and other targets take the scalar loop, which reads each source row sequentially.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128, _mm_loadu_ps, _mm_movehl_ps, _mm_movelh_ps, _mm_storeu_ps, _mm_unpackhi_ps,
    _mm_unpacklo_ps,
};

/// Writes `panel[p·r + i] = rows[i·rs + p]` for `i < lanes`, `p < depth`; other positions of
/// `panel` are left as they are.
///
/// # Arguments
/// * `rows` — lane `i`'s depth run starts at `rows[i·rs]`; `rows.len() ≥ (lanes − 1)·rs + depth`
/// * `rs` — distance between consecutive lanes in `rows`
/// * `lanes` — lanes to copy (`≤ r`)
/// * `depth` — depth steps to copy
/// * `r` — lanes per depth step in `panel` (the micro-panel width `MR` or `NR`)
/// * `panel` — at least `depth · r` values
///
/// # Panics
/// If a length is too short for the arguments (callers size them; the check is what makes the
/// SIMD loop below safe).
pub fn pack_lanes_f32(
    rows: &[f32],
    rs: usize,
    lanes: usize,
    depth: usize,
    r: usize,
    panel: &mut [f32],
) {
    if lanes == 0 || depth == 0 {
        return;
    }
    assert!(
        lanes <= r,
        "pack_lanes_f32: more lanes than the panel width"
    );
    assert!(
        rows.len() >= (lanes - 1) * rs + depth && panel.len() >= depth * r,
        "pack_lanes_f32: short source or panel"
    );
    #[cfg(target_arch = "x86_64")]
    let (lanes4, depth4) = {
        let (lanes4, depth4) = (lanes / 4 * 4, depth / 4 * 4);
        for i0 in (0..lanes4).step_by(4) {
            for p0 in (0..depth4).step_by(4) {
                // SAFETY: reads `rows[(i0 + q)·rs + p0 .. + 4]` for q < 4: the largest index is
                // (lanes − 1)·rs + depth − 1 < rows.len() because i0 + 3 < lanes and p0 + 3 <
                // depth (both loops stop at multiples of 4 not above lanes/depth); writes
                // `panel[(p0 + q)·r + i0 .. + 4]`: at most (depth − 1)·r + lanes − 1 <
                // depth·r ≤ panel.len() since lanes ≤ r. Both lengths were asserted above. The
                // unaligned load/store intrinsics have no alignment requirement, and SSE is
                // baseline on x86-64.
                unsafe {
                    let src = rows.as_ptr().add(i0 * rs + p0);
                    let t = transpose4(
                        _mm_loadu_ps(src),
                        _mm_loadu_ps(src.add(rs)),
                        _mm_loadu_ps(src.add(2 * rs)),
                        _mm_loadu_ps(src.add(3 * rs)),
                    );
                    let dst = panel.as_mut_ptr().add(p0 * r + i0);
                    for (q, v) in t.into_iter().enumerate() {
                        _mm_storeu_ps(dst.add(q * r), v);
                    }
                }
            }
        }
        (lanes4, depth4)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (lanes4, depth4) = (0, 0);

    // The rest: depths past the last whole tile for the tiled lanes, then every depth of the
    // remaining lanes. Each lane's source run is read sequentially.
    for i in 0..lanes {
        let start = if i < lanes4 { depth4 } else { 0 };
        let src = &rows[i * rs..i * rs + depth];
        for (p, &v) in src.iter().enumerate().skip(start) {
            panel[p * r + i] = v;
        }
    }
}

/// The 4 × 4 transpose of four rows `a, b, c, d`: returns the four columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse")]
#[inline]
fn transpose4(a: __m128, b: __m128, c: __m128, d: __m128) -> [__m128; 4] {
    // unpacklo(a, b) = [a0 b0 a1 b1], unpackhi(a, b) = [a2 b2 a3 b3]; movelh/movehl then pick
    // the low/high halves of two such pairs.
    let ab_lo = _mm_unpacklo_ps(a, b);
    let cd_lo = _mm_unpacklo_ps(c, d);
    let ab_hi = _mm_unpackhi_ps(a, b);
    let cd_hi = _mm_unpackhi_ps(c, d);
    [
        _mm_movelh_ps(ab_lo, cd_lo),
        _mm_movehl_ps(cd_lo, ab_lo),
        _mm_movelh_ps(ab_hi, cd_hi),
        _mm_movehl_ps(cd_hi, ab_hi),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lanes/depth remainder against the element-by-element definition, with a source
    /// stride wider than the depth and a panel wider than the lanes; untouched positions keep
    /// their sentinel.
    #[test]
    fn matches_the_definition_on_every_remainder() {
        // Miri emulates each SSE intrinsic; a smaller grid still covers whole tiles, lane and
        // depth remainders, and a panel wider than the lanes.
        let (widths, depths): (&[usize], &[usize]) = if cfg!(miri) {
            (&[4, 6], &[1, 4, 5])
        } else {
            (&[4, 6, 12, 32], &[1, 3, 4, 5, 8, 11, 17])
        };
        for &r in widths {
            for lanes in 1..=r.min(13) {
                for &depth in depths {
                    let rs = depth + 3;
                    let rows: Vec<f32> = (0..lanes * rs).map(|x| x as f32 * 0.5 - 7.0).collect();
                    let mut panel = vec![f32::NAN; depth * r];
                    pack_lanes_f32(&rows, rs, lanes, depth, r, &mut panel);
                    for p in 0..depth {
                        for i in 0..r {
                            let got = panel[p * r + i];
                            if i < lanes {
                                assert_eq!(
                                    got,
                                    rows[i * rs + p],
                                    "r={r} lanes={lanes} p={p} i={i}"
                                );
                            } else {
                                assert!(got.is_nan(), "r={r} lanes={lanes}: wrote past the lanes");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "short source")]
    fn short_source_panics_instead_of_reading_past_it() {
        let rows = vec![0.0f32; 10];
        let mut panel = vec![0.0f32; 16];
        pack_lanes_f32(&rows, 4, 4, 4, 4, &mut panel);
    }
}
