//! Benchmark: how long a short chat message waits for its first token while nothing else runs,
//! and while a document summary runs (its map requests are background work that gives way to
//! chat). Prints each sample, the medians and their ratio.
//!
//! `cargo run --release -p hearth-assistant --example ttft_during_summary [SAMPLES]`
//! Uses SmolLM2 and bash.pdf from the test models folder (HEARTH_TEST_MODELS, default
//! ~/.cache/hearth/test-models; fetched by scripts/fetch-test-models), 2 compute threads.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hearth_assistant::{
    Assistant, AssistantConfig, ChatEvent, DocumentOptions, SendRequest, SummarizeEvent,
    SummarizeRequest, SummaryLength,
};

fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/hearth/test-models")
        });
    let p = dir.join(name);
    if !p.is_file() {
        eprintln!("{} is missing: run scripts/fetch-test-models", p.display());
        std::process::exit(2);
    }
    p
}

/// Sends one short message in a new conversation; returns the wall time to its first text.
fn chat_ttft(a: &Assistant, n: usize) -> Duration {
    let conv = a.create_conversation(None).expect("conversation");
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let sent = Instant::now();
    a.send(
        SendRequest {
            conversation_id: conv.id,
            text: format!("Give me one tip for writing shell scripts (question {n})."),
            edit_of: None,
            system_prompt: None,
            sampling: None,
        },
        Box::new(move |e| drop(tx.lock().expect("sink").send((Instant::now(), e)))),
    )
    .expect("send");
    let mut first = None;
    loop {
        let (at, e) = rx
            .recv_timeout(Duration::from_secs(600))
            .expect("chat events");
        match e {
            ChatEvent::Delta { .. } if first.is_none() => first = Some(at - sent),
            ChatEvent::Done { .. } => break,
            ChatEvent::Failed { error, .. } => panic!("chat failed: {error:?}"),
            _ => {}
        }
    }
    first.expect("the reply had text")
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let samples: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let model = fixture("smollm2-135m-instruct-q4_1.gguf");
    let pdf = fixture("documents/bash.pdf");
    let dir = std::env::temp_dir().join(format!("hearth-ttft-bench-{}", std::process::id()));
    let a = Assistant::open(AssistantConfig {
        data_dir: Some(dir.clone()),
        threads: Some(2),
    })
    .expect("open")
    .assistant;
    a.import_model(&model).expect("import model");
    let mut s = a.settings().expect("settings");
    s.sampling.max_tokens = 12;
    s.sampling.temperature = 0.0;
    a.update_settings(s).expect("settings");
    let doc = a
        .add_document(
            &pdf,
            &DocumentOptions {
                model: Some(model.display().to_string()),
                ..Default::default()
            },
        )
        .expect("add bash.pdf")
        .document
        .id;

    // Warm up (model load), then idle samples.
    chat_ttft(&a, 0);
    let mut idle: Vec<Duration> = (1..=samples).map(|n| chat_ttft(&a, n)).collect();

    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let started = a
        .summarize(
            SummarizeRequest {
                document_id: doc,
                length: SummaryLength::Short,
                language: Some("en".into()),
                model: Some(model.display().to_string()),
                restart: true,
                ..Default::default()
            },
            Box::new(move |e| drop(tx.lock().expect("sink").send(e))),
        )
        .expect("summarize");
    // Wait until the map stage is under way.
    loop {
        match rx
            .recv_timeout(Duration::from_secs(600))
            .expect("summary events")
        {
            SummarizeEvent::Progress { done, .. } if done >= 1 => break,
            SummarizeEvent::Failed { error, .. } => panic!("summary failed: {error:?}"),
            SummarizeEvent::Done { .. } => panic!("the summary ended before the samples"),
            _ => {}
        }
    }
    let mut busy = Vec::new();
    for n in 1..=samples {
        // Land at different points of a map request (prefill or decode).
        std::thread::sleep(Duration::from_millis(150 + 270 * n as u64 % 900));
        busy.push(chat_ttft(&a, 100 + n));
    }
    let mut still_running = true;
    while let Ok(e) = rx.try_recv() {
        if matches!(
            e,
            SummarizeEvent::Done { .. } | SummarizeEvent::Failed { .. }
        ) {
            still_running = false;
        }
    }
    a.cancel(started.job_id);

    let ms = |d: &Duration| format!("{:.0}", d.as_secs_f64() * 1e3);
    println!(
        "idle TTFT ms:           {}",
        idle.iter().map(ms).collect::<Vec<_>>().join(" ")
    );
    println!(
        "during summary TTFT ms: {}",
        busy.iter().map(ms).collect::<Vec<_>>().join(" ")
    );
    let (mi, mb) = (median(&mut idle), median(&mut busy));
    println!(
        "median idle {} ms, during summary {} ms, ratio {:.2} (summary still running at the end: {still_running})",
        ms(&mi),
        ms(&mb),
        mb.as_secs_f64() / mi.as_secs_f64()
    );
    drop(a);
    let _ = std::fs::remove_dir_all(dir);
}
