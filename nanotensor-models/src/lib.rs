//! # NanoTensor models
//!
//! Everything about model files and models, over any `nanotensor_core::Backend`:
//!
//! - [`gguf`]: the GGUF model-file reader (memory-mapped, every size validated with checked
//!   arithmetic before a byte is handed out) and dequantization of its block formats;
//!   [`model_path::find_model`] locates the model file ([`model_path::find_known_model`] any
//!   model the project fetches);
//! - [`tokenizer`]: the tokenizers (byte-level BPE and SentencePiece-style from a GGUF vocabulary,
//!   WordPiece from a `tokenizer.json`);
//! - [`model`]: the LLaMA forward pass, KV cache, sampling, generation and perplexity;
//! - [`safetensors`]: the safetensors model-file reader (memory-mapped, validated by the
//!   `safetensors` crate);
//! - [`encoder`]: sentence embeddings with a BERT encoder ([`Embedder`]).
//!
//! Errors are the core's [`nanotensor_core::Error`] (its file and model variants), so `?` works
//! across the crates.

pub mod encoder;
pub mod gguf;
pub mod model;
pub mod model_path;
pub mod safetensors;
pub mod tokenizer;

pub use encoder::Embedder;
pub use gguf::GgufFile;
pub use model::{generate, perplexity, GenerateOptions, Llama, StopAt};
pub use tokenizer::Tokenizer;
