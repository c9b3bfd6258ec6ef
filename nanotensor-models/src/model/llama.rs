//! The LLaMA decoder (Touvron et al., 2023) as SmolLM2 uses it, generic over the [`Backend`].
//!
//! Reading order follows one token's data: [`LlamaConfig`] (the hyperparameters), [`Llama`] (the
//! weights, each field with its shape), [`State`] (the activations and the KV cache), then
//! [`Llama::forward`]: embed → blocks (RMSNorm → Q/K/V → RoPE → attention → output projection →
//! residual → RMSNorm → SwiGLU FFN → residual) → final RMSNorm → logits.
//!
//! Every matrix goes through [`Backend::prepare`] once at load (dequantized from the GGUF to
//! `f32`, then packed or quantized as the backend prefers), and every product is a
//! [`Backend::linear_into`] with `rows` = tokens: a prompt is one batched pass, a decode step is a
//! one-row pass. Attention reads the KV cache in place through token-major [`Heads`] views.

use crate::gguf::{GgmlType, GgufFile};
use crate::model::equalize;
use crate::model::ops::{add_assign, rmsnorm, swiglu};
use crate::model::rotate::{self, Rotation};
use crate::model::state::State;
use nanotensor_core::attention::{AttentionSpec, Heads, HeadsLayout, HeadsMut};
use nanotensor_core::backend::{Backend, LoadTransforms, PreparedWeight};
use nanotensor_core::error::{Error, Result};
use nanotensor_core::tensor::Tensor;

const OP: &str = "llama";

/// The hyperparameters of a LLaMA model, read from the GGUF metadata (`llama.*` keys).
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Transformer blocks (`llama.block_count`).
    pub n_layers: usize,
    /// Width of the residual stream (`llama.embedding_length`).
    pub dim: usize,
    /// Hidden width of the SwiGLU FFN (`llama.feed_forward_length`).
    pub ffn_dim: usize,
    /// Query heads (`llama.attention.head_count`).
    pub n_heads: usize,
    /// Key/value heads (`llama.attention.head_count_kv`); divides `n_heads` (grouped-query
    /// attention: query head `h` reads KV head `h / (n_heads / n_kv_heads)`).
    pub n_kv_heads: usize,
    /// `dim / n_heads`.
    pub head_dim: usize,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    pub norm_eps: f32,
    /// RoPE frequency base (`llama.rope.freq_base`, 10000 when absent).
    pub rope_base: f64,
    /// Positions the model was trained for (`llama.context_length`).
    pub context_length: usize,
    /// Vocabulary size: rows of `token_embd.weight`.
    pub vocab_size: usize,
}

