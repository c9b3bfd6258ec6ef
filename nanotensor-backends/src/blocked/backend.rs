//! [`BlockedBackend`]: the `Backend` contract on the blocked GEMM machinery of [`super`].

use super::half16::{self, narrow_into, view, view_mut, widen_into, Bf16Preference, HalfKernel};
use super::{float_ops, gemm, gemv, kernel, pack};
use crate::multiversion::{check_finite, Level};
use crate::select::WeightStorage;
use crate::threads::Pool;
use gemm::{BSource, PackedB};
use kernel::f64_choice::{with_f64_kernel, F64Kernel};
use kernel::{with_f32_kernel, F32Kernel};
use nanotensor_core::attention::{AttentionAlgo, AttentionDims, AttentionPlan, AttentionSpec};
use nanotensor_core::shape::MatmulDims;
use nanotensor_core::{Backend, DType, Element, Heads, HeadsMut, PreparedWeight, Result, Tensor};
use pack::MatRef;

/// The blocked backend: cache-blocked, packed, SIMD, multi-threaded.
///
/// Accuracy: f32 sums in a blocked order (f64 for f64), so results differ from the naive
/// backend's by float32 rounding (normalised error around 1e-14 against float64 at the sizes
/// the conformance suite runs); bf16/f16 products accumulate in f32 (on the bf16 dot-product
/// kernel, or widened to f32 while packing) and are rounded once to the output type.
#[derive(Debug)]
pub struct BlockedBackend {
    pool: Pool,
    kernel: F32Kernel,
    kernel64: F64Kernel,
    /// What bf16 products run on (f16 ones always widen into `kernel`).
    bf16: HalfKernel,
    /// How f32 weights are stored.
    weights: WeightStorage,
    /// Whether bf16-stored weights may use the AVX512-BF16 pair panels (tests turn it off to
    /// run the fallback of CPUs without them).
    bf16_panels: bool,
}

impl BlockedBackend {
    /// A backend with `threads` workers and the best f32 kernel of this CPU.
    ///
    /// # Errors
    /// [`nanotensor_core::Error::InvalidArgument`] for zero threads or when the OS refuses to start them.
    pub fn new(threads: usize) -> Result<Self> {
        let kernel = kernel::detect();
        Ok(BlockedBackend {
            pool: Pool::new(threads)?,
            kernel,
            kernel64: F64Kernel::detect(),
            bf16: HalfKernel::choose(
                DType::BF16,
                crate::cpu::features(),
                kernel,
                Bf16Preference::from_env(),
            ),
            weights: WeightStorage::F32,
            bf16_panels: true,
        })
    }

    /// This backend as on a CPU without AVX512-BF16 as far as bf16-stored weights go: they are
    /// kept as rounded f32 values for the f32 kernel.
    #[cfg(test)]
    pub(crate) fn without_bf16_panels(mut self) -> Self {
        self.bf16_panels = false;
        self
    }

    /// This backend with f32 weights stored as `weights` (see [`WeightStorage`]).
    pub fn with_weight_storage(mut self, weights: WeightStorage) -> Self {
        self.weights = weights;
        self
    }

    /// How f32 weights are stored.
    pub fn weight_storage(&self) -> WeightStorage {
        self.weights
    }

