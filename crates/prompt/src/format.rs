//! [`ChatFormat`]: how one model writes a conversation.
//!
//! With a chat template (the GGUF's `tokenizer.chat_template`), the template is rendered as
//! Hugging Face's `apply_chat_template` renders it (see the `hf_jinja` module for the exact
//! environment) with these variables: `messages` (a list of `{"role", "content"}` maps),
//! `add_generation_prompt`, `bos_token` and `eos_token` (when known), plus any set with
//! [`ChatFormat::with_variable`]. `tools` and `documents` are left undefined, as llama.cpp does;
//! Hugging Face passes `none`, which gives the same text for every template tested except
//! tool-use variants that iterate over `tools` unguarded (those fail on `none`).
//!
//! Templates that reject part of a conversation are retried, in this order, and the first
//! rendering that succeeds is returned:
//! 1. the conversation as given;
//! 2. if it has system messages: their text (joined by a blank line) is folded into the first
//!    user message as `"<system>\n\n<user>"` and the system messages are removed (for templates
//!    that raise on a system role, e.g. Gemma 2); with no user message, the system text becomes
//!    a user message;
//! 3. then consecutive messages of the same role are merged into one (joined by a blank line),
//!    for templates that insist on strictly alternating user/assistant turns.
//!
//! If every attempt fails, the error of the first attempt is returned.
//!
//! Without a template the plain-completion transcript of the `transcript` module is used, and
//! [`ChatFormat::stop_strings`] returns `["\nUser:"]`.
//!
//! BOS: the rendered text contains the BOS text only where the template writes it (many templates
//! start with `{{ bos_token }}`); the plain transcript never does. An engine that adds BOS as the
//! model's metadata asks must skip it when [`ChatFormat::begins_with_bos`] says the text already
//! starts with it, or the model sees BOS twice.

use crate::conversation::{Message, Role};
use crate::error::PromptError;
use crate::hf_jinja;
use crate::transcript;
use chrono::NaiveDateTime;
use minijinja::{Environment, Value};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// A model's way of writing a conversation: its chat template, or the plain transcript.
#[derive(Clone)]
pub struct ChatFormat {
    template: Option<Environment<'static>>,
    bos_text: Option<String>,
    eos_text: Option<String>,
    variables: BTreeMap<String, Value>,
}

impl fmt::Debug for ChatFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatFormat")
            .field("has_template", &self.template.is_some())
            .field("bos_text", &self.bos_text)
            .field("eos_text", &self.eos_text)
            .field("variables", &self.variables.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One message as templates receive it.
#[derive(Serialize)]
struct TemplateMessage<'a> {
    role: &'static str,
    content: &'a str,
}

impl ChatFormat {
    /// `template`: the GGUF's `tokenizer.chat_template` (Jinja, as Hugging Face renders it), or
    /// `None` for models without one (an empty or blank template counts as none).
    /// `bos_text`/`eos_text`: the text of the BOS and EOS tokens, given to the template as
    /// `bos_token`/`eos_token`.
    ///
    /// Fails with [`PromptError::Template`] when the template does not compile.
    pub fn new(
        template: Option<&str>,
        bos_text: Option<&str>,
        eos_text: Option<&str>,
    ) -> Result<Self, PromptError> {
        let template = match template {
            Some(source) if !source.trim().is_empty() => Some(
                hf_jinja::environment(source)
                    .map_err(|e| PromptError::Template(hf_jinja::describe(&e)))?,
            ),
            _ => None,
        };
        Ok(ChatFormat {
            template,
            bos_text: bos_text.map(str::to_string),
            eos_text: eos_text.map(str::to_string),
            variables: BTreeMap::new(),
        })
    }

    /// The plain-completion format, for models without a chat template.
    pub fn plain() -> Self {
        ChatFormat {
            template: None,
            bos_text: None,
            eos_text: None,
            variables: BTreeMap::new(),
        }
    }

    /// Whether the model's own chat template is used (false: the plain transcript).
    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// The BOS text given at construction.
    pub fn bos_text(&self) -> Option<&str> {
        self.bos_text.as_deref()
    }

