//! Summaries of whole documents, however long, with every statement traced to pages.
//!
//! How: the **map** stage asks the model for a partial summary of each chunk (one request per
//! chunk, at background priority so chat stays responsive); the **reduce** stage combines
//! consecutive partial summaries, a few at a time, into partial summaries of the next level,
//! until few enough remain to fit one request; the **final** request writes the summary from
//! those. Every partial summary is stored with the chunks it came from (level 0: its chunk;
//! above: the union of its inputs' chunks), so citations are mechanical, never the model's.
//!
//! Contract:
//! - [`Assistant::summarize`] returns at once; the work runs on a thread of its own and on the
//!   engine thread and reports to a [`SummarizeSink`]: `started`, then `progress` (stage, step
//!   i of n, an estimate of the time left) and `part` (each partial summary as it is stored),
//!   `delta` (the final summary as it is written), then exactly one of `done` (status `done` or
//!   `cancelled`) or `failed`.
//! - [`Assistant::cancel`] with the job id stops it within one token. Partial summaries already
//!   stored are kept: summarizing the same document with the same options again (also after a
//!   restart, or through [`Assistant::resume_summary`]) carries on from them. A summary that is
//!   already done is returned as it is unless `restart` is set.
//! - The result ([`DocumentSummary`]) is a summary plus key points. Key points are the partial
//!   summaries the final request read (at most [`SummaryLength::key_points`] of them), each
//!   citing the pages (PDF) or sections of its chunks; the summary cites every chunk summarized.
//! - Same document, options and model, greedy decoding: the same structure (levels, parts, the
//!   chunks under each part, the citations) whether or not the work was interrupted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_engine::{
    Engine, EngineEvent, GenerationParams, Message, Priority, Prompt, Request, SamplingParams,
    StopReason,
};
use hearth_store::{
    Chunk, ChunkId, DocumentId, NewSummary, NewSummaryPart, Outcome, Store, SummaryId, SummaryPart,
    TaskStatus,
};
use serde::{Deserialize, Serialize};

use crate::documents::{counter, tokenizer_for};
use crate::error::{AppError, Result};
use crate::translate::Language;
use crate::{lock, Assistant};

pub type SummarizeSink = Box<dyn Fn(SummarizeEvent) + Send + Sync>;

/// How often the cancel flag is looked at while tokens arrive.
const POLL: Duration = Duration::from_millis(40);

/// Tokens of instructions around the text in each request (a generous bound).
const PROMPT_OVERHEAD: usize = 160;

/// The largest chunk a model with a context of `context` tokens can summarize at any length:
/// the context minus the instructions and the longest partial summary.
pub(crate) fn chunk_budget(context: usize) -> usize {
    context.saturating_sub(PROMPT_OVERHEAD + SummaryLength::Long.part_tokens() as usize)
}

/// Most tokens of partial summaries one reduce request reads, whatever the context: long
/// prompts are slow on a small CPU and small models lose the thread in them.
const MAX_REDUCE_INPUT: usize = 3072;

/// How long a summary should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryLength {
    Short,
    #[default]
    Medium,
    Long,
}

impl SummaryLength {
    pub fn parse(s: &str) -> Option<SummaryLength> {
        match s.trim().to_ascii_lowercase().as_str() {
            "short" => Some(SummaryLength::Short),
            "medium" => Some(SummaryLength::Medium),
            "long" => Some(SummaryLength::Long),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SummaryLength::Short => "short",
            SummaryLength::Medium => "medium",
            SummaryLength::Long => "long",
        }
    }

    /// Most key points, which is also how many partial summaries one reduce request combines.
    pub fn key_points(self) -> usize {
        match self {
            SummaryLength::Short => 3,
            SummaryLength::Medium => 5,
            SummaryLength::Long => 8,
        }
    }

    fn sentences(self) -> (usize, usize) {
        // (per partial summary, final summary)
        match self {
            SummaryLength::Short => (2, 3),
            SummaryLength::Medium => (3, 6),
            SummaryLength::Long => (4, 12),
        }
    }

    fn part_tokens(self) -> u32 {
        match self {
            SummaryLength::Short => 80,
            SummaryLength::Medium => 128,
            SummaryLength::Long => 192,
        }
    }

    fn summary_tokens(self) -> u32 {
        match self {
            SummaryLength::Short => 160,
            SummaryLength::Medium => 320,
            SummaryLength::Long => 640,
        }
    }
}

/// What to summarize and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SummarizeRequest {
    pub document_id: i64,
    pub length: SummaryLength,
    /// Language of the summary (`en`, `zh`, `fr`, ...); default: the document's language.
    pub language: Option<String>,
    /// Installed model id or GGUF path; default: the default model.
    pub model: Option<String>,
    /// Only the chunks on these PDF pages (first and last, inclusive).
    pub pages: Option<[u32; 2]>,
    /// Tokens the model may write per partial summary (default by length).
    pub max_part_tokens: Option<u32>,
    /// Tokens the model may write for the final summary (default by length).
    pub max_summary_tokens: Option<u32>,
    /// Start over instead of resuming or returning a finished summary.
    pub restart: bool,
}

/// The options that identify a summary: the same ones resume the same summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Options {
    v: u32,
    length: SummaryLength,
    lang: String,
    pages: Option<[u32; 2]>,
    part_tokens: u32,
    summary_tokens: u32,
}

