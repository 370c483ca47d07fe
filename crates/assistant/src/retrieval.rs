//! Hybrid passage retrieval for document questions: FTS5 BM25 (the question's words) and
//! sentence embeddings (its meaning, see [`crate::embed`]) fused by reciprocal rank.
//!
//! The embedding model is optional. It is looked for in the folder named by the
//! `documents.embedding_model` setting ([`Assistant::set_embedding_model`]), else in
//! `models/all-minilm-l6-v2` under the data folder. Without it retrieval is BM25 alone, and
//! [`RetrievalStatus`] says so (it is not an error).
//!
//! What a caller may rely on:
//! - Chunk vectors are computed once per chunk and stored ([`hearth_store::Store::put_chunk_embeddings`]).
//!   They are computed in the background after [`Assistant::add_document`], and again whenever a
//!   question finds a document not fully embedded (e.g. added before the model was installed);
//!   nothing the UI calls waits for them. A failure to embed leaves the document and its chunks
//!   as they were, and retrieval carries on with BM25 and whatever vectors exist.
//! - [`Assistant::embed_document`] does the same work in the calling thread and returns when the
//!   document is fully embedded (for tests and the command line).
//! - The background work leaves the machine to the user: it computes on all cores but one (at
//!   least one) and, on Linux, at a lower scheduling priority (nice 10), so the window, a chat
//!   and other programs stay responsive while a long document is indexed (see
//!   [`in_background`]).
//! - A passage is found by meaning only when its best window's cosine similarity to the question
//!   is at least [`MIN_SIMILARITY`]; a question neither half finds anything for finds nothing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use hearth_store::{ChunkId, DocumentId, RankedChunk, SettingValue};
use serde::{Deserialize, Serialize};

use crate::embed::{cosine, is_model_folder, Embedder, EMBEDDING_MODEL_ID};
use crate::error::{AppError, Result};
use crate::{lock, Assistant};

/// The setting naming the embedding model's folder.
pub const EMBEDDING_MODEL_SETTING: &str = "documents.embedding_model";

/// Lowest cosine similarity at which a passage counts as found by meaning.
pub const MIN_SIMILARITY: f32 = 0.25;

/// The reciprocal-rank-fusion constant: a passage at rank r of a list adds 1 / (RRF_K + r).
pub const RRF_K: f64 = 60.0;

/// How passages of a document are found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrievalStatus {
    /// `hybrid` (words and meaning) or `keywords` (BM25 alone).
    pub method: String,
    /// The embedding model is installed (else it can be downloaded: the search model).
    pub model_installed: bool,
    /// Chunks of the document with vectors.
    pub embedded_chunks: u32,
    pub total_chunks: u32,
    /// Why retrieval is keywords only, or why vectors are missing, in a sentence; None when
    /// every chunk is embedded.
    pub note: Option<String>,
}

/// A fused candidate, best first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fused {
    pub chunk_id: ChunkId,
    pub score: f64,
    pub bm25: Option<f64>,
    pub similarity: Option<f32>,
}

/// Reciprocal rank fusion of the BM25 list and the similarity list (each best first).
pub(crate) fn fuse(bm25: &[RankedChunk], semantic: &[(ChunkId, f32)], limit: usize) -> Vec<Fused> {
    let mut fused: Vec<Fused> = Vec::new();
    let mut index: HashMap<ChunkId, usize> = HashMap::new();
    let mut slot = |id: ChunkId, fused: &mut Vec<Fused>| -> usize {
        *index.entry(id).or_insert_with(|| {
            fused.push(Fused {
                chunk_id: id,
                score: 0.0,
                bm25: None,
                similarity: None,
            });
            fused.len() - 1
        })
    };
    for (rank, r) in bm25.iter().enumerate() {
        let i = slot(r.chunk_id, &mut fused);
        fused[i].score += 1.0 / (RRF_K + rank as f64 + 1.0);
        fused[i].bm25 = Some(r.score);
    }
    for (rank, (id, sim)) in semantic.iter().enumerate() {
        let i = slot(*id, &mut fused);
        fused[i].score += 1.0 / (RRF_K + rank as f64 + 1.0);
        fused[i].similarity = Some(*sim);
    }
    // Stable: ties keep BM25's order, then the semantic order.
    fused.sort_by(|a, b| b.score.total_cmp(&a.score));
    fused.truncate(limit);
    fused
}

