//! The configuration of a sentence-transformers BERT directory: `config.json` (the encoder's
//! hyperparameters), `sentence_bert_config.json` (the maximum sequence length),
//! `1_Pooling/config.json` (the pooling) and `modules.json` (whether a `Normalize` module
//! follows).

use std::path::Path;

use serde_json::Value;

use nanotensor_core::{Error, Result};

const OP: &str = "bert config";

/// What the encoder and the embedding steps need to know.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word embedding).
    pub vocab_size: usize,
    /// Hidden size `H`.
    pub hidden: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Attention heads; `H / heads` is the head dimension.
    pub heads: usize,
    /// FFN inner size.
    pub intermediate: usize,
    /// Learned positions (rows of the position embedding).
    pub max_positions: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// Longest input in tokens, `[CLS]` and `[SEP]` included (sentence-transformers'
    /// `max_seq_length`, at most `max_positions`).
    pub max_seq_len: usize,
    /// Whether the pooled embedding is L2-normalised (a `Normalize` module in `modules.json`).
    pub normalize: bool,
}

/// The texts of a sentence-transformers directory's configuration files, read from disk
/// ([`ConfigFiles::read_dir`]) or handed over by a caller that has no file system (the browser).
/// Only `config.json` is required; a missing optional file means BERT's own default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigFiles {
    /// `config.json`.
    pub config: String,
    /// `sentence_bert_config.json`.
    pub sentence_bert_config: Option<String>,
    /// `1_Pooling/config.json`.
    pub pooling_config: Option<String>,
    /// `modules.json`.
    pub modules: Option<String>,
}

/// The relative paths of the files of a [`ConfigFiles`], in field order.
pub const CONFIG_FILE_NAMES: [&str; 4] = [
    "config.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "modules.json",
];

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        op: OP,
        path: path.display().to_string(),
        source,
    })
}

/// `text` (the file `name`) as JSON.
fn parse_json(name: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::format(OP, format!("{name}: {e}")))
}

impl ConfigFiles {
    /// Reads the configuration files of the directory `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing `config.json` or an optional file that exists but cannot be
    /// read.
    pub fn read_dir(dir: &Path) -> Result<ConfigFiles> {
        let optional = |name: &str| -> Result<Option<String>> {
            let path = dir.join(name);
            if path.is_file() {
                read_text(&path).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(ConfigFiles {
            config: read_text(&dir.join(CONFIG_FILE_NAMES[0]))?,
            sentence_bert_config: optional(CONFIG_FILE_NAMES[1])?,
            pooling_config: optional(CONFIG_FILE_NAMES[2])?,
            modules: optional(CONFIG_FILE_NAMES[3])?,
        })
    }
}

/// `key` of `json` as a positive integer.
fn usize_key(json: &Value, key: &str) -> Result<usize> {
    let v = json.get(key).ok_or_else(|| Error::MissingKey {
        op: OP,
        key: key.to_string(),
    })?;
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| Error::KeyType {
            op: OP,
            key: key.to_string(),
            expected: "a positive integer",
            found: v.to_string(),
        })
}

impl BertConfig {
    /// Reads the configuration of the sentence-transformers directory `dir`:
    /// [`ConfigFiles::read_dir`], then [`BertConfig::from_files`].
    ///
    /// # Errors
    /// As [`ConfigFiles::read_dir`] and [`BertConfig::from_files`].
    pub fn from_dir(dir: &Path) -> Result<BertConfig> {
        Self::from_files(&ConfigFiles::read_dir(dir)?)
    }

