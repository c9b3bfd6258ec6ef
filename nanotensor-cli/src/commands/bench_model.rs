//! `nanotensor bench-model`: prefill and decode speed of the model per backend, with the KV
//! cache on and off.
//!
//! Prefill: one batched pass over a `--prompt-tokens` prompt (default 128, llama-bench's `pp128`).
//! Decode: `--decode-tokens` steps after it (default 64), greedy, never stopping at EOS. With the
//! cache off every decode step reruns the whole prefix, so its tok/s falls as the sequence grows.
//!
//! Decode against the memory-bandwidth limit (KV cache on): a decode step multiplies one row by
//! every matrix, so it streams all of them from memory. `decode_bytes_per_token` is what one step
//! reads ([`Llama::decode_bytes_per_token`]): the prepared size of every matrix (the block
//! projections and the LM head) plus the K and V rows attended to, at the average cache length
//! of the decode steps (`prompt + (decode + 1) / 2` positions). `decode_gb_per_s` is that times
//! the decode tok/s (decimal GB/s); `read_bandwidth_gb_per_s` is the machine's read bandwidth at
//! the same thread count, measured in the same run by the probe of `nanotensor bandwidth`
//! (skipped with `--no-bandwidth-probe`); `decode_bandwidth_fraction` is their ratio, which
//! exceeds 1 when part of the weights stays in the last-level cache between steps (weights not
//! much larger than that cache). With the cache off a step is a batched pass over the whole
//! prefix, so these fields are null.

use std::path::PathBuf;

use nanotensor::model::{generate, GenerateOptions, Llama, StopAt};
use nanotensor::{Backend, Error, Result};
use nanotensor_backends::{with_backend, BackendKind, BackendVisitor};
use serde_json::json;

use super::bandwidth::{check_probe_budget, probe, probe_json, DEFAULT_PROBE_BYTES_TEXT};
use super::model_io::open_model;
use crate::output::{
    backend_options, median, parse_bytes, print_json, print_table, settings_label, transforms_json,
    transforms_label, with_all_settings, Int8Args, WeightArgs, WeightDType,
};
use nanotensor_backends::bandwidth::{ReadBandwidth, DEFAULT_PASSES};

/// Prompt text for the benchmark, repeated until it fills `--prompt-tokens`.
const BENCH_TEXT: &str = "The lighthouse keeper climbed the spiral stairs every evening, \
counting the steps out of habit, and lit the lamp before the fishing boats turned for home. \
In winter the storms came early and the sea threw spray as high as the gallery rail, but the \
light never failed, because she cleaned the lens each morning and kept spare wicks in a tin box.";

/// Which KV cache modes to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KvMode {
    /// Cache on and off.
    Both,
    /// Cache on only.
    On,
    /// Cache off only.
    Off,
}

/// Arguments of `nanotensor bench-model`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model file (GGUF). Default: $NANOTENSOR_MODEL, $NANOTENSOR_MODELS_DIR or ./models.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backend to measure (default: every backend compiled in).
    #[arg(long)]
    pub backend: Option<String>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Prompt length of the prefill measurement.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Decode steps measured after the prompt.
    #[arg(long, default_value_t = 64)]
    pub decode_tokens: usize,
    /// KV cache modes to measure.
    #[arg(long, value_enum, default_value = "both")]
    pub kv_cache: KvMode,
    /// Runs per configuration; medians are reported.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Untimed runs per configuration before the timed ones (first-touch of buffers, waking
    /// the workers, warming the caches; llama-bench does one).
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Skip the read-bandwidth probe (the bandwidth and fraction fields are then null).
    #[arg(long)]
    pub no_bandwidth_probe: bool,
    /// Buffer of the read-bandwidth probe; it must be much larger than the last-level cache.
    #[arg(long, value_parser = parse_bytes, default_value = DEFAULT_PROBE_BYTES_TEXT)]
    pub probe_bytes: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub int8: Int8Args,
    #[command(flatten)]
    pub weights: WeightArgs,
}

/// One measured configuration.
#[derive(Clone, Debug)]
struct Row {
    backend: &'static str,
    threads: usize,
    kv_cache: bool,
    prefill: f64,
    decode: f64,
    weights_bytes: usize,
    /// The token embedding's bytes, borrowed from the file (counted in `weights_bytes`).
    embedding_bytes: usize,
    /// The weights' bytes that are the file's storage, shared (counted in `weights_bytes`).
    shared_weights_bytes: usize,
    /// Whether the output head is the embedding's own bytes, counted once.
    head_shares_embedding: bool,
    /// The process's peak RSS right after this backend's load: the peak of the whole run so
    /// far, so it measures this load alone only for the first backend of a run.
    load_peak_rss_bytes: Option<u64>,
    /// The weight rewrites the load applied (the backend's request, unless the model declines).
    transforms: nanotensor::LoadTransforms,
    kv_bytes: usize,
    /// Bytes one decode step reads (cache on only).
    decode_bytes: Option<f64>,
}

