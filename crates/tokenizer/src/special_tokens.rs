//! Per-token attributes and the rules, taken from llama.cpp's vocabulary loader, that decide which
//! tokens are "special" and which end a generation.
//!
//! A caller may rely on: every token has exactly one [`Attr`] set (plus the strip flags); the
//! end-of-generation set always contains the EOS, EOT and EOM ids when the file names them; the
//! detection is deterministic (when several tokens match a rule, the lowest id wins).

use std::collections::{BTreeSet, HashMap};

use crate::metadata::{token_type, SpecialIds};

/// Attribute bits of one token, mirroring llama.cpp's `llama_token_attr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Attr(u16);

impl Attr {
    pub const UNDEFINED: Attr = Attr(0);
    pub const UNKNOWN: Attr = Attr(1 << 0);
    pub const UNUSED: Attr = Attr(1 << 1);
    pub const NORMAL: Attr = Attr(1 << 2);
    pub const CONTROL: Attr = Attr(1 << 3);
    pub const USER_DEFINED: Attr = Attr(1 << 4);
    pub const BYTE: Attr = Attr(1 << 5);
    /// Whitespace to the left of this token is removed when it is matched in text.
    pub const LSTRIP: Attr = Attr(1 << 6);
    /// Whitespace to the right of this token is removed when it is matched in text.
    pub const RSTRIP: Attr = Attr(1 << 7);

    /// True when any bit of `other` is set.
    pub fn any(self, other: Attr) -> bool {
        self.0 & other.0 != 0
    }

    pub fn with(self, other: Attr) -> Attr {
        Attr(self.0 | other.0)
    }

    pub fn without(self, other: Attr) -> Attr {
        Attr(self.0 & !other.0)
    }

    pub fn union(a: Attr, b: Attr) -> Attr {
        Attr(a.0 | b.0)
    }

    pub fn from_token_type(t: i32) -> Attr {
        match t {
            token_type::NORMAL => Attr::NORMAL,
            token_type::UNKNOWN => Attr::UNKNOWN,
            token_type::CONTROL => Attr::CONTROL,
            token_type::USER_DEFINED => Attr::USER_DEFINED,
            token_type::UNUSED => Attr::UNUSED,
            token_type::BYTE => Attr::BYTE,
            token_type::UNDEFINED => Attr::UNDEFINED,
            _ => Attr::UNDEFINED,
        }
    }

    /// Tokens that are matched as a whole in text before the model sees it.
    pub fn is_special(self) -> bool {
        self.any(Attr::union(
            Attr::union(Attr::CONTROL, Attr::USER_DEFINED),
            Attr::UNKNOWN,
        ))
    }

    /// Tokens that are only matched when the caller asks for special tokens to be parsed, and
    /// that decoding leaves out when asked to skip special tokens.
    pub fn is_control_like(self) -> bool {
        self.any(Attr::union(Attr::CONTROL, Attr::UNKNOWN))
    }
}

/// Texts of tokens that llama.cpp treats as the end of a turn when the file has no
/// `tokenizer.ggml.eot_token_id`.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

const EOM_TEXTS: &[&str] = &["<|eom_id|>"];

const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

/// Texts of tokens that end a generation wherever they appear in a vocabulary.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Tokens that llama.cpp always renders as text (gpt-oss's channel markers).
const ALWAYS_RENDERED: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

/// Ids of the tokens whose text is one of the rule lists above, found in one pass.
struct KnownTexts {
    ids: HashMap<&'static str, u32>,
}

impl KnownTexts {
    fn scan(texts: &[String]) -> Self {
        let mut wanted: HashMap<&'static str, ()> = HashMap::new();
        for list in [
            EOT_TEXTS,
            EOM_TEXTS,
            FIM_PRE_TEXTS,
            FIM_SUF_TEXTS,
            FIM_MID_TEXTS,
            FIM_PAD_TEXTS,
            FIM_REP_TEXTS,
            FIM_SEP_TEXTS,
            EOG_TEXTS,
            ALWAYS_RENDERED,
        ] {
            for text in list {
                wanted.insert(text, ());
            }
        }
        let max_len = wanted.keys().map(|t| t.len()).max().unwrap_or(0);
        let mut ids = HashMap::new();
        for (id, text) in texts.iter().enumerate() {
            if text.len() > max_len {
                continue;
            }
            if let Some((key, ())) = wanted.get_key_value(text.as_str()) {
                ids.entry(*key).or_insert(id as u32);
            }
        }
        Self { ids }
    }

