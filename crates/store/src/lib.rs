//! Hearth's SQLite database.
//!
//! Everything the user creates (conversations, documents and their summaries, translations,
//! glossaries, settings, installed models, unfinished jobs) lives in one SQLite file, reached
//! only through the typed methods of [`Store`]. No other crate writes SQL.
//!
//! - Open with [`Store::open`] (a path) or [`Store::open_in_data_dir`] (the per-user data
//!   folder, see [`location`]). Opening migrates the schema, refuses a database from a newer
//!   Hearth ([`StoreError::NewerSchema`]), and replaces a damaged file by a fresh one, keeping
//!   the damaged one and telling the caller ([`Opened::recovery`]).
//! - [`Store`] is `Send + Sync`: share one as `Arc<Store>`. Its methods block (see
//!   [`store`] for the threading and durability contract).
//! - Streaming answers: [`Store::append_streaming`] per token, [`Store::finish_message`] at
//!   the end (see [`streaming`]).
//! - Search: [`Store::search_messages`], [`Store::search_chunks`] (see [`search`]).
//! - Export and import: [`Store::export_conversation_json`],
//!   [`Store::import_conversation_json`], [`Store::export_markdown`], [`Store::backup_to`],
//!   [`Store::restore_from`].
//! - Every value type is `serde`-serializable (camelCase fields) for the UI.
//! - Errors are [`StoreError`]; [`StoreError::code`] is stable for the UI to branch on.

pub mod backup;
mod clock;
mod columns;
pub mod conversations;
pub mod documents;
pub mod embeddings;
mod error;
pub mod exchange;
mod ids;
pub mod jobs;
pub mod location;
pub mod models;
pub mod passages;
mod sampling;
mod schema;
pub mod search;
pub mod settings;
mod status;
pub mod store;
pub mod streaming;
pub mod translations;

pub use conversations::{Conversation, Message, MessageStatus, NewMessage, Role, ThreadEntry};
pub use documents::{
    AddedDocument, Chunk, Document, NewChunk, NewDocument, NewSummary, NewSummaryPart, Summary,
    SummaryPart,
};
pub use embeddings::{ChunkEmbedding, EmbeddingCoverage};
pub use error::{Result, StoreError};
pub use exchange::{ConversationExport, ExportedMessage, EXPORT_FORMAT, EXPORT_VERSION};
pub use ids::{
    ChunkId, ConversationId, DocumentId, GlossaryEntryId, JobId, MessageId, SummaryId,
    SummaryPartId, TranslationId,
};
pub use jobs::{Job, JobKind, JobState};
pub use models::InstalledModel;
pub use passages::RankedChunk;
pub use sampling::{GenerationStats, Sampling};
pub use schema::LATEST_SCHEMA_VERSION;
pub use search::{ChunkHit, Highlight, MessageHit, SearchOptions, SearchOrder, Snippet};
pub use settings::{Setting, SettingValue};
pub use status::{Outcome, TaskStatus};
pub use store::{
    OpenCheck, OpenOptions, Opened, RecoveryNotice, Store, AUTO_QUICK_CHECK_MAX_BYTES,
};
pub use streaming::StreamWrite;
pub use translations::{GlossaryEntry, NewGlossaryEntry, NewTranslation, Translation};
