//! Jobs: long work that must survive a restart (summaries, translations, downloads,
//! quantization, document imports).
//!
//! A job has a kind, a state, progress `{stage, done, total}` and a JSON payload that only
//! its owner understands (what to resume from: a file offset, the next chunk, ...). At startup
//! the app reads [`Store::unfinished_jobs`] and resumes or fails each one.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::columns::{get_enum, opt_u64, text_enum, u64_to_sql};
use crate::error::{Result, StoreError};
use crate::ids::JobId;
use crate::store::Store;

/// What a job does. Kinds this build does not know (written by a newer build) read as
/// `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobKind {
    Chat,
    Translation,
    Summary,
    Download,
    Quantization,
    DocumentImport,
    Other(String),
}

impl JobKind {
    fn as_str(&self) -> &str {
        match self {
            JobKind::Chat => "chat",
            JobKind::Translation => "translation",
            JobKind::Summary => "summary",
            JobKind::Download => "download",
            JobKind::Quantization => "quantization",
            JobKind::DocumentImport => "document_import",
            JobKind::Other(s) => s,
        }
    }

    fn parse(s: &str) -> JobKind {
        match s {
            "chat" => JobKind::Chat,
            "translation" => JobKind::Translation,
            "summary" => JobKind::Summary,
            "download" => JobKind::Download,
            "quantization" => JobKind::Quantization,
            "document_import" => JobKind::DocumentImport,
            other => JobKind::Other(other.to_string()),
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Paused,
    Done,
    Cancelled,
    Failed,
}
text_enum!(JobState {
    Queued => "queued",
    Running => "running",
    Paused => "paused",
    Done => "done",
    Cancelled => "cancelled",
    Failed => "failed",
});

impl JobState {
    /// Queued, running or paused.
    pub fn is_unfinished(self) -> bool {
        matches!(
            self,
            JobState::Queued | JobState::Running | JobState::Paused
        )
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub state: JobState,
    /// Name of the current stage (`map`, `reduce`, `download`, ...), if the job has stages.
    pub stage: Option<String>,
    pub progress_done: u64,
    pub progress_total: Option<u64>,
    /// Owner-defined resume data.
    pub payload: serde_json::Value,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const JOB_COLUMNS: &str = "id, kind, state, stage, progress_done, progress_total, payload, \
    error, created_at, updated_at";

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let payload: String = row.get("payload")?;
    Ok(Job {
        id: row.get("id")?,
        kind: JobKind::parse(&row.get::<_, String>("kind")?),
        state: get_enum(row, "state")?,
        stage: row.get("stage")?,
        progress_done: opt_u64(row, "progress_done")?.unwrap_or(0),
        progress_total: opt_u64(row, "progress_total")?,
        payload: serde_json::from_str(&payload).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })?,
        error: row.get("error")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn get_job(conn: &Connection, id: JobId) -> Result<Job> {
    conn.query_row(
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
        [id],
        job_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::not_found("job", id))
}

impl Store {
    /// Records a new job (state `Queued`, no progress).
    pub fn create_job(&self, kind: &JobKind, payload: &serde_json::Value) -> Result<Job> {
        let payload = serde_json::to_string(payload)?;
        let now = now_ms();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO jobs (kind, state, payload, created_at, updated_at) \
                 VALUES (?1, 'queued', ?2, ?3, ?3)",
                params![kind.as_str(), payload, now],
            )?;
            get_job(tx, JobId(tx.last_insert_rowid()))
        })
    }

    /// One job.
    pub fn job(&self, id: JobId) -> Result<Job> {
        self.read(|conn| get_job(conn, id))
    }

    /// Queued, running and paused jobs, oldest first.
    pub fn unfinished_jobs(&self) -> Result<Vec<Job>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running', 'paused') \
                 ORDER BY id"
            ))?;
            let rows = stmt.query_map([], job_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Changes a job's state; `error` is stored with it (set it with `Failed`).
    pub fn set_job_state(&self, id: JobId, state: JobState, error: Option<&str>) -> Result<Job> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE jobs SET state = ?2, error = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, state, error, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::not_found("job", id));
            }
            get_job(tx, id)
        })
    }

    /// Records progress.
    pub fn set_job_progress(
        &self,
        id: JobId,
        stage: Option<&str>,
        done: u64,
        total: Option<u64>,
    ) -> Result<()> {
        let done = u64_to_sql(done, "job progress")?;
        let total = total.map(|t| u64_to_sql(t, "job total")).transpose()?;
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE jobs SET stage = ?2, progress_done = ?3, progress_total = ?4, \
                 updated_at = ?5 WHERE id = ?1",
                params![id, stage, done, total, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::not_found("job", id));
            }
            Ok(())
        })
    }

    /// Replaces a job's payload (its resume point).
    pub fn set_job_payload(&self, id: JobId, payload: &serde_json::Value) -> Result<()> {
        let payload = serde_json::to_string(payload)?;
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE jobs SET payload = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, payload, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::not_found("job", id));
            }
            Ok(())
        })
    }

    /// Deletes a job.
    pub fn delete_job(&self, id: JobId) -> Result<()> {
        self.write(|tx| {
            if tx.execute("DELETE FROM jobs WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::not_found("job", id));
            }
            Ok(())
        })
    }

    /// Deletes finished jobs (done, cancelled, failed) last updated before `before_ms`.
    /// Returns how many.
    pub fn delete_finished_jobs(&self, before_ms: i64) -> Result<usize> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'cancelled', 'failed') \
                 AND updated_at < ?1",
                [before_ms],
            )?)
        })
    }
}
