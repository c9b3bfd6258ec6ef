//! Tests of the f64, bf16 and f16 kernels: each kernel this CPU can run, forced (not only the
//! detected one), through the driver on odd shapes, against the float64 reference.

use super::gemm::{gemm, BSource, PackedB};
use super::kernel::f64_choice::{with_f64_kernel, F64Kernel};
use super::kernel::GemmKernel;
use super::pack::MatRef;
use super::*;
use nanotensor_core::reference::{compare, matmul_f64};
use nanotensor_core::Error;

/// Shapes `(m, k, n)` for the element-type kernels: ones, odd depths (a bf16 pair half
/// filled), edge tiles in both directions for every MR/NR in use (4, 6, 12 × 4, 8, 16, 32),
/// several depth blocks (kc = 512 for f64, 2048 for bf16), and sizes above PAR_MIN_MACS.
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
/// padded past `n` to catch stray writes, and compares with the f64 product of the operands
/// as the kernel sees them (`to_a`/`to_b` of the f64 inputs). Returns nothing; panics on a
/// mismatch above `tol` (NMSE).
pub(super) fn check_driver<K: GemmKernel>(
    kern: K,
    pool: Option<&Pool>,
    to_a: impl Fn(f64) -> K::A + Sync + Copy,
    to_b: impl Fn(f64) -> K::B + Sync + Copy,
    c_f64: impl Fn(K::C) -> f64,
    pad: K::C,
    tol: f64,
) {
    for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
        let a = Tensor::<f64>::randn(&[m, k], 1.0, 700 + s as u64).unwrap();
        let b = Tensor::<f64>::randn(&[k, n], 1.0, 800 + s as u64).unwrap();
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
                check_driver(k, p, |x| x, |x| x, |c| c, f64::NAN, 1e-26);
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
