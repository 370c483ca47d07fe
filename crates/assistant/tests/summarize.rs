//! Documents end to end with the real SmolLM2 test model and a real long PDF that this project
//! did not write (the Bash manual page from Debian's bash-doc, 87 pages, fetched by
//! scripts/fetch-test-models): adding with deduplication by hash, map/reduce summarization with
//! page citations, cancel and resume after a restart, questions with cited passages, and bad
//! input.
//!
//! The long summary covers the manual's first 30 pages (the `pages` option, which the app offers
//! too) in chunks of 512 tokens with short partial summaries, to keep the run short on a 2-core
//! machine: every assertion about coverage is about every chunk in that range (all chunks that
//! touch the range).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use hearth_assistant::summarize::{DocumentSummary, SummaryStage};
use hearth_assistant::{
    Assistant, AssistantConfig, DocumentOptions, SummarizeEvent, SummarizeRequest, SummaryLength,
};

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
        p.is_file(),
        "test file {} is missing: run scripts/fetch-test-models",
        p.display()
    );
    p
}

fn smollm() -> String {
    fixture("smollm2-135m-instruct-q4_1.gguf")
        .display()
        .to_string()
}

fn open(dir: &Path) -> Assistant {
    Assistant::open(AssistantConfig {
        data_dir: Some(dir.to_path_buf()),
        threads: Some(2),
    })
    .unwrap()
    .assistant
}

fn options() -> DocumentOptions {
    DocumentOptions {
        model: Some(smollm()),
        chunk_tokens: Some(64),
        ..Default::default()
    }
}

/// Pages summarized end to end (see the module header).
const PAGES: [u32; 2] = [1, 30];

/// Chunks of the long summary: 512 tokens, so 30 pages make a few dozen map requests.
fn long_options() -> DocumentOptions {
    DocumentOptions {
        chunk_tokens: Some(512),
        ..options()
    }
}

fn request(doc: i64) -> SummarizeRequest {
    SummarizeRequest {
        document_id: doc,
        length: SummaryLength::Short,
        language: Some("en".into()),
        model: Some(smollm()),
        pages: Some(PAGES),
        max_part_tokens: Some(16),
        max_summary_tokens: Some(24),
        restart: false,
    }
}

fn collector() -> (
    hearth_assistant::SummarizeSink,
    mpsc::Receiver<SummarizeEvent>,
) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    (Box::new(move |e| drop(tx.lock().unwrap().send(e))), rx)
}

fn next(rx: &mpsc::Receiver<SummarizeEvent>) -> SummarizeEvent {
    rx.recv_timeout(Duration::from_secs(900))
        .expect("the summary goes on")
}

/// Reads events to the end; returns them all and the final summary with its status.
fn finish(rx: &mpsc::Receiver<SummarizeEvent>) -> (Vec<SummarizeEvent>, String, DocumentSummary) {
    let mut events = Vec::new();
    loop {
        let e = next(rx);
        match &e {
            SummarizeEvent::Done {
                status, summary, ..
            } => {
                let r = (status.clone(), (**summary).clone());
                events.push(e);
                return (events, r.0, r.1);
            }
            SummarizeEvent::Failed { error, .. } => panic!("summary failed: {error:?}"),
            _ => events.push(e),
        }
    }
}

/// (level, ordinal, chunk ordinals, pages) of every part: what must not depend on interruptions.
type Shape = Vec<(u32, u32, Vec<u32>, Vec<(u32, u32)>)>;

