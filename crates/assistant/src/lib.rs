//! Hearth's use cases, shared by every front end (the desktop app, the CLI, tests): chat with
//! branches, installed models and settings, over the engine (`hearth-engine`) and the store
//! (`hearth-store`). Front ends call only this crate.
//!
//! Contract: every method returns quickly (SQLite work only) and may be called from any thread;
//! generation runs on the engine thread and reports through a [`ChatSink`]. Errors are
//! [`AppError`]s: a stable code and a sentence for people.

pub mod ask;
pub mod chat;
pub mod documents;
pub mod downloads;
pub mod embed;
pub mod error;
pub mod models;
pub mod retrieval;
pub mod settings;
pub mod summarize;
pub mod translate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hearth_engine::{Engine, EngineConfig};
use hearth_store::{
    ConversationId, MessageId, OpenOptions, Role as StoredRole, SearchOptions, Store,
};
use serde::{Deserialize, Serialize};

pub use ask::{Answer, AskEvent, AskRequest, AskSink, AskStarted, Source};
pub use chat::{ChatEvent, ChatSink, ReplyStats, SendRequest, StartedJob};
pub use documents::{AddedDocument, DocumentInfo, DocumentOptions, Passage};
pub use downloads::{
    CatalogModel, DownloadEvent, DownloadSink, Downloads, MachineCatalog, PullRequest, PullStarted,
    QuantChoice, Recommendation,
};
pub use error::{AppError, Result};
pub use models::InstalledModel;
pub use retrieval::{EmbeddingReport, RetrievalStatus};
pub use settings::{SamplingSettings, Settings, DEFAULT_SYSTEM_PROMPT};
pub use summarize::{
    DocumentSummary, SummarizeEvent, SummarizeRequest, SummarizeSink, SummaryLength, SummaryStarted,
};
pub use translate::{TranslateEvent, TranslateRequest, TranslateSink, TranslationStarted};

/// Title of a conversation until its first message names it.
pub const NEW_CONVERSATION_TITLE: &str = "New chat";

#[derive(Debug, Clone, Default)]
pub struct AssistantConfig {
    /// The data folder; None: `$HEARTH_DATA_DIR`, else the system's per-user data folder.
    pub data_dir: Option<PathBuf>,
    /// Compute threads; None: the saved setting.
    pub threads: Option<usize>,
}

