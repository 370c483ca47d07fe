//! Translation end to end with the real test models: quality measured with chrF on human
//! translations from Debian's gettext catalogs (not written by this project), glossaries,
//! Chinese output, a ten-page Markdown document, model choice, cancel, history, export, and
//! language detection on the catalogs' texts.
//!
//! The catalogs come from scripts/fetch-test-models (`$HEARTH_TEST_MODELS/translation/`).
//! Model tests run one at a time (they share the two cores).

use std::path::PathBuf;
use std::sync::{mpsc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use hearth_assistant::translate::chrf::{chrf, corpus_chrf};
use hearth_assistant::translate::export::ExportFormat;
use hearth_assistant::translate::gettext::MoCatalog;
use hearth_assistant::translate::{
    detect, BlockKind, GlossaryTerm, Language, ModelFamily, TextFormat, TranslationResult,
};
use hearth_assistant::{Assistant, AssistantConfig, TranslateEvent, TranslateRequest};

fn models_dir() -> PathBuf {
    std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/hearth/test-models")
        })
}

fn test_file(rel: &str) -> PathBuf {
    let p = models_dir().join(rel);
    assert!(
        p.is_file(),
        "test file {} is missing: run scripts/fetch-test-models",
        p.display()
    );
    p
}

fn qwen() -> PathBuf {
    test_file("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
}

fn catalog(lang_dir: &str, domain: &str) -> MoCatalog {
    MoCatalog::open(&test_file(&format!("translation/{lang_dir}/{domain}.mo"))).unwrap()
}

/// The translation of a message, found by its text with surrounding whitespace ignored;
/// line breaks inside translations become spaces.
fn lookup(c: &MoCatalog, msgid: &str) -> String {
    let m = c
        .messages()
        .iter()
        .find(|m| m.context.is_none() && m.id.trim() == msgid)
        .unwrap_or_else(|| panic!("message {msgid:?} not in the catalog"));
    m.translations[0]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// One assistant with the Qwen test model installed, shared by the model tests, and a lock so
/// that they run one at a time.
fn shared() -> (MutexGuard<'static, ()>, &'static Assistant) {
    static LOCK: Mutex<()> = Mutex::new(());
    static ASSISTANT: OnceLock<(tempfile::TempDir, Assistant)> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (_, a) = ASSISTANT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let a = Assistant::open(AssistantConfig {
            data_dir: Some(dir.path().to_path_buf()),
            threads: Some(2),
        })
        .unwrap()
        .assistant;
        a.import_model(&qwen()).unwrap();
        (dir, a)
    });
    (guard, a)
}

/// Runs a translation to its end: the events and the result (Done or Failed's partial).
fn run(a: &Assistant, req: TranslateRequest) -> (Vec<TranslateEvent>, TranslationResult, String) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    a.translate(req, Box::new(move |e| drop(tx.lock().unwrap().send(e))))
        .unwrap();
    collect(&rx)
}

fn collect(
    rx: &mpsc::Receiver<TranslateEvent>,
) -> (Vec<TranslateEvent>, TranslationResult, String) {
    let mut events = Vec::new();
    loop {
        let e = rx
            .recv_timeout(Duration::from_secs(600))
            .expect("the translation ends");
        match &e {
            TranslateEvent::Done { result, status, .. } => {
                let (r, s) = (result.clone(), status.clone());
                events.push(e);
                return (events, r, s);
            }
            TranslateEvent::Failed { partial, error, .. } => {
                panic!("translation failed: {error:?} (partial: {partial:?})")
            }
            _ => events.push(e),
        }
    }
}

fn text_request(text: &str, from: &str, to: &str) -> TranslateRequest {
    TranslateRequest {
        text: Some(text.to_string()),
        source_lang: Some(from.to_string()),
        target_lang: to.to_string(),
        use_stored_glossary: true,
        ..Default::default()
    }
}

