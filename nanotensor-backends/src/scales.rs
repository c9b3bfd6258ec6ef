//! Scale granularities of the int8 backend's operands.
//!
//! This module is compiled into every build (not only with the `int8` feature) so that the CLI
//! and [`crate::BackendOptions`] can name a granularity whatever backends are compiled in.
//!
//! * Weights use [`nanotensor_core::Granularity`]: one scale per tensor or one per output channel
//!   (a row of `W[out, in]`, the default); [`Clip`] chooses each group's range.
//! * Activations — the operand quantized anew on every call — use [`ActGranularity`]: one scale
//!   for the call's whole input, one per row (per token), or one per block of [`BlockLen`]
//!   consecutive values of a row along the reduction axis `k` (the default, 16 values).

use nanotensor_core::{Clip, Error, Result};

pub use nanotensor_core::Granularity;

/// Length of one activation scale block along `k`: a multiple of 4 in `4..=`[`BlockLen::MAX`].
///
/// Why these bounds: the int8 kernels consume `k` in groups of four (one `vpdpbusd` lane), so a
/// block is a whole number of groups; and the AVX-512 VNNI kernel converts each block's raw
/// accumulator `Σ a·(b + 128)` (at most `127·255·len` in magnitude) to f32, which is exact while
/// that bound stays below `2²⁴`: `127·255·512 = 16,581,120 < 16,777,216`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockLen(usize);

impl BlockLen {
    /// 32 values, the block length of llama.cpp's `Q8_0` (what `per-block` without a length
    /// means).
    pub const DEFAULT: BlockLen = BlockLen(32);
    /// Longest block (see the type docs).
    pub const MAX: usize = 512;

    /// A block of `len` values.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `len` is a multiple of 4 in `4..=512`.
    pub fn new(len: usize) -> Result<Self> {
        if (4..=Self::MAX).contains(&len) && len.is_multiple_of(4) {
            Ok(BlockLen(len))
        } else {
            Err(Error::invalid_arg(
                "int8 activation blocks",
                format!(
                    "block length {len} must be a multiple of 4 in 4..={}",
                    Self::MAX
                ),
            ))
        }
    }

    /// The length in values.
    pub fn get(self) -> usize {
        self.0
    }
}

/// How activations get their scales when the int8 backend quantizes them (per call, symmetric,
/// `scale = max|x| / 127` over each group).
///
/// For a product `C = A·Wᵀ` with weight scales `sw[j]` (one per output channel, or one for the
/// tensor) the three choices compute
///
/// ```text
/// PerTensor:    C[i, j] ≈ sa · sw[j] · Σ_k qa[i, k]·qw[j, k]                 (one sa per call)
/// PerRow:       C[i, j] ≈ sa[i] · sw[j] · Σ_k qa[i, k]·qw[j, k]              (one sa per row)
/// PerBlock(L):  C[i, j] ≈ sw[j] · Σ_b sa[i, b] · Σ_{k ∈ block b} qa[i, k]·qw[j, k]
/// ```
///
/// where a block `b` is `L` consecutive values of `k` (the last one possibly shorter). Each
/// block's integer dot product is exact in i32 and is scaled into an f32 accumulator; the weight
/// scale factors out of the sum. An outlier channel then only coarsens the codes of the `L`
/// values around it, not of the whole row (`PerRow`) or of every row of a prefill batch
/// (`PerTensor`). The price is one scale per `L` codes (`4/L` bytes per value) and a
/// convert-and-multiply-add per block in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ActGranularity {
    /// One scale for the whole input of a call (the original design's choice).
    #[default]
    PerTensor,
    /// One scale per row (per token).
    PerRow,
    /// One scale per block of consecutive values of a row along `k`.
    PerBlock(BlockLen),
}

impl ActGranularity {
    /// Per-block scales with llama.cpp's `Q8_0` block length (32).
    pub const PER_BLOCK_32: ActGranularity = ActGranularity::PerBlock(BlockLen::DEFAULT);

    /// Name used by the CLI and JSON: `per-tensor`, `per-row`, `per-block-<len>`.
    pub fn name(self) -> String {
        match self {
            ActGranularity::PerTensor => "per-tensor".into(),
            ActGranularity::PerRow => "per-row".into(),
            ActGranularity::PerBlock(b) => format!("per-block-{}", b.get()),
        }
    }

    /// Parses `per-tensor`, `per-row`, `per-block` (32 values) or `per-block-<len>`
    /// (`tensor`, `row`, `block` are accepted too, as [`Granularity::parse`] does).
    ///
    /// # Errors
    /// An unknown name or an invalid block length.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "per-tensor" | "tensor" => Ok(ActGranularity::PerTensor),
            "per-row" | "row" => Ok(ActGranularity::PerRow),
            "per-block" | "block" => Ok(Self::PER_BLOCK_32),
            other => {
                let len = other
                    .strip_prefix("per-block-")
                    .or_else(|| other.strip_prefix("block-"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        Error::invalid_arg(
                            "int8 activations",
                            format!(
                                "unknown granularity `{other}` (expected per-tensor, per-row, \
                                 per-block or per-block-<len>)"
                            ),
                        )
                    })?;
                Ok(ActGranularity::PerBlock(BlockLen::new(len)?))
            }
        }
    }

    /// The block length, for [`ActGranularity::PerBlock`].
    pub fn block_len(self) -> Option<usize> {
        match self {
            ActGranularity::PerBlock(b) => Some(b.get()),
            _ => None,
        }
    }
}

