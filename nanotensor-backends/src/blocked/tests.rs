//! Tests of the blocked backend against the float64 references of `nanotensor_core::reference`.

use super::gemm::{gemm, gemm_ext, ASource, BSource, PackedB, Panels};
use super::kernel::{with_f32_kernel, F32Kernel, GemmKernel};
use super::pack::{packed_len, MatRef};
use super::*;
use nanotensor_core::reference::{attention_f64, compare, matmul_f64, softmax_f64};
use nanotensor_core::Error;
use nanotensor_core::{AttentionAlgo, HeadsLayout};

const TOL_F32: f64 = 1e-10;

/// Shapes `(m, k, n)`: ones, primes, around powers of two, tall, skinny, matvec, and sizes
/// that are not multiples of any MR/NR or of kc (1024), with k spanning several depth blocks (kc),
/// m several row blocks (mc = 144) and n several column blocks (nc = 4096).
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 7, 1),
    (2, 3, 5),
    (7, 13, 11),
    (12, 32, 32),
    (13, 33, 31),
    (63, 65, 127),
    (65, 63, 129),
    (127, 129, 65),
    (129, 127, 63),
    (1, 576, 300),
    (5, 200, 97),
    (300, 7, 3),
    (3, 400, 2),
    (200, 1, 50),
    (40, 385, 70),
    (20, 1100, 45),
    (301, 1030, 33),
    (3, 20, 4200),
    // Above gemm::PAR_MIN_MACS, so two threads really split them, sharing one B~ that both
    // pack: tall and short row ranges, and two depth blocks (the second accumulates).
    (400, 100, 70),
    (130, 200, 300),
    (50, 1100, 90),
    // Three depth blocks: the middle one accumulates but is not the last.
    (40, 2300, 33),
];

fn check_gemm_kernel<K: GemmKernel<A = f32, B = f32, C = f32>>(kern: K, pool: Option<&Pool>) {
    for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
        let a = Tensor::<f32>::randn(&[m, k], 1.0, 100 + s as u64).unwrap();
        let b = Tensor::<f32>::randn(&[k, n], 1.0, 200 + s as u64).unwrap();
        let want = matmul_f64(&a, &b).unwrap();
        // Padding the rows of C checks that ldc > n is honoured and nothing else is touched.
        let ldc = n + 3;
        let mut c = vec![f32::NAN; m * ldc];
        let am = MatRef::new(a.as_slice(), m, k, k, 1);
        let bm = MatRef::new(b.as_slice(), k, n, n, 1);
        let proven_finite = gemm(
            kern,
            pool,
            am,
            |x| x,
            BSource::Strided(bm),
            |x| x,
            &mut c,
            ldc,
        );
        // Finite operands, small sums: a flagging kernel flags nothing — not even the NaN
        // padding past `n` — so the product proves them finite; other kernels prove nothing.
        assert_eq!(
            proven_finite,
            K::FLAGS_NON_FINITE,
            "{} {m}x{k}x{n}",
            kern.name()
        );
        let got: Vec<f32> = c.chunks(ldc).flat_map(|r| r[..n].to_vec()).collect();
        let cmp = compare(&got, &want).expect("same length");
        assert!(cmp.passes(TOL_F32), "{} {m}x{k}x{n}: {cmp:?}", kern.name());
        assert!(
            c.chunks(ldc).all(|r| r[n..].iter().all(|v| v.is_nan())),
            "wrote past n"
        );
        // The same product with B pre-packed.
        let packed = PackedB::new(kern, pool, bm, |x| x);
        let mut c2 = vec![0.0f32; m * n];
        gemm(
            kern,
            pool,
            am,
            |x| x,
            BSource::Packed(&packed),
            |x| x,
            &mut c2,
            n,
        );
        assert_eq!(c2, got, "{} packed B differs {m}x{k}x{n}", kern.name());
    }
}

#[test]
fn driver_with_every_kernel_matches_f64_reference_on_odd_shapes() {
    let pool = Pool::new(2).unwrap();
    for kern in F32Kernel::available() {
        with_f32_kernel!(kern, k => {
            check_gemm_kernel(k, None);
            check_gemm_kernel(k, Some(&pool));
        });
    }
}

