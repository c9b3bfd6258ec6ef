//! Attention: the specification, strided head layouts, and the memory arithmetic of each path.
//!
//! Scaled dot-product attention for one query head `h` reading KV head `g = h / (H / H_kv)`:
//!
//! ```text
//! S = scale · Q_h · K_gᵀ            (n_q × n_kv scores)
//! S[i, j] = -inf  where causal and j > i + (n_kv - n_q)
//! S[i, j] = -inf  where a window W is set and j ≤ i + (n_kv - n_q) - W
//! P = softmax(S) along j            (rows that see no key give zeros)
//! O_h = P · V_g                     (n_q × d_v)
//! ```
//!
//! With a causal mask the queries are aligned to the *end* of the keys: query `i` sits at absolute
//! position `n_kv - n_q + i`. That is the usual convention for decoding against a KV cache
//! (`n_q = 1` sees every cached key) and reduces to the square lower-triangular mask when
//! `n_q == n_kv`.
//!
//! # Sliding window
//! A causal spec may also carry a window `W` ([`AttentionSpec::window`]): query `i` at absolute
//! position `p = n_kv - n_q + i` then sees only the keys `j` with `p - W < j ≤ p`, the last `W`
//! positions *including its own*, i.e. key `j` is visible iff `0 ≤ p - j < W`. This is the
//! convention of Hugging Face's `sliding_window` (its mask keeps `kv_idx > q_idx - sliding_window`)
//! and of llama.cpp's standard SWA (it masks when `p1 - p0 ≥ n_swa`), so Gemma 3's local layers
//! (`sliding_window = 512`) run with `window = Some(512)`. `W ≥ n_kv` (more precisely `W > p`)
//! changes nothing; `W = 1` lets each query see only its own key. Every query row sees the
//! contiguous key range [`AttentionDims::visible_range`].
//!
//! Two algorithms compute it. The *materialised* path (`AttentionAlgo::Materialized`) builds `S` for
//! every head — `H·n_q·n_kv` elements: 40 GB per head at n = 100,000 in f32. The *flash* path
//! (`AttentionAlgo::Flash`) streams K/V in blocks with an online softmax and needs O(n·d).

use crate::element::Element;
use crate::error::{Error, Result};

/// Which attention algorithm to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AttentionAlgo {
    /// Let the backend choose: flash when the materialised scores would exceed the threshold.
    #[default]
    Auto,
    /// Materialise the full score matrix, softmax it, multiply by V (`--algo naive` on the
    /// command line, the textbook algorithm; any backend may run it).
    Materialized,
    /// Tiled attention with an online softmax; no score matrix.
    Flash,
}

impl AttentionAlgo {
    /// Lower-case name used by the CLI (`--algo`) and JSON output (`algo`): `naive` for
    /// [`AttentionAlgo::Materialized`], the command line's established word for it.
    pub fn name(self) -> &'static str {
        match self {
            AttentionAlgo::Auto => "auto",
            AttentionAlgo::Materialized => "naive",
            AttentionAlgo::Flash => "flash",
        }
    }

    /// Parses `naive` (or `materialized`), `flash` or `auto`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(AttentionAlgo::Auto),
            "naive" | "materialized" => Ok(AttentionAlgo::Materialized),
            "flash" => Ok(AttentionAlgo::Flash),
            other => Err(Error::invalid_arg(
                "attention",
                format!("unknown algorithm `{other}` (expected naive, flash or auto)"),
            )),
        }
    }
}

