//! Installed models: which GGUF files are on disk, where they came from, and when they were
//! used. Keyed by the catalog id (a string such as `smollm2-135m-instruct-q4_1`).

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::columns::u64_to_sql;
use crate::error::{Result, StoreError};
use crate::store::Store;

/// A model file installed on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledModel {
    /// Catalog id; unique.
    pub id: String,
    /// Absolute path of the GGUF file.
    pub path: String,
    /// Repository it was downloaded from (`owner/name`), if any.
    pub source_repo: Option<String>,
    /// Revision (commit) it was downloaded at, if any.
    pub source_revision: Option<String>,
    /// File name in the repository, if any.
    pub source_file: Option<String>,
    /// Quantization (`Q4_K_M`, ...), if known.
    pub quant: Option<String>,
    pub size_bytes: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// Milliseconds since the Unix epoch.
    pub added_at: i64,
    /// Milliseconds since the Unix epoch; `None` if never used.
    pub last_used_at: Option<i64>,
}

fn model_from_row(row: &Row<'_>) -> rusqlite::Result<InstalledModel> {
    Ok(InstalledModel {
        id: row.get("id")?,
        path: row.get("path")?,
        source_repo: row.get("source_repo")?,
        source_revision: row.get("source_revision")?,
        source_file: row.get("source_file")?,
        quant: row.get("quant")?,
        size_bytes: crate::columns::opt_u64(row, "size_bytes")?.unwrap_or(0),
        sha256: row.get("sha256")?,
        added_at: row.get("added_at")?,
        last_used_at: row.get("last_used_at")?,
    })
}

const MODEL_COLUMNS: &str = "id, path, source_repo, source_revision, source_file, quant, \
    size_bytes, sha256, added_at, last_used_at";

impl Store {
    /// Records an installed model, replacing the record with the same id.
    pub fn upsert_model(&self, model: &InstalledModel) -> Result<()> {
        let size = u64_to_sql(model.size_bytes, "model size")?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO models (id, path, source_repo, source_revision, source_file, quant, \
                 size_bytes, sha256, added_at, last_used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT(id) DO UPDATE SET path = excluded.path, \
                 source_repo = excluded.source_repo, source_revision = excluded.source_revision, \
                 source_file = excluded.source_file, quant = excluded.quant, \
                 size_bytes = excluded.size_bytes, sha256 = excluded.sha256, \
                 added_at = excluded.added_at, last_used_at = excluded.last_used_at",
                params![
                    model.id,
                    model.path,
                    model.source_repo,
                    model.source_revision,
                    model.source_file,
                    model.quant,
                    size,
                    model.sha256,
                    model.added_at,
                    model.last_used_at
                ],
            )?;
            Ok(())
        })
    }

    /// One installed model.
    pub fn model(&self, id: &str) -> Result<InstalledModel> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = ?1"),
                [id],
                model_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::not_found("model", id))
        })
    }

    /// All installed models, most recently used first (never used ones last, newest first).
    pub fn list_models(&self) -> Result<Vec<InstalledModel>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {MODEL_COLUMNS} FROM models \
                 ORDER BY last_used_at IS NULL, last_used_at DESC, added_at DESC, id"
            ))?;
            let rows = stmt.query_map([], model_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Sets a model's last-used time to now.
    pub fn touch_model(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE models SET last_used_at = ?2 WHERE id = ?1",
                params![id, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::not_found("model", id));
            }
            Ok(())
        })
    }

    /// Forgets an installed model (the file itself is the caller's business). Messages keep
    /// the model id they were written with.
    pub fn remove_model(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM models WHERE id = ?1", [id])?;
            if n == 0 {
                return Err(StoreError::not_found("model", id));
            }
            Ok(())
        })
    }
}
