//! The project's three test models: special tokens, chat markers, round trips, load time, and
//! a `tokenizer.json` next to the model taking precedence.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hearth_tokenizer::{GgufTokenizer, TokenizerError, VocabKind};

use crate::{shared_tokenizer, test_model};

const SMOLLM2: &str = "smollm2-135m-instruct-q4_1.gguf";
const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

const SAMPLES: &[&str] = &[
    "The quick brown fox jumps over the lazy dog. It's 3:45 p.m., isn't it?",
    "  leading spaces, trailing spaces  \n\n\ttabs and newlines\r\n",
    "我想在苹果公司工作。北京是中国的首都，人口超过两千万。",
    "Emoji: 🦙🚀😶‍🌫️ ✅ 👩🏽‍💻 and flags 🇫🇷🇯🇵",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{v:?}\");\n}\n",
    "def f(x):\n\treturn {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n",
    "Ünïcödé façade naïve café — “quotes” ‘single’ … €100 ½",
    "нещо на Български, Ελληνικά, العربية, हिन्दी, 한국어, 日本語のテキスト",
];

fn load(name: &'static str) -> &'static GgufTokenizer {
    shared_tokenizer(name)
}

fn id_of(tok: &GgufTokenizer, text: &str) -> u32 {
    tok.token_id(text)
        .unwrap_or_else(|| panic!("{text:?} is not a token"))
}

fn assert_round_trips(tok: &GgufTokenizer, model: &str) {
    for sample in SAMPLES {
        let ids = tok.encode(sample, false, false).unwrap();
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            *sample,
            "{model}: round trip of {sample:?}"
        );
        let with_specials = tok.encode(sample, true, false).unwrap();
        assert_eq!(
            tok.decode(&with_specials, true).unwrap(),
            *sample,
            "{model}: round trip with BOS/EOS of {sample:?}"
        );
        assert_eq!(tok.token_count(sample).unwrap(), ids.len());
    }
}

/// `encode` with `parse_special` agrees with the plain `tokenizers::Tokenizer::encode`.
fn assert_matches_hf_pipeline(tok: &GgufTokenizer, text: &str) {
    let ours = tok.encode(text, true, true).unwrap();
    let theirs = tok.tokenizer.encode(text, true).unwrap();
    assert_eq!(ours, theirs.get_ids(), "{text:?}");
}

#[test]
fn smollm2_specials() {
    let tok = load(SMOLLM2);
    assert_eq!(tok.kind(), VocabKind::ByteLevelBpe);
    let s = &tok.specials;
    assert_eq!(s.bos, Some(1));
    assert_eq!(s.bos_text.as_deref(), Some("<|im_start|>"));
    assert!(!s.add_bos);
    assert!(!s.add_eos);
    let im_end = id_of(tok, "<|im_end|>");
    assert_eq!(s.eos, Some(im_end));
    assert_eq!(s.eos_text.as_deref(), Some("<|im_end|>"));
    assert!(s.is_end_of_turn(im_end));
    assert!(s.is_end_of_turn(id_of(tok, "<|endoftext|>")));
    assert!(!s.is_end_of_turn(1));
    // add_bos is false: add_special adds nothing.
    assert_eq!(
        tok.encode("Hi", true, false).unwrap(),
        tok.encode("Hi", false, false).unwrap()
    );
}

#[test]
fn smollm2_chat_markers() {
    let tok = load(SMOLLM2);
    let ids = tok.encode("<|im_start|>user", false, true).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(tok.decode(&ids[1..], false).unwrap(), "user");
    assert_eq!(tok.decode(&ids, false).unwrap(), "<|im_start|>user");
    assert_eq!(tok.decode(&ids, true).unwrap(), "user");
    // Without parse_special the marker is ordinary text.
    let plain = tok.encode("<|im_start|>user", false, false).unwrap();
    assert!(!plain.contains(&1));
    assert!(plain.len() > ids.len());
    assert_eq!(tok.decode(&plain, false).unwrap(), "<|im_start|>user");

    let chat = "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n";
    let ids = tok.encode(chat, false, true).unwrap();
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 3);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 2);
    assert_eq!(tok.decode(&ids, false).unwrap(), chat);
    assert_matches_hf_pipeline(tok, chat);
}

#[test]
fn smollm2_round_trips() {
    assert_round_trips(load(SMOLLM2), "SmolLM2");
}

