//! The user's documents: adding a file (extracted, chunked in a model's tokens, stored once per
//! content hash), listing them, their passages, and removing them.
//!
//! Contract:
//! - [`Assistant::add_document`] is blocking (extraction is CPU work: call it off the UI
//!   thread). A file whose SHA-256 is already stored returns that document
//!   (`already_known: true`) without reading it again.
//! - A file that cannot be read (encrypted or scanned PDF, a damaged file, a decompression bomb,
//!   a file over the size or page limit, an unsupported type) fails with an [`AppError`] whose
//!   code is `documents.<reason>` (see [`extract_error`]) and leaves the document list as it
//!   was: a document is listed only once all its chunks are stored.
//! - Chunks carry their PDF pages or the heading they sit under; every citation Hearth shows
//!   points at a chunk ([`Passage`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use hearth_documents::{DocumentKind, ExtractError, Limits};
use hearth_store::{ChunkId, DocumentId, NewChunk, NewDocument};
use hearth_tokenizer::GgufTokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, Result};
use crate::{lock, Assistant};

/// Tokens per chunk when nothing else is asked for: small enough for any model's context with
/// room for the prompt and the answer, and a size a small model still summarizes well.
pub const DEFAULT_CHUNK_TOKENS: u32 = 1024;

/// How to add a document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DocumentOptions {
    /// The model whose tokenizer measures the chunks (installed id or GGUF path); default: the
    /// default model. Without any model, lengths are estimated from the text.
    pub model: Option<String>,
    /// Largest chunk in tokens (default [`DEFAULT_CHUNK_TOKENS`]).
    pub chunk_tokens: Option<u32>,
    /// Largest file accepted, in bytes (default: the `documents.max_file_mb` setting, 200 MB).
    pub max_file_bytes: Option<u64>,
    /// Most PDF pages accepted (default: the `documents.max_pages` setting, 2000).
    pub max_pages: Option<u32>,
    /// Most bytes decompression may produce (default: the `documents.max_decompressed_mb`
    /// setting, 512 MB).
    pub max_decompressed_bytes: Option<u64>,
}

impl DocumentOptions {
    /// These options' limits, each one not given taken from `d` (the user's settings).
    fn limits(&self, d: &Limits) -> Limits {
        Limits {
            max_file_bytes: self.max_file_bytes.unwrap_or(d.max_file_bytes),
            max_pages: self.max_pages.unwrap_or(d.max_pages),
            max_decompressed_bytes: self
                .max_decompressed_bytes
                .unwrap_or(d.max_decompressed_bytes),
        }
    }
}

/// A stored document, for the document list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentInfo {
    pub id: i64,
    pub name: String,
    /// `pdf`, `docx`, `odt`, `epub`, `html`, `markdown` or `text`.
    pub kind: String,
    pub pages: Option<u32>,
    pub chunks: u32,
    pub sha256: String,
    pub path: String,
    pub added_at: i64,
    /// Status of the newest summary (`running`, `done`, `cancelled`, `failed`), if any.
    pub summary_status: Option<String>,
}

/// Result of [`Assistant::add_document`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedDocument {
    pub document: DocumentInfo,
    /// The same content was added before; that document is returned.
    pub already_known: bool,
}

/// One chunk of a document, what a citation points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Passage {
    pub chunk_id: i64,
    pub document_id: i64,
    /// Position in the document, from 0.
    pub ordinal: u32,
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    pub section: Option<String>,
    pub text: String,
    pub token_count: u32,
}

impl From<hearth_store::Chunk> for Passage {
    fn from(c: hearth_store::Chunk) -> Self {
        Passage {
            chunk_id: c.id.get(),
            document_id: c.document_id.get(),
            ordinal: c.ordinal,
            page_start: c.page_start,
            page_end: c.page_end,
            section: c.section,
            text: c.text,
            token_count: c.token_count,
        }
    }
}

fn kind_code(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Pdf => "pdf",
        DocumentKind::Docx => "docx",
        DocumentKind::Odt => "odt",
        DocumentKind::Epub => "epub",
        DocumentKind::Html => "html",
        DocumentKind::Markdown => "markdown",
        _ => "text",
    }
}

