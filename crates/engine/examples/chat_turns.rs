//! Time to first token over the turns of one chat, with the prefix cache (each turn reads only
//! its new message) and, for the last turn, without it (the whole conversation read again).
//!
//! `cargo run --release -p hearth-engine --example chat_turns -- MODEL.gguf [THREADS] [TURNS] [REPLY_TOKENS] [CHATS]`
//!
//! Greedy replies of up to REPLY_TOKENS tokens (default 48), 20 turns by default; prints each
//! turn's prompt length and time to first token, then turn N ÷ turn 1. With CHATS above 1 the
//! whole chat runs that many times (the cache emptied in between; the replies are the same, so
//! so are the prompts) and the medians of turn 1 and turn N are compared too: one turn's time
//! varies from run to run on a busy or virtual machine.

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
        .ok_or("usage: chat_turns MODEL.gguf [THREADS] [TURNS] [REPLY_TOKENS] [CHATS]")?;
    let threads: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let turns: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let reply: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(48);
    let chats: usize = args
        .get(5)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1)
        .max(1);
    let mut m = LoadedModel::load(std::path::Path::new(path), threads)?;
    let params = GenerationParams {
        max_tokens: reply,
        sampling: SamplingParams::greedy(),
        prefix_cache: true,
        ..Default::default()
    };
    let never = AtomicBool::new(false);
    let (mut firsts, mut lasts) = (Vec::new(), Vec::new());
    let mut history = Vec::new();
    for chat in 1..=chats {
        if chat > 1 {
            m.reset_cache();
            println!("chat {chat}:");
        }
        history.clear();
        history.push(Message {
            role: Role::System,
            content: "You are a helpful assistant.".into(),
        });
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
                "turn {turn:>2}: prompt {:>5} tokens ({:>3} new), time to first token {:>7.1} ms (prompt read in {:.1})",
                s.prompt_token_ids.len(),
                s.prompt.prefill_tokens,
                s.ttft_ms,
                s.prefill_ms
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
        firsts.push(first);
        lasts.push(last);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (first, last) = (median(&mut firsts), median(&mut lasts));
    if chats > 1 {
        println!(
            "medians over {chats} chats: turn 1 {first:.1} ms, turn {turns} {last:.1} ms: {:.2}x",
            last / first
        );
    }
    // The last turn again with nothing cached: what reading the whole conversation costs.
    history.pop();
    m.reset_cache();
    let cold = m.generate(&Prompt::Chat(history), &params, &never, &mut |_| true)?;
    println!(
        "turn {turns} with the prefix cache: {:.2}x turn 1 (medians); read from scratch: {:.1} ms ({:.2}x turn 1)",
        last / first,
        cold.ttft_ms,
        cold.ttft_ms / first
    );
    Ok(())
}
