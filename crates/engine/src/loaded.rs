//! A model loaded and ready to generate: weights, tokenizer and chat format.
//! [`LoadedModel::generate`] runs one request to completion on the calling thread, reporting
//! [`Event`]s as it goes.
//!
//! Prefix cache: the model remembers which tokens its key/value cache holds. A request whose
//! prompt starts with some of those tokens (a follow-up turn re-sends the whole conversation)
//! prefills only the tokens after the longest shared prefix. Greedy output is the same with and
//! without the cache.
//!
//! There are two caches ([`CacheSlot`]): one for requests that run to the end
//! ([`LoadedModel::generate`], the chat) and one for requests that may give way
//! ([`LoadedModel::generate_preemptible`], background work). A chat message sent while a document
//! is being summarized finds its conversation still cached, and the summary, when it carries on,
//! finds its own prompt where it left it: neither recomputes what the other ran.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hearth_prompt::{ChatFormat, Message};
use hearth_tokenizer::GgufTokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::gguf::ModelFile;
use crate::model::{KvSet, Transformer};
use crate::sampling::{Sampler, SamplingParams};
use crate::stream::{StopMatcher, TextStream};

/// Prompt tokens run through the model per step: bounds memory and lets cancel act mid-prefill.
const PREFILL_CHUNK: usize = 256;
/// Prefill step of a request that may give way to another: shorter, so that less work is thrown
/// away when a step is abandoned midway to give way.
const PREEMPTIBLE_PREFILL_CHUNK: usize = 64;

#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub name: Option<String>,
    pub arch: String,
    pub quant: String,
    pub parameters: u64,
    pub file_size: u64,
    /// Bytes of weights each decoded token reads ([`crate::gguf::ModelFile::decode_bytes_per_token`]).
    pub decode_bytes: u64,
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
    /// With greedy decoding: guess the next tokens by finding the last few tokens earlier in the
    /// prompt or the output and taking what followed them there, and check the guesses in one
    /// model step. The output is exactly what decoding token by token gives; summaries,
    /// translations and answers from a document, which copy from their input, come out faster.
    pub speculative: bool,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_tokens: 512,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            prefix_cache: true,
            ignore_eos: false,
            speculative: true,
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
    /// Tokens guessed for speculative decoding and checked by the model.
    pub drafted_tokens: usize,
    /// Of those, the ones the model confirmed (each saved a model step).
    pub accepted_tokens: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started(PromptInfo),
    Text { text: String },
    Done(Stats),
}

/// Which key/value cache a request runs against (see the module header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheSlot {
    /// Requests that run to the end: chat, translation, benchmarks.
    Foreground = 0,
    /// Requests that may give way to others.
    Background = 1,
}

/// A cache not in use, with the tokens it holds.
#[derive(Default)]
struct Parked {
    tokens: Vec<u32>,
    cache: KvSet,
}

