//! Agreement of the flash paths with the float64 reference (`nanotensor_core::reference`).

use super::kernel::{self, Isa};
use super::*;
use nanotensor_core::attention::HeadsLayout;
use nanotensor_core::reference::{attention_f64, compare};
use nanotensor_core::Tensor;

/// Instruction sets this machine can run (the detected one first, portable always).
fn isas() -> Vec<Isa> {
    let mut v = vec![kernel::detect()];
    #[cfg(target_arch = "x86_64")]
    if v[0] == Isa::Avx512 {
        v.push(Isa::Avx2);
    }
    if v[0] != Isa::Portable {
        v.push(Isa::Portable);
    }
    v
}

/// One attention case: sizes, mask, layouts.
#[derive(Clone, Copy, Debug)]
struct Case {
    h: usize,
    hkv: usize,
    nq: usize,
    nkv: usize,
    d: usize,
    dv: usize,
    causal: bool,
    token_major: bool,
}

const fn case(h: usize, hkv: usize, nq: usize, nkv: usize, d: usize, causal: bool) -> Case {
    Case {
        h,
        hkv,
        nq,
        nkv,
        d,
        dv: d,
        causal,
        token_major: false,
    }
}

fn layout(c: &Case, heads: usize, rows: usize, dim: usize) -> HeadsLayout {
    if c.token_major {
        HeadsLayout::token_major(heads, rows, dim)
    } else {
        HeadsLayout::contiguous(heads, rows, dim)
    }
}

/// Runs flash on `c` with inputs of standard deviation `std` and returns its NMSE against
/// `attention_f64`, plus the plan.
fn run_case<T: Element>(
    c: Case,
    isa: Isa,
    threads: usize,
    std: f64,
    spec: AttentionSpec,
    seed: u64,
) -> (f64, AttentionPlan) {
    let (ql, kl, vl, ol) = (
        layout(&c, c.h, c.nq, c.d),
        layout(&c, c.hkv, c.nkv, c.d),
        layout(&c, c.hkv, c.nkv, c.dv),
        layout(&c, c.h, c.nq, c.dv),
    );
    let q = Tensor::<T>::randn(&[ql.required_len().unwrap()], std, seed).unwrap();
    let k = Tensor::<T>::randn(&[kl.required_len().unwrap()], std, seed + 1).unwrap();
    let v = Tensor::<T>::randn(&[vl.required_len().unwrap()], 1.0, seed + 2).unwrap();
    let mut out = vec![T::from_f64(f64::NAN); ol.required_len().unwrap()];
    let (qh, kh, vh) = (
        Heads {
            data: q.as_slice(),
            layout: ql,
        },
        Heads {
            data: k.as_slice(),
            layout: kl,
        },
        Heads {
            data: v.as_slice(),
            layout: vl,
        },
    );
    let spec = AttentionSpec {
        causal: c.causal,
        ..spec
    };
    let dims = check_operands(
        &qh,
        &kh,
        &vh,
        &HeadsMut {
            data: &mut out[..],
            layout: ol,
        },
    )
    .unwrap();
    let pool = Pool::new(threads).unwrap();
    let plan = flash_attention_isa(
        &pool,
        isa,
        qh,
        kh,
        vh,
        HeadsMut {
            data: &mut out[..],
            layout: ol,
        },
        &dims,
        &spec,
    )
    .unwrap();
    let want = attention_f64(&qh, &kh, &vh, &dims, &spec);
    // Gather the (possibly token-major) output into contiguous [H, n_q, d_v].
    let got: Vec<T> = (0..c.h)
        .flat_map(|h| (0..c.nq).map(move |i| (h, i)))
        .flat_map(|(h, i)| {
            let o = ol.offset(h, i);
            out[o..o + c.dv].to_vec()
        })
        .collect();
    let cmp = compare(&got, &want).expect("same length");
    assert_eq!(cmp.nonfinite_mismatches, 0, "{c:?} {isa:?}");
    (cmp.nmse, plan)
}

