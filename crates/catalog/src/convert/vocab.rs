//! The tokenizer part of a GGUF file (`tokenizer.ggml.*`, `tokenizer.chat_template`) from a
//! Hugging Face folder: `tokenizer.json` (byte-level BPE, GGUF model `gpt2`) or, when present,
//! SentencePiece's `tokenizer.model` (GGUF model `llama`), plus `tokenizer_config.json` for
//! special tokens, BOS/EOS flags and the chat template (or `chat_template.jinja`).
//!
//! Token types follow llama.cpp: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::hf_config::ModelParams;
use super::ConvertError;
use crate::gguf_out::MetaValue;

const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// The vocabulary and its GGUF metadata.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub metadata: Vec<(String, MetaValue)>,
}

fn read_json(path: &Path) -> Result<Option<Value>, ConvertError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ConvertError::InvalidModel {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// A special token in tokenizer_config.json: a string or `{"content": ...}`.
fn special_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string),
        _ => None,
    }
}

/// Which llama.cpp pre-tokenizer a tokenizer.json's pre-tokenizer corresponds to.
pub fn detect_pre(tok: &Value) -> &'static str {
    let pre = tok.get("pre_tokenizer").cloned().unwrap_or(Value::Null);
    let mut parts: Vec<Value> = Vec::new();
    match pre.get("type").and_then(|t| t.as_str()) {
        Some("Sequence") => parts.extend(
            pre.get("pretokenizers")
                .and_then(|p| p.as_array())
                .cloned()
                .unwrap_or_default(),
        ),
        Some(_) => parts.push(pre.clone()),
        None => {}
    }
    let mut regexes = String::new();
    let mut digits_individual = false;
    let mut byte_level_regex = false;
    for p in &parts {
        match p.get("type").and_then(|t| t.as_str()) {
            Some("Split") => {
                if let Some(r) = p
                    .get("pattern")
                    .and_then(|x| x.get("Regex"))
                    .and_then(|r| r.as_str())
                {
                    regexes.push_str(r);
                    regexes.push('\n');
                }
            }
            Some("Digits") => {
                digits_individual |= p
                    .get("individual_digits")
                    .and_then(|d| d.as_bool())
                    .unwrap_or(false)
            }
            Some("ByteLevel") => {
                byte_level_regex |= p.get("use_regex").and_then(|d| d.as_bool()).unwrap_or(true)
            }
            _ => {}
        }
    }
    if regexes.contains(r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+") {
        "gpt-4o"
    } else if regexes.contains(r"\p{N}{1,3}") {
        "llama-bpe"
    } else if regexes.contains(r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|") {
        "qwen2"
    } else if regexes.is_empty() && digits_individual && byte_level_regex {
        "smollm"
    } else if regexes.is_empty() && byte_level_regex {
        "gpt-2"
    } else {
        "default"
    }
}

/// Whether the post-processor puts `token` first in a single sequence.
fn post_processor_adds(tok: &Value, token: &str, first: bool) -> Option<bool> {
    let pp = tok.get("post_processor")?;
    let procs: Vec<&Value> = match pp.get("type").and_then(|t| t.as_str()) {
        Some("Sequence") => pp.get("processors")?.as_array()?.iter().collect(),
        _ => vec![pp],
    };
    for p in procs {
        if p.get("type").and_then(|t| t.as_str()) != Some("TemplateProcessing") {
            continue;
        }
        let single = p.get("single")?.as_array()?;
        let item = if first { single.first() } else { single.last() };
        let id = item
            .and_then(|i| i.get("SpecialToken"))
            .and_then(|s| s.get("id"))
            .and_then(|s| s.as_str());
        return Some(id == Some(token));
    }
    None
}

fn chat_template(dir: &Path, tcfg: Option<&Value>) -> Result<Option<String>, ConvertError> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|source| ConvertError::Io {
                path: jinja,
                source,
            });
    }
    Ok(match tcfg.and_then(|c| c.get("chat_template")) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .or_else(|| list.first())
            .and_then(|t| t.get("template"))
            .and_then(|t| t.as_str())
            .map(str::to_string),
        _ => None,
    })
}

