//! Reads the `tokenizer.ggml.*` keys of a GGUF file into plain Rust values.
//!
//! Strings are borrowed from the parsed [`Content`], so nothing is copied twice. Every accessor
//! reports a wrong type or a missing required key as a [`TokenizerError`]; nothing here panics on
//! a malformed file.

use candle_core::quantized::gguf_file::{Content, Value};

use crate::TokenizerError;

/// Token type codes as written by llama.cpp's converters (`tokenizer.ggml.token_type`).
pub(crate) mod token_type {
    pub const UNDEFINED: i32 = 0;
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// The tokenizer part of a GGUF file's metadata.
pub(crate) struct VocabMetadata<'a> {
    pub model: &'a str,
    pub pre: Option<&'a str>,
    pub tokens: Vec<&'a str>,
    pub scores: Option<Vec<f32>>,
    pub token_types: Option<Vec<i32>>,
    pub merges: Option<Vec<&'a str>>,
    pub ids: SpecialIds,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    pub add_sep: Option<bool>,
    pub lowercase: Option<bool>,
    pub strip_accents: Option<bool>,
    pub general_name: Option<&'a str>,
    pub architecture: Option<&'a str>,
}

/// Special token ids as stored in the metadata (not yet validated against the vocabulary).
#[derive(Clone, Debug, Default)]
pub(crate) struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub cls: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

pub(crate) const KEY_MODEL: &str = "tokenizer.ggml.model";
pub(crate) const KEY_PRE: &str = "tokenizer.ggml.pre";
pub(crate) const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
pub(crate) const KEY_MERGES: &str = "tokenizer.ggml.merges";
pub(crate) const KEY_SCORES: &str = "tokenizer.ggml.scores";

impl<'a> VocabMetadata<'a> {
    pub fn read(content: &'a Content) -> Result<Self, TokenizerError> {
        let md = &content.metadata;
        let model = string(md.get(KEY_MODEL), KEY_MODEL)?
            .ok_or_else(|| TokenizerError::MissingKey(KEY_MODEL.to_string()))?;
        let pre = string(md.get(KEY_PRE), KEY_PRE)?;
        let tokens = string_array(md.get(KEY_TOKENS), KEY_TOKENS)?
            .ok_or_else(|| TokenizerError::MissingKey(KEY_TOKENS.to_string()))?;
        let merges = string_array(md.get(KEY_MERGES), KEY_MERGES)?;
        let scores = float_array(md.get(KEY_SCORES), KEY_SCORES)?;
        let token_types = int_array(
            md.get("tokenizer.ggml.token_type"),
            "tokenizer.ggml.token_type",
        )?;
        if let Some(scores) = &scores {
            if scores.len() < tokens.len() {
                return Err(TokenizerError::Invalid(format!(
                    "{KEY_SCORES} has {} entries for {} tokens",
                    scores.len(),
                    tokens.len()
                )));
            }
        }
        if let Some(types) = &token_types {
            if types.len() < tokens.len() {
                return Err(TokenizerError::Invalid(format!(
                    "tokenizer.ggml.token_type has {} entries for {} tokens",
                    types.len(),
                    tokens.len()
                )));
            }
        }

        let ids = SpecialIds::read(content)?;
        let flag = |key: &str| flag(content, key);
        Ok(Self {
            model,
            pre,
            tokens,
            scores,
            token_types,
            merges,
            ids,
            add_bos: flag("tokenizer.ggml.add_bos_token")?,
            add_eos: flag("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?,
            add_sep: flag("tokenizer.ggml.add_sep_token")?,
            lowercase: flag("tokenizer.ggml.normalizer.lowercase")?,
            strip_accents: flag("tokenizer.ggml.normalizer.strip_accents")?,
            general_name: string(md.get("general.name"), "general.name")?,
            architecture: string(md.get("general.architecture"), "general.architecture")?,
        })
    }
}

impl SpecialIds {
    /// Reads the special token ids a GGUF file names (any integer type; negative means none).
    pub fn read(content: &Content) -> Result<Self, TokenizerError> {
        let md = &content.metadata;
        let id = |key: &str| -> Result<Option<u32>, TokenizerError> { uint(md.get(key), key) };
        Ok(SpecialIds {
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            eom: id("tokenizer.ggml.eom_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            sep: id("tokenizer.ggml.seperator_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            cls: id("tokenizer.ggml.cls_token_id")?,
            mask: id("tokenizer.ggml.mask_token_id")?,
            fim_pre: id("tokenizer.ggml.fim_pre_token_id")?
                .or(id("tokenizer.ggml.prefix_token_id")?),
            fim_suf: id("tokenizer.ggml.fim_suf_token_id")?
                .or(id("tokenizer.ggml.suffix_token_id")?),
            fim_mid: id("tokenizer.ggml.fim_mid_token_id")?
                .or(id("tokenizer.ggml.middle_token_id")?),
            fim_pad: id("tokenizer.ggml.fim_pad_token_id")?,
            fim_rep: id("tokenizer.ggml.fim_rep_token_id")?,
            fim_sep: id("tokenizer.ggml.fim_sep_token_id")?,
        })
    }
}

/// A boolean metadata value (integers are accepted as booleans).
pub(crate) fn flag(content: &Content, key: &str) -> Result<Option<bool>, TokenizerError> {
    boolean(content.metadata.get(key), key)
}

fn wrong_type(key: &str, expected: &str, value: &Value) -> TokenizerError {
    TokenizerError::Invalid(format!(
        "{key} should be {expected}, found {:?}",
        value.value_type()
    ))
}

fn string<'a>(value: Option<&'a Value>, key: &str) -> Result<Option<&'a str>, TokenizerError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(wrong_type(key, "a string", v)),
    }
}

