//! Backend-level tests: against the f64 reference of the unquantized inputs (accuracy), against
//! the f64 product of the dequantized codes (exactness of the integer path), and the contract's
//! errors.

use super::*;
use nanotensor_core::reference::{attention_f64, compare, matmul_f64};
use nanotensor_core::QTensor;
use nanotensor_core::{AttentionAlgo, HeadsLayout};

fn backends() -> Vec<Int8Backend> {
    let mut v = Vec::new();
    for k in Kernel::all_supported() {
        for t in [1, 2] {
            v.push(Int8Backend::new(t).unwrap().with_kernel(k.kind()).unwrap());
        }
    }
    v
}

/// `C` from the dequantized codes, in f64: what the integer path must reproduce up to f32
/// rounding of the epilogue.
fn dequantized_product(
    a: &Tensor<f32>,
    b: &Tensor<f32>,
    ga: Granularity,
    gb: Granularity,
) -> Vec<f64> {
    let da = QTensor::quantize(a, ga)
        .unwrap()
        .dequantize::<f64>()
        .unwrap();
    // Per-column scales of B are the per-row scales of Bᵀ.
    let bt = b.t().unwrap();
    let db = QTensor::quantize(&bt, gb)
        .unwrap()
        .dequantize::<f64>()
        .unwrap();
    let db = db.t().unwrap();
    matmul_f64(&da, &db).unwrap()
}

// Accuracy bound: a per-tensor scale of max|x|/127 ≈ 4.5σ/127 for a few thousand Gaussian
// values gives rounding noise of power scale²/12 ≈ 1.0e-4·σ² per operand, so the product's NMSE
// is ≈ 2e-4 (both operands' noise adds). 1e-3 leaves a 5× margin and still fails on any real
// bug (a wrong scale or a lost k block gives NMSE ≳ 1e-2).
const NMSE_BOUND: f64 = 1e-3;

#[test]
fn matmul_is_accurate_against_the_unquantized_f64_reference() {
    let shapes = [
        (1, 64, 64),
        (7, 33, 65),
        (63, 129, 17),
        (130, 70, 40),
        (9, 576, 100),
    ];
    for be in backends() {
        for (s, &(m, k, n)) in shapes.iter().enumerate() {
            let a = Tensor::<f32>::randn(&[m, k], 1.0, 1 + s as u64).unwrap();
            let b = Tensor::<f32>::randn(&[k, n], 1.0, 50 + s as u64).unwrap();
            let c = be.matmul(&a, &b).unwrap();
            let r = compare(c.as_slice(), &matmul_f64(&a, &b).unwrap()).expect("same length");
            assert!(
                r.passes(NMSE_BOUND),
                "{:?} {m}x{k}x{n}: {r:?}",
                be.kernel.kind()
            );
            assert!(r.nmse > 1e-6, "quantization noise must be visible: {r:?}");
        }
    }
}

#[test]
fn matmul_reproduces_the_dequantized_product_for_every_granularity() {
    let (m, k, n) = (19, 101, 45);
    let a = Tensor::<f32>::randn(&[m, k], 1.0, 3).unwrap();
    let b = Tensor::<f32>::randn(&[k, n], 2.0, 4).unwrap();
    for ga in [Granularity::PerTensor, Granularity::PerRow] {
        for gb in [Granularity::PerTensor, Granularity::PerRow] {
            let want = dequantized_product(&a, &b, ga, gb);
            for be in backends() {
                for chunk in [K_MAX, 8, 12] {
                    let be = configured(&be, ga, gb, chunk);
                    let c = be.matmul(&a, &b).unwrap();
                    let r = compare(c.as_slice(), &want).expect("same length");
                    assert!(
                        r.passes(1e-11),
                        "{:?} {ga:?}/{gb:?} chunk {chunk}: {r:?}",
                        be.kernel
                    );
                }
            }
        }
    }
}

#[test]
fn per_row_activations_rescue_an_outlier_row() {
    let (m, k, n) = (16, 64, 32);
    let mut a = Tensor::<f32>::randn(&[m, k], 1.0, 8).unwrap();
    a.as_mut_slice()[..k].iter_mut().for_each(|x| *x *= 1000.0);
    let b = Tensor::<f32>::randn(&[k, n], 1.0, 9).unwrap();
    let want = matmul_f64(&a, &b).unwrap();
    let nmse_rest = |g| {
        let be = Int8Backend::new(1).unwrap().with_activation_granularity(g);
        let c = be.matmul(&a, &b).unwrap();
        compare(&c.as_slice()[n..], &want[n..])
            .expect("same length")
            .nmse
    };
    let (t, r) = (
        nmse_rest(Granularity::PerTensor),
        nmse_rest(Granularity::PerRow),
    );
    assert!(
        r < NMSE_BOUND && t > 10.0 * r,
        "per-tensor {t}, per-row {r}"
    );
}

