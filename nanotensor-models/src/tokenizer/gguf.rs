//! Building a [`Tokenizer`] from the `tokenizer.ggml.*` metadata of a GGUF file.
//!
//! Only metadata is read: the tokenizer of a file whose tensors this crate cannot use (types it
//! does not dequantize, an architecture it does not run) still loads.

// Sizes here come from the file: overflow must be an error, never a wrap or a panic.
#![deny(clippy::arithmetic_side_effects)]

use super::{BpeTokenizer, PreTokenizer, SpmOptions, SpmTokenizer, Tokenizer};
use crate::gguf::GgufFile;
use nanotensor_core::{Error, Result};

/// GGUF metadata keys read by [`Tokenizer::from_gguf`].
pub mod keys {
    /// Tokenizer family: `gpt2` (byte-level BPE) or `llama` (SentencePiece-style).
    pub const MODEL: &str = "tokenizer.ggml.model";
    /// Pre-tokenizer name (`smollm`, `gpt2`, …); byte-level BPE only.
    pub const PRE: &str = "tokenizer.ggml.pre";
    /// Vocabulary strings.
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    /// Merge list, `"left right"` per line (byte-level BPE).
    pub const MERGES: &str = "tokenizer.ggml.merges";
    /// Token scores, f32 per token (SentencePiece).
    pub const SCORES: &str = "tokenizer.ggml.scores";
    /// Token types (i32 per token).
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    /// Beginning-of-sequence id.
    pub const BOS: &str = "tokenizer.ggml.bos_token_id";
    /// End-of-sequence id.
    pub const EOS: &str = "tokenizer.ggml.eos_token_id";
    /// Unknown-token id.
    pub const UNK: &str = "tokenizer.ggml.unknown_token_id";
    /// Whether a model input starts with BOS.
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    /// Whether a model input ends with EOS.
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    /// Whether SentencePiece text gets a `▁` in front.
    pub const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
}

impl Tokenizer {
    /// Builds the tokenizer stored in a GGUF file, from its metadata alone.
    ///
    /// Reads `tokenizer.ggml.model` and then:
    ///
    /// - `gpt2`: `tokenizer.ggml.pre` (see [`PreTokenizer::from_gguf_name`]; plain GPT-2 when
    ///   absent), `tokenizer.ggml.tokens`, `tokenizer.ggml.merges`;
    /// - `llama`: `tokenizer.ggml.tokens`, `tokenizer.ggml.scores` (all 0 when absent),
    ///   `tokenizer.ggml.unknown_token_id`, `tokenizer.ggml.add_space_prefix` (default true, as
    ///   in llama.cpp);
    ///
    /// and for both, when present, `tokenizer.ggml.token_type`, `tokenizer.ggml.bos_token_id`,
    /// `tokenizer.ggml.eos_token_id`, `tokenizer.ggml.add_bos_token` (default false for `gpt2`,
    /// true for `llama`) and `tokenizer.ggml.add_eos_token` (default false).
    ///
    /// Errors: the reader's [`Error::MissingKey`] / [`Error::KeyType`] naming the key, or
    /// [`Error::Format`] for an unsupported tokenizer family or pre-tokenizer and for the
    /// inconsistencies [`BpeTokenizer::new`] and [`SpmTokenizer::new`] reject.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let model = file.get_str(keys::MODEL)?;
        match model {
            "gpt2" => bpe_from_gguf(file).map(Tokenizer::Bpe),
            "llama" => spm_from_gguf(file).map(Tokenizer::Spm),
            _ => Err(Error::format(
                "tokenizer",
                format!(
                    "`{}` = `{model}` is not supported (only `gpt2`, byte-level BPE, and \
                     `llama`, SentencePiece-style)",
                    keys::MODEL
                ),
            )),
        }
    }
}

fn tokens_of(file: &GgufFile) -> Result<Vec<String>> {
    Ok(file
        .get_str_array(keys::TOKENS)?
        .into_iter()
        .map(str::to_owned)
        .collect())
}

fn types_of(file: &GgufFile) -> Result<Vec<i32>> {
    match file.get(keys::TOKEN_TYPE) {
        Some(_) => file.get_i32_array(keys::TOKEN_TYPE),
        None => Ok(Vec::new()),
    }
}

fn optional_id(file: &GgufFile, key: &str) -> Result<Option<u32>> {
    file.get(key).map(|_| file.get_u32(key)).transpose()
}

fn flag(file: &GgufFile, key: &str, default: bool) -> Result<bool> {
    Ok(file
        .get(key)
        .map(|_| file.get_bool(key))
        .transpose()?
        .unwrap_or(default))
}

fn bpe_from_gguf(file: &GgufFile) -> Result<BpeTokenizer> {
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
    let merges = file.get_str_array(keys::MERGES)?;
    let tok = BpeTokenizer::new(
        tokens_of(file)?,
        &merges,
        types_of(file)?,
        optional_id(file, keys::BOS)?,
        optional_id(file, keys::EOS)?,
    )?;
    Ok(tok.with_pre_tokenizer(pre).with_add_bos(
        flag(file, keys::ADD_BOS, false)?,
        flag(file, keys::ADD_EOS, false)?,
    ))
}

