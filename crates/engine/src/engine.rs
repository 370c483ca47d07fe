//! The engine thread: one OS thread owns the loaded model and serves requests from a priority
//! queue, interactive before background, first come first served within a priority.
//!
//! Contract:
//! - [`Engine::submit`] returns at once with a [`RequestHandle`]; events arrive on its bounded
//!   channel in order: `Loading`/`Loaded` (only when the request's model had to be loaded),
//!   `Started`, any number of `Text`, then exactly one of `Done` or `Failed`.
//! - Dropping the handle's receiver, or [`RequestHandle::cancel`], stops the request within one
//!   token (or one prefill step). A cancelled request still ends with `Done` (stop reason
//!   `cancelled`) when its receiver is alive.
//! - A request names its model file; the engine loads it, replacing the model it had. The prefix
//!   cache belongs to the loaded model and is forgotten when it is replaced or unloaded.
//! - Priority decides which queued request runs next. A background request also gives way while
//!   it runs: before each model step (a prefill chunk or a token) the engine looks for a queued
//!   interactive request; if there is one, the background request is suspended, the interactive
//!   ones are served, and then it carries on. So an interactive request waits at most one model
//!   step of background work (one token, or a prefill step of at most 64 tokens) before it
//!   starts. An interactive request is never suspended.
//! - A suspended request keeps its prompt, the tokens it generated and its sampler (random state
//!   included); on resuming, those tokens are run again through the prefix cache and decoding goes
//!   on. Logits do not depend on how tokens are batched, so its output (greedy or seeded) is
//!   exactly what it would have been without the interruption. Its events keep arriving on its own
//!   channel, in order, with nothing repeated (`Started` once, `Done` once); its stats leave out
//!   the time it spent suspended.
//! - Cancelling a suspended request ends it (`Done`, stop reason `cancelled`, with the text it had
//!   produced) as soon as the engine next chooses a request, without running it again.
//! - With `idle_unload` set, a model unused for that long is dropped to free its memory.

use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::loaded::{
    Event, GenerationParams, LoadedModel, ModelInfo, Outcome, Prompt, PromptInfo, Stats, Suspended,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Background,
    Interactive,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Compute threads for models loaded from now on (0: every core but one).
    pub threads: usize,
    pub idle_unload: Option<Duration>,
    /// Events buffered per request before the engine waits for the reader.
    pub event_buffer: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            idle_unload: None,
            event_buffer: 256,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub model: PathBuf,
    pub prompt: Prompt,
    pub params: GenerationParams,
    pub priority: Priority,
}

#[derive(Debug)]
pub enum EngineEvent {
    Loading { path: PathBuf },
    Loaded(ModelInfo),
    Started(PromptInfo),
    Text(String),
    Done(Stats),
    Failed(EngineError),
}

pub struct RequestHandle {
    pub id: u64,
    events: Receiver<EngineEvent>,
    cancel: Arc<AtomicBool>,
}

impl RequestHandle {
    /// The next event; None once the request has ended and every event was read.
    pub fn recv(&self) -> Option<EngineEvent> {
        self.events.recv().ok()
    }

    pub fn recv_timeout(&self, d: Duration) -> std::result::Result<EngineEvent, RecvTimeoutError> {
        self.events.recv_timeout(d)
    }

    /// Asks the engine to stop this request; it ends within one token.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// A token that cancels this request from elsewhere (another thread, a UI callback).
    pub fn cancel_token(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Reads every event until the end; returns the final stats or the failure.
    pub fn wait(self) -> Result<Stats> {
        while let Some(ev) = self.recv() {
            match ev {
                EngineEvent::Done(s) => return Ok(s),
                EngineEvent::Failed(e) => return Err(e),
                _ => {}
            }
        }
        Err(EngineError::EngineStopped)
    }
}

struct Job {
    id: u64,
    request: Request,
    events: SyncSender<EngineEvent>,
    cancel: Arc<AtomicBool>,
    /// Set when the request ran and gave way to a higher-priority one.
    suspended: Option<Suspended>,
}

struct Queued(Job);

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.0.id == o.0.id
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Higher priority first; within a priority, the older (smaller id) first.
        self.0
            .request
            .priority
            .cmp(&o.0.request.priority)
            .then_with(|| o.0.id.cmp(&self.0.id))
    }
}

enum Command {
    Submit(Job),
    Load(PathBuf, Sender<Result<ModelInfo>>),
    Unload(Sender<()>),
    Loaded(Sender<Option<ModelInfo>>),
    SetThreads(usize),
    Shutdown,
}

