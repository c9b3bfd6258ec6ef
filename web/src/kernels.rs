//! The kernel panel's work: timed matmul and attention on seeded tensors, with fingerprints of
//! the output that the browser test compares with a native run.
//!
//! Every input comes from [`Tensor::randn`] with an explicit seed, so the same request produces
//! the same operands natively and in WebAssembly (the generator is integer arithmetic plus
//! correctly-specified float operations). What differs between the two builds is only the kernel
//! code the backend selects (AVX-512 natively, simd128 in the browser), which can reorder the
//! sums; the fingerprints are chosen so that a reordering moves them by rounding error only.

use nanotensor::attention::{AttentionDims, Heads, HeadsLayout, HeadsMut};
use nanotensor::memory::check_budget;
use nanotensor::reference::{compare, matmul_f64};
use nanotensor::{AttentionAlgo, AttentionSpec, Backend, Error, Result, Tensor};
use nanotensor_backends::{with_backend, BackendKind, BackendOptions, BackendVisitor};
use serde::{Deserialize, Serialize};

use crate::clock::time_median;

/// How many leading output values a fingerprint carries.
pub const SAMPLE_LEN: usize = 4;

/// What identifies an output without shipping it: sums over every element (in index order, in
/// float64) and a few values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `Σ x_i`.
    pub sum: f64,
    /// `Σ x_i²`: positive terms, so a reordered kernel moves it only by relative rounding error.
    pub sum_sq: f64,
    /// `x_0 … x_{SAMPLE_LEN-1}` widened to float64.
    pub head: Vec<f64>,
}

impl Fingerprint {
    /// The fingerprint of `xs`.
    pub fn of(xs: &[f32]) -> Self {
        let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
        for &x in xs {
            let x = f64::from(x);
            sum += x;
            sum_sq += x * x;
        }
        Fingerprint {
            sum,
            sum_sq,
            head: xs.iter().take(SAMPLE_LEN).map(|&x| f64::from(x)).collect(),
        }
    }
}

/// One matmul measurement: `C = A·B` with `A = randn([m, k], 1, seed)` and
/// `B = randn([k, n], 1, seed + 1)` (the CLI's convention).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatmulRequest {
    /// Backend name: `naive`, `blocked` or `int8`.
    pub backend: String,
    /// Rows of A and C.
    pub m: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Seed of A; B uses `seed + 1`.
    pub seed: u64,
    /// Timed repetitions after one warm-up; the median is reported.
    pub repeat: usize,
    /// Also compare C with the float64 reference (costs one float64 matmul).
    pub check: bool,
}

/// The result of a [`MatmulRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatmulReport {
    /// The backend's own name.
    pub backend: String,
    /// Threads the backend used.
    pub threads: usize,
    /// Median seconds of one `matmul` call.
    pub seconds: f64,
    /// `2·m·n·k / seconds / 10⁹`.
    pub gflops: f64,
    /// Fingerprint of the inputs A and B (equal on every platform, bit for bit).
    pub inputs: Fingerprint,
    /// Fingerprint of C.
    pub output: Fingerprint,
    /// NMSE of C against the float64 reference, when asked.
    pub nmse: Option<f64>,
}

/// Runs a [`MatmulRequest`] with one thread (the browser has one; natively it makes the figures
/// comparable).
///
/// # Errors
/// Unknown or not-compiled backend, zero sizes or repeat, operands over the 1 GiB the page
/// allows, and whatever the backend reports.
pub fn run_matmul(req: &MatmulRequest) -> Result<MatmulReport> {
    let kind = BackendKind::parse(&req.backend)?;
    let bytes = [
        (req.m, req.k),
        (req.k, req.n),
        (req.k, req.n), // a prepared / packed copy of B
        (req.m, req.n),
    ]
    .iter()
    .fold(0u64, |acc, &(r, c)| {
        acc.saturating_add((r as u64).saturating_mul(c as u64).saturating_mul(4))
    });
    check_budget(
        "matmul",
        bytes,
        PAGE_BUDGET,
        &format!(
            " for {}×{} · {}×{} f32 operands",
            req.m, req.k, req.k, req.n
        ),
    )?;
    with_backend(kind, single_thread(), MatmulRun(req))
}

