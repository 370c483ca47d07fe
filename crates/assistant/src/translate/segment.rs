//! Splitting a text into the parts a translation works on, and putting the translated parts
//! back together.
//!
//! [`Segmented::parse`] cuts a text into [`Block`]s: for Markdown, headings, paragraphs, list
//! items, block quotes, fenced and indented code, tables, HTML, rules, link definitions and
//! front matter; for plain text, paragraphs separated by blank lines. A block has the markup
//! that frames it (`## `, `- `, `> `) and, when it is prose, the text to translate with its lines
//! joined into one. Code, tables, HTML, rules, link definitions and front matter are copied as
//! they are. What lies between blocks (blank lines) is kept byte for byte.
//!
//! [`Segmented::assemble`] writes the document back with translated texts in place of the
//! originals and returns where each block landed, so block `i` of the source and block `i` of the
//! result are counterparts. A translated block is always one line of text inside its markup.
//!
//! [`split_sentences`] and [`pieces`] cut a long block into sentence groups that fit a token
//! budget. [`code_spans`] finds inline code (`` `like this` ``), which must come back unchanged.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// How a text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextFormat {
    Plain,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BlockKind {
    Heading,
    Paragraph,
    ListItem,
    Quote,
    Code,
    Table,
    Html,
    Rule,
    Reference,
    FrontMatter,
}

impl BlockKind {
    /// Whether blocks of this kind carry prose to translate.
    pub fn is_prose(self) -> bool {
        matches!(
            self,
            BlockKind::Heading | BlockKind::Paragraph | BlockKind::ListItem | BlockKind::Quote
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    /// Bytes of the source the block covers, without its last line's line break.
    pub range: Range<usize>,
    /// Markup before the text (`## `, `> - `, indentation).
    pub prefix: String,
    /// Markup after the text (a heading's closing `#`s, a setext underline with its line break).
    pub suffix: String,
    /// The prose to translate, its lines joined; None for blocks copied as they are.
    pub text: Option<String>,
}

/// A parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segmented {
    pub source: String,
    pub format: TextFormat,
    pub blocks: Vec<Block>,
}

/// Markdown when the text has Markdown block markup (headings, fences, lists, quotes, tables)
/// on some line; plain text otherwise.
pub fn guess_format(text: &str) -> TextFormat {
    let mut marks = 0;
    for line in text.lines().take(2000) {
        let t = line.trim_start();
        if atx_heading(t).is_some()
            || t.starts_with("```")
            || t.starts_with("~~~")
            || t.starts_with("> ")
            || list_marker(line).is_some()
            || (t.starts_with('|') && t.trim_end().ends_with('|'))
            || t.contains("](")
        {
            marks += 1;
        }
    }
    if marks > 0 {
        TextFormat::Markdown
    } else {
        TextFormat::Plain
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff
        | 0xff00..=0xffef)
}

/// Appends a line to joined text: a space between words, nothing between CJK characters.
fn join_line(acc: &mut String, line: &str) {
    let line = line.trim();
    if line.is_empty() {
        return;
    }
    if let (Some(a), Some(b)) = (acc.chars().last(), line.chars().next()) {
        if !(is_cjk(a) && is_cjk(b)) {
            acc.push(' ');
        }
    }
    acc.push_str(line);
}

/// `#`..`######` then a space or the end: (level, bytes up to the text).
fn atx_heading(t: &str) -> Option<(usize, usize)> {
    let hashes = t.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &t[hashes..];
    if rest.is_empty() {
        return Some((hashes, hashes));
    }
    if rest.starts_with([' ', '\t']) {
        let spaces = rest.len() - rest.trim_start().len();
        return Some((hashes, hashes + spaces));
    }
    None
}

/// A list item's marker: bytes from the line's start up to its text.
fn list_marker(line: &str) -> Option<usize> {
    let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
    let t = &line[indent..];
    let marker = if t.starts_with(['-', '*', '+']) {
        1
    } else {
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if (1..=9).contains(&digits) && t[digits..].starts_with(['.', ')']) {
            digits + 1
        } else {
            return None;
        }
    };
    let rest = &t[marker..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut end = indent + marker + (rest.len() - rest.trim_start().len());
    // A task box is markup too.
    let after = &line[end..];
    for box_ in ["[ ] ", "[x] ", "[X] "] {
        if after.starts_with(box_) {
            end += box_.len();
        }
    }
    Some(end)
}

fn is_rule(t: &str) -> bool {
    let t = t.trim();
    let Some(c) = t.chars().next() else {
        return false;
    };
    matches!(c, '-' | '*' | '_')
        && t.chars().filter(|x| *x == c).count() >= 3
        && t.chars().all(|x| x == c || x == ' ' || x == '\t')
}

fn is_table_delimiter(t: &str) -> bool {
    let t = t.trim();
    t.contains('-')
        && t.contains('|')
        && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t'))
}

fn fence_open(t: &str) -> Option<(char, usize)> {
    let c = t.chars().next()?;
    if c != '`' && c != '~' {
        return None;
    }
    let n = t.chars().take_while(|x| *x == c).count();
    if n < 3 || (c == '`' && t[n..].contains('`')) {
        return None;
    }
    Some((c, n))
}

fn is_reference(t: &str) -> bool {
    t.starts_with('[')
        && t.find("]:")
            .is_some_and(|p| p > 1 && !t[p + 2..].trim().is_empty())
}

/// Leading `>` markers (each with one optional space): their byte length.
fn quote_prefix(line: &str) -> usize {
    let mut i = 0;
    loop {
        let rest = &line[i..];
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        if spaces > 3 || !rest[spaces..].starts_with('>') {
            return i;
        }
        i += spaces + 1;
        if line[i..].starts_with(' ') {
            i += 1;
        }
    }
}

struct Line<'a> {
    start: usize,
    text: &'a str,
}

fn lines_of(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for l in text.split_inclusive('\n') {
        let body = l.strip_suffix('\n').unwrap_or(l);
        let body = body.strip_suffix('\r').unwrap_or(body);
        out.push(Line { start, text: body });
        start += l.len();
    }
    out
}

struct Open {
    kind: BlockKind,
    start: usize,
    end: usize,
    prefix: String,
    suffix: String,
    text: String,
}

impl Open {
    fn prose(kind: BlockKind, line: &Line<'_>, text_at: usize) -> Open {
        let mut text = String::new();
        join_line(&mut text, &line.text[text_at..]);
        Open {
            kind,
            start: line.start,
            end: line.start + line.text.len(),
            prefix: line.text[..text_at].to_string(),
            suffix: String::new(),
            text,
        }
    }

