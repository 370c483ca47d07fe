//! Integration tests of hearth-store through its public API. Raw SQL appears only to look at
//! the file from outside (integrity checks, table dumps) or to damage it on purpose.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hearth_store::*;
use rusqlite::Connection;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let opened = Store::open(dir.path().join("hearth.sqlite3")).unwrap();
    assert!(opened.recovery.is_none());
    (dir, opened.store)
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn integrity(path: &Path) -> String {
    raw(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Every table's rows, as text, sorted: two databases with equal dumps hold the same data.
fn dump(path: &Path) -> Vec<(String, Vec<String>)> {
    let conn = raw(path);
    let mut names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    names.retain(|n| !n.ends_with("_fts")); // virtual tables; their shadow tables are dumped
    names
        .into_iter()
        .map(|name| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
            let cols = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    let values: Vec<rusqlite::types::Value> =
                        (0..cols).map(|i| r.get(i).unwrap()).collect();
                    Ok(format!("{values:?}"))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            rows.sort();
            (name, rows)
        })
        .collect()
}

fn schema_sql(path: &Path) -> Vec<String> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT type || ' ' || name || ': ' || ifnull(sql, '') FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    rows
}

/// A conversation with two branches: q1 -> (a1, a2), a2 -> q2 -> a3 (streaming finished).
fn sample_conversation(store: &Store) -> (Conversation, Vec<Message>) {
    let conv = store.create_conversation("Sample 样本").unwrap();
    let sys = store
        .add_message(&NewMessage::system(conv.id, "Be brief."))
        .unwrap();
    let q1 = store
        .add_message(&NewMessage::user(
            conv.id,
            Some(sys.id),
            "What is a GGUF file?",
        ))
        .unwrap();
    let sampling = Sampling {
        temperature: Some(0.8),
        top_p: Some(0.95),
        top_k: Some(50),
        min_p: Some(0.05),
        repeat_penalty: Some(1.1),
        repeat_last_n: Some(64),
        seed: Some(u64::MAX),
        max_tokens: Some(512),
    };
    let a1 = store
        .add_message(&NewMessage::assistant_streaming(
            conv.id,
            Some(q1.id),
            "smollm2",
            sampling.clone(),
        ))
        .unwrap();
    let a1 = store
        .finish_message(
            a1.id,
            "A model file format.",
            Outcome::Done,
            &GenerationStats {
                prompt_tokens: Some(17),
                completion_tokens: Some(6),
                ttft_ms: Some(u64::from(u32::MAX) + 5),
                tokens_per_second: Some(0.1 + 0.2),
            },
        )
        .unwrap();
    let a2 = store
        .add_message(&NewMessage::assistant_streaming(
            conv.id,
            Some(q1.id),
            "qwen2.5",
            Sampling::default(),
        ))
        .unwrap();
    let a2 = store
        .finish_message(
            a2.id,
            "GGUF 是一种模型文件格式。",
            Outcome::Failed("out of memory".into()),
            &GenerationStats::default(),
        )
        .unwrap();
    let q2 = store
        .add_message(&NewMessage::user(conv.id, Some(a2.id), "更多细节？"))
        .unwrap();
    let a3 = store
        .add_message(&NewMessage::assistant_streaming(
            conv.id,
            Some(q2.id),
            "qwen2.5",
            Sampling {
                seed: Some(7),
                ..Sampling::default()
            },
        ))
        .unwrap();
    let a3 = store
        .finish_message(
            a3.id,
            "It stores tensors and metadata.",
            Outcome::Cancelled,
            &GenerationStats::default(),
        )
        .unwrap();
    (
        store.conversation(conv.id).unwrap(),
        vec![sys, q1, a1, a2, q2, a3],
    )
}

#[test]
fn store_is_send_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    let (_dir, store) = temp_store();
    let store = Arc::new(store);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let conv = store.create_conversation(&format!("thread {t}")).unwrap();
                let mut parent = None;
                for i in 0..40 {
                    let m = store
                        .add_message(&NewMessage::user(
                            conv.id,
                            parent,
                            format!("thread {t} message {i}"),
                        ))
                        .unwrap();
                    parent = Some(m.id);
                    store
                        .search_messages("message", None, &SearchOptions::default())
                        .unwrap();
                }
                conv.id
            })
        })
        .collect();
    for h in handles {
        let conv = h.join().unwrap();
        assert_eq!(store.messages(conv).unwrap().len(), 40);
        assert_eq!(store.thread(conv).unwrap().len(), 40);
    }
}

#[test]
fn new_database_uses_wal_foreign_keys_and_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/folder/hearth.sqlite3");
    let opened = Store::open(&path).unwrap();
    assert_eq!(opened.previous_version, 0);
    assert!(opened.recovery.is_none());
    let store = opened.store;
    assert_eq!(store.schema_version().unwrap(), LATEST_SCHEMA_VERSION);
    assert!(store.verify().unwrap().is_empty());
    let mode: String = raw(&path)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Foreign keys are enforced: a message in a missing conversation is refused.
    let err = store
        .add_message(&NewMessage::user(ConversationId(999), None, "x"))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    drop(store);
    // Reopening does nothing more.
    let again = Store::open(&path).unwrap();
    assert_eq!(again.previous_version, LATEST_SCHEMA_VERSION);
}

#[test]
fn every_migration_applies_from_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.sqlite3");
    std::fs::write(&path, b"").unwrap();
    let opened = Store::open(&path).unwrap();
    assert!(
        opened.recovery.is_none(),
        "an empty file is an empty database, not damage"
    );
    assert_eq!(opened.previous_version, 0);
    assert!(opened.store.verify().unwrap().is_empty());
}

fn fixture_path(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/schema-v{version}.sqlite3"))
}