fn shape(s: &DocumentSummary) -> Shape {
    s.parts
        .iter()
        .map(|p| {
            (
                p.level,
                p.ordinal,
                p.cites.chunk_ordinals.clone(),
                p.cites.pages.iter().map(|r| (r.start, r.end)).collect(),
            )
        })
        .collect()
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn long_pdf_is_summarized_with_every_chunk_covered_and_real_page_citations() {
    let pdf = fixture("documents/bash.pdf");
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());

    // Adding: extracted, chunked, stored once per content hash.
    let added = a.add_document(&pdf, &long_options()).unwrap();
    assert!(!added.already_known);
    assert_eq!(added.document.kind, "pdf");
    assert_eq!(added.document.pages, Some(87));
    assert!(added.document.pages.unwrap() >= 30);
    let copy = dir.path().join("renamed copy.pdf");
    std::fs::copy(&pdf, &copy).unwrap();
    let again = a.add_document(&copy, &long_options()).unwrap();
    assert!(again.already_known, "same bytes, same document");
    assert_eq!(again.document.id, added.document.id);
    assert_eq!(a.documents().unwrap().len(), 1);

    let doc = added.document.id;
    let passages = a.document_passages(doc).unwrap();
    assert_eq!(passages.len() as u32, added.document.chunks);
    let in_scope: Vec<_> = passages
        .iter()
        .filter(|p| p.page_start.unwrap() <= PAGES[1] && p.page_end.unwrap() >= PAGES[0])
        .collect();
    assert!(
        in_scope.len() >= 20,
        "30 pages hold a few dozen chunks ({})",
        in_scope.len()
    );
    let pages_touched: BTreeSet<u32> = in_scope
        .iter()
        .flat_map(|p| p.page_start.unwrap()..=p.page_end.unwrap())
        .filter(|p| (PAGES[0]..=PAGES[1]).contains(p))
        .collect();
    assert_eq!(
        pages_touched.len(),
        30,
        "every page of the range is in a chunk"
    );

    let (sink, rx) = collector();
    let started = a.summarize(request(doc), sink).unwrap();
    assert_eq!(started.chunks as usize, in_scope.len());
    assert_eq!(started.resumed_parts, 0);
    let (events, status, summary) = finish(&rx);
    assert_eq!(status, "done");
    assert_eq!(summary.status, "done");
    assert!(!summary.text.trim().is_empty());

    // Progress: the map stage announces every chunk in order, with an estimate once timed.
    let map_steps: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            SummarizeEvent::Progress {
                stage: SummaryStage::Map,
                done,
                total,
                ..
            } => {
                assert_eq!(*total as usize, in_scope.len());
                Some(*done)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        map_steps,
        (0..=in_scope.len() as u32).collect::<Vec<_>>(),
        "map progress 0..=n"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        SummarizeEvent::Progress {
            eta_ms: Some(_),
            ..
        }
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        SummarizeEvent::Progress {
            stage: SummaryStage::Final,
            ..
        }
    )));

    // Coverage: exactly one level-0 part per chunk in scope, citing that chunk.
    let level0: Vec<_> = summary.parts.iter().filter(|p| p.level == 0).collect();
    assert_eq!(level0.len(), in_scope.len());
    for (p, c) in level0.iter().zip(&in_scope) {
        assert_eq!(p.cites.chunk_ids, vec![c.chunk_id]);
        assert!(!p.text.trim().is_empty());
    }
    assert_eq!(summary.chunks_total as usize, in_scope.len());
    assert_eq!(summary.chunks_summarized, summary.chunks_total);
    let all: Vec<i64> = in_scope.iter().map(|c| c.chunk_id).collect();
    assert_eq!(
        summary.cites.chunk_ids, all,
        "the summary rests on every chunk"
    );

    // Each level above combines the whole level below: the union of chunks is kept.
    let top = summary.parts.iter().map(|p| p.level).max().unwrap();
    for level in 1..=top {
        let covered: BTreeSet<i64> = summary
            .parts
            .iter()
            .filter(|p| p.level == level)
            .flat_map(|p| p.cites.chunk_ids.iter().copied())
            .collect();
        assert_eq!(covered, all.iter().copied().collect(), "level {level}");
    }

    // Key points: the parts the final request read, together citing every chunk.
    assert!(!summary.key_points.is_empty());
    assert!(summary.key_points.len() <= SummaryLength::Short.key_points());
    let kp_chunks: Vec<i64> = summary
        .key_points
        .iter()
        .flat_map(|k| k.cites.chunk_ids.iter().copied())
        .collect();
    assert_eq!(kp_chunks, all);

    // Citations point at real pages: each cited page range is where the chunk's words are.
    let extracted =
        hearth_documents::extract_file(&pdf, &hearth_documents::Limits::default()).unwrap();
    for k in &summary.key_points {
        assert!(!k.cites.pages.is_empty());
        for r in &k.cites.pages {
            assert!(PAGES[0] <= r.end && r.start <= PAGES[1] + 1, "{r:?}");
        }
    }
    for p in &level0 {
        let c = in_scope
            .iter()
            .find(|c| c.chunk_id == p.cites.chunk_ids[0])
            .unwrap();
        let pages = &p.cites.pages;
        assert_eq!(pages.len(), 1);
        assert_eq!(
            (pages[0].start, pages[0].end),
            (c.page_start.unwrap(), c.page_end.unwrap())
        );
        let on_pages = squash(
            &extracted
                .sections
                .iter()
                .filter(|s| {
                    let pg = s.page.unwrap();
                    pg >= pages[0].start && pg <= pages[0].end
                })
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let words: Vec<&str> = c.text.split_whitespace().collect();
        let opening = words[..words.len().min(8)].join(" ");
        let closing = words[words.len().saturating_sub(8)..].join(" ");
        assert!(
            on_pages.contains(&opening) && on_pages.contains(&closing),
            "chunk {} is on pages {:?}",
            c.ordinal,
            pages
        );
    }

    // Asking again with the same options returns the finished summary.
    let (sink, rx) = collector();
    let again = a.summarize(request(doc), sink).unwrap();
    assert_eq!(again.summary_id, started.summary_id);
    let (_, status, cached) = finish(&rx);
    assert_eq!(status, "done");
    assert_eq!(cached, summary);

    // Cancel partway, reopen (a restart), resume: the same structure as the run above.
    let dir2 = tempfile::tempdir().unwrap();
    let b = open(dir2.path());
    let doc2 = b.add_document(&pdf, &long_options()).unwrap().document.id;
    let (sink, rx) = collector();
    let s1 = b.summarize(request(doc2), sink).unwrap();
    let mut written = 0;
    loop {
        match next(&rx) {
            SummarizeEvent::Part { resumed: false, .. } => {
                written += 1;
                if written == 2 {
                    b.cancel(s1.job_id);
                }
            }
            SummarizeEvent::Done {
                status, summary, ..
            } => {
                assert_eq!(status, "cancelled");
                assert_eq!(summary.status, "cancelled");
                assert!(summary.chunks_summarized >= 2);
                assert!(summary.chunks_summarized < summary.chunks_total);
                break;
            }
            SummarizeEvent::Failed { error, .. } => panic!("{error:?}"),
            _ => {}
        }
    }
    drop(b);
    let b = open(dir2.path());
    let (sink, rx) = collector();
    let s2 = b.summarize(request(doc2), sink).unwrap();
    assert_eq!(
        s2.summary_id, s1.summary_id,
        "the stored summary is resumed"
    );
    assert!(s2.resumed_parts >= 2);
    let (events, status, resumed) = finish(&rx);
    assert_eq!(status, "done");
    let reused = events
        .iter()
        .filter(|e| matches!(e, SummarizeEvent::Part { resumed: true, .. }))
        .count();
    assert_eq!(
        reused as u32, s2.resumed_parts,
        "stored parts were not redone"
    );
    assert_eq!(shape(&resumed), shape(&summary));
    let cites = |s: &DocumentSummary| {
        s.key_points
            .iter()
            .map(|k| k.cites.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(cites(&resumed), cites(&summary));
    assert_eq!(resumed.cites, summary.cites);
}

/// Page 1 of the manual is mostly running headers ("BASH(1)"), on which the small model,
/// decoding greedily, writes the same line again and again: the request stops once a line comes
/// a third time, and no line of the summary, a key point or a partial summary stands twice.
#[test]
fn a_model_going_round_in_a_loop_is_stopped_and_its_repeats_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let doc = a
        .add_document(
            &fixture("documents/bash.pdf"),
            &DocumentOptions {
                model: Some(smollm()),
                ..Default::default()
            },
        )
        .unwrap()
        .document
        .id;
    let (sink, rx) = collector();
    a.summarize(
        SummarizeRequest {
            document_id: doc,
            length: SummaryLength::Short,
            language: None,
            model: Some(smollm()),
            pages: Some([1, 1]),
            max_part_tokens: None,
            max_summary_tokens: None,
            restart: false,
        },
        sink,
    )
    .unwrap();
    let (events, status, summary) = finish(&rx);
    assert_eq!(status, "done");
    // The final request as it was written: stopped at the third copy of a line (a token after
    // it may still come), where the model would have written ~30 before its token limit.
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            SummarizeEvent::Delta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let whole = match streamed.rfind('\n') {
        Some(end) => &streamed[..end],
        None => "",
    };
    let mut copies = std::collections::BTreeMap::<&str, usize>::new();
    for line in whole.lines().map(str::trim).filter(|l| !l.is_empty()) {
        *copies.entry(line).or_default() += 1;
    }
    assert!(
        copies.values().all(|&n| n <= 3),
        "the final request went on: {streamed:?}"
    );
    if copies.values().any(|&n| n == 3) {
        // Stopped for the loop: the start of one more copy after the last newline is dropped.
        for line in summary.text.lines() {
            assert!(
                copies.contains_key(line.trim()),
                "{line:?} is not a whole line of {streamed:?}"
            );
        }
    }
    let texts = std::iter::once(&summary.text)
        .chain(summary.key_points.iter().map(|k| &k.text))
        .chain(summary.parts.iter().map(|p| &p.text));
    for text in texts {
        assert!(!text.trim().is_empty());
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let once: BTreeSet<&str> = lines.iter().copied().collect();
        assert_eq!(once.len(), lines.len(), "a line stands twice in {text:?}");
    }
}

#[test]
fn questions_are_answered_from_cited_passages() {
    let pdf = fixture("documents/bash.pdf");
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let doc = a.add_document(&pdf, &options()).unwrap().document.id;

    // Retrieval alone: BM25 over the stored chunks, best first, any of the words.
    let found = a
        .find_passages(
            doc,
            "Which file does HISTFILE name for the command history?",
            3,
        )
        .unwrap();
    assert!(!found.is_empty());
    assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(
        found[0].passage.text.contains("HISTFILE"),
        "{:?}",
        found[0].passage.text
    );
    for s in &found {
        assert!(s.passage.page_start.unwrap() >= 1 && s.passage.page_end.unwrap() <= 87);
        assert_eq!(a.passage(s.passage.chunk_id).unwrap(), s.passage);
    }
    assert_eq!(
        a.find_passages(doc, "zzzqqq xxyyzz", 3).unwrap(),
        Vec::new(),
        "words the document lacks find nothing"
    );

    // A question asked (its passages, then the answer streamed), and what its events say.
    let ask = |q: &str| {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let started = a
            .ask(
                hearth_assistant::AskRequest {
                    document_id: doc,
                    question: q.into(),
                    model: Some(smollm()),
                    passages: Some(2),
                    max_tokens: Some(24),
                },
                Box::new(move |e| drop(tx.lock().unwrap().send(e))),
            )
            .unwrap();
        (started, rx)
    };
    let answer_of = |rx: &mpsc::Receiver<hearth_assistant::AskEvent>| {
        let mut streamed = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(600)).unwrap() {
                hearth_assistant::AskEvent::Delta { text, .. } => streamed.push_str(&text),
                hearth_assistant::AskEvent::Done { answer, .. } => break (answer, streamed),
                hearth_assistant::AskEvent::Failed { error, .. } => panic!("{error:?}"),
            }
        }
    };
    let (started, rx) = ask("What is HISTFILE?");
    assert_eq!(started.passages.len(), 2);
    assert_eq!(started.passages[0].number, 1);
    let (answer, streamed) = answer_of(&rx);
    assert_eq!(answer.status, "done");
    assert!(!answer.text.is_empty());
    assert_eq!(answer.text, streamed.trim());
    assert_eq!(answer.passages, started.passages);
    assert!(answer.cited.iter().all(|n| (1..=2).contains(n)));

    // Cancelled while it waits behind another question, and while it is being read: a
    // cancelled answer (what was streamed), not a failure; the other question is answered.
    let (first, first_rx) = ask("What is HISTFILE?");
    let (queued, queued_rx) = ask("Where is the history saved?");
    a.cancel(queued.job_id);
    let (answer, streamed) = answer_of(&queued_rx);
    assert_eq!(answer.status, "cancelled");
    assert_eq!(answer.text, streamed.trim());
    assert_eq!(answer.passages, queued.passages);
    let (answer, _) = answer_of(&first_rx);
    assert_eq!(answer.status, "done");
    assert_eq!(answer.passages, first.passages);
    let (running, running_rx) = ask("What is HISTFILE?");
    a.cancel(running.job_id);
    let (answer, streamed) = answer_of(&running_rx);
    assert_eq!(answer.status, "cancelled");
    assert_eq!(answer.text, streamed.trim());

    let err = a
        .ask(
            hearth_assistant::AskRequest {
                document_id: doc,
                question: "zzzqqq?".into(),
                model: Some(smollm()),
                ..Default::default()
            },
            Box::new(|_| {}),
        )
        .unwrap_err();
    assert_eq!(err.code, "ask.nothing_found");
}

