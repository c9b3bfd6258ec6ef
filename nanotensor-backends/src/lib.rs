//! NanoTensor backends, one module per cargo feature.
//!
//! ## Features
//! - `naive` (default): [`naive::NaiveBackend`], the "scar" — textbook loops, one thread, the
//!   correctness oracle and the baseline of every benchmark.
//! - `blocked` (default): `blocked::BlockedBackend` — Goto/BLIS cache-blocked GEMM with packed
//!   panels, runtime-selected SIMD microkernels (AVX-512, AVX2+FMA, portable, wasm32 simd128),
//!   a skinny decode path for prepared weights, and a worker pool.
//! - `blocked` or `int8`: the rest of [`blocked`] — the one GEMM loop nest ([`blocked::gemm`]),
//!   packing and the kernel trait — which the int8 backend runs its kernels on.
//! - `blocked` or `int8`: [`flash`], tiled attention with an online softmax (FlashAttention), the
//!   `AttentionAlgo::Flash` path of those backends.
//!
//! - `int8`: [`int8::Int8Backend`] — symmetric int8 quantization (weights once at `prepare`,
//!   activations per call) with VNNI / AVX2 / portable integer microkernels.
//!
//! - `blocked` or `int8`: [`cpu`], the one detection of the CPU's instruction-set extensions
//!   that every SIMD path above decides from.
//!
//! [`select`] picks a backend by name at run time (`--backend`).

#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod blocked;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod cpu;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod flash;
#[cfg(feature = "int8")]
pub mod int8;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod multiversion;
#[cfg(feature = "naive")]
pub mod naive;
pub mod scales;
pub mod select;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod threads;

pub use scales::{ActGranularity, BlockLen, Granularity};
pub use select::{with_backend, BackendKind, BackendOptions, BackendVisitor};

/// The README's Rust example runs as a doctest of this crate, so the first screen always works.
#[cfg(all(doctest, feature = "naive"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