/// Each schema version has a fixture made by the code of that version
/// (examples/make_schema_fixture.rs). Opening a copy migrates it to the latest schema, the
/// result has exactly the schema of a new database, and the old data is all there.
#[test]
fn migrates_every_schema_fixture_to_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.sqlite3");
    drop(Store::open(&fresh).unwrap().store);
    let fresh_schema = schema_sql(&fresh);

    for version in 1..=LATEST_SCHEMA_VERSION {
        let fixture = fixture_path(version);
        assert!(
            fixture.exists(),
            "missing {}: run `cargo run -p hearth-store --example make_schema_fixture` with the \
             code of schema version {version} and commit the file",
            fixture.display()
        );
        let path = dir.path().join(format!("v{version}.sqlite3"));
        std::fs::copy(&fixture, &path).unwrap();
        let before: u32 = raw(&path)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            before,
            version,
            "fixture {} has the wrong version",
            fixture.display()
        );

        let opened = Store::open(&path).unwrap();
        assert!(opened.recovery.is_none());
        assert_eq!(opened.previous_version, version);
        let store = opened.store;
        assert_eq!(store.schema_version().unwrap(), LATEST_SCHEMA_VERSION);
        assert!(store.verify().unwrap().is_empty());

        // The data written by that version is readable.
        let convs = store.list_conversations().unwrap();
        let conv = convs
            .iter()
            .find(|c| c.title == "Fixture conversation")
            .unwrap();
        let thread = store.thread(conv.id).unwrap();
        assert_eq!(thread.len(), 3);
        assert_eq!(thread[2].sibling_ids.len(), 2);
        assert_eq!(
            thread[2].message.content,
            "是的，量化模型可以在 CPU 上运行。"
        );
        assert_eq!(thread[2].message.status, MessageStatus::Cancelled);
        assert_eq!(thread[2].message.sampling.seed, Some(u64::MAX - 1));
        assert_eq!(thread[2].message.stats.tokens_per_second, Some(31.5));
        let hits = store
            .search_messages("笔记本电脑", None, &SearchOptions::default())
            .unwrap();
        assert_eq!(hits.len(), 1);
        let hits = store
            .search_chunks("销售额", None, &SearchOptions::default())
            .unwrap();
        assert_eq!(hits.len(), 1);
        let doc = store.list_documents().unwrap().remove(0);
        let summary = store.summaries(doc.id).unwrap().remove(0);
        assert_eq!(summary.text.as_deref(), Some("Sales grew this quarter."));
        assert_eq!(
            store.summary_parts(summary.id).unwrap()[0].chunk_ids.len(),
            2
        );
        assert_eq!(
            store.glossary("en", "zh-Hans").unwrap()[0].target_term,
            "销售额"
        );
        assert_eq!(store.setting_int("chat.context").unwrap(), Some(4096));
        assert_eq!(store.unfinished_jobs().unwrap().len(), 1);
        assert_eq!(store.list_models().unwrap().len(), 1);
        drop(store);
        assert_eq!(
            schema_sql(&path),
            fresh_schema,
            "migrated schema differs from a new one"
        );
    }
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.sqlite3");
    {
        let store = Store::open(&path).unwrap().store;
        store.create_conversation("from the future").unwrap();
    }
    raw(&path)
        .pragma_update(None, "user_version", LATEST_SCHEMA_VERSION + 1)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    match &err {
        StoreError::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!(*found, LATEST_SCHEMA_VERSION + 1);
            assert_eq!(*supported, LATEST_SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_eq!(err.code(), "store.newer_schema");
    assert!(err.to_string().contains("newer version of Hearth"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file was modified"
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("corrupt"))
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
}

fn assert_recovered(dir: &Path, path: &Path, original: &[u8], opened: Opened) {
    let notice = opened.recovery.expect("a recovery notice");
    assert_eq!(notice.path, path);
    assert!(notice.moved_to.starts_with(dir));
    let name = notice.moved_to.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("hearth.sqlite3.corrupt-"), "{name}");
    assert_eq!(
        std::fs::read(&notice.moved_to).unwrap(),
        original,
        "damaged file not kept as is"
    );
    assert!(notice.message().contains(name));
    // The fresh database works.
    let store = opened.store;
    assert_eq!(opened.previous_version, 0);
    assert!(store.list_conversations().unwrap().is_empty());
    store.create_conversation("after recovery").unwrap();
    assert!(store.verify().unwrap().is_empty());
}

#[test]
fn file_that_is_not_a_database_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.sqlite3");
    let garbage = b"this is a text file, not a database\n".repeat(300);
    std::fs::write(&path, &garbage).unwrap();
    let opened = Store::open(&path).unwrap();
    assert_recovered(dir.path(), &path, &garbage, opened);
    // A second damaged file the same second gets its own name.
    drop(std::fs::remove_file(&path));
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::write(&path, &garbage).unwrap();
    // Even the cheapest check recognizes a file that is not a database.
    let cheapest = OpenOptions {
        check: OpenCheck::Schema,
        ..OpenOptions::default()
    };
    let opened = Store::open_with(&path, &cheapest).unwrap();
    let moved = opened.recovery.unwrap().moved_to;
    assert_eq!(std::fs::read(moved).unwrap(), garbage);
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name().into_string().unwrap();
            name.contains(".corrupt-") && !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .count();
    assert_eq!(kept, 2);
}

#[test]
fn damaged_database_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.sqlite3");
    {
        let store = Store::open(&path).unwrap().store;
        let conv = store.create_conversation("to be damaged").unwrap();
        for i in 0..200 {
            store
                .add_message(&NewMessage::user(
                    conv.id,
                    None,
                    format!("message number {i} ").repeat(20),
                ))
                .unwrap();
        }
    }
    assert!(!Path::new(&format!("{}-wal", path.display())).exists());
    // Keep the header page, scribble over the next pages.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4096 * 8);
    for b in &mut bytes[4096..4096 * 8] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    // The full check finds it too.
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("hearth.sqlite3");
    std::fs::copy(&path, &copy).unwrap();
    let full = OpenOptions {
        check: OpenCheck::Full,
        ..OpenOptions::default()
    };
    assert!(Store::open_with(&copy, &full).unwrap().recovery.is_some());
    // The default (a quick check for a database of this size).
    let opened = Store::open(&path).unwrap();
    assert!(!opened.recovery.as_ref().unwrap().reason.is_empty());
    assert_recovered(dir.path(), &path, &bytes, opened);
}

#[test]
fn full_disk_is_a_typed_error_and_leaves_no_partial_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.sqlite3");
    let conv_id;
    let doc_id;
    {
        let store = Store::open(&path).unwrap().store;
        conv_id = store.create_conversation("small disk").unwrap().id;
        doc_id = store
            .add_document(&NewDocument {
                sha256: "ab".repeat(32),
                original_path: "/a.txt".into(),
                name: "a.txt".into(),
                media_type: "text".into(),
                pages: None,
                extracted_text: "short".into(),
            })
            .unwrap()
            .document
            .id;
    }
    let pages: u64 = raw(&path)
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let options = OpenOptions {
        max_database_bytes: Some((pages + 4) * 4096),
        ..OpenOptions::default()
    };
    let store = Store::open_with(&path, &options).unwrap().store;
    let before = dump(&path);

    // One big message: too large for the room left.
    let big = "全文检索 needs room. ".repeat(4000);
    let err = store
        .add_message(&NewMessage::user(conv_id, None, big.clone()))
        .unwrap_err();
    assert!(matches!(err, StoreError::DiskFull), "{err:?}");
    assert_eq!(err.code(), "store.disk_full");

    // Many chunks in one call: all or none.
    let chunks: Vec<NewChunk> = (0..200)
        .map(|i| NewChunk {
            ordinal: i,
            page_start: None,
            page_end: None,
            section: None,
            text_start: None,
            text_end: None,
            text: format!("chunk {i} ").repeat(60),
            token_count: 120,
        })
        .collect();
    let err = store.add_chunks(doc_id, &chunks).unwrap_err();
    assert!(matches!(err, StoreError::DiskFull), "{err:?}");

    assert!(store.messages(conv_id).unwrap().is_empty());
    assert!(store.chunks(doc_id).unwrap().is_empty());
    assert!(store.verify().unwrap().is_empty());
    // Small writes still fit, and the store keeps working.
    store
        .add_message(&NewMessage::user(conv_id, None, "small"))
        .unwrap();
    drop(store);
    assert_eq!(integrity(&path), "ok");
    let after = dump(&path);
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| b.0.as_str())
        .collect();
    // Only the one small message (and its index entries) was added.
    assert!(
        changed
            .iter()
            .all(|t| t.starts_with("messages") || *t == "conversations"),
        "{changed:?}"
    );
}

