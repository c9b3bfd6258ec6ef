//! Shared pieces of the NanoTensor criterion benchmarks (`cargo bench -p nanotensor-benches`).
//!
//! Every bench group runs each backend compiled into this build side by side, on named,
//! realistic shapes (the decode matvec and prefill of SmolLM2-135M, square sizes, attention at N),
//! and reports throughput as elements = floating-point (or integer) operations, so criterion's
//! "elem/s" reads as FLOP/s.

use nanotensor_backends::{BackendKind, BackendOptions};

/// The backends compiled into the benches, each with its default thread count (all cores) unless
/// `NANOTENSOR_BENCH_THREADS` says otherwise.
pub fn backends() -> Vec<(BackendKind, BackendOptions)> {
    let mut opts = BackendOptions::default();
    if let Some(t) = std::env::var("NANOTENSOR_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        opts.threads = t;
    }
    BackendKind::compiled()
        .into_iter()
        .map(|k| (k, opts))
        .collect()
}

/// A named matmul shape `m×k · k×n`.
#[derive(Clone, Copy, Debug)]
pub struct MatmulShape {
    /// Short name shown by criterion.
    pub name: &'static str,
    /// Rows of A.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of B.
    pub n: usize,
    /// Time `linear` with B prepared once, as a model layer runs.
    pub prepared: bool,
}

impl MatmulShape {
    /// `2·m·n·k` floating-point operations.
    pub fn flops(&self) -> u64 {
        2 * (self.m * self.n * self.k) as u64
    }
}

/// The shapes of the matmul benches.
pub const MATMUL_SHAPES: &[MatmulShape] = &[
    MatmulShape {
        name: "square128",
        m: 128,
        k: 128,
        n: 128,
        prepared: false,
    },
    MatmulShape {
        name: "square256",
        m: 256,
        k: 256,
        n: 256,
        prepared: false,
    },
    MatmulShape {
        name: "square512",
        m: 512,
        k: 512,
        n: 512,
        prepared: false,
    },
    MatmulShape {
        name: "square1024",
        m: 1024,
        k: 1024,
        n: 1024,
        prepared: false,
    },
    MatmulShape {
        name: "square2048",
        m: 2048,
        k: 2048,
        n: 2048,
        prepared: false,
    },
    // SmolLM2-135M: one decode token through the FFN up-projection and the LM head.
    MatmulShape {
        name: "decode_ffn_1x576x1536",
        m: 1,
        k: 576,
        n: 1536,
        prepared: true,
    },
    MatmulShape {
        name: "decode_lmhead_1x576x49152",
        m: 1,
        k: 576,
        n: 49152,
        prepared: true,
    },
    // A 128-token prompt through the same FFN projection.
    MatmulShape {
        name: "prefill_128x576x1536",
        m: 128,
        k: 576,
        n: 1536,
        prepared: true,
    },
];

/// Whether a backend should run a shape: the naive scar stops at 1024³ (one 2048³ product takes
/// it over a minute).
pub fn runs(kind: BackendKind, shape: &MatmulShape) -> bool {
    !(kind == BackendKind::Naive && shape.m * shape.n * shape.k > 1 << 30)
}
