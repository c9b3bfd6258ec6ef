//! The `Backend` trait: what every backend must compute. Backends differ only in *how*.
//!
//! # Dispatch
//! Methods are generic over the element type, so the trait is used through static dispatch:
//! the CLI matches `--backend` once and calls a generic `run::<B: Backend>()`, and the model is
//! `Llama<B>`. That keeps every kernel call monomorphic (no virtual call per matmul) and lets a
//! backend specialise `f32` at zero cost. ARCHITECTURE.md explains the trade-off.
//!
//! # Errors
//! Every method validates its operands (shapes, emptiness, finiteness, memory budget) before it
//! computes, and returns an [`Error`] (see [`crate::error`]) naming the op, the operand and the
//! shapes. Kernels behind the checks assume valid input.

use crate::attention::{
    check_operands, AttentionAlgo, AttentionDims, AttentionPlan, AttentionSpec, Heads, HeadsMut,
    TensorAttention,
};
use crate::blocks::BlockWeight;
use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::shape::MatmulDims;
use crate::tensor::Tensor;
use std::ops::Range;

/// A weight matrix prepared once by a backend (packed, quantized) and applied many times.
pub trait PreparedWeight: Send + Sync {
    /// `[out_features, in_features]`: the shape of the `W` it was prepared from.
    fn shape(&self) -> [usize; 2];
    /// Bytes the prepared weight occupies in memory (data plus scales), storage it shares
    /// with the caller ([`PreparedWeight::shared_storage`]) included.
    fn size_bytes(&self) -> usize;

    /// The caller's storage this weight keeps rather than copies — the bytes of a
    /// [`BlockWeight::owner`] handed to [`Backend::prepare_blocks`] (for a model, the file's
    /// bytes of the tensor) — or `None` when the weight owns all its memory (the default).
    ///
    /// A caller counting memory uses it to count bytes several holders share once: a tied
    /// output head prepared from the token embedding's blocks *is* the embedding's bytes when
    /// this returns the very slice (same address and length) the caller keeps for it.
    fn shared_storage(&self) -> Option<&[u8]> {
        None
    }
}

/// Weight rewrites a model loader applies before [`Backend::prepare`] when a backend asks for
/// them ([`Backend::load_transforms`]). Each leaves the model's function unchanged in real
/// arithmetic; they only move range between tensors so that quantization scales fit better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LoadTransforms {
    /// Rotate the residual stream by an orthogonal matrix (norm gains folded into the matrices
    /// they feed, the embedding rotated per token): outlier channels are spread over all.
    pub rotate: bool,
    /// Equalise per-channel ranges between each matrix and the operation producing its input
    /// (an RMSNorm gain, the rows of the producing matrix).
    pub equalize: bool,
}

/// The row source of [`Backend::prepare_rows_impl`]: `fill(rows, buf)` writes rows `rows` of the
/// weight into `buf` (`rows.len() · in_features` values), each chunk checked finite.
pub type FillRows<'a, T> = dyn FnMut(Range<usize>, &mut [T]) -> Result<()> + 'a;