fn spm_from_gguf(file: &GgufFile) -> Result<SpmTokenizer> {
    let scores = match file.get(keys::SCORES) {
        Some(_) => file.get_f32_array(keys::SCORES)?,
        None => Vec::new(),
    };
    let options = SpmOptions {
        bos: optional_id(file, keys::BOS)?,
        eos: optional_id(file, keys::EOS)?,
        unk: optional_id(file, keys::UNK)?,
        add_space_prefix: flag(file, keys::ADD_SPACE_PREFIX, true)?,
        add_bos: flag(file, keys::ADD_BOS, true)?,
        add_eos: flag(file, keys::ADD_EOS, false)?,
    };
    SpmTokenizer::new(tokens_of(file)?, scores, types_of(file)?, options)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // tests: arithmetic on constants
mod tests {
    use super::*;

    const T_U32: u32 = 4;
    const T_I32: u32 = 5;
    const T_F32: u32 = 6;
    const T_BOOL: u32 = 7;
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
        assert_eq!(tok.pre_tokenizer(), Some(PreTokenizer::Smollm));
        assert_eq!(tok.model_name(), "gpt2");
        assert!(!tok.add_bos());
        // smollm splits digits, so "11" is never merged.
        assert_eq!(tok.encode("<s>ab 11"), [0, 5, 4, 3, 3]);
        // Without `tokenizer.ggml.pre`: plain GPT-2, where " 11" stays one piece ("Ġ" "11").
        let tok = Tokenizer::from_gguf(&gguf(&toy_kvs("gpt2", None))).unwrap();
        assert_eq!(tok.pre_tokenizer(), Some(PreTokenizer::Gpt2));
        assert_eq!(tok.encode("ab 11"), [5, 4, 6]);
    }

    #[test]
    fn unsupported_or_missing_metadata_is_an_error() {
        let err = Tokenizer::from_gguf(&gguf(&toy_kvs("t5", None))).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{err}");
        assert!(err.to_string().contains("t5"), "{err}");
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

    /// A SentencePiece vocabulary: 0 `<bos>` (control), 1 `<0x41>` (byte "A"), 2 `▁`, 3 `a`,
    /// 4 `b`, 5 `ab`, 6 `▁ab` (reached only through `ab`: there is no `▁a`).
    fn spm_kvs(extra: &[(&'static str, u32, Vec<u8>)]) -> Vec<(&'static str, u32, Vec<u8>)> {
        let mut types = T_I32.to_le_bytes().to_vec();
        types.extend(7u64.to_le_bytes());
        for t in [3i32, 6, 1, 1, 1, 1, 1] {
            types.extend(t.to_le_bytes());
        }
        let mut scores = T_F32.to_le_bytes().to_vec();
        scores.extend(7u64.to_le_bytes());
        for s in [0.0f32, 0.0, -1.0, -2.0, -3.0, -0.5, -0.25] {
            scores.extend(s.to_le_bytes());
        }
        let mut kvs = vec![
            (keys::MODEL, T_STRING, string("llama")),
            (
                keys::TOKENS,
                T_ARRAY,
                strings(&["<bos>", "<0x41>", "▁", "a", "b", "ab", "▁ab"]),
            ),
            (keys::SCORES, T_ARRAY, scores),
            (keys::TOKEN_TYPE, T_ARRAY, types),
            (keys::BOS, T_U32, 0u32.to_le_bytes().to_vec()),
        ];
        kvs.extend(extra.iter().cloned());
        kvs
    }

    #[test]
    fn reads_a_sentencepiece_vocabulary_and_its_flags() {
        let no_prefix = (keys::ADD_SPACE_PREFIX, T_BOOL, vec![0u8]);
        let tok = Tokenizer::from_gguf(&gguf(&spm_kvs(&[no_prefix]))).unwrap();
        assert_eq!(tok.model_name(), "llama");
        assert_eq!((tok.vocab_size(), tok.merge_count()), (7, 0));
        assert_eq!(tok.pre_tokenizer(), None);
        // add_bos_token defaults to true for SentencePiece, as in llama.cpp.
        assert!(tok.add_bos());
        assert_eq!(tok.encode("ab ab"), [5, 6]);
        assert_eq!(tok.encode_prompt("ab"), [0, 5]);
        // "A" is not a token: the byte fallback gives <0x41>.
        assert_eq!(tok.encode("A"), [1]);
        assert_eq!(tok.decode(&[0, 5, 6, 1]).unwrap(), "<bos>ab abA");

        // Defaults: add_space_prefix true (a `▁` in front), add_bos from the file.
        let no_bos = (keys::ADD_BOS, T_BOOL, vec![0u8]);
        let tok = Tokenizer::from_gguf(&gguf(&spm_kvs(&[no_bos]))).unwrap();
        assert!(!tok.add_bos());
        assert_eq!(tok.encode("ab"), [6]);
        assert_eq!(tok.encode_prompt("ab"), [6]);
        assert_eq!(tok.decode(&[6]).unwrap(), "ab");

        // Wrong-length scores, a flag of the wrong type.
        let mut kvs = spm_kvs(&[]);
        kvs[2].2 = {
            let mut v = T_F32.to_le_bytes().to_vec();
            v.extend(1u64.to_le_bytes());
            v.extend(0f32.to_le_bytes());
            v
        };
        let err = Tokenizer::from_gguf(&gguf(&kvs)).unwrap_err();
        assert!(err.to_string().contains("1 scores for 7 tokens"), "{err}");
        let bad_flag = (keys::ADD_SPACE_PREFIX, T_U32, 1u32.to_le_bytes().to_vec());
        let err = Tokenizer::from_gguf(&gguf(&spm_kvs(&[bad_flag]))).unwrap_err();
        assert!(
            matches!(&err, Error::KeyType { key, .. } if key == keys::ADD_SPACE_PREFIX),
            "{err}"
        );
    }
}
