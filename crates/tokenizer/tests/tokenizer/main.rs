//! Integration tests of hearth-tokenizer against real GGUF files: llama.cpp's tokenizer test
//! vectors (`vocab/ggml-vocab-*.gguf` with `.inp`/`.out`) and the project's three test models.

mod llama_cpp;
mod models;
mod vectors;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use hearth_tokenizer::GgufTokenizer;

/// The folder `scripts/fetch-test-models` fills. Fails loudly when it is missing.
pub fn test_models_dir() -> PathBuf {
    let dir = match std::env::var_os("HEARTH_TEST_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/hearth/test-models")
        }
    };
    assert!(
        dir.is_dir(),
        "test models not found in {}: run scripts/fetch-test-models (or set HEARTH_TEST_MODELS)",
        dir.display()
    );
    dir
}

/// A file in the test models folder, which must exist.
pub fn test_model(name: &str) -> PathBuf {
    let path = test_models_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-test-models",
        path.display()
    );
    path
}

/// The tokenizer of a test model, loaded once for all the tests that only read it.
pub fn shared_tokenizer(name: &'static str) -> &'static GgufTokenizer {
    static LOADED: OnceLock<Mutex<HashMap<&'static str, &'static GgufTokenizer>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loaded.entry(name).or_insert_with(|| {
        let tok = GgufTokenizer::load(&test_model(name)).unwrap();
        Box::leak(Box::new(tok))
    })
}
