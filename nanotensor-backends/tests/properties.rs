//! Property tests: random shapes and values, every backend, against the float64 reference and
//! against invariants that need no reference at all.
//!
//! Per backend (256 cases each): matmul vs `matmul_f64` (int8: vs the per-element quantization
//! bound instead), softmax vs `softmax_f64` plus rows summing to 1 and shift invariance, attention
//! vs `attention_f64` (random GQA grouping, n_q ≠ n_kv, d ≠ d_v, causal or not, explicit scales)
//! for each algorithm the backend offers, causal attention never reading the future (perturbed
//! future K/V leave earlier rows bit-identical; the one-query decode form equals the last row),
//! and zero-sized operands refused with an error by all three ops. Shapes run from 1 through
//! primes to 40 (70 for softmax rows); 0 is only legal as an error case, since the API refuses
//! empty tensors.

use nanotensor_core::attention::{AttentionDims, Heads, HeadsLayout, HeadsMut};
use nanotensor_core::reference::{attention_f64, compare, matmul_f64, softmax_f64};
use nanotensor_core::{AttentionAlgo, AttentionSpec, Backend, Tensor};
use proptest::prelude::*;

/// Shapes from 1 to 40 (primes and odd sizes included) plus the values to fill them.
fn matmul_operands() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>)> {
    (1usize..40, 1usize..40, 1usize..40).prop_flat_map(|(m, k, n)| {
        (
            Just(m),
            Just(k),
            Just(n),
            prop::collection::vec(-100.0f32..100.0, m * k),
            prop::collection::vec(-100.0f32..100.0, k * n),
        )
    })
}

fn rows() -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
    (1usize..6, 1usize..70).prop_flat_map(|(r, c)| {
        (
            Just(r),
            Just(c),
            prop::collection::vec(-50.0f32..50.0, r * c),
        )
    })
}

/// Causal attention operands: heads, group, n, d and a seed.
fn attention_shape() -> impl Strategy<Value = (usize, usize, usize, usize, u64)> {
    (1usize..4, 1usize..3, 2usize..40, 1usize..20, any::<u64>())
}

/// Attention operands: kv heads, group (query heads per kv head), query rows, key rows, head
/// dims of Q·K and of V, causal mask, scale (`None`: 1/√d), seed. Query rows may exceed key rows
/// (under the end-aligned causal mask the first rows then see no key and are zero).
type AttentionCase = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    bool,
    Option<f64>,
    u64,
);

fn attention_case() -> impl Strategy<Value = AttentionCase> {
    (
        (1usize..4, 1usize..4, 1usize..24, 1usize..40),
        (1usize..24, 1usize..24, any::<bool>()),
        prop_oneof![3 => Just(None), 1 => (0.01f64..4.0).prop_map(Some)],
        any::<u64>(),
    )
        .prop_map(|((h, g, nq, nkv), (d, dv, causal), scale, seed)| {
            (h, g, nq, nkv, d, dv, causal, scale, seed)
        })
}

fn attention_agrees<B: Backend>(
    b: &B,
    tol: f64,
    algo: AttentionAlgo,
    (h, group, nq, nkv, d, dv, causal, scale, seed): AttentionCase,
) -> Result<(), TestCaseError> {
    let hq = h * group;
    let q = Tensor::<f32>::randn(&[hq, nq, d], 1.0, seed).unwrap();
    let k = Tensor::<f32>::randn(&[h, nkv, d], 1.0, seed ^ 1).unwrap();
    let v = Tensor::<f32>::randn(&[h, nkv, dv], 1.0, seed ^ 2).unwrap();
    let spec = AttentionSpec {
        causal,
        scale,
        algo,
        ..AttentionSpec::default()
    };
    let out = b.attention(&q, &k, &v, &spec).unwrap();
    prop_assert_eq!(out.shape(), &[hq, nq, dv]);
    fn heads(t: &Tensor<f32>, n: usize, dim: usize) -> Heads<'_, f32> {
        Heads {
            data: t.as_slice(),
            layout: HeadsLayout::contiguous(t.shape()[0], n, dim),
        }
    }
    let dims = AttentionDims {
        n_heads: hq,
        n_kv_heads: h,
        n_q: nq,
        n_kv: nkv,
        head_dim: d,
        v_dim: dv,
    };
    let reference = attention_f64(
        &heads(&q, nq, d),
        &heads(&k, nkv, d),
        &heads(&v, nkv, dv),
        &dims,
        &spec,
    );
    let r = compare(out.as_slice(), &reference).expect("same length");
    prop_assert!(r.passes(tol), "{algo:?} {dims:?} causal {causal}: {r:?}");
    Ok(())
}

