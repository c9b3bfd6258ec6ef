//! The streaming half of the loader ([`crate::model::transformer`]): matrices prepared
//! straight from the file, from their stored blocks when the backend multiplies that format
//! ([`Backend::prepare_blocks`], sharing the file's storage), else through [`Backend::prepare_rows`] a chunk of rows at a
//! time, with the output head's rewrites (rotation, equalisation) applied per chunk.

use std::sync::Arc;

use crate::gguf::GgufFile;
use crate::model::config::TransformerConfig;
use crate::model::equalize;
use crate::model::rotate::{self, Rotation};
use crate::model::transformer::{check_shape, Block, VectorReader};
use nanotensor_core::backend::{Backend, LoadTransforms};
use nanotensor_core::blocks::{BlockWeight, SharedBytes};
use nanotensor_core::error::Result;

/// `check_shape`, and an element type with a dequantizer: what a matrix streamed from the file
/// needs before the backend allocates for it.
pub(crate) fn check_streamable(file: &GgufFile, name: &str, shape: &[usize]) -> Result<()> {
    check_shape(file, name, shape)?;
    crate::gguf::dequant::check_supported(name, file.tensor(name)?.ggml_type)
}

/// Matrix `name` (`[rows, cols]`, checked here) prepared straight from the file, unchanged:
/// from its stored blocks when the backend multiplies that format as stored
/// ([`Backend::prepare_blocks`]: no `f32` copy at all), else dequantized a chunk of rows at a
/// time through [`Backend::prepare_rows`].
pub(crate) fn prepare_stored<B: Backend>(
    backend: &B,
    file: &GgufFile,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<B::Weight<f32>> {
    check_streamable(file, name, &[rows, cols])?;
    let info = file.tensor(name)?;
    if let Some(format) = info.ggml_type.quant_format() {
        // A handle to the file's storage rather than a borrow: a backend keeping the blocks as
        // stored shares them instead of copying (a tied head is then the embedding's bytes).
        let owner: SharedBytes = Arc::new(file.shared_tensor_data(info));
        let blocks = BlockWeight::shared(name, format, rows, cols, &owner)?;
        if let Some(w) = backend.prepare_blocks(blocks)? {
            return Ok(w);
        }
    }
    backend.prepare_rows([rows, cols], |r, out| file.dequantize_rows(name, r, out))
}

/// Block `l` prepared straight from the file, each matrix through [`prepare_stored`] (when no
/// rewrite needs the block's matrices whole). Reads the tensors in the order `block_weights`
/// does, so a bad file gets the same first error.
pub(crate) fn streamed_block<B: Backend>(
    backend: &B,
    file: &GgufFile,
    c: &TransformerConfig,
    l: usize,
    vector: VectorReader<'_>,
) -> Result<Block<B>> {
    let n = |s: &str| format!("blk.{l}.{s}.weight");
    let matrix = |s: &str, rows: usize, cols: usize| -> Result<B::Weight<f32>> {
        prepare_stored(backend, file, &n(s), rows, cols)
    };
    let optional = |on: bool, name: &str, len: usize| -> Result<Option<Vec<f32>>> {
        on.then(|| vector(&n(name), len)).transpose()
    };
    Ok(Block {
        attn_norm: vector(&n("attn_norm"), c.dim)?,
        wq: matrix("attn_q", c.q_dim(), c.dim)?,
        wk: matrix("attn_k", c.kv_dim(), c.dim)?,
        wv: matrix("attn_v", c.kv_dim(), c.dim)?,
        wo: matrix("attn_output", c.dim, c.q_dim())?,
        ffn_norm: vector(&n("ffn_norm"), c.dim)?,
        w_gate: matrix("ffn_gate", c.ffn_dim, c.dim)?,
        w_up: matrix("ffn_up", c.ffn_dim, c.dim)?,
        w_down: matrix("ffn_down", c.dim, c.ffn_dim)?,
        q_norm: optional(c.qk_norm, "attn_q_norm", c.head_dim)?,
        k_norm: optional(c.qk_norm, "attn_k_norm", c.head_dim)?,
        post_attn_norm: optional(c.post_norms, "post_attention_norm", c.dim)?,
        post_ffn_norm: optional(c.post_norms, "post_ffw_norm", c.dim)?,
    })
}

/// The rewrite of the output head's rows as they are streamed to the backend: the final
/// norm's gain folded and the rows rotated (rotation), or columns scaled by the equalisation
/// factors (equalisation alone), or nothing. Row by row, it computes what the whole-matrix
/// rewrites ([`rotate::fold_gain`], [`Rotation::rotate_inputs`],
/// [`equalize::norm_into_matrices`]) compute.
pub(crate) enum HeadRewrite<'a> {
    None,
    Rotate {
        gain: Vec<f32>,
        rotation: &'a Rotation,
    },
    Scale(Vec<f32>),
}

impl<'a> HeadRewrite<'a> {
    /// Rows of the head read per pass of the equalisation's statistic (about 4 MiB of `f32`).
    const CHUNK_VALUES: usize = 1 << 20;

    /// The rewrite for head `name` (`[vocab_size, dim]`, checked), updating the final norm's
    /// `gain` as the whole-matrix rewrite would. Equalisation needs the head's column maxima
    /// first: one pass over its rows, a chunk at a time.
    pub(crate) fn new(
        file: &GgufFile,
        name: &str,
        gain: &mut [f32],
        rotation: Option<&'a Rotation>,
        transforms: LoadTransforms,
    ) -> Result<Self> {
        if let Some(rotation) = rotation {
            let folded = gain.to_vec();
            gain.fill(1.0);
            return Ok(HeadRewrite::Rotate {
                gain: folded,
                rotation,
            });
        }
        if !transforms.equalize {
            return Ok(HeadRewrite::None);
        }
        let info = file.tensor(name)?;
        let (rows, cols) = (info.n_rows(), info.row_len());
        let per = (Self::CHUNK_VALUES / cols.max(1)).clamp(1, rows.max(1));
        let mut buf = vec![0f32; per * cols];
        let mut column_max = vec![0f32; cols];
        for r0 in (0..rows).step_by(per) {
            let r1 = (r0 + per).min(rows);
            let b = &mut buf[..(r1 - r0) * cols];
            file.dequantize_rows(name, r0..r1, b)?;
            equalize::column_max_rows(b, &mut column_max);
        }
        Ok(HeadRewrite::Scale(equalize::norm_factors(
            gain,
            &column_max,
        )))
    }

    /// Rewrites some whole rows of the head in place.
    pub(crate) fn apply(&self, rows: &mut [f32]) {
        match self {
            HeadRewrite::None => {}
            HeadRewrite::Rotate { gain, rotation } => {
                rotate::fold_gain_rows(rows, gain);
                rotation.rotate_input_rows(rows);
            }
            HeadRewrite::Scale(s) => equalize::scale_columns_rows(rows, s),
        }
    }
}
