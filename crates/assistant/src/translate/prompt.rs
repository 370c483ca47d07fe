//! Translation prompts, one shape per model family, and cleaning what the model wrote.
//!
//! [`ModelFamily::detect`] reads the family from a model's GGUF metadata (architecture, name,
//! chat template). [`build`] writes the request for one piece of text:
//!
//! | family | shape |
//! |---|---|
//! | Qwen 2/2.5 (ChatML), Llama 3, Phi 3/4, other chat models | system: the translator's rules and glossary; then the previous piece and its translation (for the first piece, a built-in example sentence) as one earlier exchange; then the piece |
//! | Qwen 3 | as Qwen, with `/no_think` so it answers without a reasoning block |
//! | Gemma | no system turn (Gemma has none): rules and glossary in the first user turn, which asks for the previous piece (or the example); its translation; then the piece |
//! | SmolLM | one user turn with short rules (small models lose track of longer conversations) |
//! | plain completion (no chat template) | `English: ...` / `French:` lines, with the previous piece (or a built-in example) as the example; stops at the line's end |
//!
//! The chat template itself is applied by the engine ([`Prompt::Chat`]). [`clean`] removes what
//! models add around a translation: reasoning blocks, "Here is the translation:" lines, labels,
//! wrapping quotes, and anything after a blank line (a piece is always a single paragraph).

use hearth_engine::{Message, Prompt, Role};
use serde::{Deserialize, Serialize};

use super::glossary::GlossaryTerm;
use super::lang::Language;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ModelFamily {
    Qwen,
    Qwen3,
    Llama3,
    Gemma,
    Phi,
    SmolLm,
    /// A chat template of another kind.
    OtherChat,
    /// No chat template: plain completion.
    Plain,
}

impl ModelFamily {
    /// The family from GGUF metadata: `general.architecture`, `general.name` and
    /// `tokenizer.chat_template`.
    pub fn detect(arch: &str, name: Option<&str>, template: Option<&str>) -> ModelFamily {
        let name = name.unwrap_or("").to_lowercase();
        let Some(t) = template.filter(|t| !t.trim().is_empty()) else {
            return ModelFamily::Plain;
        };
        if name.contains("smollm") {
            return ModelFamily::SmolLm;
        }
        if arch == "qwen3" || name.contains("qwen3") {
            return ModelFamily::Qwen3;
        }
        if t.contains("<|start_header_id|>") {
            return ModelFamily::Llama3;
        }
        if t.contains("<start_of_turn>") {
            return ModelFamily::Gemma;
        }
        if t.contains("<|im_start|>") {
            return if arch.starts_with("qwen") || name.contains("qwen") {
                ModelFamily::Qwen
            } else {
                ModelFamily::OtherChat
            };
        }
        if t.contains("<|user|>") || t.contains("<|end|>") || arch.starts_with("phi") {
            return ModelFamily::Phi;
        }
        ModelFamily::OtherChat
    }

    pub fn label(self) -> &'static str {
        match self {
            ModelFamily::Qwen => "Qwen",
            ModelFamily::Qwen3 => "Qwen 3",
            ModelFamily::Llama3 => "Llama 3",
            ModelFamily::Gemma => "Gemma",
            ModelFamily::Phi => "Phi",
            ModelFamily::SmolLm => "SmolLM",
            ModelFamily::OtherChat => "chat model",
            ModelFamily::Plain => "plain completion",
        }
    }
}

/// What one request translates.
#[derive(Debug, Clone, Copy)]
pub struct PieceInput<'a> {
    pub source: Language,
    pub target: Language,
    pub text: &'a str,
    /// The piece before this one and its translation, for consistency.
    pub previous: Option<(&'a str, &'a str)>,
    /// The glossary terms that occur in `text`.
    pub glossary: &'a [&'a GlossaryTerm],
    /// Whether the text may hold Markdown inline markup.
    pub markdown: bool,
    /// A second attempt after a glossary term was missed: the terms are stressed.
    pub insist: bool,
    /// A second attempt after the model answered in the source language: the request names
    /// the language to write in once more, in that language too.
    pub remind_language: bool,
}

/// A request ready for the engine.
#[derive(Debug, Clone)]
pub struct BuiltPrompt {
    pub prompt: Prompt,
    pub stop: Vec<String>,
}

