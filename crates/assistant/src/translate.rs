//! Translation: text or a document from one language into another with a local model, as
//! convenient as an online translator.
//!
//! A translation ([`Assistant::translate`]) detects the source language unless it is given,
//! picks the installed model that handles the pair best (or takes the one asked for), splits the
//! text into blocks (Markdown structure kept: headings, lists, quotes; code copied untouched) and
//! the blocks into pieces that fit the model's context, and translates the pieces in order, each
//! with the previous piece and its translation as context. The glossary of the language pair
//! (stored, plus any terms given with the request) goes into the prompt and is checked in the
//! result: terms whose prescribed translation did not come out are reported.
//!
//! Contract:
//! - `translate` returns at once with the job id and the translation's id in the store; the work
//!   runs on a thread of its own and on the engine thread, and reports to a [`TranslateSink`]:
//!   `started`, then per block `progress` (block i of n), `delta` (text as the model writes it)
//!   and `segment` (the block's final text), then exactly one of `done` or `failed`.
//! - [`Assistant::cancel`] with the job id stops it within one token; what was translated so far
//!   is kept (status `cancelled`).
//! - Every translation is stored (the store's `translations` table) when it starts and updated
//!   when it ends; [`Assistant::translations`] lists them, [`Assistant::search_translations`]
//!   searches them, [`Assistant::export_translation`] writes one as Markdown or text.
//! - Source block i and result block i are counterparts: [`AlignedSegment`] gives both ranges
//!   (in UTF-16 code units, as JavaScript indexes strings) so a view can highlight one when the
//!   other is hovered.
//!
//! Submodules: [`lang`] (languages, detection), [`segment`] (blocks, sentences, pieces),
//! [`prompt`] (per-family prompts, cleaning), [`glossary`], [`selection`] (model choice),
//! [`export`], [`chrf`] (quality score), [`gettext`] (reading `.mo` catalogs).

pub mod chrf;
pub mod export;
pub mod gettext;
pub mod glossary;
mod job;
pub mod lang;
pub mod prompt;
pub mod segment;
pub mod selection;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hearth_store::{GlossaryEntryId, NewGlossaryEntry, NewTranslation, TranslationId};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, Result};
use crate::{lock, Assistant};

pub use export::ExportFormat;
pub use glossary::{GlossaryIssue, GlossaryTerm};
pub use lang::{detect, Detection, Language};
pub use prompt::ModelFamily;
pub use segment::{BlockKind, TextFormat};
pub use selection::{ModelChoice, ModelProfile};

/// Where translation events go (a UI channel, the CLI, a test's collector).
pub type TranslateSink = Box<dyn Fn(TranslateEvent) + Send + Sync>;

/// Tokens of source text per request when the request does not say.
pub const DEFAULT_PIECE_TOKENS: u32 = 200;

/// Largest document read, in bytes.
pub const MAX_DOCUMENT_BYTES: u64 = 8 << 20;

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslateRequest {
    /// The text to translate. Exactly one of `text` and `document_path` is given.
    #[serde(default)]
    pub text: Option<String>,
    /// A document to translate (Markdown or plain text).
    #[serde(default)]
    pub document_path: Option<PathBuf>,
    /// The source language (a code such as `en`); None: detected from the text.
    #[serde(default)]
    pub source_lang: Option<String>,
    pub target_lang: String,
    /// An installed model's id or a GGUF file's path; None: the best installed model for the
    /// pair.
    #[serde(default)]
    pub model: Option<String>,
    /// How to read the text; None: from the document's extension, else from its content.
    #[serde(default)]
    pub format: Option<TextFormat>,
    /// Terms for this translation, on top of (and before) the stored glossary of the pair.
    #[serde(default)]
    pub glossary: Vec<GlossaryTerm>,
    /// Whether the stored glossary of the pair applies.
    #[serde(default = "yes")]
    pub use_stored_glossary: bool,
    /// Source tokens per request at most (default [`DEFAULT_PIECE_TOKENS`]).
    #[serde(default)]
    pub max_piece_tokens: Option<u32>,
    /// Tokens the model may write per request (default: from the piece's length).
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
}

