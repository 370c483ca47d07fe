//! hearth-prompt against real chat templates: the three test models' own (read from their GGUF
//! files) and llama.cpp's collection of real-world templates, plus the context policy.
//!
//! The files come from scripts/fetch-test-models, found through HEARTH_TEST_MODELS (default
//! ~/.cache/hearth/test-models). A missing file fails the test with a message saying so.

use candle_core::quantized::gguf_file;
use hearth_prompt::{
    fit_to_context, ChatFormat, Fitted, Message, NaiveDateTime, PromptError, Role,
};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARTH_TEST_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME is not set and HEARTH_TEST_MODELS is unset");
    PathBuf::from(home).join(".cache/hearth/test-models")
}

fn require(path: &Path) -> &Path {
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-test-models (or point HEARTH_TEST_MODELS at its folder)",
        path.display()
    );
    path
}

/// What a GGUF says about writing its conversations.
struct GgufChat {
    template: Option<String>,
    bos: Option<String>,
    eos: Option<String>,
}

/// Reads each GGUF's metadata once per test run (Gemma's 262k-token vocabulary takes seconds).
fn read_gguf_chat(file_name: &'static str) -> &'static GgufChat {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, &'static GgufChat>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(file_name)
        .or_insert_with(|| Box::leak(Box::new(read_gguf_chat_uncached(file_name))))
}

fn read_gguf_chat_uncached(file_name: &str) -> GgufChat {
    let path = models_dir().join(file_name);
    let mut file = std::fs::File::open(require(&path)).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let meta = &content.metadata;
    let template = meta
        .get("tokenizer.chat_template")
        .map(|v| v.to_string().unwrap().clone());
    let tokens = meta["tokenizer.ggml.tokens"].to_vec().unwrap();
    let token_text = |key: &str| {
        meta.get(key).map(|id| {
            tokens[id.to_u32().unwrap() as usize]
                .to_string()
                .unwrap()
                .clone()
        })
    };
    GgufChat {
        template,
        bos: token_text("tokenizer.ggml.bos_token_id"),
        eos: token_text("tokenizer.ggml.eos_token_id"),
    }
}

fn gguf_format(file_name: &'static str) -> ChatFormat {
    let chat = read_gguf_chat(file_name);
    ChatFormat::new(
        chat.template.as_deref(),
        chat.bos.as_deref(),
        chat.eos.as_deref(),
    )
    .unwrap()
}

const SMOLLM2: &str = "smollm2-135m-instruct-q4_1.gguf";
const QWEN25: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

/// system + user + assistant + user, the conversation every template renders.
fn conversation() -> Vec<Message> {
    vec![
        Message::system("You are a terse assistant."),
        Message::user("What is the capital of France?"),
        Message::assistant("Paris."),
        Message::user("And of Italy?"),
    ]
}

// ---------------------------------------------------------------------------------------------
// The test models' own templates.

#[test]
fn smollm2_renders_chatml_exactly() {
    let format = gguf_format(SMOLLM2);
    assert!(format.has_template());
    assert!(format.stop_strings().is_empty());
    let text = format.render(&conversation(), true).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
         <|im_start|>assistant\nParis.<|im_end|>\n\
         <|im_start|>user\nAnd of Italy?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    // SmolLM2's BOS is <|im_start|> (with add_bos_token false): the text already begins with it.
    assert_eq!(format.bos_text(), Some("<|im_start|>"));
    assert!(format.begins_with_bos(&text));
}

#[test]
fn smollm2_without_system_uses_its_default_system_prompt() {
    let format = gguf_format(SMOLLM2);
    let text = format
        .render(&[Message::user("What is the capital of France?")], true)
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    let without_prompt = format
        .render(&[Message::user("Hi"), Message::assistant("Hello!")], false)
        .unwrap();
    assert!(without_prompt.ends_with("<|im_start|>assistant\nHello!<|im_end|>\n"));
}

#[test]
fn qwen25_renders_exactly_with_and_without_system() {
    let format = gguf_format(QWEN25);
    assert!(format.has_template());
    let text = format.render(&conversation(), true).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
         <|im_start|>assistant\nParis.<|im_end|>\n\
         <|im_start|>user\nAnd of Italy?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    let default_system = format.render(&conversation()[1..], true).unwrap();
    assert_eq!(
        default_system,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
         <|im_start|>assistant\nParis.<|im_end|>\n\
         <|im_start|>user\nAnd of Italy?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    // Qwen's BOS text (<|endoftext|>) is not written by its template.
    assert_eq!(format.bos_text(), Some("<|endoftext|>"));
    assert!(!format.begins_with_bos(&text));
}

#[test]
fn gemma3_270m_has_no_template_and_uses_the_plain_transcript() {
    let chat = read_gguf_chat(GEMMA3);
    assert_eq!(
        chat.template, None,
        "Gemma 3 270M base ships no chat template"
    );
    let format = gguf_format(GEMMA3);
    assert!(!format.has_template());
    assert_eq!(format.stop_strings(), vec!["\nUser:".to_string()]);
    let text = format.render(&conversation(), true).unwrap();
    assert_eq!(
        text,
        "System: You are a terse assistant.\n\
         User: What is the capital of France?\n\
         Assistant: Paris.\n\
         User: And of Italy?\n\
         Assistant:"
    );
    // The transcript never writes BOS: the engine adds <bos> as the metadata asks.
    assert_eq!(format.bos_text(), Some("<bos>"));
    assert!(!format.begins_with_bos(&text));
}

// ---------------------------------------------------------------------------------------------
// llama.cpp's real-world templates.

fn templates_dir() -> PathBuf {
    let dir = models_dir().join("templates");
    require(&dir);
    dir
}

fn read_template(name: &str) -> String {
    std::fs::read_to_string(require(&templates_dir().join(name))).unwrap()
}

/// A fixed clock, so templates that print today's date are reproducible.
fn fixed_time() -> NaiveDateTime {
    NaiveDateTime::parse_from_str("2025-03-05 10:30:00", "%Y-%m-%d %H:%M:%S").unwrap()
}

fn template_format(name: &str, bos: &str, eos: &str) -> ChatFormat {
    let format = ChatFormat::new(Some(&read_template(name)), Some(bos), Some(eos))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .with_fixed_time(fixed_time());
    if name == "fireworks-ai-llama-3-firefunction-v2.jinja" {
        // FireFunction's template concatenates two caller-supplied strings, as its model card
        // shows: the function specs (JSON) and the current date.
        format
            .with_variable("functions", "[]")
            .with_variable("datetime", "2025-03-05")
    } else {
        format
    }
}

fn template_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(templates_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".jinja"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_llama_cpp_template_renders_a_conversation() {
    let names = template_names();
    assert!(
        names.len() >= 70,
        "expected llama.cpp 0.3.36's 70 templates, found {}: rerun scripts/fetch-test-models",
        names.len()
    );
    let mut failures = Vec::new();
    for name in &names {
        let format = template_format(name, "<s>", "</s>");
        assert!(format.has_template(), "{name}");
        let conversation = conversation();
        match format.render(&conversation, true) {
            Ok(text) => {
                for message in &conversation {
                    if !text.contains(&message.content) {
                        failures.push(format!("{name}: output lacks {:?}", message.content));
                    }
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        // A conversation that ends with the assistant's turn, without the generation prompt.
        match format.render(&conversation[..3], false) {
            Ok(text) => {
                if !text.contains("Paris.") {
                    failures.push(format!("{name}: history lacks the assistant's reply"));
                }
            }
            Err(e) => failures.push(format!("{name} (no generation prompt): {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const LLAMA3_EXPECTED_DATE: &str =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n\
Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n\
You are a terse assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n\
What is the capital of France?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n\
Paris.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n\
And of Italy?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";

#[test]
fn llama3_templates_match_the_published_format() {
    // Llama 3.1 and 3.3 print a fixed "Today Date" unless the caller passes date_string.
    for name in [
        "meta-llama-Llama-3.1-8B-Instruct.jinja",
        "meta-llama-Llama-3.3-70B-Instruct.jinja",
    ] {
        let format = template_format(name, "<|begin_of_text|>", "<|eot_id|>");
        let text = format.render(&conversation(), true).unwrap();
        assert_eq!(text, LLAMA3_EXPECTED_DATE, "{name}");
        assert!(format.begins_with_bos(&text), "{name} writes BOS itself");
    }
    // Llama 3.2 asks strftime_now for today's date.
    let format = template_format(
        "meta-llama-Llama-3.2-3B-Instruct.jinja",
        "<|begin_of_text|>",
        "<|eot_id|>",
    );
    let text = format.render(&conversation(), true).unwrap();
    assert_eq!(
        text,
        LLAMA3_EXPECTED_DATE.replace("Today Date: 26 Jul 2024", "Today Date: 05 Mar 2025")
    );
    // The date_string variable (as in Hugging Face's apply_chat_template(date_string=...)).
    let dated = template_format(
        "meta-llama-Llama-3.1-8B-Instruct.jinja",
        "<|begin_of_text|>",
        "<|eot_id|>",
    )
    .with_variable("date_string", "01 Jan 2026");
    assert!(dated
        .render(&conversation(), true)
        .unwrap()
        .contains("Today Date: 01 Jan 2026\n"));
}

#[test]
fn qwen3_template_matches_the_published_format() {
    let expected = "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n\
                    <|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
                    <|im_start|>assistant\nParis.<|im_end|>\n\
                    <|im_start|>user\nAnd of Italy?<|im_end|>\n\
                    <|im_start|>assistant\n";
    let format = template_format("Qwen-Qwen3-0.6B.jinja", "<|endoftext|>", "<|im_end|>");
    // enable_thinking absent: the model decides whether to think.
    assert_eq!(format.render(&conversation(), true).unwrap(), expected);
    // enable_thinking=false: an empty think block is written for the model.
    let no_thinking = format.with_variable("enable_thinking", false);
    assert_eq!(
        no_thinking.render(&conversation(), true).unwrap(),
        format!("{expected}<think>\n\n</think>\n\n")
    );
    // Earlier assistant turns lose their reasoning, as Qwen3's template specifies.
    let with_reasoning = vec![
        Message::user("2+2?"),
        Message::assistant("<think>\nAdd them.\n</think>\n\n4"),
        Message::user("3+3?"),
    ];
    assert_eq!(
        template_format("Qwen-Qwen3-0.6B.jinja", "<|endoftext|>", "<|im_end|>")
            .render(&with_reasoning, true)
            .unwrap(),
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n\
         <|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn gemma2_rejects_a_system_role_so_it_is_folded_into_the_first_user_turn() {
    let source = read_template("google-gemma-2-2b-it.jinja");
    assert!(source.contains("System role not supported"));
    let format = template_format("google-gemma-2-2b-it.jinja", "<bos>", "<eos>");
    assert_eq!(
        format.render(&conversation(), true).unwrap(),
        "<bos><start_of_turn>user\nYou are a terse assistant.\n\nWhat is the capital of France?<end_of_turn>\n\
         <start_of_turn>model\nParis.<end_of_turn>\n\
         <start_of_turn>user\nAnd of Italy?<end_of_turn>\n\
         <start_of_turn>model\n"
    );
    // Without a system message nothing is folded.
    assert_eq!(
        format.render(&conversation()[1..2], true).unwrap(),
        "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"
    );
}

#[test]
fn gemma2_alternation_error_is_reported_with_the_templates_message() {
    // Two assistant turns in a row, then a user turn: merging fixes the alternation, so it renders.
    let format = template_format("google-gemma-2-2b-it.jinja", "<bos>", "<eos>");
    let merged = format
        .render(
            &[
                Message::user("Hi"),
                Message::assistant("Hello."),
                Message::assistant("How can I help?"),
                Message::user("Tell me a joke."),
            ],
            true,
        )
        .unwrap();
    assert!(merged.contains("<start_of_turn>model\nHello.\n\nHow can I help?<end_of_turn>\n"));
    // A conversation that opens with the assistant cannot be repaired: the template's own message.
    let err = format
        .render(&[Message::assistant("Hello."), Message::user("Hi")], true)
        .unwrap_err();
    assert_eq!(
        err,
        PromptError::Render(
            "Conversation roles must alternate user/assistant/user/assistant/...".into()
        )
    );
}

#[test]
fn phi35_template_matches_the_published_format() {
    let format = template_format(
        "microsoft-Phi-3.5-mini-instruct.jinja",
        "<s>",
        "<|endoftext|>",
    );
    assert_eq!(
        format.render(&conversation(), true).unwrap(),
        "<|system|>\nYou are a terse assistant.<|end|>\n\
         <|user|>\nWhat is the capital of France?<|end|>\n\
         <|assistant|>\nParis.<|end|>\n\
         <|user|>\nAnd of Italy?<|end|>\n\
         <|assistant|>\n"
    );
}

#[test]
fn mistral_nemo_puts_the_system_text_before_the_last_user_message() {
    let format = template_format("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>");
    assert_eq!(
        format.render(&conversation(), true).unwrap(),
        "<s>[INST]What is the capital of France?[/INST]Paris.</s>\
         [INST]You are a terse assistant.\n\nAnd of Italy?[/INST]"
    );
}

// ---------------------------------------------------------------------------------------------
// The context policy, with SmolLM2's real template and a character count as the token count.

fn chars(text: &str) -> Result<usize, PromptError> {
    Ok(text.chars().count())
}

fn long_conversation() -> Vec<Message> {
    vec![
        Message::system("You are a terse assistant."),
        Message::user("What is the capital of France?"),
        Message::assistant("Paris."),
        Message::user("And of Italy?"),
        Message::assistant("Rome."),
        Message::user("And of Spain?"),
        Message::assistant("Madrid."),
        Message::user("And of Portugal?"),
    ]
}

fn rendered_len(format: &ChatFormat, messages: &[Message]) -> usize {
    format.render(messages, true).unwrap().chars().count()
}

#[test]
fn fit_keeps_everything_when_it_fits() {
    let format = gguf_format(SMOLLM2);
    let messages = long_conversation();
    let whole = rendered_len(&format, &messages);
    let fitted = fit_to_context(&format, &messages, &chars, whole + 100, 100).unwrap();
    assert_eq!(
        fitted,
        Fitted {
            text: format.render(&messages, true).unwrap(),
            prompt_tokens: whole,
            dropped_messages: 0,
        }
    );
}

#[test]
fn fit_drops_the_oldest_pairs_and_keeps_the_system_message() {
    let format = gguf_format(SMOLLM2);
    let messages = long_conversation();
    let reserve = 64;
    let without_first_pair: Vec<Message> = [&messages[..1], &messages[3..]].concat();
    let without_two_pairs: Vec<Message> = [&messages[..1], &messages[5..]].concat();

    // Exactly room for the conversation minus its oldest pair.
    let room = rendered_len(&format, &without_first_pair) + reserve;
    let fitted = fit_to_context(&format, &messages, &chars, room, reserve).unwrap();
    assert_eq!(fitted.dropped_messages, 2);
    assert_eq!(
        fitted.text,
        format.render(&without_first_pair, true).unwrap()
    );
    assert!(fitted
        .text
        .starts_with("<|im_start|>system\nYou are a terse assistant."));
    assert!(fitted.prompt_tokens + reserve <= room);

    // One token less: the next pair goes too.
    let fitted = fit_to_context(&format, &messages, &chars, room - 1, reserve).unwrap();
    assert_eq!(fitted.dropped_messages, 4);
    assert_eq!(
        fitted.text,
        format.render(&without_two_pairs, true).unwrap()
    );
    assert!(fitted.text.contains("And of Portugal?"));
    assert!(!fitted.text.contains("And of Italy?"));
}

#[test]
fn fit_keeps_every_system_message_and_the_last_user_message() {
    let format = gguf_format(SMOLLM2);
    let messages = vec![
        Message::system("You are a terse assistant."),
        Message::user("What is the capital of France?"),
        Message::assistant("Paris."),
        Message::system("Answer in French from now on."),
        Message::user("And of Italy?"),
        Message::assistant("Rome."),
        Message::user("And of Spain?"),
    ];
    let kept = vec![
        messages[0].clone(),
        messages[3].clone(),
        messages[6].clone(),
    ];
    let room = rendered_len(&format, &kept);
    let fitted = fit_to_context(&format, &messages, &chars, room, 0).unwrap();
    assert_eq!(fitted.dropped_messages, 4);
    assert_eq!(fitted.text, format.render(&kept, true).unwrap());
}

#[test]
fn fit_reports_overflow_when_the_last_user_message_alone_does_not_fit() {
    let format = gguf_format(SMOLLM2);
    let messages = long_conversation();
    let kept = [messages[0].clone(), messages[7].clone()];
    let minimum = rendered_len(&format, &kept);
    let err = fit_to_context(&format, &messages, &chars, minimum + 9, 10).unwrap_err();
    assert_eq!(
        err,
        PromptError::ContextOverflow {
            needed: minimum + 10,
            available: minimum + 9,
        }
    );
    // With one more token of room it fits, and everything droppable was dropped.
    let fitted = fit_to_context(&format, &messages, &chars, minimum + 10, 10).unwrap();
    assert_eq!(fitted.dropped_messages, 6);
    assert_eq!(fitted.prompt_tokens, minimum);
}

#[test]
fn fit_drops_a_leading_assistant_greeting_on_its_own_first() {
    let format = ChatFormat::plain();
    let messages = vec![
        Message::assistant("Hello! How can I help?"),
        Message::user("What is the capital of France?"),
        Message::assistant("Paris."),
        Message::user("And of Italy?"),
    ];
    let room = rendered_len(&format, &messages[1..]);
    let fitted = fit_to_context(&format, &messages, &chars, room, 0).unwrap();
    assert_eq!(fitted.dropped_messages, 1);
    assert_eq!(
        fitted.text,
        "User: What is the capital of France?\nAssistant: Paris.\nUser: And of Italy?\nAssistant:"
    );
}

#[test]
fn fit_renders_a_logarithmic_number_of_times() {
    let format = gguf_format(SMOLLM2);
    let mut messages = vec![Message::system("You are a terse assistant.")];
    for i in 0..64 {
        messages.push(Message::user(format!("Question number {i}?")));
        messages.push(Message::assistant(format!("Answer number {i}.")));
    }
    messages.push(Message::user("Last question?"));
    let calls = Cell::new(0usize);
    let counting = |text: &str| -> Result<usize, PromptError> {
        calls.set(calls.get() + 1);
        chars(text)
    };
    let keep_last_ten: Vec<Message> = [&messages[..1], &messages[messages.len() - 21..]].concat();
    let room = rendered_len(&format, &keep_last_ten);
    let fitted = fit_to_context(&format, &messages, &counting, room, 0).unwrap();
    assert_eq!(fitted.dropped_messages, 108);
    assert_eq!(fitted.text, format.render(&keep_last_ten, true).unwrap());
    assert!(
        calls.get() <= 2 + 7,
        "counted {} times for 64 turns",
        calls.get()
    );
}

#[test]
fn fit_passes_on_token_counter_errors() {
    let format = gguf_format(SMOLLM2);
    let failing = |_: &str| -> Result<usize, PromptError> {
        Err(PromptError::Tokenize("vocabulary not loaded".into()))
    };
    let err = fit_to_context(&format, &long_conversation(), &failing, 8192, 256).unwrap_err();
    assert_eq!(err, PromptError::Tokenize("vocabulary not loaded".into()));
}

#[test]
fn messages_serialize_with_lowercase_roles() {
    let json = serde_json::to_string(&Message::new(Role::Assistant, "Hi")).unwrap();
    assert_eq!(json, r#"{"role":"assistant","content":"Hi"}"#);
    let back: Message = serde_json::from_str(r#"{"role":"system","content":"S"}"#).unwrap();
    assert_eq!(back, Message::system("S"));
}