fn rules(p: &PieceInput<'_>) -> String {
    let mut s = format!(
        "You are a professional translator. Translate the user's text from {} into {}. \
         Reply with the translation only: no explanations, no notes, no quotation marks around it.",
        p.source.english_name(),
        p.target.english_name()
    );
    if p.markdown {
        s.push_str(
            " Keep Markdown markup, text between backticks, links and URLs exactly as they are.",
        );
    }
    s.push_str(&glossary_rules(p));
    s
}

fn glossary_rules(p: &PieceInput<'_>) -> String {
    if p.glossary.is_empty() {
        return String::new();
    }
    let mut s = String::from(if p.insist {
        "\nYou MUST use exactly these translations for these terms, word for word:"
    } else {
        "\nUse these translations for these terms:"
    });
    for t in p.glossary {
        s.push_str(&format!("\n- \"{}\" → \"{}\"", t.source, t.target));
    }
    s
}

fn ask(p: &PieceInput<'_>, text: &str) -> String {
    format!(
        "Translate from {} into {}:\n\n{}",
        p.source.english_name(),
        p.target.english_name(),
        text
    )
}

/// The request for the piece itself: [`ask`], with the reminder of the language to write in
/// when the first answer came back in the source language.
fn ask_piece(p: &PieceInput<'_>) -> String {
    if !p.remind_language {
        return ask(p, p.text);
    }
    format!(
        "Translate from {} into {}. {}:\n\n{}",
        p.source.english_name(),
        p.target.english_name(),
        language_reminder(p),
        p.text
    )
}

/// The reminder as a sentence of its own, or nothing on a first attempt.
fn reminder_sentence(p: &PieceInput<'_>) -> String {
    if p.remind_language {
        format!(" {}.", language_reminder(p))
    } else {
        String::new()
    }
}

/// "Write the translation only in Simplified Chinese (简体中文), not in English": the target
/// named in English and in itself.
fn language_reminder(p: &PieceInput<'_>) -> String {
    format!(
        "Write the translation only in {} ({}), not in {}",
        p.target.english_name(),
        p.target.native_name(),
        p.source.english_name()
    )
}

/// The example exchange when there is no previous piece: the same sentence in each language.
fn example(l: Language) -> &'static str {
    match l {
        Language::En => "The meeting starts at ten o'clock.",
        Language::Zh => "会议十点开始。",
        Language::Fr => "La réunion commence à dix heures.",
        Language::De => "Die Besprechung beginnt um zehn Uhr.",
        Language::Es => "La reunión empieza a las diez.",
        Language::Ja => "会議は十時に始まります。",
        Language::Ko => "회의는 열 시에 시작합니다.",
        Language::Ru => "Совещание начинается в десять часов.",
        Language::It => "La riunione inizia alle dieci.",
        Language::Pt => "A reunião começa às dez horas.",
    }
}

pub fn build(family: ModelFamily, p: &PieceInput<'_>) -> BuiltPrompt {
    let stop = vec!["\n\n".to_string()];
    let user = |c: String| Message {
        role: Role::User,
        content: c,
    };
    let assistant = |c: &str| Message {
        role: Role::Assistant,
        content: c.to_string(),
    };
    let system = |c: String| Message {
        role: Role::System,
        content: c,
    };
    let mut m = Vec::new();
    match family {
        ModelFamily::Plain => {
            let (es, et) = p.previous.unwrap_or((example(p.source), example(p.target)));
            let mut s = format!(
                "Translate from {} into {}.{}{}\n\n",
                p.source.english_name(),
                p.target.english_name(),
                reminder_sentence(p),
                glossary_rules(p)
            );
            if !p.glossary.is_empty() {
                s.push_str("\n\n");
            }
            let (sn, tn) = (p.source.english_name(), p.target.english_name());
            s.push_str(&format!(
                "{sn}: {es}\n{tn}: {et}\n\n{sn}: {}\n{tn}:",
                p.text
            ));
            return BuiltPrompt {
                prompt: Prompt::Raw(s),
                stop: vec!["\n".to_string()],
            };
        }
        ModelFamily::SmolLm => {
            m.push(user(format!(
                "Translate this {} text into {}. Write only the translation.{}{}\n\n{}",
                p.source.english_name(),
                p.target.english_name(),
                reminder_sentence(p),
                glossary_rules(p),
                p.text
            )));
        }
        ModelFamily::Gemma => {
            let (src, tr) = p.previous.unwrap_or((example(p.source), example(p.target)));
            m.push(user(format!("{}\n\n{}", rules(p), ask(p, src))));
            m.push(assistant(tr));
            m.push(user(ask_piece(p)));
        }
        ModelFamily::Qwen
        | ModelFamily::Qwen3
        | ModelFamily::Llama3
        | ModelFamily::Phi
        | ModelFamily::OtherChat => {
            m.push(system(rules(p)));
            // The previous piece, or a built-in example: an exchange that shows the model what
            // an answer looks like (the translation and nothing else).
            let (src, tr) = p.previous.unwrap_or((example(p.source), example(p.target)));
            m.push(user(ask(p, src)));
            m.push(assistant(tr));
            let mut q = ask_piece(p);
            if family == ModelFamily::Qwen3 {
                q.push_str(" /no_think");
            }
            m.push(user(q));
        }
    }
    BuiltPrompt {
        prompt: Prompt::Chat(m),
        stop,
    }
}