/// Reads the folder's tokenizer into GGUF metadata. `n_vocab` is the embedding matrix's row count.
pub fn read_vocab(dir: &Path, params: &ModelParams, n_vocab: usize) -> Result<Vocab, ConvertError> {
    let tcfg = read_json(&dir.join("tokenizer_config.json"))?;
    let tok = read_json(&dir.join("tokenizer.json"))?;
    let spm = dir.join("tokenizer.model");
    let mut meta: Vec<(String, MetaValue)> = Vec::new();
    let (tokens, types) = if spm.is_file() {
        let bytes = std::fs::read(&spm).map_err(|source| ConvertError::Io {
            path: spm.clone(),
            source,
        })?;
        let model = super::spm::parse(&bytes).map_err(|message| ConvertError::InvalidModel {
            path: spm.clone(),
            message,
        })?;
        let mut tokens: Vec<String> = (0..n_vocab).map(|i| format!("[PAD{i}]")).collect();
        let mut scores = vec![-1000.0f32; n_vocab];
        let mut types = vec![UNUSED; n_vocab];
        for (i, p) in model.pieces.iter().enumerate().take(n_vocab) {
            tokens[i] = p.piece.clone();
            scores[i] = p.score;
            types[i] = p.kind;
        }
        apply_added_tokens(tok.as_ref(), tcfg.as_ref(), &mut tokens, &mut types);
        meta.push((
            "tokenizer.ggml.model".into(),
            MetaValue::Str("llama".into()),
        ));
        meta.push((
            "tokenizer.ggml.pre".into(),
            MetaValue::Str("default".into()),
        ));
        meta.push(("tokenizer.ggml.scores".into(), MetaValue::F32Array(scores)));
        let add_space = params.arch != super::hf_config::Arch::Gemma3 && model.add_dummy_prefix;
        meta.push((
            "tokenizer.ggml.add_space_prefix".into(),
            MetaValue::Bool(add_space),
        ));
        (tokens, types)
    } else {
        let tok = tok.as_ref().ok_or_else(|| ConvertError::InvalidModel {
            path: dir.to_path_buf(),
            message: "neither tokenizer.json nor tokenizer.model is present".into(),
        })?;
        let model = tok.get("model").ok_or_else(|| ConvertError::InvalidModel {
            path: dir.join("tokenizer.json"),
            message: "no `model`".into(),
        })?;
        if model.get("type").and_then(|t| t.as_str()) != Some("BPE") {
            return Err(ConvertError::UnsupportedTokenizer(format!(
                "tokenizer.json model {:?} (only byte-level BPE, or a SentencePiece tokenizer.model)",
                model.get("type")
            )));
        }
        if model
            .get("byte_fallback")
            .and_then(|b| b.as_bool())
            .unwrap_or(false)
        {
            return Err(ConvertError::UnsupportedTokenizer(
                "a SentencePiece-style BPE needs its tokenizer.model next to tokenizer.json".into(),
            ));
        }
        let mut tokens: Vec<String> = (0..n_vocab).map(|i| format!("[PAD{i}]")).collect();
        let mut types = vec![UNUSED; n_vocab];
        if let Some(v) = model.get("vocab").and_then(|v| v.as_object()) {
            for (text, id) in v {
                if let Some(id) = id.as_u64().map(|i| i as usize).filter(|i| *i < n_vocab) {
                    tokens[id] = text.clone();
                    types[id] = NORMAL;
                }
            }
        }
        apply_added_tokens(Some(tok), tcfg.as_ref(), &mut tokens, &mut types);
        let merges: Vec<String> = model
            .get("merges")
            .and_then(|m| m.as_array())
            .map(|m| {
                m.iter()
                    .filter_map(|x| match x {
                        Value::String(s) => Some(s.clone()),
                        Value::Array(pair) if pair.len() == 2 => {
                            Some(format!("{} {}", pair[0].as_str()?, pair[1].as_str()?))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        meta.push(("tokenizer.ggml.model".into(), MetaValue::Str("gpt2".into())));
        meta.push((
            "tokenizer.ggml.pre".into(),
            MetaValue::Str(detect_pre(tok).into()),
        ));
        meta.push(("tokenizer.ggml.merges".into(), MetaValue::StrArray(merges)));
        (tokens, types)
    };
    meta.insert(
        1,
        (
            "tokenizer.ggml.tokens".into(),
            MetaValue::StrArray(tokens.clone()),
        ),
    );
    meta.insert(
        2,
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::I32Array(types),
        ),
    );

    // Special tokens.
    let index: HashMap<&str, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as u32))
        .collect();
    let lookup = |key: &str| {
        special_text(tcfg.as_ref().and_then(|c| c.get(key)))
            .and_then(|t| index.get(t.as_str()).copied())
    };
    let bos = lookup("bos_token").or(params.bos_token_id);
    let eos = lookup("eos_token").or(params.eos_token_id);
    for (key, id) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("unknown_token_id", lookup("unk_token")),
        ("padding_token_id", lookup("pad_token")),
    ] {
        if let Some(id) = id {
            meta.push((format!("tokenizer.ggml.{key}"), MetaValue::U32(id)));
        }
    }
    let bos_text = special_text(tcfg.as_ref().and_then(|c| c.get("bos_token")));
    let eos_text = special_text(tcfg.as_ref().and_then(|c| c.get("eos_token")));
    let add_bos = tcfg
        .as_ref()
        .and_then(|c| c.get("add_bos_token"))
        .and_then(|b| b.as_bool())
        .or_else(|| {
            bos_text
                .as_deref()
                .and_then(|b| tok.as_ref().and_then(|t| post_processor_adds(t, b, true)))
        })
        .unwrap_or(spm.is_file());
    let add_eos = tcfg
        .as_ref()
        .and_then(|c| c.get("add_eos_token"))
        .and_then(|b| b.as_bool())
        .or_else(|| {
            eos_text
                .as_deref()
                .and_then(|e| tok.as_ref().and_then(|t| post_processor_adds(t, e, false)))
        })
        .unwrap_or(false);
    meta.push((
        "tokenizer.ggml.add_bos_token".into(),
        MetaValue::Bool(add_bos),
    ));
    meta.push((
        "tokenizer.ggml.add_eos_token".into(),
        MetaValue::Bool(add_eos),
    ));
    if let Some(t) = chat_template(dir, tcfg.as_ref())? {
        meta.push(("tokenizer.chat_template".into(), MetaValue::Str(t)));
    }
    Ok(Vocab {
        tokens,
        metadata: meta,
    })
}

/// Marks tokenizer.json's `added_tokens` (and tokenizer_config's `added_tokens_decoder`) as
/// control or user-defined tokens, the way llama.cpp's converter does.
fn apply_added_tokens(
    tok: Option<&Value>,
    tcfg: Option<&Value>,
    tokens: &mut [String],
    types: &mut [i32],
) {
    let mut set = |id: usize, content: &str, special: bool| {
        if id < tokens.len() {
            tokens[id] = if special {
                content.to_string()
            } else {
                content.replace('\u{2581}', " ")
            };
            types[id] = if special || (content.starts_with("<|") && content.ends_with("|>")) {
                CONTROL
            } else {
                USER_DEFINED
            };
        }
    };
    if let Some(list) = tok
        .and_then(|t| t.get("added_tokens"))
        .and_then(|a| a.as_array())
    {
        for a in list {
            if let (Some(id), Some(content)) = (
                a.get("id").and_then(|i| i.as_u64()),
                a.get("content").and_then(|c| c.as_str()),
            ) {
                set(
                    id as usize,
                    content,
                    a.get("special").and_then(|s| s.as_bool()).unwrap_or(false),
                );
            }
        }
    }
    if let Some(map) = tcfg
        .and_then(|c| c.get("added_tokens_decoder"))
        .and_then(|m| m.as_object())
    {
        for (id, a) in map {
            if let (Ok(id), Some(content)) = (
                id.parse::<usize>(),
                a.get("content").and_then(|c| c.as_str()),
            ) {
                set(
                    id,
                    content,
                    a.get("special").and_then(|s| s.as_bool()).unwrap_or(false),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pre_tokenizers_are_recognised() {
        let smollm = json!({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]}});
        assert_eq!(detect_pre(&smollm), "smollm");
        let llama3 = json!({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated"},
            {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}});
        assert_eq!(detect_pre(&llama3), "llama-bpe");
        let qwen = json!({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
            {"type": "ByteLevel", "use_regex": false}]}});
        assert_eq!(detect_pre(&qwen), "qwen2");
        assert_eq!(
            detect_pre(&json!({"pre_tokenizer": {"type": "ByteLevel", "use_regex": true}})),
            "gpt-2"
        );
    }
}
