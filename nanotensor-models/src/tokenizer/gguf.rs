//! Building a [`Tokenizer`] from the `tokenizer.ggml.*` metadata of a GGUF file.

// Sizes here come from the file: overflow must be an error, never a wrap or a panic.
#![deny(clippy::arithmetic_side_effects)]

use super::{PreTokenizer, Tokenizer};
use crate::gguf::GgufFile;
use nanotensor_core::{Error, Result};

/// GGUF metadata keys read by [`Tokenizer::from_gguf`].
pub mod keys {
    /// Tokenizer family; only `gpt2` (byte-level BPE) is supported.
    pub const MODEL: &str = "tokenizer.ggml.model";
    /// Pre-tokenizer name (`smollm`, `gpt2`, …).
    pub const PRE: &str = "tokenizer.ggml.pre";
    /// Vocabulary strings.
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    /// Merge list, `"left right"` per line.
    pub const MERGES: &str = "tokenizer.ggml.merges";
    /// Token types (i32 per token).
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    /// Beginning-of-sequence id.
    pub const BOS: &str = "tokenizer.ggml.bos_token_id";
    /// End-of-sequence id.
    pub const EOS: &str = "tokenizer.ggml.eos_token_id";
}

impl Tokenizer {
    /// Builds the tokenizer stored in a GGUF file.
    ///
    /// Reads `tokenizer.ggml.model` (must be `gpt2`), `tokenizer.ggml.pre` (see
    /// [`PreTokenizer::from_gguf_name`]; plain GPT-2 when absent), `tokenizer.ggml.tokens`,
    /// `tokenizer.ggml.merges`, and, when present, `tokenizer.ggml.token_type`,
    /// `tokenizer.ggml.bos_token_id` and `tokenizer.ggml.eos_token_id`.
    ///
    /// Errors: the reader's [`Error::MissingKey`] / [`Error::KeyType`] naming the key, or
    /// [`Error::Format`] for an unsupported tokenizer family or pre-tokenizer and for the
    /// inconsistencies [`Tokenizer::new`] rejects.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let model = file.get_str(keys::MODEL)?;
        if model != "gpt2" {
            return Err(Error::format(
                "tokenizer",
                format!(
                    "`{}` = `{model}` is not supported (only byte-level BPE, `gpt2`)",
                    keys::MODEL
                ),
            ));
        }
        let pre = match file.get(keys::PRE) {
            None => PreTokenizer::Gpt2,
            Some(_) => {
                let name = file.get_str(keys::PRE)?;
                PreTokenizer::from_gguf_name(name).ok_or_else(|| {
                    Error::format(
                        "tokenizer",
                        format!("pre-tokenizer `{}` = `{name}` is not supported", keys::PRE),
                    )
                })?
            }
        };
        let tokens: Vec<String> = file
            .get_str_array(keys::TOKENS)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let merges = file.get_str_array(keys::MERGES)?;
        let types = match file.get(keys::TOKEN_TYPE) {
            Some(_) => file.get_i32_array(keys::TOKEN_TYPE)?,
            None => Vec::new(),
        };
        let optional_id = |key: &str| -> Result<Option<u32>> {
            file.get(key).map(|_| file.get_u32(key)).transpose()
        };
        let bos = optional_id(keys::BOS)?;
        let eos = optional_id(keys::EOS)?;
        Ok(Tokenizer::new(tokens, &merges, types, bos, eos)?.with_pre_tokenizer(pre))
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // tests: arithmetic on constants
mod tests {
    use super::*;

    const T_U32: u32 = 4;
    const T_I32: u32 = 5;
    const T_STRING: u32 = 8;
    const T_ARRAY: u32 = 9;

    fn string(x: &str) -> Vec<u8> {
        let mut v = (x.len() as u64).to_le_bytes().to_vec();
        v.extend(x.as_bytes());
        v
    }

    fn strings(xs: &[&str]) -> Vec<u8> {
        let mut v = T_STRING.to_le_bytes().to_vec();
        v.extend((xs.len() as u64).to_le_bytes());
        v.extend(xs.iter().flat_map(|x| string(x)));
        v
    }

