//! NanoTensor backends, one module per cargo feature.
//!
//! ## Features
//! - `naive` (default): [`naive::NaiveBackend`], the "scar" — textbook loops, one thread, the
//!   correctness oracle and the baseline of every benchmark.
//! - `blocked` (default): [`blocked::BlockedBackend`] — Goto/BLIS cache-blocked GEMM with packed
//!   panels, runtime-selected SIMD microkernels (AVX-512, AVX2+FMA, portable, wasm32 simd128),
//!   a skinny decode path for prepared weights, and a worker pool.

#[cfg(feature = "blocked")]
pub mod blocked;
#[cfg(feature = "naive")]
pub mod naive;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod threads;
