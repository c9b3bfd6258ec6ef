//! Where one decode step's time goes: the ops of a LLaMA decode step (SmolLM2-135M shapes by
//! default) on the blocked backend, each op class timed separately, printed as ms per token.
//!
//! ```text
//! cargo run --release -p nanotensor-backends --example decode_profile -- [threads] [steps] [context] [auto|naive|flash]
//! ```
//! The weights are random (the timing of a product does not depend on the values) but as large
//! as the real model's, so they stream from DRAM exactly like a real decode step: 30 blocks of
//! `W_q 576×576, W_k/W_v 192×576, W_o 576×576, W_gate/W_up 1536×576, W_down 576×1536` and the
//! `49152 × 576` output head, 538 MB of f32. The KV cache is pre-filled to `context` positions
//! (default 128) and each of `steps` decode steps attends over it. The wall-clock total is
//! compared with the sum of the per-op timers (the difference is the timers' own overhead) and
//! with the on-CPU time of all threads (`/proc/self/task/*/schedstat`), which tells preemption
//! on a shared machine apart from real work.

use nanotensor_backends::blocked::{BlockedBackend, BlockedWeight};
use nanotensor_core::attention::{AttentionAlgo, AttentionSpec, Heads, HeadsLayout, HeadsMut};
use nanotensor_core::{Backend, Tensor};
use nanotensor_models::model::ops::{add_assign, rmsnorm, swiglu, RopeTable};
use std::time::Instant;

/// On-CPU nanoseconds of every thread of this process so far (Linux `schedstat`).
fn cpu_ns() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

type W = BlockedWeight<f32>;

struct Block {
    wq: W,
    wk: W,
    wv: W,
    wo: W,
    gate: W,
    up: W,
    down: W,
}

