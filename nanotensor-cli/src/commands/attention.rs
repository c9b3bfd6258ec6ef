//! `nanotensor attention`: time scaled dot-product attention on seeded random Q, K, V.
//!
//! The plan (algorithm and scratch bytes) is computed and checked against the memory budget
//! *before* Q, K and V are allocated, so a request the naive path cannot afford fails at once.

use nanotensor::attention::{AttentionDims, Heads, HeadsLayout, HeadsMut};
use nanotensor::memory::check_budget;
use nanotensor::reference::{attention_f64, compare};
use nanotensor::{AttentionAlgo, AttentionPlan, AttentionSpec, Backend, Element, Result, Tensor};
use nanotensor_backends::{with_backend, BackendVisitor};
use serde_json::json;

use crate::output::{
    backend_choice, backend_help, parse_bytes, print_json, print_table, time_median, DTypeArg,
};

/// Attention algorithm flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlgoArg {
    /// Flash when the naive score matrix would be large, else naive.
    Auto,
    /// Materialise the full score matrix.
    Naive,
    /// Tiled online softmax, O(N) memory.
    Flash,
}

impl From<AlgoArg> for AttentionAlgo {
    fn from(a: AlgoArg) -> Self {
        match a {
            AlgoArg::Auto => AttentionAlgo::Auto,
            AlgoArg::Naive => AttentionAlgo::Materialized,
            AlgoArg::Flash => AttentionAlgo::Flash,
        }
    }
}

/// Arguments of `nanotensor attention`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "naive", help = backend_help())]
    pub backend: String,
    /// Algorithm: naive (materialised scores), flash (tiled), auto.
    #[arg(long, value_enum, default_value = "auto")]
    pub algo: AlgoArg,
    /// Sequence length N (queries; also keys unless --kv-len is given).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub seq_len: u64,
    /// Number of keys/values (default: --seq-len). `--seq-len 1 --kv-len 4096` is a decode step.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub kv_len: Option<u64>,
    /// Head dimension d.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub head_dim: u64,
    /// Query heads H.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub heads: u64,
    /// Key/value heads (must divide --heads; default --heads).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub kv_heads: Option<u64>,
    /// Apply the causal mask.
    #[arg(long)]
    pub causal: bool,
    /// Sliding window W (needs --causal): each query sees only the last W positions up to and
    /// including its own, as Gemma 3's local layers (W = 512) do.
    #[arg(long)]
    pub window: Option<usize>,
    /// Scale of Q·Kᵀ (default 1/√d).
    #[arg(long)]
    pub scale: Option<f64>,
    /// Element type.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DTypeArg,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed repetitions after a warm-up (repeated calls for 0.1 s, at least one); the
    /// median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Memory budget for the call (e.g. 8G, 512MiB); default half the physical memory.
    #[arg(long, value_parser = parse_bytes)]
    pub max_memory: Option<u64>,
    /// Compare with a float64 reference and report the NMSE.
    #[arg(long)]
    pub check: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Runs `nanotensor attention`.
pub fn run(args: Args) -> Result<()> {
    let (kind, opts) = backend_choice(&args.backend, args.threads)?;
    if let Some(s) = args.scale {
        if !s.is_finite() {
            return Err(nanotensor::Error::invalid_arg(
                "attention",
                "--scale must be finite",
            ));
        }
    }
    let report = match args.dtype {
        DTypeArg::F32 => with_backend(
            kind,
            opts,
            Run::<f32> {
                args: &args,
                _t: Default::default(),
            },
        )?,
        DTypeArg::F64 => with_backend(
            kind,
            opts,
            Run::<f64> {
                args: &args,
                _t: Default::default(),
            },
        )?,
    };
    let d = &report.dims;
    let gflops = d.flops_for(&report.spec) / report.seconds / 1e9;
    if args.json {
        let mut v = json!({
            "op": "attention",
            "backend": report.backend,
            "algo": report.plan.algo.name(),
            "requested_algo": AttentionAlgo::from(args.algo).name(),
            "seq_len": d.n_q, "kv_len": d.n_kv,
            "head_dim": d.head_dim, "heads": d.n_heads, "kv_heads": d.n_kv_heads,
            "causal": args.causal,
            "window": args.window,
            "dtype": args.dtype.name(),
            "threads": report.threads,
            "repeat": args.repeat,
            "seconds": report.seconds,
            "gflops": gflops,
            "scratch_bytes": report.plan.scratch_bytes,
        });
        if let Some(nmse) = report.nmse {
            v["nmse"] = json!(nmse);
        }
        print_json(&v);
    } else {
        let mut rows = vec![
            vec!["field".into(), "value".into()],
            vec!["op".into(), "attention".into()],
            vec!["backend".into(), report.backend.into()],
            vec![
                "algo".into(),
                format!(
                    "{} (asked: {})",
                    report.plan.algo.name(),
                    AttentionAlgo::from(args.algo).name()
                ),
            ],
            vec![
                "shape".into(),
                format!(
                    "H={} H_kv={} n_q={} n_kv={} d={}",
                    d.n_heads, d.n_kv_heads, d.n_q, d.n_kv, d.head_dim
                ),
            ],
            vec!["causal".into(), args.causal.to_string()],
            vec![
                "window".into(),
                args.window.map_or_else(|| "none".into(), |w| w.to_string()),
            ],
            vec!["dtype".into(), args.dtype.name().into()],
            vec!["threads".into(), report.threads.to_string()],
            vec![
                "median time".into(),
                format!("{:.6} s ({} runs)", report.seconds, args.repeat),
            ],
            vec!["throughput".into(), format!("{gflops:.2} GFLOP/s")],
            vec![
                "scratch memory".into(),
                nanotensor::error::human_bytes(report.plan.scratch_bytes),
            ],
        ];
        if let Some(nmse) = report.nmse {
            rows.push(vec!["nmse vs f64".into(), format!("{nmse:.3e}")]);
        }
        print_table(&rows);
    }
    Ok(())
}