    /// The lowest id among the tokens whose text is in `candidates`.
    fn first(&self, candidates: &[&str]) -> Option<u32> {
        candidates
            .iter()
            .filter_map(|c| self.ids.get(c))
            .min()
            .copied()
    }

    fn all<'a>(&'a self, candidates: &'a [&str]) -> impl Iterator<Item = u32> + 'a {
        candidates.iter().filter_map(|c| self.ids.get(c).copied())
    }
}

/// Fills in the EOT, EOM and FIM ids the file does not name, marks the tokens found that way as
/// control tokens, and returns the set of ids that end a generation. `ids` must already hold only
/// ids inside the vocabulary.
pub(crate) fn end_of_generation(
    texts: &[String],
    attrs: &mut [Attr],
    ids: &mut SpecialIds,
) -> BTreeSet<u32> {
    let known = KnownTexts::scan(texts);
    let mut detect = |slot: &mut Option<u32>, candidates: &[&str]| {
        if slot.is_none() {
            if let Some(id) = known.first(candidates) {
                *slot = Some(id);
                attrs[id as usize] = attrs[id as usize].with(Attr::CONTROL);
            }
        }
    };
    detect(&mut ids.eot, EOT_TEXTS);
    detect(&mut ids.eom, EOM_TEXTS);
    detect(&mut ids.fim_pre, FIM_PRE_TEXTS);
    detect(&mut ids.fim_suf, FIM_SUF_TEXTS);
    detect(&mut ids.fim_mid, FIM_MID_TEXTS);
    detect(&mut ids.fim_pad, FIM_PAD_TEXTS);
    detect(&mut ids.fim_rep, FIM_REP_TEXTS);
    detect(&mut ids.fim_sep, FIM_SEP_TEXTS);

    let mut eog = BTreeSet::new();
    eog.extend(ids.fim_pad);
    eog.extend(ids.fim_rep);
    eog.extend(ids.fim_sep);
    for id in known.all(EOG_TEXTS) {
        // Deliberate difference from llama.cpp: "</s>" ends a generation only where the file
        // makes it a control token. Elsewhere it is HTML's strikethrough end tag (a normal token
        // in Qwen 2.5, a user-defined one in Gemma 3), and stopping there would cut off
        // generated HTML.
        if texts[id as usize] == "</s>" && !attrs[id as usize].any(Attr::CONTROL) {
            continue;
        }
        eog.insert(id);
        attrs[id as usize] = attrs[id as usize].with(Attr::CONTROL);
    }
    for id in known.all(ALWAYS_RENDERED) {
        attrs[id as usize] = Attr::USER_DEFINED;
    }
    eog.extend(ids.eos);
    eog.extend(ids.eot);
    eog.extend(ids.eom);

    // With gpt-oss's "<|return|>"/"<|call|>" (or solar-open's "<|calls|>"/"<|flush|>"),
    // "<|end|>" only closes a message, it does not end the generation.
    let eog_with = |eog: &BTreeSet<u32>, text: &str| {
        eog.iter().copied().find(|&id| texts[id as usize] == text)
    };
    let has = |eog: &BTreeSet<u32>, text: &str| eog_with(eog, text).is_some();
    if let Some(end) = eog_with(&eog, "<|end|>") {
        if (has(&eog, "<|return|>") && has(&eog, "<|call|>"))
            || (has(&eog, "<|calls|>") && has(&eog, "<|flush|>"))
        {
            eog.remove(&end);
            attrs[end as usize] = Attr::USER_DEFINED;
        }
    }
    // Gemma 4 and PLaMo use "</s>" as an ordinary token.
    if let Some(s) = eog_with(&eog, "</s>") {
        if has(&eog, "<|tool_response>") || has(&eog, "<|plamo:eos|>") {
            eog.remove(&s);
            attrs[s as usize] = Attr::NORMAL;
        }
    }
    eog
}

