//! A decoder-only transformer — LLaMA (Touvron et al., 2023) as SmolLM2 uses it, and Gemma 3 —
//! generic over the [`Backend`].
//!
//! Reading order follows one token's data: [`TransformerConfig`] (the hyperparameters and the
//! architecture's hooks), [`Transformer`] (the weights, each field with its shape), [`State`]
//! (the activations and the KV cache), then [`Transformer::forward`] (in `forward.rs`): embed →
//! blocks (RMSNorm → Q/K/V → [Q/K norms] → RoPE → attention → output projection → [post-norm] →
//! residual → RMSNorm → gated FFN → [post-norm] → residual) → final RMSNorm → logits. The
//! bracketed steps are the hooks [`TransformerConfig`] switches on (Gemma 3).
//!
//! Every matrix is prepared once at load (dequantized from the GGUF to `f32`, then packed or
//! quantized as the backend prefers), and every product is a [`Backend::linear_into`] with
//! `rows` = tokens: a prompt is one batched pass, a decode step is a one-row pass. Attention
//! reads the KV cache in place through token-major
//! [`Heads`](nanotensor_core::attention::Heads) views.
//!
//! # The load streams
//! No copy of the whole model exists in `f32` at any moment. The blocks are read one at a time:
//! with rewrites (rotation, equalisation), which relate a block's matrices to each other, a
//! block's matrices are dequantized, rewritten together, prepared, and dropped before the next
//! block is read; without, each matrix streams like the output head. The output head — the largest matrix, `[vocab_size, dim]` — goes through
//! [`Backend::prepare_rows`]: the backend asks for chunks of rows, which are dequantized from the
//! file (and rotated or equalised) on request, so a backend that shrinks its weights (int8) never
//! holds the head in `f32`; a float backend, whose prepared form is the `f32` matrix, takes it in
//! one chunk. The token embedding is not copied at all: the model keeps a handle to the file's
//! bytes ([`TensorBytes`]; for a mapped file, pages the OS reads on demand and may drop).
//!
//! Without rewrites, a matrix stored in a block format the backend multiplies as stored (the
//! quant backend) is handed over as those blocks ([`Backend::prepare_blocks`]) and never
//! dequantized at all; a backend that declines gets it through [`Backend::prepare_rows`]. The
//! blocks come with a handle to the file's storage, which such a backend keeps instead of a
//! copy: its weights are the file's bytes, and a tied head is the embedding's bytes, held once
//! ([`Transformer::head_shares_embedding`]).

use crate::gguf::{GgmlType, GgufFile, TensorBytes};
use crate::model::config::TransformerConfig;
use crate::model::equalize;
use crate::model::rotate::{self, Rotation};
use crate::model::state::State;
use crate::model::stream::{check_streamable, prepare_stored, streamed_block, HeadRewrite};
use nanotensor_core::backend::{Backend, LoadTransforms, PreparedWeight};
use nanotensor_core::error::{Error, Result};
use nanotensor_core::tensor::Tensor;

const OP: &str = "model";

/// The weights of one transformer block.
pub(crate) struct Block<B: Backend> {
    /// RMSNorm gain before attention: `[dim]` (`blk.N.attn_norm.weight`).
    pub(crate) attn_norm: Vec<f32>,
    /// Query projection: `[n_heads · head_dim, dim]` (`attn_q`).
    pub(crate) wq: B::Weight<f32>,
    /// Key projection: `[n_kv_heads · head_dim, dim]` (`attn_k`).
    pub(crate) wk: B::Weight<f32>,
    /// Value projection: `[n_kv_heads · head_dim, dim]` (`attn_v`).
    pub(crate) wv: B::Weight<f32>,
    /// Attention output projection: `[dim, n_heads · head_dim]` (`attn_output`).
    pub(crate) wo: B::Weight<f32>,
    /// RMSNorm gain before the FFN: `[dim]` (`ffn_norm`).
    pub(crate) ffn_norm: Vec<f32>,
    /// Gate projection: `[ffn_dim, dim]` (`ffn_gate`).
    pub(crate) w_gate: B::Weight<f32>,
    /// Up projection: `[ffn_dim, dim]` (`ffn_up`).
    pub(crate) w_up: B::Weight<f32>,
    /// FFN down projection: `[dim, ffn_dim]` (`ffn_down`).
    pub(crate) w_down: B::Weight<f32>,
    /// RMSNorm gain of every query head: `[head_dim]` (`attn_q_norm`; [`TransformerConfig::qk_norm`]).
    pub(crate) q_norm: Option<Vec<f32>>,
    /// RMSNorm gain of every key head: `[head_dim]` (`attn_k_norm`).
    pub(crate) k_norm: Option<Vec<f32>>,
    /// RMSNorm gain of the attention output: `[dim]` (`post_attention_norm`;
    /// [`TransformerConfig::post_norms`]).
    pub(crate) post_attn_norm: Option<Vec<f32>>,
    /// RMSNorm gain of the FFN output: `[dim]` (`post_ffw_norm`).
    pub(crate) post_ffn_norm: Option<Vec<f32>>,
}

