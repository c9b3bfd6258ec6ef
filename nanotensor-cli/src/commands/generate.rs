//! `nanotensor generate`: continue a prompt with the model (LLaMA or Gemma 3), streaming tokens to
//! stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use nanotensor::model::{generate, GenerateOptions, Generation, Llama, SamplerConfig, StopAt};
use nanotensor::{Backend, Error, Result};
use nanotensor_backends::{with_backend, BackendVisitor};
use serde_json::json;

use super::model_io::{
    default_model_backend, open_model, peak_rss_bytes, read_utf8_file, ModelFile,
};
use crate::output::{
    backend_choice_with, backend_help, print_json, settings_label, transforms_json,
    transforms_label, with_settings, Int8Args, WeightArgs,
};

/// Arguments of `nanotensor generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model file (GGUF). Default: $NANOTENSOR_MODEL, $NANOTENSOR_MODELS_DIR or ./models.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Text to continue (raw completion, no chat template; BOS first when the model asks for it).
    #[arg(long, required_unless_present = "prompt_file")]
    pub prompt: Option<String>,
    /// Read the prompt from this UTF-8 file instead, verbatim (a final newline included).
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_file: Option<PathBuf>,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    #[arg(long, default_value = default_model_backend(), help = backend_help())]
    pub backend: String,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Sampling temperature; 0 is greedy (arg-max, ties to the lowest id).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Sample only among the K most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample only from the smallest set of tokens with probability mass ≥ P, P in (0, 1].
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f32>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Recompute K and V of the whole prefix at every step instead of caching them.
    #[arg(long)]
    pub no_kv_cache: bool,
    /// Keep generating after the end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Print one JSON object at the end instead of streaming text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub int8: Int8Args,
    #[command(flatten)]
    pub weights: WeightArgs,
}

/// Runs `nanotensor generate`.
pub fn run(args: Args) -> Result<()> {
    // Cheap checks first, before the model is touched.
    let (kind, mut opts) = backend_choice_with(&args.backend, args.threads, &args.int8)?;
    args.weights.apply(&[kind], &mut opts)?;
    let prompt = match (&args.prompt, &args.prompt_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => read_utf8_file("generate", path)?,
        // clap requires one of the two.
        (None, None) => String::new(),
    };
    if prompt.is_empty() {
        return Err(Error::invalid_arg("generate", "the prompt is empty"));
    }
    if args.max_tokens == 0 {
        return Err(Error::invalid_arg(
            "generate",
            "--max-tokens must be at least 1",
        ));
    }
    let sampler = SamplerConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
    };
    sampler.validate()?;

    let file = open_model(args.model.as_deref())?;
    // BOS first when the model asks for it (`add_bos_token`), as llama.cpp feeds a prompt.
    let prompt_ids = file.tokenizer.encode_prompt(&prompt);
    if prompt_ids.is_empty() {
        return Err(Error::invalid_arg(
            "generate",
            "the prompt encodes to no tokens",
        ));
    }
    let context = nanotensor::model::LlamaConfig::from_gguf(&file.gguf)?.context_length;
    let needed = prompt_ids.len().saturating_add(args.max_tokens);
    if needed > context {
        return Err(Error::ContextOverflow {
            op: "generate",
            needed,
            capacity: context,
            detail: format!(
                " (prompt {} tokens + --max-tokens {})",
                prompt_ids.len(),
                args.max_tokens
            ),
        });
    }
    let gen_opts = GenerateOptions {
        max_new_tokens: args.max_tokens,
        kv_cache: !args.no_kv_cache,
        stop: if args.ignore_eos {
            StopAt::Never
        } else {
            StopAt::EndOfGeneration
        },
        sampler,
    };
    let t0 = Instant::now();
    let out = with_backend(
        kind,
        opts,
        Run {
            args: &args,
            prompt: &prompt,
            file: &file,
            prompt_ids: &prompt_ids,
            opts: gen_opts,
        },
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    let g = &out.generation;
    let shown = visible_ids(&g.ids, g.stopped);
    let s = &g.stats;
    if args.json {
        print_json(&with_settings(
            json!({
                "model": file.path.display().to_string(),
                "backend": out.backend,
                "threads": out.threads,
                "dtype": args.weights.name(),
                "kv_cache": !args.no_kv_cache,
                "load_transforms": transforms_json(out.transforms),
                "prompt": prompt,
                "prompt_ids": prompt_ids,
                "ids": g.ids,
                "text": file.tokenizer.decode(shown)?,
                "stopped_at_eos": g.stopped,
                "temperature": args.temperature,
                "top_k": args.top_k,
                "top_p": args.top_p,
                "seed": args.seed,
                "prompt_tokens": s.prompt_tokens,
                "generated_tokens": s.generated_tokens,
                "load_seconds": out.load_seconds,
                "prefill_seconds": s.prefill_seconds,
                "decode_seconds": s.decode_seconds,
                "seconds": seconds,
                "prefill_tokens_per_s": s.prefill_tokens_per_s,
                "decode_tokens_per_s": s.decode_tokens_per_s,
                "weights_bytes": s.weights_bytes,
                "kv_cache_bytes": s.kv_cache_bytes,
                "file_bytes": file.gguf.file_size(),
                "tensor_bytes": file.gguf.tensor_bytes(),
                "embedding_bytes": out.embedding_bytes,
                "shared_weights_bytes": out.shared_weights_bytes,
                "head_shares_embedding": out.head_shares_embedding,
                "load_peak_rss_bytes": out.load_peak_rss_bytes,
            }),
            kind,
            &opts,
        ));
    } else {
        eprintln!(
            "\n[{} backend{}, {} threads, KV cache {}] load {:.2} s | prefill {} tokens {:.1} tok/s | \
             decode {} tokens {:.1} tok/s | weights {} | KV {}",
            out.backend,
            settings_label(kind, &opts).map_or(String::new(), |l| format!(
                " ({l}; applied: {})",
                transforms_label(out.transforms)
            )),
            out.threads,
            if args.no_kv_cache { "off" } else { "on" },
            out.load_seconds,
            s.prompt_tokens,
            s.prefill_tokens_per_s,
            s.generated_tokens.saturating_sub(1),
            s.decode_tokens_per_s,
            nanotensor::error::human_bytes(s.weights_bytes as u64),
            nanotensor::error::human_bytes(s.kv_cache_bytes as u64),
        );
    }
    Ok(())
}

