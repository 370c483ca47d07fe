//! The chat use cases end to end with the real SmolLM2 test model: import, send, stream into the
//! store, edit as a branch, regenerate, cancel, reopen, search.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use hearth_assistant::{Assistant, AssistantConfig, ChatEvent, SendRequest, Settings};

fn smollm() -> PathBuf {
    let base = std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/hearth/test-models")
        });
    let p = base.join("smollm2-135m-instruct-q4_1.gguf");
    assert!(
        p.is_file(),
        "test model {} is missing: run scripts/fetch-test-models",
        p.display()
    );
    p
}

fn open(dir: &std::path::Path) -> Assistant {
    Assistant::open(AssistantConfig {
        data_dir: Some(dir.to_path_buf()),
        threads: Some(2),
    })
    .unwrap()
    .assistant
}

/// A sink that hands events to the test, and a receiver for them.
fn collector() -> (hearth_assistant::ChatSink, mpsc::Receiver<ChatEvent>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    (Box::new(move |e| drop(tx.lock().unwrap().send(e))), rx)
}

/// Reads events until Done or Failed; returns the streamed text and the last event.
fn finish(rx: &mpsc::Receiver<ChatEvent>) -> (String, ChatEvent) {
    let mut text = String::new();
    loop {
        let e = rx
            .recv_timeout(Duration::from_secs(300))
            .expect("the reply ends");
        match &e {
            ChatEvent::Delta { text: t, .. } => text.push_str(t),
            ChatEvent::Done { .. } | ChatEvent::Failed { .. } => return (text, e),
            ChatEvent::Started { .. } => {}
        }
    }
}

fn greedy(a: &Assistant, max_tokens: u32) {
    let mut s = a.settings().unwrap();
    s.sampling.temperature = 0.0;
    s.sampling.repeat_penalty = 1.0;
    s.sampling.max_tokens = max_tokens;
    a.update_settings(s).unwrap();
}

#[test]
fn chat_streams_into_the_store_branches_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let model = a.import_model(&smollm()).unwrap();
    assert!(model.is_default);
    assert_eq!(model.arch.as_deref(), Some("llama"));
    assert_eq!(
        a.import_model(&smollm()).unwrap().id,
        model.id,
        "importing twice keeps one record"
    );
    greedy(&a, 40);

    let c = a.create_conversation(None).unwrap();
    let (sink, rx) = collector();
    let job = a
        .send(
            SendRequest {
                conversation_id: c.id,
                text: "What is the capital of France?".into(),
                edit_of: None,
                system_prompt: None,
                sampling: None,
            },
            sink,
        )
        .unwrap();
    let (streamed, last) = finish(&rx);
    match last {
        ChatEvent::Done { status, stats, .. } => {
            assert_eq!(status, "done");
            assert!(stats.completion_tokens > 0 && stats.tokens_per_second > 0.0);
        }
        other => panic!("{other:?}"),
    }
    assert!(streamed.contains("Paris"), "{streamed}");
    let thread = a.thread(c.id).unwrap();
    assert_eq!(thread.len(), 2);
    assert_eq!(thread[1].id, job.assistant_message_id);
    assert_eq!(
        thread[1].content, streamed,
        "the store holds what was streamed"
    );
    assert_eq!(thread[1].status, "done");
    assert!(thread[1].ttft_ms.is_some());
    assert_eq!(
        a.conversations().unwrap()[0].title,
        "What is the capital of France?"
    );

    // Edit the question: a new branch beside the first.
    let (sink, rx) = collector();
    let edited = a
        .send(
            SendRequest {
                conversation_id: c.id,
                text: "What is the capital of Germany?".into(),
                edit_of: Some(job.user_message_id),
                system_prompt: None,
                sampling: None,
            },
            sink,
        )
        .unwrap();
    let (answer, _) = finish(&rx);
    assert!(answer.contains("Berlin"), "{answer}");
    let thread = a.thread(c.id).unwrap();
    assert_eq!(thread[0].id, edited.user_message_id);
    assert_eq!(
        thread[0].sibling_ids,
        vec![job.user_message_id, edited.user_message_id]
    );
    assert_eq!(thread[0].sibling_index, 1);
    a.select_branch(job.user_message_id).unwrap();
    assert!(a.thread(c.id).unwrap()[1].content.contains("Paris"));

    // Regenerate: a second answer to the same question.
    let (sink, rx) = collector();
    let again = a.regenerate(job.assistant_message_id, sink).unwrap();
    finish(&rx);
    let thread = a.thread(c.id).unwrap();
    assert_eq!(thread[1].id, again.assistant_message_id);
    assert_eq!(thread[1].sibling_ids.len(), 2);

    // Reopen: everything is still there, and search finds it.
    drop(a);
    let a = open(dir.path());
    assert_eq!(a.conversations().unwrap().len(), 1);
    assert!(a.thread(c.id).unwrap()[1].content.len() > 3);
    let hits = a.search("Paris").unwrap();
    assert!(hits.iter().any(|h| h.conversation_id == c.id), "{hits:?}");
    let h = &hits[0];
    let [s, e] = h.highlights[0];
    let utf16: Vec<u16> = h.snippet.encode_utf16().collect();
    assert_eq!(String::from_utf16(&utf16[s..e]).unwrap(), "Paris");
}