/// Options of one attention call; the head counts and lengths come from the operands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Apply the causal mask (end-aligned, see the module docs).
    pub causal: bool,
    /// Multiplier of `Q·Kᵀ`; `None` means `1/√d_k`.
    pub scale: Option<f64>,
    /// Algorithm to run.
    pub algo: AttentionAlgo,
    /// Scratch memory the call may use in bytes; `None` means [`crate::memory::default_budget`].
    pub max_memory: Option<u64>,
    /// For [`AttentionAlgo::Auto`]: materialise the scores only when they take at most this many
    /// bytes. `None` means [`AttentionSpec::DEFAULT_AUTO_THRESHOLD`].
    pub auto_threshold: Option<u64>,
    /// Leading K/V rows (positions `0..kv_rows_checked` of every KV head) that the caller
    /// vouches are finite because an earlier attention call already scanned them and they have
    /// not changed since — a KV cache whose rows were checked by the call that appended them.
    /// `attention_into` then scans only K/V rows `kv_rows_checked..n_kv` (and all of Q) for
    /// NaN/∞, so a decode step reads O(new rows) for validation instead of the whole cache.
    /// `0` (the default) scans everything, as untrusted input needs; values past `n_kv` mean
    /// `n_kv`. A false promise cannot cause undefined behaviour, only a NaN/∞ output.
    pub kv_rows_checked: usize,
    /// Sliding window (requires `causal`): query at absolute position `p` sees only the keys at
    /// positions `p - W < j ≤ p` — the last `W` positions including its own (the Hugging Face /
    /// llama.cpp convention, see the module docs). `None` (the default) sees the whole causal
    /// prefix. `Some(0)` or a window without `causal` is refused by
    /// [`AttentionSpec::validate`].
    pub window: Option<usize>,
}

impl Default for AttentionSpec {
    fn default() -> Self {
        AttentionSpec {
            causal: false,
            scale: None,
            algo: AttentionAlgo::Auto,
            max_memory: None,
            auto_threshold: None,
            kv_rows_checked: 0,
            window: None,
        }
    }
}

impl AttentionSpec {
    /// Score matrices up to this size (16 MiB, comfortably inside L3 + DRAM streaming) are still
    /// cheap to materialise; beyond it `Auto` picks flash.
    pub const DEFAULT_AUTO_THRESHOLD: u64 = 16 << 20;

    /// A causal spec with default scale and algorithm.
    pub fn causal() -> Self {
        AttentionSpec {
            causal: true,
            ..Self::default()
        }
    }

    /// A causal spec with a sliding window of `window` positions (see [`AttentionSpec::window`]).
    pub fn sliding(window: usize) -> Self {
        AttentionSpec {
            causal: true,
            window: Some(window),
            ..Self::default()
        }
    }

    /// The scale to use for head dimension `d`.
    pub fn scale_for(&self, head_dim: usize) -> f64 {
        self.scale
            .unwrap_or_else(|| 1.0 / (head_dim.max(1) as f64).sqrt())
    }

    /// Checks the fields that have an invalid range: a `scale` must be finite and positive (a NaN
    /// scale would turn every score into NaN, an infinite one every softmax into a hard max or
    /// NaN, and a non-positive one inverts or flattens attention).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = self.scale {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::invalid_arg(
                    "attention",
                    format!("scale must be finite and positive, got {s}"),
                ));
            }
        }
        match self.window {
            Some(0) => Err(Error::invalid_arg(
                "attention",
                "window must be at least 1 (a query always sees its own position)",
            )),
            Some(w) if !self.causal => Err(Error::invalid_arg(
                "attention",
                format!("a sliding window ({w}) needs the causal mask"),
            )),
            _ => Ok(()),
        }
    }

    /// The memory budget in force.
    pub fn budget(&self) -> u64 {
        self.max_memory
            .unwrap_or_else(crate::memory::default_budget)
    }
}

/// Where the rows of each head live in a flat buffer.
///
/// Element `x` of row `i` of head `h` is at `h·head_stride + i·row_stride + x`. Contiguous
/// `[H, N, d]` has `head_stride = N·d, row_stride = d`; token-major `[N, H, d]` (what a linear
/// projection produces, and how a KV cache appends) has `head_stride = d, row_stride = H·d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadsLayout {
    /// Number of heads.
    pub heads: usize,
    /// Rows (sequence positions) per head.
    pub rows: usize,
    /// Elements per row (the head dimension).
    pub dim: usize,
    /// Distance in elements between the first rows of consecutive heads.
    pub head_stride: usize,
    /// Distance in elements between consecutive rows of one head.
    pub row_stride: usize,
}

impl HeadsLayout {
    /// Contiguous `[heads, rows, dim]`.
    pub fn contiguous(heads: usize, rows: usize, dim: usize) -> Self {
        HeadsLayout {
            heads,
            rows,
            dim,
            head_stride: rows * dim,
            row_stride: dim,
        }
    }

