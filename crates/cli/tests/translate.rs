//! `hearth translate` run as a user would, on the real SmolLM2 test model: a Markdown file keeps
//! its structure, standard input works, a glossary file is applied, bad input is refused.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

fn hearth(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_DATA_DIR", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearth runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn a_markdown_file_and_standard_input_are_translated_with_a_glossary() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let model = smollm();
    let model = model.to_str().unwrap();
    let doc = work.path().join("notes.md");
    std::fs::write(
        &doc,
        "# Backups\n\nCopy the file to the backup folder every day.\n\n\
         ```sh\ncp notes.txt backup/\n```\n",
    )
    .unwrap();
    let glossary = work.path().join("terms.txt");
    std::fs::write(&glossary, "# ours\nbackup = Sicherung\n").unwrap();
    let out_file = work.path().join("notizen.md");
    let o = hearth(
        &data,
        &[
            "translate",
            "--to",
            "de",
            "--from",
            "en",
            "-m",
            model,
            "--glossary",
            glossary.to_str().unwrap(),
            "--max-output-tokens",
            "24",
            "-q",
            "-o",
            out_file.to_str().unwrap(),
            doc.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = std::fs::read_to_string(&out_file).unwrap();
    assert!(t.starts_with("# "), "the heading stays a heading: {t:?}");
    assert!(
        t.contains("```sh\ncp notes.txt backup/\n```"),
        "code is left as it is: {t:?}"
    );
    assert!(
        t.contains("Sicherung"),
        "the glossary's term is used: {t:?}"
    );
    let prose = t.lines().nth(2).unwrap_or_default();
    assert!(!prose.trim().is_empty(), "{t:?}");
    assert_ne!(prose, "Copy the file to the backup folder every day.");

    // Standard input, text written to standard output.
    let o = hearth(
        &data,
        &[
            "translate",
            "--to",
            "fr",
            "--from",
            "en",
            "-m",
            model,
            "-q",
            "-",
        ],
        Some("Good morning."),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(!t.trim().is_empty());
    assert_ne!(t.trim(), "Good morning.");
}

#[test]
fn bad_languages_files_and_glossaries_are_refused_clearly() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let model = smollm();
    let model = model.to_str().unwrap();
    let o = hearth(
        &data,
        &["translate", "--to", "xx", "-m", model, "-"],
        Some("Hello."),
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("xx"), "{e}");

    let missing = work.path().join("missing.md");
    let o = hearth(
        &data,
        &[
            "translate",
            "--to",
            "de",
            "-m",
            model,
            missing.to_str().unwrap(),
        ],
        None,
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("missing.md"), "{e}");
    assert!(!e.contains("panicked"), "{e}");

    let bad = work.path().join("bad.txt");
    std::fs::write(&bad, "this line has no separator\n").unwrap();
    let o = hearth(
        &data,
        &[
            "translate",
            "--to",
            "de",
            "-m",
            model,
            "--glossary",
            bad.to_str().unwrap(),
            "-",
        ],
        Some("Hello."),
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("line 1"), "{e}");
}
