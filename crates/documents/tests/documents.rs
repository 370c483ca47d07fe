//! Extraction and chunking on real documents that other projects wrote (fetched by
//! scripts/fetch-test-models into the test cache's documents/ folder), and on generated files
//! for the edge cases: encrypted and image-only PDFs, corrupt files, ZIP and PDF bombs, a 500 MB
//! file, unsupported types, and mutated copies of the real files.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hearth_documents::{
    chunk, detect, extract_bytes, extract_file, sha256_file, Chunk, DocumentKind, ExtractError,
    Extracted, Limits,
};
use lopdf::{dictionary, Document, Object, Stream};

fn docs_dir() -> PathBuf {
    let base = std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/hearth/test-models")
        });
    let dir = base.join("documents");
    assert!(
        dir.join(".complete-1").exists(),
        "the real test documents are missing from {}: run scripts/fetch-test-models",
        dir.display()
    );
    dir
}

fn real(name: &str) -> PathBuf {
    let path = docs_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-test-models",
        path.display()
    );
    path
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Every non-whitespace character, in order.
fn ink(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn check_chunks(doc: &Extracted, chunks: &[Chunk], count: &dyn Fn(&str) -> usize, max: usize) {
    assert!(!chunks.is_empty());
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.ordinal as usize, i);
        assert_eq!(
            c.token_count,
            count(&c.text),
            "chunk {i} reports its own count"
        );
        assert!(
            c.token_count <= max,
            "chunk {i} has {} > {max} tokens",
            c.token_count
        );
        assert!(!c.text.trim().is_empty());
    }
    let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(ink(&joined), ink(&doc.text()), "chunks reproduce the text");
}

// ---------------------------------------------------------------- real documents

#[test]
fn real_pdf_manual_keeps_physical_page_numbers() {
    let path = real("bashref.pdf");
    let doc = extract_file(&path, &Limits::default()).unwrap();
    assert_eq!(doc.kind, DocumentKind::Pdf);
    assert_eq!(doc.pages, Some(196));
    assert_eq!(doc.sha256, sha256_file(&path).unwrap());
    // Every page has text, and sections come in page order.
    let mut pages: Vec<u32> = doc.sections.iter().map(|s| s.page.unwrap()).collect();
    assert!(pages.windows(2).all(|w| w[0] <= w[1]));
    pages.dedup();
    assert_eq!(pages, (1..=196).collect::<Vec<u32>>());
    // Phrases and the physical pages a PDF viewer (and pdftotext) puts them on.
    let page_of = |phrase: &str| -> Vec<u32> {
        doc.sections
            .iter()
            .filter(|s| s.text.contains(phrase))
            .map(|s| s.page.unwrap())
            .collect()
    };
    assert_eq!(page_of("Reference Documentation for Bash"), vec![1]);
    assert_eq!(
        page_of("Bash is the shell, or command language interpreter, for the gnu operating"),
        vec![7]
    );
    assert_eq!(
        page_of("Simply naming a job can be used to bring it into the foreground"),
        vec![120]
    );
    assert_eq!(
        page_of("The arithmetic expression is evaluated according to the rules described below"),
        vec![20]
    );
    // The outline gives headings; a heading that starts mid-page cuts the page there.
    let job = doc
        .sections
        .iter()
        .find(|s| s.text.contains("Simply naming a job"))
        .unwrap();
    assert_eq!(job.heading.as_deref(), Some("Job Control Basics"));
    let arrays = doc
        .sections
        .iter()
        .find(|s| s.heading.as_deref() == Some("Arrays"))
        .unwrap();
    assert!(
        arrays.text.starts_with("6.7 Arrays"),
        "{}",
        &arrays.text[..40]
    );
    // Hyphenation across line ends is undone.
    assert!(doc
        .text()
        .contains("The expression undergoes the same\nexpansions"));
    assert!(!doc.text().contains("expres-\nsion"));
}