type EmbedderCache = Mutex<Option<Arc<Embedder>>>;

fn embedder_cache() -> &'static EmbedderCache {
    static CACHE: OnceLock<EmbedderCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Documents being embedded in the background (at most one thread per document).
fn embedding_now() -> &'static Mutex<HashSet<(PathBuf, i64)>> {
    static NOW: OnceLock<Mutex<HashSet<(PathBuf, i64)>>> = OnceLock::new();
    NOW.get_or_init(Default::default)
}

/// Held while chunks are being embedded: one embedding run at a time in the process (the work
/// is CPU-bound and uses every core), so a run that starts while another embeds the same
/// document waits and then finds nothing left to do instead of doing it twice.
fn embedding_work() -> &'static Mutex<()> {
    static WORK: OnceLock<Mutex<()>> = OnceLock::new();
    WORK.get_or_init(Default::default)
}

/// The embedding model loaded from `folder` (loaded once, then shared).
pub(crate) fn embedder_at(folder: &Path) -> Result<Arc<Embedder>> {
    let mut cache = lock(embedder_cache());
    if let Some(e) = cache.as_ref().filter(|e| e.folder() == folder) {
        return Ok(e.clone());
    }
    let e = Arc::new(Embedder::load(folder).map_err(|e| {
        AppError::new(
            "documents.embedding_model",
            format!("Cannot load the embedding model: {e}."),
        )
    })?);
    *cache = Some(e.clone());
    Ok(e)
}

/// What [`Assistant::embed_document`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddingReport {
    /// Chunks embedded by this call.
    pub chunks: u32,
    /// Windows (model inputs) they made.
    pub windows: u32,
    pub elapsed_ms: u64,
}

impl Assistant {
    /// The embedding model's folder, when one is configured or installed and complete.
    pub fn embedding_model_dir(&self) -> Option<PathBuf> {
        let configured = self
            .store()
            .setting_text(EMBEDDING_MODEL_SETTING)
            .ok()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .map(PathBuf::from);
        let folder = configured.or_else(|| {
            self.store()
                .path()
                .parent()
                .map(|d| d.join("models").join(EMBEDDING_MODEL_ID))
        })?;
        is_model_folder(&folder).then_some(folder)
    }

    /// Uses the embedding model in `folder` (holding `model.safetensors`, `config.json` and
    /// `tokenizer.json`); None goes back to the default place.
    pub fn set_embedding_model(&self, folder: Option<&Path>) -> Result<()> {
        match folder {
            Some(f) => {
                if !is_model_folder(f) {
                    return Err(AppError::new(
                        "documents.embedding_model",
                        format!(
                            "{} does not hold model.safetensors, config.json and tokenizer.json.",
                            f.display()
                        ),
                    ));
                }
                self.store().set_setting(
                    EMBEDDING_MODEL_SETTING,
                    &SettingValue::Text(f.display().to_string()),
                )?;
            }
            None => {
                self.store().delete_setting(EMBEDDING_MODEL_SETTING)?;
            }
        }
        Ok(())
    }

