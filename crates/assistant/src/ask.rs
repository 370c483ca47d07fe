//! Questions about a document, answered from its passages with the passages cited.
//!
//! Retrieval is hybrid ([`crate::retrieval`]): the question's words (common English words left
//! out; Chinese and Japanese runs cut into three-character pieces, what the trigram index can
//! look up) are looked up with FTS5's BM25 over the document's chunks
//! ([`hearth_store::Store::rank_chunks`]; a chunk matches when it holds any of them), and, when
//! the embedding model is installed, the question's sentence embedding is compared with the
//! chunks' stored ones; the two rankings are fused by reciprocal rank. The best passages,
//! numbered `[1]`, `[2]`, ..., go into the prompt, and the model is told to answer only from
//! them and to cite them by number.
//!
//! Contract:
//! - [`Assistant::ask`] returns at once with the job id and the passages used (so a view can
//!   show them before the answer); the sink then gets `delta`s and exactly one of `done` (with
//!   the [`Answer`]) or `failed`. [`Assistant::cancel`] stops it within one token.
//! - [`Answer::passages`] are every passage the model was given, best first, each with its
//!   chunk id and pages; [`Answer::cited`] are the numbers the answer itself cites (`[n]`).
//! - A question that neither half finds anything for (none of its words occur in the document,
//!   and no passage is close enough in meaning) fails with `ask.nothing_found`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use hearth_engine::{
    EngineEvent, GenerationParams, Message, Priority, Prompt, Request, SamplingParams, StopReason,
};
use hearth_store::{ChunkId, DocumentId};
use serde::{Deserialize, Serialize};

use crate::documents::Passage;
use crate::error::{AppError, Result};
use crate::retrieval::{fuse, RetrievalStatus};
use crate::{lock, Assistant};

pub type AskSink = Box<dyn Fn(AskEvent) + Send + Sync>;

/// A question about one document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AskRequest {
    pub document_id: i64,
    pub question: String,
    /// Installed model id or GGUF path; default: the default model.
    pub model: Option<String>,
    /// Passages given to the model (default 3).
    pub passages: Option<u32>,
    /// Tokens the answer may have (default 256).
    pub max_tokens: Option<u32>,
}

/// A passage the answer may rest on, numbered as the prompt numbers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// 1-based, as `[n]` in the answer.
    pub number: u32,
    /// Relevance, higher is better: reciprocal-rank fusion of the BM25 and meaning rankings
    /// (the BM25 ranking alone without an embedding model).
    pub score: f64,
    pub passage: Passage,
    /// How the passage was found: `keywords` (its words), `meaning` (its embedding) or `both`.
    #[serde(default)]
    pub found_by: String,
    /// BM25 relevance, when the passage holds some of the question's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<f64>,
    /// Cosine similarity of the passage's best window to the question, when found by meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub text: String,
    pub passages: Vec<Source>,
    /// Passage numbers cited in `text`, in order of first mention.
    pub cited: Vec<u32>,
    /// `done` or `cancelled`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AskStarted {
    pub job_id: u64,
    pub passages: Vec<Source>,
    /// How the passages were found (hybrid, or keywords only without an embedding model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<RetrievalStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AskEvent {
    #[serde(rename_all = "camelCase")]
    Delta { job_id: u64, text: String },
    #[serde(rename_all = "camelCase")]
    Done { job_id: u64, answer: Answer },
    #[serde(rename_all = "camelCase")]
    Failed { job_id: u64, error: AppError },
}

const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was",
    "one", "our", "out", "has", "have", "how", "its", "what", "when", "where", "which", "who",
    "whom", "why", "with", "this", "that", "these", "those", "from", "into", "does", "did",
    "doing", "there", "their", "they", "them", "then", "than", "about", "would", "could", "should",
    "will", "shall", "may", "might", "must", "been", "being", "were", "your", "yours", "his",
    "she", "him", "also", "such", "some", "more", "most", "other", "only", "own", "same", "very",
    "just", "document", "text", "tell", "please", "explain", "describe", "mean", "means",
];

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

/// The words of a question worth looking up.
pub fn query_terms(question: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    let flush_word = |w: &mut String, terms: &mut Vec<String>| {
        let lw = w.to_lowercase();
        if lw.chars().count() >= 3 && !STOP_WORDS.contains(&lw.as_str()) {
            terms.push(lw);
        }
        w.clear();
    };
    let flush_cjk = |run: &mut Vec<char>, terms: &mut Vec<String>| {
        if run.len() >= 3 {
            for w in run.windows(3) {
                terms.push(w.iter().collect());
            }
        }
        run.clear();
    };
    for c in question.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut terms);
            cjk.push(c);
        } else if c.is_alphanumeric() || c == '_' || c == '-' {
            flush_cjk(&mut cjk, &mut terms);
            word.push(c);
        } else {
            flush_word(&mut word, &mut terms);
            flush_cjk(&mut cjk, &mut terms);
        }
    }
    flush_word(&mut word, &mut terms);
    flush_cjk(&mut cjk, &mut terms);
    let mut seen = std::collections::HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    terms
}