/// A model whose matrices live in backend `B`'s prepared form.
pub struct Transformer<B: Backend> {
    pub(crate) backend: B,
    pub(crate) config: TransformerConfig,
    /// Token embedding table as stored in the file (e.g. Q8_0 blocks): `[vocab_size, dim]`;
    /// a row is dequantized when its token is looked up. The file's own bytes, shared (no copy).
    pub(crate) token_embd: TensorBytes,
    /// Element type of `token_embd`.
    pub(crate) token_embd_type: GgmlType,
    /// Bytes of one row of `token_embd`.
    pub(crate) token_embd_row_bytes: usize,
    /// The transformer blocks, first to last: `[n_layers]`.
    pub(crate) blocks: Vec<Block<B>>,
    /// Final RMSNorm gain: `[dim]` (`output_norm.weight`).
    pub(crate) output_norm: Vec<f32>,
    /// Output head (LM head): `[vocab_size, dim]`; `output.weight`, or the token embedding when
    /// the file has none (tied weights).
    pub(crate) output: B::Weight<f32>,
    /// Whether `output` was tied to the token embedding.
    pub(crate) tied_output: bool,
    /// The rotation of the residual stream, when the backend asked for one
    /// ([`LoadTransforms::rotate`]): applied to each token's embedding (and to each post-norm
    /// output); the matrices and norm gains were rewritten at load to match (see [`rotate`]).
    pub(crate) rotation: Option<Rotation>,
    /// The weight rewrites applied at load.
    pub(crate) transforms: LoadTransforms,
    /// Ids that end a generation, from the file (`tokenizer.ggml.eos_token_id`, and
    /// `tokenizer.ggml.eot_token_id` where the model has an end-of-turn token).
    pub(crate) end_of_generation: Vec<u32>,
}

/// The LLaMA name of [`Transformer`], which runs every architecture of
/// [`TransformerConfig`].
pub type Llama<B> = Transformer<B>;

impl<B: Backend> std::fmt::Debug for Transformer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transformer")
            .field("architecture", &self.config.architecture)
            .field("backend", &self.backend.name())
            .field("config", &self.config)
            .field("tied_output", &self.tied_output)
            .field("head_shares_embedding", &self.head_shares_embedding())
            .field("weights_bytes", &self.weights_bytes())
            .finish()
    }
}

/// The error for a tensor whose shape is not `shape`.
pub(crate) fn check_shape(file: &GgufFile, name: &str, shape: &[usize]) -> Result<()> {
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

/// A load hook: `(name, W)` → the matrix to prepare ([`Transformer::load_with`]).
type LoadHook<'a> = &'a dyn Fn(&str, Tensor<f32>) -> Result<Tensor<f32>>;
/// A loader's matrix reader: `(name, rows, cols)` → the checked, dequantized matrix.
type MatrixReader<'a> = &'a dyn Fn(&str, usize, usize) -> Result<Tensor<f32>>;
/// A loader's vector reader: `(name, len)` → the checked, dequantized vector.
pub(crate) type VectorReader<'a> = &'a dyn Fn(&str, usize) -> Result<Vec<f32>>;

/// Block `l`'s gains and matrices through the loader's `dequant(name, rows, cols)` and
/// `vector(name, len)`, which check the shapes; the optional gains are read when `c` says the
/// architecture has them.
fn block_weights(
    c: &TransformerConfig,
    l: usize,
    dequant: MatrixReader<'_>,
    vector: VectorReader<'_>,
) -> Result<equalize::BlockWeights> {
    let n = |s: &str| format!("blk.{l}.{s}.weight");
    let optional = |on: bool, name: &str, len: usize| -> Result<Option<Vec<f32>>> {
        on.then(|| vector(&n(name), len)).transpose()
    };
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
        q_norm: optional(c.qk_norm, "attn_q_norm", c.head_dim)?,
        k_norm: optional(c.qk_norm, "attn_k_norm", c.head_dim)?,
        post_attn_norm: optional(c.post_norms, "post_attention_norm", c.dim)?,
        post_ffn_norm: optional(c.post_norms, "post_ffw_norm", c.dim)?,
    })
}