impl LlamaConfig {
    /// Reads the hyperparameters of a `llama` GGUF file and checks that they fit together.
    ///
    /// # Errors
    /// [`Error::Format`] for another architecture or inconsistent sizes;
    /// [`Error::MissingKey`] / [`Error::KeyType`] for absent or mistyped keys.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch = file.architecture()?;
        if arch != "llama" {
            return Err(Error::format(
                OP,
                format!("architecture `{arch}` is not supported (only `llama`)"),
            ));
        }
        let n_heads = file.get_usize("llama.attention.head_count")?;
        let dim = file.get_usize("llama.embedding_length")?;
        let rope_base = match file.get("llama.rope.freq_base") {
            Some(_) => f64::from(file.get_f32("llama.rope.freq_base")?),
            None => 10_000.0,
        };
        let embd = file.tensor("token_embd.weight")?;
        let cfg = LlamaConfig {
            n_layers: file.get_usize("llama.block_count")?,
            dim,
            ffn_dim: file.get_usize("llama.feed_forward_length")?,
            n_heads,
            n_kv_heads: match file.get("llama.attention.head_count_kv") {
                Some(_) => file.get_usize("llama.attention.head_count_kv")?,
                None => n_heads,
            },
            head_dim: dim.checked_div(n_heads).unwrap_or(0),
            norm_eps: file.get_f32("llama.attention.layer_norm_rms_epsilon")?,
            rope_base,
            context_length: file.get_usize("llama.context_length")?,
            vocab_size: embd.shape.first().copied().unwrap_or(0),
        };
        cfg.validate()?;
        if let Some(rot) = file.get("llama.rope.dimension_count") {
            let rot = rot.as_integer().unwrap_or(-1);
            if rot != cfg.head_dim as i128 {
                return Err(Error::format(
                    OP,
                    format!(
                        "partial rotary embedding ({rot} of {} dims) is not supported",
                        cfg.head_dim
                    ),
                ));
            }
        }
        if let Some(v) = file.get("llama.vocab_size").and_then(|v| v.as_integer()) {
            if v != cfg.vocab_size as i128 {
                return Err(Error::format(
                    OP,
                    format!(
                        "llama.vocab_size {v} differs from token_embd rows {}",
                        cfg.vocab_size
                    ),
                ));
            }
        }
        Ok(cfg)
    }

    /// Checks that the sizes are positive and consistent.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            self.n_layers,
            self.dim,
            self.ffn_dim,
            self.n_heads,
            self.n_kv_heads,
            self.context_length,
            self.vocab_size,
        ];
        if sizes.contains(&0) {
            return Err(Error::format(OP, format!("a zero size in {self:?}")));
        }
        if !self.dim.is_multiple_of(self.n_heads)
            || self.head_dim.checked_mul(self.n_heads) != Some(self.dim)
        {
            return Err(Error::format(
                OP,
                format!(
                    "embedding {} is not heads {} × head_dim",
                    self.dim, self.n_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(Error::format(
                OP,
                format!(
                    "head_dim {} must be even and {} heads a multiple of {} KV heads",
                    self.head_dim, self.n_heads, self.n_kv_heads
                ),
            ));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0 && self.rope_base > 0.0) {
            return Err(Error::format(OP, "bad RMSNorm epsilon or RoPE base"));
        }
        // The sizes come from the file: the loader and the state multiply them, so every
        // product they form must fit. (Q and K/V widths are at most `dim`: checked above.)
        for (what, a, b) in [
            ("token_embd.weight", self.vocab_size, self.dim),
            ("llama.feed_forward_length", self.ffn_dim, self.dim),
        ] {
            if a.checked_mul(b).is_none() {
                return Err(Error::overflow(
                    OP,
                    what,
                    format!("the {a}×{b} matrix's element count"),
                ));
            }
        }
        Ok(())
    }

    /// Values per row of Q: `n_heads · head_dim` (`dim` in a validated config; saturates in
    /// one whose sizes do not fit, which then matches no tensor).
    pub fn q_dim(&self) -> usize {
        self.n_heads.saturating_mul(self.head_dim)
    }

    /// Values per row of K and V: `n_kv_heads · head_dim` (saturates like [`Self::q_dim`]).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads.saturating_mul(self.head_dim)
    }
}

/// The weights of one transformer block.
struct Block<B: Backend> {
    /// RMSNorm gain before attention: `[dim]` (`blk.N.attn_norm.weight`).
    attn_norm: Vec<f32>,
    /// Query projection: `[n_heads · head_dim, dim]` (`attn_q`).
    wq: B::Weight<f32>,
    /// Key projection: `[n_kv_heads · head_dim, dim]` (`attn_k`).
    wk: B::Weight<f32>,
    /// Value projection: `[n_kv_heads · head_dim, dim]` (`attn_v`).
    wv: B::Weight<f32>,
    /// Attention output projection: `[dim, n_heads · head_dim]` (`attn_output`).
    wo: B::Weight<f32>,
    /// RMSNorm gain before the FFN: `[dim]` (`ffn_norm`).
    ffn_norm: Vec<f32>,
    /// SwiGLU gate projection: `[ffn_dim, dim]` (`ffn_gate`).
    w_gate: B::Weight<f32>,
    /// SwiGLU up projection: `[ffn_dim, dim]` (`ffn_up`).
    w_up: B::Weight<f32>,
    /// FFN down projection: `[dim, ffn_dim]` (`ffn_down`).
    w_down: B::Weight<f32>,
}

