//! Sentence embeddings and hybrid retrieval with the real all-MiniLM-L6-v2 weights (fetched by
//! scripts/fetch-test-models) and a real document this project did not write (pages of the Bash
//! manual page from Debian's bash-doc).
//!
//! Cost: the model loads once per test (90 MB, memory-mapped); the retrieval test embeds the
//! chunks of six pages of the manual (a few dozen windows), everything else a handful of
//! sentences.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hearth_assistant::ask::query_terms;
use hearth_assistant::embed::{cosine, Embedder};
use hearth_assistant::{Assistant, AssistantConfig, DocumentOptions};
use hearth_store::DocumentId;

fn test_models() -> PathBuf {
    std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/hearth/test-models")
        })
}

fn fixture(name: &str) -> PathBuf {
    let p = test_models().join(name);
    assert!(
        p.exists(),
        "test file {} is missing: run scripts/fetch-test-models",
        p.display()
    );
    p
}

fn minilm_dir() -> PathBuf {
    let dir = fixture("all-minilm-l6-v2");
    for f in ["model.safetensors", "config.json", "tokenizer.json"] {
        fixture(&format!("all-minilm-l6-v2/{f}"));
    }
    dir
}

fn open(dir: &Path) -> Assistant {
    Assistant::open(AssistantConfig {
        data_dir: Some(dir.to_path_buf()),
        threads: Some(2),
    })
    .unwrap()
    .assistant
}

#[test]
fn similarities_separate_paraphrases_from_unrelated_text() {
    let e = Embedder::load(&minilm_dir()).unwrap();
    assert_eq!(e.dims(), 384);
    let texts = [
        "How do I stop my laptop from overheating?",
        "What can I do to keep my notebook computer from getting too hot?",
        "The recipe needs two cups of flour and a pinch of salt.",
        "A man is playing a guitar on stage.",
        "Someone performs music with a stringed instrument in front of an audience.",
        "Quarterly sales figures were published on Monday.",
    ];
    let v = e.embed(&texts).unwrap();
    for x in &v {
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let sim = |a: usize, b: usize| cosine(&v[a], &v[b]);
    let (para1, para2) = (sim(0, 1), sim(3, 4));
    let unrelated = [sim(0, 2), sim(0, 3), sim(2, 4), sim(1, 5), sim(3, 5)];
    eprintln!("paraphrases {para1:.3} {para2:.3}, unrelated {unrelated:.3?}");
    let worst_unrelated = unrelated.iter().cloned().fold(f32::MIN, f32::max);
    assert!(para1 > 0.6 && para2 > 0.5, "{para1} {para2}");
    // With the tokenizer's padding to 128 left on, every pair lands in 0.85-0.96.
    assert!(worst_unrelated < 0.25, "{unrelated:?}");
    assert!(para1.min(para2) - worst_unrelated > 0.35);

    // The same text gives the same vector, alone or in a batch of other lengths (padding).
    let alone = e.embed(&[texts[2]]).unwrap();
    assert!((cosine(&alone[0], &v[2]) - 1.0).abs() < 1e-5);
    let max_diff = alone[0]
        .iter()
        .zip(&v[2])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "batch and single differ by {max_diff}");
}