    /// Parses the configuration files' texts.
    ///
    /// # Errors
    /// [`Error::Format`] for a file that is not JSON; [`Error::MissingKey`] /
    /// [`Error::KeyType`] for a missing or malformed hyperparameter;
    /// [`Error::UnsupportedArchitecture`] for a model type other than `bert`; [`Error::Format`]
    /// for an unsupported activation, position embedding or pooling, or heads that do not
    /// divide the hidden size.
    pub fn from_files(files: &ConfigFiles) -> Result<BertConfig> {
        let c = parse_json(CONFIG_FILE_NAMES[0], &files.config)?;
        let model_type = c.get("model_type").and_then(Value::as_str).unwrap_or("");
        if model_type != "bert" {
            return Err(Error::UnsupportedArchitecture {
                op: OP,
                architecture: model_type.to_string(),
                supported: "bert",
            });
        }
        for (key, want) in [
            ("hidden_act", "gelu"),
            ("position_embedding_type", "absolute"),
        ] {
            match c.get(key).and_then(Value::as_str) {
                None => {}
                Some(v) if v == want => {}
                Some(v) => {
                    return Err(Error::format(
                        OP,
                        format!("{key} `{v}` is not supported (only `{want}`)"),
                    ))
                }
            }
        }
        let hidden = usize_key(&c, "hidden_size")?;
        let heads = usize_key(&c, "num_attention_heads")?;
        if !hidden.is_multiple_of(heads) {
            return Err(Error::format(
                OP,
                format!("{heads} heads do not divide the hidden size {hidden}"),
            ));
        }
        let max_positions = usize_key(&c, "max_position_embeddings")?;
        let layer_norm_eps = c
            .get("layer_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-12) as f32;

        // Optional sentence-transformers files: defaults are BERT's own.
        let max_seq_len = match &files.sentence_bert_config {
            Some(text) => usize_key(&parse_json(CONFIG_FILE_NAMES[1], text)?, "max_seq_length")?,
            None => max_positions,
        }
        .min(max_positions);
        if let Some(text) = &files.pooling_config {
            let p = parse_json(CONFIG_FILE_NAMES[2], text)?;
            if p.get("pooling_mode_mean_tokens").and_then(Value::as_bool) != Some(true) {
                return Err(Error::format(
                    OP,
                    "only mean pooling (`pooling_mode_mean_tokens`) is supported",
                ));
            }
        }
        let normalize = match &files.modules {
            Some(text) => parse_json(CONFIG_FILE_NAMES[3], text)?
                .as_array()
                .is_some_and(|m| {
                    m.iter().any(|m| {
                        m.get("type").and_then(Value::as_str)
                            == Some("sentence_transformers.models.Normalize")
                    })
                }),
            None => false,
        };
        if max_seq_len < 2 {
            return Err(Error::format(
                OP,
                "max_seq_length below 2 leaves no room for text",
            ));
        }
        Ok(BertConfig {
            vocab_size: usize_key(&c, "vocab_size")?,
            hidden,
            layers: usize_key(&c, "num_hidden_layers")?,
            heads,
            intermediate: usize_key(&c, "intermediate_size")?,
            max_positions,
            layer_norm_eps,
            max_seq_len,
            normalize,
        })
    }

    /// The head dimension `H / heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2,
        "max_position_embeddings": 16, "vocab_size": 10, "num_hidden_layers": 1,
        "intermediate_size": 32}"#;

    #[test]
    fn optional_files_default_to_bert_and_override_when_given() {
        let mut files = ConfigFiles {
            config: CONFIG.into(),
            ..ConfigFiles::default()
        };
        let c = BertConfig::from_files(&files).unwrap();
        assert_eq!((c.max_seq_len, c.normalize, c.head_dim()), (16, false, 4));
        files.sentence_bert_config = Some(r#"{"max_seq_length": 8}"#.into());
        files.modules = Some(r#"[{"type": "sentence_transformers.models.Normalize"}]"#.into());
        files.pooling_config = Some(r#"{"pooling_mode_mean_tokens": true}"#.into());
        let c = BertConfig::from_files(&files).unwrap();
        assert_eq!((c.max_seq_len, c.normalize), (8, true));
    }

    #[test]
    fn a_malformed_file_is_a_typed_error_naming_it() {
        let files = ConfigFiles {
            config: CONFIG.into(),
            modules: Some("[not json".into()),
            ..ConfigFiles::default()
        };
        let e = BertConfig::from_files(&files).unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "{e:?}");
        assert!(e.to_string().contains("modules.json"), "{e}");
        let files = ConfigFiles {
            config: CONFIG.into(),
            pooling_config: Some(r#"{"pooling_mode_cls_token": true}"#.into()),
            ..ConfigFiles::default()
        };
        assert!(BertConfig::from_files(&files)
            .unwrap_err()
            .to_string()
            .contains("mean pooling"));
        let files = ConfigFiles {
            config: CONFIG.replace("\"bert\"", "\"roberta\""),
            ..ConfigFiles::default()
        };
        assert!(matches!(
            BertConfig::from_files(&files),
            Err(Error::UnsupportedArchitecture { .. })
        ));
    }
}