pub struct LoadedModel {
    transformer: Transformer,
    tokenizer: GgufTokenizer,
    format: ChatFormat,
    info: ModelInfo,
    /// Tokens whose keys and values are in the cache in use, in order.
    cached: Vec<u32>,
    /// The slot whose cache the transformer holds now.
    slot: CacheSlot,
    /// The other slot's cache while it is not in use.
    parked: Parked,
    /// Set by whoever schedules requests when a request that outranks a preemptible one may be
    /// waiting: a preemptible request then gives way within one layer instead of one step.
    give_way: Option<Arc<AtomicBool>>,
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
        // Candle's pool (for the steps Hearth leaves to candle) spins for a while after each of
        // its calls by default, taking a core from Hearth's kernels that run next: its workers
        // are to sleep as soon as they are done instead. A value set by the user is kept.
        if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
            std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0");
        }
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
        let file = ModelFile::open(path)?;
        let cfg = file.config()?;
        // The tokenizer (a vocabulary and merge table of up to 150,000 entries) is built on a
        // second thread while the tensors are read.
        let (transformer, tokenizer) = std::thread::scope(|s| {
            let tokenizer = s.spawn(|| {
                let beside = path.parent().map(|d| d.join("tokenizer.json"));
                match beside {
                    Some(p) if p.is_file() => GgufTokenizer::load(path),
                    _ => GgufTokenizer::from_gguf(&file.content),
                }
            });
            let transformer = Transformer::load(&file);
            let tokenizer = tokenizer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (transformer, tokenizer)
        });
        // Tensors first: a damaged file is reported as such before anything else.
        let transformer = transformer?;
        let tokenizer = tokenizer?;
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
            decode_bytes: file.decode_bytes_per_token(),
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
            slot: CacheSlot::Foreground,
            parked: Parked::default(),
            give_way: None,
        })
    }

    /// The flag a scheduler sets when a request that outranks the running preemptible one may be
    /// waiting (see [`LoadedModel::generate_preemptible`]).
    pub fn set_give_way_flag(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.give_way = flag;
    }

    /// Puts `slot`'s cache in use (the other one is kept aside, untouched).
    fn use_slot(&mut self, slot: CacheSlot) {
        if slot != self.slot {
            self.transformer.swap_cache(&mut self.parked.cache);
            std::mem::swap(&mut self.cached, &mut self.parked.tokens);
            self.slot = slot;
        }
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

    /// Bytes of the key/value cache a decoded token reads when it sees `positions` positions
    /// (see [`crate::model::Transformer::cache_bytes_read`]): with the weights
    /// ([`ModelInfo::decode_bytes`]), what a token reads from memory at that depth.
    pub fn cache_bytes_read(&self, positions: usize) -> u64 {
        self.transformer.cache_bytes_read(positions)
    }

    /// Forgets the prefix caches (the next request prefills everything).
    pub fn reset_cache(&mut self) {
        self.transformer.clear_cache();
        self.cached.clear();
        self.parked = Parked::default();
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
        match self.generate_with(
            prompt,
            params,
            cancel,
            &mut || false,
            on_event,
            CacheSlot::Foreground,
        )? {
            Outcome::Finished(s) => Ok(s),
            Outcome::Suspended(_) => Err(EngineError::Compute("a request stopped midway".into())),
        }
    }

    /// Like [`LoadedModel::generate`], but `yield_now` is asked before every model step (each
    /// prefill chunk and each token); when it says true the request stops there and comes back as
    /// [`Outcome::Suspended`], to be carried on later with [`LoadedModel::resume`]. Nothing is
    /// emitted twice: `Started` only on the first call, each piece of text once, `Done` once.
    /// Its prompt is run in shorter steps than [`LoadedModel::generate`]'s, so it gives way sooner,
    /// and when the flag given to [`LoadedModel::set_give_way_flag`] is set during a step, the step
    /// is abandoned between two layers and `yield_now` is asked at once. It runs against the
    /// background cache, so the cache of the requests it gives way to stays as they left it.
    pub fn generate_preemptible(
        &mut self,
        prompt: &Prompt,
        params: &GenerationParams,
        cancel: &AtomicBool,
        yield_now: &mut dyn FnMut() -> bool,
        on_event: &mut (dyn FnMut(Event) -> bool + Send),
    ) -> Result<Outcome> {
        self.generate_with(
            prompt,
            params,
            cancel,
            yield_now,
            on_event,
            CacheSlot::Background,
        )
    }

    fn generate_with(
        &mut self,
        prompt: &Prompt,
        params: &GenerationParams,
        cancel: &AtomicBool,
        yield_now: &mut dyn FnMut() -> bool,
        on_event: &mut (dyn FnMut(Event) -> bool + Send),
        slot: CacheSlot,
    ) -> Result<Outcome> {
        params.sampling.validate()?;
        let (tokens, dropped) = self.tokenize_prompt(prompt, params.max_tokens)?;
        let state = match self.start_state(tokens, dropped, params, slot) {
            Ok(s) => s,
            Err(e) => {
                self.reset_cache();
                return Err(e);
            }
        };
        self.run_state(state, cancel, yield_now, on_event)
    }

    /// Carries on a suspended request where it stopped: its prompt and the tokens it generated
    /// are run again (through the prefix cache, so only what another request overwrote is
    /// recomputed) and decoding goes on with the same sampler. The model's logits do not depend
    /// on how tokens were batched, so the continuation is the one an uninterrupted run gives.
    pub fn resume(
        &mut self,
        suspended: Suspended,
        cancel: &AtomicBool,
        yield_now: &mut dyn FnMut() -> bool,
        on_event: &mut (dyn FnMut(Event) -> bool + Send),
    ) -> Result<Outcome> {
        self.run_state(suspended.0, cancel, yield_now, on_event)
    }

    fn run_state(
        &mut self,
        state: State,
        cancel: &AtomicBool,
        yield_now: &mut dyn FnMut() -> bool,
        on_event: &mut (dyn FnMut(Event) -> bool + Send),
    ) -> Result<Outcome> {
        let result = self.generate_tokens(state, cancel, yield_now, on_event);
        if result.is_err() {
            // The cache may be half-written: start clean next time.
            self.reset_cache();
        }
        result
    }

    fn start_state(
        &self,
        tokens: Vec<u32>,
        dropped: usize,
        params: &GenerationParams,
        slot: CacheSlot,
    ) -> Result<State> {
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
        let sampler = Sampler::new(params.sampling.clone())?;
        Ok(State {
            info: PromptInfo {
                prompt_tokens: tokens.len(),
                dropped_messages: dropped,
                ..PromptInfo::default()
            },
            prompt: tokens,
            generated: Vec::new(),
            text: String::new(),
            sampler,
            params: params.clone(),
            slot,
            started: false,
            active_ms: 0.0,
            prefill_ms: None,
            ttft_ms: None,
            drafted: 0,
            accepted: 0,
        })
    }

    fn generate_tokens(
        &mut self,
        mut st: State,
        cancel: &AtomicBool,
        yield_now: &mut dyn FnMut() -> bool,
        on_event: &mut (dyn FnMut(Event) -> bool + Send),
    ) -> Result<Outcome> {
        let ctx = self.info.context_len;
        let params = st.params.clone();
        self.use_slot(st.slot);
        let preemptible = st.slot == CacheSlot::Background;
        let prefill_chunk = if preemptible {
            PREEMPTIBLE_PREFILL_CHUNK
        } else {
            PREFILL_CHUNK
        };
        let give_way = self.give_way.clone().filter(|_| preemptible);
        let stop_step = || give_way.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
        let segment = Instant::now();
        let elapsed = |st: &State| st.active_ms + segment.elapsed().as_secs_f64() * 1e3;
        // Everything the model has seen for this request: the prompt, then what it generated.
        let mut history = st.prompt.clone();
        history.extend_from_slice(&st.generated);

        let mut reuse = if params.prefix_cache || st.started {
            self.cached
                .iter()
                .zip(&history)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            0
        };
        // The last token always runs: its logits choose the next output token.
        reuse = reuse.min(history.len() - 1);
        self.transformer.truncate(reuse);
        self.cached.truncate(reuse);
        let mut live = true;
        if !st.started {
            st.started = true;
            st.info.reused_tokens = reuse;
            st.info.prefill_tokens = st.prompt.len() - reuse;
            live = on_event(Event::Started(st.info.clone()));
        }

        let mut logits = None;
        for chunk in history[reuse..].chunks(prefill_chunk) {
            let l = loop {
                if !live || cancel.load(Ordering::Relaxed) {
                    let ms = elapsed(&st);
                    let stats = st.finish(StopReason::Cancelled, ms);
                    on_event(Event::Done(stats.clone()));
                    return Ok(Outcome::Finished(stats));
                }
                if yield_now() {
                    st.active_ms = elapsed(&st);
                    return Ok(Outcome::Suspended(Suspended(st)));
                }
                match self.transformer.forward_interruptible(chunk, &stop_step)? {
                    Some(l) => break l,
                    // Nothing is waiting after all (yield_now says no): don't stop again for
                    // the same signal.
                    None => self.clear_give_way(),
                }
            };
            logits = Some(l);
            self.cached.extend_from_slice(chunk);
        }
        if st.prefill_ms.is_none() {
            st.prefill_ms = Some(elapsed(&st));
        }
        let mut logits = match logits {
            Some(l) => l.to_vec1::<f32>()?,
            None => return Err(EngineError::Compute("nothing was run".into())),
        };

        let specials = self.tokenizer.specials.clone();
        let mut stops: Vec<String> = params.stop.clone();
        stops.extend(self.format.stop_strings());
        let mut matcher = StopMatcher::new(stops);
        let tokenizer = &self.tokenizer;
        let mut stream = TextStream::new(tokenizer);
        // A resumed request: rebuild what the text stream and the stop matcher held back. Their
        // output was emitted before the request was suspended.
        for &t in &st.generated {
            if let Some(piece) = stream.push(t)? {
                matcher.push(&piece);
            }
        }
        let stop;
        let mut next = st.sampler.sample(&mut logits, &history)?;
        if st.ttft_ms.is_none() {
            st.ttft_ms = Some(elapsed(&st));
        }
        // Speculative decoding (greedy only: a guess is kept only where it is the model's own
        // choice, so the output is unchanged). `verified`: tokens after `next` that a model step
        // already chose; all but the last have their keys and values in the cache.
        let speculate =
            params.speculative && params.sampling.temperature == 0.0 && speculation_allowed();
        let mut verified: std::collections::VecDeque<u32> = Default::default();
        loop {
            if !params.ignore_eos && specials.end_of_turn.contains(&next) {
                stop = StopReason::EndOfTurn;
                break;
            }
            st.generated.push(next);
            history.push(next);
            if let Some(piece) = stream.push(next)? {
                let (out, hit) = matcher.push(&piece);
                if !out.is_empty() {
                    st.text.push_str(&out);
                    live &= on_event(Event::Text { text: out });
                }
                if hit {
                    stop = StopReason::StopString;
                    break;
                }
            }
            if st.generated.len() >= params.max_tokens {
                stop = StopReason::MaxTokens;
                break;
            }
            // Every token but `next` is in the cache (confirmed guesses may run ahead of it).
            if history.len() >= ctx {
                stop = StopReason::ContextFull;
                break;
            }
            if !live || cancel.load(Ordering::Relaxed) {
                stop = StopReason::Cancelled;
                break;
            }
            if let Some(t) = verified.pop_front() {
                // Its predecessor (`next`) was a confirmed guess: already in the cache.
                next = t;
                continue;
            }
            let room = ctx.saturating_sub(self.transformer.cache_len() + 1);
            let left = params.max_tokens.saturating_sub(st.generated.len());
            let guess: Vec<u32> = if speculate {
                draft(&history, DRAFT_TOKENS.min(room).min(left)).to_vec()
            } else {
                Vec::new()
            };
            let mut step = Vec::with_capacity(1 + guess.len());
            step.push(next);
            step.extend_from_slice(&guess);
            let all = loop {
                if yield_now() {
                    st.active_ms = elapsed(&st);
                    return Ok(Outcome::Suspended(Suspended(st)));
                }
                match self
                    .transformer
                    .forward_outputs(&step, step.len(), &stop_step)?
                {
                    Some(l) => break l,
                    None => self.clear_give_way(),
                }
            };
            let start = self.transformer.cache_len() - step.len();
            // The model's choice after each token of the step, as long as it confirms the guess.
            let mut seen = history.clone();
            let mut chosen = Vec::with_capacity(step.len());
            for (i, mut row) in all.to_vec2::<f32>()?.into_iter().enumerate() {
                let t = st.sampler.sample(&mut row, &seen)?;
                chosen.push(t);
                match guess.get(i) {
                    Some(&g) if g == t => seen.push(g),
                    _ => break,
                }
            }
            let kept = chosen.len() - 1;
            st.drafted += guess.len();
            st.accepted += kept;
            // Keys and values of `next` and of the confirmed guesses stay; the rest go.
            self.transformer.truncate(start + 1 + kept);
            self.cached.push(next);
            self.cached.extend_from_slice(&guess[..kept]);
            let mut chosen = chosen.into_iter();
            next = chosen
                .next()
                .ok_or_else(|| EngineError::Compute("no logits".into()))?;
            verified.extend(chosen);
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
                st.text.push_str(&tail);
                on_event(Event::Text { text: tail });
            }
        }
        let ms = elapsed(&st);
        let stats = st.finish(stop, ms);
        on_event(Event::Done(stats.clone()));
        Ok(Outcome::Finished(stats))
    }

    fn clear_give_way(&self) {
        if let Some(f) = &self.give_way {
            f.store(false, Ordering::Relaxed);
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

/// Whether speculative decoding may run: `HEARTH_SPECULATIVE=off` turns it off in the whole
/// process, for diagnosis and for measuring what it brings (read once).
fn speculation_allowed() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var("HEARTH_SPECULATIVE").as_deref() != Ok("off"))
}

