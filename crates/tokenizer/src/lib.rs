//! Builds a `tokenizers::Tokenizer` from the `tokenizer.ggml.*` metadata of a GGUF file, and
//! encodes and decodes text the way llama.cpp does for the same file.
//!
//! What a caller may rely on:
//! - [`GgufTokenizer::encode`] gives the token ids llama.cpp's `llama_tokenize` gives for the
//!   same flags. This is checked against llama.cpp's own test vectors for every vocabulary kind
//!   listed in [`VocabKind`], and against llama.cpp's ids on the project's test models.
//! - [`GgufTokenizer::tokenizer`] is an ordinary Hugging Face tokenizer with the same vocabulary,
//!   word splitting, merges, added tokens, decoder and BOS/EOS post-processor, for code that
//!   wants that interface. `tokenizer.encode(text, true)` gives what `encode(text, true, true)`
//!   gives for ordinary text and chat markup (tested on the test models). It can differ in
//!   corner cases: special tokens that overlap in the text (the `tokenizers` library takes the
//!   leftmost match, llama.cpp the longest token first), and Gemma 4 runs of newlines, which
//!   llama.cpp looks up as a whole before merging. `encode` is the reference.
//! - [`Specials`] comes from the file's metadata; where the file is silent, from llama.cpp's
//!   defaults for the vocabulary kind and its rules for recognising end-of-turn tokens by text.
//! - Nothing here panics on a malformed file or on any input text; problems are
//!   [`TokenizerError`]s.
//!
//! Supported `tokenizer.ggml.model` values: `gpt2` (byte-level BPE), `llama` (SentencePiece BPE:
//! Llama 2, Phi-3, Gemma 1-3, ...), `gemma4`, `bert` (WordPiece). Anything else (`t5`, `rwkv`,
//! `plamo2`, ...) is [`TokenizerError::UnsupportedModel`].
//!
//! Byte-level BPE splits text into words by the rules of its `tokenizer.ggml.pre` family
//! (`gpt-2`, `llama-bpe`, `qwen2`, `qwen35`, `smollm`/`starcoder`/`refact`/`command-r`,
//! `deepseek-llm`, `deepseek-coder`, `deepseek-v3`, `falcon`, `mpt`, `gpt-4o`, `tekken`, `bloom`,
//! ... and their aliases, as llama.cpp names them). A file without `tokenizer.ggml.pre` uses
//! llama.cpp's `default` rules, as llama.cpp does. An unknown value is refused with
//! [`TokenizerError::UnsupportedModel`] naming it, rather than guessed: a wrong guess would
//! silently feed the model token ids it was not trained on.
//!
//! Decoding differs from llama.cpp in one deliberate way: except for WordPiece (BERT), no "clean
//! up tokenization spaces" pass is applied, so `decode(encode(text))` gives back `text` exactly.

mod detokenize;
mod hf_json;
mod metadata;
mod partition;
mod pipeline;
mod pre_split;
mod special_tokens;
mod spm_merges;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use tokenizers::{
    Model, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString,
    PreTokenizer, Token, Tokenizer,
};

use detokenize::{push_piece, ByteLevelDecoder, PieceEncoding};
use metadata::{SpecialIds, VocabMetadata};
use partition::{Fragment, SpecialMatcher};
use pre_split::PreSplit;
use special_tokens::Attr;

/// Special token ids and flags of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Specials {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Whether [`GgufTokenizer::encode`] with `add_special` puts BOS first:
    /// `tokenizer.ggml.add_bos_token`, else the vocabulary kind's default as llama.cpp decides it.
    pub add_bos: bool,
    /// Whether [`GgufTokenizer::encode`] with `add_special` puts EOS last.
    pub add_eos: bool,
    /// Every id that ends a generation, ascending: EOS, EOT and EOM from the metadata, plus the
    /// tokens llama.cpp treats as end-of-generation by their text (`<|im_end|>`, `<|eot_id|>`,
    /// `<end_of_turn>`, `<|end|>`, `<|endoftext|>`, ...) and the FIM pad/repo/separator tokens.
    /// One deliberate difference: `</s>` counts only where the file makes it a control token;
    /// in Gemma 3 and Qwen 2.5 it is HTML's strikethrough end tag.
    pub end_of_turn: Vec<u32>,
    pub bos_text: Option<String>,
    pub eos_text: Option<String>,
}