#[test]
fn linear_with_prepared_weights_matches_and_is_a_quarter_of_the_bytes() {
    let (k, n) = (576, 96);
    let w = Tensor::<f32>::randn(&[n, k], 0.5, 11).unwrap();
    let wt = w.t().unwrap();
    for be in backends() {
        for g in [Granularity::PerTensor, Granularity::PerRow] {
            // Per-tensor activations: the product below is checked code for code.
            let be = Int8Backend {
                pool: Pool::new(be.threads()).unwrap(),
                ..be
            }
            .with_weight_granularity(g)
            .with_activation_granularity(Granularity::PerTensor);
            let pw = be.prepare(w.clone()).unwrap();
            let scales = if g == Granularity::PerTensor { 1 } else { n };
            assert_eq!(pw.size_bytes(), n * k + 4 * scales);
            assert_eq!(pw.shape(), [n, k]);
            // Decode sizes (the streaming path) and a prefill size.
            for m in [1, 2, 5, 8, 9, 40] {
                let x = Tensor::<f32>::randn(&[m, k], 1.0, 100 + m as u64).unwrap();
                let y = be.linear(&x, &pw).unwrap();
                assert_eq!(y.shape(), &[m, n]);
                let want = dequantized_product(&x, &wt, Granularity::PerTensor, g);
                let r = compare(y.as_slice(), &want).expect("same length");
                assert!(r.passes(1e-11), "{:?} {g:?} m={m}: {r:?}", be.kernel);
                let r = compare(y.as_slice(), &matmul_f64(&x, &wt).unwrap()).expect("same length");
                assert!(r.passes(NMSE_BOUND), "{r:?}");
            }
        }
    }
}

/// Products large enough (≥ `gemm::PARALLEL_MIN_MACS`) that two threads really split them in
/// the shared loop nest: a decode row (one row block, so the tasks split the columns: partial
/// last column range, n not a multiple of NR), a few row blocks (rows × columns tasks, a partial
/// last row block) and several depth blocks (k chunk 64). Checked against the f64 product of the
/// dequantized codes, per-row and per-block activation scales.
#[test]
fn threaded_tasks_split_rows_and_columns_exactly() {
    for (m, k, n) in [(1, 576, 8200), (300, 200, 100)] {
        assert!(m * k * n >= gemm::PARALLEL_MIN_MACS);
        let a = Tensor::<f32>::randn(&[m, k], 1.0, 41).unwrap();
        let b = Tensor::<f32>::randn(&[k, n], 1.0, 42).unwrap();
        let db = QTensor::quantize(&b.t().unwrap(), Granularity::PerRow)
            .unwrap()
            .dequantize::<f64>()
            .unwrap();
        let db = db.t().unwrap();
        let per_block = ActGranularity::PerBlock(crate::BlockLen::new(32).unwrap());
        for ga in [ActGranularity::PerRow, per_block] {
            let da = match ga {
                ActGranularity::PerBlock(_) => dequantize_blocks(&a, 32),
                _ => QTensor::quantize(&a, Granularity::PerRow)
                    .unwrap()
                    .dequantize::<f64>()
                    .unwrap(),
            };
            let want = matmul_f64(&da, &db).unwrap();
            for be in backends().into_iter().filter(|b| b.threads() == 2) {
                for chunk in [K_MAX, 64] {
                    let be = configured(&be, ga, Granularity::PerRow, chunk);
                    let w = be.prepare(b.t().unwrap()).unwrap();
                    let y = be.linear(&a, &w).unwrap();
                    let r = compare(y.as_slice(), &want).expect("same length");
                    assert!(
                        r.passes(1e-10),
                        "{:?} {m}x{k}x{n} {ga:?} chunk {chunk}: {r:?}",
                        be.kernel
                    );
                }
            }
        }
    }
}

#[test]
fn reductions_longer_than_k_max_are_split() {
    // 127·127·140,000 ≈ 2.26e9 overflows i32: only the split keeps the sum right.
    let k = 140_000;
    let a = Tensor::<f32>::full(&[1, k], 1.0).unwrap();
    let b = Tensor::<f32>::full(&[k, 3], -1.0).unwrap();
    let be = Int8Backend::new(1).unwrap();
    let c = be.matmul(&a, &b).unwrap();
    for &v in c.as_slice() {
        assert!((v as f64 + k as f64).abs() <= 1e-5 * k as f64, "{v}");
    }
}

