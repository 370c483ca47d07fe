//! Generation settings and statistics that several tables record in typed columns.
//!
//! [`Sampling`] is stored in the columns `temperature, top_p, top_k, min_p, repeat_penalty,
//! repeat_last_n, seed, max_tokens` of `messages`, `summaries` and `translations`. Every field is
//! optional: `None` means "not set, the engine's default was used". Values round-trip exactly
//! (floats are stored as 64-bit REAL; the 64-bit seed keeps its bit pattern).

use rusqlite::Row;
use serde::{Deserialize, Serialize};

use crate::columns::{opt_u32, opt_u64};

/// The sampling settings a piece of text was generated with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub min_p: Option<f64>,
    pub repeat_penalty: Option<f64>,
    pub repeat_last_n: Option<u32>,
    pub seed: Option<u64>,
    pub max_tokens: Option<u32>,
}

impl Sampling {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Sampling {
            temperature: row.get("temperature")?,
            top_p: row.get("top_p")?,
            top_k: opt_u32(row, "top_k")?,
            min_p: row.get("min_p")?,
            repeat_penalty: row.get("repeat_penalty")?,
            repeat_last_n: opt_u32(row, "repeat_last_n")?,
            // Stored as the same 64 bits in a signed column.
            seed: row.get::<_, Option<i64>>("seed")?.map(|s| s as u64),
            max_tokens: opt_u32(row, "max_tokens")?,
        })
    }

    /// The seed as stored (same bits, signed).
    pub(crate) fn seed_sql(&self) -> Option<i64> {
        self.seed.map(|s| s as i64)
    }
}

/// Statistics of one generation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GenerationStats {
    /// Tokens in the prompt the model read.
    pub prompt_tokens: Option<u32>,
    /// Tokens the model produced.
    pub completion_tokens: Option<u32>,
    /// Milliseconds from the request to the first produced token.
    pub ttft_ms: Option<u64>,
    /// Decoding speed, produced tokens per second.
    pub tokens_per_second: Option<f64>,
}

impl GenerationStats {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(GenerationStats {
            prompt_tokens: opt_u32(row, "prompt_tokens")?,
            completion_tokens: opt_u32(row, "completion_tokens")?,
            ttft_ms: opt_u64(row, "ttft_ms")?,
            tokens_per_second: row.get("tokens_per_second")?,
        })
    }
}