#[test]
fn messages_form_a_tree_with_branches() {
    let (_dir, store) = temp_store();
    let (conv, m) = sample_conversation(&store);
    let [sys, q1, a1, a2, q2, a3] = [&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]];
    assert_eq!(conv.current_leaf, Some(a3.id));

    // Siblings in creation order; children of the root level.
    let sibs: Vec<MessageId> = store
        .siblings(a1.id)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(sibs, vec![a1.id, a2.id]);
    assert_eq!(store.children(conv.id, None).unwrap()[0].id, sys.id);
    assert_eq!(store.children(conv.id, Some(q1.id)).unwrap().len(), 2);

    // Path from the root to a leaf.
    let path: Vec<MessageId> = store.path_to(a3.id).unwrap().iter().map(|m| m.id).collect();
    assert_eq!(path, vec![sys.id, q1.id, a2.id, q2.id, a3.id]);

    // The thread shows the current branch with sibling switches.
    let thread = store.thread(conv.id).unwrap();
    assert_eq!(thread.len(), 5);
    assert_eq!(thread[2].sibling_ids, vec![a1.id, a2.id]);
    assert_eq!(thread[2].sibling_index(), 1);

    // Switch to the other answer: the branch ends there.
    let thread = store.select_branch(a1.id).unwrap();
    let ids: Vec<MessageId> = thread.iter().map(|e| e.message.id).collect();
    assert_eq!(ids, vec![sys.id, q1.id, a1.id]);
    assert_eq!(
        store.conversation(conv.id).unwrap().current_leaf,
        Some(a1.id)
    );
    // Switching back to a2 follows its newest descendants down to a3.
    let thread = store.select_branch(a2.id).unwrap();
    assert_eq!(thread.last().unwrap().message.id, a3.id);

    // Typed fields come back exactly.
    let a1 = store.message(a1.id).unwrap();
    assert_eq!(a1.sampling.seed, Some(u64::MAX));
    assert_eq!(a1.sampling.min_p, Some(0.05));
    assert_eq!(a1.stats.ttft_ms, Some(u64::from(u32::MAX) + 5));
    assert_eq!(a1.stats.tokens_per_second, Some(0.1 + 0.2));
    assert_eq!(a1.status, MessageStatus::Done);
    let a2 = store.message(a2.id).unwrap();
    assert_eq!(a2.status, MessageStatus::Failed);
    assert_eq!(a2.error.as_deref(), Some("out of memory"));

    // A parent from another conversation is refused.
    let other = store.create_conversation("other").unwrap();
    let err = store
        .add_message(&NewMessage::user(other.id, Some(q1.id), "x"))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ParentInOtherConversation { .. }),
        "{err:?}"
    );
}

#[test]
fn deleting_messages_and_conversations() {
    let (_dir, store) = temp_store();
    let (conv, m) = sample_conversation(&store);
    // Deleting a2 removes its subtree (q2, a3); the branch shown falls back to a1.
    store.delete_message(m[3].id).unwrap();
    let ids: Vec<MessageId> = store
        .messages(conv.id)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![m[0].id, m[1].id, m[2].id]);
    assert_eq!(
        store.conversation(conv.id).unwrap().current_leaf,
        Some(m[2].id)
    );
    assert!(store
        .search_messages("更多细节", None, &SearchOptions::default())
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.message(m[5].id),
        Err(StoreError::NotFound { .. })
    ));
    store.delete_conversation(conv.id).unwrap();
    assert!(store.list_conversations().unwrap().is_empty());
    assert!(store
        .search_messages("GGUF", None, &SearchOptions::default())
        .unwrap()
        .is_empty());
    assert!(store.verify().unwrap().is_empty());
}

