//! `hearth summarize` and `hearth ask` run as a user would, on the real SmolLM2 test model:
//! progress on standard error, the summary with its citations on standard output, Ctrl-C stops
//! and a rerun resumes, a finished summary is reused, questions cite passages, bad input fails
//! with the error's code. The document is a small Markdown file written here (two sections,
//! so the citations are section headings) to keep the run short; real long PDFs are summarized
//! in hearth-assistant's tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

const NOTES: &str = "# Kettles\n\nThe kettle boils water at noon. It whistles loudly when the \
water is ready.\n\nA second kettle stays cold on the shelf.\n\n# Gardens\n\nThe garden has \
three apple trees. Bees visit the trees in spring.\n\nThe gardener waters the roses every \
evening.\n";

fn args<'a>(model: &'a str, file: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "summarize",
        file,
        "--model",
        model,
        "--threads",
        "2",
        "--length",
        "short",
        "--lang",
        "en",
        "--chunk-tokens",
        "20",
        "--max-part-tokens",
        "8",
        "--max-summary-tokens",
        "12",
    ];
    v.extend_from_slice(extra);
    v
}

fn run(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_DATA_DIR", data)
        .output()
        .expect("hearth runs")
}

#[test]
fn summarize_stops_on_ctrl_c_resumes_and_reuses_the_finished_summary() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let file = d.path().join("notes.md");
    std::fs::write(&file, NOTES).unwrap();
    let model = smollm();
    let (model, file_s) = (model.to_str().unwrap(), file.to_str().unwrap());

    // First run: interrupted with SIGINT once the second chunk is being read.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args(model, file_s, &[]))
        .env("HEARTH_DATA_DIR", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err_lines = Vec::new();
    let mut total = 0;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("Reading chunk 2 of ") {
            total = rest
                .split(',')
                .next()
                .unwrap()
                .trim()
                .parse::<u32>()
                .unwrap();
            let ok = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        err_lines.push(line);
    }
    let status = child.wait().unwrap();
    let err = err_lines.join("\n");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(total >= 3, "the notes make several chunks: {err}");
    assert!(err.contains("Added notes.md"), "{err}");
    assert!(err.contains("Stopped after"), "{err}");

    // Second run: resumes from the stored partial summaries and finishes.
    let out = run(&data, &args(model, file_s, &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Known document notes.md"), "{err}");
    assert!(err.contains("Resuming summary"), "{err}");
    assert!(
        !err.contains("Reading chunk 1 of"),
        "chunk 1 was done before: {err}"
    );
    assert!(summary.contains("Key points:"), "{summary}");
    assert!(summary.contains("§ Kettles"), "{summary}");
    assert!(
        summary.contains("§ Gardens") || summary.contains("Kettles; Gardens"),
        "{summary}"
    );

    // Third run: the finished summary is printed again without any model request.
    let out = run(&data, &args(model, file_s, &[]));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Reading chunk"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), summary);

    // JSON: every chunk summarized.
    let out = run(&data, &args(model, file_s, &["--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "done");
    assert_eq!(v["chunksSummarized"], v["chunksTotal"]);
    assert_eq!(v["chunksTotal"], total);

    // A question, answered from cited passages.
    let out = run(
        &data,
        &[
            "ask",
            file_s,
            "Which trees grow in the garden?",
            "--model",
            model,
            "--threads",
            "2",
            "--passages",
            "2",
            "--max-tokens",
            "12",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Sources:"), "{text}");
    assert!(text.contains("[1]") && text.contains("§ Gardens"), "{text}");
}

#[test]
fn summarize_refuses_bad_input_with_its_code() {
    let d = tempfile::tempdir().unwrap();
    let model = smollm();
    let png = d.path().join("picture.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let out = run(
        &d.path().join("data"),
        &[
            "summarize",
            png.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[documents.unsupported]"), "{err}");
    let out = run(
        &d.path().join("data"),
        &["summarize", "/nonexistent.pdf", "--length", "tiny"],
    );
    assert_eq!(out.status.code(), Some(1));
}
