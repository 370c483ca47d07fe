//! llama.cpp's tokenizer test vectors: for each `ggml-vocab-NAME.gguf` with `.inp` and `.out`
//! beside it, every input must encode (no BOS/EOS, special tokens not parsed, as in llama.cpp's
//! `test-tokenizer-0`) to exactly the ids on the matching output line, and decode back to the
//! input.

use std::path::{Path, PathBuf};

use hearth_tokenizer::{GgufTokenizer, TokenizerError, VocabKind};

use crate::test_models_dir;

/// Vocabularies whose vectors must all pass.
const SUPPORTED: &[&str] = &[
    "bert-bge",
    "command-r",
    "deepseek-coder",
    "deepseek-llm",
    "falcon",
    "gemma-4",
    "gpt-2",
    "llama-bpe",
    "llama-spm",
    "mpt",
    "phi-3",
    "qwen2",
    "qwen35",
    "refact",
    "starcoder",
];

/// Vocabularies with vectors that this crate refuses, with the text the error must name.
/// (None at present: every vocabulary shipped with vectors is supported.)
const UNSUPPORTED: &[(&str, &str)] = &[];

/// Vocabularies without vectors that this crate refuses, with the text the error must name.
const UNSUPPORTED_WITHOUT_VECTORS: &[(&str, &str)] = &[("nomic-bert-moe", "\"t5\"")];

fn vocab_dir() -> PathBuf {
    let dir = test_models_dir().join("vocab");
    assert!(
        dir.is_dir(),
        "{} is missing: run scripts/fetch-test-models",
        dir.display()
    );
    dir
}

fn vocab_file(name: &str) -> PathBuf {
    vocab_dir().join(format!("ggml-vocab-{name}.gguf"))
}

/// Reads the cases the way `test-tokenizer-0` does: inputs separated by
/// `"\n__ggml_vocab_test__\n"`, one output line of space-separated ids per input.
fn read_cases(gguf: &Path) -> Vec<(String, Vec<u32>)> {
    let inp_path = PathBuf::from(format!("{}.inp", gguf.display()));
    let out_path = PathBuf::from(format!("{}.out", gguf.display()));
    let raw = std::fs::read_to_string(&inp_path).unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap();
    let sep = "\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        match raw[pos..].find(sep) {
            Some(at) => {
                inputs.push(raw[pos..pos + at].to_string());
                pos += at + sep.len();
            }
            None => {
                inputs.push(raw[pos..].to_string());
                break;
            }
        }
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(|id| id.parse::<u32>().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{}: inputs and outputs differ in number",
        gguf.display()
    );
    assert!(!inputs.is_empty());
    inputs.into_iter().zip(outputs).collect()
}

