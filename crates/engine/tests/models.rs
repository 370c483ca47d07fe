//! The engine against real trained weights (see docs/testing.md): SmolLM2-135M-Instruct (llama),
//! Qwen2.5-Coder-0.5B-Instruct (qwen2) and Gemma 3 270M (gemma3), fetched by
//! scripts/fetch-test-models.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use hearth_engine::{
    Engine, EngineConfig, EngineError, EngineEvent, Event, GenerationParams, LoadedModel, Message,
    Priority, Prompt, Request, Role, SamplingParams, StopReason,
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

fn smollm() -> PathBuf {
    model("smollm2-135m-instruct-q4_1.gguf")
}
fn qwen() -> PathBuf {
    model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
}
fn gemma() -> PathBuf {
    model("gemma-3-270m-q4_k_m.gguf")
}

/// The system prompt the app sends by default.
fn system() -> Message {
    Message {
        role: Role::System,
        content: "You are a helpful assistant.".into(),
    }
}

fn user(s: &str) -> Message {
    Message {
        role: Role::User,
        content: s.into(),
    }
}
fn assistant(s: &str) -> Message {
    Message {
        role: Role::Assistant,
        content: s.into(),
    }
}

fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams {
        max_tokens,
        sampling: SamplingParams::greedy(),
        ..Default::default()
    }
}

fn run(
    m: &mut LoadedModel,
    prompt: Prompt,
    params: &GenerationParams,
) -> (hearth_engine::Stats, Vec<String>) {
    let mut pieces = Vec::new();
    let stats = m
        .generate(&prompt, params, &AtomicBool::new(false), &mut |ev| {
            if let Event::Text { text } = ev {
                pieces.push(text);
            }
            true
        })
        .unwrap();
    (stats, pieces)
}

#[test]
fn smollm2_knows_the_capital_of_france() {
    let mut m = LoadedModel::load(&smollm(), 2).unwrap();
    let info = m.info().clone();
    assert_eq!(info.arch, "llama");
    assert_eq!(info.quant, "Q4_1");
    assert_eq!(info.context_len, 8192);
    assert!(info.has_chat_template);
    let (stats, pieces) = run(
        &mut m,
        Prompt::Chat(vec![system(), user("What is the capital of France?")]),
        &greedy(40),
    );
    assert!(stats.text.contains("Paris"), "answer: {:?}", stats.text);
    assert_eq!(stats.stop, StopReason::EndOfTurn);
    assert_eq!(pieces.concat(), stats.text);
    assert!(stats.tokens.len() > 1 && stats.decode_tok_s > 0.0);
}

#[test]
fn prefix_cache_gives_identical_output_and_prefills_only_new_tokens() {
    let mut m = LoadedModel::load(&smollm(), 2).unwrap();
    let questions = [
        "What is the capital of France?",
        "And of Germany?",
        "Which of the two cities is larger?",
    ];
    let converse = |m: &mut LoadedModel, cache: bool| {
        let mut msgs = vec![Message {
            role: Role::System,
            content: "You are a concise assistant.".into(),
        }];
        let mut out = Vec::new();
        let mut infos = Vec::new();
        for q in questions {
            msgs.push(user(q));
            let params = GenerationParams {
                prefix_cache: cache,
                ..greedy(24)
            };
            let (stats, _) = run(m, Prompt::Chat(msgs.clone()), &params);
            msgs.push(assistant(&stats.text));
            out.push(stats.text.clone());
            infos.push(stats);
        }
        (out, infos)
    };
    let (plain, plain_stats) = converse(&mut m, false);
    m.reset_cache();
    let (cached, cached_stats) = converse(&mut m, true);
    assert_eq!(plain, cached, "greedy output must not depend on the cache");
    for s in &plain_stats {
        assert_eq!(s.prompt.reused_tokens, 0);
        assert_eq!(s.prompt.prefill_tokens, s.prompt.prompt_tokens);
    }
    // Turn 3 reuses everything up to (at least) the whole of turn 2's prompt...
    let t2 = &cached_stats[1];
    let t3 = &cached_stats[2];
    assert!(
        t3.prompt.reused_tokens >= t2.prompt.prompt_tokens,
        "{:?} vs {:?}",
        t3.prompt,
        t2.prompt
    );
    assert_eq!(
        t3.prompt.prefill_tokens,
        t3.prompt.prompt_tokens - t3.prompt.reused_tokens
    );
    // ...and prefills only turn 2's answer tail, the new question and the template's markers.
    let tok = m.tokenizer();
    let new_question = tok.token_count(questions[2]).unwrap();
    let answer2 = tok.token_count(&cached[1]).unwrap();
    assert!(
        t3.prompt.prefill_tokens <= new_question + answer2 + 16,
        "prefilled {} tokens for a {new_question}-token question",
        t3.prompt.prefill_tokens
    );
    assert!(t3.prompt.prefill_tokens < t3.prompt.prompt_tokens / 2);
}

