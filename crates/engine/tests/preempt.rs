//! Pre-emption of background requests, against the real SmolLM2 test model (fetched by
//! scripts/fetch-test-models): a background request gives way to an interactive one, carries on
//! with exactly the tokens it would have produced uninterrupted, and can be cancelled while it
//! waits.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hearth_engine::{
    Engine, EngineConfig, EngineEvent, Event, GenerationParams, LoadedModel, Message, Outcome,
    Priority, Prompt, Request, RequestHandle, Role, SamplingParams, Stats, StopReason,
};

fn smollm() -> PathBuf {
    let dir = std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/hearth/test-models")
        });
    let p = dir.join("smollm2-135m-instruct-q4_1.gguf");
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

fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams {
        max_tokens,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    }
}

fn request(text: &str, params: GenerationParams, priority: Priority) -> Request {
    Request {
        model: smollm(),
        prompt: Prompt::Chat(vec![user(text)]),
        params,
        priority,
    }
}

/// What a reader saw: every event in order, with when it arrived.
struct Seen {
    started: usize,
    texts: Vec<(Instant, String)>,
    done: Option<(Instant, Stats)>,
}

fn read_all(h: RequestHandle) -> JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut seen = Seen {
            started: 0,
            texts: Vec::new(),
            done: None,
        };
        while let Some(ev) = h.recv() {
            match ev {
                EngineEvent::Started(_) => seen.started += 1,
                EngineEvent::Text(t) => seen.texts.push((Instant::now(), t)),
                EngineEvent::Done(s) => {
                    assert!(seen.done.is_none(), "Done arrived twice");
                    seen.done = Some((Instant::now(), s));
                }
                EngineEvent::Failed(e) => panic!("{e}"),
                EngineEvent::Loading { .. } | EngineEvent::Loaded(_) => {}
            }
        }
        seen
    })
}

const STORY: &str = "Write a long story about a dragon who learns to bake bread.";

#[test]
fn interrupted_background_request_gives_the_same_tokens_and_chat_goes_first() {
    let engine = Engine::start(EngineConfig {
        threads: 2,
        ..Default::default()
    })
    .unwrap();
    let alone = engine
        .submit(request(STORY, greedy(40), Priority::Background))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(alone.tokens.len(), 40);

    let bg = engine
        .submit(request(STORY, greedy(40), Priority::Background))
        .unwrap();
    // Let it decode a few tokens, then send a chat message.
    let mut early = Vec::new();
    while early.len() < 4 {
        match bg.recv().expect("events") {
            EngineEvent::Text(t) => early.push(t),
            EngineEvent::Failed(e) => panic!("{e}"),
            _ => {}
        }
    }
    let chat = engine
        .submit(request(
            "What is the capital of France?",
            greedy(8),
            Priority::Interactive,
        ))
        .unwrap();
    let bg = read_all(bg);
    let chat = read_all(chat).join().unwrap();
    let bg = bg.join().unwrap();

    let (bg_done_at, bg_stats) = bg.done.expect("the background request ends with Done");
    assert_eq!(bg_stats.stop, StopReason::MaxTokens);
    assert_eq!(
        bg_stats.tokens, alone.tokens,
        "resuming must continue exactly where the request stopped"
    );
    assert_eq!(bg_stats.text, alone.text);
    // Its events kept flowing on its own channel, in order, with nothing repeated.
    let streamed: String = early
        .into_iter()
        .chain(bg.texts.into_iter().map(|(_, t)| t))
        .collect();
    assert_eq!(streamed, bg_stats.text);
    assert_eq!(bg.started, 0, "Started came before the chat message, once");

    let (_, chat_stats) = chat.done.expect("the chat request ends with Done");
    assert_eq!(chat.started, 1);
    assert_eq!(chat_stats.tokens.len(), 8);
    let chat_first = chat.texts.first().expect("chat text").0;
    assert!(
        chat_first < bg_done_at,
        "the chat message's first token should come before the background request ends"
    );
}

#[test]
fn a_suspended_request_can_be_cancelled() {
    let engine = Engine::start(EngineConfig {
        threads: 2,
        ..Default::default()
    })
    .unwrap();
    let bg = engine
        .submit(request(STORY, greedy(2000), Priority::Background))
        .unwrap();
    while !matches!(bg.recv(), Some(EngineEvent::Text(_))) {}
    let chat = engine
        .submit(request("Say hello.", greedy(12), Priority::Interactive))
        .unwrap();
    // Once the chat request has started, the background one is suspended.
    while !matches!(chat.recv(), Some(EngineEvent::Started(_))) {}
    bg.cancel();
    let chat = read_all(chat);
    let stats = loop {
        match bg
            .recv_timeout(Duration::from_secs(60))
            .expect("the cancelled request ends")
        {
            EngineEvent::Done(s) => break s,
            EngineEvent::Failed(e) => panic!("{e}"),
            _ => {}
        }
    };
    assert_eq!(stats.stop, StopReason::Cancelled);
    assert!(
        !stats.tokens.is_empty() && stats.tokens.len() < 100,
        "{} tokens: the request should end where it was suspended",
        stats.tokens.len()
    );
    assert!(bg.recv().is_none(), "nothing after Done");
    let chat = chat.join().unwrap();
    assert_eq!(chat.done.expect("chat ends").1.tokens.len(), 12);
}

