//! # NanoTensor
//!
//! A transformer inference engine built from its own kernels. This core crate holds the pieces
//! every backend and the model share:
//!
//! - [`Tensor`]: owned, row-major, 64-byte-aligned storage, generic over [`Element`]
//!   (`f32`, `f64`, `bf16`, `f16`);
//! - [`Backend`]: the contract (matmul, softmax, attention, prepare/linear) that the backends in
//!   `nanotensor-backends` implement;
//! - [`attention`]: the attention specification and the memory arithmetic of each algorithm;
//! - [`reference`](mod@reference): float64 references and the NMSE metric the conformance tests use;
//! - [`quant`]: symmetric int8 quantization ([`QTensor`]) and its error report;
//! - [`gguf`]: the GGUF model-file reader (memory-mapped) and dequantization of its block
//!   formats; [`model_path::find_model`] locates the model file;
//! - [`model`]: the LLaMA forward pass over any backend, KV cache, sampling, generation and
//!   perplexity;
//! - [`tokenizer`]: the byte-level BPE tokenizer built from a GGUF vocabulary;
//! - [`Error`]: one error type; every public operation returns [`Result`].
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

pub mod attention;
pub mod backend;
pub mod element;
pub mod error;
pub mod gguf;
pub mod memory;
pub mod model;
pub mod model_path;
pub mod quant;
pub mod reference;
pub mod rng;
pub mod shape;
pub mod tensor;
pub mod tokenizer;

pub use gguf::GgufFile;
pub use model::{generate, GenerateOptions, Llama, StopAt};
pub use tokenizer::Tokenizer;

pub use attention::{
    AttentionAlgo, AttentionDims, AttentionPlan, AttentionSpec, Heads, HeadsLayout, HeadsMut,
};
pub use backend::{Backend, PreparedWeight};
pub use element::{DType, Element};
pub use error::{Error, Result};
pub use quant::{Granularity, QTensor, QuantReport};
pub use tensor::Tensor;

/// What a user of the library touches, in one import: `use nanotensor::prelude::*;`.
///
/// Tensors and the backend contract, attention specs and plans, the float64 references, and the
/// model path: the GGUF file, its tokenizer, the LLaMA model, generation and perplexity. The
/// backends themselves are in `nanotensor-backends` (`nanotensor_backends::DefaultBackend`,
/// `BlockedBackend`, `Int8Backend`, `NaiveBackend`, and `with_backend` for a run-time choice).
pub mod prelude {
    pub use crate::attention::{AttentionAlgo, AttentionPlan, AttentionSpec};
    pub use crate::backend::Backend;
    pub use crate::element::{DType, Element};
    pub use crate::error::{Error, Result};
    pub use crate::gguf::GgufFile;
    pub use crate::model::{generate, perplexity, GenerateOptions, Llama, SamplerConfig, StopAt};
    pub use crate::model_path::find_model;
    pub use crate::reference;
    pub use crate::tensor::Tensor;
    pub use crate::tokenizer::Tokenizer;
}
