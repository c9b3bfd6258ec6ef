//! # NanoTensor
//!
//! A transformer inference engine built from its own kernels, in three crates that this one
//! re-exports behind one import path:
//!
//! - `nanotensor-core` (the crate root here): [`Tensor`], element types, the [`Backend`]
//!   contract, [`attention`] arithmetic, [`quant`]ization, float64 [`reference`](mod@reference)s
//!   and the one [`Error`] type;
//! - `nanotensor-models`: [`gguf`] model files, [`tokenizer`]s, the [`model`] architectures,
//!   generation and perplexity;
//! - `nanotensor-backends` (as [`backends`]): `naive`, `blocked`, `int8`, one cargo feature each,
//!   enabled on that crate (`nanotensor-backends = { default-features = false, features =
//!   ["blocked"] }`); [`prelude`] re-exports those compiled in, and `DefaultBackend`, the fastest
//!   of them.
//!
//! ```
//! use nanotensor::{Tensor, reference};
//!
//! let a = Tensor::<f32>::from_slice(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let b = Tensor::<f32>::randn(&[2, 3], 1.0, 42)?;
//! let c = reference::matmul_f64(&a, &b)?;
//! assert_eq!(c.len(), 6);
//! # Ok::<(), nanotensor::Error>(())
//! ```

pub use nanotensor_backends as backends;
pub use nanotensor_core::*;
pub use nanotensor_models::{encoder, gguf, model, model_path, safetensors, tokenizer};
pub use nanotensor_models::{
    generate, perplexity, Embedder, GenerateOptions, GgufFile, Llama, StopAt, Tokenizer,
};

/// What a user of the library touches, in one import: `use nanotensor::prelude::*;`.
///
/// Tensors and the backend contract, attention specs and plans, the float64 references, the
/// model path (the GGUF file, its tokenizer, the LLaMA model, generation and perplexity) and the
/// backends compiled in: `DefaultBackend` (the fastest), each backend type, and
/// `with_backend` with its `BackendKind`/`BackendOptions`/`BackendVisitor` for a run-time choice.
pub mod prelude {
    pub use nanotensor_backends::prelude::*;
    pub use nanotensor_core::attention::{AttentionAlgo, AttentionPlan, AttentionSpec};
    pub use nanotensor_core::backend::Backend;
    pub use nanotensor_core::element::{DType, Element};
    pub use nanotensor_core::error::{Error, Result};
    pub use nanotensor_core::reference;
    pub use nanotensor_core::tensor::Tensor;
    pub use nanotensor_models::encoder::Embedder;
    pub use nanotensor_models::gguf::GgufFile;
    pub use nanotensor_models::model::{
        generate, perplexity, GenerateOptions, Llama, SamplerConfig, StopAt,
    };
    pub use nanotensor_models::model_path::find_model;
    pub use nanotensor_models::tokenizer::Tokenizer;
}

/// The README's Rust example runs as a doctest of this crate, so the first screen always works
/// (`scripts/test` runs it under each backend feature alone).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The examples of `docs/library.md`, run the same way.
#[cfg(doctest)]
#[doc = include_str!("../../docs/library.md")]
pub struct LibraryDoctests;