/// Stage of a summary's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryStage {
    Map,
    Reduce,
    Final,
}

/// A range of PDF pages, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageRange {
    pub start: u32,
    pub end: u32,
}

/// Where a statement comes from: chunks, their pages merged into ranges, their sections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Citation {
    /// In document order.
    pub chunk_ids: Vec<i64>,
    pub chunk_ordinals: Vec<u32>,
    pub pages: Vec<PageRange>,
    pub sections: Vec<String>,
}

/// A key point: a partial summary the final request read, with its sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPoint {
    pub text: String,
    pub part_id: i64,
    pub cites: Citation,
}

/// A stored partial summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartInfo {
    pub id: i64,
    pub level: u32,
    pub ordinal: u32,
    pub text: String,
    pub cites: Citation,
}

/// A summary as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentSummary {
    pub summary_id: i64,
    pub document_id: i64,
    pub model_id: String,
    /// `running`, `done`, `cancelled` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub length: SummaryLength,
    pub language: String,
    pub pages: Option<[u32; 2]>,
    /// The final summary (empty until done).
    pub text: String,
    pub key_points: Vec<KeyPoint>,
    /// Everything the summary rests on.
    pub cites: Citation,
    /// Chunks in scope, and how many have a partial summary.
    pub chunks_total: u32,
    pub chunks_summarized: u32,
    /// Every stored partial summary, by level then ordinal.
    pub parts: Vec<PartInfo>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Returned by [`Assistant::summarize`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryStarted {
    pub job_id: u64,
    pub summary_id: i64,
    pub document_id: i64,
    pub model_id: String,
    /// Chunks to summarize.
    pub chunks: u32,
    /// Partial summaries already stored (resumed), 0 for a fresh start.
    pub resumed_parts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SummarizeEvent {
    #[serde(rename_all = "camelCase")]
    Started {
        job_id: u64,
        summary_id: i64,
        chunks: u32,
        resumed_parts: u32,
    },
    /// Step `done` of `total` in `stage` is next (or, with `done == total`, the stage is over).
    #[serde(rename_all = "camelCase")]
    Progress {
        job_id: u64,
        stage: SummaryStage,
        level: u32,
        done: u32,
        total: u32,
        /// Estimated time left for the whole summary, from the requests so far.
        eta_ms: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    Part {
        job_id: u64,
        part: PartInfo,
        /// Taken from the store (a resumed run), not written now.
        resumed: bool,
    },
    #[serde(rename_all = "camelCase")]
    Delta { job_id: u64, text: String },
    #[serde(rename_all = "camelCase")]
    Done {
        job_id: u64,
        /// `done` or `cancelled`.
        status: String,
        summary: Box<DocumentSummary>,
    },
    #[serde(rename_all = "camelCase")]
    Failed { job_id: u64, error: AppError },
}

fn parse_options(instructions: Option<&str>) -> Option<Options> {
    serde_json::from_str(instructions?).ok()
}

fn status_name(s: TaskStatus) -> String {
    format!("{s:?}").to_lowercase()
}

/// Merges the pages and sections of `chunks` (in document order).
fn cite(chunks: &[&Chunk]) -> Citation {
    let mut sorted: Vec<&&Chunk> = chunks.iter().collect();
    sorted.sort_by_key(|c| c.ordinal);
    let mut c = Citation::default();
    for ch in sorted {
        c.chunk_ids.push(ch.id.get());
        c.chunk_ordinals.push(ch.ordinal);
        if let (Some(a), Some(b)) = (ch.page_start, ch.page_end) {
            match c.pages.last_mut() {
                Some(last) if a <= last.end + 1 => last.end = last.end.max(b),
                _ => c.pages.push(PageRange { start: a, end: b }),
            }
        }
        if let Some(s) = &ch.section {
            if !c.sections.contains(s) {
                c.sections.push(s.clone());
            }
        }
    }
    c
}

fn in_pages(c: &Chunk, pages: Option<[u32; 2]>) -> bool {
    match (pages, c.page_start, c.page_end) {
        (None, _, _) => true,
        (Some([a, b]), Some(s), Some(e)) => s <= b && e >= a,
        (Some(_), _, _) => false,
    }
}

/// Whitespace collapsed, a leading label ("Summary:") and wrapping quotes taken off.
fn clean(text: &str) -> String {
    let mut t = text.trim();
    for label in [
        "Summary:",
        "summary:",
        "SUMMARY:",
        "摘要：",
        "摘要:",
        "总结：",
        "总结:",
    ] {
        if let Some(rest) = t.strip_prefix(label) {
            t = rest.trim();
        }
    }
    // A line the text already holds is a model going round in a loop, not a new point.
    let mut seen = BTreeSet::new();
    t.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && seen.insert(*l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How often the last whole line of a text being written may already stand in it before the
/// model counts as going round in a loop (small models, decoding greedily, can write one line
/// again and again until the token limit: a page of running headers, say).
const LOOP_LINES: usize = 3;

/// Whether `text` (a model's answer so far) ends in a loop: its last whole line (one a newline
/// ends) stands in it at least [`LOOP_LINES`] times.
fn goes_round(text: &str) -> bool {
    let Some(body) = text.trim_end_matches([' ', '\t']).strip_suffix('\n') else {
        return false;
    };
    let mut lines = body.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(last) = lines.next_back() else {
        return false;
    };
    lines.filter(|l| *l == last).take(LOOP_LINES - 1).count() == LOOP_LINES - 1
}

/// `text` up to its last newline: a request stopped for a loop may have written the start of
/// one more copy after it.
fn whole_lines(text: &str) -> &str {
    text.rfind('\n').map_or(text, |end| &text[..end])
}

/// Characters that end a sentence ([`cut_unfinished`]).
const SENTENCE_ENDS: [char; 7] = ['.', '!', '?', '。', '！', '？', '…'];

/// An answer the token limit (or a full context) stopped in mid-sentence, cut after its last
/// whole sentence or line where that keeps at least half of it, else after its last whole word
/// with "…" (or with "…" as it is, where no word ends in its second half: Chinese): a partial
/// summary or a summary does not end in half a word ("… DESCRIPTION B"). A sentence ends at
/// `.`, `!` or `?` before a space or a line's end, at a Chinese full stop, exclamation or
/// question mark, and at a line's end.
fn cut_unfinished(text: &str) -> String {
    let t = text.trim_end();
    if t.is_empty() || t.ends_with(SENTENCE_ENDS) {
        return t.to_string();
    }
    let half = t.len() / 2;
    let mut sentence = None;
    for (i, c) in t.char_indices() {
        let after = i + c.len_utf8();
        let ends = match c {
            '。' | '！' | '？' | '\n' => true,
            '.' | '!' | '?' => t[after..].starts_with(char::is_whitespace),
            _ => false,
        };
        if ends {
            sentence = Some(after);
        }
    }
    if let Some(end) = sentence.filter(|&e| e >= half) {
        return t[..end].trim_end().to_string();
    }
    match t.rfind(char::is_whitespace).filter(|&i| i >= half) {
        Some(i) => format!("{}…", t[..i].trim_end()),
        None => format!("{t}…"),
    }
}

/// The start of `text` that counts at most `max` tokens, cut after a word.
fn truncate_tokens(text: &str, max: usize, count: &dyn Fn(&str) -> usize) -> String {
    if count(text) <= max {
        return text.to_string();
    }
    let mut end = text.len();
    loop {
        end = end * 4 / 5;
        while end > 0 && !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = text[..end]
            .rfind(char::is_whitespace)
            .filter(|&i| i > 0)
            .unwrap_or(end);
        let piece = text[..cut].trim_end();
        if end == 0 || count(piece) <= max {
            return piece.to_string();
        }
    }
}

/// Consecutive groups of `sizes`, each at most `max_members` long and at most `budget` tokens
/// (a lone item over the budget forms its own group).
fn pack(sizes: &[usize], budget: usize, max_members: usize) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, &n) in sizes.iter().enumerate() {
        if i > start && (used + n > budget || i - start >= max_members) {
            groups.push(start..i);
            start = i;
            used = 0;
        }
        used += n;
    }
    if start < sizes.len() {
        groups.push(start..sizes.len());
    }
    groups
}

/// Requests the reduce stage will still need for `parts` partial summaries (the final one
/// included).
fn reduce_requests(mut parts: usize, fan_in: usize) -> usize {
    let fan_in = fan_in.max(2);
    let mut n = 1;
    while parts > fan_in {
        parts = parts.div_ceil(fan_in);
        n += parts;
    }
    n
}

struct Work {
    job_id: u64,
    summary_id: SummaryId,
    document_id: DocumentId,
    model_path: std::path::PathBuf,
    options: Options,
    language: Language,
    context: usize,
    chunks: Vec<Chunk>,
    cancel: Arc<AtomicBool>,
}

enum Ask {
    Text(String),
    Cancelled,
}

/// A partial summary in the making: its text and the chunks under it.
#[derive(Clone)]
struct Node {
    text: String,
    chunks: BTreeSet<ChunkId>,
}

struct Clock {
    started: Instant,
    requests: u32,
    request_ms: u64,
}

impl Clock {
    fn eta(&self, remaining: usize) -> Option<u64> {
        (self.requests > 0).then(|| self.request_ms / u64::from(self.requests) * remaining as u64)
    }
}

impl Work {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn language_name(&self) -> &'static str {
        self.language.english_name()
    }

    /// The last line of every prompt: the output language once more, after the text and in
    /// that language (small models follow best what they read last).
    fn language_reminder(&self) -> &'static str {
        self.language.summary_instruction()
    }

    fn map_prompt(&self, chunk: &Chunk) -> Vec<Message> {
        let (n, _) = self.options.length.sentences();
        let lang = self.language_name();
        let place = match (chunk.page_start, &chunk.section) {
            (Some(p), _) => format!(" (page {p})"),
            (None, Some(s)) => format!(" (section \"{s}\")"),
            _ => String::new(),
        };
        vec![
            Message::system(format!(
                "You summarize documents faithfully. Use only facts stated in the text. Write in \
                 {lang}. {}",
                self.language_reminder()
            )),
            Message::user(format!(
                "Summarize this part of a document{place} in at most {n} sentences, in {lang}.\n\n\
                 {}\n\n{}",
                chunk.text,
                self.language_reminder()
            )),
        ]
    }

    fn reduce_prompt(&self, inputs: &[&Node], last: bool) -> Vec<Message> {
        let (part_n, final_n) = self.options.length.sentences();
        let lang = self.language_name();
        let joined = inputs
            .iter()
            .map(|n| n.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
        let task = if last {
            format!(
                "Here are summaries of the consecutive parts of one document. Write a {} summary \
                 of the whole document in at most {final_n} sentences, in {lang}, keeping the \
                 most important facts.",
                self.options.length.as_str()
            )
        } else {
            format!(
                "Here are summaries of consecutive parts of one document. Combine them into one \
                 summary of at most {} sentences, in {lang}, keeping the most important facts.",
                part_n + 1
            )
        };
        vec![
            Message::system(format!(
                "You summarize documents faithfully. Use only facts stated in the text. Write in \
                 {lang}. {}",
                self.language_reminder()
            )),
            Message::user(format!(
                "{task}\n\n{joined}\n\n{}",
                self.language_reminder()
            )),
        ]
    }

    fn ask(
        &self,
        engine: &Engine,
        messages: Vec<Message>,
        max_tokens: usize,
        clock: &mut Clock,
        sink: Option<&SummarizeSink>,
    ) -> Result<Ask> {
        let t0 = Instant::now();
        // The answer so far, and whether it was stopped for going round in a loop (what it
        // holds then stands as the answer; `clean` drops the repeated lines).
        let mut so_far = String::new();
        let mut looped = false;
        // A cancelled request: stopped here for a loop (and not by the user), its whole lines
        // stand as the answer.
        let loop_stopped = |looped: bool, text: &str, clock: &mut Clock| {
            if !looped || self.cancelled() {
                return Ask::Cancelled;
            }
            clock.requests += 1;
            clock.request_ms += t0.elapsed().as_millis() as u64;
            Ask::Text(whole_lines(text).to_string())
        };
        let handle = engine.submit(Request {
            model: self.model_path.clone(),
            prompt: Prompt::Chat(messages),
            params: GenerationParams {
                max_tokens,
                sampling: SamplingParams::greedy(),
                // Each request is a new text: nothing to gain from the previous one's cache.
                prefix_cache: false,
                ..Default::default()
            },
            priority: Priority::Background,
        })?;
        loop {
            if self.cancelled() {
                handle.cancel();
            }
            let ev = match handle.recv_timeout(POLL) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(AppError::new(
                        "engine.stopped",
                        "The engine stopped before the summary was finished.",
                    ))
                }
            };
            match ev {
                EngineEvent::Text(t) => {
                    so_far.push_str(&t);
                    // A loop shows only when a line ends.
                    if !looped && t.contains('\n') && goes_round(&so_far) {
                        looped = true;
                        handle.cancel();
                    }
                    if let Some(sink) = sink {
                        sink(SummarizeEvent::Delta {
                            job_id: self.job_id,
                            text: t,
                        });
                    }
                }
                EngineEvent::Done(s) => {
                    if s.stop != StopReason::Cancelled {
                        clock.requests += 1;
                        clock.request_ms += t0.elapsed().as_millis() as u64;
                        let text = match s.stop {
                            StopReason::MaxTokens | StopReason::ContextFull => {
                                cut_unfinished(&s.text)
                            }
                            _ => s.text,
                        };
                        return Ok(Ask::Text(text));
                    }
                    return Ok(loop_stopped(looped, &s.text, clock));
                }
                EngineEvent::Failed(e) => {
                    let err: AppError = e.into();
                    if err.code == "engine.cancelled" {
                        return Ok(loop_stopped(looped, &so_far, clock));
                    }
                    return Err(err);
                }
                _ => {}
            }
        }
    }

    fn part_info(&self, p: &SummaryPart, by_id: &BTreeMap<ChunkId, &Chunk>) -> PartInfo {
        let chunks: Vec<&Chunk> = p
            .chunk_ids
            .iter()
            .filter_map(|c| by_id.get(c).copied())
            .collect();
        PartInfo {
            id: p.id.get(),
            level: p.level,
            ordinal: p.ordinal,
            text: p.text.clone(),
            cites: cite(&chunks),
        }
    }

    /// Ok(Some(text)): finished; Ok(None): cancelled.
    fn run(&self, engine: &Engine, store: &Store, sink: &SummarizeSink) -> Result<Option<String>> {
        let tok = tokenizer_for(&self.model_path)?;
        let count = counter(Some(tok));
        let part_tokens = self.options.part_tokens as usize;
        let fan_in = self.options.length.key_points();
        let by_id: BTreeMap<ChunkId, &Chunk> = self.chunks.iter().map(|c| (c.id, c)).collect();
        let stored: BTreeMap<(u32, u32), SummaryPart> = store
            .summary_parts(self.summary_id)?
            .into_iter()
            .map(|p| ((p.level, p.ordinal), p))
            .collect();
        let mut clock = Clock {
            started: Instant::now(),
            requests: 0,
            request_ms: 0,
        };
        let n = self.chunks.len();
        let progress = |stage, level, done: usize, total: usize, clock: &Clock, left: usize| {
            sink(SummarizeEvent::Progress {
                job_id: self.job_id,
                stage,
                level,
                done: done as u32,
                total: total as u32,
                eta_ms: clock.eta(left),
            })
        };
        let emit = |p: &SummaryPart, resumed: bool| {
            sink(SummarizeEvent::Part {
                job_id: self.job_id,
                part: self.part_info(p, &by_id),
                resumed,
            })
        };

        // Map: one partial summary per chunk.
        let mut level_nodes: Vec<Node> = Vec::with_capacity(n);
        for (i, chunk) in self.chunks.iter().enumerate() {
            let want: BTreeSet<ChunkId> = [chunk.id].into();
            if let Some(p) = stored.get(&(0, i as u32)) {
                if p.chunk_ids.iter().copied().collect::<BTreeSet<_>>() == want {
                    emit(p, true);
                    level_nodes.push(Node {
                        text: p.text.clone(),
                        chunks: want,
                    });
                    continue;
                }
            }
            if self.cancelled() {
                return Ok(None);
            }
            let left = (n - i) + reduce_requests(n, fan_in);
            progress(SummaryStage::Map, 0, i, n, &clock, left);
            let text = match self.ask(
                engine,
                self.map_prompt(chunk),
                part_tokens,
                &mut clock,
                None,
            )? {
                Ask::Text(t) => clean(&t),
                Ask::Cancelled => return Ok(None),
            };
            // A model that wrote nothing usable: the chunk's own opening stands for it.
            let text = if text.is_empty() {
                truncate_tokens(&chunk.text, part_tokens, &count)
            } else {
                text
            };
            let p = store.add_summary_part(
                self.summary_id,
                &NewSummaryPart {
                    level: 0,
                    ordinal: i as u32,
                    text: text.clone(),
                    chunk_ids: vec![chunk.id],
                },
            )?;
            emit(&p, false);
            level_nodes.push(Node { text, chunks: want });
        }
        progress(
            SummaryStage::Map,
            0,
            n,
            n,
            &clock,
            reduce_requests(n, fan_in),
        );

        // Reduce: combine until the rest fits one request with at most `fan_in` inputs.
        let summary_tokens = self.options.summary_tokens as usize;
        let budget = self
            .context
            .saturating_sub(summary_tokens + PROMPT_OVERHEAD)
            .clamp(
                2 * part_tokens + 8,
                MAX_REDUCE_INPUT.max(2 * part_tokens + 8),
            );
        let mut level = 0u32;
        loop {
            let sizes: Vec<usize> = level_nodes.iter().map(|n| count(&n.text) + 2).collect();
            let groups = pack(&sizes, budget, fan_in);
            if groups.len() <= 1 {
                break;
            }
            level += 1;
            let total = groups.len();
            let mut next = Vec::with_capacity(total);
            for (j, g) in groups.into_iter().enumerate() {
                let inputs: Vec<&Node> = level_nodes[g.clone()].iter().collect();
                let want: BTreeSet<ChunkId> = inputs
                    .iter()
                    .flat_map(|n| n.chunks.iter().copied())
                    .collect();
                if let Some(p) = stored.get(&(level, j as u32)) {
                    if p.chunk_ids.iter().copied().collect::<BTreeSet<_>>() == want {
                        emit(p, true);
                        next.push(Node {
                            text: p.text.clone(),
                            chunks: want,
                        });
                        continue;
                    }
                }
                let text = if inputs.len() == 1 {
                    // A lone input goes up a level as it is.
                    inputs[0].text.clone()
                } else {
                    if self.cancelled() {
                        return Ok(None);
                    }
                    let left = (total - j) + reduce_requests(total, fan_in);
                    progress(SummaryStage::Reduce, level, j, total, &clock, left);
                    let t = match self.ask(
                        engine,
                        self.reduce_prompt(&inputs, false),
                        part_tokens,
                        &mut clock,
                        None,
                    )? {
                        Ask::Text(t) => clean(&t),
                        Ask::Cancelled => return Ok(None),
                    };
                    if t.is_empty() {
                        truncate_tokens(&inputs[0].text, part_tokens, &count)
                    } else {
                        t
                    }
                };
                let p = store.add_summary_part(
                    self.summary_id,
                    &NewSummaryPart {
                        level,
                        ordinal: j as u32,
                        text: text.clone(),
                        chunk_ids: want.iter().copied().collect(),
                    },
                )?;
                emit(&p, false);
                next.push(Node { text, chunks: want });
            }
            progress(SummaryStage::Reduce, level, total, total, &clock, 1);
            level_nodes = next;
        }

        // Final: the summary from the parts that are left (the key points).
        if self.cancelled() {
            return Ok(None);
        }
        progress(SummaryStage::Final, level + 1, 0, 1, &clock, 1);
        let inputs: Vec<&Node> = level_nodes.iter().collect();
        let text = match self.ask(
            engine,
            self.reduce_prompt(&inputs, true),
            summary_tokens,
            &mut clock,
            Some(sink),
        )? {
            Ask::Text(t) => clean(&t),
            Ask::Cancelled => return Ok(None),
        };
        let text = if text.is_empty() {
            inputs
                .iter()
                .map(|n| n.text.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            text
        };
        progress(SummaryStage::Final, level + 1, 1, 1, &clock, 0);
        let _ = clock.started;
        Ok(Some(text))
    }
}

/// The summary view of stored summary `id`.
pub(crate) fn load_summary(store: &Store, id: SummaryId) -> Result<DocumentSummary> {
    let s = store.summary(id)?;
    let options = parse_options(s.instructions.as_deref());
    let chunks: Vec<Chunk> = store
        .chunks(s.document_id)?
        .into_iter()
        .filter(|c| in_pages(c, options.as_ref().and_then(|o| o.pages)))
        .collect();
    let by_id: BTreeMap<ChunkId, &Chunk> = chunks.iter().map(|c| (c.id, c)).collect();
    let parts = store.summary_parts(id)?;
    let of = |ids: &[ChunkId]| -> Vec<&Chunk> {
        ids.iter().filter_map(|c| by_id.get(c).copied()).collect()
    };
    let infos: Vec<PartInfo> = parts
        .iter()
        .map(|p| PartInfo {
            id: p.id.get(),
            level: p.level,
            ordinal: p.ordinal,
            text: p.text.clone(),
            cites: cite(&of(&p.chunk_ids)),
        })
        .collect();
    let summarized: BTreeSet<ChunkId> = parts
        .iter()
        .filter(|p| p.level == 0)
        .flat_map(|p| p.chunk_ids.iter().copied())
        .collect();
    let done = s.status == TaskStatus::Done;
    // The final request read the parts of the highest level.
    let key_points = if done {
        let top = parts.iter().map(|p| p.level).max().unwrap_or(0);
        infos
            .iter()
            .filter(|p| p.level == top)
            .map(|p| KeyPoint {
                text: p.text.clone(),
                part_id: p.id,
                cites: p.cites.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let all: Vec<ChunkId> = summarized.iter().copied().collect();
    Ok(DocumentSummary {
        summary_id: s.id.get(),
        document_id: s.document_id.get(),
        model_id: s.model_id,
        status: status_name(s.status),
        error: s.error,
        length: options.as_ref().map(|o| o.length).unwrap_or_default(),
        language: options
            .as_ref()
            .map(|o| o.lang.clone())
            .unwrap_or_else(|| "en".into()),
        pages: options.as_ref().and_then(|o| o.pages),
        text: if done {
            s.text.unwrap_or_default()
        } else {
            String::new()
        },
        key_points,
        cites: cite(&of(&all)),
        chunks_total: chunks.len() as u32,
        chunks_summarized: summarized.len() as u32,
        parts: infos,
        created_at: s.created_at,
        updated_at: s.updated_at,
    })
}

fn bad_request(message: impl Into<String>) -> AppError {
    AppError::new("summarize.invalid_request", message)
}

impl Assistant {
    /// Starts (or resumes) a summary; see the module header for what the sink receives.
    pub fn summarize(&self, req: SummarizeRequest, sink: SummarizeSink) -> Result<SummaryStarted> {
        let doc = DocumentId(req.document_id);
        self.document(req.document_id)?;
        let chunks: Vec<Chunk> = self
            .store()
            .chunks(doc)?
            .into_iter()
            .filter(|c| in_pages(c, req.pages))
            .collect();
        if let Some([a, b]) = req.pages {
            if a == 0 || b < a {
                return Err(bad_request(format!(
                    "Pages {a}-{b} are not a range of pages (the first page is 1)."
                )));
            }
        }
        if chunks.is_empty() {
            return Err(AppError::new(
                "summarize.nothing_to_summarize",
                "There is no text in the pages asked for.",
            ));
        }
        let language = match req
            .language
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            Some(code) => Language::parse(code).ok_or_else(|| {
                AppError::new(
                    "summarize.unsupported_language",
                    format!(
                        "Hearth cannot write summaries in '{code}'. Choose one of: {}.",
                        Language::ALL
                            .iter()
                            .map(|l| l.code())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?,
            None => {
                let sample: String = chunks.iter().take(3).map(|c| c.text.as_str()).collect();
                crate::translate::detect(&sample)
                    .map(|d| d.language)
                    .unwrap_or(Language::En)
            }
        };
        let (model_id, model_path) = self.resolve_model(req.model.as_deref())?;
        let context = hearth_engine::gguf::ModelFile::open(&model_path)
            .and_then(|f| f.config())
            .map(|c| c.context_len)
            .unwrap_or(2048)
            .max(512);
        let options = Options {
            v: 1,
            length: req.length,
            lang: language.code().into(),
            pages: req.pages,
            part_tokens: req
                .max_part_tokens
                .unwrap_or(req.length.part_tokens())
                .clamp(8, 1024),
            summary_tokens: req
                .max_summary_tokens
                .unwrap_or(req.length.summary_tokens())
                .clamp(16, 4096),
        };
        let largest = chunks
            .iter()
            .map(|c| c.token_count as usize)
            .max()
            .unwrap_or(0);
        if largest + options.part_tokens as usize + PROMPT_OVERHEAD > context {
            return Err(AppError::new(
                "summarize.context_too_small",
                format!(
                    "The model's context ({context} tokens) is too small for this document's \
                     chunks ({largest} tokens). Choose a model with a larger context."
                ),
            ));
        }
        let instructions = serde_json::to_string(&options)
            .map_err(|e| AppError::new("summarize.invalid_request", e.to_string()))?;
        let previous =
            self.store().summaries(doc)?.into_iter().rev().find(|s| {
                s.model_id == model_id && s.instructions.as_deref() == Some(&instructions)
            });
        if let Some(p) = &previous {
            if lock(&self.inner.jobs).contains_key(&summary_job_key(p.id)) {
                return Err(AppError::new(
                    "summarize.already_running",
                    "This document is already being summarized with these options.",
                ));
            }
        }
        let (summary, finished) = match previous {
            Some(p) if req.restart => {
                self.store().delete_summary(p.id)?;
                (None, false)
            }
            Some(p) if p.status == TaskStatus::Done => (Some(p), true),
            Some(p) => {
                self.store().reopen_summary(p.id)?;
                (Some(p), false)
            }
            None => (None, false),
        };
        let summary = match summary {
            Some(s) => s,
            None => self.store().create_summary(&NewSummary {
                document_id: doc,
                model_id: model_id.clone(),
                instructions: Some(instructions),
                sampling: hearth_store::Sampling {
                    temperature: Some(0.0),
                    max_tokens: Some(options.part_tokens),
                    ..Default::default()
                },
            })?,
        };
        let resumed_parts = self.store().summary_parts(summary.id)?.len() as u32;
        let job_id = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let started = SummaryStarted {
            job_id,
            summary_id: summary.id.get(),
            document_id: doc.get(),
            model_id: model_id.clone(),
            chunks: chunks.len() as u32,
            resumed_parts,
        };
        let _ = self.store().touch_model(&model_id);
        let cancel = Arc::new(AtomicBool::new(false));
        let work = Work {
            job_id,
            summary_id: summary.id,
            document_id: doc,
            model_path,
            options,
            language,
            context,
            chunks,
            cancel: cancel.clone(),
        };
        {
            let mut jobs = lock(&self.inner.jobs);
            jobs.insert(job_id, cancel.clone());
            // Marks the summary as being worked on (see `already_running` above).
            jobs.insert(summary_job_key(summary.id), cancel);
        }
        let inner = self.inner.clone();
        let chunks_n = started.chunks;
        let spawned = std::thread::Builder::new()
            .name(format!("hearth-summarize-{job_id}"))
            .spawn(move || {
                sink(SummarizeEvent::Started {
                    job_id,
                    summary_id: work.summary_id.get(),
                    chunks: chunks_n,
                    resumed_parts,
                });
                let store = &inner.store;
                let outcome = if finished {
                    Ok(Some(String::new()))
                } else {
                    work.run(&inner.engine, store, &sink)
                };
                let end = match outcome {
                    Ok(Some(text)) => {
                        let r = if finished {
                            Ok(())
                        } else {
                            store
                                .finish_summary(work.summary_id, &text, Outcome::Done)
                                .map(drop)
                        };
                        r.map_err(AppError::from)
                            .and_then(|_| load_summary(store, work.summary_id))
                            .map(|s| ("done", s))
                    }
                    Ok(None) => store
                        .finish_summary(work.summary_id, "", Outcome::Cancelled)
                        .map_err(AppError::from)
                        .and_then(|_| load_summary(store, work.summary_id))
                        .map(|s| ("cancelled", s)),
                    Err(e) => {
                        let _ = store.finish_summary(
                            work.summary_id,
                            "",
                            Outcome::Failed(e.message.clone()),
                        );
                        Err(e)
                    }
                };
                {
                    let mut jobs = lock(&inner.jobs);
                    jobs.remove(&job_id);
                    jobs.remove(&summary_job_key(work.summary_id));
                }
                let _ = work.document_id;
                match end {
                    Ok((status, summary)) => sink(SummarizeEvent::Done {
                        job_id,
                        status: status.into(),
                        summary: Box::new(summary),
                    }),
                    Err(error) => sink(SummarizeEvent::Failed { job_id, error }),
                }
            });
        if let Err(e) = spawned {
            let mut jobs = lock(&self.inner.jobs);
            jobs.remove(&job_id);
            jobs.remove(&summary_job_key(summary.id));
            let msg = format!("Cannot start the summary: {e}");
            let _ = self
                .store()
                .finish_summary(summary.id, "", Outcome::Failed(msg.clone()));
            return Err(AppError::new("assistant.thread", msg));
        }
        Ok(started)
    }

    /// Carries on with a stored summary that was cancelled, failed or interrupted by a restart,
    /// with the options it was started with.
    pub fn resume_summary(&self, summary_id: i64, sink: SummarizeSink) -> Result<SummaryStarted> {
        let s = self.store().summary(SummaryId(summary_id))?;
        let o = parse_options(s.instructions.as_deref()).ok_or_else(|| {
            bad_request("This summary was made by another version of Hearth; start a new one.")
        })?;
        self.summarize(
            SummarizeRequest {
                document_id: s.document_id.get(),
                length: o.length,
                language: Some(o.lang),
                model: Some(s.model_id),
                pages: o.pages,
                max_part_tokens: Some(o.part_tokens),
                max_summary_tokens: Some(o.summary_tokens),
                restart: false,
            },
            sink,
        )
    }

    /// One stored summary, with its key points, citations and partial summaries.
    pub fn summary(&self, summary_id: i64) -> Result<DocumentSummary> {
        load_summary(self.store(), SummaryId(summary_id))
    }

    /// A document's summaries, oldest first.
    pub fn document_summaries(&self, document_id: i64) -> Result<Vec<DocumentSummary>> {
        self.document(document_id)?;
        self.store()
            .summaries(DocumentId(document_id))?
            .into_iter()
            .map(|s| load_summary(self.store(), s.id))
            .collect()
    }

    /// Summaries left `running` by a previous run of the app (none of this process's jobs):
    /// offer to resume them with [`Assistant::resume_summary`].
    pub fn interrupted_summaries(&self) -> Result<Vec<DocumentSummary>> {
        let mut out = Vec::new();
        for d in self.store().list_documents()? {
            for s in self.store().summaries(d.id)? {
                if s.status == TaskStatus::Running
                    && !lock(&self.inner.jobs).contains_key(&summary_job_key(s.id))
                {
                    out.push(load_summary(self.store(), s.id)?);
                }
            }
        }
        Ok(out)
    }
}

/// The key under which a running summary is registered in the job table: job ids count up from
/// 1, so the top bit keeps the two apart.
fn summary_job_key(id: SummaryId) -> u64 {
    (1u64 << 63) | id.get() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_respects_budget_and_fan_in() {
        assert_eq!(pack(&[10, 10, 10, 10, 10], 100, 2), vec![0..2, 2..4, 4..5]);
        assert_eq!(pack(&[60, 60, 60], 100, 8), vec![0..1, 1..2, 2..3]);
        assert_eq!(pack(&[30, 30, 30], 100, 8), vec![0..3]);
        assert_eq!(pack(&[], 100, 8), Vec::<std::ops::Range<usize>>::new());
    }

    #[test]
    fn reduce_request_estimate() {
        assert_eq!(reduce_requests(3, 5), 1);
        assert_eq!(reduce_requests(10, 5), 3);
        assert_eq!(reduce_requests(26, 5), 1 + 6 + 2);
    }

    #[test]
    fn cleaning_takes_labels_off() {
        assert_eq!(clean("  Summary: one.\n\n two. "), "one.\ntwo.");
    }

    #[test]
    fn cleaning_drops_lines_already_written() {
        assert_eq!(
            clean("BASH(1)\nBASH(1)\n  BASH(1)\nbash reads commands.\nBASH(1)"),
            "BASH(1)\nbash reads commands."
        );
        assert_eq!(clean("a\nb\na\nb\nc"), "a\nb\nc");
        assert_eq!(clean("a.\nA.\na. b."), "a.\nA.\na. b.");
    }

    #[test]
    fn a_stopped_loop_keeps_its_whole_lines() {
        assert_eq!(whole_lines("a\nBASH(1)\nBASH(1"), "a\nBASH(1)");
        assert_eq!(whole_lines("a\nb\n"), "a\nb");
        assert_eq!(whole_lines("one line"), "one line");
    }

    #[test]
    fn an_answer_cut_by_its_token_limit_ends_after_a_sentence_or_a_word() {
        // The key point of bash.pdf's first page, stopped by the part's token limit.
        assert_eq!(
            cut_unfinished(
                "BASH(1) General Commands Manual NAME bash − GNU Bourne-Again SHell SYNOPSIS bash \
                 [options] COPYRIGHT Bash is Copyright © 1989-2022 by the Free Software \
                 Foundation, Inc. DESCRIPTION B"
            ),
            "BASH(1) General Commands Manual NAME bash − GNU Bourne-Again SHell SYNOPSIS bash \
             [options] COPYRIGHT Bash is Copyright © 1989-2022 by the Free Software \
             Foundation, Inc."
        );
        // The last whole sentence, not a number's point or an abbreviation's end mid-word.
        assert_eq!(
            cut_unfinished("It reads 1.5 MB of text from the file. Then it wri"),
            "It reads 1.5 MB of text from the file."
        );
        assert_eq!(
            cut_unfinished("Bash reads commands. It runs them? It writes the output to the sc"),
            "Bash reads commands. It runs them?"
        );
        // Lines: the unfinished last one goes.
        assert_eq!(
            cut_unfinished("- Bash reads commands\n- It runs scripts\n- It wri"),
            "- Bash reads commands\n- It runs scripts"
        );
        // A last sentence longer than half the text: cut after a word instead.
        assert_eq!(
            cut_unfinished("Short. Then a much longer sentence that the limit cut off in the midd"),
            "Short. Then a much longer sentence that the limit cut off in the…"
        );
        // Chinese: after the last full stop, else as it is with "…".
        assert_eq!(
            cut_unfinished("该手册介绍命令。它说明如何运行脚本。它还介绍了历"),
            "该手册介绍命令。它说明如何运行脚本。"
        );
        assert_eq!(
            cut_unfinished("该手册介绍命令和脚本的运"),
            "该手册介绍命令和脚本的运…"
        );
        // Finished answers stay as they are.
        for done in [
            "Bash reads commands.",
            "它运行脚本。",
            "Is it?",
            "And so on…",
            "",
        ] {
            assert_eq!(cut_unfinished(done), done);
        }
        assert_eq!(cut_unfinished("It ends here.  \n"), "It ends here.");
    }

    #[test]
    fn a_line_written_a_third_time_is_a_loop() {
        assert!(!goes_round(""));
        assert!(!goes_round("BASH(1)\nBASH(1)\n"));
        // The third line is not whole until its newline.
        assert!(!goes_round("BASH(1)\nBASH(1)\nBASH(1)"));
        assert!(goes_round("BASH(1)\nBASH(1)\n BASH(1) \n"));
        assert!(goes_round("x\nBASH(1)\n\nBASH(1)\ny\nBASH(1)\n"));
        // A cycle of two lines.
        assert!(goes_round("a\nb\na\nb\na\n"));
        assert!(!goes_round("a\nb\na\nb\n"));
        // Different lines, or the same words inside other lines.
        assert!(!goes_round("one.\ntwo.\nthree.\n"));
        assert!(!goes_round("a b\na\nb a\na b c\n"));
    }
}
