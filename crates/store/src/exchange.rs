//! Moving a conversation in and out as a file: Markdown (to read or share) and JSON (to
//! import again).
//!
//! # JSON format, version 1
//! ```json
//! { "format": "hearth.conversation", "version": 1,
//!   "title": "...", "createdAt": 1700000000000, "updatedAt": 1700000000000,
//!   "currentLeaf": 3,
//!   "messages": [ { "id": 1, "parent": null, "role": "user", "content": "...",
//!                   "status": "done", "error": null, "modelId": null,
//!                   "sampling": { "temperature": null, ... },
//!                   "stats": { "promptTokens": null, ... },
//!                   "createdAt": ..., "updatedAt": ... }, ... ] }
//! ```
//! Message ids are local to the file (1, 2, ... in creation order; a parent always comes
//! before its children). Every branch and every stored field is included, so
//! export → import → export gives the same file, byte for byte. Import assigns new database
//! ids and accepts any version up to [`EXPORT_VERSION`]; a newer file is refused with
//! [`StoreError::UnsupportedExportVersion`].

use std::collections::HashMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::clock::{now_ms, readable_utc};
use crate::conversations::{
    get_conversation, insert_message_full, Conversation, Message, MessageStatus, NewMessage, Role,
};
use crate::error::{Result, StoreError};
use crate::ids::{ConversationId, MessageId};
use crate::sampling::{GenerationStats, Sampling};
use crate::store::Store;

/// The `format` field of an exported conversation.
pub const EXPORT_FORMAT: &str = "hearth.conversation";
/// The newest export format version this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// An exported conversation (the JSON file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationExport {
    pub format: String,
    pub version: u32,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Local id of the branch shown last.
    pub current_leaf: Option<u32>,
    pub messages: Vec<ExportedMessage>,
}

