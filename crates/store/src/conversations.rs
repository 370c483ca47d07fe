//! Conversations and their messages, kept as a tree.
//!
//! A message's `parent_id` is the message it answers or follows; roots have none. Editing a
//! question or regenerating an answer adds a new child to the same parent, so the old and the
//! new message are *siblings* and both branches stay. The conversation remembers the leaf the
//! user looked at last ([`Conversation::current_leaf`]); [`Store::thread`] returns the path from
//! the root to it with each message's siblings, which is what a chat view needs to draw
//! "< 2/3 >" switches, and [`Store::select_branch`] switches.
//!
//! Messages of a conversation are returned in creation order (by id). Reads see streaming text
//! that is still waiting in memory (see [`Store::append_streaming`]).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::columns::text_enum;
use crate::error::{Result, StoreError};
use crate::ids::{ConversationId, MessageId};
use crate::sampling::{GenerationStats, Sampling};
use crate::store::{lock, Store};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}
text_enum!(Role { System => "system", User => "user", Assistant => "assistant" });

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Being generated; the text grows.
    Streaming,
    /// Complete (user and system messages are always `Done`).
    Done,
    /// Generation stopped by the user; the text is what was produced until then.
    Cancelled,
    /// Generation failed; `error` says why.
    Failed,
}
text_enum!(MessageStatus {
    Streaming => "streaming",
    Done => "done",
    Cancelled => "cancelled",
    Failed => "failed",
});

/// One conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub id: ConversationId,
    pub title: String,
    /// The leaf of the branch shown last; `None` for an empty conversation.
    pub current_leaf: Option<MessageId>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch; bumped by every new or finished message.
    pub updated_at: i64,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub parent_id: Option<MessageId>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    /// Why generation failed (set with [`MessageStatus::Failed`]).
    pub error: Option<String>,
    /// Catalog id of the model that wrote it (assistant messages).
    pub model_id: Option<String>,
    pub sampling: Sampling,
    pub stats: GenerationStats,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// A message to add with [`Store::add_message`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    pub conversation_id: ConversationId,
    pub parent_id: Option<MessageId>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub model_id: Option<String>,
    #[serde(default)]
    pub sampling: Sampling,
}

impl NewMessage {
    /// A finished user message.
    pub fn user(
        conversation_id: ConversationId,
        parent_id: Option<MessageId>,
        text: impl Into<String>,
    ) -> Self {
        NewMessage {
            conversation_id,
            parent_id,
            role: Role::User,
            content: text.into(),
            status: MessageStatus::Done,
            model_id: None,
            sampling: Sampling::default(),
        }
    }

    /// A finished system message.
    pub fn system(conversation_id: ConversationId, text: impl Into<String>) -> Self {
        NewMessage {
            role: Role::System,
            ..NewMessage::user(conversation_id, None, text)
        }
    }

    /// An empty assistant message about to be generated (status `Streaming`).
    pub fn assistant_streaming(
        conversation_id: ConversationId,
        parent_id: Option<MessageId>,
        model_id: impl Into<String>,
        sampling: Sampling,
    ) -> Self {
        NewMessage {
            conversation_id,
            parent_id,
            role: Role::Assistant,
            content: String::new(),
            status: MessageStatus::Streaming,
            model_id: Some(model_id.into()),
            sampling,
        }
    }
}

/// A message on the shown branch, with its siblings (itself included, in creation order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadEntry {
    pub message: Message,
    pub sibling_ids: Vec<MessageId>,
}

impl ThreadEntry {
    /// Position of this message among its siblings, from 0.
    pub fn sibling_index(&self) -> usize {
        self.sibling_ids
            .iter()
            .position(|id| *id == self.message.id)
            .unwrap_or(0)
    }
}

pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.conversation_id, m.parent_id, m.role, \
    m.content, m.status, m.error, m.model_id, m.temperature, m.top_p, m.top_k, m.min_p, \
    m.repeat_penalty, m.repeat_last_n, m.seed, m.max_tokens, m.prompt_tokens, \
    m.completion_tokens, m.ttft_ms, m.tokens_per_second, m.created_at, m.updated_at";