/// Most tokens guessed ahead in one step of speculative decoding.
const DRAFT_TOKENS: usize = 8;

/// A guess at the tokens that follow `history`: the tokens that followed the latest earlier
/// occurrence of its last three (or, failing that, two) tokens, at most `max` of them. Empty when
/// nothing repeats.
fn draft(history: &[u32], max: usize) -> &[u32] {
    if max == 0 {
        return &[];
    }
    for n in [3usize, 2] {
        if history.len() <= n {
            continue;
        }
        let tail = &history[history.len() - n..];
        if let Some(at) = (0..history.len() - n)
            .rev()
            .find(|&i| &history[i..i + n] == tail)
        {
            let from = at + n;
            return &history[from..(from + max).min(history.len())];
        }
    }
    &[]
}

/// What [`LoadedModel::generate_preemptible`] and [`LoadedModel::resume`] come back with.
pub enum Outcome {
    /// The request ended; its `Done` event was emitted.
    Finished(Stats),
    /// The request stopped to let another one run; carry it on with [`LoadedModel::resume`].
    Suspended(Suspended),
}

/// A request stopped between two model steps: its prompt, the tokens it generated, the text it
/// emitted and its sampler (random state included), so resuming continues exactly.
pub struct Suspended(State);

impl Suspended {
    /// Tokens generated before the request was suspended.
    pub fn generated(&self) -> &[u32] {
        &self.0.generated
    }

