//! Helpers shared by the integration tests that read the repository's reference fixtures
//! (`tests/fixtures/<model>/`). Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use nanotensor_models::tokenizer::Tokenizer;
use serde_json::Value;

/// `tests/fixtures/<model>/<name>` parsed as JSON; panics naming the file when it is missing or
/// malformed (a broken fixture is a broken test, not a skip).
pub fn fixture(model: &str, name: &str) -> Value {
    let path = format!(
        "{}/../tests/fixtures/{model}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("an id")).expect("an id fits u32"))
        .collect()
}

/// Checks every `{text, ids}` case of `cases`: exact ids, and the round trip
/// `decode(encode(text)) == text` unless the case says `"round_trip": false`. Reports every
/// mismatch at once; returns the case count.
pub fn check_cases(tok: &Tokenizer, cases: &Value, source: &str) -> usize {
    let cases = cases.as_array().expect("a case list");
    let mut mismatches = Vec::new();
    for case in cases {
        let text = case["text"].as_str().expect("case text");
        let want = ids(&case["ids"]);
        let got = tok.encode(text);
        if got != want {
            mismatches.push(format!("{text:?}\n  got  {got:?}\n  want {want:?}"));
        }
        if case["round_trip"].as_bool() != Some(false) {
            assert_eq!(tok.decode(&got).unwrap(), text, "round trip of {text:?}");
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} {source} cases differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    cases.len()
}