/// Block `layer`'s norm gains and matrices dequantized to f32, their shapes checked against
/// `config` (what the loader equalises and prepares; the `quantize` report reads it too).
///
/// # Errors
/// A layer outside the model, missing or misshapen tensors, unsupported element types.
pub fn load_block(
    file: &GgufFile,
    config: &TransformerConfig,
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

impl<B: Backend> Transformer<B> {
    /// Loads a model (any architecture of [`TransformerConfig`]) from a GGUF file into
    /// `backend`: every matrix is prepared by the backend, from its stored blocks when the
    /// backend multiplies that format and no rewrite applies ([`Backend::prepare_blocks`]),
    /// else dequantized to `f32` (streamed through [`Backend::prepare_rows`], see the
    /// [module docs](self)); norm gains are kept as `f32`; the token embedding keeps its stored
    /// encoding, borrowed from the file.
    ///
    /// The weight rewrites are those the backend asks for ([`Backend::load_transforms`]), except
    /// on a model with massive activations, which gets none
    /// ([`TransformerConfig::massive_activations`]; [`Transformer::transforms`] says which ran).
    ///
    /// # Errors
    /// Missing or misshapen tensors, unsupported element types, and the errors of
    /// [`TransformerConfig::from_gguf`] and [`Backend::prepare`].
    pub fn load(backend: B, file: &GgufFile) -> Result<Self> {
        let transforms = Self::transforms_for(&backend, file)?;
        Self::load_inner(backend, file, transforms, None)
    }

    /// [`Transformer::load`] with a hook: `transform(name, W)` sees every matrix (as dequantized
    /// `f32`, `[out_features, in_features]`) before [`Backend::prepare`] and returns the matrix
    /// to prepare — e.g. a quantize–dequantize round trip of chosen tensors, to measure which
    /// ones a quantization scheme hurts. It must keep the shape. The hook sees each matrix
    /// whole, so with it the output head is held in `f32` whole while it is prepared (the load
    /// does not stream).
    ///
    /// # Errors
    /// Those of [`Transformer::load`], the transform's, and a transform that changes a shape.
    pub fn load_with(
        backend: B,
        file: &GgufFile,
        transform: impl Fn(&str, Tensor<f32>) -> Result<Tensor<f32>>,
    ) -> Result<Self> {
        let transforms = Self::transforms_for(&backend, file)?;
        Self::load_inner(backend, file, transforms, Some(&transform))
    }

    /// [`Transformer::load`] with the weight rewrites given explicitly rather than asked for by
    /// the backend ([`Backend::load_transforms`]): e.g. to check that a rotated, equalised
    /// model computes what the plain one does on a float backend.
    ///
    /// # Errors
    /// Those of [`Transformer::load`].
    pub fn load_transformed(
        backend: B,
        file: &GgufFile,
        transforms: LoadTransforms,
    ) -> Result<Self> {
        Self::load_inner(backend, file, transforms, None)
    }

    /// The rewrites [`Transformer::load`] applies: the backend's, none for a model with
    /// massive activations.
    fn transforms_for(backend: &B, file: &GgufFile) -> Result<LoadTransforms> {
        Ok(if TransformerConfig::from_gguf(file)?.massive_activations {
            LoadTransforms::default()
        } else {
            backend.load_transforms()
        })
    }

    fn load_inner(
        backend: B,
        file: &GgufFile,
        transforms: LoadTransforms,
        hook: Option<LoadHook<'_>>,
    ) -> Result<Self> {
        let config = TransformerConfig::from_gguf(file)?;
        let c = &config;
        let check = |name: &str, shape: &[usize]| check_shape(file, name, shape);
        // Dequantize (and transform) one matrix; prepared separately so that a block's matrices
        // can be equalised together first.
        let dequant = |name: &str, rows: usize, cols: usize| -> Result<Tensor<f32>> {
            check(name, &[rows, cols])?;
            let w = file.dequantize(name)?;
            let Some(transform) = hook else {
                return Ok(w);
            };
            let w = transform(name, w)?;
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
        let token_embd = file.shared_tensor_data(embd);
        let token_embd_row_bytes = embd.row_bytes();

        // One block at a time: at most one block's matrices exist in f32 at any moment, and
        // none when no rewrite needs a whole block: each matrix then streams from the file.
        let stream_blocks = hook.is_none() && rotation.is_none() && !transforms.equalize;
        let mut blocks = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            if stream_blocks {
                blocks.push(streamed_block(&backend, file, c, l, &vector)?);
                continue;
            }
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
                q_norm: b.q_norm,
                k_norm: b.k_norm,
                post_attn_norm: b.post_attn_norm,
                post_ffn_norm: b.post_ffn_norm,
            });
        }
        let mut output_norm = vector("output_norm.weight", c.dim)?;
        let tied_output = file.tensor("output.weight").is_err();
        let head = if tied_output {
            "token_embd.weight"
        } else {
            "output.weight"
        };
        // The embedding rows keep their stored values: the head is prepared on its own — a
        // copy, or, from a backend keeping the stored blocks, the same shared bytes.
        let output = if hook.is_some() {
            let mut output = dequant(head, c.vocab_size, c.dim)?;
            if let Some(q) = &rotation {
                rotate::fold_gain(&mut output, &output_norm);
                output_norm.fill(1.0);
                q.rotate_inputs(&mut output);
            } else if transforms.equalize {
                equalize::norm_into_matrices(&mut output_norm, &mut [&mut output]);
            }
            backend.prepare(output)?
        } else {
            check_streamable(file, head, &[c.vocab_size, c.dim])?;
            let rewrite =
                HeadRewrite::new(file, head, &mut output_norm, rotation.as_ref(), transforms)?;
            if let HeadRewrite::None = rewrite {
                prepare_stored(&backend, file, head, c.vocab_size, c.dim)?
            } else {
                backend.prepare_rows([c.vocab_size, c.dim], |rows, out| {
                    file.dequantize_rows(head, rows, out)?;
                    rewrite.apply(out);
                    Ok(())
                })?
            }
        };
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
        Ok(Transformer {
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
            transforms,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &TransformerConfig {
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

    /// The weight rewrites applied at load (rotation, equalisation): those asked for, by the
    /// backend or explicitly ([`Transformer::load_transformed`]).
    pub fn transforms(&self) -> LoadTransforms {
        self.transforms
    }

    /// Whether the output head is the token embedding (no `output.weight` in the file).
    pub fn tied_output(&self) -> bool {
        self.tied_output
    }

    /// Bytes the weights occupy, each byte once: every prepared matrix ([`Self::matrix_bytes`]),
    /// the norm gains (`f32`) and the token embedding as stored ([`Self::embedding_bytes`]).
    /// The embedding is the file's own bytes, borrowed (for a mapped file, its pages): memory
    /// the model keeps alive, not a copy of it — and so is every matrix a backend kept as
    /// stored ([`Self::shared_weights_bytes`]). A tied head that is the embedding's very bytes
    /// ([`Self::head_shares_embedding`]) is counted once, with the embedding.
    pub fn weights_bytes(&self) -> usize {
        let mut total = self.embedding_bytes() + self.matrix_bytes() + 4 * self.output_norm.len();
        if self.head_shares_embedding() {
            total -= self.output.size_bytes();
        }
        for b in &self.blocks {
            total += 4 * (b.attn_norm.len() + b.ffn_norm.len());
            for g in [&b.q_norm, &b.k_norm, &b.post_attn_norm, &b.post_ffn_norm]
                .into_iter()
                .flatten()
            {
                total += 4 * g.len();
            }
        }
        total
    }

    /// Bytes of the token embedding table as stored in the file, which the model borrows from
    /// the file rather than copies (see [`Self::weights_bytes`]).
    pub fn embedding_bytes(&self) -> usize {
        self.token_embd.bytes().len()
    }

    /// Whether the prepared output head is the token embedding's own bytes: the head is tied
    /// and the backend kept the embedding's stored blocks, sharing the file's storage
    /// ([`PreparedWeight::shared_storage`] returns the very slice — same address and length —
    /// the model keeps for the embedding). Then one copy of those bytes serves both the lookup
    /// and the LM head; otherwise the head is a prepared copy of its own.
    pub fn head_shares_embedding(&self) -> bool {
        let embd: *const [u8] = self.token_embd.bytes();
        self.output
            .shared_storage()
            .is_some_and(|head| std::ptr::eq(head, embd))
    }

    /// Bytes of [`Self::weights_bytes`] that are the file's own storage, shared rather than
    /// copied: the token embedding and every matrix whose prepared form is its stored blocks
    /// ([`PreparedWeight::shared_storage`]), a head sharing the embedding counted once. The rest
    /// of the weights is memory the backend allocated.
    pub fn shared_weights_bytes(&self) -> usize {
        let shared = |w: &B::Weight<f32>| w.shared_storage().map_or(0, <[u8]>::len);
        let mut total = self.embedding_bytes();
        if !self.head_shares_embedding() {
            total += shared(&self.output);
        }
        for b in &self.blocks {
            for w in [&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down] {
                total += shared(w);
            }
        }
        total
    }

    /// Bytes of the prepared matrices ([`PreparedWeight::size_bytes`]): the seven projections
    /// of every block and the output head (the LM head; for tied weights, the prepared copy of
    /// the token embedding, or the embedding's own bytes when
    /// [`Self::head_shares_embedding`]). A decode step multiplies its one row by each of them,
    /// so it reads all of these bytes.
    pub fn matrix_bytes(&self) -> usize {
        let mut total = self.output.size_bytes();
        for b in &self.blocks {
            for w in [&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down] {
                total += w.size_bytes();
            }
        }
        total
    }

    /// Bytes one KV-cached decode step reads, averaged over the `decode_tokens` steps that
    /// follow a `prompt_tokens`-token prompt (what `generate` times as decode): every prepared
    /// matrix ([`Self::matrix_bytes`]) plus the K and V rows the attention reads.
    ///
    /// The step at cache length `p` attends over `p + 1` positions (the cached ones and its
    /// own) on a global layer and over `min(p + 1, window)` on a sliding-window layer, reading
    /// `2 · positions · kv_dim · 4` bytes of the `f32` cache per layer; the steps run at
    /// `p = prompt_tokens … prompt_tokens + decode_tokens − 1`. Not counted, as small next to
    /// these (a fraction of a percent for SmolLM2-135M): the norm gains, the one embedding row
    /// looked up, and the activations, which stay in cache. Returns 0 for `decode_tokens == 0`.
    pub fn decode_bytes_per_token(&self, prompt_tokens: usize, decode_tokens: usize) -> f64 {
        if decode_tokens == 0 {
            return 0.0;
        }
        let c = &self.config;
        // In f64: no product of file-given sizes can overflow.
        let kv_bytes_per_position = 2.0 * c.kv_dim() as f64 * 4.0;
        let (first, last) = (
            prompt_tokens as f64 + 1.0,
            (prompt_tokens + decode_tokens) as f64,
        );
        // Mean over the steps of the positions one layer reads: (first + last) / 2 on a global
        // layer; on a local one the count grows to the window and then stays there.
        let mean_positions = |window: Option<usize>| match window {
            None => (first + last) / 2.0,
            Some(w) => {
                let w = w as f64;
                let growing = (last.min(w) - first + 1.0).max(0.0);
                let grown = decode_tokens as f64 - growing;
                let growing_sum = if growing > 0.0 {
                    growing * (first + first + growing - 1.0) / 2.0
                } else {
                    0.0
                };
                (growing_sum + grown * w) / decode_tokens as f64
            }
        };
        let kv: f64 = (0..c.n_layers)
            .map(|l| kv_bytes_per_position * mean_positions(c.layer_window(l)))
            .sum();
        self.matrix_bytes() as f64 + kv
    }

    /// A fresh [`State`] (empty KV cache) for sequences of up to `capacity` tokens.
    ///
    /// # Errors
    /// [`Error::ContextOverflow`] if `capacity` exceeds the model's context length;
    /// [`Error::InvalidArgument`] for zero.
    pub fn new_state(&self, capacity: usize) -> Result<State> {
        State::new(&self.config, capacity)
    }
}
