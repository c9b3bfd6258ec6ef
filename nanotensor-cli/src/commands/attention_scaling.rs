//! `nanotensor attention-scaling`: the O(N²) lesson made visible.
//!
//! Runs attention at N = 128, 512, 2048, 8192, 32768, 100000 with the materialised (naive) path
//! and the flash path of one backend. The naive path asks for its `H·N²` score matrix up front
//! and is refused by the memory budget once that no longer fits — the refusal and the bytes it
//! would have needed are part of the result. Prints a table (time, GFLOP/s, scratch memory per
//! path), writes an SVG chart of time and memory against N on log scales, and shows a progress
//! bar on stderr while it runs.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use nanotensor::attention::{AttentionDims, Heads, HeadsLayout, HeadsMut};
use nanotensor::error::human_bytes;
use nanotensor::{AttentionAlgo, AttentionSpec, Backend, Error, Result, Tensor};
use nanotensor_backends::{with_backend, BackendVisitor};
use serde_json::json;

use crate::output::{backend_choice, backend_help, parse_bytes, print_json, print_table};

mod chart;

/// The sequence lengths of the sweep.
pub const SIZES: [usize; 6] = [128, 512, 2048, 8192, 32_768, 100_000];

/// Arguments of `nanotensor attention-scaling`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "blocked", help = backend_help())]
    pub backend: String,
    /// Query heads H (and KV heads).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub heads: u64,
    /// Head dimension d.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub head_dim: u64,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Largest N of the sweep (the sizes above it are skipped).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_n: u64,
    /// Apply the causal mask.
    #[arg(long)]
    pub causal: bool,
    /// Memory budget of each call (e.g. 1GiB); default half the physical memory.
    #[arg(long, value_parser = parse_bytes)]
    pub max_memory: Option<u64>,
    /// Where to write the SVG chart.
    #[arg(long, default_value = "attention-scaling.svg")]
    pub out: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What happened to one (N, path) pair.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Ran: median seconds and the scratch bytes of its plan.
    Ran { seconds: f64, scratch_bytes: u64 },
    /// Refused by the memory budget before allocating.
    Refused { needed: u64, budget: u64 },
    /// The backend lacks this algorithm.
    Unsupported(String),
}

/// One row of the result.
#[derive(Debug, Clone)]
pub struct Row {
    pub n: usize,
    pub algo: AttentionAlgo,
    pub flops: f64,
    pub outcome: Outcome,
}

/// Runs `nanotensor attention-scaling`.
pub fn run(args: Args) -> Result<()> {
    let (kind, opts) = backend_choice(&args.backend, args.threads)?;
    chart::check_destination(&args.out)?;
    let (backend, threads, rows) = with_backend(kind, opts, Sweep { args: &args })?;
    chart::write(&args.out, &rows, backend, args.heads, args.head_dim)?;
    if args.json {
        let rows_json: Vec<_> = rows.iter().map(row_json).collect();
        print_json(&json!({
            "op": "attention-scaling",
            "backend": backend,
            "heads": args.heads,
            "head_dim": args.head_dim,
            "causal": args.causal,
            "threads": threads,
            "dtype": "f32",
            "chart": args.out.display().to_string(),
            "rows": rows_json,
        }));
    } else {
        let mut table = vec![vec![
            "N".to_string(),
            "path".into(),
            "time".into(),
            "GFLOP/s".into(),
            "scratch memory".into(),
        ]];
        for r in &rows {
            let (time, gflops, mem) = match &r.outcome {
                Outcome::Ran {
                    seconds,
                    scratch_bytes,
                } => (
                    format!("{:.4} s", seconds),
                    format!("{:.2}", r.flops / seconds / 1e9),
                    human_bytes(*scratch_bytes),
                ),
                Outcome::Refused { needed, budget } => (
                    "refused".into(),
                    "-".into(),
                    format!(
                        "needs {} > budget {}",
                        human_bytes(*needed),
                        human_bytes(*budget)
                    ),
                ),
                Outcome::Unsupported(why) => ("unsupported".into(), "-".into(), why.clone()),
            };
            table.push(vec![
                r.n.to_string(),
                r.algo.name().into(),
                time,
                gflops,
                mem,
            ]);
        }
        println!(
            "attention scaling: backend {backend}, H={}, d={}, {}, {threads} thread(s), f32",
            args.heads,
            args.head_dim,
            if args.causal { "causal" } else { "non-causal" }
        );
        print_table(&table);
        println!("chart written to {}", args.out.display());
    }
    Ok(())
}

