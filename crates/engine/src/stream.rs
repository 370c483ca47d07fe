//! Turning generated token ids into text that is safe to show as it arrives.
//!
//! [`TextStream`] never emits a partial UTF-8 character: it decodes a short window of recent
//! tokens and releases only text that decoded completely, so Chinese characters and emoji split
//! across byte-level tokens arrive whole. [`StopMatcher`] holds back text that could be the start
//! of a stop string and ends the stream at the first complete one, which is never emitted.

use hearth_tokenizer::GgufTokenizer;

use crate::error::Result;

pub struct TextStream<'a> {
    tokenizer: &'a GgufTokenizer,
    tokens: Vec<u32>,
    prev_index: usize,
    current_index: usize,
}

impl<'a> TextStream<'a> {
    pub fn new(tokenizer: &'a GgufTokenizer) -> Self {
        Self {
            tokenizer,
            tokens: Vec::new(),
            prev_index: 0,
            current_index: 0,
        }
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(self.tokenizer.decode(ids, true)?)
    }

    /// Adds a token; returns the text it completes, if any.
    pub fn push(&mut self, token: u32) -> Result<Option<String>> {
        let prev_text = self.decode(&self.tokens[self.prev_index..self.current_index])?;
        self.tokens.push(token);
        let text = self.decode(&self.tokens[self.prev_index..])?;
        if text.len() > prev_text.len() && !text.ends_with('\u{FFFD}') {
            if let Some(new) = text.strip_prefix(prev_text.as_str()) {
                let new = new.to_string();
                self.prev_index = self.current_index;
                self.current_index = self.tokens.len();
                return Ok(Some(new));
            }
        }
        Ok(None)
    }

    /// Text still held back at the end of generation.
    pub fn finish(&mut self) -> Result<Option<String>> {
        let prev_text = self.decode(&self.tokens[self.prev_index..self.current_index])?;
        let text = self.decode(&self.tokens[self.prev_index..])?;
        self.prev_index = self.tokens.len();
        self.current_index = self.tokens.len();
        Ok(text
            .strip_prefix(prev_text.as_str())
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('\u{FFFD}').to_string())
            .filter(|s| !s.is_empty()))
    }
}

pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    /// Feeds new text; returns the text that is now safe to emit and whether a stop string ended it.
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first_stop {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return (out, true);
        }
        // Hold back the longest tail that could still grow into a stop string.
        let mut hold_from = self.pending.len();
        for (i, _) in self.pending.char_indices() {
            let tail = &self.pending[i..];
            if self.stops.iter().any(|s| s.starts_with(tail)) {
                hold_from = i;
                break;
            }
        }
        let out = self.pending[..hold_from].to_string();
        self.pending.drain(..hold_from);
        (out, false)
    }

    /// Whatever was held back, at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    #[test]
    fn stop_string_split_across_pieces_is_never_emitted() {
        let mut m = StopMatcher::new(vec!["\nUser:".into()]);
        let mut out = String::new();
        let mut stopped = false;
        for piece in ["Hello", " there", "\n", "Us", "er:", " more"] {
            let (o, s) = m.push(piece);
            out.push_str(&o);
            if s {
                stopped = true;
                break;
            }
        }
        assert!(stopped);
        assert_eq!(out, "Hello there");
    }

    #[test]
    fn near_miss_is_released() {
        let mut m = StopMatcher::new(vec!["</end>".into()]);
        let (a, s1) = m.push("x </e");
        assert_eq!((a.as_str(), s1), ("x ", false));
        let (b, s2) = m.push("nx");
        assert_eq!((b.as_str(), s2), ("</enx", false));
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn multibyte_text_is_held_on_char_boundaries() {
        let mut m = StopMatcher::new(vec!["你好吗".into()]);
        let (a, _) = m.push("我说你好");
        assert_eq!(a, "我说");
        assert_eq!(m.finish(), "你好");
    }
}
