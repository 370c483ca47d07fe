//! Builds the Hugging Face `tokenizers` pipeline (normalizer, pre-tokenizer, model, decoder,
//! added tokens, post-processor) for each kind of GGUF vocabulary.
//!
//! - Byte-level BPE (`gpt2`): the word splits of [`PreSplit`], GPT-2's byte mapping, BPE with
//!   the file's merges.
//! - SentencePiece BPE (`llama`): spaces become U+2581 (plus one in front when
//!   `add_space_prefix`), no word splitting, BPE with byte fallback. GGUF stores scores, not
//!   merges, so the merges are derived from the scores (see the `spm_merges` module).
//! - Gemma 4 (`gemma4`): SentencePiece-style text, newline runs split off, BPE with the file's
//!   merges and byte fallback.
//! - WordPiece (`bert`): BERT's normalizer and word splitting, greedy longest-match WordPiece.
//!   GGUF marks word-initial pieces with a leading U+2581 and stores continuation pieces bare;
//!   the model gets them back in Hugging Face's form (bare, and `##`-prefixed).

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::{SpecialToken, TemplateProcessing};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, Tokenizer};

use crate::pre_split::{regex_split, PreSplit};
use crate::special_tokens::Attr;
use crate::spm_merges;
use crate::TokenizerError;

const SPACE_MARK: &str = "\u{2581}";

fn tokenizers_error(what: &str, e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Tokenizers(format!("{what}: {e}"))
}

/// Token text -> id. Fails on duplicate texts, which no GGUF converter writes.
pub(crate) fn vocab_map(texts: &[String]) -> Result<Vocab, TokenizerError> {
    let mut vocab = Vocab::with_capacity(texts.len());
    for (id, text) in texts.iter().enumerate() {
        if let Some(previous) = vocab.insert(text.clone(), id as u32) {
            return Err(TokenizerError::Invalid(format!(
                "token {text:?} appears twice in the vocabulary (ids {previous} and {id})"
            )));
        }
    }
    Ok(vocab)
}

/// Parses `"left right"` merges, keeping only those whose parts and result are tokens
/// (a merge into a non-token could never be applied).
fn parse_merges(merges: &[&str], vocab: &Vocab) -> Vec<(String, String)> {
    let mut joined = String::new();
    merges
        .iter()
        .filter_map(|merge| {
            // llama.cpp splits at the first space after the first byte.
            let at = merge.as_bytes().iter().skip(1).position(|&b| b == b' ')? + 1;
            let (left, right) = (&merge[..at], &merge[at + 1..]);
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            (vocab.contains_key(left) && vocab.contains_key(right) && vocab.contains_key(&joined))
                .then(|| (left.to_string(), right.to_string()))
        })
        .collect()
}

fn bpe(
    vocab: Vocab,
    merges: Vec<(String, String)>,
    byte_fallback: bool,
    unk: Option<&str>,
    ignore_merges: bool,
) -> Result<BPE, TokenizerError> {
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(byte_fallback)
        .ignore_merges(ignore_merges);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk.to_string());
    }
    builder
        .build()
        .map_err(|e| tokenizers_error("BPE model", e))
}

fn metaspace_decoder(strip_leading_space: bool) -> Result<DecoderWrapper, TokenizerError> {
    let mut steps: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE_MARK, " ")
            .map_err(|e| tokenizers_error("decoder", e))?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if strip_leading_space {
        steps.push(Strip::new(' ', 1, 0).into());
    }
    Ok(DecoderSequence::new(steps).into())
}

/// Byte-level BPE (`tokenizer.ggml.model = gpt2`).
pub(crate) fn byte_level_bpe(
    texts: &[String],
    merges: &[&str],
    split: &PreSplit,
) -> Result<Tokenizer, TokenizerError> {
    let vocab = vocab_map(texts)?;
    let merges = parse_merges(merges, &vocab);
    let model = bpe(vocab, merges, false, None, split.ignore_merges)?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(split.pre_tokenizer()?));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}

/// SentencePiece BPE (`tokenizer.ggml.model = llama`).
pub(crate) fn sentencepiece_bpe(
    texts: &[String],
    scores: &[f32],
    unk: Option<&str>,
    add_space_prefix: bool,
) -> Result<Tokenizer, TokenizerError> {
    let total: usize = texts.iter().map(String::len).sum();
    if u32::try_from(total).is_err() {
        return Err(TokenizerError::Invalid(format!(
            "the token texts add up to {total} bytes"
        )));
    }
    // The vocabulary map for the model is built while the merges are derived.
    let (vocab, merges) = std::thread::scope(|scope| {
        let vocab = scope.spawn(|| vocab_map(texts));
        let merges = spm_merges::merges_from_scores(texts, scores);
        let vocab = vocab
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (vocab, merges)
    });
    let vocab = vocab?;
    let model = bpe(vocab, merges, true, unk, false)?;
    let mut tokenizer = Tokenizer::new(model);
    let replace: NormalizerWrapper = Replace::new(" ", SPACE_MARK)
        .map_err(|e| tokenizers_error("normalizer", e))?
        .into();
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new(SPACE_MARK.to_string()).into(), replace]).into()
    } else {
        replace
    };
    tokenizer.with_normalizer(Some(normalizer));
    tokenizer.with_decoder(Some(metaspace_decoder(add_space_prefix)?));
    Ok(tokenizer)
}

