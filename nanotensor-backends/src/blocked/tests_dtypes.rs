//! Tests of the f64, bf16 and f16 kernels: each kernel this CPU can run, forced (not only the
//! detected one), through the driver on odd shapes, against the float64 reference.

use super::gemm::{gemm, BSource, PackedB};
use super::kernel::f64_choice::{with_f64_kernel, F64Kernel};
use super::kernel::GemmKernel;
use super::pack::MatRef;
use super::*;
use crate::select::WeightStorage;
use nanotensor_core::reference::{compare, matmul_f64};
use nanotensor_core::Error;

/// Shapes `(m, k, n)` for the element-type kernels: ones, odd depths (a bf16 pair half
/// filled), edge tiles in both directions for every MR/NR in use (4, 6, 12 × 4, 8, 16, 32),
/// several depth blocks (kc = 256 for f64, 2048 for bf16), and sizes above PAR_MIN_MACS.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 7, 1),
    (2, 3, 5),
    (7, 13, 11),
    (12, 31, 16),
    (13, 33, 33),
    (25, 64, 17),
    (63, 65, 127),
    (1, 577, 300),
    (5, 200, 97),
    (40, 1029, 70),
    (130, 201, 300),
    (11, 2500, 35),
];

/// Runs `kern` through the driver on every shape (strided B, then pre-packed B), with C rows
/// padded past `n` to catch stray writes, on random operands of type `S` converted by
/// `to_a`/`to_b` while packing, and compares with the exact f64 product of the `S` operands;
/// panics on an NMSE above `tol`.
pub(super) fn check_driver<S: Element, K: GemmKernel>(
    kern: K,
    pool: Option<&Pool>,
    to_a: impl Fn(S) -> K::A + Sync + Copy,
    to_b: impl Fn(S) -> K::B + Sync + Copy,
    c_f64: impl Fn(K::C) -> f64,
    pad: K::C,
    tol: f64,
) {
    for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
        let a = Tensor::<S>::randn(&[m, k], 1.0, 700 + s as u64).unwrap();
        let b = Tensor::<S>::randn(&[k, n], 1.0, 800 + s as u64).unwrap();
        let want = matmul_f64(&a, &b).unwrap();
        let ldc = n + 3;
        let mut c = vec![pad; m * ldc];
        let am = MatRef::new(a.as_slice(), m, k, k, 1);
        let bm = MatRef::new(b.as_slice(), k, n, n, 1);
        gemm(
            kern,
            pool,
            am,
            to_a,
            BSource::Strided(bm),
            to_b,
            &mut c,
            ldc,
        );
        let got: Vec<f64> = c
            .chunks(ldc)
            .flat_map(|r| r[..n].iter().map(|&v| c_f64(v)).collect::<Vec<_>>())
            .collect();
        let cmp = compare(&got, &want).expect("same length");
        assert!(cmp.passes(tol), "{} {m}x{k}x{n}: {cmp:?}", kern.name());
        let pad_bits = bytemuck::bytes_of(&pad).to_vec();
        assert!(
            c.chunks(ldc)
                .all(|r| r[n..].iter().all(|v| bytemuck::bytes_of(v) == pad_bits)),
            "{} {m}x{k}x{n} wrote past n",
            kern.name()
        );
        let packed = PackedB::new(kern, pool, bm, to_b);
        let mut c2 = vec![K::C::default(); m * n];
        gemm(
            kern,
            pool,
            am,
            to_a,
            BSource::Packed(&packed),
            to_b,
            &mut c2,
            n,
        );
        let got2: Vec<f64> = c2.iter().map(|&v| c_f64(v)).collect();
        assert_eq!(got2, got, "{} packed B differs {m}x{k}x{n}", kern.name());
    }
}

#[test]
fn every_f64_kernel_matches_the_reference_through_the_driver() {
    let pool = Pool::new(2).unwrap();
    for kern in F64Kernel::available() {
        with_f64_kernel!(kern, k => {
            for p in [None, Some(&pool)] {
                check_driver::<f64, _>(k, p, |x| x, |x| x, |c| c, f64::NAN, 1e-26);
            }
        });
    }
}

#[test]
fn every_f64_kernel_matches_direct_sums() {
    for kern in F64Kernel::available() {
        with_f64_kernel!(kern, k => super::kernel::tests::check_kernel(k, |x| x, |x| x, |c| c, 0.0));
    }
}

#[test]
fn f64_detection_is_stable_and_best() {
    assert_eq!(F64Kernel::detect(), F64Kernel::available()[0]);
    let portable = F64Kernel::available_on(&crate::cpu::CpuFeatures::NONE);
    assert_eq!(portable.len(), 1);
    let be = BlockedBackend::new(1).unwrap();
    assert_eq!(be.f64_kernel_name(), F64Kernel::detect().name());
}