    /// Token-major `[rows, heads, dim]`.
    pub fn token_major(heads: usize, rows: usize, dim: usize) -> Self {
        HeadsLayout {
            heads,
            rows,
            dim,
            head_stride: dim,
            row_stride: heads * dim,
        }
    }

    /// Flat offset of row `i` of head `h`.
    #[inline]
    pub fn offset(&self, h: usize, i: usize) -> usize {
        h * self.head_stride + i * self.row_stride
    }

    /// Smallest buffer length that holds every row, or `None` on overflow. Zero when empty.
    pub fn required_len(&self) -> Option<usize> {
        if self.heads == 0 || self.rows == 0 || self.dim == 0 {
            return Some(0);
        }
        let last_h = (self.heads - 1).checked_mul(self.head_stride)?;
        let last_i = (self.rows - 1).checked_mul(self.row_stride)?;
        last_h.checked_add(last_i)?.checked_add(self.dim)
    }

    fn shape(&self) -> [usize; 3] {
        [self.heads, self.rows, self.dim]
    }
}

/// The sizes of one attention call, validated from its operands' layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    /// Query heads `H`.
    pub n_heads: usize,
    /// Key/value heads `H_kv` (divides `H`).
    pub n_kv_heads: usize,
    /// Query rows.
    pub n_q: usize,
    /// Key/value rows.
    pub n_kv: usize,
    /// Head dimension of Q and K.
    pub head_dim: usize,
    /// Head dimension of V and the output.
    pub v_dim: usize,
}

impl AttentionDims {
    /// Checks that the four layouts describe one attention call and that each buffer is long
    /// enough for its layout.
    pub fn validate(
        q: (&HeadsLayout, usize),
        k: (&HeadsLayout, usize),
        v: (&HeadsLayout, usize),
        out: (&HeadsLayout, usize),
    ) -> Result<Self> {
        const OP: &str = "attention";
        let (ql, kl, vl, ol) = (q.0, k.0, v.0, out.0);
        for (l, len, name) in [
            (ql, q.1, "Q"),
            (kl, k.1, "K"),
            (vl, v.1, "V"),
            (ol, out.1, "output"),
        ] {
            if l.heads == 0 || l.rows == 0 || l.dim == 0 {
                return Err(Error::invalid_shape(
                    OP,
                    &l.shape(),
                    format!("{name} is empty"),
                ));
            }
            match l.required_len() {
                Some(need) if need <= len => {}
                _ => {
                    return Err(Error::invalid_shape(
                        OP,
                        &l.shape(),
                        format!("{name} buffer of {len} elements is too short for its layout"),
                    ))
                }
            }
        }
        if kl.heads != vl.heads || kl.rows != vl.rows {
            return Err(Error::mismatch(
                OP,
                &kl.shape(),
                &vl.shape(),
                "K and V need the same heads and rows",
            ));
        }
        if ql.dim != kl.dim {
            return Err(Error::mismatch(
                OP,
                &ql.shape(),
                &kl.shape(),
                "Q and K need the same head dimension",
            ));
        }
        if ql.heads % kl.heads != 0 {
            return Err(Error::mismatch(
                OP,
                &ql.shape(),
                &kl.shape(),
                format!(
                    "{} query heads are not a multiple of {} KV heads",
                    ql.heads, kl.heads
                ),
            ));
        }
        if ol.heads != ql.heads || ol.rows != ql.rows || ol.dim != vl.dim {
            return Err(Error::mismatch(
                OP,
                &ql.shape(),
                &ol.shape(),
                "output must be [heads of Q, rows of Q, dim of V]",
            ));
        }
        Ok(AttentionDims {
            n_heads: ql.heads,
            n_kv_heads: kl.heads,
            n_q: ql.rows,
            n_kv: kl.rows,
            head_dim: ql.dim,
            v_dim: vl.dim,
        })
    }

    /// Query heads per KV head.
    pub fn group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// The KV head that query head `h` reads.
    #[inline]
    pub fn kv_head(&self, h: usize) -> usize {
        h / self.group()
    }

    /// Number of keys query row `i` may see: all of them, or under the causal mask the first
    /// `n_kv - n_q + i + 1` (clamped to `0..=n_kv`).
    #[inline]
    pub fn visible_keys(&self, i: usize, causal: bool) -> usize {
        if causal {
            (self.n_kv + i + 1).saturating_sub(self.n_q).min(self.n_kv)
        } else {
            self.n_kv
        }
    }