/// Memory the page lets one kernel call use: a quarter of wasm32's 4 GiB address space.
pub const PAGE_BUDGET: u64 = 1 << 30;

fn single_thread() -> BackendOptions {
    BackendOptions {
        threads: 1,
        ..BackendOptions::default()
    }
}

struct MatmulRun<'a>(&'a MatmulRequest);

impl BackendVisitor for MatmulRun<'_> {
    type Output = MatmulReport;

    fn visit<B: Backend>(self, backend: B) -> Result<MatmulReport> {
        let r = self.0;
        let a = Tensor::<f32>::randn(&[r.m, r.k], 1.0, r.seed)?;
        let b = Tensor::<f32>::randn(&[r.k, r.n], 1.0, r.seed.wrapping_add(1))?;
        let (seconds, c) = time_median(r.repeat, || backend.matmul(&a, &b))?;
        let nmse = if r.check {
            Some(compare(c.as_slice(), &matmul_f64(&a, &b)?)?.nmse)
        } else {
            None
        };
        let mut ab = a.to_vec();
        ab.extend_from_slice(b.as_slice());
        let flops = 2.0 * r.m as f64 * r.n as f64 * r.k as f64;
        Ok(MatmulReport {
            backend: backend.name().to_string(),
            threads: backend.threads(),
            seconds,
            gflops: flops / seconds.max(1e-12) / 1e9,
            inputs: Fingerprint::of(&ab),
            output: Fingerprint::of(c.as_slice()),
            nmse,
        })
    }
}

/// One attention measurement on contiguous `[heads, seq_len, head_dim]` operands
/// `Q = randn(seed)`, `K = randn(seed + 1)`, `V = randn(seed + 2)` (the CLI's convention).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionRequest {
    /// Backend name.
    pub backend: String,
    /// `naive` (materialised scores), `flash` (tiled online softmax) or `auto`.
    pub algo: String,
    /// Heads `H` (as many KV heads).
    pub heads: usize,
    /// Sequence length `N` (queries and keys).
    pub seq_len: usize,
    /// Head dimension `d`.
    pub head_dim: usize,
    /// Apply the causal mask.
    pub causal: bool,
    /// Scratch budget in bytes the algorithm may use; past it the library refuses.
    pub max_memory: u64,
    /// Seed of Q; K and V use `seed + 1`, `seed + 2`.
    pub seed: u64,
    /// Timed repetitions after one warm-up.
    pub repeat: usize,
}

/// The result of an [`AttentionRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionReport {
    /// The backend's own name.
    pub backend: String,
    /// The algorithm that ran (never `auto`).
    pub algo: String,
    /// Median seconds of one call.
    pub seconds: f64,
    /// Useful floating-point operations per second, in 10⁹.
    pub gflops: f64,
    /// Scratch bytes the algorithm allocated beyond operands and output.
    pub scratch_bytes: u64,
    /// Fingerprint of the output.
    pub output: Fingerprint,
}

/// Runs an [`AttentionRequest`]. The plan (algorithm and scratch) is checked against
/// `max_memory` before any operand is allocated, so a refused request costs nothing.
///
/// # Errors
/// [`Error::MemoryBudget`] when the algorithm's scratch exceeds `max_memory` (the naive path
/// past a few thousand tokens), [`Error::Unsupported`] when the backend lacks the algorithm, bad
/// sizes, and whatever the backend reports.
pub fn run_attention(req: &AttentionRequest) -> Result<AttentionReport> {
    let kind = BackendKind::parse(&req.backend)?;
    let algo = AttentionAlgo::parse(&req.algo)?;
    with_backend(kind, single_thread(), AttentionRun { req, algo })
}

struct AttentionRun<'a> {
    req: &'a AttentionRequest,
    algo: AttentionAlgo,
}