    /// How passages of `document_id` are found now.
    pub fn retrieval_status(&self, document_id: i64) -> Result<RetrievalStatus> {
        self.document(document_id)?;
        let cov = self
            .store()
            .embedding_coverage(DocumentId(document_id), EMBEDDING_MODEL_ID)?;
        let have_model = self.embedding_model_dir().is_some();
        let (method, note) = if !have_model {
            (
                "keywords",
                Some(
                    "No embedding model is installed: passages are found by their words only."
                        .to_string(),
                ),
            )
        } else if cov.embedded < cov.total {
            (
                "hybrid",
                Some(format!(
                    "{} of {} passages are indexed by meaning so far.",
                    cov.embedded, cov.total
                )),
            )
        } else {
            ("hybrid", None)
        };
        Ok(RetrievalStatus {
            method: method.into(),
            model_installed: have_model,
            embedded_chunks: cov.embedded,
            total_chunks: cov.total,
            note,
        })
    }

    /// Embeds every chunk of `document_id` that has no vector yet, in this thread (after any
    /// embedding run already going on in the process, e.g. the background one).
    pub fn embed_document(&self, document_id: i64) -> Result<EmbeddingReport> {
        self.document(document_id)?;
        let Some(folder) = self.embedding_model_dir() else {
            return Err(AppError::new(
                "documents.no_embedding_model",
                "No embedding model is installed.",
            ));
        };
        let embedder = embedder_at(&folder)?;
        let _work = lock(embedding_work());
        let started = Instant::now();
        let mut report = EmbeddingReport {
            chunks: 0,
            windows: 0,
            elapsed_ms: 0,
        };
        let missing = self
            .store()
            .chunks_without_embeddings(DocumentId(document_id), EMBEDDING_MODEL_ID)?;
        for (chunk, text) in missing {
            let vectors = embedder.embed_windows(&text).map_err(|e| {
                AppError::new(
                    "documents.embedding_failed",
                    format!("Cannot index a passage by meaning: {e}."),
                )
            })?;
            self.store()
                .put_chunk_embeddings(chunk, EMBEDDING_MODEL_ID, &vectors)?;
            report.chunks += 1;
            report.windows += vectors.len() as u32;
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Starts embedding `document_id` on a background thread when a model is installed and some
    /// chunk lacks a vector; returns at once. At most one such thread runs per document.
    pub fn embed_in_background(&self, document_id: i64) {
        if self.embedding_model_dir().is_none() {
            return;
        }
        match self
            .store()
            .embedding_coverage(DocumentId(document_id), EMBEDDING_MODEL_ID)
        {
            Ok(c) if c.embedded < c.total => {}
            _ => return,
        }
        let key = (self.store().path().to_path_buf(), document_id);
        if !lock(embedding_now()).insert(key.clone()) {
            return;
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("hearth-embed-{document_id}"))
            .spawn(move || {
                // A failure (model damaged, document removed meanwhile) leaves retrieval on BM25
                // and whatever vectors were stored; the next question tries again.
                let _ = in_background(|| me.embed_document(document_id));
                lock(embedding_now()).remove(&key);
            });
        if spawned.is_err() {
            lock(embedding_now()).remove(&(self.store().path().to_path_buf(), document_id));
        }
    }

    /// Chunks of the document closest in meaning to `question` (best window per chunk), at
    /// least [`MIN_SIMILARITY`], best first, at most `limit`; empty without a model.
    pub(crate) fn semantic_candidates(
        &self,
        document_id: i64,
        question: &str,
        limit: usize,
    ) -> Result<Vec<(ChunkId, f32)>> {
        let Some(folder) = self.embedding_model_dir() else {
            return Ok(Vec::new());
        };
        let stored = self
            .store()
            .chunk_embeddings(DocumentId(document_id), EMBEDDING_MODEL_ID)?;
        if stored.is_empty() {
            return Ok(Vec::new());
        }
        let Ok(embedder) = embedder_at(&folder) else {
            return Ok(Vec::new());
        };
        let Ok(q) = embedder.embed(&[question]) else {
            return Ok(Vec::new());
        };
        let Some(q) = q.first() else {
            return Ok(Vec::new());
        };
        let mut scored: Vec<(ChunkId, f32)> = stored
            .iter()
            .filter_map(|c| {
                c.vectors
                    .iter()
                    .filter(|v| v.len() == q.len())
                    .map(|v| cosine(q, v))
                    .reduce(f32::max)
                    .map(|s| (c.chunk_id, s))
            })
            .filter(|(_, s)| *s >= MIN_SIMILARITY)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(limit);
        Ok(scored)
    }
}

/// Threads for background work: every core but one, at least one.
fn background_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1)
}