/// The generated ids that become text: all of them but a final stop token.
fn visible_ids(ids: &[u32], stopped: bool) -> &[u32] {
    if stopped {
        &ids[..ids.len() - 1]
    } else {
        ids
    }
}

struct Output {
    backend: &'static str,
    threads: usize,
    transforms: nanotensor::LoadTransforms,
    load_seconds: f64,
    /// The process's peak RSS right after the load ([`peak_rss_bytes`]).
    load_peak_rss_bytes: Option<u64>,
    /// Bytes of the token embedding, borrowed from the file ([`Llama::embedding_bytes`]).
    embedding_bytes: usize,
    /// Bytes of the weights that are the file's storage, shared ([`Llama::shared_weights_bytes`]).
    shared_weights_bytes: usize,
    /// Whether the output head is the embedding's own bytes ([`Llama::head_shares_embedding`]).
    head_shares_embedding: bool,
    generation: Generation,
}

struct Run<'a> {
    args: &'a Args,
    prompt: &'a str,
    file: &'a ModelFile,
    prompt_ids: &'a [u32],
    opts: GenerateOptions,
}

impl BackendVisitor for Run<'_> {
    type Output = Output;

    fn visit<B: Backend>(self, backend: B) -> Result<Output> {
        let (name, threads) = (backend.name(), backend.threads());
        let t0 = Instant::now();
        let model = Llama::load(backend, &self.file.gguf)?;
        let load_seconds = t0.elapsed().as_secs_f64();
        let load_peak_rss_bytes = peak_rss_bytes();
        let stream = !self.args.json;
        let mut decoder = self.file.tokenizer.stream_decoder();
        let stop: &[u32] = match self.opts.stop {
            StopAt::EndOfGeneration => model.end_of_generation(),
            StopAt::Token(ref t) => std::slice::from_ref(t),
            StopAt::Never => &[],
        };
        let mut stdout = std::io::stdout().lock();
        let io_err = |e: std::io::Error| Error::Io {
            op: "generate",
            path: "<stdout>".into(),
            source: e,
        };
        if stream {
            write!(stdout, "{}", self.prompt).map_err(io_err)?;
            stdout.flush().map_err(io_err)?;
        }
        let generation = generate(&model, self.prompt_ids, &self.opts, |id| {
            if stream && !stop.contains(&id) {
                let piece = decoder.push(id)?;
                write!(stdout, "{piece}").map_err(io_err)?;
                stdout.flush().map_err(io_err)?;
            }
            Ok(())
        })?;
        if stream {
            writeln!(stdout, "{}", decoder.finish()).map_err(io_err)?;
        }
        Ok(Output {
            backend: name,
            threads,
            transforms: model.transforms(),
            load_seconds,
            load_peak_rss_bytes,
            embedding_bytes: model.embedding_bytes(),
            shared_weights_bytes: model.shared_weights_bytes(),
            head_shares_embedding: model.head_shares_embedding(),
            generation,
        })
    }
}
