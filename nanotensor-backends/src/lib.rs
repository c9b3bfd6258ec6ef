//! NanoTensor backends, one module per cargo feature.
//!
//! ## Features
//! - `naive` (default): `NaiveBackend`, the "scar" — textbook loops, one thread, the
//!   correctness oracle and the baseline of every benchmark.
//! - `blocked` (default): `blocked::BlockedBackend` — Goto/BLIS cache-blocked GEMM with packed
//!   panels, runtime-selected SIMD microkernels (AVX-512, AVX2+FMA, portable, wasm32 simd128),
//!   a skinny decode path for prepared weights, and a worker pool.
//! - `blocked` or `int8`: the rest of `blocked` — the one GEMM loop nest (`blocked::gemm`),
//!   packing and the kernel trait — which the int8 backend runs its kernels on.
//! - `blocked` or `int8`: `flash`, tiled attention with an online softmax (FlashAttention), the
//!   `AttentionAlgo::Flash` path of those backends.
//!
//! - `int8`: `Int8Backend` — symmetric int8 quantization (weights once at `prepare`,
//!   activations per call) with VNNI / AVX2 / portable integer microkernels.
//!
//! - `quant` (needs `blocked`): `QuantBackend` — weights kept in GGUF's quantized block formats
//!   (Q4_0 … Q8_0, Q4_K, Q5_K, Q6_K) and multiplied as stored against activations quantized to
//!   8-bit blocks; its float operations run on the blocked backend.
//!
//! - `blocked` or `int8`: `cpu`, the one detection of the CPU's instruction-set extensions
//!   that every SIMD path above decides from.
//!
//! - every feature, native targets: [`bandwidth`], a STREAM-like probe of the memory read
//!   bandwidth, the limit a decode step runs against.
//!
//! [`select`] picks a backend by name at run time (`--backend`); [`prelude`] holds the backends
//! compiled in and `DefaultBackend`, the fastest of them. (Backend types are named here without
//! links: each exists only in a build with its feature.)

pub mod activation;
#[cfg(not(target_arch = "wasm32"))]
pub mod bandwidth;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod blocked;
pub mod cpu;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod flash;
pub mod hugebuf;
#[cfg(feature = "int8")]
pub mod int8;
pub mod multiversion;
#[cfg(feature = "naive")]
pub mod naive;
#[cfg(feature = "quant")]
pub mod quant;
pub mod scales;
#[macro_use]
pub mod select;
#[cfg(any(feature = "blocked", feature = "int8"))]
pub mod threads;

pub use scales::{ActGranularity, BlockLen, Granularity, Int8Options};
pub use select::{with_backend, BackendOptions, BackendVisitor, BuildBackend, WeightStorage};

// The backend registry: the one list of backends (see `select`). A new backend adds its module
// above, one line here, its cargo feature and one conformance line.
registry! {
    /// Textbook loops, one thread: the scar and the oracle (cargo feature `naive`).
    Naive => "naive", "naive", crate::naive::NaiveBackend, |_o| Vec::new();
    /// Cache-blocked, packed, SIMD, multi-threaded (cargo feature `blocked`).
    Blocked => "blocked", "blocked", crate::blocked::BlockedBackend, |o| o.blocked_weights.settings();
    /// Symmetric int8 quantization with integer kernels (cargo feature `int8`).
    Int8 => "int8", "int8", crate::int8::Int8Backend, |o| o.int8.settings();
    /// GGUF's quantized blocks multiplied as stored (cargo feature `quant`).
    Quant => "quant", "quant", crate::quant::QuantBackend, |_o| Vec::new();
}

#[cfg(feature = "blocked")]
pub use blocked::BlockedBackend;
#[cfg(feature = "int8")]
pub use int8::Int8Backend;
#[cfg(feature = "naive")]
pub use naive::NaiveBackend;
#[cfg(feature = "quant")]
pub use quant::QuantBackend;

/// The fastest backend compiled into this build, for code that should not name one:
/// `BlockedBackend` if the `blocked` feature is on, else `Int8Backend`, else `NaiveBackend`. Every backend has `new(threads) -> Result<Self>` and `Default` (one
/// worker per core), so `DefaultBackend::default()` compiles under any single backend feature.
#[cfg(feature = "blocked")]
pub type DefaultBackend = BlockedBackend;
/// The fastest backend compiled into this build (see the `blocked` build's docs).
#[cfg(all(feature = "int8", not(feature = "blocked")))]
pub type DefaultBackend = Int8Backend;
/// The fastest backend compiled into this build (see the `blocked` build's docs).
#[cfg(all(feature = "naive", not(feature = "blocked"), not(feature = "int8")))]
pub type DefaultBackend = NaiveBackend;

/// The backends compiled into this build and the run-time choice among them, for a glob import
/// (`nanotensor_core::prelude` re-exports it).
pub mod prelude {
    #[cfg(feature = "blocked")]
    pub use crate::BlockedBackend;
    #[cfg(any(feature = "naive", feature = "blocked", feature = "int8"))]
    pub use crate::DefaultBackend;
    #[cfg(feature = "int8")]
    pub use crate::Int8Backend;
    #[cfg(feature = "naive")]
    pub use crate::NaiveBackend;
    #[cfg(feature = "quant")]
    pub use crate::QuantBackend;
    pub use crate::{
        with_backend, BackendKind, BackendOptions, BackendVisitor, Int8Options, WeightStorage,
    };
}