/// The [`AppError`] for a document that could not be read: code `documents.` followed by
/// [`ExtractError::code`] (`encrypted_pdf`, `no_text_layer`, `corrupt`, `too_large`,
/// `too_many_pages`, `decompression_limit`, `unsupported`, `empty`, `io`).
pub fn extract_error(e: &ExtractError) -> AppError {
    let text = e.to_string();
    let mut chars = text.chars();
    let mut message: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !message.ends_with('.') {
        message.push('.');
    }
    AppError::new(&format!("documents.{}", e.code()), message)
}

/// Tokenizers loaded lately, by model file (shared by documents and translation).
type TokenizerCache = Mutex<Vec<(PathBuf, Arc<GgufTokenizer>)>>;

pub(crate) fn tokenizer_for(path: &Path) -> Result<Arc<GgufTokenizer>> {
    static CACHE: OnceLock<TokenizerCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((_, t)) = lock(cache).iter().find(|(p, _)| p == path) {
        return Ok(t.clone());
    }
    let t = Arc::new(GgufTokenizer::load(path).map_err(|e| {
        AppError::new(
            "engine.tokenizer",
            format!("Cannot read the tokenizer of {}: {e}", path.display()),
        )
    })?);
    let mut c = lock(cache);
    c.push((path.to_path_buf(), t.clone()));
    if c.len() > 2 {
        c.remove(0);
    }
    Ok(t)
}

/// The context window a model file declares, read from its header (None when it cannot be read:
/// the summary then checks the chunks against the model it runs with).
fn context_of(path: &Path) -> Option<usize> {
    hearth_engine::gguf::ModelFile::open(path)
        .and_then(|f| f.config())
        .map(|c| c.context_len)
        .ok()
}

/// Tokens per chunk: what was asked for (default [`DEFAULT_CHUNK_TOKENS`]), but never more than
/// a model with `context` tokens can summarize with its instructions and answer
/// ([`crate::summarize::chunk_budget`]), and at least 16.
fn chunk_limit(requested: Option<u32>, context: Option<usize>) -> usize {
    let asked = requested.unwrap_or(DEFAULT_CHUNK_TOKENS) as usize;
    let fits = context.map_or(asked, crate::summarize::chunk_budget);
    asked.min(fits).max(16)
}

/// A token counter for `tok`, or an estimate (a token per three bytes, rounded up) without one.
pub(crate) fn counter(tok: Option<Arc<GgufTokenizer>>) -> impl Fn(&str) -> usize {
    move |s: &str| match &tok {
        Some(t) => t.token_count(s).unwrap_or(s.len().div_ceil(3)),
        None => s.len().div_ceil(3),
    }
}

fn not_found(id: i64) -> AppError {
    AppError::new(
        "documents.not_found",
        format!("Document {id} is not in the library (it may have been removed)."),
    )
}