#[test]
fn stop_keeps_the_partial_answer_as_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    a.import_model(&smollm()).unwrap();
    let mut s = a.settings().unwrap();
    s.sampling.max_tokens = 2000;
    a.update_settings(s).unwrap();
    let c = a.create_conversation(Some("Story".into())).unwrap();
    let (sink, rx) = collector();
    let job = a
        .send(
            SendRequest {
                conversation_id: c.id,
                text: "Write a very long story about the sea.".into(),
                edit_of: None,
                system_prompt: None,
                sampling: None,
            },
            sink,
        )
        .unwrap();
    let mut got = String::new();
    while got.len() < 20 {
        if let ChatEvent::Delta { text, .. } = rx.recv_timeout(Duration::from_secs(300)).unwrap() {
            got.push_str(&text);
        }
    }
    a.cancel(job.job_id);
    let (rest, last) = finish(&rx);
    match last {
        ChatEvent::Done { status, .. } => assert_eq!(status, "cancelled"),
        other => panic!("{other:?}"),
    }
    let stored = &a.thread(c.id).unwrap()[1];
    assert_eq!(stored.status, "cancelled");
    assert_eq!(stored.content, format!("{got}{rest}"));
    assert!(stored.completion_tokens.unwrap() < 2000);

    // A reply stopped while it waits behind another one: stopped, not failed, and stored so.
    let send = |title: &str| {
        let c = a.create_conversation(Some(title.into())).unwrap();
        let (sink, rx) = collector();
        let job = a
            .send(
                SendRequest {
                    conversation_id: c.id,
                    text: "Write a very long story about the sea.".into(),
                    edit_of: None,
                    system_prompt: None,
                    sampling: None,
                },
                sink,
            )
            .unwrap();
        (c, job, rx)
    };
    let (_, running, running_rx) = send("Running");
    let (waiting, queued, queued_rx) = send("Waiting");
    a.cancel(queued.job_id);
    match finish(&queued_rx) {
        (text, ChatEvent::Done { status, .. }) => {
            assert_eq!(status, "cancelled");
            assert_eq!(text, "");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.thread(waiting.id).unwrap()[1].status, "cancelled");
    // The reply ahead of it goes on (it may have ended by now).
    a.cancel(running.job_id);
    match finish(&running_rx).1 {
        ChatEvent::Done { status, .. } => assert!(status == "done" || status == "cancelled"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_input_gets_codes_and_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let c = a.create_conversation(None).unwrap();
    let (sink, _rx) = collector();
    let e = a
        .send(
            SendRequest {
                conversation_id: c.id,
                text: "Hello".into(),
                edit_of: None,
                system_prompt: None,
                sampling: None,
            },
            sink,
        )
        .unwrap_err();
    assert_eq!(e.code, "models.none");
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "not a model").unwrap();
    assert_eq!(a.import_model(&text).unwrap_err().code, "engine.not_gguf");
    assert_eq!(
        a.import_model(&dir.path().join("missing.gguf"))
            .unwrap_err()
            .code,
        "models.not_found"
    );
    a.import_model(&smollm()).unwrap();
    let (sink, _rx) = collector();
    let e = a
        .send(
            SendRequest {
                conversation_id: c.id,
                text: "   ".into(),
                edit_of: None,
                system_prompt: None,
                sampling: None,
            },
            sink,
        )
        .unwrap_err();
    assert_eq!(e.code, "chat.empty");
    let mut s = a.settings().unwrap();
    s.theme = "purple".into();
    assert_eq!(a.update_settings(s).unwrap_err().code, "settings.invalid");
    let mut s = Settings::default();
    s.language = "zh-CN".into();
    s.sampling.temperature = 0.2;
    let saved = a.update_settings(s).unwrap();
    assert_eq!(saved.language, "zh-CN");
    assert_eq!(saved.sampling.temperature, 0.2);
    assert_eq!(saved.data_dir, dir.path().display().to_string());
}
