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
//! - A running request is never pre-empted: priority decides which queued request runs next.
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
use crate::loaded::{Event, GenerationParams, LoadedModel, ModelInfo, Prompt, PromptInfo, Stats};

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
    thread: Option<JoinHandle<()>>,
    next_id: AtomicU64,
    event_buffer: usize,
}

impl Engine {
    pub fn start(config: EngineConfig) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let event_buffer = config.event_buffer.max(1);
        let thread = std::thread::Builder::new()
            .name("hearth-engine".into())
            .spawn(move || EngineThread::new(config).run(rx))
            .map_err(|e| EngineError::Compute(format!("cannot start the engine thread: {e}")))?;
        Ok(Self {
            tx,
            thread: Some(thread),
            next_id: AtomicU64::new(1),
            event_buffer,
        })
    }

    pub fn submit(&self, request: Request) -> Result<RequestHandle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (etx, erx) = mpsc::sync_channel(self.event_buffer);
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            id,
            request,
            events: etx,
            cancel: cancel.clone(),
        };
        self.tx
            .send(Command::Submit(job))
            .map_err(|_| EngineError::EngineStopped)?;
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
    last_used: Instant,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

impl EngineThread {
    fn new(config: EngineConfig) -> Self {
        Self {
            config,
            model: None,
            queue: BinaryHeap::new(),
            last_used: Instant::now(),
        }
    }

    fn run(mut self, rx: Receiver<Command>) {
        loop {
            let first = if self.queue.is_empty() {
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
            let pending = first
                .into_iter()
                .chain(std::iter::from_fn(|| rx.try_recv().ok()));
            for cmd in pending.collect::<Vec<_>>() {
                if !self.command(cmd) {
                    return;
                }
            }
            if let Some(Queued(job)) = self.queue.pop() {
                self.serve(job);
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
        let m = LoadedModel::load(path, self.config.threads)?;
        let info = m.info().clone();
        self.model = Some(m);
        if let Some(ev) = events {
            let _ = ev.send(EngineEvent::Loaded(info.clone()));
        }
        Ok(info)
    }

    fn serve(&mut self, job: Job) {
        let Job {
            request,
            events,
            cancel,
            ..
        } = job;
        if cancel.load(Ordering::Relaxed) {
            let _ = events.send(EngineEvent::Failed(EngineError::Cancelled));
            return;
        }
        if let Err(e) = self.ensure_loaded(&request.model, Some(&events)) {
            let _ = events.send(EngineEvent::Failed(e));
            return;
        }
        let Some(model) = self.model.as_mut() else {
            let _ = events.send(EngineEvent::Failed(EngineError::EngineStopped));
            return;
        };
        let mut forward = |ev: Event| -> bool {
            let ev = match ev {
                Event::Started(p) => EngineEvent::Started(p),
                Event::Text { text } => EngineEvent::Text(text),
                Event::Done(s) => EngineEvent::Done(s),
            };
            events.send(ev).is_ok()
        };
        if let Err(e) = model.generate(&request.prompt, &request.params, &cancel, &mut forward) {
            let _ = events.send(EngineEvent::Failed(e));
        }
    }
}
