//! NanoTensor backends, one module per cargo feature.
//!
//! ## Features
//! - `naive` (default): [`naive::NaiveBackend`], the "scar" — textbook loops, one thread, the
//!   correctness oracle and the baseline of every benchmark.
//! - `blocked` or `int8`: [`flash`], tiled attention with an online softmax (FlashAttention), used
//!   by those backends for `AttentionAlgo::Flash`.
//!
//! [`select`] picks a backend by name at run time (`--backend`).

#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod flash;
#[cfg(feature = "naive")]
pub mod naive;
pub mod select;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod threads;

pub use select::{with_backend, BackendKind, BackendOptions, BackendVisitor};

/// The README's Rust example runs as a doctest of this crate, so the first screen always works.
#[cfg(all(doctest, feature = "naive"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