/// A one-page PDF: text drawn in Helvetica, or (None) an image only (a scan).
fn pdf(text: Option<&str>) -> lopdf::Document {
    use lopdf::{dictionary, Object, Stream};
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let image_id = doc.add_object(Stream::new(
        dictionary! {
            "Type" => "XObject", "Subtype" => "Image", "Width" => 8, "Height" => 8,
            "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
        },
        vec![128u8; 64],
    ));
    let content = match text {
        Some(t) => format!("BT /F1 12 Tf 72 700 Td ({t}) Tj ET\n"),
        None => "q 500 0 0 700 50 50 cm /Im1 Do Q\n".to_string(),
    };
    let content_id = doc.add_object(Stream::new(dictionary! {}, content.into_bytes()));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        "Contents" => content_id,
        "Resources" => dictionary! {
            "Font" => dictionary! { "F1" => font_id },
            "XObject" => dictionary! { "Im1" => image_id },
        },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(
            dictionary! { "Type" => "Pages", "Kids" => vec![Object::Reference(page_id)], "Count" => 1 },
        ),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set(
        "ID",
        Object::Array(vec![
            Object::string_literal(b"0123456789abcdef".to_vec()),
            Object::string_literal(b"0123456789abcdef".to_vec()),
        ]),
    );
    doc
}

