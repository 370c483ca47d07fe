//! Sentence embeddings for document questions: all-MiniLM-L6-v2 (a 6-layer BERT, 384
//! dimensions) run with candle's BERT on the CPU.
//!
//! The model folder holds `model.safetensors`, `config.json` and `tokenizer.json` (as the
//! model's publisher ships them). Its tokenizer pads and truncates every input to 128 tokens;
//! both are turned off here: texts are cut into windows of at most [`MAX_WINDOW_TOKENS`] tokens
//! ([CLS] and [SEP] included, the length the model was published with), and a batch of windows
//! of different lengths is padded with an attention mask that both the attention and the mean
//! pooling honour, so a padded window embeds exactly as it does alone.
//!
//! What a caller may rely on:
//! - Every vector has [`Embedder::dims`] components and unit length (L2-normalized), so the dot
//!   product of two vectors is their cosine similarity ([`cosine`]).
//! - The same text gives the same vector, whether embedded alone or in a batch (up to float
//!   rounding, well under 1e-4).
//! - [`Embedder::embed_windows`] covers the whole text (consecutive windows overlap by
//!   [`WINDOW_OVERLAP`] tokens); [`Embedder::embed`] embeds the first window of each text (for
//!   questions, which fit in one).
//! - Errors are [`EmbedError`]s; nothing here panics on a damaged model folder.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

/// The name vectors are stored under (vectors of different models are never compared).
pub const EMBEDDING_MODEL_ID: &str = "all-minilm-l6-v2";

/// Longest window, in the model's tokens, [CLS] and [SEP] included.
pub const MAX_WINDOW_TOKENS: usize = 256;

/// Tokens shared by consecutive windows of a long text.
pub const WINDOW_OVERLAP: usize = 32;

/// Windows run through the model together.
const BATCH: usize = 8;

/// Why an embedding model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// A file the model needs is not in its folder.
    #[error("the embedding model has no {}", path.display())]
    MissingFile { path: PathBuf },
    /// `config.json` cannot be read as a BERT configuration.
    #[error("the embedding model's config.json is not a BERT configuration: {0}")]
    Config(String),
    /// `tokenizer.json` cannot be loaded or used.
    #[error("the embedding model's tokenizer failed: {0}")]
    Tokenizer(String),
    /// The weights do not load or the model fails to run.
    #[error("the embedding model failed: {0}")]
    Model(#[from] candle_core::Error),
}

/// A loaded sentence-embedding model.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dims: usize,
    cls: u32,
    sep: u32,
    pad: u32,
    folder: PathBuf,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("folder", &self.folder)
            .field("dims", &self.dims)
            .finish()
    }
}

/// Cosine similarity of two unit vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// True when `folder` holds the three files an [`Embedder`] loads.
pub fn is_model_folder(folder: &Path) -> bool {
    ["model.safetensors", "config.json", "tokenizer.json"]
        .iter()
        .all(|f| folder.join(f).is_file())
}

impl Embedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `folder`.
    pub fn load(folder: &Path) -> Result<Self, EmbedError> {
        let file = |name: &str| {
            let path = folder.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(EmbedError::MissingFile { path })
            }
        };
        let (weights, config, tokenizer) = (
            file("model.safetensors")?,
            file("config.json")?,
            file("tokenizer.json")?,
        );
        let config_text = std::fs::read_to_string(&config)
            .map_err(|e| EmbedError::Config(format!("{}: {e}", config.display())))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| EmbedError::Config(e.to_string()))?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        // The file pads and truncates everything to 128 tokens: windows are made here instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let special = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| EmbedError::Tokenizer(format!("no {t} token in the vocabulary")))
        };
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let pad = config.pad_token_id as u32;
        let device = Device::Cpu;
        // SAFETY: the file is mapped read-only and not modified while the model lives (it is in
        // the user's model folder or the test cache, which nothing writes to while Hearth runs).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device)? };
        let model = BertModel::load(vb, &config)?;
        Ok(Embedder {
            model,
            tokenizer,
            device,
            dims: config.hidden_size,
            cls,
            sep,
            pad,
            folder: folder.to_path_buf(),
        })
    }

    /// Components per vector (384 for all-MiniLM-L6-v2).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The folder the model was loaded from.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The text's word pieces, without special tokens.
    fn pieces(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    fn wrap(&self, body: &[u32]) -> Vec<u32> {
        let mut ids = Vec::with_capacity(body.len() + 2);
        ids.push(self.cls);
        ids.extend_from_slice(body);
        ids.push(self.sep);
        ids
    }

    /// Token windows covering `text` ([CLS] ... [SEP] each); one window for an empty text.
    pub fn windows(&self, text: &str) -> Result<Vec<Vec<u32>>, EmbedError> {
        let pieces = self.pieces(text)?;
        let body = MAX_WINDOW_TOKENS - 2;
        if pieces.len() <= body {
            return Ok(vec![self.wrap(&pieces)]);
        }
        let step = body - WINDOW_OVERLAP;
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let end = (start + body).min(pieces.len());
            out.push(self.wrap(&pieces[start..end]));
            if end == pieces.len() {
                break;
            }
            start += step;
        }
        Ok(out)
    }

    /// One vector per text, from its first window.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut windows = Vec::with_capacity(texts.len());
        for t in texts {
            let mut pieces = self.pieces(t)?;
            pieces.truncate(MAX_WINDOW_TOKENS - 2);
            windows.push(self.wrap(&pieces));
        }
        self.embed_ids(&windows)
    }

    /// One vector per window of `text` (see [`Embedder::windows`]).
    pub fn embed_windows(&self, text: &str) -> Result<Vec<Vec<f32>>, EmbedError> {
        let windows = self.windows(text)?;
        self.embed_ids(&windows)
    }

    /// Runs token windows (each [CLS] ... [SEP], at most [`MAX_WINDOW_TOKENS`]) through the
    /// model in batches: mean of the last hidden states over the real tokens, L2-normalized.
    pub fn embed_ids(&self, windows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(windows.len());
        for batch in windows.chunks(BATCH) {
            let longest = batch.iter().map(Vec::len).max().unwrap_or(0).max(1);
            let mut ids = Vec::with_capacity(batch.len() * longest);
            let mut mask = Vec::with_capacity(batch.len() * longest);
            for w in batch {
                let w = &w[..w.len().min(MAX_WINDOW_TOKENS)];
                ids.extend_from_slice(w);
                ids.extend(std::iter::repeat_n(self.pad, longest - w.len()));
                mask.extend(std::iter::repeat_n(1u32, w.len()));
                mask.extend(std::iter::repeat_n(0u32, longest - w.len()));
            }
            let shape = (batch.len(), longest);
            let ids = Tensor::from_vec(ids, shape, &self.device)?;
            let mask = Tensor::from_vec(mask, shape, &self.device)?;
            let types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12f32, f32::MAX)?;
            let unit = mean.broadcast_div(&norm)?;
            out.extend(unit.to_vec2::<f32>()?);
        }
        Ok(out)
    }
}
