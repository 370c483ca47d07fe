//! Prints what extraction makes of a file: `cargo run -p hearth-documents --example extract --
//! FILE [--sections] [--chunks N]` (N: max tokens, counted here as whitespace-separated words).

use hearth_documents::{chunk, extract_file, Limits};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: extract FILE [--sections] [--chunks N]");
        std::process::exit(2);
    };
    let started = std::time::Instant::now();
    let doc = match extract_file(std::path::Path::new(path), &Limits::default()) {
        Ok(doc) => doc,
        Err(e) => {
            println!("error [{}]: {e}", e.code());
            std::process::exit(1);
        }
    };
    println!(
        "{:?} title={:?} pages={:?} sections={} chars={} sha256={} in {:.2}s",
        doc.kind,
        doc.title,
        doc.pages,
        doc.sections.len(),
        doc.char_count(),
        doc.sha256,
        started.elapsed().as_secs_f64()
    );
    if args.iter().any(|a| a == "--sections") {
        for s in &doc.sections {
            println!("--- page {:?} heading {:?}\n{}", s.page, s.heading, s.text);
        }
    }
    if let Some(i) = args.iter().position(|a| a == "--chunks") {
        let max: usize = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(512);
        let words = |s: &str| s.split_whitespace().count();
        for c in chunk(&doc, &words, max) {
            println!(
                "=== chunk {} tokens {} pages {:?}-{:?} heading {:?}\n{}",
                c.ordinal, c.token_count, c.page_start, c.page_end, c.heading, c.text
            );
        }
    }
}