impl BackendVisitor for AttentionRun<'_> {
    type Output = AttentionReport;

    fn visit<B: Backend>(self, backend: B) -> Result<AttentionReport> {
        let r = self.req;
        let (h, n, d) = (r.heads, r.seq_len, r.head_dim);
        let layout = HeadsLayout::contiguous(h, n, d);
        let len = layout
            .required_len()
            .ok_or_else(|| Error::invalid_arg("attention", "operand size overflows"))?;
        let dims = AttentionDims::validate(
            (&layout, len),
            (&layout, len),
            (&layout, len),
            (&layout, len),
        )?;
        let spec = AttentionSpec {
            causal: r.causal,
            scale: None,
            algo: self.algo,
            max_memory: Some(r.max_memory),
            auto_threshold: None,
            // Random inputs requested by the page: every K/V row is scanned.
            kv_rows_checked: 0,
            window: None,
        };
        // Refuse before allocating: the algorithm's scratch first, then operands plus scratch.
        let plan = backend.attention_plan::<f32>(&dims, &spec)?;
        check_budget(
            "attention",
            (4 * len as u64 * 4).saturating_add(plan.scratch_bytes),
            PAGE_BUDGET,
            " for Q, K, V, the output and the scratch",
        )?;
        let q = Tensor::<f32>::randn(&[h, n, d], 1.0, r.seed)?;
        let k = Tensor::<f32>::randn(&[h, n, d], 1.0, r.seed.wrapping_add(1))?;
        let v = Tensor::<f32>::randn(&[h, n, d], 1.0, r.seed.wrapping_add(2))?;
        let mut out = Tensor::<f32>::zeros(&[h, n, d])?;
        fn view(t: &Tensor<f32>, layout: HeadsLayout) -> Heads<'_, f32> {
            Heads {
                data: t.as_slice(),
                layout,
            }
        }
        let (seconds, ran) = time_median(r.repeat, || {
            backend.attention_into(
                view(&q, layout),
                view(&k, layout),
                view(&v, layout),
                HeadsMut {
                    data: out.as_mut_slice(),
                    layout,
                },
                &spec,
            )
        })?;
        Ok(AttentionReport {
            backend: backend.name().to_string(),
            algo: ran.algo.name().to_string(),
            seconds,
            gflops: dims.flops(r.causal) / seconds.max(1e-12) / 1e9,
            scratch_bytes: ran.scratch_bytes,
            output: Fingerprint::of(out.as_slice()),
        })
    }
}

/// What this build contains, for the page's header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// Crate version.
    pub version: String,
    /// Backends compiled in, in chart order.
    pub backends: Vec<String>,
    /// Each backend's settings at the page's defaults as one line (e.g. int8's scheme:
    /// `weights per-row, activations per-block-16, clip absmax, equalize off`); empty for a
    /// backend without settings. Same order as `backends`.
    pub settings: Vec<String>,
    /// Whether the module was compiled with WebAssembly SIMD (simd128).
    pub simd128: bool,
    /// Whether it was compiled with relaxed SIMD too (fused multiply-add in the f32 kernel).
    pub relaxed_simd: bool,
    /// Whether the LLaMA model (generation panel) is in this build.
    pub model: bool,
}