/// Operands packed whole ([`Panels`], each micro-panel holding all of `k`) through the plain
/// kernels: the macro-kernel walks the panels by stride, depth blocks start inside the panels
/// (k = 1030 → two blocks), edge tiles go through the scratch tile, and with two threads the
/// tasks are mc-row blocks. Against the f64 reference; nothing past column `n` is written.
#[test]
fn operands_packed_whole_are_walked_by_stride() {
    fn run<K: GemmKernel<A = f32, B = f32, C = f32>>(kern: K, pool: &Pool) {
        let (mr, nr) = (K::MR, K::NR);
        for &(m, k, n) in &[
            (13, 33, 31),
            (301, 1030, 33),
            (130, 200, 300),
            (1, 576, 300),
        ] {
            let a = Tensor::<f32>::randn(&[m, k], 1.0, 7).unwrap();
            let b = Tensor::<f32>::randn(&[k, n], 1.0, 8).unwrap();
            let want = matmul_f64(&a, &b).unwrap();
            let am = MatRef::new(a.as_slice(), m, k, k, 1);
            let bm = MatRef::new(b.as_slice(), k, n, n, 1);
            let mut pa = vec![0.0f32; packed_len(m, k, mr, 1)];
            kern.pack_a(am, |x| x, &mut pa);
            let mut pb = vec![0.0f32; packed_len(n, k, nr, 1)];
            kern.pack_b(bm, |x| x, &mut pb);
            for p in [None, Some(pool)] {
                let ldc = n + 2;
                let mut c = vec![f32::NAN; m * ldc];
                gemm_ext(
                    kern,
                    p,
                    ASource::<f32, f32>::Panels(Panels::new(&pa, m, k, mr * k)),
                    |x| x,
                    BSource::<f32, f32>::Panels(Panels::new(&pb, n, k, nr * k)),
                    |x| x,
                    None,
                    &mut c,
                    ldc,
                );
                let got: Vec<f32> = c.chunks(ldc).flat_map(|r| r[..n].to_vec()).collect();
                let cmp = compare(&got, &want).expect("same length");
                assert!(cmp.passes(TOL_F32), "{} {m}x{k}x{n}: {cmp:?}", kern.name());
                assert!(c.chunks(ldc).all(|r| r[n..].iter().all(|v| v.is_nan())));
            }
        }
    }
    let pool = Pool::new(2).unwrap();
    for kern in F32Kernel::available() {
        with_f32_kernel!(kern, k => run(k, &pool));
    }
}

#[test]
fn driver_handles_transposed_and_strided_operands() {
    let (m, k, n) = (37, 70, 45);
    let a = Tensor::<f32>::randn(&[k, m], 1.0, 1).unwrap(); // holds Aᵀ
    let b = Tensor::<f32>::randn(&[n, k], 1.0, 2).unwrap(); // holds Bᵀ
    let at = a.t().unwrap();
    let bt = b.t().unwrap();
    let want = matmul_f64(&at, &bt).unwrap();
    let mut c = vec![0.0f32; m * n];
    let am = MatRef::new(a.as_slice(), k, m, m, 1).t();
    let bm = MatRef::new(b.as_slice(), n, k, k, 1).t();
    with_f32_kernel!(kernel::detect(), kern => gemm(kern, None, am, |x| x, BSource::Strided(bm), |x| x, &mut c, n));
    assert!(compare(&c, &want).expect("same length").passes(TOL_F32));
}

fn backend_matmul_case<T: Element>(be: &BlockedBackend, m: usize, k: usize, n: usize, tol: f64) {
    let a = Tensor::<T>::randn(&[m, k], 1.0, 5).unwrap();
    let b = Tensor::<T>::randn(&[k, n], 1.0, 6).unwrap();
    let c = be.matmul(&a, &b).unwrap();
    let cmp = compare(c.as_slice(), &matmul_f64(&a, &b).unwrap()).expect("same length");
    assert!(cmp.passes(tol), "{} {m}x{k}x{n}: {cmp:?}", T::DTYPE);
}

#[test]
fn every_element_type_goes_through_the_backend() {
    for threads in [1, 2] {
        let be = BlockedBackend::new(threads).unwrap();
        // m ≤ 16: B streamed unpacked (`gemv::strided_f32` for f32), eight rows of B per step,
        // then four, then one at a time (k = 15: all three), in column chunks split over the
        // threads, the last one partial; then the packed GEMM driver.
        let shapes = [
            (1, 1, 1),
            (1, 300, 1100),
            (3, 1, 511),
            (5, 15, 40),
            (8, 33, 513),
            (9, 33, 513),
            (16, 67, 1100),
            (17, 33, 513),
            (13, 33, 31),
            (65, 200, 63),
        ];
        for &(m, k, n) in &shapes {
            backend_matmul_case::<f32>(&be, m, k, n, TOL_F32);
            backend_matmul_case::<f64>(&be, m, k, n, 1e-26);
            // bf16/f16 inputs are exact in f32, products accumulate in f32, the result is
            // rounded to 8 (bf16) or 11 (f16) significant bits: NMSE ~ 2^-16 / 2^-22.
            backend_matmul_case::<half::bf16>(&be, m, k, n, 1e-4);
            backend_matmul_case::<half::f16>(&be, m, k, n, 1e-5);
        }
    }
}

