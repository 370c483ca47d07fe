//! Translations and glossaries.
//!
//! A translation records its source (text, and the document it came from if any), the
//! language pair, the model and settings, and the result. Languages are BCP 47 tags as the
//! caller spells them (`en`, `zh-Hans`, ...); the store compares them exactly.
//!
//! A glossary is the set of entries for one (source, target) language pair: a term and how it
//! must be translated. A source term is unique within its pair; setting it again replaces it.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::columns::get_enum;
use crate::error::{Result, StoreError};
use crate::ids::{DocumentId, GlossaryEntryId, TranslationId};
use crate::sampling::Sampling;
use crate::status::{Outcome, TaskStatus};
use crate::store::Store;

/// A translation to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTranslation {
    pub source_text: String,
    pub document_id: Option<DocumentId>,
    pub source_lang: String,
    pub target_lang: String,
    pub model_id: Option<String>,
    #[serde(default)]
    pub sampling: Sampling,
}

/// A stored translation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Translation {
    pub id: TranslationId,
    pub source_text: String,
    /// `None` if typed in, or if the document was deleted since.
    pub document_id: Option<DocumentId>,
    pub source_lang: String,
    pub target_lang: String,
    pub model_id: Option<String>,
    pub sampling: Sampling,
    pub status: TaskStatus,
    pub result_text: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A glossary entry to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewGlossaryEntry {
    pub source_lang: String,
    pub target_lang: String,
    pub source_term: String,
    pub target_term: String,
    pub note: Option<String>,
}

/// A stored glossary entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlossaryEntry {
    pub id: GlossaryEntryId,
    pub source_lang: String,
    pub target_lang: String,
    pub source_term: String,
    pub target_term: String,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const TRANSLATION_COLUMNS: &str = "id, source_text, document_id, source_lang, target_lang, \
    model_id, temperature, top_p, top_k, min_p, repeat_penalty, repeat_last_n, seed, \
    max_tokens, status, result_text, error, created_at, updated_at";

fn translation_from_row(row: &Row<'_>) -> rusqlite::Result<Translation> {
    Ok(Translation {
        id: row.get("id")?,
        source_text: row.get("source_text")?,
        document_id: row.get("document_id")?,
        source_lang: row.get("source_lang")?,
        target_lang: row.get("target_lang")?,
        model_id: row.get("model_id")?,
        sampling: Sampling::from_row(row)?,
        status: get_enum(row, "status")?,
        result_text: row.get("result_text")?,
        error: row.get("error")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

const GLOSSARY_COLUMNS: &str =
    "id, source_lang, target_lang, source_term, target_term, note, created_at, updated_at";

fn glossary_from_row(row: &Row<'_>) -> rusqlite::Result<GlossaryEntry> {
    Ok(GlossaryEntry {
        id: row.get("id")?,
        source_lang: row.get("source_lang")?,
        target_lang: row.get("target_lang")?,
        source_term: row.get("source_term")?,
        target_term: row.get("target_term")?,
        note: row.get("note")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn get_translation(conn: &Connection, id: TranslationId) -> Result<Translation> {
    conn.query_row(
        &format!("SELECT {TRANSLATION_COLUMNS} FROM translations WHERE id = ?1"),
        [id],
        translation_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::not_found("translation", id))
}

impl Store {
    /// Starts a translation (status `Running`).
    pub fn create_translation(&self, new: &NewTranslation) -> Result<Translation> {
        let now = now_ms();
        let s = &new.sampling;
        self.write(|tx| {
            if let Some(doc) = new.document_id {
                let known: Option<i64> = tx
                    .query_row("SELECT 1 FROM documents WHERE id = ?1", [doc], |r| r.get(0))
                    .optional()?;
                if known.is_none() {
                    return Err(StoreError::not_found("document", doc));
                }
            }
            tx.execute(
                "INSERT INTO translations (source_text, document_id, source_lang, target_lang, \
                 model_id, temperature, top_p, top_k, min_p, repeat_penalty, repeat_last_n, \
                 seed, max_tokens, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, \
                 ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'running', ?14, ?14)",
                params![
                    new.source_text,
                    new.document_id,
                    new.source_lang,
                    new.target_lang,
                    new.model_id,
                    s.temperature,
                    s.top_p,
                    s.top_k,
                    s.min_p,
                    s.repeat_penalty,
                    s.repeat_last_n,
                    s.seed_sql(),
                    s.max_tokens,
                    now
                ],
            )?;
            get_translation(tx, TranslationId(tx.last_insert_rowid()))
        })
    }

    /// Ends a translation with its result (may be partial for `Cancelled`/`Failed`).
    pub fn finish_translation(
        &self,
        id: TranslationId,
        result_text: &str,
        outcome: Outcome,
    ) -> Result<Translation> {
        let (status, error) = outcome.split();
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE translations SET status = ?2, result_text = ?3, error = ?4, \
                 updated_at = ?5 WHERE id = ?1",
                params![id, status, result_text, error, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::not_found("translation", id));
            }
            get_translation(tx, id)
        })
    }

    /// One translation.
    pub fn translation(&self, id: TranslationId) -> Result<Translation> {
        self.read(|conn| get_translation(conn, id))
    }

    /// Translations, newest first: at most `limit`, older than `before` if given (for paging).
    pub fn list_translations(
        &self,
        limit: u32,
        before: Option<TranslationId>,
    ) -> Result<Vec<Translation>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TRANSLATION_COLUMNS} FROM translations \
                 WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![before, limit], translation_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Deletes a translation.
    pub fn delete_translation(&self, id: TranslationId) -> Result<()> {
        self.write(|tx| {
            if tx.execute("DELETE FROM translations WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::not_found("translation", id));
            }
            Ok(())
        })
    }

    /// Adds a glossary entry, or replaces the entry with the same pair and source term.
    pub fn set_glossary_entry(&self, entry: &NewGlossaryEntry) -> Result<GlossaryEntry> {
        let now = now_ms();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO glossary_entries (source_lang, target_lang, source_term, \
                 target_term, note, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
                 ON CONFLICT(source_lang, target_lang, source_term) DO UPDATE SET \
                 target_term = excluded.target_term, note = excluded.note, \
                 updated_at = excluded.updated_at",
                params![
                    entry.source_lang,
                    entry.target_lang,
                    entry.source_term,
                    entry.target_term,
                    entry.note,
                    now
                ],
            )?;
            Ok(tx.query_row(
                &format!(
                    "SELECT {GLOSSARY_COLUMNS} FROM glossary_entries \
                     WHERE source_lang = ?1 AND target_lang = ?2 AND source_term = ?3"
                ),
                params![entry.source_lang, entry.target_lang, entry.source_term],
                glossary_from_row,
            )?)
        })
    }

    /// The glossary of a language pair, sorted by source term.
    pub fn glossary(&self, source_lang: &str, target_lang: &str) -> Result<Vec<GlossaryEntry>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {GLOSSARY_COLUMNS} FROM glossary_entries \
                 WHERE source_lang = ?1 AND target_lang = ?2 ORDER BY source_term, id"
            ))?;
            let rows = stmt.query_map(params![source_lang, target_lang], glossary_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Deletes a glossary entry.
    pub fn delete_glossary_entry(&self, id: GlossaryEntryId) -> Result<()> {
        self.write(|tx| {
            if tx.execute("DELETE FROM glossary_entries WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::not_found("glossary entry", id));
            }
            Ok(())
        })
    }
}