    fn verbatim(kind: BlockKind, line: &Line<'_>) -> Open {
        Open {
            kind,
            start: line.start,
            end: line.start + line.text.len(),
            prefix: String::new(),
            suffix: String::new(),
            text: String::new(),
        }
    }

    fn close(self) -> Block {
        let prose = self.kind.is_prose() && !self.text.trim().is_empty();
        Block {
            kind: self.kind,
            range: self.start..self.end,
            prefix: if prose { self.prefix } else { String::new() },
            suffix: if prose { self.suffix } else { String::new() },
            text: prose.then_some(self.text),
        }
    }
}

impl Segmented {
    pub fn parse(text: &str, format: TextFormat) -> Segmented {
        let blocks = match format {
            TextFormat::Plain => parse_plain(text),
            TextFormat::Markdown => parse_markdown(text),
        };
        Segmented {
            source: text.to_string(),
            format,
            blocks,
        }
    }

    /// Indices of the blocks that carry prose.
    pub fn prose_blocks(&self) -> impl Iterator<Item = usize> + '_ {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.text.is_some())
            .map(|(i, _)| i)
    }

    /// The block as written in the source.
    pub fn block_source(&self, i: usize) -> &str {
        self.blocks
            .get(i)
            .and_then(|b| self.source.get(b.range.clone()))
            .unwrap_or("")
    }

    /// The document with `translations[i]` in place of prose block `i`'s text (blocks without a
    /// translation are copied as they are), written up to block `upto` (exclusive). Returns the
    /// text and where each written block lies in it.
    pub fn assemble(
        &self,
        translations: &[Option<String>],
        upto: usize,
    ) -> (String, Vec<Range<usize>>) {
        let upto = upto.min(self.blocks.len());
        let mut out = String::with_capacity(self.source.len() + self.source.len() / 2);
        let mut ranges = Vec::with_capacity(upto);
        let mut at = 0;
        for (i, b) in self.blocks.iter().enumerate().take(upto) {
            out.push_str(self.source.get(at..b.range.start).unwrap_or(""));
            let start = out.len();
            match translations.get(i).and_then(|t| t.as_deref()) {
                Some(t) if b.text.is_some() => {
                    out.push_str(&b.prefix);
                    out.push_str(t);
                    out.push_str(&b.suffix);
                }
                _ => out.push_str(self.source.get(b.range.clone()).unwrap_or("")),
            }
            ranges.push(start..out.len());
            at = b.range.end;
        }
        if upto == self.blocks.len() {
            out.push_str(self.source.get(at..).unwrap_or(""));
        } else if !out.is_empty() {
            out.push('\n');
        }
        (out, ranges)
    }
}