#[test]
fn batched_and_broadcast_matmul_and_other_element_types() {
    let be = Int8Backend::new(2).unwrap();
    let a = Tensor::<f64>::randn(&[3, 10, 24], 1.0, 1).unwrap();
    for b in [
        Tensor::<f64>::randn(&[24, 12], 1.0, 2).unwrap(),
        Tensor::<f64>::randn(&[3, 24, 12], 1.0, 3).unwrap(),
    ] {
        let c = be.matmul(&a, &b).unwrap();
        assert_eq!(c.shape(), &[3, 10, 12]);
        assert!(compare(c.as_slice(), &matmul_f64(&a, &b).unwrap())
            .expect("same length")
            .passes(NMSE_BOUND));
    }
    let a = Tensor::<half::bf16>::randn(&[5, 40], 1.0, 4).unwrap();
    let b = Tensor::<half::bf16>::randn(&[40, 7], 1.0, 5).unwrap();
    let c = be.matmul(&a, &b).unwrap();
    assert!(compare(c.as_slice(), &matmul_f64(&a, &b).unwrap())
        .expect("same length")
        .passes(NMSE_BOUND));
}

/// A NaN or an infinity in the activations (whose scan is folded into their quantization) is
/// reported with its index by `matmul` and `linear`, for every activation granularity.
#[test]
fn non_finite_activations_are_located() {
    let w = Tensor::<f32>::randn(&[6, 40], 1.0, 2).unwrap();
    for act in [
        ActGranularity::PerTensor,
        ActGranularity::PerRow,
        ActGranularity::PerBlock(crate::scales::BlockLen::new(8).unwrap()),
    ] {
        let be = Int8Backend::new(1)
            .unwrap()
            .with_activation_granularity(act);
        let pw = be.prepare(w.clone()).unwrap();
        let b = w.t().unwrap();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = Tensor::<f32>::randn(&[3, 40], 1.0, 1).unwrap();
            x.as_mut_slice()[77] = bad;
            for r in [
                be.linear(&x, &pw).map(|_| ()),
                be.matmul(&x, &b).map(|_| ()),
            ] {
                assert!(
                    matches!(r, Err(Error::NonFinite { index: 77, .. })),
                    "{act:?} {bad}: {r:?}"
                );
            }
            // And in B of a matmul, per-tensor and per-column weight scales.
            let mut bb = b.clone();
            bb.as_mut_slice()[123] = bad;
            let x = Tensor::<f32>::randn(&[3, 40], 1.0, 1).unwrap();
            for g in [Granularity::PerTensor, Granularity::PerRow] {
                let r = Int8Backend::new(1)
                    .unwrap()
                    .with_weight_granularity(g)
                    .matmul(&x, &bb);
                assert!(
                    matches!(r, Err(Error::NonFinite { index: 123, .. })),
                    "{g:?}"
                );
            }
        }
    }
}

#[test]
fn zero_operands_give_zero_and_bad_input_gives_typed_errors() {
    let be = Int8Backend::new(1).unwrap();
    let z = Tensor::<f32>::zeros(&[4, 8]).unwrap();
    let b = Tensor::<f32>::randn(&[8, 3], 1.0, 1).unwrap();
    assert!(be
        .matmul(&z, &b)
        .unwrap()
        .as_slice()
        .iter()
        .all(|&v| v == 0.0));
    let mut bad = b.clone();
    bad.as_mut_slice()[5] = f32::NAN;
    assert!(matches!(be.matmul(&z, &bad), Err(Error::NonFinite { .. })));
    assert!(matches!(
        be.matmul(&b, &b),
        Err(Error::ShapeMismatch { .. })
    ));
    let big = Tensor::<f64>::full(&[1, 2], 1e300).unwrap();
    assert!(be
        .matmul(&big, &big.clone().reshape(&[2, 1]).unwrap())
        .is_err());
    let w = be
        .prepare(Tensor::<f32>::randn(&[3, 8], 1.0, 2).unwrap())
        .unwrap();
    assert!(be
        .linear(&Tensor::<f32>::zeros(&[2, 7]).unwrap(), &w)
        .is_err());
    assert!(be.prepare(Tensor::<f32>::zeros(&[0, 8]).unwrap()).is_err());
    assert!(Int8Backend::new(0).is_err());
    assert!(be.with_k_chunk(2).is_err());
}

