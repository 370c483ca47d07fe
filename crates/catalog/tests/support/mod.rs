//! Shared test fixtures.
#![allow(dead_code)]

pub mod hf_export;
pub mod hub_server;

use std::path::PathBuf;

/// The folder of real test weights (HEARTH_TEST_MODELS or ~/.cache/hearth/test-models); fails
/// with instructions when a file is missing.
pub fn test_model(name: &str) -> PathBuf {
    let dir = std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/hearth/test-models")
        });
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "test model {} not found: run scripts/fetch-test-models",
        p.display()
    );
    p
}