fn parse_plain(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Open> = None;
    for line in lines_of(text) {
        if line.text.trim().is_empty() {
            if let Some(o) = open.take() {
                blocks.push(o.close());
            }
            continue;
        }
        match open.as_mut() {
            Some(o) => {
                join_line(&mut o.text, line.text);
                o.end = line.start + line.text.len();
            }
            None => {
                let indent = line.text.len() - line.text.trim_start().len();
                open = Some(Open::prose(BlockKind::Paragraph, &line, indent));
            }
        }
    }
    if let Some(o) = open.take() {
        blocks.push(o.close());
    }
    blocks
}

fn parse_markdown(text: &str) -> Vec<Block> {
    let lines = lines_of(text);
    let mut blocks: Vec<Block> = Vec::new();
    let mut open: Option<Open> = None;
    // An open fence: its character, length and the quote prefix it lives under.
    let mut fence: Option<(char, usize, usize)> = None;
    // The text column of the list item being continued (for indented continuation paragraphs).
    let mut list_column: Option<usize> = None;
    let mut i = 0;
    let push = |blocks: &mut Vec<Block>, open: &mut Option<Open>| {
        if let Some(o) = open.take() {
            blocks.push(o.close());
        }
    };
    // Front matter: `---` on the first line, closed by `---` or `...`.
    if lines.first().is_some_and(|l| l.text.trim_end() == "---") {
        if let Some(end) = lines
            .iter()
            .skip(1)
            .position(|l| matches!(l.text.trim_end(), "---" | "..."))
        {
            let last = &lines[end + 1];
            blocks.push(Block {
                kind: BlockKind::FrontMatter,
                range: 0..last.start + last.text.len(),
                prefix: String::new(),
                suffix: String::new(),
                text: None,
            });
            i = end + 2;
        }
    }
    while i < lines.len() {
        let line = &lines[i];
        let line_end = line.start + line.text.len();
        if let Some((c, n, q)) = fence {
            let o = open.as_mut().expect("a fence is an open block");
            o.end = line_end;
            let inner = line
                .text
                .get(q.min(quote_prefix(line.text))..)
                .unwrap_or("");
            let t = inner.trim_start();
            if t.chars().take_while(|x| *x == c).count() >= n
                && t.trim_start_matches(c).trim().is_empty()
            {
                fence = None;
                push(&mut blocks, &mut open);
            }
            i += 1;
            continue;
        }
        let q = quote_prefix(line.text);
        let inner = &line.text[q..];
        let indent = inner.len() - inner.trim_start_matches([' ', '\t']).len();
        let t = inner.trim_start_matches([' ', '\t']);
        if !t.is_empty() && indent == 0 {
            // Back at the left margin: a later indented line is code, not the list's.
            list_column = None;
        }
        if let Some(o) = open.as_mut() {
            if o.kind == BlockKind::Html || o.kind == BlockKind::Table {
                let continues = if o.kind == BlockKind::Html {
                    !t.is_empty()
                } else {
                    t.contains('|')
                };
                if continues {
                    o.end = line_end;
                    i += 1;
                    continue;
                }
                push(&mut blocks, &mut open);
            }
        }
        if t.is_empty() {
            if open.as_ref().is_some_and(|o| o.kind == BlockKind::Code) {
                // Indented code continues over blank lines when more code follows.
                let more = lines[i + 1..]
                    .iter()
                    .find(|l| !l.text.trim().is_empty())
                    .is_some_and(|l| l.text.starts_with("    ") || l.text.starts_with('\t'));
                if more {
                    i += 1;
                    continue;
                }
            }
            if open.as_ref().is_some_and(|o| o.kind == BlockKind::ListItem) {
                list_column = open.as_ref().map(|o| o.prefix.chars().count());
            }
            push(&mut blocks, &mut open);
            i += 1;
            continue;
        }
        let paragraph_open = open
            .as_ref()
            .is_some_and(|o| matches!(o.kind, BlockKind::Paragraph | BlockKind::Quote));
        let in_list =
            list_column.is_some() || open.as_ref().is_some_and(|o| o.kind == BlockKind::ListItem);
        // Indented code (not a list's continuation, not a lazy paragraph line).
        if indent >= 4 && open.is_none() && !in_list && q == 0 {
            open = Some(Open::verbatim(BlockKind::Code, line));
            i += 1;
            continue;
        }
        if open.as_ref().is_some_and(|o| o.kind == BlockKind::Code) {
            if indent >= 4 && q == 0 {
                if let Some(o) = open.as_mut() {
                    o.end = line_end;
                }
                i += 1;
                continue;
            }
            push(&mut blocks, &mut open);
        }
        if indent < 4 || in_list {
            if let Some((c, n)) = fence_open(t) {
                push(&mut blocks, &mut open);
                open = Some(Open::verbatim(BlockKind::Code, line));
                fence = Some((c, n, q));
                i += 1;
                continue;
            }
        }
        if indent < 4 {
            if let Some((_, text_at)) = atx_heading(t) {
                push(&mut blocks, &mut open);
                list_column = None;
                let at = q + indent + text_at;
                let mut o = Open::prose(BlockKind::Heading, line, at);
                // A closing run of `#`s stays markup.
                let body = line.text[at..].trim_end();
                let closing = body.trim_end_matches('#');
                if closing.len() < body.len() && (closing.is_empty() || closing.ends_with(' ')) {
                    o.text.clear();
                    join_line(&mut o.text, closing);
                    o.suffix = line.text[at + closing.trim_end().len()..].to_string();
                }
                blocks.push(o.close());
                i += 1;
                continue;
            }
            if paragraph_open && (t.trim_end().chars().all(|c| c == '=') || is_rule_dash(t)) {
                // A setext underline turns the paragraph into a heading.
                if let Some(mut o) = open.take() {
                    o.kind = BlockKind::Heading;
                    o.suffix = text[o.end..line_end].to_string();
                    o.end = line_end;
                    blocks.push(o.close());
                }
                i += 1;
                continue;
            }
            if is_rule(t) {
                push(&mut blocks, &mut open);
                list_column = None;
                blocks.push(Open::verbatim(BlockKind::Rule, line).close());
                i += 1;
                continue;
            }
            let next_is_delimiter = lines
                .get(i + 1)
                .is_some_and(|l| is_table_delimiter(&l.text[quote_prefix(l.text)..]));
            if t.starts_with('|') || (t.contains('|') && next_is_delimiter && !paragraph_open) {
                push(&mut blocks, &mut open);
                list_column = None;
                open = Some(Open::verbatim(BlockKind::Table, line));
                i += 1;
                continue;
            }
            if t.starts_with('<')
                && t[1..].starts_with(|c: char| c.is_ascii_alphabetic() || "/!?".contains(c))
                && !paragraph_open
            {
                push(&mut blocks, &mut open);
                list_column = None;
                open = Some(Open::verbatim(BlockKind::Html, line));
                i += 1;
                continue;
            }
            if is_reference(t) && !paragraph_open {
                push(&mut blocks, &mut open);
                blocks.push(Open::verbatim(BlockKind::Reference, line).close());
                i += 1;
                continue;
            }
        }
        if let Some(m) = list_marker(inner) {
            if indent < 4 || in_list {
                push(&mut blocks, &mut open);
                list_column = None;
                open = Some(Open::prose(BlockKind::ListItem, line, q + m));
                i += 1;
                continue;
            }
        }
        // Prose: a continuation of the open block, or a new paragraph.
        match open.as_mut() {
            Some(o) if o.kind.is_prose() => {
                join_line(&mut o.text, t);
                o.end = line_end;
            }
            _ => {
                push(&mut blocks, &mut open);
                let kind = if q > 0 {
                    BlockKind::Quote
                } else {
                    BlockKind::Paragraph
                };
                if list_column.is_some() && indent == 0 && q == 0 {
                    list_column = None;
                }
                open = Some(Open::prose(kind, line, q + indent));
            }
        }
        i += 1;
    }
    push(&mut blocks, &mut open);
    blocks
}