    /// The kernels a linear layer with a prepared f32 weight runs on, for reports: the f32
    /// kernel's name, or for bf16 weights `"avx512bf16-12x32+widen-skinny"` (the `vdpbf16ps`
    /// kernel above 8 rows, bf16 widened into f32 FMAs up to 8) or, on a CPU without
    /// AVX512-BF16, `"bf16-as-f32+…"` and the f32 kernel's name.
    pub fn weight_kernel(&self) -> &'static str {
        match (self.weights, self.bf16_weight_kernel()) {
            (WeightStorage::F32, _) => self.kernel.name(),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            (WeightStorage::Bf16, Some(_)) => "avx512bf16-12x32+widen-skinny",
            (WeightStorage::Bf16, _) => self.kernel.bf16_weights_name(),
        }
    }

    /// The kernel bf16-stored f32 weights are packed for, where the CPU has AVX512-BF16.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    fn bf16_weight_kernel(&self) -> Option<kernel::avx512_bf16::Avx512Bf16> {
        kernel::avx512_bf16::Avx512Bf16::new(crate::cpu::features()).filter(|_| self.bf16_panels)
    }

    /// No AVX512-BF16 off x86.
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    fn bf16_weight_kernel(&self) -> Option<()> {
        None
    }

    /// The worker pool, shared with a backend built on this one (`quant`), so that the
    /// process runs one set of workers.
    #[cfg_attr(not(feature = "quant"), allow(dead_code))]
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The f32 microkernel in use (e.g. `"avx512-f32-12x32"`).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name()
    }

    /// The f64 microkernel in use (e.g. `"avx512-f64-12x16"`).
    pub fn f64_kernel_name(&self) -> &'static str {
        self.kernel64.name()
    }

    /// The microkernel a product of `dtype` runs on: `"avx512-f32-12x32"`,
    /// `"avx512-f64-12x16"`, `"avx512bf16-12x32"`, or `"convert+…"` for 16-bit floats widened
    /// into the f32 kernel.
    pub fn kernel_for(&self, dtype: DType) -> &'static str {
        match dtype {
            DType::F32 => self.kernel.name(),
            DType::F64 => self.kernel64.name(),
            DType::BF16 | DType::F16 => self.half_kernel(dtype).name(),
        }
    }

    /// This backend with bf16 products on the kernel `preference` picks on this CPU (instead
    /// of the one `NANOTENSOR_BF16` or the vendor picks): to compare or test both paths.
    pub fn with_bf16_preference(mut self, preference: Bf16Preference) -> Self {
        self.bf16 =
            HalfKernel::choose(DType::BF16, crate::cpu::features(), self.kernel, preference);
        self
    }

    /// The kernel of a bf16 or f16 product.
    fn half_kernel(&self, dtype: DType) -> HalfKernel {
        if dtype == DType::BF16 {
            self.bf16
        } else {
            HalfKernel::Widen(self.kernel)
        }
    }

    /// `C = A·B` on raw row-major slices (`a`: `m × k`, `b`: `k × n`, `c`: `m × n`), without
    /// shape or finiteness checks beyond the lengths. The building block of [`Backend::matmul`].
    ///
    /// Returns `true` when the product itself proved both operands finite: an f32 product on a
    /// kernel that flags NaN/±∞ in C ([`kernel::GemmKernel::FLAGS_NON_FINITE`]) and found none
    /// (see [`gemm::gemm`] for why that suffices). `false` leaves the check to the caller.
    fn matmul_slices<T: Element>(
        &self,
        a: &[T],
        b: &[T],
        c: &mut [T],
        m: usize,
        k: usize,
        n: usize,
    ) -> bool {
        let pool = Some(&self.pool);
        if let (Some(a32), Some(b32), Some(c32)) =
            (T::slice_f32(a), T::slice_f32(b), T::slice_f32_mut(c))
        {
            if m <= gemv::STRIDED_MAX_ROWS {
                let op = gemv::Strided {
                    x: a32,
                    m,
                    k,
                    b: b32,
                    n,
                };
                return gemv::strided_f32(Level::detect(), pool, op, c32);
            }
            let (am, bm) = (MatRef::new(a32, m, k, k, 1), MatRef::new(b32, k, n, n, 1));
            with_f32_kernel!(self.kernel, kern => {
                gemm::gemm(kern, pool, am, |x| x, BSource::Strided(bm), |x| x, c32, n)
            })
        } else if let (Some(a64), Some(b64), Some(c64)) = (as_f64(a), as_f64(b), as_f64_mut(c)) {
            let (am, bm) = (MatRef::new(a64, m, k, k, 1), MatRef::new(b64, k, n, n, 1));
            with_f64_kernel!(self.kernel64, kern => {
                gemm::gemm(kern, pool, am, |x| x, BSource::Strided(bm), |x| x, c64, n)
            })
        } else {
            half16::matmul(self.half_kernel(T::DTYPE), pool, a, b, c, m, k, n)
        }
    }

    /// `Wᵀ` packed for the bf16 kernel, when `T` is bf16 and the CPU has the kernel.
    fn prepare_bf16<T: Element>(&self, w: &[T], out_f: usize, in_f: usize) -> Option<Packed> {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if let (DType::BF16, HalfKernel::Bf16(kernel)) = (T::DTYPE, self.bf16) {
            let b = half16::pack_bf16(kernel, Some(&self.pool), w, out_f, in_f);
            return Some(Packed::Bf16 { kernel, b });
        }
        let _ = (w, out_f, in_f);
        None
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as an f32.
fn round_to_bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// `s` as `f64` values when `T` is `f64` (a no-op view), `None` for every other type.
fn as_f64<T: Element>(s: &[T]) -> Option<&[f64]> {
    view(s)
}

/// [`as_f64`] for a mutable slice.
fn as_f64_mut<T: Element>(s: &mut [T]) -> Option<&mut [f64]> {
    view_mut(s)
}

impl crate::select::BuildBackend for BlockedBackend {
    fn build(opts: &crate::BackendOptions) -> Result<Self> {
        Ok(Self::new(opts.threads)?.with_weight_storage(opts.blocked_weights))
    }
}

impl Default for BlockedBackend {
    /// One worker per available core (falls back to one thread if the OS refuses more).
    fn default() -> Self {
        let kernel = kernel::detect();
        let pool = Pool::new(Pool::default_threads())
            .or_else(|_| Pool::new(1))
            .expect("a one-thread pool starts no OS thread and cannot fail");
        BlockedBackend {
            pool,
            kernel,
            kernel64: F64Kernel::detect(),
            bf16: HalfKernel::choose(
                DType::BF16,
                crate::cpu::features(),
                kernel,
                Bf16Preference::from_env(),
            ),
            weights: WeightStorage::F32,
            bf16_panels: true,
        }
    }
}

/// The packed forms a weight can take.
#[derive(Debug)]
enum Packed {
    /// f32 and f16 weights (and bf16 ones without AVX512-BF16): f32 micro-panels for
    /// `kernel`.
    F32 { kernel: F32Kernel, b: PackedB<f32> },
    /// f64 weights: f64 micro-panels for `kernel`.
    F64 { kernel: F64Kernel, b: PackedB<f64> },
    /// bf16 weights on a CPU with AVX512-BF16: bf16 pairs for `kernel`.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    Bf16 {
        kernel: kernel::avx512_bf16::Avx512Bf16,
        b: PackedB<u16>,
    },
}

