//! Finding a model file: an explicit path, then the environment, then the models directory.
//!
//! Each model the project knows is a [`KnownModel`]: its file name, the environment variable that
//! may point at the file, and the argument of the fetch script that downloads it. The default
//! model is [`SMOLLM2`]; [`GEMMA3_270M`] is the second, [`MINILM`] the sentence encoder. Search order of [`find_known_model`]
//! (and of [`find_model`], for [`SMOLLM2`]):
//! 1. the explicit path (the CLI's `--model PATH`);
//! 2. the model's environment variable (`$NANOTENSOR_MODEL`, `$NANOTENSOR_GEMMA3_MODEL`), a path
//!    to the file itself;
//! 3. `$NANOTENSOR_MODELS_DIR/<file name>`;
//! 4. `models/<file name>` under the current directory;
//! 5. the same under the workspace root this crate was built from.
//!
//! An explicit path (1, 2) that does not exist is an error rather than a silent fall-through:
//! the user asked for that file. When nothing is found the error lists every place looked at
//! and names the command that downloads the model ([`KnownModel::fetch`]).
//!
//! Tests that need a model get it from [`model_for_tests`] (SmolLM2) or
//! [`known_model_for_tests`], which skip or fail by the environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nanotensor_core::error::{Error, Result};

/// A model the project fetches and tests against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownModel {
    /// Short name, the fetch script's argument (`smollm2`, `gemma3-270m`).
    pub name: &'static str,
    /// File name in the models directory.
    pub file_name: &'static str,
    /// Environment variable holding the path of the file itself.
    pub env: &'static str,
    /// The command, relative to the repository root, that downloads and verifies the file.
    pub fetch: &'static str,
}

/// SmolLM2-135M-Instruct, Q4_1 GGUF: the default model.
pub const SMOLLM2: KnownModel = KnownModel {
    name: "smollm2",
    file_name: MODEL_FILE_NAME,
    env: MODEL_ENV,
    fetch: FETCH_COMMAND,
};

/// Gemma 3 270M, Q4_K_M GGUF (SentencePiece-style vocabulary of 262,144 tokens).
pub const GEMMA3_270M: KnownModel = KnownModel {
    name: "gemma3-270m",
    file_name: "gemma-3-270m-q4_k_m.gguf",
    env: "NANOTENSOR_GEMMA3_MODEL",
    fetch: "scripts/fetch-model.sh gemma3-270m",
};

/// all-MiniLM-L6-v2, a BERT sentence encoder: a sentence-transformers directory; the file
/// searched for is its `model.safetensors`, next to which sit `tokenizer.json` and the configs.
pub const MINILM: KnownModel = KnownModel {
    name: "minilm",
    file_name: "all-MiniLM-L6-v2/model.safetensors",
    env: "NANOTENSOR_MINILM_MODEL",
    fetch: "scripts/fetch-model.sh minilm",
};

/// File name of the default model (SmolLM2-135M-Instruct, Q4_1 GGUF).
pub const MODEL_FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Environment variable holding the path of the default model file.
pub const MODEL_ENV: &str = "NANOTENSOR_MODEL";
/// Environment variable holding the models directory (the fetch script's target too).
pub const MODELS_DIR_ENV: &str = "NANOTENSOR_MODELS_DIR";
/// The command, relative to the repository root, that downloads and verifies the default model.
pub const FETCH_COMMAND: &str = "scripts/fetch-model.sh";
/// Environment variable that turns a missing model into a test failure (`scripts/test`, hence
/// CI, sets it; see [`model_for_tests`]).
pub const REQUIRE_MODEL_ENV: &str = "NANOTENSOR_REQUIRE_MODEL";

/// The default model ([`SMOLLM2`]) for a test that needs it: [`known_model_for_tests`].
///
/// # Panics
/// When the model is not found and `$NANOTENSOR_REQUIRE_MODEL` is set.
#[track_caller]
pub fn model_for_tests(who: &str) -> Option<PathBuf> {
    known_model_for_tests(&SMOLLM2, who)
}

/// The file of `model` for a test that needs it: [`find_known_model`] without an explicit path.
///
/// Tests that need a real model call this and return early on `None`, so a checkout without
/// the model (the fetch script fetches it) still passes the rest of the suite:
///
/// * found: `Some(path)`;
/// * not found and `$NANOTENSOR_REQUIRE_MODEL` set ([`REQUIRE_MODEL_ENV`]): panics with the
///   reason, so a run that must cover the model cannot pass by skipping;
/// * not found otherwise: `None`, after writing `"{who}: SKIPPING (no model): {reason}"` to
///   stderr, once per process and model (the first caller's `who`), so a test binary says it
///   skipped without repeating it for every test. The line goes to the stderr handle itself,
///   which the test harness does not capture.
///
/// It is public (not `#[cfg(test)]`) because the integration tests of several crates share it.
///
/// # Panics
/// When the model is not found and `$NANOTENSOR_REQUIRE_MODEL` is set.
#[track_caller]
pub fn known_model_for_tests(model: &KnownModel, who: &str) -> Option<PathBuf> {
    match find_known_model(model, None) {
        Ok(path) => Some(path),
        Err(e) if std::env::var_os(REQUIRE_MODEL_ENV).is_some() => {
            panic!("{REQUIRE_MODEL_ENV} is set but: {e}")
        }
        Err(e) => {
            // The models already reported (by file name): one line per model per process.
            static SAID: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
            let mut said = SAID
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !said.contains(&model.file_name) {
                said.push(model.file_name);
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "{who}: SKIPPING (no model): {e}");
            }
            None
        }
    }
}