fn is_rule_dash(t: &str) -> bool {
    let t = t.trim_end();
    !t.is_empty() && t.chars().all(|c| c == '-')
}

const ABBREVIATIONS: [&str; 24] = [
    "mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "fig", "no", "nr", "z.b", "ca",
    "bzw", "usw", "mme", "m", "sr", "sra", "p.ex", "approx", "cf", "jr",
];

/// Sentence boundaries: contiguous byte ranges covering `text`.
pub fn split_sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (pos, c) = chars[k];
        let cjk_end = matches!(c, '。' | '！' | '？' | '；');
        let latin_end = matches!(c, '.' | '!' | '?' | '…');
        if cjk_end || latin_end {
            // Closing quotes and brackets belong to the sentence.
            let mut j = k + 1;
            while j < chars.len() && "\"'”’»)]」』）".contains(chars[j].1) {
                j += 1;
            }
            let end = chars.get(j).map(|x| x.0).unwrap_or(text.len());
            let boundary = if cjk_end {
                true
            } else {
                let followed = chars.get(j).is_some_and(|x| x.1.is_whitespace());
                let next = chars[j..].iter().map(|x| x.1).find(|x| !x.is_whitespace());
                let starts_sentence = next.is_some_and(|n| {
                    n.is_uppercase() || n.is_numeric() || is_cjk(n) || "\"'“‘«¿¡([".contains(n)
                });
                let word: String = text[start..pos]
                    .rsplit(|x: char| x.is_whitespace())
                    .next()
                    .unwrap_or("")
                    .trim_start_matches(|x: char| !x.is_alphanumeric())
                    .to_lowercase();
                let abbreviation = c == '.'
                    && (ABBREVIATIONS.contains(&word.as_str())
                        || (word.chars().count() == 1 && word.chars().all(char::is_alphabetic)));
                followed && starts_sentence && !abbreviation
            };
            if boundary && end < text.len() {
                // The whitespace after a sentence stays with it.
                let mut e = j;
                while e < chars.len() && chars[e].1.is_whitespace() {
                    e += 1;
                }
                let cut = chars.get(e).map(|x| x.0).unwrap_or(text.len());
                if cut > start && cut < text.len() {
                    out.push(start..cut);
                    start = cut;
                }
                k = e;
                continue;
            }
            let _ = end;
        }
        k += 1;
    }
    if start < text.len() || out.is_empty() {
        out.push(start..text.len());
    }
    out
}

