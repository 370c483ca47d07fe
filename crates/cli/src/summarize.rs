//! `hearth summarize` and `hearth ask`: a document's summary with page citations, and questions
//! answered from its passages, through the same use cases the desktop app calls
//! (`hearth_assistant`), so the document and its summary land in the library too.
//!
//! The summary (and the answer) go to standard output; progress (stage, step i of n, time
//! left) goes to standard error. Ctrl-C stops a summary and keeps the partial summaries made so
//! far: running the same command again resumes from them. Exit status 1 on failure, 130 when
//! stopped by Ctrl-C.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use hearth_assistant::summarize::{Citation, DocumentSummary, SummaryStage};
use hearth_assistant::{
    AskEvent, AskRequest, Assistant, AssistantConfig, DocumentOptions, SummarizeEvent,
    SummarizeRequest, SummaryLength,
};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(Args, Debug)]
pub struct DocumentArgs {
    /// A GGUF model file or an installed model's id (default: the default model).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Compute threads (default: the saved setting).
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Hearth's data folder (default: $HEARTH_DATA_DIR, else the per-user data folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Largest chunk in tokens, when the document is added for the first time.
    #[arg(long)]
    pub chunk_tokens: Option<u32>,
}

#[derive(Args, Debug)]
pub struct SummarizeArgs {
    /// The document: PDF, DOCX, ODT, EPUB, HTML, Markdown or text.
    pub file: PathBuf,
    /// Language of the summary: en, zh, fr, de, es, ja, ko, ru, it or pt (default: the
    /// document's).
    #[arg(long)]
    pub lang: Option<String>,
    /// short, medium or long.
    #[arg(long, default_value = "medium")]
    pub length: String,
    /// Only these PDF pages, e.g. 1-50.
    #[arg(long)]
    pub pages: Option<String>,
    /// Tokens the model may write per partial summary.
    #[arg(long)]
    pub max_part_tokens: Option<u32>,
    /// Tokens the model may write for the final summary.
    #[arg(long)]
    pub max_summary_tokens: Option<u32>,
    /// Start over instead of resuming (or reusing a finished summary).
    #[arg(long)]
    pub restart: bool,
    /// Print the summary as JSON (key points, citations, partial summaries).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: DocumentArgs,
}

#[derive(Args, Debug)]
pub struct AskArgs {
    /// The document: PDF, DOCX, ODT, EPUB, HTML, Markdown or text.
    pub file: PathBuf,
    /// The question.
    pub question: String,
    /// Passages given to the model.
    #[arg(long, default_value_t = 3)]
    pub passages: u32,
    /// Tokens the answer may have.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Print the answer as JSON (with the passages).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: DocumentArgs,
}

fn app(e: hearth_assistant::AppError) -> anyhow::Error {
    anyhow!("{} [{}]", e.message, e.code)
}

fn open_and_add(common: &DocumentArgs, file: &Path) -> Result<(Assistant, i64)> {
    if !file.is_file() {
        bail!("no file at '{}'", file.display());
    }
    let opened = Assistant::open(AssistantConfig {
        data_dir: common.data_dir.clone(),
        threads: common.threads,
    })
    .map_err(app)
    .context("opening Hearth's data folder")?;
    if let Some(n) = &opened.notice {
        eprintln!("{n}");
    }
    let a = opened.assistant;
    let t = Instant::now();
    let added = a
        .add_document(
            file,
            &DocumentOptions {
                model: common.model.clone(),
                chunk_tokens: common.chunk_tokens,
                ..Default::default()
            },
        )
        .map_err(app)?;
    let d = &added.document;
    eprintln!(
        "{} {}: {}{} chunks{}",
        if added.already_known {
            "Known document"
        } else {
            "Added"
        },
        d.name,
        d.pages.map(|p| format!("{p} pages, ")).unwrap_or_default(),
        d.chunks,
        if added.already_known {
            String::new()
        } else {
            format!(" ({:.1} s)", t.elapsed().as_secs_f64())
        }
    );
    Ok((a, d.id))
}

