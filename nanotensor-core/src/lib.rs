//! # NanoTensor core
//!
//! What a backend author needs, and nothing else: no file formats, no tokenizers, no models.
//!
//! - [`Tensor`]: owned, row-major, 64-byte-aligned storage, generic over [`Element`]
//!   (`f32`, `f64`, `bf16`, `f16`);
//! - [`Backend`]: the contract (matmul, softmax, attention, prepare/linear) that the backends in
//!   `nanotensor-backends` implement; it validates every call before the backend's code runs;
//! - [`attention`]: the attention specification and the memory arithmetic of each algorithm;
//! - [`reference`](mod@reference): float64 references and the NMSE metric the conformance tests use;
//! - [`blocks`]: weights in GGUF's quantized block formats ([`QuantFormat`], [`BlockWeight`]),
//!   which a backend may multiply as stored ([`Backend::prepare_blocks`]);
//! - [`quant`]: symmetric int8 quantization ([`QTensor`]) and its error report; [`clip`]: how a
//!   group's range is chosen (largest magnitude or MSE-optimal);
//! - [`Error`]: one error type for the whole engine; every public operation returns [`Result`].
//!
//! Model files, tokenizers and architectures live in `nanotensor-models`; the `nanotensor` crate
//! re-exports all of it behind one import path.
//!
//! ```
//! use nanotensor_core::{Tensor, reference};
//!
//! let a = Tensor::<f32>::from_slice(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let b = Tensor::<f32>::randn(&[2, 3], 1.0, 42)?;
//! let c = reference::matmul_f64(&a, &b)?;
//! assert_eq!(c.len(), 6);
//! # Ok::<(), nanotensor_core::Error>(())
//! ```

pub mod attention;
pub mod backend;
pub mod blocks;
pub mod clip;
pub mod element;
pub mod error;
pub mod memory;
pub mod quant;
pub mod reference;
pub mod rng;
pub mod shape;
pub mod tensor;

pub use attention::{
    AttentionAlgo, AttentionDims, AttentionPlan, AttentionSpec, Heads, HeadsLayout, HeadsMut,
};
pub use backend::{Backend, FillRows, LoadTransforms, PreparedWeight};
pub use blocks::{BlockWeight, QuantFormat, SharedBytes};
pub use clip::Clip;
pub use element::{DType, Element};
pub use error::{Error, Result};
/// The 16-bit float element types (from the `half` crate), so that users name them without a
/// dependency of their own.
pub use half::{bf16, f16};
pub use quant::{Granularity, QTensor, QuantReport};
pub use tensor::Tensor;