#[test]
fn qwen_specials_and_markers() {
    let tok = load(QWEN);
    assert_eq!(tok.kind(), VocabKind::ByteLevelBpe);
    let im_end = id_of(tok, "<|im_end|>");
    let endoftext = id_of(tok, "<|endoftext|>");
    assert_eq!(tok.specials.eos, Some(im_end));
    assert!(tok.specials.is_end_of_turn(im_end));
    assert!(tok.specials.is_end_of_turn(endoftext));
    assert!(!tok.specials.add_bos);
    let im_start = id_of(tok, "<|im_start|>");
    assert!(!tok.specials.is_end_of_turn(im_start));
    let ids = tok.encode("<|im_start|>user", false, true).unwrap();
    assert_eq!(ids[0], im_start);
    assert_eq!(tok.decode(&ids[1..], false).unwrap(), "user");
    assert_matches_hf_pipeline(
        tok,
        "<|im_start|>system\n你好<|im_end|>\n<|im_start|>user\nprint(1)<|im_end|>\n",
    );
}

#[test]
fn qwen_round_trips() {
    assert_round_trips(load(QWEN), "Qwen2.5");
}

#[test]
fn gemma3_specials_and_markers() {
    let tok = load(GEMMA3);
    assert_eq!(tok.kind(), VocabKind::SentencePiece);
    let s = &tok.specials;
    assert_eq!(s.bos, Some(2));
    assert_eq!(s.bos_text.as_deref(), Some("<bos>"));
    assert!(s.add_bos);
    assert!(!s.add_eos);
    let end_of_turn = id_of(tok, "<end_of_turn>");
    assert!(s.is_end_of_turn(end_of_turn));
    assert!(s.is_end_of_turn(id_of(tok, "<eos>")));
    let ids = tok.encode("Hello", true, false).unwrap();
    assert_eq!(ids[0], 2);
    assert_eq!(ids.len(), 2);
    assert_eq!(tok.decode(&ids, true).unwrap(), "Hello");
    assert_eq!(tok.decode(&ids, false).unwrap(), "<bos>Hello");

    let start = id_of(tok, "<start_of_turn>");
    let ids = tok
        .encode("<start_of_turn>user\nHi<end_of_turn>", true, true)
        .unwrap();
    assert_eq!(ids[0], 2);
    assert_eq!(ids[1], start);
    assert_eq!(*ids.last().unwrap(), end_of_turn);
    assert_matches_hf_pipeline(tok, "<start_of_turn>user\nWrite  code\n\n<end_of_turn>\n");
}

#[test]
fn gemma3_round_trips() {
    assert_round_trips(load(GEMMA3), "Gemma 3");
}

/// Loading the 262k-token Gemma 3 vocabulary must stay well under a second on an idle
/// development machine. Test machines are shared and often busy, so the bound is relative:
/// building the tokenizer from the GGUF file may take at most 1.5 times as long as the
/// `tokenizers` library takes to load the very same tokenizer from a `tokenizer.json`, measured
/// in the same process at the same time (best of three runs each). The times are printed.
#[test]
fn gemma3_loads_fast() {
    let path = test_model(GEMMA3);
    let dir = scratch_dir("load-time");
    let json = dir.join("tokenizer.json");
    GgufTokenizer::load(&path)
        .unwrap()
        .tokenizer
        .save(&json, false)
        .unwrap();

    let mut ours = f64::MAX;
    let mut reference = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let tok = GgufTokenizer::load(&path).unwrap();
        ours = ours.min(start.elapsed().as_secs_f64());
        assert_eq!(tok.vocab_size(), 262_144);
        drop(tok);

        let start = Instant::now();
        let hf = tokenizers::Tokenizer::from_file(&json).unwrap();
        reference = reference.min(start.elapsed().as_secs_f64());
        drop(hf);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!(
        "Gemma 3 tokenizer: GgufTokenizer::load {:.0} ms; Tokenizer::from_file(tokenizer.json) \
         {:.0} ms",
        ours * 1e3,
        reference * 1e3
    );
    assert!(
        ours < 1.5 * reference,
        "GgufTokenizer::load took {:.0} ms, tokenizer.json {:.0} ms",
        ours * 1e3,
        reference * 1e3
    );
}