/// A LLaMA model whose matrices live in backend `B`'s prepared form.
pub struct Llama<B: Backend> {
    backend: B,
    config: LlamaConfig,
    /// Token embedding table as stored in the file (e.g. Q8_0 blocks): `[vocab_size, dim]`;
    /// a row is dequantized when its token is looked up.
    token_embd: Vec<u8>,
    /// Element type of `token_embd`.
    token_embd_type: GgmlType,
    /// Bytes of one row of `token_embd`.
    token_embd_row_bytes: usize,
    /// The transformer blocks, first to last: `[n_layers]`.
    blocks: Vec<Block<B>>,
    /// Final RMSNorm gain: `[dim]` (`output_norm.weight`).
    output_norm: Vec<f32>,
    /// Output head (LM head): `[vocab_size, dim]`; `output.weight`, or the token embedding when
    /// the file has none (tied weights).
    output: B::Weight<f32>,
    /// Whether `output` was tied to the token embedding.
    tied_output: bool,
    /// The rotation of the residual stream, when the backend asked for one
    /// ([`LoadTransforms::rotate`]): applied to each token's embedding; the matrices and norm
    /// gains were rewritten at load to match (see [`rotate`]).
    rotation: Option<Rotation>,
    /// Ids that end a generation, from the file (`tokenizer.ggml.eos_token_id`, and
    /// `tokenizer.ggml.eot_token_id` where the model has an end-of-turn token).
    end_of_generation: Vec<u32>,
}

impl<B: Backend> std::fmt::Debug for Llama<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama")
            .field("backend", &self.backend.name())
            .field("config", &self.config)
            .field("tied_output", &self.tied_output)
            .field("weights_bytes", &self.weights_bytes())
            .finish()
    }
}

/// Which rows of a forward pass produce logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last row (the next-token distribution when generating).
    Last,
    /// Rows `start..rows` (perplexity scores only the second half of a chunk).
    From(usize),
}

/// The error for a tensor whose shape is not `shape`.
fn check_shape(file: &GgufFile, name: &str, shape: &[usize]) -> Result<()> {
    let info = file.tensor(name)?;
    if info.shape != shape {
        return Err(Error::format(
            OP,
            format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                info.shape
            ),
        ));
    }
    Ok(())
}

/// A loader's matrix reader: `(name, rows, cols)` → the checked, dequantized matrix.
type MatrixReader<'a> = &'a dyn Fn(&str, usize, usize) -> Result<Tensor<f32>>;
/// A loader's vector reader: `(name, len)` → the checked, dequantized vector.
type VectorReader<'a> = &'a dyn Fn(&str, usize) -> Result<Vec<f32>>;

/// Block `l`'s gains and matrices through the loader's `dequant(name, rows, cols)` and
/// `vector(name, len)`, which check the shapes.
fn block_weights(
    c: &LlamaConfig,
    l: usize,
    dequant: MatrixReader<'_>,
    vector: VectorReader<'_>,
) -> Result<equalize::BlockWeights> {
    let n = |s: &str| format!("blk.{l}.{s}.weight");
    Ok(equalize::BlockWeights {
        attn_norm: vector(&n("attn_norm"), c.dim)?,
        wq: dequant(&n("attn_q"), c.q_dim(), c.dim)?,
        wk: dequant(&n("attn_k"), c.kv_dim(), c.dim)?,
        wv: dequant(&n("attn_v"), c.kv_dim(), c.dim)?,
        wo: dequant(&n("attn_output"), c.dim, c.q_dim())?,
        ffn_norm: vector(&n("ffn_norm"), c.dim)?,
        w_gate: dequant(&n("ffn_gate"), c.ffn_dim, c.dim)?,
        w_up: dequant(&n("ffn_up"), c.ffn_dim, c.dim)?,
        w_down: dequant(&n("ffn_down"), c.dim, c.ffn_dim)?,
    })
}

