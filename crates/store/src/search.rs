//! Full-text search over messages and document chunks.
//!
//! # What a query means
//! The user's text is split into terms at whitespace; a part in double quotes is one term
//! with its spaces (`"machine learning"`); the quote characters themselves are never searched
//! for. A result contains every term as a substring, ignoring case (so `learn` finds
//! "Learning", and `模型推理` finds "小模型推理很快"). Nothing in the text is query syntax: `AND`,
//! `OR`, `NEAR(`, `*`, `-`, `:`, `^` and unbalanced quotes are searched for literally, and no
//! input makes a search fail. A query with no terms returns no results.
//!
//! # How
//! The FTS5 tables use the trigram tokenizer (any script, including Chinese and Japanese,
//! which have no spaces between words). Trigrams cannot find a term shorter than three
//! characters (most Chinese words are two), so such terms are matched with `LIKE` on the rows
//! the longer terms selected, or, when every term is short, by scanning the table: correct but
//! slower on a large database (see the benchmark in the notes). `LIKE` folds case for ASCII
//! letters only.
//!
//! # Results
//! Newest first ([`SearchOrder::Newest`]) or best first ([`SearchOrder::Relevance`], FTS5's
//! BM25; queries with only short terms have no score and come newest first). "Newest" means
//! most recently stored: messages by id (a conversation imported from a file counts from its
//! import), chunks by document, newest document first, then in document order. Ordering by
//! id lets the index stop after `limit` hits instead of sorting every match. Each hit carries a [`Snippet`]: a window of the text around the first
//! match, with the ranges of every match in it as byte, `char` and UTF-16 offsets (the last
//! for JavaScript strings).

use rusqlite::types::Value;
use rusqlite::Row;
use serde::{Deserialize, Serialize};

use crate::columns::opt_u32;
use crate::conversations::Role;
use crate::error::Result;
use crate::ids::{ChunkId, ConversationId, DocumentId, MessageId};
use crate::store::Store;

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SearchOrder {
    /// Most recently stored first.
    #[default]
    Newest,
    /// Best match first (BM25).
    Relevance,
}

/// Paging and presentation of a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchOptions {
    pub order: SearchOrder,
    /// At most this many hits (default 20).
    pub limit: u32,
    /// Skip this many hits first (paging).
    pub offset: u32,
    /// Length of a snippet in characters, ellipses excluded (default 160).
    pub snippet_chars: u32,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            order: SearchOrder::Newest,
            limit: 20,
            offset: 0,
            snippet_chars: 160,
        }
    }
}

/// A matched range inside [`Snippet::text`], half-open, in three units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Highlight {
    pub byte_start: usize,
    pub byte_end: usize,
    pub char_start: usize,
    pub char_end: usize,
    pub utf16_start: usize,
    pub utf16_end: usize,
}

/// Part of a hit's text around the matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snippet {
    /// The excerpt, line breaks turned into spaces, with `…` where text was cut.
    pub text: String,
    /// Matches inside `text`, in order, not overlapping.
    pub highlights: Vec<Highlight>,
}

/// A message that matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageHit {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub conversation_title: String,
    pub role: Role,
    pub created_at: i64,
    pub snippet: Snippet,
    /// Relevance (higher is better); `None` when the query had only short terms.
    pub score: Option<f64>,
}

/// A document chunk that matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkHit {
    pub chunk_id: ChunkId,
    pub document_id: DocumentId,
    pub document_name: String,
    pub ordinal: u32,
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    pub section: Option<String>,
    pub snippet: Snippet,
    /// Relevance (higher is better); `None` when the query had only short terms.
    pub score: Option<f64>,
}

/// Terms of a query, split by what can serve them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Terms {
    /// Three characters or more: FTS5 trigram match.
    long: Vec<String>,
    /// One or two characters: `LIKE`.
    short: Vec<String>,
}