    /// The EOS text given at construction.
    pub fn eos_text(&self) -> Option<&str> {
        self.eos_text.as_deref()
    }

    /// Whether `rendered` already starts with the BOS text (so the engine must not add BOS).
    pub fn begins_with_bos(&self, rendered: &str) -> bool {
        match &self.bos_text {
            Some(bos) if !bos.is_empty() => rendered.starts_with(bos.as_str()),
            _ => false,
        }
    }

    /// Sets an extra template variable, as keyword arguments to Hugging Face's
    /// `apply_chat_template` do (e.g. `enable_thinking = false` for Qwen3). The variables this
    /// crate sets itself (`messages`, `add_generation_prompt`, `bos_token`, ...) take precedence.
    pub fn with_variable(mut self, name: &str, value: impl Serialize) -> Self {
        self.variables
            .insert(name.to_string(), Value::from_serialize(value));
        self
    }

    /// Makes `strftime_now` (used by e.g. Llama 3.2's template to print today's date) return this
    /// time instead of the local clock, so renderings are reproducible.
    pub fn with_fixed_time(mut self, time: NaiveDateTime) -> Self {
        if let Some(env) = self.template.as_mut() {
            hf_jinja::set_clock(env, Some(time));
        }
        self
    }

    /// Renders the turns, ending with the generation prompt for the assistant when
    /// `add_generation_prompt`. See the module header for the fallbacks when a template rejects
    /// the conversation.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, PromptError> {
        let Some(env) = &self.template else {
            return Ok(transcript::render(messages, add_generation_prompt));
        };
        let first_error = match self.render_template(env, messages, add_generation_prompt) {
            Ok(text) => return Ok(text),
            Err(e) => e,
        };
        let mut attempt = messages.to_vec();
        if attempt.iter().any(|m| m.role == Role::System) {
            attempt = fold_system(&attempt);
            if let Ok(text) = self.render_template(env, &attempt, add_generation_prompt) {
                return Ok(text);
            }
        }
        let merged = merge_same_roles(&attempt);
        if merged != attempt {
            if let Ok(text) = self.render_template(env, &merged, add_generation_prompt) {
                return Ok(text);
            }
        }
        Err(first_error)
    }

    /// Strings that end the assistant's turn in plain-completion mode (`["\nUser:"]`); empty with
    /// a template, whose turns end with the model's end-of-turn token.
    pub fn stop_strings(&self) -> Vec<String> {
        if self.template.is_some() {
            Vec::new()
        } else {
            transcript::PLAIN_STOP_STRINGS
                .iter()
                .map(|s| s.to_string())
                .collect()
        }
    }

    fn render_template(
        &self,
        env: &Environment<'static>,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, PromptError> {
        let template = env
            .get_template(hf_jinja::TEMPLATE_NAME)
            .map_err(|e| PromptError::Template(hf_jinja::describe(&e)))?;
        let mut ctx: BTreeMap<String, Value> = self.variables.clone();
        let list: Vec<TemplateMessage<'_>> = messages
            .iter()
            .map(|m| TemplateMessage {
                role: m.role.as_str(),
                content: &m.content,
            })
            .collect();
        ctx.insert("messages".into(), Value::from_serialize(&list));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        if let Some(bos) = &self.bos_text {
            ctx.insert("bos_token".into(), Value::from(bos.as_str()));
        }
        if let Some(eos) = &self.eos_text {
            ctx.insert("eos_token".into(), Value::from(eos.as_str()));
        }
        template
            .render(ctx)
            .map_err(|e| match hf_jinja::raised_message(&e) {
                Some(message) => PromptError::Render(message),
                None => PromptError::Render(hf_jinja::describe(&e)),
            })
    }
}

