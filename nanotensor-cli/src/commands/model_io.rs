//! What the model subcommands share: finding and opening the model file, its tokenizer, and
//! the default backend.

use std::path::{Path, PathBuf};

use nanotensor::gguf::GgufFile;
use nanotensor::model_path::find_model;
use nanotensor::tokenizer::Tokenizer;
use nanotensor::Result;
use nanotensor_backends::BackendKind;

/// An opened model file and the tokenizer built from its vocabulary.
pub struct ModelFile {
    /// Where the file was found.
    pub path: PathBuf,
    /// The memory-mapped GGUF file.
    pub gguf: GgufFile,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
}

/// Finds the model (`--model`, `$NANOTENSOR_MODEL`, `$NANOTENSOR_MODELS_DIR`, `./models`), opens
/// it and builds the tokenizer. A missing file is a user error whose message names the fetch
/// script.
pub fn open_model(explicit: Option<&Path>) -> Result<ModelFile> {
    let path = find_model(explicit)?;
    let gguf = GgufFile::open(&path)?;
    let tokenizer = Tokenizer::from_gguf(&gguf)?;
    Ok(ModelFile {
        path,
        gguf,
        tokenizer,
    })
}

/// The default `--backend` of the model commands: the fastest float backend compiled in.
pub fn default_model_backend() -> &'static str {
    if BackendKind::Blocked.is_compiled() {
        "blocked"
    } else if BackendKind::Naive.is_compiled() {
        "naive"
    } else {
        "int8"
    }
}