/// Lowers the calling thread's scheduling priority to nice 10 (Linux, where `setpriority` on a
/// thread id applies to that thread alone); elsewhere the thread keeps its priority.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: a plain system call on the calling thread's own id; a failure changes nothing.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, this_thread_id(), 10);
    }
}

/// The calling thread's id, as the priority calls take it.
#[cfg(target_os = "linux")]
fn this_thread_id() -> libc::id_t {
    // SAFETY: `gettid` takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t }
}

/// Runs `f` as background work, from a thread of its own (whose priority it lowers): on a pool of
/// [`background_threads`] threads, which inherit that priority, so that candle's parallel
/// kernels run there instead of on one thread per core at normal priority. Without such a pool
/// (the system refused threads), `f` runs on the calling thread alone.
fn in_background<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    lower_this_threads_priority();
    match rayon::ThreadPoolBuilder::new()
        .num_threads(background_threads())
        .thread_name(|i| format!("hearth-background-{i}"))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bm(id: i64, score: f64) -> RankedChunk {
        RankedChunk {
            chunk_id: ChunkId(id),
            score,
        }
    }

    #[test]
    fn fusion_rewards_agreement_and_keeps_both_halves() {
        let bm25 = [bm(1, 9.0), bm(2, 5.0), bm(3, 1.0)];
        let semantic = [(ChunkId(4), 0.7), (ChunkId(3), 0.5)];
        let fused = fuse(&bm25, &semantic, 10);
        let ids: Vec<i64> = fused.iter().map(|f| f.chunk_id.0).collect();
        // 3 is in both lists and comes first; 1 and 4 are each first of one list (a tie that
        // keeps BM25's first ahead); then 2.
        assert_eq!(ids, vec![3, 1, 4, 2]);
        assert_eq!(fused[0].bm25, Some(1.0));
        assert_eq!(fused[0].similarity, Some(0.5));
        assert_eq!(fused[2].bm25, None);
        assert!((fused[0].score - (1.0 / 63.0 + 1.0 / 62.0)).abs() < 1e-12);
        assert_eq!(fuse(&bm25, &semantic, 2).len(), 2);
        assert!(fuse(&[], &[], 3).is_empty());
        // Without the meaning half the BM25 order is kept.
        let only: Vec<i64> = fuse(&bm25, &[], 3).iter().map(|f| f.chunk_id.0).collect();
        assert_eq!(only, vec![1, 2, 3]);
    }

    /// The calling thread's nice value (Linux), else 0.
    fn nice() -> i32 {
        #[cfg(target_os = "linux")]
        // SAFETY: a plain system call on the calling thread's own id.
        unsafe {
            libc::getpriority(libc::PRIO_PROCESS, this_thread_id())
        }
        #[cfg(not(target_os = "linux"))]
        0
    }

    #[test]
    fn background_work_leaves_a_core_and_yields_to_the_rest() {
        let (threads, nices) = std::thread::spawn(|| {
            in_background(|| {
                // Every thread of the pool the work (and candle's kernels) runs on.
                (rayon::current_num_threads(), rayon::broadcast(|_| nice()))
            })
        })
        .join()
        .unwrap();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        assert_eq!(threads, (cores - 1).max(1));
        assert_eq!(nices.len(), threads);
        if cfg!(target_os = "linux") {
            assert!(nices.iter().all(|n| *n >= 10), "{nices:?}");
        }
    }
}