impl Row {
    /// Decode traffic in decimal GB/s: bytes per step × steps per second.
    fn decode_gb_per_s(&self) -> Option<f64> {
        self.decode_bytes.map(|b| b * self.decode / 1e9)
    }
}

/// Runs `nanotensor bench-model`.
pub fn run(args: Args) -> Result<()> {
    if args.prompt_tokens == 0 || args.decode_tokens == 0 || args.repeat == 0 {
        return Err(Error::invalid_arg(
            "bench-model",
            "--prompt-tokens, --decode-tokens and --repeat must be at least 1",
        ));
    }
    let kinds = match &args.backend {
        Some(name) => vec![BackendKind::parse(name)?],
        // bf16 weights are the blocked backend's: the default list is then that backend.
        None if args.weights.dtype != WeightDType::F32 => vec![BackendKind::parse("blocked")?],
        None => BackendKind::compiled(),
    };
    // The same options for every backend, validated before any model work.
    let mut opts = backend_options(args.threads, &args.int8)?;
    args.weights.apply(&kinds, &mut opts)?;
    if !args.no_bandwidth_probe {
        check_probe_budget(args.probe_bytes)?;
    }
    let file = open_model(args.model.as_deref())?;
    let base = file.tokenizer.encode(BENCH_TEXT);
    let prompt: Vec<u32> = base
        .iter()
        .copied()
        .cycle()
        .take(args.prompt_tokens)
        .collect();
    let modes: &[bool] = match args.kv_cache {
        KvMode::Both => &[true, false],
        KvMode::On => &[true],
        KvMode::Off => &[false],
    };
    let mut rows = Vec::new();
    for &kind in &kinds {
        rows.extend(with_backend(
            kind,
            opts,
            Bench {
                args: &args,
                gguf: &file.gguf,
                prompt: &prompt,
                modes,
            },
        )?);
    }
    // The probe runs after every model is dropped, once per thread count among the rows.
    let mut probes: Vec<ReadBandwidth> = Vec::new();
    if !args.no_bandwidth_probe {
        for r in &rows {
            if r.decode_bytes.is_some() && !probes.iter().any(|p| p.threads == r.threads) {
                probes.push(probe(args.probe_bytes, r.threads, DEFAULT_PASSES)?);
            }
        }
    }
    let bandwidth = |threads: usize| {
        probes
            .iter()
            .find(|p| p.threads == threads)
            .map(|p| p.gb_per_s)
    };
    let fraction = |r: &Row| Some(r.decode_gb_per_s()? / bandwidth(r.threads)?);
    let ratio = |backend: &str| {
        let on = rows.iter().find(|r| r.backend == backend && r.kv_cache)?;
        let off = rows.iter().find(|r| r.backend == backend && !r.kv_cache)?;
        Some(on.decode / off.decode)
    };
    if args.json {
        let results: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "backend": r.backend,
                    "threads": r.threads,
                    "kv_cache": r.kv_cache,
                    "prefill_tokens_per_s": r.prefill,
                    "decode_tokens_per_s": r.decode,
                    "weights_bytes": r.weights_bytes,
                    "embedding_bytes": r.embedding_bytes,
                    "shared_weights_bytes": r.shared_weights_bytes,
                    "head_shares_embedding": r.head_shares_embedding,
                    "load_peak_rss_bytes": r.load_peak_rss_bytes,
                    "load_transforms": transforms_json(r.transforms),
                    "kv_cache_bytes": r.kv_bytes,
                    "decode_bytes_per_token": r.decode_bytes,
                    "decode_gb_per_s": r.decode_gb_per_s(),
                    "read_bandwidth_gb_per_s": r.decode_bytes.and(bandwidth(r.threads)),
                    "decode_bandwidth_fraction": fraction(r),
                })
            })
            .collect();
        let mut ratios = serde_json::Map::new();
        for r in &rows {
            if let Some(x) = ratio(r.backend) {
                ratios.insert(r.backend.to_string(), json!(x));
            }
        }
        print_json(&with_all_settings(
            json!({
                "prompt_tokens": args.prompt_tokens,
                "dtype": args.weights.name(),
                "file_bytes": file.gguf.file_size(),
                "tensor_bytes": file.gguf.tensor_bytes(),
                "decode_tokens": args.decode_tokens,
                "repeat": args.repeat,
                "warmup": args.warmup,
                "results": results,
                "bandwidth_probes": probes.iter().map(probe_json).collect::<Vec<_>>(),
                "kv_off_over_on_decode_time": ratios,
            }),
            &opts,
        ));
    } else {
        let mut table = vec![vec![
            "backend".to_string(),
            "threads".into(),
            "KV cache".into(),
            format!("prefill tok/s (pp{})", args.prompt_tokens),
            format!("decode tok/s (tg{})", args.decode_tokens),
            "weights".into(),
            "KV buffers".into(),
        ]];
        for r in &rows {
            table.push(vec![
                r.backend.into(),
                r.threads.to_string(),
                if r.kv_cache { "on" } else { "off" }.into(),
                format!("{:.1}", r.prefill),
                format!("{:.1}", r.decode),
                nanotensor::error::human_bytes(r.weights_bytes as u64),
                nanotensor::error::human_bytes(r.kv_bytes as u64),
            ]);
        }
        print_table(&table);
        for &kind in &kinds {
            if let Some(l) = settings_label(kind, &opts) {
                // The settings asked for; the rewrites a model declines are not applied.
                match rows.iter().find(|r| r.backend == kind.name()) {
                    Some(r) => {
                        println!("{kind}: {l} (at load: {})", transforms_label(r.transforms))
                    }
                    None => println!("{kind}: {l}"),
                }
            }
        }
        for r in &rows {
            let Some(bytes) = r.decode_bytes else {
                continue;
            };
            let mut line = format!(
                "{}, {} thread{}: decode reads {}/token, {:.2} GB/s",
                r.backend,
                r.threads,
                if r.threads == 1 { "" } else { "s" },
                nanotensor::error::human_bytes(bytes.round() as u64),
                r.decode_gb_per_s().unwrap_or(0.0)
            );
            if let (Some(f), Some(bw)) = (fraction(r), bandwidth(r.threads)) {
                line += &format!(" = {:.0}% of the {bw:.2} GB/s read bandwidth", 100.0 * f);
            }
            println!("{line}");
        }
        if let Some(p) = probes.first() {
            println!(
                "(read bandwidth: sum over a {} buffer, best of {} passes, per thread count)",
                nanotensor::error::human_bytes(p.bytes as u64),
                p.passes
            );
        }
        let mut seen = Vec::new();
        for r in &rows {
            if seen.contains(&r.backend) {
                continue;
            }
            seen.push(r.backend);
            if let Some(x) = ratio(r.backend) {
                println!(
                    "{}: decoding {} tokens takes {x:.1}× as long without the KV cache",
                    r.backend, args.decode_tokens
                );
            }
        }
    }
    Ok(())
}