struct Report {
    backend: &'static str,
    threads: usize,
    seconds: f64,
    plan: AttentionPlan,
    dims: AttentionDims,
    spec: AttentionSpec,
    nmse: Option<f64>,
}

struct Run<'a, T> {
    args: &'a Args,
    _t: std::marker::PhantomData<T>,
}

impl<T: Element> BackendVisitor for Run<'_, T> {
    type Output = Report;

    fn visit<B: Backend>(self, backend: B) -> Result<Report> {
        let a = self.args;
        let (h, n) = (a.heads as usize, a.seq_len as usize);
        let hkv = a.kv_heads.unwrap_or(a.heads) as usize;
        let nkv = a.kv_len.unwrap_or(a.seq_len) as usize;
        let d = a.head_dim as usize;
        let (ql, kl, ol) = (
            HeadsLayout::contiguous(h, n, d),
            HeadsLayout::contiguous(hkv, nkv, d),
            HeadsLayout::contiguous(h, n, d),
        );
        let len = |l: &HeadsLayout| l.required_len().unwrap_or(usize::MAX);
        let dims = AttentionDims::validate(
            (&ql, len(&ql)),
            (&kl, len(&kl)),
            (&kl, len(&kl)),
            (&ol, len(&ol)),
        )?;
        let spec = AttentionSpec {
            causal: a.causal,
            scale: a.scale,
            algo: a.algo.into(),
            max_memory: a.max_memory,
            auto_threshold: None,
            // Inputs from the user's command: every K/V row is scanned.
            kv_rows_checked: 0,
            window: a.window,
        };
        // Refuse before allocating anything: first the algorithm's scratch, then the operands.
        let plan = backend.attention_plan::<T>(&dims, &spec)?;
        let size = std::mem::size_of::<T>() as u64;
        let operands = (2 * len(&ql) as u64)
            .saturating_add(2 * len(&kl) as u64)
            .saturating_mul(size);
        check_budget(
            "attention",
            operands.saturating_add(plan.scratch_bytes),
            spec.budget(),
            " for Q, K, V, the output and the scratch",
        )?;
        let q = Tensor::<T>::randn(&[h, n, d], 1.0, a.seed)?;
        let k = Tensor::<T>::randn(&[hkv, nkv, d], 1.0, a.seed + 1)?;
        let v = Tensor::<T>::randn(&[hkv, nkv, d], 1.0, a.seed + 2)?;
        let mut out = Tensor::<T>::zeros(&[h, n, d])?;
        let qh = Heads {
            data: q.as_slice(),
            layout: ql,
        };
        let kh = Heads {
            data: k.as_slice(),
            layout: kl,
        };
        let vh = Heads {
            data: v.as_slice(),
            layout: kl,
        };
        let (seconds, plan) = time_median(a.repeat, || {
            backend.attention_into(
                qh,
                kh,
                vh,
                HeadsMut {
                    data: out.as_mut_slice(),
                    layout: ol,
                },
                &spec,
            )
        })?;
        let nmse = if a.check {
            let reference = attention_f64(&qh, &kh, &vh, &dims, &spec);
            Some(compare(out.as_slice(), &reference)?.nmse)
        } else {
            None
        };
        Ok(Report {
            backend: backend.name(),
            threads: backend.threads(),
            seconds,
            plan,
            dims,
            spec,
            nmse,
        })
    }
}