/// Op classes in print order.
const OPS: [&str; 12] = [
    "rmsnorm",
    "W_q",
    "W_k",
    "W_v",
    "rope",
    "attention",
    "W_o",
    "W_gate",
    "W_up",
    "swiglu+add",
    "W_down",
    "lm head",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (threads, steps, context) = (num(0, 2), num(1, 32), num(2, 128));
    let (layers, dim, ffn, heads, kv_heads, hd, vocab) = (30, 576, 1536, 9, 3, 64, 49152);
    let kv_dim = kv_heads * hd;
    let be = BlockedBackend::new(threads).expect("threads");
    let mut seed = 0;
    let mut w = |out: usize, inp: usize| -> W {
        seed += 1;
        let t = Tensor::<f32>::randn(&[out, inp], 0.05, seed).expect("randn");
        be.prepare(t).expect("prepare")
    };
    let blocks: Vec<Block> = (0..layers)
        .map(|_| Block {
            wq: w(dim, dim),
            wk: w(kv_dim, dim),
            wv: w(kv_dim, dim),
            wo: w(dim, dim),
            gate: w(ffn, dim),
            up: w(ffn, dim),
            down: w(dim, ffn),
        })
        .collect();
    let head = w(vocab, dim);
    let norm = vec![1.0f32; dim];
    let cap = context + steps + 1;
    let rope = RopeTable::new(cap, hd, 100_000.0);
    let mut kc: Vec<Vec<f32>> = (0..layers)
        .map(|l| {
            Tensor::<f32>::randn(&[cap, kv_dim], 1.0, 1000 + l as u64)
                .expect("k")
                .to_vec()
        })
        .collect();
    let mut vc = kc.clone();
    let mut x = Tensor::<f32>::randn(&[dim], 1.0, 7).expect("x").to_vec();
    let (mut xb, mut q, mut k, mut v) = (
        vec![0.0; dim],
        vec![0.0; dim],
        vec![0.0; kv_dim],
        vec![0.0; kv_dim],
    );
    let (mut att, mut proj) = (vec![0.0; dim], vec![0.0; dim]);
    let (mut g, mut u, mut logits) = (vec![0.0; ffn], vec![0.0; ffn], vec![0.0; vocab]);
    // The attention algorithm: `auto` (what the model uses), `naive` or `flash`.
    let algo = AttentionAlgo::parse(args.get(3).map_or("auto", |s| s.as_str())).expect("algo");
    let spec = AttentionSpec {
        max_memory: Some(nanotensor_core::memory::default_budget()),
        algo,
        ..AttentionSpec::causal()
    };
    // samples[step][layer][op]: seconds (layer `layers` holds the final norm and the head).
    let mut samples = vec![vec![[0.0f64; OPS.len()]; layers + 1]; steps + 1];
    let mut walls = Vec::new();
    let mut cpu = 0;
    for (step, sample) in samples.iter_mut().enumerate() {
        if step == 1 {
            // Step 0 warms up (page faults, workers starting); it is not counted.
            cpu = cpu_ns();
        }
        let pos = context + step;
        let t_step = Instant::now();
        let layer = std::cell::Cell::new(0);
        let mut timed = |i: usize, f: &mut dyn FnMut()| {
            let t = Instant::now();
            f();
            sample[layer.get()][i] += t.elapsed().as_secs_f64();
        };
        for (l, b) in blocks.iter().enumerate() {
            layer.set(l);
            timed(0, &mut || rmsnorm(&x, &norm, 1e-5, &mut xb));
            timed(1, &mut || be.linear_into(&xb, 1, &b.wq, &mut q).expect("q"));
            timed(2, &mut || be.linear_into(&xb, 1, &b.wk, &mut k).expect("k"));
            timed(3, &mut || be.linear_into(&xb, 1, &b.wv, &mut v).expect("v"));
            timed(4, &mut || {
                rope.apply(&mut q, dim, pos);
                rope.apply(&mut k, kv_dim, pos);
                kc[l][pos * kv_dim..(pos + 1) * kv_dim].copy_from_slice(&k);
                vc[l][pos * kv_dim..(pos + 1) * kv_dim].copy_from_slice(&v);
            });
            let n_kv = pos + 1;
            timed(5, &mut || {
                be.attention_into(
                    Heads {
                        data: &q,
                        layout: HeadsLayout::token_major(heads, 1, hd),
                    },
                    Heads {
                        data: &kc[l][..n_kv * kv_dim],
                        layout: HeadsLayout::token_major(kv_heads, n_kv, hd),
                    },
                    Heads {
                        data: &vc[l][..n_kv * kv_dim],
                        layout: HeadsLayout::token_major(kv_heads, n_kv, hd),
                    },
                    HeadsMut {
                        data: &mut att,
                        layout: HeadsLayout::token_major(heads, 1, hd),
                    },
                    &spec,
                )
                .expect("attention");
            });
            timed(6, &mut || {
                be.linear_into(&att, 1, &b.wo, &mut proj).expect("o")
            });
            timed(0, &mut || {
                add_assign(&mut x, &proj);
                rmsnorm(&x, &norm, 1e-5, &mut xb);
            });
            timed(7, &mut || {
                be.linear_into(&xb, 1, &b.gate, &mut g).expect("gate")
            });
            timed(8, &mut || {
                be.linear_into(&xb, 1, &b.up, &mut u).expect("up")
            });
            timed(9, &mut || swiglu(&mut g, &u));
            timed(10, &mut || {
                be.linear_into(&g, 1, &b.down, &mut proj).expect("down")
            });
            timed(9, &mut || add_assign(&mut x, &proj));
            // Keep the residual stream of random weights bounded (not timed; O(dim)).
            let s = x.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6) / (dim as f32).sqrt();
            x.iter_mut().for_each(|v| *v /= s);
        }
        layer.set(layers);
        timed(0, &mut || rmsnorm(&x, &norm, 1e-5, &mut xb));
        timed(11, &mut || {
            be.linear_into(&xb, 1, &head, &mut logits).expect("head")
        });
        if step > 0 {
            walls.push(t_step.elapsed().as_secs_f64());
        }
    }
    let cpu_s = (cpu_ns() - cpu) as f64 * 1e-9;
    let samples = &samples[1..];
    let t_wall: f64 = walls.iter().sum();
    // Per op: the mean over steps, and the sum over layers of each call's fastest step (an
    // estimate of the op's cost when no other process preempts it).
    let (mut sum_mean, mut sum_min) = (0.0, 0.0);
    println!("decode step, blocked backend, {threads} threads, context {context}, {steps} steps, attention {}", algo.name());
    println!("  {:<12} {:>8} {:>8}  (ms/token)", "op", "mean", "best");
    for (i, name) in OPS.iter().enumerate() {
        let mean = samples
            .iter()
            .map(|s| s.iter().map(|l| l[i]).sum::<f64>())
            .sum::<f64>()
            / steps as f64;
        let best: f64 = (0..=layers)
            .map(|l| {
                samples
                    .iter()
                    .map(|s| s[l][i])
                    .fold(f64::INFINITY, f64::min)
            })
            .sum();
        sum_mean += mean;
        sum_min += best;
        println!("  {name:<12} {:>8.3} {:>8.3}", mean * 1e3, best * 1e3);
    }
    println!(
        "  {:<12} {:>8.3} {:>8.3}",
        "sum of ops",
        sum_mean * 1e3,
        sum_min * 1e3
    );
    walls.sort_by(f64::total_cmp);
    println!(
        "  wall: mean {:.3} ms/token ({:.1} tok/s), median step {:.3} ms, best step {:.3} ms; on-CPU {:.3} ms/token over all threads",
        t_wall * 1e3 / steps as f64,
        steps as f64 / t_wall,
        walls[walls.len() / 2] * 1e3,
        walls[0] * 1e3,
        cpu_s * 1e3 / steps as f64
    );
}
