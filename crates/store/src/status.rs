//! Status values shared by the generated things other than messages (summaries,
//! translations), and how a generation ended.

use serde::{Deserialize, Serialize};

use crate::columns::text_enum;

/// How a generation ended; passed to the `finish_*` methods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status", content = "error")]
pub enum Outcome {
    Done,
    Cancelled,
    /// Failed, with a reason for the user.
    Failed(String),
}

impl Outcome {
    /// The status and error text to store.
    pub(crate) fn split(self) -> (TaskStatus, Option<String>) {
        match self {
            Outcome::Done => (TaskStatus::Done, None),
            Outcome::Cancelled => (TaskStatus::Cancelled, None),
            Outcome::Failed(e) => (TaskStatus::Failed, Some(e)),
        }
    }
}

/// State of a summary or a translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Started and not finished (or interrupted by a restart: resume or fail it).
    Running,
    Done,
    Cancelled,
    Failed,
}
text_enum!(TaskStatus {
    Running => "running",
    Done => "done",
    Cancelled => "cancelled",
    Failed => "failed",
});
