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

/// The process's peak resident set so far, in bytes (`VmHWM` of `/proc/self/status`), read
/// right after a model load to report what the load needed at most; `None` where the kernel does
/// not report it (not Linux, or the file unreadable). Resident pages of the memory-mapped model
/// file count, as the kernel counts them.
pub fn peak_rss_bytes() -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}