#[test]
fn qwen_streams_chinese_without_broken_characters() {
    let mut m = LoadedModel::load(&qwen(), 2).unwrap();
    assert_eq!(m.info().arch, "qwen2");
    let (stats, pieces) = run(
        &mut m,
        Prompt::Chat(vec![user("请用中文简单介绍一下北京。")]),
        &greedy(48),
    );
    assert!(
        pieces.len() > 5,
        "expected a streamed answer, got {pieces:?}"
    );
    for p in &pieces {
        assert!(!p.contains('\u{FFFD}'), "broken character in piece {p:?}");
    }
    let text = pieces.concat();
    assert_eq!(text, stats.text);
    let cjk = text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count();
    assert!(cjk >= 10, "expected a Chinese answer, got {text:?}");
    assert!(text.contains("北京"), "{text}");
}

#[test]
fn gemma3_loads_and_completes_text() {
    let mut m = LoadedModel::load(&gemma(), 2).unwrap();
    let info = m.info().clone();
    assert_eq!(info.arch, "gemma3");
    assert!(!info.has_chat_template, "the base model ships no template");
    let (stats, _) = run(
        &mut m,
        Prompt::Raw("The Eiffel Tower is located in the city of".into()),
        &greedy(12),
    );
    assert!(
        stats.prompt_token_ids.first() == Some(&2),
        "Gemma needs its BOS: {:?}",
        stats.prompt_token_ids
    );
    assert!(
        stats.text.starts_with(" Paris"),
        "completion: {:?}",
        stats.text
    );
    // llama.cpp (llama-cpp-python 0.3.36), same file and prompt, greedy: " Paris, France. It is ..."
    assert_eq!(&stats.tokens[..6], &[9079, 236764, 7001, 236761, 1030, 563]);
}

/// What a decoded token reads of the cache: SmolLM2-135M keeps 3 key/value heads of 64 in each
/// of 30 layers (f16 keys and values: 23,040 bytes a position); Gemma 3 270M one head of 256 in
/// 18 layers, of which the 15 sliding-window layers see at most 512 positions.
#[test]
fn cache_bytes_a_token_reads_follow_the_layers_and_windows() {
    let m = LoadedModel::load(&smollm(), 1).unwrap();
    assert_eq!(m.cache_bytes_read(1), 30 * 3 * 64 * 2 * 2);
    assert_eq!(m.cache_bytes_read(2000), 2000 * 30 * 3 * 64 * 2 * 2);
    let g = LoadedModel::load(&gemma(), 1).unwrap();
    let row = 256 * 2 * 2;
    assert_eq!(g.cache_bytes_read(100), 100 * 18 * row);
    assert_eq!(g.cache_bytes_read(2000), (2000 * 3 + 512 * 15) * row);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let mut m = LoadedModel::load(&smollm(), 2).unwrap();
    let params = GenerationParams {
        max_tokens: 24,
        sampling: SamplingParams {
            temperature: 0.9,
            seed: Some(42),
            ..Default::default()
        },
        ..Default::default()
    };
    let p = Prompt::Chat(vec![user("Write a sentence about the sea.")]);
    let (a, _) = run(&mut m, p.clone(), &params);
    let (b, _) = run(&mut m, p.clone(), &params);
    assert_eq!(a.tokens, b.tokens);
    let other = GenerationParams {
        sampling: SamplingParams {
            seed: Some(43),
            ..params.sampling.clone()
        },
        ..params
    };
    let (c, _) = run(&mut m, p, &other);
    assert_ne!(
        a.tokens, c.tokens,
        "a different seed should give a different reply"
    );
}

