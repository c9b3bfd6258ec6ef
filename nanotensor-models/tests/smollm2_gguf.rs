//! The GGUF reader on the real model, SmolLM2-135M-Instruct Q4_1.
//!
//! Expected structure: `tests/fixtures/smollm2/README.md` (30 blocks, 134,515,008
//! parameters, Q8_0 token embedding, Q4_1 matrices, F32 norms). Expected dequantized values:
//! printed by the independent Python `gguf` package (`gguf.GGUFReader` + `gguf.dequantize`,
//! gguf-py from llama.cpp) on the same file.
//!
//! Each test skips, saying so, when the model is not found (`scripts/fetch-model.sh` fetches it),
//! unless `NANOTENSOR_REQUIRE_MODEL` is set (as `scripts/test`, hence CI, does): then it fails.

use nanotensor_core::Error;
use nanotensor_models::gguf::{GgmlType, GgufFile};
use nanotensor_models::model_path::model_for_tests;

fn model() -> Option<GgufFile> {
    let path = model_for_tests("smollm2_gguf")?;
    Some(GgufFile::open(&path).expect("the model file should parse"))
}

#[test]
fn structure_matches_the_fixture_readme() {
    let Some(f) = model() else { return };
    assert_eq!(f.version(), 3);
    assert_eq!(f.file_size(), 98_362_432);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset(), 1_785_664);
    assert_eq!(f.metadata().len(), 33);
    assert_eq!(f.tensors().len(), 272);
    assert_eq!(f.n_params(), 134_515_008);

    assert_eq!(f.architecture().unwrap(), "llama");
    for (key, value) in [
        ("llama.block_count", 30),
        ("llama.context_length", 8192),
        ("llama.embedding_length", 576),
        ("llama.feed_forward_length", 1536),
        ("llama.attention.head_count", 9),
        ("llama.attention.head_count_kv", 3),
        ("llama.rope.dimension_count", 64),
        ("llama.vocab_size", 49152),
        ("tokenizer.ggml.bos_token_id", 1),
        ("tokenizer.ggml.eos_token_id", 2),
    ] {
        assert_eq!(f.get_u32(key).unwrap(), value, "{key}");
    }
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), 100_000.0);
    assert_eq!(
        f.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(),
        1e-5
    );
    assert!(!f.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    let tokens = f.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49152);
    assert_eq!((tokens[1], tokens[2]), ("<|im_start|>", "<|im_end|>"));
    assert_eq!(
        f.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        48_900
    );
    assert_eq!(
        f.get_i32_array("tokenizer.ggml.token_type").unwrap().len(),
        49152
    );
}

#[test]
fn tensor_types_and_row_major_shapes() {
    let Some(f) = model() else { return };
    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.ggml_type, GgmlType::Q8_0);
    assert_eq!(embd.shape, [49152, 576]);
    assert_eq!(embd.n_bytes, 49152 * 18 * 34);
    // The embedding doubles as the output head: there is no output.weight.
    assert!(matches!(
        f.tensor("output.weight"),
        Err(Error::MissingTensor { .. })
    ));
    assert_eq!(
        f.tensor("output_norm.weight").unwrap().ggml_type,
        GgmlType::F32
    );

    let matrices = [
        ("attn_q", [576, 576]),
        ("attn_k", [192, 576]),
        ("attn_v", [192, 576]),
        ("attn_output", [576, 576]),
        ("ffn_gate", [1536, 576]),
        ("ffn_up", [1536, 576]),
        ("ffn_down", [576, 1536]),
    ];
    for b in 0..30 {
        for (m, shape) in matrices {
            let t = f.tensor(&format!("blk.{b}.{m}.weight")).unwrap();
            assert_eq!(
                (t.ggml_type, t.shape.as_slice()),
                (GgmlType::Q4_1, &shape[..]),
                "{}",
                t.name
            );
        }
        for n in ["attn_norm", "ffn_norm"] {
            let t = f.tensor(&format!("blk.{b}.{n}.weight")).unwrap();
            assert_eq!(
                (t.ggml_type, t.shape.as_slice()),
                (GgmlType::F32, &[576][..]),
                "{}",
                t.name
            );
        }
    }
    let by_type: Vec<(GgmlType, usize)> = f
        .summary()
        .by_type
        .iter()
        .map(|s| (s.ggml_type, s.n_tensors))
        .collect();
    assert_eq!(
        by_type,
        [
            (GgmlType::F32, 61),
            (GgmlType::Q4_1, 210),
            (GgmlType::Q8_0, 1)
        ]
    );
    let text = f.summary().to_string();
    assert!(text.contains("134,515,008"), "{text}");
}