    /// The keys query row `i` sees, as the range `lo..hi`: `hi` = [`AttentionDims::visible_keys`],
    /// and with a sliding window `W` (which only applies with `causal`) `lo = hi − W` clamped at
    /// 0, i.e. the positions `p − W < j ≤ p` of query position `p = n_kv − n_q + i`. Empty when
    /// the query precedes every key (`n_q > n_kv`).
    #[inline]
    pub fn visible_range(
        &self,
        i: usize,
        causal: bool,
        window: Option<usize>,
    ) -> std::ops::Range<usize> {
        let hi = self.visible_keys(i, causal);
        let lo = match window {
            Some(w) if causal => hi.saturating_sub(w),
            _ => 0,
        };
        lo..hi
    }

    /// [`AttentionDims::visible_range`] with the mask fields of `spec`.
    #[inline]
    pub fn visible_range_for(&self, i: usize, spec: &AttentionSpec) -> std::ops::Range<usize> {
        self.visible_range(i, spec.causal, spec.window)
    }

    /// Floating-point operations: `2·H·n_q·n_kv·(d + d_v)` (Q·Kᵀ and P·V), halved when causal.
    /// For `d = d_v` this is the familiar `4·H·N²·d`.
    pub fn flops(&self, causal: bool) -> f64 {
        let full = 2.0
            * self.n_heads as f64
            * self.n_q as f64
            * self.n_kv as f64
            * (self.head_dim + self.v_dim) as f64;
        if causal {
            full / 2.0
        } else {
            full
        }
    }

    /// [`AttentionDims::flops`] for a spec that may carry a sliding window: with a window, the
    /// exact count `2·(d + d_v)·H·Σ_i |visible_range(i)|` (a window makes the work per query
    /// `O(W)`, not `O(n_kv)`); without one, `flops(causal)`.
    pub fn flops_for(&self, spec: &AttentionSpec) -> f64 {
        match spec.window {
            Some(_) if spec.causal => {
                let pairs: f64 = (0..self.n_q)
                    .map(|i| self.visible_range_for(i, spec).len() as f64)
                    .sum();
                2.0 * self.n_heads as f64 * pairs * (self.head_dim + self.v_dim) as f64
            }
            _ => self.flops(spec.causal),
        }
    }

    /// Bytes of the materialised score matrices: `H·n_q·n_kv` elements of `elem_size` bytes.
    pub fn materialized_scores_bytes(&self, elem_size: usize) -> u64 {
        (self.n_heads as u64)
            .saturating_mul(self.n_q as u64)
            .saturating_mul(self.n_kv as u64)
            .saturating_mul(elem_size as u64)
    }

    /// A description of the score matrices for error messages.
    pub fn scores_detail(&self, elem: &str) -> String {
        format!(
            " for the {} × {} × {} {elem} score matrix ({} per head)",
            self.n_heads,
            self.n_q,
            self.n_kv,
            crate::error::human_bytes(
                self.materialized_scores_bytes(elem_size_of(elem)) / self.n_heads.max(1) as u64
            )
        )
    }
}

fn elem_size_of(name: &str) -> usize {
    match name {
        "f64" => 8,
        "bf16" | "f16" => 2,
        _ => 4,
    }
}

/// What an attention call will do: the algorithm chosen and the scratch memory it needs beyond
/// its operands and output. Computable before anything is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionPlan {
    /// The algorithm that runs (never `Auto`).
    pub algo: AttentionAlgo,
    /// Extra bytes the call allocates.
    pub scratch_bytes: u64,
}

/// Borrowed read-only heads: a buffer plus its layout.
#[derive(Clone, Copy, Debug)]
pub struct Heads<'a, T> {
    /// The flat buffer.
    pub data: &'a [T],
    /// Where each head's rows are.
    pub layout: HeadsLayout,
}

/// Borrowed writable heads (the output of attention).
#[derive(Debug)]
pub struct HeadsMut<'a, T> {
    /// The flat buffer.
    pub data: &'a mut [T],
    /// Where each head's rows are.
    pub layout: HeadsLayout,
}

