//! The int8 backend: symmetric int8 quantization with integer kernels.
//!
//! # What it computes
//! A product `C = A·B` becomes
//!
//! ```text
//! A ≈ sa ⊙ qa,  B ≈ qb ⊙ sb          (qa, qb: i8 codes in [-127, 127]; sa per row, sb per column)
//! C[i, j] ≈ sa[i] · sb[j] · Σ_k qa[i, k]·qb[k, j]          (the sum exact in i32)
//! ```
//!
//! * `prepare(W)` quantizes a weight `W: [out, in]` **once** (per tensor by default, per output
//!   channel with [`Int8Backend::with_weight_granularity`]) and keeps it as `i8` codes packed into
//!   kernel panels: `out·in` bytes plus 4 bytes per scale, a quarter of the f32 weight.
//! * Activations are quantized **per call** (dynamic, symmetric; one scale per tensor by default,
//!   per row or per block of `k` with [`Int8Backend::with_activation_granularity`], see
//!   [`ActGranularity`]). With per-block scales the product is
//!   `C[i, j] ≈ sb[j] · Σ_blk sa[i, blk] · Σ_{k ∈ blk} qa[i, k]·qb[k, j]`.
//! * `matmul(a, b)` quantizes both operands per call (`b` with the weight granularity, per column).
//! * Accumulation is in i32 over at most [`kernel::K_MAX`] values of `k` (exactness bound, see
//!   [`kernel`]), then rescaled by `sa·sb` into f32 and summed across `k` blocks in f32.
//! * The products run on the crate's one GEMM loop nest ([`crate::blocked::gemm`]): [`gemm`]
//!   wraps the int8 microkernels as a `GemmKernel` whose tile hook applies the offset correction
//!   and the scales (the dequantizing epilogue) per tile.
//! * Softmax and attention run in float, on the code the blocked backend runs them with: see
//!   [`crate::blocked::float_ops`] for why.
//!
//! Every element type is accepted; non-f32 inputs are converted to f32 before quantization and
//! results converted back.

pub mod gemm;
pub mod kernel;
pub mod pack;
pub mod quantize;
mod stream;

use nanotensor_core::element::{f32_values, with_f32_out};

use nanotensor_core::attention::{AttentionDims, AttentionPlan, AttentionSpec, Heads, HeadsMut};
use nanotensor_core::{
    Backend, Clip, Element, Error, Granularity, LoadTransforms, PreparedWeight, Result, Tensor,
};

use crate::blocked::float_ops;
use crate::blocked::kernel::F32Kernel;
use crate::scales::{ActGranularity, Int8Options};
use crate::threads::Pool;
use gemm::ColScales;
use kernel::{Kernel, KernelKind, K_MAX};
use pack::{PackedA, PackedB};
use quantize::Level;

/// The int8 backend. See the [module docs](self).
///
/// Accuracy: every product runs on 8-bit codes, so results carry quantization error (NMSE about
/// 1e-4 on unit-normal operands). The default scales — one per weight tensor, one per call for the
/// activations — are the cheapest and the coarsest: on SmolLM2 they more than double the
/// perplexity. [`Int8Backend::accurate`] (per-row weights, activation scales per 16 values) keeps
/// it within about 1 % of the float backends. Softmax and attention run in float.
#[derive(Debug)]
pub struct Int8Backend {
    pool: Pool,
    kernel: Kernel,
    /// The f32 kernel of the float operations (softmax, attention), shared with `blocked`.
    f32_kernel: F32Kernel,
    level: Level,
    activations: ActGranularity,
    weights: Granularity,
    clip: Clip,
    rotate: bool,
    equalize: bool,
    k_chunk: usize,
}

/// A weight prepared by [`Int8Backend::prepare`]: `i8` codes in kernel panels plus scale(s).
#[derive(Debug, Clone)]
pub struct Int8Weight<T> {
    packed: PackedB,
    /// One scale (per tensor) or one per output feature, padded to whole panels.
    scales: Vec<f32>,
    granularity: Granularity,
    shape: [usize; 2],
    kernel: KernelKind,
    _elem: std::marker::PhantomData<fn() -> T>,
}