/// Token ids and vectors match an independent computation (scripts/minilm-reference: WordPiece
/// and the BERT forward pass written out in NumPy, float64) of the same published files.
#[test]
fn embeddings_match_an_independent_reference() {
    let e = Embedder::load(&minilm_dir()).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm-reference.json")).unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 4);
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let batch = e.embed(&texts).unwrap();
    for (s, got) in sentences.iter().zip(&batch) {
        let text = s["text"].as_str().unwrap();
        let ids: Vec<u32> = s["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(e.windows(text).unwrap(), vec![ids], "{text}");
        let want: Vec<f32> = s["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got.len(), want.len());
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "{text}: differs by {diff}");
    }
}

#[test]
fn long_text_is_embedded_in_windows_covering_all_of_it() {
    let e = Embedder::load(&minilm_dir()).unwrap();
    let sentence = "The shell reads commands from a file and executes them one by one. ";
    let long = sentence.repeat(60);
    let windows = e.windows(&long).unwrap();
    assert!(windows.len() >= 3, "{} windows", windows.len());
    assert!(windows.iter().all(|w| w.len() <= 256 && w.len() > 2));
    let vectors = e.embed_windows(&long).unwrap();
    assert_eq!(vectors.len(), windows.len());
    // Windows of the same repeated sentence mean nearly the same.
    assert!(cosine(&vectors[0], &vectors[1]) > 0.9);
    let short = e.embed_windows("hello").unwrap();
    assert_eq!(short.len(), 1);
}

/// Pages 15-20 of the Bash manual page (shell variables), as their own PDF.
fn bash_variables_pdf(dir: &Path) -> PathBuf {
    let mut doc = lopdf::Document::load(fixture("documents/bash.pdf")).unwrap();
    let pages = doc.get_pages().len() as u32;
    let drop: Vec<u32> = (1..=pages).filter(|p| !(15..=20).contains(p)).collect();
    doc.delete_pages(&drop);
    doc.prune_objects();
    let out = dir.join("bash-variables.pdf");
    doc.save(&out).unwrap();
    out
}

#[test]
fn a_question_in_other_words_finds_its_passage_by_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let pdf = bash_variables_pdf(dir.path());

    // Without the model: keywords only, and that is reported, not an error.
    let added = a
        .add_document(
            &pdf,
            &DocumentOptions {
                model: Some(
                    fixture("smollm2-135m-instruct-q4_1.gguf")
                        .display()
                        .to_string(),
                ),
                chunk_tokens: Some(160),
                ..Default::default()
            },
        )
        .unwrap();
    let doc = added.document.id;
    let status = a.retrieval_status(doc).unwrap();
    assert_eq!(status.method, "keywords");
    assert!(status.note.is_some());
    assert_eq!(status.embedded_chunks, 0);

    a.set_embedding_model(Some(&minilm_dir())).unwrap();
    let started = Instant::now();
    let report = a.embed_document(doc).unwrap();
    let elapsed = started.elapsed();
    let status = a.retrieval_status(doc).unwrap();
    assert_eq!(status.method, "hybrid");
    assert_eq!(status.embedded_chunks, status.total_chunks);
    assert_eq!(report.chunks, status.total_chunks);
    assert!(status.note.is_none());
    eprintln!(
        "embedded {} chunks ({} windows) in {:?}: {:?} per chunk",
        report.chunks,
        report.windows,
        elapsed,
        elapsed / report.chunks.max(1)
    );
    // Nothing left to do the second time.
    assert_eq!(a.embed_document(doc).unwrap().chunks, 0);

    // TMOUT's passage speaks of a "timeout", "seconds", input that "does not arrive" and bash
    // that "terminates": the question says it in other words.
    let question = "Can the shell log me out automatically after a period of inactivity?";
    // The paragraph may straddle two chunks: either one counts.
    let is_target =
        |text: &str| text.contains("TMOUT") || text.contains("wait for a line of input");
    let terms = query_terms(question);
    let bm25 = a.store().rank_chunks(DocumentId(doc), &terms, 3).unwrap();
    let bm25_texts: Vec<String> = bm25
        .iter()
        .map(|r| a.store().chunk(r.chunk_id).unwrap().text)
        .collect();
    for t in &bm25_texts {
        eprintln!("BM25 alone: {:.70}", t.replace('\n', " "));
    }
    assert!(
        !bm25_texts.iter().any(|t| is_target(t)),
        "BM25 alone already finds it: {terms:?}"
    );

    // Where the passage stands by meaning alone (for the record).
    let e = Embedder::load(&minilm_dir()).unwrap();
    let q = &e.embed(&[question]).unwrap()[0];
    let mut by_meaning: Vec<(f32, bool)> = a
        .store()
        .chunk_embeddings(DocumentId(doc), "all-minilm-l6-v2")
        .unwrap()
        .iter()
        .map(|c| {
            let best = c
                .vectors
                .iter()
                .map(|v| cosine(q, v))
                .fold(f32::MIN, f32::max);
            (best, is_target(&a.store().chunk(c.chunk_id).unwrap().text))
        })
        .collect();
    by_meaning.sort_by(|x, y| y.0.total_cmp(&x.0));
    eprintln!("by meaning: {:?}", &by_meaning[..8.min(by_meaning.len())]);

    let found = a.find_passages(doc, question, 3).unwrap();
    for s in &found {
        eprintln!(
            "[{}] {:.4} {} bm25 {:?} sim {:?}: {:.70}",
            s.number, s.score, s.found_by, s.bm25, s.similarity, s.passage.text
        );
    }
    let hit = found
        .iter()
        .find(|s| is_target(&s.passage.text))
        .expect("the TMOUT passage is among the top 3");
    assert!(hit.found_by == "meaning" || hit.found_by == "both");
    assert!(hit.similarity.unwrap() >= 0.25);

    // A question in the document's own words still comes first by BM25 and meaning.
    let found = a
        .find_passages(doc, "What does the IGNOREEOF variable control?", 3)
        .unwrap();
    assert!(found[0].passage.text.contains("IGNOREEOF"));
    assert_eq!(found[0].found_by, "both");

    // Nothing in the words (not even as a trigram of a longer word) and nothing close in
    // meaning: nothing found.
    let none = a
        .find_passages(doc, "Quels fromages accompagnent un bordeaux?", 3)
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    // Removing the document removes its vectors with it.
    a.delete_document(doc).unwrap();
    assert!(a
        .store()
        .chunk_embeddings(DocumentId(doc), "all-minilm-l6-v2")
        .unwrap()
        .is_empty());
}

/// A damaged embedding model never costs the document: adding works, questions fall back to
/// BM25, and indexing by meaning fails with its code.
#[test]
fn a_damaged_embedding_model_leaves_documents_and_keyword_search_working() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let model = dir.path().join("broken-minilm");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.safetensors"), b"not safetensors").unwrap();
    std::fs::copy(minilm_dir().join("config.json"), model.join("config.json")).unwrap();
    std::fs::copy(
        minilm_dir().join("tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    a.set_embedding_model(Some(&model)).unwrap();
    assert!(a.set_embedding_model(Some(dir.path())).is_err());

    let file = dir.path().join("garden.md");
    std::fs::write(
        &file,
        "# Garden\n\nOak trees and birches grow near the old wall.\n\n# Kitchen\n\nThe stove is new.\n",
    )
    .unwrap();
    // Adding starts indexing in the background, which fails: the document stays.
    let doc = a
        .add_document(&file, &DocumentOptions::default())
        .unwrap()
        .document
        .id;
    let err = a.embed_document(doc).unwrap_err();
    assert_eq!(err.code, "documents.embedding_model", "{err:?}");
    assert_eq!(a.documents().unwrap().len(), 1);
    let found = a.find_passages(doc, "Which trees grow there?", 2).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].found_by, "keywords");
    assert_eq!(a.retrieval_status(doc).unwrap().embedded_chunks, 0);
}