#[test]
fn float_attention_and_softmax_match_the_reference_and_honour_the_budget() {
    let be = Int8Backend::new(1).unwrap();
    let (h, hkv, n, d) = (4, 2, 33, 16);
    let q = Tensor::<f32>::randn(&[h, n, d], 1.0, 1).unwrap();
    let k = Tensor::<f32>::randn(&[hkv, n, d], 1.0, 2).unwrap();
    let v = Tensor::<f32>::randn(&[hkv, n, d], 1.0, 3).unwrap();
    // Auto runs the materialised path at this size; Flash the shared tiled path.
    for (causal, algo) in [false, true]
        .into_iter()
        .flat_map(|c| [(c, AttentionAlgo::Auto), (c, AttentionAlgo::Flash)])
    {
        let spec = AttentionSpec {
            causal,
            algo,
            ..AttentionSpec::default()
        };
        let o = be.attention(&q, &k, &v, &spec).unwrap();
        fn heads(t: &Tensor<f32>, hh: usize, n: usize, d: usize) -> Heads<'_, f32> {
            Heads {
                data: t.as_slice(),
                layout: HeadsLayout::contiguous(hh, n, d),
            }
        }
        let dims = AttentionDims {
            n_heads: h,
            n_kv_heads: hkv,
            n_q: n,
            n_kv: n,
            head_dim: d,
            v_dim: d,
        };
        let want = attention_f64(
            &heads(&q, h, n, d),
            &heads(&k, hkv, n, d),
            &heads(&v, hkv, n, d),
            &dims,
            &spec,
        );
        assert!(compare(o.as_slice(), &want)
            .expect("same length")
            .passes(1e-10));
    }
    let tight = AttentionSpec {
        max_memory: Some(1000),
        ..AttentionSpec::default()
    };
    assert!(matches!(
        be.attention(&q, &k, &v, &tight),
        Err(Error::MemoryBudget { .. })
    ));
    // Flash refuses a budget below its scratch too.
    let flash_tight = AttentionSpec {
        algo: AttentionAlgo::Flash,
        max_memory: Some(1000),
        ..AttentionSpec::default()
    };
    assert!(matches!(
        be.attention(&q, &k, &v, &flash_tight),
        Err(Error::MemoryBudget { .. })
    ));
    let x = Tensor::<f32>::from_slice(&[1000.0, 1000.0, f32::NEG_INFINITY, 0.0], &[2, 2]).unwrap();
    let s = be.softmax(&x).unwrap();
    assert_eq!(s.as_slice(), &[0.5, 0.5, 0.0, 1.0]);
}

/// `be` (a fresh pool of the same size) with the given activation and weight granularities and
/// k chunk.
fn configured(
    be: &Int8Backend,
    ga: impl Into<ActGranularity>,
    gb: Granularity,
    chunk: usize,
) -> Int8Backend {
    Int8Backend {
        pool: Pool::new(be.threads()).unwrap(),
        ..*be
    }
    .with_activation_granularity(ga)
    .with_weight_granularity(gb)
    .with_k_chunk(chunk)
    .unwrap()
}

/// `A` dequantized block by block (blocks of `len` along each row, the last possibly shorter),
/// each block through the core quantizer as a one-row tensor: an independent model of
/// per-block activation scales.
fn dequantize_blocks(a: &Tensor<f32>, len: usize) -> Tensor<f64> {
    let (m, k) = (a.shape()[0], a.shape()[1]);
    let mut out = Vec::with_capacity(m * k);
    for row in a.as_slice().chunks(k) {
        for block in row.chunks(len) {
            let t = Tensor::from_slice(block, &[1, block.len()]).unwrap();
            let q = QTensor::quantize(&t, Granularity::PerRow).unwrap();
            out.extend_from_slice(q.dequantize::<f64>().unwrap().as_slice());
        }
    }
    Tensor::from_vec(out, &[m, k]).unwrap()
}

