//! The forward pass of [`Transformer`]: one function for every architecture, the differences
//! read from [`TransformerConfig`](crate::model::TransformerConfig)'s hooks.
//!
//! ```text
//! x = embed(tokens) [· embed_scale] [→ Q·x when rotated]
//! for each block:
//!     n = RMSNorm(x)
//!     q, k, v = n·W_qᵀ, n·W_kᵀ, n·W_vᵀ
//!     [q, k = RMSNorm per head]                       (qk_norm)
//!     q, k = RoPE(q), RoPE(k)                        (the layer's base; adjacent or NEOX pairs)
//!     a = attention(q, K cache, V cache)             (attn_scale; the layer's sliding window,
//!                                                     its K/V in a sliding cache if the state has one)
//!     o = a·W_oᵀ  [→ RMSNorm(o) → Q·(…) when rotated] (post_norms)
//!     x += o
//!     n = RMSNorm(x)
//!     h = act(n·W_gateᵀ) ⊙ n·W_upᵀ                    (activation: SiLU or GELU-tanh)
//!     d = h·W_downᵀ [→ RMSNorm(d) → Q·(…) when rotated]
//!     x += d
//! logits = RMSNorm(x)·W_outᵀ [→ cap·tanh(logits/cap)]
//! ```

use crate::model::ops::{add_assign, gated, rmsnorm, rmsnorm_in_place, softcap};
use crate::model::rotate::Rotation;
use crate::model::state::{KvSlot, State};
use crate::model::transformer::Transformer;
use nanotensor_core::attention::{AttentionSpec, Heads, HeadsLayout, HeadsMut};
use nanotensor_core::backend::Backend;
use nanotensor_core::error::{Error, Result};

const OP: &str = "forward";

/// Which rows of a forward pass produce logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last row (the next-token distribution when generating).
    Last,
    /// Rows `start..rows` (perplexity scores only the second half of a chunk).
    From(usize),
}

/// The residual add of a block's attention or FFN output `delta` (`[rows, dim]`) into `x`:
/// through the post-norm `post` when the model has one (into `scratch`, then rotated by `q`
/// when the stream is rotated), as it is otherwise.
fn residual_add(
    x: &mut [f32],
    delta: &[f32],
    post: Option<&[f32]>,
    eps: f32,
    q: Option<&Rotation>,
    scratch: &mut [f32],
    rot_scratch: &mut [f64],
) {
    match post {
        None => add_assign(x, delta),
        Some(g) => {
            rmsnorm(delta, g, eps, scratch);
            if let Some(q) = q {
                q.apply_each(scratch, rot_scratch);
            }
            add_assign(x, scratch);
        }
    }
}

