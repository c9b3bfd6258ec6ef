//! The hyperparameters of a decoder-only transformer, read from a GGUF file's metadata, and the
//! architecture's differences from LLaMA carried as data.
//!
//! One forward pass ([`Transformer::forward`](crate::model::Transformer::forward)) runs every
//! architecture this crate knows; where one differs from another, the difference is a field here
//! and the forward pass reads it:
//!
//! | hook | `llama` | `gemma3` |
//! |---|---|---|
//! | [`embed_scale`](TransformerConfig::embed_scale) | none | `√dim` (f32, as llama.cpp's `sqrtf(n_embd)`) |
//! | [`qk_norm`](TransformerConfig::qk_norm) | no | RMSNorm of each Q and K head before RoPE |
//! | [`post_norms`](TransformerConfig::post_norms) | no | RMSNorm of the attention and FFN outputs before each residual add |
//! | [`activation`](TransformerConfig::activation) | SiLU (SwiGLU) | GELU, tanh form (GeGLU) |
//! | [`attn_scale`](TransformerConfig::attn_scale) | `1/√head_dim` | `1/√head_dim` (`1/√(dim/heads)` for the 62-layer model) |
//! | [`rope_style`](TransformerConfig::rope_style) | adjacent pairs | NEOX: pairs `(i, i + head_dim/2)` |
//! | [`sliding_window`](TransformerConfig::sliding_window) | none | 512 on five of every six layers, local RoPE base 10,000 |
//! | `head_dim` | `dim / heads` | `attention.key_length` (256 for 640 = 4 heads × 160) |
//!
//! The Gemma 3 values follow llama.cpp's `gemma3` graph and hyperparameter loader (which fix the
//! sliding-window pattern, the local RoPE base and the query scale in code, as the GGUF does not
//! store them). Gemma's RMSNorm computes `x̂ · (1 + w)`; the GGUF conversion already adds the 1
//! to every stored norm weight, so every norm here is the plain `x̂ · g`.

use crate::gguf::GgufFile;
use nanotensor_core::error::{Error, Result};

const OP: &str = "model config";

/// The architectures [`TransformerConfig::from_gguf`] reads (`general.architecture`).
pub const SUPPORTED_ARCHITECTURES: &str = "llama, gemma3";

/// A model architecture this crate runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// LLaMA and its descendants stored as `llama` (SmolLM2, …).
    Llama,
    /// Gemma 3 (text decoder), stored as `gemma3`.
    Gemma3,
}

impl Architecture {
    /// The `general.architecture` string, which is also the prefix of the hyperparameter keys.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Gemma3 => "gemma3",
        }
    }

    /// The architecture named `name`.
    ///
    /// # Errors
    /// [`Error::UnsupportedArchitecture`] naming it and the supported ones.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "llama" => Ok(Architecture::Llama),
            "gemma3" => Ok(Architecture::Gemma3),
            other => Err(Error::UnsupportedArchitecture {
                op: OP,
                architecture: other.to_string(),
                supported: SUPPORTED_ARCHITECTURES,
            }),
        }
    }
}

/// The gating nonlinearity of the FFN: `hidden = act(x·W_gateᵀ) ⊙ x·W_upᵀ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `silu(x) = x·σ(x)` (SwiGLU, LLaMA).
    Silu,
    /// GELU in its tanh approximation (GeGLU, Gemma).
    GeluTanh,
}

/// Which values of a head RoPE rotates together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)`: llama.cpp's "normal" RoPE, used for `llama` (whose GGUF
    /// conversion permutes the Q and K rows so that this is right for Hugging Face checkpoints).
    Adjacent,
    /// Pairs `(i, i + head_dim/2)`: llama.cpp's NEOX RoPE, the Hugging Face `rotate_half` layout
    /// (Gemma, whose Q and K rows are stored unpermuted).
    Neox,
}

/// Sliding-window (local) attention on some layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    /// Positions a query of a local layer sees: its own and the `size − 1` before it.
    pub size: usize,
    /// Layer `l` is global (full causal attention) when `(l + 1) % pattern == 0`, local
    /// otherwise (Gemma 3: 6, so five local layers, then one global).
    pub pattern: usize,
    /// RoPE frequency base of the local layers (the global ones use
    /// [`TransformerConfig::rope_base`]).
    pub rope_base: f64,
}