/// Suspends a request at chosen steps (mid-prefill and between tokens), runs another prompt in
/// between to overwrite the key/value cache, and resumes: the output is the uninterrupted one,
/// for greedy and for seeded sampling.
#[test]
fn suspend_and_resume_on_the_model_reproduce_the_uninterrupted_output() {
    let mut m = LoadedModel::load(&smollm(), 2).unwrap();
    // Long enough to take several prefill chunks.
    let long_text = "The river runs past the old mill and the bakery. ".repeat(28);
    let prompt = Prompt::Chat(vec![user(&format!("Summarize: {long_text}"))]);
    let other = Prompt::Chat(vec![user("Name three colours.")]);
    let seeded = GenerationParams {
        sampling: SamplingParams {
            temperature: 0.8,
            top_k: 40,
            seed: Some(7),
            ..SamplingParams::default()
        },
        ..greedy(16)
    };
    let cancel = AtomicBool::new(false);
    for params in [greedy(16), seeded] {
        let mut text = String::new();
        let alone = m
            .generate(&prompt, &params, &cancel, &mut |_| true)
            .unwrap();
        m.reset_cache();

        let mut step = 0;
        let mut yield_now = || {
            step += 1;
            // Every third step: mid-prefill and between tokens (with or without guesses).
            step % 3 == 2
        };
        let mut collect = |ev: Event| {
            if let Event::Text { text: t } = ev {
                text.push_str(&t);
            }
            true
        };
        let mut outcome = m
            .generate_preemptible(&prompt, &params, &cancel, &mut yield_now, &mut collect)
            .unwrap();
        let mut suspensions = 0;
        let stats = loop {
            match outcome {
                Outcome::Finished(s) => break s,
                Outcome::Suspended(s) => {
                    suspensions += 1;
                    m.generate(&other, &greedy(3), &cancel, &mut |_| true)
                        .unwrap();
                    outcome = m.resume(s, &cancel, &mut yield_now, &mut collect).unwrap();
                }
            }
        };
        assert!(suspensions >= 3, "only {suspensions} suspensions");
        assert_eq!(stats.tokens, alone.tokens);
        assert_eq!(stats.text, alone.text);
        assert_eq!(text, alone.text, "each piece of text is emitted once");
    }
}

/// Chat and background work keep separate key/value caches: a chat follow-up sent after a
/// background request still reuses everything its conversation had cached.
#[test]
fn the_chat_prefix_survives_background_work() {
    let mut m = LoadedModel::load(&smollm(), 2).unwrap();
    let cancel = AtomicBool::new(false);
    let question = user("Name three colours.");
    let first = m
        .generate(
            &Prompt::Chat(vec![question.clone()]),
            &greedy(6),
            &cancel,
            &mut |_| true,
        )
        .unwrap();
    let mut yield_never = || false;
    let bg = m
        .generate_preemptible(
            &Prompt::Chat(vec![user(
                "Summarize: the river runs past the old mill and the bakery.",
            )]),
            &greedy(6),
            &cancel,
            &mut yield_never,
            &mut |_| true,
        )
        .unwrap();
    assert!(matches!(bg, Outcome::Finished(_)));
    let mut started = None;
    let follow_up = Prompt::Chat(vec![
        question,
        Message {
            role: Role::Assistant,
            content: first.text.clone(),
        },
        user("And three more."),
    ]);
    m.generate(&follow_up, &greedy(4), &cancel, &mut |ev| {
        if let Event::Started(p) = ev {
            started = Some(p);
        }
        true
    })
    .unwrap();
    let p = started.expect("Started");
    assert!(
        p.reused_tokens >= first.prompt.prompt_tokens,
        "the follow-up reused {} tokens; its conversation's first prompt alone had {}",
        p.reused_tokens,
        first.prompt.prompt_tokens
    );
}

/// When the give-way flag is up, a preemptible step is abandoned before its first layer and the
/// scheduler is asked at once; when it says nothing is waiting, the flag is cleared and the step
/// runs, and the output is the uninterrupted one.
#[test]
fn a_flagged_step_is_abandoned_and_the_scheduler_asked_again() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    let mut m = LoadedModel::load(&smollm(), 2).unwrap();
    let cancel = AtomicBool::new(false);
    let prompt = Prompt::Chat(vec![user(STORY)]);
    let alone = m
        .generate(&prompt, &greedy(8), &cancel, &mut |_| true)
        .unwrap();

    let flag = Arc::new(AtomicBool::new(false));
    m.set_give_way_flag(Some(flag.clone()));
    flag.store(true, Ordering::SeqCst);
    let mut asked = 0;
    let mut yield_now = || {
        asked += 1;
        // 1: before the first step (the flag is up, but only a step checks it);
        // 2: right after that step was abandoned: give way.
        asked == 2
    };
    let outcome = m
        .generate_preemptible(&prompt, &greedy(8), &cancel, &mut yield_now, &mut |_| true)
        .unwrap();
    let Outcome::Suspended(s) = outcome else {
        panic!("the flagged step should have given way");
    };
    assert!(s.generated().is_empty());
    assert_eq!(asked, 2);

    // A stale flag: the step is abandoned once, the scheduler says no, the flag is cleared and
    // the request runs to the end with the uninterrupted output.
    flag.store(true, Ordering::SeqCst);
    let mut asked_again = 0;
    let mut yield_no = || {
        asked_again += 1;
        false
    };
    let Outcome::Finished(stats) = m.resume(s, &cancel, &mut yield_no, &mut |_| true).unwrap()
    else {
        panic!("nothing outranks it now");
    };
    assert!(!flag.load(Ordering::SeqCst), "the stale flag was cleared");
    assert_eq!(stats.tokens, alone.tokens);
    // One ask per step plus one after the abandoned step.
    assert!(asked_again >= 2);
}
