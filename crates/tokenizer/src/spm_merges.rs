//! Derives BPE merges from a SentencePiece vocabulary's scores.
//!
//! llama.cpp tokenizes SentencePiece BPE vocabularies without merges: starting from characters,
//! it repeatedly joins the adjacent pair whose joined text is the token with the highest score
//! (the leftmost pair on equal scores). A Hugging Face BPE model reproduces that with one merge
//! per token, ranked by score:
//!
//! - If a token `t` is ever formed, no symbol crossed its boundaries before, so the joins inside
//!   it happened exactly as when tokenizing `t`'s text alone. The last join of that standalone
//!   run (its *canonical split*) is therefore the only way `t` is ever formed, and every other
//!   way of cutting `t` in two is a merge that never applies. Tokens that the standalone run
//!   does not rebuild can never be formed and get no merge.
//! - That argument needs a strict order between joins, which Hugging Face ranks give only when
//!   scores differ. Tokens whose score is shared with another token (Llama 2's runs of spaces,
//!   for instance) keep every possible cut instead, as Hugging Face's own converter does.
//!
//! The standalone runs are independent, so they are spread over the available cores: for a
//! 262k-token vocabulary this is a large part of the work of building the tokenizer.

use std::ops::Range;
use std::thread;

/// Token text -> id, for the many short lookups of the standalone runs: all texts in one
/// buffer and an open-addressing table of (hash fingerprint, id). A few megabytes that mostly
/// stay in the CPU cache, where a map of `String`s misses the cache on almost every lookup.
pub(crate) struct TextIndex {
    bytes: Vec<u8>,
    /// `starts[id]..starts[id + 1]` is the text of `id` in `bytes`.
    starts: Vec<u32>,
    /// `(fingerprint, id + 1)`; id 0 marks an empty slot.
    slots: Vec<(u32, u32)>,
    mask: usize,
    /// `chars[c]`: id + 1 of the token made of the single character `c` (0: none), for the
    /// Basic Multilingual Plane.
    chars: Vec<u32>,
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = K ^ (bytes.len() as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(31);
    }
    h ^= h >> 29;
    h.wrapping_mul(K) ^ (h >> 32)
}

/// Byte equality without a library call: the texts compared here are a few bytes long.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

impl TextIndex {
    /// `texts` must be unique (a later duplicate is never found) and add up to less than 4 GiB.
    pub fn new(texts: &[String]) -> Self {
        let total: usize = texts.iter().map(String::len).sum();
        let mut bytes = Vec::with_capacity(total);
        let mut starts = Vec::with_capacity(texts.len() + 1);
        let capacity = (texts.len() * 2).next_power_of_two().max(16);
        let mask = capacity - 1;
        let mut slots = vec![(0u32, 0u32); capacity];
        let mut chars = vec![0u32; 0x10000];
        for (id, text) in texts.iter().enumerate() {
            starts.push(bytes.len() as u32);
            bytes.extend_from_slice(text.as_bytes());
            let mut it = text.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                if let Some(slot) = chars.get_mut(c as usize) {
                    *slot = id as u32 + 1;
                }
            }
            let h = hash_bytes(text.as_bytes());
            let mut at = (h as usize) & mask;
            while slots[at].1 != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = ((h >> 32) as u32, id as u32 + 1);
        }
        starts.push(bytes.len() as u32);
        Self {
            bytes,
            starts,
            slots,
            mask,
            chars,
        }
    }

    fn text(&self, id: u32) -> &[u8] {
        let id = id as usize;
        &self.bytes[self.starts[id] as usize..self.starts[id + 1] as usize]
    }

    /// The id of the token made of the single character `c`.
    pub fn get_char(&self, c: char) -> Option<u32> {
        match self.chars.get(c as usize) {
            Some(&id1) => id1.checked_sub(1),
            None => {
                let mut buf = [0u8; 4];
                self.get(c.encode_utf8(&mut buf))
            }
        }
    }

    /// The id of the token with exactly this text.
    pub fn get(&self, text: &str) -> Option<u32> {
        let text = text.as_bytes();
        let h = hash_bytes(text);
        let fingerprint = (h >> 32) as u32;
        let mut at = (h as usize) & self.mask;
        loop {
            let (fp, id1) = self.slots[at];
            if id1 == 0 {
                return None;
            }
            if fp == fingerprint && same_bytes(self.text(id1 - 1), text) {
                return Some(id1 - 1);
            }
            at = (at + 1) & self.mask;
        }
    }
}