impl Terms {
    pub(crate) fn parse(query: &str) -> Terms {
        let mut terms: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        let push = |t: &mut String, terms: &mut Vec<String>| {
            let trimmed = t.trim();
            if !trimmed.is_empty() && !terms.iter().any(|x| x == trimmed) {
                terms.push(trimmed.to_string());
            }
            t.clear();
        };
        for c in query.chars() {
            if c == '"' {
                push(&mut current, &mut terms);
                quoted = !quoted;
            } else if c.is_control() || (!quoted && c.is_whitespace()) {
                if quoted && c.is_whitespace() {
                    current.push(' ');
                } else {
                    push(&mut current, &mut terms);
                }
            } else {
                current.push(c);
            }
        }
        push(&mut current, &mut terms);
        let mut out = Terms::default();
        for t in terms {
            if t.chars().count() >= 3 {
                out.long.push(t);
            } else {
                out.short.push(t);
            }
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.long.is_empty() && self.short.is_empty()
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        self.long.iter().chain(self.short.iter())
    }

    /// The FTS5 expression: every long term as a quoted string, implicitly ANDed.
    pub(crate) fn fts_expression(&self) -> Option<String> {
        if self.long.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .long
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
            .collect();
        Some(parts.join(" "))
    }

    /// `LIKE` patterns (escape character `\`) for the short terms.
    fn like_patterns(&self) -> Vec<String> {
        self.short
            .iter()
            .map(|t| {
                let mut p = String::from("%");
                for c in t.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        p.push('\\');
                    }
                    p.push(c);
                }
                p.push('%');
                p
            })
            .collect()
    }
}

/// One way to build the SQL for either table.
struct Target {
    fts: &'static str,
    content_table: &'static str,
    content_column: &'static str,
    /// Extra columns selected (after `id`, the text and the score).
    columns: &'static str,
    joins: &'static str,
    /// Newest-first order when the FTS table drives the query (`{fts}` is replaced).
    newest_fts: &'static str,
    /// Newest-first order when the content table is scanned.
    newest_scan: &'static str,
    scope_column: &'static str,
}

const MESSAGES: Target = Target {
    fts: "messages_fts",
    content_table: "messages",
    content_column: "content",
    columns: "t.conversation_id, c.title, t.role, t.created_at",
    joins: "JOIN conversations c ON c.id = t.conversation_id",
    // Ids grow with time, and the FTS index can walk them backwards and stop after `limit`.
    newest_fts: "{fts}.rowid DESC",
    newest_scan: "t.id DESC",
    scope_column: "t.conversation_id",
};

const CHUNKS: Target = Target {
    fts: "chunks_fts",
    content_table: "chunks",
    content_column: "text",
    columns: "t.document_id, d.name, t.ordinal, t.page_start, t.page_end, t.section",
    joins: "JOIN documents d ON d.id = t.document_id",
    // Document ids grow with time (documents are never imported with an older date).
    newest_fts: "t.document_id DESC, t.ordinal",
    newest_scan: "t.document_id DESC, t.ordinal",
    scope_column: "t.document_id",
};

impl Target {
    /// SQL and parameters for a query. Selected columns: `id`, `body`, `score`, then
    /// `columns`.
    fn sql(
        &self,
        terms: &Terms,
        scope: Option<i64>,
        options: &SearchOptions,
    ) -> (String, Vec<Value>) {
        let mut params: Vec<Value> = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        let fts = self.fts;
        let table = self.content_table;
        let columns = self.columns;
        let joins = self.joins;
        let body = self.content_column;
        let fts_expr = terms.fts_expression();

        // Fast path: the FTS index alone decides which rows and in what order, and stops
        // after `limit` (FTS5 sorts by rank itself and walks rowids in either direction).
        let index_order = match options.order {
            SearchOrder::Relevance => Some(("rank", "f.rank")),
            SearchOrder::Newest if self.newest_fts.starts_with("{fts}.rowid") => {
                Some(("rowid DESC", "f.id DESC"))
            }
            SearchOrder::Newest => None,
        };
        if let (Some(expr), true, None, Some((inner, outer))) =
            (&fts_expr, terms.short.is_empty(), scope, index_order)
        {
            params.push(Value::Text(expr.clone()));
            params.push(Value::Integer(i64::from(options.limit)));
            params.push(Value::Integer(i64::from(options.offset)));
            let sql = format!(
                "SELECT t.id, t.{body} AS body, -f.rank AS score, {columns} FROM \
                 (SELECT rowid AS id, rank FROM {fts} WHERE {fts} MATCH ?1 \
                  ORDER BY {inner} LIMIT ?2 OFFSET ?3) AS f \
                 JOIN {table} t ON t.id = f.id {joins} ORDER BY {outer}"
            );
            return (sql, params);
        }

        let (from, score) = match fts_expr {
            Some(expr) => {
                params.push(Value::Text(expr));
                conditions.push(format!("{fts} MATCH ?{}", params.len()));
                (
                    format!("{fts} JOIN {table} t ON t.id = {fts}.rowid"),
                    format!("-{fts}.rank"),
                )
            }
            None => (format!("{table} t"), "NULL".to_string()),
        };
        for pattern in terms.like_patterns() {
            params.push(Value::Text(pattern));
            conditions.push(format!("t.{body} LIKE ?{} ESCAPE '\\'", params.len()));
        }
        if let Some(scope) = scope {
            params.push(Value::Integer(scope));
            conditions.push(format!("{} = ?{}", self.scope_column, params.len()));
        }
        let order = match (options.order, terms.long.is_empty()) {
            (SearchOrder::Relevance, false) => format!("{fts}.rank"),
            (SearchOrder::Newest, false) => self.newest_fts.replace("{fts}", fts),
            (_, true) => self.newest_scan.to_string(),
        };
        params.push(Value::Integer(i64::from(options.limit)));
        let limit = params.len();
        params.push(Value::Integer(i64::from(options.offset)));
        let offset = params.len();
        let sql = format!(
            "SELECT t.id, t.{body} AS body, {score} AS score, {columns} FROM {from} {joins} \
             WHERE {conditions} ORDER BY {order} LIMIT ?{limit} OFFSET ?{offset}",
            conditions = conditions.join(" AND "),
        );
        (sql, params)
    }
}

