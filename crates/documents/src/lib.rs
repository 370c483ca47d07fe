//! Turns a user's document into typed text that can be summarized and searched.
//!
//! [`extract_file`] reads a PDF, DOCX, ODT, EPUB, HTML, Markdown or plain-text file and returns an
//! [`Extracted`]: its kind, title, and text in [`Section`]s that carry the PDF page or the
//! heading the text sits under. [`chunk`] cuts that text into pieces measured in a model's
//! tokens. [`sha256_file`] hashes a file without reading it whole, for deduplication.
//!
//! What a caller may rely on:
//! - The kind is decided by the file's content (magic bytes, the parts inside a ZIP container);
//!   the extension is only a hint, for content that has no signature (Markdown vs. plain text).
//! - [`Limits`] are enforced while reading: the file size before anything is read, the page
//!   count before any page is parsed, and decompressed bytes as they are produced, so a ZIP or
//!   PDF bomb stops at the limit instead of filling memory.
//! - Extraction never panics and never aborts the process on any input: parsers run on their
//!   own thread with a large stack, inside `catch_unwind`; a panic there becomes
//!   [`ExtractError::Corrupt`]. Every error has a message written for a person.
//! - Extraction is blocking and CPU-bound: call it from a blocking thread, not an async task.

mod budget;
mod chunk;
mod detect;
mod docx;
mod epub;
mod hash;
mod html;
mod markdown;
mod odt;
mod pdf;
mod sections;
mod text;
mod xml;
mod zipped;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use chunk::{chunk, Chunk};
pub use detect::detect;
pub use hash::{sha256_bytes, sha256_file};

/// The formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DocumentKind {
    Pdf,
    Docx,
    Odt,
    Epub,
    Html,
    Markdown,
    Text,
}

impl DocumentKind {
    /// A short name for people ("PDF", "Word document", ...).
    pub fn label(self) -> &'static str {
        match self {
            DocumentKind::Pdf => "PDF",
            DocumentKind::Docx => "Word document",
            DocumentKind::Odt => "OpenDocument text",
            DocumentKind::Epub => "EPUB book",
            DocumentKind::Html => "web page",
            DocumentKind::Markdown => "Markdown file",
            DocumentKind::Text => "text file",
        }
    }
}

/// Bounds on what one extraction may read; the app fills these from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, checked before the file is read.
    pub max_file_bytes: u64,
    /// Most PDF pages accepted, checked before any page is parsed.
    pub max_pages: u32,
    /// Most bytes that decompression (ZIP entries, PDF streams) may produce in one document.
    pub max_decompressed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 200 * 1024 * 1024,
            max_pages: 2000,
            max_decompressed_bytes: 512 * 1024 * 1024,
        }
    }
}

/// A run of text under one heading (and, for PDFs, on one page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The heading the text sits under, if the format has headings (PDF: the outline entry).
    pub heading: Option<String>,
    /// The 1-based physical page (PDF only): the number a PDF viewer's page box shows.
    pub page: Option<u32>,
    /// Paragraphs separated by a blank line; lines inside a paragraph by one newline.
    pub text: String,
}

/// The text of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub kind: DocumentKind,
    /// The document's own title (metadata, `<title>`, the first top-level heading), if any.
    pub title: Option<String>,
    /// In reading order. Never empty: a document without text is an error.
    pub sections: Vec<Section>,
    /// Page count (PDF only).
    pub pages: Option<u32>,
    /// Size of the file in bytes.
    pub file_bytes: u64,
    /// Lowercase hex sha256 of the file's bytes, the same value [`sha256_file`] gives.
    pub sha256: String,
}

impl Extracted {
    /// All the text, sections joined by a blank line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&s.text);
        }
        out
    }

    /// Number of characters of text.
    pub fn char_count(&self) -> usize {
        self.sections.iter().map(|s| s.text.chars().count()).sum()
    }
}

/// Why a document could not be read. Messages are written for the person who added the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    #[error("could not read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "this PDF is protected by a password. Open it in a PDF viewer, save a copy without the \
         password, and add that copy instead"
    )]
    EncryptedPdf,
    #[error(
        "this PDF has no text layer ({pages} page(s) of images only; it looks like a scan). Run \
         it through text recognition (OCR) first"
    )]
    NoTextLayer { pages: u32 },
    #[error("this {} is damaged and could not be read ({detail})", kind.label())]
    Corrupt { kind: DocumentKind, detail: String },
    #[error(
        "this file is {} MB, more than the {} MB limit set in Settings",
        mb(*size),
        mb(*limit)
    )]
    TooLarge { size: u64, limit: u64 },
    #[error("this PDF has {pages} pages, more than the {limit}-page limit set in Settings")]
    TooManyPages { pages: u32, limit: u32 },
    #[error(
        "this {} unpacks to more than {} MB, the limit set in Settings; it may be a \
         decompression bomb",
        kind.label(),
        mb(*limit)
    )]
    DecompressionLimit { kind: DocumentKind, limit: u64 },
    #[error("{0} files are not supported; add a PDF, Word, OpenDocument, EPUB, HTML, Markdown or text file")]
    Unsupported(String),
    #[error("this {} contains no text", kind.label())]
    Empty { kind: DocumentKind },
}

