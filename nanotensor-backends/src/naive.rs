//! The naive backend: the "scar".
//!
//! Textbook loops, one thread, no blocking, no SIMD, no `unsafe`. Matmul runs i-j-k with `k`
//! innermost, so B is read *down its columns*: every step of the inner loop jumps `n` elements
//! and touches a new cache line. This is deliberately the slow code the rest of NanoTensor is
//! measured against — never optimise it. Accumulation happens in `f64`, which makes it a good
//! correctness oracle as well as a bad example of memory access.
//!
//! Attention materialises every score: `H·n_q·n_kv` elements. Before allocating, the backend
//! compares that with the memory budget and refuses with the bytes it would need (40 GB per head
//! for 100,000 tokens in f32).

use nanotensor_core::attention::{
    softmax_rows, AttentionDims, AttentionPlan, AttentionSpec, Heads, HeadsMut,
};
use nanotensor_core::backend::{check_linear_finite, check_matmul_finite};
use nanotensor_core::memory::check_budget;
use nanotensor_core::shape::MatmulDims;
use nanotensor_core::{AttentionAlgo, Backend, Element, Error, PreparedWeight, Result, Tensor};

/// The scar: plain nested loops on one thread. Also the correctness oracle.
///
/// Accuracy: exact up to the final rounding of each output (sums in f64). Speed: the baseline
/// every other backend is measured against, hundreds of times slower than `blocked`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NaiveBackend {
    // Built through `new`/`default`, like every backend.
    _private: (),
}

impl NaiveBackend {
    /// The naive backend. It always runs on the calling thread; `threads` is accepted (and
    /// checked) so that every backend has the same constructor.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for zero threads.
    pub fn new(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::invalid_arg(
                "threads",
                "the thread count must be at least 1",
            ));
        }
        Ok(NaiveBackend { _private: () })
    }
}

impl crate::select::BuildBackend for NaiveBackend {
    fn build(opts: &crate::BackendOptions) -> Result<Self> {
        Self::new(opts.threads)
    }
}

/// A weight for the naive backend: the plain `[out, in]` rows, unchanged.
#[derive(Clone, Debug)]
pub struct NaiveWeight<T: Element> {
    w: Tensor<T>,
}

impl<T: Element> PreparedWeight for NaiveWeight<T> {
    fn shape(&self) -> [usize; 2] {
        [self.w.shape()[0], self.w.shape()[1]]
    }
    fn size_bytes(&self) -> usize {
        self.w.size_bytes()
    }
}

impl Backend for NaiveBackend {
    type Weight<T: Element> = NaiveWeight<T>;

    fn name(&self) -> &'static str {
        "naive"
    }

    fn matmul_impl<T: Element>(
        &self,
        a: &Tensor<T>,
        b: &Tensor<T>,
        c: &mut Tensor<T>,
        d: &MatmulDims,
    ) -> Result<()> {
        check_matmul_finite(a, b)?;
        let (av, bv) = (a.as_slice(), b.as_slice());
        let cv = c.as_mut_slice();
        for batch in 0..d.batch {
            let a0 = batch * d.m * d.k;
            let b0 = if d.broadcast_b { 0 } else { batch * d.k * d.n };
            let c0 = batch * d.m * d.n;
            for i in 0..d.m {
                for j in 0..d.n {
                    let mut sum = 0.0f64;
                    for p in 0..d.k {
                        // B[p, j]: a stride-n walk down column j.
                        sum += av[a0 + i * d.k + p].as_f64() * bv[b0 + p * d.n + j].as_f64();
                    }
                    cv[c0 + i * d.n + j] = T::from_f64(sum);
                }
            }
        }
        Ok(())
    }

    fn softmax_impl<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let row_len = *x.shape().last().expect("rank checked");
        let mut y = x.clone();
        softmax_rows(y.as_mut_slice(), row_len);
        Ok(y)
    }

    fn attention_plan_impl<T: Element>(
        &self,
        dims: &AttentionDims,
        spec: &AttentionSpec,
    ) -> Result<AttentionPlan> {
        if spec.algo == AttentionAlgo::Flash {
            return Err(Error::Unsupported {
                op: "attention",
                backend: "naive",
                reason: "the naive backend only materialises the score matrix; \
                         use --backend blocked for --algo flash"
                    .into(),
            });
        }
        let size = std::mem::size_of::<T>();
        let scratch_bytes = dims.materialized_scores_bytes(size);
        check_budget(
            "attention",
            scratch_bytes,
            spec.budget(),
            &dims.scores_detail(T::DTYPE.name()),
        )?;
        Ok(AttentionPlan {
            algo: AttentionAlgo::Materialized,
            scratch_bytes,
        })
    }

    fn attention_impl<T: Element>(
        &self,
        q: Heads<'_, T>,
        k: Heads<'_, T>,
        v: Heads<'_, T>,
        mut out: HeadsMut<'_, T>,
        dims: &AttentionDims,
        spec: &AttentionSpec,
        _plan: &AttentionPlan,
    ) -> Result<()> {
        materialized_attention(&q, &k, &v, &mut out, dims, spec)
    }

    fn prepare_impl<T: Element>(&self, w: Tensor<T>, _shape: [usize; 2]) -> Result<NaiveWeight<T>> {
        Ok(NaiveWeight { w })
    }

    fn linear_impl<T: Element>(
        &self,
        x: &[T],
        rows: usize,
        w: &NaiveWeight<T>,
        out: &mut [T],
    ) -> Result<()> {
        let [n_out, n_in] = w.shape();
        check_linear_finite(x)?;
        let wv = w.w.as_slice();
        for r in 0..rows {
            for o in 0..n_out {
                let mut sum = 0.0f64;
                for i in 0..n_in {
                    sum += x[r * n_in + i].as_f64() * wv[o * n_in + i].as_f64();
                }
                out[r * n_out + o] = T::from_f64(sum);
            }
        }
        Ok(())
    }
}