impl<T> Int8Weight<T> {
    /// The granularity its scales were computed with.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// The scales: one, or one per output feature (then padded with zeros to whole panels).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
}

impl<T: Element> PreparedWeight for Int8Weight<T> {
    fn shape(&self) -> [usize; 2] {
        self.shape
    }

    /// Codes (`out·in` bytes, plus padding when `out` is not a multiple of the panel width or
    /// `in` not a multiple of 4) and 4 bytes per scale.
    fn size_bytes(&self) -> usize {
        self.packed.size_bytes() + 4 * self.scales.len()
    }
}

impl Int8Backend {
    /// The prepared weight from its packed codes and the scale of every row (`row_scales`, all
    /// equal under a per-tensor scale), laid out as this backend's kernel reads them.
    pub(super) fn weight<T: Element>(
        &self,
        packed: PackedB,
        row_scales: &[f32],
        shape: [usize; 2],
    ) -> Int8Weight<T> {
        let scales = match self.weights {
            Granularity::PerTensor => vec![row_scales[0]],
            Granularity::PerRow => col_scales(row_scales, Granularity::PerRow, self.kernel.nr()),
        };
        Int8Weight {
            packed,
            scales,
            granularity: self.weights,
            shape,
            kernel: self.kernel.kind(),
            _elem: std::marker::PhantomData,
        }
    }

    /// A backend with `threads` workers, the best kernel of this CPU and the default scheme
    /// ([`Int8Options::default`]: per-row weight scales, per-block-16 activation scales).
    ///
    /// # Errors
    /// Zero threads.
    pub fn new(threads: usize) -> Result<Self> {
        Self::with_options(threads, Int8Options::default())
    }

    /// A backend with `threads` workers configured by `opts` (scale granularities, clipping,
    /// equalisation).
    ///
    /// # Errors
    /// Zero threads.
    pub fn with_options(threads: usize, opts: Int8Options) -> Result<Self> {
        let cpu = crate::cpu::features();
        Ok(Int8Backend {
            pool: Pool::new(threads)?,
            kernel: Kernel::best(cpu),
            f32_kernel: crate::blocked::kernel::detect(),
            level: Level::best(cpu),
            activations: opts.activations,
            weights: opts.weights,
            clip: opts.clip,
            rotate: opts.rotate,
            equalize: opts.equalize,
            k_chunk: K_MAX,
        })
    }

    /// The default scheme ([`Int8Options::accurate`] is [`Int8Options::default`]).
    ///
    /// # Errors
    /// Zero threads.
    pub fn accurate(threads: usize) -> Result<Self> {
        Self::with_options(threads, Int8Options::accurate())
    }

    /// The options in force.
    pub fn options(&self) -> Int8Options {
        Int8Options {
            weights: self.weights,
            activations: self.activations,
            clip: self.clip,
            rotate: self.rotate,
            equalize: self.equalize,
        }
    }

    /// Activation scales per tensor (default), per row, or per block of `k`
    /// ([`ActGranularity`]; a [`Granularity`] converts into it).
    pub fn with_activation_granularity(mut self, g: impl Into<ActGranularity>) -> Self {
        self.activations = g.into();
        self
    }

    /// The activation granularity in force.
    pub fn activation_granularity(&self) -> ActGranularity {
        self.activations
    }

    /// The weight granularity `prepare` uses.
    pub fn weight_granularity(&self) -> Granularity {
        self.weights
    }

    /// Weight scales per tensor (default) or per output feature (a row of `W`, a column of `b`).
    pub fn with_weight_granularity(mut self, g: Granularity) -> Self {
        self.weights = g;
        self
    }

    /// Forces a kernel (for tests and benchmarks).
    ///
    /// # Errors
    /// [`Error::Unsupported`] when this CPU lacks its instruction set.
    pub fn with_kernel(mut self, kind: KernelKind) -> Result<Self> {
        self.kernel = Kernel::new(kind).ok_or_else(|| Error::Unsupported {
            op: "int8 kernel",
            backend: "int8",
            reason: format!("this CPU does not support {}", kind.name()),
        })?;
        if kind == KernelKind::Portable {
            self.level = Level::portable();
        }
        Ok(self)
    }