#[test]
fn streaming_writes_at_most_once_per_interval_and_finish_forces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.sqlite3");
    let options = OpenOptions {
        streaming_flush_interval: Duration::from_millis(800),
        ..OpenOptions::default()
    };
    let store = Store::open_with(&path, &options).unwrap().store;
    let conv = store.create_conversation("stream").unwrap();
    let q = store
        .add_message(&NewMessage::user(conv.id, None, "count"))
        .unwrap();
    let a = store
        .add_message(&NewMessage::assistant_streaming(
            conv.id,
            Some(q.id),
            "m",
            Sampling::default(),
        ))
        .unwrap();
    let on_disk = |id: MessageId| -> (String, Option<u32>) {
        raw(&path)
            .query_row(
                "SELECT content, completion_tokens FROM messages WHERE id = ?1",
                [id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };

    // The first update is written at once.
    assert_eq!(
        store.append_streaming(a.id, "one", 1).unwrap(),
        StreamWrite::Written
    );
    assert_eq!(on_disk(a.id), ("one".into(), Some(1)));
    // Updates within the interval stay in memory, but reads through the store see them.
    let mut text = String::from("one");
    for i in 2..50 {
        text.push_str(&format!(" {i}"));
        assert_eq!(
            store.append_streaming(a.id, &text, i).unwrap(),
            StreamWrite::Buffered
        );
    }
    assert_eq!(on_disk(a.id).0, "one");
    assert_eq!(store.message(a.id).unwrap().content, text);
    assert_eq!(
        store.thread(conv.id).unwrap()[1]
            .message
            .stats
            .completion_tokens,
        Some(49)
    );
    // After the interval the next update is written.
    std::thread::sleep(Duration::from_millis(820));
    text.push_str(" 50");
    assert_eq!(
        store.append_streaming(a.id, &text, 50).unwrap(),
        StreamWrite::Written
    );
    assert_eq!(on_disk(a.id), (text.clone(), Some(50)));
    // An explicit flush writes what is waiting.
    text.push_str(" 51");
    assert_eq!(
        store.append_streaming(a.id, &text, 51).unwrap(),
        StreamWrite::Buffered
    );
    assert_eq!(store.flush_streaming().unwrap(), 1);
    assert_eq!(on_disk(a.id).0, text);
    // Finish writes the final state at once.
    let done = store
        .finish_message(
            a.id,
            "final",
            Outcome::Done,
            &GenerationStats {
                prompt_tokens: Some(3),
                completion_tokens: Some(52),
                ttft_ms: Some(80),
                tokens_per_second: Some(20.0),
            },
        )
        .unwrap();
    assert_eq!(done.status, MessageStatus::Done);
    assert_eq!(on_disk(a.id), ("final".into(), Some(52)));
    // A finished message takes no more updates.
    let err = store.append_streaming(a.id, "more", 53).unwrap_err();
    assert!(matches!(err, StoreError::NotStreaming { .. }), "{err:?}");
    let err = store
        .finish_message(a.id, "x", Outcome::Done, &GenerationStats::default())
        .unwrap_err();
    assert!(matches!(err, StoreError::NotStreaming { .. }), "{err:?}");
    let err = store
        .append_streaming(MessageId(12345), "x", 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    // Dropping the store writes what is still in memory.
    let b = store
        .add_message(&NewMessage::assistant_streaming(
            conv.id,
            Some(q.id),
            "m",
            Sampling::default(),
        ))
        .unwrap();
    store.append_streaming(b.id, "first", 1).unwrap();
    store.append_streaming(b.id, "first second", 2).unwrap();
    drop(store);
    assert_eq!(on_disk(b.id), ("first second".into(), Some(2)));

    // After a restart, leftovers of an interrupted generation can be marked failed.
    let store = Store::open(&path).unwrap().store;
    assert_eq!(store.fail_interrupted_messages().unwrap(), vec![b.id]);
    let b = store.message(b.id).unwrap();
    assert_eq!(b.status, MessageStatus::Failed);
    assert_eq!(b.content, "first second");
}

#[test]
fn json_export_import_round_trip_is_lossless() {
    let (_dir, store) = temp_store();
    let (conv, _) = sample_conversation(&store);
    // Leave the current branch on the older answer, to check it survives too.
    let first_answer = store.messages(conv.id).unwrap()[2].id;
    store.select_branch(first_answer).unwrap();
    let json = store.export_conversation_json(conv.id).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["format"], "hearth.conversation");
    assert_eq!(value["version"], 1);
    assert_eq!(value["messages"].as_array().unwrap().len(), 6);

    let imported = store.import_conversation_json(&json).unwrap();
    assert_ne!(imported.id, conv.id);
    assert_eq!(store.export_conversation_json(imported.id).unwrap(), json);

    // Field by field, only the ids differ.
    let original = store.messages(conv.id).unwrap();
    let copy = store.messages(imported.id).unwrap();
    assert_eq!(original.len(), copy.len());
    let index = |list: &[Message], id: Option<MessageId>| {
        id.map(|id| list.iter().position(|m| m.id == id).unwrap())
    };
    for (o, c) in original.iter().zip(&copy) {
        assert_eq!(index(&original, o.parent_id), index(&copy, c.parent_id));
        assert_eq!(
            (o.role, &o.content, o.status, &o.error),
            (c.role, &c.content, c.status, &c.error)
        );
        assert_eq!(
            (&o.model_id, &o.sampling, &o.stats),
            (&c.model_id, &c.sampling, &c.stats)
        );
        assert_eq!((o.created_at, o.updated_at), (c.created_at, c.updated_at));
    }
    let c = store.conversation(imported.id).unwrap();
    assert_eq!(
        (c.title.as_str(), c.created_at, c.updated_at),
        (conv.title.as_str(), conv.created_at, conv.updated_at)
    );
    assert_eq!(index(&copy, c.current_leaf), Some(2));
    // Imported messages are searchable.
    assert_eq!(
        store
            .search_messages("模型文件格式", None, &SearchOptions::default())
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn import_refuses_bad_files_and_writes_nothing() {
    let (_dir, store) = temp_store();
    let (conv, _) = sample_conversation(&store);
    let json = store.export_conversation_json(conv.id).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();

    let mut newer = value.clone();
    newer["version"] = 2.into();
    newer["somethingNew"] = true.into();
    let err = store
        .import_conversation_json(&newer.to_string())
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnsupportedExportVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err:?}"
    );

    let mut other = value.clone();
    other["format"] = "something.else".into();
    assert!(matches!(
        store.import_conversation_json(&other.to_string()),
        Err(StoreError::InvalidImport(_))
    ));
    assert!(matches!(
        store.import_conversation_json("{not json"),
        Err(StoreError::InvalidImport(_))
    ));

    // A parent that comes after its child: refused, and the conversation row rolled back.
    value["messages"][1]["parent"] = 6.into();
    let err = store
        .import_conversation_json(&value.to_string())
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidImport(_)), "{err:?}");
    assert_eq!(store.list_conversations().unwrap().len(), 1);
}

#[test]
fn markdown_export_shows_one_branch() {
    let (_dir, store) = temp_store();
    let (conv, m) = sample_conversation(&store);
    let md = store.export_markdown(conv.id, None).unwrap();
    assert!(md.starts_with("# Sample 样本\n"), "{md}");
    assert!(md.contains("## User\n\nWhat is a GGUF file?\n"), "{md}");
    assert!(md.contains("GGUF 是一种模型文件格式。"));
    assert!(md.contains("*(failed: out of memory)*"));
    assert!(md.contains("*(stopped)*"));
    assert!(
        !md.contains("A model file format."),
        "other branch leaked: {md}"
    );
    let md = store.export_markdown(conv.id, Some(m[2].id)).unwrap();
    assert!(
        md.contains("## Assistant · smollm2 · 6 tokens · 0.3 tok/s\n\nA model file format.\n"),
        "{md}"
    );
    assert!(!md.contains("更多细节"));
}

fn fill_everything(store: &Store) {
    sample_conversation(store);
    let doc = store
        .add_document(&NewDocument {
            sha256: "cd".repeat(32),
            original_path: "/tmp/paper.pdf".into(),
            name: "paper.pdf".into(),
            media_type: "pdf".into(),
            pages: Some(12),
            extracted_text: "Attention is all you need. 注意力机制。".into(),
        })
        .unwrap()
        .document;
    let chunks = store
        .add_chunks(
            doc.id,
            &[NewChunk {
                ordinal: 0,
                page_start: Some(1),
                page_end: Some(3),
                section: Some("Abstract".into()),
                text_start: Some(0),
                text_end: Some(27),
                text: "Attention is all you need.".into(),
                token_count: 7,
            }],
        )
        .unwrap();
    let s = store
        .create_summary(&NewSummary {
            document_id: doc.id,
            model_id: "m".into(),
            instructions: None,
            sampling: Sampling::default(),
        })
        .unwrap();
    store
        .add_summary_part(
            s.id,
            &NewSummaryPart {
                level: 0,
                ordinal: 0,
                text: "Attention.".into(),
                chunk_ids: chunks,
            },
        )
        .unwrap();
    store
        .set_setting("ui.zoom", &SettingValue::Float(1.25))
        .unwrap();
    store
        .create_job(&JobKind::Download, &serde_json::json!({"offset": 1024}))
        .unwrap();
}