impl<B: Backend> Transformer<B> {
    /// Runs `tokens` through the model at positions `state.len()..`, appends their K and V
    /// to the cache, and returns the logits of the rows selected by `which`
    /// (`[rows_selected, vocab_size]`, row-major).
    ///
    /// A state that keeps its sliding-window layers in a [`SlidingKvCache`](crate::model::SlidingKvCache)
    /// takes at most one window of rows per batch: a longer pass runs as consecutive batches
    /// (the same function, as a causal model's rows depend only on the rows before them), and
    /// an error in a later batch leaves the earlier ones committed.
    ///
    /// # Errors
    /// No tokens, a token id outside the vocabulary ([`Error::OutOfRange`]), more tokens than
    /// the cache has room for ([`Error::ContextOverflow`]), a `which` past the last row, and the
    /// backend's errors (e.g. non-finite activations).
    pub fn forward<'s>(
        &self,
        state: &'s mut State,
        tokens: &[u32],
        which: Logits,
    ) -> Result<&'s [f32]> {
        let rows = tokens.len();
        if rows == 0 {
            return Err(Error::invalid_arg(OP, "forward needs at least one token"));
        }
        let first_logit_row = match which {
            Logits::Last => rows - 1,
            Logits::From(r) if r < rows => r,
            Logits::From(r) => {
                return Err(Error::OutOfRange {
                    op: OP,
                    index: r,
                    len: rows,
                })
            }
        };
        state.cache.check_room(rows)?;
        let batch = state.max_batch();
        let out_rows = rows - first_logit_row;
        state.reserve(&self.config, rows.min(batch), out_rows)?;
        let mut start = 0;
        while start < rows {
            let end = rows.min(start.saturating_add(batch));
            // This batch's rows that produce logits, and where they go.
            let first = first_logit_row.max(start);
            let logits = (first < end).then(|| (first - start, first - first_logit_row));
            self.forward_batch(state, &tokens[start..end], logits)?;
            start = end;
        }
        Ok(&state.logits[..out_rows * self.config.vocab_size])
    }

    /// One batch of [`Transformer::forward`]: `tokens` at positions `state.len()..`; with
    /// `logits = Some((r, at))`, the logits of rows `r..` go to logits rows `at..`.
    fn forward_batch(
        &self,
        state: &mut State,
        tokens: &[u32],
        logits_rows: Option<(usize, usize)>,
    ) -> Result<()> {
        let c = &self.config;
        let rows = tokens.len();
        let pos0 = state.cache.len();
        let n_kv = pos0 + rows;
        let State {
            cache,
            sliding,
            slots,
            rope,
            rope_local,
            x,
            xb,
            q,
            k,
            v,
            att,
            proj,
            gate,
            up,
            logits,
            rot_scratch,
        } = state;
        // The sliding cache drops rows no new query can see before this batch's are written;
        // its rows before `sliding_checked` were written (and scanned) by earlier batches.
        let sliding_checked = match sliding.as_mut() {
            Some(s) => {
                s.make_room(rows)?;
                s.stored()
            }
            None => 0,
        };
        let (dim, q_dim, kv_dim, ffn) = (c.dim, c.q_dim(), c.kv_dim(), c.ffn_dim);
        let x = &mut x[..rows * dim];
        let xb = &mut xb[..rows * dim];
        let q = &mut q[..rows * q_dim];
        let k = &mut k[..rows * kv_dim];
        let v = &mut v[..rows * kv_dim];
        let att = &mut att[..rows * q_dim];
        let proj = &mut proj[..rows * dim];
        let gate = &mut gate[..rows * ffn];
        let up = &mut up[..rows * ffn];
        let rotation = self.rotation.as_ref();

        // Token embedding: x[r] = token_embd[tokens[r]] (· embed_scale), rotated when the
        // stream is.
        for (r, &t) in tokens.iter().enumerate() {
            let t = t as usize;
            if t >= c.vocab_size {
                return Err(Error::OutOfRange {
                    op: "embedding",
                    index: t,
                    len: c.vocab_size,
                });
            }
            let rb = self.token_embd_row_bytes;
            let row = &mut x[r * dim..(r + 1) * dim];
            crate::gguf::dequant::dequantize_from(
                "token_embd.weight",
                self.token_embd_type,
                &self.token_embd.bytes()[t * rb..(t + 1) * rb],
                t * (dim / self.token_embd_type.block_size()),
                row,
            )?;
            if let Some(s) = c.embed_scale {
                row.iter_mut().for_each(|v| *v *= s);
            }
            if let Some(q) = rotation {
                q.apply_each(row, rot_scratch);
            }
        }

        // Committed cache rows (`0..pos0` of the full cache, `0..sliding_checked` of the sliding
        // one) were scanned for NaN/∞ by the attention call of the forward that wrote them (a
        // forward that fails before `advance` leaves them uncommitted, so its rows are rewritten
        // and rescanned), and nothing rewrites committed rows (the sliding cache only moves
        // them): only the `rows` new positions need the check — O(rows), not O(cache), per
        // decode step.
        let be = &self.backend;
        let eps = c.norm_eps;
        for (l, b) in self.blocks.iter().enumerate() {
            let window = c.layer_window(l);
            let rope = match (window, rope_local.as_ref()) {
                (Some(_), Some(local)) => local,
                _ => &*rope,
            };
            // Attention: x += [post-norm](W_o · attention(RoPE(W_q·n), RoPE(W_k·n), W_v·n)),
            // n = RMSNorm(x).
            rmsnorm(x, &b.attn_norm, eps, xb);
            be.linear_into(xb, rows, &b.wq, q)?;
            be.linear_into(xb, rows, &b.wk, k)?;
            be.linear_into(xb, rows, &b.wv, v)?;
            if let Some(g) = &b.q_norm {
                rmsnorm_in_place(q, g, eps);
            }
            if let Some(g) = &b.k_norm {
                rmsnorm_in_place(k, g, eps);
            }
            rope.apply(q, q_dim, pos0);
            rope.apply(k, kv_dim, pos0);
            // K and V of every position this batch's queries may see, and how many of their
            // rows earlier forwards already scanned for NaN/∞.
            let (k_all, v_all, n_kv, checked) = match (slots[l], sliding.as_mut()) {
                (KvSlot::Sliding(i), Some(s)) => {
                    s.write(i, k, v)?;
                    let (ka, va) = s.layer(i, sliding_checked + rows)?;
                    (ka, va, sliding_checked + rows, sliding_checked)
                }
                (KvSlot::Full(i), _) | (KvSlot::Sliding(i), None) => {
                    cache.write(i, k, v);
                    let (ka, va) = cache.layer(i, n_kv);
                    (ka, va, n_kv, pos0)
                }
            };
            let spec = AttentionSpec {
                kv_rows_checked: checked,
                scale: Some(c.attn_scale),
                window,
                ..AttentionSpec::causal()
            };
            be.attention_into(
                Heads {
                    data: q,
                    layout: HeadsLayout::token_major(c.n_heads, rows, c.head_dim),
                },
                Heads {
                    data: k_all,
                    layout: HeadsLayout::token_major(c.n_kv_heads, n_kv, c.head_dim),
                },
                Heads {
                    data: v_all,
                    layout: HeadsLayout::token_major(c.n_kv_heads, n_kv, c.head_dim),
                },
                HeadsMut {
                    data: att,
                    layout: HeadsLayout::token_major(c.n_heads, rows, c.head_dim),
                },
                &spec,
            )?;
            be.linear_into(att, rows, &b.wo, proj)?;
            let post = b.post_attn_norm.as_deref();
            residual_add(x, proj, post, eps, rotation, xb, rot_scratch);

            // FFN: x += [post-norm](W_down · (act(W_gate·n) ⊙ W_up·n)), n = RMSNorm(x).
            rmsnorm(x, &b.ffn_norm, eps, xb);
            be.linear_into(xb, rows, &b.w_gate, gate)?;
            be.linear_into(xb, rows, &b.w_up, up)?;
            gated(c.activation, gate, up);
            be.linear_into(gate, rows, &b.w_down, proj)?;
            let post = b.post_ffn_norm.as_deref();
            residual_add(x, proj, post, eps, rotation, xb, rot_scratch);
        }
        cache.advance(rows);
        if let Some(s) = sliding.as_mut() {
            s.advance(rows)?;
        }

        // Final RMSNorm and the output head, for the selected rows only.
        let Some((first, at)) = logits_rows else {
            return Ok(());
        };
        let out_rows = rows - first;
        let xs = &x[first * dim..];
        let xn = &mut xb[..out_rows * dim];
        rmsnorm(xs, &self.output_norm, eps, xn);
        let vocab = c.vocab_size;
        let logits = &mut logits[at * vocab..(at + out_rows) * vocab];
        be.linear_into(xn, out_rows, &self.output, logits)?;
        if let Some(cap) = c.final_logit_softcap {
            softcap(logits, cap);
        }
        Ok(())
    }
}