/// One message in an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedMessage {
    /// Local id, from 1.
    pub id: u32,
    pub parent: Option<u32>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub model_id: Option<String>,
    pub sampling: Sampling,
    pub stats: GenerationStats,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// The conversation as an export value (all branches).
    pub fn export_conversation(&self, id: ConversationId) -> Result<ConversationExport> {
        let conversation = self.conversation(id)?;
        let messages = self.messages(id)?;
        let mut local: HashMap<MessageId, u32> = HashMap::new();
        let mut exported = Vec::with_capacity(messages.len());
        for (i, m) in messages.into_iter().enumerate() {
            let local_id = u32::try_from(i + 1)
                .map_err(|_| StoreError::InvalidValue("too many messages to export".into()))?;
            let parent = match m.parent_id {
                None => None,
                // Parents are created before children, so they have a smaller id.
                Some(p) => Some(*local.get(&p).ok_or_else(|| {
                    StoreError::InvalidValue(format!("message {} has a later parent", m.id))
                })?),
            };
            local.insert(m.id, local_id);
            exported.push(ExportedMessage {
                id: local_id,
                parent,
                role: m.role,
                content: m.content,
                status: m.status,
                error: m.error,
                model_id: m.model_id,
                sampling: m.sampling,
                stats: m.stats,
                created_at: m.created_at,
                updated_at: m.updated_at,
            });
        }
        Ok(ConversationExport {
            format: EXPORT_FORMAT.to_string(),
            version: EXPORT_VERSION,
            title: conversation.title,
            created_at: conversation.created_at,
            updated_at: conversation.updated_at,
            current_leaf: conversation
                .current_leaf
                .and_then(|leaf| local.get(&leaf).copied()),
            messages: exported,
        })
    }

    /// The conversation as pretty-printed JSON (see the module documentation).
    pub fn export_conversation_json(&self, id: ConversationId) -> Result<String> {
        Ok(serde_json::to_string_pretty(
            &self.export_conversation(id)?,
        )?)
    }

    /// Imports a conversation from JSON as a new conversation, all or nothing.
    pub fn import_conversation_json(&self, json: &str) -> Result<Conversation> {
        // Look at the header first, so a newer file gets the right error even if its body
        // has fields this build does not know.
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_str(json)
            .map_err(|e| StoreError::InvalidImport(format!("not a conversation file: {e}")))?;
        if header.format != EXPORT_FORMAT {
            return Err(StoreError::InvalidImport(format!(
                "the file's format is {:?}, not {EXPORT_FORMAT:?}",
                header.format
            )));
        }
        if header.version > EXPORT_VERSION {
            return Err(StoreError::UnsupportedExportVersion {
                found: header.version,
                supported: EXPORT_VERSION,
            });
        }
        let export: ConversationExport =
            serde_json::from_str(json).map_err(|e| StoreError::InvalidImport(e.to_string()))?;
        self.import_conversation(&export)
    }

    /// Imports an export value as a new conversation, all or nothing.
    pub fn import_conversation(&self, export: &ConversationExport) -> Result<Conversation> {
        if export.version == 0 || export.version > EXPORT_VERSION {
            return Err(StoreError::UnsupportedExportVersion {
                found: export.version,
                supported: EXPORT_VERSION,
            });
        }
        self.write(|tx| {
            tx.execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?1, ?2, ?3)",
                params![export.title, export.created_at, export.updated_at],
            )?;
            let conversation_id = ConversationId(tx.last_insert_rowid());
            let mut ids: HashMap<u32, MessageId> = HashMap::new();
            for m in &export.messages {
                if ids.contains_key(&m.id) {
                    return Err(StoreError::InvalidImport(format!(
                        "message id {} appears twice",
                        m.id
                    )));
                }
                let parent_id = match m.parent {
                    None => None,
                    Some(p) => Some(*ids.get(&p).ok_or_else(|| {
                        StoreError::InvalidImport(format!(
                            "message {} has parent {p}, which does not come before it",
                            m.id
                        ))
                    })?),
                };
                let new = NewMessage {
                    conversation_id,
                    parent_id,
                    role: m.role,
                    content: m.content.clone(),
                    status: m.status,
                    model_id: m.model_id.clone(),
                    sampling: m.sampling.clone(),
                };
                insert_message_full(
                    tx,
                    &new,
                    m.error.as_deref(),
                    &m.stats,
                    m.created_at,
                    m.updated_at,
                )?;
                ids.insert(m.id, MessageId(tx.last_insert_rowid()));
            }
            let leaf = match export.current_leaf {
                None => None,
                Some(l) => Some(*ids.get(&l).ok_or_else(|| {
                    StoreError::InvalidImport(format!("current leaf {l} is not a message"))
                })?),
            };
            tx.execute(
                "UPDATE conversations SET current_leaf_id = ?2 WHERE id = ?1",
                params![conversation_id, leaf],
            )?;
            get_conversation(tx, conversation_id)
        })
    }

    /// The branch ending at `leaf` (default: the branch shown last) as Markdown.
    pub fn export_markdown(
        &self,
        conversation: ConversationId,
        leaf: Option<MessageId>,
    ) -> Result<String> {
        let conv = self.conversation(conversation)?;
        let path: Vec<Message> = match leaf {
            Some(leaf) => {
                let path = self.path_to(leaf)?;
                if path.first().map(|m| m.conversation_id) != Some(conversation) {
                    return Err(StoreError::not_found("message in this conversation", leaf));
                }
                path
            }
            None => self
                .thread(conversation)?
                .into_iter()
                .map(|e| e.message)
                .collect(),
        };
        Ok(render_markdown(&conv, &path, now_ms()))
    }
}

fn render_markdown(conv: &Conversation, path: &[Message], now: i64) -> String {
    let mut out = String::new();
    let title = if conv.title.trim().is_empty() {
        "Conversation"
    } else {
        conv.title.trim()
    };
    out.push_str(&format!("# {title}\n\n"));
    out.push_str(&format!(
        "*Exported from Hearth on {}. Started {}.*\n",
        readable_utc(now),
        readable_utc(conv.created_at)
    ));
    for m in path {
        let who = match m.role {
            Role::System => "System",
            Role::User => "User",
            Role::Assistant => "Assistant",
        };
        let mut heading = format!("\n## {who}");
        if let Some(model) = &m.model_id {
            heading.push_str(&format!(" · {model}"));
        }
        if let Some(n) = m.stats.completion_tokens {
            heading.push_str(&format!(" · {n} tokens"));
        }
        if let Some(tps) = m.stats.tokens_per_second {
            heading.push_str(&format!(" · {tps:.1} tok/s"));
        }
        out.push_str(&heading);
        out.push_str("\n\n");
        out.push_str(m.content.trim_end());
        out.push('\n');
        match m.status {
            MessageStatus::Done => {}
            MessageStatus::Streaming => out.push_str("\n*(still being written)*\n"),
            MessageStatus::Cancelled => out.push_str("\n*(stopped)*\n"),
            MessageStatus::Failed => out.push_str(&format!(
                "\n*(failed: {})*\n",
                m.error.as_deref().unwrap_or("unknown error")
            )),
        }
    }
    out
}
