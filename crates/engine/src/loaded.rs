//! A model loaded and ready to generate: weights, tokenizer and chat format.
//! [`LoadedModel::generate`] runs one request to completion on the calling thread, reporting
//! [`Event`]s as it goes.
//!
//! Prefix cache: the model remembers which tokens its key/value cache holds. A request whose
//! prompt starts with some of those tokens (a follow-up turn re-sends the whole conversation)
//! prefills only the tokens after the longest shared prefix. Greedy output is the same with and
//! without the cache.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hearth_prompt::{ChatFormat, Message};
use hearth_tokenizer::GgufTokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::gguf::ModelFile;
use crate::model::Transformer;
use crate::sampling::{Sampler, SamplingParams};
use crate::stream::{StopMatcher, TextStream};

/// Prompt tokens run through the model per step: bounds memory and lets cancel act mid-prefill.
const PREFILL_CHUNK: usize = 256;

#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub name: Option<String>,
    pub arch: String,
    pub quant: String,
    pub parameters: u64,
    pub file_size: u64,
    pub context_len: usize,
    pub vocab_size: usize,
    pub layers: usize,
    pub has_chat_template: bool,
    /// Set when the model's own chat template could not be used and plain completion is used instead.
    pub template_warning: Option<String>,
    pub load_ms: f64,
    pub threads: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Prompt {
    /// A conversation, written with the model's chat template and fitted to its context window.
    Chat(Vec<Message>),
    /// Plain text, tokenized as it is (BOS as the model's metadata says; special tokens not parsed).
    Raw(String),
    /// Token ids, run as they are.
    Tokens(Vec<u32>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Extra strings that end the reply (never included in it).
    pub stop: Vec<String>,
    /// Reuse the key/value cache for the prefix shared with the previous request.
    pub prefix_cache: bool,
    /// Keep generating past end-of-turn tokens (benchmarks).
    pub ignore_eos: bool,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_tokens: 512,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            prefix_cache: true,
            ignore_eos: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn.
    EndOfTurn,
    MaxTokens,
    StopString,
    /// The context window is full.
    ContextFull,
    Cancelled,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PromptInfo {
    pub prompt_tokens: usize,
    /// Tokens whose keys and values were reused from the previous request.
    pub reused_tokens: usize,
    /// Tokens actually run through the model before the first output token.
    pub prefill_tokens: usize,
    /// Oldest messages left out to fit the context window.
    pub dropped_messages: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub prompt: PromptInfo,
    pub prompt_token_ids: Vec<u32>,
    pub tokens: Vec<u32>,
    pub text: String,
    pub stop: StopReason,
    pub ttft_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started(PromptInfo),
    Text { text: String },
    Done(Stats),
}

pub struct LoadedModel {
    transformer: Transformer,
    tokenizer: GgufTokenizer,
    format: ChatFormat,
    info: ModelInfo,
    /// Tokens whose keys and values are in the cache, in order.
    cached: Vec<u32>,
}

/// Threads to use when none are asked for: one per core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

static COMPUTE_THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Sets the number of compute threads and returns the number in effect.
///
/// candle's kernels use one process-wide pool that is sized once, when it is first used, so the
/// first call (the first model load) decides; later calls return that number whatever they ask.
/// `0` picks [`default_threads`].
pub fn compute_threads(requested: usize) -> usize {
    *COMPUTE_THREADS.get_or_init(|| {
        let n = if requested == 0 {
            default_threads()
        } else {
            requested
        };
        // Before any kernel has run, so the pools read these when they start.
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        n
    })
}

impl LoadedModel {
    /// Loads a GGUF file. `threads`: see [`compute_threads`].
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        let started = Instant::now();
        if threads > 1024 {
            return Err(EngineError::InvalidSetting(format!(
                "{threads} threads is too many"
            )));
        }
        let threads = compute_threads(threads);
        let mut file = ModelFile::open(path)?;
        let cfg = file.config()?;
        // Tensors first: a damaged file is reported as such before anything else is built.
        let transformer = Transformer::load(&mut file)?;
        let beside = path.parent().map(|d| d.join("tokenizer.json"));
        let tokenizer = match beside {
            Some(p) if p.is_file() => GgufTokenizer::load(path)?,
            _ => GgufTokenizer::from_gguf(&file.content)?,
        };
        let template = file.get_str("tokenizer.chat_template").map(str::to_string);
        let bos = tokenizer.specials.bos_text.clone();
        let eos = tokenizer.specials.eos_text.clone();
        let (format, template_warning) =
            match ChatFormat::new(template.as_deref(), bos.as_deref(), eos.as_deref()) {
                Ok(f) => (f, None),
                Err(e) => (
                    ChatFormat::new(None, bos.as_deref(), eos.as_deref())?,
                    Some(format!(
                        "the model's chat template cannot be used ({e}); using plain completion"
                    )),
                ),
            };
        let info = ModelInfo {
            path: path.to_path_buf(),
            name: file.get_str("general.name").map(str::to_string),
            arch: cfg.arch.name().to_string(),
            quant: file.quant_label(),
            parameters: file.parameter_count(),
            file_size: file.file_size,
            context_len: cfg.context_len,
            vocab_size: cfg.vocab_size,
            layers: cfg.n_layer,
            has_chat_template: format.has_template(),
            template_warning,
            load_ms: started.elapsed().as_secs_f64() * 1e3,
            threads,
        };
        Ok(Self {
            transformer,
            tokenizer,
            format,
            info,
            cached: Vec::new(),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    pub fn chat_format(&self) -> &ChatFormat {
        &self.format
    }

    pub fn context_len(&self) -> usize {
        self.info.context_len
    }

    /// Forgets the prefix cache (the next request prefills everything).
    pub fn reset_cache(&mut self) {
        self.transformer.clear_cache();
        self.cached.clear();
    }

    /// Token ids for a prompt, and how many messages were left out to fit the context.
    pub fn tokenize_prompt(&self, prompt: &Prompt, max_tokens: usize) -> Result<(Vec<u32>, usize)> {
        let ctx = self.info.context_len;
        match prompt {
            Prompt::Tokens(t) => Ok((t.clone(), 0)),
            Prompt::Raw(text) => Ok((self.tokenizer.encode(text, true, false)?, 0)),
            Prompt::Chat(messages) => {
                let tok = &self.tokenizer;
                let count = |s: &str| -> std::result::Result<usize, hearth_prompt::PromptError> {
                    tok.token_count(s)
                        .map_err(|e| hearth_prompt::PromptError::Tokenize(e.to_string()))
                };
                // Room kept for the reply: what was asked for, but never more than half the window.
                let reserve = max_tokens.min(ctx / 2);
                let fitted =
                    hearth_prompt::fit_to_context(&self.format, messages, &count, ctx, reserve)?;
                let mut ids = self.tokenizer.encode(&fitted.text, false, true)?;
                let sp = &self.tokenizer.specials;
                if let (true, Some(bos)) = (sp.add_bos, sp.bos) {
                    if ids.first() != Some(&bos) {
                        ids.insert(0, bos);
                    }
                }
                Ok((ids, fitted.dropped_messages))
            }
        }
    }

    /// Runs one request. `cancel` is checked before every model step; `on_event` returning false
    /// (its receiver is gone) cancels too. A cancelled request returns Ok with
    /// [`StopReason::Cancelled`] and the text produced so far.
    pub fn generate(
        &mut self,
        prompt: &Prompt,
        params: &GenerationParams,
        cancel: &AtomicBool,
        on_event: &mut (dyn FnMut(Event) -> bool + Send),
    ) -> Result<Stats> {
        params.sampling.validate()?;
        let (tokens, dropped) = self.tokenize_prompt(prompt, params.max_tokens)?;
        let result = self.generate_tokens(tokens, dropped, params, cancel, on_event);
        if result.is_err() {
            // The cache may be half-written: start clean next time.
            self.reset_cache();
        }
        result
    }

    fn generate_tokens(
        &mut self,
        tokens: Vec<u32>,
        dropped: usize,
        params: &GenerationParams,
        cancel: &AtomicBool,
        on_event: &mut (dyn FnMut(Event) -> bool + Send),
    ) -> Result<Stats> {
        let ctx = self.info.context_len;
        if tokens.is_empty() {
            return Err(EngineError::InvalidSetting("the prompt is empty".into()));
        }
        if tokens.len() >= ctx {
            return Err(EngineError::ContextOverflow {
                needed: tokens.len() + 1,
                available: ctx,
            });
        }
        if let Some(bad) = tokens
            .iter()
            .find(|t| **t as usize >= self.transformer.config().vocab_size)
        {
            return Err(EngineError::InvalidSetting(format!(
                "token id {bad} is outside the vocabulary"
            )));
        }
        let mut sampler = Sampler::new(params.sampling.clone())?;
        let started = Instant::now();

        let mut reuse = if params.prefix_cache {
            self.cached
                .iter()
                .zip(&tokens)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            0
        };
        // The last prompt token always runs: its logits choose the first output token.
        reuse = reuse.min(tokens.len() - 1);
        self.transformer.truncate(reuse);
        self.cached.truncate(reuse);
        let info = PromptInfo {
            prompt_tokens: tokens.len(),
            reused_tokens: reuse,
            prefill_tokens: tokens.len() - reuse,
            dropped_messages: dropped,
        };
        let mut live = on_event(Event::Started(info.clone()));

        let mut logits = None;
        for chunk in tokens[reuse..].chunks(PREFILL_CHUNK) {
            if !live || cancel.load(Ordering::Relaxed) {
                let ms = started.elapsed().as_secs_f64() * 1e3;
                let stats = self.stats(
                    info,
                    tokens,
                    Vec::new(),
                    String::new(),
                    StopReason::Cancelled,
                    ms,
                    ms,
                    0.0,
                );
                on_event(Event::Done(stats.clone()));
                return Ok(stats);
            }
            logits = Some(self.transformer.forward(chunk)?);
            self.cached.extend_from_slice(chunk);
        }
        let prefill_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut logits = match logits {
            Some(l) => l.to_vec1::<f32>()?,
            None => return Err(EngineError::Compute("nothing was run".into())),
        };

        let specials = self.tokenizer.specials.clone();
        let mut stops: Vec<String> = params.stop.clone();
        stops.extend(self.format.stop_strings());
        let mut matcher = StopMatcher::new(stops);
        let mut history = tokens.clone();
        let mut generated = Vec::new();
        let mut text = String::new();
        let tokenizer = &self.tokenizer;
        let mut stream = TextStream::new(tokenizer);
        let stop;
        let mut next = sampler.sample(&mut logits, &history)?;
        let ttft = started.elapsed().as_secs_f64() * 1e3;
        let decode_start = Instant::now();
        loop {
            if !params.ignore_eos && specials.end_of_turn.contains(&next) {
                stop = StopReason::EndOfTurn;
                break;
            }
            generated.push(next);
            history.push(next);
            if let Some(piece) = stream.push(next)? {
                let (out, hit) = matcher.push(&piece);
                if !out.is_empty() {
                    text.push_str(&out);
                    live &= on_event(Event::Text { text: out });
                }
                if hit {
                    stop = StopReason::StopString;
                    break;
                }
            }
            if generated.len() >= params.max_tokens {
                stop = StopReason::MaxTokens;
                break;
            }
            if self.transformer.cache_len() + 1 >= ctx {
                stop = StopReason::ContextFull;
                break;
            }
            if !live || cancel.load(Ordering::Relaxed) {
                stop = StopReason::Cancelled;
                break;
            }
            let l = self.transformer.forward(&[next])?;
            self.cached.push(next);
            logits = l.to_vec1::<f32>()?;
            next = sampler.sample(&mut logits, &history)?;
        }
        if stop != StopReason::StopString {
            let (mut tail, mut hit) = (String::new(), false);
            if let Some(t) = stream.finish()? {
                (tail, hit) = matcher.push(&t);
            }
            if !hit {
                tail.push_str(&matcher.finish());
            }
            if !tail.is_empty() {
                text.push_str(&tail);
                on_event(Event::Text { text: tail });
            }
        }
        let decode_ms = decode_start.elapsed().as_secs_f64() * 1e3;
        let stats = self.stats(
            info, tokens, generated, text, stop, prefill_ms, ttft, decode_ms,
        );
        on_event(Event::Done(stats.clone()));
        Ok(stats)
    }

    #[allow(clippy::too_many_arguments)]
    fn stats(
        &self,
        info: PromptInfo,
        tokens: Vec<u32>,
        generated: Vec<u32>,
        text: String,
        stop: StopReason,
        prefill_ms: f64,
        ttft_ms: f64,
        decode_ms: f64,
    ) -> Stats {
        let rate = |n: usize, ms: f64| if ms > 0.0 { n as f64 / (ms / 1e3) } else { 0.0 };
        // Decode rate counts the tokens that needed a model step after the first.
        let decoded = generated.len().saturating_sub(1);
        Stats {
            prefill_tok_s: rate(info.prefill_tokens, prefill_ms),
            decode_tok_s: rate(decoded, decode_ms),
            prompt: info,
            prompt_token_ids: tokens,
            tokens: generated,
            text,
            stop,
            ttft_ms,
            prefill_ms,
            decode_ms,
        }
    }

    /// Runs `tokens` at the end of the cache without sampling (benchmarks); returns the logits.
    pub fn forward_raw(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut last = None;
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            last = Some(self.transformer.forward(chunk)?);
            self.cached.extend_from_slice(chunk);
        }
        match last {
            Some(l) => Ok(l.to_vec1::<f32>()?),
            None => Err(EngineError::InvalidSetting("no tokens to run".into())),
        }
    }
}
