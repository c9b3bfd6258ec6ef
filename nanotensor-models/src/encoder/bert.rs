//! The BERT encoder (Devlin et al., 2019) over any backend, run on a *packed* batch: the tokens
//! of every sentence of a batch are stacked into one `[tokens, H]` matrix, so each linear layer
//! is one product over the whole batch and no row is padding. Only attention looks at sentence
//! boundaries: it runs per sentence, on that sentence's rows, which is exactly what a padding
//! mask computes without the padded rows.
//!
//! One layer, post-LayerNorm (`eps` from the config):
//!
//! ```text
//! [q k v] = x·W_qkvᵀ + b_qkv                      (the three projections fused: one product)
//! a       = attention(q, k, v) per sentence, per head, bidirectional, scale 1/√d
//! x       = LayerNorm(x + a·W_oᵀ + b_o)
//! x       = LayerNorm(x + GELU(x·W_iᵀ + b_i)·W_2ᵀ + b_2)     (GELU in its erf form)
//! ```
//!
//! The input is `LayerNorm(word[id] + position[p] + token_type[0])`. Every matrix is prepared
//! once at load by the backend ([`Backend::prepare`]); biases are added after each product. The
//! weight rewrites a backend may ask a decoder's loader for ([`Backend::load_transforms`]) are
//! not applied: they rely on RMSNorm, which has no mean to subtract.

use std::ops::Range;

use nanotensor_backends::activation;
use nanotensor_backends::multiversion::Level;
use nanotensor_core::attention::{AttentionSpec, Heads, HeadsLayout, HeadsMut};
use nanotensor_core::backend::Backend;
use nanotensor_core::tensor::Tensor;
use nanotensor_core::{Error, Result};

use super::config::BertConfig;
use crate::safetensors::SafetensorsFile;

const OP: &str = "bert";

/// One encoder layer's parameters; shapes with `H` hidden, `I` intermediate.
struct Layer<B: Backend> {
    /// `[3H, H]`: query, key and value stacked.
    w_qkv: B::Weight<f32>,
    /// `[3H]`
    b_qkv: Vec<f32>,
    /// `[H, H]`
    w_o: B::Weight<f32>,
    /// `[H]`
    b_o: Vec<f32>,
    /// `[H]` gain and bias of the LayerNorm after attention.
    ln1: (Vec<f32>, Vec<f32>),
    /// `[I, H]`
    w_i: B::Weight<f32>,
    /// `[I]`
    b_i: Vec<f32>,
    /// `[H, I]`
    w_2: B::Weight<f32>,
    /// `[H]`
    b_2: Vec<f32>,
    /// `[H]` gain and bias of the LayerNorm after the FFN.
    ln2: (Vec<f32>, Vec<f32>),
}

/// A BERT encoder whose matrices live in backend `B`'s prepared form.
pub struct Bert<B: Backend> {
    config: BertConfig,
    backend: B,
    /// `[vocab, H]`
    word: Vec<f32>,
    /// `[max_positions, H]`
    position: Vec<f32>,
    /// `[H]`: token type 0 (single-sentence inputs).
    token_type: Vec<f32>,
    /// `[H]` gain and bias of the embedding LayerNorm.
    ln_emb: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer<B>>,
}

impl<B: Backend> std::fmt::Debug for Bert<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert")
            .field("config", &self.config)
            .field("backend", &self.backend.name())
            .finish()
    }
}

/// Reads F32 tensor `name`, checking its shape.
fn read(file: &SafetensorsFile, name: &str, shape: &[usize]) -> Result<Tensor<f32>> {
    let t = file.read_f32(name)?;
    if t.shape() != shape {
        return Err(Error::mismatch(
            OP,
            t.shape(),
            shape,
            format!("tensor `{name}` does not have the shape the config implies"),
        ));
    }
    Ok(t)
}

fn read_vec(file: &SafetensorsFile, name: &str, len: usize) -> Result<Vec<f32>> {
    Ok(read(file, name, &[len])?.as_slice().to_vec())
}