/// The hyperparameters of a model, read from the GGUF metadata (`<arch>.*` keys), and its
/// differences from LLaMA (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerConfig {
    /// The architecture (`general.architecture`).
    pub architecture: Architecture,
    /// Transformer blocks (`<arch>.block_count`).
    pub n_layers: usize,
    /// Width of the residual stream (`<arch>.embedding_length`).
    pub dim: usize,
    /// Hidden width of the gated FFN (`<arch>.feed_forward_length`).
    pub ffn_dim: usize,
    /// Query heads (`<arch>.attention.head_count`).
    pub n_heads: usize,
    /// Key/value heads (`<arch>.attention.head_count_kv`); divides `n_heads` (grouped-query
    /// attention: query head `h` reads KV head `h / (n_heads / n_kv_heads)`).
    pub n_kv_heads: usize,
    /// Values per head of Q, K and V: `<arch>.attention.key_length`, else `dim / n_heads`.
    pub head_dim: usize,
    /// RMSNorm epsilon (`<arch>.attention.layer_norm_rms_epsilon`).
    pub norm_eps: f32,
    /// RoPE frequency base of the global layers (`<arch>.rope.freq_base`, 10000 when absent).
    pub rope_base: f64,
    /// Linear RoPE scaling of the global layers: positions are multiplied by this
    /// (`1 / <arch>.rope.scaling.factor`; 1 without scaling).
    pub rope_freq_scale: f64,
    /// Which values RoPE pairs.
    pub rope_style: RopeStyle,
    /// Positions the model was trained for (`<arch>.context_length`).
    pub context_length: usize,
    /// Vocabulary size: rows of `token_embd.weight`.
    pub vocab_size: usize,
    /// Multiplier of the token embedding (Gemma: `√dim`).
    pub embed_scale: Option<f32>,
    /// RMSNorm of every Q and K head before RoPE (`attn_q_norm`, `attn_k_norm`, `[head_dim]`).
    pub qk_norm: bool,
    /// RMSNorm of the attention output and of the FFN output before their residual adds
    /// (`post_attention_norm`, `post_ffw_norm`, `[dim]`).
    pub post_norms: bool,
    /// The FFN's gating nonlinearity.
    pub activation: Activation,
    /// Multiplier of `Q·Kᵀ`.
    pub attn_scale: f64,
    /// Local attention on some layers, if any.
    pub sliding_window: Option<SlidingWindow>,
    /// `cap · tanh(logits / cap)` on the output logits (`<arch>.final_logit_softcapping`).
    pub final_logit_softcap: Option<f32>,
    /// The residual stream carries *massive activations* (Sun et al., 2024): one or two
    /// channels hold most of the normalised stream's energy, and the pre-norm gains all but
    /// cancel them (Gemma 3 270M: one channel about 24× the stream's RMS, its FFN-norm gain 0).
    /// The loader then skips the weight rewrites a quantizing backend asks for
    /// ([`Backend::load_transforms`](nanotensor_core::Backend::load_transforms)): a rotation
    /// spreads that channel over all the others, so the weights' quantization error along it is
    /// multiplied by its size, and equalisation's data-free range estimate (the norm gain)
    /// misjudges it. Both rewrites stay exact; they only stop helping int8.
    pub massive_activations: bool,
}

/// Optional numeric key: `None` when absent.
fn opt_f32(file: &GgufFile, key: &str) -> Result<Option<f32>> {
    match file.get(key) {
        Some(_) => file.get_f32(key).map(Some),
        None => Ok(None),
    }
}

/// Optional integer key: `None` when absent.
fn opt_usize(file: &GgufFile, key: &str) -> Result<Option<usize>> {
    match file.get(key) {
        Some(_) => file.get_usize(key).map(Some),
        None => Ok(None),
    }
}