/// f64 matmul and linear through the backend (the detected kernel; 1 and 2 threads, skinny
/// and GEMM row counts), and NaN/±∞ in either operand named by its index whether the kernel's
/// flag or the scan found it.
#[test]
fn f64_backend_matmul_linear_and_non_finite() {
    for threads in [1, 2] {
        let be = BlockedBackend::new(threads).unwrap();
        for &(m, k, n) in SHAPES {
            let a = Tensor::<f64>::randn(&[m, k], 1.0, 1).unwrap();
            let b = Tensor::<f64>::randn(&[k, n], 1.0, 2).unwrap();
            let want = matmul_f64(&a, &b).unwrap();
            let c = be.matmul(&a, &b).unwrap();
            let cmp = compare(c.as_slice(), &want).expect("same length");
            assert!(cmp.passes(1e-26), "matmul {m}x{k}x{n}: {cmp:?}");
            let w = be.prepare(b.t().unwrap()).unwrap();
            let y = be.linear(&a, &w).unwrap();
            let cmp = compare(y.as_slice(), &want).expect("same length");
            assert!(cmp.passes(1e-26), "linear {m}x{k}x{n}: {cmp:?}");
        }
        let a = Tensor::<f64>::randn(&[37, 600], 1.0, 3).unwrap();
        let b = Tensor::<f64>::randn(&[600, 45], 1.0, 4).unwrap();
        for (in_a, len) in [(true, a.numel()), (false, b.numel())] {
            for pos in [0, len / 2 + 1, len - 1] {
                let (mut a, mut b) = (a.clone(), b.clone());
                let x = if in_a { &mut a } else { &mut b };
                x.as_mut_slice()[pos] = f64::NAN;
                match be.matmul(&a, &b) {
                    Err(Error::NonFinite { index, operand, .. }) => {
                        assert_eq!((index, operand), (pos, if in_a { "A" } else { "B" }))
                    }
                    other => panic!("NaN at {pos}: {other:?}"),
                }
            }
        }
        let big = Tensor::full(&[20, 30], 1e300f64).unwrap();
        let c = be.matmul(&big, &big.t().unwrap()).unwrap();
        assert!(c.as_slice().iter().all(|v| *v == f64::INFINITY));
    }
}

/// The bf16 dot-product kernel, where the CPU has it: direct sums on small integers (exact),
/// then the driver on every shape, odd depths included, against the f64 product of the bf16
/// inputs. Products of bf16 values are exact in f32, so what remains is f32 summation:
/// NMSE ~ k·(2⁻²⁴)² ≪ 1e-12.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[test]
fn bf16_kernel_matches_the_reference_when_available() {
    use super::kernel::avx512_bf16::Avx512Bf16;
    use half::bf16;
    let Some(kern) = Avx512Bf16::new(crate::cpu::features()) else {
        eprintln!("no AVX512-BF16 on this CPU: the bf16 kernel is not exercised");
        return;
    };
    let bits = |x: f64| bf16::from_f64(x).to_bits();
    super::kernel::tests::check_kernel(kern, bits, bits, |c| c as f64, 0.0);
    let pool = Pool::new(2).unwrap();
    for p in [None, Some(&pool)] {
        let bits = |x: bf16| x.to_bits();
        check_driver::<bf16, _>(kern, p, bits, bits, |c| c as f64, f32::NAN, 1e-12);
    }
    let be = BlockedBackend::new(1)
        .unwrap()
        .with_bf16_preference(super::Bf16Preference::Dot);
    assert_eq!(be.kernel_for(nanotensor_core::DType::BF16), kern.name());
    half_backend_case_on::<half::bf16>(&be, 1e-5);
}

/// The bf16 path follows the preference: widening when asked, the dot-product kernel when
/// asked and present, by vendor otherwise.
#[test]
fn bf16_preference_picks_the_kernel() {
    use super::Bf16Preference::*;
    use nanotensor_core::DType::BF16;
    let be = BlockedBackend::new(1).unwrap();
    let convert = be.with_bf16_preference(Convert);
    assert_eq!(
        convert.kernel_for(BF16),
        format!("convert+{}", convert.kernel_name())
    );
    let cpu = crate::cpu::features();
    let has_dot =
        cfg!(any(target_arch = "x86", target_arch = "x86_64")) && cpu.avx512f && cpu.avx512bf16;
    let dot = BlockedBackend::new(1).unwrap().with_bf16_preference(Dot);
    assert_eq!(dot.kernel_for(BF16).starts_with("avx512bf16"), has_dot);
    let auto = BlockedBackend::new(1).unwrap().with_bf16_preference(Auto);
    assert_eq!(
        auto.kernel_for(BF16).starts_with("avx512bf16"),
        has_dot && cpu.amd
    );
    half_backend_case_on::<half::bf16>(&convert, 1e-5);
}