fn row_json(r: &Row) -> serde_json::Value {
    let mut v = json!({ "n": r.n, "algo": r.algo.name() });
    match &r.outcome {
        Outcome::Ran {
            seconds,
            scratch_bytes,
        } => {
            v["status"] = json!("ran");
            v["seconds"] = json!(seconds);
            v["gflops"] = json!(r.flops / seconds / 1e9);
            v["scratch_bytes"] = json!(scratch_bytes);
        }
        Outcome::Refused { needed, budget } => {
            v["status"] = json!("refused");
            v["needed_bytes"] = json!(needed);
            v["budget_bytes"] = json!(budget);
        }
        Outcome::Unsupported(why) => {
            v["status"] = json!("unsupported");
            v["reason"] = json!(why);
        }
    }
    v
}

struct Sweep<'a> {
    args: &'a Args,
}

impl BackendVisitor for Sweep<'_> {
    type Output = (&'static str, usize, Vec<Row>);

    fn visit<B: Backend>(self, backend: B) -> Result<Self::Output> {
        let a = self.args;
        let (h, d) = (a.heads as usize, a.head_dim as usize);
        let sizes: Vec<usize> = SIZES.into_iter().filter(|&n| n as u64 <= a.max_n).collect();
        let algos = [AttentionAlgo::Materialized, AttentionAlgo::Flash];
        let bar = ProgressBar::new((sizes.len() * algos.len()) as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]")
                .map_err(|e| Error::invalid_arg("progress", e.to_string()))?,
        );
        let mut rows = Vec::new();
        // Once the naive path is refused, larger N are refused too: ask the plan only.
        for &n in &sizes {
            let l = HeadsLayout::contiguous(h, n, d);
            let len = l
                .required_len()
                .ok_or_else(|| Error::invalid_arg("attention", "sizes overflow"))?;
            let dims = AttentionDims::validate((&l, len), (&l, len), (&l, len), (&l, len))?;
            let mut inputs: Option<[Tensor<f32>; 3]> = None;
            for algo in algos {
                bar.set_message(format!("N={n} {}", algo.name()));
                let spec = AttentionSpec {
                    causal: a.causal,
                    scale: None,
                    algo,
                    max_memory: a.max_memory,
                    auto_threshold: None,
                    // Random inputs from the user's command: every K/V row is scanned.
                    kv_rows_checked: 0,
                    window: None,
                };
                let outcome = match backend.attention_plan::<f32>(&dims, &spec) {
                    Err(Error::MemoryBudget { needed, budget, .. }) => {
                        Outcome::Refused { needed, budget }
                    }
                    Err(Error::Unsupported { reason, .. }) => Outcome::Unsupported(reason),
                    Err(e) => return Err(e),
                    Ok(_) => {
                        if inputs.is_none() {
                            inputs = Some([
                                Tensor::randn(&[len], 1.0, 1)?,
                                Tensor::randn(&[len], 1.0, 2)?,
                                Tensor::randn(&[len], 1.0, 3)?,
                            ]);
                        }
                        let [q, k, v] = inputs.as_ref().expect("just created");
                        let mut out = vec![0.0f32; len];
                        // Small sizes are repeated (median of 5) to rise above timer noise.
                        let repeat = if n <= 2048 { 5 } else { 1 };
                        let mut times = Vec::with_capacity(repeat);
                        let mut scratch_bytes = 0;
                        for _ in 0..repeat {
                            let t0 = std::time::Instant::now();
                            let plan = backend.attention_into(
                                heads(q, l),
                                heads(k, l),
                                heads(v, l),
                                HeadsMut {
                                    data: &mut out,
                                    layout: l,
                                },
                                &spec,
                            )?;
                            times.push(t0.elapsed().as_secs_f64());
                            scratch_bytes = plan.scratch_bytes;
                        }
                        Outcome::Ran {
                            seconds: crate::output::median(&mut times),
                            scratch_bytes,
                        }
                    }
                };
                rows.push(Row {
                    n,
                    algo,
                    flops: dims.flops(a.causal),
                    outcome,
                });
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        Ok((backend.name(), backend.threads(), rows))
    }
}

fn heads(t: &Tensor<f32>, layout: HeadsLayout) -> Heads<'_, f32> {
    Heads {
        data: t.as_slice(),
        layout,
    }
}