/// The int8 backend's options: how its weights and activations get their scales.
///
/// The default is the scheme a user can trust, within 1 % of the float path's perplexity: one
/// scale per weight row (output channel), one per block of 16 activation values, and the
/// weights rewritten at load by two transformations exact in real arithmetic — the residual
/// stream rotated (outlier channels spread over all channels) and channel ranges equalised
/// between each matrix and its producer ([`nanotensor_core::LoadTransforms`]).
/// [`Int8Options::seed`] is the original design's scheme — one scale per weight tensor, one per
/// call for the activations, no rewrites — kept for the lesson it teaches: one outlier anywhere
/// in a tensor coarsens every code of it. [`Int8Options::per_tensor`] is the default with one
/// scale per weight tensor. [`Clip::Mse`] is offered and measured; on real weights it clamps
/// the few large weights the model depends on, so no preset uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Int8Options {
    /// Weight scales: per tensor or per output channel (default).
    pub weights: Granularity,
    /// Activation scales, computed per call: per tensor, per row or per block (default 16).
    pub activations: ActGranularity,
    /// How a weight group's range is chosen: its largest magnitude (default) or the MSE-optimal
    /// clip of its own values.
    pub clip: Clip,
    /// Whether model loaders rotate the residual stream before `prepare` (default on; see
    /// `nanotensor_core::LoadTransforms`).
    pub rotate: bool,
    /// Whether model loaders equalise per-channel ranges before `prepare` (default on; see
    /// `nanotensor_core::LoadTransforms`).
    pub equalize: bool,
}

/// Length of the default activation blocks.
const DEFAULT_ACT_BLOCK: usize = 16;

impl Default for Int8Options {
    fn default() -> Self {
        Int8Options {
            weights: Granularity::PerRow,
            activations: ActGranularity::PerBlock(BlockLen(DEFAULT_ACT_BLOCK)),
            clip: Clip::AbsMax,
            rotate: true,
            equalize: true,
        }
    }
}

impl Int8Options {
    /// The default ([`Int8Options::default`]).
    pub fn accurate() -> Self {
        Self::default()
    }

    /// The original design's scheme: one scale per weight tensor (its largest magnitude), one
    /// per call for the activations, no equalisation. The cheapest and the least accurate.
    pub fn seed() -> Self {
        Int8Options {
            weights: Granularity::PerTensor,
            activations: ActGranularity::PerTensor,
            clip: Clip::AbsMax,
            rotate: false,
            equalize: false,
        }
    }

    /// The default with one scale per weight tensor (its largest magnitude): the residual
    /// stream rotated and the channel pairs equalised make that one scale fit.
    pub fn per_tensor() -> Self {
        Int8Options {
            weights: Granularity::PerTensor,
            ..Self::default()
        }
    }

    /// The settings for reports, with their CLI names: `weights`, `activations`, `clip`,
    /// `rotate` and `equalize` (`on`/`off`).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("weights", self.weights.name().to_string()),
            ("activations", self.activations.name()),
            ("clip", self.clip.name().to_string()),
            ("rotate", on_off(self.rotate)),
            ("equalize", on_off(self.equalize)),
        ]
    }
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

impl From<Granularity> for ActGranularity {
    fn from(g: Granularity) -> Self {
        match g {
            Granularity::PerTensor => ActGranularity::PerTensor,
            Granularity::PerRow => ActGranularity::PerRow,
        }
    }
}

impl std::fmt::Display for ActGranularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_errors() {
        for g in [
            ActGranularity::PerTensor,
            ActGranularity::PerRow,
            ActGranularity::PER_BLOCK_32,
            ActGranularity::PerBlock(BlockLen::new(128).unwrap()),
        ] {
            assert_eq!(ActGranularity::parse(&g.name()).unwrap(), g);
        }
        assert_eq!(
            ActGranularity::parse("per-block").unwrap().block_len(),
            Some(32)
        );
        assert_eq!(
            ActGranularity::parse("row").unwrap(),
            ActGranularity::PerRow
        );
        for bad in [
            "per-col",
            "per-block-30",
            "per-block-0",
            "per-block-1024",
            "per-block-x",
        ] {
            assert!(matches!(
                ActGranularity::parse(bad),
                Err(Error::InvalidArgument { .. })
            ));
        }
        assert_eq!(
            ActGranularity::from(Granularity::PerRow),
            ActGranularity::PerRow
        );
    }
}