#[test]
fn per_block_activations_reproduce_the_blockwise_dequantized_product() {
    // Bound: each block's integer sum is exact; its scaling and the f32 sums over ⌈k/32⌉ blocks
    // round at ~2⁻²⁴ relative to the accumulator, which for VNNI also holds the offset term
    // 128·Σa (a few times the signal), so the NMSE against the f64 product of the dequantized
    // codes is ~1e-13; 1e-10 is still 10⁶× below the quantization noise the scales control.
    for (m, k, n) in [(1, 101, 45), (19, 101, 45), (40, 576, 70)] {
        let a = Tensor::<f32>::randn(&[m, k], 1.0, 31).unwrap();
        let b = Tensor::<f32>::randn(&[k, n], 2.0, 32).unwrap();
        for len in [32, 8] {
            let ga = ActGranularity::PerBlock(crate::BlockLen::new(len).unwrap());
            let da = dequantize_blocks(&a, len);
            for gb in [Granularity::PerTensor, Granularity::PerRow] {
                let db = QTensor::quantize(&b.t().unwrap(), gb)
                    .unwrap()
                    .dequantize::<f64>()
                    .unwrap();
                let want = matmul_f64(&da, &db.t().unwrap()).unwrap();
                for be in backends() {
                    for chunk in [K_MAX, 8, 64] {
                        let be = configured(&be, ga, gb, chunk);
                        let c = be.matmul(&a, &b).unwrap();
                        let r = compare(c.as_slice(), &want).expect("same length");
                        assert!(
                            r.passes(1e-10),
                            "{:?} {m}x{k}x{n} len {len} {gb:?} chunk {chunk}: {r:?}",
                            be.kernel
                        );
                        // The prepared-weight path (decode and prefill shapes) agrees too.
                        let w = be.prepare(b.t().unwrap()).unwrap();
                        let y = be.linear(&a, &w).unwrap();
                        let r = compare(y.as_slice(), &want).expect("same length");
                        assert!(r.passes(1e-10), "linear {m}x{k}x{n}: {r:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn per_block_activations_confine_an_outlier_channel() {
    // One input channel 50× larger in every row (the SwiGLU-output pattern): a per-row scale
    // coarsens all k codes of a row, a per-block scale only the 32 around the outlier.
    let (m, k, n) = (16, 512, 32);
    let mut a = Tensor::<f32>::randn(&[m, k], 1.0, 41).unwrap();
    a.as_mut_slice()
        .chunks_mut(k)
        .for_each(|row| row[100] *= 50.0);
    let b = Tensor::<f32>::randn(&[k, n], 1.0, 42).unwrap();
    let want = matmul_f64(&a, &b).unwrap();
    let nmse = |g: ActGranularity| {
        let be = Int8Backend::new(1)
            .unwrap()
            .with_weight_granularity(Granularity::PerRow)
            .with_activation_granularity(g);
        compare(be.matmul(&a, &b).unwrap().as_slice(), &want)
            .expect("same length")
            .nmse
    };
    let (row, block) = (
        nmse(ActGranularity::PerRow),
        nmse(ActGranularity::PER_BLOCK_32),
    );
    assert!(
        block < NMSE_BOUND && row > 5.0 * block,
        "per-row {row}, per-block {block}"
    );
}

/// With MSE clipping the prepared codes are `QTensor::quantize_clipped`'s (clamped beyond the
/// chosen range), and the product is theirs exactly up to the f32 epilogue.
#[test]
fn mse_clipped_weights_match_the_core_quantizer() {
    let (k, n) = (256, 40);
    // A heavy-tailed weight, where the clip is below max|w|.
    let mut w = Tensor::<f32>::randn(&[n, k], 0.5, 21).unwrap();
    for (i, v) in w.as_mut_slice().iter_mut().enumerate() {
        if i % 101 == 0 {
            *v *= 9.0;
        }
    }
    for g in [Granularity::PerTensor, Granularity::PerRow] {
        let opts = crate::scales::Int8Options {
            weights: g,
            activations: crate::scales::ActGranularity::PerTensor,
            clip: nanotensor_core::Clip::Mse,
            ..crate::scales::Int8Options::default()
        };
        let be = Int8Backend::with_options(1, opts).unwrap();
        let pw = be.prepare(w.clone()).unwrap();
        let q = QTensor::quantize_clipped(&w, g, nanotensor_core::Clip::Mse).unwrap();
        let x = Tensor::<f32>::randn(&[3, k], 1.0, 5).unwrap();
        let dx = QTensor::quantize(&x, Granularity::PerTensor)
            .unwrap()
            .dequantize::<f64>()
            .unwrap();
        let dw = q.dequantize::<f64>().unwrap().t().unwrap();
        let want = matmul_f64(&dx, &dw).unwrap();
        let y = be.linear(&x, &pw).unwrap();
        let r = compare(y.as_slice(), want.as_slice()).expect("same length");
        assert!(r.passes(1e-11), "{g:?}: {r:?}");
        let scale = q.scales()[0];
        if g == Granularity::PerTensor {
            let max = w.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(127.0 * scale < max, "the clip must be below max|w| here");
        }
    }
}
