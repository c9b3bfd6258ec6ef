//! What the perplexity-sensitivity examples share: the model, the GPL-3 evaluation text and the
//! float backend they measure on.

use nanotensor_backends::BackendKind;
use nanotensor_core::Result;
use nanotensor_models::gguf::GgufFile;
use nanotensor_models::tokenizer::Tokenizer;

/// The model file (found as the CLI finds it), the tokens of the GPL-3 test text (the text of
/// `nanotensor perplexity --file tests/fixtures/text/GPL-3`), and the fastest compiled-in float
/// backend (blocked, else naive).
pub fn model_text_backend() -> Result<(GgufFile, Vec<u32>, BackendKind)> {
    let file = GgufFile::open(nanotensor_models::model_path::find_model(None)?)?;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/text/GPL-3");
    let text = std::fs::read_to_string(path).expect("GPL-3 test data");
    let tokens = Tokenizer::from_gguf(&file)?.encode(text.strip_suffix('\n').unwrap_or(&text));
    let kind = [BackendKind::Blocked, BackendKind::Naive]
        .into_iter()
        .find(|k| k.is_compiled())
        .expect("a float backend");
    Ok((file, tokens, kind))
}
