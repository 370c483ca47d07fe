//! Pull (a ready GGUF, or safetensors quantized here) from a local hub, import from disk (copy
//! and link), and removal, with the registry kept by `hearth-store`.

mod support;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hearth_catalog::installed::{
    import_folder, import_gguf, remove, ImportMode, InstallError, InstalledModels,
};
use hearth_catalog::pull::{pull, PullEvent};
use hearth_catalog::{Catalog, Hub, HubConfig, Quant, RetryPolicy};
use hearth_engine::{GenerationParams, LoadedModel, Message, Prompt, Role, SamplingParams};
use support::hf_export::{export, Layout};
use support::hub_server::{file_sha256, HubServer, Repo, ServedFile};

const COMMIT: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";

fn entry_toml(gguf_repo: Option<&str>, source_repo: Option<&str>) -> String {
    let mut t = String::from(
        r#"id = "smollm2-135m-instruct"
name = "SmolLM2 135M Instruct"
family = "smollm2"
architecture = "llama"
parameters = 134_515_008
context_length = 8192
license = "Apache-2.0"
languages = ["en"]
strengths = ["fast"]
description = "Test entry served by the local hub."
recommended_quant = "Q8_0"
[shape]
layers = 30
hidden = 576
heads = 9
kv_heads = 3
head_dim = 64
vocab = 49152
tied_embeddings = true
"#,
    );
    if let Some(r) = source_repo {
        t.push_str(&format!("[source]\nrepo = \"{r}\"\nrevision = \"main\"\n"));
    }
    if let Some(r) = gguf_repo {
        t.push_str(&format!("[gguf]\nrepo = \"{r}\"\nrevision = \"main\"\nfiles = {{ Q8_0 = \"smollm2-135m-instruct-q4_1.gguf\" }}\n"));
    }
    t
}

fn store(dir: &Path) -> hearth_store::Store {
    hearth_store::Store::open(dir.join("hearth.sqlite3"))
        .unwrap()
        .store
}

fn hub(server: &HubServer, cache: &Path) -> Hub {
    Hub::new(HubConfig {
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        },
        ..HubConfig::new(&server.url, cache)
    })
}

fn answer(path: &Path) -> String {
    let mut m = LoadedModel::load(path, 2).unwrap();
    m.generate(
        &Prompt::Chat(vec![
            Message {
                role: Role::System,
                content: "Answer in English.".into(),
            },
            Message {
                role: Role::User,
                content: "What is the capital of France?".into(),
            },
        ]),
        &GenerationParams {
            max_tokens: 16,
            sampling: SamplingParams::greedy(),
            ..Default::default()
        },
        &AtomicBool::new(false),
        &mut |_| true,
    )
    .unwrap()
    .text
}

