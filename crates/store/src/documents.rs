//! Imported documents, their chunks, and their summaries.
//!
//! A document is identified by the SHA-256 of its file: adding a known hash returns the
//! existing row ([`AddedDocument::already_known`]), so its chunks and summaries are reused.
//! Chunks are numbered by `ordinal` from 0 within a document.
//!
//! A summary is built in parts: level 0 parts summarize chunks, a part of level n > 0
//! combines parts of level n - 1. Each part records the chunks it came from, so the UI can
//! point from a sentence of the summary to the pages it rests on, and a rerun can resume from
//! the parts already stored ([`Store::summary_parts`]).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::columns::{get_enum, opt_u32, opt_u64, req_u32, u64_to_sql};
use crate::error::{Result, StoreError};
use crate::ids::{ChunkId, DocumentId, SummaryId, SummaryPartId};
use crate::sampling::Sampling;
use crate::status::{Outcome, TaskStatus};
use crate::store::Store;

/// A document to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewDocument {
    /// Lowercase hex SHA-256 of the original file.
    pub sha256: String,
    pub original_path: String,
    /// Name to show (usually the file name).
    pub name: String,
    /// Kind of file (`pdf`, `docx`, `html`, `markdown`, `text`, or a MIME type).
    pub media_type: String,
    pub pages: Option<u32>,
    pub extracted_text: String,
}

/// A stored document (without its text; see [`Store::document_text`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub id: DocumentId,
    pub sha256: String,
    pub original_path: String,
    pub name: String,
    pub media_type: String,
    pub pages: Option<u32>,
    /// Length of the extracted text in bytes.
    pub text_bytes: u64,
    /// Milliseconds since the Unix epoch.
    pub added_at: i64,
}

/// Result of [`Store::add_document`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedDocument {
    pub document: Document,
    /// A document with the same hash was already stored; it was returned unchanged.
    pub already_known: bool,
}

/// A chunk to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewChunk {
    pub ordinal: u32,
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    /// Heading of the section the chunk is in, if known.
    pub section: Option<String>,
    /// Byte range of the chunk in the document's extracted text, if known.
    pub text_start: Option<u64>,
    pub text_end: Option<u64>,
    pub text: String,
    /// Length in tokens of the model it was measured with.
    pub token_count: u32,
}

/// A stored chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chunk {
    pub id: ChunkId,
    pub document_id: DocumentId,
    pub ordinal: u32,
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    pub section: Option<String>,
    pub text_start: Option<u64>,
    pub text_end: Option<u64>,
    pub text: String,
    pub token_count: u32,
}

/// A summary to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSummary {
    pub document_id: DocumentId,
    pub model_id: String,
    /// What the user asked for (length, style), if anything.
    pub instructions: Option<String>,
    #[serde(default)]
    pub sampling: Sampling,
}

/// A stored summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub id: SummaryId,
    pub document_id: DocumentId,
    pub model_id: String,
    pub instructions: Option<String>,
    pub sampling: Sampling,
    pub status: TaskStatus,
    /// The final summary (set by [`Store::finish_summary`]).
    pub text: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A partial summary to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSummaryPart {
    /// 0 for a summary of chunks; n > 0 for a combination of level n - 1 parts.
    pub level: u32,
    /// Position within the level, from 0.
    pub ordinal: u32,
    pub text: String,
    /// The chunks this part came from (all chunks below it, for level > 0).
    pub chunk_ids: Vec<ChunkId>,
}

/// A stored partial summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryPart {
    pub id: SummaryPartId,
    pub summary_id: SummaryId,
    pub level: u32,
    pub ordinal: u32,
    pub text: String,
    /// In ascending id order.
    pub chunk_ids: Vec<ChunkId>,
    pub created_at: i64,
}

const DOCUMENT_COLUMNS: &str = "id, sha256, original_path, name, media_type, pages, \
    length(CAST(extracted_text AS BLOB)) AS text_bytes, added_at";

fn document_from_row(row: &Row<'_>) -> rusqlite::Result<Document> {
    Ok(Document {
        id: row.get("id")?,
        sha256: row.get("sha256")?,
        original_path: row.get("original_path")?,
        name: row.get("name")?,
        media_type: row.get("media_type")?,
        pages: opt_u32(row, "pages")?,
        text_bytes: opt_u64(row, "text_bytes")?.unwrap_or(0),
        added_at: row.get("added_at")?,
    })
}

const CHUNK_COLUMNS: &str = "id, document_id, ordinal, page_start, page_end, section, \
    text_start, text_end, text, token_count";

fn chunk_from_row(row: &Row<'_>) -> rusqlite::Result<Chunk> {
    Ok(Chunk {
        id: row.get("id")?,
        document_id: row.get("document_id")?,
        ordinal: req_u32(row, "ordinal")?,
        page_start: opt_u32(row, "page_start")?,
        page_end: opt_u32(row, "page_end")?,
        section: row.get("section")?,
        text_start: opt_u64(row, "text_start")?,
        text_end: opt_u64(row, "text_end")?,
        text: row.get("text")?,
        token_count: req_u32(row, "token_count")?,
    })
}