fn save(mut doc: lopdf::Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[test]
fn bad_documents_get_typed_errors_and_leave_the_list_alone() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let good = dir.path().join("good.md");
    std::fs::write(&good, "# Notes\n\nThe kettle boils at noon.\n").unwrap();
    let kept = a.add_document(&good, &options()).unwrap().document;
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    let mut enc = pdf(Some("Quarterly figures are confidential."));
    let state = lopdf::EncryptionState::try_from(lopdf::EncryptionVersion::V2 {
        document: &enc,
        owner_password: "owner-secret",
        user_password: "user-secret",
        key_length: 128,
        permissions: lopdf::Permissions::all(),
    })
    .unwrap();
    enc.encrypt(&state).unwrap();
    let encrypted = write("secret.pdf", &save(enc));
    let scanned = write("scan.pdf", &save(pdf(None)));
    let corrupt = write(
        "broken.docx",
        b"PK\x03\x04 this is not really a zip archive",
    );
    let unsupported = write(
        "picture.png",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01",
    );
    let empty = write("empty.txt", b"   \n\n  ");
    // A DOCX whose document part inflates to 4 MB of zeros, against a 1 MB allowance.
    let bomb = {
        use std::io::Write as _;
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("[Content_Types].xml", o).unwrap();
        z.write_all(br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#).unwrap();
        z.start_file("word/document.xml", o).unwrap();
        z.write_all(&vec![b' '; 4 << 20]).unwrap();
        z.finish().unwrap();
        write("bomb.docx", &buf.into_inner())
    };
    let small_limits = DocumentOptions {
        max_decompressed_bytes: Some(1 << 20),
        ..options()
    };
    let tiny_file_limit = DocumentOptions {
        max_file_bytes: Some(16),
        ..options()
    };
    let cases: Vec<(&Path, &DocumentOptions, &str)> = vec![
        (&encrypted, &small_limits, "documents.encrypted_pdf"),
        (&scanned, &small_limits, "documents.no_text_layer"),
        (&corrupt, &small_limits, "documents.corrupt"),
        (&unsupported, &small_limits, "documents.unsupported"),
        (&empty, &small_limits, "documents.empty"),
        (&bomb, &small_limits, "documents.decompression_limit"),
        (&good, &tiny_file_limit, "documents.too_large"),
        (
            Path::new("/nonexistent/file.pdf"),
            &small_limits,
            "documents.io",
        ),
    ];
    for (path, opts, code) in cases {
        let before = a.documents().unwrap();
        let err = a.add_document(path, opts).unwrap_err();
        assert_eq!(err.code, code, "{}: {}", path.display(), err.message);
        assert!(!err.message.is_empty());
        assert_eq!(a.documents().unwrap(), before, "{}", path.display());
    }
    assert_eq!(a.documents().unwrap().len(), 1);
    assert_eq!(a.documents().unwrap()[0].id, kept.id);
    // A summary of pages a document lacks is refused before any work.
    let err = a
        .summarize(
            SummarizeRequest {
                document_id: kept.id,
                pages: Some([3, 4]),
                model: Some(smollm()),
                ..Default::default()
            },
            Box::new(|_| {}),
        )
        .unwrap_err();
    assert_eq!(err.code, "summarize.nothing_to_summarize");
    let err = a
        .summarize(
            SummarizeRequest {
                document_id: kept.id + 100,
                ..Default::default()
            },
            Box::new(|_| {}),
        )
        .unwrap_err();
    assert_eq!(err.code, "documents.not_found");
}

/// The limits on added documents are the user's settings: lowered, they refuse files the
/// defaults accept (with the limit named), they survive a restart, and out-of-range values are
/// refused without changing anything.
#[test]
fn document_limits_come_from_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let defaults = a.settings().unwrap().documents;
    assert_eq!(
        (
            defaults.max_file_mb,
            defaults.max_pages,
            defaults.max_decompressed_mb
        ),
        (200, 2000, 512)
    );
    let big = dir.path().join("notes.txt");
    std::fs::write(&big, "The kettle boils at noon. ".repeat(60_000)).unwrap();
    let no_model = DocumentOptions::default();

    let mut s = a.settings().unwrap();
    s.documents.max_file_mb = 1;
    s.documents.max_pages = 10;
    a.update_settings(s).unwrap();
    let e = a.add_document(&big, &no_model).unwrap_err();
    assert_eq!(e.code, "documents.too_large", "{}", e.message);
    assert!(e.message.contains("1.0 MB limit"), "{}", e.message);
    let e = a
        .add_document(&fixture("documents/bash.pdf"), &no_model)
        .unwrap_err();
    assert_eq!(e.code, "documents.too_many_pages", "{}", e.message);
    assert!(a.documents().unwrap().is_empty());

    // An explicit option still wins over the setting.
    let wide = DocumentOptions {
        max_file_bytes: Some(8 << 20),
        ..Default::default()
    };
    assert!(a.add_document(&big, &wide).is_ok());

    // Out of range: refused, the stored limits unchanged.
    let mut s = a.settings().unwrap();
    s.documents.max_pages = 0;
    assert_eq!(a.update_settings(s).unwrap_err().code, "settings.invalid");
    drop(a);
    let a = open(dir.path());
    let kept = a.settings().unwrap().documents;
    assert_eq!((kept.max_file_mb, kept.max_pages), (1, 10));
}

