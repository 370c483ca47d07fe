//! Uses a Hugging Face `tokenizer.json` found next to a model file instead of the GGUF
//! vocabulary.
//!
//! The tokenizer itself comes from `tokenizer.json`. The special tokens come from the GGUF
//! metadata where it names them, else from `tokenizer_config.json` (`bos_token`, `eos_token`,
//! `add_bos_token`, `add_eos_token`), and end-of-generation tokens are recognised by the same
//! rules as for GGUF vocabularies. Added tokens marked `special` behave like control tokens, the
//! others like user-defined tokens.

use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use serde_json::Value;
use tokenizers::Tokenizer;

use crate::metadata::{flag, SpecialIds};
use crate::special_tokens::{self, Attr};
use crate::{checked_ids, GgufTokenizer, Parts, TokenizerError, VocabKind};

/// `tokenizer_config.json`, when present and readable as JSON.
fn read_config(path: &Path) -> Result<Option<Value>, TokenizerError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| TokenizerError::Invalid(format!("{}: {e}", path.display())))
}

/// A token named in the config, either as a string or as `{"content": ...}`.
fn config_token<'a>(config: Option<&'a Value>, key: &str) -> Option<&'a str> {
    match config?.get(key)? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("content")?.as_str(),
        _ => None,
    }
}

fn config_flag(config: Option<&Value>, key: &str) -> Option<bool> {
    config?.get(key)?.as_bool()
}

pub(crate) fn load(json: &Path, gguf: &Content) -> Result<GgufTokenizer, TokenizerError> {
    let tokenizer = Tokenizer::from_file(json)
        .map_err(|e| TokenizerError::Tokenizers(format!("{}: {e}", json.display())))?;
    let config = read_config(&json.with_file_name("tokenizer_config.json"))?;
    let config = config.as_ref();

    let vocab = tokenizer.get_vocab(true);
    let n = vocab.values().max().map_or(0, |&max| max as usize + 1);
    let mut texts = vec![String::new(); n];
    for (text, id) in vocab {
        texts[id as usize] = text;
    }
    let mut attrs = vec![Attr::NORMAL; n];
    for (id, token) in tokenizer.get_added_tokens_decoder() {
        if let Some(attr) = attrs.get_mut(id as usize) {
            let mut a = if token.special {
                Attr::CONTROL
            } else {
                Attr::USER_DEFINED
            };
            if token.lstrip {
                a = a.with(Attr::LSTRIP);
            }
            if token.rstrip {
                a = a.with(Attr::RSTRIP);
            }
            *attr = a;
        }
    }

    let from_gguf = SpecialIds::read(gguf)?;
    let by_text = |key: &str| config_token(config, key).and_then(|t| tokenizer.token_to_id(t));
    let wanted = SpecialIds {
        bos: from_gguf.bos.or_else(|| by_text("bos_token")),
        eos: from_gguf.eos.or_else(|| by_text("eos_token")),
        unk: from_gguf.unk.or_else(|| by_text("unk_token")),
        pad: from_gguf.pad.or_else(|| by_text("pad_token")),
        ..from_gguf
    };
    let mut ids = checked_ids(&wanted, &SpecialIds::default(), n);
    let eog = special_tokens::end_of_generation(&texts, &mut attrs, &mut ids);
    let add_bos = flag(gguf, "tokenizer.ggml.add_bos_token")?
        .or_else(|| config_flag(config, "add_bos_token"))
        .unwrap_or(false);
    let add_eos = flag(gguf, "tokenizer.ggml.add_eos_token")?
        .or_else(|| config_flag(config, "add_eos_token"))
        .unwrap_or(false);

    let parts = Parts {
        texts,
        attrs,
        ids,
        eog,
        add_bos,
        add_eos,
    };
    GgufTokenizer::assemble(tokenizer, parts, VocabKind::TokenizerJson, false, false)
}