/// Human translations this project did not write: (catalog, English message, direction).
/// For X→en the catalog's translation is the source and the English message the reference.
const PAIRS: &[(&str, &str, &str)] = &[
    ("coreutils", "Print information about users who are currently logged in.", "en-zh"),
    ("coreutils", "Print the full filename of the current working directory.", "en-zh"),
    ("coreutils", "Write a random permutation of the input lines to standard output.", "en-zh"),
    ("glib20", "Several passwords entered have been incorrect, and your access will be locked out after further failures.", "en-zh"),
    ("glib20", "This is the last chance to enter the password correctly before your access is locked out.", "en-zh"),
    ("glib20", "List contents of directories in a tree-like format.", "en-zh"),
    ("coreutils", "Send signals to processes, or list signals.", "zh-en"),
    ("coreutils", "Exit with a status code indicating success.", "zh-en"),
    ("coreutils", "Compare sorted files FILE1 and FILE2 line by line.", "zh-en"),
    ("glib20", "Invoke a method on a remote object.", "zh-en"),
    ("glib20", "Move/Restore files or directories to the trash.", "zh-en"),
    ("glib20", "Username or password is too long for SOCKSv5 protocol.", "zh-en"),
    ("coreutils", "Mandatory arguments to long options are mandatory for short options too.", "en-fr"),
    ("coreutils", "Call the unlink function to remove the specified FILE.", "en-fr"),
    ("coreutils", "Output platform dependent limits in a format useful for shell scripts.", "en-fr"),
    ("coreutils", "Start COMMAND, and kill it if still running after DURATION.", "en-fr"),
    ("glib20", "Launch an application from a desktop file, passing optional filename arguments to it.", "en-fr"),
    ("glib20", "SOCKSv5 authentication failed due to wrong username or password.", "en-fr"),
    ("coreutils", "Note that the -d and -t options accept different time-date formats.", "fr-en"),
    ("coreutils", "Create the DIRECTORY(ies), if they do not already exist.", "fr-en"),
    ("coreutils", "Run COMMAND, with modified buffering operations for its standard streams.", "fr-en"),
    ("coreutils", "Special files require major and minor device numbers.", "fr-en"),
    ("glib20", "Document ended unexpectedly inside an element-opening tag.", "fr-en"),
    ("glib20", "The SOCKSv5 proxy server uses unknown address type.", "fr-en"),
    ("coreutils", "With no FILE, or when FILE is -, read standard input.", "en-de"),
    ("coreutils", "Create named pipes (FIFOs) with the given NAMEs.", "en-de"),
    ("coreutils", "Set each NAME to VALUE in the environment and run COMMAND.", "en-de"),
    ("glib20", "Cannot use datagram operations on a non-datagram socket.", "en-de"),
    ("glib20", "No schema files found: removed existing output file.", "en-de"),
    ("glib20", "Copy one or more files from SOURCE to DESTINATION.", "en-de"),
    ("coreutils", "Print numbers from FIRST to LAST, in steps of INCREMENT.", "de-en"),
    ("coreutils", "Output a permuted index, including context, of the words in the input files.", "de-en"),
    ("coreutils", "Call the link function to create a link named FILE2 to an existing FILE1.", "de-en"),
    ("coreutils", "Fifos do not have major and minor device numbers.", "de-en"),
    ("glib20", "SOCKSv5 proxy does not support provided address type.", "de-en"),
    ("glib20", "Read from standard input and save to DEST.", "de-en"),
    ("coreutils", "If MODE is '0' the corresponding stream will be unbuffered.", "en-es"),
    ("coreutils", "Without any OPTION, print some useful set of identified information.", "en-es"),
    ("coreutils", "Reformat NUMBER(s), or the numbers from standard input if none are specified.", "en-es"),
    ("coreutils", "Rename SOURCE to DEST, or move SOURCE(s) to DIRECTORY.", "en-es"),
    ("glib20", "Cannot use datagram operations on a socket with a timeout set.", "en-es"),
    ("glib20", "The SOCKSv5 proxy requires an authentication method that is not supported by GLib.", "en-es"),
    ("coreutils", "If no option is specified, -P is assumed.", "es-en"),
    ("coreutils", "Create the special file NAME of the given TYPE.", "es-en"),
    ("coreutils", "Exit with the status determined by EXPRESSION.", "es-en"),
    ("coreutils", "Write sorted concatenation of all FILE(s) to standard output.", "es-en"),
    ("glib20", "Proxying over a non-TCP connection is not supported.", "es-en"),
    ("glib20", "The server is not a SOCKSv4 proxy server.", "es-en"),
];

/// Lowest corpus chrF each direction must reach with the Qwen2.5-Coder-0.5B test model (greedy).
/// Set 8 to 12 points under the scores measured when the test was written (docs/quality.md).
const THRESHOLDS: &[(&str, f64)] = &[
    ("en-zh", 24.0),
    ("zh-en", 54.0),
    ("en-fr", 44.0),
    ("fr-en", 51.0),
    ("en-de", 32.0),
    ("de-en", 20.0),
    ("en-es", 40.0),
    ("es-en", 46.0),
];

fn lang_dir(code: &str) -> &'static str {
    match code {
        "zh" => "zh_CN",
        "fr" => "fr",
        "de" => "de",
        "es" => "es",
        other => panic!("no catalog for {other}"),
    }
}