/// A merge `left + right -> id`, with the score that ranks it.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f32,
    id: u32,
    left: u32,
    right: u32,
}

/// One symbol of a standalone run: a byte range of the token's text and its token id, if the
/// text is a token (a single character may not be).
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    end: usize,
    id: Option<u32>,
}

/// Buffers reused from one standalone run to the next.
#[derive(Default)]
struct Scratch {
    symbols: Vec<Symbol>,
    /// `joined[i]`: the token formed by symbols `i` and `i + 1`, if any.
    joined: Vec<Option<u32>>,
}

/// Runs llama.cpp's SentencePiece joining on `text` alone and returns the last join if it
/// rebuilds the whole text.
fn canonical_split(
    text: &str,
    vocab: &TextIndex,
    scores: &[f32],
    scratch: &mut Scratch,
) -> Option<(u32, u32)> {
    let Scratch { symbols, joined } = scratch;
    symbols.clear();
    symbols.extend(text.char_indices().map(|(start, c)| Symbol {
        start,
        end: start + c.len_utf8(),
        id: vocab.get_char(c),
    }));
    if symbols.len() < 2 {
        return None;
    }
    if symbols.len() == 2 {
        // The only join is the whole text, which is a token.
        return Some((symbols[0].id?, symbols[1].id?));
    }
    let pair = |symbols: &[Symbol], i: usize| -> Option<u32> {
        vocab.get(&text[symbols[i].start..symbols[i + 1].end])
    };
    joined.clear();
    joined.extend((0..symbols.len() - 1).map(|i| pair(symbols, i)));
    loop {
        let mut best: Option<(usize, f32)> = None;
        for (i, id) in joined.iter().enumerate() {
            if let Some(id) = id {
                let score = scores[*id as usize];
                if best.is_none_or(|(_, s)| score > s) {
                    best = Some((i, score));
                }
            }
        }
        let (i, _) = best?;
        if symbols.len() == 2 {
            return Some((symbols[0].id?, symbols[1].id?));
        }
        let right = symbols.remove(i + 1);
        symbols[i].end = right.end;
        symbols[i].id = joined[i];
        joined.remove(i);
        if i > 0 {
            joined[i - 1] = pair(symbols, i - 1);
        }
        if i + 1 < symbols.len() {
            joined[i] = pair(symbols, i);
        }
    }
}

/// Every cut of `text` into two tokens.
fn all_splits(text: &str, vocab: &TextIndex, out: &mut Vec<(u32, u32)>) {
    for (at, _) in text.char_indices().skip(1) {
        let (left, right) = text.split_at(at);
        if let Some(left) = vocab.get(left) {
            if let Some(right) = vocab.get(right) {
                out.push((left, right));
            }
        }
    }
}

/// Ids whose score is shared with at least one other token.
fn tied_scores(scores: &[f32]) -> Vec<bool> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]));
    let mut tied = vec![false; scores.len()];
    for w in order.windows(2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        if scores[a].total_cmp(&scores[b]).is_eq() {
            tied[a] = true;
            tied[b] = true;
        }
    }
    tied
}

fn candidates_for(
    ids: Range<usize>,
    texts: &[String],
    scores: &[f32],
    tied: &[bool],
    vocab: &TextIndex,
) -> Vec<Candidate> {
    let mut out = Vec::with_capacity(ids.len());
    let mut splits = Vec::new();
    let mut scratch = Scratch::default();
    for id in ids {
        let text = &texts[id];
        let score = scores[id];
        if tied[id] {
            splits.clear();
            all_splits(text, vocab, &mut splits);
            out.extend(splits.iter().map(|&(left, right)| Candidate {
                score,
                id: id as u32,
                left,
                right,
            }));
        } else if let Some((left, right)) = canonical_split(text, vocab, scores, &mut scratch) {
            out.push(Candidate {
                score,
                id: id as u32,
                left,
                right,
            });
        }
    }
    out
}

