//! Cuts extracted text into chunks measured in a model's tokens.
//!
//! What a caller may rely on:
//! - Every chunk's `token_count` is `count_tokens(&chunk.text)` and is at most `max_tokens`,
//!   as long as one character fits in `max_tokens` (a character that alone counts more is
//!   still emitted, alone, so no text is lost).
//! - Chunks cover the text in order: concatenating them gives every non-whitespace character
//!   of the sections, in order; only whitespace at chunk boundaries is dropped.
//! - Cuts fall, by preference, where a heading changes, then between paragraphs, then between
//!   lines and sentences (`.`, `!`, `?` before a space; `。`, `！`, `？` anywhere); a sentence
//!   longer than `max_tokens` is cut between words, and a word (or a run of CJK text) between
//!   characters, as a last resort.
//! - `count_tokens` is called on pieces of text and on each finished chunk: it must count the
//!   text as it will be given to the model (without special tokens).

use crate::Extracted;

/// One piece of a document, small enough for a model's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub ordinal: u32,
    pub text: String,
    /// `count_tokens(&text)`.
    pub token_count: usize,
    /// First and last PDF page the text comes from.
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    /// The heading in force where the chunk starts.
    pub heading: Option<String>,
}

/// What separates a piece from the one before it; stronger separators are better cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sep {
    /// Nothing: pieces of one word or of unspaced (CJK) text.
    Join,
    Space,
    Line,
    Paragraph,
    /// A change of heading.
    Section,
}

impl Sep {
    fn text(self) -> &'static str {
        match self {
            Sep::Join => "",
            Sep::Space => " ",
            Sep::Line => "\n",
            Sep::Paragraph | Sep::Section => "\n\n",
        }
    }

    /// The separator a run of whitespace stands for.
    fn of_gap(gap: &str) -> Sep {
        let newlines = gap.matches('\n').count();
        if newlines >= 2 {
            Sep::Paragraph
        } else if newlines == 1 {
            Sep::Line
        } else if gap.is_empty() {
            Sep::Join
        } else {
            Sep::Space
        }
    }
}

#[derive(Debug, Clone)]
struct Atom<'a> {
    text: &'a str,
    sep: Sep,
    page: Option<u32>,
    heading: Option<&'a str>,
    tokens: usize,
}

/// Splits `extracted` into chunks of at most `max_tokens` tokens as counted by `count_tokens`.
pub fn chunk(
    extracted: &Extracted,
    count_tokens: &dyn Fn(&str) -> usize,
    max_tokens: usize,
) -> Vec<Chunk> {
    let max = max_tokens.max(1);
    let mut atoms: Vec<Atom<'_>> = Vec::new();
    let mut prev_heading: Option<Option<&str>> = None;
    for section in &extracted.sections {
        let heading = section.heading.as_deref();
        let first_sep = match prev_heading {
            None => Sep::Paragraph,
            Some(h) if h != heading => Sep::Section,
            Some(_) => Sep::Paragraph,
        };
        prev_heading = Some(heading);
        for (i, (_, para)) in pieces(&section.text, paragraph_ends)
            .into_iter()
            .enumerate()
        {
            let sep = if i == 0 { first_sep } else { Sep::Paragraph };
            atomize(
                para,
                sep,
                section.page,
                heading,
                count_tokens,
                max,
                &mut atoms,
            );
        }
    }
    pack(&atoms, count_tokens, max)
}

/// Adds `text` as one atom if it fits, else as its sentences, words or characters.
fn atomize<'a>(
    text: &'a str,
    sep: Sep,
    page: Option<u32>,
    heading: Option<&'a str>,
    count: &dyn Fn(&str) -> usize,
    max: usize,
    out: &mut Vec<Atom<'a>>,
) {
    let tokens = count(text);
    if tokens <= max {
        out.push(Atom {
            text,
            sep,
            page,
            heading,
            tokens,
        });
        return;
    }
    let parts = pieces(text, sentence_ends);
    if parts.len() > 1 {
        for (i, (gap, part)) in parts.into_iter().enumerate() {
            let s = if i == 0 { sep } else { gap };
            atomize(part, s, page, heading, count, max, out);
        }
        return;
    }
    let words = pieces(text, word_ends);
    if words.len() > 1 {
        for (i, (gap, word)) in words.into_iter().enumerate() {
            let s = if i == 0 { sep } else { gap };
            atomize(word, s, page, heading, count, max, out);
        }
        return;
    }
    // One word longer than a chunk: cut between characters, each piece as long as fits.
    let mut rest = text;
    let mut s = sep;
    while !rest.is_empty() {
        let ends: Vec<usize> = rest.char_indices().map(|(i, c)| i + c.len_utf8()).collect();
        // Largest prefix (in characters) that fits; at least one character.
        let (mut lo, mut hi) = (1usize, ends.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if count(&rest[..ends[mid - 1]]) <= max {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let piece = &rest[..ends[lo - 1]];
        out.push(Atom {
            text: piece,
            sep: s,
            page,
            heading,
            tokens: count(piece),
        });
        rest = &rest[piece.len()..];
        s = Sep::Join;
    }
}

/// Splits `text` at the ends that `ends` finds, trimming whitespace around each piece; each
/// piece comes with the separator its leading gap stands for.
fn pieces(text: &str, ends: fn(&str) -> Vec<usize>) -> Vec<(Sep, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts = ends(text);
    cuts.push(text.len());
    for cut in cuts {
        if cut <= start {
            continue;
        }
        let raw = &text[start..cut];
        let trimmed_start = raw.len() - raw.trim_start().len();
        let gap = &text[..start + trimmed_start];
        let gap = &gap[gap.trim_end().len()..];
        let piece = raw.trim();
        if !piece.is_empty() {
            out.push((Sep::of_gap(gap), piece));
        }
        start = cut;
    }
    out
}

/// Byte offsets where paragraphs end (at a blank line).
fn paragraph_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            let mut j = i + 1;
            while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r') {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'\n' {
                ends.push(i);
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                i = j;
                continue;
            }
        }
        i += 1;
    }
    ends
}