fn parse_pages(s: &str) -> Result<[u32; 2]> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u32 = a
        .trim()
        .parse()
        .context("--pages takes FIRST-LAST, e.g. 1-50")?;
    let b: u32 = b
        .trim()
        .parse()
        .context("--pages takes FIRST-LAST, e.g. 1-50")?;
    Ok([a, b])
}

/// "pp. 3–5, 9" / "§ Heading".
pub fn where_from(c: &Citation) -> String {
    if !c.pages.is_empty() {
        let ranges: Vec<String> = c
            .pages
            .iter()
            .map(|r| {
                if r.start == r.end {
                    r.start.to_string()
                } else {
                    format!("{}–{}", r.start, r.end)
                }
            })
            .collect();
        let one = c.pages.len() == 1 && c.pages[0].start == c.pages[0].end;
        return format!("{} {}", if one { "p." } else { "pp." }, ranges.join(", "));
    }
    if !c.sections.is_empty() {
        return format!("§ {}", c.sections.join("; "));
    }
    format!(
        "chunks {}",
        c.chunk_ordinals
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn mmss(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn print_summary(s: &DocumentSummary) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}\n", s.text.trim())?;
    writeln!(out, "Key points:")?;
    for k in &s.key_points {
        let one_line = k.text.split_whitespace().collect::<Vec<_>>().join(" ");
        writeln!(out, "- {one_line} ({})", where_from(&k.cites))?;
    }
    Ok(())
}

pub fn summarize(args: SummarizeArgs) -> Result<()> {
    let length = SummaryLength::parse(&args.length)
        .ok_or_else(|| anyhow!("--length takes short, medium or long"))?;
    let pages = args.pages.as_deref().map(parse_pages).transpose()?;
    let (a, doc) = open_and_add(&args.common, &args.file)?;
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let t0 = Instant::now();
    let started = a
        .summarize(
            SummarizeRequest {
                document_id: doc,
                length,
                language: args.lang.clone(),
                model: args.common.model.clone(),
                pages,
                max_part_tokens: args.max_part_tokens,
                max_summary_tokens: args.max_summary_tokens,
                restart: args.restart,
            },
            Box::new(move |e| {
                if let Ok(t) = tx.lock() {
                    let _ = t.send(e);
                }
            }),
        )
        .map_err(app)?;
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    if started.resumed_parts > 0 {
        eprintln!(
            "Resuming summary {}: {} partial summaries already done.",
            started.summary_id, started.resumed_parts
        );
    }
    let tty = std::io::stderr().is_terminal();
    let mut cancelled_asked = false;
    let mut requests_before = 0u32;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) && !cancelled_asked {
            cancelled_asked = true;
            a.cancel(started.job_id);
            eprintln!("\nStopping… (partial summaries are kept; run the same command to resume)");
        }
        let e = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the summary stopped without an answer")
            }
        };
        match e {
            SummarizeEvent::Progress {
                stage,
                level,
                done,
                total,
                eta_ms,
                ..
            } => {
                if done == total {
                    continue;
                }
                let what = match stage {
                    SummaryStage::Map => format!("Reading chunk {} of {total}", done + 1),
                    SummaryStage::Reduce => {
                        format!("Combining (level {level}) {} of {total}", done + 1)
                    }
                    SummaryStage::Final => "Writing the summary".to_string(),
                };
                let eta = eta_ms
                    .map(|m| format!(", about {} left", mmss(m)))
                    .unwrap_or_default();
                if tty {
                    eprint!("\r\x1b[2K{what}{eta}");
                } else {
                    eprintln!("{what}{eta}");
                }
            }
            SummarizeEvent::Part { resumed: true, .. } => requests_before += 1,
            SummarizeEvent::Done {
                status, summary, ..
            } => {
                if tty {
                    eprintln!();
                }
                if status != "done" {
                    eprintln!(
                        "Stopped after {} of {} chunks; run the same command to resume.",
                        summary.chunks_summarized, summary.chunks_total
                    );
                    std::process::exit(130);
                }
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&summary)?);
                } else {
                    print_summary(&summary)?;
                }
                let secs = t0.elapsed().as_secs_f64();
                let page_count = summary
                    .cites
                    .pages
                    .iter()
                    .map(|r| r.end - r.start + 1)
                    .sum::<u32>();
                eprintln!(
                    "Summary {} of {} chunks{} in {:.1} s{}{}.",
                    summary.summary_id,
                    summary.chunks_total,
                    if page_count > 0 {
                        format!(" ({page_count} pages)")
                    } else {
                        String::new()
                    },
                    secs,
                    if page_count > 0 && secs > 0.0 && requests_before == 0 {
                        format!(", {:.2} pages per minute", page_count as f64 * 60.0 / secs)
                    } else {
                        String::new()
                    },
                    if requests_before > 0 {
                        format!(", {requests_before} partial summaries reused")
                    } else {
                        String::new()
                    }
                );
                return Ok(());
            }
            SummarizeEvent::Failed { error, .. } => {
                if tty {
                    eprintln!();
                }
                return Err(app(error));
            }
            _ => {}
        }
    }
}