    /// Ends the request without running it again (it was cancelled while suspended); emits
    /// `Done` with [`StopReason::Cancelled`] and the text produced so far.
    pub fn cancel(self, on_event: &mut dyn FnMut(Event) -> bool) -> Stats {
        let ms = self.0.active_ms;
        let stats = self.0.finish(StopReason::Cancelled, ms);
        on_event(Event::Done(stats.clone()));
        stats
    }
}

struct State {
    prompt: Vec<u32>,
    generated: Vec<u32>,
    text: String,
    sampler: Sampler,
    params: GenerationParams,
    /// The cache it runs against; [`CacheSlot::Background`] also means it may give way.
    slot: CacheSlot,
    info: PromptInfo,
    /// `Started` was emitted.
    started: bool,
    /// Time spent running this request before the current step, suspensions left out.
    active_ms: f64,
    prefill_ms: Option<f64>,
    ttft_ms: Option<f64>,
    drafted: usize,
    accepted: usize,
}

impl State {
    fn finish(self, stop: StopReason, total_ms: f64) -> Stats {
        let rate = |n: usize, ms: f64| if ms > 0.0 { n as f64 / (ms / 1e3) } else { 0.0 };
        let prefill_ms = self.prefill_ms.unwrap_or(total_ms);
        let ttft_ms = self.ttft_ms.unwrap_or(total_ms);
        let decode_ms = if self.ttft_ms.is_some() {
            (total_ms - ttft_ms).max(0.0)
        } else {
            0.0
        };
        // Decode rate counts the tokens that needed a model step after the first.
        let decoded = self.generated.len().saturating_sub(1);
        Stats {
            prefill_tok_s: rate(self.info.prefill_tokens, prefill_ms),
            decode_tok_s: rate(decoded, decode_ms),
            drafted_tokens: self.drafted,
            accepted_tokens: self.accepted,
            prompt: self.info,
            prompt_token_ids: self.prompt,
            tokens: self.generated,
            text: self.text,
            stop,
            ttft_ms,
            prefill_ms,
            decode_ms,
        }
    }
}