fn qwen() -> String {
    test_models()
        .join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
        .display()
        .to_string()
}

/// Share of a text's words that are Chinese: each CJK ideograph counts as a word, as does each
/// run of other letters (an English word left in a Chinese sentence counts once, not once per
/// letter).
fn cjk_share(text: &str) -> f64 {
    let is_cjk = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
    let (mut cjk, mut other, mut in_word) = (0usize, 0usize, false);
    for c in text.chars() {
        if is_cjk(c) {
            cjk += 1;
            in_word = false;
        } else if c.is_alphabetic() {
            if !in_word {
                other += 1;
            }
            in_word = true;
        } else {
            in_word = false;
        }
    }
    cjk as f64 / (cjk + other).max(1) as f64
}

#[test]
fn chinese_share_counts_words() {
    assert_eq!(cjk_share("The river town"), 0.0);
    assert_eq!(cjk_share("老茶馆"), 1.0);
    // Two ideographs and two English words.
    assert_eq!(cjk_share("茶馆 river town"), 0.5);
    assert_eq!(cjk_share("tea馆"), 0.5);
}

/// An English document summarized in Chinese, and a Chinese one in English, with the
/// multilingual Qwen2.5 test model: the summary is written in the language asked for.
#[test]
fn summaries_cross_languages_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let en = dir.path().join("river.md");
    std::fs::write(
        &en,
        "# The river town\n\nThe river runs past the old mill and under the stone bridge. \
         Every morning the bakers open their shops before dawn, and the smell of bread fills \
         the market square.\n\nIn spring the water rises. The miller closes the sluice gates \
         and the town council checks the dikes along the eastern bank.\n\nIn summer tourists \
         come for the boat races, which have been held every July since 1890.\n",
    )
    .unwrap();
    let zh = dir.path().join("chaguan.md");
    std::fs::write(
        &zh,
        "# 老茶馆\n\n老茶馆开在河边，已经有一百多年的历史。每天清晨，老人们来这里喝茶、下棋、\
         聊天。\n\n茶馆的主人姓王，他每天五点起床烧水。他说，好茶要用山泉水泡，水温不能太高。\
         \n\n到了周末，茶馆里会有说书人讲故事，年轻人也常常来听。\n",
    )
    .unwrap();
    let options = DocumentOptions {
        model: Some(qwen()),
        ..Default::default()
    };
    for (path, lang) in [(&en, "zh"), (&zh, "en")] {
        let doc = a.add_document(path, &options).unwrap().document.id;
        let (sink, rx) = collector();
        a.summarize(
            SummarizeRequest {
                document_id: doc,
                length: SummaryLength::Short,
                language: Some(lang.into()),
                model: Some(qwen()),
                max_part_tokens: Some(96),
                max_summary_tokens: Some(96),
                ..Default::default()
            },
            sink,
        )
        .unwrap();
        let (_, status, summary) = finish(&rx);
        assert_eq!(status, "done");
        assert_eq!(summary.language, lang);
        let share = cjk_share(&summary.text);
        eprintln!("summary in {lang}: {}", summary.text);
        if lang == "zh" {
            assert!(share > 0.6, "asked for Chinese: {:?}", summary.text);
        } else {
            assert!(share < 0.1, "asked for English: {:?}", summary.text);
        }
        assert!(!summary.key_points.is_empty());
    }
}