/// What [`Assistant::translate`] returns at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslationStarted {
    pub job_id: u64,
    pub translation_id: i64,
    pub source_lang: Language,
    /// Set when the source language was detected rather than given.
    pub detected: Option<Detection>,
    pub target_lang: Language,
    pub model: ModelChoice,
    pub format: TextFormat,
    /// The source's blocks, in order.
    pub segments: Vec<SourceSegment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceSegment {
    pub index: usize,
    pub kind: BlockKind,
    /// False for blocks copied as they are (code, tables, ...).
    pub translate: bool,
    /// [start, end) in the source, in UTF-16 code units.
    pub range: [usize; 2],
}

/// One block of the source and its counterpart in the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlignedSegment {
    pub index: usize,
    pub kind: BlockKind,
    pub translated: bool,
    /// [start, end) in UTF-16 code units of the source text.
    pub source_range: [usize; 2],
    /// [start, end) in UTF-16 code units of the result text.
    pub target_range: [usize; 2],
    pub source_text: String,
    pub target_text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslationStats {
    /// Requests sent to the model (pieces, and glossary retries).
    pub requests: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslationResult {
    pub translation_id: i64,
    pub source_lang: Language,
    pub target_lang: Language,
    /// The model's id (installed id or path) and name.
    pub model_id: String,
    pub model_name: String,
    pub format: TextFormat,
    /// The translated text (for a cancelled or failed translation, the part that was done).
    pub text: String,
    pub segments: Vec<AlignedSegment>,
    pub glossary_issues: Vec<GlossaryIssue>,
    /// Inline code spans (`` `x` ``) of the source that the model lost and could not be put
    /// back, per block.
    pub lost_code: Vec<usize>,
    /// Blocks whose translation came back in the source language even after a second request
    /// that named the target language again (the model could not or would not translate them).
    #[serde(default)]
    pub wrong_language: Vec<usize>,
    pub stats: TranslationStats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TranslateEvent {
    #[serde(rename_all = "camelCase")]
    Started {
        job_id: u64,
        translation_id: i64,
        /// Blocks to translate (the others are copied).
        total: usize,
    },
    /// Block `segment` starts: it is the `done + 1`-th of `total` to translate.
    #[serde(rename_all = "camelCase")]
    Progress {
        job_id: u64,
        segment: usize,
        done: usize,
        total: usize,
    },
    /// Text as the model writes it, for the block being translated (before cleaning).
    #[serde(rename_all = "camelCase")]
    Delta {
        job_id: u64,
        segment: usize,
        text: String,
    },
    /// The block's text so far is `text` again: a piece is being asked for once more, and what
    /// was streamed for it is dropped (the new answer's `Delta`s follow).
    #[serde(rename_all = "camelCase")]
    Rewrite {
        job_id: u64,
        segment: usize,
        text: String,
    },
    /// A block is finished. `rendered` is exactly what it adds to the result: the spacing
    /// before it and the block with its markup.
    #[serde(rename_all = "camelCase")]
    Segment {
        job_id: u64,
        segment: usize,
        translated: bool,
        text: String,
        rendered: String,
        glossary_issues: Vec<GlossaryIssue>,
    },
    #[serde(rename_all = "camelCase")]
    Done {
        job_id: u64,
        /// `done` or `cancelled`.
        status: String,
        result: TranslationResult,
    },
    #[serde(rename_all = "camelCase")]
    Failed {
        job_id: u64,
        error: AppError,
        /// What was translated before the failure.
        partial: Option<TranslationResult>,
    },
}

/// A language as the translation view lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LanguageInfo {
    pub code: String,
    pub name: String,
    pub native_name: String,
}

/// A stored translation, for the history list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslationSummary {
    pub id: i64,
    pub source_lang: String,
    pub target_lang: String,
    pub model_id: Option<String>,
    pub status: String,
    /// The first characters of the source and of the result.
    pub source_preview: String,
    pub result_preview: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored translation with its alignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslationRecord {
    pub id: i64,
    pub source_text: String,
    pub result_text: String,
    pub source_lang: String,
    pub target_lang: String,
    pub model_id: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub format: TextFormat,
    /// Block counterparts, found again from both texts; empty when the result's structure no
    /// longer matches the source's (a result cut short, a block the model broke up).
    pub segments: Vec<AlignedSegment>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlossaryItem {
    pub id: i64,
    pub source_lang: String,
    pub target_lang: String,
    pub term: String,
    pub translation: String,
    pub note: Option<String>,
}

pub(crate) fn utf16_range(text: &str, r: &Range<usize>) -> [usize; 2] {
    let start = text.get(..r.start).map_or(0, |s| s.encode_utf16().count());
    let len = text.get(r.clone()).map_or(0, |s| s.encode_utf16().count());
    [start, start + len]
}

/// Pairs source block i with result block i: ranges and texts.
pub(crate) fn align(
    source: &segment::Segmented,
    target_text: &str,
    target_ranges: &[Range<usize>],
    translated: &[bool],
) -> Vec<AlignedSegment> {
    source
        .blocks
        .iter()
        .zip(target_ranges)
        .enumerate()
        .map(|(i, (b, t))| AlignedSegment {
            index: i,
            kind: b.kind,
            translated: translated.get(i).copied().unwrap_or(false),
            source_range: utf16_range(&source.source, &b.range),
            target_range: utf16_range(target_text, t),
            source_text: source.block_source(i).to_string(),
            target_text: target_text.get(t.clone()).unwrap_or("").to_string(),
        })
        .collect()
}

fn preview(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut p: String = one_line.chars().take(120).collect();
    if one_line.chars().count() > 120 {
        p.push('…');
    }
    p
}

fn status_name(s: hearth_store::TaskStatus) -> String {
    format!("{s:?}").to_lowercase()
}

fn parse_language(code: &str, what: &str) -> Result<Language> {
    Language::parse(code).ok_or_else(|| {
        AppError::new(
            "translate.unsupported_language",
            format!(
                "{what} language '{code}' is not one Hearth translates. Choose one of: {}.",
                Language::ALL
                    .iter()
                    .map(|l| l.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// Reads a document to translate: Markdown and plain-text files.
fn read_document(path: &Path) -> Result<(String, Option<TextFormat>)> {
    let meta = std::fs::metadata(path).map_err(|e| {
        AppError::new(
            "translate.document_unreadable",
            format!("Cannot open {}: {e}", path.display()),
        )
    })?;
    if meta.len() > MAX_DOCUMENT_BYTES {
        return Err(AppError::new(
            "translate.document_too_large",
            format!(
                "{} is {} MB; documents up to {} MB can be translated.",
                path.display(),
                meta.len() >> 20,
                MAX_DOCUMENT_BYTES >> 20
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        AppError::new(
            "translate.document_unreadable",
            format!("Cannot read {}: {e}", path.display()),
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        AppError::new(
            "translate.unsupported_document",
            format!(
                "{} is not a text file. Markdown and plain-text documents can be translated.",
                path.display()
            ),
        )
    })?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let format = match ext.as_str() {
        "md" | "markdown" | "mdown" | "mkd" => Some(TextFormat::Markdown),
        "txt" | "text" => Some(TextFormat::Plain),
        _ => None,
    };
    Ok((text.trim_start_matches('\u{feff}').to_string(), format))
}

impl Assistant {
    /// The languages translation offers.
    pub fn translation_languages(&self) -> Vec<LanguageInfo> {
        Language::ALL
            .iter()
            .map(|l| LanguageInfo {
                code: l.code().into(),
                name: l.english_name().into(),
                native_name: l.native_name().into(),
            })
            .collect()
    }

    /// The language of a text (None when it has no letters).
    pub fn detect_language(&self, text: &str) -> Option<Detection> {
        detect(text)
    }

    /// Every installed model that can run, described for translation.
    pub fn translation_model_profiles(&self) -> Result<Vec<ModelProfile>> {
        Ok(self
            .store()
            .list_models()?
            .into_iter()
            .filter(|m| Path::new(&m.path).is_file())
            .filter_map(|m| selection::describe(&m.id, Path::new(&m.path)).ok())
            .collect())
    }

    /// The model a translation between these languages would use, and why.
    pub fn translation_model(&self, source: &str, target: &str) -> Result<ModelChoice> {
        let s = parse_language(source, "The source")?;
        let t = parse_language(target, "The target")?;
        let default = crate::models::default_model_id(self.store())?;
        selection::choose(
            &self.translation_model_profiles()?,
            s,
            t,
            default.as_deref(),
        )
        .ok_or_else(|| {
            AppError::new(
                "models.none",
                "No model is installed yet. Add a model file in Models first.",
            )
        })
    }

    fn model_for_translation(
        &self,
        spec: Option<&str>,
        s: Language,
        t: Language,
    ) -> Result<ModelChoice> {
        let Some(spec) = spec.map(str::trim).filter(|x| !x.is_empty()) else {
            return self.translation_model(s.code(), t.code());
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
        let model = selection::describe(&id, &path)?;
        let supports_pair = model.languages.contains(&s) && model.languages.contains(&t);
        let reason = if supports_pair {
            format!(
                "{} was asked for; it handles {} and {}",
                model.name,
                s.english_name(),
                t.english_name()
            )
        } else {
            format!(
                "{} was asked for; it is not known to handle both {} and {}",
                model.name,
                s.english_name(),
                t.english_name()
            )
        };
        Ok(ModelChoice {
            model,
            supports_pair,
            reason,
        })
    }

    /// Starts a translation; see the module header for what the sink receives.
    pub fn translate(
        &self,
        req: TranslateRequest,
        sink: TranslateSink,
    ) -> Result<TranslationStarted> {
        let (text, doc_format) = match (&req.text, &req.document_path) {
            (Some(t), None) => (t.clone(), None),
            (None, Some(p)) => read_document(p)?,
            _ => {
                return Err(AppError::new(
                    "translate.invalid_request",
                    "Give either a text or a document to translate, not both.",
                ))
            }
        };
        if text.trim().is_empty() {
            return Err(AppError::new(
                "translate.empty",
                "There is nothing to translate.",
            ));
        }
        let target = parse_language(&req.target_lang, "The target")?;
        let (source, detected) = match req.source_lang.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(code) => (parse_language(code, "The source")?, None),
            None => {
                let d = detect(&text).ok_or_else(|| {
                    AppError::new(
                        "translate.undetected_language",
                        "The text has no words to tell its language by. Choose the source language.",
                    )
                })?;
                (d.language, Some(d))
            }
        };
        let choice = self.model_for_translation(req.model.as_deref(), source, target)?;
        let format = req
            .format
            .or(doc_format)
            .unwrap_or_else(|| segment::guess_format(&text));
        let doc = segment::Segmented::parse(&text, format);
        let mut glossary = req.glossary.clone();
        if req.use_stored_glossary {
            for e in self.store().glossary(source.code(), target.code())? {
                glossary.push(GlossaryTerm {
                    source: e.source_term,
                    target: e.target_term,
                });
            }
        }
        let sampling = hearth_store::Sampling {
            temperature: Some(0.0),
            max_tokens: req.max_output_tokens,
            ..Default::default()
        };
        let stored = self.store().create_translation(&NewTranslation {
            source_text: text.clone(),
            document_id: None,
            source_lang: source.code().into(),
            target_lang: target.code().into(),
            model_id: Some(choice.model.id.clone()),
            sampling,
        })?;
        let _ = self.store().touch_model(&choice.model.id);
        let segments = doc
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| SourceSegment {
                index: i,
                kind: b.kind,
                translate: b.text.is_some(),
                range: utf16_range(&text, &b.range),
            })
            .collect();
        let job_id = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let started = TranslationStarted {
            job_id,
            translation_id: stored.id.get(),
            source_lang: source,
            detected,
            target_lang: target,
            model: choice.clone(),
            format,
            segments,
        };
        let work = job::Job {
            job_id,
            translation_id: stored.id,
            doc,
            source,
            target,
            choice,
            glossary,
            max_piece_tokens: req.max_piece_tokens.unwrap_or(DEFAULT_PIECE_TOKENS).max(8) as usize,
            max_output_tokens: req.max_output_tokens.map(|n| n.max(1) as usize),
            priority: if req.document_path.is_some() {
                hearth_engine::Priority::Background
            } else {
                hearth_engine::Priority::Interactive
            },
            cancel: cancel.clone(),
        };
        lock(&self.inner.jobs).insert(job_id, cancel);
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("hearth-translate-{job_id}"))
            .spawn(move || {
                let tokenizer = crate::documents::tokenizer_for(&work.choice.model.path);
                work.run(&inner.engine, &inner.store, tokenizer, &sink);
                lock(&inner.jobs).remove(&job_id);
            });
        if let Err(e) = spawned {
            lock(&self.inner.jobs).remove(&job_id);
            let msg = format!("Cannot start the translation: {e}");
            let _ = self.store().finish_translation(
                stored.id,
                "",
                hearth_store::Outcome::Failed(msg.clone()),
            );
            return Err(AppError::new("assistant.thread", msg));
        }
        Ok(started)
    }

    /// Stored translations, newest first: at most `limit`, older than `before` if given.
    pub fn translations(&self, limit: u32, before: Option<i64>) -> Result<Vec<TranslationSummary>> {
        Ok(self
            .store()
            .list_translations(limit, before.map(TranslationId))?
            .into_iter()
            .map(|t| summary(&t))
            .collect())
    }

    /// Stored translations whose source or result contains every word of `query` (ignoring
    /// case), newest first.
    pub fn search_translations(&self, query: &str) -> Result<Vec<TranslationSummary>> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = self.store().list_translations(500, before)?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            for t in &page {
                let hay = format!(
                    "{}\n{}",
                    t.source_text.to_lowercase(),
                    t.result_text.as_deref().unwrap_or("").to_lowercase()
                );
                if words.iter().all(|w| hay.contains(w.as_str())) {
                    out.push(summary(t));
                }
            }
        }
        Ok(out)
    }

    /// One stored translation, with its block alignment.
    pub fn translation(&self, id: i64) -> Result<TranslationRecord> {
        let t = self.store().translation(TranslationId(id))?;
        let result = t.result_text.clone().unwrap_or_default();
        let format = segment::guess_format(&t.source_text);
        let src = segment::Segmented::parse(&t.source_text, format);
        let tgt = segment::Segmented::parse(&result, format);
        let same_shape = src.blocks.len() == tgt.blocks.len()
            && src
                .blocks
                .iter()
                .zip(&tgt.blocks)
                .all(|(a, b)| a.kind == b.kind);
        let segments = if same_shape {
            let ranges: Vec<Range<usize>> = tgt.blocks.iter().map(|b| b.range.clone()).collect();
            let translated: Vec<bool> = src.blocks.iter().map(|b| b.text.is_some()).collect();
            align(&src, &result, &ranges, &translated)
        } else {
            Vec::new()
        };
        Ok(TranslationRecord {
            id,
            source_text: t.source_text,
            result_text: result,
            source_lang: t.source_lang,
            target_lang: t.target_lang,
            model_id: t.model_id,
            status: status_name(t.status),
            error: t.error,
            format,
            segments,
            created_at: t.created_at,
            updated_at: t.updated_at,
        })
    }

    pub fn delete_translation(&self, id: i64) -> Result<()> {
        Ok(self.store().delete_translation(TranslationId(id))?)
    }

    /// A stored translation's result as Markdown or plain text.
    pub fn export_translation(&self, id: i64, format: ExportFormat) -> Result<String> {
        let t = self.store().translation(TranslationId(id))?;
        let result = t.result_text.unwrap_or_default();
        Ok(export::export(
            &result,
            segment::guess_format(&t.source_text),
            format,
        ))
    }

    /// Writes [`Assistant::export_translation`] to a file.
    pub fn export_translation_to(&self, id: i64, format: ExportFormat, path: &Path) -> Result<()> {
        let text = self.export_translation(id, format)?;
        std::fs::write(path, text).map_err(|e| {
            AppError::new(
                "translate.export_failed",
                format!("Cannot write {}: {e}", path.display()),
            )
        })
    }

    // ---- glossary ----

    /// The stored glossary of a language pair, sorted by term.
    pub fn glossary(&self, source: &str, target: &str) -> Result<Vec<GlossaryItem>> {
        let s = parse_language(source, "The source")?;
        let t = parse_language(target, "The target")?;
        Ok(self
            .store()
            .glossary(s.code(), t.code())?
            .into_iter()
            .map(|e| GlossaryItem {
                id: e.id.get(),
                source_lang: e.source_lang,
                target_lang: e.target_lang,
                term: e.source_term,
                translation: e.target_term,
                note: e.note,
            })
            .collect())
    }

    /// Adds a term to a pair's glossary, or changes its translation.
    pub fn set_glossary_term(
        &self,
        source: &str,
        target: &str,
        term: &str,
        translation: &str,
        note: Option<String>,
    ) -> Result<GlossaryItem> {
        let s = parse_language(source, "The source")?;
        let t = parse_language(target, "The target")?;
        let (term, translation) = (term.trim(), translation.trim());
        if term.is_empty() || translation.is_empty() {
            return Err(AppError::new(
                "translate.invalid_glossary",
                "A glossary entry needs a term and its translation.",
            ));
        }
        let e = self.store().set_glossary_entry(&NewGlossaryEntry {
            source_lang: s.code().into(),
            target_lang: t.code().into(),
            source_term: term.into(),
            target_term: translation.into(),
            note,
        })?;
        Ok(GlossaryItem {
            id: e.id.get(),
            source_lang: e.source_lang,
            target_lang: e.target_lang,
            term: e.source_term,
            translation: e.target_term,
            note: e.note,
        })
    }

    pub fn delete_glossary_term(&self, id: i64) -> Result<()> {
        Ok(self.store().delete_glossary_entry(GlossaryEntryId(id))?)
    }

    /// Adds every entry of a glossary file (see [`glossary::parse_glossary`]; `.mo` catalogs
    /// too) to a pair's glossary. Returns how many were added or changed.
    pub fn import_glossary(&self, source: &str, target: &str, path: &Path) -> Result<usize> {
        let terms = read_glossary_file(path)?;
        for t in &terms {
            self.set_glossary_term(source, target, &t.source, &t.target, None)?;
        }
        Ok(terms.len())
    }
}

/// Reads a glossary file: `term = translation` lines, or a gettext `.mo` catalog.
pub fn read_glossary_file(path: &Path) -> Result<Vec<GlossaryTerm>> {
    let bad = |m: String| AppError::new("translate.invalid_glossary", m);
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mo"))
    {
        let c =
            gettext::MoCatalog::open(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        return Ok(glossary::from_catalog(&c, 4));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("Cannot read the glossary {}: {e}", path.display())))?;
    glossary::parse_glossary(&text).map_err(|e| bad(format!("{}: {e}", path.display())))
}

fn summary(t: &hearth_store::Translation) -> TranslationSummary {
    TranslationSummary {
        id: t.id.get(),
        source_lang: t.source_lang.clone(),
        target_lang: t.target_lang.clone(),
        model_id: t.model_id.clone(),
        status: status_name(t.status),
        source_preview: preview(&t.source_text),
        result_preview: preview(t.result_text.as_deref().unwrap_or("")),
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}