/// Locates the default model file ([`SMOLLM2`]); see the [module documentation](self) for the
/// order.
///
/// # Errors
/// [`Error::ModelNotFound`], listing the places looked at and naming [`FETCH_COMMAND`].
pub fn find_model(explicit: Option<&Path>) -> Result<PathBuf> {
    find_known_model(&SMOLLM2, explicit)
}

/// Locates the file of `model`; see the [module documentation](self) for the order.
///
/// # Errors
/// [`Error::ModelNotFound`], listing the places looked at and naming `model.fetch`.
pub fn find_known_model(model: &KnownModel, explicit: Option<&Path>) -> Result<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest).to_path_buf();
    search(
        model,
        explicit,
        std::env::var_os(model.env),
        std::env::var_os(MODELS_DIR_ENV),
        &[cwd, workspace],
    )
}

/// The search itself, with the environment passed in so it can be tested.
fn search(
    model: &KnownModel,
    explicit: Option<&Path>,
    env_model: Option<OsString>,
    env_dir: Option<OsString>,
    roots: &[PathBuf],
) -> Result<PathBuf> {
    let not_found = |searched: String| Error::ModelNotFound {
        searched,
        fetch: model.fetch,
    };
    // A path that exists but is a directory says so instead of only "not found".
    let what = |p: &Path| if p.is_dir() { ", is a directory" } else { "" };
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(not_found(format!("{} (--model{})", p.display(), what(p))))
        };
    }
    if let Some(p) = env_model.filter(|v| !v.is_empty()).map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(not_found(format!(
                "{} (${}{})",
                p.display(),
                model.env,
                what(&p)
            )))
        };
    }
    let mut candidates = Vec::new();
    if let Some(dir) = env_dir.filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(dir).join(model.file_name));
    }
    for root in roots {
        candidates.push(root.join("models").join(model.file_name));
    }
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    let searched: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(not_found(searched.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("nanotensor-find-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(p.join("models")).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn order_is_explicit_env_dir_then_roots() {
        let t = TempDir::new("order");
        let explicit = t.0.join("explicit.gguf");
        let env_file = t.0.join("env.gguf");
        let in_root = t.0.join("models").join(MODEL_FILE_NAME);
        for p in [&explicit, &env_file, &in_root] {
            std::fs::write(p, b"x").unwrap();
        }
        let roots = [t.0.clone()];
        let env = Some(env_file.clone().into_os_string());
        assert_eq!(
            search(&SMOLLM2, Some(&explicit), env.clone(), None, &roots).unwrap(),
            explicit
        );
        assert_eq!(search(&SMOLLM2, None, env, None, &roots).unwrap(), env_file);
        // The models dir from the environment wins over the roots.
        let dir = TempDir::new("dir");
        let in_dir = dir.0.join(MODEL_FILE_NAME);
        std::fs::write(&in_dir, b"x").unwrap();
        let env_dir = Some(dir.0.clone().into_os_string());
        assert_eq!(
            search(&SMOLLM2, None, None, env_dir, &roots).unwrap(),
            in_dir
        );
        // An env dir without the file falls through to the roots.
        let empty = Some(t.0.join("nowhere").into_os_string());
        assert_eq!(
            search(&SMOLLM2, None, None, empty, &roots).unwrap(),
            in_root
        );
    }

    #[test]
    fn missing_model_names_the_fetch_command() {
        let t = TempDir::new("missing");
        let e = search(&SMOLLM2, None, None, None, std::slice::from_ref(&t.0)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::ModelNotFound { .. }));
        assert!(msg.contains("scripts/fetch-model.sh"), "{msg}");
        assert!(msg.contains(MODEL_FILE_NAME), "{msg}");
        // An explicit path or $NANOTENSOR_MODEL that does not exist is an error, not skipped.
        std::fs::write(t.0.join("models").join(MODEL_FILE_NAME), b"x").unwrap();
        let ghost = t.0.join("ghost.gguf");
        let e = search(
            &SMOLLM2,
            Some(&ghost),
            None,
            None,
            std::slice::from_ref(&t.0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ghost.gguf (--model)"), "{e}");
        let e = search(
            &SMOLLM2,
            None,
            Some(ghost.into_os_string()),
            None,
            std::slice::from_ref(&t.0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("$NANOTENSOR_MODEL"), "{e}");
    }

    #[test]
    fn gemma3_has_its_own_file_variable_and_fetch_command() {
        let t = TempDir::new("gemma3");
        let roots = [t.0.clone()];
        // Only the SmolLM2 file present: Gemma 3 is not found, and the error names its file and
        // the fetch script's argument.
        std::fs::write(t.0.join("models").join(MODEL_FILE_NAME), b"x").unwrap();
        let e = search(&GEMMA3_270M, None, None, None, &roots).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("gemma-3-270m-q4_k_m.gguf"), "{msg}");
        assert!(msg.contains("scripts/fetch-model.sh gemma3-270m"), "{msg}");
        let gemma = t.0.join("models").join(GEMMA3_270M.file_name);
        std::fs::write(&gemma, b"x").unwrap();
        assert_eq!(
            search(&GEMMA3_270M, None, None, None, &roots).unwrap(),
            gemma
        );
        // Its variable names the file itself; a missing one is an error naming the variable.
        let ghost = Some(t.0.join("ghost.gguf").into_os_string());
        let e = search(&GEMMA3_270M, None, ghost, None, &roots).unwrap_err();
        assert!(e.to_string().contains("$NANOTENSOR_GEMMA3_MODEL"), "{e}");
    }
}