/// Cuts `text` into pieces of at most `budget` tokens (as `count` measures), whole sentences
/// where possible, then clauses, then words. Contiguous byte ranges covering `text`.
pub fn pieces(text: &str, budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<Range<usize>> {
    let budget = budget.max(1);
    if count(text) <= budget {
        return vec![0..text.len()];
    }
    let mut units: Vec<Range<usize>> = Vec::new();
    for s in split_sentences(text) {
        if count(&text[s.clone()]) <= budget {
            units.push(s);
        } else {
            for c in split_fine(&text[s.clone()], budget, count) {
                units.push(s.start + c.start..s.start + c.end);
            }
        }
    }
    // Greedy grouping of consecutive units.
    let mut out: Vec<Range<usize>> = Vec::new();
    for u in units {
        if let Some(last) = out.last_mut() {
            if count(&text[last.start..u.end]) <= budget {
                last.end = u.end;
                continue;
            }
        }
        out.push(u);
    }
    out
}

/// A sentence too long for the budget: cut after clause punctuation, else between words, else
/// between characters.
fn split_fine(s: &str, budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<Range<usize>> {
    split_level(s, 0, budget, count)
}

fn split_level(
    s: &str,
    level: u8,
    budget: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Range<usize>> {
    let cut_after = |c: char| match level {
        0 => matches!(c, ',' | ';' | ':' | '，' | '；' | '：' | '、'),
        1 => c.is_whitespace(),
        _ => true,
    };
    // Units ending at each cut point.
    let mut units = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let end = i + c.len_utf8();
        if cut_after(c) && end < s.len() {
            units.push(start..end);
            start = end;
        }
    }
    units.push(start..s.len());
    let mut out: Vec<Range<usize>> = Vec::new();
    for u in units {
        if let Some(last) = out.last_mut() {
            if count(&s[last.start..u.end]) <= budget {
                last.end = u.end;
                continue;
            }
        }
        if count(&s[u.clone()]) > budget && level < 2 {
            for r in split_level(&s[u.clone()], level + 1, budget, count) {
                out.push(u.start + r.start..u.start + r.end);
            }
        } else {
            out.push(u);
        }
    }
    out
}

/// Inline code spans (`` `x` ``, ``` ``y`` ```): byte ranges including the backticks.
pub fn code_spans(text: &str) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'`' {
            i += 1;
            continue;
        }
        let n = b[i..].iter().take_while(|x| **x == b'`').count();
        let mut j = i + n;
        let mut closed = None;
        while j < b.len() {
            if b[j] == b'`' {
                let m = b[j..].iter().take_while(|x| **x == b'`').count();
                if m == n {
                    closed = Some(j + m);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match closed {
            Some(end) => {
                out.push(i..end);
                i = end;
            }
            None => i += n,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &Segmented) -> Vec<BlockKind> {
        s.blocks.iter().map(|b| b.kind).collect()
    }

    fn texts(s: &Segmented) -> Vec<Option<&str>> {
        s.blocks.iter().map(|b| b.text.as_deref()).collect()
    }

    const DOC: &str = "---\ntitle: x\n---\n# Title #\n\nSome text\nover two lines.\n\n\
        - one\n- two `code`\n  continued\n\n1. first\n2. [ ] second\n\n> quoted\n> more\n\n\
        ```rust\nfn main() {}\n\n# not a heading\n```\n\n    indented code\n\n    more code\n\n\
        | a | b |\n|---|---|\n| 1 | 2 |\n\n<div>\nhtml\n</div>\n\n***\n\nSetext\n======\n\n\
        [ref]: https://example.org\n\n中文第一行\n第二行\n";

    #[test]
    fn markdown_blocks() {
        let s = Segmented::parse(DOC, TextFormat::Markdown);
        use BlockKind::*;
        assert_eq!(
            kinds(&s),
            vec![
                FrontMatter,
                Heading,
                Paragraph,
                ListItem,
                ListItem,
                ListItem,
                ListItem,
                Quote,
                Code,
                Code,
                Table,
                Html,
                Rule,
                Heading,
                Reference,
                Paragraph
            ]
        );
        assert_eq!(
            texts(&s),
            vec![
                None,
                Some("Title"),
                Some("Some text over two lines."),
                Some("one"),
                Some("two `code` continued"),
                Some("first"),
                Some("second"),
                Some("quoted more"),
                None,
                None,
                None,
                None,
                None,
                Some("Setext"),
                None,
                Some("中文第一行第二行"),
            ]
        );
        assert_eq!(s.blocks[1].prefix, "# ");
        assert_eq!(s.blocks[1].suffix, " #");
        assert_eq!(s.blocks[6].prefix, "2. [ ] ");
        assert_eq!(s.blocks[7].prefix, "> ");
        assert_eq!(s.blocks[13].suffix, "\n======");
        assert!(s.block_source(8).contains("# not a heading"));
        assert_eq!(s.block_source(9), "    indented code\n\n    more code");
    }

    #[test]
    fn assembling_without_translations_gives_the_source_back() {
        for text in [DOC, "", "\n\nplain\n\n", "no newline at end", "a\r\nb\r\n"] {
            for f in [TextFormat::Markdown, TextFormat::Plain] {
                let s = Segmented::parse(text, f);
                let (out, ranges) = s.assemble(&[], usize::MAX);
                assert_eq!(out, text);
                for (b, r) in s.blocks.iter().zip(&ranges) {
                    assert_eq!(r, &b.range);
                }
            }
        }
    }

    #[test]
    fn assembling_translations_keeps_markup_and_reports_ranges() {
        let s = Segmented::parse(DOC, TextFormat::Markdown);
        let tr: Vec<Option<String>> = s
            .blocks
            .iter()
            .map(|b| b.text.as_ref().map(|t| format!("«{t}»")))
            .collect();
        let (out, ranges) = s.assemble(&tr, usize::MAX);
        assert!(out.starts_with("---\ntitle: x\n---\n# «Title» #\n\n«Some text over two lines.»\n"));
        assert!(out.contains("\n- «one»\n- «two `code` continued»\n"));
        assert!(out.contains("\n2. [ ] «second»\n"));
        assert!(out.contains("\n> «quoted more»\n"));
        assert!(out.contains("```rust\nfn main() {}\n\n# not a heading\n```"));
        assert!(out.contains("«Setext»\n======"));
        assert!(out.ends_with("«中文第一行第二行»\n"));
        assert_eq!(&out[ranges[2].clone()], "«Some text over two lines.»");
        // Parsing the result finds the same blocks again.
        let again = Segmented::parse(&out, TextFormat::Markdown);
        assert_eq!(kinds(&again), kinds(&s));
        // A partial document stops after the last block asked for.
        let (part, r) = s.assemble(&tr, 3);
        assert_eq!(r.len(), 3);
        assert!(part.ends_with("«Some text over two lines.»\n"));
    }

    #[test]
    fn plain_text_is_paragraphs() {
        let s = Segmented::parse(
            "# not markup\n- here\n\n  second\npara\n",
            TextFormat::Plain,
        );
        assert_eq!(
            texts(&s),
            vec![Some("# not markup - here"), Some("second para")]
        );
        assert_eq!(s.blocks[1].prefix, "  ");
    }

    #[test]
    fn list_continuation_paragraphs_are_prose_not_code() {
        let md = "- item\n\n    still the item\n\nafter\n\n    code now\n";
        let s = Segmented::parse(md, TextFormat::Markdown);
        use BlockKind::*;
        assert_eq!(kinds(&s), vec![ListItem, Paragraph, Paragraph, Code]);
        assert_eq!(s.blocks[1].text.as_deref(), Some("still the item"));
    }

    #[test]
    fn guesses_format() {
        assert_eq!(
            guess_format("Just a sentence.\nAnother."),
            TextFormat::Plain
        );
        assert_eq!(guess_format("# Title\n\ntext"), TextFormat::Markdown);
        assert_eq!(guess_format("see [x](http://a)"), TextFormat::Markdown);
        assert_eq!(guess_format("```\ncode\n```"), TextFormat::Markdown);
    }

    #[test]
    fn sentences() {
        let t =
            "Dr. Smith arrived. He said \"hi!\" Then left… e.g. this stays. 3.5 is a number. Done";
        let parts: Vec<&str> = split_sentences(t).into_iter().map(|r| &t[r]).collect();
        assert_eq!(
            parts,
            vec![
                "Dr. Smith arrived. ",
                "He said \"hi!\" ",
                "Then left… e.g. this stays. ",
                "3.5 is a number. ",
                "Done"
            ]
        );
        let z = "第一句。第二句！第三句？";
        let parts: Vec<&str> = split_sentences(z).into_iter().map(|r| &z[r]).collect();
        assert_eq!(parts, vec!["第一句。", "第二句！", "第三句？"]);
        assert_eq!(split_sentences(""), vec![0..0]);
    }

    #[test]
    fn pieces_fit_the_budget_and_cover_the_text() {
        let words = |s: &str| s.split_whitespace().count();
        let t = "One two three. Four five six seven. Eight nine, ten eleven twelve thirteen \
                 fourteen fifteen sixteen, seventeen. Eighteen.";
        for budget in [1, 2, 3, 5, 8, 100] {
            let p = pieces(t, budget, &words);
            let mut at = 0;
            for r in &p {
                assert_eq!(r.start, at);
                at = r.end;
                assert!(
                    words(&t[r.clone()]) <= budget,
                    "{budget}: {:?}",
                    &t[r.clone()]
                );
                assert!(!t[r.clone()].trim().is_empty());
            }
            assert_eq!(at, t.len());
        }
        assert_eq!(pieces(t, 100, &words).len(), 1);
        assert_eq!(pieces(t, 8, &words)[0], 0..t.find("Eight").unwrap());
        // Characters when there is no other place to cut.
        let chars = |s: &str| s.chars().count();
        let z = "一二三四五六七八九十";
        let p = pieces(z, 4, &chars);
        assert!(p.iter().all(|r| chars(&z[r.clone()]) <= 4));
        assert_eq!(p.last().unwrap().end, z.len());
    }

    #[test]
    fn inline_code() {
        let t = "run `ls -l` or ``a ` b`` and `unclosed";
        let spans: Vec<&str> = code_spans(t).into_iter().map(|r| &t[r]).collect();
        assert_eq!(spans, vec!["`ls -l`", "``a ` b``"]);
    }
}