#[test]
fn backup_and_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.sqlite3");
    let store = Store::open(&path).unwrap().store;
    fill_everything(&store);
    // A message still streaming: its text in memory goes into the backup.
    let conv = store
        .create_conversation("streaming during backup")
        .unwrap();
    let a = store
        .add_message(&NewMessage::assistant_streaming(
            conv.id,
            None,
            "m",
            Sampling::default(),
        ))
        .unwrap();
    store.append_streaming(a.id, "partial", 1).unwrap();
    store.append_streaming(a.id, "partial answer", 2).unwrap();

    let backup = dir.path().join("backup.sqlite3");
    let size = store.backup_to(&backup).unwrap();
    assert_eq!(size, std::fs::metadata(&backup).unwrap().len());
    assert_eq!(integrity(&backup), "ok");
    assert!(!Path::new(&format!("{}-wal", backup.display())).exists());
    store.flush_streaming().unwrap();
    let snapshot = dump(&path);
    assert_eq!(dump(&backup), snapshot);
    assert_eq!(store.message(a.id).unwrap().content, "partial answer");

    // Change everything, then restore.
    store
        .finish_message(
            a.id,
            "finished later",
            Outcome::Done,
            &GenerationStats::default(),
        )
        .unwrap();
    for c in store.list_conversations().unwrap() {
        store.delete_conversation(c.id).unwrap();
    }
    store.create_conversation("made after the backup").unwrap();
    store
        .set_setting("ui.zoom", &SettingValue::Bool(true))
        .unwrap();
    assert_ne!(dump(&path), snapshot);

    store.restore_from(&backup).unwrap();
    assert_eq!(dump(&path), snapshot);
    assert!(store.verify().unwrap().is_empty());
    // The open store reads the restored data and keeps working.
    assert_eq!(store.setting_float("ui.zoom").unwrap(), Some(1.25));
    assert_eq!(store.message(a.id).unwrap().content, "partial answer");
    assert_eq!(
        store
            .search_messages("GGUF", None, &SearchOptions::default())
            .unwrap()
            .len(),
        2
    );
    store.create_conversation("after restore").unwrap();
    let mode: String = raw(&path)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn restore_refuses_files_that_are_not_usable_backups() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, store) = temp_store();
    store.create_conversation("keep me").unwrap();
    let garbage = dir.path().join("garbage.sqlite3");
    std::fs::write(&garbage, b"not a database at all".repeat(100)).unwrap();
    assert!(matches!(
        store.restore_from(&garbage),
        Err(StoreError::InvalidBackup { .. })
    ));
    let missing = dir.path().join("missing.sqlite3");
    assert!(matches!(
        store.restore_from(&missing),
        Err(StoreError::InvalidBackup { .. })
    ));
    let empty_db = dir.path().join("empty.sqlite3");
    raw(&empty_db).execute_batch("CREATE TABLE t(x)").unwrap();
    assert!(matches!(
        store.restore_from(&empty_db),
        Err(StoreError::InvalidBackup { .. })
    ));
    let newer = dir.path().join("newer.sqlite3");
    store.backup_to(&newer).unwrap();
    raw(&newer)
        .pragma_update(None, "user_version", LATEST_SCHEMA_VERSION + 1)
        .unwrap();
    assert!(matches!(
        store.restore_from(&newer),
        Err(StoreError::NewerSchema { .. })
    ));
    assert_eq!(store.list_conversations().unwrap()[0].title, "keep me");
}

fn highlighted(s: &Snippet) -> Vec<&str> {
    s.highlights
        .iter()
        .map(|h| &s.text[h.byte_start..h.byte_end])
        .collect()
}

#[test]
fn search_finds_english_and_chinese_in_messages_and_chunks() {
    let (_dir, store) = temp_store();
    let conv = store.create_conversation("Search").unwrap();
    let texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Quantized models run on a laptop CPU without a GPU.",
        "我们在笔记本电脑上运行量化的小模型，速度很快。",
        "机器学习模型需要大量的训练数据。",
        "Mixed text: 模型 runs locally, no cloud.",
    ];
    let mut ids = Vec::new();
    for t in texts {
        ids.push(
            store
                .add_message(&NewMessage::user(conv.id, None, t))
                .unwrap()
                .id,
        );
    }
    let opts = SearchOptions::default();
    let find = |q: &str| -> Vec<MessageId> {
        store
            .search_messages(q, None, &opts)
            .unwrap()
            .iter()
            .map(|h| h.message_id)
            .collect()
    };
    // English, case-insensitive, substring.
    assert_eq!(find("QUANTIZED"), vec![ids[1]]);
    assert_eq!(find("laptop gpu"), vec![ids[1]]);
    assert_eq!(find("\"lazy dog\""), vec![ids[0]]);
    assert!(find("\"dog lazy\"").is_empty());
    // Chinese: three characters or more through the trigram index...
    assert_eq!(find("笔记本电脑"), vec![ids[2]]);
    assert_eq!(find("训练数据"), vec![ids[3]]);
    // ...and two-character words (most Chinese words) too, newest first.
    assert_eq!(find("模型"), vec![ids[4], ids[3], ids[2]]);
    assert_eq!(find("模型 runs"), vec![ids[4]]);
    assert_eq!(find("速度 量化"), vec![ids[2]]);
    assert!(find("汽车").is_empty());
    // Snippets and highlights.
    let hit = &store.search_messages("量化 小模型", None, &opts).unwrap()[0];
    assert_eq!(hit.snippet.text, texts[2]);
    assert_eq!(highlighted(&hit.snippet), vec!["量化", "小模型"]);
    assert_eq!(hit.conversation_title, "Search");
    assert_eq!(hit.role, Role::User);
    assert!(hit.score.is_some());
    let hit = &store.search_messages("cpu", None, &opts).unwrap()[0];
    assert_eq!(highlighted(&hit.snippet), vec!["CPU"]);
    let h = hit.snippet.highlights[0];
    assert_eq!(
        &texts[1].chars().collect::<Vec<_>>()[h.char_start..h.char_end]
            .iter()
            .collect::<String>(),
        "CPU"
    );
    // Scoped to one conversation.
    let other = store.create_conversation("Other").unwrap();
    store
        .add_message(&NewMessage::user(other.id, None, "another fox"))
        .unwrap();
    assert_eq!(
        store
            .search_messages("fox", Some(conv.id), &opts)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.search_messages("fox", None, &opts).unwrap().len(), 2);

    // Chunks.
    let doc = store
        .add_document(&NewDocument {
            sha256: "ef".repeat(32),
            original_path: "/d/manual.pdf".into(),
            name: "manual.pdf".into(),
            media_type: "pdf".into(),
            pages: Some(30),
            extracted_text: String::new(),
        })
        .unwrap()
        .document;
    let chunk_texts = [
        "Chapter one explains installation on Linux and Windows.",
        "第二章介绍如何在本地翻译文档，不需要网络连接。",
        "Appendix: keyboard shortcuts for the translation view.",
    ];
    let chunks: Vec<NewChunk> = chunk_texts
        .iter()
        .enumerate()
        .map(|(i, t)| NewChunk {
            ordinal: i as u32,
            page_start: Some(i as u32 * 10 + 1),
            page_end: Some(i as u32 * 10 + 9),
            section: None,
            text_start: None,
            text_end: None,
            text: t.to_string(),
            token_count: 12,
        })
        .collect();
    let chunk_ids = store.add_chunks(doc.id, &chunks).unwrap();
    let hits = store.search_chunks("翻译文档", None, &opts).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk_id, chunk_ids[1]);
    assert_eq!((hits[0].page_start, hits[0].page_end), (Some(11), Some(19)));
    assert_eq!(hits[0].document_name, "manual.pdf");
    assert_eq!(highlighted(&hits[0].snippet), vec!["翻译文档"]);
    let hits = store.search_chunks("网络", Some(doc.id), &opts).unwrap();
    assert_eq!(hits.len(), 1);
    let hits = store.search_chunks("TRANSLATION", None, &opts).unwrap();
    assert_eq!(hits[0].chunk_id, chunk_ids[2]);
    let hits = store.search_chunks("linux windows", None, &opts).unwrap();
    assert_eq!(hits[0].chunk_id, chunk_ids[0]);
    assert_eq!(highlighted(&hits[0].snippet), vec!["Linux", "Windows"]);
}

