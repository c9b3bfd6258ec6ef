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
//!     a = attention(q, K cache, V cache)             (attn_scale; the layer's sliding window)
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
use crate::model::state::State;
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
    /// Runs `tokens` through the model at positions `state.cache.len()..`, appends their K and V
    /// to the cache, and returns the logits of the rows selected by `which`
    /// (`[rows_selected, vocab_size]`, row-major).
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
        let c = &self.config;
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
        state.reserve(c, rows, rows - first_logit_row)?;
        let pos0 = state.cache.len();
        let n_kv = pos0 + rows;
        let State {
            cache,
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
                &self.token_embd[t * rb..(t + 1) * rb],
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

        // Cache rows `0..pos0` of every layer were scanned for NaN/∞ by the attention call of the
        // forward that wrote them (a forward that fails before `advance` leaves `len` unchanged,
        // so its rows are rewritten and rescanned), and nothing rewrites committed rows: only the
        // `rows` new positions need the check — O(rows), not O(cache), per decode step.
        let be = &self.backend;
        let eps = c.norm_eps;
        for (l, b) in self.blocks.iter().enumerate() {
            let window = c.layer_window(l);
            if let Some(w) = window {
                if n_kv > w {
                    return Err(Error::Unsupported {
                        op: OP,
                        backend: be.name(),
                        reason: format!(
                            "layer {l} attends over a sliding window of {w} positions, and {n_kv} \
                             positions exceed it"
                        ),
                    });
                }
            }
            let spec = AttentionSpec {
                kv_rows_checked: pos0,
                scale: Some(c.attn_scale),
                ..AttentionSpec::causal()
            };
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
            cache.write(l, k, v);
            let (k_all, v_all) = cache.layer(l, n_kv);
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

        // Final RMSNorm and the output head, for the selected rows only.
        let out_rows = rows - first_logit_row;
        let xs = &x[first_logit_row * dim..];
        let xn = &mut xb[..out_rows * dim];
        rmsnorm(xs, &self.output_norm, eps, xn);
        let logits = &mut logits[..out_rows * c.vocab_size];
        be.linear_into(xn, out_rows, &self.output, logits)?;
        if let Some(cap) = c.final_logit_softcap {
            softcap(logits, cap);
        }
        Ok(logits)
    }
}