fn matmul_agrees<B: Backend>(
    b: &B,
    tol: f64,
    (m, k, n, av, bv): (usize, usize, usize, Vec<f32>, Vec<f32>),
) -> Result<(), TestCaseError> {
    let a = Tensor::from_vec(av, &[m, k]).unwrap();
    let w = Tensor::from_vec(bv, &[k, n]).unwrap();
    let c = b.matmul(&a, &w).unwrap();
    let r = compare(c.as_slice(), &matmul_f64(&a, &w).unwrap()).expect("same length");
    prop_assert!(r.passes(tol), "{m}x{k}x{n}: {r:?}");
    Ok(())
}

fn softmax_invariants<B: Backend>(
    b: &B,
    tol: f64,
    (r, c, xs): (usize, usize, Vec<f32>),
    shift: f32,
) -> Result<(), TestCaseError> {
    let x = Tensor::from_vec(xs, &[r, c]).unwrap();
    let y = b.softmax(&x).unwrap();
    prop_assert!(compare(y.as_slice(), &softmax_f64(&x))
        .expect("same length")
        .passes(tol));
    for row in y.as_slice().chunks(c) {
        let s: f64 = row.iter().map(|&v| v as f64).sum();
        prop_assert!((s - 1.0).abs() < 1e-5, "row sums to {s}");
        prop_assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
    // softmax(x + c) = softmax(x): the max subtraction makes it exact up to rounding of x + c.
    let shifted = Tensor::from_fn(&[r, c], |i| x.as_slice()[i] + shift).unwrap();
    let ys = b.softmax(&shifted).unwrap();
    let r = compare(ys.as_slice(), &softmax_f64(&shifted)).expect("same length");
    prop_assert!(r.passes(tol));
    let diff = compare(
        ys.as_slice(),
        &y.as_slice().iter().map(|&v| v as f64).collect::<Vec<_>>(),
    )
    .expect("same length");
    prop_assert!(
        diff.max_abs < 1e-4,
        "shift changed the result by {}",
        diff.max_abs
    );
    Ok(())
}

/// Perturbing keys/values after position p leaves causal outputs of queries before p
/// bit-identical: the mask never reads the future.
fn causal_never_reads_future<B: Backend>(
    b: &B,
    algo: AttentionAlgo,
    (h, group, n, d, seed): (usize, usize, usize, usize, u64),
) -> Result<(), TestCaseError> {
    let hq = h * group;
    let q = Tensor::<f32>::randn(&[hq, n, d], 1.0, seed).unwrap();
    let k = Tensor::<f32>::randn(&[h, n, d], 1.0, seed ^ 1).unwrap();
    let v = Tensor::<f32>::randn(&[h, n, d], 1.0, seed ^ 2).unwrap();
    let spec = AttentionSpec {
        causal: true,
        algo,
        ..AttentionSpec::default()
    };
    let base = b.attention(&q, &k, &v, &spec).unwrap();
    let p = n / 2;
    let (mut k2, mut v2) = (k.clone(), v.clone());
    for g in 0..h {
        for j in p..n {
            for x in 0..d {
                k2.as_mut_slice()[(g * n + j) * d + x] += 10.0;
                v2.as_mut_slice()[(g * n + j) * d + x] *= -3.0;
            }
        }
    }
    let pert = b.attention(&q, &k2, &v2, &spec).unwrap();
    for hh in 0..hq {
        let rows = hh * n * d..(hh * n + p) * d;
        prop_assert_eq!(&base.as_slice()[rows.clone()], &pert.as_slice()[rows]);
    }
    // And the decode form (one query, strided cache) equals the last row of the full call.
    let last = n - 1;
    let ql = HeadsLayout {
        heads: hq,
        rows: 1,
        dim: d,
        head_stride: n * d,
        row_stride: d,
    };
    let kl = HeadsLayout::contiguous(h, n, d);
    let mut out = vec![0.0f32; hq * d];
    b.attention_into(
        Heads {
            data: &q.as_slice()[last * d..],
            layout: ql,
        },
        Heads {
            data: k.as_slice(),
            layout: kl,
        },
        Heads {
            data: v.as_slice(),
            layout: kl,
        },
        HeadsMut {
            data: &mut out,
            layout: HeadsLayout::contiguous(hq, 1, d),
        },
        &spec,
    )
    .unwrap();
    // Both rows are f32 results of different kernels (decode vs full), so they agree to
    // rounding, not bit for bit. An output row is a convex combination of V rows, so rounding is
    // measured against max|V|, not against the row itself: when the combination cancels to
    // nearly zero (d = 1, say) a relative measure such as NMSE blows a one-ulp difference up
    // (seen: NMSE 2.8e-10 for a max difference of 1.5e-7 with |V| ≈ 2). 1e-5·max|V| is about 170
    // f32 ulps, far below any real mistake (a wrong row, key or mask moves the output by O(|V|)).
    let vmax = v.as_slice().iter().fold(0f64, |m, x| m.max(x.abs() as f64));
    for hh in 0..hq {
        let full = &base.as_slice()[(hh * n + last) * d..(hh * n + last + 1) * d];
        let r = compare(
            &out[hh * d..(hh + 1) * d],
            &full.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        )
        .expect("same length");
        prop_assert!(
            r.nonfinite_mismatches == 0 && r.max_abs <= 1e-5 * vmax,
            "decode row differs: {r:?}, max|V| = {vmax}"
        );
    }
    Ok(())
}

fn zero_sized_is_an_error<B: Backend>(
    b: &B,
    m: usize,
    k: usize,
    n: usize,
) -> Result<(), TestCaseError> {
    let a = Tensor::<f32>::zeros(&[m, k]).unwrap();
    let w = Tensor::<f32>::zeros(&[k, n]).unwrap();
    let res = b.matmul(&a, &w);
    prop_assert_eq!(res.is_err(), m == 0 || k == 0 || n == 0);
    // Softmax over [m, k] rows and attention with m query rows, n key rows, head dim k.
    let x = Tensor::<f32>::zeros(&[m, k]).unwrap();
    prop_assert_eq!(b.softmax(&x).is_err(), m == 0 || k == 0);
    let q = Tensor::<f32>::zeros(&[1, m, k]).unwrap();
    let kv = Tensor::<f32>::zeros(&[1, n, k]).unwrap();
    let att = b.attention(&q, &kv, &kv, &AttentionSpec::default());
    prop_assert_eq!(att.is_err(), m == 0 || k == 0 || n == 0);
    Ok(())
}

macro_rules! properties {
    ($name:ident, $backend:expr, matmul_tol = $mt:expr, float_tol = $ft:expr, algos = $algos:expr) => {
        mod $name {
            use super::*;
            proptest! {
                #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
                #[test]
                fn matmul_matches_f64(ops in matmul_operands()) {
                    matmul_agrees(&$backend, $mt, ops)?;
                }
                #[test]
                fn softmax_sums_to_one_and_ignores_shifts(x in rows(), shift in -30.0f32..30.0) {
                    softmax_invariants(&$backend, $ft, x, shift)?;
                }
                #[test]
                fn attention_matches_f64(s in attention_case()) {
                    for algo in $algos {
                        attention_agrees(&$backend, $ft, algo, s)?;
                    }
                }
                #[test]
                fn causal_attention_ignores_the_future(s in attention_shape()) {
                    for algo in $algos {
                        causal_never_reads_future(&$backend, algo, s)?;
                    }
                }
                #[test]
                fn empty_operands_are_refused(m in 0usize..3, k in 0usize..3, n in 0usize..3) {
                    zero_sized_is_an_error(&$backend, m, k, n)?;
                }
            }
        }
    };
}

#[cfg(feature = "naive")]
properties!(
    naive,
    nanotensor_backends::naive::NaiveBackend::default(),
    matmul_tol = 1e-10,
    float_tol = 1e-10,
    algos = [AttentionAlgo::Materialized]
);

#[cfg(feature = "blocked")]
properties!(
    blocked,
    nanotensor_backends::blocked::BlockedBackend::new(2).unwrap(),
    matmul_tol = 1e-10,
    float_tol = 1e-10,
    algos = [
        AttentionAlgo::Materialized,
        AttentionAlgo::Flash,
        AttentionAlgo::Auto
    ]
);

/// int8 quantizes both matmul operands per tensor (`s = max|x|/127`, codes `round(x/s)`), so an
/// NMSE bound on random data can be broken by cancellation at small `k`. Instead each element is
/// held to the bound quantization itself implies: with `|a − â| ≤ s_a/2` and `|b − b̂| ≤ s_b/2`,
/// `|Σ_p a_p b_p − Σ_p â_p b̂_p| ≤ Σ_p (|b_p|·s_a/2 + (|a_p| + s_a/2)·s_b/2)`, plus a relative
/// 1e-5 of `Σ|a||b|` for the f32 rescaling of the exact integer sum.
fn int8_matmul_within_quantization_bound<B: Backend>(
    b: &B,
    (m, k, n, av, bv): (usize, usize, usize, Vec<f32>, Vec<f32>),
) -> Result<(), TestCaseError> {
    let a = Tensor::from_vec(av, &[m, k]).unwrap();
    let w = Tensor::from_vec(bv, &[k, n]).unwrap();
    let c = b.matmul(&a, &w).unwrap();
    let reference = matmul_f64(&a, &w).unwrap();
    let max_abs = |t: &Tensor<f32>| t.as_slice().iter().fold(0f64, |m, x| m.max(x.abs() as f64));
    let (sa, sb) = (max_abs(&a) / 127.0, max_abs(&w) / 127.0);
    for i in 0..m {
        for j in 0..n {
            let (mut bound, mut mag) = (0f64, 0f64);
            for p in 0..k {
                let x = a.as_slice()[i * k + p].abs() as f64;
                let y = w.as_slice()[p * n + j].abs() as f64;
                bound += y * sa / 2.0 + (x + sa / 2.0) * sb / 2.0;
                mag += x * y;
            }
            let err = (c.as_slice()[i * n + j] as f64 - reference[i * n + j]).abs();
            prop_assert!(
                err <= bound * (1.0 + 1e-6) + mag * 1e-5,
                "{m}x{k}x{n} [{i},{j}]: error {err} > bound {bound}"
            );
        }
    }
    Ok(())
}

#[cfg(feature = "int8")]
mod int8 {
    use super::*;
    fn backend() -> nanotensor_backends::int8::Int8Backend {
        nanotensor_backends::int8::Int8Backend::new(2).unwrap()
    }
    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn matmul_error_within_the_quantization_bound(ops in matmul_operands()) {
            int8_matmul_within_quantization_bound(&backend(), ops)?;
        }
        // Softmax and attention run in f32 on this backend (`int8::float_ops`).
        #[test]
        fn softmax_sums_to_one_and_ignores_shifts(x in rows(), shift in -30.0f32..30.0) {
            softmax_invariants(&backend(), 1e-10, x, shift)?;
        }
        #[test]
        fn attention_matches_f64(s in attention_case()) {
            for algo in [AttentionAlgo::Materialized, AttentionAlgo::Auto] {
                attention_agrees(&backend(), 1e-10, algo, s)?;
            }
        }
        #[test]
        fn causal_attention_ignores_the_future(s in attention_shape()) {
            for algo in [AttentionAlgo::Materialized, AttentionAlgo::Auto] {
                causal_never_reads_future(&backend(), algo, s)?;
            }
        }
        #[test]
        fn empty_operands_are_refused(m in 0usize..3, k in 0usize..3, n in 0usize..3) {
            zero_sized_is_an_error(&backend(), m, k, n)?;
        }
    }
}

