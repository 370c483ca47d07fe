//! Chat: a user message and a streaming assistant reply are stored, the conversation's branch is
//! sent to the engine, and a forwarder thread relays the reply to the caller's sink in small
//! batches while the store keeps the growing text (written about once a second, so a crash loses
//! at most that much).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_engine::{
    EngineEvent, GenerationParams, Message, Priority, Prompt, Request, RequestHandle, Role,
    StopReason,
};
use hearth_store::{
    ConversationId, GenerationStats, Message as StoredMessage, MessageId, NewMessage, Outcome,
    Role as StoredRole, Sampling, Store,
};
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::settings::SamplingSettings;

/// Where chat events go (a UI channel, a test's collector).
pub type ChatSink = Box<dyn Fn(ChatEvent) + Send + Sync>;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    pub conversation_id: i64,
    pub text: String,
    /// A user message to edit: the new text becomes its sibling (a new branch).
    #[serde(default)]
    pub edit_of: Option<i64>,
    /// Overrides the system prompt from the settings for this reply.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Overrides the sampling settings for this reply.
    #[serde(default)]
    pub sampling: Option<SamplingSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartedJob {
    pub job_id: u64,
    pub user_message_id: i64,
    pub assistant_message_id: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyStats {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub ttft_ms: u64,
    pub tokens_per_second: f64,
    /// Messages left out because the conversation outgrew the context window.
    pub dropped_messages: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ChatEvent {
    #[serde(rename_all = "camelCase")]
    Started {
        job_id: u64,
        assistant_message_id: i64,
        prompt_tokens: u32,
        dropped_messages: u32,
        context_length: u32,
    },
    #[serde(rename_all = "camelCase")]
    Delta { job_id: u64, text: String },
    #[serde(rename_all = "camelCase")]
    Done {
        job_id: u64,
        status: String,
        stats: ReplyStats,
    },
    #[serde(rename_all = "camelCase")]
    Failed { job_id: u64, error: AppError },
}

/// Text is passed on at least this often while tokens arrive.
const BATCH: Duration = Duration::from_millis(40);

pub(crate) fn to_sampling_record(s: &SamplingSettings) -> Sampling {
    Sampling {
        temperature: Some(s.temperature as f64),
        top_p: Some(s.top_p as f64),
        top_k: Some(s.top_k),
        min_p: Some(s.min_p as f64),
        repeat_penalty: Some(s.repeat_penalty as f64),
        repeat_last_n: Some(64),
        seed: s.seed,
        max_tokens: Some(s.max_tokens),
    }
}

/// The engine prompt for the branch ending at `leaf` (a user message), under a system prompt.
pub(crate) fn branch_prompt(
    store: &Store,
    leaf: MessageId,
    system: &str,
) -> Result<Prompt, AppError> {
    let mut messages = Vec::new();
    if !system.trim().is_empty() {
        messages.push(Message {
            role: Role::System,
            content: system.to_string(),
        });
    }
    for m in store.path_to(leaf)? {
        let role = match m.role {
            StoredRole::System => Role::System,
            StoredRole::User => Role::User,
            StoredRole::Assistant => Role::Assistant,
        };
        // Failed replies and empty cancelled ones say nothing the model should read back.
        if m.role == StoredRole::Assistant && m.content.trim().is_empty() {
            continue;
        }
        messages.push(Message {
            role,
            content: m.content,
        });
    }
    Ok(Prompt::Chat(messages))
}

pub(crate) struct Generation {
    pub job_id: u64,
    pub assistant: StoredMessage,
    pub model_path: PathBuf,
    pub prompt: Prompt,
    pub sampling: SamplingSettings,
    pub context_length: u32,
}

/// Submits the generation and relays its events on a thread of its own. Returns the cancel flag.
pub(crate) fn run(
    engine: &hearth_engine::Engine,
    store: Arc<Store>,
    g: Generation,
    sink: ChatSink,
    on_end: Box<dyn FnOnce() + Send>,
) -> Result<Arc<AtomicBool>, AppError> {
    let params = GenerationParams {
        max_tokens: g.sampling.max_tokens as usize,
        sampling: g.sampling.to_params(),
        ..Default::default()
    };
    let handle = engine.submit(Request {
        model: g.model_path.clone(),
        prompt: g.prompt.clone(),
        params,
        priority: Priority::Interactive,
    })?;
    let cancel = handle.cancel_token();
    std::thread::Builder::new()
        .name(format!("hearth-chat-{}", g.job_id))
        .spawn(move || {
            forward(handle, &store, &g, &sink);
            on_end();
        })
        .map_err(|e| AppError::new("assistant.thread", format!("Cannot start the reply: {e}")))?;
    Ok(cancel)
}

fn forward(handle: RequestHandle, store: &Store, g: &Generation, sink: &ChatSink) {
    let id = g.assistant.id;
    let job_id = g.job_id;
    let mut text = String::new();
    let mut pending = String::new();
    let mut tokens = 0u32;
    let mut dropped = 0u32;
    let mut last_flush = Instant::now();
    let flush = |pending: &mut String| {
        if !pending.is_empty() {
            sink(ChatEvent::Delta {
                job_id,
                text: std::mem::take(pending),
            });
        }
    };
    loop {
        let ev = match handle.recv_timeout(BATCH) {
            Ok(ev) => ev,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                flush(&mut pending);
                last_flush = Instant::now();
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let err = AppError::new(
                    "engine.stopped",
                    "The engine stopped before the reply was finished.",
                );
                let _ = store.finish_message(
                    id,
                    &text,
                    Outcome::Failed(err.message.clone()),
                    &GenerationStats::default(),
                );
                sink(ChatEvent::Failed { job_id, error: err });
                return;
            }
        };
        match ev {
            EngineEvent::Loading { .. } | EngineEvent::Loaded(_) => {}
            EngineEvent::Started(p) => {
                dropped = p.dropped_messages as u32;
                sink(ChatEvent::Started {
                    job_id,
                    assistant_message_id: id.get(),
                    prompt_tokens: p.prompt_tokens as u32,
                    dropped_messages: dropped,
                    context_length: g.context_length,
                });
            }
            EngineEvent::Text(t) => {
                tokens += 1;
                text.push_str(&t);
                pending.push_str(&t);
                // The store writes at most about once a second; errors here surface at finish.
                let _ = store.append_streaming(id, &text, tokens);
                if last_flush.elapsed() >= BATCH {
                    flush(&mut pending);
                    last_flush = Instant::now();
                }
            }
            EngineEvent::Done(s) => {
                flush(&mut pending);
                let stats = GenerationStats {
                    prompt_tokens: Some(s.prompt.prompt_tokens as u32),
                    completion_tokens: Some(s.tokens.len() as u32),
                    ttft_ms: Some(s.ttft_ms.round() as u64),
                    tokens_per_second: Some(s.decode_tok_s),
                };
                let cancelled = s.stop == StopReason::Cancelled;
                let outcome = if cancelled {
                    Outcome::Cancelled
                } else {
                    Outcome::Done
                };
                if let Err(e) = store.finish_message(id, &s.text, outcome, &stats) {
                    sink(ChatEvent::Failed {
                        job_id,
                        error: e.into(),
                    });
                    return;
                }
                sink(ChatEvent::Done {
                    job_id,
                    status: if cancelled {
                        "cancelled".into()
                    } else {
                        "done".into()
                    },
                    stats: ReplyStats {
                        prompt_tokens: s.prompt.prompt_tokens as u32,
                        completion_tokens: s.tokens.len() as u32,
                        ttft_ms: s.ttft_ms.round() as u64,
                        tokens_per_second: s.decode_tok_s,
                        dropped_messages: dropped,
                    },
                });
                return;
            }
            EngineEvent::Failed(e) => {
                flush(&mut pending);
                let err: AppError = e.into();
                let outcome = if err.code == "engine.cancelled" {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed(err.message.clone())
                };
                let cancelled = outcome == Outcome::Cancelled;
                let _ = store.finish_message(id, &text, outcome, &GenerationStats::default());
                if cancelled {
                    // Stopped before the engine took it up: a stopped reply, as one stopped
                    // while it was being written.
                    sink(ChatEvent::Done {
                        job_id,
                        status: "cancelled".into(),
                        stats: ReplyStats {
                            dropped_messages: dropped,
                            ..Default::default()
                        },
                    });
                } else {
                    sink(ChatEvent::Failed { job_id, error: err });
                }
                return;
            }
        }
    }
}

/// Creates the messages for a send: the user message (a sibling of `edit_of` when editing) and
/// an empty streaming reply under it.
pub(crate) fn add_turn(
    store: &Store,
    conversation: ConversationId,
    text: &str,
    edit_of: Option<MessageId>,
    model_id: &str,
    sampling: &SamplingSettings,
) -> Result<(StoredMessage, StoredMessage), AppError> {
    let parent = match edit_of {
        Some(original) => {
            let m = store.message(original)?;
            if m.conversation_id != conversation || m.role != StoredRole::User {
                return Err(AppError::new(
                    "chat.invalid_edit",
                    "Only your own messages in this conversation can be edited.",
                ));
            }
            m.parent_id
        }
        None => store.conversation(conversation)?.current_leaf,
    };
    let user = store.add_message(&NewMessage::user(conversation, parent, text))?;
    let reply = store.add_message(&NewMessage::assistant_streaming(
        conversation,
        Some(user.id),
        model_id,
        to_sampling_record(sampling),
    ))?;
    Ok((user, reply))
}