fn is_label_line(line: &str, target: Language) -> bool {
    let l = line.trim();
    if l.is_empty() || l.chars().count() > 60 {
        return false;
    }
    let lower = l.to_lowercase();
    let ends_colon = l.ends_with(':') || l.ends_with('：');
    let mentions = [
        "translation",
        "traduction",
        "übersetzung",
        "traducción",
        "traduzione",
        "tradução",
        "翻译",
        "翻訳",
        "번역",
        "перевод",
    ]
    .iter()
    .any(|w| lower.contains(w))
        || lower.starts_with(&target.english_name().to_lowercase())
        || lower.starts_with("here is")
        || lower.starts_with("here's");
    ends_colon && mentions
}

/// Removes a leading `Translation:`-style label on the same line as the text.
fn strip_inline_label(s: &str, target: Language) -> &str {
    let name = target.english_name();
    for label in [
        "Translation:",
        "Translated text:",
        &format!("{name}:"),
        &format!("{name} translation:"),
        "翻译：",
        "译文：",
    ] {
        if let Some(rest) = s.strip_prefix(label) {
            return rest.trim_start();
        }
        if s.len() >= label.len()
            && s.is_char_boundary(label.len())
            && s[..label.len()].eq_ignore_ascii_case(label)
        {
            return s[label.len()..].trim_start();
        }
    }
    s
}

const QUOTES: [(char, char); 6] = [
    ('"', '"'),
    ('“', '”'),
    ('«', '»'),
    ('「', '」'),
    ('『', '』'),
    ('\'', '\''),
];