pub struct Opened {
    pub assistant: Assistant,
    /// Something the user should be told at startup (a damaged database set aside, ...).
    pub notice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    pub id: i64,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadMessage {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub role: String,
    pub content: String,
    pub status: String,
    pub error: Option<String>,
    pub model: Option<String>,
    pub sibling_ids: Vec<i64>,
    pub sibling_index: usize,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub ttft_ms: Option<u64>,
    pub tokens_per_second: Option<f64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub conversation_id: i64,
    pub conversation_title: String,
    pub message_id: i64,
    pub role: String,
    pub snippet: String,
    /// Matches in `snippet`, as [start, end) in UTF-16 code units (what JavaScript strings index).
    pub highlights: Vec<[usize; 2]>,
    pub created_at: i64,
}

struct Inner {
    store: Arc<Store>,
    engine: Engine,
    jobs: Mutex<HashMap<u64, Arc<AtomicBool>>>,
    next_job: AtomicU64,
}

#[derive(Clone)]
pub struct Assistant {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn role_name(r: StoredRole) -> &'static str {
    match r {
        StoredRole::System => "system",
        StoredRole::User => "user",
        StoredRole::Assistant => "assistant",
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Assistant {
    pub fn open(config: AssistantConfig) -> Result<Opened> {
        let opened = Store::open_in_data_dir(config.data_dir.as_deref(), &OpenOptions::default())?;
        let store = Arc::new(opened.store);
        // Replies that were streaming when the app last stopped can't continue.
        store.fail_interrupted_messages()?;
        let settings = Settings::load(&store)?;
        let threads = config.threads.unwrap_or(settings.threads as usize);
        let engine = Engine::start(EngineConfig {
            threads,
            idle_unload: Some(std::time::Duration::from_secs(15 * 60)),
            ..Default::default()
        })?;
        let notice = opened.recovery.map(|r| r.message());
        Ok(Opened {
            assistant: Assistant {
                inner: Arc::new(Inner {
                    store,
                    engine,
                    jobs: Mutex::new(HashMap::new()),
                    next_job: AtomicU64::new(1),
                }),
            },
            notice,
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    // ---- conversations ----

    pub fn conversations(&self) -> Result<Vec<ConversationSummary>> {
        let mut list: Vec<ConversationSummary> = self
            .store()
            .list_conversations()?
            .into_iter()
            .map(|c| ConversationSummary {
                id: c.id.get(),
                title: c.title,
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
            .collect();
        list.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
        Ok(list)
    }

    pub fn create_conversation(&self, title: Option<String>) -> Result<ConversationSummary> {
        let title = title
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| NEW_CONVERSATION_TITLE.to_string());
        let c = self.store().create_conversation(&title)?;
        Ok(ConversationSummary {
            id: c.id.get(),
            title: c.title,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
    }

    pub fn rename_conversation(&self, id: i64, title: &str) -> Result<()> {
        let title = title.trim();
        if title.is_empty() {
            return Err(AppError::new(
                "chat.invalid_title",
                "A conversation needs a title.",
            ));
        }
        Ok(self
            .store()
            .rename_conversation(ConversationId(id), title)?)
    }

    pub fn delete_conversation(&self, id: i64) -> Result<()> {
        Ok(self.store().delete_conversation(ConversationId(id))?)
    }

    pub fn thread(&self, conversation: i64) -> Result<Vec<ThreadMessage>> {
        Ok(self
            .store()
            .thread(ConversationId(conversation))?
            .into_iter()
            .map(|e| {
                let idx = e.sibling_index();
                let m = e.message;
                ThreadMessage {
                    id: m.id.get(),
                    parent_id: m.parent_id.map(|p| p.get()),
                    role: role_name(m.role).into(),
                    content: m.content,
                    status: format!("{:?}", m.status).to_lowercase(),
                    error: m.error,
                    model: m.model_id,
                    sibling_ids: e.sibling_ids.iter().map(|s| s.get()).collect(),
                    sibling_index: idx,
                    prompt_tokens: m.stats.prompt_tokens,
                    completion_tokens: m.stats.completion_tokens,
                    ttft_ms: m.stats.ttft_ms,
                    tokens_per_second: m.stats.tokens_per_second,
                    created_at: m.created_at,
                }
            })
            .collect())
    }

    /// Shows the branch through `message` (its newest descendants).
    pub fn select_branch(&self, message: i64) -> Result<()> {
        self.store().select_branch(MessageId(message))?;
        Ok(())
    }

    pub fn search(&self, query: &str) -> Result<Vec<SearchHit>> {
        if query.trim().is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .store()
            .search_messages(query, None, &SearchOptions::default())?
            .into_iter()
            .map(|h| SearchHit {
                conversation_id: h.conversation_id.get(),
                conversation_title: h.conversation_title,
                message_id: h.message_id.get(),
                role: role_name(h.role).into(),
                highlights: h
                    .snippet
                    .highlights
                    .iter()
                    .map(|r| [r.utf16_start, r.utf16_end])
                    .collect(),
                snippet: h.snippet.text,
                created_at: h.created_at,
            })
            .collect())
    }

    // ---- chat ----

    fn model_for_reply(&self) -> Result<(String, PathBuf)> {
        let id = models::default_model_id(self.store())?.ok_or_else(|| {
            AppError::new(
                "models.none",
                "No model is installed yet. Add a model file in Models first.",
            )
        })?;
        let m = self.store().model(&id)?;
        let path = PathBuf::from(&m.path);
        if !path.is_file() {
            return Err(AppError::new(
                "models.missing_file",
                format!("The model file {} is no longer there. Import it again or choose another model.", m.path),
            ));
        }
        Ok((id, path))
    }

    /// Sends a message (or an edited one, as a new branch) and streams the reply to `sink`.
    pub fn send(&self, req: SendRequest, sink: ChatSink) -> Result<StartedJob> {
        let text = req.text.trim_end();
        if text.trim().is_empty() {
            return Err(AppError::new("chat.empty", "Type a message first."));
        }
        let settings = Settings::load(self.store())?;
        let sampling = req.sampling.clone().unwrap_or(settings.sampling.clone());
        sampling.validate()?;
        let (model_id, model_path) = self.model_for_reply()?;
        let conversation = ConversationId(req.conversation_id);
        let c = self.store().conversation(conversation)?;
        let (user, reply) = chat::add_turn(
            self.store(),
            conversation,
            text,
            req.edit_of.map(MessageId),
            &model_id,
            &sampling,
        )?;
        if c.title == NEW_CONVERSATION_TITLE && c.current_leaf.is_none() {
            let title: String = text
                .lines()
                .next()
                .unwrap_or(text)
                .chars()
                .take(48)
                .collect();
            self.store()
                .rename_conversation(conversation, title.trim())?;
        }
        let system = req.system_prompt.unwrap_or(settings.system_prompt);
        self.start(
            user.id, reply, &model_id, model_path, &system, sampling, sink,
        )
    }

    /// Writes another answer to the question `assistant_message` answered (a sibling branch).
    pub fn regenerate(&self, assistant_message: i64, sink: ChatSink) -> Result<StartedJob> {
        let old = self.store().message(MessageId(assistant_message))?;
        let Some(parent) = old.parent_id.filter(|_| old.role == StoredRole::Assistant) else {
            return Err(AppError::new(
                "chat.invalid_regenerate",
                "Only an answer can be written again.",
            ));
        };
        let settings = Settings::load(self.store())?;
        let (model_id, model_path) = self.model_for_reply()?;
        let reply = self
            .store()
            .add_message(&hearth_store::NewMessage::assistant_streaming(
                old.conversation_id,
                Some(parent),
                &model_id,
                chat::to_sampling_record(&settings.sampling),
            ))?;
        let system = settings.system_prompt.clone();
        self.start(
            parent,
            reply,
            &model_id,
            model_path,
            &system,
            settings.sampling,
            sink,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        question: MessageId,
        reply: hearth_store::Message,
        model_id: &str,
        model_path: PathBuf,
        system: &str,
        sampling: SamplingSettings,
        sink: ChatSink,
    ) -> Result<StartedJob> {
        let prompt = chat::branch_prompt(self.store(), question, system)?;
        let context_length = hearth_engine::gguf::ModelFile::open(&model_path)
            .and_then(|f| f.config())
            .map(|c| c.context_len as u32)
            .unwrap_or(0);
        let job_id = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let started = StartedJob {
            job_id,
            user_message_id: question.get(),
            assistant_message_id: reply.id.get(),
        };
        let _ = self.store().touch_model(model_id);
        let inner = Arc::downgrade(&self.inner);
        let on_end = Box::new(move || {
            if let Some(inner) = inner.upgrade() {
                lock(&inner.jobs).remove(&job_id);
            }
        });
        let reply_id = reply.id;
        let g = chat::Generation {
            job_id,
            assistant: reply,
            model_path,
            prompt,
            sampling,
            context_length,
        };
        match chat::run(
            &self.inner.engine,
            self.inner.store.clone(),
            g,
            sink,
            on_end,
        ) {
            Ok(cancel) => {
                lock(&self.inner.jobs).insert(job_id, cancel);
                Ok(started)
            }
            Err(e) => {
                let _ = self.store().finish_message(
                    reply_id,
                    "",
                    hearth_store::Outcome::Failed(e.message.clone()),
                    &Default::default(),
                );
                Err(e)
            }
        }
    }

    /// Stops a reply; it ends within one token, keeping what was written.
    pub fn cancel(&self, job_id: u64) {
        if let Some(flag) = lock(&self.inner.jobs).get(&job_id) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    // ---- models ----

    pub fn models(&self) -> Result<Vec<InstalledModel>> {
        models::list(self.store())
    }

    pub fn import_model(&self, path: &Path) -> Result<InstalledModel> {
        models::import(self.store(), path, now_ms())
    }

    pub fn remove_model(&self, id: &str) -> Result<()> {
        models::remove(self.store(), id)
    }

    pub fn set_default_model(&self, id: &str) -> Result<()> {
        models::set_default(self.store(), id)
    }

    // ---- settings ----

    pub fn settings(&self) -> Result<Settings> {
        Settings::load(self.store())
    }

    pub fn update_settings(&self, s: Settings) -> Result<Settings> {
        s.save(self.store())?;
        Settings::load(self.store())
    }
}