/// The textbook algorithm: S = scale·Q·Kᵀ for all heads at once, mask, softmax, O = P·V.
fn materialized_attention<T: Element>(
    q: &Heads<'_, T>,
    k: &Heads<'_, T>,
    v: &Heads<'_, T>,
    out: &mut HeadsMut<'_, T>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
) -> Result<()> {
    let scale = spec.scale_for(dims.head_dim);
    let (hq, nq, nkv) = (dims.n_heads, dims.n_q, dims.n_kv);
    // The score matrix the whole lesson is about: [H, n_q, n_kv].
    let mut scores = Tensor::<T>::zeros(&[hq, nq, nkv])?;
    let s = scores.as_mut_slice();
    for h in 0..hq {
        let g = dims.kv_head(h);
        for i in 0..nq {
            let visible = dims.visible_range_for(i, spec);
            let qi = q.row(h, i);
            for j in 0..nkv {
                s[(h * nq + i) * nkv + j] = if visible.contains(&j) {
                    let kj = k.row(g, j);
                    let mut dot = 0.0f64;
                    for x in 0..dims.head_dim {
                        dot += qi[x].as_f64() * kj[x].as_f64();
                    }
                    T::from_f64(scale * dot)
                } else {
                    T::neg_infinity()
                };
            }
        }
    }
    softmax_rows(s, nkv);
    for h in 0..hq {
        let g = dims.kv_head(h);
        for i in 0..nq {
            let p = &s[(h * nq + i) * nkv..(h * nq + i + 1) * nkv];
            let o = out.row_mut(h, i);
            for (x, ox) in o.iter_mut().enumerate() {
                let mut acc = 0.0f64;
                for (j, pj) in p.iter().enumerate() {
                    acc += pj.as_f64() * v.row(g, j)[x].as_f64();
                }
                *ox = T::from_f64(acc);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundred_thousand_tokens_are_refused_before_allocating() {
        let dims = AttentionDims {
            n_heads: 1,
            n_kv_heads: 1,
            n_q: 100_000,
            n_kv: 100_000,
            head_dim: 64,
            v_dim: 64,
        };
        let spec = AttentionSpec {
            max_memory: Some(8 << 30),
            ..AttentionSpec::default()
        };
        let e = NaiveBackend::default()
            .attention_plan::<f32>(&dims, &spec)
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(
                e,
                Error::MemoryBudget {
                    needed: 40_000_000_000,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("40.0 GB per head"), "{msg}");
    }

    #[test]
    fn flash_is_refused() {
        let dims = AttentionDims {
            n_heads: 1,
            n_kv_heads: 1,
            n_q: 4,
            n_kv: 4,
            head_dim: 4,
            v_dim: 4,
        };
        let spec = AttentionSpec {
            algo: AttentionAlgo::Flash,
            ..AttentionSpec::default()
        };
        assert!(matches!(
            NaiveBackend::default().attention_plan::<f32>(&dims, &spec),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn small_matmul_by_hand() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let b = Tensor::from_slice(&[7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0], &[3, 2]).unwrap();
        let c = NaiveBackend::default().matmul(&a, &b).unwrap();
        assert_eq!(c.as_slice(), &[58.0, 64.0, 139.0, 154.0]);
    }
}