/// The translation in what the model wrote (see the module header).
pub fn clean(raw: &str, source_text: &str, target: Language) -> String {
    let mut s = raw.to_string();
    // Reasoning blocks, closed or not.
    while let Some(a) = s.find("<think>") {
        match s[a..].find("</think>") {
            Some(b) => s.replace_range(a..a + b + "</think>".len(), ""),
            None => s.truncate(a),
        }
    }
    let s = s.trim();
    let mut lines: Vec<&str> = s.lines().collect();
    while lines.len() > 1 && is_label_line(lines[0], target) {
        lines.remove(0);
        while lines.first().is_some_and(|l| l.trim().is_empty()) {
            lines.remove(0);
        }
    }
    // One paragraph: stop at the first blank line.
    let mut joined = String::new();
    for l in lines {
        if l.trim().is_empty() {
            break;
        }
        let l = l.trim();
        if let (Some(a), Some(b)) = (joined.chars().last(), l.chars().next()) {
            if !(target.unspaced() && !a.is_ascii() && !b.is_ascii()) {
                joined.push(' ');
            }
        }
        joined.push_str(l);
    }
    let mut out = strip_inline_label(joined.trim(), target).to_string();
    let src = source_text.trim();
    for (open, close) in QUOTES {
        let wrapped = out.starts_with(open) && out.ends_with(close) && out.chars().count() >= 2;
        let source_wrapped = src.starts_with(open) || src.starts_with(['"', '“', '«', '「']);
        if wrapped && !source_wrapped {
            let inner = &out[open.len_utf8()..out.len() - close.len_utf8()];
            if !inner.contains(close) {
                out = inner.trim().to_string();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        g: &'a [&'a GlossaryTerm],
        previous: Option<(&'a str, &'a str)>,
    ) -> PieceInput<'a> {
        PieceInput {
            source: Language::En,
            target: Language::Fr,
            text: "Open the file.",
            previous,
            glossary: g,
            markdown: true,
            insist: false,
            remind_language: false,
        }
    }

    #[test]
    fn families_from_metadata() {
        let chatml = "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}";
        assert_eq!(
            ModelFamily::detect("qwen2", Some("Qwen2.5 0.5B"), Some(chatml)),
            ModelFamily::Qwen
        );
        assert_eq!(
            ModelFamily::detect("qwen3", Some("Qwen3 0.6B"), Some(chatml)),
            ModelFamily::Qwen3
        );
        assert_eq!(
            ModelFamily::detect("llama", Some("SmolLM2 135M Instruct"), Some(chatml)),
            ModelFamily::SmolLm
        );
        assert_eq!(
            ModelFamily::detect("llama", Some("Other"), Some(chatml)),
            ModelFamily::OtherChat
        );
        assert_eq!(
            ModelFamily::detect("llama", None, Some("<|start_header_id|>")),
            ModelFamily::Llama3
        );
        assert_eq!(
            ModelFamily::detect("gemma3", None, Some("<start_of_turn>")),
            ModelFamily::Gemma
        );
        assert_eq!(
            ModelFamily::detect("phi3", None, Some("<|user|>")),
            ModelFamily::Phi
        );
        assert_eq!(
            ModelFamily::detect("gemma3", None, None),
            ModelFamily::Plain
        );
        assert_eq!(
            ModelFamily::detect("gemma3", None, Some("  ")),
            ModelFamily::Plain
        );
    }

    fn chat(p: &BuiltPrompt) -> &[Message] {
        match &p.prompt {
            Prompt::Chat(m) => m,
            other => panic!("not a chat prompt: {other:?}"),
        }
    }

    #[test]
    fn chat_families_put_rules_in_the_system_turn_and_context_as_an_exchange() {
        let term = GlossaryTerm {
            source: "file".into(),
            target: "fichier".into(),
        };
        let g = [&term];
        for f in [
            ModelFamily::Qwen,
            ModelFamily::Llama3,
            ModelFamily::Phi,
            ModelFamily::OtherChat,
        ] {
            let p = build(f, &input(&g, Some(("Hello.", "Bonjour."))));
            let m = chat(&p);
            assert_eq!(m.len(), 4, "{f:?}");
            assert_eq!(m[0].role, Role::System);
            assert!(m[0].content.contains("from English into French"));
            assert!(m[0].content.contains("\"file\" → \"fichier\""));
            assert!(m[0].content.contains("Markdown"));
            assert_eq!(m[1].role, Role::User);
            assert!(m[1].content.ends_with("\n\nHello."));
            assert_eq!(m[2].content, "Bonjour.");
            assert!(m[3].content.ends_with("\n\nOpen the file."));
            assert_eq!(p.stop, vec!["\n\n"]);
        }
        let p = build(ModelFamily::Qwen3, &input(&[], None));
        let m = chat(&p);
        assert_eq!(m.len(), 4);
        assert!(m[1]
            .content
            .ends_with("\n\nThe meeting starts at ten o'clock."));
        assert_eq!(m[2].content, "La réunion commence à dix heures.");
        assert!(m[3].content.ends_with(" /no_think"));
    }

    #[test]
    fn gemma_has_no_system_turn_and_smollm_one_turn() {
        let p = build(
            ModelFamily::Gemma,
            &input(&[], Some(("Hello.", "Bonjour."))),
        );
        let m = chat(&p);
        assert!(m.iter().all(|x| x.role != Role::System));
        assert_eq!(m.len(), 3);
        assert!(
            m[0].content.contains("professional translator") && m[0].content.ends_with("Hello.")
        );
        let p = build(
            ModelFamily::SmolLm,
            &input(&[], Some(("Hello.", "Bonjour."))),
        );
        let m = chat(&p);
        assert_eq!(m.len(), 1);
        assert!(m[0].content.ends_with("\n\nOpen the file."));
    }

    #[test]
    fn plain_completion_uses_an_example_and_stops_at_the_line_end() {
        let p = build(ModelFamily::Plain, &input(&[], None));
        let Prompt::Raw(text) = &p.prompt else {
            panic!("raw expected")
        };
        assert!(text.ends_with("English: Open the file.\nFrench:"), "{text}");
        assert!(text.contains("French: La réunion commence à dix heures.\n\n"));
        assert_eq!(p.stop, vec!["\n"]);
        let p = build(
            ModelFamily::Plain,
            &input(&[], Some(("Hello.", "Bonjour."))),
        );
        let Prompt::Raw(text) = &p.prompt else {
            panic!("raw expected")
        };
        assert!(text.contains("English: Hello.\nFrench: Bonjour.\n\n"));
    }

    #[test]
    fn a_reminded_request_names_the_target_in_both_languages_and_keeps_the_text_last() {
        let text_of = |p: &BuiltPrompt| match &p.prompt {
            Prompt::Raw(t) => t.clone(),
            Prompt::Chat(m) => m.last().unwrap().content.clone(),
            other => panic!("a translation prompt is text: {other:?}"),
        };
        let reminder = "Write the translation only in French (Français), not in English";
        for f in [
            ModelFamily::Qwen,
            ModelFamily::Qwen3,
            ModelFamily::Llama3,
            ModelFamily::Phi,
            ModelFamily::OtherChat,
            ModelFamily::Gemma,
            ModelFamily::SmolLm,
            ModelFamily::Plain,
        ] {
            let first = input(&[], Some(("Hello.", "Bonjour.")));
            let again = PieceInput {
                remind_language: true,
                ..first
            };
            let (a, b) = (text_of(&build(f, &first)), text_of(&build(f, &again)));
            assert!(!a.contains(reminder), "{f:?}: {a}");
            assert!(b.contains(reminder), "{f:?}: {b}");
            // The piece still ends the request, so the model goes on from it as before.
            let tail = if f == ModelFamily::Plain {
                "English: Open the file.\nFrench:"
            } else if f == ModelFamily::Qwen3 {
                "\n\nOpen the file. /no_think"
            } else {
                "\n\nOpen the file."
            };
            assert!(b.ends_with(tail), "{f:?}: {b}");
            // The example exchange is not reworded: only the request for this piece is.
            if let Prompt::Chat(m) = &build(f, &again).prompt {
                assert_eq!(
                    m.iter().filter(|x| x.content.contains(reminder)).count(),
                    1,
                    "{f:?}"
                );
            }
        }
    }

    #[test]
    fn cleaning() {
        use Language::*;
        assert_eq!(
            clean("  Ouvrez le fichier.  ", "Open the file.", Fr),
            "Ouvrez le fichier."
        );
        assert_eq!(
            clean("Here is the translation:\n\nOuvrez le fichier.", "x", Fr),
            "Ouvrez le fichier."
        );
        assert_eq!(clean("French translation:\nOuvrez", "x", Fr), "Ouvrez");
        assert_eq!(clean("Translation: Ouvrez", "x", Fr), "Ouvrez");
        assert_eq!(
            clean("\"Ouvrez le fichier.\"", "Open the file.", Fr),
            "Ouvrez le fichier."
        );
        assert_eq!(clean("\"Quoted\"", "\"Quoted\"", Fr), "\"Quoted\"");
        assert_eq!(
            clean("Ouvrez.\n\nNote: this is formal.", "x", Fr),
            "Ouvrez."
        );
        assert_eq!(
            clean("<think>\nhmm\n</think>\n\nOuvrez.", "x", Fr),
            "Ouvrez."
        );
        assert_eq!(clean("<think>unfinished", "x", Fr), "");
        assert_eq!(clean("打开\n文件。", "x", Zh), "打开文件。");
        assert_eq!(clean("Line one\nline two", "x", Fr), "Line one line two");
        assert_eq!(clean("翻译：打开文件。", "x", Zh), "打开文件。");
    }
}
