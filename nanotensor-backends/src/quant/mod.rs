//! The quant backend: weights kept in GGUF's quantized block formats and multiplied as stored.
//!
//! # What it computes
//! A linear layer `y = x·Wᵀ` with `W: [n, k]` in a block format ([`QuantFormat`]):
//!
//! ```text
//! W[o, j] = d_blk · (q − offset)  [+ m_blk]            (the format's own dequantization)
//! x[r, j] ≈ da[r, b] · qa[r, j]                          (8-bit activation blocks of 32, per call)
//! y[r, o] = Σ_b da[r, b] · ( d·Σ_{j∈b} q·qa − d·offset·Σ_{j∈b} qa  [+ m·Σ_{j∈b} qa] )
//! ```
//!
//! every inner sum exact in `i32`, scaled and summed in f32 ([`kernel`]). The weight's bytes are
//! exactly the file's ([`Backend::prepare_blocks`]): no `f32` copy, no re-quantization — and,
//! when the caller shares the storage they lie in ([`BlockWeight::owner`]: a model's
//! memory-mapped file), no copy at all: the weight keeps a handle to the file's bytes.
//!
//! * [`Backend::prepare`] of a float matrix (any weight, any shape) quantizes it to `Q8_0`
//!   blocks, rows zero-padded to a multiple of 32 values, so that `linear` holds for every
//!   weight;
//! * `matmul`, `softmax` and `attention` have no weights to keep quantized: they run on the
//!   blocked backend's code (and its worker pool, which the quant products share).
//!
//! Accuracy: the activation blocks add a rounding error of at most half a step
//! (`max|x_b|/254`) per value; with the weights' own quantization taken as exact (it is the
//! model), results on Gaussian inputs are within NMSE ≈ 1e-5 of the f64 product of the
//! dequantized weight (the conformance bounds derive it per format).

pub mod act;
pub mod kernel;
pub mod layout;
pub mod matvec;
pub mod random;
pub mod tile;

use nanotensor_core::element::{f32_values, with_f32_out};

use nanotensor_core::attention::{AttentionAlgo, AttentionDims, AttentionPlan, AttentionSpec};
use nanotensor_core::shape::MatmulDims;
use nanotensor_core::{
    Backend, BlockWeight, DType, Element, Error, Heads, HeadsMut, PreparedWeight, QuantFormat,
    Result, SharedBytes, Tensor,
};

use crate::blocked::BlockedBackend;
use act::{QActs, QK};
use kernel::Kernel;

/// The quant backend. See the [module docs](self).
#[derive(Debug)]
pub struct QuantBackend {
    /// The float operations and the worker pool.
    blocked: BlockedBackend,
    kernel: Kernel,
}

/// Where a [`QuantWeight`]'s blocks live.
#[derive(Clone)]
enum Blocks {
    /// A copy the weight owns: quantized by [`Backend::prepare`], or copied from blocks handed
    /// over without a shared owner.
    Owned(Vec<u8>),
    /// The caller's storage, shared ([`BlockWeight::owner`]): for a model, the file's bytes.
    Shared(SharedBytes),
}

impl Blocks {
    fn bytes(&self) -> &[u8] {
        match self {
            Blocks::Owned(v) => v,
            Blocks::Shared(h) => (**h).as_ref(),
        }
    }
}

/// A weight in a block format: the stored blocks, row after row — owned, or shared with the
/// caller's storage ([`Backend::prepare_blocks`]).
#[derive(Clone)]
pub struct QuantWeight<T> {
    format: QuantFormat,
    /// `[out_features, in_features]`.
    shape: [usize; 2],
    row_bytes: usize,
    data: Blocks,
    _elem: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for QuantWeight<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantWeight")
            .field("format", &self.format)
            .field("shape", &self.shape)
            .field("bytes", &self.data.bytes().len())
            .field("shared", &self.is_shared())
            .finish()
    }
}

impl<T> QuantWeight<T> {
    /// The block format the weight is kept in.
    pub fn format(&self) -> QuantFormat {
        self.format
    }

