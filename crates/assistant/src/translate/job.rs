//! One running translation: the blocks of a document translated piece by piece on the engine,
//! in order, each piece with the one before as context; events to the sink; the result stored.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_engine::{
    Engine, EngineEvent, GenerationParams, Priority, Request, SamplingParams, StopReason,
};
use hearth_store::{Outcome, Store, TranslationId};
use hearth_tokenizer::GgufTokenizer;

use super::glossary::{self, GlossaryIssue, GlossaryTerm};
use super::lang::{detect, Language};
use super::prompt::{self, ModelFamily, PieceInput};
use super::segment::{self, Segmented, TextFormat};
use super::selection::ModelChoice;
use super::{align, TranslateEvent, TranslateSink, TranslationResult, TranslationStats};
use crate::error::AppError;

/// How often the cancel flag is looked at while tokens arrive.
const POLL: Duration = Duration::from_millis(40);

pub(crate) struct Job {
    pub job_id: u64,
    pub translation_id: TranslationId,
    pub doc: Segmented,
    pub source: Language,
    pub target: Language,
    pub choice: ModelChoice,
    pub glossary: Vec<GlossaryTerm>,
    pub max_piece_tokens: usize,
    pub max_output_tokens: Option<usize>,
    pub priority: Priority,
    pub cancel: Arc<AtomicBool>,
}

/// What one request asks for (see [`PieceInput`]).
struct Ask<'a> {
    text: &'a str,
    previous: Option<(&'a str, &'a str)>,
    insist: bool,
    remind_language: bool,
}

fn ask<'a>(
    text: &'a str,
    previous: Option<(&'a str, &'a str)>,
    insist: bool,
    remind_language: bool,
) -> Ask<'a> {
    Ask {
        text,
        previous,
        insist,
        remind_language,
    }
}

/// How one request ended.
enum Piece {
    Text(String),
    Cancelled,
}

struct Progress {
    translations: Vec<Option<String>>,
    issues: Vec<GlossaryIssue>,
    lost_code: Vec<usize>,
    wrong_language: Vec<usize>,
    stats: TranslationStats,
    /// Blocks finished (translated or copied), from the first.
    finished: usize,
}