fn mb(bytes: u64) -> String {
    let v = bytes as f64 / (1024.0 * 1024.0);
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl ExtractError {
    /// A stable code for the UI to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Io { .. } => "io",
            ExtractError::EncryptedPdf => "encrypted_pdf",
            ExtractError::NoTextLayer { .. } => "no_text_layer",
            ExtractError::Corrupt { .. } => "corrupt",
            ExtractError::TooLarge { .. } => "too_large",
            ExtractError::TooManyPages { .. } => "too_many_pages",
            ExtractError::DecompressionLimit { .. } => "decompression_limit",
            ExtractError::Unsupported(_) => "unsupported",
            ExtractError::Empty { .. } => "empty",
        }
    }
}

pub(crate) fn corrupt(kind: DocumentKind, detail: impl std::fmt::Display) -> ExtractError {
    ExtractError::Corrupt {
        kind,
        detail: detail.to_string(),
    }
}

/// Stack for the extraction thread: deeply nested input must not overflow it.
const EXTRACT_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Reads and extracts the file at `path`. The size limit is checked before reading; the file's
/// extension is used only as a hint.
pub fn extract_file(path: &Path, limits: &Limits) -> Result<Extracted, ExtractError> {
    let io = |source| ExtractError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limits.max_file_bytes {
        return Err(ExtractError::TooLarge {
            size,
            limit: limits.max_file_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // The file may grow while it is read: never take more than the limit allows.
    file.take(limits.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(ExtractError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    extract_bytes(bytes, ext.as_deref(), limits)
}

/// Extracts a document held in memory. `extension` (without the dot) is a hint for content
/// that has no signature.
pub fn extract_bytes(
    bytes: Vec<u8>,
    extension: Option<&str>,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(ExtractError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let ext = extension.map(|e| e.trim_start_matches('.').to_ascii_lowercase());
    let limits = *limits;
    let worker = std::thread::Builder::new()
        .name("document-extract".into())
        .stack_size(EXTRACT_STACK_BYTES)
        .spawn(move || {
            let kind_hint = ext.as_deref().and_then(detect::kind_from_extension);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                extract_inner(&bytes, ext.as_deref(), &limits)
            }));
            match outcome {
                Ok(result) => result,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "the parser failed".to_string());
                    Err(corrupt(kind_hint.unwrap_or(DocumentKind::Text), what))
                }
            }
        });
    let handle = match worker {
        Ok(h) => h,
        Err(e) => {
            return Err(ExtractError::Io {
                path: PathBuf::new(),
                source: e,
            })
        }
    };
    match handle.join() {
        Ok(result) => result,
        Err(_) => Err(corrupt(DocumentKind::Text, "the parser failed")),
    }
}

fn extract_inner(
    bytes: &[u8],
    ext: Option<&str>,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    let kind = detect::detect(bytes, ext)?;
    let mut budget = budget::Budget::new(kind, limits.max_decompressed_bytes);
    let body = match kind {
        DocumentKind::Pdf => pdf::extract(bytes, limits, &mut budget)?,
        DocumentKind::Docx => docx::extract(bytes, &mut budget)?,
        DocumentKind::Odt => odt::extract(bytes, &mut budget)?,
        DocumentKind::Epub => epub::extract(bytes, &mut budget)?,
        DocumentKind::Html => html::extract(&text::decode_html(bytes)),
        DocumentKind::Markdown => markdown::extract(&text::decode(bytes)),
        DocumentKind::Text => text::extract_plain(&text::decode(bytes)),
    };
    let sections: Vec<Section> = body
        .sections
        .into_iter()
        .filter(|s| !s.text.trim().is_empty())
        .collect();
    if sections.is_empty() {
        return Err(ExtractError::Empty { kind });
    }
    Ok(Extracted {
        kind,
        title: body
            .title
            .map(|t| sections::squash_spaces(&t))
            .filter(|t| !t.is_empty()),
        sections,
        pages: body.pages,
        file_bytes: bytes.len() as u64,
        sha256: hash::sha256_bytes(bytes),
    })
}

/// What a format's extractor hands back before the common checks.
pub(crate) struct Body {
    pub title: Option<String>,
    pub sections: Vec<Section>,
    pub pages: Option<u32>,
}