    /// Caps how many values of `k` one i32 accumulation may span (default and maximum
    /// [`K_MAX`]); rounded down to a multiple of 4. Small values exercise the split of long
    /// reductions.
    ///
    /// # Errors
    /// Fewer than 4 or more than `K_MAX`.
    pub fn with_k_chunk(mut self, k_chunk: usize) -> Result<Self> {
        if !(4..=K_MAX).contains(&k_chunk) {
            return Err(Error::invalid_arg(
                "int8 k chunk",
                format!("{k_chunk} is outside 4..={K_MAX}"),
            ));
        }
        self.k_chunk = k_chunk / 4 * 4;
        Ok(self)
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// `kc` for `m` rows: the whole (capped) `k` for decode-sized `m`, [`gemm::KC`] otherwise;
    /// with per-block activation scales, rounded down to whole scale blocks unless it covers
    /// all of `k` (a scale block must not straddle two `kc` blocks).
    fn kc(&self, m: usize, k: usize) -> usize {
        let want = if m <= self.kernel.mr() {
            pack::round_up(k, 4)
        } else {
            gemm::blocking().0
        };
        let kc = want.min(self.k_chunk);
        match self.activations.block_len() {
            Some(len) if kc < k => (kc / len).max(1) * len,
            _ => kc,
        }
    }

    /// `C = A·B` for one f32 problem with B already quantized and packed: quantizes and packs
    /// A (`m × k`) into the scratch buffers, then runs the driver.
    ///
    /// # Returns
    /// `false` (and `c` untouched) if A holds a NaN or an infinity: the scan for them is folded
    /// into the scales' `max |x|`, so the caller reports the error afterwards.
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        a: &[f32],
        m: usize,
        b: &PackedB,
        cs: ColScales<'_>,
        c: &mut [f32],
        codes: &mut Vec<i8>,
        pa: &mut PackedA,
    ) -> bool {
        let k = b.k;
        // Quantizing and packing are memory-bound passes: worth splitting only when large.
        let pool = (m * k >= 1 << 16).then_some(&self.pool);
        let (mr, kc) = (self.kernel.mr(), self.kc(m, k));
        let rows = match self.activations {
            ActGranularity::PerTensor => Granularity::PerTensor,
            ActGranularity::PerRow => Granularity::PerRow,
            ActGranularity::PerBlock(len) => {
                // Here the scan stays a pass of its own: the block quantizer's maxima are
                // internal to it.
                if !quantize::all_finite(self.level, &a[..m * k]) {
                    return false;
                }
                let len = len.get();
                codes.clear();
                codes.resize(m * k, 0);
                let mut sums = Vec::new();
                let s =
                    quantize::quantize_row_blocks(self.level, pool, a, m, k, len, codes, &mut sums);
                pa.pack_codes(pool, codes, m, k, mr, kc);
                pa.set_block_scales(m, k, len, &s, &sums);
                gemm::gemm(&self.pool, self.kernel, pa, &[], b, cs, m, c);
                return true;
            }
        };
        match quantize::quantize_pack_a(self.level, pool, a, m, k, rows, mr, kc, pa) {
            Some(rs) => {
                gemm::gemm(&self.pool, self.kernel, pa, &rs, b, cs, m, c);
                true
            }
            None => false,
        }
    }
}

