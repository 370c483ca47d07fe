//! The shipped catalog (`models/*.toml`): every entry validates, ids are unique, the families the
//! product promises are there, and the compiled-in copy equals the files on disk.

use std::path::PathBuf;

use hearth_catalog::catalog::KNOWN_ARCHITECTURES;
use hearth_catalog::{Catalog, Quant};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

#[test]
fn every_catalog_file_validates() {
    let catalog = Catalog::load_dir(&models_dir()).unwrap();
    let files = std::fs::read_dir(models_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(catalog.entries().len(), files, "every file is one entry");
    assert!(catalog.entries().len() >= 12, "at least 12 models");
    for e in catalog.entries() {
        assert!(KNOWN_ARCHITECTURES.contains(&e.architecture.as_str()));
        assert!(
            e.available_quants().contains(&e.recommended_quant),
            "{}",
            e.id
        );
        // Every entry offers the four levels Hearth quantizes to.
        for q in [Quant::Q8_0, Quant::Q6K, Quant::Q5KM, Quant::Q4KM] {
            assert!(e.acquisition(q).is_some(), "{} lacks {q}", e.id);
        }
        assert!(e.kv_bytes_per_token() > 0);
    }
}

#[test]
fn catalog_covers_the_promised_models() {
    let catalog = Catalog::builtin().unwrap();
    for id in [
        "smollm2-135m-instruct",
        "smollm2-360m-instruct",
        "smollm2-1.7b-instruct",
        "qwen2.5-0.5b-instruct",
        "qwen2.5-1.5b-instruct",
        "qwen2.5-3b-instruct",
        "qwen3-0.6b",
        "qwen3-1.7b",
        "qwen3-4b",
        "llama3.2-1b-instruct",
        "llama3.2-3b-instruct",
        "gemma3-1b-it",
        "gemma3-4b-it",
        "phi3.5-mini-instruct",
        "phi4-mini-instruct",
    ] {
        assert!(catalog.get(id).is_some(), "missing {id}");
    }
    // Translation needs models for more than English.
    assert!(catalog.for_language("de").count() >= 5);
    assert!(catalog.for_language("zh").count() >= 5);
}

#[test]
fn compiled_catalog_equals_the_files() {
    let built = Catalog::builtin().unwrap();
    let disk = Catalog::load_dir(&models_dir()).unwrap();
    assert_eq!(built.entries(), disk.entries());
}
