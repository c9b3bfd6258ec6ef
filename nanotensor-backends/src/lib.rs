//! NanoTensor backends, one module per cargo feature.
//!
//! ## Features
//! - `naive` (default): [`naive::NaiveBackend`], the "scar" — textbook loops, one thread, the
//!   correctness oracle and the baseline of every benchmark.
//! - `blocked` or `int8`: [`flash`], tiled attention with an online softmax (FlashAttention), used
//!   by those backends for `AttentionAlgo::Flash`.

#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod flash;
#[cfg(feature = "naive")]
pub mod naive;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod threads;