/// bf16 and f16 operands widened while packing into every f32 kernel this CPU can run (the
/// path of f16 everywhere and of bf16 without AVX512-BF16): exact widening, f32 sums.
#[test]
fn half_operands_widen_into_every_f32_kernel() {
    use super::kernel::{with_f32_kernel, F32Kernel};
    let pool = Pool::new(2).unwrap();
    for kern in F32Kernel::available() {
        with_f32_kernel!(kern, k => {
            for p in [None, Some(&pool)] {
                let w16 = |x: half::f16| x.to_f32();
                check_driver::<half::f16, _>(k, p, w16, w16, |c| c as f64, f32::NAN, 1e-12);
                let wb = |x: half::bf16| x.to_f32();
                check_driver::<half::bf16, _>(k, p, wb, wb, |c| c as f64, f32::NAN, 1e-12);
            }
        });
    }
}

/// bf16 and f16 through the backend: matmul and prepared linear (skinny and GEMM row counts)
/// on 1 and 2 threads, and NaN/±∞ named by index. The result is rounded once to the output
/// type, whose relative rounding error is at most 2⁻⁹ (bf16) or 2⁻¹² (f16): NMSE ≤ 4e-6 and
/// 6e-8 in the worst case, ~1/3 of that on average; bounds 1e-5 and 1e-7.
fn half_backend_case<T: Element>(tol: f64) {
    for threads in [1, 2] {
        half_backend_case_on::<T>(&BlockedBackend::new(threads).unwrap(), tol);
    }
}

fn half_backend_case_on<T: Element>(be: &BlockedBackend, tol: f64) {
    for &(m, k, n) in SHAPES {
        let a = Tensor::<T>::randn(&[m, k], 1.0, 1).unwrap();
        let b = Tensor::<T>::randn(&[k, n], 1.0, 2).unwrap();
        let want = matmul_f64(&a, &b).unwrap();
        let c = be.matmul(&a, &b).unwrap();
        let cmp = compare(c.as_slice(), &want).expect("same length");
        assert!(cmp.passes(tol), "{} matmul {m}x{k}x{n}: {cmp:?}", T::DTYPE);
        let w = be.prepare(b.t().unwrap()).unwrap();
        let y = be.linear(&a, &w).unwrap();
        let cmp = compare(y.as_slice(), &want).expect("same length");
        assert!(cmp.passes(tol), "{} linear {m}x{k}x{n}: {cmp:?}", T::DTYPE);
    }
    let a = Tensor::<T>::randn(&[37, 600], 1.0, 3).unwrap();
    let b = Tensor::<T>::randn(&[600, 45], 1.0, 4).unwrap();
    for (in_a, len) in [(true, a.numel()), (false, b.numel())] {
        for pos in [0, len / 2 + 1, len - 1] {
            let (mut a, mut b) = (a.clone(), b.clone());
            let x = if in_a { &mut a } else { &mut b };
            x.as_mut_slice()[pos] = T::infinity();
            match be.matmul(&a, &b) {
                Err(Error::NonFinite { index, operand, .. }) => {
                    assert_eq!((index, operand), (pos, if in_a { "A" } else { "B" }))
                }
                other => panic!("{} ∞ at {pos}: {other:?}", T::DTYPE),
            }
        }
    }
}

#[test]
fn bf16_backend_matmul_linear_and_non_finite() {
    half_backend_case::<half::bf16>(1e-5);
}

#[test]
fn f16_backend_matmul_linear_and_non_finite() {
    half_backend_case::<half::f16>(1e-7);
    let be = BlockedBackend::new(1).unwrap();
    let name = be.kernel_for(nanotensor_core::DType::F16);
    assert_eq!(name, format!("convert+{}", be.kernel_name()));
}

