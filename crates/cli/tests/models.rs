//! `hearth models`, `pull`, `quantize`, `import` and `rm`, run as a user would, against the
//! local hub test server (shared with hearth-catalog's tests) and the real SmolLM2 test model.

#[path = "../../catalog/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::hf_export::{export, Layout};
use support::hub_server::{file_sha256, Faults, HubServer, Repo, ServedFile};

const GGUF_REPO: &str = "bartowski/SmolLM2-135M-Instruct-GGUF";
const GGUF_FILE: &str = "SmolLM2-135M-Instruct-Q8_0.gguf";

fn hearth(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_DATA_DIR", data.join("data"))
        .env("HF_HOME", data.join("hf"))
        .env_remove("HF_ENDPOINT")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .expect("hearth runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "hearth failed: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    stdout(&o)
}

/// `hearth models`: the catalog with fit, predicted speed and an INSTALLED column, then any other
/// installed models.
fn listing(data: &Path) -> String {
    ok(hearth(data, &["models"]))
}

#[test]
fn pull_lists_removes_and_survives_a_dropped_connection() {
    let gguf = support::test_model("smollm2-135m-instruct-q4_1.gguf");
    let server = HubServer::start(vec![Repo {
        id: GGUF_REPO.into(),
        commit: "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567".into(),
        files: vec![ServedFile::lfs(GGUF_FILE, &gguf)],
        token: None,
    }]);
    let work = tempfile::tempdir().unwrap();
    let data = work.path();

    // Nothing is installed yet: the catalog row has an empty INSTALLED column.
    let before = listing(data);
    let row = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("smollm2-135m-instruct "))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no catalog row for smollm2-135m-instruct in:\n{text}"))
    };
    assert!(before.contains("This computer:"), "{before}");
    assert!(
        row(&before).trim_end().ends_with("tok/s"),
        "{}",
        row(&before)
    );

    // The connection drops half-way: the retry resumes with a Range request and the file verifies.
    let size = std::fs::metadata(&gguf).unwrap().len();
    server.set_faults(Faults {
        drop_after_bytes: Some(size / 2),
        ..Default::default()
    });
    let out = ok(hearth(
        data,
        &[
            "pull",
            "smollm2-135m-instruct",
            "--quant",
            "Q8_0",
            "--endpoint",
            &server.url,
        ],
    ));
    assert!(
        out.contains("installed smollm2-135m-instruct-q8_0"),
        "{out}"
    );
    let ranged = server
        .log()
        .iter()
        .filter(|l| l.range.is_some() && l.path.ends_with(GGUF_FILE))
        .count();
    assert!(ranged >= 1, "the download resumed with a Range request");
    // "installed ID (SIZE) at PATH": a pulled GGUF stays in the Hugging Face cache layout.
    let path = out.trim().rsplit(" at ").next().unwrap().to_string();
    assert!(
        path.starts_with(data.join("hf").to_str().unwrap()),
        "pulled into the Hugging Face cache: {path}"
    );
    assert_eq!(file_sha256(Path::new(&path)), file_sha256(&gguf));
    let after = listing(data);
    assert!(
        row(&after).trim_end().ends_with("yes"),
        "the listing shows the pulled model:\n{after}"
    );

    // The model answers through the id it was installed under.
    let answer = ok(hearth(
        data,
        &[
            "generate",
            "--model",
            "smollm2-135m-instruct-q8_0",
            "--greedy",
            "--max-tokens",
            "12",
            "--system",
            "You are a helpful assistant.",
            "-p",
            "What is the capital of France?",
        ],
    ));
    assert!(answer.contains("Paris"), "{answer}");

    // Removing it takes it off the listing; removing it again is a clear error.
    let out = ok(hearth(data, &["rm", "smollm2-135m-instruct-q8_0"]));
    assert!(out.contains("removed smollm2-135m-instruct-q8_0"), "{out}");
    let gone = listing(data);
    assert!(row(&gone).trim_end().ends_with("tok/s"), "{gone}");
    let again = hearth(data, &["rm", "smollm2-135m-instruct-q8_0"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("smollm2-135m-instruct-q8_0"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn pull_of_a_missing_file_or_an_unknown_model_says_so_and_installs_nothing() {
    let server = HubServer::start(vec![]);
    let work = tempfile::tempdir().unwrap();
    let data = work.path();
    let o = hearth(
        data,
        &["pull", "smollm2-135m-instruct", "--endpoint", &server.url],
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("smollm2-135m-instruct"), "{e}");
    assert!(!e.contains("panicked"), "{e}");

    let o = hearth(data, &["pull", "no-such-model", "--endpoint", &server.url]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no-such-model"), "{}", stderr(&o));

    server.clear_log();
    let o = hearth(
        data,
        &[
            "pull",
            "smollm2-135m-instruct",
            "--offline",
            "--endpoint",
            &server.url,
        ],
    );
    assert!(
        !o.status.success(),
        "offline and not in the cache: nothing to install"
    );
    assert!(
        stderr(&o).to_lowercase().contains("offline"),
        "{}",
        stderr(&o)
    );
    assert!(server.log().is_empty(), "offline mode touched the network");

    let list = listing(data);
    assert!(!list.contains("Other installed models"), "{list}");
}

#[test]
fn quantize_then_import_then_answer() {
    let gguf = support::test_model("smollm2-135m-instruct-q4_1.gguf");
    let work = tempfile::tempdir().unwrap();
    let data = work.path();
    let folder = data.join("hf-folder");
    export(&gguf, &folder, Layout::SingleF16);

    let out_file = data.join("smollm2-q8.gguf");
    let out = ok(hearth(
        data,
        &[
            "quantize",
            folder.to_str().unwrap(),
            "--quant",
            "Q8_0",
            "-o",
            out_file.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("wrote"), "{out}");
    assert!(out_file.is_file());
    let info = ok(hearth(
        data,
        &["info", "--model", out_file.to_str().unwrap()],
    ));
    assert!(info.contains("Q8_0"), "{info}");

    // A folder that is not a model is refused with the reason, and no output appears.
    let bad = data.join("not-a-model");
    std::fs::create_dir_all(&bad).unwrap();
    let bad_out = data.join("bad.gguf");
    let o = hearth(
        data,
        &[
            "quantize",
            bad.to_str().unwrap(),
            "--quant",
            "Q8_0",
            "-o",
            bad_out.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
    assert!(!bad_out.exists());

    // Import the quantized file under an id of our choosing; it is listed and it answers.
    let out = ok(hearth(
        data,
        &["import", out_file.to_str().unwrap(), "--id", "my-smollm"],
    ));
    assert!(out.contains("installed my-smollm"), "{out}");
    let list = listing(data);
    assert!(list.contains("my-smollm"), "{list}");
    let answer = ok(hearth(
        data,
        &[
            "generate",
            "--model",
            "my-smollm",
            "--greedy",
            "--max-tokens",
            "12",
            "--system",
            "You are a helpful assistant.",
            "-p",
            "What is the capital of France?",
        ],
    ));
    assert!(answer.contains("Paris"), "{answer}");

    // A file that is not GGUF is refused.
    let junk = data.join("junk.gguf");
    std::fs::write(&junk, b"definitely not a model").unwrap();
    let o = hearth(data, &["import", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}
