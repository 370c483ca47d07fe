//! Time to first token over the turns of one chat, with the prefix cache (each turn reads only
//! its new message) and, for the last turn, without it (the whole conversation read again).
//!
//! `cargo run --release -p hearth-engine --example chat_turns -- MODEL.gguf [THREADS] [TURNS] [REPLY_TOKENS]`
//!
//! Greedy replies of up to REPLY_TOKENS tokens (default 48), 20 turns by default; prints each
//! turn's prompt length and time to first token, then turn N ÷ turn 1.

use std::sync::atomic::AtomicBool;

use hearth_engine::{GenerationParams, LoadedModel, Message, Prompt, Role, SamplingParams};

const QUESTIONS: [&str; 10] = [
    "What is the capital of France?",
    "Name three rivers that flow through Europe.",
    "How do bees make honey?",
    "Give me a short tip for writing clear emails.",
    "Why is the sky blue?",
    "What is a good way to learn a new language?",
    "Explain what a prime number is.",
    "Suggest a name for a small bakery.",
    "What should I pack for a weekend hike?",
    "How does a bicycle stay upright?",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: chat_turns MODEL.gguf [THREADS] [TURNS] [REPLY_TOKENS]")?;
    let threads: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let turns: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let reply: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(48);
    let mut m = LoadedModel::load(std::path::Path::new(path), threads)?;
    let params = GenerationParams {
        max_tokens: reply,
        sampling: SamplingParams::greedy(),
        prefix_cache: true,
        ..Default::default()
    };
    let mut history = vec![Message {
        role: Role::System,
        content: "You are a helpful assistant.".into(),
    }];
    let never = AtomicBool::new(false);
    let mut first = 0.0;
    let mut last = 0.0;
    for turn in 1..=turns {
        history.push(Message {
            role: Role::User,
            content: QUESTIONS[(turn - 1) % QUESTIONS.len()].into(),
        });
        let s = m.generate(&Prompt::Chat(history.clone()), &params, &never, &mut |_| {
            true
        })?;
        println!(
            "turn {turn:>2}: prompt {:>5} tokens, time to first token {:>7.1} ms",
            s.prompt_token_ids.len(),
            s.ttft_ms
        );
        if turn == 1 {
            first = s.ttft_ms;
        }
        last = s.ttft_ms;
        history.push(Message {
            role: Role::Assistant,
            content: s.text.clone(),
        });
    }
    // The last turn again with nothing cached: what reading the whole conversation costs.
    history.pop();
    m.reset_cache();
    let cold = m.generate(&Prompt::Chat(history), &params, &never, &mut |_| true)?;
    println!(
        "turn {turns} with the prefix cache: {:.2}x turn 1; read from scratch: {:.1} ms ({:.2}x turn 1)",
        last / first,
        cold.ttft_ms,
        cold.ttft_ms / first
    );
    Ok(())
}