const SHAPES: &[Case] = &[
    case(1, 1, 1, 1, 64, false), // N = 1
    case(1, 1, 1, 1, 64, true),
    case(2, 1, 37, 37, 16, true),    // GQA, N not a multiple of BR or BC
    case(4, 2, 100, 100, 64, false), // GQA 2:1, partial last blocks
    case(4, 2, 100, 100, 64, true),
    case(3, 3, 65, 129, 8, true),  // n_q < n_kv, causal end-aligned
    case(2, 2, 130, 70, 64, true), // n_q > n_kv: the first 60 rows see no key
    case(4, 1, 1, 300, 64, true),  // decode: one query, MQA
    case(2, 2, 3, 1000, 32, true), // decode, 3 rows, causal offsets
    case(1, 1, 33, 1, 5, false),   // one key, odd head dim
    case(2, 1, 129, 257, 64, false),
    case(2, 1, 300, 300, 64, true), // several query groups, causal inside a group
    case(1, 1, 200, 450, 32, true), // n_q < n_kv across group boundaries
];

#[test]
fn f32_matches_reference_on_every_isa_and_thread_count() {
    for isa in isas() {
        for threads in [1, 2] {
            for (n, &c) in SHAPES.iter().enumerate() {
                let (nmse, plan) =
                    run_case::<f32>(c, isa, threads, 1.0, AttentionSpec::default(), n as u64);
                assert!(nmse <= 1e-10, "{c:?} {isa:?} t={threads}: nmse {nmse}");
                assert_eq!(plan.algo, AttentionAlgo::Flash);
            }
        }
    }
}

#[test]
fn token_major_strided_layouts_are_read_in_place() {
    for isa in isas() {
        for &c in &SHAPES[2..9] {
            let c = Case {
                token_major: true,
                ..c
            };
            let (nmse, _) = run_case::<f32>(c, isa, 2, 1.0, AttentionSpec::default(), 7);
            assert!(nmse <= 1e-10, "{c:?} {isa:?}: nmse {nmse}");
        }
    }
}

#[test]
fn different_value_dim() {
    let c = Case {
        dv: 24,
        ..case(4, 2, 70, 90, 40, true)
    };
    for isa in isas() {
        let (nmse, _) = run_case::<f32>(c, isa, 2, 1.0, AttentionSpec::default(), 3);
        assert!(nmse <= 1e-10, "{isa:?}: {nmse}");
    }
}

#[test]
fn large_logits_do_not_overflow() {
    // Logits of order ±1e4 (exp would overflow f32 and f64): through large inputs, and through a
    // large explicit scale.
    for isa in isas() {
        for &c in &[
            case(2, 1, 50, 70, 64, false),
            case(2, 2, 50, 70, 64, true),
            case(1, 1, 1, 90, 64, false),
        ] {
            let (nmse, _) = run_case::<f32>(c, isa, 1, 12.5, AttentionSpec::default(), 11);
            assert!(nmse <= 1e-10, "large Q/K {c:?} {isa:?}: {nmse}");
            let spec = AttentionSpec {
                scale: Some(1e4),
                ..AttentionSpec::default()
            };
            let (nmse, _) = run_case::<f32>(c, isa, 1, 1.0, spec, 12);
            assert!(nmse <= 1e-10, "scale 1e4 {c:?} {isa:?}: {nmse}");
        }
    }
}

#[test]
fn equal_huge_logits_average_the_values() {
    // Every score is 64·100·1·(1/8)... = 800·… identical, so the output is the mean of V rows.
    let (n, d) = (100, 64);
    let q = vec![100.0f32; n * d];
    let k = vec![1.0f32; n * d];
    let v: Vec<f32> = (0..n * d).map(|x| (x % 13) as f32).collect();
    let l = HeadsLayout::contiguous(1, n, d);
    let mut out = vec![0.0f32; n * d];
    let dims = check_operands(
        &Heads {
            data: &q,
            layout: l,
        },
        &Heads {
            data: &k,
            layout: l,
        },
        &Heads {
            data: &v,
            layout: l,
        },
        &HeadsMut {
            data: &mut out,
            layout: l,
        },
    )
    .unwrap();
    let spec = AttentionSpec {
        scale: Some(2.0),
        ..AttentionSpec::default()
    };
    let pool = Pool::new(1).unwrap();
    flash_attention(
        &pool,
        Heads {
            data: &q,
            layout: l,
        },
        Heads {
            data: &k,
            layout: l,
        },
        Heads {
            data: &v,
            layout: l,
        },
        HeadsMut {
            data: &mut out,
            layout: l,
        },
        &dims,
        &spec,
    )
    .unwrap();
    for x in 0..d {
        let mean = (0..n).map(|j| v[j * d + x] as f64).sum::<f64>() / n as f64;
        for i in 0..n {
            assert!((out[i * d + x] as f64 - mean).abs() < 1e-4, "({i},{x})");
        }
    }
}

