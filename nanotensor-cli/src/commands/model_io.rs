//! What the model subcommands share: finding and opening the model file, its tokenizer, reading
//! a text file, and the default backend.

use std::path::{Path, PathBuf};

use nanotensor::gguf::GgufFile;
use nanotensor::model_path::find_model;
use nanotensor::tokenizer::Tokenizer;
use nanotensor::{Error, Result};
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

/// Reads a text file verbatim (a prompt, a corpus) for subcommand `op`. Bytes that are not
/// UTF-8 are a user error naming the file and the offset of the first bad byte; a missing file
/// or a directory is the I/O error naming the path.
pub fn read_utf8_file(op: &'static str, path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        op,
        path: path.display().to_string(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        Error::invalid_arg(
            op,
            format!(
                "{} is not valid UTF-8 text (first bad byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
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