fn check_vocab(name: &str) {
    let path = vocab_file(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-test-models",
        path.display()
    );
    let tok = GgufTokenizer::load(&path).unwrap();
    let cases = read_cases(&path);
    let mut failures = Vec::new();
    for (input, expected) in &cases {
        let got = tok.encode(input, false, false).unwrap();
        if &got != expected {
            failures.push(format!(
                "  input {input:?}\n    expected {expected:?}\n    got      {got:?}"
            ));
            continue;
        }
        // BERT lowercases and drops accents, so its decoding cannot give the input back.
        if tok.kind() == VocabKind::WordPiece {
            continue;
        }
        let back = tok.decode(&got, false).unwrap();
        if &back != input {
            failures.push(format!("  input {input:?} decoded to {back:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn vocab_bert_bge() {
    check_vocab("bert-bge");
}
#[test]
fn vocab_command_r() {
    check_vocab("command-r");
}
#[test]
fn vocab_deepseek_coder() {
    check_vocab("deepseek-coder");
}
#[test]
fn vocab_deepseek_llm() {
    check_vocab("deepseek-llm");
}
#[test]
fn vocab_falcon() {
    check_vocab("falcon");
}
#[test]
fn vocab_gemma_4() {
    check_vocab("gemma-4");
}
#[test]
fn vocab_gpt_2() {
    check_vocab("gpt-2");
}
#[test]
fn vocab_llama_bpe() {
    check_vocab("llama-bpe");
}
#[test]
fn vocab_llama_spm() {
    check_vocab("llama-spm");
}
#[test]
fn vocab_mpt() {
    check_vocab("mpt");
}
#[test]
fn vocab_phi_3() {
    check_vocab("phi-3");
}
#[test]
fn vocab_qwen2() {
    check_vocab("qwen2");
}
#[test]
fn vocab_qwen35() {
    check_vocab("qwen35");
}
#[test]
fn vocab_refact() {
    check_vocab("refact");
}
#[test]
fn vocab_starcoder() {
    check_vocab("starcoder");
}

#[test]
fn unsupported_vocabs_name_their_model() {
    for (name, model) in UNSUPPORTED.iter().chain(UNSUPPORTED_WITHOUT_VECTORS) {
        let err = GgufTokenizer::load(&vocab_file(name)).unwrap_err();
        match err {
            TokenizerError::UnsupportedModel(message) => assert!(
                message.contains(model),
                "{name}: message {message:?} does not name {model:?}"
            ),
            other => panic!("{name}: expected UnsupportedModel, got {other:?}"),
        }
    }
}

/// Every vocabulary with vectors is either checked above or listed as unsupported, so a new
/// file in the folder cannot be silently ignored.
#[test]
fn every_vocab_with_vectors_is_covered() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(vocab_dir()).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if let Some(name) = file
            .strip_prefix("ggml-vocab-")
            .and_then(|f| f.strip_suffix(".gguf.inp"))
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    assert!(names.len() >= 6, "too few vocabularies found: {names:?}");
    for name in &names {
        assert!(
            SUPPORTED.contains(&name.as_str()) || UNSUPPORTED.iter().any(|(n, _)| n == name),
            "ggml-vocab-{name}.gguf has test vectors but no test"
        );
    }
}

/// The vocabularies without vectors still load, or are refused with a clear error.
#[test]
fn vocabs_without_vectors_load_or_are_refused() {
    for entry in std::fs::read_dir(vocab_dir()).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        if !file.ends_with(".gguf") || Path::new(&format!("{}.inp", path.display())).exists() {
            continue;
        }
        match GgufTokenizer::load(&path) {
            Ok(tok) => {
                let ids = tok.encode("Hello world!", false, false).unwrap();
                assert!(!ids.is_empty(), "{file}");
                assert_eq!(tok.decode(&ids, false).unwrap(), "Hello world!", "{file}");
                let with_specials = tok.encode("Hello world!", true, false).unwrap();
                assert!(with_specials.len() >= ids.len(), "{file}");
            }
            Err(TokenizerError::UnsupportedModel(message)) => {
                assert!(message.contains("tokenizer.ggml"), "{file}: {message}");
                assert!(
                    UNSUPPORTED_WITHOUT_VECTORS
                        .iter()
                        .any(|(name, _)| file == format!("ggml-vocab-{name}.gguf")),
                    "{file} is refused but not listed as unsupported: {message}"
                );
            }
            Err(other) => panic!("{file}: {other}"),
        }
    }
}

/// BERT: [CLS] ... [SEP] around the text, lowercased pieces joined back into words.
#[test]
fn bert_wraps_in_cls_and_sep() {
    let tok = GgufTokenizer::load(&vocab_file("bert-bge")).unwrap();
    assert_eq!(tok.kind(), VocabKind::WordPiece);
    let cls = tok.token_id("[CLS]").unwrap();
    let sep = tok.token_id("[SEP]").unwrap();
    let ids = tok.encode("Hello, Tokenizers!", true, false).unwrap();
    assert_eq!(ids.first(), Some(&cls));
    assert_eq!(ids.last(), Some(&sep));
    assert_eq!(tok.decode(&ids, true).unwrap(), "hello, tokenizers!");
    let parsed = tok.encode("[CLS] x [SEP]", false, true).unwrap();
    assert_eq!(parsed.first(), Some(&cls));
    assert_eq!(parsed.last(), Some(&sep));
}