#[test]
fn f64_and_bf16_take_the_generic_path() {
    for (n, &c) in SHAPES.iter().enumerate() {
        let (nmse, plan) =
            run_case::<f64>(c, Isa::Portable, 2, 1.0, AttentionSpec::default(), n as u64);
        assert!(nmse <= 1e-24, "f64 {c:?}: {nmse}");
        let dims_scratch = 8 * (c.d + BC + c.dv) as u64;
        assert_eq!(plan.scratch_bytes % dims_scratch, 0);
        let (nmse, _) =
            run_case::<half::bf16>(c, Isa::Portable, 1, 1.0, AttentionSpec::default(), n as u64);
        // bf16 keeps 8 significant bits: the output's own rounding gives NMSE ≈ 1e-6.
        assert!(nmse <= 2e-5, "bf16 {c:?}: {nmse}");
    }
}

#[test]
fn scratch_is_linear_in_n_and_budget_is_enforced() {
    let dims = |n: usize| AttentionDims {
        n_heads: 8,
        n_kv_heads: 8,
        n_q: n,
        n_kv: n,
        head_dim: 64,
        v_dim: 64,
    };
    // Tiled f32: 2 workers · 4 B · 32 · (4·(64 + 64) + 64), whatever N.
    assert_eq!(
        flash_scratch_bytes(&dims(4096), &AttentionSpec::default(), 4, 2),
        2 * 4 * 32 * 576
    );
    assert_eq!(
        flash_scratch_bytes(&dims(100_000), &AttentionSpec::default(), 4, 2),
        2 * 4 * 32 * 576
    );
    let c = case(2, 2, 40, 40, 16, false);
    let (_, plan) = run_case::<f32>(c, kernel::detect(), 2, 1.0, AttentionSpec::default(), 1);
    assert_eq!(plan.scratch_bytes, 2 * 4 * 32 * (4 * (16 + 16) + 64));

    let l = HeadsLayout::contiguous(1, 40, 16);
    let x = vec![0.5f32; 640];
    let mut out = vec![0.0f32; 640];
    let h = Heads {
        data: &x,
        layout: l,
    };
    let dims = check_operands(
        &h,
        &h,
        &h,
        &HeadsMut {
            data: &mut out,
            layout: l,
        },
    )
    .unwrap();
    let pool = Pool::new(1).unwrap();
    let tight = AttentionSpec {
        max_memory: Some(100),
        ..AttentionSpec::default()
    };
    let e = flash_attention(
        &pool,
        h,
        h,
        h,
        HeadsMut {
            data: &mut out,
            layout: l,
        },
        &dims,
        &tight,
    )
    .unwrap_err();
    assert!(matches!(e, Error::MemoryBudget { .. }), "{e}");
    // Wrong dims and overlapping output rows are typed errors too.
    let wrong = AttentionDims { n_q: 41, ..dims };
    let spec = AttentionSpec::default();
    assert!(flash_attention(
        &pool,
        h,
        h,
        h,
        HeadsMut {
            data: &mut out,
            layout: l
        },
        &wrong,
        &spec
    )
    .is_err());
    let overlapping = HeadsLayout { row_stride: 0, ..l };
    let e = flash_attention(
        &pool,
        h,
        h,
        h,
        HeadsMut {
            data: &mut out,
            layout: overlapping,
        },
        &dims,
        &spec,
    );
    assert!(e.is_err());
}

