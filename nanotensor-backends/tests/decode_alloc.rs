//! Decode through `Backend::attention_into` allocates nothing per step.
//!
//! A generation loop calls attention once per layer per token with one query row against a KV
//! cache that grows by one row per step. This test installs a counting global allocator, runs
//! such a loop on the blocked backend (flash decode path, picked by `Auto` and by `Flash`) with
//! 1 and 2 threads, while every sampled step's output must match the float64 reference:
//!
//! - 1 and 2 threads alike: zero allocations in every step after the warm-up. The worker pool
//!   (`nanotensor_backends::threads`) publishes a job through atomics and a pointer to the
//!   caller's stack, so handing work to the second thread allocates nothing either.
//!
//! The binary holds a single `#[test]` so that no other test allocates concurrently; allocations
//! on every thread (the pool's workers too) are counted while the counter is armed.
#![cfg(feature = "blocked")]

use nanotensor_backends::blocked::BlockedBackend;
use nanotensor_core::attention::{check_operands, Heads, HeadsLayout, HeadsMut};
use nanotensor_core::reference::{attention_f64, compare};
use nanotensor_core::{AttentionAlgo, AttentionSpec, Backend, Error, Tensor};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The system allocator, counting allocations (and reallocations) while `ARMED`.
struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counter
// has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded; the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded; `ptr` and `layout` come from this allocator (i.e. from `System`).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const D: usize = 64;

/// One decode step with `h` query heads over `h_kv` KV heads: the query of position `n_kv − 1`
/// against token-major cache rows `0..n_kv`.
#[allow(clippy::too_many_arguments)]
fn step(
    be: &BlockedBackend,
    (h, h_kv): (usize, usize),
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_kv: usize,
    out: &mut [f32],
    spec: &AttentionSpec,
) -> nanotensor_core::Result<()> {
    be.attention_into(
        heads(q, h, 1),
        heads(k, h_kv, n_kv),
        heads(v, h_kv, n_kv),
        HeadsMut {
            data: out,
            layout: HeadsLayout::token_major(h, 1, D),
        },
        spec,
    )
    .map(|plan| assert_eq!(plan.algo, AttentionAlgo::Flash))
}

/// Token-major heads over the first `rows` rows of `x`.
fn heads(x: &[f32], n_heads: usize, rows: usize) -> Heads<'_, f32> {
    Heads {
        data: &x[..rows * n_heads * D],
        layout: HeadsLayout::token_major(n_heads, rows, D),
    }
}

/// Random operands for `h` query heads over `h_kv` KV heads and a cache of `cap` rows.
fn operands(h: usize, h_kv: usize, cap: usize) -> [Vec<f32>; 3] {
    let t = |n: usize, seed: u64| Tensor::<f32>::randn(&[n * D], 1.0, seed).unwrap().to_vec();
    [t(cap * h, 3), t(cap * h_kv, 1), t(cap * h_kv, 2)]
}

#[test]
fn decode_steps_through_the_trait_allocate_nothing() {
    // SmolLM2's 9 query heads over 3 KV heads (one KV chunk per row), and one head (2 threads
    // then split the 600+ keys into KV chunks combined by the flash-decoding reduction).
    let shapes = [(9, 3), (1, 1)];
    let (first, last) = (600, 640);
    let ops: Vec<_> = shapes
        .iter()
        .map(|&(h, hk)| operands(h, hk, last))
        .collect();
    // Pools are created one at a time and kept to the end: a dropped pool's threads wind down
    // (and free per-thread state) asynchronously, which would be counted.
    let mut backends = Vec::new();
    for threads in [1, 2] {
        backends.push(BlockedBackend::new(threads).unwrap());
        let be = backends.last().unwrap();
        // Warm-up on every shape: the thread-local scratch grows to its size on every thread,
        // and the pool's workers start.
        for (&(h, hk), [qs, k, v]) in shapes.iter().zip(&ops) {
            let mut out = vec![0.0f32; h * D];
            for _ in 0..20 {
                let spec = AttentionSpec::causal();
                step(be, (h, hk), &qs[..h * D], k, v, first, &mut out, &spec).unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (mut total, mut steps) = (0, 0);
        for (&(h, hk), [qs, k, v]) in shapes.iter().zip(&ops) {
            let mut out = vec![0.0f32; h * D];
            for algo in [AttentionAlgo::Auto, AttentionAlgo::Flash] {
                for n_kv in first..last {
                    let spec = AttentionSpec {
                        algo,
                        // The model's promise: rows before the new one were checked when written.
                        kv_rows_checked: n_kv - 1,
                        ..AttentionSpec::causal()
                    };
                    let q = &qs[(n_kv - 1) * h * D..n_kv * h * D];
                    ALLOCS.store(0, Ordering::SeqCst);
                    ARMED.store(true, Ordering::SeqCst);
                    let r = step(be, (h, hk), q, k, v, n_kv, &mut out, &spec);
                    ARMED.store(false, Ordering::SeqCst);
                    r.unwrap();
                    let allocs = ALLOCS.load(Ordering::SeqCst);
                    assert!(
                        allocs == 0,
                        "H {h}, {threads} threads, {algo:?}, n_kv {n_kv}: {allocs} allocations"
                    );
                    total += allocs;
                    steps += 1;
                    if n_kv % 13 == 0 {
                        let (qh, kh, vh) = (heads(q, h, 1), heads(k, hk, n_kv), heads(v, hk, n_kv));
                        let o = HeadsMut {
                            data: &mut out,
                            layout: HeadsLayout::token_major(h, 1, D),
                        };
                        let dims = check_operands(&qh, &kh, &vh, &o).unwrap();
                        // Contiguous [H, 1, D] is the same order as token-major [1, H, D].
                        let want = attention_f64(&qh, &kh, &vh, &dims, &AttentionSpec::causal());
                        let r = compare(&out, &want).expect("same length");
                        assert!(r.passes(1e-10), "H {h}, n_kv {n_kv}: {r:?}");
                    }
                }
            }
            // The promise covers only the old rows: a NaN in the new row is still refused.
            let mut bad_v = v[..first * hk * D].to_vec();
            bad_v[(first - 1) * hk * D + 5] = f32::NAN;
            let spec = AttentionSpec {
                kv_rows_checked: first - 1,
                ..AttentionSpec::causal()
            };
            let e = step(be, (h, hk), &qs[..h * D], k, &bad_v, first, &mut out, &spec).unwrap_err();
            assert!(matches!(e, Error::NonFinite { .. }), "{e}");
        }
        assert_eq!(
            total, 0,
            "{threads} threads: {total} allocations in {steps} steps"
        );
    }
}
