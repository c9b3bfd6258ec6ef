//! Every supported kernel against an i64 reference of the same integer codes.

use super::{Kernel, TileOut, K_MAX};
use crate::int8::pack::{PackedA, PackedB};
use nanotensor_core::rng::Rng;

/// Random codes in `[-127, 127]`.
fn codes(n: usize, seed: u64) -> Vec<i8> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| ((rng.next_u64() % 255) as i32 - 127) as i8)
        .collect()
}

/// `C = A·B` in i64 for A `m×k`, B `k×n` (row-major codes).
fn reference(a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Vec<i64> {
    let mut c = vec![0i64; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] as i64 * b[p * n + j] as i64;
            }
        }
    }
    c
}

/// Runs a whole product through `kernel` tile by tile with unit scales and `kc`-blocking.
fn run(kernel: Kernel, a: &[i8], bt: &PackedB, m: usize, k: usize, kc: usize) -> Vec<f32> {
    let (mr, nr, n) = (kernel.mr(), kernel.nr(), bt.n);
    let mut pa = PackedA::default();
    pa.pack(a, m, k, mr, kc);
    let mut c = vec![f32::NAN; m * n];
    let ones = vec![1.0f32; mr.max(nr)];
    for (blk, k0) in (0..k).step_by(kc).enumerate() {
        let kc4 = (kc.min(k - k0)).div_ceil(4);
        for p in 0..bt.panels() {
            for ip in 0..m.div_ceil(mr) {
                let rows = mr.min(m - ip * mr);
                let cols = nr.min(n - p * nr);
                let off = ip * mr * n + p * nr;
                // SAFETY: the tile (rows × cols at `off`, stride n) lies inside `c`.
                unsafe {
                    kernel.tile(
                        rows,
                        kc4,
                        pa.block(ip, k0, kc4),
                        pa.corr(ip, blk),
                        bt.block(p, k0, kc4),
                        &TileOut {
                            c: c[off..].as_mut_ptr(),
                            ldc: n,
                            cols,
                            rs: &ones,
                            cs: &ones,
                            accumulate: blk > 0,
                        },
                    )
                };
            }
        }
    }
    c
}

#[test]
fn kernels_match_i64_reference_exactly_on_odd_shapes() {
    // Under Miri (slow) small shapes only, still with row, column and depth remainders; there
    // every k ≤ 64, so a depth block of 64 would repeat the single-block case and is left out.
    let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
        &[(1, 1, 1), (3, 5, 7), (4, 3, 16), (9, 19, 33)]
    } else {
        &[
            (1, 1, 1),
            (3, 5, 7),
            (8, 64, 32),
            (9, 67, 33),
            (17, 131, 50),
            (4, 3, 16),
            (13, 260, 97),
        ]
    };
    for kernel in Kernel::all_supported() {
        for (s, &(m, k, n)) in shapes.iter().enumerate() {
            let a = codes(m * k, 10 + s as u64);
            let b = codes(k * n, 100 + s as u64);
            let want = reference(&a, &b, m, k, n);
            // |C| < 2²⁴ here, so the f32 output must equal the integer exactly.
            assert!(want.iter().all(|v| v.abs() < 1 << 24));
            let bt = PackedB::from_cols(&b, k, n, kernel.nr());
            let kcs: &[usize] = if cfg!(miri) {
                &[4 * k.div_ceil(4), 8]
            } else {
                &[4 * k.div_ceil(4), 8, 64]
            };
            for &kc in kcs {
                let got = run(kernel, &a, &bt, m, k, kc);
                for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        *g,
                        *w as f32,
                        "{:?} m{m} k{k} n{n} kc{kc} at {idx}",
                        kernel.kind()
                    );
                }
            }
        }
    }
}

#[test]
fn extreme_codes_do_not_saturate() {
    // 127·127 pairs are where vpmaddubsw would saturate with offset-binary operands. Under
    // Miri (slow, portable kernel only) a depth of 100 instead of 1000.
    let (m, k, n) = (5, if cfg!(miri) { 100 } else { 1000 }, 19);
    for kernel in Kernel::all_supported() {
        for (av, bv) in [(127i8, 127i8), (-127, 127), (127, -127), (-127, -127)] {
            let a = vec![av; m * k];
            let b = vec![bv; k * n];
            let bt = PackedB::from_cols(&b, k, n, kernel.nr());
            let got = run(kernel, &a, &bt, m, k, 1000);
            let want = (av as i64 * bv as i64 * k as i64) as f32;
            assert!(got.iter().all(|&g| g == want), "{:?}", kernel.kind());
        }
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "K_MAX-long sums take minutes under Miri; the wrap it checks is in the VNNI kernel"
)]
fn k_max_is_exact_despite_wrapping_raw_accumulator() {
    // The raw VNNI sum 127·255·K_MAX ≈ 4.1e9 wraps i32; the corrected result 127²·K_MAX fits.
    let (m, n, k) = (1, 1, K_MAX);
    for kernel in Kernel::all_supported() {
        for bv in [127i8, -127] {
            let a = vec![127i8; k];
            let bt = PackedB::from_rows(&vec![bv; k], n, k, kernel.nr());
            let got = run(kernel, &a, &bt, m, k, K_MAX);
            let want = 127i64 * bv as i64 * k as i64;
            assert!(want.abs() < i32::MAX as i64);
            assert_eq!(got[0], want as i32 as f32, "{:?}", kernel.kind());
        }
    }
}