/// Block `layer`'s norm gains and matrices dequantized to f32, their shapes checked against
/// `config` (what the loader equalises and prepares; the `quantize` report reads it too).
///
/// # Errors
/// A layer outside the model, missing or misshapen tensors, unsupported element types.
pub fn load_block(
    file: &GgufFile,
    config: &LlamaConfig,
    layer: usize,
) -> Result<equalize::BlockWeights> {
    if layer >= config.n_layers {
        return Err(Error::invalid_arg(
            OP,
            format!(
                "layer {layer} is outside the model's {} layers",
                config.n_layers
            ),
        ));
    }
    let dequant = |name: &str, rows: usize, cols: usize| -> Result<Tensor<f32>> {
        check_shape(file, name, &[rows, cols])?;
        file.dequantize(name)
    };
    let vector = |name: &str, len: usize| -> Result<Vec<f32>> {
        check_shape(file, name, &[len])?;
        Ok(file.dequantize(name)?.to_vec())
    };
    block_weights(config, layer, &dequant, &vector)
}

impl<B: Backend> Llama<B> {
    /// Loads a LLaMA model from a GGUF file into `backend`: every matrix is dequantized to `f32`
    /// and handed to [`Backend::prepare`]; norm gains are kept as `f32`; the token embedding
    /// keeps its stored encoding.
    ///
    /// # Errors
    /// Missing or misshapen tensors, unsupported element types, and the errors of
    /// [`LlamaConfig::from_gguf`] and [`Backend::prepare`].
    pub fn load(backend: B, file: &GgufFile) -> Result<Self> {
        Self::load_with(backend, file, |_, w| Ok(w))
    }

    /// [`Llama::load`] with a hook: `transform(name, W)` sees every matrix (as dequantized
    /// `f32`, `[out_features, in_features]`) before [`Backend::prepare`] and returns the matrix
    /// to prepare — e.g. a quantize–dequantize round trip of chosen tensors, to measure which
    /// ones a quantization scheme hurts. It must keep the shape.
    ///
    /// # Errors
    /// Those of [`Llama::load`], the transform's, and a transform that changes a shape.
    pub fn load_with(
        backend: B,
        file: &GgufFile,
        transform: impl Fn(&str, Tensor<f32>) -> Result<Tensor<f32>>,
    ) -> Result<Self> {
        let transforms = backend.load_transforms();
        Self::load_transformed(backend, file, transforms, transform)
    }