fn boolean(value: Option<&Value>, key: &str) -> Result<Option<bool>, TokenizerError> {
    match value {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => match integer(v) {
            Some(i) => Ok(Some(i != 0)),
            None => Err(wrong_type(key, "a boolean", v)),
        },
    }
}

fn integer(value: &Value) -> Option<i64> {
    Some(match value {
        Value::U8(v) => i64::from(*v),
        Value::I8(v) => i64::from(*v),
        Value::U16(v) => i64::from(*v),
        Value::I16(v) => i64::from(*v),
        Value::U32(v) => i64::from(*v),
        Value::I32(v) => i64::from(*v),
        Value::U64(v) => i64::try_from(*v).ok()?,
        Value::I64(v) => *v,
        _ => return None,
    })
}

/// A token id. Negative ids (llama.cpp writes -1 for "none") read as absent.
fn uint(value: Option<&Value>, key: &str) -> Result<Option<u32>, TokenizerError> {
    match value {
        None => Ok(None),
        Some(v) => match integer(v) {
            Some(i) if i < 0 => Ok(None),
            Some(i) => u32::try_from(i)
                .map(Some)
                .map_err(|_| TokenizerError::Invalid(format!("{key} = {i} is out of range"))),
            None => Err(wrong_type(key, "an integer", v)),
        },
    }
}

fn array<'a>(value: Option<&'a Value>, key: &str) -> Result<Option<&'a [Value]>, TokenizerError> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.as_slice())),
        Some(v) => Err(wrong_type(key, "an array", v)),
    }
}

fn string_array<'a>(
    value: Option<&'a Value>,
    key: &str,
) -> Result<Option<Vec<&'a str>>, TokenizerError> {
    let Some(items) = array(value, key)? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.as_str()),
            v => Err(wrong_type(key, "an array of strings", v)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn float_array(value: Option<&Value>, key: &str) -> Result<Option<Vec<f32>>, TokenizerError> {
    let Some(items) = array(value, key)? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|item| match item {
            Value::F32(f) => Ok(*f),
            Value::F64(f) => Ok(*f as f32),
            v => integer(v)
                .map(|i| i as f32)
                .ok_or_else(|| wrong_type(key, "an array of numbers", v)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn int_array(value: Option<&Value>, key: &str) -> Result<Option<Vec<i32>>, TokenizerError> {
    let Some(items) = array(value, key)? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|item| {
            integer(item)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(|| wrong_type(key, "an array of 32-bit integers", item))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