impl Assistant {
    /// A model given by installed id or by GGUF path; the default model when `spec` is empty.
    pub(crate) fn resolve_model(&self, spec: Option<&str>) -> Result<(String, PathBuf)> {
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
            return self.model_for_reply();
        };
        let (id, path) = match self.store().model(spec) {
            Ok(m) => (m.id, PathBuf::from(m.path)),
            Err(_) => (spec.to_string(), PathBuf::from(spec)),
        };
        if !path.is_file() {
            return Err(AppError::new(
                "models.missing_file",
                format!(
                    "No model file at {} (and no installed model with that id).",
                    path.display()
                ),
            ));
        }
        Ok((id, path))
    }

    fn document_info(&self, d: hearth_store::Document) -> Result<DocumentInfo> {
        let chunks = self.store().chunks(d.id)?.len() as u32;
        let summary_status = self
            .store()
            .summaries(d.id)?
            .last()
            .map(|s| format!("{:?}", s.status).to_lowercase());
        Ok(DocumentInfo {
            id: d.id.get(),
            name: d.name,
            kind: d.media_type,
            pages: d.pages,
            chunks,
            sha256: d.sha256,
            path: d.original_path,
            added_at: d.added_at,
            summary_status,
        })
    }

    /// Reads, chunks and stores a document; see the module header.
    pub fn add_document(&self, path: &Path, options: &DocumentOptions) -> Result<AddedDocument> {
        let io = |source| {
            extract_error(&ExtractError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let limits = options.limits(&self.settings()?.documents.to_limits());
        // A file over the limit is refused before it is hashed or read.
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > limits.max_file_bytes {
            return Err(extract_error(&ExtractError::TooLarge {
                size,
                limit: limits.max_file_bytes,
            }));
        }
        let sha = hearth_documents::sha256_file(path).map_err(io)?;
        if let Some(d) = self.store().document_by_sha256(&sha)? {
            if !self.store().chunks(d.id)?.is_empty() {
                self.embed_in_background(d.id.get());
                return Ok(AddedDocument {
                    document: self.document_info(d)?,
                    already_known: true,
                });
            }
            // Stored without chunks (interrupted while adding): add it again.
            self.store().delete_document(d.id)?;
        }
        let extracted =
            hearth_documents::extract_file(path, &limits).map_err(|e| extract_error(&e))?;
        let (tok, context) = match self.resolve_model(options.model.as_deref()) {
            Ok((_, model_path)) => (Some(tokenizer_for(&model_path)?), context_of(&model_path)),
            Err(e) if e.code == "models.none" => (None, None),
            Err(e) => return Err(e),
        };
        let count = counter(tok);
        let max = chunk_limit(options.chunk_tokens, context);
        let chunks = hearth_documents::chunk(&extracted, &count, max);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let added = self.store().add_document(&NewDocument {
            sha256: extracted.sha256.clone(),
            original_path: path.display().to_string(),
            name,
            media_type: kind_code(extracted.kind).into(),
            pages: extracted.pages,
            extracted_text: extracted.text(),
        })?;
        let new_chunks: Vec<NewChunk> = chunks
            .into_iter()
            .map(|c| NewChunk {
                ordinal: c.ordinal,
                page_start: c.page_start,
                page_end: c.page_end,
                section: c.heading,
                text_start: None,
                text_end: None,
                text: c.text,
                token_count: c.token_count as u32,
            })
            .collect();
        if let Err(e) = self.store().add_chunks(added.document.id, &new_chunks) {
            // Keep the list consistent: no document without its chunks.
            let _ = self.store().delete_document(added.document.id);
            return Err(e.into());
        }
        // Passages are indexed by meaning off this thread; the document is usable at once.
        self.embed_in_background(added.document.id.get());
        Ok(AddedDocument {
            document: self.document_info(added.document)?,
            already_known: added.already_known,
        })
    }

    /// Every document, newest first.
    pub fn documents(&self) -> Result<Vec<DocumentInfo>> {
        self.store()
            .list_documents()?
            .into_iter()
            .map(|d| self.document_info(d))
            .collect()
    }

    /// One document.
    pub fn document(&self, id: i64) -> Result<DocumentInfo> {
        let d = self
            .store()
            .document(DocumentId(id))
            .map_err(|_| not_found(id))?;
        self.document_info(d)
    }

    /// A document's chunks in order.
    pub fn document_passages(&self, id: i64) -> Result<Vec<Passage>> {
        self.document(id)?;
        Ok(self
            .store()
            .chunks(DocumentId(id))?
            .into_iter()
            .map(Passage::from)
            .collect())
    }

    /// The passage a citation points at.
    pub fn passage(&self, chunk_id: i64) -> Result<Passage> {
        Ok(self.store().chunk(ChunkId(chunk_id))?.into())
    }

    /// Removes a document with its chunks and summaries.
    pub fn delete_document(&self, id: i64) -> Result<()> {
        self.document(id)?;
        Ok(self.store().delete_document(DocumentId(id))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fit_the_context_with_room_for_instructions_and_answer() {
        // Plenty of room: what was asked for, or the default.
        assert_eq!(chunk_limit(None, Some(8192)), DEFAULT_CHUNK_TOKENS as usize);
        assert_eq!(chunk_limit(Some(512), Some(8192)), 512);
        // A small window: the window less the instructions and the longest partial summary.
        assert_eq!(
            chunk_limit(None, Some(1024)),
            crate::summarize::chunk_budget(1024)
        );
        assert_eq!(crate::summarize::chunk_budget(1024), 1024 - 160 - 192);
        // No model known: what was asked for; never below 16.
        assert_eq!(chunk_limit(Some(300), None), 300);
        assert_eq!(chunk_limit(Some(4), None), 16);
        assert_eq!(chunk_limit(None, Some(100)), 16);
    }
}