    /// [`Llama::load_with`] with the weight rewrites given explicitly rather than asked for by
    /// the backend ([`Backend::load_transforms`]): e.g. to check that a rotated, equalised
    /// model computes what the plain one does on a float backend.
    ///
    /// # Errors
    /// Those of [`Llama::load_with`].
    pub fn load_transformed(
        backend: B,
        file: &GgufFile,
        transforms: LoadTransforms,
        transform: impl Fn(&str, Tensor<f32>) -> Result<Tensor<f32>>,
    ) -> Result<Self> {
        let config = LlamaConfig::from_gguf(file)?;
        let c = &config;
        let check = |name: &str, shape: &[usize]| check_shape(file, name, shape);
        // Dequantize (and transform) one matrix; prepared separately so that a block's matrices
        // can be equalised together first.
        let dequant = |name: &str, rows: usize, cols: usize| -> Result<Tensor<f32>> {
            check(name, &[rows, cols])?;
            let w = transform(name, file.dequantize(name)?)?;
            if w.shape() != [rows, cols] {
                return Err(Error::mismatch(
                    OP,
                    w.shape(),
                    &[rows, cols],
                    format!("the load transform changed the shape of `{name}`"),
                ));
            }
            Ok(w)
        };
        let rotation = if transforms.rotate {
            Some(Rotation::new(c.dim)?)
        } else {
            None
        };
        let vector = |name: &str, len: usize| -> Result<Vec<f32>> {
            check(name, &[len])?;
            Ok(file.dequantize(name)?.to_vec())
        };

        check("token_embd.weight", &[c.vocab_size, c.dim])?;
        let embd = file.tensor("token_embd.weight")?;
        let token_embd_type = embd.ggml_type;
        crate::gguf::dequant::check_supported("token_embd.weight", token_embd_type)?;
        let token_embd = file.tensor_data(embd).to_vec();
        let token_embd_row_bytes = embd.row_bytes();

        // One block at a time: at most one block's matrices exist in f32 at any moment.
        let mut blocks = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            let mut b = block_weights(c, l, &dequant, &vector)?;
            if let Some(q) = &rotation {
                b.rotate(q);
            }
            if transforms.equalize {
                b.equalize(c.n_heads, c.n_kv_heads, c.head_dim);
            }
            blocks.push(Block {
                attn_norm: b.attn_norm,
                wq: backend.prepare(b.wq)?,
                wk: backend.prepare(b.wk)?,
                wv: backend.prepare(b.wv)?,
                wo: backend.prepare(b.wo)?,
                ffn_norm: b.ffn_norm,
                w_gate: backend.prepare(b.w_gate)?,
                w_up: backend.prepare(b.w_up)?,
                w_down: backend.prepare(b.w_down)?,
            });
        }
        let mut output_norm = vector("output_norm.weight", c.dim)?;
        let tied_output = file.tensor("output.weight").is_err();
        let mut output = if tied_output {
            dequant("token_embd.weight", c.vocab_size, c.dim)?
        } else {
            dequant("output.weight", c.vocab_size, c.dim)?
        };
        // The prepared head is its own copy: the embedding rows keep their stored values.
        if let Some(q) = &rotation {
            rotate::fold_gain(&mut output, &output_norm);
            output_norm.fill(1.0);
            q.rotate_inputs(&mut output);
        } else if transforms.equalize {
            equalize::norm_into_matrices(&mut output_norm, &mut [&mut output]);
        }
        let output = backend.prepare(output)?;
        let mut end_of_generation = Vec::new();
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
            if file.get(key).is_some() {
                let id = file.get_u32(key)?;
                if id as usize >= config.vocab_size {
                    return Err(Error::format(
                        OP,
                        format!(
                            "{key} {id} is outside the vocabulary of {}",
                            config.vocab_size
                        ),
                    ));
                }
                if !end_of_generation.contains(&id) {
                    end_of_generation.push(id);
                }
            }
        }
        Ok(Llama {
            end_of_generation,
            backend,
            config,
            token_embd,
            token_embd_type,
            token_embd_row_bytes,
            blocks,
            output_norm,
            output,
            tied_output,
            rotation,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The ids that end a generation by default ([`crate::model::StopAt::EndOfGeneration`]),
    /// as the model file declares them.
    pub fn end_of_generation(&self) -> &[u32] {
        &self.end_of_generation
    }

    /// The backend the weights live in.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Whether the output head is the token embedding (no `output.weight` in the file).
    pub fn tied_output(&self) -> bool {
        self.tied_output
    }

    /// Bytes the weights occupy: every prepared matrix ([`PreparedWeight::size_bytes`]), the
    /// norm gains (`f32`) and the token embedding as stored.
    pub fn weights_bytes(&self) -> usize {
        let mut total =
            self.token_embd.len() + self.output.size_bytes() + 4 * self.output_norm.len();
        for b in &self.blocks {
            total += 4 * (b.attn_norm.len() + b.ffn_norm.len());
            for w in [&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down] {
                total += w.size_bytes();
            }
        }
        total
    }

    /// A fresh [`State`] (empty KV cache) for sequences of up to `capacity` tokens.
    ///
    /// # Errors
    /// [`Error::ContextOverflow`] if `capacity` exceeds the model's context length;
    /// [`Error::InvalidArgument`] for zero.
    pub fn new_state(&self, capacity: usize) -> Result<State> {
        State::new(&self.config, capacity)
    }

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

        // Token embedding: x[r] = token_embd[tokens[r]].
        for (r, &t) in tokens.iter().enumerate() {
            let t = t as usize;
            if t >= c.vocab_size {
                return Err(Error::OutOfRange {
                    op: "llama embedding",
                    index: t,
                    len: c.vocab_size,
                });
            }
            let rb = self.token_embd_row_bytes;
            crate::gguf::dequant::dequantize_from(
                "token_embd.weight",
                self.token_embd_type,
                &self.token_embd[t * rb..(t + 1) * rb],
                t * (dim / self.token_embd_type.block_size()),
                &mut x[r * dim..(r + 1) * dim],
            )?;
            if let Some(q) = &self.rotation {
                q.apply(&mut x[r * dim..(r + 1) * dim]);
            }
        }

        // Cache rows `0..pos0` of every layer were scanned for NaN/∞ by the attention call of the
        // forward that wrote them (a forward that fails before `advance` leaves `len` unchanged,
        // so its rows are rewritten and rescanned), and nothing rewrites committed rows: only the
        // `rows` new positions need the check — O(rows), not O(cache), per decode step.
        let spec = AttentionSpec {
            kv_rows_checked: pos0,
            ..AttentionSpec::causal()
        };
        let be = &self.backend;
        for (l, b) in self.blocks.iter().enumerate() {
            // Attention: x += W_o · attention(RoPE(W_q·n), RoPE(W_k·n), W_v·n), n = RMSNorm(x).
            rmsnorm(x, &b.attn_norm, c.norm_eps, xb);
            be.linear_into(xb, rows, &b.wq, q)?;
            be.linear_into(xb, rows, &b.wk, k)?;
            be.linear_into(xb, rows, &b.wv, v)?;
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
            add_assign(x, proj);

            // FFN: x += W_down · (silu(W_gate·n) ⊙ W_up·n), n = RMSNorm(x).
            rmsnorm(x, &b.ffn_norm, c.norm_eps, xb);
            be.linear_into(xb, rows, &b.w_gate, gate)?;
            be.linear_into(xb, rows, &b.w_up, up)?;
            swiglu(gate, up);
            be.linear_into(gate, rows, &b.w_down, proj)?;
            add_assign(x, proj);
        }
        cache.advance(rows);

        // Final RMSNorm and the output head, for the selected rows only.
        let out_rows = rows - first_logit_row;
        let xs = &x[first_logit_row * dim..];
        let xn = &mut xb[..out_rows * dim];
        rmsnorm(xs, &self.output_norm, c.norm_eps, xn);
        let logits = &mut logits[..out_rows * c.vocab_size];
        be.linear_into(xn, out_rows, &self.output, logits)?;
        Ok(logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> LlamaConfig {
        // SmolLM2-135M (fixtures/smollm2/README.md).
        LlamaConfig {
            n_layers: 30,
            dim: 576,
            ffn_dim: 1536,
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
            norm_eps: 1e-5,
            rope_base: 100_000.0,
            context_length: 8192,
            vocab_size: 49152,
        }
    }

    #[test]
    fn smollm2_config_is_consistent() {
        let c = smollm2();
        c.validate().unwrap();
        assert_eq!((c.q_dim(), c.kv_dim()), (576, 192));
    }

    #[test]
    fn inconsistent_configs_are_format_errors() {
        let bad = [
            LlamaConfig {
                n_kv_heads: 2,
                ..smollm2()
            },
            LlamaConfig {
                head_dim: 63,
                ..smollm2()
            },
            LlamaConfig {
                n_layers: 0,
                ..smollm2()
            },
            LlamaConfig {
                norm_eps: f32::NAN,
                ..smollm2()
            },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(Error::Format { .. })), "{c:?}");
        }
    }

    #[test]
    fn dimension_products_that_overflow_are_typed_errors() {
        // A vocabulary (or FFN width) whose matrix with `dim` columns cannot be addressed.
        for (c, key) in [
            (
                LlamaConfig {
                    vocab_size: usize::MAX / 2,
                    ..smollm2()
                },
                "token_embd.weight",
            ),
            (
                LlamaConfig {
                    ffn_dim: usize::MAX / 4,
                    ..smollm2()
                },
                "llama.feed_forward_length",
            ),
        ] {
            let e = c.validate().unwrap_err();
            assert!(
                matches!(&e, Error::Overflow { what, .. } if what == key),
                "{e}"
            );
        }
        // heads × head_dim that overflows is not the embedding width.
        let c = LlamaConfig {
            n_heads: usize::MAX / 32 + 1,
            head_dim: 64,
            ..smollm2()
        };
        assert!(matches!(c.validate(), Err(Error::Format { .. })));
        assert_eq!(c.q_dim(), usize::MAX);
    }
}