pub struct Engine {
    tx: Sender<Command>,
    /// Set after an interactive request is submitted; the running background step gives way.
    give_way: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    next_id: AtomicU64,
    event_buffer: usize,
}

impl Engine {
    pub fn start(config: EngineConfig) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let event_buffer = config.event_buffer.max(1);
        let give_way = Arc::new(AtomicBool::new(false));
        let flag = give_way.clone();
        let thread = std::thread::Builder::new()
            .name("hearth-engine".into())
            .spawn(move || EngineThread::new(config, flag).run(rx))
            .map_err(|e| EngineError::Compute(format!("cannot start the engine thread: {e}")))?;
        Ok(Self {
            tx,
            give_way,
            thread: Some(thread),
            next_id: AtomicU64::new(1),
            event_buffer,
        })
    }

    pub fn submit(&self, request: Request) -> Result<RequestHandle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let interactive = request.priority == Priority::Interactive;
        let (etx, erx) = mpsc::sync_channel(self.event_buffer);
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            id,
            request,
            events: etx,
            cancel: cancel.clone(),
            suspended: None,
        };
        self.tx
            .send(Command::Submit(job))
            .map_err(|_| EngineError::EngineStopped)?;
        // After the send: the engine clears the flag before it reads the queue, so a request it
        // has not seen yet always leaves the flag set.
        if interactive {
            self.give_way.store(true, Ordering::SeqCst);
        }
        Ok(RequestHandle {
            id,
            events: erx,
            cancel,
        })
    }

    /// Loads a model now (replacing the current one) and waits until it is ready.
    pub fn load(&self, path: &Path) -> Result<ModelInfo> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Command::Load(path.to_path_buf(), tx))
            .map_err(|_| EngineError::EngineStopped)?;
        rx.recv().map_err(|_| EngineError::EngineStopped)?
    }

    pub fn unload(&self) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Command::Unload(tx))
            .map_err(|_| EngineError::EngineStopped)?;
        rx.recv().map_err(|_| EngineError::EngineStopped)
    }

    /// The model currently loaded, if any.
    pub fn loaded(&self) -> Result<Option<ModelInfo>> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Command::Loaded(tx))
            .map_err(|_| EngineError::EngineStopped)?;
        rx.recv().map_err(|_| EngineError::EngineStopped)
    }

    /// Threads for the next model load.
    pub fn set_threads(&self, threads: usize) -> Result<()> {
        self.tx
            .send(Command::SetThreads(threads))
            .map_err(|_| EngineError::EngineStopped)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct EngineThread {
    config: EngineConfig,
    model: Option<LoadedModel>,
    queue: BinaryHeap<Queued>,
    /// Commands that arrived while a request ran and could not be handled mid-request.
    deferred: Vec<Command>,
    last_used: Instant,
    give_way: Arc<AtomicBool>,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

impl EngineThread {
    fn new(config: EngineConfig, give_way: Arc<AtomicBool>) -> Self {
        Self {
            config,
            model: None,
            queue: BinaryHeap::new(),
            deferred: Vec::new(),
            last_used: Instant::now(),
            give_way,
        }
    }

    fn run(mut self, rx: Receiver<Command>) {
        loop {
            let first = if self.queue.is_empty() && self.deferred.is_empty() {
                match (self.config.idle_unload, self.model.is_some()) {
                    (Some(idle), true) => {
                        let left = idle.saturating_sub(self.last_used.elapsed());
                        match rx.recv_timeout(left) {
                            Ok(c) => Some(c),
                            Err(RecvTimeoutError::Timeout) => {
                                self.model = None;
                                continue;
                            }
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    _ => match rx.recv() {
                        Ok(c) => Some(c),
                        Err(_) => return,
                    },
                }
            } else {
                None
            };
            // Take in everything that is waiting, so priority sees the whole queue.
            self.give_way.store(false, Ordering::SeqCst);
            let pending = std::mem::take(&mut self.deferred)
                .into_iter()
                .chain(first)
                .chain(std::iter::from_fn(|| rx.try_recv().ok()));
            for cmd in pending.collect::<Vec<_>>() {
                if !self.command(cmd) {
                    return;
                }
            }
            self.end_cancelled_suspended();
            if let Some(Queued(job)) = self.queue.pop() {
                self.serve(job, &rx);
                self.last_used = Instant::now();
            }
        }
    }

    /// Handles one command; false means shut down.
    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Submit(job) => self.queue.push(Queued(job)),
            Command::Load(path, reply) => {
                let r = self.ensure_loaded(&path, None);
                let _ = reply.send(r);
            }
            Command::Unload(reply) => {
                self.model = None;
                let _ = reply.send(());
            }
            Command::Loaded(reply) => {
                let _ = reply.send(self.model.as_ref().map(|m| m.info().clone()));
            }
            Command::SetThreads(n) => self.config.threads = n,
            Command::Shutdown => return false,
        }
        true
    }

    fn ensure_loaded(
        &mut self,
        path: &Path,
        events: Option<&SyncSender<EngineEvent>>,
    ) -> Result<ModelInfo> {
        if let Some(m) = &self.model {
            if same_file(&m.info().path, path) {
                return Ok(m.info().clone());
            }
        }
        if let Some(ev) = events {
            let _ = ev.send(EngineEvent::Loading {
                path: path.to_path_buf(),
            });
        }
        // Free the old model first: two models at once may not fit in memory.
        self.model = None;
        let mut m = LoadedModel::load(path, self.config.threads)?;
        m.set_give_way_flag(Some(self.give_way.clone()));
        let info = m.info().clone();
        self.model = Some(m);
        if let Some(ev) = events {
            let _ = ev.send(EngineEvent::Loaded(info.clone()));
        }
        Ok(info)
    }

    /// Ends the suspended requests that were cancelled (or whose reader is gone) while they waited.
    fn end_cancelled_suspended(&mut self) {
        if !self.queue.iter().any(|q| q.0.suspended.is_some()) {
            return;
        }
        for Queued(mut job) in std::mem::take(&mut self.queue).into_vec() {
            match job.suspended.take() {
                Some(s) if job.cancel.load(Ordering::Relaxed) => {
                    s.cancel(&mut |ev| forward(&job.events, ev));
                }
                s => {
                    job.suspended = s;
                    self.queue.push(Queued(job));
                }
            }
        }
    }

    fn serve(&mut self, mut job: Job, rx: &Receiver<Command>) {
        let suspended = job.suspended.take();
        if job.cancel.load(Ordering::Relaxed) {
            match suspended {
                Some(s) => {
                    s.cancel(&mut |ev| forward(&job.events, ev));
                }
                None => {
                    let _ = job.events.send(EngineEvent::Failed(EngineError::Cancelled));
                }
            }
            return;
        }
        // A resumed request announces no reload: its reader saw `Started` already.
        let announce = if suspended.is_none() {
            Some(&job.events)
        } else {
            None
        };
        if let Err(e) = self.ensure_loaded(&job.request.model, announce) {
            let _ = job.events.send(EngineEvent::Failed(e));
            return;
        }
        let EngineThread {
            model,
            queue,
            deferred,
            give_way,
            ..
        } = self;
        let Some(model) = model.as_mut() else {
            let _ = job
                .events
                .send(EngineEvent::Failed(EngineError::EngineStopped));
            return;
        };
        let priority = job.request.priority;
        // Asked before every model step: take in new commands, and give way when a request of
        // higher priority waits. Only a request that something can outrank ever gives way.
        let mut yield_now = || -> bool {
            if priority == Priority::Interactive {
                return false;
            }
            give_way.store(false, Ordering::SeqCst);
            while let Ok(cmd) = rx.try_recv() {
                match cmd {
                    Command::Submit(j) => queue.push(Queued(j)),
                    other => deferred.push(other),
                }
            }
            queue
                .peek()
                .is_some_and(|q| q.0.request.priority > priority)
        };
        let events = &job.events;
        let mut on_event = |ev: Event| forward(events, ev);
        let outcome = match suspended {
            Some(s) => model.resume(s, &job.cancel, &mut yield_now, &mut on_event),
            None if priority == Priority::Interactive => model
                .generate(
                    &job.request.prompt,
                    &job.request.params,
                    &job.cancel,
                    &mut on_event,
                )
                .map(Outcome::Finished),
            None => model.generate_preemptible(
                &job.request.prompt,
                &job.request.params,
                &job.cancel,
                &mut yield_now,
                &mut on_event,
            ),
        };
        match outcome {
            Ok(Outcome::Finished(_)) => {}
            Ok(Outcome::Suspended(s)) => {
                job.suspended = Some(s);
                queue.push(Queued(job));
            }
            Err(e) => {
                let _ = job.events.send(EngineEvent::Failed(e));
            }
        }
    }
}

/// Sends a model event to a request's reader; false when the reader is gone.
fn forward(events: &SyncSender<EngineEvent>, ev: Event) -> bool {
    let ev = match ev {
        Event::Started(p) => EngineEvent::Started(p),
        Event::Text { text } => EngineEvent::Text(text),
        Event::Done(s) => EngineEvent::Done(s),
    };
    events.send(ev).is_ok()
}
