//! The generation driver: prompt ids in, one sampled token at a time out.
//!
//! Prefill runs the whole prompt as one batch (rows = prompt tokens) and samples the first new
//! token from its last row. Each decode step then runs one token:
//!
//! - **KV cache on**: the new token alone goes through the model; attention reads the cached K
//!   and V of every earlier position. Cost per step ∝ model size (+ a context-length term).
//! - **KV cache off**: the cache is emptied and the whole sequence so far (prompt + generated)
//!   goes through the model again, and the last row's logits are used. Cost per step ∝ sequence
//!   length × model size — the redundancy a KV cache removes. Both modes compute the same
//!   function, so with the same sampler they produce the same tokens.

use crate::model::forward::Logits;
use crate::model::sampler::{Sampler, SamplerConfig};
use crate::model::transformer::Llama;
use crate::model::{seconds_since, start_timer};
use nanotensor_core::backend::Backend;
use nanotensor_core::error::{Error, Result};

const OP: &str = "generate";

/// Settings of one generation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Tokens to generate at most (≥ 1).
    pub max_new_tokens: usize,
    /// Keep K and V between steps (true) or recompute the whole prefix every step (false).
    pub kv_cache: bool,
    /// When to stop before `max_new_tokens`: by default at the model's end-of-generation ids.
    pub stop: StopAt,
    /// How the next token is chosen.
    pub sampler: SamplerConfig,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 32,
            kv_cache: true,
            stop: StopAt::EndOfGeneration,
            sampler: SamplerConfig::greedy(),
        }
    }
}

/// When a generation stops early (it always stops at [`GenerateOptions::max_new_tokens`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StopAt {
    /// After emitting one of the ids the model file declares as ending a generation
    /// ([`Llama::end_of_generation`]: its end-of-sequence and end-of-turn tokens).
    #[default]
    EndOfGeneration,
    /// After emitting this id.
    Token(u32),
    /// Never: always generate `max_new_tokens` (e.g. for benchmarks).
    Never,
}

impl StopAt {
    fn stops<B: Backend>(self, model: &Llama<B>, token: u32) -> bool {
        match self {
            StopAt::EndOfGeneration => model.end_of_generation().contains(&token),
            StopAt::Token(t) => t == token,
            StopAt::Never => false,
        }
    }
}

/// Timings and sizes of one generation.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (including a final stop token).
    pub generated_tokens: usize,
    /// Seconds of the prefill pass (prompt forward + first sample).
    pub prefill_seconds: f64,
    /// Seconds of every decode step after the first token.
    pub decode_seconds: f64,
    /// `prompt_tokens / prefill_seconds`.
    pub prefill_tokens_per_s: f64,
    /// `(generated_tokens − 1) / decode_seconds` (0 when only one token was generated).
    pub decode_tokens_per_s: f64,
    /// [`Llama::weights_bytes`].
    pub weights_bytes: usize,
    /// Bytes of the K/V buffers (the cache, or the per-step prefix recomputation when off).
    pub kv_cache_bytes: usize,
}

/// The tokens of one generation and how long it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Generated ids, in order (the prompt is not included).
    pub ids: Vec<u32>,
    /// Whether generation ended on a stop token ([`GenerateOptions::stop`]).
    pub stopped: bool,
    /// Timings and sizes.
    pub stats: GenerateStats,
}

/// Generates up to `opts.max_new_tokens` tokens after `prompt`, calling `on_token` with each id
/// as soon as it is chosen (for streaming output).
///
/// # Errors
/// An empty prompt or `max_new_tokens == 0` ([`Error::InvalidArgument`]); prompt + new tokens
/// beyond the model's context ([`Error::ContextOverflow`]); bad sampler settings; the model's and
/// the callback's errors.
pub fn generate<B: Backend>(
    model: &Llama<B>,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(Error::invalid_arg(OP, "the prompt has no tokens"));
    }
    if opts.max_new_tokens == 0 {
        return Err(Error::invalid_arg(OP, "max new tokens must be at least 1"));
    }
    let mut sampler = Sampler::new(opts.sampler)?;
    let context = model.config().context_length;
    let needed = prompt.len().saturating_add(opts.max_new_tokens);
    if needed > context {
        return Err(Error::ContextOverflow {
            op: OP,
            needed,
            capacity: context,
            detail: format!(
                " (prompt {} + max new tokens {})",
                prompt.len(),
                opts.max_new_tokens
            ),
        });
    }
    let mut state = model.new_state(needed)?;
    let mut seq = Vec::with_capacity(needed);
    seq.extend_from_slice(prompt);
    let mut ids = Vec::with_capacity(opts.max_new_tokens);

    // Prefill: the whole prompt as one batch.
    let t0 = start_timer();
    let logits = model.forward(&mut state, prompt, Logits::Last)?;
    let mut token = sampler.sample(logits)?;
    let prefill_seconds = seconds_since(t0);
    ids.push(token);
    seq.push(token);
    on_token(token)?;
    let mut stopped = opts.stop.stops(model, token);

    // Decode: one token per step.
    let t1 = start_timer();
    while !stopped && ids.len() < opts.max_new_tokens {
        let logits = if opts.kv_cache {
            model.forward(&mut state, &[token], Logits::Last)?
        } else {
            state.reset();
            model.forward(&mut state, &seq, Logits::Last)?
        };
        token = sampler.sample(logits)?;
        ids.push(token);
        seq.push(token);
        on_token(token)?;
        stopped = opts.stop.stops(model, token);
    }
    let decode_seconds = seconds_since(t1);
    let decode_steps = ids.len() - 1;
    let stats = GenerateStats {
        prompt_tokens: prompt.len(),
        generated_tokens: ids.len(),
        prefill_seconds,
        decode_seconds,
        prefill_tokens_per_s: rate(prompt.len(), prefill_seconds),
        decode_tokens_per_s: rate(decode_steps, decode_seconds),
        weights_bytes: model.weights_bytes(),
        kv_cache_bytes: state.kv_bytes(),
    };
    Ok(Generation {
        ids,
        stopped,
        stats,
    })
}

fn rate(n: usize, seconds: f64) -> f64 {
    if n == 0 || seconds <= 0.0 {
        0.0
    } else {
        n as f64 / seconds
    }
}