impl Job {
    /// What goes between translated pieces and sentences of a block.
    fn sep(&self) -> &'static str {
        if self.target.unspaced() {
            ""
        } else {
            " "
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub(crate) fn run(
        self,
        engine: &Engine,
        store: &Store,
        tokenizer: Result<Arc<GgufTokenizer>, AppError>,
        sink: &TranslateSink,
    ) {
        let started = Instant::now();
        let total = self.doc.prose_blocks().count();
        sink(TranslateEvent::Started {
            job_id: self.job_id,
            translation_id: self.translation_id.get(),
            total,
        });
        let mut p = Progress {
            translations: vec![None; self.doc.blocks.len()],
            issues: Vec::new(),
            lost_code: Vec::new(),
            wrong_language: Vec::new(),
            stats: TranslationStats::default(),
            finished: 0,
        };
        let outcome = match tokenizer {
            Ok(tok) => self.translate_all(engine, &tok, &mut p, sink, total),
            Err(e) => Err(e),
        };
        p.stats.elapsed_ms = started.elapsed().as_millis() as u64;
        let complete = matches!(outcome, Ok(true));
        let upto = if complete {
            self.doc.blocks.len()
        } else {
            p.finished
        };
        let (text, ranges) = self.doc.assemble(&p.translations, upto);
        let translated: Vec<bool> = p.translations.iter().map(Option::is_some).collect();
        let result = TranslationResult {
            translation_id: self.translation_id.get(),
            source_lang: self.source,
            target_lang: self.target,
            model_id: self.choice.model.id.clone(),
            model_name: self.choice.model.name.clone(),
            format: self.doc.format,
            segments: align(&self.doc, &text, &ranges, &translated),
            text,
            glossary_issues: p.issues,
            lost_code: p.lost_code,
            wrong_language: p.wrong_language,
            stats: p.stats,
        };
        match outcome {
            Ok(done) => {
                let stored_outcome = if done {
                    Outcome::Done
                } else {
                    Outcome::Cancelled
                };
                if let Err(e) =
                    store.finish_translation(self.translation_id, &result.text, stored_outcome)
                {
                    sink(TranslateEvent::Failed {
                        job_id: self.job_id,
                        error: e.into(),
                        partial: Some(result),
                    });
                    return;
                }
                sink(TranslateEvent::Done {
                    job_id: self.job_id,
                    status: if done { "done" } else { "cancelled" }.into(),
                    result,
                });
            }
            Err(error) => {
                let _ = store.finish_translation(
                    self.translation_id,
                    &result.text,
                    Outcome::Failed(error.message.clone()),
                );
                sink(TranslateEvent::Failed {
                    job_id: self.job_id,
                    error,
                    partial: Some(result),
                });
            }
        }
    }

    /// Ok(true): every block done; Ok(false): cancelled.
    fn translate_all(
        &self,
        engine: &Engine,
        tok: &GgufTokenizer,
        p: &mut Progress,
        sink: &TranslateSink,
        total: usize,
    ) -> Result<bool, AppError> {
        let count = |s: &str| tok.token_count(s).unwrap_or(s.len() / 3 + 1);
        // Leave room in the context for the rules, the previous piece, and both translations.
        let ctx = self.choice.model.context_length.max(512) as usize;
        let budget = self.max_piece_tokens.min(ctx / 6).max(8);
        let mut previous: Option<(String, String)> = None;
        let mut done = 0;
        let mut at = 0;
        for (i, block) in self.doc.blocks.iter().enumerate() {
            if self.cancelled() {
                return Ok(false);
            }
            let Some(text) = &block.text else {
                p.finished = i + 1;
                self.emit_segment(sink, p, i, &mut at);
                continue;
            };
            sink(TranslateEvent::Progress {
                job_id: self.job_id,
                segment: i,
                done,
                total,
            });
            let mut parts = Vec::new();
            for r in segment::pieces(text, budget, &count) {
                let piece = text[r].trim();
                if piece.is_empty() {
                    continue;
                }
                let ctx_pair = previous
                    .as_ref()
                    .and_then(|(a, b)| context_pair(a, b, &count));
                match self.translate_piece(engine, i, piece, &parts, ctx_pair, &count, p, sink)? {
                    Piece::Text(t) => {
                        previous = Some((piece.to_string(), t.clone()));
                        parts.push(t);
                    }
                    Piece::Cancelled => return Ok(false),
                }
            }
            let mut joined = parts.join(self.sep());
            if self.doc.format == TextFormat::Markdown {
                let (fixed, lost) = restore_code_spans(text, &joined);
                joined = fixed;
                if lost > 0 {
                    p.lost_code.push(i);
                }
            }
            // A prescribed term the model left in the source language is put right; one it
            // rendered as some other word is flagged.
            let (repaired, _) =
                glossary::repair(&self.glossary, text, &joined, self.source, self.target);
            joined = repaired;
            let issues =
                glossary::check(&self.glossary, i, text, &joined, self.source, self.target);
            p.issues.extend(issues);
            p.translations[i] = Some(joined);
            p.finished = i + 1;
            done += 1;
            self.emit_segment(sink, p, i, &mut at);
        }
        Ok(true)
    }

    /// Sends the `segment` event for block `i`; `at` is where the previous block ended in the
    /// source.
    fn emit_segment(&self, sink: &TranslateSink, p: &Progress, i: usize, at: &mut usize) {
        let b = &self.doc.blocks[i];
        let gap = self.doc.source.get(*at..b.range.start).unwrap_or("");
        let body = match (&p.translations[i], &b.text) {
            (Some(t), Some(_)) => format!("{}{}{}", b.prefix, t, b.suffix),
            _ => self.doc.block_source(i).to_string(),
        };
        *at = b.range.end;
        let mut rendered = format!("{gap}{body}");
        if i + 1 == self.doc.blocks.len() {
            rendered.push_str(self.doc.source.get(b.range.end..).unwrap_or(""));
        }
        sink(TranslateEvent::Segment {
            job_id: self.job_id,
            segment: i,
            translated: p.translations[i].is_some(),
            text: p.translations[i]
                .clone()
                .unwrap_or_else(|| self.doc.block_source(i).to_string()),
            rendered,
            glossary_issues: p
                .issues
                .iter()
                .filter(|x| x.segment == i)
                .cloned()
                .collect(),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn translate_piece(
        &self,
        engine: &Engine,
        block: usize,
        piece: &str,
        done: &[String],
        previous: Option<(&str, &str)>,
        count: &dyn Fn(&str) -> usize,
        p: &mut Progress,
        sink: &TranslateSink,
    ) -> Result<Piece, AppError> {
        let terms = glossary::relevant(&self.glossary, piece, self.source);
        // An answer's faults: (came back in the source language, prescribed terms missing).
        // The fewest win, the first answer on a tie.
        let faults = |out: &str| {
            let missing = terms
                .iter()
                .filter(|t| !glossary::contains_term(out, &t.target, self.target))
                .count();
            (
                in_source_language(out, piece, self.source, self.target),
                missing,
            )
        };
        let first = match self.attempt(
            engine,
            block,
            ask(piece, previous, false, false),
            count,
            p,
            sink,
        )? {
            Some(t) => t,
            None => return Ok(Piece::Cancelled),
        };
        let mut best = (faults(&first), first);
        let (wrong, missing) = best.0;
        // A second request only for a fault a firmer request can put right.
        if wrong || missing > 0 {
            // The block shows the new answer in place of the first, not after it: its text goes
            // back to the pieces done before this one.
            let mut kept = done.join(self.sep());
            if !done.is_empty() {
                kept.push_str(self.sep());
            }
            sink(TranslateEvent::Rewrite {
                job_id: self.job_id,
                segment: block,
                text: kept,
            });
            let sentences: Vec<&str> = segment::split_sentences(piece)
                .into_iter()
                .map(|r| piece[r].trim())
                .filter(|s| !s.is_empty())
                .collect();
            let second = if wrong && sentences.len() > 1 {
                // A small model that rewrote a passage in its own language often translates
                // the same passage a sentence at a time.
                let mut parts = Vec::with_capacity(sentences.len());
                let mut before = previous.map(|(a, b)| (a.to_string(), b.to_string()));
                let sep = self.sep();
                for (k, sentence) in sentences.into_iter().enumerate() {
                    if k > 0 && !sep.is_empty() {
                        sink(TranslateEvent::Delta {
                            job_id: self.job_id,
                            segment: block,
                            text: sep.to_string(),
                        });
                    }
                    let context = before.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
                    let a = ask(sentence, context, missing > 0, true);
                    match self.attempt(engine, block, a, count, p, sink)? {
                        Some(t) => {
                            before = Some((sentence.to_string(), t.clone()));
                            parts.push(t);
                        }
                        None => return Ok(Piece::Cancelled),
                    }
                }
                parts.join(sep)
            } else {
                match self.attempt(
                    engine,
                    block,
                    ask(piece, previous, missing > 0, wrong),
                    count,
                    p,
                    sink,
                )? {
                    Some(t) => t,
                    None => return Ok(Piece::Cancelled),
                }
            };
            let f = faults(&second);
            if f < best.0 {
                best = (f, second);
            }
        }
        let ((wrong, _), text) = best;
        if wrong && !p.wrong_language.contains(&block) {
            p.wrong_language.push(block);
        }
        Ok(Piece::Text(text))
    }

    /// One request for `a.text` (a piece, or one sentence of it): its translation, or None when
    /// the translation was cancelled.
    fn attempt(
        &self,
        engine: &Engine,
        block: usize,
        a: Ask<'_>,
        count: &dyn Fn(&str) -> usize,
        p: &mut Progress,
        sink: &TranslateSink,
    ) -> Result<Option<String>, AppError> {
        let terms = glossary::relevant(&self.glossary, a.text, self.source);
        let input = PieceInput {
            source: self.source,
            target: self.target,
            text: a.text,
            previous: a.previous,
            glossary: &terms,
            markdown: self.doc.format == TextFormat::Markdown,
            insist: a.insist,
            remind_language: a.remind_language,
        };
        Ok(match self.request(engine, block, &input, count, p, sink)? {
            Piece::Text(t) => Some(t),
            Piece::Cancelled => None,
        })
    }

    fn request(
        &self,
        engine: &Engine,
        block: usize,
        input: &PieceInput<'_>,
        count: &dyn Fn(&str) -> usize,
        p: &mut Progress,
        sink: &TranslateSink,
    ) -> Result<Piece, AppError> {
        let family = self.choice.model.family;
        let built = prompt::build(family, input);
        let piece_tokens = count(input.text);
        let max_tokens = self
            .max_output_tokens
            .unwrap_or(piece_tokens * 3 + 32)
            .min(self.choice.model.context_length.max(512) as usize / 2);
        let handle = engine.submit(Request {
            model: self.choice.model.path.clone(),
            prompt: built.prompt,
            params: GenerationParams {
                max_tokens,
                sampling: SamplingParams::greedy(),
                stop: built.stop,
                ..Default::default()
            },
            priority: self.priority,
        })?;
        p.stats.requests += 1;
        let mut raw = String::new();
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
                        "The engine stopped before the translation was finished.",
                    ))
                }
            };
            match ev {
                EngineEvent::Text(t) => {
                    raw.push_str(&t);
                    sink(TranslateEvent::Delta {
                        job_id: self.job_id,
                        segment: block,
                        text: t,
                    });
                }
                EngineEvent::Done(s) => {
                    p.stats.prompt_tokens += s.prompt.prompt_tokens as u64;
                    p.stats.completion_tokens += s.tokens.len() as u64;
                    if s.stop == StopReason::Cancelled {
                        return Ok(Piece::Cancelled);
                    }
                    let mut text = prompt::clean(&s.text, input.text, self.target);
                    if text.is_empty() && family != ModelFamily::Plain {
                        // The model wrote only what cleaning removes: keep its raw words rather
                        // than lose the piece.
                        text = s.text.split_whitespace().collect::<Vec<_>>().join(" ");
                    }
                    return Ok(Piece::Text(text));
                }
                EngineEvent::Failed(e) => {
                    let err: AppError = e.into();
                    if err.code == "engine.cancelled" {
                        return Ok(Piece::Cancelled);
                    }
                    return Err(err);
                }
                EngineEvent::Loading { .. } | EngineEvent::Loaded(_) | EngineEvent::Started(_) => {}
            }
        }
    }
}