#[test]
fn pull_a_ready_gguf_then_remove_it() {
    let gguf = support::test_model("smollm2-135m-instruct-q4_1.gguf");
    let server = HubServer::start(vec![Repo {
        id: "bartowski/SmolLM2-135M-Instruct-GGUF".into(),
        commit: COMMIT.into(),
        files: vec![ServedFile::lfs("smollm2-135m-instruct-q4_1.gguf", &gguf)],
        token: None,
    }]);
    let work = tempfile::tempdir().unwrap();
    let registry = store(work.path());
    let hub = hub(&server, &work.path().join("hf"));
    let models = work.path().join("models");
    let catalog = Catalog::from_sources([(
        "e.toml".into(),
        entry_toml(Some("bartowski/SmolLM2-135M-Instruct-GGUF"), None),
    )])
    .unwrap();
    let entry = catalog.require("smollm2-135m-instruct").unwrap();

    let mut downloads = 0;
    let m = pull(
        entry,
        Quant::Q8_0,
        &hub,
        &models,
        &registry,
        &mut |e| {
            if let PullEvent::Download(_) = e {
                downloads += 1
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(downloads > 0);
    assert_eq!(m.id, "smollm2-135m-instruct-q8_0");
    assert_eq!(
        m.quant.as_deref(),
        Some("Q4_1"),
        "the file's own header is recorded, not the catalog label"
    );
    assert_eq!(m.sha256, file_sha256(&gguf));
    assert_eq!(
        m.source_repo.as_deref(),
        Some("bartowski/SmolLM2-135M-Instruct-GGUF")
    );
    assert_eq!(m.source_revision.as_deref(), Some(COMMIT));
    assert_eq!(registry.list().unwrap(), vec![m.clone()]);

    // Pulling again reuses the installed model: no request at all.
    server.clear_log();
    let again = pull(
        entry,
        Quant::Q8_0,
        &hub,
        &models,
        &registry,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(again, m);
    assert!(server.log().is_empty());

    // The speed measured after first use is kept next to the record.
    registry.record_speed(&m.id, 41.5).unwrap();
    assert_eq!(registry.measured_speed(&m.id).unwrap(), Some(41.5));

    // Removing deletes the cached file (snapshot link and blob) and the record.
    let blob = std::fs::canonicalize(&m.path).unwrap();
    remove(&m.id, &registry, &models, hub.layout()).unwrap();
    assert!(!Path::new(&m.path).exists() && !blob.exists());
    assert!(registry.list().unwrap().is_empty());
    assert_eq!(registry.measured_speed(&m.id).unwrap(), None);
    assert!(matches!(
        remove(&m.id, &registry, &models, hub.layout()),
        Err(InstallError::NotInstalled(_))
    ));
    assert!(gguf.is_file(), "the served original is untouched");
}

#[test]
fn pull_quantizes_safetensors_when_no_gguf_is_offered_and_folders_import() {
    let gguf = support::test_model("smollm2-135m-instruct-q4_1.gguf");
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("SmolLM2-135M-Instruct");
    export(&gguf, &folder, Layout::SingleF16);
    let mut files = Vec::new();
    files.push(ServedFile::lfs(
        "model.safetensors",
        &folder.join("model.safetensors"),
    ));
    for name in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        files.push(ServedFile::small(
            name,
            &std::fs::read(folder.join(name)).unwrap(),
        ));
    }
    files.push(ServedFile::small("README.md", b"# SmolLM2\n"));
    let server = HubServer::start(vec![Repo {
        id: "HuggingFaceTB/SmolLM2-135M-Instruct".into(),
        commit: COMMIT.into(),
        files,
        token: None,
    }]);
    let registry = store(work.path());
    let hub = hub(&server, &work.path().join("hf"));
    let models = work.path().join("models");
    let catalog = Catalog::from_sources([(
        "e.toml".into(),
        entry_toml(None, Some("HuggingFaceTB/SmolLM2-135M-Instruct")),
    )])
    .unwrap();
    let entry = catalog.require("smollm2-135m-instruct").unwrap();

    let (mut downloaded, mut quantized) = (Vec::new(), 0);
    let m = pull(
        entry,
        Quant::Q8_0,
        &hub,
        &models,
        &registry,
        &mut |e| match e {
            PullEvent::Download(p) => {
                if p.done {
                    downloaded.push(p.file.clone())
                }
            }
            PullEvent::Quantize(_) => quantized += 1,
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    downloaded.sort();
    assert_eq!(
        downloaded,
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ],
        "README is not fetched"
    );
    assert!(quantized > 0);
    assert_eq!(
        Path::new(&m.path),
        models.join("smollm2-135m-instruct-q8_0.gguf")
    );
    assert_eq!(m.quant.as_deref(), Some("Q8_0"));
    assert!(answer(Path::new(&m.path)).contains("Paris"));

    // A folder on disk imports by quantizing into the models folder.
    let imported = import_folder(
        &folder,
        &models,
        Quant::Q4KM,
        None,
        &registry,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(imported.id, "smollm2-135m-instruct-q4_k_m");
    assert!(Path::new(&imported.path).starts_with(&models));
    assert_eq!(registry.list().unwrap().len(), 2);
    remove(&imported.id, &registry, &models, hub.layout()).unwrap();
    assert!(!Path::new(&imported.path).exists());
    assert!(
        folder.join("model.safetensors").is_file(),
        "the source folder is left alone"
    );
}

#[test]
fn import_copies_or_links_and_remove_never_touches_the_original() {
    let gguf = support::test_model("smollm2-135m-instruct-q4_1.gguf");
    let work = tempfile::tempdir().unwrap();
    let registry = store(work.path());
    let models = work.path().join("models");
    let cache = hearth_catalog::hub::CacheLayout::new(&work.path().join("hf"));

    let copied = import_gguf(
        &gguf,
        &models,
        ImportMode::Copy,
        Some("my-smollm"),
        &registry,
    )
    .unwrap();
    assert_eq!(copied.quant.as_deref(), Some("Q4_1"));
    assert_eq!(file_sha256(Path::new(&copied.path)), file_sha256(&gguf));
    assert!(!std::fs::symlink_metadata(&copied.path)
        .unwrap()
        .file_type()
        .is_symlink());

    let linked = import_gguf(&gguf, &models, ImportMode::Link, None, &registry).unwrap();
    assert_eq!(linked.id, "smollm2-135m-instruct-q4_1");
    assert!(std::fs::symlink_metadata(&linked.path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::canonicalize(&linked.path).unwrap(),
        std::fs::canonicalize(&gguf).unwrap()
    );
    // The engine runs the imported file.
    assert!(!answer(Path::new(&linked.path)).is_empty());

    assert!(matches!(
        import_gguf(
            &gguf,
            &models,
            ImportMode::Copy,
            Some("my-smollm"),
            &registry
        ),
        Err(InstallError::AlreadyInstalled(_))
    ));
    let not_gguf = work.path().join("notes.gguf");
    std::fs::write(&not_gguf, b"plain text, not a model").unwrap();
    assert!(matches!(
        import_gguf(&not_gguf, &models, ImportMode::Copy, None, &registry),
        Err(InstallError::NotGguf { .. })
    ));
    let bert = support::test_model("vocab/ggml-vocab-bert-bge.gguf");
    let e = import_gguf(&bert, &models, ImportMode::Link, None, &registry).unwrap_err();
    assert!(
        matches!(e, InstallError::UnsupportedArchitecture { .. }),
        "{e}"
    );

    remove(&linked.id, &registry, &models, &cache).unwrap();
    remove(&copied.id, &registry, &models, &cache).unwrap();
    assert!(!Path::new(&linked.path).exists() && !Path::new(&copied.path).exists());
    assert!(gguf.is_file(), "the original is never deleted");
    assert!(registry.list().unwrap().is_empty());
}
