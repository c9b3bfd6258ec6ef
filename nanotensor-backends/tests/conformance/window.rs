//! Sliding-window attention (`AttentionSpec::window`) through every backend and algorithm of
//! the conformance harness: against the float64 reference with the harness's per-dtype bounds,
//! plus invariants that need no reference.

use super::*;

/// Sliding-window cases: (heads, kv heads, n_q, n_kv, d, d_v, window). Causal throughout (a
/// window requires it); queries end-aligned at positions `n_kv − n_q ..`.
pub const WINDOW_CASES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    // Prefill, window smaller than, equal to and larger than n_kv.
    (2, 2, 33, 33, 16, 16, 8),
    (2, 1, 40, 40, 16, 16, 40),
    (1, 1, 20, 20, 8, 8, 100),
    // Window 1: each query sees only its own key.
    (2, 1, 9, 9, 8, 8, 1),
    (1, 1, 70, 70, 16, 16, 1),
    // Decode: one query against a long cache; with 2 threads and 2 query heads the window's
    // key range is split into two chunks (700 keys ≥ 2 × 512 / 2).
    (2, 1, 1, 3000, 32, 32, 700),
    (4, 2, 1, 2000, 64, 64, 512),
    (1, 1, 1, 50, 8, 8, 1),
    // A few queries (the decode path) against a cache, grouped KV heads.
    (6, 2, 3, 600, 16, 16, 100),
    // Prefill against a longer cache (n_q < n_kv), windows on and off the key-block size.
    (4, 2, 70, 300, 32, 32, 64),
    (3, 1, 150, 400, 16, 16, 37),
    // Several query groups of the tiled path, each with its own window start.
    (2, 2, 300, 300, 16, 16, 100),
    // More queries than keys: the first rows see nothing, window or not.
    (1, 1, 12, 5, 8, 8, 2),
];

/// Sliding-window attention through every algorithm against the float64 reference, plus two
/// reference-free invariants: keys outside every query's window do not influence the output
/// (overwriting them leaves it bit-identical), and a window covering every position is the plain
/// causal mask (bit-identical output).
pub fn window_attention_cases<B: Backend, T: Element>(
    b: &B,
    tol: &Tolerance,
    algos: &[AttentionAlgo],
) {
    let bound = tol_for::<T>(tol, false);
    for &algo in algos {
        for (i, &(h, hkv, nq, nkv, d, dv, w)) in WINDOW_CASES.iter().enumerate() {
            let seed = 5000 + 10 * i as u64;
            let q = Tensor::<T>::randn(&[h, nq, d], 1.0, seed).unwrap();
            let k = Tensor::<T>::randn(&[hkv, nkv, d], 1.0, seed + 1).unwrap();
            let v = Tensor::<T>::randn(&[hkv, nkv, dv], 1.0, seed + 2).unwrap();
            let spec = AttentionSpec {
                algo,
                ..AttentionSpec::sliding(w)
            };
            let (out, reference) = run_attention(b, &q, &k, &v, &spec);
            assert_eq!(out.shape(), &[h, nq, dv]);
            let r = compare(out.as_slice(), &reference).expect("same length");
            assert!(
                r.passes(bound),
                "{} {} {algo:?} window case {i} {:?}: {r:?}",
                b.name(),
                T::DTYPE,
                WINDOW_CASES[i]
            );
            // Keys before the first query's window (positions < n_kv − n_q + 1 − w) are seen by
            // no query: give them large values and the output must not move by a bit.
            let first_seen = (nkv + 1).saturating_sub(nq).saturating_sub(w);
            if first_seen > 0 {
                let (mut k2, mut v2) = (k.clone(), v.clone());
                for g in 0..hkv {
                    for j in 0..first_seen {
                        k2.as_mut_slice()[(g * nkv + j) * d..(g * nkv + j + 1) * d]
                            .fill(T::from_f64(8.0));
                        v2.as_mut_slice()[(g * nkv + j) * dv..(g * nkv + j + 1) * dv]
                            .fill(T::from_f64(-100.0));
                    }
                }
                let out2 = b.attention(&q, &k2, &v2, &spec).unwrap();
                assert!(
                    out2.as_slice() == out.as_slice(),
                    "{} {} {algo:?} window case {i}: keys outside the window changed the output",
                    b.name(),
                    T::DTYPE
                );
                // Flash must not even read them (its cost follows the window): NaN rows there,
                // vouched for through `kv_rows_checked` so validation does not refuse them,
                // would turn any output they touch into NaN (a zero probability times NaN).
                if algo == AttentionAlgo::Flash {
                    for g in 0..hkv {
                        k2.as_mut_slice()[g * nkv * d..(g * nkv + first_seen) * d]
                            .fill(T::from_f64(f64::NAN));
                        v2.as_mut_slice()[g * nkv * dv..(g * nkv + first_seen) * dv]
                            .fill(T::from_f64(f64::NAN));
                    }
                    let vouched = AttentionSpec {
                        kv_rows_checked: first_seen,
                        ..spec
                    };
                    let out3 = b.attention(&q, &k2, &v2, &vouched).unwrap();
                    assert!(
                        out3.as_slice() == out.as_slice(),
                        "{} {} flash window case {i} read keys outside the window",
                        b.name(),
                        T::DTYPE
                    );
                }
            }
            // A window reaching back past position 0 for every query is the causal mask.
            if w >= nkv {
                let causal = AttentionSpec {
                    algo,
                    ..AttentionSpec::causal()
                };
                let plain = b.attention(&q, &k, &v, &causal).unwrap();
                assert!(
                    plain.as_slice() == out.as_slice(),
                    "{} {} {algo:?} window case {i}: window ≥ n_kv differs from causal",
                    b.name(),
                    T::DTYPE
                );
            }
        }
    }
}

/// Sliding window on token-major (strided) operands, the layout a KV cache is read in.
pub fn strided_window_case<B: Backend>(b: &B, tol: &Tolerance, algo: AttentionAlgo) {
    let (h, hkv, nq, nkv, d, w) = (4, 2, 5, 90, 16, 20);
    let q = Tensor::<f32>::randn(&[nq, h, d], 1.0, 31).unwrap();
    let k = Tensor::<f32>::randn(&[nkv, hkv, d], 1.0, 32).unwrap();
    let v = Tensor::<f32>::randn(&[nkv, hkv, d], 1.0, 33).unwrap();
    let (ql, kl) = (
        HeadsLayout::token_major(h, nq, d),
        HeadsLayout::token_major(hkv, nkv, d),
    );
    let mut out = vec![0.0f32; nq * h * d];
    let spec = AttentionSpec {
        algo,
        ..AttentionSpec::sliding(w)
    };
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
    b.attention_into(
        qh,
        kh,
        vh,
        HeadsMut {
            data: &mut out,
            layout: ql,
        },
        &spec,
    )
    .unwrap();
    let dims = AttentionDims {
        n_heads: h,
        n_kv_heads: hkv,
        n_q: nq,
        n_kv: nkv,
        head_dim: d,
        v_dim: d,
    };
    let reference = attention_f64(&qh, &kh, &vh, &dims, &spec);
    let mut out_hmajor = vec![0.0f32; out.len()];
    for hh in 0..h {
        for i in 0..nq {
            let src = ql.offset(hh, i);
            out_hmajor[(hh * nq + i) * d..(hh * nq + i + 1) * d]
                .copy_from_slice(&out[src..src + d]);
        }
    }
    let r = compare(&out_hmajor, &reference).expect("same length");
    assert!(
        r.passes(tol.float_f32),
        "{} {algo:?} strided window attention: {r:?}",
        b.name()
    );
}
