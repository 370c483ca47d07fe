//! `hearth`: Hearth's engine from the command line. Every subcommand that runs a model takes
//! `--model PATH` and `--threads N`.

mod summarize;
mod translate;

mod models;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hearth_engine::{
    Engine, EngineConfig, EngineEvent, GenerationParams, LoadedModel, Message, Priority, Prompt,
    Request, Role, SamplingParams,
};

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "Private AI on your own computer: chat, translate and summarize offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat with a model in the terminal (/reset starts over, /system TEXT sets the system prompt, /quit leaves).
    Chat(ChatArgs),
    /// Generate one reply (or a plain completion with --raw) and print it.
    Generate(GenerateArgs),
    /// Measure load time, prompt processing and generation speed.
    Bench(BenchArgs),
    /// Show what a model file is: architecture, quantization, size, context.
    Info(ModelArgs),
    /// Measure how fast this computer reads memory with a number of threads (the bound on
    /// decoding speed is this divided by the bytes of weights read per token).
    Bandwidth(BandwidthArgs),
    #[command(flatten)]
    Models(models::ModelsCommand),
    /// Translate a file or standard input (-) into another language.
    Translate(translate::TranslateArgs),
    /// Summarize a document (PDF, DOCX, ODT, EPUB, HTML, Markdown, text) with page citations.
    Summarize(summarize::SummarizeArgs),
    /// Answer a question about a document from its passages, citing them.
    Ask(summarize::AskArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// A GGUF model file, or the id of an installed model.
    #[arg(long, short = 'm')]
    model: String,
    /// Compute threads (default: every core but one).
    #[arg(long, short = 't', default_value_t = 0)]
    threads: usize,
}

#[derive(Args)]
struct SamplingArgs {
    /// Always pick the most likely token (same output every time).
    #[arg(long, conflicts_with_all = ["temperature", "seed"])]
    greedy: bool,
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long)]
    min_p: Option<f32>,
    #[arg(long)]
    repeat_penalty: Option<f32>,
    /// Seed for reproducible sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// A string that ends the reply (repeatable).
    #[arg(long)]
    stop: Vec<String>,
}

impl SamplingArgs {
    fn params(&self) -> GenerationParams {
        let mut s = if self.greedy {
            SamplingParams::greedy()
        } else {
            SamplingParams::default()
        };
        if let Some(v) = self.temperature {
            s.temperature = v;
        }
        if let Some(v) = self.top_k {
            s.top_k = v;
        }
        if let Some(v) = self.top_p {
            s.top_p = v;
        }
        if let Some(v) = self.min_p {
            s.min_p = v;
        }
        if let Some(v) = self.repeat_penalty {
            s.repeat_penalty = v;
        }
        if self.seed.is_some() {
            s.seed = self.seed;
        }
        GenerationParams {
            max_tokens: self.max_tokens,
            sampling: s,
            stop: self.stop.clone(),
            ..Default::default()
        }
    }
}

#[derive(Args)]
struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The question or text.
    #[arg(long, short = 'p')]
    prompt: String,
    /// System prompt (chat mode only).
    #[arg(long)]
    system: Option<String>,
    /// Plain completion: the prompt is tokenized as it is, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Print one JSON object (prompt and output token ids, text, timings) instead of streaming.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BandwidthArgs {
    /// Threads reading at once.
    #[arg(long, short = 't', default_value_t = 1)]
    threads: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// A model file path, or the id of a model installed in Hearth's data folder.
fn model_path(spec: &str) -> Result<PathBuf> {
    let p = PathBuf::from(spec);
    if p.is_file() {
        return Ok(p);
    }
    if p.exists() {
        bail!("'{spec}' is not a file: give the path of a .gguf model file or an installed model's id");
    }
    if let Some(installed) = installed_model(spec) {
        return Ok(installed);
    }
    bail!("no model file at '{spec}' and no installed model with that id (see the Models view, or give a .gguf path)")
}

fn installed_model(id: &str) -> Option<PathBuf> {
    let opened =
        hearth_store::Store::open_in_data_dir(None, &hearth_store::OpenOptions::default()).ok()?;
    let m = opened.store.model(id).ok()?;
    Some(PathBuf::from(m.path)).filter(|p| p.is_file())
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Chat(a) => chat(a),
        Command::Generate(a) => generate(a),
        Command::Bench(a) => bench(a),
        Command::Info(a) => info(a),
        Command::Bandwidth(a) => bandwidth(a),
        Command::Models(c) => models::run(c),
        Command::Translate(a) => translate::run(a),
        Command::Summarize(a) => summarize::summarize(a),
        Command::Ask(a) => summarize::ask(a),
    };
    if let Err(e) = r {
        eprintln!("hearth: {e:#}");
        std::process::exit(1);
    }
}

