//! Parity with llama.cpp on the project's three test models: for every text in
//! `tests/data/llama_cpp_vectors.json` and every combination of `add_special` and
//! `parse_special`, `encode` must give the ids llama.cpp 0.3.36's `llama_tokenize` gave (the file
//! and the script that regenerates it are in `tests/data/`).

use std::path::Path;

use serde_json::Value;

use crate::shared_tokenizer;

fn vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llama_cpp_vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check_model(model: &'static str) {
    let vectors = vectors();
    let texts: Vec<&str> = vectors["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let rows = vectors["models"][model].as_array().unwrap();
    assert_eq!(rows.len(), texts.len());
    let tok = shared_tokenizer(model);
    let mut failures = Vec::new();
    let mut cases = 0;
    for (text, row) in texts.iter().zip(rows) {
        for (k, expected) in row.as_array().unwrap().iter().enumerate() {
            let (add_special, parse_special) = (k >= 2, k % 2 == 1);
            let expected: Vec<u32> = expected
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_u64().unwrap() as u32)
                .collect();
            let got = tok.encode(text, add_special, parse_special).unwrap();
            cases += 1;
            if got != expected {
                failures.push(format!(
                    "  {text:?} add_special={add_special} parse_special={parse_special}\n    \
                     llama.cpp {expected:?}\n    ours      {got:?}"
                ));
            }
        }
    }
    assert!(cases >= 300, "only {cases} cases");
    assert!(
        failures.is_empty(),
        "{model}: {} of {cases} cases differ from llama.cpp:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_model("smollm2-135m-instruct-q4_1.gguf");
}

#[test]
fn qwen_matches_llama_cpp() {
    check_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_model("gemma-3-270m-q4_k_m.gguf");
}