#[test]
fn batched_matmul_with_shared_and_per_batch_b() {
    let be = BlockedBackend::new(2).unwrap();
    let a = Tensor::<f32>::randn(&[3, 17, 40], 1.0, 1).unwrap();
    for b_shape in [&[40, 23][..], &[3, 40, 23][..]] {
        let b = Tensor::<f32>::randn(b_shape, 1.0, 2).unwrap();
        let c = be.matmul(&a, &b).unwrap();
        assert_eq!(c.shape(), &[3, 17, 23]);
        assert!(compare(c.as_slice(), &matmul_f64(&a, &b).unwrap())
            .expect("same length")
            .passes(TOL_F32));
    }
}

#[test]
fn matmul_rejects_bad_input_with_errors() {
    let be = BlockedBackend::new(1).unwrap();
    let a = Tensor::<f32>::zeros(&[2, 3]).unwrap();
    let b = Tensor::<f32>::zeros(&[4, 2]).unwrap();
    assert!(matches!(
        be.matmul(&a, &b),
        Err(Error::ShapeMismatch { .. })
    ));
    let nan = Tensor::<f32>::from_slice(&[f32::NAN, 0.0, 0.0], &[3, 1]).unwrap();
    assert!(matches!(be.matmul(&a, &nan), Err(Error::NonFinite { .. })));
    assert!(BlockedBackend::new(0).is_err());
}

/// Every NaN/±∞ in either operand is reported with its flat index, whichever path found it:
/// the AVX-512 kernel's flag on the finished C (which must survive depth blocks, threads and
/// batches) or the operand scan. Finite operands whose sums overflow are not an error.
#[test]
fn matmul_names_every_non_finite_operand_element() {
    // (a shape, b shape): two depth blocks (k > kc), a threaded product, a batch; skinny
    // products with B unpacked (m ≤ 8: threaded column chunks, a batch sharing B).
    let cases: [(&[usize], &[usize]); 6] = [
        (&[37, 1100], &[1100, 60]),
        (&[160, 128], &[128, 130]),
        (&[2, 20, 30], &[2, 30, 17]),
        (&[1, 300], &[300, 1100]),
        (&[8, 40], &[40, 513]),
        (&[2, 3, 20], &[20, 17]),
    ];
    for threads in [1, 2] {
        let be = BlockedBackend::new(threads).unwrap();
        for (sa, sb) in cases {
            let a = Tensor::<f32>::randn(sa, 1.0, 3).unwrap();
            let b = Tensor::<f32>::randn(sb, 1.0, 4).unwrap();
            assert!(be.matmul(&a, &b).is_ok());
            for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for (in_a, len) in [(true, a.numel()), (false, b.numel())] {
                    for pos in [0, len / 2 + 1, len - 1] {
                        let (mut a, mut b) = (a.clone(), b.clone());
                        let x = if in_a { &mut a } else { &mut b };
                        x.as_mut_slice()[pos] = special;
                        match be.matmul(&a, &b) {
                            Err(Error::NonFinite { index, .. }) => assert_eq!(index, pos),
                            other => panic!("{sa:?}·{sb:?} {special} at {pos}: {other:?}"),
                        }
                    }
                }
            }
            // ∞ times a zero row of B is NaN, not ∞; both count.
            let (mut a, mut b) = (a.clone(), b.clone());
            a.as_mut_slice()[1] = f32::INFINITY;
            let n = *sb.last().unwrap();
            b.as_mut_slice()[n..2 * n].fill(0.0);
            assert!(matches!(
                be.matmul(&a, &b),
                Err(Error::NonFinite { index: 1, .. })
            ));
            // Finite operands, overflowing sums: infinite C, no error (as the naive backend).
            let big_a = Tensor::full(sa, 1e30f32).unwrap();
            let big_b = Tensor::full(sb, 1e30f32).unwrap();
            let c = be.matmul(&big_a, &big_b).unwrap();
            assert!(c.as_slice().iter().all(|v| *v == f32::INFINITY));
        }
    }
}