/// Whitespace strip flags llama.cpp sets by model name (it has no metadata key for them).
pub(crate) fn strip_flags(
    texts: &[String],
    attrs: &mut [Attr],
    general_name: Option<&str>,
    pre: Option<&str>,
    architecture: Option<&str>,
) {
    let name = general_name.unwrap_or("").to_lowercase();
    let pre = pre.unwrap_or("");
    let arch = architecture.unwrap_or("");
    let set = |attrs: &mut [Attr], text: &str, flag: Attr, on: bool| {
        if let Some(id) = texts.iter().position(|t| t == text) {
            attrs[id] = if on {
                attrs[id].with(flag)
            } else {
                attrs[id].without(flag)
            };
        }
    };
    if ["jina-v2-de", "jina-v2-es", "jina-v2-code"]
        .iter()
        .any(|p| pre.contains(p))
        || ["nomic-bert-moe", "jina-bert-v3"]
            .iter()
            .any(|a| arch.contains(a))
    {
        set(attrs, "<mask>", Attr::LSTRIP, true);
    } else if name.contains("phi-3") || name.contains("phi3") {
        for attr in attrs.iter_mut() {
            if attr.is_special() {
                *attr = attr.with(Attr::RSTRIP);
            }
        }
        set(attrs, "</s>", Attr::RSTRIP, true);
        for text in ["<unk>", "<s>", "<|endoftext|>"] {
            set(attrs, text, Attr::RSTRIP, false);
        }
    } else if name.contains("modern-bert") {
        set(attrs, "[MASK]", Attr::LSTRIP, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn eos_and_chatml_end_generation() {
        let t = texts(&["<|endoftext|>", "<|im_start|>", "<|im_end|>", "hello"]);
        let mut attrs = vec![Attr::CONTROL, Attr::CONTROL, Attr::CONTROL, Attr::NORMAL];
        let mut ids = SpecialIds {
            eos: Some(2),
            ..SpecialIds::default()
        };
        let eog = end_of_generation(&t, &mut attrs, &mut ids);
        assert_eq!(eog.into_iter().collect::<Vec<_>>(), vec![0, 2]);
        // The first EOT-looking token (lowest id) becomes the EOT id.
        assert_eq!(ids.eot, Some(0));
    }

    #[test]
    fn end_is_not_eog_next_to_return_and_call() {
        let t = texts(&["<|return|>", "<|call|>", "<|end|>", "x"]);
        let mut attrs = vec![Attr::CONTROL; 3];
        attrs.push(Attr::NORMAL);
        let mut ids = SpecialIds::default();
        let eog = end_of_generation(&t, &mut attrs, &mut ids);
        assert!(eog.contains(&0) && eog.contains(&1));
        assert!(!eog.contains(&2));
        assert_eq!(attrs[2], Attr::USER_DEFINED);
    }

    #[test]
    fn non_control_eog_token_becomes_control() {
        let t = texts(&["a", "<|im_end|>"]);
        let mut attrs = vec![Attr::NORMAL, Attr::USER_DEFINED];
        let mut ids = SpecialIds::default();
        let eog = end_of_generation(&t, &mut attrs, &mut ids);
        assert!(eog.contains(&1));
        assert!(attrs[1].any(Attr::CONTROL));
    }

    #[test]
    fn html_end_tag_is_not_eog() {
        let t = texts(&["<s>", "</s>", "<eos>"]);
        let mut attrs = vec![Attr::USER_DEFINED, Attr::USER_DEFINED, Attr::CONTROL];
        let mut ids = SpecialIds::default();
        let eog = end_of_generation(&t, &mut attrs, &mut ids);
        assert_eq!(eog.into_iter().collect::<Vec<_>>(), vec![2]);
        assert_eq!(attrs[1], Attr::USER_DEFINED);
        // Llama 2's "</s>" is a control token (and its EOS).
        let t = texts(&["<unk>", "<s>", "</s>"]);
        let mut attrs = vec![Attr::UNKNOWN, Attr::CONTROL, Attr::CONTROL];
        let eog = end_of_generation(&t, &mut attrs, &mut SpecialIds::default());
        assert!(eog.contains(&2));
    }
}
