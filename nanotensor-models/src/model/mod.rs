//! The decoder-only transformer (LLaMA, Gemma 3) and what runs it: the hyperparameters and
//! architecture hooks ([`config`]), the weights and their loading ([`transformer`]), the forward
//! pass ([`forward`]), the KV cache ([`kv_cache`]), the elementwise steps ([`ops`]), sampling
//! ([`sampler`]), the generation driver ([`generate`](mod@generate)) and perplexity
//! ([`perplexity`](mod@perplexity)).
//!
//! ```no_run
//! use nanotensor_models::gguf::GgufFile;
//! use nanotensor_models::model::{generate, GenerateOptions, Llama};
//! use nanotensor_models::tokenizer::Tokenizer;
//! # fn run<B: nanotensor_core::Backend>(backend: B) -> nanotensor_core::Result<()> {
//! let file = GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let tokenizer = Tokenizer::from_gguf(&file)?;
//! let model = Llama::load(backend, &file)?;
//! let prompt = tokenizer.encode("Once upon a time");
//! let mut text = tokenizer.stream_decoder();
//! // Stops at the model's end-of-generation tokens (or after 32 tokens).
//! let out = generate(&model, &prompt, &GenerateOptions::default(), |id| {
//!     print!("{}", text.push(id)?);
//!     Ok(())
//! })?;
//! println!("\n{:.1} tok/s", out.stats.decode_tokens_per_s);
//! # Ok(()) }
//! ```

pub mod config;
pub mod equalize;
pub mod forward;
pub mod generate;
pub mod kv_cache;
pub mod ops;
pub mod perplexity;
pub mod rotate;
pub mod sampler;
pub mod state;
mod stream;
pub mod transformer;

pub use config::{Activation, Architecture, RopeStyle, SlidingWindow, TransformerConfig};
pub use forward::Logits;
pub use generate::{generate, GenerateOptions, GenerateStats, Generation, StopAt};
pub use kv_cache::{KvCache, SlidingKvCache};
pub use perplexity::{perplexity, perplexity_with, PerplexityInput, PerplexityReport};
pub use transformer::{load_block, Llama, Transformer};

/// The LLaMA name of [`TransformerConfig`], which reads every supported architecture.
pub type LlamaConfig = TransformerConfig;
pub use sampler::{Sampler, SamplerConfig};
pub use state::State;

/// A start time for the timings in [`GenerateStats`] and [`PerplexityReport`]. `std` has no
/// clock on `wasm32-unknown-unknown` (`Instant::now` panics there), so timings read 0 in the
/// browser build; the caller can time with the page's clock instead.
pub(crate) fn start_timer() -> Option<std::time::Instant> {
    if cfg!(target_arch = "wasm32") {
        None
    } else {
        Some(std::time::Instant::now())
    }
}

/// Seconds since [`start_timer`] (0 without a clock).
pub(crate) fn seconds_since(t: Option<std::time::Instant>) -> f64 {
    t.map_or(0.0, |t| t.elapsed().as_secs_f64())
}