/// The operations a NanoTensor backend provides.
///
/// Every method is a contract on the maths, the shapes and the errors; the conformance harness
/// (`nanotensor-backends/tests/conformance.rs`) checks each backend against a float64 reference
/// and feeds each one the same table of bad inputs.
///
/// # Validation the trait enforces
/// Callers use the provided methods (`matmul`, `matmul_into`, `softmax`, `attention_plan`,
/// `attention_into`, `attention`, `prepare`, `prepare_rows`, `linear`, `linear_into`). Each validates shapes,
/// emptiness and the attention spec, then calls the backend's `*_impl` method, which may assume
/// them. A backend implements only the `*_impl` methods, so it cannot skip those checks.
///
/// Finiteness is the one check left to the backend (a hook), because a fast backend can prove
/// it more cheaply than a separate scan: the blocked backend's f32 kernel flags NaN/∞ in the
/// finished product, int8 folds the scan into quantization. `softmax`, `prepare` and
/// `attention_into` check finiteness before the hook runs (their scan is cheap next to the
/// work); `matmul_impl` and `linear_impl` must return [`Error::NonFinite`] naming the operand
/// for any NaN/∞ input — [`check_matmul_finite`] and [`check_linear_finite`] are the plain
/// scans. The conformance harness checks that every backend does.
pub trait Backend: Send + Sync + 'static {
    /// A weight in this backend's preferred form: plain rows (naive), packed panels (blocked),
    /// `i8` codes and a scale (int8).
    type Weight<T: Element>: PreparedWeight;

    /// The backend's name as used by `--backend` (`"naive"`, `"blocked"`, `"int8"`).
    fn name(&self) -> &'static str;

    /// Worker threads this backend uses (1 for single-threaded backends).
    fn threads(&self) -> usize {
        1
    }

    /// The microkernel that products (`matmul`, `linear`) of `dtype` run on, for reports
    /// (e.g. `"avx512-f32-12x32"`, `"avx512bf16-12x32"`, or `"convert+avx512-f32-12x32"` for
    /// 16-bit floats widened into an f32 kernel); `None` for a backend with one plain
    /// implementation.
    fn matmul_kernel(&self, dtype: DType) -> Option<&'static str> {
        let _ = dtype;
        None
    }

    /// The kernel that attention of `dtype` runs on with algorithm `algo` (a resolved plan's),
    /// for reports; `None` for a backend with one plain implementation.
    fn attention_kernel(&self, dtype: DType, algo: AttentionAlgo) -> Option<&'static str> {
        let _ = (dtype, algo);
        None
    }

    /// Matrix product `C = A·B`.
    ///
    /// # Arguments
    /// * `a` — `[.., m, k]`
    /// * `b` — `[k, n]` (shared by every batch) or `[.., k, n]` with the same leading dims as `a`
    ///
    /// # Returns
    /// `C` with shape `[.., m, n]`, `C[i, j] = Σ_p A[i, p]·B[p, j]`.
    ///
    /// # Errors
    /// Rank < 2, a zero dimension, `k` mismatch, differing batch dims ([`Error::ShapeMismatch`] /
    /// [`Error::InvalidShape`]); NaN or infinity in either operand ([`Error::NonFinite`], naming
    /// `A` or `B`).
    fn matmul<T: Element>(&self, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
        let (dims, out_shape) = crate::shape::matmul_dims(a.shape(), b.shape())?;
        let mut out = Tensor::zeros(&out_shape)?;
        self.matmul_impl(a, b, &mut out, &dims)?;
        Ok(out)
    }

    /// [`Backend::matmul`] into a caller-owned `out`, BLAS-style: `out` must already have the
    /// product's shape `[.., m, n]` and is fully overwritten (its old values are ignored).
    ///
    /// A loop that multiplies many times (a benchmark, a layer applied per step) reuses one
    /// output instead of allocating, zeroing and page-faulting a fresh one per call.
    ///
    /// # Errors
    /// Those of [`Backend::matmul`], and [`Error::ShapeMismatch`] if `out` has another shape.
    /// After an [`Error::NonFinite`] the contents of `out` are unspecified: a backend may find
    /// the NaN/∞ through the product itself (see the blocked backend).
    fn matmul_into<T: Element>(
        &self,
        a: &Tensor<T>,
        b: &Tensor<T>,
        out: &mut Tensor<T>,
    ) -> Result<()> {
        let (dims, out_shape) = crate::shape::matmul_dims(a.shape(), b.shape())?;
        check_matmul_out(out, &out_shape)?;
        self.matmul_impl(a, b, out, &dims)
    }

    /// The backend's product behind [`Backend::matmul_into`]: shapes are checked (`dims` are
    /// those of `a` and `b`, `out` has the product's shape). Must fail with
    /// [`Error::NonFinite`] if `a` or `b` holds NaN/∞ (see the trait docs).
    fn matmul_impl<T: Element>(
        &self,
        a: &Tensor<T>,
        b: &Tensor<T>,
        out: &mut Tensor<T>,
        dims: &MatmulDims,
    ) -> Result<()>;

    /// Numerically stable softmax along the last axis: `y_j = exp(x_j − max x) / Σ exp(x_i − max x)`.
    ///
    /// `-inf` entries are allowed (they are masks) and get probability 0; a row that is entirely
    /// `-inf` has no mass and yields zeros.
    ///
    /// # Errors
    /// Rank 0 or a zero dimension ([`Error::InvalidShape`]); NaN or `+inf` ([`Error::NonFinite`]).
    fn softmax<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        check_softmax(x)?;
        self.softmax_impl(x)
    }

    /// The backend's softmax behind [`Backend::softmax`]: `x` has rank ≥ 1, no zero dimension,
    /// no NaN and no `+inf`.
    fn softmax_impl<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<T>>;

    /// Which algorithm an attention call with these sizes and this spec runs, and how much scratch
    /// memory it needs — computed before anything is allocated.
    ///
    /// # Errors
    /// An invalid spec ([`AttentionSpec::validate`]); [`Error::Unsupported`] if the backend lacks
    /// the requested algorithm; [`Error::MemoryBudget`] if the scratch exceeds
    /// [`AttentionSpec::budget`].
    fn attention_plan<T: Element>(
        &self,
        dims: &AttentionDims,
        spec: &AttentionSpec,
    ) -> Result<AttentionPlan> {
        spec.validate()?;
        self.attention_plan_impl::<T>(dims, spec)
    }

    /// The backend's planner behind [`Backend::attention_plan`]: the spec is valid.
    fn attention_plan_impl<T: Element>(
        &self,
        dims: &AttentionDims,
        spec: &AttentionSpec,
    ) -> Result<AttentionPlan>;

    /// Scaled dot-product attention `softmax(scale·Q·Kᵀ + mask)·V` into `out`, with grouped KV
    /// heads and an optional end-aligned causal mask (see [`crate::attention`]).
    ///
    /// # Arguments
    /// * `q` — `H` heads of `n_q` rows of `d`
    /// * `k` — `H_kv` heads of `n_kv` rows of `d`; `H_kv` divides `H`, query head `h` reads KV
    ///   head `h / (H / H_kv)`
    /// * `v` — `H_kv` heads of `n_kv` rows of `d_v`
    /// * `out` — `H` heads of `n_q` rows of `d_v`; fully overwritten
    ///
    /// Layouts are strided ([`crate::attention::HeadsLayout`]), so a KV cache or a projection's
    /// token-major output is read in place.
    ///
    /// # Returns
    /// The [`AttentionPlan`] that ran.
    ///
    /// # Errors
    /// An invalid spec; inconsistent or empty layouts, short buffers; non-finite Q/K/V (naming
    /// the operand; K/V rows before [`AttentionSpec::kv_rows_checked`] are taken as checked);
    /// plus those of [`Backend::attention_plan`].
    fn attention_into<T: Element>(
        &self,
        q: Heads<'_, T>,
        k: Heads<'_, T>,
        v: Heads<'_, T>,
        out: HeadsMut<'_, T>,
        spec: &AttentionSpec,
    ) -> Result<AttentionPlan> {
        spec.validate()?;
        let dims = check_attention(&q, &k, &v, &out, spec)?;
        let plan = self.attention_plan_impl::<T>(&dims, spec)?;
        self.attention_impl(q, k, v, out, &dims, spec, &plan)?;
        Ok(plan)
    }

    /// The backend's attention behind [`Backend::attention_into`]: spec, layouts and
    /// finiteness are checked, `dims` describes the operands and `plan` is what
    /// [`Backend::attention_plan_impl`] chose for them (the algorithm to run).
    #[allow(clippy::too_many_arguments)]
    fn attention_impl<T: Element>(
        &self,
        q: Heads<'_, T>,
        k: Heads<'_, T>,
        v: Heads<'_, T>,
        out: HeadsMut<'_, T>,
        dims: &AttentionDims,
        spec: &AttentionSpec,
        plan: &AttentionPlan,
    ) -> Result<()>;

    /// Tensor form of [`Backend::attention_into`]: `q` `[H, n_q, d]`, `k` `[H_kv, n_kv, d]`,
    /// `v` `[H_kv, n_kv, d_v]` (each optionally with a leading batch dim); returns
    /// `[H, n_q, d_v]` (or `[B, H, n_q, d_v]`). [`Backend::attention_with_plan`] also returns
    /// the plan that ran.
    fn attention<T: Element>(
        &self,
        q: &Tensor<T>,
        k: &Tensor<T>,
        v: &Tensor<T>,
        spec: &AttentionSpec,
    ) -> Result<Tensor<T>> {
        Ok(self.attention_with_plan(q, k, v, spec)?.0)
    }

    /// [`Backend::attention`] returning the [`AttentionPlan`] that ran as well (the same for
    /// every batch entry: it depends only on the sizes and the spec).
    fn attention_with_plan<T: Element>(
        &self,
        q: &Tensor<T>,
        k: &Tensor<T>,
        v: &Tensor<T>,
        spec: &AttentionSpec,
    ) -> Result<(Tensor<T>, AttentionPlan)> {
        spec.validate()?;
        let ta = TensorAttention::new("attention", q.shape(), k.shape(), v.shape())?;
        // Plan before allocating the output.
        let plan = self.attention_plan_impl::<T>(&ta.dims, spec)?;
        let mut out = Tensor::zeros(&ta.out_shape(q.shape()))?;
        let per_o = ta.per_entry[3];
        // The spec is valid and the plan is the same for every entry: check each entry's
        // operands (layouts, finiteness) and run it.
        for b in 0..ta.batch {
            let (qb, kb, vb) = (
                ta.entry(q.as_slice(), 0, b),
                ta.entry(k.as_slice(), 1, b),
                ta.entry(v.as_slice(), 2, b),
            );
            let ob = HeadsMut {
                data: &mut out.as_mut_slice()[b * per_o..(b + 1) * per_o],
                layout: ta.out,
            };
            let dims = check_attention(&qb, &kb, &vb, &ob, spec)?;
            self.attention_impl(qb, kb, vb, ob, &dims, spec, &plan)?;
        }
        Ok((out, plan))
    }

    /// Prepares a weight `W` of shape `[out_features, in_features]` once (at model load) for
    /// repeated [`Backend::linear`] calls. The weight is checked for finiteness here, once.
    ///
    /// # Errors
    /// Not 2-D, empty, or non-finite.
    fn prepare<T: Element>(&self, w: Tensor<T>) -> Result<Self::Weight<T>> {
        let shape = check_weight(&w)?;
        self.prepare_impl(w, shape)
    }

    /// The backend's preparation behind [`Backend::prepare`]: `w` is a finite, non-empty
    /// `[out_features, in_features]` matrix (`shape`).
    fn prepare_impl<T: Element>(&self, w: Tensor<T>, shape: [usize; 2]) -> Result<Self::Weight<T>>;

    /// [`Backend::prepare`] for a weight that is produced a chunk of rows at a time rather than
    /// handed over whole: `fill(rows, buf)` writes rows `rows` of `W` (row-major,
    /// `rows.len() · in_features` values) into `buf`. A model loader dequantizes those rows from
    /// the file on request, so a backend whose prepared form is not the plain matrix (int8
    /// codes) never needs the whole `W` in `T` at once.
    ///
    /// `fill` is called with ranges in increasing order covering every row, possibly more than
    /// once: a scheme that needs a statistic of the whole tensor before it can quantize any row
    /// (a per-tensor scale, a per-tensor MSE clip search) asks for every row once to compute it
    /// and again to quantize. `fill` must therefore write the same values each time it is asked
    /// for the same rows. The prepared weight is the one [`Backend::prepare`] makes from the
    /// same matrix (the conformance harness checks that `linear` agrees bit for bit).
    ///
    /// # Errors
    /// `shape` not `[out, in]` with both non-zero or whose product overflows
    /// ([`Error::InvalidShape`], [`Error::SizeOverflow`]); a non-finite value written by `fill`
    /// ([`Error::NonFinite`] naming `weight`, its index counted from the start of `W` as
    /// [`Backend::prepare`] counts it); `fill`'s own errors, returned as they are.
    fn prepare_rows<T: Element>(
        &self,
        shape: [usize; 2],
        mut fill: impl FnMut(Range<usize>, &mut [T]) -> Result<()>,
    ) -> Result<Self::Weight<T>> {
        const OP: &str = "prepare";
        crate::shape::check_non_empty(OP, &shape)?;
        crate::shape::numel(OP, &shape)?;
        let [out_f, in_f] = shape;
        // Every chunk is scanned as it arrives, so a backend's hook cannot skip the check.
        let mut checked = |rows: Range<usize>, buf: &mut [T]| -> Result<()> {
            if rows.start > rows.end || rows.end > out_f || buf.len() != rows.len() * in_f {
                return Err(Error::invalid_arg(
                    OP,
                    format!(
                        "asked for rows {rows:?} of a [{out_f}, {in_f}] weight into {} values",
                        buf.len()
                    ),
                ));
            }
            fill(rows.clone(), buf)?;
            if let Some(p) = crate::element::first_non_finite(buf) {
                return Err(Error::NonFinite {
                    op: OP,
                    operand: "weight",
                    index: rows.start * in_f + p,
                    value: buf[p].as_f64(),
                });
            }
            Ok(())
        };
        self.prepare_rows_impl(shape, &mut checked)
    }

    /// The backend's preparation behind [`Backend::prepare_rows`]: `shape` is non-empty and
    /// its product fits; every chunk `fill` writes has been checked finite before `fill`
    /// returns (an error from it is to be passed on).
    ///
    /// The default asks for the whole matrix in one call and hands it to
    /// [`Backend::prepare_impl`]: right for a backend whose prepared form holds the `T` values
    /// anyway (a float backend), where streaming would save nothing. A backend that shrinks
    /// the weight (int8) overrides it to prepare chunk by chunk with bounded scratch.
    fn prepare_rows_impl<T: Element>(
        &self,
        shape: [usize; 2],
        fill: &mut FillRows<'_, T>,
    ) -> Result<Self::Weight<T>> {
        let mut w = Tensor::zeros(&shape)?;
        fill(0..shape[0], w.as_mut_slice())?;
        self.prepare_impl(w, shape)
    }

    /// Prepares an `f32` weight from its stored quantized blocks ([`BlockWeight`], already
    /// checked: whole blocks, finite scales), without an `f32` copy: `Ok(Some(w))` when this
    /// backend multiplies that format directly, `Ok(None)` when it does not — the caller then
    /// dequantizes the blocks and calls [`Backend::prepare`]. The default is `Ok(None)`.
    ///
    /// A weight prepared here is used like any other: [`Backend::linear`] computes `x·Wᵀ` with
    /// `W` the blocks' dequantized values (to the backend's stated accuracy).
    ///
    /// **Storage.** `w` only borrows its bytes. When it carries a shared owner
    /// ([`BlockWeight::owner`], set by [`BlockWeight::shared`]), a backend whose prepared form
    /// is the blocks as stored keeps a clone of that handle instead of copying — the weight then
    /// shares the caller's storage (a model's memory-mapped file) and reports it through
    /// [`PreparedWeight::shared_storage`]; without an owner it copies the bytes it keeps. A
    /// backend that transforms the blocks (repacks, re-quantizes) owns its result either way.
    ///
    /// # Errors
    /// Those of the backend's preparation (e.g. out of memory).
    fn prepare_blocks(&self, w: BlockWeight<'_>) -> Result<Option<Self::Weight<f32>>> {
        let _ = w;
        Ok(None)
    }

    /// The rewrites a model loader should apply to the weights before [`Backend::prepare`]
    /// ([`LoadTransforms`]): each is exact in real arithmetic, and a backend that quantizes
    /// asks for those that help its scales. The default is none.
    fn load_transforms(&self) -> LoadTransforms {
        LoadTransforms::default()
    }

    /// A linear layer `y = x·Wᵀ` with a prepared weight.
    ///
    /// # Arguments
    /// * `x` — `[.., in_features]`
    /// * `w` — prepared from `W: [out_features, in_features]`
    ///
    /// # Returns
    /// `y` with shape `[.., out_features]`.
    ///
    /// # Errors
    /// `x` empty, of rank 0, or its last dim not `in_features`; non-finite `x`.
    fn linear<T: Element>(&self, x: &Tensor<T>, w: &Self::Weight<T>) -> Result<Tensor<T>> {
        let (rows, out_shape) = linear_shapes(x.shape(), w.shape())?;
        let mut out = Tensor::zeros(&out_shape)?;
        self.linear_impl(x.as_slice(), rows, w, out.as_mut_slice())?;
        Ok(out)
    }

    /// Allocation-free form of [`Backend::linear`] for the decode loop: `x` holds `rows` rows of
    /// `in_features`, `out` receives `rows` rows of `out_features`.
    ///
    /// # Errors
    /// Buffer lengths that do not match `rows` and the weight's shape; non-finite `x`.
    fn linear_into<T: Element>(
        &self,
        x: &[T],
        rows: usize,
        w: &Self::Weight<T>,
        out: &mut [T],
    ) -> Result<()> {
        check_linear_into_lengths(x, rows, w.shape(), out)?;
        self.linear_impl(x, rows, w, out)
    }

    /// The backend's linear layer behind [`Backend::linear_into`]: `rows ≥ 1` and the buffer
    /// lengths match the weight. Must fail with [`Error::NonFinite`] if `x` holds NaN/∞.
    fn linear_impl<T: Element>(
        &self,
        x: &[T],
        rows: usize,
        w: &Self::Weight<T>,
        out: &mut [T],
    ) -> Result<()>;
}

