//! Kernel tiles against plain scalar loops and against the f64 online softmax.

use super::*;
use crate::flash::OnlineSoftmax;
use nanotensor_core::Tensor;

fn isas() -> Vec<Isa> {
    let mut v = vec![detect(), Isa::Portable];
    #[cfg(target_arch = "x86_64")]
    if detect() == Isa::Avx512 {
        v.push(Isa::Avx2);
    }
    // Where `detect()` is the portable kernel (Miri, or a CPU without AVX2) test it once.
    v.dedup();
    v
}

#[test]
fn detect_is_best_of_the_cpu_features() {
    assert_eq!(detect(), Isa::best(crate::cpu::features()));
    assert!(detect().runs_on(crate::cpu::features()));
    assert_eq!(Isa::best(&CpuFeatures::NONE), Isa::Portable);
    assert!(!Isa::Avx2.runs_on(&CpuFeatures::NONE));
}

fn randv(n: usize, seed: u64) -> Vec<f32> {
    Tensor::<f32>::randn(&[n], 1.0, seed).unwrap().to_vec()
}

#[test]
fn qk_and_pv_tiles_match_scalar_loops() {
    for isa in isas() {
        // The 64-row tile is left out under Miri (minutes there); the odd shapes stay.
        let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(13, 7, 9), (1, 1, 1), (9, 33, 40)]
        } else {
            &[(64, 64, 64), (13, 7, 9), (1, 1, 1), (9, 33, 40)]
        };
        for &(rows, d, stride) in shapes {
            let k = randv((rows - 1) * stride + d, 1);
            let qt = randv(d * LANES, 2);
            let mut s = vec![0.0f32; rows * LANES];
            qk(isa, &k, stride, rows, d, &qt, &mut s);
            for j in 0..rows {
                for lane in 0..LANES {
                    let want: f64 = (0..d)
                        .map(|p| k[j * stride + p] as f64 * qt[p * LANES + lane] as f64)
                        .sum();
                    assert!((s[j * LANES + lane] as f64 - want).abs() < 1e-4, "{isa:?}");
                }
            }
            // pv with the same shapes: dv = d.
            let p = randv(rows * LANES, 3);
            let ot0 = randv(d * LANES, 4);
            let alpha: [f32; LANES] = std::array::from_fn(|i| 0.5 + i as f32 / 64.0);
            let mut ot = ot0.clone();
            pv(isa, &k, stride, rows, d, &p, &alpha, &mut ot);
            for x in 0..d {
                for lane in 0..LANES {
                    let want = alpha[lane] as f64 * ot0[x * LANES + lane] as f64
                        + (0..rows)
                            .map(|j| k[j * stride + x] as f64 * p[j * LANES + lane] as f64)
                            .sum::<f64>();
                    assert!((ot[x * LANES + lane] as f64 - want).abs() < 1e-4, "{isa:?}");
                }
            }
        }
    }
}

#[test]
fn softmax_step_matches_the_f64_online_softmax() {
    let log2e = std::f64::consts::LOG2_E;
    for isa in isas() {
        let rows = 11;
        let mut m = [f32::NEG_INFINITY; LANES];
        let mut l = [0.0f32; LANES];
        let mut alpha = [0.0f32; LANES];
        let mut refs = [OnlineSoftmax::default(); LANES];
        for step in 0..3u64 {
            // Scores in natural units; lane 0 fully masked throughout, lane 1 masked in step 0.
            let nat: Vec<f64> = randv(rows * LANES, 10 + step)
                .iter()
                .map(|&x| x as f64 * 3.0)
                .collect();
            let mut s: Vec<f32> = nat.iter().map(|&x| (x * log2e) as f32).collect();
            for j in 0..rows {
                s[j * LANES] = f32::NEG_INFINITY;
                if step == 0 {
                    s[j * LANES + 1] = f32::NEG_INFINITY;
                }
            }
            softmax_step(isa, &mut s, rows, &mut m, &mut l, &mut alpha);
            for lane in 0..LANES {
                let mut col: Vec<f64> = (0..rows)
                    .map(|j| {
                        if s_is_masked(lane, step) {
                            f64::NEG_INFINITY
                        } else {
                            nat[j * LANES + lane]
                        }
                    })
                    .collect();
                let a = refs[lane].update(&mut col);
                assert!(
                    (alpha[lane] as f64 - a).abs() < 1e-6 * a.max(1e-30) + 1e-30
                        || (a == 1.0 && l[lane] == 0.0),
                    "{isa:?} lane {lane} alpha"
                );
                for j in 0..rows {
                    assert!(
                        (s[j * LANES + lane] as f64 - col[j]).abs() < 1e-5,
                        "{isa:?} P"
                    );
                }
                let lr = refs[lane].l;
                assert!(
                    (l[lane] as f64 - lr).abs() <= 1e-5 * lr,
                    "{isa:?} l {} vs {lr}",
                    l[lane]
                );
            }
        }
        assert_eq!(m[0], f32::NEG_INFINITY);
        assert_eq!(l[0], 0.0);
    }
}

fn s_is_masked(lane: usize, step: u64) -> bool {
    lane == 0 || (lane == 1 && step == 0)
}

#[test]
fn decode_helpers_match_scalar_loops() {
    for (isa, (rows, d, stride)) in isas()
        .into_iter()
        .flat_map(|i| [(37, 64, 80), (19, 24, 30), (9, 80, 80), (5, 130, 131)].map(|s| (i, s)))
    {
        let q = randv(d, 1);
        let k = randv((rows - 1) * stride + d, 2);
        let mut s = vec![0.0f32; rows];
        decode_scores(isa, &q, &k, stride, rows, &mut s);
        for j in 0..rows {
            let want: f64 = (0..d).map(|p| q[p] as f64 * k[j * stride + p] as f64).sum();
            assert!((s[j] as f64 - want).abs() < 1e-4);
        }
        let mut acc = randv(d, 3);
        let acc0 = acc.clone();
        decode_values(isa, &k, stride, rows, &s, 0.25, &mut acc);
        for x in 0..d {
            let want = 0.25 * acc0[x] as f64
                + (0..rows)
                    .map(|j| s[j] as f64 * k[j * stride + x] as f64)
                    .sum::<f64>();
            assert!((acc[x] as f64 - want).abs() < 1e-3 * want.abs().max(1.0));
        }
        let mut e = vec![0.0f32, -1.0, f32::NEG_INFINITY, 2.0, -3.5];
        let sum = exp2_sub_sum(isa, &mut e, 1.0);
        let want = [0.5f64, 0.25, 0.0, 2.0, 2f64.powf(-4.5)];
        for (g, w) in e.iter().zip(want) {
            assert!((*g as f64 - w).abs() <= 3e-7 * w);
        }
        assert!((sum as f64 - want.iter().sum::<f64>()).abs() < 1e-6);
    }
}