#[test]
fn search_orders_by_time_or_relevance_and_pages() {
    let (_dir, store) = temp_store();
    let conv = store.create_conversation("Order").unwrap();
    let weak = store
        .add_message(&NewMessage::user(
            conv.id,
            None,
            format!("rust appears once among {}", "filler words ".repeat(40)),
        ))
        .unwrap();
    let strong = store
        .add_message(&NewMessage::user(
            conv.id,
            None,
            "rust rust rust: rust everywhere",
        ))
        .unwrap();
    let newest = store
        .add_message(&NewMessage::user(
            conv.id,
            None,
            format!("and a late mention of rust {}", "padding text ".repeat(40)),
        ))
        .unwrap();
    let ids = |order: SearchOrder, offset: u32, limit: u32| -> Vec<MessageId> {
        store
            .search_messages(
                "rust",
                None,
                &SearchOptions {
                    order,
                    offset,
                    limit,
                    ..SearchOptions::default()
                },
            )
            .unwrap()
            .iter()
            .map(|h| h.message_id)
            .collect()
    };
    assert_eq!(
        ids(SearchOrder::Newest, 0, 20),
        vec![newest.id, strong.id, weak.id]
    );
    assert_eq!(ids(SearchOrder::Relevance, 0, 20)[0], strong.id);
    assert_eq!(ids(SearchOrder::Newest, 1, 1), vec![strong.id]);
    let hits = store
        .search_messages(
            "rust",
            None,
            &SearchOptions {
                order: SearchOrder::Relevance,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert!(hits[0].score.unwrap() >= hits[1].score.unwrap());
    // Long text: the snippet is cut around the match.
    let long = store
        .add_message(&NewMessage::user(
            conv.id,
            None,
            format!("{} needle {}", "hay ".repeat(200), "hay ".repeat(200)),
        ))
        .unwrap();
    let hit = &store
        .search_messages("needle", None, &SearchOptions::default())
        .unwrap()[0];
    assert_eq!(hit.message_id, long.id);
    assert!(hit.snippet.text.starts_with('…') && hit.snippet.text.ends_with('…'));
    assert_eq!(highlighted(&hit.snippet), vec!["needle"]);
}

#[test]
fn search_accepts_any_input() {
    let (_dir, store) = temp_store();
    let conv = store.create_conversation("Syntax").unwrap();
    let tricky = [
        r#"say "hello" AND(goodbye) OR NOT x* NEAR(a b) col:val ^start -minus {a b} 100% a_b \ end"#,
        "emoji 😀 and \u{0} nul and tabs\tand\nnewlines",
    ];
    for t in tricky {
        store
            .add_message(&NewMessage::user(conv.id, None, t))
            .unwrap();
    }
    let queries = [
        "\"",
        "\"\"",
        "\"\"\"",
        "AND(",
        "OR",
        "NOT",
        "NEAR(a b)",
        "*",
        "x*",
        "col:val",
        "^start",
        "-minus",
        "{a b}",
        "(",
        ")",
        "'",
        "''",
        "%",
        "_",
        "\\",
        "100%",
        "a_b",
        "a",
        "😀",
        "\u{0}",
        "AND( \"unbalanced",
        "hello\"",
        "\u{200b}",
        "   ",
        "",
        "NEAR(",
        ":",
        "+",
        "@@",
        "\t\n",
    ];
    for q in queries {
        for order in [SearchOrder::Newest, SearchOrder::Relevance] {
            let opts = SearchOptions {
                order,
                ..SearchOptions::default()
            };
            store
                .search_messages(q, None, &opts)
                .unwrap_or_else(|e| panic!("query {q:?} failed: {e}"));
            store
                .search_chunks(q, None, &opts)
                .unwrap_or_else(|e| panic!("query {q:?} failed: {e}"));
        }
    }
    // Syntax characters are searched for literally.
    let find = |q: &str| {
        store
            .search_messages(q, None, &SearchOptions::default())
            .unwrap()
            .len()
    };
    assert_eq!(find("AND(goodbye)"), 1);
    assert_eq!(find("NEAR(a"), 1);
    assert_eq!(find("100%"), 1);
    assert_eq!(find("a_b"), 1);
    assert_eq!(find("%"), 1);
    assert_eq!(find("_"), 1);
    assert_eq!(find("x*"), 1);
    assert_eq!(find("😀"), 1);
    assert_eq!(find("hello"), 1);
    assert_eq!(find("zzzz"), 0);
    assert_eq!(find(""), 0);
    // A pseudo-random sweep over odd characters.
    let alphabet: Vec<char> = "\"'()*:^-+{}[]%_\\ aZ字😀\t".chars().collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let len = (state % 9) as usize;
        let q: String = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                alphabet[(state % alphabet.len() as u64) as usize]
            })
            .collect();
        store
            .search_messages(&q, None, &SearchOptions::default())
            .unwrap_or_else(|e| panic!("query {q:?} failed: {e}"));
    }
}