/// Letters a text needs before its language is judged: fewer (a name, a number with a unit)
/// often read the same in both languages.
const JUDGE_LETTERS: usize = 12;

/// Whether `out`, the translation of `piece`, came back in the source language instead of the
/// target. Judged only when both have letters enough, the piece itself reads as the source
/// language, and the detector is reasonably sure (names and acronyms alone give it no evidence).
pub(crate) fn in_source_language(
    out: &str,
    piece: &str,
    source: Language,
    target: Language,
) -> bool {
    if source == target {
        return false;
    }
    let letters = |s: &str| s.chars().filter(|c| c.is_alphabetic()).count();
    if letters(out) < JUDGE_LETTERS || letters(piece) < JUDGE_LETTERS {
        return false;
    }
    let reads_as_source =
        |s: &str| detect(s).is_some_and(|d| d.language == source && d.confidence >= MIN_CONFIDENCE);
    reads_as_source(piece) && reads_as_source(out)
}

/// How sure [`detect`] must be before an answer counts as written in the source language.
const MIN_CONFIDENCE: f32 = 0.3;

/// Tokens of context (previous piece and its translation) sent with a piece at most.
const CONTEXT_TOKENS: usize = 160;

/// The context for the next piece: the previous piece and its translation when they are short,
/// else their last sentences, else nothing. Context keeps terms consistent, but every token of
/// it is read again with each request.
fn context_pair<'a>(
    source: &'a str,
    translation: &'a str,
    count: &dyn Fn(&str) -> usize,
) -> Option<(&'a str, &'a str)> {
    if source.is_empty() || translation.is_empty() {
        return None;
    }
    if count(source) + count(translation) <= CONTEXT_TOKENS {
        return Some((source, translation));
    }
    let last = |t: &'a str| {
        segment::split_sentences(t)
            .last()
            .map(|r| t[r.clone()].trim())
    };
    let (s, t) = (last(source)?, last(translation)?);
    (!s.is_empty() && !t.is_empty() && count(s) + count(t) <= CONTEXT_TOKENS).then_some((s, t))
}