impl<'a, T: Element> Heads<'a, T> {
    /// Row `i` of head `h`. Assumes a validated layout.
    #[inline]
    pub fn row(&self, h: usize, i: usize) -> &'a [T] {
        let o = self.layout.offset(h, i);
        &self.data[o..o + self.layout.dim]
    }
}

impl<T: Element> HeadsMut<'_, T> {
    /// Row `i` of head `h`, mutably. Assumes a validated layout.
    #[inline]
    pub fn row_mut(&mut self, h: usize, i: usize) -> &mut [T] {
        let o = self.layout.offset(h, i);
        let d = self.layout.dim;
        &mut self.data[o..o + d]
    }
}

/// Validates the operand layouts of an attention call ([`crate::Backend::attention_into`] does,
/// before any backend code runs).
pub fn check_operands<T: Element>(
    q: &Heads<'_, T>,
    k: &Heads<'_, T>,
    v: &Heads<'_, T>,
    out: &HeadsMut<'_, T>,
) -> Result<AttentionDims> {
    AttentionDims::validate(
        (&q.layout, q.data.len()),
        (&k.layout, k.data.len()),
        (&v.layout, v.data.len()),
        (&out.layout, out.data.len()),
    )
}

/// Fails with [`Error::NonFinite`] if any element a layout covers is NaN or infinite.
pub fn check_heads_finite<T: Element>(
    op: &'static str,
    operand: &'static str,
    x: &Heads<'_, T>,
) -> Result<()> {
    check_heads_rows_finite(op, operand, x, 0)
}

/// [`check_heads_finite`] restricted to rows `first_row..` of every head (rows before it are not
/// read; `first_row ≥ rows` checks nothing). The error's `index` is the flat buffer offset.
pub fn check_heads_rows_finite<T: Element>(
    op: &'static str,
    operand: &'static str,
    x: &Heads<'_, T>,
    first_row: usize,
) -> Result<()> {
    for h in 0..x.layout.heads {
        for i in first_row.min(x.layout.rows)..x.layout.rows {
            let row = x.row(h, i);
            if let Some(p) = crate::element::first_non_finite(row) {
                return Err(Error::NonFinite {
                    op,
                    operand,
                    index: x.layout.offset(h, i) + p,
                    value: row[p].as_f64(),
                });
            }
        }
    }
    Ok(())
}

/// Interprets attention operand shapes `[H, N, d]` or `[B, H, N, d]` as `(batch, layout)`.
pub fn layout_of_shape(op: &'static str, shape: &[usize]) -> Result<(usize, HeadsLayout)> {
    match *shape {
        [h, n, d] => Ok((1, HeadsLayout::contiguous(h, n, d))),
        [b, h, n, d] => Ok((b, HeadsLayout::contiguous(h, n, d))),
        _ => Err(Error::invalid_shape(
            op,
            shape,
            "attention operands are [heads, seq, dim] or [batch, heads, seq, dim]",
        )),
    }
}

/// The tensor form of an attention call (`q` `[H, n_q, d]`, `k` `[H_kv, n_kv, d]`, `v`
/// `[H_kv, n_kv, d_v]`, each optionally with the same leading batch dim) as per-batch-entry
/// layouts: what [`crate::Backend::attention`] and the float64 reference both take apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorAttention {
    /// Batch entries (1 without a batch dim).
    pub batch: usize,
    /// Layouts of Q, K, V and the contiguous output `[H, n_q, d_v]` within one batch entry.
    pub q: HeadsLayout,
    /// See [`TensorAttention::q`].
    pub k: HeadsLayout,
    /// See [`TensorAttention::q`].
    pub v: HeadsLayout,
    /// See [`TensorAttention::q`].
    pub out: HeadsLayout,
    /// Elements of Q, K, V and the output per batch entry.
    pub per_entry: [usize; 4],
    /// The validated sizes of one batch entry.
    pub dims: AttentionDims,
}