/// Shape checks shared by every `linear`: returns the number of rows of `x` and the output shape.
pub fn linear_shapes(x: &[usize], w: [usize; 2]) -> Result<(usize, Vec<usize>)> {
    const OP: &str = "linear";
    let (&last, lead) = x
        .split_last()
        .ok_or_else(|| Error::invalid_shape(OP, x, "input needs at least 1 dimension"))?;
    crate::shape::check_non_empty(OP, x)?;
    if last != w[1] {
        return Err(Error::mismatch(
            OP,
            x,
            &w,
            format!("input features {last} differ from the weight's {}", w[1]),
        ));
    }
    let rows = crate::shape::numel(OP, lead)?;
    let mut out = lead.to_vec();
    out.push(w[0]);
    crate::shape::numel(OP, &out)?;
    Ok((rows, out))
}

/// The plain finiteness scan of `linear_impl`'s input `x` (a backend may fuse it with its own
/// pass over `x` instead).
///
/// # Errors
/// [`Error::NonFinite`] naming `x`.
pub fn check_linear_finite<T: Element>(x: &[T]) -> Result<()> {
    if let Some(p) = crate::element::first_non_finite(x) {
        return Err(Error::NonFinite {
            op: "linear",
            operand: "x",
            index: p,
            value: x[p].as_f64(),
        });
    }
    Ok(())
}