    /// A GGUF v3 file with no tensors and the given `(key, type tag, encoded value)` pairs.
    fn gguf(kvs: &[(&str, u32, Vec<u8>)]) -> GgufFile {
        let mut f = b"GGUF".to_vec();
        f.extend(3u32.to_le_bytes());
        f.extend(0u64.to_le_bytes());
        f.extend((kvs.len() as u64).to_le_bytes());
        for (key, tag, value) in kvs {
            f.extend(string(key));
            f.extend(tag.to_le_bytes());
            f.extend(value);
        }
        f.resize(f.len().div_ceil(32) * 32, 0);
        GgufFile::from_bytes(f).unwrap()
    }

    /// Tokens: 0 `<s>` (control), 1 `a`, 2 `b`, 3 `1`, 4 `Ġ`, 5 `ab`, 6 `11`.
    fn toy_kvs(model: &str, pre: Option<&str>) -> Vec<(&'static str, u32, Vec<u8>)> {
        let mut types = T_I32.to_le_bytes().to_vec();
        types.extend(7u64.to_le_bytes());
        for t in [3i32, 1, 1, 1, 1, 1, 1] {
            types.extend(t.to_le_bytes());
        }
        let mut kvs = vec![
            (keys::MODEL, T_STRING, string(model)),
            (
                keys::TOKENS,
                T_ARRAY,
                strings(&["<s>", "a", "b", "1", "Ġ", "ab", "11"]),
            ),
            (keys::MERGES, T_ARRAY, strings(&["a b", "1 1"])),
            (keys::TOKEN_TYPE, T_ARRAY, types),
            (keys::BOS, T_U32, 0u32.to_le_bytes().to_vec()),
        ];
        if let Some(pre) = pre {
            kvs.push((keys::PRE, T_STRING, string(pre)));
        }
        kvs
    }

    #[test]
    fn reads_vocabulary_merges_types_and_pre_tokenizer() {
        let tok = Tokenizer::from_gguf(&gguf(&toy_kvs("gpt2", Some("smollm")))).unwrap();
        assert_eq!(tok.vocab_size(), 7);
        assert_eq!(tok.merge_count(), 2);
        assert_eq!((tok.bos(), tok.eos()), (Some(0), None));
        assert!(tok.is_control(0));
        assert_eq!(tok.pre_tokenizer(), PreTokenizer::Smollm);
        // smollm splits digits, so "11" is never merged.
        assert_eq!(tok.encode("<s>ab 11"), [0, 5, 4, 3, 3]);
        // Without `tokenizer.ggml.pre`: plain GPT-2, where " 11" stays one piece ("Ġ" "11").
        let tok = Tokenizer::from_gguf(&gguf(&toy_kvs("gpt2", None))).unwrap();
        assert_eq!(tok.pre_tokenizer(), PreTokenizer::Gpt2);
        assert_eq!(tok.encode("ab 11"), [5, 4, 6]);
    }

    #[test]
    fn unsupported_or_missing_metadata_is_an_error() {
        let err = Tokenizer::from_gguf(&gguf(&toy_kvs("llama", None))).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{err}");
        assert!(err.to_string().contains("llama"), "{err}");
        let err = Tokenizer::from_gguf(&gguf(&toy_kvs("gpt2", Some("qwen2")))).unwrap_err();
        assert!(err.to_string().contains("qwen2"), "{err}");
        let mut kvs = toy_kvs("gpt2", None);
        kvs.retain(|(k, _, _)| *k != keys::MERGES);
        let err = Tokenizer::from_gguf(&gguf(&kvs)).unwrap_err();
        assert!(
            matches!(&err, Error::MissingKey { key, .. } if key == keys::MERGES),
            "{err}"
        );
        let mut kvs = toy_kvs("gpt2", None);
        kvs[0] = (keys::MODEL, T_U32, 2u32.to_le_bytes().to_vec());
        let err = Tokenizer::from_gguf(&gguf(&kvs)).unwrap_err();
        assert!(
            matches!(&err, Error::KeyType { key, .. } if key == keys::MODEL),
            "{err}"
        );
    }
}