    /// The blocks, `out_features` rows of [`Self::row_bytes`] bytes.
    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    /// Whether the blocks are the caller's storage, shared, rather than a copy.
    pub fn is_shared(&self) -> bool {
        matches!(self.data, Blocks::Shared(_))
    }

    /// Bytes of one row of blocks.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }
}

impl<T: Element> PreparedWeight for QuantWeight<T> {
    fn shape(&self) -> [usize; 2] {
        self.shape
    }

    /// The blocks' bytes: as many as the file's for a weight from [`Backend::prepare_blocks`]
    /// (shared or copied).
    fn size_bytes(&self) -> usize {
        self.data.bytes().len()
    }

    fn shared_storage(&self) -> Option<&[u8]> {
        match &self.data {
            Blocks::Shared(h) => Some((**h).as_ref()),
            Blocks::Owned(_) => None,
        }
    }
}

impl QuantBackend {
    /// A backend with `threads` workers and the best kernel of this CPU.
    ///
    /// # Errors
    /// Zero threads, or threads the OS refuses to start.
    pub fn new(threads: usize) -> Result<Self> {
        Ok(QuantBackend {
            blocked: BlockedBackend::new(threads)?,
            kernel: Kernel::best(crate::cpu::features()),
        })
    }

    /// Forces a kernel (for tests and benchmarks).
    ///
    /// # Errors
    /// [`Error::Unsupported`] when this CPU lacks its instruction set.
    pub fn with_kernel(mut self, kind: kernel::KernelKind) -> Result<Self> {
        self.kernel = Kernel::new(kind).ok_or_else(|| Error::Unsupported {
            op: "quant kernel",
            backend: "quant",
            reason: format!("this CPU does not support {}", kind.name()),
        })?;
        Ok(self)
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }
}

/// From this many activation rows on, a product decodes each weight row once into a tile
/// shared by every row ([`tile`]); below, each row is multiplied by the stored blocks directly
/// ([`matvec`]), decoding them per row but sparing the tile's decode and layout.
pub const TILE_MIN_ROWS: usize = 4;

/// Buffers a call quantizes into, kept per thread and reused (a decode step allocates nothing).
#[derive(Debug, Default)]
struct Scratch {
    acts: QActs,
    tile_acts: tile::TileActs,
    yt: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch (or a fresh one if it is already in use).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// A zeroed byte buffer of `len`, refused with [`Error::OutOfMemory`] rather than aborting.
fn try_bytes(len: usize) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        op: "prepare",
        bytes: len as u64,
    })?;
    Ok(v)
}

impl crate::select::BuildBackend for QuantBackend {
    fn build(opts: &crate::BackendOptions) -> Result<Self> {
        Self::new(opts.threads)
    }
}

impl Default for QuantBackend {
    /// One worker per available core (one thread if the OS refuses more).
    fn default() -> Self {
        Self::new(crate::threads::Pool::default_threads())
            .or_else(|_| Self::new(1))
            .expect("a one-thread pool starts no OS thread and cannot fail")
    }
}

impl Backend for QuantBackend {
    type Weight<T: Element> = QuantWeight<T>;