/// The buffer-length checks of [`Backend::linear_into`].
pub fn check_linear_into_lengths<T>(x: &[T], rows: usize, w: [usize; 2], out: &[T]) -> Result<()> {
    if rows == 0 || x.len() != rows.saturating_mul(w[1]) || out.len() != rows.saturating_mul(w[0]) {
        return Err(Error::mismatch(
            "linear",
            &[x.len(), out.len()],
            &w,
            format!("{rows} rows need x of rows·in and out of rows·out elements"),
        ));
    }
    Ok(())
}

/// Checks shared by every `prepare`: 2-D, non-empty, finite.
pub fn check_weight<T: Element>(w: &Tensor<T>) -> Result<[usize; 2]> {
    const OP: &str = "prepare";
    crate::shape::check_rank(OP, w.shape(), 2)?;
    crate::shape::check_non_empty(OP, w.shape())?;
    w.check_finite(OP, "weight")?;
    Ok([w.shape()[0], w.shape()[1]])
}

/// The plain finiteness scan of `matmul_impl`'s operands.
///
/// # Errors
/// [`Error::NonFinite`] naming `A` or `B`.
pub fn check_matmul_finite<T: Element>(a: &Tensor<T>, b: &Tensor<T>) -> Result<()> {
    a.check_finite("matmul", "A")?;
    b.check_finite("matmul", "B")
}

