//! Passage retrieval for questions about a document, and reopening a summary to resume it.
//!
//! [`Store::rank_chunks`] is the keyword half of question answering: a chunk matches when it
//! contains ANY of the terms (unlike [`Store::search_chunks`], where every term must be
//! present), ranked by FTS5's BM25, best first. Terms shorter than three characters cannot be
//! looked up in the trigram index and are ignored here; a query with no usable term returns no
//! chunks. Nothing in a term is query syntax: each is searched for as a quoted string.
//!
//! [`Store::reopen_summary`] puts a cancelled, failed or interrupted summary back into the
//! `running` state (its parts are kept), so its owner can carry on from them.

use rusqlite::params_from_iter;
use rusqlite::types::Value;

use crate::error::{Result, StoreError};
use crate::ids::{ChunkId, DocumentId, SummaryId};
use crate::store::Store;

/// A chunk and its BM25 relevance (higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedChunk {
    pub chunk_id: ChunkId,
    pub score: f64,
}

fn quoted(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

impl Store {
    /// Chunks of `document` containing any of `terms`, best first (BM25), at most `limit`.
    pub fn rank_chunks(
        &self,
        document: DocumentId,
        terms: &[String],
        limit: u32,
    ) -> Result<Vec<RankedChunk>> {
        let mut usable: Vec<String> = terms
            .iter()
            .map(|t| t.trim().replace('"', ""))
            .filter(|t| t.chars().count() >= 3)
            .collect();
        usable.sort();
        usable.dedup();
        if usable.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let expr = usable
            .iter()
            .map(|t| quoted(t))
            .collect::<Vec<_>>()
            .join(" OR ");
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT c.id, -bm25(chunks_fts) AS score FROM chunks_fts \
                 JOIN chunks c ON c.id = chunks_fts.rowid \
                 WHERE chunks_fts MATCH ?1 AND c.document_id = ?2 \
                 ORDER BY bm25(chunks_fts), c.ordinal LIMIT ?3",
            )?;
            let values = vec![
                Value::Text(expr),
                Value::Integer(document.0),
                Value::Integer(i64::from(limit)),
            ];
            let rows = stmt.query_map(params_from_iter(values), |r| {
                Ok(RankedChunk {
                    chunk_id: r.get(0)?,
                    score: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Marks a summary as running again, clearing its error; its parts stay.
    pub fn reopen_summary(&self, id: SummaryId) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE summaries SET status = 'running', error = NULL, updated_at = ?2 \
                 WHERE id = ?1",
                rusqlite::params![id, crate::clock::now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::not_found("summary", id));
            }
            Ok(())
        })
    }
}