/// Puts the source's inline code spans back into a translation: spans the model changed are
/// replaced by the originals (in order), spans it unwrapped are wrapped again. Returns the text
/// and how many spans could not be found at all.
pub(crate) fn restore_code_spans(source: &str, translated: &str) -> (String, usize) {
    let src: Vec<&str> = segment::code_spans(source)
        .into_iter()
        .map(|r| &source[r])
        .collect();
    if src.is_empty() {
        return (translated.to_string(), 0);
    }
    let out_spans: Vec<Range<usize>> = segment::code_spans(translated);
    if out_spans.len() == src.len() {
        let mut out = String::new();
        let mut at = 0;
        for (r, s) in out_spans.iter().zip(&src) {
            out.push_str(&translated[at..r.start]);
            out.push_str(s);
            at = r.end;
        }
        out.push_str(&translated[at..]);
        return (out, 0);
    }
    let mut out = translated.to_string();
    let mut lost = 0;
    for s in src {
        if out.contains(s) {
            continue;
        }
        let inner = s.trim_matches('`').trim();
        match (!inner.is_empty()).then(|| out.find(inner)).flatten() {
            Some(pos) => out.replace_range(pos..pos + inner.len(), s),
            None => lost += 1,
        }
    }
    (out, lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_short() {
        let words = |s: &str| s.split_whitespace().count();
        assert_eq!(context_pair("A b.", "C d.", &words), Some(("A b.", "C d.")));
        let long_src = format!("{}. Last one here.", "word ".repeat(200).trim());
        let long_tr = format!("{}. Dernière phrase ici.", "mot ".repeat(200).trim());
        assert_eq!(
            context_pair(&long_src, &long_tr, &words),
            Some(("Last one here.", "Dernière phrase ici."))
        );
        let no_end = "word ".repeat(400);
        assert_eq!(context_pair(&no_end, &no_end, &words), None);
        assert_eq!(context_pair("", "x", &words), None);
    }

    #[test]
    fn an_answer_in_the_source_language_is_caught_and_names_are_not() {
        use Language::*;
        let src = "Copy one or more files from the source folder to the destination folder.";
        // Reworded in English instead of translated into Chinese.
        assert!(in_source_language(
            "Copy files from the source folder into the destination folder.",
            src,
            En,
            Zh
        ));
        assert!(!in_source_language(
            "将一个或多个文件从源文件夹复制到目标文件夹。",
            src,
            En,
            Zh
        ));
        // Between Latin languages too.
        assert!(in_source_language(
            "Copy the files from the source folder to the destination folder, one or more.",
            src,
            En,
            Fr
        ));
        assert!(!in_source_language(
            "Copiez un ou plusieurs fichiers du dossier source vers le dossier de destination.",
            src,
            En,
            Fr
        ));
        // Into English from Chinese: an answer left in Chinese.
        let zh = "将一个或多个文件从源文件夹复制到目标文件夹。";
        assert!(in_source_language(zh, zh, Zh, En));
        assert!(!in_source_language(src, zh, Zh, En));
        // Too short to tell, names and acronyms, or no translation asked for.
        assert!(!in_source_language("Open file", "Open file", En, Fr));
        assert!(!in_source_language(
            "Microsoft Excel, PowerPoint, OneDrive",
            "Microsoft Excel, PowerPoint, OneDrive",
            En,
            Fr
        ));
        assert!(!in_source_language(src, src, En, En));
        // A piece that does not read as the source language is not judged by its answer.
        assert!(!in_source_language(
            "Copiez un ou plusieurs fichiers du dossier source vers le dossier de destination.",
            "Copiez un ou plusieurs fichiers du dossier source vers le dossier de destination.",
            En,
            De
        ));
    }

    #[test]
    fn code_spans_come_back() {
        let src = "Run `ls -l` then `pwd`.";
        assert_eq!(
            restore_code_spans(src, "Lancez `ls -l` puis `pwd`."),
            ("Lancez `ls -l` puis `pwd`.".into(), 0)
        );
        // Translated inside the backticks: the originals return.
        assert_eq!(
            restore_code_spans(src, "Lancez `ls -L` puis `répertoire`."),
            ("Lancez `ls -l` puis `pwd`.".into(), 0)
        );
        // Backticks lost: wrapped again.
        assert_eq!(
            restore_code_spans(src, "Lancez ls -l puis `pwd`."),
            ("Lancez `ls -l` puis `pwd`.".into(), 0)
        );
        // Gone entirely: counted.
        assert_eq!(
            restore_code_spans(src, "Lancez la commande."),
            ("Lancez la commande.".into(), 2)
        );
        assert_eq!(
            restore_code_spans("no code", "pas de code"),
            ("pas de code".into(), 0)
        );
    }
}