impl TensorAttention {
    /// Takes the shapes apart and validates them as one attention call per batch entry.
    ///
    /// # Errors
    /// Ranks other than 3 or 4, differing ranks or batch sizes, and the checks of
    /// [`AttentionDims::validate`].
    pub fn new(op: &'static str, q: &[usize], k: &[usize], v: &[usize]) -> Result<Self> {
        let (bq, ql) = layout_of_shape(op, q)?;
        let (bk, kl) = layout_of_shape(op, k)?;
        let (bv, vl) = layout_of_shape(op, v)?;
        if q.len() != k.len() || k.len() != v.len() || bq != bk || bk != bv {
            return Err(Error::mismatch(
                op,
                q,
                k,
                "Q, K and V need the same rank and batch size",
            ));
        }
        let ol = HeadsLayout::contiguous(ql.heads, ql.rows, vl.dim);
        let per = |l: &HeadsLayout| l.required_len().unwrap_or(usize::MAX);
        let per_entry = [per(&ql), per(&kl), per(&vl), per(&ol)];
        let dims = AttentionDims::validate(
            (&ql, per_entry[0]),
            (&kl, per_entry[1]),
            (&vl, per_entry[2]),
            (&ol, per_entry[3]),
        )?;
        Ok(TensorAttention {
            batch: bq,
            q: ql,
            k: kl,
            v: vl,
            out: ol,
            per_entry,
            dims,
        })
    }

    /// The output shape: `q`'s with its last dim replaced by `d_v`.
    pub fn out_shape(&self, q: &[usize]) -> Vec<usize> {
        let mut shape = q.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = self.v.dim;
        }
        shape
    }

    /// Batch entry `b` of operand `which` (0 = Q, 1 = K, 2 = V) given as its tensor's data.
    pub fn entry<'a, T: Element>(&self, data: &'a [T], which: usize, b: usize) -> Heads<'a, T> {
        let n = self.per_entry[which];
        let layout = [self.q, self.k, self.v][which];
        Heads {
            data: &data[b * n..(b + 1) * n],
            layout,
        }
    }
}

