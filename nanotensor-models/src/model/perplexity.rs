//! Perplexity with llama.cpp's `llama-perplexity` method, so figures compare with its output.
//!
//! The token stream is cut into `⌊n_tokens / n_ctx⌋` chunks of `n_ctx` tokens (the remainder is
//! dropped). Each chunk is evaluated on its own, from an empty KV cache, as one batch. Only the
//! second half is scored, so every scored token has at least `n_ctx / 2` tokens of context: the
//! logits at positions `n_ctx/2 ..= n_ctx − 2` predict tokens `n_ctx/2 + 1 ..= n_ctx − 1`.
//!
//! `PPL = exp(mean over all scored tokens of −log p(token | its prefix))`.
//!
//! A model whose vocabulary asks for a BOS token (`add_bos_token`, e.g. Gemma 3) is fed as
//! llama.cpp feeds it: the text is tokenized with BOS in front, and the first token of every
//! chunk is replaced by BOS, so each chunk starts as the model saw sequences start in training
//! ([`PerplexityInput::new`], [`perplexity_with`]). A model that does not ask for one (SmolLM2)
//! gets the plain tokens.

use crate::model::forward::Logits;
use crate::model::ops::nll;
use crate::model::transformer::Llama;
use crate::model::{seconds_since, start_timer};
use crate::tokenizer::Tokenizer;
use nanotensor_core::backend::Backend;
use nanotensor_core::error::{Error, Result};

const OP: &str = "perplexity";

/// The result of [`perplexity`].
#[derive(Clone, Debug, PartialEq)]
pub struct PerplexityReport {
    /// `exp(mean_nll)`.
    pub ppl: f64,
    /// Mean negative log-likelihood (nats per token).
    pub mean_nll: f64,
    /// Chunks evaluated.
    pub chunks: usize,
    /// Tokens scored: `chunks · (n_ctx − 1 − n_ctx/2)`.
    pub tokens_scored: usize,
    /// Context length per chunk.
    pub n_ctx: usize,
    /// Wall time of the evaluation.
    pub seconds: f64,
}

/// A text tokenized as llama.cpp's `llama-perplexity` tokenizes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerplexityInput {
    /// The ids: [`Tokenizer::encode_prompt`] (BOS first) when the model asks for BOS,
    /// [`Tokenizer::encode`] otherwise.
    pub tokens: Vec<u32>,
    /// The id that replaces the first token of every chunk: the BOS id when the model asks
    /// for BOS ([`Tokenizer::add_bos`]), `None` otherwise.
    pub chunk_bos: Option<u32>,
}

impl PerplexityInput {
    /// Tokenizes `text` (the caller strips a trailing newline, as llama.cpp does) for
    /// [`perplexity_with`].
    pub fn new(tokenizer: &Tokenizer, text: &str) -> Self {
        let chunk_bos = tokenizer.bos().filter(|_| tokenizer.add_bos());
        let tokens = if chunk_bos.is_some() {
            tokenizer.encode_prompt(text)
        } else {
            tokenizer.encode(text)
        };
        PerplexityInput { tokens, chunk_bos }
    }
}

/// Perplexity of `model` on `tokens` with chunks of `n_ctx` tokens, each evaluated as it is;
/// `progress(done, total)` is called after each chunk. [`perplexity_with`] without a chunk BOS.
///
/// # Errors
/// Those of [`perplexity_with`].
pub fn perplexity<B: Backend>(
    model: &Llama<B>,
    tokens: &[u32],
    n_ctx: usize,
    progress: impl FnMut(usize, usize),
) -> Result<PerplexityReport> {
    perplexity_with(model, tokens, n_ctx, None, progress)
}

/// Perplexity of `model` on `tokens` with chunks of `n_ctx` tokens; with `chunk_bos` the first
/// token of every chunk is replaced by that id before it is evaluated (llama.cpp's handling of
/// a model that asks for BOS; [`PerplexityInput`] gives both arguments). `progress(done,
/// total)` is called after each chunk.
///
/// # Errors
/// `n_ctx < 4` or fewer than `n_ctx` tokens ([`Error::InvalidArgument`]); `n_ctx` beyond the
/// model's context ([`Error::ContextOverflow`]); token ids (`chunk_bos` included) outside the
/// vocabulary; the backend's errors.
pub fn perplexity_with<B: Backend>(
    model: &Llama<B>,
    tokens: &[u32],
    n_ctx: usize,
    chunk_bos: Option<u32>,
    mut progress: impl FnMut(usize, usize),
) -> Result<PerplexityReport> {
    if n_ctx < 4 {
        return Err(Error::invalid_arg(
            OP,
            format!("context {n_ctx} is too short (at least 4)"),
        ));
    }
    let chunks = tokens.len() / n_ctx;
    if chunks == 0 {
        return Err(Error::invalid_arg(
            OP,
            format!("{} tokens do not fill one chunk of {n_ctx}", tokens.len()),
        ));
    }
    let vocab = model.config().vocab_size;
    let first = n_ctx / 2;
    let t0 = start_timer();
    let mut state = model.new_state(n_ctx)?;
    let mut sum = 0.0f64;
    let mut scored = 0usize;
    let mut input = Vec::with_capacity(n_ctx);
    for (c, chunk) in tokens.chunks_exact(n_ctx).enumerate() {
        state.reset();
        input.clear();
        input.extend_from_slice(chunk);
        if let Some(bos) = chunk_bos {
            input[0] = bos;
        }
        let logits = model.forward(&mut state, &input, Logits::From(first))?;
        for j in first..n_ctx - 1 {
            let row = &logits[(j - first) * vocab..(j - first + 1) * vocab];
            sum += nll(row, chunk[j + 1] as usize);
            scored += 1;
        }
        progress(c + 1, chunks);
    }
    let mean_nll = sum / scored as f64;
    Ok(PerplexityReport {
        ppl: mean_nll.exp(),
        mean_nll,
        chunks,
        tokens_scored: scored,
        n_ctx,
        seconds: seconds_since(t0),
    })
}