#[test]
fn scales_and_accumulate_follow_the_epilogue_formula() {
    let (m, k, n) = (6, 40, 37);
    let a = codes(m * k, 1);
    let b = codes(k * n, 2);
    let want = reference(&a, &b, m, k, n);
    for kernel in Kernel::all_supported() {
        let (mr, nr) = (kernel.mr(), kernel.nr());
        let mut pa = PackedA::default();
        pa.pack(&a, m, k, mr, 40);
        let bt = PackedB::from_cols(&b, k, n, nr);
        let rs: Vec<f32> = (0..m.div_ceil(mr) * mr).map(|i| 0.5 + i as f32).collect();
        let cs: Vec<f32> = (0..bt.panels() * nr)
            .map(|j| 0.25 * (j + 1) as f32)
            .collect();
        let mut c = vec![1.0f32; m * n];
        for p in 0..bt.panels() {
            for ip in 0..m.div_ceil(mr) {
                let off = ip * mr * n + p * nr;
                // SAFETY: the tile (rows × cols at `off`, stride n) lies inside `c`.
                unsafe {
                    kernel.tile(
                        mr.min(m - ip * mr),
                        10,
                        pa.block(ip, 0, 10),
                        pa.corr(ip, 0),
                        bt.block(p, 0, 10),
                        &TileOut {
                            c: c[off..].as_mut_ptr(),
                            ldc: n,
                            cols: nr.min(n - p * nr),
                            rs: &rs[ip * mr..],
                            cs: &cs[p * nr..],
                            accumulate: true,
                        },
                    )
                };
            }
        }
        for i in 0..m {
            for j in 0..n {
                let w = 1.0 + want[i * n + j] as f64 * rs[i] as f64 * cs[j] as f64;
                let g = c[i * n + j] as f64;
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{i},{j}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn detect_prefers_the_widest_supported_kernel() {
    let all = Kernel::all_supported();
    assert_eq!(Kernel::detect(), all[0]);
    assert!(all.iter().any(|k| k.kind() == super::KernelKind::Portable));
    let none = &crate::cpu::CpuFeatures::NONE;
    assert_eq!(Kernel::best(none).kind(), super::KernelKind::Portable);
    assert!(Kernel::new_on(super::KernelKind::Avx2, none).is_none());
}

/// `C = Σ_blocks s[i, b] · (A_b·B_b)` in f64 from i64 block sums, blocks of `len` along `k`
/// (`s[i·⌈k/len⌉ + b]`).
fn block_reference(
    a: &[i8],
    b: &[i8],
    s: &[f32],
    (m, k, n): (usize, usize, usize),
    len: usize,
) -> Vec<f64> {
    let nb = k.div_ceil(len);
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            for blk in 0..nb {
                let dot: i64 = (blk * len..((blk + 1) * len).min(k))
                    .map(|p| a[i * k + p] as i64 * b[p * n + j] as i64)
                    .sum();
                c[i * n + j] += s[i * nb + blk] as f64 * dot as f64;
            }
        }
    }
    c
}

/// `Σ_b |s_b|·(Σ_{k∈b} |a||b| + 128·Σ_{k∈b} |a|)` per output: bounds every partial sum any
/// block kernel's f32 accumulator holds (VNNI's offset term included).
fn magnitude_bound(
    a: &[i8],
    b: &[i8],
    s: &[f32],
    (m, k, n): (usize, usize, usize),
    len: usize,
) -> Vec<f64> {
    let abs_a: Vec<i8> = a.iter().map(|x| x.saturating_abs()).collect();
    let abs_b: Vec<i8> = b.iter().map(|x| x.saturating_abs()).collect();
    let abs_s: Vec<f32> = s.iter().map(|x| x.abs()).collect();
    let mag = block_reference(&abs_a, &abs_b, &abs_s, (m, k, n), len);
    let offs = block_reference(&abs_a, &vec![1i8; k * n], &abs_s, (m, k, n), len);
    mag.iter().zip(offs).map(|(x, o)| x + 128.0 * o).collect()
}

/// A whole product through `kernel.tile_blocks`, `kc`-blocked, unit column scales.
#[allow(clippy::too_many_arguments)]
fn run_blocks(
    kernel: Kernel,
    a: &[i8],
    s: &[f32],
    bt: &PackedB,
    (m, k): (usize, usize),
    kc: usize,
    len: usize,
) -> Vec<f32> {
    let (mr, nr, n) = (kernel.mr(), kernel.nr(), bt.n);
    let mut pa = PackedA::default();
    pa.pack(a, m, k, mr, kc);
    let sums: Vec<i32> = a
        .chunks(k)
        .flat_map(|row| {
            row.chunks(len)
                .map(|b| b.iter().map(|&x| x as i32).sum::<i32>())
        })
        .collect();
    pa.set_block_scales(m, k, len, s, &sums);
    let mut c = vec![f32::NAN; m * n];
    let ones = vec![1.0f32; nr];
    for (blk, k0) in (0..k).step_by(kc).enumerate() {
        let kc4 = (kc.min(k - k0)).div_ceil(4);
        for p in 0..bt.panels() {
            for ip in 0..m.div_ceil(mr) {
                let off = ip * mr * n + p * nr;
                // SAFETY: the tile (rows × cols at `off`, stride n) lies inside `c`.
                unsafe {
                    kernel.tile_blocks(
                        mr.min(m - ip * mr),
                        kc4,
                        len / 4,
                        pa.block(ip, k0, kc4),
                        pa.block_scales(ip, k0),
                        pa.fcorr(ip, blk),
                        bt.block(p, k0, kc4),
                        &TileOut {
                            c: c[off..].as_mut_ptr(),
                            ldc: n,
                            cols: nr.min(n - p * nr),
                            rs: &[],
                            cs: &ones,
                            accumulate: blk > 0,
                        },
                    )
                };
            }
        }
    }
    c
}

#[test]
fn block_kernels_are_exact_with_power_of_two_scales() {
    // Scales in {¼, ½, 1, 2}: every block sum is an integer below 2²⁴ (VNNI's raw sum with its
    // offset included: |Σ| ≤ 255·127·32), so it converts exactly, and every scaled partial sum
    // is a multiple of ¼; while those stay below 2²² in magnitude (asserted below from
    // Σ_b s_b·(Σ|a||b| + 128·Σ|a|), which bounds both the raw and the corrected sums) f32 holds
    // them exactly. So the result must equal the i64 reference bit for bit — any lost block,
    // wrong scale index or wrong correction shows.
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (8, 64, 32),
        (9, 67, 33),
        (17, 128, 50),
    ];
    for kernel in Kernel::all_supported() {
        for (si, &(m, k, n)) in shapes.iter().enumerate() {
            if cfg!(miri) && m * k * n > 40_000 {
                continue;
            }
            let a = codes(m * k, 300 + si as u64);
            let b = codes(k * n, 400 + si as u64);
            let bt = PackedB::from_cols(&b, k, n, kernel.nr());
            for len in [4, 8, 32] {
                let nb = k.div_ceil(len);
                let s: Vec<f32> = (0..m * nb).map(|x| [0.25, 0.5, 1.0, 2.0][x % 4]).collect();
                let want = block_reference(&a, &b, &s, (m, k, n), len);
                let bound = magnitude_bound(&a, &b, &s, (m, k, n), len);
                assert!(bound.iter().all(|&x| x < (1 << 22) as f64));
                for kc in [4 * k.div_ceil(4), len, 2 * len] {
                    let got = run_blocks(kernel, &a, &s, &bt, (m, k), kc, len);
                    for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            *g as f64,
                            *w,
                            "{:?} m{m} k{k} n{n} len{len} kc{kc} at {idx}",
                            kernel.kind()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn block_kernels_match_the_f64_reference_for_long_rows() {
    // Model-sized rows with arbitrary scales: the f32 accumulation rounds, so the bound is
    // relative to Σ_b |s_b|·(|A_b·B_b| + 128·|Σ A_b|), the largest magnitude any kernel's f32
    // accumulator holds (the VNNI offset term included): a few ulps of it, times √blocks.
    // Under Miri (the interpreter took ~5 minutes for the full size) rows of 128 still span
    // 4 scale blocks and, with kc = 64, two depth blocks.
    let (m, k, n) = (9, if cfg!(miri) { 128 } else { 1536 }, 40);
    let kc_split = if cfg!(miri) { 64 } else { 512 };
    let a = codes(m * k, 7);
    let b = codes(k * n, 8);
    let len = 32;
    let nb = k / len;
    let mut rng = Rng::new(9);
    let s: Vec<f32> = (0..m * nb)
        .map(|_| 1e-3 * (1 + rng.next_u64() % 1000) as f32)
        .collect();
    let want = block_reference(&a, &b, &s, (m, k, n), len);
    let mag = magnitude_bound(&a, &b, &s, (m, k, n), len);
    for kernel in Kernel::all_supported() {
        let bt = PackedB::from_cols(&b, k, n, kernel.nr());
        for kc in [k, kc_split] {
            let got = run_blocks(kernel, &a, &s, &bt, (m, k), kc, len);
            for idx in 0..m * n {
                let bound = 1e-6 * mag[idx];
                assert!(
                    (got[idx] as f64 - want[idx]).abs() <= bound,
                    "{:?} kc{kc} at {idx}: {} vs {} (bound {bound})",
                    kernel.kind(),
                    got[idx],
                    want[idx]
                );
            }
        }
    }
}
