//! Speculative decoding against the real SmolLM2 and Qwen2.5 test models (fetched by
//! scripts/fetch-test-models): guessed tokens copied from the prompt are checked in one model
//! step, and greedy output is token for token what decoding one token at a time gives.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use hearth_engine::{
    GenerationParams, LoadedModel, Message, Prompt, Role, SamplingParams, Stats, StopReason,
};

fn model(name: &str) -> PathBuf {
    let dir = std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/hearth/test-models")
        });
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "test model {} is missing: run scripts/fetch-test-models",
        p.display()
    );
    p
}

fn user(s: &str) -> Message {
    Message {
        role: Role::User,
        content: s.into(),
    }
}

const PASSAGE: &str = "The river runs past the old mill, under the stone bridge and along the \
market square, where the bakers open their shops before dawn and the smell of fresh bread \
fills the narrow streets. In spring the water rises and the miller closes the sluice gates.";

fn run(m: &mut LoadedModel, prompt: &Prompt, max_tokens: usize, speculative: bool) -> Stats {
    let params = GenerationParams {
        max_tokens,
        sampling: SamplingParams::greedy(),
        speculative,
        // Each run starts from an empty cache, so both modes do the same prefill.
        prefix_cache: false,
        ..Default::default()
    };
    m.generate(prompt, &params, &AtomicBool::new(false), &mut |_| true)
        .unwrap()
}

/// A prompt whose answer copies the passage (the case speculation is for), and one whose answer
/// does not: identical tokens, text and stop reason either way, on two architectures.
#[test]
fn greedy_output_is_the_same_with_and_without_guesses() {
    for name in [
        "smollm2-135m-instruct-q4_1.gguf",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ] {
        let mut m = LoadedModel::load(&model(name), 2).unwrap();
        let copy = Prompt::Chat(vec![user(&format!(
            "Repeat this text exactly, word for word:\n\n{PASSAGE}"
        ))]);
        let story = Prompt::Chat(vec![user("Write a short poem about the sea.")]);
        for (prompt, what) in [(&copy, "copy"), (&story, "poem")] {
            let plain = run(&mut m, prompt, 48, false);
            let fast = run(&mut m, prompt, 48, true);
            assert_eq!(fast.tokens, plain.tokens, "{name} {what}");
            assert_eq!(fast.text, plain.text, "{name} {what}");
            assert_eq!(fast.stop, plain.stop, "{name} {what}");
            assert_eq!((plain.drafted_tokens, plain.accepted_tokens), (0, 0));
            assert!(fast.accepted_tokens <= fast.drafted_tokens);
            if what == "copy" {
                assert!(
                    fast.accepted_tokens >= 10,
                    "{name}: copying the passage should confirm many guesses ({} of {})",
                    fast.accepted_tokens,
                    fast.drafted_tokens
                );
            }
        }
    }
}

/// Guesses never carry the output past its limit, and a raw prompt that repeats itself (guesses
/// from the prompt at once) stops where decoding token by token stops.
#[test]
fn limits_hold_with_guesses() {
    let mut m = LoadedModel::load(&model("smollm2-135m-instruct-q4_1.gguf"), 2).unwrap();
    let prompt = Prompt::Raw(format!("{PASSAGE}\n\n{PASSAGE}\n\n{PASSAGE}\n\n"));
    for max in [1, 5, 13] {
        let plain = run(&mut m, &prompt, max, false);
        let fast = run(&mut m, &prompt, max, true);
        assert_eq!(fast.tokens, plain.tokens, "max {max}");
        assert!(fast.tokens.len() <= max);
        if plain.stop == StopReason::MaxTokens {
            assert_eq!(fast.stop, StopReason::MaxTokens);
        }
    }
}

/// Deep in a long prompt (over 512 positions, where a check of a few guessed tokens has its
/// attention split by keys and columns instead of tiled): still token for token what decoding
/// one token at a time gives, on both architectures, with guesses confirmed.
#[test]
fn guesses_checked_deep_in_a_long_prompt_match_plain_decoding() {
    let document: String = (1..=16)
        .map(|i| format!("Paragraph {i}. {PASSAGE}\n\n"))
        .collect();
    for name in [
        "smollm2-135m-instruct-q4_1.gguf",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ] {
        let mut m = LoadedModel::load(&model(name), 2).unwrap();
        let prompt = Prompt::Chat(vec![user(&format!(
            "{document}Repeat paragraph 16 exactly, word for word."
        ))]);
        let plain = run(&mut m, &prompt, 40, false);
        let fast = run(&mut m, &prompt, 40, true);
        assert!(
            plain.prompt_token_ids.len() > 600,
            "{name}: a prompt of {} tokens",
            plain.prompt_token_ids.len()
        );
        assert_eq!(fast.tokens, plain.tokens, "{name}");
        assert!(
            fast.accepted_tokens >= 10,
            "{name}: copying the paragraph should confirm many guesses ({} of {})",
            fast.accepted_tokens,
            fast.drafted_tokens
        );
    }
}