#[test]
fn documents_chunks_and_summary_parts() {
    let (_dir, store) = temp_store();
    let new = NewDocument {
        sha256: "12".repeat(32),
        original_path: "/home/u/report.docx".into(),
        name: "report.docx".into(),
        media_type: "docx".into(),
        pages: Some(4),
        extracted_text: "Intro. 正文。".into(),
    };
    let added = store.add_document(&new).unwrap();
    assert!(!added.already_known);
    let doc = added.document;
    assert_eq!(doc.text_bytes, new.extracted_text.len() as u64);
    // The same hash again: the stored document is reused.
    let again = store
        .add_document(&NewDocument {
            name: "copy.docx".into(),
            ..new.clone()
        })
        .unwrap();
    assert!(again.already_known);
    assert_eq!(again.document, doc);
    assert_eq!(
        store.document_by_sha256(&new.sha256).unwrap(),
        Some(doc.clone())
    );
    assert_eq!(store.document_text(doc.id).unwrap(), new.extracted_text);

    let chunks: Vec<NewChunk> = (0..3)
        .map(|i| NewChunk {
            ordinal: i,
            page_start: Some(i + 1),
            page_end: Some(i + 1),
            section: Some(format!("Section {i}")),
            text_start: Some(u64::from(i) * 10),
            text_end: Some(u64::from(i) * 10 + 10),
            text: format!("chunk {i}"),
            token_count: 3,
        })
        .collect();
    let ids = store.add_chunks(doc.id, &chunks).unwrap();
    // A duplicate ordinal fails the whole call.
    assert!(store.add_chunks(doc.id, &chunks[..1]).is_err());
    let stored = store.chunks(doc.id).unwrap();
    assert_eq!(stored.len(), 3);
    for (s, n) in stored.iter().zip(&chunks) {
        assert_eq!(
            (s.ordinal, &s.section, s.text_start, s.text_end, &s.text),
            (n.ordinal, &n.section, n.text_start, n.text_end, &n.text)
        );
    }
    assert_eq!(store.chunk(ids[1]).unwrap().page_start, Some(2));

    let summary = store
        .create_summary(&NewSummary {
            document_id: doc.id,
            model_id: "qwen".into(),
            instructions: Some("bullets".into()),
            sampling: Sampling {
                temperature: Some(0.2),
                ..Sampling::default()
            },
        })
        .unwrap();
    assert_eq!(summary.status, TaskStatus::Running);
    store
        .add_summary_part(
            summary.id,
            &NewSummaryPart {
                level: 0,
                ordinal: 0,
                text: "A".into(),
                chunk_ids: vec![ids[0], ids[1]],
            },
        )
        .unwrap();
    store
        .add_summary_part(
            summary.id,
            &NewSummaryPart {
                level: 0,
                ordinal: 1,
                text: "B".into(),
                chunk_ids: vec![ids[2]],
            },
        )
        .unwrap();
    // Rewriting a part replaces it.
    store
        .add_summary_part(
            summary.id,
            &NewSummaryPart {
                level: 0,
                ordinal: 1,
                text: "B2".into(),
                chunk_ids: vec![ids[2]],
            },
        )
        .unwrap();
    store
        .add_summary_part(
            summary.id,
            &NewSummaryPart {
                level: 1,
                ordinal: 0,
                text: "AB".into(),
                chunk_ids: ids.clone(),
            },
        )
        .unwrap();
    let parts = store.summary_parts(summary.id).unwrap();
    let shape: Vec<(u32, u32, &str, usize)> = parts
        .iter()
        .map(|p| (p.level, p.ordinal, p.text.as_str(), p.chunk_ids.len()))
        .collect();
    assert_eq!(
        shape,
        vec![(0, 0, "A", 2), (0, 1, "B2", 1), (1, 0, "AB", 3)]
    );
    // Chunks of another document are refused.
    let other = store
        .add_document(&NewDocument {
            sha256: "34".repeat(32),
            ..new.clone()
        })
        .unwrap()
        .document;
    let other_chunk = store.add_chunks(other.id, &chunks[..1]).unwrap()[0];
    assert!(matches!(
        store.add_summary_part(
            summary.id,
            &NewSummaryPart {
                level: 2,
                ordinal: 0,
                text: "x".into(),
                chunk_ids: vec![other_chunk]
            }
        ),
        Err(StoreError::InvalidValue(_))
    ));
    let done = store
        .finish_summary(summary.id, "Final.", Outcome::Done)
        .unwrap();
    assert_eq!(
        (done.status, done.text.as_deref()),
        (TaskStatus::Done, Some("Final."))
    );
    assert_eq!(done.sampling.temperature, Some(0.2));
    assert_eq!(store.summaries(doc.id).unwrap().len(), 1);

    // Deleting the document takes chunks, summaries and parts with it.
    store.delete_document(doc.id).unwrap();
    assert!(matches!(
        store.chunk(ids[0]),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.summary(summary.id),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.list_documents().unwrap().len(), 1);
    assert!(store.verify().unwrap().is_empty());
}

#[test]
fn translations_and_glossaries() {
    let (_dir, store) = temp_store();
    let t = store
        .create_translation(&NewTranslation {
            source_text: "Good morning".into(),
            document_id: None,
            source_lang: "en".into(),
            target_lang: "zh-Hans".into(),
            model_id: Some("qwen".into()),
            sampling: Sampling {
                seed: Some(42),
                ..Sampling::default()
            },
        })
        .unwrap();
    assert_eq!(t.status, TaskStatus::Running);
    let t = store
        .finish_translation(t.id, "早上好", Outcome::Done)
        .unwrap();
    assert_eq!(t.result_text.as_deref(), Some("早上好"));
    let t2 = store
        .create_translation(&NewTranslation {
            source_text: "Long text".into(),
            document_id: None,
            source_lang: "en".into(),
            target_lang: "fr".into(),
            model_id: None,
            sampling: Sampling::default(),
        })
        .unwrap();
    let t2 = store
        .finish_translation(t2.id, "Long", Outcome::Cancelled)
        .unwrap();
    assert_eq!(t2.status, TaskStatus::Cancelled);
    let list: Vec<TranslationId> = store
        .list_translations(10, None)
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(list, vec![t2.id, t.id]);
    assert_eq!(
        store.list_translations(10, Some(t2.id)).unwrap()[0].id,
        t.id
    );
    assert!(matches!(
        store.create_translation(&NewTranslation {
            source_text: "x".into(),
            document_id: Some(DocumentId(99)),
            source_lang: "en".into(),
            target_lang: "de".into(),
            model_id: None,
            sampling: Sampling::default(),
        }),
        Err(StoreError::NotFound { .. })
    ));

    let entry = |src: &str, tgt: &str, from: &str, to: &str| NewGlossaryEntry {
        source_lang: from.into(),
        target_lang: to.into(),
        source_term: src.into(),
        target_term: tgt.into(),
        note: None,
    };
    store
        .set_glossary_entry(&entry("model", "模型", "en", "zh-Hans"))
        .unwrap();
    store
        .set_glossary_entry(&entry("inference", "推理", "en", "zh-Hans"))
        .unwrap();
    store
        .set_glossary_entry(&entry("model", "modèle", "en", "fr"))
        .unwrap();
    // Same pair and term: replaced.
    let e = store
        .set_glossary_entry(&NewGlossaryEntry {
            note: Some("AI sense".into()),
            ..entry("model", "大模型", "en", "zh-Hans")
        })
        .unwrap();
    let zh = store.glossary("en", "zh-Hans").unwrap();
    let pairs: Vec<(&str, &str)> = zh
        .iter()
        .map(|e| (e.source_term.as_str(), e.target_term.as_str()))
        .collect();
    assert_eq!(pairs, vec![("inference", "推理"), ("model", "大模型")]);
    assert_eq!(zh[1].note.as_deref(), Some("AI sense"));
    assert_eq!(store.glossary("en", "fr").unwrap().len(), 1);
    store.delete_glossary_entry(e.id).unwrap();
    assert_eq!(store.glossary("en", "zh-Hans").unwrap().len(), 1);
    store.delete_translation(t.id).unwrap();
    assert!(matches!(
        store.translation(t.id),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn settings_keep_their_types() {
    let (_dir, store) = temp_store();
    store
        .set_setting("a.bool", &SettingValue::Bool(true))
        .unwrap();
    store.set_setting("b.int", &SettingValue::Int(-7)).unwrap();
    store
        .set_setting("c.float", &SettingValue::Float(0.1))
        .unwrap();
    store
        .set_setting("d.text", &SettingValue::Text("中文".into()))
        .unwrap();
    assert_eq!(store.setting_bool("a.bool").unwrap(), Some(true));
    assert_eq!(store.setting_int("b.int").unwrap(), Some(-7));
    assert_eq!(store.setting_float("c.float").unwrap(), Some(0.1));
    assert_eq!(
        store.setting_text("d.text").unwrap().as_deref(),
        Some("中文")
    );
    assert_eq!(store.setting_text("missing").unwrap(), None);
    let err = store.setting_int("a.bool").unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SettingType {
                found: "bool",
                wanted: "int",
                ..
            }
        ),
        "{err:?}"
    );
    // Changing the type is allowed.
    store
        .set_setting("b.int", &SettingValue::Text("now text".into()))
        .unwrap();
    assert_eq!(
        store.setting("b.int").unwrap(),
        Some(SettingValue::Text("now text".into()))
    );
    assert!(store
        .set_setting("nan", &SettingValue::Float(f64::NAN))
        .is_err());
    let keys: Vec<String> = store
        .settings()
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(keys, vec!["a.bool", "b.int", "c.float", "d.text"]);
    assert!(store.delete_setting("a.bool").unwrap());
    assert!(!store.delete_setting("a.bool").unwrap());
    // Serialized for the UI with an explicit type tag.
    assert_eq!(
        serde_json::to_string(&SettingValue::Int(3)).unwrap(),
        r#"{"type":"int","value":3}"#
    );
}

#[test]
fn jobs_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.sqlite3");
    let (a, b, c);
    {
        let store = Store::open(&path).unwrap().store;
        a = store
            .create_job(&JobKind::Summary, &serde_json::json!({"summaryId": 1}))
            .unwrap();
        b = store
            .create_job(
                &JobKind::Download,
                &serde_json::json!({"url": "x", "offset": 0}),
            )
            .unwrap();
        c = store
            .create_job(&JobKind::Other("reindex".into()), &serde_json::json!(null))
            .unwrap();
        assert_eq!(a.state, JobState::Queued);
        store.set_job_state(a.id, JobState::Running, None).unwrap();
        store
            .set_job_progress(a.id, Some("map"), 3, Some(10))
            .unwrap();
        store
            .set_job_payload(b.id, &serde_json::json!({"url": "x", "offset": 4096}))
            .unwrap();
        store.set_job_state(b.id, JobState::Paused, None).unwrap();
        store
            .set_job_state(c.id, JobState::Failed, Some("no space"))
            .unwrap();
    }
    let store = Store::open(&path).unwrap().store;
    let jobs = store.unfinished_jobs().unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    assert_eq!(
        (
            jobs[0].stage.as_deref(),
            jobs[0].progress_done,
            jobs[0].progress_total
        ),
        (Some("map"), 3, Some(10))
    );
    assert_eq!(jobs[1].payload["offset"], 4096);
    assert_eq!(jobs[1].kind, JobKind::Download);
    let c = store.job(c.id).unwrap();
    assert_eq!(
        (c.kind, c.state, c.error.as_deref()),
        (
            JobKind::Other("reindex".into()),
            JobState::Failed,
            Some("no space")
        )
    );
    assert_eq!(store.delete_finished_jobs(i64::MAX).unwrap(), 1);
    store.delete_job(a.id).unwrap();
    assert_eq!(store.unfinished_jobs().unwrap().len(), 1);
}

#[test]
fn installed_models_are_recorded() {
    let (_dir, store) = temp_store();
    let mut m = InstalledModel {
        id: "gemma-3-270m-q4_k_m".into(),
        path: "/models/gemma.gguf".into(),
        source_repo: Some("google/gemma-3-270m".into()),
        source_revision: Some("abc123".into()),
        source_file: Some("gemma.gguf".into()),
        quant: Some("Q4_K_M".into()),
        size_bytes: 253_113_024,
        sha256: "a5".repeat(32),
        added_at: 1_000,
        last_used_at: None,
    };
    store.upsert_model(&m).unwrap();
    let other = InstalledModel {
        id: "other".into(),
        added_at: 2_000,
        ..m.clone()
    };
    store.upsert_model(&other).unwrap();
    assert_eq!(store.model(&m.id).unwrap(), m);
    m.path = "/elsewhere/gemma.gguf".into();
    store.upsert_model(&m).unwrap();
    assert_eq!(store.model(&m.id).unwrap().path, "/elsewhere/gemma.gguf");
    store.touch_model(&m.id).unwrap();
    let list = store.list_models().unwrap();
    assert_eq!(list[0].id, m.id);
    assert!(list[0].last_used_at.is_some());
    store.remove_model("other").unwrap();
    assert!(matches!(
        store.model("other"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.touch_model("other"),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn data_folder_comes_from_the_argument_then_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let explicit = dir.path().join("portable");
    // The only test in this binary that touches the environment.
    std::env::set_var(location::DATA_DIR_ENV, dir.path().join("from-env"));
    assert_eq!(location::data_dir(Some(&explicit)).unwrap(), explicit);
    assert_eq!(
        location::data_dir(None).unwrap(),
        dir.path().join("from-env")
    );
    let opened = Store::open_in_data_dir(None, &OpenOptions::default()).unwrap();
    assert_eq!(
        opened.store.path(),
        dir.path()
            .join("from-env")
            .join(location::DATABASE_FILE_NAME)
    );
    std::env::remove_var(location::DATA_DIR_ENV);
    let default = location::data_dir(None).unwrap();
    assert!(default.is_absolute(), "{}", default.display());
}

#[test]
fn errors_serialize_to_a_code_and_a_sentence() {
    let err = StoreError::DiskFull;
    assert_eq!(err.code(), "store.disk_full");
    assert!(err.to_string().contains("nothing was saved"));
    let notice = RecoveryNotice {
        path: "/d/hearth.sqlite3".into(),
        moved_to: "/d/hearth.sqlite3.corrupt-20250101T000000Z".into(),
        reason: "file is not a database".into(),
    };
    let json = serde_json::to_value(&notice).unwrap();
    assert_eq!(
        json["movedTo"],
        "/d/hearth.sqlite3.corrupt-20250101T000000Z"
    );
}
