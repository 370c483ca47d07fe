//! `hearth translate`: translates a file or standard input offline, through the same use case
//! the desktop app calls (`hearth_assistant`), so the translation lands in the history too.
//!
//! The translation goes to standard output (or `--output`) block by block as it is done;
//! progress, the model used and why, the detected language and glossary warnings go to
//! standard error. Exit status 1 when the translation fails.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use hearth_assistant::translate::export::{self, ExportFormat};
use hearth_assistant::translate::{read_glossary_file, TextFormat};
use hearth_assistant::{Assistant, AssistantConfig, TranslateEvent, TranslateRequest};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    Markdown,
    Plain,
}

#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// The language to translate into: en, zh, fr, de, es, ja, ko, ru, it or pt.
    #[arg(long)]
    pub to: String,
    /// The language of the input; detected when left out.
    #[arg(long)]
    pub from: Option<String>,
    /// A glossary: lines `term = translation` (or separated by a TAB or a comma), or a gettext
    /// .mo catalog. Its terms are used in the translation and checked afterwards.
    #[arg(long)]
    pub glossary: Option<PathBuf>,
    /// A GGUF model file or an installed model's id (default: the installed model that handles
    /// the language pair best).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Write the translation to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// How to read the input (default: from the file's extension, else from its content).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Write plain text, with Markdown markup taken out.
    #[arg(long)]
    pub plain_output: bool,
    /// Source tokens per model request.
    #[arg(long)]
    pub max_piece_tokens: Option<u32>,
    /// Tokens the model may write per request.
    #[arg(long)]
    pub max_output_tokens: Option<u32>,
    /// Compute threads (default: the saved setting).
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Hearth's data folder (default: $HEARTH_DATA_DIR, else the per-user data folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print nothing but the translation.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// The file to translate, or - for standard input.
    pub input: String,
}

pub fn run(args: TranslateArgs) -> Result<()> {
    let opened = Assistant::open(AssistantConfig {
        data_dir: args.data_dir.clone(),
        threads: args.threads,
    })
    .map_err(|e| anyhow::anyhow!("{}", e.message))
    .context("opening Hearth's data folder")?;
    if let (Some(n), false) = (&opened.notice, args.quiet) {
        eprintln!("{n}");
    }
    let a = opened.assistant;
    let mut req = TranslateRequest {
        source_lang: args.from.clone(),
        target_lang: args.to.clone(),
        model: args.model.clone(),
        format: args.format.map(|f| match f {
            FormatArg::Markdown => TextFormat::Markdown,
            FormatArg::Plain => TextFormat::Plain,
        }),
        use_stored_glossary: true,
        max_piece_tokens: args.max_piece_tokens,
        max_output_tokens: args.max_output_tokens,
        ..Default::default()
    };
    if args.input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        req.text = Some(text);
    } else {
        let p = PathBuf::from(&args.input);
        if !p.is_file() {
            bail!(
                "no file at '{}' (give a file to translate, or - for standard input)",
                args.input
            );
        }
        req.document_path = Some(p);
    }
    if let Some(g) = &args.glossary {
        req.glossary = read_glossary_file(g).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    }

    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let started = a
        .translate(req, Box::new(move |e| drop(tx.lock().map(|t| t.send(e)))))
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if !args.quiet {
        if let Some(d) = &started.detected {
            eprintln!(
                "Source language: {} (detected, confidence {:.2}; use --from to set it)",
                d.language.english_name(),
                d.confidence
            );
        }
        eprintln!(
            "Model: {} ({})",
            started.model.model.name, started.model.reason
        );
    }

    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout()),
    };
    let streaming = !args.plain_output;
    // Text streaming into the terminal shows the progress itself.
    let show_progress =
        !args.quiet && !(streaming && args.output.is_none() && std::io::stdout().is_terminal());
    loop {
        let Ok(e) = rx.recv() else {
            bail!("the translation stopped without an answer");
        };
        match e {
            TranslateEvent::Progress { done, total, .. } if show_progress => {
                eprint!("\rTranslating block {} of {total}…", done + 1);
            }
            TranslateEvent::Segment { rendered, .. } if streaming => {
                out.write_all(rendered.as_bytes())?;
                out.flush()?;
            }
            TranslateEvent::Done { status, result, .. } => {
                if !streaming {
                    let text = export::export(&result.text, result.format, ExportFormat::Text);
                    out.write_all(text.as_bytes())?;
                }
                out.flush()?;
                if !args.quiet {
                    eprintln!(
                        "{}{} in {:.1} s ({} requests); saved as translation {}.",
                        if show_progress { "\r" } else { "\n" },
                        if status == "done" {
                            "Translated"
                        } else {
                            "Stopped"
                        },
                        result.stats.elapsed_ms as f64 / 1000.0,
                        result.stats.requests,
                        result.translation_id
                    );
                    for g in &result.glossary_issues {
                        eprintln!(
                            "Glossary: \"{}\" should be translated as \"{}\" (block {}), but that is not in the translation.",
                            g.source_term, g.expected, g.segment
                        );
                    }
                    if !result.wrong_language.is_empty() {
                        eprintln!(
                            "Block(s) {:?} came back in {} instead of {}, even when asked again; check them, or try a larger model.",
                            result.wrong_language,
                            result.source_lang.english_name(),
                            result.target_lang.english_name()
                        );
                    }
                    if !result.lost_code.is_empty() {
                        eprintln!(
                            "Inline code was lost in block(s) {:?}; check them.",
                            result.lost_code
                        );
                    }
                }
                return Ok(());
            }
            TranslateEvent::Failed { error, .. } => {
                out.flush()?;
                if !args.quiet {
                    eprintln!();
                }
                bail!("{}", error.message);
            }
            _ => {}
        }
    }
}