/// Buffers a call quantizes and packs into, kept per thread and reused, so that a call does not
/// page-fault megabytes of fresh memory in (which, measured, cost as much as the 1024³ product
/// itself). They grow to the largest operand seen on that thread.
#[derive(Debug, Default)]
struct Scratch {
    codes: Vec<i8>,
    a: PackedA,
    b: PackedB,
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

/// Column scales padded to whole panels of `nr` (stride 1), or one scale repeated (stride 0).
fn col_scales(scales: &[f32], granularity: Granularity, nr: usize) -> Vec<f32> {
    match granularity {
        Granularity::PerTensor => vec![scales[0]; nr],
        Granularity::PerRow => {
            let mut v = scales.to_vec();
            v.resize(scales.len().div_ceil(nr) * nr, 0.0);
            v
        }
    }
}

fn stride_of(g: Granularity) -> usize {
    match g {
        Granularity::PerTensor => 0,
        Granularity::PerRow => 1,
    }
}

/// Finiteness of an operand, checked on its f32 form with the vectorised scan: NaN/inf in the
/// original is [`Error::NonFinite`]; a finite value that overflowed the f32 conversion (possible
/// for f64 input) cannot be given an f32 scale and is [`Error::InvalidArgument`].
fn check_operand<T: Element>(
    op: &'static str,
    operand: &'static str,
    level: Level,
    orig: &[T],
    x: &[f32],
) -> Result<()> {
    if quantize::all_finite(level, x) {
        return Ok(());
    }
    crate::multiversion::check_finite(op, operand, level, orig)?;
    let p = x.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(Error::invalid_arg(
        op,
        format!("value at index {p} does not fit the f32 range of the int8 scales"),
    ))
}

/// The error for an operand whose quantization met a NaN or an infinity: [`check_operand`]'s,
/// which locates it.
fn non_finite_error<T: Element>(
    op: &'static str,
    operand: &'static str,
    level: Level,
    orig: &[T],
    x: &[f32],
) -> Result<()> {
    check_operand(op, operand, level, orig, x)?;
    // Unreachable in practice: the scales were non-finite, so some value was.
    Err(Error::invalid_arg(op, "an activation scale is not finite"))
}

impl crate::select::BuildBackend for Int8Backend {
    fn build(opts: &crate::BackendOptions) -> Result<Self> {
        Self::with_options(opts.threads, opts.int8)
    }
}

impl Default for Int8Backend {
    /// One worker per available core (one thread if the OS refuses more), default options.
    fn default() -> Self {
        Self::new(crate::threads::Pool::default_threads())
            .or_else(|_| Self::new(1))
            .expect("a one-thread pool starts no OS thread and cannot fail")
    }
}

impl Backend for Int8Backend {
    type Weight<T: Element> = Int8Weight<T>;

    fn name(&self) -> &'static str {
        "int8"
    }

    fn threads(&self) -> usize {
        self.pool.threads()
    }

    fn load_transforms(&self) -> LoadTransforms {
        LoadTransforms {
            rotate: self.rotate,
            equalize: self.equalize,
        }
    }

    fn matmul_impl<T: Element>(
        &self,
        a: &Tensor<T>,
        b: &Tensor<T>,
        out: &mut Tensor<T>,
        d: &nanotensor_core::shape::MatmulDims,
    ) -> Result<()> {
        // The finiteness scan is folded into the quantization (below).
        let (m, k, n) = (d.m, d.k, d.n);
        let (af, bf) = (f32_values(a.as_slice()), f32_values(b.as_slice()));
        // The scans for NaN/inf are folded into the quantization of A (`product`) and B.
        enum Bad {
            A,
            B,
        }
        let nr = self.kernel.nr();
        let pool = (k * n >= 1 << 16).then_some(&self.pool);
        let stride = stride_of(self.weights);
        let bad = with_scratch(
            |Scratch {
                 codes,
                 a: pa,
                 b: pb,
             }| {
                let mut cs = Vec::new();
                for bi in 0..d.batch {
                    if bi == 0 || !d.broadcast_b {
                        let bs = &bf[bi * k * n..(bi + 1) * k * n];
                        let Some(s) = quantize::quantize_pack_b(
                            self.level,
                            pool,
                            bs,
                            k,
                            n,
                            nr,
                            self.weights,
                            pb,
                        ) else {
                            return Some(Bad::B);
                        };
                        cs = col_scales(&s, self.weights, nr);
                    }
                    let cs = ColScales {
                        values: &cs,
                        stride,
                    };
                    let ab = &af[bi * m * k..(bi + 1) * m * k];
                    let ob = &mut out.as_mut_slice()[bi * m * n..(bi + 1) * m * n];
                    if !with_f32_out(ob, |c| self.product(ab, m, pb, cs, c, codes, pa)) {
                        return Some(Bad::A);
                    }
                }
                None
            },
        );
        match bad {
            None => Ok(()),
            Some(Bad::A) => non_finite_error("matmul", "A", self.level, a.as_slice(), &af),
            Some(Bad::B) => non_finite_error("matmul", "B", self.level, b.as_slice(), &bf),
        }
    }