/// `linear(x, prepare(W))` against the f64 product `x · Wᵀ`, for skinny (m ≤ 8) and GEMM
/// row counts, on 1 and 2 threads.
fn linear_case<T: Element>(be: &BlockedBackend, rows: usize, inf: usize, outf: usize, tol: f64) {
    let w = Tensor::<T>::randn(&[outf, inf], 1.0, 9).unwrap();
    let x = Tensor::<T>::randn(&[rows, inf], 1.0, 10).unwrap();
    let want = matmul_f64(&x, &w.t().unwrap()).unwrap();
    let pw = be.prepare(w).unwrap();
    assert_eq!(pw.shape(), [outf, inf]);
    let y = be.linear(&x, &pw).unwrap();
    assert_eq!(y.shape(), &[rows, outf]);
    let cmp = compare(y.as_slice(), &want).expect("same length");
    assert!(
        cmp.passes(tol),
        "{} linear {rows}x{inf}->{outf}: {cmp:?}",
        T::DTYPE
    );
}

#[test]
fn linear_matches_matmul_with_transposed_weight() {
    for threads in [1, 2, 3] {
        let be = BlockedBackend::new(threads).unwrap();
        for rows in [1, 2, 3, 5, 8, 9, 13, 40] {
            for (inf, outf) in [(1, 1), (7, 33), (576, 97), (200, 300)] {
                linear_case::<f32>(&be, rows, inf, outf, TOL_F32);
            }
        }
        // SmolLM2's K/V projection and FFN down weights, above gemv::PAR_MIN_WEIGHT: split
        // into fewer micro-panels (6 and 18) than there are tasks.
        linear_case::<f32>(&be, 1, 576, 192, TOL_F32);
        linear_case::<f32>(&be, 2, 1536, 576, TOL_F32);
        // A wide weight: many micro-panels per task.
        linear_case::<f32>(&be, 1, 64, 66_000, TOL_F32);
        linear_case::<f32>(&be, 3, 64, 66_000, TOL_F32);
        linear_case::<f64>(&be, 3, 50, 41, 1e-26);
        linear_case::<f64>(&be, 20, 50, 41, 1e-26);
        linear_case::<half::bf16>(&be, 2, 64, 40, 1e-4);
        linear_case::<half::bf16>(&be, 20, 64, 40, 1e-4);
    }
}

#[test]
fn prepared_weight_reports_its_packed_bytes() {
    let be = BlockedBackend::new(1).unwrap();
    let pw = be
        .prepare(Tensor::<f32>::zeros(&[100, 64]).unwrap())
        .unwrap();
    // At least the f32 panels (out rounded up to NR) and at most that plus alignment and tables.
    let nr = with_f32_kernel!(be.kernel, k => nr_of(&k));
    let panels = 100usize.div_ceil(nr) * nr * 64 * 4;
    assert!(
        pw.size_bytes() >= panels && pw.size_bytes() < panels + 1024,
        "{}",
        pw.size_bytes()
    );
}

fn nr_of<K: GemmKernel>(_: &K) -> usize {
    K::NR
}

#[test]
fn linear_into_checks_lengths_and_finiteness() {
    let be = BlockedBackend::new(1).unwrap();
    let pw = be.prepare(Tensor::<f32>::zeros(&[4, 3]).unwrap()).unwrap();
    let mut out = vec![0.0f32; 4];
    assert!(be.linear_into(&[0.0; 2], 1, &pw, &mut out).is_err());
    assert!(be
        .linear_into(&[0.0, f32::INFINITY, 0.0], 1, &pw, &mut out)
        .is_err());
    assert!(be
        .prepare(Tensor::<f32>::from_slice(&[f32::NAN], &[1, 1]).unwrap())
        .is_err());
}

#[test]
fn softmax_matches_reference_for_every_type_and_masks() {
    let be = BlockedBackend::new(2).unwrap();
    let mut x = Tensor::<f32>::randn(&[5, 3, 37], 20.0, 4).unwrap();
    x.as_mut_slice()[..37].fill(f32::NEG_INFINITY);
    x.as_mut_slice()[40] = f32::NEG_INFINITY;
    let y = be.softmax(&x).unwrap();
    assert!(compare(y.as_slice(), &softmax_f64(&x))
        .expect("same length")
        .passes(1e-12));
    assert!(y.as_slice()[..37].iter().all(|&v| v == 0.0));
    let x64 = Tensor::<f64>::randn(&[4, 9], 1e3, 4).unwrap();
    assert!(
        compare(be.softmax(&x64).unwrap().as_slice(), &softmax_f64(&x64))
            .expect("same length")
            .passes(1e-28)
    );
    let bad = Tensor::<f32>::from_slice(&[f32::INFINITY], &[1]).unwrap();
    assert!(be.softmax(&bad).is_err());
}