/// (tensor, row, first four values) as printed by gguf-py's `dequantize` on this file.
/// The literals are the exact decimal expansions of those f32 values, hence the allow.
#[allow(clippy::excessive_precision)]
const GGUF_PY_VALUES: [(&str, usize, [f32; 4]); 8] = [
    (
        "token_embd.weight",
        0,
        [
            -0.10654449462890625,
            0.032978057861328125,
            0.048198699951171875,
            -0.022830963134765625,
        ],
    ),
    (
        "token_embd.weight",
        1,
        [
            -0.0238037109375,
            -0.015869140625,
            -0.0396728515625,
            0.015869140625,
        ],
    ),
    (
        "token_embd.weight",
        49151,
        [
            0.011505126953125,
            0.0057525634765625,
            0.0977935791015625,
            -0.0977935791015625,
        ],
    ),
    (
        "blk.0.attn_q.weight",
        0,
        [
            -0.0963134765625,
            0.1573486328125,
            -0.0963134765625,
            -0.73046875,
        ],
    ),
    (
        "blk.0.attn_q.weight",
        575,
        [
            -0.15679931640625,
            0.154327392578125,
            0.34100341796875,
            0.029876708984375,
        ],
    ),
    (
        "blk.29.ffn_down.weight",
        1,
        [
            -0.33282470703125,
            -0.09429931640625,
            0.14422607421875,
            0.14422607421875,
        ],
    ),
    (
        "blk.0.attn_norm.weight",
        0,
        [
            0.01397705078125,
            0.0238037109375,
            -0.019775390625,
            -0.0302734375,
        ],
    ),
    (
        "output_norm.weight",
        0,
        [1.7578125, 1.8203125, 1.78125, 1.6015625],
    ),
];

/// Sum of |x| over a row, from gguf-py (float32 accumulation there, so compared loosely).
const GGUF_PY_ROW_ABS_SUMS: [(&str, usize, f64); 4] = [
    ("token_embd.weight", 0, 54.69232177734375),
    ("token_embd.weight", 49151, 70.81946563720703),
    ("blk.0.attn_q.weight", 1, 103.85809326171875),
    ("blk.29.ffn_down.weight", 575, 227.88626098632812),
];

#[test]
fn dequantized_values_match_gguf_py() {
    let Some(f) = model() else { return };
    let mut cache = std::collections::HashMap::new();
    for (name, row, expected) in GGUF_PY_VALUES {
        let t = cache
            .entry(name)
            .or_insert_with(|| f.dequantize(name).unwrap());
        let n = t.shape().last().copied().unwrap();
        assert_eq!(
            &t.as_slice()[row * n..row * n + 4],
            expected,
            "{name} row {row}"
        );
    }
    for (name, row, expected) in GGUF_PY_ROW_ABS_SUMS {
        let n = f.tensor(name).unwrap().row_len();
        let mut out = vec![0f32; n];
        f.dequantize_rows(name, row..row + 1, &mut out).unwrap();
        let sum: f64 = out.iter().map(|&x| f64::from(x.abs())).sum();
        assert!(
            (sum - expected).abs() < 1e-4 * expected,
            "{name} row {row}: {sum} vs {expected}"
        );
    }
}

#[test]
fn dequantize_rows_equals_rows_of_dequantize() {
    let Some(f) = model() else { return };
    for name in [
        "token_embd.weight",
        "blk.3.ffn_down.weight",
        "blk.7.attn_norm.weight",
    ] {
        let full = f.dequantize(name).unwrap();
        let info = f.tensor(name).unwrap();
        let n = info.row_len();
        let last = info.n_rows();
        let ranges = [0..1, 1..4, last / 2..last / 2 + 7, last - 1..last, 0..last];
        for rows in ranges.into_iter().filter(|r| r.end <= last) {
            let mut out = vec![f32::NAN; rows.len() * n];
            f.dequantize_rows(name, rows.clone(), &mut out).unwrap();
            assert_eq!(
                out,
                full.as_slice()[rows.start * n..rows.end * n],
                "{name} {rows:?}"
            );
        }
    }
}

#[test]
fn dequantized_weights_are_finite_and_plausible() {
    let Some(f) = model() else { return };
    let mut names = vec![
        "token_embd.weight".to_string(),
        "output_norm.weight".to_string(),
    ];
    for b in [0, 29] {
        names.extend(
            f.tensors()
                .iter()
                .filter(|t| t.name.starts_with(&format!("blk.{b}.")))
                .map(|t| t.name.clone()),
        );
    }
    assert_eq!(names.len(), 2 + 2 * 9);
    for name in &names {
        let t = f.dequantize(name).unwrap();
        t.check_finite("test", "tensor").unwrap();
        let n = t.numel() as f64;
        let mean_abs = t
            .as_slice()
            .iter()
            .map(|&x| f64::from(x.abs()))
            .sum::<f64>()
            / n;
        let max_abs = t.as_slice().iter().fold(0f32, |m, &x| m.max(x.abs()));
        // Trained transformer weights: mean |w| between 0.01 and 3 (norm gains near 1-2),
        // nothing beyond 100.
        assert!(
            (0.01..3.0).contains(&mean_abs),
            "{name}: mean |w| = {mean_abs}"
        );
        assert!(max_abs < 100.0, "{name}: max |w| = {max_abs}");
    }
}