fn info(a: ModelArgs) -> Result<()> {
    let m = LoadedModel::load(&model_path(&a.model)?, a.threads)?;
    println!("{}", serde_json::to_string_pretty(m.info())?);
    Ok(())
}

fn bandwidth(a: BandwidthArgs) -> Result<()> {
    if a.threads == 0 || a.threads > 1024 {
        bail!("--threads must be between 1 and 1024");
    }
    let hw = hearth_catalog::hardware::Hardware::detect();
    let bytes = hearth_catalog::hardware::measure_read_bandwidth(a.threads, hw.total_memory);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"threads": a.threads, "read_bytes_per_second": bytes})
        );
    } else {
        println!("{:.1} GB/s read with {} thread(s)", bytes / 1e9, a.threads);
    }
    Ok(())
}

fn generate(a: GenerateArgs) -> Result<()> {
    let path = model_path(&a.model.model)?;
    let mut model = LoadedModel::load(&path, a.model.threads)?;
    let prompt = if a.raw {
        Prompt::Raw(a.prompt.clone())
    } else {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(Message {
                role: Role::System,
                content: s.clone(),
            });
        }
        msgs.push(Message {
            role: Role::User,
            content: a.prompt.clone(),
        });
        Prompt::Chat(msgs)
    };
    let params = a.sampling.params();
    let cancel = AtomicBool::new(false);
    let json = a.json;
    let mut out = std::io::stdout();
    let mut on_event = |ev: hearth_engine::Event| -> bool {
        if let (false, hearth_engine::Event::Text { text }) = (json, &ev) {
            let _ = write!(out, "{text}");
            let _ = out.flush();
        }
        true
    };
    let stats = model.generate(&prompt, &params, &cancel, &mut on_event)?;
    if json {
        let v = serde_json::json!({
            "prompt_tokens": stats.prompt_token_ids,
            "tokens": stats.tokens,
            "text": stats.text,
            "stop": stats.stop,
            "ttft_ms": stats.ttft_ms,
            "prefill_tok_s": stats.prefill_tok_s,
            "decode_tok_s": stats.decode_tok_s,
            "drafted_tokens": stats.drafted_tokens,
            "accepted_tokens": stats.accepted_tokens,
        });
        println!("{v}");
    } else {
        println!();
        eprintln!(
            "[{} tokens, {:.1} tok/s, first token after {:.0} ms, stopped: {:?}]",
            stats.tokens.len(),
            stats.decode_tok_s,
            stats.ttft_ms,
            stats.stop
        );
    }
    Ok(())
}

fn chat(a: ChatArgs) -> Result<()> {
    let path = model_path(&a.model.model)?;
    let engine = Engine::start(EngineConfig {
        threads: a.model.threads,
        ..Default::default()
    })?;
    let info = engine.load(&path).context("loading the model")?;
    eprintln!(
        "{} ({}, {}) loaded in {:.0} ms. Type a message; /reset starts over, /system TEXT sets the system prompt, /quit leaves.",
        info.name.as_deref().unwrap_or("model"),
        info.arch,
        info.quant,
        info.load_ms
    );
    if let Some(w) = &info.template_warning {
        eprintln!("note: {w}");
    }
    let params = a.sampling.params();
    let mut system = a.system.clone();
    let mut history: Vec<Message> = Vec::new();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        match line.trim() {
            "/quit" | "/exit" => break,
            "/reset" => {
                history.clear();
                eprintln!("(conversation cleared)");
                continue;
            }
            l if l.starts_with("/system") => {
                let s = l.trim_start_matches("/system").trim();
                system = (!s.is_empty()).then(|| s.to_string());
                history.clear();
                eprintln!(
                    "(system prompt {}; conversation cleared)",
                    if system.is_some() { "set" } else { "removed" }
                );
                continue;
            }
            _ => {}
        }
        history.push(Message {
            role: Role::User,
            content: line.to_string(),
        });
        let mut msgs = Vec::new();
        if let Some(s) = &system {
            msgs.push(Message {
                role: Role::System,
                content: s.clone(),
            });
        }
        msgs.extend(history.iter().cloned());
        let handle = engine.submit(Request {
            model: path.clone(),
            prompt: Prompt::Chat(msgs),
            params: params.clone(),
            priority: Priority::Interactive,
        })?;
        let mut reply = String::new();
        while let Some(ev) = handle.recv() {
            match ev {
                EngineEvent::Started(p) if p.dropped_messages > 0 => {
                    eprintln!("(the {} oldest messages no longer fit the context window and were left out)", p.dropped_messages)
                }
                EngineEvent::Text(t) => {
                    reply.push_str(&t);
                    write!(out, "{t}")?;
                    out.flush()?;
                }
                EngineEvent::Done(s) => {
                    println!();
                    eprintln!(
                        "[{:.1} tok/s, first token after {:.0} ms]",
                        s.decode_tok_s, s.ttft_ms
                    );
                }
                EngineEvent::Failed(e) => {
                    println!();
                    eprintln!("error: {e}");
                    history.pop();
                }
                _ => {}
            }
        }
        if !reply.is_empty() {
            history.push(Message {
                role: Role::Assistant,
                content: reply,
            });
        }
    }
    Ok(())
}