#[test]
fn real_pdf_chunks_cite_real_pages_and_cover_everything() {
    let doc = extract_file(&real("bashref.pdf"), &Limits::default()).unwrap();
    let max = 300;
    let chunks = chunk(&doc, &words, max);
    check_chunks(&doc, &chunks, &words, max);
    let mut last_start = 0;
    for c in &chunks {
        let (a, b) = (c.page_start.unwrap(), c.page_end.unwrap());
        assert!(1 <= a && a <= b && b <= 196);
        assert!(a >= last_start, "chunks go forward through the pages");
        last_start = a;
        // The chunk's first words really are on its first page.
        let first_line = c.text.lines().next().unwrap();
        assert!(
            doc.sections
                .iter()
                .any(|s| s.page == Some(a) && s.text.contains(first_line)),
            "chunk {} starts on page {a}",
            c.ordinal
        );
    }
    // Chunks are well filled: the manual has about 75k words.
    assert!(chunks.len() < 75_000 / (max / 2), "{} chunks", chunks.len());
}

#[test]
fn real_pdf_man_page() {
    let doc = extract_file(&real("bash.pdf"), &Limits::default()).unwrap();
    assert_eq!(doc.pages, Some(87));
    assert!(doc.sections[0].text.contains("GNU Bourne-Again SHell"));
    assert_eq!(doc.sections.last().unwrap().page, Some(87));
}

#[test]
fn real_html_manuals() {
    let doc = extract_file(&real("bashref.html"), &Limits::default()).unwrap();
    assert_eq!(doc.kind, DocumentKind::Html);
    assert_eq!(doc.title.as_deref(), Some("Bash Reference Manual"));
    assert_eq!(doc.pages, None);
    assert!(doc.sections.len() > 100);
    let job = doc
        .sections
        .iter()
        .find(|s| {
            s.text
                .contains("Simply naming a job can be used to bring it into the foreground")
        })
        .unwrap();
    assert_eq!(job.heading.as_deref(), Some("7.1 Job Control Basics"));
    // Markup, entities and navigation do not leak into the text.
    let text = doc.text();
    assert!(!text.contains("<div") && !text.contains("&amp;") && !text.contains("&lt;"));
    assert!(text.contains("[[ expression ]]"));

    let man = extract_file(&real("bash.html"), &Limits::default()).unwrap();
    assert_eq!(man.title.as_deref(), Some("Man page of BASH"));
    assert!(man
        .sections
        .iter()
        .any(|s| s.heading.as_deref() == Some("DESCRIPTION")));
    check_chunks(&man, &chunk(&man, &words, 200), &words, 200);
}

#[test]
fn real_odt_manual_has_headings_and_no_table_of_contents() {
    let doc = extract_file(&real("api-for-odfpy.odt"), &Limits::default()).unwrap();
    assert_eq!(doc.kind, DocumentKind::Odt);
    assert_eq!(
        doc.title.as_deref(),
        Some("Application Programmer's Interface for ODFPY")
    );
    let headings: Vec<&str> = doc
        .sections
        .iter()
        .filter_map(|s| s.heading.as_deref())
        .collect();
    for h in [
        "Introduction",
        "Creating a document",
        "The OpenDocument classes",
        "text module",
    ] {
        assert!(
            headings.contains(&h),
            "heading {h} in {:?}",
            &headings[..20]
        );
    }
    // The generated table of contents ("1 Introduction 3 ...") is left out.
    assert!(!doc.text().contains("Introduction 3"));
    assert!(doc.char_count() > 100_000);

    let table = extract_file(&real("simpletable.odt"), &Limits::default()).unwrap();
    assert_eq!(
        table.text(),
        "Cell 1\n\nCell 2\n\nCell 3 (bold)\n\nCell 4 (italic)"
    );
    let list = extract_file(&real("twolevellist.odt"), &Limits::default()).unwrap();
    assert!(list.text().contains("Line 1"), "{}", list.text());
}

