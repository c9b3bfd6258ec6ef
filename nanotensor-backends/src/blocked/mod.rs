//! The blocked backend: BLAS-class matrix products in the Goto/BLIS structure.
//!
//! * [`gemm`] — the crate's one loop nest driver (tasks, LOOP 5 … LOOP 1), generic over a
//!   [`kernel::GemmKernel`]: the f32/f64 kernels here and the int8 kernels of `crate::int8`
//!   (through their tile hook) both run on it;
//! * [`pack`] — packing of A and B blocks into micro-panels;
//! * [`archparam`] — the cache blocks `mc`, `kc`, `nc`, with the reasoning;
//! * [`kernel`] — the microkernels (AVX-512, AVX2+FMA, portable, wasm32 simd128) and `detect()`;
//! * `gemv` — the skinny decode path (`m ≤ 8`) that streams a prepared weight once;
//! * `attention` — the materialised attention algorithm on these kernels, and [`float_ops`] —
//!   softmax and attention as both the blocked and the int8 backend run them.
//!
//! With only the `int8` feature, the GEMM machinery (`archparam`, `gemm`, `kernel`, `pack`) and
//! the float operations are compiled for the int8 backend, but not the blocked backend itself
//! (`BlockedBackend`, `gemv`: feature `blocked`).
//!
//! Every element type has a fast path through the same driver: `f32` and `f64` their detected
//! SIMD kernels; `bf16` the AVX512-BF16 dot-product kernel where it is fast; `f16` (and
//! `bf16` elsewhere) is widened to f32 while packing and runs the f32 kernel (`half16`).
//! `unsafe` lives in [`kernel`] (the SIMD code) and, for the raw view of C through which the
//! driver's tasks write disjoint tiles, in [`gemm`] and its operand module.

pub mod archparam;
mod attention;
#[cfg(feature = "blocked")]
mod backend;
pub mod float_ops;
pub mod gemm;
#[cfg(feature = "blocked")]
pub mod gemv;
#[cfg(feature = "blocked")]
pub mod half16;
pub mod kernel;
mod operands;
pub mod pack;

#[cfg(feature = "blocked")]
pub use backend::{BlockedBackend, BlockedWeight};
#[cfg(feature = "blocked")]
pub use half16::{Bf16Preference, HalfKernel};