#[test]
fn unknown_ids_are_errors() {
    let tok = load(SMOLLM2);
    let err = tok.decode(&[5, 49_152], false).unwrap_err();
    assert!(matches!(
        err,
        TokenizerError::UnknownTokenId {
            id: 49_152,
            vocab_size: 49_152
        }
    ));
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-tokenizer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bad_files_give_typed_errors() {
    let dir = scratch_dir("bad");
    let missing = dir.join("missing.gguf");
    assert!(matches!(
        GgufTokenizer::load(&missing),
        Err(TokenizerError::Io { .. })
    ));
    let garbage = dir.join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a gguf file at all").unwrap();
    assert!(matches!(
        GgufTokenizer::load(&garbage),
        Err(TokenizerError::Gguf { .. })
    ));
    // A real GGUF cut short in its metadata.
    let bytes = std::fs::read(test_model(SMOLLM2)).unwrap();
    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..200_000]).unwrap();
    assert!(matches!(
        GgufTokenizer::load(&truncated),
        Err(TokenizerError::Gguf { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn link_or_copy(from: &Path, to: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(from, to).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(from, to).unwrap();
}

/// A `tokenizer.json` beside the model wins; special tokens still come from the GGUF.
#[test]
fn tokenizer_json_beside_the_model_wins() {
    let gguf = test_model(SMOLLM2);
    let from_gguf = load(SMOLLM2);
    // A tokenizer.json that differs from the GGUF vocabulary by one extra special token.
    let mut hf = from_gguf.tokenizer.clone();
    hf.add_special_tokens(&[tokenizers::AddedToken::from("<|hearth|>", true)]);
    let dir = scratch_dir("json");
    hf.save(dir.join("tokenizer.json"), false).unwrap();
    let model = dir.join("model.gguf");
    link_or_copy(&gguf, &model);

    let tok = GgufTokenizer::load(&model).unwrap();
    assert_eq!(tok.kind(), VocabKind::TokenizerJson);
    assert_eq!(tok.specials.bos, Some(1));
    assert_eq!(tok.specials.eos, from_gguf.specials.eos);
    assert!(!tok.specials.add_bos);
    assert_eq!(tok.specials.end_of_turn, from_gguf.specials.end_of_turn);
    let hearth = tok.encode("<|hearth|>", false, true).unwrap();
    assert_eq!(hearth, vec![49_152]);
    let text = "<|im_start|>user\nSome text, 123 and émojis 🦙<|im_end|>";
    assert_eq!(
        tok.encode(text, false, true).unwrap(),
        from_gguf.encode(text, false, true).unwrap()
    );
    assert_eq!(
        tok.encode(text, false, false).unwrap(),
        from_gguf.encode(text, false, false).unwrap()
    );
    let ids = tok.encode(text, false, true).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// When the GGUF names no special tokens, they come from tokenizer_config.json.
#[test]
fn tokenizer_config_supplies_missing_specials() {
    use candle_core::quantized::gguf_file::{self, Value};
    let from_gguf = load(SMOLLM2);
    let dir = scratch_dir("config");
    from_gguf
        .tokenizer
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"bos_token": "<|endoftext|>", "eos_token": {"content": "<|im_end|>"}, "add_bos_token": true}"#,
    )
    .unwrap();
    // A GGUF file with no tokenizer metadata at all.
    let model = dir.join("model.gguf");
    let mut file = std::fs::File::create(&model).unwrap();
    let arch = Value::String("llama".to_string());
    gguf_file::write(&mut file, &[("general.architecture", &arch)], &[]).unwrap();
    drop(file);

    let tok = GgufTokenizer::load(&model).unwrap();
    assert_eq!(tok.kind(), VocabKind::TokenizerJson);
    let endoftext = id_of(&tok, "<|endoftext|>");
    let im_end = id_of(&tok, "<|im_end|>");
    assert_eq!(tok.specials.bos, Some(endoftext));
    assert_eq!(tok.specials.bos_text.as_deref(), Some("<|endoftext|>"));
    assert_eq!(tok.specials.eos, Some(im_end));
    assert!(tok.specials.add_bos);
    assert!(!tok.specials.add_eos);
    assert!(tok.specials.is_end_of_turn(im_end));
    let ids = tok.encode("Hello", true, false).unwrap();
    assert_eq!(ids[0], endoftext);
    assert_eq!(
        &ids[1..],
        &from_gguf.encode("Hello", false, false).unwrap()[..]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// "</s>" is HTML's strikethrough end tag in Gemma 3 (a user-defined token) and Qwen 2.5 (a
/// normal one): it must not end a generation there, unlike in llama.cpp, and Gemma's is matched
/// as one token like its other HTML tags.
#[test]
fn html_strikethrough_end_tag_does_not_end_generation() {
    let gemma = load(GEMMA3);
    let end_s = id_of(gemma, "</s>");
    assert!(!gemma.specials.is_end_of_turn(end_s));
    let ids = gemma.encode("<s>old</s> new", false, false).unwrap();
    assert!(ids.contains(&end_s) && ids.contains(&id_of(gemma, "<s>")));
    assert_eq!(gemma.decode(&ids, true).unwrap(), "<s>old</s> new");

    let qwen = load(QWEN);
    assert!(!qwen.specials.is_end_of_turn(id_of(qwen, "</s>")));
    let ids = qwen.encode("<s>old</s> new", false, true).unwrap();
    assert_eq!(qwen.decode(&ids, true).unwrap(), "<s>old</s> new");
}
