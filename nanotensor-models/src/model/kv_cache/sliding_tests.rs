//! [`SlidingKvCache`]: positions across evictions, the amortised cost of the moves, typed
//! errors, and attention over the cache against windowed attention over the whole history.

use super::*;
use nanotensor_core::attention::{AttentionDims, Heads, HeadsLayout, HeadsMut};
use nanotensor_core::reference::{attention_f64, compare};
use nanotensor_core::{AttentionAlgo, AttentionSpec, Backend};

/// A small deterministic generator (xorshift), so the batch sizes and values are fixed.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn value(&mut self) -> f32 {
        (self.next() % 2001) as f32 / 1000.0 - 1.0
    }
}

#[test]
fn rows_hold_consecutive_positions_and_every_visible_one_survives_eviction() {
    let (layers, w, max_batch, kv_dim) = (2, 5, 3, 2);
    let mut c = SlidingKvCache::new(layers, w, max_batch, kv_dim).unwrap();
    assert_eq!(c.capacity(), 4 + 5);
    assert_eq!(c.bytes(), 2 * layers * 9 * kv_dim * 4);
    let mut g = Gen(7);
    for _ in 0..200 {
        let rows = 1 + g.below(max_batch);
        c.make_room(rows).unwrap();
        // Everything the new queries can see is stored: positions len + 1 − W .. len.
        assert!(c.offset() <= (c.len() + 1).saturating_sub(w), "{c:?}");
        assert!(c.stored() + rows <= c.capacity());
        for l in 0..layers {
            // Row values encode (position, layer).
            let k: Vec<f32> = (c.len()..c.len() + rows)
                .flat_map(|p| [p as f32, l as f32])
                .collect();
            let v: Vec<f32> = k.iter().map(|x| -x).collect();
            c.write(l, &k, &v).unwrap();
        }
        c.advance(rows).unwrap();
        for l in 0..layers {
            let (k, v) = c.layer(l, c.stored()).unwrap();
            for (r, (kr, vr)) in k.chunks(kv_dim).zip(v.chunks(kv_dim)).enumerate() {
                let p = (c.offset() + r) as f32;
                assert_eq!(kr, [p, l as f32]);
                assert_eq!(vr, [-p, -(l as f32)]);
            }
        }
    }
    assert_eq!(c.len(), c.offset() + c.stored());
    c.clear();
    assert!(c.is_empty() && c.offset() == 0 && c.stored() == 0);
}

#[test]
fn eviction_copies_o1_rows_per_token_amortised() {
    // One token per step, W = 8: capacity 15, a move of 7 rows every 8 tokens.
    let mut c = SlidingKvCache::new(1, 8, 1, 4).unwrap();
    let (mut moves, mut copied) = (0usize, 0usize);
    for _ in 0..1000 {
        let before = c.offset();
        c.make_room(1).unwrap();
        if c.offset() != before {
            moves += 1;
            copied += c.stored();
            assert_eq!(c.stored(), 7);
        }
        c.write(0, &[0.0; 4], &[0.0; 4]).unwrap();
        c.advance(1).unwrap();
    }
    assert!(moves <= 1000 / 8, "{moves} moves");
    assert!(copied <= 1000, "{copied} rows copied for 1000 tokens");
    assert_eq!(c.len(), 1000);
}

