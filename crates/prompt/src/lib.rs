//! Turns a conversation into the prompt text a model expects, and fits it into the context window.
//!
//! - [`ChatFormat`] is a model's way of writing a conversation: its own chat template (the GGUF's
//!   `tokenizer.chat_template`, rendered the way Hugging Face renders it), or, for a model without
//!   one, a plain-completion transcript (see [`ChatFormat`] for its exact shape).
//! - [`fit_to_context`] applies the context policy: keep every system message and the last user
//!   message, drop the oldest turns until the prompt and the output budget fit, and say how many
//!   messages were dropped.
//!
//! A caller may rely on: rendering is deterministic for a given conversation (apart from templates
//! that print today's date through `strftime_now`, see [`ChatFormat::with_fixed_time`]); errors are
//! [`PromptError`] values, never panics; a [`ChatFormat`] is `Send + Sync` and cheap to share.

mod context;
mod conversation;
mod error;
mod format;
mod hf_jinja;
mod transcript;

pub use context::{fit_to_context, Fitted};
pub use conversation::{Message, Role};
pub use error::PromptError;
pub use format::ChatFormat;
pub use transcript::PLAIN_STOP_STRINGS;

/// The time type [`ChatFormat::with_fixed_time`] takes (chrono's, re-exported).
pub use chrono::NaiveDateTime;