const CLOSERS: &[char] = &[
    '"', '\'', ')', ']', '\u{201D}', '\u{2019}', '\u{300D}', '\u{300F}', '\u{FF09}', '\u{3011}',
];

/// Byte offsets just after sentence ends and line ends.
fn sentence_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        let cjk = matches!(c, '\u{3002}' | '\u{FF01}' | '\u{FF1F}' | '\u{FF0E}');
        let latin = matches!(c, '.' | '!' | '?' | '\u{2026}');
        if c == '\n' {
            ends.push(chars[i].0);
        } else if cjk || latin {
            let mut j = i + 1;
            while j < chars.len()
                && (CLOSERS.contains(&chars[j].1)
                    || (latin && matches!(chars[j].1, '.' | '!' | '?')))
            {
                j += 1;
            }
            let end = chars.get(j).map(|&(p, _)| p).unwrap_or(text.len());
            let followed_by_space = chars.get(j).is_none_or(|&(_, n)| n.is_whitespace());
            if cjk || followed_by_space {
                ends.push(end);
            }
            i = j;
            continue;
        }
        i += 1;
    }
    ends
}

/// Byte offsets where whitespace runs start.
fn word_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if space && !prev_space {
            ends.push(i);
        }
        prev_space = space;
    }
    ends
}

fn join(atoms: &[Atom<'_>]) -> String {
    let mut s = String::new();
    for (i, a) in atoms.iter().enumerate() {
        if i > 0 {
            s.push_str(a.sep.text());
        }
        s.push_str(a.text);
    }
    s
}

fn make_chunk(atoms: &[Atom<'_>], text: String, tokens: usize, ordinal: u32) -> Chunk {
    let pages = atoms.iter().filter_map(|a| a.page);
    Chunk {
        ordinal,
        text,
        token_count: tokens,
        page_start: pages.clone().min(),
        page_end: pages.max(),
        heading: atoms.first().and_then(|a| a.heading.map(str::to_string)),
    }
}

/// Packs atoms greedily into chunks, preferring to cut at strong separators, and verifies each
/// chunk with the real count.
fn pack(atoms: &[Atom<'_>], count: &dyn Fn(&str) -> usize, max: usize) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < atoms.len() {
        // Grow by estimate: the sum of the atoms' own counts plus one per separator.
        let mut end = start + 1;
        let mut estimate = atoms[start].tokens;
        while end < atoms.len() {
            let add = atoms[end].tokens + usize::from(atoms[end].sep != Sep::Join);
            if estimate + add > max {
                break;
            }
            estimate += add;
            end += 1;
        }
        if end < atoms.len() {
            end = better_cut(atoms, start, end, max);
        }
        // Verify with the real count; give back atoms from the end until it fits.
        loop {
            let text = join(&atoms[start..end]);
            let tokens = count(&text);
            if tokens <= max || end == start + 1 {
                chunks.push(make_chunk(
                    &atoms[start..end],
                    text,
                    tokens,
                    chunks.len() as u32,
                ));
                break;
            }
            end -= 1;
        }
        start = end;
    }
    chunks
}

/// Moves the cut before `end` back to a stronger separator if one lies in the second half of
/// the chunk (by estimated tokens).
fn better_cut(atoms: &[Atom<'_>], start: usize, end: usize, max: usize) -> usize {
    let next = atoms[end].sep;
    let mut best = end;
    let mut best_sep = next;
    let mut before = atoms[start].tokens;
    for (i, atom) in atoms.iter().enumerate().take(end).skip(start + 1) {
        if before * 2 >= max && atom.sep > best_sep {
            best = i;
            best_sep = atom.sep;
        } else if before * 2 >= max && atom.sep == best_sep && best != end {
            best = i;
        }
        before += atom.tokens + 1;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_ends_latin_and_cjk() {
        let t = "One. Two! \"Three?\" e.g. x\u{4E00}\u{3002}\u{4E8C}\u{FF01}\u{4E09}";
        let p: Vec<&str> = pieces(t, sentence_ends)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            p,
            vec![
                "One.",
                "Two!",
                "\"Three?\"",
                "e.g.",
                "x\u{4E00}\u{3002}",
                "\u{4E8C}\u{FF01}",
                "\u{4E09}"
            ]
        );
        let seps: Vec<Sep> = pieces(t, sentence_ends)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(seps[5], Sep::Join);
        assert_eq!(seps[1], Sep::Space);
    }

    #[test]
    fn paragraphs_split_on_blank_lines_only() {
        let t = "a\nb\n\n  \nc\n\nd";
        let p: Vec<(Sep, &str)> = pieces(t, paragraph_ends);
        assert_eq!(
            p,
            vec![
                (Sep::Join, "a\nb"),
                (Sep::Paragraph, "c"),
                (Sep::Paragraph, "d")
            ]
        );
    }
}