const SUMMARY_COLUMNS: &str = "id, document_id, model_id, instructions, temperature, top_p, \
    top_k, min_p, repeat_penalty, repeat_last_n, seed, max_tokens, status, text, error, \
    created_at, updated_at";

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<Summary> {
    Ok(Summary {
        id: row.get("id")?,
        document_id: row.get("document_id")?,
        model_id: row.get("model_id")?,
        instructions: row.get("instructions")?,
        sampling: Sampling::from_row(row)?,
        status: get_enum(row, "status")?,
        text: row.get("text")?,
        error: row.get("error")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn get_document(conn: &Connection, id: DocumentId) -> Result<Document> {
    conn.query_row(
        &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1"),
        [id],
        document_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::not_found("document", id))
}

fn get_summary(conn: &Connection, id: SummaryId) -> Result<Summary> {
    conn.query_row(
        &format!("SELECT {SUMMARY_COLUMNS} FROM summaries WHERE id = ?1"),
        [id],
        summary_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::not_found("summary", id))
}

fn part_chunk_ids(conn: &Connection, part: SummaryPartId) -> Result<Vec<ChunkId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT chunk_id FROM summary_part_chunks WHERE part_id = ?1 ORDER BY chunk_id",
    )?;
    let ids = stmt
        .query_map([part], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<ChunkId>>>()?;
    Ok(ids)
}

fn opt_u64_sql(value: Option<u64>, what: &str) -> Result<Option<i64>> {
    value.map(|v| u64_to_sql(v, what)).transpose()
}

impl Store {
    /// Stores a document, or returns the stored one with the same SHA-256.
    pub fn add_document(&self, new: &NewDocument) -> Result<AddedDocument> {
        self.write(|tx| {
            let existing: Option<DocumentId> = tx
                .query_row(
                    "SELECT id FROM documents WHERE sha256 = ?1",
                    [&new.sha256],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = existing {
                return Ok(AddedDocument {
                    document: get_document(tx, id)?,
                    already_known: true,
                });
            }
            tx.execute(
                "INSERT INTO documents (sha256, original_path, name, media_type, pages, \
                 extracted_text, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    new.sha256,
                    new.original_path,
                    new.name,
                    new.media_type,
                    new.pages,
                    new.extracted_text,
                    now_ms()
                ],
            )?;
            Ok(AddedDocument {
                document: get_document(tx, DocumentId(tx.last_insert_rowid()))?,
                already_known: false,
            })
        })
    }

    /// One document.
    pub fn document(&self, id: DocumentId) -> Result<Document> {
        self.read(|conn| get_document(conn, id))
    }

    /// The document with this SHA-256, if stored.
    pub fn document_by_sha256(&self, sha256: &str) -> Result<Option<Document>> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE sha256 = ?1"),
                    [sha256],
                    document_from_row,
                )
                .optional()?)
        })
    }

    /// A document's extracted text.
    pub fn document_text(&self, id: DocumentId) -> Result<String> {
        self.read(|conn| {
            conn.query_row(
                "SELECT extracted_text FROM documents WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::not_found("document", id))
        })
    }

    /// All documents, newest first.
    pub fn list_documents(&self) -> Result<Vec<Document>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents ORDER BY added_at DESC, id DESC"
            ))?;
            let rows = stmt.query_map([], document_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Deletes a document with its chunks and summaries. Translations made from it keep their
    /// text and lose the link.
    pub fn delete_document(&self, id: DocumentId) -> Result<()> {
        self.write(|tx| {
            if tx.execute("DELETE FROM documents WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::not_found("document", id));
            }
            Ok(())
        })
    }

    /// Adds chunks to a document, all or none. Fails if an ordinal is already used.
    pub fn add_chunks(&self, document: DocumentId, chunks: &[NewChunk]) -> Result<Vec<ChunkId>> {
        self.write(|tx| {
            get_document(tx, document)?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO chunks (document_id, ordinal, page_start, page_end, section, \
                 text_start, text_end, text, token_count) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut ids = Vec::with_capacity(chunks.len());
            for c in chunks {
                stmt.execute(params![
                    document,
                    c.ordinal,
                    c.page_start,
                    c.page_end,
                    c.section,
                    opt_u64_sql(c.text_start, "chunk start")?,
                    opt_u64_sql(c.text_end, "chunk end")?,
                    c.text,
                    c.token_count
                ])?;
                ids.push(ChunkId(tx.last_insert_rowid()));
            }
            Ok(ids)
        })
    }

    /// A document's chunks, by ordinal.
    pub fn chunks(&self, document: DocumentId) -> Result<Vec<Chunk>> {
        self.read(|conn| {
            get_document(conn, document)?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CHUNK_COLUMNS} FROM chunks WHERE document_id = ?1 ORDER BY ordinal"
            ))?;
            let rows = stmt.query_map([document], chunk_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// One chunk.
    pub fn chunk(&self, id: ChunkId) -> Result<Chunk> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {CHUNK_COLUMNS} FROM chunks WHERE id = ?1"),
                [id],
                chunk_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::not_found("chunk", id))
        })
    }

    /// Starts a summary (status `Running`).
    pub fn create_summary(&self, new: &NewSummary) -> Result<Summary> {
        let now = now_ms();
        let s = &new.sampling;
        self.write(|tx| {
            get_document(tx, new.document_id)?;
            tx.execute(
                "INSERT INTO summaries (document_id, model_id, instructions, temperature, top_p, \
                 top_k, min_p, repeat_penalty, repeat_last_n, seed, max_tokens, status, \
                 created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'running', ?12, ?12)",
                params![
                    new.document_id,
                    new.model_id,
                    new.instructions,
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
            get_summary(tx, SummaryId(tx.last_insert_rowid()))
        })
    }

    /// One summary.
    pub fn summary(&self, id: SummaryId) -> Result<Summary> {
        self.read(|conn| get_summary(conn, id))
    }

    /// A document's summaries, oldest first.
    pub fn summaries(&self, document: DocumentId) -> Result<Vec<Summary>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM summaries WHERE document_id = ?1 ORDER BY id"
            ))?;
            let rows = stmt.query_map([document], summary_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Stores a partial summary and the chunks it came from, replacing a part stored before
    /// at the same level and ordinal. The chunks must belong to the summary's document.
    pub fn add_summary_part(
        &self,
        summary: SummaryId,
        part: &NewSummaryPart,
    ) -> Result<SummaryPart> {
        self.write(|tx| {
            let s = get_summary(tx, summary)?;
            for chunk in &part.chunk_ids {
                let doc: Option<DocumentId> = tx
                    .query_row(
                        "SELECT document_id FROM chunks WHERE id = ?1",
                        [chunk],
                        |r| r.get(0),
                    )
                    .optional()?;
                match doc {
                    None => return Err(StoreError::not_found("chunk", chunk)),
                    Some(d) if d != s.document_id => {
                        return Err(StoreError::InvalidValue(format!(
                            "chunk {chunk} belongs to document {d}, not to document {} of \
                             summary {summary}",
                            s.document_id
                        )))
                    }
                    Some(_) => {}
                }
            }
            tx.execute(
                "DELETE FROM summary_parts WHERE summary_id = ?1 AND level = ?2 AND ordinal = ?3",
                params![summary, part.level, part.ordinal],
            )?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO summary_parts (summary_id, level, ordinal, text, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![summary, part.level, part.ordinal, part.text, now],
            )?;
            let id = SummaryPartId(tx.last_insert_rowid());
            let mut link = tx.prepare_cached(
                "INSERT OR IGNORE INTO summary_part_chunks (part_id, chunk_id) VALUES (?1, ?2)",
            )?;
            for chunk in &part.chunk_ids {
                link.execute(params![id, chunk])?;
            }
            tx.execute(
                "UPDATE summaries SET updated_at = ?2 WHERE id = ?1",
                params![summary, now],
            )?;
            Ok(SummaryPart {
                id,
                summary_id: summary,
                level: part.level,
                ordinal: part.ordinal,
                text: part.text.clone(),
                chunk_ids: part_chunk_ids(tx, id)?,
                created_at: now,
            })
        })
    }

    /// A summary's parts, by level then ordinal.
    pub fn summary_parts(&self, summary: SummaryId) -> Result<Vec<SummaryPart>> {
        self.read(|conn| {
            get_summary(conn, summary)?;
            let mut stmt = conn.prepare_cached(
                "SELECT id, summary_id, level, ordinal, text, created_at FROM summary_parts \
                 WHERE summary_id = ?1 ORDER BY level, ordinal",
            )?;
            let parts = stmt
                .query_map([summary], |r| {
                    Ok(SummaryPart {
                        id: r.get("id")?,
                        summary_id: r.get("summary_id")?,
                        level: req_u32(r, "level")?,
                        ordinal: req_u32(r, "ordinal")?,
                        text: r.get("text")?,
                        chunk_ids: Vec::new(),
                        created_at: r.get("created_at")?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            parts
                .into_iter()
                .map(|mut p| {
                    p.chunk_ids = part_chunk_ids(conn, p.id)?;
                    Ok(p)
                })
                .collect()
        })
    }

    /// Ends a summary with its final text (may be partial for `Cancelled`/`Failed`).
    pub fn finish_summary(&self, id: SummaryId, text: &str, outcome: Outcome) -> Result<Summary> {
        let (status, error) = outcome.split();
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE summaries SET status = ?2, text = ?3, error = ?4, updated_at = ?5 \
                 WHERE id = ?1",
                params![id, status, text, error, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::not_found("summary", id));
            }
            get_summary(tx, id)
        })
    }

    /// Deletes a summary and its parts.
    pub fn delete_summary(&self, id: SummaryId) -> Result<()> {
        self.write(|tx| {
            if tx.execute("DELETE FROM summaries WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::not_found("summary", id));
            }
            Ok(())
        })
    }
}