#[test]
fn real_docx_files() {
    let styles = extract_file(&real("par-known-styles.docx"), &Limits::default()).unwrap();
    assert_eq!(styles.kind, DocumentKind::Docx);
    assert_eq!(styles.sections.len(), 2);
    assert_eq!(styles.sections[1].heading.as_deref(), Some("Heading 1"));
    assert_eq!(styles.sections[1].text, "Heading 1\n\nBody Text");

    let table = extract_file(&real("tbl-having-applied-style.docx"), &Limits::default()).unwrap();
    assert_eq!(
        table
            .text()
            .matches("and a hearty foo to you too sir!")
            .count(),
        3
    );

    let sections = extract_file(&real("doc-access-sections.docx"), &Limits::default()).unwrap();
    let text = sections.text();
    assert!(text.contains("Section one paragraph."));
    assert!(text.contains("Section three (sentinel section) paragraph."));

    let links = extract_file(&real("par-hlink-frags.docx"), &Limits::default()).unwrap();
    assert!(!links.text().is_empty());
}

#[test]
fn real_markdown_readme() {
    let doc = extract_file(&real("odfpy-README.md"), &Limits::default()).unwrap();
    assert_eq!(doc.kind, DocumentKind::Markdown);
    assert_eq!(doc.title.as_deref(), Some("ODFPY"));
    assert!(doc.sections.len() > 2);
    assert!(!doc.text().contains("```"));
}

// ---------------------------------------------------------------- chunking

fn model(name: &str) -> hearth_tokenizer::GgufTokenizer {
    let base = docs_dir().parent().unwrap().to_path_buf();
    let path = base.join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-test-models",
        path.display()
    );
    hearth_tokenizer::GgufTokenizer::load(&path).unwrap()
}

#[test]
fn chunks_fit_real_model_tokenizers() {
    // SmolLM2's byte-level BPE on the real manual, at a typical map-stage budget.
    let smol = model("smollm2-135m-instruct-q4_1.gguf");
    let count = |s: &str| smol.token_count(s).unwrap();
    let doc = extract_file(&real("bashref.pdf"), &Limits::default()).unwrap();
    let chunks = chunk(&doc, &count, 1024);
    check_chunks(&doc, &chunks, &count, 1024);
    let total: usize = chunks.iter().map(|c| c.token_count).sum();
    let mean = total / chunks.len();
    eprintln!("bashref.pdf with SmolLM2's tokenizer: {} chunks of at most 1024 tokens, mean {mean}, {total} tokens", chunks.len());
    assert!(
        mean > 700,
        "chunks are well filled: mean {mean} tokens over {} chunks",
        chunks.len()
    );

    // Qwen2.5's tokenizer on Chinese text with no spaces, and a tight budget.
    let qwen = model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let count = |s: &str| qwen.token_count(s).unwrap();
    let zh = "\u{672C}\u{624B}\u{518C}\u{8BF4}\u{660E}\u{5982}\u{4F55}\u{5B89}\u{88C5}\u{8F6F}\u{4EF6}\u{3002}\u{8BF7}\u{5148}\u{5907}\u{4EFD}\u{6570}\u{636E}\u{FF01}\u{662F}\u{5426}\u{7EE7}\u{7EED}\u{FF1F}";
    let text = format!("{}\n\n{}", zh.repeat(40), "\u{6570}".repeat(300));
    let doc = extract_bytes(text.into_bytes(), Some("txt"), &Limits::default()).unwrap();
    for max in [7, 32, 200] {
        let chunks = chunk(&doc, &count, max);
        check_chunks(&doc, &chunks, &count, max);
    }
}

#[test]
fn chunks_never_exceed_a_non_additive_count() {
    // Tokens counted as ceil(bytes / 4): joining pieces can cost more than the pieces did.
    let count = |s: &str| s.len().div_ceil(4);
    let doc = extract_file(&real("bashref.html"), &Limits::default()).unwrap();
    for max in [16, 100, 700] {
        let chunks = chunk(&doc, &count, max);
        check_chunks(&doc, &chunks, &count, max);
    }
}

