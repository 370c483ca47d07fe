//! Sentence embeddings of document chunks, the semantic half of question answering.
//!
//! Each chunk may have one or more vectors per embedding model (a chunk longer than the model's
//! input is embedded in consecutive windows). Vectors are stored as little-endian `f32` and read
//! back bit for bit. A chunk counts as embedded for a model once it has at least one vector for
//! it; [`Store::put_chunk_embeddings`] replaces a chunk's vectors for that model in one
//! transaction, so a chunk is never half embedded. Removing a document (or chunk) removes its
//! vectors. Vectors of different models are kept apart by the `model` name and never mixed.

use rusqlite::params;

use crate::error::{Result, StoreError};
use crate::ids::{ChunkId, DocumentId};
use crate::store::Store;

/// The vectors stored for one chunk, in window order.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEmbedding {
    pub chunk_id: ChunkId,
    pub vectors: Vec<Vec<f32>>,
}

/// How many of a document's chunks have vectors for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingCoverage {
    pub embedded: u32,
    pub total: u32,
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8], dims: usize) -> Option<Vec<f32>> {
    if b.len() != dims * 4 {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

impl Store {
    /// Replaces the vectors of `chunk` for `model` with `vectors` (one per window, in order).
    /// Every vector must have the same, non-zero length.
    pub fn put_chunk_embeddings(
        &self,
        chunk: ChunkId,
        model: &str,
        vectors: &[Vec<f32>],
    ) -> Result<()> {
        let dims = vectors.first().map_or(0, Vec::len);
        if dims == 0 || vectors.iter().any(|v| v.len() != dims) {
            return Err(StoreError::InvalidValue(
                "embedding vectors must be non-empty and of one length".into(),
            ));
        }
        self.write(|tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM chunks WHERE id = ?1)",
                [chunk],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(StoreError::not_found("chunk", chunk));
            }
            tx.execute(
                "DELETE FROM chunk_embeddings WHERE chunk_id = ?1 AND model = ?2",
                params![chunk, model],
            )?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO chunk_embeddings (chunk_id, model, window, dims, vector) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (i, v) in vectors.iter().enumerate() {
                stmt.execute(params![chunk, model, i as i64, dims as i64, to_blob(v)])?;
            }
            Ok(())
        })
    }

    /// The chunks of `document` with no vector for `model` yet, in order, with their text.
    pub fn chunks_without_embeddings(
        &self,
        document: DocumentId,
        model: &str,
    ) -> Result<Vec<(ChunkId, String)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT c.id, c.text FROM chunks c WHERE c.document_id = ?1 AND NOT EXISTS \
                 (SELECT 1 FROM chunk_embeddings e WHERE e.chunk_id = c.id AND e.model = ?2) \
                 ORDER BY c.ordinal",
            )?;
            let rows = stmt.query_map(params![document, model], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Every stored vector of `document`'s chunks for `model`, by chunk in document order.
    /// Chunks without vectors are left out.
    pub fn chunk_embeddings(
        &self,
        document: DocumentId,
        model: &str,
    ) -> Result<Vec<ChunkEmbedding>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT e.chunk_id, e.dims, e.vector FROM chunk_embeddings e \
                 JOIN chunks c ON c.id = e.chunk_id \
                 WHERE c.document_id = ?1 AND e.model = ?2 ORDER BY c.ordinal, e.window",
            )?;
            let mut rows = stmt.query(params![document, model])?;
            let mut out: Vec<ChunkEmbedding> = Vec::new();
            while let Some(r) = rows.next()? {
                let id: ChunkId = r.get(0)?;
                let dims: i64 = r.get(1)?;
                let blob: Vec<u8> = r.get(2)?;
                let v = from_blob(&blob, usize::try_from(dims).unwrap_or(0)).ok_or_else(|| {
                    StoreError::InvalidValue(format!("embedding of chunk {} is damaged", id.0))
                })?;
                match out.last_mut() {
                    Some(last) if last.chunk_id == id => last.vectors.push(v),
                    _ => out.push(ChunkEmbedding {
                        chunk_id: id,
                        vectors: vec![v],
                    }),
                }
            }
            Ok(out)
        })
    }

    /// How many of `document`'s chunks have vectors for `model`.
    pub fn embedding_coverage(
        &self,
        document: DocumentId,
        model: &str,
    ) -> Result<EmbeddingCoverage> {
        self.read(|conn| {
            let (embedded, total): (i64, i64) = conn.query_row(
                "SELECT COUNT(DISTINCT e.chunk_id), \
                        (SELECT COUNT(*) FROM chunks WHERE document_id = ?1) \
                 FROM chunk_embeddings e JOIN chunks c ON c.id = e.chunk_id \
                 WHERE c.document_id = ?1 AND e.model = ?2",
                params![document, model],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(EmbeddingCoverage {
                embedded: embedded as u32,
                total: total as u32,
            })
        })
    }
}