/// Moves the system messages' text into the first user message (see the module header).
fn fold_system(messages: &[Message]) -> Vec<Message> {
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    if system.is_empty() {
        return messages.to_vec();
    }
    let system = system.join("\n\n");
    let mut rest: Vec<Message> = messages
        .iter()
        .filter(|m| m.role != Role::System)
        .cloned()
        .collect();
    match rest.iter_mut().find(|m| m.role == Role::User) {
        Some(user) => user.content = format!("{system}\n\n{}", user.content),
        None => {
            let at = messages
                .iter()
                .position(|m| m.role == Role::System)
                .unwrap_or(0);
            rest.insert(at.min(rest.len()), Message::user(system));
        }
    }
    rest
}

/// Merges runs of consecutive messages with the same role into one message.
fn merge_same_roles(messages: &[Message]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    for message in messages {
        match out.last_mut() {
            Some(last) if last.role == message.role => {
                last.content.push_str("\n\n");
                last.content.push_str(&message.content);
            }
            _ => out.push(message.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_puts_system_text_before_the_first_user_message() {
        let folded = fold_system(&[
            Message::system("Be brief."),
            Message::user("Hi"),
            Message::assistant("Hello"),
            Message::system("Use French."),
            Message::user("Bye"),
        ]);
        assert_eq!(
            folded,
            vec![
                Message::user("Be brief.\n\nUse French.\n\nHi"),
                Message::assistant("Hello"),
                Message::user("Bye"),
            ]
        );
        assert_eq!(
            fold_system(&[Message::assistant("Hi"), Message::system("S")]),
            vec![Message::assistant("Hi"), Message::user("S")]
        );
    }

    #[test]
    fn merge_joins_consecutive_turns_of_one_role() {
        let merged = merge_same_roles(&[
            Message::user("a"),
            Message::user("b"),
            Message::assistant("c"),
            Message::user("d"),
        ]);
        assert_eq!(
            merged,
            vec![
                Message::user("a\n\nb"),
                Message::assistant("c"),
                Message::user("d")
            ]
        );
    }

    #[test]
    fn a_template_that_rejects_system_gets_it_folded() {
        let template = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}";
        let format = ChatFormat::new(Some(template), None, None).unwrap();
        let out = format
            .render(&[Message::system("S"), Message::user("U")], false)
            .unwrap();
        assert_eq!(out, "<user>S\n\nU");
    }

    #[test]
    fn a_template_that_requires_alternation_gets_merged_turns() {
        let template = "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}[{{ m.content }}]{% endfor %}";
        let format = ChatFormat::new(Some(template), None, None).unwrap();
        let out = format
            .render(&[Message::user("a"), Message::user("b")], false)
            .unwrap();
        assert_eq!(out, "[a\n\nb]");
        let err = format
            .render(&[Message::assistant("a"), Message::user("b")], false)
            .unwrap_err();
        assert_eq!(
            err,
            PromptError::Render(
                "Conversation roles must alternate user/assistant/user/assistant/...".into()
            )
        );
    }

    #[test]
    fn invalid_template_says_what_is_wrong() {
        let err = ChatFormat::new(Some("{% for m in messages %}{{ m.content }}"), None, None)
            .unwrap_err();
        match err {
            PromptError::Template(text) => {
                assert!(text.contains("syntax error"), "{text}");
                assert!(text.contains("line 1"), "{text}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn blank_template_means_plain_mode() {
        let format = ChatFormat::new(Some("  \n"), Some("<s>"), None).unwrap();
        assert!(!format.has_template());
        assert_eq!(format.stop_strings(), vec!["\nUser:".to_string()]);
    }

    #[test]
    fn variables_reach_the_template_and_bos_is_detected() {
        let format = ChatFormat::new(
            Some("{{ bos_token }}{% if enable_thinking is defined and not enable_thinking %}no-think{% endif %}{{ tools is defined }}"),
            Some("<s>"),
            Some("</s>"),
        )
        .unwrap()
        .with_variable("enable_thinking", false);
        let out = format.render(&[], true).unwrap();
        // Booleans print as Python prints them.
        assert_eq!(out, "<s>no-thinkFalse");
        assert!(format.begins_with_bos(&out));
        assert!(!format.begins_with_bos("no-think"));
        assert!(format.stop_strings().is_empty());
    }

    #[test]
    fn chat_format_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ChatFormat>();
    }
}
