//! NanoTensor backends, one module per cargo feature.
//!
//! ## Features
//! - `naive` (default): [`naive::NaiveBackend`], the "scar" — textbook loops, one thread, the
//!   correctness oracle and the baseline of every benchmark.

#[cfg(feature = "int8")]
pub mod int8;
#[cfg(feature = "naive")]
pub mod naive;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod threads;