/// Peak resident memory of this process in MiB (Linux; None elsewhere).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

const BENCH_TEXT: &str = "The history of the printing press begins in the fifteenth century, when movable type \
made books cheaper and faster to produce. Within decades, presses spread across Europe, and the number of \
printed works grew from thousands to millions. Scholars argue about how quickly literacy followed, but few \
doubt that the flow of ideas changed for good. Newspapers, pamphlets and scientific journals all trace their \
roots to this period, as do copyright laws and the modern publishing trade. ";

fn bench(a: BenchArgs) -> Result<()> {
    if a.prompt_tokens == 0 {
        bail!("--prompt-tokens must be at least 1");
    }
    let path = model_path(&a.model.model)?;
    let t0 = Instant::now();
    let mut m = LoadedModel::load(&path, a.model.threads)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    if a.prompt_tokens + a.gen_tokens >= m.context_len() {
        bail!(
            "{} + {} tokens do not fit the model's context of {}",
            a.prompt_tokens,
            a.gen_tokens,
            m.context_len()
        );
    }
    let tok = m.tokenizer();
    let mut prompt = Vec::new();
    if let (true, Some(b)) = (tok.specials.add_bos, tok.specials.bos) {
        prompt.push(b);
    }
    let piece = tok.encode(BENCH_TEXT, false, false)?;
    while prompt.len() < a.prompt_tokens {
        prompt.extend_from_slice(&piece);
    }
    prompt.truncate(a.prompt_tokens);
    // Warm-up, untimed: pages the weights in, starts the thread pool and sizes the buffers, so
    // that the timed runs below measure steady-state speed.
    m.reset_cache();
    let mut logits = m.forward_raw(&prompt[..prompt.len().min(16)])?;
    for _ in 0..4 {
        logits = m.forward_raw(&[hearth_engine::sampling::argmax(&logits)])?;
    }
    m.reset_cache();
    let t = Instant::now();
    logits = m.forward_raw(&prompt)?;
    let prefill_s = t.elapsed().as_secs_f64();
    let mut next = hearth_engine::sampling::argmax(&logits);
    let ttft_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    for _ in 0..a.gen_tokens {
        logits = m.forward_raw(&[next])?;
        next = hearth_engine::sampling::argmax(&logits);
    }
    let decode_s = t.elapsed().as_secs_f64();
    // The cache a decoded token reads, on average over the decoded tokens (token i sees the
    // prompt, the i tokens before it and itself).
    let cache_bytes = (0..a.gen_tokens)
        .map(|i| m.cache_bytes_read(a.prompt_tokens + i + 1) as f64)
        .sum::<f64>()
        / a.gen_tokens.max(1) as f64;
    let info = m.info();
    let v = serde_json::json!({
        "model": path.file_name().map(|f| f.to_string_lossy().to_string()),
        "arch": info.arch,
        "quant": info.quant,
        "threads": info.threads,
        "prompt_tokens": a.prompt_tokens,
        "gen_tokens": a.gen_tokens,
        "load_ms": load_ms,
        "prefill_tok_s": a.prompt_tokens as f64 / prefill_s,
        "decode_tok_s": if decode_s > 0.0 { a.gen_tokens as f64 / decode_s } else { 0.0 },
        "ttft_ms": ttft_ms,
        "peak_rss_mb": peak_rss_mb(),
        "decode_bytes_per_token": info.decode_bytes,
        "decode_cache_bytes_per_token": cache_bytes.round() as u64,
    });
    if a.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