#[test]
fn bad_sizes_and_oversized_batches_are_typed_errors() {
    assert!(SlidingKvCache::new(1, 0, 4, 4).is_err());
    assert!(SlidingKvCache::new(1, 4, 0, 4).is_err());
    assert!(SlidingKvCache::new(0, 4, 4, 4).is_err());
    assert!(matches!(
        SlidingKvCache::new(1, usize::MAX, 2, 4),
        Err(Error::OutOfMemory { .. })
    ));
    let mut c = SlidingKvCache::new(1, 4, 2, 4).unwrap();
    let e = c.make_room(3).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ContextOverflow {
                needed: 3,
                capacity: 2,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!((c.len(), c.offset()), (0, 0));
    // Misuse of the row API is refused, not a panic: capacity 3 + 4 = 7 rows of 4.
    assert!(matches!(
        c.write(1, &[0.0; 4], &[0.0; 4]),
        Err(Error::OutOfRange { .. })
    ));
    assert!(c.write(0, &[0.0; 4], &[0.0; 3]).is_err());
    assert!(c.write(0, &[0.0; 6], &[0.0; 6]).is_err());
    assert!(c.write(0, &[0.0; 32], &[0.0; 32]).is_err());
    assert!(matches!(c.layer(0, 8), Err(Error::OutOfRange { .. })));
    assert!(matches!(c.layer(2, 1), Err(Error::OutOfRange { .. })));
    assert!(matches!(c.advance(8), Err(Error::ContextOverflow { .. })));
    assert_eq!(c.len(), 0);
    // W = 1: only the query's own row is needed, nothing is kept across a move.
    let mut one = SlidingKvCache::new(1, 1, 2, 1).unwrap();
    assert_eq!(one.capacity(), 2);
    for p in 0..5 {
        one.make_room(1).unwrap();
        one.write(0, &[p as f32], &[p as f32]).unwrap();
        one.advance(1).unwrap();
        assert_eq!(
            one.layer(0, one.stored()).unwrap().0.last(),
            Some(&(p as f32))
        );
    }
}

/// Attention of every forward pass over the sliding cache equals attention over the whole
/// history with the same window: bit for bit on the float64 reference, and within the f32
/// bound on the blocked backend's materialised and flash paths.
#[test]
fn attention_over_the_cache_equals_windowed_attention_over_the_history() {
    let (n_heads, n_kv_heads, hd, w, max_batch) = (4, 2, 8, 6, 5);
    let kv_dim = n_kv_heads * hd;
    let mut cache = SlidingKvCache::new(1, w, max_batch, kv_dim).unwrap();
    let (mut hist_k, mut hist_v) = (Vec::new(), Vec::new());
    let backend = nanotensor_backends::BlockedBackend::new(2).unwrap();
    let mut g = Gen(42);
    let mut evictions = 0;
    while cache.len() < 120 {
        let rows = 1 + g.below(max_batch);
        let q: Vec<f32> = (0..rows * n_heads * hd).map(|_| g.value()).collect();
        let k: Vec<f32> = (0..rows * kv_dim).map(|_| g.value()).collect();
        let v: Vec<f32> = (0..rows * kv_dim).map(|_| g.value()).collect();
        let offset = cache.offset();
        cache.make_room(rows).unwrap();
        evictions += usize::from(cache.offset() != offset);
        let checked = cache.stored();
        let n_kv = checked + rows;
        cache.write(0, &k, &v).unwrap();
        let (ck, cv) = cache.layer(0, n_kv).unwrap();
        hist_k.extend_from_slice(&k);
        hist_v.extend_from_slice(&v);
        let n_hist = cache.len() + rows;

        let tm = HeadsLayout::token_major;
        let qh = Heads {
            data: &q,
            layout: tm(n_heads, rows, hd),
        };
        let view = |data, n| Heads {
            data,
            layout: tm(n_kv_heads, n, hd),
        };
        let dims = |n_kv| AttentionDims {
            n_heads,
            n_kv_heads,
            n_q: rows,
            n_kv,
            head_dim: hd,
            v_dim: hd,
        };
        let spec = AttentionSpec::sliding(w);
        let want = attention_f64(
            &qh,
            &view(&hist_k, n_hist),
            &view(&hist_v, n_hist),
            &dims(n_hist),
            &spec,
        );
        let got = attention_f64(&qh, &view(ck, n_kv), &view(cv, n_kv), &dims(n_kv), &spec);
        assert_eq!(got, want, "reference at position {}", cache.len());

        for algo in [AttentionAlgo::Materialized, AttentionAlgo::Flash] {
            let mut out = vec![0.0f32; rows * n_heads * hd];
            backend
                .attention_into(
                    qh,
                    view(ck, n_kv),
                    view(cv, n_kv),
                    HeadsMut {
                        data: &mut out,
                        layout: tm(n_heads, rows, hd),
                    },
                    &AttentionSpec {
                        algo,
                        kv_rows_checked: checked,
                        ..spec
                    },
                )
                .unwrap();
            // `want` is head-major [H, rows, hd]; `out` token-major [rows, H, hd].
            let out_hmajor: Vec<f32> = (0..n_heads)
                .flat_map(|h| (0..rows).map(move |i| (h, i)))
                .flat_map(|(h, i)| out[(i * n_heads + h) * hd..][..hd].to_vec())
                .collect();
            let r = compare(&out_hmajor, &want).unwrap();
            assert!(r.passes(1e-10), "{algo:?} at {}: {r:?}", cache.len());
        }
        cache.advance(rows).unwrap();
    }
    assert!(evictions >= 10, "only {evictions} evictions");
    assert!(cache.offset() > 0 && cache.stored() < cache.capacity());
}
