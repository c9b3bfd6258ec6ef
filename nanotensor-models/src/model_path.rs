//! Finding the model file: an explicit path, then the environment, then the models directory.
//!
//! Search order of [`find_model`]:
//! 1. the explicit path (the CLI's `--model PATH`);
//! 2. `$NANOTENSOR_MODEL`, a path to the file itself;
//! 3. `$NANOTENSOR_MODELS_DIR/SmolLM2-135M-Instruct.Q4_1.gguf`;
//! 4. `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the current directory;
//! 5. the same under the workspace root this crate was built from.
//!
//! An explicit path (1, 2) that does not exist is an error rather than a silent fall-through:
//! the user asked for that file. When nothing is found the error lists every place looked at
//! and names the command that downloads the model ([`FETCH_COMMAND`]).
//!
//! Tests that need the model get it from [`model_for_tests`], which skips or fails by the
//! environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nanotensor_core::error::{Error, Result};

/// File name of the default model (SmolLM2-135M-Instruct, Q4_1 GGUF).
pub const MODEL_FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Environment variable holding the path of the model file.
pub const MODEL_ENV: &str = "NANOTENSOR_MODEL";
/// Environment variable holding the models directory (the fetch script's target too).
pub const MODELS_DIR_ENV: &str = "NANOTENSOR_MODELS_DIR";
/// The command, relative to the repository root, that downloads and verifies the model.
pub const FETCH_COMMAND: &str = "scripts/fetch-model.sh";
/// Environment variable that turns a missing model into a test failure (`scripts/test`, hence
/// CI, sets it; see [`model_for_tests`]).
pub const REQUIRE_MODEL_ENV: &str = "NANOTENSOR_REQUIRE_MODEL";

/// The model for a test that needs it: [`find_model`] without an explicit path.
///
/// Tests that need the real model call this and return early on `None`, so a checkout without
/// the model (`scripts/fetch-model.sh` fetches it) still passes the rest of the suite:
///
/// * found: `Some(path)`;
/// * not found and `$NANOTENSOR_REQUIRE_MODEL` set ([`REQUIRE_MODEL_ENV`]): panics with the
///   reason, so a run that must cover the model cannot pass by skipping;
/// * not found otherwise: `None`, after writing `"{who}: SKIPPING (no model): {reason}"` to
///   stderr, once per process (the first caller's `who`), so a test binary says it skipped
///   without repeating it for every test. The line goes to the stderr handle itself, which the
///   test harness does not capture.
///
/// It is public (not `#[cfg(test)]`) because the integration tests of several crates share it.
///
/// # Panics
/// When the model is not found and `$NANOTENSOR_REQUIRE_MODEL` is set.
#[track_caller]
pub fn model_for_tests(who: &str) -> Option<PathBuf> {
    match find_model(None) {
        Ok(path) => Some(path),
        Err(e) if std::env::var_os(REQUIRE_MODEL_ENV).is_some() => {
            panic!("{REQUIRE_MODEL_ENV} is set but: {e}")
        }
        Err(e) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "{who}: SKIPPING (no model): {e}");
            });
            None
        }
    }
}

/// Locates the model file; see the [module documentation](self) for the order.
///
/// # Errors
/// [`Error::ModelNotFound`], listing the places looked at and naming [`FETCH_COMMAND`].
pub fn find_model(explicit: Option<&Path>) -> Result<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest).to_path_buf();
    search(
        explicit,
        std::env::var_os(MODEL_ENV),
        std::env::var_os(MODELS_DIR_ENV),
        &[cwd, workspace],
    )
}

/// The search itself, with the environment passed in so it can be tested.
fn search(
    explicit: Option<&Path>,
    env_model: Option<OsString>,
    env_dir: Option<OsString>,
    roots: &[PathBuf],
) -> Result<PathBuf> {
    let not_found = |searched: String| Error::ModelNotFound {
        searched,
        fetch: FETCH_COMMAND,
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
                "{} (${MODEL_ENV}{})",
                p.display(),
                what(&p)
            )))
        };
    }
    let mut candidates = Vec::new();
    if let Some(dir) = env_dir.filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(dir).join(MODEL_FILE_NAME));
    }
    for root in roots {
        candidates.push(root.join("models").join(MODEL_FILE_NAME));
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
            search(Some(&explicit), env.clone(), None, &roots).unwrap(),
            explicit
        );
        assert_eq!(search(None, env, None, &roots).unwrap(), env_file);
        // The models dir from the environment wins over the roots.
        let dir = TempDir::new("dir");
        let in_dir = dir.0.join(MODEL_FILE_NAME);
        std::fs::write(&in_dir, b"x").unwrap();
        let env_dir = Some(dir.0.clone().into_os_string());
        assert_eq!(search(None, None, env_dir, &roots).unwrap(), in_dir);
        // An env dir without the file falls through to the roots.
        let empty = Some(t.0.join("nowhere").into_os_string());
        assert_eq!(search(None, None, empty, &roots).unwrap(), in_root);
    }

    #[test]
    fn missing_model_names_the_fetch_command() {
        let t = TempDir::new("missing");
        let e = search(None, None, None, std::slice::from_ref(&t.0)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::ModelNotFound { .. }));
        assert!(msg.contains("scripts/fetch-model.sh"), "{msg}");
        assert!(msg.contains(MODEL_FILE_NAME), "{msg}");
        // An explicit path or $NANOTENSOR_MODEL that does not exist is an error, not skipped.
        std::fs::write(t.0.join("models").join(MODEL_FILE_NAME), b"x").unwrap();
        let ghost = t.0.join("ghost.gguf");
        let e = search(Some(&ghost), None, None, std::slice::from_ref(&t.0)).unwrap_err();
        assert!(e.to_string().contains("ghost.gguf (--model)"), "{e}");
        let e = search(
            None,
            Some(ghost.into_os_string()),
            None,
            std::slice::from_ref(&t.0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("$NANOTENSOR_MODEL"), "{e}");
    }
}