#[test]
fn cjk_text_cuts_at_chinese_sentence_ends_and_then_characters() {
    let sentence = "\u{6587}\u{6863}\u{5206}\u{5757}\u{6D4B}\u{8BD5}\u{3002}"; // 文档分块测试。
    let para = sentence.repeat(30);
    let text = format!("{para}\n\n{}\u{FF01}\u{FF1F}", "\u{957F}".repeat(500));
    let doc = extract_bytes(text.into_bytes(), Some("txt"), &Limits::default()).unwrap();
    let chars = |s: &str| s.chars().filter(|c| !c.is_whitespace()).count();
    let chunks = chunk(&doc, &chars, 20);
    check_chunks(&doc, &chunks, &chars, 20);
    // Sentence-sized pieces end at 。 (two sentences of 7 fit in 20).
    assert!(chunks[0].text.ends_with('\u{3002}'));
    assert_eq!(chars(&chunks[0].text), 14);
    // The 502-character run without sentence ends is cut between characters.
    assert!(
        chunks
            .iter()
            .filter(|c| c.text.starts_with('\u{957F}'))
            .count()
            >= 25
    );
}

#[test]
fn chunks_prefer_paragraph_and_heading_boundaries() {
    let md = "# One\n\nAlpha beta gamma. Delta epsilon.\n\nZeta eta theta.\n\n# Two\n\nIota kappa lambda mu. Nu xi omicron.\n";
    let doc = extract_bytes(md.as_bytes().to_vec(), Some("md"), &Limits::default()).unwrap();
    let chunks = chunk(&doc, &words, 12);
    check_chunks(&doc, &chunks, &words, 12);
    assert_eq!(chunks[0].heading.as_deref(), Some("One"));
    assert!(chunks[0].text.ends_with("Zeta eta theta."), "{:?}", chunks);
    assert_eq!(chunks[1].heading.as_deref(), Some("Two"));
    assert!(chunks[1].text.starts_with("Two"));
}

// ---------------------------------------------------------------- generated PDFs