fn layer_norm_params(
    file: &SafetensorsFile,
    prefix: &str,
    h: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    Ok((
        read_vec(file, &format!("{prefix}.LayerNorm.weight"), h)?,
        read_vec(file, &format!("{prefix}.LayerNorm.bias"), h)?,
    ))
}

impl<B: Backend> Bert<B> {
    /// Loads the encoder from `file` (Hugging Face `BertModel` tensor names, with or without a
    /// `bert.` prefix-free layout as sentence-transformers saves it) and prepares every matrix
    /// on `backend`.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::UnsupportedTensorType`] (a tensor that is not F32),
    /// [`Error::ShapeMismatch`] (a shape that disagrees with `config`), and the backend's
    /// errors from [`Backend::prepare`] (a weight with NaN/∞).
    pub fn load(file: &SafetensorsFile, config: BertConfig, backend: B) -> Result<Bert<B>> {
        let h = config.hidden;
        let i = config.intermediate;
        let emb = |n: &str| format!("embeddings.{n}");
        let word = read(
            file,
            &emb("word_embeddings.weight"),
            &[config.vocab_size, h],
        )?;
        let position = read(
            file,
            &emb("position_embeddings.weight"),
            &[config.max_positions, h],
        )?;
        let token_type = file.read_f32(&emb("token_type_embeddings.weight"))?;
        if token_type.shape().len() != 2 || token_type.shape()[1] != h {
            return Err(Error::mismatch(
                OP,
                token_type.shape(),
                &[2, h],
                "token type embedding",
            ));
        }
        let ln_emb = layer_norm_params(file, "embeddings", h)?;
        let mut layers = Vec::with_capacity(config.layers);
        for l in 0..config.layers {
            let p = format!("encoder.layer.{l}");
            let mut qkv = Vec::with_capacity(3 * h * h);
            let mut b_qkv = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                let w = read(file, &format!("{p}.attention.self.{part}.weight"), &[h, h])?;
                qkv.extend_from_slice(w.as_slice());
                b_qkv.extend(read_vec(
                    file,
                    &format!("{p}.attention.self.{part}.bias"),
                    h,
                )?);
            }
            let prep = |name: &str, shape: &[usize]| -> Result<B::Weight<f32>> {
                backend.prepare(read(file, &format!("{p}.{name}"), shape)?)
            };
            layers.push(Layer {
                w_qkv: backend.prepare(Tensor::from_vec(qkv, &[3 * h, h])?)?,
                b_qkv,
                w_o: prep("attention.output.dense.weight", &[h, h])?,
                b_o: read_vec(file, &format!("{p}.attention.output.dense.bias"), h)?,
                ln1: layer_norm_params(file, &format!("{p}.attention.output"), h)?,
                w_i: prep("intermediate.dense.weight", &[i, h])?,
                b_i: read_vec(file, &format!("{p}.intermediate.dense.bias"), i)?,
                w_2: prep("output.dense.weight", &[h, i])?,
                b_2: read_vec(file, &format!("{p}.output.dense.bias"), h)?,
                ln2: layer_norm_params(file, &format!("{p}.output"), h)?,
            });
        }
        Ok(Bert {
            word: word.as_slice().to_vec(),
            position: position.as_slice().to_vec(),
            token_type: token_type.as_slice()[..h].to_vec(),
            ln_emb,
            layers,
            config,
            backend,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Runs the encoder on a packed batch and returns each sentence's mean-pooled last hidden
    /// state (`[H]` each, L2-normalised when the config says so), in input order.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty sentence or one longer than the model's
    /// positions; [`Error::OutOfRange`] for an id outside the vocabulary; the backend's errors.
    pub fn embed_batch(&self, sentences: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let c = &self.config;
        let h = c.hidden;
        // Each sentence's rows in the packed matrix.
        let mut spans: Vec<Range<usize>> = Vec::with_capacity(sentences.len());
        let mut n = 0usize;
        for ids in sentences {
            if ids.is_empty() || ids.len() > c.max_positions {
                return Err(Error::invalid_arg(
                    OP,
                    format!(
                        "a sentence of {} tokens (1 to {} are supported)",
                        ids.len(),
                        c.max_positions
                    ),
                ));
            }
            spans.push(n..n + ids.len());
            n += ids.len();
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let x = self.forward(sentences, &spans, n)?;
        // Mean over each sentence's rows, then L2.
        Ok(spans
            .iter()
            .map(|span| {
                let mut sum = vec![0f64; h];
                for row in x[span.start * h..span.end * h].chunks_exact(h) {
                    for (s, &v) in sum.iter_mut().zip(row) {
                        *s += f64::from(v);
                    }
                }
                let len = span.len() as f64;
                let mut mean: Vec<f64> = sum.into_iter().map(|s| s / len).collect();
                if c.normalize {
                    let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                    mean.iter_mut().for_each(|v| *v /= norm);
                }
                mean.into_iter().map(|v| v as f32).collect()
            })
            .collect())
    }

    /// The last hidden state `[n, H]` of the packed batch.
    fn forward(&self, sentences: &[&[u32]], spans: &[Range<usize>], n: usize) -> Result<Vec<f32>> {
        let c = &self.config;
        let (h, d) = (c.hidden, c.head_dim());
        let be = &self.backend;
        let eps = c.layer_norm_eps;

        // Embeddings: word + position + token type 0, then LayerNorm.
        let mut x = vec![0f32; n * h];
        for (ids, span) in sentences.iter().zip(spans) {
            for (p, (&id, row)) in ids
                .iter()
                .zip(x[span.start * h..span.end * h].chunks_exact_mut(h))
                .enumerate()
            {
                let id = id as usize;
                let word = self
                    .word
                    .get(id * h..(id + 1) * h)
                    .ok_or(Error::OutOfRange {
                        op: "bert: token id",
                        index: id,
                        len: c.vocab_size,
                    })?;
                let pos = &self.position[p * h..(p + 1) * h];
                for j in 0..h {
                    row[j] = word[j] + pos[j] + self.token_type[j];
                }
            }
        }
        let level = Level::detect();
        activation::layer_norm(level, &mut x, None, &self.ln_emb.0, &self.ln_emb.1, eps);

        let mut qkv = vec![0f32; n * 3 * h];
        let mut att = vec![0f32; n * h];
        let mut proj = vec![0f32; n * h];
        let mut inner = vec![0f32; n * c.intermediate];
        let spec = AttentionSpec::default();
        for layer in &self.layers {
            be.linear_into(&x, n, &layer.w_qkv, &mut qkv)?;
            add_bias(&mut qkv, &layer.b_qkv);
            // Q, K and V are read in place from the fused rows `[q | k | v]` of `3H` values.
            let view = |rows: usize| HeadsLayout {
                heads: c.heads,
                rows,
                dim: d,
                head_stride: d,
                row_stride: 3 * h,
            };
            for span in spans {
                let rows = span.len();
                let base = span.start * 3 * h;
                let end = span.end * 3 * h;
                be.attention_into(
                    Heads {
                        data: &qkv[base..end],
                        layout: view(rows),
                    },
                    Heads {
                        data: &qkv[base + h..end],
                        layout: view(rows),
                    },
                    Heads {
                        data: &qkv[base + 2 * h..end],
                        layout: view(rows),
                    },
                    HeadsMut {
                        data: &mut att[span.start * h..span.end * h],
                        layout: HeadsLayout::token_major(c.heads, rows, d),
                    },
                    &spec,
                )?;
            }
            be.linear_into(&att, n, &layer.w_o, &mut proj)?;
            let (gain, beta) = &layer.ln1;
            activation::layer_norm(level, &mut x, Some((&proj, &layer.b_o)), gain, beta, eps);

            be.linear_into(&x, n, &layer.w_i, &mut inner)?;
            activation::bias_gelu_erf(level, &mut inner, &layer.b_i);
            be.linear_into(&inner, n, &layer.w_2, &mut proj)?;
            let (gain, beta) = &layer.ln2;
            activation::layer_norm(level, &mut x, Some((&proj, &layer.b_2)), gain, beta, eps);
        }
        Ok(x)
    }
}

/// `x[r, ·] += bias` for every row.
fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}