    fn name(&self) -> &'static str {
        "quant"
    }

    fn threads(&self) -> usize {
        self.blocked.threads()
    }

    fn matmul_kernel(&self, dtype: DType) -> Option<&'static str> {
        self.blocked.matmul_kernel(dtype)
    }

    fn attention_kernel(&self, dtype: DType, algo: AttentionAlgo) -> Option<&'static str> {
        self.blocked.attention_kernel(dtype, algo)
    }

    fn matmul_impl<T: Element>(
        &self,
        a: &Tensor<T>,
        b: &Tensor<T>,
        out: &mut Tensor<T>,
        d: &MatmulDims,
    ) -> Result<()> {
        self.blocked.matmul_impl(a, b, out, d)
    }

    fn softmax_impl<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        self.blocked.softmax_impl(x)
    }

    fn attention_plan_impl<T: Element>(
        &self,
        dims: &AttentionDims,
        spec: &AttentionSpec,
    ) -> Result<AttentionPlan> {
        self.blocked.attention_plan_impl::<T>(dims, spec)
    }

    fn attention_impl<T: Element>(
        &self,
        q: Heads<'_, T>,
        k: Heads<'_, T>,
        v: Heads<'_, T>,
        out: HeadsMut<'_, T>,
        dims: &AttentionDims,
        spec: &AttentionSpec,
        plan: &AttentionPlan,
    ) -> Result<()> {
        self.blocked.attention_impl(q, k, v, out, dims, spec, plan)
    }

    fn prepare_impl<T: Element>(&self, w: Tensor<T>, shape: [usize; 2]) -> Result<Self::Weight<T>> {
        let [n, k] = shape;
        let kp = k.div_ceil(QK) * QK;
        let row_bytes = kp / QK * QuantFormat::Q8_0.block_bytes();
        let total = row_bytes
            .checked_mul(n)
            .ok_or_else(|| Error::overflow("prepare", "weight", "Q8_0 bytes"))?;
        let mut data = try_bytes(total)?;
        let mut row = vec![0.0f32; kp];
        for (o, wr) in w.as_slice().chunks_exact(k).enumerate() {
            for (r, v) in row.iter_mut().zip(wr) {
                *r = v.as_f32();
            }
            if !layout::quantize_q8_0(&row, &mut data) {
                return Err(Error::invalid_arg(
                    "prepare",
                    format!("row {o} of the weight exceeds the range of Q8_0's f16 scale"),
                ));
            }
        }
        Ok(QuantWeight {
            format: QuantFormat::Q8_0,
            shape,
            row_bytes,
            data: Blocks::Owned(data),
            _elem: std::marker::PhantomData,
        })
    }

    /// Keeps the blocks as they are: the caller's storage when it shares it
    /// ([`BlockWeight::owner`]), else a copy.
    fn prepare_blocks(&self, w: BlockWeight<'_>) -> Result<Option<Self::Weight<f32>>> {
        let data = match w.owner() {
            Some(owner) => Blocks::Shared(SharedBytes::clone(owner)),
            None => {
                let mut data = try_bytes(w.bytes().len())?;
                data.extend_from_slice(w.bytes());
                Blocks::Owned(data)
            }
        };
        Ok(Some(QuantWeight {
            format: w.format(),
            shape: w.shape(),
            row_bytes: w.row_bytes(),
            data,
            _elem: std::marker::PhantomData,
        }))
    }

    fn linear_impl<T: Element>(
        &self,
        x: &[T],
        rows: usize,
        w: &Self::Weight<T>,
        out: &mut [T],
    ) -> Result<()> {
        let [n, k] = w.shape;
        let data = w.bytes();
        // A shared owner returns its bytes anew on each call: the kernels index rows by this
        // length, so a misbehaving owner is refused here rather than read out of bounds.
        if Some(data.len()) != w.row_bytes.checked_mul(n) {
            return Err(Error::format(
                "linear",
                format!(
                    "a [{n}, {k}] {} weight's storage now holds {} bytes, not {} rows of {}",
                    w.format,
                    data.len(),
                    n,
                    w.row_bytes
                ),
            ));
        }
        let xf = f32_values(x);
        with_scratch(|s| {
            let tiled = rows >= TILE_MIN_ROWS;
            if tiled {
                self.kernel
                    .quantize_tile(&xf, rows, k, &mut s.acts, &mut s.tile_acts)?;
            } else {
                s.acts.quantize_with(self.kernel, &xf, rows, k)?;
            }
            with_f32_out(out, |y| {
                if tiled {
                    tile::linear(
                        self.blocked.pool(),
                        self.kernel,
                        w.format,
                        data,
                        w.row_bytes,
                        n,
                        &s.tile_acts,
                        rows,
                        y,
                    )
                } else {
                    matvec::linear(
                        self.blocked.pool(),
                        self.kernel,
                        w.format,
                        data,
                        w.row_bytes,
                        n,
                        &s.acts,
                        rows,
                        y,
                        &mut s.yt,
                    )
                }
            });
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tile_tests;