impl Specials {
    pub fn is_end_of_turn(&self, id: u32) -> bool {
        self.end_of_turn.binary_search(&id).is_ok()
    }
}

/// What went wrong building or using a tokenizer.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required metadata key is absent.
    #[error("the GGUF metadata has no `{0}`")]
    MissingKey(String),
    /// The vocabulary kind is one this crate does not implement; the message names the
    /// `tokenizer.ggml.model` or `tokenizer.ggml.pre` value.
    #[error("unsupported tokenizer: {0}")]
    UnsupportedModel(String),
    /// The metadata is present but inconsistent (wrong types, lengths, duplicate tokens, ...).
    #[error("invalid tokenizer metadata: {0}")]
    Invalid(String),
    /// The `tokenizers` library refused something.
    #[error("tokenizer error: {0}")]
    Tokenizers(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not a readable GGUF file.
    #[error("{path} is not a readable GGUF file: {message}")]
    Gguf { path: PathBuf, message: String },
    /// `encode` was asked to add a BOS or EOS token the model does not have.
    #[error("the model has no {0} token to add")]
    MissingSpecialToken(&'static str),
    /// `decode` was given an id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownTokenId { id: u32, vocab_size: usize },
}

/// The kind of vocabulary a tokenizer was built from.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// `tokenizer.ggml.model = gpt2`: GPT-2 style byte-level BPE.
    ByteLevelBpe,
    /// `tokenizer.ggml.model = llama`: SentencePiece BPE with byte fallback.
    SentencePiece,
    /// `tokenizer.ggml.model = gemma4`: BPE over SentencePiece-style text.
    Gemma4,
    /// `tokenizer.ggml.model = bert`: BERT's WordPiece.
    WordPiece,
    /// A `tokenizer.json` found next to the model file.
    TokenizerJson,
}

/// A tokenizer built from a GGUF file, with the model's special tokens.
#[derive(Clone)]
pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    pub specials: Specials,
    kind: VocabKind,
    texts: Vec<String>,
    attrs: Vec<Attr>,
    matcher: SpecialMatcher,
    byte_level: ByteLevelDecoder,
    /// SentencePiece with `add_space_prefix`: the space put before the first word is removed
    /// again when decoding.
    strip_leading_space: bool,
    /// Gemma 4: a run of newlines that is itself a token is not merged (llama.cpp's rule).
    whole_newline_runs: bool,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("kind", &self.kind)
            .field("vocab_size", &self.texts.len())
            .field("specials", &self.specials)
            .finish_non_exhaustive()
    }
}

/// Ids from the metadata, checked against the vocabulary: an id outside it falls back to the
/// default (as llama.cpp does), and a default outside it is dropped.
fn checked_ids(from_file: &SpecialIds, defaults: &SpecialIds, n: usize) -> SpecialIds {
    let pick = |file: Option<u32>, default: Option<u32>| {
        let valid = |id: Option<u32>| id.filter(|&id| (id as usize) < n);
        valid(file).or(valid(default))
    };
    SpecialIds {
        bos: pick(from_file.bos, defaults.bos),
        eos: pick(from_file.eos, defaults.eos),
        eot: pick(from_file.eot, defaults.eot),
        eom: pick(from_file.eom, defaults.eom),
        unk: pick(from_file.unk, defaults.unk),
        sep: pick(from_file.sep, defaults.sep),
        pad: pick(from_file.pad, defaults.pad),
        cls: pick(from_file.cls, defaults.cls),
        mask: pick(from_file.mask, defaults.mask),
        fim_pre: pick(from_file.fim_pre, defaults.fim_pre),
        fim_suf: pick(from_file.fim_suf, defaults.fim_suf),
        fim_mid: pick(from_file.fim_mid, defaults.fim_mid),
        fim_pad: pick(from_file.fim_pad, defaults.fim_pad),
        fim_rep: pick(from_file.fim_rep, defaults.fim_rep),
        fim_sep: pick(from_file.fim_sep, defaults.fim_sep),
    }
}