/// The output check of every `matmul_into`: `out` must have the product's shape.
pub fn check_matmul_out<T: Element>(out: &Tensor<T>, out_shape: &[usize]) -> Result<()> {
    if out.shape() != out_shape {
        return Err(Error::mismatch(
            "matmul",
            out.shape(),
            out_shape,
            "the output tensor must have the product's shape",
        ));
    }
    Ok(())
}

/// Checks shared by every `softmax`: rank ≥ 1, non-empty, no NaN and no `+inf`.
pub fn check_softmax<T: Element>(x: &Tensor<T>) -> Result<()> {
    const OP: &str = "softmax";
    if x.rank() == 0 {
        return Err(Error::invalid_shape(OP, x.shape(), "a scalar has no axis"));
    }
    crate::shape::check_non_empty(OP, x.shape())?;
    if let Some(p) = x
        .as_slice()
        .iter()
        .position(|v| v.is_nan() || (v.is_infinite() && v.is_sign_positive()))
    {
        return Err(Error::NonFinite {
            op: OP,
            operand: "x",
            index: p,
            value: x.as_slice()[p].as_f64(),
        });
    }
    Ok(())
}

/// Validation every `attention_into` performs: consistent layouts and finite operands.
///
/// Q is scanned entirely; K and V from row `spec.kv_rows_checked` on (the rows before it are the
/// caller's promise, see [`AttentionSpec::kv_rows_checked`]).
pub fn check_attention<T: Element>(
    q: &Heads<'_, T>,
    k: &Heads<'_, T>,
    v: &Heads<'_, T>,
    out: &HeadsMut<'_, T>,
    spec: &AttentionSpec,
) -> Result<AttentionDims> {
    use crate::attention::{check_heads_finite, check_heads_rows_finite};
    let dims = check_operands(q, k, v, out)?;
    check_heads_finite("attention", "Q", q)?;
    check_heads_rows_finite("attention", "K", k, spec.kv_rows_checked)?;
    check_heads_rows_finite("attention", "V", v, spec.kv_rows_checked)?;
    Ok(dims)
}