struct Bench<'a> {
    args: &'a Args,
    gguf: &'a nanotensor::gguf::GgufFile,
    prompt: &'a [u32],
    modes: &'a [bool],
}

impl BackendVisitor for Bench<'_> {
    type Output = Vec<Row>;

    fn visit<B: Backend>(self, backend: B) -> Result<Vec<Row>> {
        let (name, threads) = (backend.name(), backend.threads());
        let model = Llama::load(backend, self.gguf)?;
        let load_peak_rss_bytes = super::model_io::peak_rss_bytes();
        let mut rows = Vec::new();
        for &kv_cache in self.modes {
            let opts = GenerateOptions {
                // The first token comes out of the prefill; then `decode_tokens` decode steps.
                max_new_tokens: self.args.decode_tokens + 1,
                kv_cache,
                stop: StopAt::Never,
                ..Default::default()
            };
            for _ in 0..self.args.warmup {
                generate(&model, self.prompt, &opts, |_| Ok(()))?;
            }
            let (mut pre, mut dec) = (Vec::new(), Vec::new());
            let mut kv_bytes = 0;
            for _ in 0..self.args.repeat {
                let g = generate(&model, self.prompt, &opts, |_| Ok(()))?;
                pre.push(g.stats.prefill_tokens_per_s);
                dec.push(g.stats.decode_tokens_per_s);
                kv_bytes = g.stats.kv_cache_bytes;
            }
            eprintln!(
                "{name}, KV cache {}: prefill {:.1} tok/s, decode {:.1} tok/s",
                if kv_cache { "on" } else { "off" },
                median(&mut pre),
                median(&mut dec)
            );
            rows.push(Row {
                backend: name,
                threads,
                kv_cache,
                prefill: median(&mut pre),
                decode: median(&mut dec),
                weights_bytes: model.weights_bytes(),
                embedding_bytes: model.embedding_bytes(),
                shared_weights_bytes: model.shared_weights_bytes(),
                head_shares_embedding: model.head_shares_embedding(),
                load_peak_rss_bytes,
                transforms: model.transforms(),
                kv_bytes,
                decode_bytes: kv_cache.then(|| {
                    model.decode_bytes_per_token(self.prompt.len(), self.args.decode_tokens)
                }),
            });
        }
        Ok(rows)
    }
}