pub(crate) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get("id")?,
        conversation_id: row.get("conversation_id")?,
        parent_id: row.get("parent_id")?,
        role: crate::columns::get_enum(row, "role")?,
        content: row.get("content")?,
        status: crate::columns::get_enum(row, "status")?,
        error: row.get("error")?,
        model_id: row.get("model_id")?,
        sampling: Sampling::from_row(row)?,
        stats: GenerationStats::from_row(row)?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn conversation_from_row(row: &Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: row.get("id")?,
        title: row.get("title")?,
        current_leaf: row.get("current_leaf_id")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

const CONVERSATION_COLUMNS: &str = "id, title, current_leaf_id, created_at, updated_at";

pub(crate) fn get_conversation(conn: &Connection, id: ConversationId) -> Result<Conversation> {
    conn.query_row(
        &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1"),
        [id],
        conversation_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::not_found("conversation", id))
}

pub(crate) fn get_message(conn: &Connection, id: MessageId) -> Result<Message> {
    conn.query_row(
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"),
        [id],
        message_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::not_found("message", id))
}

fn query_messages(
    conn: &Connection,
    sql_tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m {sql_tail}"
    ))?;
    let rows = stmt.query_map(params, message_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Root-to-leaf path ending at `leaf`.
pub(crate) fn path_to(conn: &Connection, leaf: MessageId) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "WITH RECURSIVE up(id, depth) AS ( \
             SELECT ?1, 0 \
             UNION ALL \
             SELECT p.parent_id, up.depth + 1 FROM messages p JOIN up ON p.id = up.id \
             WHERE p.parent_id IS NOT NULL) \
         SELECT {MESSAGE_COLUMNS} FROM up JOIN messages m ON m.id = up.id \
         ORDER BY up.depth DESC"
    ))?;
    let path = stmt
        .query_map([leaf], message_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if path.is_empty() {
        return Err(StoreError::not_found("message", leaf));
    }
    Ok(path)
}

/// Follows the newest child from `from` down to a leaf.
fn newest_leaf_under(conn: &Connection, from: MessageId) -> Result<MessageId> {
    let leaf = conn.query_row(
        "WITH RECURSIVE down(id, depth) AS ( \
             SELECT ?1, 0 \
             UNION ALL \
             SELECT (SELECT c.id FROM messages c WHERE c.parent_id = down.id \
                     ORDER BY c.id DESC LIMIT 1), down.depth + 1 \
             FROM down WHERE down.id IS NOT NULL) \
         SELECT id FROM down WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1",
        [from],
        |r| r.get(0),
    );
    match leaf {
        Ok(id) => Ok(id),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(from),
        Err(e) => Err(e.into()),
    }
}

/// Siblings of a message (same conversation and parent), itself included, by id.
fn sibling_ids(conn: &Connection, message: &Message) -> Result<Vec<MessageId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM messages WHERE conversation_id = ?1 AND parent_id IS ?2 ORDER BY id",
    )?;
    let ids = stmt
        .query_map(params![message.conversation_id, message.parent_id], |r| {
            r.get(0)
        })?
        .collect::<rusqlite::Result<Vec<MessageId>>>()?;
    Ok(ids)
}