impl Store {
    /// Searches message texts (all conversations, or one). See the module documentation for
    /// the query language. Text still streaming and not yet written is not searched.
    pub fn search_messages(
        &self,
        query: &str,
        conversation: Option<ConversationId>,
        options: &SearchOptions,
    ) -> Result<Vec<MessageHit>> {
        let terms = Terms::parse(query);
        if terms.is_empty() || options.limit == 0 {
            return Ok(Vec::new());
        }
        let (sql, params) = MESSAGES.sql(&terms, conversation.map(|c| c.0), options);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
                let body: String = row.get("body")?;
                Ok(MessageHit {
                    message_id: row.get("id")?,
                    conversation_id: row.get("conversation_id")?,
                    conversation_title: row.get("title")?,
                    role: crate::columns::get_enum(row, "role")?,
                    created_at: row.get("created_at")?,
                    snippet: make_snippet(&body, &terms, options.snippet_chars as usize),
                    score: row.get("score")?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Searches document chunks (all documents, or one). Newest order means newest document
    /// first, chunks in document order.
    pub fn search_chunks(
        &self,
        query: &str,
        document: Option<DocumentId>,
        options: &SearchOptions,
    ) -> Result<Vec<ChunkHit>> {
        let terms = Terms::parse(query);
        if terms.is_empty() || options.limit == 0 {
            return Ok(Vec::new());
        }
        let (sql, params) = CHUNKS.sql(&terms, document.map(|d| d.0), options);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |row: &Row<'_>| {
                let body: String = row.get("body")?;
                Ok(ChunkHit {
                    chunk_id: row.get("id")?,
                    document_id: row.get("document_id")?,
                    document_name: row.get("name")?,
                    ordinal: opt_u32(row, "ordinal")?.unwrap_or(0),
                    page_start: opt_u32(row, "page_start")?,
                    page_end: opt_u32(row, "page_end")?,
                    section: row.get("section")?,
                    snippet: make_snippet(&body, &terms, options.snippet_chars as usize),
                    score: row.get("score")?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

/// Case folding used for highlighting: one char to one char, so offsets map back.
fn fold(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Char ranges (half-open) of every occurrence of every term, merged and sorted.
fn match_ranges(folded: &[char], terms: &Terms) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    for term in terms.all() {
        let needle: Vec<char> = term.chars().map(fold).collect();
        if needle.is_empty() || needle.len() > folded.len() {
            continue;
        }
        let mut i = 0;
        while i + needle.len() <= folded.len() {
            if folded[i..i + needle.len()] == needle[..] {
                ranges.push((i, i + needle.len()));
                i += needle.len();
            } else {
                i += 1;
            }
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Cuts a window of `max_chars` around the first match and records the matches in it.
pub(crate) fn make_snippet(text: &str, terms: &Terms, max_chars: usize) -> Snippet {
    let chars: Vec<char> = text.chars().collect();
    let folded: Vec<char> = chars.iter().copied().map(fold).collect();
    let ranges = match_ranges(&folded, terms);
    let max_chars = max_chars.max(1);
    let n = chars.len();
    let (start, end) = if n <= max_chars {
        (0, n)
    } else {
        let first = ranges.first().map(|r| r.0).unwrap_or(0);
        // Some context before the first match, then as much after as fits.
        let mut start = first.saturating_sub(max_chars / 4).min(n - max_chars);
        // Start at a word boundary if one is close.
        if start > 0 {
            if let Some(k) = (start.saturating_sub(12)..start)
                .rev()
                .find(|&k| chars[k].is_whitespace())
            {
                start = k + 1;
            }
        }
        (start, (start + max_chars).min(n))
    };

    let mut out = String::new();
    // Offsets (byte, char, utf16) at each char index of the window, plus one past the end.
    let mut at: Vec<(usize, usize, usize)> = Vec::with_capacity(end - start + 1);
    let (mut nchars, mut nutf16) = (0usize, 0usize);
    if start > 0 {
        out.push('…');
        nchars += 1;
        nutf16 += 1;
    }
    for &c in &chars[start..end] {
        at.push((out.len(), nchars, nutf16));
        let c = if matches!(c, '\n' | '\r' | '\t') {
            ' '
        } else {
            c
        };
        out.push(c);
        nchars += 1;
        nutf16 += c.len_utf16();
    }
    at.push((out.len(), nchars, nutf16));
    if end < n {
        out.push('…');
    }

    let highlights = ranges
        .iter()
        .filter(|(s, e)| *e > start && *s < end)
        .map(|&(s, e)| {
            let (s, e) = (s.max(start) - start, e.min(end) - start);
            Highlight {
                byte_start: at[s].0,
                byte_end: at[e].0,
                char_start: at[s].1,
                char_end: at[e].1,
                utf16_start: at[s].2,
                utf16_end: at[e].2,
            }
        })
        .collect();
    Snippet {
        text: out,
        highlights,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_terms_quotes_and_syntax_literally() {
        let t = Terms::parse(r#"  hello AND( "machine learning" 模型 x "#);
        assert_eq!(t.long, vec!["hello", "AND(", "machine learning"]);
        assert_eq!(t.short, vec!["模型", "x"]);
        assert_eq!(
            t.fts_expression().unwrap(),
            r#""hello" "AND(" "machine learning""#
        );
        let t = Terms::parse(r#"unbalanced "quote here"#);
        assert_eq!(t.long, vec!["unbalanced", "quote here"]);
        assert!(Terms::parse(r#" "" " "#).is_empty());
        assert_eq!(
            Terms::parse("50%_off").like_patterns(),
            Vec::<String>::new()
        );
        assert_eq!(Terms::parse("%_").like_patterns(), vec![r"%\%\_%"]);
    }

    #[test]
    fn snippet_ranges_in_all_units() {
        let terms = Terms::parse("模型 speed");
        let s = make_snippet("小模型 has SPEED\nand 模型", &terms, 160);
        assert_eq!(s.text, "小模型 has SPEED and 模型");
        let words: Vec<&str> = s
            .highlights
            .iter()
            .map(|h| &s.text[h.byte_start..h.byte_end])
            .collect();
        assert_eq!(words, vec!["模型", "SPEED", "模型"]);
        let h = s.highlights[1];
        assert_eq!((h.char_start, h.char_end), (8, 13));
        assert_eq!((h.utf16_start, h.utf16_end), (8, 13));
        let h = s.highlights[0];
        assert_eq!(
            (h.byte_start, h.byte_end, h.char_start, h.utf16_start),
            (3, 9, 1, 1)
        );
    }

    #[test]
    fn long_text_is_cut_around_the_first_match() {
        let text = format!("{} needle {}", "a ".repeat(300), "b ".repeat(300));
        let s = make_snippet(&text, &Terms::parse("needle"), 40);
        assert!(
            s.text.starts_with('…') && s.text.ends_with('…'),
            "{}",
            s.text
        );
        assert_eq!(s.highlights.len(), 1);
        let h = s.highlights[0];
        assert_eq!(&s.text[h.byte_start..h.byte_end], "needle");
        assert_eq!(s.text.chars().count(), 42);
        // Emoji take two UTF-16 units.
        let s = make_snippet("😀 needle", &Terms::parse("needle"), 40);
        assert_eq!(s.highlights[0].utf16_start, 3);
        assert_eq!(s.highlights[0].char_start, 2);
    }
}