impl TransformerConfig {
    /// Reads the hyperparameters of a `llama` or `gemma3` GGUF file and checks that they fit
    /// together.
    ///
    /// # Errors
    /// [`Error::UnsupportedArchitecture`] for another architecture; [`Error::Format`] for
    /// inconsistent sizes or a feature this crate does not run (partial rotary embeddings,
    /// RoPE scaling other than linear, value heads of another width);
    /// [`Error::MissingKey`] / [`Error::KeyType`] for absent or mistyped keys.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let architecture = Architecture::from_name(file.architecture()?)?;
        let a = architecture.name();
        let key = |k: &str| format!("{a}.{k}");
        let n_heads = file.get_usize(&key("attention.head_count"))?;
        let dim = file.get_usize(&key("embedding_length"))?;
        let n_layers = file.get_usize(&key("block_count"))?;
        let head_dim = match opt_usize(file, &key("attention.key_length"))? {
            Some(k) => k,
            None => dim.checked_div(n_heads).unwrap_or(0),
        };
        if let Some(v) = opt_usize(file, &key("attention.value_length"))? {
            if v != head_dim {
                return Err(Error::format(
                    OP,
                    format!("value heads of {v} differ from key heads of {head_dim}"),
                ));
            }
        }
        let rope_base = opt_f32(file, &key("rope.freq_base"))?.map_or(10_000.0, f64::from);
        let rope_freq_scale = rope_scale(file, a)?;
        let embd = file.tensor("token_embd.weight")?;
        let base = TransformerConfig {
            architecture,
            n_layers,
            dim,
            ffn_dim: file.get_usize(&key("feed_forward_length"))?,
            n_heads,
            n_kv_heads: opt_usize(file, &key("attention.head_count_kv"))?.unwrap_or(n_heads),
            head_dim,
            norm_eps: file.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            rope_base,
            rope_freq_scale,
            rope_style: RopeStyle::Adjacent,
            context_length: file.get_usize(&key("context_length"))?,
            vocab_size: embd.shape.first().copied().unwrap_or(0),
            embed_scale: None,
            qk_norm: false,
            post_norms: false,
            activation: Activation::Silu,
            attn_scale: 1.0 / (head_dim.max(1) as f64).sqrt(),
            sliding_window: None,
            final_logit_softcap: opt_f32(file, &key("final_logit_softcapping"))?
                .filter(|&c| c != 0.0),
            massive_activations: false,
        };
        let cfg = match architecture {
            Architecture::Llama => base,
            Architecture::Gemma3 => TransformerConfig {
                // llama.cpp: sqrtf(n_embd), a correctly rounded f32 square root.
                embed_scale: Some((dim as f32).sqrt()),
                qk_norm: true,
                post_norms: true,
                activation: Activation::GeluTanh,
                rope_style: RopeStyle::Neox,
                // Gemma 3's query_pre_attn_scalar is head_dim, except for the 27B model
                // (62 layers), whose is dim / heads; the GGUF does not store it, so llama.cpp
                // decides by the layer count, and so do we.
                attn_scale: if n_layers == 62 {
                    1.0 / (dim.checked_div(n_heads).unwrap_or(1).max(1) as f64).sqrt()
                } else {
                    base.attn_scale
                },
                sliding_window: Some(SlidingWindow {
                    size: file.get_usize(&key("attention.sliding_window"))?,
                    pattern: 6,
                    rope_base: 10_000.0,
                }),
                massive_activations: true,
                ..base
            },
        };
        cfg.validate()?;
        if let Some(rot) = opt_usize(file, &key("rope.dimension_count"))? {
            if rot != cfg.head_dim {
                return Err(Error::format(
                    OP,
                    format!(
                        "partial rotary embedding ({rot} of {} dims) is not supported",
                        cfg.head_dim
                    ),
                ));
            }
        }
        if let Some(v) = file.get(&key("vocab_size")).and_then(|v| v.as_integer()) {
            if v != cfg.vocab_size as i128 {
                return Err(Error::format(
                    OP,
                    format!(
                        "{a}.vocab_size {v} differs from token_embd rows {}",
                        cfg.vocab_size
                    ),
                ));
            }
        }
        Ok(cfg)
    }

    /// Checks that the sizes are positive and consistent.
    ///
    /// # Errors
    /// [`Error::Format`] naming what does not fit; [`Error::Overflow`] for a matrix whose
    /// element count does not fit `usize`.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            self.n_layers,
            self.dim,
            self.ffn_dim,
            self.n_heads,
            self.n_kv_heads,
            self.head_dim,
            self.context_length,
            self.vocab_size,
        ];
        if sizes.contains(&0) {
            return Err(Error::format(OP, format!("a zero size in {self:?}")));
        }
        // Q and K/V widths must be addressable before anything multiplies them.
        if self.n_heads.checked_mul(self.head_dim).is_none() {
            return Err(Error::overflow(
                OP,
                "attention.head_count",
                format!("{} heads × {} values", self.n_heads, self.head_dim),
            ));
        }
        if self.architecture == Architecture::Llama
            && self.head_dim.checked_mul(self.n_heads) != Some(self.dim)
        {
            return Err(Error::format(
                OP,
                format!(
                    "embedding {} is not heads {} × head_dim {}",
                    self.dim, self.n_heads, self.head_dim
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
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(self.norm_eps.is_finite()
            && self.norm_eps >= 0.0
            && positive(self.rope_base)
            && positive(self.rope_freq_scale)
            && positive(self.attn_scale)
            && self.embed_scale.is_none_or(|s| positive(f64::from(s)))
            && self
                .final_logit_softcap
                .is_none_or(|c| positive(f64::from(c))))
        {
            return Err(Error::format(
                OP,
                "bad RMSNorm epsilon, RoPE base or scale, attention scale, embedding scale or logit cap",
            ));
        }
        if let Some(w) = &self.sliding_window {
            if w.size == 0 || w.pattern == 0 || !positive(w.rope_base) {
                return Err(Error::format(OP, format!("bad sliding window {w:?}")));
            }
        }
        // The sizes come from the file: the loader and the state multiply them, so every
        // product they form must fit.
        for (what, a, b) in [
            ("token_embd.weight", self.vocab_size, self.dim),
            ("feed_forward_length", self.ffn_dim, self.dim),
            ("attention.head_count", self.q_dim(), self.dim),
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

    /// Values per row of Q: `n_heads · head_dim` (saturates in a config whose sizes do not
    /// fit, which then matches no tensor).
    pub fn q_dim(&self) -> usize {
        self.n_heads.saturating_mul(self.head_dim)
    }

    /// Values per row of K and V: `n_kv_heads · head_dim` (saturates like [`Self::q_dim`]).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads.saturating_mul(self.head_dim)
    }

    /// The sliding window of layer `l`: `Some(size)` on a local layer, `None` on a global one.
    pub fn layer_window(&self, l: usize) -> Option<usize> {
        self.sliding_window
            .filter(|w| !(l + 1).is_multiple_of(w.pattern))
            .map(|w| w.size)
    }

    /// RoPE base and position scale of layer `l`: the local ones on a sliding-window layer
    /// (unscaled, as llama.cpp's `rope_freq_scale_train_swa = 1`), the global ones otherwise.
    pub fn layer_rope(&self, l: usize) -> (f64, f64) {
        match (self.layer_window(l), &self.sliding_window) {
            (Some(_), Some(w)) => (w.rope_base, 1.0),
            _ => (self.rope_base, self.rope_freq_scale),
        }
    }
}

/// `1 / <arch>.rope.scaling.factor` for linear (or no) RoPE scaling; other kinds are refused.
fn rope_scale(file: &GgufFile, arch: &str) -> Result<f64> {
    let kind_key = format!("{arch}.rope.scaling.type");
    let kind = match file.get(&kind_key) {
        Some(_) => Some(file.get_str(&kind_key)?),
        None => None,
    };
    let factor = opt_f32(file, &format!("{arch}.rope.scaling.factor"))?;
    match (kind, factor) {
        (Some("none"), _) | (_, None) => Ok(1.0),
        (None | Some("linear"), Some(f)) if f == 0.0 || f == 1.0 => Ok(1.0),
        (None | Some("linear"), Some(f)) if f.is_finite() && f > 0.0 => Ok(1.0 / f64::from(f)),
        (Some(k), _) if k != "linear" => Err(Error::format(
            OP,
            format!("RoPE scaling `{k}` is not supported (only linear)"),
        )),
        (_, Some(f)) => Err(Error::format(OP, format!("bad RoPE scaling factor {f}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn smollm2() -> TransformerConfig {
        // SmolLM2-135M (tests/fixtures/smollm2/README.md).
        TransformerConfig {
            architecture: Architecture::Llama,
            n_layers: 30,
            dim: 576,
            ffn_dim: 1536,
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
            norm_eps: 1e-5,
            rope_base: 100_000.0,
            rope_freq_scale: 1.0,
            rope_style: RopeStyle::Adjacent,
            context_length: 8192,
            vocab_size: 49152,
            embed_scale: None,
            qk_norm: false,
            post_norms: false,
            activation: Activation::Silu,
            attn_scale: 0.125,
            sliding_window: None,
            final_logit_softcap: None,
            massive_activations: false,
        }
    }

    fn gemma3_270m() -> TransformerConfig {
        // tests/fixtures/gemma3/README.md.
        TransformerConfig {
            architecture: Architecture::Gemma3,
            n_layers: 18,
            dim: 640,
            ffn_dim: 2048,
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: 256,
            norm_eps: 1e-6,
            rope_base: 1e6,
            rope_style: RopeStyle::Neox,
            context_length: 32768,
            vocab_size: 262_144,
            embed_scale: Some(640f32.sqrt()),
            qk_norm: true,
            post_norms: true,
            activation: Activation::GeluTanh,
            attn_scale: 1.0 / 16.0,
            sliding_window: Some(SlidingWindow {
                size: 512,
                pattern: 6,
                rope_base: 10_000.0,
            }),
            massive_activations: true,
            ..smollm2()
        }
    }

    #[test]
    fn smollm2_config_is_consistent() {
        let c = smollm2();
        c.validate().unwrap();
        assert_eq!((c.q_dim(), c.kv_dim()), (576, 192));
        assert_eq!(c.layer_window(5), None);
        assert_eq!(c.layer_rope(5), (100_000.0, 1.0));
    }

    #[test]
    fn gemma3_heads_are_wider_than_dim_over_heads() {
        let c = gemma3_270m();
        c.validate().unwrap();
        assert_eq!((c.q_dim(), c.kv_dim()), (1024, 256));
        // The same head width on a LLaMA is an inconsistent file.
        let llama = TransformerConfig {
            architecture: Architecture::Llama,
            ..c
        };
        assert!(matches!(llama.validate(), Err(Error::Format { .. })));
    }

    #[test]
    fn gemma3_layers_alternate_five_local_then_one_global() {
        let c = gemma3_270m();
        let global: Vec<usize> = (0..18).filter(|&l| c.layer_window(l).is_none()).collect();
        assert_eq!(global, [5, 11, 17]);
        assert_eq!(c.layer_window(0), Some(512));
        assert_eq!(c.layer_rope(0), (10_000.0, 1.0));
        assert_eq!(c.layer_rope(5), (1e6, 1.0));
        // The embedding scale is the f32 square root of 640.
        assert_eq!(c.embed_scale, Some(25.298_221));
    }

    #[test]
    fn other_architectures_are_refused_by_name() {
        let e = Architecture::from_name("qwen2").unwrap_err();
        assert!(
            matches!(&e, Error::UnsupportedArchitecture { architecture, .. } if architecture == "qwen2"),
            "{e}"
        );
        assert!(e.to_string().contains("llama, gemma3"), "{e}");
        assert_eq!(Architecture::from_name("gemma3").unwrap().name(), "gemma3");
    }

    #[test]
    fn inconsistent_configs_are_format_errors() {
        let bad = [
            TransformerConfig {
                n_kv_heads: 2,
                ..smollm2()
            },
            TransformerConfig {
                head_dim: 63,
                ..smollm2()
            },
            TransformerConfig {
                n_layers: 0,
                ..smollm2()
            },
            TransformerConfig {
                norm_eps: f32::NAN,
                ..smollm2()
            },
            TransformerConfig {
                attn_scale: 0.0,
                ..smollm2()
            },
            TransformerConfig {
                sliding_window: Some(SlidingWindow {
                    size: 0,
                    pattern: 6,
                    rope_base: 1e4,
                }),
                ..gemma3_270m()
            },
            TransformerConfig {
                head_dim: 255,
                ..gemma3_270m()
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
                TransformerConfig {
                    vocab_size: usize::MAX / 2,
                    ..smollm2()
                },
                "token_embd.weight",
            ),
            (
                TransformerConfig {
                    ffn_dim: usize::MAX / 4,
                    ..smollm2()
                },
                "feed_forward_length",
            ),
            (
                TransformerConfig {
                    n_heads: usize::MAX / 32 + 1,
                    head_dim: 64,
                    ..gemma3_270m()
                },
                "attention.head_count",
            ),
        ] {
            let e = c.validate().unwrap_err();
            assert!(
                matches!(&e, Error::Overflow { what, .. } if what == key),
                "{e}"
            );
        }
        // heads × head_dim that overflows is not the embedding width.
        let c = TransformerConfig {
            n_heads: usize::MAX / 32 + 1,
            head_dim: 64,
            ..smollm2()
        };
        assert!(c.validate().is_err());
        assert_eq!(c.q_dim(), usize::MAX);
    }
}