    fn softmax_impl<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        float_ops::softmax(&self.pool, self.f32_kernel, x)
    }

    fn attention_plan_impl<T: Element>(
        &self,
        dims: &AttentionDims,
        spec: &AttentionSpec,
    ) -> Result<AttentionPlan> {
        float_ops::plan::<T>(dims, spec, self.pool.threads())
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
        float_ops::attention(&self.pool, self.f32_kernel, q, k, v, out, dims, spec, plan)
    }

    fn prepare_impl<T: Element>(&self, w: Tensor<T>, shape: [usize; 2]) -> Result<Self::Weight<T>> {
        let [n, k] = shape;
        let wf = f32_values(w.as_slice());
        // Finite (checked by `prepare`); f64 values beyond the f32 range are refused here.
        check_operand("prepare", "weight", self.level, w.as_slice(), &wf)?;
        // The vectorised quantizer: codes bit-identical to `QTensor::quantize` (tested).
        let mut codes = Vec::new();
        let s = match self.clip {
            Clip::AbsMax => quantize::quantize_rows(
                self.level,
                Some(&self.pool),
                &wf,
                n,
                k,
                self.weights,
                &mut codes,
            ),
            Clip::Mse => {
                let scales = match self.weights {
                    Granularity::PerTensor => vec![Clip::Mse.scale(&wf); n],
                    Granularity::PerRow => wf.chunks(k).map(|r| Clip::Mse.scale(r)).collect(),
                };
                quantize::quantize_rows_with_scales(
                    self.level,
                    Some(&self.pool),
                    &wf,
                    n,
                    k,
                    &scales,
                    &mut codes,
                );
                scales
            }
        };
        let packed = PackedB::from_rows(&codes, n, k, self.kernel.nr());
        Ok(self.weight(packed, &s, shape))
    }

    /// Chunk by chunk, with bounded scratch: one chunk of rows in `f32` and its codes at a
    /// time (the `stream` module).
    fn prepare_rows_impl<T: Element>(
        &self,
        shape: [usize; 2],
        fill: &mut nanotensor_core::backend::FillRows<'_, T>,
    ) -> Result<Self::Weight<T>> {
        self.prepare_streamed(shape, fill)
    }

    fn linear_impl<T: Element>(
        &self,
        x: &[T],
        rows: usize,
        w: &Self::Weight<T>,
        out: &mut [T],
    ) -> Result<()> {
        if w.kernel != self.kernel.kind() {
            return Err(Error::invalid_arg(
                "linear",
                format!(
                    "weight was packed for the {} kernel, this backend runs {}",
                    w.kernel.name(),
                    self.kernel.kind().name()
                ),
            ));
        }
        // x's scan for NaN/inf is folded into its quantization (`product`).
        let xf = f32_values(x);
        let rep;
        let cs = match w.granularity {
            Granularity::PerTensor => {
                rep = vec![w.scales[0]; self.kernel.nr()];
                ColScales {
                    values: &rep,
                    stride: 0,
                }
            }
            Granularity::PerRow => ColScales {
                values: &w.scales,
                stride: 1,
            },
        };
        let finite = with_scratch(|s| {
            with_f32_out(out, |c| {
                self.product(&xf, rows, &w.packed, cs, c, &mut s.codes, &mut s.a)
            })
        });
        if finite {
            Ok(())
        } else {
            non_finite_error("linear", "x", self.level, x, &xf)
        }
    }
}

#[cfg(test)]
mod tests;
