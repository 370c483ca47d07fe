//! Splits text around special tokens written in it, the way llama.cpp does before tokenizing.
//!
//! Rules a caller may rely on:
//! - user-defined tokens are always matched; control and unknown tokens only when
//!   `parse_special` is true;
//! - tokens are tried longest first (ties: lowest id first); each one is cut out of every
//!   remaining piece of text, left to right, before the next token is tried;
//! - a token with the LSTRIP / RSTRIP attribute swallows ASCII whitespace on that side.
//!
//! An Aho-Corasick automaton over all special token texts finds, in one pass, which of them occur
//! in the text at all, so a vocabulary with thousands of special tokens costs one scan per call.

use std::ops::Range;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::special_tokens::Attr;
use crate::TokenizerError;

/// One piece of the text to encode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// A byte range of the input, to go through the model.
    Text(Range<usize>),
    /// A special token matched in the input.
    Token(u32),
}

/// The special tokens of a vocabulary, ready for matching.
#[derive(Clone, Debug)]
pub(crate) struct SpecialMatcher {
    automaton: Option<AhoCorasick>,
    /// Pattern index -> (token id, text, attributes), sorted longest text first.
    tokens: Vec<(u32, String, Attr)>,
}

/// `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

impl SpecialMatcher {
    /// `specials` lists every token to match in text, with its attributes.
    pub fn new(mut specials: Vec<(u32, String, Attr)>) -> Result<Self, TokenizerError> {
        specials.retain(|(_, text, _)| !text.is_empty());
        specials.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        let automaton = if specials.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(specials.iter().map(|(_, text, _)| text.as_str()))
                    .map_err(|e| {
                        TokenizerError::Invalid(format!("cannot index special tokens: {e}"))
                    })?,
            )
        };
        Ok(Self {
            automaton,
            tokens: specials,
        })
    }

    pub fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut fragments = Vec::new();
        if text.is_empty() {
            return fragments;
        }
        fragments.push(Fragment::Text(0..text.len()));
        let Some(automaton) = &self.automaton else {
            return fragments;
        };

        // Which special tokens occur anywhere in the text (pattern indices, in priority order).
        let mut present = vec![false; self.tokens.len()];
        for m in automaton.find_overlapping_iter(text) {
            present[m.pattern().as_usize()] = true;
        }
        let bytes = text.as_bytes();
        for (index, (id, token_text, attr)) in self.tokens.iter().enumerate() {
            if !present[index] || (!parse_special && attr.is_control_like()) {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(range) = fragment else {
                    next.push(fragment);
                    continue;
                };
                let end = range.end;
                let mut start = range.start;
                while start < end {
                    let Some(found) = text[start..end].find(token_text.as_str()) else {
                        next.push(Fragment::Text(start..end));
                        break;
                    };
                    let at = start + found;
                    let mut left_end = at;
                    if attr.any(Attr::LSTRIP) {
                        while left_end > start && is_c_space(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > start {
                        next.push(Fragment::Text(start..left_end));
                    }
                    next.push(Fragment::Token(*id));
                    start = at + token_text.len();
                    if attr.any(Attr::RSTRIP) {
                        while start < end && is_c_space(bytes[start]) {
                            start += 1;
                        }
                    }
                }
            }
            fragments = next;
        }
        fragments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> SpecialMatcher {
        SpecialMatcher::new(vec![
            (10, "<|im_start|>".into(), Attr::CONTROL),
            (11, "<|im_end|>".into(), Attr::CONTROL.with(Attr::RSTRIP)),
            (12, "<tab>".into(), Attr::USER_DEFINED),
        ])
        .unwrap()
    }

    #[test]
    fn control_tokens_only_with_parse_special() {
        let m = matcher();
        let text = "<|im_start|>user<tab>x";
        assert_eq!(
            m.partition(text, true),
            vec![
                Fragment::Token(10),
                Fragment::Text(12..16),
                Fragment::Token(12),
                Fragment::Text(21..22)
            ]
        );
        assert_eq!(
            m.partition(text, false),
            vec![
                Fragment::Text(0..16),
                Fragment::Token(12),
                Fragment::Text(21..22)
            ]
        );
    }

    #[test]
    fn rstrip_swallows_whitespace() {
        let m = matcher();
        let text = "a<|im_end|>  \n b";
        assert_eq!(
            m.partition(text, true),
            vec![
                Fragment::Text(0..1),
                Fragment::Token(11),
                Fragment::Text(15..16)
            ]
        );
    }

    #[test]
    fn empty_text_has_no_fragments() {
        assert!(matcher().partition("", true).is_empty());
    }
}