#[test]
fn stop_strings_and_max_tokens_end_the_reply() {
    let mut m = LoadedModel::load(&smollm(), 2).unwrap();
    let p = Prompt::Chat(vec![system(), user("What is the capital of France?")]);
    let (full, _) = run(&mut m, p.clone(), &greedy(40));
    let word = "Paris";
    let at = full.text.find(word).expect("answer mentions Paris");
    let params = GenerationParams {
        stop: vec![word.into()],
        ..greedy(40)
    };
    let (stopped, _) = run(&mut m, p.clone(), &params);
    assert_eq!(stopped.stop, StopReason::StopString);
    assert_eq!(stopped.text, full.text[..at]);
    let (short, _) = run(&mut m, p, &greedy(3));
    assert_eq!(short.stop, StopReason::MaxTokens);
    assert_eq!(short.tokens.len(), 3);
}

#[test]
fn long_conversations_drop_oldest_turns_and_say_so() {
    let m = LoadedModel::load(&smollm(), 2).unwrap();
    let filler = "The quick brown fox jumps over the lazy dog. ".repeat(80);
    let mut msgs = vec![Message {
        role: Role::System,
        content: "Be brief.".into(),
    }];
    for i in 0..12 {
        msgs.push(user(&format!("Part {i}: {filler}")));
        msgs.push(assistant("Noted."));
    }
    msgs.push(user("Summarize."));
    let (ids, dropped) = m
        .tokenize_prompt(&Prompt::Chat(msgs.clone()), 4096)
        .unwrap();
    assert!(dropped > 0);
    assert!(ids.len() + 4096 <= m.context_len(), "{} tokens", ids.len());
    let text = m.tokenizer().decode(&ids, false).unwrap();
    assert!(text.contains("Be brief.") && text.contains("Summarize."));
    assert!(
        !text.contains("Part 0:"),
        "the oldest turn must be the one dropped"
    );

    let huge = user(&"word ".repeat(20_000));
    match m.tokenize_prompt(&Prompt::Chat(vec![huge]), 256) {
        Err(EngineError::ContextOverflow { needed, available }) => assert!(needed > available),
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
}

#[test]
fn engine_cancels_within_a_token_and_a_dropped_receiver_cancels() {
    let engine = Engine::start(EngineConfig {
        threads: 2,
        ..Default::default()
    })
    .unwrap();
    let long = |priority| Request {
        model: smollm(),
        prompt: Prompt::Chat(vec![user("Tell me a very long story about a dragon.")]),
        params: GenerationParams {
            ignore_eos: true,
            ..greedy(2000)
        },
        priority,
    };
    let h = engine.submit(long(Priority::Interactive)).unwrap();
    // Watch a few tokens arrive to learn how long one takes on this machine right now.
    let mut arrivals = Vec::new();
    while arrivals.len() < 6 {
        match h.recv().expect("events") {
            EngineEvent::Text(_) => arrivals.push(Instant::now()),
            EngineEvent::Failed(e) => panic!("{e}"),
            _ => {}
        }
    }
    let per_token = (arrivals[5] - arrivals[1]) / 4;
    let asked = Instant::now();
    h.cancel();
    let mut after_cancel = 0;
    let stats = loop {
        match h
            .recv_timeout(Duration::from_secs(60))
            .expect("the request ends soon after cancel")
        {
            EngineEvent::Text(_) => after_cancel += 1,
            EngineEvent::Done(s) => break s,
            EngineEvent::Failed(e) => panic!("{e}"),
            _ => {}
        }
    };
    let waited = asked.elapsed();
    assert_eq!(stats.stop, StopReason::Cancelled);
    // The flag is read before every model step: only the token in flight (and one already
    // queued in the channel) can still arrive.
    assert!(
        after_cancel <= 2,
        "{after_cancel} tokens arrived after cancel"
    );
    assert!(
        waited <= per_token * 10 + Duration::from_secs(2),
        "cancel took {waited:?}; a token takes {per_token:?}"
    );

    // Dropping the receiver cancels as well: the next request starts promptly.
    let h = engine.submit(long(Priority::Interactive)).unwrap();
    while !matches!(h.recv(), Some(EngineEvent::Text(_))) {}
    drop(h);
    let t = Instant::now();
    let quick = engine
        .submit(Request {
            model: smollm(),
            prompt: Prompt::Chat(vec![user("Say hi.")]),
            params: greedy(4),
            priority: Priority::Interactive,
        })
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(quick.tokens.len().min(4), quick.tokens.len());
    // Far less than the 2000 tokens the abandoned request asked for.
    assert!(
        t.elapsed() < per_token * 200,
        "waited {:?} behind an abandoned request",
        t.elapsed()
    );
}

#[test]
fn engine_serves_interactive_before_background_and_unloads_when_idle() {
    let engine = Engine::start(EngineConfig {
        threads: 2,
        idle_unload: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .unwrap();
    let req = |priority, max| Request {
        model: smollm(),
        prompt: Prompt::Chat(vec![user("Count from one to twenty.")]),
        params: GenerationParams {
            ignore_eos: true,
            ..greedy(max)
        },
        priority,
    };
    let first = engine.submit(req(Priority::Interactive, 30)).unwrap();
    // Wait until the first request runs, so the next two queue behind it.
    while !matches!(first.recv(), Some(EngineEvent::Started(_))) {}
    let background = engine.submit(req(Priority::Background, 4)).unwrap();
    let interactive = engine.submit(req(Priority::Interactive, 4)).unwrap();
    let started_at = |h: hearth_engine::RequestHandle| {
        std::thread::spawn(move || {
            let mut started = None;
            while let Some(ev) = h.recv() {
                match ev {
                    EngineEvent::Started(_) => started = Some(Instant::now()),
                    EngineEvent::Done(_) => break,
                    EngineEvent::Failed(e) => panic!("{e}"),
                    _ => {}
                }
            }
            started.expect("started")
        })
    };
    let b = started_at(background);
    let i = started_at(interactive);
    first.wait().unwrap();
    let (b, i) = (b.join().unwrap(), i.join().unwrap());
    assert!(
        i < b,
        "the interactive request should run before the background one"
    );
    assert!(engine.loaded().unwrap().is_some());
    std::thread::sleep(Duration::from_millis(900));
    assert!(
        engine.loaded().unwrap().is_none(),
        "an idle model is unloaded"
    );
}

#[test]
fn engine_reports_load_failures_on_the_request() {
    let engine = Engine::start(EngineConfig::default()).unwrap();
    let dir = tempdir();
    let bad = dir.path().join("not-a-model.gguf");
    std::fs::write(&bad, b"this is text, not a model").unwrap();
    let h = engine
        .submit(Request {
            model: bad,
            prompt: Prompt::Raw("hi".into()),
            params: greedy(4),
            priority: Priority::Interactive,
        })
        .unwrap();
    match h.wait() {
        Err(EngineError::NotGguf { .. }) => {}
        other => panic!("expected NotGguf, got {other:?}"),
    }
}

/// A fresh folder for one test's files, removed when it is dropped.
fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hearth-engine-test-")
        .tempdir()
        .unwrap()
}