fn attention_case<T: Element>(
    be: &BlockedBackend,
    h: usize,
    hkv: usize,
    nq: usize,
    nkv: usize,
    causal: bool,
    tol: f64,
) {
    let (d, dv) = (16, 24);
    let q = Tensor::<T>::randn(&[h, nq, d], 1.0, 1).unwrap();
    let k = Tensor::<T>::randn(&[hkv, nkv, d], 1.0, 2).unwrap();
    let v = Tensor::<T>::randn(&[hkv, nkv, dv], 1.0, 3).unwrap();
    let spec = AttentionSpec {
        causal,
        algo: AttentionAlgo::Materialized,
        ..AttentionSpec::default()
    };
    let out = be.attention(&q, &k, &v, &spec).unwrap();
    fn heads<T: Element>(t: &Tensor<T>, n: usize, dim: usize) -> Heads<'_, T> {
        Heads {
            data: t.as_slice(),
            layout: HeadsLayout::contiguous(t.shape()[0], n, dim),
        }
    }
    let (qh, kh, vh) = (heads(&q, nq, d), heads(&k, nkv, d), heads(&v, nkv, dv));
    let dims = nanotensor_core::attention::check_operands(
        &qh,
        &kh,
        &vh,
        &HeadsMut {
            data: &mut vec![T::zero(); h * nq * dv],
            layout: HeadsLayout::contiguous(h, nq, dv),
        },
    )
    .unwrap();
    let want = attention_f64(&qh, &kh, &vh, &dims, &spec);
    let cmp = compare(out.as_slice(), &want).expect("same length");
    assert!(
        cmp.passes(tol),
        "{} h={h}/{hkv} {nq}x{nkv} causal={causal}: {cmp:?}",
        T::DTYPE
    );
}

#[test]
fn materialised_attention_matches_reference() {
    for threads in [1, 2] {
        let be = BlockedBackend::new(threads).unwrap();
        for causal in [false, true] {
            attention_case::<f32>(&be, 4, 2, 33, 33, causal, TOL_F32);
            attention_case::<f32>(&be, 1, 1, 1, 50, causal, TOL_F32); // decode
            attention_case::<f32>(&be, 3, 1, 7, 5, causal, TOL_F32); // n_q > n_kv: masked rows
            attention_case::<f64>(&be, 2, 2, 9, 20, causal, 1e-26);
        }
    }
}

#[test]
fn attention_reads_token_major_layouts_in_place() {
    let be = BlockedBackend::new(2).unwrap();
    let (h, n, d) = (2, 9, 8);
    let qkv = Tensor::<f32>::randn(&[n, h, d], 1.0, 8).unwrap();
    let l = HeadsLayout::token_major(h, n, d);
    let view = Heads {
        data: qkv.as_slice(),
        layout: l,
    };
    let mut out = vec![0.0f32; n * h * d];
    let spec = AttentionSpec {
        algo: AttentionAlgo::Materialized,
        ..AttentionSpec::causal()
    };
    be.attention_into(
        view,
        view,
        view,
        HeadsMut {
            data: &mut out,
            layout: l,
        },
        &spec,
    )
    .unwrap();
    let dims = nanotensor_core::attention::check_operands(
        &view,
        &view,
        &view,
        &HeadsMut {
            data: &mut vec![0.0f32; n * h * d],
            layout: l,
        },
    )
    .unwrap();
    let want = attention_f64(&view, &view, &view, &dims, &spec); // contiguous [H, n, d]
    let got: Vec<f32> = (0..h)
        .flat_map(|hh| (0..n).flat_map(move |i| (0..d).map(move |x| (hh, i, x))))
        .map(|(hh, i, x)| out[l.offset(hh, i) + x])
        .collect();
    assert!(compare(&got, &want).expect("same length").passes(TOL_F32));
}