/// Runs `f` on consecutive ranges of `0..len`, one per core (at most 16), and concatenates the
/// results in order.
fn in_parallel<T: Send>(len: usize, f: impl Fn(Range<usize>) -> Vec<T> + Sync) -> Vec<T> {
    let workers = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    if workers == 1 || len < 4096 {
        return f(0..len);
    }
    let chunk = len.div_ceil(workers);
    thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..len)
            .step_by(chunk)
            .map(|start| scope.spawn(move || f(start..(start + chunk).min(len))))
            .collect();
        let mut out = Vec::with_capacity(len);
        for handle in handles {
            out.append(
                &mut handle
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        out
    })
}

/// The merges, best first, as `(left, right)` token texts. `texts` must be unique and add up to
/// less than 4 GiB.
pub(crate) fn merges_from_scores(texts: &[String], scores: &[f32]) -> Vec<(String, String)> {
    let index = TextIndex::new(texts);
    let tied = tied_scores(scores);
    let mut candidates = in_parallel(texts.len(), |ids| {
        candidates_for(ids, texts, scores, &tied, &index)
    });
    candidates.sort_unstable_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.id.cmp(&b.id))
            .then(a.left.cmp(&b.left))
    });
    in_parallel(candidates.len(), |range| {
        candidates[range]
            .iter()
            .map(|c| {
                (
                    texts[c.left as usize].clone(),
                    texts[c.right as usize].clone(),
                )
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn index_finds_every_text() {
        let texts: Vec<String> = (0..5000).map(|i| format!("t{i}▁")).collect();
        let index = TextIndex::new(&texts);
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(index.get(t), Some(i as u32));
        }
        assert_eq!(index.get("t5000▁"), None);
        assert_eq!(index.get(""), None);
        assert_eq!(index.get("t"), None);
    }

    #[test]
    fn canonical_split_follows_scores() {
        // "bc" outscores "ab", so "abc" is only ever formed as "a" + "bc".
        let texts = texts(&["a", "b", "c", "ab", "bc", "abc"]);
        let scores = [0.0, 0.0, 0.0, -1.0, -0.5, -2.0];
        let index = TextIndex::new(&texts);
        let mut scratch = Scratch::default();
        assert_eq!(
            canonical_split("abc", &index, &scores, &mut scratch),
            Some((0, 4))
        );
        let merges = merges_from_scores(&texts, &scores);
        assert_eq!(
            merges,
            vec![
                ("b".to_string(), "c".to_string()),
                ("a".to_string(), "b".to_string()),
                ("a".to_string(), "bc".to_string()),
            ]
        );
    }

    #[test]
    fn unreachable_tokens_get_no_merge() {
        let texts = texts(&["a", "b", "c", "ab", "bc", "xabc", "abc"]);
        let scores = [0.0, 0.0, 0.0, -1.0, -0.5, -2.0, -3.0];
        let index = TextIndex::new(&texts);
        let mut scratch = Scratch::default();
        // "xabc" contains "x", which is not a token: never rebuilt.
        assert_eq!(canonical_split("xabc", &index, &scores, &mut scratch), None);
        assert_eq!(merges_from_scores(&texts, &scores).len(), 3);
    }

    #[test]
    fn tied_tokens_keep_every_cut() {
        let texts = texts(&["▁", "▁▁", "▁▁▁", "▁▁▁▁"]);
        let scores = [0.0, -9.0, -9.0, -9.0];
        let merges = merges_from_scores(&texts, &scores);
        // "▁▁": 1 cut, "▁▁▁": 2 cuts, "▁▁▁▁": 3 cuts.
        assert_eq!(merges.len(), 6);
    }
}