/// A weight `W: [out, in]` prepared by [`BlockedBackend::prepare`]: `Wᵀ` packed once into the
/// micro-panels of the detected kernel, in the block order the GEMM driver and the skinny
/// decode path both stream. `bf16`/`f16` weights are stored widened to f32.
#[derive(Debug)]
pub struct BlockedWeight<T: Element> {
    shape: [usize; 2],
    packed: Packed,
    _elem: std::marker::PhantomData<T>,
}

impl<T: Element> PreparedWeight for BlockedWeight<T> {
    fn shape(&self) -> [usize; 2] {
        self.shape
    }

    fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.packed {
                Packed::F32 { b, .. } => b.size_bytes(),
                Packed::F64 { b, .. } => b.size_bytes(),
                #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
                Packed::Bf16 { b, .. } => b.size_bytes(),
            }
    }
}

impl Backend for BlockedBackend {
    type Weight<T: Element> = BlockedWeight<T>;

    fn name(&self) -> &'static str {
        "blocked"
    }

    fn threads(&self) -> usize {
        self.pool.threads()
    }

    fn matmul_kernel(&self, dtype: DType) -> Option<&'static str> {
        Some(self.kernel_for(dtype))
    }

    fn attention_kernel(&self, dtype: DType, algo: AttentionAlgo) -> Option<&'static str> {
        Some(float_ops::kernel_name(self.kernel, dtype, algo))
    }

    fn matmul_impl<T: Element>(
        &self,
        a: &Tensor<T>,
        b: &Tensor<T>,
        out: &mut Tensor<T>,
        d: &MatmulDims,
    ) -> Result<()> {
        // The finiteness check comes after the product (below).
        let (av, bv, cv) = (a.as_slice(), b.as_slice(), out.as_mut_slice());
        let verified = if d.broadcast_b {
            // A shared B: the batch is just more rows of one product.
            self.matmul_slices(av, bv, cv, d.batch * d.m, d.k, d.n)
        } else {
            let (sa, sb, sc) = (d.m * d.k, d.k * d.n, d.m * d.n);
            (0..d.batch).fold(true, |all, i| {
                let c = &mut cv[i * sc..(i + 1) * sc];
                let (ai, bi) = (&av[i * sa..][..sa], &bv[i * sb..][..sb]);
                self.matmul_slices(ai, bi, c, d.m, d.k, d.n) && all
            })
        };
        // NaN/±∞ in an operand: the f32 kernels that flag non-finite values in C prove the
        // operands finite as a by-product of the store (a separate scan reads both operands once
        // more, a visible share of a mid-sized product). Otherwise, or when C came
        // out non-finite (an operand, or finite sums that overflowed), scan the operands to
        // name the first offending element. `out` is then already written, as documented.
        if !verified {
            let level = Level::detect();
            check_finite("matmul", "A", level, a.as_slice())?;
            check_finite("matmul", "B", level, b.as_slice())?;
        }
        Ok(())
    }

    fn softmax_impl<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        float_ops::softmax(&self.pool, self.kernel, x)
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
        float_ops::attention(&self.pool, self.kernel, q, k, v, out, dims, spec, plan)
    }

    fn prepare_impl<T: Element>(&self, w: Tensor<T>, shape: [usize; 2]) -> Result<Self::Weight<T>> {
        let [out_f, in_f] = shape;
        // B = Wᵀ (in × out), read in place through strides.
        let wt = MatRef::new(w.as_slice(), out_f, in_f, in_f, 1).t();
        if T::DTYPE == DType::F32 && self.weights == WeightStorage::Bf16 {
            // One path for both entry points: `prepare_rows_impl` rounds and packs a column
            // block at a time (a CPU without AVX512-BF16 needs the rounded rows first).
            let w = w.as_slice();
            return self.prepare_rows_impl(shape, &mut |rows, buf: &mut [T]| {
                buf.copy_from_slice(&w[rows.start * in_f..rows.end * in_f]);
                Ok(())
            });
        }
        let pool = Some(&self.pool);
        let packed = if let Some(p) = self.prepare_bf16(w.as_slice(), out_f, in_f) {
            p
        } else if T::DTYPE == DType::F64 {
            let b = with_f64_kernel!(self.kernel64, kern => PackedB::new(kern, pool, wt, |x: T| x.as_f64()));
            Packed::F64 {
                kernel: self.kernel64,
                b,
            }
        } else {
            let b = with_f32_kernel!(self.kernel, kern => PackedB::new(kern, pool, wt, |x: T| x.as_f32()));
            Packed::F32 {
                kernel: self.kernel,
                b,
            }
        };
        Ok(BlockedWeight {
            shape,
            packed,
            _elem: std::marker::PhantomData,
        })
    }

    /// An f32 weight (stored as f32 or bf16) is packed a column block of `Wᵀ` (`nc` rows of
    /// `W`) at a time, so only that block exists unpacked; the other types take the whole
    /// matrix (the default).
    fn prepare_rows_impl<T: Element>(
        &self,
        shape: [usize; 2],
        fill: &mut nanotensor_core::backend::FillRows<'_, T>,
    ) -> Result<Self::Weight<T>> {
        let [out_f, in_f] = shape;
        if T::DTYPE != DType::F32 {
            let mut w = Tensor::zeros(&shape)?;
            fill(0..out_f, w.as_mut_slice())?;
            return self.prepare_impl(w, shape);
        }
        let bf16 = self.weights == WeightStorage::Bf16;
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if let (true, Some(kernel)) = (bf16, self.bf16_weight_kernel()) {
            let bits = |x: T| half::bf16::from_f32(x.as_f32()).to_bits();
            let b = PackedB::from_row_blocks(kernel, in_f, out_f, bits, fill)?;
            return Ok(BlockedWeight {
                shape,
                packed: Packed::Bf16 { kernel, b },
                _elem: std::marker::PhantomData,
            });
        }
        // f32 storage, or bf16 values stored as f32 on a CPU without AVX512-BF16: rounded in
        // the rows `fill` wrote (the packer copies f32 to f32 without calling a conversion).
        let mut rows = |r: std::ops::Range<usize>, buf: &mut [T]| -> Result<()> {
            fill(r, buf)?;
            if bf16 {
                buf.iter_mut()
                    .for_each(|x| *x = T::from_f32(round_to_bf16(x.as_f32())));
            }
            Ok(())
        };
        let b = with_f32_kernel!(self.kernel, kern => PackedB::from_row_blocks(kern, in_f, out_f, |x: T| x.as_f32(), &mut rows)?);
        Ok(BlockedWeight {
            shape,
            packed: Packed::F32 {
                kernel: self.kernel,
                b,
            },
            _elem: std::marker::PhantomData,
        })
    }

    fn linear_impl<T: Element>(
        &self,
        x: &[T],
        rows: usize,
        w: &Self::Weight<T>,
        out: &mut [T],
    ) -> Result<()> {
        check_finite("linear", "x", Level::detect(), x)?;
        let [n, k] = w.shape;
        let pool = Some(&self.pool);
        match &w.packed {
            Packed::F64 { kernel, b } => {
                // Only an f64 weight is packed as f64, so `x` and `out` are f64 too.
                let (x64, y64) = (as_f64(x), as_f64_mut(out));
                let (Some(x64), Some(y64)) = (x64, y64) else {
                    unreachable!("an f64 weight applied to {} activations", T::DTYPE)
                };
                with_f64_kernel!(*kernel, kern => {
                    if rows <= gemv::MAX_ROWS {
                        gemv::skinny(kern, pool, x64, rows, b, y64);
                    } else {
                        let xm = MatRef::new(x64, rows, k, k, 1);
                        gemm::gemm(kern, pool, xm, |v| v, BSource::Packed(b), |v| v, y64, n);
                    }
                });
            }
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Packed::Bf16 { kernel, b } => {
                if let (Some(x32), Some(y32)) = (T::slice_f32(x), T::slice_f32_mut(out)) {
                    // An f32 weight stored as bf16 (`WeightStorage::Bf16`).
                    half16::linear_f32_bf16_weights(*kernel, pool, x32, rows, b, y32);
                } else {
                    half16::linear_bf16(*kernel, pool, x, rows, b, out);
                }
            }
            Packed::F32 { kernel, b } => {
                let mut widened = Vec::new();
                let x32 = match T::slice_f32(x) {
                    Some(s) => s,
                    None => {
                        widened.resize(x.len(), 0.0f32);
                        widen_into(x, &mut widened);
                        &widened
                    }
                };
                let mut staging = Vec::new();
                let y32: &mut [f32] = match T::slice_f32_mut(out) {
                    Some(s) => s,
                    None => {
                        staging = vec![0.0f32; rows * n];
                        &mut staging
                    }
                };
                with_f32_kernel!(*kernel, kern => {
                    if rows <= gemv::MAX_ROWS {
                        gemv::skinny(kern, pool, x32, rows, b, y32);
                    } else {
                        let xm = MatRef::new(x32, rows, k, k, 1);
                        gemm::gemm(kern, pool, xm, |v| v, BSource::Packed(b), |v| v, y32, n);
                    }
                });
                if !staging.is_empty() {
                    narrow_into(&staging, out);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "tests_dtypes.rs"]
mod tests_dtypes;
