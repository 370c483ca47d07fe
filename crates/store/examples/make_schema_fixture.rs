//! Writes `tests/fixtures/schema-v<N>.sqlite3`: a database at the current schema version N,
//! filled through the public API with a little of everything.
//!
//! Run it once each time a migration is added, and commit the file (see
//! `tests/fixtures/README.md`):
//!
//! ```text
//! cargo run -p hearth-store --example make_schema_fixture
//! ```
//!
//! It refuses to overwrite an existing fixture: a fixture must keep the shape that the code of
//! its version produced, so the migration test (`tests/store.rs`,
//! `migrates_every_schema_fixture_to_the_latest`) opens real old databases.

use std::path::PathBuf;

use hearth_store::{
    GenerationStats, InstalledModel, JobKind, NewChunk, NewDocument, NewGlossaryEntry, NewMessage,
    NewSummary, NewSummaryPart, NewTranslation, Outcome, Sampling, SettingValue, Store,
    LATEST_SCHEMA_VERSION,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("schema-v{LATEST_SCHEMA_VERSION}.sqlite3"));
    if path.exists() {
        return Err(format!("{} exists; fixtures are never regenerated", path.display()).into());
    }
    let tmp = tempfile::tempdir()?;
    let work = tmp.path().join("fixture.sqlite3");
    {
        let opened = Store::open(&work)?;
        let store = opened.store;
        fill(&store)?;
    }
    // Copy into a single compact file (no -wal companion).
    {
        let conn = rusqlite::Connection::open(&work)?;
        conn.execute_batch("PRAGMA journal_mode = DELETE; VACUUM;")?;
    }
    std::fs::copy(&work, &path)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn fill(store: &Store) -> hearth_store::Result<()> {
    let conv = store.create_conversation("Fixture conversation")?;
    let system = store.add_message(&NewMessage::system(conv.id, "You are a helpful assistant."))?;
    let question = store.add_message(&NewMessage::user(
        conv.id,
        Some(system.id),
        "Can a small model run on a laptop? 小模型也能在笔记本电脑上运行吗？",
    ))?;
    let sampling = Sampling {
        temperature: Some(0.7),
        top_p: Some(0.9),
        top_k: Some(40),
        seed: Some(u64::MAX - 1),
        max_tokens: Some(256),
        ..Sampling::default()
    };
    for (i, answer) in [
        "Yes, quantized models run well on a CPU.",
        "是的，量化模型可以在 CPU 上运行。",
    ]
    .iter()
    .enumerate()
    {
        let m = store.add_message(&NewMessage::assistant_streaming(
            conv.id,
            Some(question.id),
            "smollm2-135m-instruct-q4_1",
            sampling.clone(),
        ))?;
        let half: String = answer.chars().take(answer.chars().count() / 2).collect();
        store.append_streaming(m.id, &half, 3)?;
        store.finish_message(
            m.id,
            answer,
            if i == 0 {
                Outcome::Done
            } else {
                Outcome::Cancelled
            },
            &GenerationStats {
                prompt_tokens: Some(42),
                completion_tokens: Some(9),
                ttft_ms: Some(120),
                tokens_per_second: Some(31.5),
            },
        )?;
    }

    store.upsert_model(&InstalledModel {
        id: "smollm2-135m-instruct-q4_1".into(),
        path: "/models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        source_repo: Some("HuggingFaceTB/SmolLM2-135M-Instruct".into()),
        source_revision: Some("main".into()),
        source_file: None,
        quant: Some("Q4_1".into()),
        size_bytes: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
        added_at: 1_700_000_000_000,
        last_used_at: None,
    })?;

    let doc = store
        .add_document(&NewDocument {
            sha256: "00".repeat(32),
            original_path: "/docs/report.md".into(),
            name: "report.md".into(),
            media_type: "markdown".into(),
            pages: Some(2),
            extracted_text: "Quarterly report. 季度报告：销售额增长。".into(),
        })?
        .document;
    let chunks = store.add_chunks(
        doc.id,
        &[
            NewChunk {
                ordinal: 0,
                page_start: Some(1),
                page_end: Some(1),
                section: Some("Intro".into()),
                text_start: Some(0),
                text_end: Some(18),
                text: "Quarterly report.".into(),
                token_count: 4,
            },
            NewChunk {
                ordinal: 1,
                page_start: Some(2),
                page_end: Some(2),
                section: None,
                text_start: Some(18),
                text_end: None,
                text: "季度报告：销售额增长。".into(),
                token_count: 9,
            },
        ],
    )?;
    // Since schema 2: sentence embeddings of chunks.
    store.put_chunk_embeddings(
        chunks[0],
        "all-minilm-l6-v2",
        &[vec![0.6, 0.8], vec![1.0, 0.0]],
    )?;
    let summary = store.create_summary(&NewSummary {
        document_id: doc.id,
        model_id: "smollm2-135m-instruct-q4_1".into(),
        instructions: Some("one sentence".into()),
        sampling: Sampling::default(),
    })?;
    store.add_summary_part(
        summary.id,
        &NewSummaryPart {
            level: 0,
            ordinal: 0,
            text: "Sales grew.".into(),
            chunk_ids: chunks.clone(),
        },
    )?;
    store.finish_summary(summary.id, "Sales grew this quarter.", Outcome::Done)?;

    let t = store.create_translation(&NewTranslation {
        source_text: "Sales grew.".into(),
        document_id: Some(doc.id),
        source_lang: "en".into(),
        target_lang: "zh-Hans".into(),
        model_id: Some("qwen2.5-0.5b".into()),
        sampling: Sampling::default(),
    })?;
    store.finish_translation(t.id, "销售额增长了。", Outcome::Done)?;
    store.set_glossary_entry(&NewGlossaryEntry {
        source_lang: "en".into(),
        target_lang: "zh-Hans".into(),
        source_term: "sales".into(),
        target_term: "销售额".into(),
        note: None,
    })?;

    store.set_setting("ui.theme", &SettingValue::Text("dark".into()))?;
    store.set_setting("chat.temperature", &SettingValue::Float(0.7))?;
    store.set_setting("chat.context", &SettingValue::Int(4096))?;
    store.set_setting("telemetry", &SettingValue::Bool(false))?;

    let job = store.create_job(
        &JobKind::Summary,
        &serde_json::json!({"summaryId": summary.id}),
    )?;
    store.set_job_progress(job.id, Some("map"), 1, Some(2))?;
    Ok(())
}