#[test]
fn attention_budget_and_flash_dispatch() {
    let be = BlockedBackend::new(1).unwrap();
    let dims = AttentionDims {
        n_heads: 1,
        n_kv_heads: 1,
        n_q: 100_000,
        n_kv: 100_000,
        head_dim: 64,
        v_dim: 64,
    };
    let spec = AttentionSpec {
        algo: AttentionAlgo::Materialized,
        max_memory: Some(1 << 30),
        ..AttentionSpec::default()
    };
    let e = be.attention_plan::<f32>(&dims, &spec).unwrap_err();
    assert!(
        matches!(e, Error::MemoryBudget { .. }) && e.to_string().contains("40.0 GB per head"),
        "{e}"
    );
    // Flash runs it in O(N·d): scratch independent of N; Auto picks flash at this size.
    for algo in [AttentionAlgo::Flash, AttentionAlgo::Auto] {
        let plan = be
            .attention_plan::<f32>(&dims, &AttentionSpec { algo, ..spec })
            .unwrap();
        assert_eq!(plan.algo, AttentionAlgo::Flash);
        assert_eq!(
            plan.scratch_bytes,
            crate::flash::flash_scratch_bytes(&dims, &spec, 4, 1)
        );
        assert!(plan.scratch_bytes < 1 << 20);
    }
    // Small problems stay on the materialised path under Auto.
    let small = AttentionDims {
        n_q: 64,
        n_kv: 64,
        ..dims
    };
    let auto = AttentionSpec {
        algo: AttentionAlgo::Auto,
        ..spec
    };
    assert_eq!(
        be.attention_plan::<f32>(&small, &auto).unwrap().algo,
        AttentionAlgo::Materialized
    );
}

/// A portable `u8 × i8 → i32` kernel with depth grouped by 4 — the shape of a VNNI kernel — to
/// show that an integer kernel plugs into the same driver and packing (the int8 backend's use).
#[derive(Clone, Copy, Debug)]
struct GroupedI8;

impl GemmKernel for GroupedI8 {
    type A = u8;
    type B = i8;
    type C = i32;
    const MR: usize = 4;
    const NR: usize = 8;
    const KGROUP: usize = 4;

    fn name(&self) -> &'static str {
        "test-u8i8-4x8-k4"
    }

    fn microkernel(&self, kc: usize, a: &[u8], b: &[i8], c: &mut [i32], ldc: usize, acc: bool) {
        let (mr, nr, g) = (Self::MR, Self::NR, Self::KGROUP);
        assert!(kc.is_multiple_of(g) && a.len() >= kc * mr && b.len() >= kc * nr);
        for i in 0..mr {
            for j in 0..nr {
                let mut s = 0i32;
                for p in 0..kc {
                    let av = a[((p / g) * mr + i) * g + p % g] as i32;
                    let bv = b[((p / g) * nr + j) * g + p % g] as i32;
                    s += av * bv;
                }
                let o = &mut c[i * ldc + j];
                *o = if acc { *o + s } else { s };
            }
        }
    }
}

#[test]
fn an_integer_kernel_with_grouped_depth_reuses_the_driver() {
    let pool = Pool::new(2).unwrap();
    let mut rng = nanotensor_core::rng::Rng::new(21);
    for &(m, k, n) in &[(1, 1, 1), (5, 7, 9), (13, 530, 17), (33, 1030, 70)] {
        let a: Vec<u8> = (0..m * k).map(|_| rng.uniform(0.0, 256.0) as u8).collect();
        let b: Vec<i8> = (0..k * n)
            .map(|_| rng.uniform(-128.0, 128.0) as i8)
            .collect();
        for p in [None, Some(&pool)] {
            let mut c = vec![0i32; m * n];
            let am = MatRef::new(&a, m, k, k, 1);
            let bm = MatRef::new(&b, k, n, n, 1);
            gemm(
                GroupedI8,
                p,
                am,
                |x| x,
                BSource::Strided(bm),
                |x| x,
                &mut c,
                n,
            );
            let packed = PackedB::new(GroupedI8, p, bm, |x| x);
            let mut c2 = vec![0i32; m * n];
            gemm(
                GroupedI8,
                p,
                am,
                |x| x,
                BSource::Packed(&packed),
                |x| x,
                &mut c2,
                n,
            );
            for i in 0..m {
                for j in 0..n {
                    let want: i32 = (0..k)
                        .map(|q| a[i * k + q] as i32 * b[q * n + j] as i32)
                        .sum();
                    assert_eq!(
                        (c[i * n + j], c2[i * n + j]),
                        (want, want),
                        "{m}x{k}x{n} ({i},{j})"
                    );
                }
            }
        }
    }
}
