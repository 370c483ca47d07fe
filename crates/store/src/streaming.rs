//! Writing an assistant message while it is being generated.
//!
//! Generation produces many tokens a second; writing each one to SQLite would rewrite the row
//! and its full-text index every time. Instead [`Store::append_streaming`] may be called per
//! token: it keeps the latest text in memory and writes it to the database
//! - on the first update of a message (so the first token is on disk at once),
//! - then at most once per flush interval (one second by default, see
//!   [`crate::OpenOptions::streaming_flush_interval`]), checked at each call,
//! - and always in [`Store::finish_message`], [`Store::flush_streaming`] and when the
//!   [`Store`] is dropped.
//!
//! So a crash loses at most the text of the last interval. A caller whose tokens may pause
//! for long (or who wants a write now) calls [`Store::flush_streaming`]. Reads through the
//! store (`message`, `messages`, `thread`, ...) already see the in-memory text; search sees
//! what was written.

use std::time::Instant;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::conversations::{get_message, Message, MessageStatus};
use crate::error::{Result, StoreError};
use crate::ids::MessageId;
use crate::sampling::GenerationStats;
use crate::status::Outcome;
use crate::store::{lock, Store};

/// Text of a streaming message not yet written.
#[derive(Debug)]
pub(crate) struct PendingStream {
    text: String,
    tokens: u32,
    last_write: Option<Instant>,
    dirty: bool,
}

/// What [`Store::append_streaming`] did with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamWrite {
    /// The text is in the database (committed) now.
    Written,
    /// Kept in memory; it will be written by a later call.
    Buffered,
}

impl Store {
    /// Records the text generated so far for a `Streaming` message and the number of tokens
    /// produced. Cheap to call per token; writes at most once per flush interval per message
    /// (see the module documentation). Fails with [`StoreError::NotStreaming`] if the message
    /// is finished, [`StoreError::NotFound`] if it does not exist.
    pub fn append_streaming(
        &self,
        id: MessageId,
        text_so_far: &str,
        tokens: u32,
    ) -> Result<StreamWrite> {
        let mut streams = lock(&self.streams);
        let pending = streams.entry(id).or_insert_with(|| PendingStream {
            text: String::new(),
            tokens: 0,
            last_write: None,
            dirty: false,
        });
        pending.text.clear();
        pending.text.push_str(text_so_far);
        pending.tokens = tokens;
        pending.dirty = true;
        let due = pending
            .last_write
            .is_none_or(|at| at.elapsed() >= self.flush_interval);
        if !due {
            return Ok(StreamWrite::Buffered);
        }
        let result = self.write_pending(id, pending);
        if result.is_err() {
            streams.remove(&id);
        }
        result.map(|()| StreamWrite::Written)
    }

    /// Writes every streaming message's text still waiting in memory. Returns how many were
    /// written. On error the others are still attempted and the first error is returned.
    pub fn flush_streaming(&self) -> Result<usize> {
        let mut streams = lock(&self.streams);
        let mut written = 0;
        let mut first_error = None;
        let mut dead = Vec::new();
        for (id, pending) in streams.iter_mut().filter(|(_, p)| p.dirty) {
            match self.write_pending(*id, pending) {
                Ok(()) => written += 1,
                Err(e) => {
                    dead.push(*id);
                    first_error.get_or_insert(e);
                }
            }
        }
        for id in dead {
            streams.remove(&id);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// Ends a streaming message: writes its final text, status, error and statistics in one
    /// transaction and bumps the conversation's `updated_at`. Returns the finished message.
    pub fn finish_message(
        &self,
        id: MessageId,
        final_text: &str,
        outcome: Outcome,
        stats: &GenerationStats,
    ) -> Result<Message> {
        let mut streams = lock(&self.streams);
        let (status, error) = match outcome {
            Outcome::Done => (MessageStatus::Done, None),
            Outcome::Cancelled => (MessageStatus::Cancelled, None),
            Outcome::Failed(e) => (MessageStatus::Failed, Some(e)),
        };
        let ttft = stats
            .ttft_ms
            .map(|v| crate::columns::u64_to_sql(v, "time to first token"))
            .transpose()?;
        let now = now_ms();
        let message = self.write(|tx| {
            let n = tx.execute(
                "UPDATE messages SET content = ?2, status = ?3, error = ?4, prompt_tokens = ?5, \
                 completion_tokens = ?6, ttft_ms = ?7, tokens_per_second = ?8, updated_at = ?9 \
                 WHERE id = ?1 AND status = 'streaming'",
                params![
                    id,
                    final_text,
                    status,
                    error,
                    stats.prompt_tokens,
                    stats.completion_tokens,
                    ttft,
                    stats.tokens_per_second,
                    now
                ],
            )?;
            if n == 0 {
                return Err(not_streaming(tx, id));
            }
            let message = get_message(tx, id)?;
            tx.execute(
                "UPDATE conversations SET updated_at = ?2 WHERE id = ?1",
                params![message.conversation_id, now],
            )?;
            Ok(message)
        })?;
        streams.remove(&id);
        Ok(message)
    }

    /// Writes one pending text (streams lock held by the caller).
    fn write_pending(&self, id: MessageId, pending: &mut PendingStream) -> Result<()> {
        let now = now_ms();
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE messages SET content = ?2, completion_tokens = ?3, updated_at = ?4 \
                 WHERE id = ?1 AND status = 'streaming'",
                params![id, pending.text, pending.tokens, now],
            )?;
            if n == 0 {
                return Err(not_streaming(tx, id));
            }
            Ok(())
        })?;
        pending.last_write = Some(Instant::now());
        pending.dirty = false;
        Ok(())
    }

    /// Replaces the text of streaming messages by what is waiting in memory.
    pub(crate) fn overlay_pending(&self, messages: &mut [Message]) {
        let streams = lock(&self.streams);
        if streams.is_empty() {
            return;
        }
        for m in messages
            .iter_mut()
            .filter(|m| m.status == MessageStatus::Streaming)
        {
            if let Some(p) = streams.get(&m.id) {
                m.content.clone_from(&p.text);
                m.stats.completion_tokens = Some(p.tokens);
            }
        }
    }
}

/// The error for an update to a message that is not (or no longer) streaming.
fn not_streaming(conn: &rusqlite::Connection, id: MessageId) -> StoreError {
    let status: rusqlite::Result<Option<String>> = conn
        .query_row("SELECT status FROM messages WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional();
    match status {
        Ok(Some(status)) => StoreError::NotStreaming {
            message: id.0,
            status,
        },
        Ok(None) => StoreError::not_found("message", id),
        Err(e) => e.into(),
    }
}
