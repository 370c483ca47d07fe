//! The `hearth` binary, run as a user would, on the real SmolLM2 test model.

use std::path::PathBuf;
use std::process::Command;

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

fn hearth(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_DATA_DIR", data_dir)
        .output()
        .expect("hearth runs")
}

#[test]
fn generate_json_gives_tokens_and_text() {
    let d = tempfile::tempdir().unwrap();
    let m = smollm();
    let out = hearth(
        d.path(),
        &[
            "generate",
            "-m",
            m.to_str().unwrap(),
            "-p",
            "The capital of France is",
            "--raw",
            "--greedy",
            "--max-tokens",
            "8",
            "--json",
            "-t",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["prompt_tokens"].as_array().unwrap().len(), 5);
    assert_eq!(v["tokens"].as_array().unwrap().len(), 8);
    assert!(v["text"].as_str().unwrap().contains("Paris"), "{v}");
}

#[test]
fn bench_json_has_every_field() {
    let d = tempfile::tempdir().unwrap();
    let m = smollm();
    let out = hearth(
        d.path(),
        &[
            "bench",
            "-m",
            m.to_str().unwrap(),
            "--prompt-tokens",
            "32",
            "--gen-tokens",
            "8",
            "-t",
            "2",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "prefill_tok_s",
        "decode_tok_s",
        "ttft_ms",
        "load_ms",
        "peak_rss_mb",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
    assert_eq!(v["threads"], 2);
    assert_eq!(v["quant"], "Q4_1");
    assert_eq!(v["model"], "smollm2-135m-instruct-q4_1.gguf");
    // The 8 decoded tokens see 33 to 40 positions, 36.5 on average, of 23,040 bytes each
    // (30 layers of 3 key/value heads of 64, f16 keys and values).
    assert_eq!(v["decode_cache_bytes_per_token"], 36 * 23_040 + 23_040 / 2);
}

#[test]
fn model_ids_resolve_through_the_store_and_bad_paths_say_so() {
    let d = tempfile::tempdir().unwrap();
    let opened = hearth_store::Store::open_in_data_dir(
        Some(d.path()),
        &hearth_store::OpenOptions::default(),
    )
    .unwrap();
    opened
        .store
        .upsert_model(&hearth_store::InstalledModel {
            id: "smollm2-135m".into(),
            path: smollm().display().to_string(),
            source_repo: None,
            source_revision: None,
            source_file: None,
            quant: Some("Q4_1".into()),
            size_bytes: 1,
            sha256: "0".repeat(64),
            added_at: 0,
            last_used_at: None,
        })
        .unwrap();
    drop(opened);
    let out = hearth(d.path(), &["info", "-m", "smollm2-135m", "-t", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["arch"], "llama");

    let out = hearth(d.path(), &["info", "-m", "no-such-model"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no installed model with that id"), "{err}");
    let not_model = d.path().join("x.gguf");
    std::fs::write(&not_model, "hello").unwrap();
    let out = hearth(
        d.path(),
        &["generate", "-m", not_model.to_str().unwrap(), "-p", "hi"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a GGUF model file"));
}