impl Store {
    /// Creates an empty conversation.
    pub fn create_conversation(&self, title: &str) -> Result<Conversation> {
        let now = now_ms();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?1, ?2, ?2)",
                params![title, now],
            )?;
            get_conversation(tx, ConversationId(tx.last_insert_rowid()))
        })
    }

    /// One conversation.
    pub fn conversation(&self, id: ConversationId) -> Result<Conversation> {
        self.read(|conn| get_conversation(conn, id))
    }

    /// All conversations, most recently updated first.
    pub fn list_conversations(&self) -> Result<Vec<Conversation>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations \
                 ORDER BY updated_at DESC, id DESC"
            ))?;
            let rows = stmt.query_map([], conversation_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Changes a conversation's title.
    pub fn rename_conversation(&self, id: ConversationId, title: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE conversations SET title = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, title, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::not_found("conversation", id));
            }
            Ok(())
        })
    }

    /// Deletes a conversation and all its messages.
    pub fn delete_conversation(&self, id: ConversationId) -> Result<()> {
        let mut streams = lock(&self.streams);
        let ids = self.write(|tx| {
            let ids = {
                let mut stmt = tx.prepare("SELECT id FROM messages WHERE conversation_id = ?1")?;
                let ids = stmt
                    .query_map([id], |r| r.get::<_, MessageId>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                ids
            };
            let n = tx.execute("DELETE FROM conversations WHERE id = ?1", [id])?;
            if n == 0 {
                return Err(StoreError::not_found("conversation", id));
            }
            Ok(ids)
        })?;
        for message in ids {
            streams.remove(&message);
        }
        Ok(())
    }

    /// Adds a message (a child of `parent_id`, or a root) and makes it the conversation's
    /// current leaf. A second child of the same parent starts a new branch.
    pub fn add_message(&self, new: &NewMessage) -> Result<Message> {
        let now = now_ms();
        self.write(|tx| {
            insert_message(tx, new, now, now)?;
            let id = MessageId(tx.last_insert_rowid());
            tx.execute(
                "UPDATE conversations SET current_leaf_id = ?2, updated_at = ?3 WHERE id = ?1",
                params![new.conversation_id, id, now],
            )?;
            get_message(tx, id)
        })
    }

    /// One message.
    pub fn message(&self, id: MessageId) -> Result<Message> {
        let mut message = self.read(|conn| get_message(conn, id))?;
        self.overlay_pending(std::slice::from_mut(&mut message));
        Ok(message)
    }

    /// Every message of a conversation, all branches, in creation order.
    pub fn messages(&self, conversation: ConversationId) -> Result<Vec<Message>> {
        let mut messages = self.read(|conn| {
            get_conversation(conn, conversation)?;
            query_messages(
                conn,
                "WHERE m.conversation_id = ?1 ORDER BY m.id",
                [conversation],
            )
        })?;
        self.overlay_pending(&mut messages);
        Ok(messages)
    }

    /// Children of `parent` (or the roots, for `None`) in a conversation, in creation order.
    pub fn children(
        &self,
        conversation: ConversationId,
        parent: Option<MessageId>,
    ) -> Result<Vec<Message>> {
        let mut messages = self.read(|conn| {
            query_messages(
                conn,
                "WHERE m.conversation_id = ?1 AND m.parent_id IS ?2 ORDER BY m.id",
                params![conversation, parent],
            )
        })?;
        self.overlay_pending(&mut messages);
        Ok(messages)
    }

    /// The message and its siblings (same parent), in creation order.
    pub fn siblings(&self, id: MessageId) -> Result<Vec<Message>> {
        let message = self.read(|conn| get_message(conn, id))?;
        self.children(message.conversation_id, message.parent_id)
    }

    /// The messages from the root down to `leaf`, in order.
    pub fn path_to(&self, leaf: MessageId) -> Result<Vec<Message>> {
        let mut path = self.read(|conn| path_to(conn, leaf))?;
        self.overlay_pending(&mut path);
        Ok(path)
    }

    /// The branch the conversation shows: root to current leaf, each message with its
    /// siblings. Empty for an empty conversation.
    pub fn thread(&self, conversation: ConversationId) -> Result<Vec<ThreadEntry>> {
        let mut entries = self.read(|conn| {
            let conv = get_conversation(conn, conversation)?;
            let leaf = match conv.current_leaf {
                Some(leaf) => Some(leaf),
                None => {
                    let newest_root: Option<MessageId> = conn
                        .query_row(
                            "SELECT id FROM messages WHERE conversation_id = ?1 \
                             AND parent_id IS NULL ORDER BY id DESC LIMIT 1",
                            [conversation],
                            |r| r.get(0),
                        )
                        .optional()?;
                    newest_root
                        .map(|root| newest_leaf_under(conn, root))
                        .transpose()?
                }
            };
            let Some(leaf) = leaf else {
                return Ok(Vec::new());
            };
            path_to(conn, leaf)?
                .into_iter()
                .map(|message| {
                    let sibling_ids = sibling_ids(conn, &message)?;
                    Ok(ThreadEntry {
                        message,
                        sibling_ids,
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let mut messages: Vec<Message> = entries.iter().map(|e| e.message.clone()).collect();
        self.overlay_pending(&mut messages);
        for (entry, message) in entries.iter_mut().zip(messages) {
            entry.message = message;
        }
        Ok(entries)
    }

    /// Shows the branch through `message`: the conversation's current leaf becomes the newest
    /// leaf below it (following the newest child at each step). Returns the new thread.
    pub fn select_branch(&self, message: MessageId) -> Result<Vec<ThreadEntry>> {
        let conversation = self.write(|tx| {
            let m = get_message(tx, message)?;
            let leaf = newest_leaf_under(tx, message)?;
            tx.execute(
                "UPDATE conversations SET current_leaf_id = ?2 WHERE id = ?1",
                params![m.conversation_id, leaf],
            )?;
            Ok(m.conversation_id)
        })?;
        self.thread(conversation)
    }

    /// Deletes a message and everything below it. If the shown branch went through it, the
    /// parent's newest remaining branch is shown instead.
    pub fn delete_message(&self, id: MessageId) -> Result<()> {
        let mut streams = lock(&self.streams);
        let removed = self.write(|tx| {
            let m = get_message(tx, id)?;
            let removed = {
                let mut stmt = tx.prepare(
                    "WITH RECURSIVE down(id) AS (SELECT ?1 UNION ALL \
                     SELECT c.id FROM messages c JOIN down ON c.parent_id = down.id) \
                     SELECT id FROM down",
                )?;
                let ids = stmt
                    .query_map([id], |r| r.get::<_, MessageId>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                ids
            };
            let conv = get_conversation(tx, m.conversation_id)?;
            tx.execute("DELETE FROM messages WHERE id = ?1", [id])?;
            if conv.current_leaf.is_none_or(|leaf| removed.contains(&leaf)) {
                let leaf = match m.parent_id {
                    Some(parent) => Some(newest_leaf_under(tx, parent)?),
                    None => None,
                };
                tx.execute(
                    "UPDATE conversations SET current_leaf_id = ?2, updated_at = ?3 \
                     WHERE id = ?1",
                    params![m.conversation_id, leaf, now_ms()],
                )?;
            }
            Ok(removed)
        })?;
        for message in removed {
            streams.remove(&message);
        }
        Ok(())
    }

    /// Marks messages left `Streaming` by a previous run (the app stopped while generating) as
    /// `Failed` with the error "interrupted". Call once at startup, before new generations.
    /// Messages currently streaming through this store are not touched. Returns their ids.
    pub fn fail_interrupted_messages(&self) -> Result<Vec<MessageId>> {
        let streams = lock(&self.streams);
        self.write(|tx| {
            let ids = {
                let mut stmt = tx.prepare("SELECT id FROM messages WHERE status = 'streaming'")?;
                let ids = stmt
                    .query_map([], |r| r.get::<_, MessageId>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                ids
            };
            let now = now_ms();
            let mut failed = Vec::new();
            for id in ids.into_iter().filter(|id| !streams.contains_key(id)) {
                tx.execute(
                    "UPDATE messages SET status = 'failed', error = 'interrupted', \
                     updated_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                failed.push(id);
            }
            Ok(failed)
        })
    }
}

/// Inserts one message row with the given times (checks the parent's conversation).
pub(crate) fn insert_message(
    tx: &Connection,
    new: &NewMessage,
    created_at: i64,
    updated_at: i64,
) -> Result<()> {
    insert_message_full(
        tx,
        new,
        None,
        &GenerationStats::default(),
        created_at,
        updated_at,
    )
}

/// Inserts one message row with every field (used by import).
pub(crate) fn insert_message_full(
    tx: &Connection,
    new: &NewMessage,
    error: Option<&str>,
    stats: &GenerationStats,
    created_at: i64,
    updated_at: i64,
) -> Result<()> {
    get_conversation(tx, new.conversation_id)?;
    if let Some(parent) = new.parent_id {
        let parent_conv: Option<ConversationId> = tx
            .query_row(
                "SELECT conversation_id FROM messages WHERE id = ?1",
                [parent],
                |r| r.get(0),
            )
            .optional()?;
        match parent_conv {
            None => return Err(StoreError::not_found("message", parent)),
            Some(c) if c != new.conversation_id => {
                return Err(StoreError::ParentInOtherConversation {
                    parent: parent.0,
                    conversation: new.conversation_id.0,
                })
            }
            Some(_) => {}
        }
    }
    let s = &new.sampling;
    let ttft = stats
        .ttft_ms
        .map(|v| crate::columns::u64_to_sql(v, "time to first token"))
        .transpose()?;
    tx.prepare_cached(
        "INSERT INTO messages (conversation_id, parent_id, role, content, status, error, \
         model_id, temperature, top_p, top_k, min_p, repeat_penalty, repeat_last_n, seed, \
         max_tokens, prompt_tokens, completion_tokens, ttft_ms, tokens_per_second, created_at, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
         ?16, ?17, ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        new.conversation_id,
        new.parent_id,
        new.role,
        new.content,
        new.status,
        error,
        new.model_id,
        s.temperature,
        s.top_p,
        s.top_k,
        s.min_p,
        s.repeat_penalty,
        s.repeat_last_n,
        s.seed_sql(),
        s.max_tokens,
        stats.prompt_tokens,
        stats.completion_tokens,
        ttft,
        stats.tokens_per_second,
        created_at,
        updated_at,
    ])?;
    Ok(())
}