#[test]
fn decode_with_caller_scratch_splits_the_kv_range() {
    // One head, one query, 5000 keys: with 2 threads the range is split into chunks.
    let (n, d) = (5000, 64);
    let q = Tensor::<f32>::randn(&[d], 1.0, 1).unwrap();
    let k = Tensor::<f32>::randn(&[n * d], 1.0, 2).unwrap();
    let v = Tensor::<f32>::randn(&[n * d], 1.0, 3).unwrap();
    let (ql, kl) = (
        HeadsLayout::contiguous(1, 1, d),
        HeadsLayout::contiguous(1, n, d),
    );
    let (qh, kh, vh) = (
        Heads {
            data: q.as_slice(),
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
    );
    let mut out = vec![0.0f32; d];
    let dims = check_operands(
        &qh,
        &kh,
        &vh,
        &HeadsMut {
            data: &mut out,
            layout: ql,
        },
    )
    .unwrap();
    let spec = AttentionSpec::causal();
    let pool = Pool::new(2).unwrap();
    let len = decode_scratch_len(&dims, &spec, 2);
    assert!(
        len > d + 2,
        "expected more than one KV chunk, got {len} floats"
    );
    let mut scratch = vec![0.0f32; len];
    let e = flash_decode(
        &pool,
        qh,
        kh,
        vh,
        HeadsMut {
            data: &mut out,
            layout: ql,
        },
        &dims,
        &spec,
        &mut scratch[..1],
    );
    assert!(e.is_err());
    for _step in 0..2 {
        flash_decode(
            &pool,
            qh,
            kh,
            vh,
            HeadsMut {
                data: &mut out,
                layout: ql,
            },
            &dims,
            &spec,
            &mut scratch,
        )
        .unwrap();
        let want = attention_f64(&qh, &kh, &vh, &dims, &spec);
        let cmp = compare(&out, &want).expect("same length");
        assert!(cmp.passes(1e-10), "{cmp:?}");
    }
}

#[test]
fn sliding_window_matches_reference_on_every_isa_path_and_layout() {
    // The causal shapes cover the tiled path (one and several query groups, n_q < n_kv and
    // n_q > n_kv), the decode path (1 and 3 rows) and odd block boundaries; the windows go from
    // one key through a partial and a whole key block to past the longest row.
    let causal: Vec<Case> = SHAPES.iter().copied().filter(|c| c.causal).collect();
    for isa in isas() {
        for threads in [1, 2] {
            for (n, &c) in causal.iter().enumerate() {
                for w in [1, 17, 64, 100, 1000] {
                    let c = Case {
                        token_major: n % 2 == 1,
                        ..c
                    };
                    let spec = AttentionSpec::sliding(w);
                    let (nmse, _) = run_case::<f32>(c, isa, threads, 1.0, spec, n as u64);
                    assert!(nmse <= 1e-10, "{c:?} W={w} {isa:?} t={threads}: {nmse}");
                }
            }
        }
    }
    for (n, &c) in causal.iter().enumerate() {
        for w in [1, 33, 200] {
            let spec = AttentionSpec::sliding(w);
            let (nmse, _) = run_case::<f64>(c, Isa::Portable, 2, 1.0, spec, n as u64);
            assert!(nmse <= 1e-24, "f64 {c:?} W={w}: {nmse}");
        }
    }
}

#[test]
fn a_window_shortens_the_decode_scratch_and_the_plan_reports_it() {
    // One query against 100,000 keys on 2 threads: the full range is split into 4 chunks, a
    // 512-key window into one, and the plan counts exactly what the call uses.
    let dims = AttentionDims {
        n_heads: 1,
        n_kv_heads: 1,
        n_q: 1,
        n_kv: 100_000,
        head_dim: 64,
        v_dim: 64,
    };
    let full = AttentionSpec::causal();
    let window = AttentionSpec::sliding(512);
    assert_eq!(decode_scratch_len(&dims, &full, 2), 4 * 66);
    assert_eq!(decode_scratch_len(&dims, &window, 2), 66);
    assert_eq!(flash_scratch_bytes(&dims, &window, 4, 2), 4 * 66);
    let plan = flash_plan::<f32>(&dims, &window, 2).unwrap();
    assert_eq!(plan.scratch_bytes, 4 * 66);
    // A window past the cache length is the plain causal split.
    let wide = AttentionSpec::sliding(1 << 20);
    assert_eq!(decode_scratch_len(&dims, &wide, 2), 4 * 66);
}