/// Numerically stable softmax of each `n`-long row of `x` in place, computed in f64 whatever the
/// element type: `y_j = exp(x_j − max) / Σ exp(x_i − max)`. `-inf` entries are masks (probability
/// 0) and a row that is entirely `-inf` becomes zeros.
///
/// The one scalar row softmax of the engine: the naive backend's, the float paths' for element
/// types without a SIMD kernel, and the float64 reference's.
pub fn softmax_rows<T: Element>(x: &mut [T], n: usize) {
    for row in x.chunks_exact_mut(n.max(1)) {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.as_f64()));
        if max == f64::NEG_INFINITY {
            row.fill(T::zero());
            continue;
        }
        let sum: f64 = row.iter().map(|v| (v.as_f64() - max).exp()).sum();
        for v in row.iter_mut() {
            *v = T::from_f64((v.as_f64() - max).exp() / sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundred_thousand_tokens_need_forty_gigabytes_per_head() {
        let d = AttentionDims {
            n_heads: 1,
            n_kv_heads: 1,
            n_q: 100_000,
            n_kv: 100_000,
            head_dim: 64,
            v_dim: 64,
        };
        assert_eq!(d.materialized_scores_bytes(4), 40_000_000_000);
        assert!(d.scores_detail("f32").contains("40.0 GB per head"));
        assert_eq!(d.flops(false), 4.0 * 1e10 * 64.0);
        assert_eq!(d.flops(true), 2.0 * 1e10 * 64.0);
    }

    #[test]
    fn causal_visibility_is_end_aligned() {
        let d = AttentionDims {
            n_heads: 1,
            n_kv_heads: 1,
            n_q: 2,
            n_kv: 5,
            head_dim: 1,
            v_dim: 1,
        };
        assert_eq!(d.visible_keys(0, true), 4);
        assert_eq!(d.visible_keys(1, true), 5);
        assert_eq!(d.visible_keys(0, false), 5);
        let over = AttentionDims {
            n_q: 7,
            n_kv: 5,
            ..d
        };
        assert_eq!(over.visible_keys(0, true), 0);
        assert_eq!(over.visible_keys(6, true), 5);
    }

    #[test]
    fn sliding_window_keeps_the_last_w_positions_including_the_query() {
        // n_q = 3 queries at positions 5, 6, 7 of n_kv = 8 keys.
        let d = AttentionDims {
            n_heads: 1,
            n_kv_heads: 1,
            n_q: 3,
            n_kv: 8,
            head_dim: 1,
            v_dim: 1,
        };
        // W = 3: position p sees p-2, p-1, p (`p - j < 3`).
        assert_eq!(d.visible_range(0, true, Some(3)), 3..6);
        assert_eq!(d.visible_range(2, true, Some(3)), 5..8);
        assert_eq!(d.visible_range(2, true, Some(1)), 7..8);
        // W past the position: the whole causal prefix.
        assert_eq!(d.visible_range(0, true, Some(6)), 0..6);
        assert_eq!(d.visible_range(0, true, Some(100)), 0..6);
        assert_eq!(d.visible_range(1, true, None), 0..7);
        // The window is a causal notion: without causal it does not apply.
        assert_eq!(d.visible_range(0, false, Some(2)), 0..8);
        // Queries before every key see nothing, window or not.
        let over = AttentionDims { n_q: 10, ..d };
        assert_eq!(over.visible_range(0, true, Some(2)), 0..0);
        assert_eq!(over.visible_range(9, true, Some(2)), 6..8);
        // Exact flops: 3 queries × 3 keys × 2·(d + d_v) = 36.
        assert_eq!(d.flops_for(&AttentionSpec::sliding(3)), 36.0);
        assert_eq!(d.flops_for(&AttentionSpec::causal()), d.flops(true));
    }

    #[test]
    fn spec_validation_refuses_a_zero_or_non_causal_window() {
        assert!(AttentionSpec::sliding(1).validate().is_ok());
        assert!(AttentionSpec::sliding(512).validate().is_ok());
        let zero = AttentionSpec::sliding(0).validate().unwrap_err();
        assert!(matches!(zero, Error::InvalidArgument { .. }), "{zero}");
        let acausal = AttentionSpec {
            window: Some(4),
            ..AttentionSpec::default()
        };
        let e = acausal.validate().unwrap_err();
        assert!(e.to_string().contains("causal"), "{e}");
        assert_eq!(AttentionSpec::default().window, None);
        assert_eq!(AttentionSpec::causal().window, None);
    }

    #[test]
    fn validation_rejects_bad_groups_and_short_buffers() {
        let q = HeadsLayout::contiguous(6, 4, 8);
        let k = HeadsLayout::contiguous(4, 4, 8);
        let o = HeadsLayout::contiguous(6, 4, 8);
        let e = AttentionDims::validate((&q, 192), (&k, 128), (&k, 128), (&o, 192)).unwrap_err();
        assert!(e.to_string().contains("not a multiple"), "{e}");
        let k = HeadsLayout::contiguous(2, 4, 8);
        assert!(AttentionDims::validate((&q, 192), (&k, 64), (&k, 63), (&o, 192)).is_err());
        let d = AttentionDims::validate((&q, 192), (&k, 64), (&k, 64), (&o, 192)).unwrap();
        assert_eq!((d.group(), d.kv_head(5)), (3, 1));
    }

    #[test]
    fn row_restricted_finiteness_check_skips_only_the_vouched_rows() {
        // Token-major 2 heads × 3 rows × 2: row r of head h at 4r + 2h.
        let l = HeadsLayout::token_major(2, 3, 2);
        let mut data = [0.5f32; 12];
        data[3] = f32::NAN; // row 0, head 1
        let x = Heads {
            data: &data,
            layout: l,
        };
        assert!(check_heads_finite("t", "x", &x).is_err());
        assert!(check_heads_rows_finite("t", "x", &x, 1).is_ok());
        assert!(check_heads_rows_finite("t", "x", &x, 7).is_ok());
        data[8] = f32::INFINITY; // row 2, head 0
        let x = Heads {
            data: &data,
            layout: l,
        };
        match check_heads_rows_finite("t", "x", &x, 1) {
            Err(Error::NonFinite { index, value, .. }) => {
                assert_eq!(index, 8);
                assert_eq!(value, f64::INFINITY);
            }
            other => panic!("{other:?}"),
        }
        assert!(check_heads_rows_finite("t", "x", &x, 3).is_ok());
    }

    #[test]
    fn token_major_layout_offsets() {
        let l = HeadsLayout::token_major(3, 5, 4);
        assert_eq!(l.offset(1, 2), 2 * 12 + 4);
        assert_eq!(l.required_len(), Some(60));
    }
}