/// Passage numbers `[n]` (also `[n, m]`) in `text` that exist (1..=count), first mention first.
pub fn cited_numbers(text: &str, count: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        for piece in after[..close].split(',') {
            if let Ok(n) = piece.trim().parse::<u32>() {
                if (1..=count).contains(&n) && !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        rest = &after[close..];
    }
    out
}

impl Assistant {
    /// The passages of a document that best match `question` by words or meaning, best first
    /// (see [`crate::retrieval`]). A document not fully indexed by meaning yet is embedded in
    /// the background meanwhile.
    pub fn find_passages(
        &self,
        document_id: i64,
        question: &str,
        limit: u32,
    ) -> Result<Vec<Source>> {
        self.document(document_id)?;
        let pool = (limit as usize * 4).max(20);
        let bm25 = self.store().rank_chunks(
            DocumentId(document_id),
            &query_terms(question),
            pool as u32,
        )?;
        let semantic = self.semantic_candidates(document_id, question, pool)?;
        self.embed_in_background(document_id);
        fuse(&bm25, &semantic, limit as usize)
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                Ok(Source {
                    number: i as u32 + 1,
                    score: f.score,
                    passage: self.store().chunk(ChunkId(f.chunk_id.get()))?.into(),
                    found_by: match (f.bm25.is_some(), f.similarity.is_some()) {
                        (true, true) => "both",
                        (false, true) => "meaning",
                        _ => "keywords",
                    }
                    .into(),
                    bm25: f.bm25,
                    similarity: f.similarity,
                })
            })
            .collect()
    }

    /// Answers a question from a document's passages; see the module header.
    pub fn ask(&self, req: AskRequest, sink: AskSink) -> Result<AskStarted> {
        let question = req.question.trim().to_string();
        if question.is_empty() {
            return Err(AppError::new("ask.empty", "Type a question first."));
        }
        let sources = self.find_passages(
            req.document_id,
            &question,
            req.passages.unwrap_or(3).clamp(1, 12),
        )?;
        if sources.is_empty() {
            return Err(AppError::new(
                "ask.nothing_found",
                "No passage of the document holds the question's words or comes close to its \
                 meaning. Try other words.",
            ));
        }
        let (_, model_path) = self.resolve_model(req.model.as_deref())?;
        let context: String = sources
            .iter()
            .map(|s| {
                let place = match (s.passage.page_start, s.passage.page_end, &s.passage.section) {
                    (Some(a), Some(b), _) if a != b => format!(" (pages {a}-{b})"),
                    (Some(a), _, _) => format!(" (page {a})"),
                    (None, _, Some(h)) => format!(" (section \"{h}\")"),
                    _ => String::new(),
                };
                format!("[{}]{place}\n{}", s.number, s.passage.text)
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let messages = vec![
            Message::system(
                "You answer questions about a document using only the numbered passages given. \
                 Cite the passages you use like [1]. If the passages do not contain the answer, \
                 say so.",
            ),
            Message::user(format!("Passages:\n\n{context}\n\nQuestion: {question}")),
        ];
        let handle = self.inner.engine.submit(Request {
            model: model_path,
            prompt: Prompt::Chat(messages),
            params: GenerationParams {
                max_tokens: req.max_tokens.unwrap_or(256).clamp(1, 4096) as usize,
                sampling: SamplingParams::greedy(),
                ..Default::default()
            },
            priority: Priority::Interactive,
        })?;
        let job_id = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        lock(&self.inner.jobs).insert(job_id, cancel.clone());
        let inner = self.inner.clone();
        let passages = sources.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("hearth-ask-{job_id}"))
            .spawn(move || {
                let count = passages.len() as u32;
                let end = loop {
                    if cancel.load(Ordering::Relaxed) {
                        handle.cancel();
                    }
                    match handle.recv_timeout(Duration::from_millis(40)) {
                        Ok(EngineEvent::Text(t)) => sink(AskEvent::Delta { job_id, text: t }),
                        Ok(EngineEvent::Done(s)) => {
                            let text = s.text.trim().to_string();
                            break Ok(Answer {
                                cited: cited_numbers(&text, count),
                                text,
                                passages,
                                status: if s.stop == StopReason::Cancelled {
                                    "cancelled"
                                } else {
                                    "done"
                                }
                                .into(),
                            });
                        }
                        Ok(EngineEvent::Failed(e)) => {
                            let error = AppError::from(e);
                            // Stopped before the engine took it up (so nothing was written): a
                            // cancelled answer, as one stopped while it was being written.
                            if error.code == "engine.cancelled" {
                                break Ok(Answer {
                                    cited: Vec::new(),
                                    text: String::new(),
                                    passages,
                                    status: "cancelled".into(),
                                });
                            }
                            break Err(error);
                        }
                        Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            break Err(AppError::new(
                                "engine.stopped",
                                "The engine stopped before the answer was finished.",
                            ))
                        }
                    }
                };
                lock(&inner.jobs).remove(&job_id);
                match end {
                    Ok(answer) => sink(AskEvent::Done { job_id, answer }),
                    Err(error) => sink(AskEvent::Failed { job_id, error }),
                }
            });
        if let Err(e) = spawned {
            lock(&self.inner.jobs).remove(&job_id);
            return Err(AppError::new(
                "assistant.thread",
                format!("Cannot start the answer: {e}"),
            ));
        }
        Ok(AskStarted {
            job_id,
            passages: sources,
            retrieval: self.retrieval_status(req.document_id).ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_leave_out_common_words_and_cut_cjk_runs() {
        assert_eq!(
            query_terms("How does the HISTFILE variable work?"),
            vec!["histfile", "variable", "work"]
        );
        assert_eq!(query_terms("模型推理"), vec!["模型推", "型推理"]);
    }

    #[test]
    fn citations_are_read_from_brackets() {
        assert_eq!(
            cited_numbers("It is set [2] and read [1, 2] [9].", 3),
            vec![2, 1]
        );
    }
}