/// Every f64 kernel's skinny (decode) routine sums exactly on small integers, for every row
/// count, odd and even depths.
#[test]
fn f64_skinny_kernels_match_direct_sums() {
    use super::kernel::SkinnyKernel;
    fn check<K: SkinnyKernel<A = f64, B = f64, C = f64>>(k: K) {
        let mut rng = nanotensor_core::rng::Rng::new(5);
        let nr = K::NR;
        for m in 1..=8 {
            for kc in [1, 5, 64] {
                let ldx = kc + 3;
                let x: Vec<f64> = (0..m * ldx)
                    .map(|_| rng.uniform(-2.0, 2.0).round())
                    .collect();
                let b: Vec<f64> = (0..kc * nr)
                    .map(|_| rng.uniform(-2.0, 2.0).round())
                    .collect();
                let mut acc = vec![1.0f64; m * nr];
                k.skinny(m, kc, &x, ldx, &b, &mut acc);
                for i in 0..m {
                    for j in 0..nr {
                        let want =
                            1.0 + (0..kc).map(|p| x[i * ldx + p] * b[p * nr + j]).sum::<f64>();
                        assert_eq!(acc[i * nr + j], want, "{} m={m} kc={kc}", k.name());
                    }
                }
            }
        }
    }
    for kern in F64Kernel::available() {
        with_f64_kernel!(kern, k => check(k));
    }
}

/// `x` with every element rounded to bf16 (to nearest, ties to even) and back.
fn round_bf16(x: &Tensor<f32>) -> Tensor<f32> {
    let v = x
        .as_slice()
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect();
    Tensor::from_vec(v, x.shape()).unwrap()
}

/// f32 weights stored as bf16 (`WeightStorage::Bf16`): `linear` equals the float64 product
/// with the weight rounded to bf16 — and, above the skinny row count on the `vdpbf16ps` pair
/// panels, the activations rounded too — up to f32 summation error (NMSE ≤ 1e-9; an unrounded
/// weight would be off by ~1e-6). Both storages run: the pair panels where this CPU has
/// AVX512-BF16, and the rounded-f32 fallback of CPUs without it (forced). `prepare_rows` gives
/// the same weight bit for bit, and the pair panels take about half the bytes of f32. Shapes
/// include an odd last depth block after full ones (k = 4097).
#[test]
fn bf16_weight_storage_matches_the_rounded_reference() {
    let has_dot = cfg!(any(target_arch = "x86", target_arch = "x86_64"))
        && crate::cpu::features().avx512f
        && crate::cpu::features().avx512bf16;
    for threads in [1, 2] {
        let plain = BlockedBackend::new(threads).unwrap();
        let stored = || {
            BlockedBackend::new(threads)
                .unwrap()
                .with_weight_storage(WeightStorage::Bf16)
        };
        for (be, dot) in [(stored(), has_dot), (stored().without_bf16_panels(), false)] {
            if dot {
                assert_eq!(be.weight_kernel(), "avx512bf16-12x32+widen-skinny");
            } else {
                assert_eq!(
                    be.weight_kernel(),
                    format!("bf16-as-f32+{}", be.kernel_name())
                );
            }
            let extra = [(8, 96, 70), (9, 96, 70), (3, 4097, 40), (20, 4097, 40)];
            for (s, &(m, k, n)) in SHAPES.iter().chain(&extra).enumerate() {
                let x = Tensor::<f32>::randn(&[m, k], 1.0, 900 + s as u64).unwrap();
                let w = Tensor::<f32>::randn(&[n, k], 1.0, 950 + s as u64).unwrap();
                let xr = if dot && m > gemv::MAX_ROWS {
                    round_bf16(&x)
                } else {
                    x.clone()
                };
                let want = matmul_f64(&xr, &round_bf16(&w).t().unwrap()).unwrap();
                let pw = be.prepare(w.clone()).unwrap();
                let y = be.linear(&x, &pw).unwrap();
                let cmp = compare(y.as_slice(), &want).expect("same length");
                assert!(
                    cmp.passes(1e-9),
                    "{threads}t dot={dot} {m}x{k}x{n}: {cmp:?}"
                );
                let streamed = be
                    .prepare_rows([n, k], |rows, buf: &mut [f32]| {
                        buf.copy_from_slice(&w.as_slice()[rows.start * k..rows.end * k]);
                        Ok(())
                    })
                    .unwrap();
                let y2 = be.linear(&x, &streamed).unwrap();
                assert_eq!(y.as_slice(), y2.as_slice(), "prepare_rows {m}x{k}x{n}");
                let full = plain.prepare(w.clone()).unwrap().size_bytes();
                if dot && n * k >= 4096 {
                    assert!(
                        pw.size_bytes() * 10 <= full * 6,
                        "{m}x{k}x{n}: {} bytes as bf16, {full} as f32",
                        pw.size_bytes()
                    );
                } else if !dot {
                    assert_eq!(pw.size_bytes(), full, "{m}x{k}x{n}");
                }
            }
        }
    }
}