/// A PDF with one page per entry: text drawn in Helvetica, or (None) an image only.
fn pdf(pages: &[Option<&str>]) -> Document {
    let mut doc = Document::with_version("1.5");
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
    let mut kids = Vec::new();
    for page in pages {
        let content = match page {
            Some(text) => {
                let mut ops = String::new();
                for (i, line) in text.lines().enumerate() {
                    let escaped = line
                        .replace('\\', "\\\\")
                        .replace('(', "\\(")
                        .replace(')', "\\)");
                    ops.push_str(&format!(
                        "BT /F1 12 Tf 72 {} Td ({escaped}) Tj ET\n",
                        700 - 16 * i
                    ));
                }
                ops
            }
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
        kids.push(Object::Reference(page_id));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
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

fn save(mut doc: Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn encrypted(user_password: &str) -> Vec<u8> {
    let mut doc = pdf(&[Some("Quarterly figures are confidential.")]);
    let version = lopdf::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner-secret",
        user_password,
        key_length: 128,
        permissions: lopdf::Permissions::all(),
    };
    let state = lopdf::EncryptionState::try_from(version).unwrap();
    doc.encrypt(&state).unwrap();
    save(doc)
}

#[test]
fn generated_pdf_text_and_pages() {
    let bytes = save(pdf(&[
        Some("First page text."),
        Some("Second page (with parens)."),
        Some("Third."),
    ]));
    let doc = extract_bytes(bytes, Some("pdf"), &Limits::default()).unwrap();
    assert_eq!(doc.pages, Some(3));
    let got: Vec<(Option<u32>, &str)> = doc
        .sections
        .iter()
        .map(|s| (s.page, s.text.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(1), "First page text."),
            (Some(2), "Second page (with parens)."),
            (Some(3), "Third.")
        ]
    );
}

#[test]
fn encrypted_pdf_needs_a_password() {
    let err = extract_bytes(encrypted("user-secret"), Some("pdf"), &Limits::default()).unwrap_err();
    assert!(matches!(err, ExtractError::EncryptedPdf), "{err:?}");
    assert_eq!(err.code(), "encrypted_pdf");
    assert!(err.to_string().contains("password"));
    // Encrypted with an empty user password (only an owner password): readable as usual.
    let doc = extract_bytes(encrypted(""), Some("pdf"), &Limits::default()).unwrap();
    assert_eq!(doc.text(), "Quarterly figures are confidential.");
}

#[test]
fn image_only_pdf_has_no_text_layer() {
    let bytes = save(pdf(&[None, None]));
    let err = extract_bytes(bytes, Some("pdf"), &Limits::default()).unwrap_err();
    assert!(
        matches!(err, ExtractError::NoTextLayer { pages: 2 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("OCR"));
    // A scan with one page of real text keeps that page.
    let bytes = save(pdf(&[None, Some("Typed cover note."), None]));
    let doc = extract_bytes(bytes, Some("pdf"), &Limits::default()).unwrap();
    assert_eq!(doc.sections.len(), 1);
    assert_eq!(doc.sections[0].page, Some(2));
}

#[test]
fn pdf_page_limit_is_checked_before_reading_pages() {
    let limits = Limits {
        max_pages: 50,
        ..Limits::default()
    };
    let started = Instant::now();
    let err = extract_file(&real("bashref.pdf"), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            ExtractError::TooManyPages {
                pages: 196,
                limit: 50
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("196 pages"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A zlib stream of `megabytes` MiB of spaces, built from one compressed block repeated (valid
/// deflate, since every block only refers back to spaces); no checksum at the end.
fn zlib_spaces(megabytes: usize) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let input = vec![b' '; 1 << 20];
    let mut block = Vec::with_capacity(1 << 16);
    c.compress_vec(&input, &mut block, flate2::FlushCompress::Sync)
        .unwrap();
    let mut out = vec![0x78, 0xDA];
    for _ in 0..megabytes {
        out.extend_from_slice(&block);
    }
    out.extend_from_slice(&[0x03, 0x00]); // an empty final block
    out
}

#[test]
fn pdf_bomb_stops_at_the_decompression_limit() {
    let mut doc = pdf(&[Some("Looks harmless.")]);
    let bomb = doc.add_object(Stream::new(
        dictionary! { "Filter" => "FlateDecode" },
        zlib_spaces(1024),
    ));
    // Draw it as a form on the page, so the extractor would inflate it.
    let page = *doc.get_pages().get(&1).unwrap();
    doc.get_dictionary_mut(page)
        .unwrap()
        .set("Contents", Object::Reference(bomb));
    let bytes = save(doc);
    assert!(
        bytes.len() < 4 << 20,
        "the bomb is small: {} bytes",
        bytes.len()
    );
    let limits = Limits {
        max_decompressed_bytes: 64 << 20,
        ..Limits::default()
    };
    let started = Instant::now();
    let err = extract_bytes(bytes, Some("pdf"), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            ExtractError::DecompressionLimit {
                kind: DocumentKind::Pdf,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // A real manual under a tiny allowance is refused the same way.
    let tiny = Limits {
        max_decompressed_bytes: 100_000,
        ..Limits::default()
    };
    let err = extract_file(&real("bash.pdf"), &tiny).unwrap_err();
    assert!(
        matches!(err, ExtractError::DecompressionLimit { .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- generated ZIP packages

/// Writes a ZIP by hand so tests control every header: (name, stored bytes, method, declared
/// uncompressed size).
fn raw_zip(entries: &[(&str, Vec<u8>, u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, method, declared) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // version needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&method.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes()); // time, date
            let crc_value = if *method == 0 { crc } else { 0 };
            h.extend_from_slice(&crc_value.to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&declared.to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central {
                h.extend_from_slice(&[0u8; 10]); // comment, disk, attributes
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(data);
        central.extend(header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn stored(name: &str, text: &str) -> (&'static str, Vec<u8>, u16, u32) {
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    (name, text.as_bytes().to_vec(), 0, text.len() as u32)
}

#[test]
fn docx_zip_bomb_is_refused_while_inflating() {
    // 3 GiB of spaces in word/document.xml, from a file of about 3 MB.
    let deflate = {
        let z = zlib_spaces(3 * 1024);
        z[2..].to_vec()
    };
    let limits = Limits {
        max_decompressed_bytes: 50 << 20,
        ..Limits::default()
    };
    // Honest header: refused before inflating anything.
    let honest = raw_zip(&[
        stored("[Content_Types].xml", "<Types/>"),
        ("word/document.xml", deflate.clone(), 8, u32::MAX - 1),
    ]);
    let started = Instant::now();
    let err = extract_bytes(honest, Some("docx"), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            ExtractError::DecompressionLimit {
                kind: DocumentKind::Docx,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Lying header (declares 1 KB): stopped by the allowance or by the reader's own size
    // check; either way it never inflates the 3 GiB.
    let lying = raw_zip(&[
        stored("[Content_Types].xml", "<Types/>"),
        ("word/document.xml", deflate, 8, 1024),
    ]);
    let started = Instant::now();
    let err = extract_bytes(lying, Some("docx"), &limits).unwrap_err();
    eprintln!("lying ZIP header: {err:?}");
    assert!(
        matches!(
            err,
            ExtractError::DecompressionLimit { .. } | ExtractError::Corrupt { .. }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn generated_docx_skips_deleted_and_fallback_text() {
    let document = r#"<?xml version="1.0"?><w:document xmlns:w="w" xmlns:mc="mc"><w:body>
<w:p><w:pPr><w:pStyle w:val="Kop1"/></w:pPr><w:r><w:t>Inleiding</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">Kept </w:t></w:r><w:del><w:r><w:delText>deleted</w:delText></w:r></w:del><w:r><w:t>text</w:t><w:tab/><w:t>tab</w:t><w:br/><w:t>line &amp; more</w:t></w:r></w:p>
<w:p><w:r><mc:AlternateContent><mc:Choice><w:drawing><w:txbxContent><w:p><w:r><w:t>Box text</w:t></w:r></w:p></w:txbxContent></w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>Box text</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>
<w:p><w:r><w:instrText>PAGEREF x</w:instrText><w:t>中文段落。</w:t></w:r></w:p>
</w:body></w:document>"#;
    let styles = r#"<w:styles xmlns:w="w"><w:style w:styleId="Kop1"><w:name w:val="heading 1"/></w:style></w:styles>"#;
    let core = r#"<cp:coreProperties xmlns:cp="c" xmlns:dc="d"><dc:title>Verslag</dc:title></cp:coreProperties>"#;
    let bytes = raw_zip(&[
        stored("[Content_Types].xml", "<Types/>"),
        stored("word/document.xml", document),
        stored("word/styles.xml", styles),
        stored("docProps/core.xml", core),
    ]);
    let doc = extract_bytes(bytes, Some("docx"), &Limits::default()).unwrap();
    assert_eq!(doc.title.as_deref(), Some("Verslag"));
    assert_eq!(doc.sections.len(), 1);
    assert_eq!(doc.sections[0].heading.as_deref(), Some("Inleiding"));
    assert_eq!(
        doc.sections[0].text,
        "Inleiding\n\nKept text tab\nline & more\n\nBox text\n\n中文段落。"
    );
}

#[test]
fn generated_epub_reads_the_spine_in_order() {
    let container = r#"<container><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;
    let opf = r#"<package><metadata><dc:title xmlns:dc="dc">A Small Book</dc:title></metadata>
<manifest><item id="c2" href="text/ch%202.xhtml" media-type="application/xhtml+xml"/><item id="c1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/><item id="css" href="s.css" media-type="text/css"/></manifest>
<spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>"#;
    let ch1 = r#"<html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title></head><body><h1>Chapter One</h1><p>It begins.</p></body></html>"#;
    let ch2 = r#"<html xmlns="http://www.w3.org/1999/xhtml"><body><h1>Chapter Two</h1><p>It ends.<br/>Really.</p></body></html>"#;
    let bytes = raw_zip(&[
        stored("mimetype", "application/epub+zip"),
        stored("META-INF/container.xml", container),
        stored("OEBPS/content.opf", opf),
        stored("OEBPS/text/ch1.xhtml", ch1),
        stored("OEBPS/text/ch 2.xhtml", ch2),
    ]);
    let doc = extract_bytes(bytes, Some("epub"), &Limits::default()).unwrap();
    assert_eq!(doc.kind, DocumentKind::Epub);
    assert_eq!(doc.title.as_deref(), Some("A Small Book"));
    let got: Vec<(Option<&str>, &str)> = doc
        .sections
        .iter()
        .map(|s| (s.heading.as_deref(), s.text.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("Chapter One"), "Chapter One\n\nIt begins."),
            (Some("Chapter Two"), "Chapter Two\n\nIt ends.\nReally.")
        ]
    );
}

// ---------------------------------------------------------------- bad input

#[test]
fn file_of_500_mb_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.pdf");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(500 * 1024 * 1024).unwrap(); // sparse: no disk used, nothing to read
    let started = Instant::now();
    let err = extract_file(&path, &Limits::default()).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused without reading"
    );
    match &err {
        ExtractError::TooLarge { size, limit } => {
            assert_eq!(*size, 500 * 1024 * 1024);
            assert_eq!(*limit, Limits::default().max_file_bytes);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "this file is 500 MB, more than the 200 MB limit set in Settings"
    );
}

#[test]
fn corrupt_files_get_clear_errors() {
    let limits = Limits::default();
    let pdf_bytes = std::fs::read(real("bash.pdf")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer garbage".to_vec(),
        ),
        ("pdf", pdf_bytes[..2000].to_vec()),
        (
            "docx",
            b"PK\x03\x04 this is not really a zip archive".to_vec(),
        ),
        (
            "docx",
            raw_zip(&[
                stored("[Content_Types].xml", "<Types/>"),
                stored("word/other.xml", "x"),
            ]),
        ),
        (
            "odt",
            raw_zip(&[stored(
                "mimetype",
                "application/vnd.oasis.opendocument.text",
            )]),
        ),
        (
            "docx",
            raw_zip(&[stored(
                "word/document.xml",
                "<w:document><w:body><w:p><w:t>unclosed",
            )]),
        ),
        ("pdf", vec![0xAB; 4096]),
    ];
    for (ext, bytes) in cases {
        let err = extract_bytes(bytes, Some(ext), &limits).unwrap_err();
        assert!(
            matches!(err, ExtractError::Corrupt { .. }),
            "{ext}: {err:?}"
        );
        assert_eq!(err.code(), "corrupt");
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}

#[test]
fn unsupported_types_are_named() {
    let limits = Limits::default();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01".to_vec();
    let xlsx = raw_zip(&[
        stored("[Content_Types].xml", "<Types/>"),
        stored("xl/workbook.xml", "<workbook/>"),
    ]);
    let ods = raw_zip(&[stored(
        "mimetype",
        "application/vnd.oasis.opendocument.spreadsheet",
    )]);
    let plain_zip = raw_zip(&[stored("notes/a.txt", "hello")]);
    let elf = b"\x7FELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    for (bytes, ext, name) in [
        (png, "png", "PNG image"),
        (xlsx, "xlsx", "Excel workbook"),
        (ods, "ods", "OpenDocument spreadsheet"),
        (plain_zip, "zip", "ZIP archive"),
        (elf, "", "program (ELF)"),
    ] {
        let err = extract_bytes(bytes, Some(ext), &limits).unwrap_err();
        match &err {
            ExtractError::Unsupported(what) => assert_eq!(what, name),
            other => panic!("{name}: {other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with(&format!("{name} files are not supported")));
    }
    assert!(matches!(
        extract_bytes(Vec::new(), Some("txt"), &limits),
        Err(ExtractError::Empty {
            kind: DocumentKind::Text
        })
    ));
    assert!(matches!(
        extract_bytes(b"  \n\n ".to_vec(), Some("md"), &limits),
        Err(ExtractError::Empty {
            kind: DocumentKind::Markdown
        })
    ));
    // Content decides; the extension only breaks ties.
    let html = std::fs::read(real("bash.html")).unwrap();
    assert_eq!(detect(&html, Some("txt")).unwrap(), DocumentKind::Html);
    let odt = std::fs::read(real("simpletable.odt")).unwrap();
    assert_eq!(detect(&odt, Some("zip")).unwrap(), DocumentKind::Odt);
    assert_eq!(detect(&odt, None).unwrap(), DocumentKind::Odt);
}

// ---------------------------------------------------------------- never panics

/// A small deterministic generator, so failures can be replayed.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_and_truncated_real_files_never_crash() {
    let caught = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = caught.clone();
    // Panics inside the extraction thread are caught and counted here; any other panic (a
    // failing assertion in a test) is reported as usual.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("document-extract") {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            previous(info);
        }
    }));
    let small_pdf = save(pdf(&[
        Some("Alpha page."),
        None,
        Some("Gamma (page) three."),
    ]));
    let html = std::fs::read(real("bashref.html")).unwrap()[..60_000].to_vec();
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![("pdf", small_pdf), ("html", html)];
    for name in [
        "par-known-styles.docx",
        "simpletable.odt",
        "twolevellist.odt",
        "odfpy-README.md",
        "doc-access-sections.docx",
    ] {
        let ext = name.rsplit('.').next().unwrap();
        seeds.push((ext, std::fs::read(real(name)).unwrap()));
    }
    let limits = Limits {
        max_decompressed_bytes: 32 << 20,
        ..Limits::default()
    };
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (ext, original) in &seeds {
        for round in 0..40 {
            let mut bytes = original.clone();
            match round % 4 {
                0 => bytes.truncate(rng.below(bytes.len())),
                1 => {
                    for _ in 0..1 + rng.below(20) {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next() as u8;
                    }
                }
                2 => {
                    let at = rng.below(bytes.len());
                    let len = rng.below(bytes.len() - at).min(4096);
                    bytes.drain(at..at + len);
                }
                _ => {
                    let at = rng.below(bytes.len());
                    let from = rng.below(bytes.len());
                    let piece: Vec<u8> = bytes[from..(from + 512).min(bytes.len())].to_vec();
                    bytes.splice(at..at, piece);
                }
            }
            let started = Instant::now();
            let result = extract_bytes(bytes, Some(ext), &limits);
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{ext} round {round} took too long"
            );
            let key = match &result {
                Ok(doc) => {
                    // Whatever comes out must chunk cleanly too.
                    check_chunks(doc, &chunk(doc, &words, 50), &words, 50);
                    "ok".to_string()
                }
                Err(e) => e.code().to_string(),
            };
            *outcomes.entry(key).or_default() += 1;
            runs += 1;
        }
    }
    eprintln!(
        "{runs} mutated files: {outcomes:?}; {} parser panics caught and reported as corrupt",
        caught.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(runs, seeds.len() * 40);
    assert!(outcomes.get("ok").copied().unwrap_or(0) > 0);
}

#[test]
fn sha256_streams_a_real_file() {
    let path = real("bashref.html");
    assert_eq!(
        sha256_file(&path).unwrap(),
        "572c0a2b543bc0cb57ae5bd32345c3c8f477672b1180ad01a5eece45abf414e0"
    );
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.write_all(b"").unwrap();
    assert_eq!(
        sha256_file(tmp.path()).unwrap(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