#[test]
fn quality_chrf_per_direction_on_gettext_translations() {
    let (_g, a) = shared();
    let started = Instant::now();
    let mut report = String::from(
        "| direction | pairs | corpus chrF | sentence chrF (each) |\n|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for (dir, threshold) in THRESHOLDS {
        let (from, to) = dir.split_once('-').unwrap();
        let foreign = if from == "en" { to } else { from };
        let mut pairs = Vec::new();
        for (domain, msgid, _) in PAIRS.iter().filter(|p| p.2 == *dir) {
            let c = catalog(lang_dir(foreign), domain);
            let translated = lookup(&c, msgid);
            let (source, reference) = if from == "en" {
                (msgid.to_string(), translated)
            } else {
                (translated, msgid.to_string())
            };
            let (_, r, status) = run(a, text_request(&source, from, to));
            assert_eq!(status, "done");
            assert!(
                !r.text.contains('\u{fffd}'),
                "broken characters: {:?}",
                r.text
            );
            eprintln!(
                "[{dir}] {source}\n    -> {}\n    ref {reference}",
                r.text.trim()
            );
            pairs.push((r.text.trim().to_string(), reference));
        }
        assert!(pairs.len() >= 5, "{dir}: {} pairs", pairs.len());
        let corpus = corpus_chrf(pairs.iter().map(|(h, r)| (h.as_str(), r.as_str())));
        let each: Vec<String> = pairs
            .iter()
            .map(|(h, r)| format!("{:.1}", chrf(h, r)))
            .collect();
        report.push_str(&format!(
            "| {dir} | {} | {corpus:.1} | {} |\n",
            pairs.len(),
            each.join(", ")
        ));
        if corpus < *threshold {
            failures.push(format!("{dir}: chrF {corpus:.1} < {threshold}"));
        }
    }
    eprintln!(
        "{report}\n{} pairs in {:.0} s",
        PAIRS.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(PAIRS.len() >= 40);
    assert!(failures.is_empty(), "{failures:?}\n{report}");
}

fn term(s: &str, t: &str) -> GlossaryTerm {
    GlossaryTerm {
        source: s.into(),
        target: t.into(),
    }
}

#[test]
fn glossary_terms_are_prompted_and_checked() {
    let (_g, a) = shared();
    let started = Instant::now();
    a.set_glossary_term("en", "fr", "settings", "préférences", None)
        .unwrap();
    let mut req = text_request("Open the settings and choose a new password.", "en", "fr");
    req.glossary = vec![term("password", "code secret")];
    let (_, r, _) = run(a, req);
    let lower = r.text.to_lowercase();
    eprintln!("glossary en-fr: {}", r.text);
    assert!(lower.contains("préférences"), "{}", r.text);
    assert!(lower.contains("code secret"), "{}", r.text);
    assert!(r.glossary_issues.is_empty(), "{:?}", r.glossary_issues);

    let mut req = text_request(
        "Hearth runs language models on your own computer.",
        "en",
        "zh",
    );
    req.glossary = vec![term("Hearth", "炉边"), term("computer", "电脑")];
    let (_, r, _) = run(a, req);
    eprintln!("glossary en-zh: {}", r.text);
    // The name (an invented word the model cannot know) comes out as prescribed. A 0.5B model
    // may drop a clause altogether; then its term is flagged, never silently lost.
    assert!(r.text.contains("炉边"), "{}", r.text);
    for t in [("Hearth", "炉边"), ("computer", "电脑")] {
        let present = r.text.contains(t.1);
        let flagged = r
            .glossary_issues
            .iter()
            .any(|i| i.source_term == t.0 && i.expected == t.1);
        assert_eq!(present, !flagged, "{t:?} in {:?}", r.text);
    }

    // Whatever the model writes, an issue is reported exactly for a prescribed term missing
    // from the result.
    let mut req = text_request("The kernel writes the log to the disk.", "en", "de");
    req.glossary = vec![
        term("kernel", "Kern"),
        term("log", "Protokoll"),
        term("disk", "Platte"),
    ];
    let (_, r, _) = run(a, req);
    eprintln!("glossary en-de: {} {:?}", r.text, r.glossary_issues);
    for t in [("kernel", "Kern"), ("log", "Protokoll"), ("disk", "Platte")] {
        let present = r.text.to_lowercase().contains(&t.1.to_lowercase());
        let flagged = r
            .glossary_issues
            .iter()
            .any(|i| i.source_term == t.0 && i.expected == t.1);
        assert_eq!(present, !flagged, "{t:?} in {:?}", r.text);
    }
    eprintln!("glossary test: {:.0} s", started.elapsed().as_secs_f64());
}

#[test]
fn chinese_output_has_no_broken_characters() {
    let (_g, a) = shared();
    let text = "Several passwords entered have been incorrect. This is the last chance to enter \
                the password correctly before your access is locked out.\n\nCopy one or more \
                files from the source folder to the destination folder.";
    let (events, r, _) = run(a, text_request(text, "en", "zh"));
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            TranslateEvent::Delta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    eprintln!("zh: {}", r.text);
    assert!(!streamed.contains('\u{fffd}'), "{streamed:?}");
    assert!(!r.text.contains('\u{fffd}'), "{:?}", r.text);
    let han = r
        .text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count();
    assert!(han >= 20, "expected Chinese, got {:?}", r.text);
    assert_eq!(detect(&r.text).unwrap().language, Language::Zh);
    assert!(r.wrong_language.is_empty(), "{:?}", r.wrong_language);
    assert_eq!(r.segments.len(), 2);
    assert!(r
        .segments
        .iter()
        .all(|s| s.translated && !s.target_text.is_empty()));
}

/// English sentences from the catalogs (real prose, not ours), for building long documents.
fn english_sentences() -> Vec<String> {
    let mut out = Vec::new();
    for domain in ["coreutils", "glib20"] {
        for m in catalog("fr", domain).messages() {
            let s = m.id.split_whitespace().collect::<Vec<_>>().join(" ");
            let words = s.split_whitespace().count();
            if (6..=30).contains(&words)
                && s.ends_with('.')
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && !s.contains(['%', '`', '|', '<', '>', '*', '_', '#', '[', '\\'])
                && !s.contains("  ")
            {
                out.push(s);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// About ten pages of Markdown: per page a chapter heading, sections, paragraphs of real
/// sentences, a list, a quote, a fenced and an indented code block, inline code.
fn ten_page_markdown() -> String {
    let sentences = english_sentences();
    assert!(sentences.len() >= 60, "{} sentences", sentences.len());
    let mut next = sentences.iter().cycle();
    let mut para = |n: usize| -> String {
        (0..n)
            .map(|_| next.next().unwrap().as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut md = String::from("# Command-line tools: a user's guide\n\n");
    for page in 1..=10 {
        md.push_str(&format!("## Chapter {page}: working with files\n\n"));
        md.push_str(&para(6));
        md.push_str("\n\n");
        md.push_str(&para(5));
        md.push_str("\n\n### Options\n\n");
        for _ in 0..4 {
            md.push_str(&format!("- {}\n", para(1)));
        }
        md.push_str(&format!("\n> {}\n\n", para(2)));
        md.push_str(&format!(
            "```sh\n# page {page}: list, copy and count\nls -l /tmp/example-{page}\n\
             cp notes.txt backup-{page}.txt\nwc -l backup-{page}.txt\n```\n\n"
        ));
        md.push_str(&format!("Run `wc -l` to count lines. {}\n\n", para(4)));
        md.push_str(&format!("    indented code, page {page}\n    exit 0\n\n"));
        md.push_str(&format!("1. {}\n2. {}\n\n", para(1), para(1)));
        md.push_str(&para(6));
        md.push_str("\n\n");
        md.push_str(&para(6));
        md.push_str("\n\n");
    }
    md
}

fn headings(md: &str) -> Vec<usize> {
    md.lines()
        .filter(|l| l.starts_with('#') && !l.starts_with("# page"))
        .map(|l| l.chars().take_while(|c| *c == '#').count())
        .collect()
}

fn fenced_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for l in md.lines() {
        if l.starts_with("```") {
            match cur.take() {
                Some(mut c) => {
                    c.push_str(l);
                    out.push(c);
                }
                None => cur = Some(format!("{l}\n")),
            }
        } else if let Some(c) = cur.as_mut() {
            c.push_str(l);
            c.push('\n');
        }
    }
    out
}

#[test]
fn ten_page_markdown_document_keeps_its_structure() {
    let (_g, a) = shared();
    let md = ten_page_markdown();
    let words = md.split_whitespace().count();
    assert!(words >= 4500, "{words} words");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guide.md");
    std::fs::write(&path, &md).unwrap();
    let started = Instant::now();
    // A small output budget: the prose is translated (its first words), the structure checked.
    // SmolLM2-135M keeps this within a minute on two cores; the structure does not depend on
    // the model.
    let (events, r, status) = run(
        a,
        TranslateRequest {
            document_path: Some(path),
            source_lang: Some("en".into()),
            target_lang: "de".into(),
            model: Some(
                test_file("smollm2-135m-instruct-q4_1.gguf")
                    .display()
                    .to_string(),
            ),
            max_output_tokens: Some(3),
            use_stored_glossary: true,
            ..Default::default()
        },
    );
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "10 pages ({words} words, {} blocks, {} requests, {} prompt tokens) in {secs:.0} s",
        r.segments.len(),
        r.stats.requests,
        r.stats.prompt_tokens
    );
    assert_eq!(status, "done");
    assert_eq!(r.format, TextFormat::Markdown);
    assert_eq!(
        headings(&r.text),
        headings(&md),
        "headings and their levels"
    );
    assert_eq!(
        fenced_blocks(&r.text),
        fenced_blocks(&md),
        "fenced code untouched"
    );
    assert_eq!(fenced_blocks(&md).len(), 10);
    for page in 1..=10 {
        assert!(r
            .text
            .contains(&format!("    indented code, page {page}\n    exit 0\n")));
    }
    let count = |t: &str, p: &str| t.lines().filter(|l| l.starts_with(p)).count();
    assert_eq!(count(&r.text, "- "), count(&md, "- "), "list items");
    assert_eq!(count(&r.text, "> "), count(&md, "> "), "quotes");
    assert_eq!(count(&r.text, "1. "), 10);
    // Every block was reported, in order, and the pieces streamed add up to the result.
    let rendered: String = events
        .iter()
        .filter_map(|e| match e {
            TranslateEvent::Segment { rendered, .. } => Some(rendered.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(rendered, r.text);
    let progress: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            TranslateEvent::Progress { done, total, .. } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    let prose = r.segments.iter().filter(|s| s.translated).count();
    assert_eq!(progress.len(), prose);
    assert!(progress
        .iter()
        .enumerate()
        .all(|(i, (d, t))| *d == i && *t == prose));
    // Alignment: code blocks map to themselves; prose blocks changed; ranges index the texts.
    let utf16: Vec<u16> = r.text.encode_utf16().collect();
    for s in &r.segments {
        let [a0, a1] = s.target_range;
        assert_eq!(String::from_utf16(&utf16[a0..a1]).unwrap(), s.target_text);
        if s.kind == BlockKind::Code {
            assert_eq!(s.source_text, s.target_text);
            assert!(!s.translated);
        }
    }
    assert!(r
        .segments
        .iter()
        .filter(|s| s.translated)
        .all(|s| s.source_text != s.target_text));
    // The stored translation gives the same alignment back.
    let rec = a.translation(r.translation_id).unwrap();
    assert_eq!(rec.segments.len(), r.segments.len());
    assert_eq!(rec.status, "done");
}

#[test]
fn inline_code_and_links_survive() {
    let (_g, a) = shared();
    let md = "## Counting lines\n\nRun `wc -l notes.txt` to count the lines of a file, \
              as the [manual](https://www.gnu.org/software/coreutils/) explains.\n";
    let (_, r, _) = run(a, text_request(md, "en", "fr"));
    eprintln!("{}", r.text);
    assert!(r.text.starts_with("## "), "{}", r.text);
    assert!(r.text.contains("`wc -l notes.txt`"), "{}", r.text);
    assert!(r.lost_code.is_empty());
}

#[test]
fn cancel_keeps_what_was_translated() {
    let (_g, a) = shared();
    let text = "The first paragraph is short.\n\nThe second paragraph is short too.\n\n\
                The third paragraph will not be reached.\n\nNor will the fourth.\n";
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let started = a
        .translate(
            text_request(text, "en", "fr"),
            Box::new(move |e| drop(tx.lock().unwrap().send(e))),
        )
        .unwrap();
    let mut segments = 0;
    let (status, result) = loop {
        match rx.recv_timeout(Duration::from_secs(600)).unwrap() {
            TranslateEvent::Segment { .. } => {
                segments += 1;
                if segments == 1 {
                    a.cancel(started.job_id);
                }
            }
            TranslateEvent::Done { status, result, .. } => break (status, result),
            TranslateEvent::Failed { error, .. } => panic!("{error:?}"),
            _ => {}
        }
    };
    assert_eq!(status, "cancelled");
    assert!(segments <= 2, "{segments} blocks after the cancel");
    assert!(!result.text.is_empty());
    assert!(!result.text.contains("fourth"), "{}", result.text);
    let rec = a.translation(result.translation_id).unwrap();
    assert_eq!(rec.status, "cancelled");
    assert_eq!(rec.result_text, result.text);
}

#[test]
fn history_search_and_export() {
    let (_g, a) = shared();
    let md = "# Backups\n\nCopy the *important* files to the `backup` folder every evening.\n";
    let (_, r, _) = run(a, text_request(md, "en", "es"));
    let list = a.translations(100, None).unwrap();
    assert!(list
        .iter()
        .any(|t| t.id == r.translation_id && t.status == "done"));
    assert_eq!(list.first().unwrap().id, r.translation_id, "newest first");
    let hits = a.search_translations("IMPORTANT evening").unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![r.translation_id]
    );
    assert!(a
        .search_translations("no-such-word-anywhere")
        .unwrap()
        .is_empty());
    let exported = a
        .export_translation(r.translation_id, ExportFormat::Markdown)
        .unwrap();
    assert_eq!(exported, r.text);
    assert!(exported.starts_with("# "));
    let plain = a
        .export_translation(r.translation_id, ExportFormat::Text)
        .unwrap();
    assert!(!plain.contains('#') && !plain.contains('`'), "{plain}");
    assert!(plain.contains("backup"), "{plain}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.txt");
    a.export_translation_to(r.translation_id, ExportFormat::Text, &file)
        .unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), plain);
    let rec = a.translation(r.translation_id).unwrap();
    assert_eq!(rec.segments.len(), 2);
    assert_eq!(rec.segments[0].kind, BlockKind::Heading);
}

#[test]
fn detected_source_language_and_model_choice_are_reported() {
    let (_g, a) = shared();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let req = TranslateRequest {
        text: Some("Le serveur n’est pas un serveur mandataire SOCKSv5.".into()),
        target_lang: "en".into(),
        use_stored_glossary: true,
        ..Default::default()
    };
    let started = a
        .translate(req, Box::new(move |e| drop(tx.lock().unwrap().send(e))))
        .unwrap();
    assert_eq!(started.source_lang, Language::Fr);
    assert!(started.detected.is_some());
    assert!(started.model.supports_pair);
    assert_eq!(started.model.model.family, ModelFamily::Qwen);
    assert!(
        started.model.reason.contains("French"),
        "{}",
        started.model.reason
    );
    let (_, r, _) = collect(&rx);
    assert_eq!(
        detect(&r.text).unwrap().language,
        Language::En,
        "{}",
        r.text
    );
}

#[test]
fn best_installed_model_is_chosen_for_the_pair() {
    let dir = tempfile::tempdir().unwrap();
    let a = Assistant::open(AssistantConfig {
        data_dir: Some(dir.path().to_path_buf()),
        threads: Some(2),
    })
    .unwrap()
    .assistant;
    let smol = a
        .import_model(&test_file("smollm2-135m-instruct-q4_1.gguf"))
        .unwrap();
    a.import_model(&test_file("gemma-3-270m-q4_k_m.gguf"))
        .unwrap();
    // Only English-only or base models: the pair is not covered; the closest is said so.
    let c = a.translation_model("en", "zh").unwrap();
    assert!(!c.supports_pair, "{c:?}");
    assert!(c.reason.starts_with("No installed model"), "{}", c.reason);
    assert_eq!(c.model.id, smol.id, "a chat model before a base model");
    let q = a.import_model(&qwen()).unwrap();
    for (s, t) in [("en", "zh"), ("fr", "de"), ("es", "en")] {
        let c = a.translation_model(s, t).unwrap();
        assert_eq!(c.model.id, q.id, "{s}-{t}");
        assert!(c.supports_pair);
        assert_eq!(c.model.languages_from, "catalog:qwen2.5-0.5b-instruct");
    }
    let profiles = a.translation_model_profiles().unwrap();
    let fam = |id: &str| profiles.iter().find(|p| p.id == id).unwrap().family;
    assert_eq!(fam(&smol.id), ModelFamily::SmolLm);
    assert_eq!(fam(&q.id), ModelFamily::Qwen);
    assert!(
        profiles.iter().any(|p| p.family == ModelFamily::Plain),
        "Gemma 3 270M has no template"
    );
    assert!(a.translation_model("en", "xx").is_err());
}

#[test]
fn smollm_and_plain_completion_prompts_run_end_to_end() {
    let (_g, a) = shared();
    for (file, family) in [
        ("smollm2-135m-instruct-q4_1.gguf", ModelFamily::SmolLm),
        ("gemma-3-270m-q4_k_m.gguf", ModelFamily::Plain),
    ] {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let mut req = text_request("Good morning, how are you?", "en", "fr");
        req.model = Some(test_file(file).display().to_string());
        req.max_output_tokens = Some(24);
        let started = a
            .translate(req, Box::new(move |e| drop(tx.lock().unwrap().send(e))))
            .unwrap();
        assert_eq!(started.model.model.family, family);
        let (_, r, status) = collect(&rx);
        eprintln!("{file}: {:?}", r.text);
        assert_eq!(status, "done");
        let out = r.text.trim();
        assert!(!out.is_empty(), "{file}");
        assert!(!out.contains('\n'), "one paragraph: {out:?}");
        assert!(
            !out.contains("<|") && !out.contains("<start_of_turn>"),
            "{out:?}"
        );
    }
}

/// A model that cannot read the source language copies it back: each such block is asked for
/// again a sentence at a time, and what still comes back in the source language is reported,
/// never passed off as a translation. SmolLM2-135M knows no Chinese or Russian.
#[test]
fn answers_left_in_the_source_language_are_asked_again_and_reported() {
    let (_g, a) = shared();
    for (text, from) in [
        (
            "将一个或多个文件从源文件夹复制到目标文件夹。如果目标文件已存在，将询问是否覆盖。\n\n\
             输入的密码多次不正确。这是在您的访问被锁定之前正确输入密码的最后机会。",
            "zh",
        ),
        (
            "Скопируйте один или несколько файлов из исходной папки в папку назначения. Если \
             файл уже существует, вас спросят.",
            "ru",
        ),
    ] {
        let mut req = text_request(text, from, "en");
        req.model = Some(
            test_file("smollm2-135m-instruct-q4_1.gguf")
                .display()
                .to_string(),
        );
        let (events, r, status) = run(a, req);
        eprintln!("{from}: {:?} {:?} {:?}", r.text, r.wrong_language, r.stats);
        assert_eq!(status, "done");
        let blocks = r.segments.len();
        assert_eq!(blocks, text.split("\n\n").count());
        // Every block is either in English or reported, and only those that are not are.
        for (i, seg) in r.segments.iter().enumerate() {
            let source = detect(&seg.source_text).unwrap().language;
            let answer = detect(&seg.target_text).unwrap().language;
            assert_eq!(
                r.wrong_language.contains(&i),
                answer == source,
                "block {i}: {:?} ({answer:?})",
                seg.target_text
            );
        }
        // This model copies the first block of each back, even when asked again a sentence
        // at a time: one more request per sentence (two per block here) for each reported block.
        assert!(r.wrong_language.contains(&0), "{:?}", r.wrong_language);
        // The view is told to drop the first answer before the second streams: a block asked
        // again shows its second answer in place of the first, not after it.
        for &b in &r.wrong_language {
            let at = events
                .iter()
                .position(|e| matches!(e, TranslateEvent::Rewrite { segment, text, .. } if *segment == b && text.is_empty()))
                .unwrap_or_else(|| panic!("no rewrite of block {b}"));
            let streamed_before = events[..at]
                .iter()
                .any(|e| matches!(e, TranslateEvent::Delta { segment, .. } if *segment == b));
            let streamed_after = events[at..]
                .iter()
                .any(|e| matches!(e, TranslateEvent::Delta { segment, .. } if *segment == b));
            assert!(streamed_before && streamed_after, "block {b}");
        }
        assert!(
            r.stats.requests as usize >= blocks + 2 * r.wrong_language.len(),
            "{:?}",
            r.stats
        );
    }
}

/// Detection accuracy on the catalogs' own texts: short messages (3 to 8 words) and long runs of
/// messages. Thresholds sit a few points under what was measured (docs/quality.md).
#[test]
fn language_detection_on_short_and_long_catalog_texts() {
    let sets: &[(&str, &[&str], Language, f64)] = &[
        ("zh_CN", &["glib20", "coreutils"], Language::Zh, 0.88),
        ("fr", &["glib20", "coreutils"], Language::Fr, 0.80),
        ("de", &["glib20", "coreutils"], Language::De, 0.93),
        ("es", &["glib20", "coreutils"], Language::Es, 0.90),
        ("ja", &["glib20"], Language::Ja, 0.95),
        ("ko", &["glib20"], Language::Ko, 0.95),
        ("ru", &["glib20"], Language::Ru, 0.95),
        ("it", &["glib20"], Language::It, 0.85),
        ("pt", &["glib20"], Language::Pt, 0.84),
    ];
    let mut report = Vec::new();
    let (mut en_ok, mut en_n) = (0usize, 0usize);
    for (dir, domains, lang, threshold) in sets {
        let (mut ok, mut n) = (0usize, 0usize);
        for domain in *domains {
            let c = catalog(dir, domain);
            let mut long = String::new();
            for m in c.messages() {
                let t = m.translations[0].trim();
                if t.is_empty() || t.contains('%') || m.id.trim() == t {
                    continue;
                }
                if long.chars().count() < 3000 {
                    long.push_str(t);
                    long.push('\n');
                }
                let words = t.split_whitespace().count();
                if (3..=8).contains(&words) {
                    n += 1;
                    ok += usize::from(detect(t).map(|d| d.language) == Some(*lang));
                }
                if *dir == "fr" {
                    let e = m.id.trim();
                    if (3..=8).contains(&e.split_whitespace().count()) && !e.contains('%') {
                        en_n += 1;
                        en_ok += usize::from(detect(e).map(|d| d.language) == Some(Language::En));
                    }
                }
            }
            let d = detect(&long).unwrap();
            assert_eq!(d.language, *lang, "long {dir} {domain} text");
            assert!(d.confidence > 0.5, "{dir} {domain}: {d:?}");
        }
        let acc = ok as f64 / n as f64;
        report.push(format!("{dir}: {ok}/{n} = {:.1}%", acc * 100.0));
        assert!(n >= 100, "{dir}: only {n} short texts");
        assert!(acc >= *threshold, "{dir}: {:.3} < {threshold}", acc);
    }
    let en_acc = en_ok as f64 / en_n as f64;
    report.push(format!("en: {en_ok}/{en_n} = {:.1}%", en_acc * 100.0));
    eprintln!("short-text detection accuracy: {}", report.join(", "));
    assert!(en_acc >= 0.92, "en: {en_acc:.3}");
}

/// The prompts rendered through real chat templates of each family (from llama.cpp's template
/// collection): the rules, the example exchange and the text all reach the model, in the turns
/// the family expects.
#[test]
fn prompts_render_through_each_familys_real_template() {
    use hearth_assistant::translate::glossary::GlossaryTerm as T;
    use hearth_assistant::translate::prompt::{build, PieceInput};
    use hearth_engine::Prompt;
    let cases = [
        (
            "Qwen-Qwen2.5-7B-Instruct.jinja",
            "qwen2",
            "Qwen2.5 7B Instruct",
            ModelFamily::Qwen,
        ),
        (
            "Qwen-Qwen3-0.6B.jinja",
            "qwen3",
            "Qwen3 0.6B",
            ModelFamily::Qwen3,
        ),
        (
            "meta-llama-Llama-3.2-3B-Instruct.jinja",
            "llama",
            "Llama 3.2 3B Instruct",
            ModelFamily::Llama3,
        ),
        (
            "microsoft-Phi-3.5-mini-instruct.jinja",
            "phi3",
            "Phi 3.5 Mini Instruct",
            ModelFamily::Phi,
        ),
        (
            "google-gemma-2-2b-it.jinja",
            "gemma2",
            "Gemma 2 2b It",
            ModelFamily::Gemma,
        ),
        (
            "HuggingFaceTB-SmolLM3-3B.jinja",
            "smollm3",
            "SmolLM3 3B",
            ModelFamily::SmolLm,
        ),
    ];
    let term = T {
        source: "file".into(),
        target: "fichier".into(),
    };
    let terms = [&term];
    for (file, arch, name, family) in cases {
        let template = std::fs::read_to_string(test_file(&format!("templates/{file}"))).unwrap();
        assert_eq!(
            ModelFamily::detect(arch, Some(name), Some(&template)),
            family,
            "{file}"
        );
        let input = PieceInput {
            source: Language::En,
            target: Language::Fr,
            text: "Open the file.",
            previous: None,
            glossary: &terms,
            markdown: false,
            insist: false,
            remind_language: false,
        };
        let Prompt::Chat(messages) = build(family, &input).prompt else {
            panic!("{file}: a chat prompt was expected");
        };
        let format = hearth_prompt::ChatFormat::new(Some(&template), Some("<s>"), Some("</s>"))
            .unwrap()
            .with_fixed_time(
                hearth_prompt::NaiveDateTime::parse_from_str("2025-01-01 00:00", "%Y-%m-%d %H:%M")
                    .unwrap(),
            );
        let rendered = format.render(&messages, true).unwrap();
        assert!(rendered.contains("Open the file."), "{file}: {rendered}");
        assert!(
            rendered.contains("\"file\" → \"fichier\""),
            "{file}: glossary missing"
        );
        if family != ModelFamily::SmolLm {
            assert!(
                rendered.contains("La réunion commence à dix heures."),
                "{file}: example"
            );
        }
        // The text to translate comes last, right before the model's turn.
        let at = rendered.rfind("Open the file.").unwrap();
        assert!(!rendered[at..].contains("La réunion"), "{file}");
        if family == ModelFamily::Qwen3 {
            assert!(rendered.contains("/no_think"));
        }
    }
}
