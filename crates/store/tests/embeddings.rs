//! Chunk embeddings: stored bit for bit, replaced whole, kept apart per model, removed with
//! their document, and readable from a schema-2 database.

use std::path::Path;

use hearth_store::*;

fn doc_with_chunks(store: &Store, sha: &str, texts: &[&str]) -> (DocumentId, Vec<ChunkId>) {
    let doc = store
        .add_document(&NewDocument {
            sha256: sha.repeat(64 / sha.len()),
            original_path: "/docs/a.txt".into(),
            name: "a.txt".into(),
            media_type: "text".into(),
            pages: None,
            extracted_text: texts.join("\n"),
        })
        .unwrap()
        .document;
    let chunks: Vec<NewChunk> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| NewChunk {
            ordinal: i as u32,
            page_start: None,
            page_end: None,
            section: None,
            text_start: None,
            text_end: None,
            text: (*t).into(),
            token_count: 3,
        })
        .collect();
    let ids = store.add_chunks(doc.id, &chunks).unwrap();
    (doc.id, ids)
}

#[test]
fn vectors_round_trip_per_model_and_go_with_their_document() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db.sqlite3")).unwrap().store;
    let (doc, ids) = doc_with_chunks(&store, "ab", &["one", "two", "three"]);

    assert_eq!(
        store.embedding_coverage(doc, "m").unwrap(),
        EmbeddingCoverage {
            embedded: 0,
            total: 3
        }
    );
    assert_eq!(store.chunks_without_embeddings(doc, "m").unwrap().len(), 3);

    let odd = vec![f32::MIN_POSITIVE, -0.0, 1.0e-30, 0.123_456_79];
    store
        .put_chunk_embeddings(ids[1], "m", &[odd.clone(), vec![1.0, 2.0, 3.0, 4.0]])
        .unwrap();
    store
        .put_chunk_embeddings(ids[0], "other", &[vec![9.0; 4]])
        .unwrap();

    let got = store.chunk_embeddings(doc, "m").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].chunk_id, ids[1]);
    assert_eq!(got[0].vectors.len(), 2);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got[0].vectors[0]), bits(&odd));
    assert_eq!(
        store.embedding_coverage(doc, "m").unwrap(),
        EmbeddingCoverage {
            embedded: 1,
            total: 3
        }
    );
    let missing: Vec<ChunkId> = store
        .chunks_without_embeddings(doc, "m")
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(missing, vec![ids[0], ids[2]]);

    // Replacing is whole: one window now.
    store
        .put_chunk_embeddings(ids[1], "m", &[vec![0.5; 4]])
        .unwrap();
    assert_eq!(
        store.chunk_embeddings(doc, "m").unwrap()[0].vectors,
        vec![vec![0.5; 4]]
    );

    // Bad input is refused and changes nothing.
    assert!(store
        .put_chunk_embeddings(ids[2], "m", &[vec![1.0], vec![1.0, 2.0]])
        .is_err());
    assert!(store.put_chunk_embeddings(ids[2], "m", &[]).is_err());
    assert!(store
        .put_chunk_embeddings(ChunkId(9_999), "m", &[vec![1.0]])
        .is_err());
    assert_eq!(store.embedding_coverage(doc, "m").unwrap().embedded, 1);

    store.delete_document(doc).unwrap();
    assert!(store.verify().unwrap().is_empty());
    let (doc2, _) = doc_with_chunks(&store, "cd", &["four"]);
    assert!(store.chunk_embeddings(doc2, "m").unwrap().is_empty());
    assert!(store.chunk_embeddings(doc2, "other").unwrap().is_empty());
}

#[test]
fn schema_2_fixture_keeps_its_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite3");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-v2.sqlite3"),
        &path,
    )
    .unwrap();
    let store = Store::open(&path).unwrap().store;
    let doc = store
        .list_documents()
        .unwrap()
        .into_iter()
        .find(|d| d.name == "report.md")
        .unwrap();
    let got = store.chunk_embeddings(doc.id, "all-minilm-l6-v2").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].vectors, vec![vec![0.6, 0.8], vec![1.0, 0.0]]);
}
