//! How byte-level BPE vocabularies split text into words before merging, by the value of
//! `tokenizer.ggml.pre`.
//!
//! Each family is a list of regular expressions applied in order, each one cutting every piece
//! left by the previous ones into matches and the text between matches (the Hugging Face `Split`
//! pre-tokenizer with the `Isolated` behaviour, which is also what llama.cpp does). The
//! expressions are the ones llama.cpp lists for each family, written in the form the models'
//! own `tokenizer.json` files use where llama.cpp had to rewrite them for `std::regex`.
//!
//! A missing `tokenizer.ggml.pre` uses the `default` family, as llama.cpp does. An unknown value
//! is refused with [`TokenizerError::UnsupportedModel`] naming it: guessing would silently produce
//! different token ids from the ones the model was trained on.

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::TokenizerError;

/// GPT-2's word pattern.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's word pattern: like GPT-2 but case-insensitive contractions, numbers in groups of
/// at most three digits and newlines kept apart.
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen 2's word pattern: Llama 3's with single digits.
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen 3.5's word pattern: Qwen 2's where letter runs also take combining marks.
const QWEN35: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// CJK ideographs, the blocks from U+0800 up to them, and Hangul (DeepSeek's ranges).
const CJK_HANGUL: &str = r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+";

const DEEPSEEK_LLM: &[&str] = &[
    r"[\r\n]",
    r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+",
    r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+",
    r"\s+$",
    CJK_HANGUL,
    r"\p{N}+",
];

const DEEPSEEK_CODER: &[&str] = &[r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK_HANGUL, r"\p{N}"];

const DEEPSEEK3: &[&str] = &[
    r"\p{N}{1,3}",
    r"[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+",
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];

const FALCON: &[&str] = &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"];

const STARCODER: &[&str] = &[r"\p{N}", GPT2];

const DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"];

const BLOOM: &[&str] = &[r" ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+"];
const VIKING: &[&str] = &[
    r" ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+",
    r"\p{N}",
];

const BAILINGMOE: &[&str] = &[
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
];
const SEED_CODER: &[&str] = &[
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const MINICPM5: &[&str] = &[
    r"\p{N}{1,3}",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const EXAONE_MOE: &[&str] = &[
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+",
];

/// What a `tokenizer.ggml.pre` value means for a byte-level BPE vocabulary.
#[derive(Clone, Debug)]
pub(crate) struct PreSplit {
    pub patterns: Vec<&'static str>,
    /// Look a whole word up in the vocabulary before merging (Hugging Face's `ignore_merges`).
    pub ignore_merges: bool,
    /// The family's default for `add_bos` when the file does not say.
    pub add_bos_default: bool,
}

impl PreSplit {
    fn new(_family: &'static str, patterns: &[&'static str]) -> Self {
        Self {
            patterns: patterns.to_vec(),
            ignore_merges: false,
            add_bos_default: false,
        }
    }

    /// Looks up a `tokenizer.ggml.pre` value (`None`: the key is absent).
    pub fn for_pre(pre: Option<&str>) -> Result<Self, TokenizerError> {
        let Some(pre) = pre else {
            return Ok(Self::new("default", DEFAULT));
        };
        let split = match pre {
            "default" => Self::new("default", DEFAULT),
            // Llama 3's tokenizer.json looks whole words up before merging.
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => Self {
                ignore_merges: true,
                add_bos_default: true,
                ..Self::new("llama3", &[LLAMA3])
            },
            "glm4" | "glm5" => Self {
                ignore_merges: true,
                ..Self::new("llama3", &[LLAMA3])
            },
            "dbrx" | "smaug-bpe" | "chatglm-bpe" => Self::new("llama3", &[LLAMA3]),
            "deepseek-llm" => Self::new("deepseek-llm", DEEPSEEK_LLM),
            "deepseek-coder" => Self::new("deepseek-coder", DEEPSEEK_CODER),
            "deepseek-v3" | "hunyuan-dense" | "joyai-llm" | "hy_v4" => {
                Self::new("deepseek-v3", DEEPSEEK3)
            }
            "falcon" => Self::new("falcon", FALCON),
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone"
            | "minerva-7b" | "mellum2" => Self::new("starcoder", STARCODER),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "trillion"
            | "granite-docling" | "exaone4" => Self::new("gpt-2", &[GPT2]),
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2"
            | "hunyuan" | "solar-open" | "grok-2" => Self::new("qwen2", &[QWEN2]),
            "qwen35" => Self::new("qwen35", &[QWEN35]),
            "poro-chat" | "bloom" | "gpt3-finnish" => Self::new("bloom", BLOOM),
            "viking" => Self::new("viking", VIKING),
            "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => {
                Self::new("gpt-4o", &[GPT4O])
            }
            "tekken" => Self {
                ignore_merges: true,
                add_bos_default: true,
                ..Self::new("tekken", &[TEKKEN])
            },
            "bailingmoe" | "bailingmoe2" | "llada-moe" => Self::new("bailingmoe", BAILINGMOE),
            "seed-coder" => Self::new("seed-coder", SEED_CODER),
            "minicpm5" => Self {
                ignore_merges: true,
                ..Self::new("minicpm5", MINICPM5)
            },
            "exaone-moe" => Self::new("exaone-moe", EXAONE_MOE),
            other => {
                return Err(TokenizerError::UnsupportedModel(format!(
                    "tokenizer.ggml.pre = \"{other}\" (no word-splitting rule is known for it)"
                )))
            }
        };
        Ok(split)
    }

    /// The Hugging Face pre-tokenizer: the splits, then the byte-to-character mapping.
    pub fn pre_tokenizer(&self) -> Result<PreTokenizerWrapper, TokenizerError> {
        let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(self.patterns.len() + 1);
        for pattern in &self.patterns {
            steps.push(regex_split(pattern)?);
        }
        steps.push(ByteLevel::new(false, false, false).into());
        Ok(Sequence::new(steps).into())
    }
}

/// `Split(pattern, Isolated)`.
pub(crate) fn regex_split(pattern: &str) -> Result<PreTokenizerWrapper, TokenizerError> {
    let split = Split::new(
        SplitPattern::Regex(pattern.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| TokenizerError::Tokenizers(format!("bad split pattern {pattern:?}: {e}")))?;
    Ok(split.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_compiles() {
        for pre in [
            "default",
            "llama-bpe",
            "deepseek-llm",
            "deepseek-coder",
            "deepseek-v3",
            "falcon",
            "smollm",
            "gpt-2",
            "qwen2",
            "qwen35",
            "bloom",
            "viking",
            "gpt-4o",
            "tekken",
            "bailingmoe",
            "seed-coder",
            "minicpm5",
            "exaone-moe",
        ] {
            let split = PreSplit::for_pre(Some(pre)).unwrap();
            split.pre_tokenizer().unwrap();
        }
    }

    #[test]
    fn unknown_pre_is_named() {
        let err = PreSplit::for_pre(Some("no-such-pre")).unwrap_err();
        assert!(
            matches!(err, TokenizerError::UnsupportedModel(ref m) if m.contains("no-such-pre"))
        );
    }
}
