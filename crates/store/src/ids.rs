//! Typed row ids.
//!
//! Each table's integer primary key has its own type, so a message id cannot be passed where a
//! conversation id is expected. Ids serialize as plain numbers. An id stays valid until its row
//! is deleted; ids are never reused while the row exists, but an id read from an exported file
//! means nothing in another database (import assigns new ones).

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

macro_rules! row_id {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw row id.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.0))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                i64::column_result(value).map($name)
            }
        }
    )*};
}

row_id! {
    /// Id of a conversation.
    ConversationId,
    /// Id of a message.
    MessageId,
    /// Id of an imported document.
    DocumentId,
    /// Id of a document chunk.
    ChunkId,
    /// Id of a document summary.
    SummaryId,
    /// Id of one partial summary.
    SummaryPartId,
    /// Id of a translation.
    TranslationId,
    /// Id of a glossary entry.
    GlossaryEntryId,
    /// Id of a resumable job.
    JobId,
}