/// Random attention specs (valid and invalid scales and sliding windows, causal or not, each
/// algorithm) on every compiled backend: all refuse an invalid spec with the same error; on a valid one, every
/// backend and algorithm that runs it agrees with the float64 reference (the naive backend may
/// answer `Unsupported` for flash, the only capability difference the contract allows).
mod specs {
    use super::*;
    use nanotensor_backends::{with_backend, BackendKind, BackendOptions, BackendVisitor};
    use nanotensor_core::reference::attention_tensor_f64;
    use nanotensor_core::Error;

    /// What one (backend, algorithm) did with a spec.
    #[derive(Debug)]
    enum Outcome {
        Ran(Vec<f32>),
        Refused(std::mem::Discriminant<Error>, String),
    }

    struct RunAll<'a> {
        q: &'a Tensor<f32>,
        kv: &'a Tensor<f32>,
        spec: AttentionSpec,
    }

    impl BackendVisitor for RunAll<'_> {
        type Output = Vec<(AttentionAlgo, Outcome)>;
        fn visit<B: Backend>(self, b: B) -> nanotensor_core::Result<Self::Output> {
            let algos = [
                AttentionAlgo::Auto,
                AttentionAlgo::Materialized,
                AttentionAlgo::Flash,
            ];
            Ok(algos
                .into_iter()
                .map(|algo| {
                    let spec = AttentionSpec { algo, ..self.spec };
                    let outcome = match b.attention(self.q, self.kv, self.kv, &spec) {
                        Ok(t) => Outcome::Ran(t.as_slice().to_vec()),
                        Err(e) => Outcome::Refused(std::mem::discriminant(&e), e.to_string()),
                    };
                    (algo, outcome)
                })
                .collect())
        }
    }

    fn scale() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            (0.01f64..2.0).prop_map(Some),
            prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.25])
                .prop_map(Some),
        ]
    }

    /// No window, valid windows from one key to past the sequence, and the invalid zero.
    fn window() -> impl Strategy<Value = Option<usize>> {
        prop_oneof![Just(None), (1usize..30).prop_map(Some), Just(Some(0))]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_backend_and_algorithm_agrees_on_random_specs(
            heads in 1usize..4, n in 1usize..24, d in 1usize..17,
            causal in any::<bool>(), scale in scale(), window in window(), seed in any::<u64>(),
        ) {
            let q = Tensor::<f32>::randn(&[heads, n, d], 1.0, seed).unwrap();
            let kv = Tensor::<f32>::randn(&[heads, n, d], 1.0, seed ^ 1).unwrap();
            let spec = AttentionSpec { causal, scale, window, ..AttentionSpec::default() };
            let valid = scale.is_none_or(|s| s.is_finite() && s > 0.0)
                && window.is_none_or(|w| w > 0 && causal);
            let reference = attention_tensor_f64(&q, &kv, &kv, &spec);
            prop_assert_eq!(reference.is_ok(), valid);
            for kind in BackendKind::compiled() {
                let opts = BackendOptions { threads: 2, ..BackendOptions::default() };
                let outcomes = with_backend(kind, opts, RunAll { q: &q, kv: &kv, spec }).unwrap();
                for (algo, outcome) in outcomes {
                    match (&reference, outcome) {
                        (Err(want), Outcome::Refused(got, msg)) => {
                            prop_assert_eq!(got, std::mem::discriminant(want), "{} {:?}: {}", kind, algo, msg);
                        }
                        (Ok(want), Outcome::Ran(got)) => {
                            let r = compare(&got, want).expect("same length");
                            prop_assert!(r.nonfinite_mismatches == 0 && r.nmse < 1e-9,
                                "{} {:?}: {:?}", kind, algo, r);
                        }
                        (Ok(_), Outcome::Refused(_, msg))
                            if kind == BackendKind::Naive && algo == AttentionAlgo::Flash =>
                        {
                            prop_assert!(msg.contains("materialises"), "{}", msg);
                        }
                        (want, got) => {
                            prop_assert!(false, "{} {:?}: reference {:?}, backend {:?}", kind, algo, want.is_ok(), got);
                        }
                    }
                }
            }
        }
    }
}