/// The [`BuildInfo`] of this build.
pub fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        backends: BackendKind::compiled()
            .into_iter()
            .map(|k| k.name().to_string())
            .collect(),
        settings: BackendKind::compiled()
            .into_iter()
            .map(|k| {
                k.settings(&BackendOptions::default())
                    .iter()
                    .map(|(key, v)| format!("{key} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect(),
        simd128: cfg!(target_feature = "simd128"),
        relaxed_simd: cfg!(target_feature = "relaxed-simd"),
        model: crate::MODEL_AVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_matmul_matches_the_float64_reference_and_hand_sums() {
        let req = MatmulRequest {
            backend: "naive".into(),
            m: 7,
            k: 5,
            n: 3,
            seed: 11,
            repeat: 1,
            check: true,
        };
        let rep = run_matmul(&req).unwrap();
        assert!(rep.nmse.unwrap() < 1e-12, "{rep:?}");
        // The output fingerprint agrees with one computed here from the float64 reference.
        let a = Tensor::<f32>::randn(&[7, 5], 1.0, 11).unwrap();
        let b = Tensor::<f32>::randn(&[5, 3], 1.0, 12).unwrap();
        let c = matmul_f64(&a, &b).unwrap();
        let want_sum: f64 = c.as_slice().iter().sum();
        assert!(
            (rep.output.sum - want_sum).abs() < 1e-4,
            "{rep:?} vs {want_sum}"
        );
        assert_eq!(rep.output.head.len(), SAMPLE_LEN);
        assert!((rep.output.head[0] - c.as_slice()[0]).abs() < 1e-5);
        assert_eq!(rep.threads, 1);
    }

    #[test]
    fn every_compiled_backend_agrees_with_the_float64_reference() {
        for kind in BackendKind::compiled() {
            let req = MatmulRequest {
                backend: kind.name().into(),
                m: 33,
                k: 70,
                n: 19,
                seed: 5,
                repeat: 1,
                check: true,
            };
            let rep = run_matmul(&req).unwrap();
            // int8 rounds both operands to 8 bits: ~1e-4 relative squared error.
            let bound = if kind == BackendKind::Int8 {
                1e-3
            } else {
                1e-10
            };
            assert!(rep.nmse.unwrap() < bound, "{kind}: {rep:?}");
        }
    }

    #[test]
    fn flash_and_naive_attention_agree_where_both_run() {
        let mut req = AttentionRequest {
            backend: "naive".into(),
            algo: "naive".into(),
            heads: 3,
            seq_len: 150,
            head_dim: 16,
            causal: true,
            max_memory: 1 << 30,
            seed: 9,
            repeat: 1,
        };
        let naive = run_attention(&req).unwrap();
        req.backend = "blocked".into();
        req.algo = "flash".into();
        let flash = run_attention(&req).unwrap();
        assert_eq!(flash.algo, "flash");
        assert!(
            flash.scratch_bytes < naive.scratch_bytes,
            "{flash:?} vs {naive:?}"
        );
        let rel = (flash.output.sum_sq - naive.output.sum_sq).abs() / naive.output.sum_sq;
        assert!(rel < 1e-5, "{flash:?} vs {naive:?}");
        for (a, b) in flash.output.head.iter().zip(&naive.output.head) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn fingerprint_by_hand() {
        let f = Fingerprint::of(&[1.0, -2.0, 0.5]);
        assert_eq!(f.sum, -0.5);
        assert_eq!(f.sum_sq, 5.25);
        assert_eq!(f.head, vec![1.0, -2.0, 0.5]);
    }

    #[test]
    fn unknown_backend_and_zero_sizes_are_errors() {
        let mut req = MatmulRequest {
            backend: "cuda".into(),
            m: 2,
            k: 2,
            n: 2,
            seed: 1,
            repeat: 1,
            check: false,
        };
        assert!(run_matmul(&req).is_err());
        req.backend = "naive".into();
        req.m = 0;
        assert!(run_matmul(&req).is_err());
        req.m = 1 << 20;
        req.k = 1 << 20;
        let e = run_matmul(&req).unwrap_err();
        assert!(matches!(e, Error::MemoryBudget { .. }), "{e}");
    }

    #[test]
    fn naive_attention_refuses_past_its_budget_with_the_library_message() {
        let mut req = AttentionRequest {
            backend: "naive".into(),
            algo: "naive".into(),
            heads: 2,
            seq_len: 64,
            head_dim: 8,
            causal: true,
            max_memory: 2 * 64 * 64 * 4,
            seed: 3,
            repeat: 1,
        };
        let rep = run_attention(&req).unwrap();
        assert_eq!(rep.algo, "naive");
        assert_eq!(rep.scratch_bytes, 2 * 64 * 64 * 4);
        // Each output row is a convex combination of V rows: bounded by max |V|.
        let v = Tensor::<f32>::randn(&[2, 64, 8], 1.0, 5).unwrap();
        let vmax = v.as_slice().iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(rep
            .output
            .head
            .iter()
            .all(|x| x.abs() <= f64::from(vmax) + 1e-6));
        req.seq_len = 65;
        let e = run_attention(&req).unwrap_err();
        assert!(matches!(e, Error::MemoryBudget { .. }), "{e}");
        assert!(e.to_string().contains("score matrix"), "{e}");
    }
}