pub fn ask(args: AskArgs) -> Result<()> {
    let (a, doc) = open_and_add(&args.common, &args.file)?;
    // A one-shot process: index the passages by meaning now (once per document; the app does it
    // in the background) when the embedding model is installed. Without it, or if it fails,
    // passages are found by their words alone.
    if a.embedding_model_dir().is_some() {
        let started = Instant::now();
        match a.embed_document(doc).and_then(|_| a.retrieval_status(doc)) {
            Ok(s) if started.elapsed() > Duration::from_millis(500) => eprintln!(
                "Indexed {} of {} passages by meaning ({:.1} s).",
                s.embedded_chunks,
                s.total_chunks,
                started.elapsed().as_secs_f64()
            ),
            Ok(_) => {}
            Err(e) => eprintln!("Passages are found by their words only: {}", e.message),
        }
    }
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let started = a
        .ask(
            AskRequest {
                document_id: doc,
                question: args.question.clone(),
                model: args.common.model.clone(),
                passages: Some(args.passages),
                max_tokens: args.max_tokens,
            },
            Box::new(move |e| {
                if let Ok(t) = tx.lock() {
                    let _ = t.send(e);
                }
            }),
        )
        .map_err(app)?;
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    let mut out = std::io::stdout();
    let mut cancelled_asked = false;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) && !cancelled_asked {
            cancelled_asked = true;
            a.cancel(started.job_id);
        }
        let e = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the answer stopped"),
        };
        match e {
            AskEvent::Delta { text, .. } if !args.json => {
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            AskEvent::Done { answer, .. } => {
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&answer)?);
                    return Ok(());
                }
                println!("\n\nSources:");
                for s in &answer.passages {
                    let p = &s.passage;
                    let place = match (p.page_start, p.page_end, &p.section) {
                        (Some(a), Some(b), _) if a != b => format!("pp. {a}–{b}"),
                        (Some(a), _, _) => format!("p. {a}"),
                        (None, _, Some(h)) => format!("§ {h}"),
                        _ => format!("chunk {}", p.ordinal),
                    };
                    let preview: String = p
                        .text
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .chars()
                        .take(100)
                        .collect();
                    println!(
                        "[{}]{} {place} (chunk {}, by {}): {preview}…",
                        s.number,
                        if answer.cited.contains(&s.number) {
                            " cited,"
                        } else {
                            ""
                        },
                        p.chunk_id,
                        match s.found_by.as_str() {
                            "both" => "words and meaning",
                            "meaning" => "meaning",
                            _ => "words",
                        }
                    );
                }
                if answer.status != "done" {
                    std::process::exit(130);
                }
                return Ok(());
            }
            AskEvent::Failed { error, .. } => return Err(app(error)),
            _ => {}
        }
    }
}