/// Everything besides the `tokenizers` pipeline that encoding and decoding need.
struct Parts {
    texts: Vec<String>,
    attrs: Vec<Attr>,
    ids: SpecialIds,
    eog: BTreeSet<u32>,
    add_bos: bool,
    add_eos: bool,
}

impl Parts {
    fn specials(&self) -> Specials {
        let text = |id: Option<u32>| id.map(|id| self.texts[id as usize].clone());
        Specials {
            bos: self.ids.bos,
            eos: self.ids.eos,
            add_bos: self.add_bos,
            add_eos: self.add_eos,
            end_of_turn: self.eog.iter().copied().collect(),
            bos_text: text(self.ids.bos),
            eos_text: text(self.ids.eos),
        }
    }

    fn matcher(&self) -> Result<SpecialMatcher, TokenizerError> {
        SpecialMatcher::new(
            self.texts
                .iter()
                .zip(&self.attrs)
                .enumerate()
                .filter(|(_, (_, attr))| attr.is_special())
                .map(|(id, (text, attr))| (id as u32, text.clone(), *attr))
                .collect(),
        )
    }
}

impl GgufTokenizer {
    /// Builds the tokenizer from a parsed GGUF file's metadata.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self, TokenizerError> {
        let md = VocabMetadata::read(content)?;
        let n = md.tokens.len();
        if n == 0 {
            return Err(TokenizerError::Invalid(
                "tokenizer.ggml.tokens is empty".to_string(),
            ));
        }
        // llama.cpp renames empty tokens so that every text is unique and non-empty.
        let texts: Vec<String> = md
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.is_empty() {
                    format!("[EMPTY_{i}]")
                } else {
                    (*t).to_string()
                }
            })
            .collect();
        let mut attrs: Vec<Attr> = match &md.token_types {
            Some(types) => types[..n]
                .iter()
                .map(|&t| Attr::from_token_type(t))
                .collect(),
            None => vec![Attr::NORMAL; n],
        };

        // llama.cpp's defaults per vocabulary kind. Byte-level BPE gets no default BOS/EOS id
        // (llama.cpp's 11 is a Falcon leftover that names an ordinary token elsewhere).
        let mut defaults = SpecialIds::default();
        let mut split = None;
        let (kind, add_bos_default) = match md.model {
            "llama" => {
                defaults.bos = Some(1);
                defaults.eos = Some(2);
                defaults.unk = Some(0);
                (VocabKind::SentencePiece, true)
            }
            "gpt2" => {
                let s = PreSplit::for_pre(md.pre)?;
                let add_bos = s.add_bos_default;
                split = Some(s);
                (VocabKind::ByteLevelBpe, add_bos)
            }
            "gemma4" => (VocabKind::Gemma4, true),
            "bert" => {
                defaults.bos = Some(101);
                defaults.unk = Some(100);
                defaults.sep = Some(102);
                (VocabKind::WordPiece, true)
            }
            other => {
                return Err(TokenizerError::UnsupportedModel(format!(
                    "tokenizer.ggml.model = \"{other}\""
                )))
            }
        };

        let mut ids = checked_ids(&md.ids, &defaults, n);
        let mut add_eos = md.add_eos.unwrap_or(false);
        if kind == VocabKind::WordPiece {
            // BERT ends a sequence with [SEP]; it stands in for EOS here.
            ids.eos = ids.eos.or(ids.sep);
            add_eos |= md.add_sep.unwrap_or(true);
        }
        let eog = special_tokens::end_of_generation(&texts, &mut attrs, &mut ids);
        special_tokens::strip_flags(&texts, &mut attrs, md.general_name, md.pre, md.architecture);
        let mut add_bos = md.add_bos.unwrap_or(add_bos_default);
        if kind == VocabKind::Gemma4 {
            // llama.cpp forces BOS for Gemma 4 whatever the file says.
            add_bos = true;
        }
        let unk_text = ids.unk.map(|id| texts[id as usize].as_str());

        let add_space_prefix =
            kind == VocabKind::SentencePiece && md.add_space_prefix.unwrap_or(true);
        let merges = || {
            md.merges
                .as_deref()
                .ok_or_else(|| TokenizerError::MissingKey(metadata::KEY_MERGES.to_string()))
        };
        let mut tokenizer = match &split {
            Some(split) => pipeline::byte_level_bpe(&texts, merges()?, split)?,
            None if kind == VocabKind::WordPiece => {
                let lowercase = md.lowercase.unwrap_or(true);
                let strip_accents = md.strip_accents.unwrap_or(lowercase);
                pipeline::wordpiece(&texts, &attrs, unk_text, lowercase, strip_accents)?
            }
            None if kind == VocabKind::Gemma4 => pipeline::gemma4_bpe(&texts, merges()?, unk_text)?,
            None => {
                let scores = md
                    .scores
                    .as_deref()
                    .ok_or_else(|| TokenizerError::MissingKey(metadata::KEY_SCORES.to_string()))?;
                pipeline::sentencepiece_bpe(&texts, &scores[..n], unk_text, add_space_prefix)?
            }
        };

        let parts = Parts {
            texts,
            attrs,
            ids,
            eog,
            add_bos,
            add_eos,
        };
        pipeline::add_special_tokens(&mut tokenizer, &parts.texts, &parts.attrs);
        let with_text = |id: Option<u32>, wanted: bool| {
            id.filter(|_| wanted)
                .map(|id| (id, parts.texts[id as usize].as_str()))
        };
        pipeline::bos_eos_post_processor(
            &mut tokenizer,
            with_text(parts.ids.bos, parts.add_bos),
            with_text(parts.ids.eos, parts.add_eos),
        )?;
        Self::assemble(
            tokenizer,
            parts,
            kind,
            add_space_prefix || kind == VocabKind::WordPiece,
            kind == VocabKind::Gemma4,
        )
    }

    fn assemble(
        tokenizer: Tokenizer,
        parts: Parts,
        kind: VocabKind,
        strip_leading_space: bool,
        whole_newline_runs: bool,
    ) -> Result<Self, TokenizerError> {
        Ok(Self {
            specials: parts.specials(),
            matcher: parts.matcher()?,
            tokenizer,
            kind,
            texts: parts.texts,
            attrs: parts.attrs,
            byte_level: ByteLevelDecoder::new(),
            strip_leading_space,
            whole_newline_runs,
        })
    }

    /// Opens a GGUF file (reading only its metadata) and builds its tokenizer. A
    /// `tokenizer.json` in the same folder wins when present; the special tokens then still come
    /// from the GGUF metadata where it has them, else from `tokenizer.json` and
    /// `tokenizer_config.json`.
    pub fn load(gguf_path: &Path) -> Result<Self, TokenizerError> {
        let json = gguf_path
            .parent()
            .map(|dir| dir.join("tokenizer.json"))
            .filter(|p| p.is_file());
        let content = read_gguf(gguf_path)?;
        match json {
            Some(json) => hf_json::load(&json, &content),
            None => Self::from_gguf(&content),
        }
    }

    /// Encodes text with llama.cpp's semantics. `add_special`: put BOS / EOS around the text as
    /// [`Specials::add_bos`] / [`Specials::add_eos`] say. `parse_special`: control tokens written
    /// in the text (`<|im_start|>`, `<start_of_turn>`, ...) become single tokens; without it
    /// they are tokenized as ordinary text. User-defined tokens are matched either way.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.specials.add_bos {
            ids.push(
                self.specials
                    .bos
                    .ok_or(TokenizerError::MissingSpecialToken("BOS"))?,
            );
        }
        for fragment in self.matcher.partition(text, parse_special) {
            match fragment {
                Fragment::Token(id) => ids.push(id),
                Fragment::Text(range) => self.encode_text(&text[range], &mut ids)?,
            }
        }
        if add_special && self.specials.add_eos {
            ids.push(
                self.specials
                    .eos
                    .ok_or(TokenizerError::MissingSpecialToken("EOS"))?,
            );
        }
        Ok(ids)
    }

    /// Runs one piece of text without special tokens through normalizer, word splitting and
    /// model.
    fn encode_text(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), TokenizerError> {
        let tk =
            |e: Box<dyn std::error::Error + Send + Sync>| TokenizerError::Tokenizers(e.to_string());
        let mut normalized = NormalizedString::from(text);
        if let Some(normalizer) = self.tokenizer.get_normalizer() {
            normalizer.normalize(&mut normalized).map_err(tk)?;
        }
        let mut words = PreTokenizedString::from(normalized);
        if let Some(pre) = self.tokenizer.get_pre_tokenizer() {
            pre.pre_tokenize(&mut words).map_err(tk)?;
        }
        let model = self.tokenizer.get_model();
        words
            .tokenize(|word| {
                let word = word.get();
                if self.whole_newline_runs && word.bytes().all(|b| b == b'\n') {
                    if let Some(id) = model.token_to_id(word) {
                        return Ok(vec![Token::new(id, word.to_string(), (0, word.len()))]);
                    }
                }
                model.tokenize(word)
            })
            .map_err(tk)?;
        for (_, _, tokens) in words.get_splits(OffsetReferential::Original, OffsetType::None) {
            if let Some(tokens) = tokens {
                ids.extend(tokens.iter().map(|t| t.id));
            }
        }
        Ok(())
    }

    /// Decodes ids to bytes. `skip_special` leaves out control tokens (BOS, `<|im_end|>`, ...).
    /// The bytes may end inside a multi-byte character when the ids do.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Result<Vec<u8>, TokenizerError> {
        let vocab_size = self.texts.len();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(TokenizerError::UnknownTokenId { id, vocab_size });
        }
        let encoding = match self.kind {
            VocabKind::ByteLevelBpe => PieceEncoding::ByteLevel,
            VocabKind::SentencePiece | VocabKind::Gemma4 | VocabKind::WordPiece => {
                PieceEncoding::Metaspace
            }
            VocabKind::TokenizerJson => {
                return self
                    .tokenizer
                    .decode(ids, skip_special)
                    .map(String::into_bytes)
                    .map_err(|e| TokenizerError::Tokenizers(e.to_string()));
            }
        };
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            push_piece(
                &self.texts[id as usize],
                self.attrs[id as usize],
                encoding,
                &self.byte_level,
                skip_special,
                &mut out,
            );
        }
        if self.strip_leading_space && out.first() == Some(&b' ') {
            out.remove(0);
        }
        if self.kind == VocabKind::WordPiece {
            detokenize::clean_spaces(&mut out);
        }
        Ok(out)
    }

    /// Decodes ids to text; an incomplete character at the end becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        let bytes = self.decode_bytes(ids, skip_special)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Number of tokens the text takes on its own: no BOS/EOS, special-token texts counted as
    /// ordinary text.
    pub fn token_count(&self, text: &str) -> Result<usize, TokenizerError> {
        Ok(self.encode(text, false, false)?.len())
    }

    /// Number of token ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.texts.len()
    }

    /// The text of a token as stored in the vocabulary (byte-level tokens in their
    /// byte-to-character form).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }

    /// The id of a token with exactly this vocabulary text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.tokenizer.token_to_id(text)
    }

    pub fn kind(&self) -> VocabKind {
        self.kind
    }
}

/// Reads a GGUF file's header and metadata (not its tensors).
fn read_gguf(path: &Path) -> Result<gguf_file::Content, TokenizerError> {
    let file = File::open(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    gguf_file::Content::read(&mut reader).map_err(|e| TokenizerError::Gguf {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine moves the tokenizer to its own thread and shares it.
    #[test]
    fn tokenizer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<GgufTokenizer>();
        assert_send_sync::<Specials>();
    }

    #[test]
    fn ids_outside_the_vocabulary_fall_back_to_defaults() {
        let file = SpecialIds {
            bos: Some(10),
            eos: Some(3),
            ..SpecialIds::default()
        };
        let defaults = SpecialIds {
            bos: Some(1),
            eos: Some(2),
            unk: Some(9),
            ..SpecialIds::default()
        };
        let ids = checked_ids(&file, &defaults, 5);
        assert_eq!(ids.bos, Some(1));
        assert_eq!(ids.eos, Some(3));
        assert_eq!(ids.unk, None);
    }
}