/// Gemma 4's BPE on SentencePiece-style text (`tokenizer.ggml.model = gemma4`).
pub(crate) fn gemma4_bpe(
    texts: &[String],
    merges: &[&str],
    unk: Option<&str>,
) -> Result<Tokenizer, TokenizerError> {
    let vocab = vocab_map(texts)?;
    let merges = parse_merges(merges, &vocab);
    let model = bpe(vocab, merges, true, unk, false)?;
    let mut tokenizer = Tokenizer::new(model);
    let replace: NormalizerWrapper = Replace::new(" ", SPACE_MARK)
        .map_err(|e| tokenizers_error("normalizer", e))?
        .into();
    tokenizer.with_normalizer(Some(replace));
    tokenizer.with_pre_tokenizer(Some(regex_split(r"\n+")?));
    tokenizer.with_decoder(Some(metaspace_decoder(false)?));
    Ok(tokenizer)
}

/// WordPiece (`tokenizer.ggml.model = bert`). `texts` are the GGUF token texts; `attrs` tells
/// special tokens (kept as they are) from pieces.
pub(crate) fn wordpiece(
    texts: &[String],
    attrs: &[Attr],
    unk: Option<&str>,
    lowercase: bool,
    strip_accents: bool,
) -> Result<Tokenizer, TokenizerError> {
    let mut vocab = Vocab::with_capacity(texts.len());
    for (id, (text, attr)) in texts.iter().zip(attrs).enumerate() {
        let piece = if attr.is_special() {
            text.clone()
        } else if let Some(word_start) = text.strip_prefix(SPACE_MARK) {
            word_start.to_string()
        } else {
            format!("##{text}")
        };
        if !piece.is_empty() {
            vocab.entry(piece).or_insert(id as u32);
        }
    }
    let mut builder = WordPiece::builder()
        .vocab(vocab)
        .continuing_subword_prefix("##".to_string())
        .max_input_chars_per_word(usize::MAX);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk.to_string());
    }
    let model = builder
        .build()
        .map_err(|e| tokenizers_error("WordPiece model", e))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(BertNormalizer::new(
        true,
        true,
        Some(strip_accents),
        lowercase,
    )));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_decoder(Some(WordPieceDecoder::new("##".to_string(), false)));
    Ok(tokenizer)
}

/// Registers control/unknown tokens as special added tokens and user-defined tokens as plain
/// added tokens, matched on the raw text, so that `Tokenizer::encode` finds them too.
pub(crate) fn add_special_tokens(tokenizer: &mut Tokenizer, texts: &[String], attrs: &[Attr]) {
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (text, attr) in texts.iter().zip(attrs) {
        if attr.is_control_like() {
            special.push(
                AddedToken::from(text.clone(), true)
                    .normalized(false)
                    .lstrip(attr.any(Attr::LSTRIP))
                    .rstrip(attr.any(Attr::RSTRIP)),
            );
        } else if attr.any(Attr::USER_DEFINED) {
            user.push(
                AddedToken::from(text.clone(), false)
                    .normalized(false)
                    .lstrip(attr.any(Attr::LSTRIP))
                    .rstrip(attr.any(Attr::RSTRIP)),
            );
        }
    }
    if !special.is_empty() {
        tokenizer.add_special_tokens(&special);
    }
    if !user.is_empty() {
        tokenizer.add_tokens(&user);
    }
}

/// Adds BOS / EOS around single sequences when the model wants them, so that
/// `Tokenizer::encode(text, true)` matches [`crate::GgufTokenizer::encode`] with `add_special`.
pub(crate) fn bos_eos_post_processor(
    tokenizer: &mut Tokenizer,
    bos: Option<(u32, &str)>,
    eos: Option<(u32, &str)>,
) -> Result<(), TokenizerError> {
    if bos.is_none() && eos.is_none() {
        return Ok(());
    }
    let mut template = Vec::new();
    let mut specials = Vec::new();
    if let Some((id, text)) = bos {
        template.push("[BOS]");
        specials.push(
            SpecialToken::new("[BOS]".to_string(), vec![id], vec![text.to_string()])
                .map_err(|e| tokenizers_error("post-processor", e))?,
        );
    }
    template.push("$A");
    if let Some((id, text)) = eos {
        template.push("[EOS]");
        specials.push(
            SpecialToken::new("[EOS]".to_string(), vec![id], vec![text.to_string()])
                .map_err(|e| tokenizers_error("post-processor", e))?,
        );
    }
    let processor = TemplateProcessing::builder()
        .try_single(template.join(" "))
        .map_err(|e| tokenizers_error("post-processor", e))?
        .special_tokens(specials)
        .build()
        .map_err(|e| tokenizers_error("post-processor", e))?;
    tokenizer.with_post_processor(Some(processor));
    Ok(())
}
